//! The applier: one fix per finding, each re-checked first and idempotent.

use super::{Applied, Finding, Fix, media_is_stale};
use crate::domain::{BucketName, ByteSize, ContentType, ObjectKey};
use crate::error::{Error, Resource};
use crate::managed::arrival::{Arrival, Declared, confirmation, stored_content_type};
use crate::managed::{Bucket, BucketId, BucketStore, ObjectRow, ObjectRowStore, ObjectStatus};
use crate::media::settle_arrival;
use crate::ports::{
    Media, MediaConfirmation, MediaStatus, MediaStore, ObjectMeta, ObjectStore, ObjectSummary,
};
use std::collections::HashMap;
use std::time::Duration;
use time::OffsetDateTime;

/// Settings of [`Applier`].
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// The physical bucket the objects are in.
    pub bucket: BucketName,
    /// The service-wide maximum object size (buckets without a limit use it).
    pub max_file_size: ByteSize,
    /// "Now" for the age checks (stale rows, orphans' age).
    pub now: OffsetDateTime,
    /// Pending FILES_DB rows older than this without an object are stale, as in
    /// [`PlanOptions::stale_after`](super::PlanOptions::stale_after) (media rows use [`media_is_stale`]).
    pub stale_after: Duration,
    /// Delete orphan objects (otherwise they are only reported).
    pub delete_orphans: bool,
    /// Only orphans last modified longer ago than this are deleted.
    pub orphan_min_age: Duration,
}

/// Executes fixes through the ports, re-checking each finding first (see module docs).
pub struct Applier<'a> {
    objects: &'a dyn ObjectStore,
    rows: &'a dyn ObjectRowStore,
    buckets: &'a dyn BucketStore,
    media: Option<&'a dyn MediaStore>,
    opts: ApplyOptions,
    bucket_cache: HashMap<BucketId, Option<Bucket>>,
}

impl std::fmt::Debug for Applier<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

const SKIP_ROW_CHANGED: &str = "the row changed since it was read";

impl<'a> Applier<'a> {
    /// An applier of FILES_DB findings through these ports; media findings need
    /// [`Applier::with_media`] ([`Applier::apply`] answers [`Error::Internal`] without it).
    #[must_use]
    pub fn new(
        objects: &'a dyn ObjectStore,
        rows: &'a dyn ObjectRowStore,
        buckets: &'a dyn BucketStore,
        opts: ApplyOptions,
    ) -> Self {
        Self {
            objects,
            rows,
            buckets,
            media: None,
            opts,
            bucket_cache: HashMap::new(),
        }
    }

    /// Also fixes media findings, and re-checks the media table before deleting an orphan.
    #[must_use]
    pub fn with_media(mut self, media: &'a dyn MediaStore) -> Self {
        self.media = Some(media);
        self
    }

    /// Fixes one finding. Idempotent.
    ///
    /// # Errors
    /// Port errors ([`Error::Unavailable`]); the finding may then be partly applied, and
    /// a rerun finishes it.
    pub async fn apply(&mut self, finding: &Finding) -> Result<Applied, Error> {
        match finding {
            Finding::Orphan(o) => self.orphan(o).await,
            Finding::Missing(row) => self.missing(row).await,
            Finding::StalePending(row) => self.stale(row).await,
            Finding::Arrived { row, .. } => self.arrived(row).await,
            Finding::Mismatch { row, .. } => self.mismatch(row).await,
            Finding::Uncovered(_) => Ok(Applied::Skipped("no table covers this key space")),
            Finding::MediaMissing(m) => self.media_missing(m).await,
            Finding::MediaStale(m) => self.media_stale(m).await,
            Finding::MediaArrived { row, .. } => self.media_arrived(row).await,
            Finding::MediaMismatch { row, .. } => self.media_mismatch(row).await,
        }
    }

