//! PostgreSQL adapter of filegate's metadata ports, so several filegate nodes can share
//! one database.
//!
//! - [`PgPool`] / [`PgSettings`]: the connection pool (URL, size, statement timeout; TLS
//!   with rustls as libpq's `sslmode` says).
//! - [`PostgresMediaStore`]: the media table ([`MediaStore`]).
//! - [`PostgresAuditLog`]: the audit table, sharing the media store's pool.
//! - [`PostgresFilesDb`]: FILES_DB (managed mode: [`BucketStore`](filegate_core::managed::BucketStore)
//!   and [`ObjectRowStore`](filegate_core::managed::ObjectRowStore)); its own tables, in the
//!   same database or another.
//! - [`copy`]: raw rows written and read back by key (`filegate-admin copy-metadata`).
//! - [`migrate`] / [`migration_status`] and their FILES_DB twins: the versioned schema
//!   shipped in `migrations/`, applied under an advisory lock.
//!
//! The schema mirrors the SQLite adapter's so both behave alike: instants are BIGINT unix
//! nanoseconds (UTC; 1677 to 2262), and ids, keys, names and paths are `COLLATE "C"`, so
//! listings, cursors and reconcile's merge order are byte order, as in SQLite.

mod audit;
mod batch;
pub mod copy;
mod error;
mod files_db;
mod group_commit;
mod migrations;
mod pool;
#[cfg(feature = "testing")]
pub mod testing;
mod tls;

pub use audit::PostgresAuditLog;
pub use files_db::PostgresFilesDb;
pub use migrations::{
    MigrationStatus, files_migration_status, migrate, migrate_files, migration_status,
};
pub use pool::{CONNECT_TIMEOUT, PgPool, PgSettings, PgTarget, is_postgres_url};

use crate::batch::{Answer, Fetch, Lookups, answer_of, one_row_per_key};
use crate::error::column;
use async_trait::async_trait;
use filegate_core::Error;
use filegate_core::domain::{BucketName, ContentType, MediaId, ObjectKey};
use filegate_core::error::Resource;
use filegate_core::ports::{
    Media, MediaConfirmation, MediaCursor, MediaPage, MediaStatus, MediaStore, MultipartRef,
};
use std::sync::{Arc, LazyLock, Mutex};
use time::OffsetDateTime;
use tokio_postgres::Row;

/// The media table in Postgres. Cheap to clone (shares the pool).
#[derive(Clone, Debug)]
pub struct PostgresMediaStore {
    pool: PgPool,
    /// Inserts of concurrent sign-uploads share one statement (see [`group_commit`]).
    inserts: group_commit::GroupCommit,
    /// Lookups by id of concurrent requests share one statement (see [`batch`]).
    by_id: Lookups<String, Option<Media>>,
    /// So do first pages of listings.
    first_pages: Lookups<FirstPage, Vec<Media>>,
    /// And reads of the database's current snapshot, for [`MediaStore::change_token`].
    snapshots: Lookups<(), String>,
    /// The last snapshot seen and its number: the token moves when the snapshot does.
    seen: Arc<Mutex<(String, u64)>>,
}

/// A listing's first page: whose, which status, how many rows (one more than the page).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct FirstPage {
    organization_id: String,
    status: Option<&'static str>,
    fetch: i64,
}

impl PostgresMediaStore {
    /// Applies pending migrations of the media set, then serves from `pool`.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the server cannot be reached; [`Error::Internal`] when a
    /// migration fails or the database was migrated by a newer binary.
    pub async fn open(pool: PgPool) -> Result<Self, Error> {
        migrations::apply_pending(&pool, &migrations::MEDIA).await?;
        let inserts = group_commit::GroupCommit::start(pool.clone());
        let by_id = Lookups::start(find_many(pool.clone()));
        let first_pages = Lookups::start(first_pages(pool.clone()));
        let snapshots = Lookups::start(snapshots(pool.clone()));
        Ok(Self {
            pool,
            inserts,
            by_id,
            first_pages,
            snapshots,
            seen: Arc::new(Mutex::new((String::new(), 0))),
        })
    }

    /// The most distinct ids one lookup statement has held so far (tests check that
    /// concurrent lookups are batched).
    #[doc(hidden)]
    #[must_use]
    pub fn largest_lookup_batch(&self) -> usize {
        self.by_id.largest_batch()
    }

