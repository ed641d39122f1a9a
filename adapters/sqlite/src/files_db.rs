//! FILES_DB in SQLite: the managed-mode `buckets` and `objects` tables, in a database file
//! of their own with their own migration set (`migrations/files/`).

use crate::migrations::{self, Migration, MigrationStatus};
use crate::pool;
use crate::pool::Pool;
use async_trait::async_trait;
use deadpool_sqlite::rusqlite::types::Value;
use deadpool_sqlite::rusqlite::{
    self, Connection, ErrorCode, OptionalExtension, ffi, params, params_from_iter,
};
use filegate_core::Error;
use filegate_core::domain::{BucketName, ByteSize, ContentType, ObjectKey};
use filegate_core::error::Resource;
use filegate_core::managed::{
    Bucket, BucketId, BucketStore, MimePattern, ObjectConfirmation, ObjectId, ObjectPath,
    ObjectQuery, ObjectRow, ObjectRowPage, ObjectRowStore, ObjectStatus, ReadScope, WriteScope,
};
use filegate_core::ports::MultipartRef;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::LazyLock;
use time::OffsetDateTime;

/// FILES_DB's migrations. Append only; never edit a shipped one.
pub(crate) static FILES_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "files",
        sql: include_str!("../migrations/files/0001_files.sql"),
    },
    Migration {
        version: 2,
        name: "objects_multipart",
        sql: include_str!("../migrations/files/0002_objects_multipart.sql"),
    },
];

/// Applies FILES_DB's pending migrations to the database at `path` (created if missing).
///
/// # Errors
/// As [`migrate`](crate::migrate); also [`Error::Internal`] when `path` is a database of
/// another schema (e.g. the media database).
pub async fn migrate_files(path: &Path) -> Result<Vec<MigrationStatus>, Error> {
    migrations::migrate_set(path, FILES_MIGRATIONS).await
}

/// FILES_DB's migrations with their `applied_at`; read-only, like
/// [`migration_status`](crate::migration_status).
///
/// # Errors
/// As [`migrate_files`].
pub async fn files_migration_status(path: &Path) -> Result<Vec<MigrationStatus>, Error> {
    migrations::migration_status_set(path, FILES_MIGRATIONS).await
}

/// FILES_DB over a SQLite file: implements [`BucketStore`] and [`ObjectRowStore`].
/// Cheap to clone (shares the pool). Needs a file path, not `:memory:`.
#[derive(Clone, Debug)]
pub struct SqliteFilesDb {
    pool: Pool,
    /// Keeps this database's checkpoints running while the store lives.
    _checkpoints: pool::Checkpointer,
}

impl SqliteFilesDb {
    /// Opens the database at `path`, creating parent directories and the file if needed,
    /// and applies pending migrations.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the file cannot be created or opened or is busy;
    /// [`Error::Internal`] when a migration fails, the database was migrated by a newer
    /// binary, or it is another schema's database.
    pub async fn open(path: &Path) -> Result<Self, Error> {
        let pool = pool::open(path, pool::Ownership::Owned).await?;
        migrations::apply_pending(&pool, FILES_MIGRATIONS).await?;
        let path = path.to_owned();
        let checkpoints = tokio::task::spawn_blocking(move || {
            pool::Checkpointer::start(&path, pool::Restart::Here)
        })
        .await
        .map_err(Error::internal)??;
        Ok(Self {
            pool,
            _checkpoints: checkpoints,
        })
    }

