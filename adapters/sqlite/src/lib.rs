//! SQLite adapter of filegate's [`MediaStore`] and
//! [`AuditLog`](filegate_core::ports::AuditLog) ports.
//!
//! - [`SqliteMediaStore`]: a pooled store over one database file (WAL mode).
//! - [`SqliteAuditLog`]: the audit table of that same file, sharing its pool; obtained with
//!   [`SqliteMediaStore::audit_log`], so both are migrated and opened once.
//! - [`migrate`] / [`migration_status`]: the versioned schema shipped in `migrations/`.
//! - [`SqliteFilesDb`]: FILES_DB (managed mode), a separate file with its own migrations
//!   ([`migrate_files`] / [`files_migration_status`], `migrations/files/`).
//!
//! - [`copy`]: every row of a table in key order, untyped (`filegate-admin copy-metadata`).
//! - [`pool`]: the connection pool every SQLite user shares (Better Auth's database too).
//!
//! `created_at` is stored as INTEGER unix nanoseconds (UTC), so ordering and keyset
//! cursors are exact; representable instants run from 1677 to 2262.

mod audit;
pub mod copy;
mod error;
mod files_db;
mod group_commit;
mod migrations;
pub mod pool;
#[cfg(test)]
mod tests;

pub use audit::SqliteAuditLog;
pub use files_db::{SqliteFilesDb, files_migration_status, migrate_files};
pub use migrations::{MigrationStatus, migrate, migration_status};

use crate::pool::Pool;
use async_trait::async_trait;
use deadpool_sqlite::rusqlite::{self, Connection, OptionalExtension, params};
use filegate_core::Error;
use filegate_core::domain::{BucketName, ContentType, MediaId, ObjectKey};
use filegate_core::error::Resource;
use filegate_core::ports::{
    Media, MediaConfirmation, MediaCursor, MediaPage, MediaStatus, MediaStore, MultipartRef,
};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, LazyLock, Mutex};
use time::OffsetDateTime;

/// The media table in a SQLite file. Cheap to clone (shares the pool).
///
/// Needs a file path: `:memory:` would give every pooled connection its own database.
#[derive(Clone, Debug)]
pub struct SqliteMediaStore {
    pool: Pool,
    /// Inserts of concurrent sign-uploads share one transaction (see [`group_commit`]).
    inserts: group_commit::GroupCommit,
    /// Keeps this database's checkpoints running while the store lives.
    _checkpoints: pool::Checkpointer,
    /// A connection that never writes, only reads `PRAGMA data_version`: that number
    /// moves with every commit of any other connection, this process's or another's
    /// (the admin binary's), which is what [`MediaStore::change_token`] promises.
    watcher: Arc<Mutex<Connection>>,
}

impl SqliteMediaStore {
    /// Opens the database at `path`, creating parent directories and the file if needed,
    /// and applies pending migrations.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the file cannot be created or opened or is busy;
    /// [`Error::Internal`] when a migration fails or the database was migrated by a newer
    /// binary.
    pub async fn open(path: &Path) -> Result<Self, Error> {
        let pool = pool::open(path, pool::Ownership::Owned).await?;
        migrations::apply_pending(&pool, migrations::MIGRATIONS).await?;
        let path = path.to_owned();
        let restart = Arc::new(AtomicBool::new(false));
        let handed = pool::Restart::Handed(restart.clone());
        let (writer, checkpoints, watcher) = tokio::task::spawn_blocking(move || {
            let checkpoints = pool::Checkpointer::start(&path, handed)?;
            Ok::<_, Error>((pool::connect(&path)?, checkpoints, pool::connect(&path)?))
        })
        .await
        .map_err(Error::internal)??;
        let inserts = group_commit::GroupCommit::start(writer, insert_sql(), restart)?;
        Ok(Self {
            pool,
            inserts,
            _checkpoints: checkpoints,
            watcher: Arc::new(Mutex::new(watcher)),
        })
    }

