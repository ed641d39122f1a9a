//! FILES_DB in Postgres: the managed-mode `buckets` and `objects` tables with their own
//! migration set (`migrations/files/`); in the media database or a database of their own.

use crate::batch::{Answer, Fetch, Lookups, answer_of, one_row_per_key};
use crate::error::column;
use crate::migrations;
use crate::nanos;
use crate::pool::PgPool;
use async_trait::async_trait;
use filegate_core::Error;
use filegate_core::domain::{BucketName, ByteSize, ContentType, ObjectKey};
use filegate_core::error::Resource;
use filegate_core::managed::{
    Bucket, BucketId, BucketStore, MimePattern, ObjectConfirmation, ObjectId, ObjectPath,
    ObjectQuery, ObjectRow, ObjectRowPage, ObjectRowStore, ObjectStatus, ReadScope, WriteScope,
};
use filegate_core::ports::MultipartRef;
use std::fmt::Write as _;
use std::sync::{Arc, LazyLock};
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

/// FILES_DB over Postgres: implements [`BucketStore`] and [`ObjectRowStore`]. Cheap to
/// clone (shares the pool).
#[derive(Clone, Debug)]
pub struct PostgresFilesDb {
    pool: PgPool,
    /// Lookups of concurrent requests share one statement (see [`crate::batch`]).
    objects_by_key: Lookups<String, Option<ObjectRow>>,
    buckets_by_name: Lookups<(Option<String>, String), Option<Bucket>>,
}

impl PostgresFilesDb {
    /// Applies FILES_DB's pending migrations, then serves from `pool`.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the server cannot be reached; [`Error::Internal`] when a
    /// migration fails or the database was migrated by a newer binary.
    pub async fn open(pool: PgPool) -> Result<Self, Error> {
        migrations::apply_pending(&pool, &migrations::FILES).await?;
        Ok(Self {
            objects_by_key: Lookups::start(objects_by_key(pool.clone())),
            buckets_by_name: Lookups::start(buckets_by_name(pool.clone())),
            pool,
        })
    }

    /// The most distinct keys one object lookup statement has held so far (tests check
    /// that concurrent lookups are batched).
    #[doc(hidden)]
    #[must_use]
    pub fn largest_lookup_batch(&self) -> usize {
        self.objects_by_key.largest_batch()
    }

    /// The pool, for readiness checks and metrics.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The distinct names of every bucket, of every organization: the key spaces
    /// (`<owner>/<name>/…`) FILES_DB covers, for reconcile.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    pub async fn bucket_names(&self) -> Result<Vec<String>, Error> {
        self.pool
            .query("SELECT DISTINCT name FROM buckets ORDER BY name", &[])
            .await?
            .iter()
            .map(|r| r.try_get(0).map_err(column))
            .collect()
    }
}

fn stored_size(field: &str, n: u64) -> Result<i64, Error> {
    i64::try_from(n)
        .map_err(|_| Error::invalid(field, format!("must be at most {} bytes", i64::MAX)))
}

fn instant(n: i64) -> Result<OffsetDateTime, ()> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(n)).map_err(drop)
}

/// The smallest string greater than every string starting with `prefix` (byte order),
/// or `None` when there is none (a prefix of only U+10FFFF).
fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match u32::from(last) + 1 {
            0xD800 => Some('\u{E000}'),
            n => char::from_u32(n),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

static OBJECTS_BY_KEY: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {OBJECT_COLUMNS} FROM objects WHERE key = ANY($1::text[])"));
// Each branch has its unique index: the organization's, and the project-wide partial one
// (run only for a lookup without an organization).
static BUCKETS_BY_NAME: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT b.*, q.n FROM unnest($1::text[], $2::text[]) \
         WITH ORDINALITY AS q(org, name, n) \
         CROSS JOIN LATERAL ( \
           (SELECT {BUCKET_COLUMNS} FROM buckets \
            WHERE organization_id = q.org AND name = q.name) \
           UNION ALL \
           (SELECT {BUCKET_COLUMNS} FROM buckets \
            WHERE q.org IS NULL AND organization_id IS NULL AND name = q.name)) b"
    )
});

/// Object rows by key, many keys per statement.
fn objects_by_key(pool: PgPool) -> Fetch<String, Option<ObjectRow>> {
    Arc::new(move |keys: Vec<String>| {
        let pool = pool.clone();
        Box::pin(async move {
            let rows = pool.query(&OBJECTS_BY_KEY, &[&keys]).await?;
            one_row_per_key(&keys, &rows, OBJECT_KEY_COLUMN, object_of)
        })
    })
}