    /// The same for first pages of listings.
    #[doc(hidden)]
    #[must_use]
    pub fn largest_listing_batch(&self) -> usize {
        self.first_pages.largest_batch()
    }

    /// The most rows one insert statement has held so far (tests check that concurrent
    /// inserts are batched).
    #[doc(hidden)]
    #[must_use]
    pub fn largest_insert_batch(&self) -> usize {
        self.inserts.largest_batch()
    }

    /// The audit log in this database, sharing this store's pool.
    #[must_use]
    pub fn audit_log(&self) -> PostgresAuditLog {
        PostgresAuditLog::new(self.pool.clone())
    }

    /// The pool, for readiness checks and metrics.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

const COLUMNS: &str = "id, bucket, key, organization_id, uploader_id, filename, content_type, \
                       declared_size, created_at, status, size, etag, upload_expires_at, \
                       multipart_upload_id, multipart_part_size";
/// How many columns [`COLUMNS`] names.
const COLUMN_COUNT: usize = 15;

static FIND_MANY: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {COLUMNS} FROM media WHERE id = ANY($1::text[])"));
static FIRST_PAGES: LazyLock<String> = LazyLock::new(|| {
    // One branch per status shape, each on its own index; a NULL status runs only the
    // first (its one-time filter), a given one only the second.
    format!(
        "SELECT m.*, q.n FROM unnest($1::text[], $2::text[], $3::int8[]) \
         WITH ORDINALITY AS q(org, status, lim, n) \
         CROSS JOIN LATERAL ( \
           (SELECT {COLUMNS} FROM media WHERE q.status IS NULL AND organization_id = q.org \
            ORDER BY created_at DESC, id DESC LIMIT q.lim) \
           UNION ALL \
           (SELECT {COLUMNS} FROM media WHERE organization_id = q.org AND status = q.status \
            ORDER BY created_at DESC, id DESC LIMIT q.lim)) m \
         ORDER BY q.n, m.created_at DESC, m.id DESC"
    )
});

/// Media rows by id, many ids per statement.
fn find_many(pool: PgPool) -> Fetch<String, Option<Media>> {
    Arc::new(move |ids: Vec<String>| {
        let pool = pool.clone();
        Box::pin(async move {
            let rows = pool.query(&FIND_MANY, &[&ids]).await?;
            one_row_per_key(&ids, &rows, 0, media_of)
        })
    })
}

/// The database's current snapshot (`xmin:xmax:xip…`) for every caller of a batch. Two
/// reads give the same text only if no transaction of the whole cluster (any node, any
/// database) committed or aborted between them: a commit either leaves the in-progress
/// list or, if it began later, raises `xmax`. So equal snapshots mean equal data.
fn snapshots(pool: PgPool) -> Fetch<(), String> {
    Arc::new(move |callers: Vec<()>| {
        let pool = pool.clone();
        Box::pin(async move {
            let rows = pool
                .query("SELECT pg_current_snapshot()::text", &[])
                .await?;
            let snapshot: String = rows
                .first()
                .ok_or_else(|| Error::internal("pg_current_snapshot() returned no row"))?
                .try_get(0)
                .map_err(column)?;
            Ok(callers.iter().map(|()| Ok(snapshot.clone())).collect())
        })
    })
}

/// First pages of several listings in one statement: a `LATERAL` join runs each one's
/// own index scan, and the last column says whose page a row belongs to.
fn first_pages(pool: PgPool) -> Fetch<FirstPage, Vec<Media>> {
    Arc::new(move |pages: Vec<FirstPage>| {
        let pool = pool.clone();
        Box::pin(async move {
            let orgs: Vec<&str> = pages.iter().map(|p| p.organization_id.as_str()).collect();
            let statuses: Vec<Option<&str>> = pages.iter().map(|p| p.status).collect();
            let fetches: Vec<i64> = pages.iter().map(|p| p.fetch).collect();
            let rows = pool
                .query(&FIRST_PAGES, &[&orgs, &statuses, &fetches])
                .await?;
            let mut answers: Vec<Answer<Vec<Media>>> =
                pages.iter().map(|_| Ok(Vec::new())).collect();
            for r in &rows {
                let slot = answer_of(&mut answers, r, COLUMN_COUNT)?;
                if let Ok(items) = slot {
                    match media_of(r) {
                        Ok(m) => items.push(m),
                        Err(e) => *slot = Err(e),
                    }
                }
            }
            Ok(answers)
        })
    })
}

/// A row back into domain types. Stored rows were valid when written, so a failure here
/// means corrupt data.
fn media_of(r: &Row) -> Result<Media, Error> {
    let id: String = r.try_get(0).map_err(column)?;
    let corrupt = |field: &str| Error::internal(format!("media row {id:?} has an invalid {field}"));
    let instant = |n: i64, field: &str| {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(n)).map_err(|_| corrupt(field))
    };
    let bytes =
        |n: Option<i64>, field: &str| n.map(u64::try_from).transpose().map_err(|_| corrupt(field));
    let text = |i: usize| r.try_get::<_, String>(i).map_err(column);
    let status: String = text(9)?;
    let expires: Option<i64> = r.try_get(12).map_err(column)?;
    let upload_id: Option<String> = r.try_get(13).map_err(column)?;
    let part_size: Option<i64> = r.try_get(14).map_err(column)?;
    Ok(Media {
        bucket: BucketName::parse(text(1)?).map_err(|_| corrupt("bucket"))?,
        key: ObjectKey::parse(text(2)?).map_err(|_| corrupt("key"))?,
        organization_id: text(3)?,
        uploader_id: text(4)?,
        filename: text(5)?,
        // Rows written before strict parsing may hold a type browsers read two ways.
        content_type: ContentType::from_stored(&text(6)?),
        declared_size: bytes(r.try_get(7).map_err(column)?, "declared_size")?,
        created_at: instant(r.try_get(8).map_err(column)?, "created_at")?,
        status: MediaStatus::parse(&status).map_err(|_| corrupt("status"))?,
        size: bytes(r.try_get(10).map_err(column)?, "size")?,
        etag: r.try_get(11).map_err(column)?,
        upload_expires_at: expires
            .map(|n| instant(n, "upload_expires_at"))
            .transpose()?,
        multipart: match (upload_id, part_size) {
            (Some(upload_id), Some(n)) => Some(MultipartRef {
                upload_id,
                part_size: u64::try_from(n).map_err(|_| corrupt("multipart_part_size"))?,
            }),
            _ => None,
        },
        id: MediaId::parse(&id).map_err(|_| corrupt("id"))?,
    })
}

