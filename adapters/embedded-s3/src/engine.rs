//! The storage engine under the S3 endpoint: object bytes in immutable content files
//! named by a random id (never by key), and an SQLite index of buckets, objects,
//! multipart uploads and parts. A write becomes visible only when its index row commits,
//! after its content file is complete and fsynced; a content file no committed row
//! names is garbage and is removed on start. See docs/EMBEDDED-STORE.md.

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// Folder under the endpoint's root holding the engine. Bucket names cannot start with
/// a dot, so it never clashes with a legacy s3s-fs bucket folder next to it.
pub(crate) const STORE_DIR: &str = ".filegate-store";
const INDEX_FILE: &str = "index.sqlite3";
const BLOBS_DIR: &str = "blobs";
/// Every process using the folder holds a shared lock on it; start-up clean-up (orphans,
/// import) runs only in a process that could take it exclusively, i.e. alone.
const LOCK_FILE: &str = "owner.lock";
/// Uploads completed longer ago than this are forgotten on start (see `complete`).
const COMPLETED_UPLOAD_TTL_MS: i64 = 24 * 3600 * 1000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS buckets (
    name TEXT PRIMARY KEY,
    created_ms INTEGER NOT NULL
) WITHOUT ROWID;
-- key is a BLOB so ordering is plain byte order (what S3 lists in) and a prefix's
-- upper bound can be prefix || x'FF' (0xFF never occurs in UTF-8).
CREATE TABLE IF NOT EXISTS objects (
    bucket TEXT NOT NULL,
    key BLOB NOT NULL,
    blob TEXT NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    modified_ms INTEGER NOT NULL,
    meta TEXT NOT NULL,
    PRIMARY KEY (bucket, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    key BLOB NOT NULL,
    initiated_ms INTEGER NOT NULL,
    meta TEXT NOT NULL,
    -- Set once completed: the ETag a repeated complete answers with.
    completed_etag TEXT,
    completed_ms INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS uploads_by_key ON uploads (bucket, key, id);
CREATE TABLE IF NOT EXISTS parts (
    upload_id TEXT NOT NULL,
    part_number INTEGER NOT NULL,
    blob TEXT NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    modified_ms INTEGER NOT NULL,
    meta TEXT NOT NULL,
    PRIMARY KEY (upload_id, part_number)
) WITHOUT ROWID;
";

/// Everything about an object besides its bytes, size, ETag and time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Meta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// The `Expires` header as sent (an HTTP date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website_redirect_location: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Checksums::is_empty")]
    pub checksums: Checksums,
    /// Sizes of the parts an object was assembled from (`GET ?partNumber=N`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<u64>,
    /// The multipart upload that produced the object, for a repeated complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    /// A multipart upload's (or its object's) checksum algorithm (`CRC32`, …) and type
    /// (`COMPOSITE`: a checksum of the parts' checksums, `-<n>`; `FULL_OBJECT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_algorithm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_type: Option<String>,
}

/// Base64 digests as S3 sends them in `x-amz-checksum-*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Checksums {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32c: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc64nvme: Option<String>,
}