/// Buckets by (organization or project-wide, name), many per statement; the last column
/// says which lookup a row answers.
fn buckets_by_name(pool: PgPool) -> Fetch<(Option<String>, String), Option<Bucket>> {
    Arc::new(move |names: Vec<(Option<String>, String)>| {
        let pool = pool.clone();
        Box::pin(async move {
            let orgs: Vec<Option<&str>> = names.iter().map(|(o, _)| o.as_deref()).collect();
            let bare: Vec<&str> = names.iter().map(|(_, n)| n.as_str()).collect();
            let rows = pool.query(&BUCKETS_BY_NAME, &[&orgs, &bare]).await?;
            let mut answers: Vec<Answer<Option<Bucket>>> = names.iter().map(|_| Ok(None)).collect();
            for r in &rows {
                *answer_of(&mut answers, r, BUCKET_COLUMN_COUNT)? = bucket_of(r).map(Some);
            }
            Ok(answers)
        })
    })
}

const BUCKET_COLUMNS: &str = "id, name, organization_id, read_scope, write_scope, \
                              file_size_limit, allowed_mime_types, created_at, updated_at";
/// How many columns [`BUCKET_COLUMNS`] names.
const BUCKET_COLUMN_COUNT: usize = 9;

/// Stored rows were valid when written, so a failure here means corrupt data.
fn bucket_of(r: &Row) -> Result<Bucket, Error> {
    let id: String = r.try_get(0).map_err(column)?;
    let corrupt = |field: &str| Error::internal(format!("bucket {id:?} has an invalid {field}"));
    let name: String = r.try_get(1).map_err(column)?;
    let read_scope: String = r.try_get(3).map_err(column)?;
    let write_scope: String = r.try_get(4).map_err(column)?;
    let limit: Option<i64> = r.try_get(5).map_err(column)?;
    let mimes: String = r.try_get(6).map_err(column)?;
    Ok(Bucket {
        name: BucketName::parse(name).map_err(|_| corrupt("name"))?,
        organization_id: r.try_get(2).map_err(column)?,
        read_scope: ReadScope::parse(&read_scope).map_err(|_| corrupt("read_scope"))?,
        write_scope: WriteScope::parse(&write_scope).map_err(|_| corrupt("write_scope"))?,
        file_size_limit: limit
            .map(|n| u64::try_from(n).map(ByteSize))
            .transpose()
            .map_err(|_| corrupt("file_size_limit"))?,
        allowed_mime_types: mimes
            .split(',')
            .filter(|m| !m.is_empty())
            .map(MimePattern::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| corrupt("allowed_mime_types"))?,
        created_at: instant(r.try_get(7).map_err(column)?).map_err(|()| corrupt("created_at"))?,
        updated_at: instant(r.try_get(8).map_err(column)?).map_err(|()| corrupt("updated_at"))?,
        id: BucketId::parse(&id).map_err(|_| corrupt("id"))?,
    })
}

/// A bucket's mutable columns as stored.
struct BucketValues {
    write_scope: String,
    file_size_limit: Option<i64>,
    allowed_mime_types: String,
    created_at: i64,
    updated_at: i64,
}

fn bucket_values(b: &Bucket) -> Result<BucketValues, Error> {
    Ok(BucketValues {
        write_scope: b.write_scope.to_string(),
        file_size_limit: b
            .file_size_limit
            .map(|l| stored_size("fileSizeLimit", l.bytes()))
            .transpose()?,
        // MIME tokens cannot contain ',', so the list needs no escaping.
        allowed_mime_types: b
            .allowed_mime_types
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        created_at: nanos(b.created_at, "created_at")?,
        updated_at: nanos(b.updated_at, "updated_at")?,
    })
}

const OBJECT_COLUMNS: &str = "id, bucket_id, organization_id, owner_id, segment, key, path, \
                              content_type, size, etag, status, created_at, updated_at, deleted_at, \
                              multipart_upload_id, multipart_part_size";
/// Where [`OBJECT_COLUMNS`] has `key`.
const OBJECT_KEY_COLUMN: usize = 5;

