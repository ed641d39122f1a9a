//! Usage statistics over both tables.

use crate::domain::ObjectKey;
use crate::error::Error;
use crate::managed::{ObjectRow, ObjectRowStore, ObjectStatus};
use crate::ports::{Media, MediaStatus, MediaStore};
use serde::Serialize;
use std::collections::BTreeMap;

/// Objects and bytes of live (confirmed, not soft-deleted) rows, and pending rows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Live objects: confirmed rows (FILES_DB's when not soft-deleted).
    pub objects: u64,
    /// Their bytes: the recorded size (media rows without one: the declared size, or 0).
    pub bytes: u64,
    /// Pending rows (FILES_DB's when not soft-deleted).
    pub pending: u64,
}

impl Usage {
    fn add(&mut self, row: &ObjectRow) {
        if row.is_live() {
            self.objects += 1;
            self.bytes += row.size;
        } else if row.status == ObjectStatus::Pending && row.deleted_at.is_none() {
            self.pending += 1;
        }
    }
}

impl Usage {
    fn add_media(&mut self, m: &Media) {
        match m.status {
            MediaStatus::Confirmed => {
                self.objects += 1;
                self.bytes += m.size.or(m.declared_size).unwrap_or(0);
            }
            MediaStatus::Pending => self.pending += 1,
        }
    }
}

/// [`stats`]' result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// FILES_DB and the media table together.
    pub total: Usage,
    /// The media table (presign-only uploads); confirmed rows whose size was never
    /// recorded count their declared size, or 0.
    pub media: Usage,
    /// By bucket id.
    pub by_bucket: BTreeMap<String, Usage>,
    /// By organization id; rows uploaded without one are under `""`.
    pub by_organization: BTreeMap<String, Usage>,
}

/// Scans every row of both tables in pages of `page` (memory: one entry per bucket and
/// organization).
///
/// # Errors
/// Port errors.
pub async fn stats(
    rows: &dyn ObjectRowStore,
    media: Option<&dyn MediaStore>,
    page: u32,
) -> Result<Stats, Error> {
    let page = page.max(1);
    let mut out = Stats::default();
    if let Some(media) = media {
        let mut after: Option<ObjectKey> = None;
        loop {
            let batch = media.by_key(after.clone(), page).await?;
            let done = batch.len() < page as usize;
            after = batch.last().map(|m| m.key.clone()).or(after);
            for m in &batch {
                out.total.add_media(m);
                out.media.add_media(m);
                out.by_organization
                    .entry(m.organization_id.clone())
                    .or_default()
                    .add_media(m);
            }
            if done {
                break;
            }
        }
    }
    let mut after: Option<ObjectKey> = None;
    loop {
        let batch = rows.objects_by_key(after.clone(), page).await?;
        let done = batch.len() < page as usize;
        after = batch.last().map(|r| r.key.clone()).or(after);
        for row in &batch {
            out.total.add(row);
            out.by_bucket
                .entry(row.bucket_id.as_str().to_owned())
                .or_default()
                .add(row);
            out.by_organization
                .entry(row.organization_id.clone().unwrap_or_default())
                .or_default()
                .add(row);
        }
        if done {
            return Ok(out);
        }
    }
}