impl Checksums {
    pub(crate) fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The value for an algorithm name (`CRC32`, `CRC32C`, `SHA1`, `SHA256`, `CRC64NVME`).
    pub(crate) fn slot(&mut self, algorithm: &str) -> Option<&mut Option<String>> {
        match algorithm.to_ascii_uppercase().as_str() {
            "CRC32" => Some(&mut self.crc32),
            "CRC32C" => Some(&mut self.crc32c),
            "SHA1" => Some(&mut self.sha1),
            "SHA256" => Some(&mut self.sha256),
            "CRC64NVME" => Some(&mut self.crc64nvme),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ObjectRow {
    pub key: String,
    pub blob: String,
    pub size: u64,
    pub etag: String,
    pub modified_ms: i64,
    pub meta: Meta,
}

/// A listing entry: what ListObjects shows.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub modified_ms: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct UploadRow {
    pub id: String,
    pub bucket: String,
    pub key: String,
    pub initiated_ms: i64,
    pub meta: Meta,
    pub completed_etag: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct PartRow {
    pub number: i32,
    pub blob: String,
    pub size: u64,
    pub etag: String,
    pub modified_ms: i64,
    pub meta: Meta,
}

/// What a write's condition (`If-Match` / `If-None-Match`) needs checked against the
/// current object, inside the transaction that replaces it.
#[derive(Debug, Clone, Default)]
#[expect(
    clippy::struct_field_names,
    clippy::option_option,
    reason = "named after the headers; If-Match: * is Some(None)"
)]
pub(crate) struct WriteCondition {
    /// `If-None-Match: *`: only if no object exists.
    pub if_absent: bool,
    /// `If-None-Match: <etag>`: only if the current ETag differs (or no object).
    pub if_none_match: Option<String>,
    /// `If-Match: *` (`Some(None)`) or `If-Match: <etag>`: only if it exists (and matches).
    pub if_match: Option<Option<String>>,
}

impl WriteCondition {
    /// `Err(NoSuchKey)` for `If-Match` on a missing object (S3 answers 404 there),
    /// `Err(PreconditionFailed)` when another condition fails.
    pub(crate) fn check(&self, current: Option<&str>) -> Result<(), DbError> {
        if self.if_absent && current.is_some() {
            return Err(DbError::PreconditionFailed);
        }
        if let (Some(want), Some(have)) = (&self.if_none_match, current)
            && want == have
        {
            return Err(DbError::PreconditionFailed);
        }
        match (&self.if_match, current) {
            (None, _) | (Some(None), Some(_)) => Ok(()),
            (Some(_), None) => Err(DbError::NoSuchKey),
            (Some(Some(want)), Some(have)) if want == have => Ok(()),
            (Some(Some(_)), Some(_)) => Err(DbError::PreconditionFailed),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum DbError {
    #[error("no such bucket")]
    NoSuchBucket,
    #[error("no such key")]
    NoSuchKey,
    #[error("no such upload")]
    NoSuchUpload,
    #[error("precondition failed")]
    PreconditionFailed,
    #[error("bucket not empty")]
    BucketNotEmpty,
    #[error("index: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("index metadata: {0}")]
    Json(#[from] serde_json::Error),
}

pub(crate) type DbResult<T> = Result<T, DbError>;

/// The index: one writer connection (SQLite allows one writer at a time anyway) and one
/// reader, so listings and HEADs do not wait behind a commit's fsync (WAL mode).
pub(crate) struct Index {
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
}

fn lock(c: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    c.lock().unwrap_or_else(PoisonError::into_inner)
}

fn key_text(raw: Vec<u8>) -> rusqlite::Result<String> {
    String::from_utf8(raw).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
    })
}

fn meta_of(raw: &str) -> rusqlite::Result<Meta> {
    serde_json::from_str(raw).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn object_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<ObjectRow> {
    Ok(ObjectRow {
        key: key_text(row.get(0)?)?,
        blob: row.get(1)?,
        size: row.get::<_, i64>(2)?.try_into().unwrap_or(0),
        etag: row.get(3)?,
        modified_ms: row.get(4)?,
        meta: meta_of(&row.get::<_, String>(5)?)?,
    })
}

fn upload_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<UploadRow> {
    Ok(UploadRow {
        id: row.get(0)?,
        bucket: row.get(1)?,
        key: key_text(row.get(2)?)?,
        initiated_ms: row.get(3)?,
        meta: meta_of(&row.get::<_, String>(4)?)?,
        completed_etag: row.get(5)?,
    })
}

fn part_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<PartRow> {
    Ok(PartRow {
        number: row.get(0)?,
        blob: row.get(1)?,
        size: row.get::<_, i64>(2)?.try_into().unwrap_or(0),
        etag: row.get(3)?,
        modified_ms: row.get(4)?,
        meta: meta_of(&row.get::<_, String>(5)?)?,
    })
}

/// `prefix || 0xFF`: above every key that starts with `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    end.push(0xFF);
    end
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

const OBJECT_COLUMNS: &str = "key, blob, size, etag, modified_ms, meta";

fn bucket_exists_in(conn: &Connection, bucket: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT 1 FROM buckets WHERE name = ?1",
        [bucket],
        |_| Ok(()),
    )
    .optional()
    .map(|found| found.is_some())
}

fn current_object(
    tx: &Transaction<'_>,
    bucket: &str,
    key: &str,
) -> rusqlite::Result<Option<ObjectRow>> {
    tx.query_row(
        &format!("SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket = ?1 AND key = ?2"),
        params![bucket, key.as_bytes()],
        object_of,
    )
    .optional()
}

fn insert_object(tx: &Transaction<'_>, bucket: &str, row: &ObjectRow) -> DbResult<()> {
    tx.execute(
        "INSERT OR REPLACE INTO objects (bucket, key, blob, size, etag, modified_ms, meta)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            bucket,
            row.key.as_bytes(),
            row.blob,
            to_i64(row.size),
            row.etag,
            row.modified_ms,
            serde_json::to_string(&row.meta)?
        ],
    )?;
    Ok(())
}

impl Index {
    pub(crate) fn open(path: &Path) -> rusqlite::Result<Self> {
        let writer = Connection::open(path)?;
        // FULL: a commit is on disk when it returns, so the old content file it replaced
        // can be deleted right after without a power cut resurrecting a row naming it.
        writer.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;",
        )?;
        writer.execute_batch(SCHEMA)?;
        let reader = Connection::open(path)?;
        reader.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA query_only = ON;")?;
        Ok(Self {
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
        })
    }