fn object_of(r: &Row) -> Result<ObjectRow, Error> {
    let id: String = r.try_get(0).map_err(column)?;
    let corrupt = |field: &str| Error::internal(format!("object {id:?} has an invalid {field}"));
    let text = |i: usize| r.try_get::<_, String>(i).map_err(column);
    let size: i64 = r.try_get(8).map_err(column)?;
    let deleted_at: Option<i64> = r.try_get(13).map_err(column)?;
    let upload_id: Option<String> = r.try_get(14).map_err(column)?;
    let part_size: Option<i64> = r.try_get(15).map_err(column)?;
    Ok(ObjectRow {
        bucket_id: BucketId::parse(&text(1)?).map_err(|_| corrupt("bucket_id"))?,
        organization_id: r.try_get(2).map_err(column)?,
        owner_id: text(3)?,
        segment: text(4)?,
        key: ObjectKey::parse(text(5)?).map_err(|_| corrupt("key"))?,
        path: ObjectPath::parse_stored(text(6)?).map_err(|_| corrupt("path"))?,
        // Rows written before strict parsing may hold a type browsers read two ways.
        content_type: ContentType::from_stored(&text(7)?),
        size: u64::try_from(size).map_err(|_| corrupt("size"))?,
        etag: r.try_get(9).map_err(column)?,
        status: ObjectStatus::parse(&text(10)?).map_err(|_| corrupt("status"))?,
        created_at: instant(r.try_get(11).map_err(column)?).map_err(|()| corrupt("created_at"))?,
        updated_at: instant(r.try_get(12).map_err(column)?).map_err(|()| corrupt("updated_at"))?,
        deleted_at: deleted_at
            .map(instant)
            .transpose()
            .map_err(|()| corrupt("deleted_at"))?,
        multipart: match (upload_id, part_size) {
            (Some(upload_id), Some(n)) => Some(MultipartRef {
                upload_id,
                part_size: u64::try_from(n).map_err(|_| corrupt("multipart_part_size"))?,
            }),
            _ => None,
        },
        id: ObjectId::parse(&id).map_err(|_| corrupt("id"))?,
    })
}

fn rows_of(rows: &[Row]) -> Result<Vec<ObjectRow>, Error> {
    rows.iter().map(object_of).collect()
}

/// The listing query and its text arguments (the limit comes last, as BIGINT); fetches
/// one row more than `limit`.
fn list_sql(query: &ObjectQuery) -> (String, Vec<String>) {
    let mut sql = format!(
        "SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket_id = $1 AND segment = $2 \
         AND status = 'confirmed' AND deleted_at IS NULL"
    );
    let mut args = vec![query.bucket_id.as_str().to_owned(), query.segment.clone()];
    let mut push = |cond: &str, v: String| {
        args.push(v);
        let _ = write!(sql, " AND {cond} ${}", args.len());
    };
    // A range on `path`, so the (bucket_id, segment, path) index does the work.
    if let Some(prefix) = query.prefix.clone().filter(|p| !p.is_empty()) {
        if let Some(upper) = prefix_upper_bound(&prefix) {
            push("path <", upper);
        }
        push("path >=", prefix);
    }
    if let Some(after) = query.after.clone() {
        push("path >", after);
    }
    if let Some(owner) = query.owner_id.clone() {
        push("owner_id =", owner);
    }
    let _ = write!(sql, " ORDER BY path LIMIT ${}", args.len() + 1);
    (sql, args)
}

