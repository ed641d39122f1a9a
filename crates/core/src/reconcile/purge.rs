//! Purge: soft-deleted rows and stale pending uploads, object then row.

use super::{EXAMPLES_PER_CATEGORY, Tally, media_is_stale};
use crate::domain::{BucketName, ObjectKey};
use crate::error::Error;
use crate::managed::{ObjectRowStore, ObjectStatus};
use crate::ports::{MediaStatus, MediaStore, ObjectStore};
use serde::Serialize;
use std::time::Duration;
use time::OffsetDateTime;

/// Settings of [`purge`].
#[derive(Debug, Clone)]
pub struct PurgeOptions {
    /// The physical bucket of the FILES_DB rows' objects (media rows name their own).
    pub bucket: BucketName,
    /// "Now" for the age checks.
    pub now: OffsetDateTime,
    /// Pending rows older than this go ([`default_stale_after`](super::default_stale_after)).
    pub stale_after: Duration,
    /// Multipart uploads (at storage, and their pending rows) older than this are aborted
    /// ([`DEFAULT_MULTIPART_MAX_AGE`](crate::policy::DEFAULT_MULTIPART_MAX_AGE)).
    pub multipart_max_age: Duration,
    /// Soft-deleted rows younger than this are left to the server ([`SOFT_DELETE_GRACE`](super::SOFT_DELETE_GRACE)).
    pub deleted_grace: Duration,
    /// Rows per batch.
    pub batch: u32,
    /// Only count: nothing is deleted.
    pub dry_run: bool,
}

/// What [`purge`] found (and, unless a dry run, removed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    /// Whether this was a dry run (nothing deleted).
    pub dry_run: bool,
    /// Rows of both tables read.
    pub scanned_rows: u64,
    /// Soft-deleted rows: count and bytes (row sizes).
    pub soft_deleted: Tally,
    /// Stale pending rows: count and declared bytes.
    pub stale_pending: Tally,
    /// Unfinished multipart uploads at storage older than the maximum age: count, and
    /// the keys of a few (bytes are not counted).
    pub stale_multipart: Tally,
    /// Rows (with their objects) removed.
    pub purged: u64,
    /// Pages read, of both tables.
    pub batches: u64,
}

/// Deletes soft-deleted rows and stale pending uploads: the object, then the row; in
/// batches of `batch` rows by key (a cursor that deletions do not disturb). Idempotent.
///
/// # Errors
/// Port errors; what was purged before stays purged, a rerun continues.
pub async fn purge(
    objects: &dyn ObjectStore,
    rows: &dyn ObjectRowStore,
    media: Option<&dyn MediaStore>,
    opts: &PurgeOptions,
    on_batch: &mut (dyn FnMut(&PurgeReport) + Send),
) -> Result<PurgeReport, Error> {
    let mut report = PurgeReport {
        dry_run: opts.dry_run,
        ..PurgeReport::default()
    };
    let stale_before = opts.now - opts.stale_after;
    let deleted_before = opts.now - opts.deleted_grace;
    let multipart_before = opts.now - opts.multipart_max_age;
    let batch = opts.batch.max(1);
    let mut after: Option<ObjectKey> = None;
    loop {
        let page = rows.objects_by_key(after.clone(), batch).await?;
        let done = page.len() < batch as usize;
        after = page.last().map(|r| r.key.clone()).or(after);
        report.batches += 1;
        for row in page {
            report.scanned_rows += 1;
            let tally = if row.deleted_at.is_some_and(|t| t < deleted_before) {
                &mut report.soft_deleted
            } else if row.deleted_at.is_none()
                && row.status == ObjectStatus::Pending
                && row.created_at
                    < if row.multipart.is_some() {
                        multipart_before
                    } else {
                        stale_before
                    }
            {
                &mut report.stale_pending
            } else {
                continue;
            };
            tally.count += 1;
            tally.bytes += row.size;
            if tally.examples.len() < EXAMPLES_PER_CATEGORY {
                tally.examples.push(row.key.as_str().to_owned());
            }
            if opts.dry_run {
                continue;
            }
            // Re-read: the row must be the one we saw (same id at the key, unchanged).
            match rows.find_object(&row.id).await? {
                Some(now)
                    if now.updated_at == row.updated_at && now.deleted_at == row.deleted_at => {}
                _ => continue,
            }
            if let Some(mp) = &row.multipart {
                objects
                    .abort_multipart(&opts.bucket, &row.key, &mp.upload_id)
                    .await?;
            }
            objects.delete(&opts.bucket, &row.key).await?;
            rows.purge_object(&row.id).await?;
            tally.fixed += 1;
            report.purged += 1;
        }
        on_batch(&report);
        if done {
            break;
        }
    }
    if let Some(media) = media {
        purge_media(objects, media, opts, &mut report, on_batch).await?;
    }
    purge_multipart(objects, rows, media, opts, &mut report).await?;
    on_batch(&report);
    Ok(report)
}