    // Buckets.

    pub(crate) fn bucket_exists(&self, bucket: &str) -> DbResult<bool> {
        Ok(bucket_exists_in(&lock(&self.reader), bucket)?)
    }

    /// `Ok(false)` when it already existed.
    pub(crate) fn create_bucket(&self, bucket: &str, now_ms: i64) -> DbResult<bool> {
        let n = lock(&self.writer).execute(
            "INSERT OR IGNORE INTO buckets (name, created_ms) VALUES (?1, ?2)",
            params![bucket, now_ms],
        )?;
        Ok(n == 1)
    }

    /// Refuses a bucket holding objects; drops its unfinished uploads and returns the
    /// content files of their parts.
    pub(crate) fn delete_bucket(&self, bucket: &str) -> DbResult<Vec<String>> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if !bucket_exists_in(&tx, bucket)? {
            return Err(DbError::NoSuchBucket);
        }
        let any = tx
            .query_row(
                "SELECT 1 FROM objects WHERE bucket = ?1 LIMIT 1",
                [bucket],
                |_| Ok(()),
            )
            .optional()?;
        if any.is_some() {
            return Err(DbError::BucketNotEmpty);
        }
        let blobs = {
            let mut stmt = tx.prepare(
                "SELECT p.blob FROM parts p JOIN uploads u ON u.id = p.upload_id WHERE u.bucket = ?1",
            )?;
            stmt.query_map([bucket], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?
        };
        tx.execute(
            "DELETE FROM parts WHERE upload_id IN (SELECT id FROM uploads WHERE bucket = ?1)",
            [bucket],
        )?;
        tx.execute("DELETE FROM uploads WHERE bucket = ?1", [bucket])?;
        tx.execute("DELETE FROM buckets WHERE name = ?1", [bucket])?;
        tx.commit()?;
        Ok(blobs)
    }