    /// The audit log in this database, sharing this store's pool.
    #[must_use]
    pub fn audit_log(&self) -> SqliteAuditLog {
        SqliteAuditLog::new(self.pool.clone())
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

    /// Connections of the pool: (open, idle, callers waiting for one). For metrics.
    #[must_use]
    pub fn pool_usage(&self) -> (usize, usize, usize) {
        let s = self.pool.status();
        (s.size, s.available, s.waiting)
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

const COLUMNS: &str = "id, bucket, key, organization_id, uploader_id, filename, content_type, \
                       declared_size, created_at, status, size, etag, upload_expires_at, \
                       multipart_upload_id, multipart_part_size";

// The statements of the hot paths, formatted once.
static FIND_BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {COLUMNS} FROM media WHERE id = ?1"));
static FIND_BY_KEY: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {COLUMNS} FROM media WHERE key = ?1"));
// `?2 IS NULL` keeps one statement (and one cached plan) per cursor shape. `LIMIT ?N`,
// never a bare `LIMIT ?N`: SQLite (3.47 and later) plans a bare bound LIMIT from its
// value, which expires the prepared statement on every bind, so each call would parse
// and plan it again (a 5x slower read; `no_statement_is_prepared_again` checks it).
static LIST_FIRST: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {COLUMNS} FROM media WHERE organization_id = ?1 \
         AND (?2 IS NULL OR status = ?2) \
         ORDER BY created_at DESC, id DESC LIMIT +?3"
    )
});
static LIST_AFTER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {COLUMNS} FROM media WHERE organization_id = ?1 \
         AND (?2 IS NULL OR status = ?2) \
         AND (created_at, id) < (?3, ?4) \
         ORDER BY created_at DESC, id DESC LIMIT +?5"
    )
});
static BY_KEY: LazyLock<String> = LazyLock::new(|| {
    // BINARY collation: byte order, as storage lists keys.
    format!("SELECT {COLUMNS} FROM media WHERE (?1 IS NULL OR key > ?1) ORDER BY key LIMIT +?2")
});

fn insert_sql() -> String {
    format!(
        "INSERT INTO media ({COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
    )
}

/// A row as stored, before it is validated back into domain types.
struct RawRow {
    id: String,
    bucket: String,
    key: String,
    organization_id: String,
    uploader_id: String,
    filename: String,
    content_type: String,
    declared_size: Option<i64>,
    created_at: i64,
    status: String,
    size: Option<i64>,
    etag: Option<String>,
    upload_expires_at: Option<i64>,
    multipart_upload_id: Option<String>,
    multipart_part_size: Option<i64>,
}

impl RawRow {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            bucket: r.get(1)?,
            key: r.get(2)?,
            organization_id: r.get(3)?,
            uploader_id: r.get(4)?,
            filename: r.get(5)?,
            content_type: r.get(6)?,
            declared_size: r.get(7)?,
            created_at: r.get(8)?,
            status: r.get(9)?,
            size: r.get(10)?,
            etag: r.get(11)?,
            upload_expires_at: r.get(12)?,
            multipart_upload_id: r.get(13)?,
            multipart_part_size: r.get(14)?,
        })
    }

    /// Stored rows were valid when written, so a failure here means corrupt data.
    fn into_media(self) -> Result<Media, Error> {
        let id = self.id;
        let corrupt =
            |field: &str| Error::internal(format!("media row {id:?} has an invalid {field}"));
        let instant = |n: i64, field: &str| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(n)).map_err(|_| corrupt(field))
        };
        let bytes = |n: Option<i64>, field: &str| {
            n.map(u64::try_from).transpose().map_err(|_| corrupt(field))
        };
        Ok(Media {
            bucket: BucketName::parse(self.bucket).map_err(|_| corrupt("bucket"))?,
            key: ObjectKey::parse(self.key).map_err(|_| corrupt("key"))?,
            organization_id: self.organization_id,
            uploader_id: self.uploader_id,
            filename: self.filename,
            // Rows written before strict parsing may hold a type browsers read two ways.
            content_type: ContentType::from_stored(&self.content_type),
            declared_size: bytes(self.declared_size, "declared_size")?,
            created_at: instant(self.created_at, "created_at")?,
            status: MediaStatus::parse(&self.status).map_err(|_| corrupt("status"))?,
            size: bytes(self.size, "size")?,
            etag: self.etag,
            upload_expires_at: self
                .upload_expires_at
                .map(|n| instant(n, "upload_expires_at"))
                .transpose()?,
            multipart: match (self.multipart_upload_id, self.multipart_part_size) {
                (Some(upload_id), Some(n)) => Some(MultipartRef {
                    upload_id,
                    part_size: u64::try_from(n).map_err(|_| corrupt("multipart_part_size"))?,
                }),
                _ => None,
            },
            id: MediaId::parse(&id).map_err(|_| corrupt("id"))?,
        })
    }
}

fn cursor_of(m: &Media) -> MediaCursor {
    MediaCursor {
        created_at: m.created_at,
        id: m.id.clone(),
    }
}

fn size_param(n: Option<u64>) -> Result<Option<i64>, Error> {
    n.map(i64::try_from)
        .transpose()
        .map_err(|_| Error::invalid("size", format!("must be at most {} bytes", i64::MAX)))
}

/// The clock, not the client, sets instants: out of range is our bug.
fn nanos(t: OffsetDateTime, field: &str) -> Result<i64, Error> {
    i64::try_from(t.unix_timestamp_nanos()).map_err(|_| {
        Error::internal(format!(
            "{field} {t} is outside the storable range (1677-2262)"
        ))
    })
}