    /// Round-trips a trivial query, for readiness checks.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when no connection can be had or the database is busy.
    pub async fn ping(&self) -> Result<(), Error> {
        self.interact(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)))
            .await
            .map(drop)
    }

    /// The distinct names of every bucket, of every organization: the key spaces
    /// (`<owner>/<name>/…`) FILES_DB covers, for reconcile.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    pub async fn bucket_names(&self) -> Result<Vec<String>, Error> {
        self.interact(|c| {
            c.prepare_cached("SELECT DISTINCT name FROM buckets ORDER BY name")?
                .query_map([], |r| r.get::<_, String>(0))?
                .collect()
        })
        .await
    }

    async fn interact<T, F>(&self, f: F) -> Result<T, Error>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        pool::interact(&self.pool, f).await
    }

    /// A read of a few rows by an index, on this thread ([`pool::read`]).
    async fn read<T, F>(&self, f: F) -> Result<T, Error>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<T>,
    {
        pool::read(&self.pool, f).await
    }
}

/// Constraint failures the ports map to their own variants; caught inside the closure
/// because `pool::interact` maps every other error generically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Unique,
    ForeignKey,
}

fn refusal(e: &rusqlite::Error) -> Option<Refusal> {
    let rusqlite::Error::SqliteFailure(f, _) = e else {
        return None;
    };
    match (f.code, f.extended_code) {
        (
            ErrorCode::ConstraintViolation,
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY,
        ) => Some(Refusal::Unique),
        (ErrorCode::ConstraintViolation, ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => {
            Some(Refusal::ForeignKey)
        }
        _ => None,
    }
}

/// `Ok(Err(refusal))` for the constraint failures above, `Err` for anything else.
fn catching<T>(r: rusqlite::Result<T>) -> rusqlite::Result<Result<T, Refusal>> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(e) => refusal(&e).map_or(Err(e), |r| Ok(Err(r))),
    }
}

/// The clock sets instants: out of range is our bug, not the client's.
fn nanos(t: OffsetDateTime) -> Result<i64, Error> {
    i64::try_from(t.unix_timestamp_nanos()).map_err(|_| {
        Error::internal(format!(
            "instant {t} is outside the storable range (1677-2262)"
        ))
    })
}

fn stored_size(field: &str, n: u64) -> Result<i64, Error> {
    i64::try_from(n)
        .map_err(|_| Error::invalid(field, format!("must be at most {} bytes", i64::MAX)))
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

const BUCKET_COLUMNS: &str = "id, name, organization_id, read_scope, write_scope, \
                              file_size_limit, allowed_mime_types, created_at, updated_at";

struct RawBucket {
    id: String,
    name: String,
    organization_id: Option<String>,
    read_scope: String,
    write_scope: String,
    file_size_limit: Option<i64>,
    allowed_mime_types: String,
    created_at: i64,
    updated_at: i64,
}

fn at(n: i64) -> Result<OffsetDateTime, ()> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(n)).map_err(drop)
}

impl RawBucket {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            name: r.get(1)?,
            organization_id: r.get(2)?,
            read_scope: r.get(3)?,
            write_scope: r.get(4)?,
            file_size_limit: r.get(5)?,
            allowed_mime_types: r.get(6)?,
            created_at: r.get(7)?,
            updated_at: r.get(8)?,
        })
    }

    /// Stored rows were valid when written, so a failure here means corrupt data.
    fn into_bucket(self) -> Result<Bucket, Error> {
        let id = self.id;
        let corrupt =
            |field: &str| Error::internal(format!("bucket {id:?} has an invalid {field}"));
        Ok(Bucket {
            name: BucketName::parse(self.name).map_err(|_| corrupt("name"))?,
            organization_id: self.organization_id,
            read_scope: ReadScope::parse(&self.read_scope).map_err(|_| corrupt("read_scope"))?,
            write_scope: WriteScope::parse(&self.write_scope)
                .map_err(|_| corrupt("write_scope"))?,
            file_size_limit: self
                .file_size_limit
                .map(|n| u64::try_from(n).map(ByteSize))
                .transpose()
                .map_err(|_| corrupt("file_size_limit"))?,
            allowed_mime_types: self
                .allowed_mime_types
                .split(',')
                .filter(|m| !m.is_empty())
                .map(MimePattern::parse)
                .collect::<Result<_, _>>()
                .map_err(|_| corrupt("allowed_mime_types"))?,
            created_at: at(self.created_at).map_err(|()| corrupt("created_at"))?,
            updated_at: at(self.updated_at).map_err(|()| corrupt("updated_at"))?,
            id: BucketId::parse(&id).map_err(|_| corrupt("id"))?,
        })
    }
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
        created_at: nanos(b.created_at)?,
        updated_at: nanos(b.updated_at)?,
    })
}