    /// Buckets named after `after` and starting with `prefix`, by name, at most `limit`.
    pub(crate) fn list_buckets(
        &self,
        prefix: &str,
        after: &str,
        limit: usize,
    ) -> DbResult<Vec<(String, i64)>> {
        let conn = lock(&self.reader);
        let mut stmt = conn.prepare(
            "SELECT name, created_ms FROM buckets
             WHERE name > ?1 AND substr(name, 1, length(?2)) = ?2 ORDER BY name LIMIT +?3",
        )?;
        let rows = stmt
            .query_map(
                params![after, prefix, i64::try_from(limit).unwrap_or(i64::MAX)],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    // Objects.

    /// `Err(NoSuchBucket)` when the bucket is missing, `Ok(None)` when only the key is.
    pub(crate) fn get_object(&self, bucket: &str, key: &str) -> DbResult<Option<ObjectRow>> {
        let conn = lock(&self.reader);
        let row = conn
            .query_row(
                &format!("SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket = ?1 AND key = ?2"),
                params![bucket, key.as_bytes()],
                object_of,
            )
            .optional()?;
        if row.is_none() && !bucket_exists_in(&conn, bucket)? {
            return Err(DbError::NoSuchBucket);
        }
        Ok(row)
    }

    /// Makes `row` the object at its key if `condition` holds for the current one, in one
    /// transaction. Returns the replaced object's content file, to delete after.
    pub(crate) fn put_object(
        &self,
        bucket: &str,
        row: &ObjectRow,
        condition: &WriteCondition,
    ) -> DbResult<Option<String>> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if !bucket_exists_in(&tx, bucket)? {
            return Err(DbError::NoSuchBucket);
        }
        let old = current_object(&tx, bucket, &row.key)?;
        condition.check(old.as_ref().map(|o| o.etag.as_str()))?;
        insert_object(&tx, bucket, row)?;
        tx.commit()?;
        Ok(old.map(|o| o.blob).filter(|b| *b != row.blob))
    }

    /// Returns the deleted object's content file.
    pub(crate) fn delete_object(&self, bucket: &str, key: &str) -> DbResult<Option<String>> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if !bucket_exists_in(&tx, bucket)? {
            return Err(DbError::NoSuchBucket);
        }
        let blob = tx
            .query_row(
                "DELETE FROM objects WHERE bucket = ?1 AND key = ?2 RETURNING blob",
                params![bucket, key.as_bytes()],
                |r| r.get::<_, String>(0),
            )
            .optional()?;
        tx.commit()?;
        Ok(blob)
    }