#[async_trait]
impl MediaStore for SqliteMediaStore {
    async fn insert(&self, media: &Media) -> Result<(), Error> {
        let declared_size = size_param(media.declared_size)?;
        let size = size_param(media.size)?;
        let created_at = nanos(media.created_at, "created_at")?;
        let expires = media
            .upload_expires_at
            .map(|t| nanos(t, "upload_expires_at"))
            .transpose()?;
        let part_size = size_param(media.multipart.as_ref().map(|mp| mp.part_size))?;
        let m = media;
        self.inserts
            .insert(vec![
                Box::new(m.id.as_str().to_owned()),
                Box::new(m.bucket.as_str().to_owned()),
                Box::new(m.key.as_str().to_owned()),
                Box::new(m.organization_id.clone()),
                Box::new(m.uploader_id.clone()),
                Box::new(m.filename.clone()),
                Box::new(m.content_type.as_str().to_owned()),
                Box::new(declared_size),
                Box::new(created_at),
                Box::new(m.status.as_str()),
                Box::new(size),
                Box::new(m.etag.clone()),
                Box::new(expires),
                Box::new(m.multipart.as_ref().map(|mp| mp.upload_id.clone())),
                Box::new(part_size),
            ])
            .await
    }

    async fn change_token(&self) -> Result<Option<u64>, Error> {
        // On this thread, as `read`: the pragma only looks at the WAL's shared index.
        let watcher = self
            .watcher
            .lock()
            .map_err(|_| Error::unavailable("the sqlite change watcher was poisoned by a panic"))?;
        let version: i64 = watcher
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(error::from_sqlite)?;
        Ok(Some(version.cast_unsigned()))
    }

    async fn find(&self, id: &MediaId) -> Result<Option<Media>, Error> {
        let id = id.as_str().to_owned();
        let raw = self
            .read(move |c| {
                c.prepare_cached(&FIND_BY_ID)?
                    .query_row(params![id], RawRow::read)
                    .optional()
            })
            .await?;
        raw.map(RawRow::into_media).transpose()
    }

    async fn find_by_key(&self, key: &ObjectKey) -> Result<Option<Media>, Error> {
        let key = key.as_str().to_owned();
        let raw = self
            .read(move |c| {
                c.prepare_cached(&FIND_BY_KEY)?
                    .query_row(params![key], RawRow::read)
                    .optional()
            })
            .await?;
        raw.map(RawRow::into_media).transpose()
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
        let org = organization_id.to_owned();
        let status = status.map(MediaStatus::as_str);
        // One extra row tells whether another page follows.
        let fetch = i64::from(limit) + 1;
        let raws = self
            .read(move |c| {
                let rows = match after {
                    None => c
                        .prepare_cached(&LIST_FIRST)?
                        .query_map(params![org, status, fetch], RawRow::read)?
                        .collect::<rusqlite::Result<Vec<_>>>()?,
                    Some((nanos, id)) => c
                        .prepare_cached(&LIST_AFTER)?
                        .query_map(params![org, status, nanos, id, fetch], RawRow::read)?
                        .collect::<rusqlite::Result<Vec<_>>>()?,
                };
                Ok(rows)
            })
            .await?;
        let more = raws.len() > limit as usize;
        let items = raws
            .into_iter()
            .take(limit as usize)
            .map(RawRow::into_media)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if more {
            items.last().map(cursor_of)
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
        let (id_text, c) = (id.as_str().to_owned(), confirmation.clone());
        let raw = self
            .interact(move |conn| {
                conn.prepare_cached(&format!(
                    "UPDATE media SET status = 'confirmed', size = ?2, etag = ?3, \
                     content_type = ?4, multipart_upload_id = NULL, multipart_part_size = NULL \
                     WHERE id = ?1 RETURNING {COLUMNS}"
                ))?
                .query_row(
                    params![id_text, size, c.etag, c.content_type.as_str()],
                    RawRow::read,
                )
                .optional()
            })
            .await?;
        match raw {
            Some(r) => r.into_media(),
            None => Err(Error::NotFound(Resource::Media)),
        }
    }

    async fn delete(&self, id: &MediaId) -> Result<(), Error> {
        let id = id.as_str().to_owned();
        self.interact(move |c| {
            c.prepare_cached("DELETE FROM media WHERE id = ?1")?
                .execute(params![id])
        })
        .await
        .map(drop)
    }

    async fn by_key(&self, after: Option<ObjectKey>, limit: u32) -> Result<Vec<Media>, Error> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let after = after.map(|k| k.as_str().to_owned());
        let limit = i64::from(limit);
        let raws = self
            .interact(move |c| {
                c.prepare_cached(&BY_KEY)?
                    .query_map(params![after, limit], RawRow::read)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        raws.into_iter().map(RawRow::into_media).collect()
    }
}