#[async_trait]
impl BucketStore for PostgresFilesDb {
    async fn insert_bucket(&self, b: &Bucket) -> Result<(), Error> {
        let v = bucket_values(b)?;
        let outcome = self
            .pool
            .execute(
                &format!(
                    "INSERT INTO buckets ({BUCKET_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                ),
                &[
                    &b.id.as_str(),
                    &b.name.as_str(),
                    &b.organization_id,
                    &b.read_scope.as_str(),
                    &v.write_scope,
                    &v.file_size_limit,
                    &v.allowed_mime_types,
                    &v.created_at,
                    &v.updated_at,
                ],
            )
            .await;
        match outcome {
            Ok(_) => Ok(()),
            Err(f) if f.is_unique_violation() => Err(Error::BucketExists),
            Err(f) => Err(f.into()),
        }
    }

    async fn find_bucket(&self, id: &BucketId) -> Result<Option<Bucket>, Error> {
        let rows = self
            .pool
            .query(
                &format!("SELECT {BUCKET_COLUMNS} FROM buckets WHERE id = $1"),
                &[&id.as_str()],
            )
            .await?;
        rows.first().map(bucket_of).transpose()
    }

    async fn find_bucket_by_name(
        &self,
        organization_id: Option<String>,
        name: &BucketName,
    ) -> Result<Option<Bucket>, Error> {
        self.buckets_by_name
            .get((organization_id, name.as_str().to_owned()))
            .await
    }

    async fn list_buckets(&self, organization_id: Option<String>) -> Result<Vec<Bucket>, Error> {
        // `organization_id IS NULL` sorts false first: the organization's bucket comes
        // before a project-wide one of the same name.
        let rows = self
            .pool
            .query(
                &format!(
                    "SELECT {BUCKET_COLUMNS} FROM buckets \
                     WHERE organization_id IS NULL OR organization_id = $1 \
                     ORDER BY name, organization_id IS NULL"
                ),
                &[&organization_id],
            )
            .await?;
        rows.iter().map(bucket_of).collect()
    }

    async fn update_bucket(&self, b: &Bucket) -> Result<(), Error> {
        let v = bucket_values(b)?;
        let changed = self
            .pool
            .execute(
                "UPDATE buckets SET read_scope = $2, write_scope = $3, file_size_limit = $4, \
                 allowed_mime_types = $5, updated_at = $6 WHERE id = $1",
                &[
                    &b.id.as_str(),
                    &b.read_scope.as_str(),
                    &v.write_scope,
                    &v.file_size_limit,
                    &v.allowed_mime_types,
                    &v.updated_at,
                ],
            )
            .await?;
        if changed == 0 {
            Err(Error::NotFound(Resource::Bucket))
        } else {
            Ok(())
        }
    }

    async fn delete_bucket(&self, id: &BucketId) -> Result<(), Error> {
        match self
            .pool
            .execute("DELETE FROM buckets WHERE id = $1", &[&id.as_str()])
            .await
        {
            Ok(_) => Ok(()),
            Err(f) if f.is_foreign_key_violation() => Err(Error::BucketNotEmpty),
            Err(f) => Err(f.into()),
        }
    }
}

#[async_trait]
impl ObjectRowStore for PostgresFilesDb {
    async fn insert_object(&self, r: &ObjectRow) -> Result<(), Error> {
        let size = stored_size("size", r.size)?;
        let created_at = nanos(r.created_at, "created_at")?;
        let updated_at = nanos(r.updated_at, "updated_at")?;
        let deleted_at = r.deleted_at.map(|t| nanos(t, "deleted_at")).transpose()?;
        let upload_id = r.multipart.as_ref().map(|m| m.upload_id.as_str());
        let part_size = r
            .multipart
            .as_ref()
            .map(|m| stored_size("partSize", m.part_size))
            .transpose()?;
        let outcome = self
            .pool
            .execute(
                &format!(
                    "INSERT INTO objects ({OBJECT_COLUMNS}) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
                ),
                &[
                    &r.id.as_str(),
                    &r.bucket_id.as_str(),
                    &r.organization_id,
                    &r.owner_id,
                    &r.segment,
                    &r.key.as_str(),
                    &r.path.as_str(),
                    &r.content_type.as_str(),
                    &size,
                    &r.etag,
                    &r.status.as_str(),
                    &created_at,
                    &updated_at,
                    &deleted_at,
                    &upload_id,
                    &part_size,
                ],
            )
            .await;
        match outcome {
            Ok(_) => Ok(()),
            Err(f) if f.is_unique_violation() => Err(Error::ObjectExists),
            Err(f) if f.is_foreign_key_violation() => Err(Error::NotFound(Resource::Bucket)),
            Err(f) => Err(f.into()),
        }
    }

    async fn find_object(&self, id: &ObjectId) -> Result<Option<ObjectRow>, Error> {
        let rows = self
            .pool
            .query(
                &format!("SELECT {OBJECT_COLUMNS} FROM objects WHERE id = $1"),
                &[&id.as_str()],
            )
            .await?;
        rows.first().map(object_of).transpose()
    }

    async fn find_object_by_key(&self, key: &ObjectKey) -> Result<Option<ObjectRow>, Error> {
        self.objects_by_key.get(key.as_str().to_owned()).await
    }

    fn reads_cost_a_round_trip(&self) -> bool {
        true
    }