    fn media_store(&self) -> Result<&'a dyn MediaStore, Error> {
        self.media
            .ok_or_else(|| Error::internal("a media finding without the media table"))
    }

    /// The media row now, when it is still as the plan saw it.
    async fn media_again(&self, row: &Media) -> Result<Result<Media, Applied>, Error> {
        Ok(match self.media_store()?.find(&row.id).await? {
            None => Err(Applied::Fixed(Fix::AlreadyResolved)),
            Some(now)
                if now.status != row.status || now.size != row.size || now.etag != row.etag =>
            {
                Err(Applied::Skipped(SKIP_ROW_CHANGED))
            }
            Some(now) => Ok(now),
        })
    }

    async fn media_missing(&self, row: &Media) -> Result<Applied, Error> {
        let now = match self.media_again(row).await? {
            Ok(now) => now,
            Err(done) => return Ok(done),
        };
        if self.head(&now.key).await?.is_some() {
            return Ok(Applied::Skipped("the object is in storage now"));
        }
        self.media_store()?.delete(&now.id).await?;
        Ok(Applied::Fixed(Fix::RemovedRow))
    }

    async fn media_stale(&self, row: &Media) -> Result<Applied, Error> {
        let now = match self.media_again(row).await? {
            Ok(now) => now,
            Err(done) => return Ok(done),
        };
        if !media_is_stale(&now, self.opts.now) {
            return Ok(Applied::Skipped("not stale"));
        }
        if self.head(&now.key).await?.is_some() {
            return self.media_arrived(&now).await;
        }
        self.media_store()?.delete(&now.id).await?;
        Ok(Applied::Fixed(Fix::PurgedPending))
    }

    /// As `MediaService::confirm`: keep within the rules, else delete object then row.
    async fn media_arrived(&self, row: &Media) -> Result<Applied, Error> {
        let media = self.media_store()?;
        let Some(now) = media.find(&row.id).await? else {
            return Ok(Applied::Fixed(Fix::AlreadyResolved));
        };
        if now.status == MediaStatus::Confirmed {
            return Ok(Applied::Fixed(Fix::AlreadyResolved));
        }
        let Some(meta) = self.head(&now.key).await? else {
            return Ok(Applied::Skipped("the object is gone from storage"));
        };
        let settled = settle_arrival(
            self.objects,
            media,
            &self.opts.bucket,
            &now,
            &meta,
            self.opts.max_file_size,
        )
        .await?;
        Ok(Applied::Fixed(match settled {
            Ok(_) => Fix::Confirmed,
            Err(_) => Fix::Rejected,
        }))
    }

    async fn media_mismatch(&self, row: &Media) -> Result<Applied, Error> {
        let now = match self.media_again(row).await? {
            Ok(now) => now,
            Err(done) => return Ok(done),
        };
        let Some(meta) = self.head(&now.key).await? else {
            return Ok(Applied::Skipped("the object is gone from storage"));
        };
        let content_type = meta
            .content_type
            .as_deref()
            .and_then(|c| ContentType::parse(c).ok())
            .unwrap_or_else(|| now.content_type.clone());
        let confirmation = MediaConfirmation {
            size: meta.size,
            etag: meta.etag,
            content_type,
        };
        self.media_store()?.confirm(&now.id, &confirmation).await?;
        Ok(Applied::Fixed(Fix::Refreshed))
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>, Error> {
        match self.objects.head(&self.opts.bucket, key).await {
            Ok(m) => Ok(Some(m)),
            Err(Error::NotFound(Resource::Object)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn orphan(&self, o: &ObjectSummary) -> Result<Applied, Error> {
        if !self.opts.delete_orphans {
            return Ok(Applied::Skipped(
                "orphans are deleted only with --delete-orphans",
            ));
        }
        let Ok(key) = ObjectKey::parse(o.key.as_str()) else {
            return Ok(Applied::Skipped("not a key filegate can address"));
        };
        let cutoff = self.opts.now - self.opts.orphan_min_age;
        let old_enough = |t: Option<OffsetDateTime>| t.is_some_and(|t| t <= cutoff);
        if !old_enough(o.last_modified) {
            return Ok(Applied::Skipped("younger than --older-than"));
        }
        if self.rows.find_object_by_key(&key).await?.is_some() {
            return Ok(Applied::Skipped("a row for it appeared"));
        }
        if let Some(media) = self.media
            && media.find_by_key(&key).await?.is_some()
        {
            return Ok(Applied::Skipped("a media row for it appeared"));
        }
        let Some(meta) = self.head(&key).await? else {
            return Ok(Applied::Fixed(Fix::AlreadyResolved));
        };
        if !old_enough(meta.last_modified) {
            return Ok(Applied::Skipped("younger than --older-than"));
        }
        self.objects.delete(&self.opts.bucket, &key).await?;
        Ok(Applied::Fixed(Fix::DeletedOrphan))
    }

    async fn missing(&self, row: &ObjectRow) -> Result<Applied, Error> {
        let Some(now) = self.rows.find_object(&row.id).await? else {
            return Ok(Applied::Fixed(Fix::AlreadyResolved));
        };
        if !now.is_live() || now.updated_at != row.updated_at {
            return Ok(Applied::Skipped(SKIP_ROW_CHANGED));
        }
        if self.head(&row.key).await?.is_some() {
            return Ok(Applied::Skipped("the object is in storage now"));
        }
        // As the Delete path: soft-delete first, so an interrupted run leaves a row that
        // is never served and that purge finishes.
        self.rows
            .mark_object_deleted(&row.id, self.opts.now)
            .await?;
        self.rows.purge_object(&row.id).await?;
        Ok(Applied::Fixed(Fix::RemovedRow))
    }

    async fn stale(&mut self, row: &ObjectRow) -> Result<Applied, Error> {
        let Some(now) = self.rows.find_object(&row.id).await? else {
            return Ok(Applied::Fixed(Fix::AlreadyResolved));
        };
        if now.status != ObjectStatus::Pending || now.deleted_at.is_some() {
            return Ok(Applied::Skipped(SKIP_ROW_CHANGED));
        }
        if now.created_at >= self.opts.now - self.opts.stale_after || now.multipart.is_some() {
            return Ok(Applied::Skipped("not stale"));
        }
        if self.head(&row.key).await?.is_some() {
            // It arrived after all: confirm it like any arrived upload.
            return self.arrived(&now).await;
        }
        self.rows.purge_object(&row.id).await?;
        Ok(Applied::Fixed(Fix::PurgedPending))
    }

    async fn arrived(&mut self, row: &ObjectRow) -> Result<Applied, Error> {
        let Some(now) = self.rows.find_object(&row.id).await? else {
            return Ok(Applied::Fixed(Fix::AlreadyResolved));
        };
        if now.deleted_at.is_some() {
            return Ok(Applied::Skipped(SKIP_ROW_CHANGED));
        }
        if now.status == ObjectStatus::Confirmed {
            return Ok(Applied::Fixed(Fix::AlreadyResolved));
        }
        let Some(meta) = self.head(&now.key).await? else {
            return Ok(Applied::Skipped("the object is gone from storage"));
        };
        let Some(bucket) = self.bucket(&now.bucket_id).await? else {
            return Ok(Applied::Skipped("the row's bucket does not exist"));
        };
        let arrival = Arrival {
            objects: self.objects,
            rows: self.rows,
            physical: &self.opts.bucket,
            bucket: &bucket,
            ceiling: self.opts.max_file_size,
            declared: Declared::Ignore,
            at: self.opts.now,
        };
        Ok(Applied::Fixed(match arrival.settle(&now, meta).await? {
            Ok(_) => Fix::Confirmed,
            Err(_) => Fix::Rejected,
        }))
    }

    async fn mismatch(&self, row: &ObjectRow) -> Result<Applied, Error> {
        let Some(now) = self.rows.find_object(&row.id).await? else {
            return Ok(Applied::Fixed(Fix::AlreadyResolved));
        };
        if !now.is_live() || now.updated_at != row.updated_at {
            return Ok(Applied::Skipped(SKIP_ROW_CHANGED));
        }
        let Some(meta) = self.head(&now.key).await? else {
            return Ok(Applied::Skipped("the object is gone from storage"));
        };
        self.confirm(&now, meta).await?;
        Ok(Applied::Fixed(Fix::Refreshed))
    }

    /// Refreshes a row from its object's real metadata.
    async fn confirm(&self, row: &ObjectRow, meta: ObjectMeta) -> Result<(), Error> {
        let ct = stored_content_type(&meta, row);
        self.rows
            .confirm_object(&row.id, &confirmation(row, meta, ct, self.opts.now))
            .await
            .map(drop)
    }

    async fn bucket(&mut self, id: &BucketId) -> Result<Option<Bucket>, Error> {
        if let Some(b) = self.bucket_cache.get(id) {
            return Ok(b.clone());
        }
        let b = self.buckets.find_bucket(id).await?;
        self.bucket_cache.insert(id.clone(), b.clone());
        Ok(b)
    }
}