fn size_param(n: Option<u64>) -> Result<Option<i64>, Error> {
    n.map(i64::try_from)
        .transpose()
        .map_err(|_| Error::invalid("size", format!("must be at most {} bytes", i64::MAX)))
}

/// The clock, not the client, sets instants: out of range is our bug.
pub(crate) fn nanos(t: OffsetDateTime, field: &str) -> Result<i64, Error> {
    i64::try_from(t.unix_timestamp_nanos()).map_err(|_| {
        Error::internal(format!(
            "{field} {t} is outside the storable range (1677-2262)"
        ))
    })
}

#[async_trait]
impl MediaStore for PostgresMediaStore {
    async fn insert(&self, m: &Media) -> Result<(), Error> {
        let row = group_commit::NewRow {
            id: m.id.as_str().to_owned(),
            bucket: m.bucket.as_str().to_owned(),
            key: m.key.as_str().to_owned(),
            organization_id: m.organization_id.clone(),
            uploader_id: m.uploader_id.clone(),
            filename: m.filename.clone(),
            content_type: m.content_type.as_str().to_owned(),
            declared_size: size_param(m.declared_size)?,
            created_at: nanos(m.created_at, "created_at")?,
            status: m.status.as_str(),
            size: size_param(m.size)?,
            etag: m.etag.clone(),
            upload_expires_at: m
                .upload_expires_at
                .map(|t| nanos(t, "upload_expires_at"))
                .transpose()?,
            multipart_upload_id: m.multipart.as_ref().map(|mp| mp.upload_id.clone()),
            multipart_part_size: size_param(m.multipart.as_ref().map(|mp| mp.part_size))?,
        };
        self.inserts.insert(row).await
    }