    /// Up to `limit` objects with `after < key` (after `None`: from the start),
    /// `key >= from` and `key < until`, in byte order. An ordered range scan of the
    /// primary key: its cost does not depend on the bucket's size.
    pub(crate) fn list_objects(
        &self,
        bucket: &str,
        after: Option<&[u8]>,
        from: &[u8],
        until: &[u8],
        limit: usize,
    ) -> DbResult<Vec<Listed>> {
        let conn = lock(&self.reader);
        let mut stmt = conn.prepare_cached(
            "SELECT key, size, etag, modified_ms FROM objects
             WHERE bucket = ?1 AND key > ?2 AND key >= ?3 AND key < ?4
             ORDER BY key LIMIT +?5",
        )?;
        let rows = stmt
            .query_map(
                params![
                    bucket,
                    after.unwrap_or(b""),
                    from,
                    until,
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |r| {
                    Ok(Listed {
                        key: key_text(r.get(0)?)?,
                        size: r.get::<_, i64>(1)?.try_into().unwrap_or(0),
                        etag: r.get(2)?,
                        modified_ms: r.get(3)?,
                    })
                },
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    // Multipart uploads.

    pub(crate) fn create_upload(&self, upload: &UploadRow) -> DbResult<()> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if !bucket_exists_in(&tx, &upload.bucket)? {
            return Err(DbError::NoSuchBucket);
        }
        tx.execute(
            "INSERT INTO uploads (id, bucket, key, initiated_ms, meta) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                upload.id,
                upload.bucket,
                upload.key.as_bytes(),
                upload.initiated_ms,
                serde_json::to_string(&upload.meta)?
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The upload `id` of `bucket`/`key`, also when completed.
    pub(crate) fn get_upload(&self, bucket: &str, key: &str, id: &str) -> DbResult<UploadRow> {
        let conn = lock(&self.reader);
        let row = conn
            .query_row(
                "SELECT id, bucket, key, initiated_ms, meta, completed_etag FROM uploads
                 WHERE id = ?1 AND bucket = ?2 AND key = ?3",
                params![id, bucket, key.as_bytes()],
                upload_of,
            )
            .optional()?;
        match row {
            Some(row) => Ok(row),
            None if !bucket_exists_in(&conn, bucket)? => Err(DbError::NoSuchBucket),
            None => Err(DbError::NoSuchUpload),
        }
    }

    /// Records a part (replacing one of the same number); returns the replaced content file.
    pub(crate) fn put_part(&self, upload_id: &str, part: &PartRow) -> DbResult<Option<String>> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let open = tx
            .query_row(
                "SELECT 1 FROM uploads WHERE id = ?1 AND completed_etag IS NULL",
                [upload_id],
                |_| Ok(()),
            )
            .optional()?;
        if open.is_none() {
            return Err(DbError::NoSuchUpload);
        }
        let old = tx
            .query_row(
                "SELECT blob FROM parts WHERE upload_id = ?1 AND part_number = ?2",
                params![upload_id, part.number],
                |r| r.get::<_, String>(0),
            )
            .optional()?;
        tx.execute(
            "INSERT OR REPLACE INTO parts (upload_id, part_number, blob, size, etag, modified_ms, meta)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                upload_id,
                part.number,
                part.blob,
                to_i64(part.size),
                part.etag,
                part.modified_ms,
                serde_json::to_string(&part.meta)?
            ],
        )?;
        tx.commit()?;
        Ok(old)
    }

    /// Parts numbered above `after`, ascending, at most `limit`.
    pub(crate) fn list_parts(
        &self,
        upload_id: &str,
        after: i32,
        limit: usize,
    ) -> DbResult<Vec<PartRow>> {
        let conn = lock(&self.reader);
        let mut stmt = conn.prepare_cached(
            "SELECT part_number, blob, size, etag, modified_ms, meta FROM parts
             WHERE upload_id = ?1 AND part_number > ?2 ORDER BY part_number LIMIT +?3",
        )?;
        let rows = stmt
            .query_map(
                params![upload_id, after, i64::try_from(limit).unwrap_or(i64::MAX)],
                part_of,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Makes the assembled `row` the object, marks the upload completed and forgets its
    /// parts, in one transaction. Returns the content files no longer needed (the
    /// replaced object's and the parts').
    pub(crate) fn complete_upload(
        &self,
        upload_id: &str,
        bucket: &str,
        row: &ObjectRow,
        condition: &WriteCondition,
        now_ms: i64,
    ) -> DbResult<Vec<String>> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let open = tx
            .query_row(
                "SELECT 1 FROM uploads WHERE id = ?1 AND completed_etag IS NULL",
                [upload_id],
                |_| Ok(()),
            )
            .optional()?;
        if open.is_none() {
            return Err(DbError::NoSuchUpload);
        }
        let old = current_object(&tx, bucket, &row.key)?;
        condition.check(old.as_ref().map(|o| o.etag.as_str()))?;
        insert_object(&tx, bucket, row)?;
        let mut garbage = {
            let mut stmt = tx.prepare("SELECT blob FROM parts WHERE upload_id = ?1")?;
            stmt.query_map([upload_id], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?
        };
        tx.execute("DELETE FROM parts WHERE upload_id = ?1", [upload_id])?;
        tx.execute(
            "UPDATE uploads SET completed_etag = ?2, completed_ms = ?3 WHERE id = ?1",
            params![upload_id, row.etag, now_ms],
        )?;
        tx.commit()?;
        garbage.extend(old.map(|o| o.blob));
        Ok(garbage)
    }

    /// Drops an unfinished upload; returns its parts' content files.
    pub(crate) fn abort_upload(&self, upload_id: &str) -> DbResult<Vec<String>> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let open = tx
            .query_row(
                "SELECT 1 FROM uploads WHERE id = ?1 AND completed_etag IS NULL",
                [upload_id],
                |_| Ok(()),
            )
            .optional()?;
        if open.is_none() {
            return Err(DbError::NoSuchUpload);
        }
        let blobs = {
            let mut stmt = tx.prepare("SELECT blob FROM parts WHERE upload_id = ?1")?;
            stmt.query_map([upload_id], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?
        };
        tx.execute("DELETE FROM parts WHERE upload_id = ?1", [upload_id])?;
        tx.execute("DELETE FROM uploads WHERE id = ?1", [upload_id])?;
        tx.commit()?;
        Ok(blobs)
    }

    /// Unfinished uploads after (`key_marker`, `id_marker`) in (key, id) order, with
    /// `from <= key < until`.
    pub(crate) fn list_uploads(
        &self,
        bucket: &str,
        after: Option<(&[u8], &str)>,
        from: &[u8],
        until: &[u8],
        limit: usize,
    ) -> DbResult<Vec<UploadRow>> {
        let conn = lock(&self.reader);
        let (key_after, id_after) = after.unwrap_or((b"", ""));
        let mut stmt = conn.prepare_cached(
            "SELECT id, bucket, key, initiated_ms, meta, completed_etag FROM uploads
             WHERE bucket = ?1 AND completed_etag IS NULL
               AND (key > ?2 OR (key = ?2 AND id > ?3)) AND key >= ?4 AND key < ?5
             ORDER BY key, id LIMIT +?6",
        )?;
        let rows = stmt
            .query_map(
                params![
                    bucket,
                    key_after,
                    id_after,
                    from,
                    until,
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                upload_of,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    // Maintenance.

    /// Every content file a row names.
    fn referenced_blobs(&self) -> DbResult<HashSet<String>> {
        let conn = lock(&self.reader);
        let mut set = HashSet::new();
        for sql in ["SELECT blob FROM objects", "SELECT blob FROM parts"] {
            let mut stmt = conn.prepare(sql)?;
            for blob in stmt.query_map([], |r| r.get::<_, String>(0))? {
                set.insert(blob?);
            }
        }
        Ok(set)
    }

    fn forget_completed_uploads(&self, before_ms: i64) -> DbResult<()> {
        lock(&self.writer).execute(
            "DELETE FROM uploads WHERE completed_etag IS NOT NULL AND completed_ms < ?1",
            [before_ms],
        )?;
        Ok(())
    }

    /// Imports objects in one transaction, skipping keys already present (an
    /// interrupted import that committed them). Returns how many were new.
    pub(crate) fn import_objects(
        &self,
        bucket: &str,
        rows: &[ObjectRow],
        now_ms: i64,
    ) -> DbResult<usize> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT OR IGNORE INTO buckets (name, created_ms) VALUES (?1, ?2)",
            params![bucket, now_ms],
        )?;
        let mut added = 0;
        for row in rows {
            let n = tx.execute(
                "INSERT OR IGNORE INTO objects (bucket, key, blob, size, etag, modified_ms, meta)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    bucket,
                    row.key.as_bytes(),
                    row.blob,
                    to_i64(row.size),
                    row.etag,
                    row.modified_ms,
                    serde_json::to_string(&row.meta)?
                ],
            )?;
            added += n;
        }
        tx.commit()?;
        Ok(added)
    }

    pub(crate) fn has_object(&self, bucket: &str, key: &str) -> DbResult<bool> {
        let conn = lock(&self.reader);
        Ok(conn
            .query_row(
                "SELECT 1 FROM objects WHERE bucket = ?1 AND key = ?2",
                params![bucket, key.as_bytes()],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }
}

/// Where the engine under `root` keeps the bytes of `bucket`/`key`, when that object
/// exists: for tests that look at the disk. Opens the index read-only.
pub(crate) fn stored_object_path(root: &Path, bucket: &str, key: &str) -> Option<PathBuf> {
    let store = root.join(STORE_DIR);
    let conn = Connection::open_with_flags(
        store.join(INDEX_FILE),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .ok()?;
    let blob: String = conn
        .query_row(
            "SELECT blob FROM objects WHERE bucket = ?1 AND key = ?2",
            params![bucket, key.as_bytes()],
            |r| r.get(0),
        )
        .ok()?;
    Some(
        Blobs {
            dir: store.join(BLOBS_DIR),
        }
        .path(&blob),
    )
}

/// Content files: `blobs/<first two hex digits>/<id>`, written once, never modified,
/// deleted only after no committed row names them.
pub(crate) struct Blobs {
    dir: PathBuf,
}

impl Blobs {
    pub(crate) fn new_id() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    pub(crate) fn path(&self, id: &str) -> PathBuf {
        self.dir.join(id.get(..2).unwrap_or("00")).join(id)
    }

    /// Best effort: a file left behind is garbage the next start removes.
    pub(crate) fn remove(&self, ids: impl IntoIterator<Item = String>) {
        for id in ids {
            if let Err(e) = std::fs::remove_file(self.path(&id))
                && e.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(blob = %id, error = %e, "embedded S3: cannot remove a content file");
            }
        }
    }
}

/// The opened engine.
pub(crate) struct Engine {
    pub index: Index,
    pub blobs: Blobs,
    /// Held (shared) while the engine is open; see [`LOCK_FILE`].
    lock: std::fs::File,
}

pub(crate) fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// fsyncs a directory so a file created or renamed in it survives a power cut.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl Engine {
    /// Opens (or creates) the engine under `root`. When no other process has it open
    /// (`filegate-admin` may, next to the server), it first removes content files no row
    /// names (writes a crash interrupted) and imports a legacy s3s-fs layout in `root`.
    /// With another process running, those are left for a later start: its in-flight
    /// writes look exactly like orphans.
    pub(crate) fn open(root: &Path) -> io::Result<Self> {
        let store = root.join(STORE_DIR);
        let blob_dir = store.join(BLOBS_DIR);
        std::fs::create_dir_all(&blob_dir)?;
        for i in 0..=255u8 {
            let sub = blob_dir.join(format!("{i:02x}"));
            if !sub.is_dir() {
                std::fs::create_dir(&sub)?;
                sync_dir(&blob_dir)?;
            }
        }
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(store.join(LOCK_FILE))?;
        let alone = match lock.try_lock() {
            Ok(()) => true,
            Err(std::fs::TryLockError::WouldBlock) => false,
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        };
        let index = Index::open(&store.join(INDEX_FILE)).map_err(io::Error::other)?;
        let engine = Self {
            index,
            blobs: Blobs { dir: blob_dir },
            lock,
        };
        if alone {
            engine
                .index
                .forget_completed_uploads(now_ms() - COMPLETED_UPLOAD_TTL_MS)
                .map_err(io::Error::other)?;
            let removed = engine.remove_orphans()?;
            if removed > 0 {
                tracing::info!(
                    removed,
                    "embedded S3: removed content files of interrupted writes"
                );
            }
            crate::migrate::import_legacy(root, &engine)?;
        } else {
            tracing::info!(
                "embedded S3: another process has the store open; start-up clean-up skipped"
            );
        }
        // From exclusive (or nothing) to shared: others may open it now.
        engine.lock.lock_shared()?;
        Ok(engine)
    }

    fn remove_orphans(&self) -> io::Result<usize> {
        let referenced = self.index.referenced_blobs().map_err(io::Error::other)?;
        let mut removed = 0;
        for sub in std::fs::read_dir(&self.blobs.dir)? {
            let sub = sub?;
            if !sub.file_type()?.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(sub.path())? {
                let file = file?;
                let name = file.file_name();
                let keep = name.to_str().is_some_and(|n| referenced.contains(n));
                if !keep {
                    std::fs::remove_file(file.path())?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orphans_are_removed_only_by_a_process_alone_with_the_store() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let first = Engine::open(dir.path())?;
        // A content file being written by `first`: no row names it yet.
        let in_flight = first.blobs.path(&Blobs::new_id());
        std::fs::write(&in_flight, b"half")?;
        // filegate-admin opening the store next to the server must not touch it.
        let second = Engine::open(dir.path())?;
        assert!(
            in_flight.exists(),
            "another process's in-flight write was removed"
        );
        drop(second);
        drop(first);
        // Alone again (the writer crashed): the file is an orphan now.
        let _third = Engine::open(dir.path())?;
        assert!(!in_flight.exists(), "an orphan survived a start");
        Ok(())
    }

    #[test]
    fn a_committed_object_keeps_its_content_file_across_starts() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let engine = Engine::open(dir.path())?;
        let blob = Blobs::new_id();
        std::fs::write(engine.blobs.path(&blob), b"kept")?;
        engine
            .index
            .create_bucket("b1b", 0)
            .map_err(io::Error::other)?;
        let row = ObjectRow {
            key: "k".into(),
            blob: blob.clone(),
            size: 4,
            etag: "e".into(),
            modified_ms: 0,
            meta: Meta::default(),
        };
        engine
            .index
            .put_object("b1b", &row, &WriteCondition::default())
            .map_err(io::Error::other)?;
        drop(engine);
        let engine = Engine::open(dir.path())?;
        assert_eq!(std::fs::read(engine.blobs.path(&blob))?, b"kept");
        Ok(())
    }
}