/// Aborts the bucket's multipart uploads older than the maximum age, with the pending
/// row that records each (a row recording another upload, or none, is left alone).
async fn purge_multipart(
    objects: &dyn ObjectStore,
    rows: &dyn ObjectRowStore,
    media: Option<&dyn MediaStore>,
    opts: &PurgeOptions,
    report: &mut PurgeReport,
) -> Result<(), Error> {
    let before = opts.now - opts.multipart_max_age;
    let stale = objects.list_multipart_uploads(&opts.bucket, before).await?;
    for upload in stale {
        let tally = &mut report.stale_multipart;
        tally.count += 1;
        if tally.examples.len() < EXAMPLES_PER_CATEGORY {
            tally.examples.push(upload.key.clone());
        }
        if opts.dry_run {
            continue;
        }
        let Ok(key) = ObjectKey::parse(upload.key.as_str()) else {
            // Not a key filegate writes: not its upload to abort.
            continue;
        };
        objects
            .abort_multipart(&opts.bucket, &key, &upload.upload_id)
            .await?;
        let records = |mp: Option<&crate::ports::MultipartRef>| {
            mp.is_some_and(|m| m.upload_id == upload.upload_id)
        };
        if let Some(row) = rows.find_object_by_key(&key).await?
            && row.status == ObjectStatus::Pending
            && records(row.multipart.as_ref())
        {
            rows.purge_object(&row.id).await?;
            report.purged += 1;
        }
        if let Some(media) = media
            && let Some(row) = media.find_by_key(&key).await?
            && row.status == MediaStatus::Pending
            && records(row.multipart.as_ref())
        {
            media.delete(&row.id).await?;
            report.purged += 1;
        }
        report.stale_multipart.fixed += 1;
    }
    Ok(())
}

/// The media half of [`purge`]: pending rows past their URL's expiry plus the margin.
async fn purge_media(
    objects: &dyn ObjectStore,
    media: &dyn MediaStore,
    opts: &PurgeOptions,
    report: &mut PurgeReport,
    on_batch: &mut (dyn FnMut(&PurgeReport) + Send),
) -> Result<(), Error> {
    let batch = opts.batch.max(1);
    let mut after: Option<ObjectKey> = None;
    loop {
        let page = media.by_key(after.clone(), batch).await?;
        let done = page.len() < batch as usize;
        after = page.last().map(|m| m.key.clone()).or(after);
        report.batches += 1;
        for row in page {
            report.scanned_rows += 1;
            if !media_is_stale(&row, opts.now) {
                continue;
            }
            let tally = &mut report.stale_pending;
            tally.count += 1;
            tally.bytes += row.declared_size.unwrap_or(0);
            if tally.examples.len() < EXAMPLES_PER_CATEGORY {
                tally.examples.push(row.key.as_str().to_owned());
            }
            if opts.dry_run {
                continue;
            }
            // Re-read: still the pending row we saw (a confirm may have won meanwhile).
            match media.find(&row.id).await? {
                Some(now) if now.status == MediaStatus::Pending => {}
                _ => continue,
            }
            if let Some(mp) = &row.multipart {
                objects
                    .abort_multipart(&row.bucket, &row.key, &mp.upload_id)
                    .await?;
            }
            objects.delete(&row.bucket, &row.key).await?;
            media.delete(&row.id).await?;
            tally.fixed += 1;
            report.purged += 1;
        }
        on_batch(report);
        if done {
            return Ok(());
        }
    }
}