    async fn change_token(&self) -> Result<Option<u64>, Error> {
        let snapshot = self.snapshots.get(()).await?;
        let mut seen = self
            .seen
            .lock()
            .map_err(|_| Error::internal("the snapshot counter was poisoned by a panic"))?;
        // Counted, not hashed: a number never comes back, whatever order answers arrive in.
        if seen.0 != snapshot {
            seen.0 = snapshot;
            seen.1 += 1;
        }
        Ok(Some(seen.1))
    }

    async fn find(&self, id: &MediaId) -> Result<Option<Media>, Error> {
        self.by_id.get(id.as_str().to_owned()).await
    }

    async fn find_by_key(&self, key: &ObjectKey) -> Result<Option<Media>, Error> {
        let rows = self
            .pool
            .query(
                &format!("SELECT {COLUMNS} FROM media WHERE key = $1"),
                &[&key.as_str()],
            )
            .await?;
        rows.first().map(media_of).transpose()
    }

    async fn list(
        &self,
        organization_id: &str,
        status: Option<MediaStatus>,
        limit: u32,
        after: Option<MediaCursor>,
    ) -> Result<MediaPage, Error> {
        if limit == 0 {
            return Ok(MediaPage::default());
        }
        // Stored instants all fit in i64 nanoseconds: a cursor past the end matches every
        // row, one before the start matches none.
        let after = match after {
            None => None,
            Some(c) => match i64::try_from(c.created_at.unix_timestamp_nanos()) {
                Ok(nanos) => Some((nanos, c.id.as_str().to_owned())),
                Err(_) if c.created_at.unix_timestamp() > 0 => None,
                Err(_) => return Ok(MediaPage::default()),
            },
        };
        let status = status.map(MediaStatus::as_str);
        // One extra row tells whether another page follows.
        let fetch = i64::from(limit) + 1;
        let rows = match after {
            None => {
                let page = FirstPage {
                    organization_id: organization_id.to_owned(),
                    status,
                    fetch,
                };
                self.first_pages.get(page).await?
            }
            Some((nanos, id)) => self
                .pool
                .query(
                    &format!(
                        "SELECT {COLUMNS} FROM media WHERE organization_id = $1 \
                         AND ($2::text IS NULL OR status = $2) \
                         AND (created_at, id) < ($3, $4) \
                         ORDER BY created_at DESC, id DESC LIMIT $5"
                    ),
                    &[&organization_id, &status, &nanos, &id, &fetch],
                )
                .await?
                .iter()
                .map(media_of)
                .collect::<Result<Vec<_>, _>>()?,
        };
        let more = rows.len() > limit as usize;
        let mut items = rows;
        items.truncate(limit as usize);
        let next = if more {
            items.last().map(|m| MediaCursor {
                created_at: m.created_at,
                id: m.id.clone(),
            })
        } else {
            None
        };
        Ok(MediaPage { items, next })
    }

    async fn confirm(
        &self,
        id: &MediaId,
        confirmation: &MediaConfirmation,
    ) -> Result<Media, Error> {
        let size = size_param(Some(confirmation.size))?;
        let rows = self
            .pool
            .query(
                &format!(
                    "UPDATE media SET status = 'confirmed', size = $2, etag = $3, \
                     content_type = $4, multipart_upload_id = NULL, multipart_part_size = NULL \
                     WHERE id = $1 RETURNING {COLUMNS}"
                ),
                &[
                    &id.as_str(),
                    &size,
                    &confirmation.etag,
                    &confirmation.content_type.as_str(),
                ],
            )
            .await?;
        match rows.first() {
            Some(r) => media_of(r),
            None => Err(Error::NotFound(Resource::Media)),
        }
    }

    async fn delete(&self, id: &MediaId) -> Result<(), Error> {
        self.pool
            .execute("DELETE FROM media WHERE id = $1", &[&id.as_str()])
            .await?;
        Ok(())
    }

    async fn by_key(&self, after: Option<ObjectKey>, limit: u32) -> Result<Vec<Media>, Error> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let after = after.as_ref().map(ObjectKey::as_str);
        // `key` is COLLATE "C": byte order, as storage lists keys.
        let rows = self
            .pool
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM media WHERE ($1::text IS NULL OR key > $1) \
                     ORDER BY key LIMIT $2"
                ),
                &[&after, &i64::from(limit)],
            )
            .await?;
        rows.iter().map(media_of).collect()
    }
}