const OBJECT_COLUMNS: &str = "id, bucket_id, organization_id, owner_id, segment, key, path, \
                              content_type, size, etag, status, created_at, updated_at, deleted_at, \
                              multipart_upload_id, multipart_part_size";
// The lookup of confirms and reads by path, formatted once.
static OBJECT_BY_KEY: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {OBJECT_COLUMNS} FROM objects WHERE key = ?1"));

struct RawObject {
    id: String,
    bucket_id: String,
    organization_id: Option<String>,
    owner_id: String,
    segment: String,
    key: String,
    path: String,
    content_type: String,
    size: i64,
    etag: Option<String>,
    status: String,
    created_at: i64,
    updated_at: i64,
    deleted_at: Option<i64>,
    multipart_upload_id: Option<String>,
    multipart_part_size: Option<i64>,
}

impl RawObject {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            bucket_id: r.get(1)?,
            organization_id: r.get(2)?,
            owner_id: r.get(3)?,
            segment: r.get(4)?,
            key: r.get(5)?,
            path: r.get(6)?,
            content_type: r.get(7)?,
            size: r.get(8)?,
            etag: r.get(9)?,
            status: r.get(10)?,
            created_at: r.get(11)?,
            updated_at: r.get(12)?,
            deleted_at: r.get(13)?,
            multipart_upload_id: r.get(14)?,
            multipart_part_size: r.get(15)?,
        })
    }

    fn into_row(self) -> Result<ObjectRow, Error> {
        let id = self.id;
        let corrupt =
            |field: &str| Error::internal(format!("object {id:?} has an invalid {field}"));
        Ok(ObjectRow {
            bucket_id: BucketId::parse(&self.bucket_id).map_err(|_| corrupt("bucket_id"))?,
            organization_id: self.organization_id,
            owner_id: self.owner_id,
            segment: self.segment,
            key: ObjectKey::parse(self.key).map_err(|_| corrupt("key"))?,
            path: ObjectPath::parse_stored(self.path).map_err(|_| corrupt("path"))?,
            // Rows written before strict parsing may hold a type browsers read two ways.
            content_type: ContentType::from_stored(&self.content_type),
            size: u64::try_from(self.size).map_err(|_| corrupt("size"))?,
            etag: self.etag,
            status: ObjectStatus::parse(&self.status).map_err(|_| corrupt("status"))?,
            created_at: at(self.created_at).map_err(|()| corrupt("created_at"))?,
            updated_at: at(self.updated_at).map_err(|()| corrupt("updated_at"))?,
            deleted_at: self
                .deleted_at
                .map(at)
                .transpose()
                .map_err(|()| corrupt("deleted_at"))?,
            multipart: match (self.multipart_upload_id, self.multipart_part_size) {
                (Some(upload_id), Some(n)) => Some(MultipartRef {
                    upload_id,
                    part_size: u64::try_from(n).map_err(|_| corrupt("multipart_part_size"))?,
                }),
                _ => None,
            },
            id: ObjectId::parse(&id).map_err(|_| corrupt("id"))?,
        })
    }
}

fn rows_of(raws: Vec<RawObject>) -> Result<Vec<ObjectRow>, Error> {
    raws.into_iter().map(RawObject::into_row).collect()
}

fn limit_of(limit: u32) -> i64 {
    i64::from(limit)
}