    async fn find_objects_by_keys(&self, keys: &[ObjectKey]) -> Result<Vec<ObjectRow>, Error> {
        let keys: Vec<String> = keys.iter().map(|k| k.as_str().to_owned()).collect();
        let found = self.objects_by_key.get_many(keys).await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn confirm_object(
        &self,
        id: &ObjectId,
        c: &ObjectConfirmation,
    ) -> Result<ObjectRow, Error> {
        let size = stored_size("size", c.size)?;
        let at = nanos(c.at, "confirmed at")?;
        let rows = self
            .pool
            .query(
                &format!(
                    "UPDATE objects SET size = $2, etag = $3, content_type = $4, owner_id = $5, \
                     status = 'confirmed', updated_at = $6, multipart_upload_id = NULL, \
                     multipart_part_size = NULL \
                     WHERE id = $1 AND deleted_at IS NULL RETURNING {OBJECT_COLUMNS}"
                ),
                &[
                    &id.as_str(),
                    &size,
                    &c.etag,
                    &c.content_type.as_str(),
                    &c.owner_id,
                    &at,
                ],
            )
            .await?;
        rows.first()
            .map_or(Err(Error::NotFound(Resource::Object)), object_of)
    }

    async fn mark_object_deleted(&self, id: &ObjectId, at: OffsetDateTime) -> Result<(), Error> {
        let at = nanos(at, "deleted_at")?;
        self.pool
            .execute(
                "UPDATE objects SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL",
                &[&id.as_str(), &at],
            )
            .await?;
        Ok(())
    }

    async fn purge_object(&self, id: &ObjectId) -> Result<(), Error> {
        self.pool
            .execute("DELETE FROM objects WHERE id = $1", &[&id.as_str()])
            .await?;
        Ok(())
    }

    async fn list_objects(&self, query: &ObjectQuery) -> Result<ObjectRowPage, Error> {
        if query.limit == 0 {
            return Ok(ObjectRowPage::default());
        }
        let (sql, args) = list_sql(query);
        let fetch = i64::from(query.limit) + 1;
        let mut params: Vec<&(dyn ToSql + Sync)> =
            args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
        params.push(&fetch);
        let rows = self.pool.query(&sql, &params).await?;
        let limit = query.limit as usize;
        let more = rows.len() > limit;
        let items = rows_of(&rows[..rows.len().min(limit)])?;
        let next = if more {
            items.last().map(|r| r.path.as_str().to_owned())
        } else {
            None
        };
        Ok(ObjectRowPage { items, next })
    }

    async fn objects_in_bucket(
        &self,
        bucket_id: &BucketId,
        limit: u32,
    ) -> Result<Vec<ObjectRow>, Error> {
        let rows = self
            .pool
            .query(
                &format!(
                    "SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket_id = $1 \
                     ORDER BY segment, path LIMIT $2"
                ),
                &[&bucket_id.as_str(), &i64::from(limit)],
            )
            .await?;
        rows_of(&rows)
    }

    async fn objects_by_key(
        &self,
        after: Option<ObjectKey>,
        limit: u32,
    ) -> Result<Vec<ObjectRow>, Error> {
        let limit = i64::from(limit);
        let rows = match after {
            Some(after) => {
                self.pool
                    .query(
                        &format!(
                            "SELECT {OBJECT_COLUMNS} FROM objects WHERE key > $1 \
                             ORDER BY key LIMIT $2"
                        ),
                        &[&after.as_str(), &limit],
                    )
                    .await?
            }
            None => {
                self.pool
                    .query(
                        &format!("SELECT {OBJECT_COLUMNS} FROM objects ORDER BY key LIMIT $1"),
                        &[&limit],
                    )
                    .await?
            }
        };
        rows_of(&rows)
    }

    async fn pending_objects(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<ObjectRow>, Error> {
        // Every stored instant fits i64 nanoseconds: past the end means all, before the
        // start means none.
        let before = match i64::try_from(before.unix_timestamp_nanos()) {
            Ok(n) => n,
            Err(_) if before.unix_timestamp() > 0 => i64::MAX,
            Err(_) => return Ok(Vec::new()),
        };
        let rows = self
            .pool
            .query(
                &format!(
                    "SELECT {OBJECT_COLUMNS} FROM objects \
                     WHERE status = 'pending' AND created_at < $1 \
                     ORDER BY created_at, id LIMIT $2"
                ),
                &[&before, &i64::from(limit)],
            )
            .await?;
        rows_of(&rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_upper_bounds_are_tight() {
        assert_eq!(prefix_upper_bound("a/"), Some("a0".to_owned()));
        assert_eq!(prefix_upper_bound("a\u{10FFFF}"), Some("b".to_owned()));
        assert_eq!(prefix_upper_bound("\u{D7FF}"), Some("\u{E000}".to_owned()));
        assert_eq!(prefix_upper_bound("\u{10FFFF}\u{10FFFF}"), None);
    }

    #[test]
    fn the_listing_binds_every_condition_and_the_limit_last() {
        let (sql, args) = list_sql(&ObjectQuery {
            bucket_id: BucketId::generate(),
            segment: "org_1".into(),
            prefix: Some("a/".into()),
            owner_id: Some("u1".into()),
            after: Some("a/b".into()),
            limit: 10,
        });
        assert_eq!(args.len(), 6, "{args:?}");
        assert!(
            sql.contains("path < $3 AND path >= $4 AND path > $5 AND owner_id = $6"),
            "{sql}"
        );
        assert!(sql.ends_with("ORDER BY path LIMIT $7"), "{sql}");
    }
}