/// The listing query and its arguments; fetches one row more than `limit`.
fn list_sql(query: &ObjectQuery) -> (String, Vec<Value>) {
    let mut sql = format!(
        "SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket_id = ?1 AND segment = ?2 \
         AND status = 'confirmed' AND deleted_at IS NULL"
    );
    let mut args: Vec<Value> = vec![
        Value::Text(query.bucket_id.as_str().to_owned()),
        Value::Text(query.segment.clone()),
    ];
    let mut push = |cond: &str, v: String| {
        args.push(Value::Text(v));
        let _ = write!(sql, " AND {cond} ?{}", args.len());
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
    args.push(Value::Integer(limit_of(query.limit) + 1));
    let _ = write!(sql, " ORDER BY path LIMIT +?{}", args.len());
    (sql, args)
}

#[async_trait]
impl BucketStore for SqliteFilesDb {
    async fn insert_bucket(&self, bucket: &Bucket) -> Result<(), Error> {
        let v = bucket_values(bucket)?;
        let b = bucket.clone();
        let outcome = self
            .interact(move |c| {
                catching(
                    c.prepare_cached(&format!(
                        "INSERT INTO buckets ({BUCKET_COLUMNS}) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                    ))?
                    .execute(params![
                        b.id.as_str(),
                        b.name.as_str(),
                        b.organization_id,
                        b.read_scope.as_str(),
                        v.write_scope,
                        v.file_size_limit,
                        v.allowed_mime_types,
                        v.created_at,
                        v.updated_at,
                    ]),
                )
            })
            .await?;
        match outcome {
            Ok(_) => Ok(()),
            Err(Refusal::Unique) => Err(Error::BucketExists),
            Err(Refusal::ForeignKey) => Err(Error::internal("buckets has no foreign key")),
        }
    }

    async fn find_bucket(&self, id: &BucketId) -> Result<Option<Bucket>, Error> {
        let id = id.as_str().to_owned();
        let raw = self
            .read(move |c| {
                c.prepare_cached(&format!(
                    "SELECT {BUCKET_COLUMNS} FROM buckets WHERE id = ?1"
                ))?
                .query_row(params![id], RawBucket::read)
                .optional()
            })
            .await?;
        raw.map(RawBucket::into_bucket).transpose()
    }

    async fn find_bucket_by_name(
        &self,
        organization_id: Option<String>,
        name: &BucketName,
    ) -> Result<Option<Bucket>, Error> {
        let name = name.as_str().to_owned();
        let raw = self
            .read(move |c| match organization_id {
                Some(org) => c
                    .prepare_cached(&format!(
                        "SELECT {BUCKET_COLUMNS} FROM buckets \
                         WHERE organization_id = ?1 AND name = ?2"
                    ))?
                    .query_row(params![org, name], RawBucket::read)
                    .optional(),
                None => c
                    .prepare_cached(&format!(
                        "SELECT {BUCKET_COLUMNS} FROM buckets \
                         WHERE organization_id IS NULL AND name = ?1"
                    ))?
                    .query_row(params![name], RawBucket::read)
                    .optional(),
            })
            .await?;
        raw.map(RawBucket::into_bucket).transpose()
    }

    async fn list_buckets(&self, organization_id: Option<String>) -> Result<Vec<Bucket>, Error> {
        let raws = self
            .interact(move |c| {
                // `organization_id IS NULL` sorts false (0) first: the organization's bucket
                // comes before a project-wide one of the same name.
                c.prepare_cached(&format!(
                    "SELECT {BUCKET_COLUMNS} FROM buckets \
                     WHERE organization_id IS NULL OR organization_id = ?1 \
                     ORDER BY name, organization_id IS NULL"
                ))?
                .query_map(params![organization_id], RawBucket::read)?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        raws.into_iter().map(RawBucket::into_bucket).collect()
    }

    async fn update_bucket(&self, bucket: &Bucket) -> Result<(), Error> {
        let v = bucket_values(bucket)?;
        let b = bucket.clone();
        let changed = self
            .interact(move |c| {
                c.prepare_cached(
                    "UPDATE buckets SET read_scope = ?2, write_scope = ?3, file_size_limit = ?4, \
                     allowed_mime_types = ?5, updated_at = ?6 WHERE id = ?1",
                )?
                .execute(params![
                    b.id.as_str(),
                    b.read_scope.as_str(),
                    v.write_scope,
                    v.file_size_limit,
                    v.allowed_mime_types,
                    v.updated_at,
                ])
            })
            .await?;
        if changed == 0 {
            Err(Error::NotFound(Resource::Bucket))
        } else {
            Ok(())
        }
    }

    async fn delete_bucket(&self, id: &BucketId) -> Result<(), Error> {
        let id = id.as_str().to_owned();
        let outcome = self
            .interact(move |c| {
                catching(
                    c.prepare_cached("DELETE FROM buckets WHERE id = ?1")?
                        .execute(params![id]),
                )
            })
            .await?;
        match outcome {
            Ok(_) => Ok(()),
            Err(Refusal::ForeignKey) => Err(Error::BucketNotEmpty),
            Err(Refusal::Unique) => Err(Error::internal("a delete cannot break uniqueness")),
        }
    }
}

#[async_trait]
impl ObjectRowStore for SqliteFilesDb {
    async fn insert_object(&self, row: &ObjectRow) -> Result<(), Error> {
        let size = stored_size("size", row.size)?;
        let created_at = nanos(row.created_at)?;
        let updated_at = nanos(row.updated_at)?;
        let deleted_at = row.deleted_at.map(nanos).transpose()?;
        let part_size = row
            .multipart
            .as_ref()
            .map(|m| stored_size("partSize", m.part_size))
            .transpose()?;
        let r = row.clone();
        let outcome = self
            .interact(move |c| {
                catching(
                    c.prepare_cached(&format!(
                        "INSERT INTO objects ({OBJECT_COLUMNS}) VALUES \
                         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
                    ))?
                    .execute(params![
                        r.id.as_str(),
                        r.bucket_id.as_str(),
                        r.organization_id,
                        r.owner_id,
                        r.segment,
                        r.key.as_str(),
                        r.path.as_str(),
                        r.content_type.as_str(),
                        size,
                        r.etag,
                        r.status.as_str(),
                        created_at,
                        updated_at,
                        deleted_at,
                        r.multipart.as_ref().map(|m| m.upload_id.as_str()),
                        part_size,
                    ]),
                )
            })
            .await?;
        match outcome {
            Ok(_) => Ok(()),
            Err(Refusal::Unique) => Err(Error::ObjectExists),
            Err(Refusal::ForeignKey) => Err(Error::NotFound(Resource::Bucket)),
        }
    }

    async fn find_object(&self, id: &ObjectId) -> Result<Option<ObjectRow>, Error> {
        let id = id.as_str().to_owned();
        let raw = self
            .read(move |c| {
                c.prepare_cached(&format!(
                    "SELECT {OBJECT_COLUMNS} FROM objects WHERE id = ?1"
                ))?
                .query_row(params![id], RawObject::read)
                .optional()
            })
            .await?;
        raw.map(RawObject::into_row).transpose()
    }

    async fn find_object_by_key(&self, key: &ObjectKey) -> Result<Option<ObjectRow>, Error> {
        let key = key.as_str().to_owned();
        let raw = self
            .read(move |c| {
                c.prepare_cached(&OBJECT_BY_KEY)?
                    .query_row(params![key], RawObject::read)
                    .optional()
            })
            .await?;
        raw.map(RawObject::into_row).transpose()
    }

    async fn confirm_object(
        &self,
        id: &ObjectId,
        confirmation: &ObjectConfirmation,
    ) -> Result<ObjectRow, Error> {
        let size = stored_size("size", confirmation.size)?;
        let at = nanos(confirmation.at)?;
        let id = id.as_str().to_owned();
        let c2 = confirmation.clone();
        let raw = self
            .interact(move |c| {
                c.prepare_cached(&format!(
                    "UPDATE objects SET size = ?2, etag = ?3, content_type = ?4, owner_id = ?5, \
                     status = 'confirmed', updated_at = ?6, multipart_upload_id = NULL, \
                     multipart_part_size = NULL \
                     WHERE id = ?1 AND deleted_at IS NULL RETURNING {OBJECT_COLUMNS}"
                ))?
                .query_row(
                    params![id, size, c2.etag, c2.content_type.as_str(), c2.owner_id, at],
                    RawObject::read,
                )
                .optional()
            })
            .await?;
        raw.ok_or(Error::NotFound(Resource::Object))?.into_row()
    }

    async fn mark_object_deleted(&self, id: &ObjectId, at: OffsetDateTime) -> Result<(), Error> {
        let at = nanos(at)?;
        let id = id.as_str().to_owned();
        self.interact(move |c| {
            c.prepare_cached(
                "UPDATE objects SET deleted_at = ?2 WHERE id = ?1 AND deleted_at IS NULL",
            )?
            .execute(params![id, at])
        })
        .await
        .map(drop)
    }

    async fn purge_object(&self, id: &ObjectId) -> Result<(), Error> {
        let id = id.as_str().to_owned();
        self.interact(move |c| {
            c.prepare_cached("DELETE FROM objects WHERE id = ?1")?
                .execute(params![id])
        })
        .await
        .map(drop)
    }

    async fn list_objects(&self, query: &ObjectQuery) -> Result<ObjectRowPage, Error> {
        if query.limit == 0 {
            return Ok(ObjectRowPage::default());
        }
        let (sql, args) = list_sql(query);
        let raws = self
            .interact(move |c| {
                c.prepare_cached(&sql)?
                    .query_map(params_from_iter(args), RawObject::read)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        let limit = query.limit as usize;
        let more = raws.len() > limit;
        let items = rows_of(raws.into_iter().take(limit).collect())?;
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
        let id = bucket_id.as_str().to_owned();
        let raws = self
            .interact(move |c| {
                c.prepare_cached(&format!(
                    "SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket_id = ?1 \
                     ORDER BY segment, path LIMIT +?2"
                ))?
                .query_map(params![id, limit_of(limit)], RawObject::read)?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        rows_of(raws)
    }

    async fn objects_by_key(
        &self,
        after: Option<ObjectKey>,
        limit: u32,
    ) -> Result<Vec<ObjectRow>, Error> {
        let raws = self
            .interact(move |c| match after {
                Some(after) => c
                    .prepare_cached(&format!(
                        "SELECT {OBJECT_COLUMNS} FROM objects WHERE key > ?1 \
                             ORDER BY key LIMIT +?2"
                    ))?
                    .query_map(params![after.as_str(), limit_of(limit)], RawObject::read)?
                    .collect::<rusqlite::Result<Vec<_>>>(),
                None => c
                    .prepare_cached(&format!(
                        "SELECT {OBJECT_COLUMNS} FROM objects ORDER BY key LIMIT +?1"
                    ))?
                    .query_map(params![limit_of(limit)], RawObject::read)?
                    .collect::<rusqlite::Result<Vec<_>>>(),
            })
            .await?;
        rows_of(raws)
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
        let raws = self
            .interact(move |c| {
                c.prepare_cached(&format!(
                    "SELECT {OBJECT_COLUMNS} FROM objects \
                     WHERE status = 'pending' AND created_at < ?1 \
                     ORDER BY created_at, id LIMIT +?2"
                ))?
                .query_map(params![before, limit_of(limit)], RawObject::read)?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        rows_of(raws)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqliteMediaStore;
    use filegate_testkit::files_db::files_db_contract;
    use std::path::PathBuf;
    use tempfile::TempDir;

    fn temp_db() -> (TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/files.db");
        (dir, path)
    }

    fn raw(path: &Path) -> Connection {
        Connection::open(path).unwrap()
    }

    fn internal_message(e: &Error) -> String {
        match e {
            Error::Internal { source } => source.to_string(),
            other => panic!("expected Error::Internal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn sqlite_files_db_passes_the_contract() {
        let (_dir, path) = temp_db();
        let db = SqliteFilesDb::open(&path).await.unwrap();
        files_db_contract(&db).await;
        // Twice on one database: the suite must not depend on an empty store.
        files_db_contract(&db).await;
    }

    #[tokio::test]
    async fn open_creates_the_file_and_migrations_are_idempotent() {
        let (_dir, path) = temp_db();
        let before = files_migration_status(&path).await.unwrap();
        assert!(before.iter().all(|s| s.applied_at.is_none()));
        assert!(!path.exists(), "status must not create the database");

        let db = SqliteFilesDb::open(&path).await.unwrap();
        db.ping().await.unwrap();
        assert!(migrate_files(&path).await.unwrap().is_empty());
        drop(SqliteFilesDb::open(&path).await.unwrap());
        let after = files_migration_status(&path).await.unwrap();
        assert_eq!(
            after
                .iter()
                .map(|s| (s.version, s.name))
                .collect::<Vec<_>>(),
            [(1, "files"), (2, "objects_multipart")]
        );
        assert!(after.iter().all(|s| s.applied_at.is_some()));
        let count: i64 = raw(&path)
            .query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 2);
    }

    #[tokio::test]
    async fn migrate_files_applies_everything_once_on_a_fresh_file() {
        let (_dir, path) = temp_db();
        let applied = migrate_files(&path).await.unwrap();
        assert_eq!(applied.len(), FILES_MIGRATIONS.len());
        assert!(migrate_files(&path).await.unwrap().is_empty());
        SqliteFilesDb::open(&path)
            .await
            .unwrap()
            .ping()
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_media_and_files_databases_refuse_each_other() {
        let (dir, files) = temp_db();
        SqliteFilesDb::open(&files).await.unwrap();
        let err = SqliteMediaStore::open(&files).await.unwrap_err();
        assert!(
            internal_message(&err).contains("right database file"),
            "{err:?}"
        );

        let media = dir.path().join("media.db");
        SqliteMediaStore::open(&media).await.unwrap();
        let err = SqliteFilesDb::open(&media).await.unwrap_err();
        assert!(
            internal_message(&err).contains("right database file"),
            "{err:?}"
        );
        assert!(files_migration_status(&media).await.is_err());
    }

    fn plan(path: &Path, sql: &str, args: Vec<Value>) -> String {
        let rows: Vec<String> = raw(path)
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(params_from_iter(args), |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.join("\n")
    }

    #[tokio::test]
    async fn listing_is_not_prepared_again_per_call() {
        let (_dir, path) = temp_db();
        SqliteFilesDb::open(&path).await.unwrap();
        let query = |limit, after: Option<&str>| ObjectQuery {
            bucket_id: BucketId::generate(),
            segment: "org_1".into(),
            prefix: Some("a/".into()),
            owner_id: None,
            after: after.map(str::to_owned),
            limit,
        };
        let (sql, first) = list_sql(&query(10, Some("a/b")));
        let (same, second) = list_sql(&query(200, Some("a/c")));
        assert_eq!(sql, same);
        let again = crate::tests::prepared_again(&path, &sql, vec![first, second]);
        assert_eq!(again, 0, "{sql}");
    }

    #[tokio::test]
    async fn listing_is_an_index_range_without_a_sort() {
        let (_dir, path) = temp_db();
        SqliteFilesDb::open(&path).await.unwrap();
        for (prefix, after, owner) in [
            (None, None, None),
            (Some("a/"), Some("a/b"), None),
            (Some("x"), None, Some("u1")),
        ] {
            let (sql, args) = list_sql(&ObjectQuery {
                bucket_id: BucketId::generate(),
                segment: "org_1".into(),
                prefix: prefix.map(str::to_owned),
                owner_id: owner.map(str::to_owned),
                after: after.map(str::to_owned),
                limit: 10,
            });
            let p = plan(&path, &sql, args);
            assert!(p.contains("objects_bucket_segment_path"), "{p}");
            assert!(!p.contains("TEMP B-TREE"), "listing must not sort: {p}");
            if prefix.is_some() {
                // The prefix is a range on the index, not a filter on every row.
                assert!(p.contains("path>? AND path<?"), "{p}");
            }
        }
    }

    #[tokio::test]
    async fn reconcile_and_lookup_queries_use_their_indexes() {
        let (_dir, path) = temp_db();
        SqliteFilesDb::open(&path).await.unwrap();
        let text = |s: &str| Value::Text(s.to_owned());
        for (sql, args, index) in [
            (
                format!(
                    "SELECT {OBJECT_COLUMNS} FROM objects WHERE key > ?1 ORDER BY key LIMIT +?2"
                ),
                vec![text("k"), Value::Integer(10)],
                "objects_key",
            ),
            (
                format!(
                    "SELECT {OBJECT_COLUMNS} FROM objects WHERE status = 'pending' \
                     AND created_at < ?1 ORDER BY created_at, id LIMIT +?2"
                ),
                vec![Value::Integer(5), Value::Integer(10)],
                "objects_pending_created",
            ),
            (
                format!(
                    "SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket_id = ?1 \
                     ORDER BY segment, path LIMIT +?2"
                ),
                vec![text("b"), Value::Integer(10)],
                "objects_bucket_segment_path",
            ),
            (
                format!(
                    "SELECT {BUCKET_COLUMNS} FROM buckets \
                     WHERE organization_id = ?1 AND name = ?2"
                ),
                vec![text("o"), text("n")],
                "buckets_org_name",
            ),
            (
                format!(
                    "SELECT {BUCKET_COLUMNS} FROM buckets \
                     WHERE organization_id IS NULL AND name = ?1"
                ),
                vec![text("n")],
                "buckets_project_name",
            ),
        ] {
            let p = plan(&path, &sql, args);
            assert!(p.contains(index), "expected {index}: {p}");
            assert!(!p.contains("TEMP B-TREE"), "{index}: {p}");
        }
    }

    #[test]
    fn prefix_upper_bounds_are_tight() {
        assert_eq!(prefix_upper_bound("a/"), Some("a0".to_owned()));
        assert_eq!(prefix_upper_bound("a\u{10FFFF}"), Some("b".to_owned()));
        assert_eq!(prefix_upper_bound("\u{D7FF}"), Some("\u{E000}".to_owned()));
        assert_eq!(prefix_upper_bound("\u{10FFFF}\u{10FFFF}"), None);
        for p in ["a/", "é", "x\u{10FFFF}"] {
            let upper = prefix_upper_bound(p).unwrap();
            for s in [
                p.to_owned(),
                format!("{p}\u{10FFFF}\u{10FFFF}"),
                format!("{p}zz"),
            ] {
                assert!(s.as_str() >= p && s < upper, "{s:?} in [{p:?}, {upper:?})");
            }
        }
    }

    #[tokio::test]
    async fn corrupt_rows_are_internal_errors() {
        let (_dir, path) = temp_db();
        let db = SqliteFilesDb::open(&path).await.unwrap();
        raw(&path)
            .execute(
                "INSERT INTO buckets VALUES ('bkt_bad', 'Not A Name', NULL, 'public', 'org', \
                 NULL, '', 1, 1)",
                [],
            )
            .unwrap();
        let err = db.list_buckets(None).await.unwrap_err();
        assert!(internal_message(&err).contains("invalid name"), "{err:?}");
    }
}
