//! Reconcile, purge and usage statistics over the objects in the physical bucket
//! ([`ObjectStore`]) and every table that owns keys in it: FILES_DB's objects
//! ([`ObjectRowStore`], managed mode) and the media table ([`MediaStore`], presign-only
//! uploads, keys `org/<org>/…`). A key owned by a row of either table is never an orphan,
//! whatever its prefix; an object in a key space no table covers ([`KeySpaces`]) is
//! reported as [`Finding::Uncovered`] and never deleted.
//!
//! # The plan: a streaming merge
//! [`Planner`] reads the bucket listing (ListObjectsV2 pages, ascending byte order of keys)
//! and the rows ([`ObjectRowStore::objects_by_key`], the same byte order: SQLite's default
//! `BINARY` collation compares UTF-8 bytes, as Rust's `str` ordering does) one page at a
//! time, and walks both like the merge step of a merge sort. At any moment it holds at
//! most one page of each side, so memory stays flat however many objects there are. Each
//! key is met once, with its object, its row, or both, and classified:
//!
//! | object | row                                    | finding                           |
//! |--------|----------------------------------------|-----------------------------------|
//! | yes    | none                                   | [`Finding::Orphan`]               |
//! | no     | confirmed                              | [`Finding::Missing`]              |
//! | no     | pending, older than `stale_after`      | [`Finding::StalePending`]         |
//! | no     | pending, younger                       | none (an upload in flight)        |
//! | yes    | pending                                | [`Finding::Arrived`]              |
//! | yes    | confirmed, size / etag / type differ   | [`Finding::Mismatch`]             |
//! | any    | soft-deleted                           | none (a delete in progress: purge)|
//!
//! Media rows are merged as a third side, by the same rules ([`Finding::MediaMissing`],
//! …); a pending media row is stale once its own upload URL expired plus
//! [`STALE_PENDING_MARGIN`] ([`media_is_stale`]). An object without a row of either table
//! is an orphan only in a covered key space.
//!
//! Either side arriving out of order is an error (the merge would be wrong), not a finding.
//!
//! # Applying
//! [`Applier`] fixes one finding at a time through the ports, and re-reads the row and
//! HEADs the object first: the listing and the rows were read at slightly different
//! times, so a finding may be stale by the time it is applied, and then it is skipped.
//! Every fix is idempotent, so a run can be interrupted and rerun (or resumed with
//! [`PlanOptions::start_after`]).

use crate::domain::{BucketName, ByteSize, ContentType, Expiry, ObjectKey};
use crate::error::{Error, Resource};
use crate::managed::bucket::mime_allowed;
use crate::managed::{
    Bucket, BucketId, BucketStore, ObjectConfirmation, ObjectRow, ObjectRowStore, ObjectStatus,
};
use crate::media::check_arrival;
use crate::ports::{
    Media, MediaConfirmation, MediaStatus, MediaStore, ObjectMeta, ObjectStore, ObjectSummary,
};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;
use time::OffsetDateTime;

/// Added to the presigned URL maximum before a pending row counts as abandoned.
pub const STALE_PENDING_MARGIN: Duration = Duration::from_secs(3600);

/// How old a pending row must be before it is treated as abandoned: the longest a
/// presigned upload URL can live ([`Expiry::MAX`], 7 days) plus [`STALE_PENDING_MARGIN`],
/// so an upload in flight is never treated as abandoned.
#[must_use]
pub fn default_stale_after() -> Duration {
    Expiry::MAX.duration() + STALE_PENDING_MARGIN
}

/// How old a `pending` row must be before it counts as abandoned when presigned URLs live
/// `upload_expiry`: no URL signed for it can start a PUT any more, and a PUT started just
/// before expiry had [`STALE_PENDING_MARGIN`] to finish. Through-server uploads clean up
/// their own row; this only catches a crash.
#[must_use]
pub fn stale_pending_after(upload_expiry: Expiry) -> Duration {
    upload_expiry.duration() + STALE_PENDING_MARGIN
}

/// Whether a pending media row is abandoned: its upload URL expired more than
/// [`STALE_PENDING_MARGIN`] ago (rows signed before the expiry was recorded: their
/// creation plus the presign maximum).
#[must_use]
pub fn media_is_stale(row: &Media, now: OffsetDateTime) -> bool {
    let expiry = row
        .upload_expires_at
        .unwrap_or(row.created_at + Expiry::MAX.duration());
    row.status == MediaStatus::Pending && expiry + STALE_PENDING_MARGIN < now
}

/// The key spaces the metadata tables cover: only there is an object without a row an
/// orphan. Anything else in the bucket (another application's files, backups, keys
/// filegate never writes) is [`Finding::Uncovered`] and left alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySpaces {
    /// Every key: the bucket holds nothing but filegate's files.
    pub all: bool,
    /// `org/<org>/<file>`: the media table's (presign-only uploads).
    pub media: bool,
    /// `<owner>/<name>/<path>` for these managed bucket names (FILES_DB's).
    pub buckets: BTreeSet<String>,
}

impl KeySpaces {
    /// Every key is covered.
    #[must_use]
    pub fn everything() -> Self {
        Self {
            all: true,
            ..Self::default()
        }
    }

    /// Whether a table would own `key` if it were filegate's.
    #[must_use]
    pub fn covers(&self, key: &str) -> bool {
        if self.all {
            return true;
        }
        let mut segments = key.split('/');
        let (first, second) = (segments.next(), segments.next());
        // Both layouts have at least three segments.
        if segments.next().is_none() {
            return false;
        }
        (self.media && first == Some("org")) || second.is_some_and(|b| self.buckets.contains(b))
    }
}

/// Default minimum age of an orphan object before `--delete-orphans` removes it.
pub const DEFAULT_ORPHAN_MIN_AGE: Duration = Duration::from_secs(24 * 3600);

/// Soft-deleted rows younger than this are left to the server's own Delete path.
pub const SOFT_DELETE_GRACE: Duration = Duration::from_secs(300);

/// How many example keys a report keeps per category.
pub const EXAMPLES_PER_CATEGORY: usize = 10;

// ---------------------------------------------------------------------------------------
// Findings and the report
// ---------------------------------------------------------------------------------------

/// The kinds of drift between storage and FILES_DB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// An object in storage without a row.
    Orphan,
    /// A confirmed row whose object is not in storage.
    Missing,
    /// A pending row, older than the presign maximum plus a margin, without its object.
    StalePending,
    /// A pending row whose object did arrive (its confirm never came).
    Arrived,
    /// A confirmed row whose size, etag or content type differ from storage.
    Mismatch,
    /// An object in a key space no table covers: reported, never changed (not drift).
    Uncovered,
}

impl Category {
    pub const ALL: [Self; 6] = [
        Self::Orphan,
        Self::Missing,
        Self::StalePending,
        Self::Arrived,
        Self::Mismatch,
        Self::Uncovered,
    ];

    /// Whether findings of this category are drift (count in the exit code).
    #[must_use]
    pub fn is_drift(self) -> bool {
        self != Self::Uncovered
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Orphan => "orphan",
            Self::Missing => "missing",
            Self::StalePending => "stale_pending",
            Self::Arrived => "arrived",
            Self::Mismatch => "mismatch",
            Self::Uncovered => "uncovered",
        }
    }

    /// A human description for reports.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Self::Orphan => "orphan objects (in storage, no row)",
            Self::Missing => "missing objects (confirmed row, no object)",
            Self::StalePending => "stale pending rows (no object, past the presign maximum)",
            Self::Arrived => "pending rows whose object arrived",
            Self::Mismatch => "mismatched rows (size, etag or content type)",
            Self::Uncovered => "objects in key spaces no table covers (left alone)",
        }
    }
}

/// One difference between storage and FILES_DB, at one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    Orphan(ObjectSummary),
    Missing(ObjectRow),
    StalePending(ObjectRow),
    Arrived {
        row: ObjectRow,
        object: ObjectSummary,
    },
    Mismatch {
        row: ObjectRow,
        object: ObjectSummary,
        /// `size`, `etag`, `content_type`: what differs.
        fields: Vec<&'static str>,
    },
    /// An object no row owns, outside every covered key space.
    Uncovered(ObjectSummary),
    /// A confirmed media row whose object is not in storage.
    MediaMissing(Media),
    /// A pending media row without its object, past its URL's expiry plus the margin.
    MediaStale(Media),
    /// A pending media row whose object arrived.
    MediaArrived {
        row: Media,
        object: ObjectSummary,
    },
    /// A confirmed media row whose recorded size, etag or type differ from storage.
    MediaMismatch {
        row: Media,
        object: ObjectSummary,
        fields: Vec<&'static str>,
    },
}

impl Finding {
    #[must_use]
    pub fn category(&self) -> Category {
        match self {
            Self::Orphan(_) => Category::Orphan,
            Self::Missing(_) | Self::MediaMissing(_) => Category::Missing,
            Self::StalePending(_) | Self::MediaStale(_) => Category::StalePending,
            Self::Arrived { .. } | Self::MediaArrived { .. } => Category::Arrived,
            Self::Mismatch { .. } | Self::MediaMismatch { .. } => Category::Mismatch,
            Self::Uncovered(_) => Category::Uncovered,
        }
    }

    #[must_use]
    pub fn key(&self) -> &str {
        match self {
            Self::Orphan(o) | Self::Uncovered(o) => &o.key,
            Self::Missing(r) | Self::StalePending(r) => r.key.as_str(),
            Self::Arrived { row, .. } | Self::Mismatch { row, .. } => row.key.as_str(),
            Self::MediaMissing(m) | Self::MediaStale(m) => m.key.as_str(),
            Self::MediaArrived { row, .. } | Self::MediaMismatch { row, .. } => row.key.as_str(),
        }
    }

    /// The bytes concerned: the object's size when there is one, else the row's.
    #[must_use]
    pub fn bytes(&self) -> u64 {
        match self {
            Self::Orphan(o)
            | Self::Uncovered(o)
            | Self::Arrived { object: o, .. }
            | Self::Mismatch { object: o, .. }
            | Self::MediaArrived { object: o, .. }
            | Self::MediaMismatch { object: o, .. } => o.size,
            Self::Missing(r) | Self::StalePending(r) => r.size,
            Self::MediaMissing(m) | Self::MediaStale(m) => m.size.or(m.declared_size).unwrap_or(0),
        }
    }
}

/// What applying a finding did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fix {
    /// The pending row was confirmed with the object's real metadata.
    Confirmed,
    /// The arrived object broke the bucket's limits: object and row deleted (as confirm does).
    Rejected,
    /// The stale pending row was removed.
    PurgedPending,
    /// The row of the missing object was soft-deleted then removed.
    RemovedRow,
    /// The row's metadata was rewritten from storage.
    Refreshed,
    /// The orphan object was deleted.
    DeletedOrphan,
    /// Someone else fixed it meanwhile (row or object already gone or confirmed).
    AlreadyResolved,
}

/// The outcome of [`Applier::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Fixed(Fix),
    /// Left as it is, with the reason.
    Skipped(&'static str),
}

/// Count and bytes of one category.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub count: u64,
    pub bytes: u64,
    /// Fixed by `--apply` (including [`Fix::AlreadyResolved`]).
    pub fixed: u64,
    /// Left as they are by `--apply` (see the reasons in the log).
    pub skipped: u64,
    /// Up to [`EXAMPLES_PER_CATEGORY`] keys.
    pub examples: Vec<String>,
}

/// Everything a reconcile run found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    /// The physical bucket.
    pub bucket: String,
    /// The managed bucket the run was limited to.
    pub bucket_name: Option<String>,
    pub prefix: Option<String>,
    pub start_after: Option<String>,
    pub applied: bool,
    pub scanned_objects: u64,
    pub scanned_bytes: u64,
    pub scanned_rows: u64,
    /// Pending rows without an object, younger than the stale threshold (not drift).
    pub in_flight: u64,
    /// Soft-deleted rows (a delete in progress, or for `purge`; not drift).
    pub soft_deleted: u64,
    pub categories: BTreeMap<Category, Tally>,
    /// The last key the run got through; resume with `--start-after` it.
    pub last_key: Option<String>,
}

impl ReconcileReport {
    #[must_use]
    pub fn new(opts: &PlanOptions, applied: bool) -> Self {
        Self {
            bucket: opts.bucket.as_str().to_owned(),
            bucket_name: opts.bucket_name.clone(),
            prefix: opts.prefix.clone(),
            start_after: opts.start_after.clone(),
            applied,
            categories: Category::ALL
                .into_iter()
                .map(|c| (c, Tally::default()))
                .collect(),
            ..Self::default()
        }
    }

    pub fn record(&mut self, finding: &Finding) {
        let t = self.categories.entry(finding.category()).or_default();
        t.count += 1;
        t.bytes += finding.bytes();
        if t.examples.len() < EXAMPLES_PER_CATEGORY {
            t.examples.push(finding.key().to_owned());
        }
    }

    pub fn record_applied(&mut self, finding: &Finding, applied: &Applied) {
        let t = self.categories.entry(finding.category()).or_default();
        match applied {
            Applied::Fixed(_) => t.fixed += 1,
            Applied::Skipped(_) => t.skipped += 1,
        }
    }

    /// Copies the planner's counters.
    pub fn update_progress(&mut self, p: &Progress) {
        self.scanned_objects = p.objects;
        self.scanned_bytes = p.object_bytes;
        self.scanned_rows = p.rows;
        self.in_flight = p.in_flight;
        self.soft_deleted = p.soft_deleted;
        self.last_key.clone_from(&p.last_key);
    }

    /// Every finding that is drift, fixed or not.
    #[must_use]
    pub fn differences(&self) -> u64 {
        self.categories
            .iter()
            .filter(|(c, _)| c.is_drift())
            .map(|(_, t)| t.count)
            .sum()
    }

    /// Drift not fixed (all of it on a dry run).
    #[must_use]
    pub fn remaining(&self) -> u64 {
        self.categories
            .iter()
            .filter(|(c, _)| c.is_drift())
            .map(|(_, t)| t.count.saturating_sub(t.fixed))
            .sum()
    }
}

// ---------------------------------------------------------------------------------------
// The planner
// ---------------------------------------------------------------------------------------

/// What to compare, and how.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// The physical bucket.
    pub bucket: BucketName,
    /// Only keys starting with this (a plain string prefix).
    pub prefix: Option<String>,
    /// Only keys strictly after this one (resume an interrupted run).
    pub start_after: Option<String>,
    /// Only keys of this managed bucket: `<owner>/<name>/…` (every organization's).
    pub bucket_name: Option<String>,
    /// "Now" for the age checks.
    pub now: OffsetDateTime,
    /// Pending rows older than this without an object are stale ([`default_stale_after`]).
    pub stale_after: Duration,
    /// HEAD every object of a confirmed row to compare its content type (and its etag
    /// when the listing has none, as on the embedded endpoint). One request per object.
    pub deep: bool,
    /// Keys per listing page (1..=1000).
    pub list_page: u32,
    /// Rows per database page.
    pub row_page: u32,
    /// Where an object without a row is an orphan (default: nowhere, so nothing is
    /// deleted unless the caller says which key spaces its tables cover).
    pub key_spaces: KeySpaces,
}

impl PlanOptions {
    #[must_use]
    pub fn new(bucket: BucketName, now: OffsetDateTime) -> Self {
        Self {
            bucket,
            prefix: None,
            start_after: None,
            bucket_name: None,
            now,
            stale_after: default_stale_after(),
            deep: false,
            list_page: 1000,
            row_page: 1000,
            key_spaces: KeySpaces::default(),
        }
    }
}

/// Counters of a running plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub objects: u64,
    pub object_bytes: u64,
    pub rows: u64,
    pub in_flight: u64,
    pub soft_deleted: u64,
    /// The last key merged.
    pub last_key: Option<String>,
}

/// The streaming merge (see the module docs). Call [`Planner::next`] until `None`.
pub struct Planner<'a> {
    objects: &'a dyn ObjectStore,
    rows: &'a dyn ObjectRowStore,
    opts: PlanOptions,
    listed: VecDeque<ObjectSummary>,
    continuation: Option<String>,
    listing_done: bool,
    last_listed: Option<String>,
    read: VecDeque<ObjectRow>,
    rows_after: Option<ObjectKey>,
    rows_done: bool,
    last_read: Option<String>,
    media: Option<&'a dyn MediaStore>,
    media_read: VecDeque<Media>,
    media_after: Option<ObjectKey>,
    media_done: bool,
    last_media: Option<String>,
    progress: Progress,
}

impl std::fmt::Debug for Planner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Planner")
            .field("opts", &self.opts)
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

impl<'a> Planner<'a> {
    #[must_use]
    pub fn new(
        objects: &'a dyn ObjectStore,
        rows: &'a dyn ObjectRowStore,
        mut opts: PlanOptions,
    ) -> Self {
        opts.prefix = opts.prefix.filter(|p| !p.is_empty());
        opts.start_after = opts.start_after.filter(|s| !s.is_empty());
        opts.list_page = opts.list_page.clamp(1, 1000);
        opts.row_page = opts.row_page.max(1);
        // The rows' cursor must be a valid key at or below every wanted key; rows at or
        // below the real bounds are skipped as they come.
        let from_start = opts
            .start_after
            .as_deref()
            .and_then(|s| key_at_or_below(s, false));
        let from_prefix = opts
            .prefix
            .as_deref()
            .and_then(|p| key_at_or_below(p, true));
        let rows_after = match (from_start, from_prefix) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        Self {
            objects,
            rows,
            opts,
            listed: VecDeque::new(),
            continuation: None,
            listing_done: false,
            last_listed: None,
            read: VecDeque::new(),
            media_after: rows_after.clone(),
            rows_after,
            rows_done: false,
            last_read: None,
            media: None,
            media_read: VecDeque::new(),
            media_done: true,
            last_media: None,
            progress: Progress::default(),
        }
    }

    /// Also merges the media table's rows (presign-only uploads) as owners of keys.
    #[must_use]
    pub fn with_media(mut self, media: &'a dyn MediaStore) -> Self {
        self.media = Some(media);
        self.media_done = false;
        self
    }

    #[must_use]
    pub fn options(&self) -> &PlanOptions {
        &self.opts
    }

    #[must_use]
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// The next finding, or `None` once both sides are exhausted.
    ///
    /// # Errors
    /// Port errors; [`Error::Internal`] when either side is not in ascending byte order.
    pub async fn next(&mut self) -> Result<Option<Finding>, Error> {
        loop {
            self.fill_listing().await?;
            self.fill_rows().await?;
            self.fill_media().await?;
            // The smallest key at the front of the three sides; each side equal to it goes.
            let Some(min) = [
                self.listed.front().map(|o| o.key.as_str()),
                self.read.front().map(|r| r.key.as_str()),
                self.media_read.front().map(|m| m.key.as_str()),
            ]
            .into_iter()
            .flatten()
            .min()
            .map(str::to_owned) else {
                return Ok(None);
            };
            let object = pop_if(&mut self.listed, |o| o.key == min);
            let row = pop_if(&mut self.read, |r| r.key.as_str() == min);
            let media = pop_if(&mut self.media_read, |m| m.key.as_str() == min);
            if let Some(o) = &object {
                self.progress.objects += 1;
                self.progress.object_bytes += o.size;
            }
            self.progress.rows += u64::from(row.is_some()) + u64::from(media.is_some());
            self.progress.last_key = Some(min);
            let found = match (row, media) {
                (None, Some(m)) => self.classify_media(object, m).await?,
                (None, None) => object.map(|o| {
                    if self.opts.key_spaces.covers(&o.key) {
                        Finding::Orphan(o)
                    } else {
                        Finding::Uncovered(o)
                    }
                }),
                // A FILES_DB row decides; a media row at the same key only owns it too.
                (row @ Some(_), _) => self.classify(object, row).await?,
            };
            if let Some(f) = found {
                return Ok(Some(f));
            }
        }
    }

    /// Drains the plan into a list (tests, small buckets).
    ///
    /// # Errors
    /// As [`Planner::next`].
    pub async fn collect(mut self) -> Result<Vec<Finding>, Error> {
        let mut out = Vec::new();
        while let Some(f) = self.next().await? {
            out.push(f);
        }
        Ok(out)
    }

    async fn classify(
        &mut self,
        object: Option<ObjectSummary>,
        row: Option<ObjectRow>,
    ) -> Result<Option<Finding>, Error> {
        let Some(row) = row else {
            return Ok(object.map(Finding::Orphan));
        };
        if row.deleted_at.is_some() {
            self.progress.soft_deleted += 1;
            return Ok(None);
        }
        match (row.status, object) {
            (ObjectStatus::Pending, Some(object)) => Ok(Some(Finding::Arrived { row, object })),
            (ObjectStatus::Pending, None) => {
                if row.created_at < self.opts.now - self.opts.stale_after {
                    Ok(Some(Finding::StalePending(row)))
                } else {
                    self.progress.in_flight += 1;
                    Ok(None)
                }
            }
            (ObjectStatus::Confirmed, None) => Ok(Some(Finding::Missing(row))),
            (ObjectStatus::Confirmed, Some(object)) => {
                let mut fields = Vec::new();
                if object.size != row.size {
                    fields.push("size");
                }
                let mut etag = object.etag.clone();
                let mut content_type = None;
                if self.opts.deep
                    && let Ok(key) = ObjectKey::parse(object.key.as_str())
                {
                    match self.objects.head(&self.opts.bucket, &key).await {
                        Ok(meta) => {
                            etag = etag.or(meta.etag);
                            content_type = meta.content_type;
                        }
                        // Deleted since the listing: the next run reports it missing.
                        Err(Error::NotFound(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                if let (Some(a), Some(b)) = (&etag, &row.etag)
                    && a != b
                {
                    fields.push("etag");
                }
                if let Some(ct) = content_type
                    && !ct.eq_ignore_ascii_case(row.content_type.as_str())
                {
                    fields.push("content_type");
                }
                if fields.is_empty() {
                    Ok(None)
                } else {
                    Ok(Some(Finding::Mismatch {
                        row,
                        object,
                        fields,
                    }))
                }
            }
        }
    }

    async fn classify_media(
        &mut self,
        object: Option<ObjectSummary>,
        row: Media,
    ) -> Result<Option<Finding>, Error> {
        match (row.status, object) {
            (MediaStatus::Pending, Some(object)) => Ok(Some(Finding::MediaArrived { row, object })),
            (MediaStatus::Pending, None) => {
                if media_is_stale(&row, self.opts.now) {
                    Ok(Some(Finding::MediaStale(row)))
                } else {
                    self.progress.in_flight += 1;
                    Ok(None)
                }
            }
            (MediaStatus::Confirmed, None) => Ok(Some(Finding::MediaMissing(row))),
            (MediaStatus::Confirmed, Some(object)) => {
                // Rows confirmed by the migration have no size or etag yet: compare what
                // is known.
                let mut fields = Vec::new();
                if row.size.is_some_and(|s| s != object.size) {
                    fields.push("size");
                }
                let mut etag = object.etag.clone();
                let mut content_type = None;
                if self.opts.deep {
                    match self.objects.head(&self.opts.bucket, &row.key).await {
                        Ok(meta) => {
                            etag = etag.or(meta.etag);
                            content_type = meta.content_type;
                        }
                        Err(Error::NotFound(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                if let (Some(a), Some(b)) = (&etag, &row.etag)
                    && a != b
                {
                    fields.push("etag");
                }
                if let Some(ct) = content_type
                    && !ct.eq_ignore_ascii_case(row.content_type.as_str())
                {
                    fields.push("content_type");
                }
                Ok((!fields.is_empty()).then_some(Finding::MediaMismatch {
                    row,
                    object,
                    fields,
                }))
            }
        }
    }

    /// Reads media pages until one row of this bucket is buffered or the table ends.
    async fn fill_media(&mut self) -> Result<(), Error> {
        let Some(media) = self.media else {
            return Ok(());
        };
        while self.media_read.is_empty() && !self.media_done {
            let page = media
                .by_key(self.media_after.clone(), self.opts.row_page)
                .await?;
            if page.len() < self.opts.row_page as usize {
                self.media_done = true;
            }
            if let Some(last) = page.last() {
                self.media_after = Some(last.key.clone());
            }
            for m in page {
                advance(
                    &mut self.last_media,
                    m.key.as_str(),
                    "the media rows are not in ascending byte order of keys at",
                )?;
                // Rows of another physical bucket are not this listing's business.
                if m.bucket != self.opts.bucket {
                    continue;
                }
                match self.wanted(m.key.as_str()) {
                    Wanted::Yes => self.media_read.push_back(m),
                    Wanted::Before => {}
                    Wanted::Past => {
                        self.media_done = true;
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads listing pages until one object is buffered or the listing ends.
    async fn fill_listing(&mut self) -> Result<(), Error> {
        while self.listed.is_empty() && !self.listing_done {
            let page = self
                .objects
                .list(
                    &self.opts.bucket,
                    self.opts.prefix.clone(),
                    self.continuation.take(),
                    self.opts.list_page,
                )
                .await?;
            self.continuation = page.next;
            self.listing_done = self.continuation.is_none();
            for o in page.objects {
                advance(
                    &mut self.last_listed,
                    &o.key,
                    "the bucket listing is not in ascending byte order at",
                )?;
                if self.wanted(&o.key) == Wanted::Yes {
                    self.listed.push_back(o);
                }
            }
        }
        Ok(())
    }

    /// Reads row pages until one row is buffered or the rows end.
    async fn fill_rows(&mut self) -> Result<(), Error> {
        while self.read.is_empty() && !self.rows_done {
            let page = self
                .rows
                .objects_by_key(self.rows_after.clone(), self.opts.row_page)
                .await?;
            if page.len() < self.opts.row_page as usize {
                self.rows_done = true;
            }
            if let Some(last) = page.last() {
                self.rows_after = Some(last.key.clone());
            }
            for r in page {
                advance(
                    &mut self.last_read,
                    r.key.as_str(),
                    "the rows are not in ascending byte order of keys at",
                )?;
                match self.wanted(r.key.as_str()) {
                    Wanted::Yes => self.read.push_back(r),
                    Wanted::Before => {}
                    Wanted::Past => {
                        self.rows_done = true;
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    fn wanted(&self, key: &str) -> Wanted {
        if let Some(name) = &self.opts.bucket_name
            && key.split('/').nth(1) != Some(name.as_str())
        {
            return Wanted::Before;
        }
        if let Some(after) = &self.opts.start_after
            && key <= after.as_str()
        {
            return Wanted::Before;
        }
        match &self.opts.prefix {
            Some(p) if key.starts_with(p.as_str()) => Wanted::Yes,
            // Keys starting with P are one contiguous range in byte order, from P itself.
            Some(p) if key < p.as_str() => Wanted::Before,
            Some(_) => Wanted::Past,
            None => Wanted::Yes,
        }
    }
}

fn pop_if<T>(side: &mut VecDeque<T>, f: impl FnOnce(&T) -> bool) -> Option<T> {
    if side.front().is_some_and(f) {
        side.pop_front()
    } else {
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    Before,
    Yes,
    Past,
}

/// The longest valid key that is a prefix of `s` (so it sorts at or before `s`), and
/// strictly shorter than `s` when `strict`. `None`: start from the first row.
fn key_at_or_below(s: &str, strict: bool) -> Option<ObjectKey> {
    let mut end = s.len();
    if strict {
        end = s.char_indices().last()?.0;
    }
    loop {
        if end == 0 {
            return None;
        }
        if let Ok(k) = ObjectKey::parse(&s[..end]) {
            return Some(k);
        }
        end = s[..end].char_indices().last()?.0;
    }
}

// ---------------------------------------------------------------------------------------
// The applier
// ---------------------------------------------------------------------------------------

/// Settings of [`Applier`].
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub bucket: BucketName,
    /// The service-wide maximum object size (buckets without a limit use it).
    pub max_file_size: ByteSize,
    pub now: OffsetDateTime,
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
        match check_arrival(&now, &meta, self.opts.max_file_size) {
            Ok(c) => {
                media.confirm(&now.id, &c).await?;
                Ok(Applied::Fixed(Fix::Confirmed))
            }
            Err(_) => {
                self.objects.delete(&self.opts.bucket, &now.key).await?;
                media.delete(&now.id).await?;
                Ok(Applied::Fixed(Fix::Rejected))
            }
        }
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
        if now.created_at >= self.opts.now - self.opts.stale_after {
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
        let ct = content_type_of(&meta, &now);
        let max = bucket.effective_size_limit(self.opts.max_file_size);
        if meta.size > max.bytes() || !mime_allowed(&bucket.allowed_mime_types, &ct) {
            // As confirm does: the object breaks the bucket's limits.
            self.objects.delete(&self.opts.bucket, &now.key).await?;
            self.rows.purge_object(&now.id).await?;
            return Ok(Applied::Fixed(Fix::Rejected));
        }
        self.confirm(&now, meta, ct).await?;
        Ok(Applied::Fixed(Fix::Confirmed))
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
        let ct = content_type_of(&meta, &now);
        self.confirm(&now, meta, ct).await?;
        Ok(Applied::Fixed(Fix::Refreshed))
    }

    async fn confirm(
        &self,
        row: &ObjectRow,
        meta: ObjectMeta,
        ct: ContentType,
    ) -> Result<(), Error> {
        self.rows
            .confirm_object(
                &row.id,
                &ObjectConfirmation {
                    size: meta.size,
                    etag: meta.etag,
                    content_type: ct,
                    owner_id: row.owner_id.clone(),
                    at: self.opts.now,
                },
            )
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

/// Storage's content type when it is a valid one, else the row's (as confirm does).
fn content_type_of(meta: &ObjectMeta, row: &ObjectRow) -> ContentType {
    meta.content_type
        .as_deref()
        .and_then(|c| ContentType::parse(c).ok())
        .unwrap_or_else(|| row.content_type.clone())
}

/// A failed run: the error, and the report up to it (its `last_key` is safe to resume
/// from with `start_after`).
#[derive(Debug)]
pub struct Interrupted {
    pub error: Error,
    pub report: ReconcileReport,
}

/// Runs a whole reconcile: plans, applies when `applier` is given, and calls `on_step`
/// after every finding (with the outcome when applied) and every [`PROGRESS_EVERY`] keys.
///
/// # Errors
/// [`Interrupted`] on the first port error.
pub async fn run(
    mut planner: Planner<'_>,
    mut applier: Option<&mut Applier<'_>>,
    on_step: &mut OnStep<'_>,
) -> Result<ReconcileReport, Box<Interrupted>> {
    let mut report = ReconcileReport::new(planner.options(), applier.is_some());
    // The last key whose item was fully handled: a safe resume point.
    let mut safe: Option<String> = planner.options().start_after.clone();
    let mut seen = 0u64;
    let fail = |error: Error, mut report: ReconcileReport, safe: Option<String>| {
        report.last_key = safe;
        Box::new(Interrupted { error, report })
    };
    loop {
        let found = match planner.next().await {
            Ok(f) => f,
            Err(e) => {
                report.update_progress(planner.progress());
                return Err(fail(e, report, safe));
            }
        };
        report.update_progress(planner.progress());
        let Some(finding) = found else {
            on_step(planner.progress(), None);
            return Ok(report);
        };
        report.record(&finding);
        let applied = match applier.as_deref_mut() {
            Some(a) => match a.apply(&finding).await {
                Ok(x) => Some(x),
                Err(e) => return Err(fail(e, report, safe)),
            },
            None => None,
        };
        if let Some(a) = &applied {
            report.record_applied(&finding, a);
        }
        safe.clone_from(&report.last_key);
        on_step(planner.progress(), Some((&finding, applied.as_ref())));
        let merged = planner.progress().objects + planner.progress().rows;
        if merged / PROGRESS_EVERY != seen / PROGRESS_EVERY {
            on_step(planner.progress(), None);
        }
        seen = merged;
    }
}

/// The callback of [`run`]: progress, and the finding just handled with its outcome.
pub type OnStep<'a> = dyn FnMut(&Progress, Option<(&Finding, Option<&Applied>)>) + Send + 'a;

/// How often (in keys merged) [`run`] reports progress between findings.
pub const PROGRESS_EVERY: u64 = 1000;

// ---------------------------------------------------------------------------------------
// Purge
// ---------------------------------------------------------------------------------------

/// Settings of [`purge`].
#[derive(Debug, Clone)]
pub struct PurgeOptions {
    pub bucket: BucketName,
    pub now: OffsetDateTime,
    /// Pending rows older than this go ([`default_stale_after`]).
    pub stale_after: Duration,
    /// Soft-deleted rows younger than this are left to the server ([`SOFT_DELETE_GRACE`]).
    pub deleted_grace: Duration,
    /// Rows per batch.
    pub batch: u32,
    pub dry_run: bool,
}

/// What [`purge`] found (and, unless a dry run, removed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    pub dry_run: bool,
    pub scanned_rows: u64,
    /// Soft-deleted rows: count and bytes (row sizes).
    pub soft_deleted: Tally,
    /// Stale pending rows: count and declared bytes.
    pub stale_pending: Tally,
    /// Rows (with their objects) removed.
    pub purged: u64,
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
                && row.created_at < stale_before
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
    Ok(report)
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

// ---------------------------------------------------------------------------------------
// Stats
// ---------------------------------------------------------------------------------------

/// Objects and bytes of live (confirmed, not soft-deleted) rows, and pending rows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub objects: u64,
    pub bytes: u64,
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

/// Records `key` as the last one read from a source of the merge, which relies on every
/// source being in ascending byte order: a key not after the previous one is an error
/// (`what`, then the key).
fn advance(last: &mut Option<String>, key: &str, what: &str) -> Result<(), Error> {
    if last.as_deref().is_some_and(|l| key <= l) {
        return Err(Error::internal(format!("{what} {key:?}")));
    }
    *last = Some(key.to_owned());
    Ok(())
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::managed::{MockBucketStore, MockObjectRowStore, ObjectId, ObjectPath};
    use crate::ports::{ListPage, MockObjectStore};
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2025-06-10 12:00 UTC);

    fn bucket() -> BucketName {
        BucketName::parse("phys-bucket").unwrap()
    }

    fn obj(key: &str, size: u64) -> ObjectSummary {
        ObjectSummary {
            key: key.to_owned(),
            size,
            etag: None,
            last_modified: Some(NOW - Duration::from_secs(48 * 3600)),
        }
    }

    fn row(key: &str, status: ObjectStatus, size: u64, age: Duration) -> ObjectRow {
        ObjectRow {
            id: ObjectId::generate(),
            bucket_id: BucketId::generate(),
            organization_id: Some("org".into()),
            owner_id: "u".into(),
            segment: key.split('/').next().unwrap().into(),
            key: ObjectKey::parse(key).unwrap(),
            path: ObjectPath::parse("p").unwrap(),
            content_type: ContentType::parse("image/png").unwrap(),
            size,
            etag: None,
            status,
            created_at: NOW - age,
            updated_at: NOW - age,
            deleted_at: None,
        }
    }

    fn confirmed(key: &str, size: u64) -> ObjectRow {
        row(key, ObjectStatus::Confirmed, size, Duration::from_secs(60))
    }

    const OLD: Duration = Duration::from_secs(8 * 24 * 3600);
    const YOUNG: Duration = Duration::from_secs(3600);

    /// A listing over `objects` (sorted here, by bytes), `empty_every`: every n-th call
    /// returns an empty page that still has a continuation token.
    fn listing(mut objects: Vec<ObjectSummary>, empty_every: usize) -> MockObjectStore {
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut store = MockObjectStore::new();
        store
            .expect_list()
            .returning(move |_, prefix, continuation, max| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                let prefix = prefix.unwrap_or_default();
                let matching: Vec<&ObjectSummary> = objects
                    .iter()
                    .filter(|o| o.key.starts_with(&prefix))
                    .filter(|o| continuation.as_ref().is_none_or(|c| o.key > *c))
                    .collect();
                if empty_every >= 2 && n.is_multiple_of(empty_every) && !matching.is_empty() {
                    return Ok(ListPage {
                        objects: vec![],
                        next: Some(continuation.unwrap_or_default()),
                    });
                }
                let page: Vec<ObjectSummary> = matching
                    .iter()
                    .take(max as usize)
                    .map(|o| (*o).clone())
                    .collect();
                let next = (matching.len() > page.len()).then(|| page.last().unwrap().key.clone());
                Ok(ListPage {
                    objects: page,
                    next,
                })
            });
        store
    }

    fn table(mut rows: Vec<ObjectRow>) -> MockObjectRowStore {
        rows.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
        let mut db = MockObjectRowStore::new();
        db.expect_objects_by_key().returning(move |after, limit| {
            Ok(rows
                .iter()
                .filter(|r| after.as_ref().is_none_or(|a| r.key.as_str() > a.as_str()))
                .take(limit as usize)
                .cloned()
                .collect())
        });
        db
    }

    fn opts(list_page: u32, row_page: u32) -> PlanOptions {
        PlanOptions {
            list_page,
            row_page,
            key_spaces: KeySpaces::everything(),
            ..PlanOptions::new(bucket(), NOW)
        }
    }

    async fn plan(
        objects: &MockObjectStore,
        rows: &MockObjectRowStore,
        o: PlanOptions,
    ) -> Vec<(String, Category)> {
        Planner::new(objects, rows, o)
            .collect()
            .await
            .unwrap()
            .into_iter()
            .map(|f| (f.key().to_owned(), f.category()))
            .collect()
    }

    fn cat(key: &str, c: Category) -> (String, Category) {
        (key.to_owned(), c)
    }

    #[tokio::test]
    async fn every_category_is_found_once_in_key_order() {
        let mut deleted = confirmed("o/b/deleted", 1);
        deleted.deleted_at = Some(NOW);
        let store = listing(
            vec![
                obj("o/b/arrived", 7),
                obj("o/b/fine", 3),
                obj("o/b/mismatch", 10),
                obj("o/b/orphan", 5),
                obj("o/b/deleted", 1),
            ],
            0,
        );
        let db = table(vec![
            row("o/b/arrived", ObjectStatus::Pending, 7, YOUNG),
            confirmed("o/b/fine", 3),
            confirmed("o/b/mismatch", 9),
            confirmed("o/b/missing", 4),
            row("o/b/stale", ObjectStatus::Pending, 2, OLD),
            row("o/b/young", ObjectStatus::Pending, 2, YOUNG),
            deleted,
        ]);
        let mut planner = Planner::new(&store, &db, opts(2, 3));
        let mut got = Vec::new();
        while let Some(f) = planner.next().await.unwrap() {
            got.push(f);
        }
        let keys: Vec<(String, Category)> = got
            .iter()
            .map(|f| (f.key().to_owned(), f.category()))
            .collect();
        assert_eq!(
            keys,
            vec![
                cat("o/b/arrived", Category::Arrived),
                cat("o/b/mismatch", Category::Mismatch),
                cat("o/b/missing", Category::Missing),
                cat("o/b/orphan", Category::Orphan),
                cat("o/b/stale", Category::StalePending),
            ]
        );
        let Finding::Mismatch { fields, .. } = &got[1] else {
            panic!("{got:?}")
        };
        assert_eq!(fields, &vec!["size"]);
        let p = planner.progress();
        assert_eq!(
            (p.objects, p.rows, p.in_flight, p.soft_deleted),
            (5, 7, 1, 1)
        );
        let mut report = ReconcileReport::new(planner.options(), false);
        got.iter().for_each(|f| report.record(f));
        assert_eq!(report.differences(), 5);
        assert_eq!(report.categories[&Category::Orphan].bytes, 5);
        assert_eq!(report.categories[&Category::Missing].bytes, 4);
    }

    fn media_row(key: &str, status: MediaStatus, expires: Option<OffsetDateTime>) -> Media {
        Media {
            id: crate::domain::MediaId::generate(),
            bucket: bucket(),
            key: ObjectKey::parse(key).unwrap(),
            organization_id: "org".into(),
            uploader_id: "u".into(),
            filename: "f.txt".into(),
            content_type: ContentType::parse("text/plain").unwrap(),
            declared_size: None,
            created_at: NOW - Duration::from_secs(30 * 86_400),
            status,
            size: (status == MediaStatus::Confirmed).then_some(5),
            etag: None,
            upload_expires_at: expires,
        }
    }

    fn media_table(mut rows: Vec<Media>) -> crate::ports::MockMediaStore {
        rows.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
        let mut m = crate::ports::MockMediaStore::new();
        m.expect_by_key().returning(move |after, limit| {
            Ok(rows
                .iter()
                .filter(|r| after.as_ref().is_none_or(|a| r.key.as_str() > a.as_str()))
                .take(limit as usize)
                .cloned()
                .collect())
        });
        m
    }

    #[tokio::test]
    async fn media_rows_own_their_keys_and_uncovered_keys_are_not_orphans() {
        let store = listing(
            vec![
                obj("org/o1/a-kept.txt", 5),
                obj("org/o1/b-arrived.txt", 5),
                obj("org/o1/stray.txt", 5),
                obj("o/b/orphan", 5),
                obj("backups/db.dump", 9),
                obj("top-level.txt", 1),
            ],
            0,
        );
        let db = table(vec![]);
        let hour = Duration::from_secs(3600);
        let media = media_table(vec![
            media_row("org/o1/a-kept.txt", MediaStatus::Confirmed, None),
            media_row("org/o1/b-arrived.txt", MediaStatus::Pending, Some(NOW)),
            media_row("org/o1/c-gone.txt", MediaStatus::Confirmed, None),
            // URL expired two hours ago: past the one-hour grace.
            media_row(
                "org/o1/d-stale.txt",
                MediaStatus::Pending,
                Some(NOW - 2 * hour),
            ),
            // Expired half an hour ago: still within the grace.
            media_row(
                "org/o1/e-young.txt",
                MediaStatus::Pending,
                Some(NOW - hour / 2),
            ),
            // Signed before expiries were recorded, 30 days ago: created + 7 days passed.
            media_row("org/o1/f-legacy.txt", MediaStatus::Pending, None),
        ]);
        let spaces = KeySpaces {
            all: false,
            media: true,
            buckets: BTreeSet::from(["b".to_owned()]),
        };
        for (lp, rp) in [(1, 1), (2, 3), (1000, 1000)] {
            let o = PlanOptions {
                key_spaces: spaces.clone(),
                ..opts(lp, rp)
            };
            let got: Vec<(String, Category)> = Planner::new(&store, &db, o)
                .with_media(&media)
                .collect()
                .await
                .unwrap()
                .into_iter()
                .map(|f| (f.key().to_owned(), f.category()))
                .collect();
            assert_eq!(
                got,
                vec![
                    cat("backups/db.dump", Category::Uncovered),
                    cat("o/b/orphan", Category::Orphan),
                    cat("org/o1/b-arrived.txt", Category::Arrived),
                    cat("org/o1/c-gone.txt", Category::Missing),
                    cat("org/o1/d-stale.txt", Category::StalePending),
                    cat("org/o1/f-legacy.txt", Category::StalePending),
                    cat("org/o1/stray.txt", Category::Orphan),
                    cat("top-level.txt", Category::Uncovered),
                ],
                "pages {lp}/{rp}"
            );
        }
        // Without the media table, its key space is not covered either.
        let o = PlanOptions {
            key_spaces: KeySpaces {
                media: false,
                ..spaces
            },
            ..opts(10, 10)
        };
        let got = plan(&store, &db, o).await;
        assert!(
            got.contains(&cat("org/o1/a-kept.txt", Category::Uncovered)),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn uncovered_objects_are_reported_but_not_drift_nor_deleted() {
        let o = PlanOptions::new(bucket(), NOW);
        let mut report = ReconcileReport::new(&o, true);
        let f = Finding::Uncovered(obj("backups/x", 3));
        report.record(&f);
        assert_eq!(report.differences(), 0);
        assert_eq!(report.remaining(), 0);
        let store = MockObjectStore::new();
        let db = MockObjectRowStore::new();
        let buckets = MockBucketStore::new();
        let mut a = Applier::new(&store, &db, &buckets, apply_opts(true));
        assert!(matches!(a.apply(&f).await.unwrap(), Applied::Skipped(_)));
    }

    #[tokio::test]
    async fn an_orphan_that_a_media_row_now_owns_is_kept() {
        let store = MockObjectStore::new();
        let mut db = MockObjectRowStore::new();
        db.expect_find_object_by_key().returning(|_| Ok(None));
        let mut media = crate::ports::MockMediaStore::new();
        media
            .expect_find_by_key()
            .times(1)
            .returning(|k| Ok(Some(media_row(k.as_str(), MediaStatus::Pending, Some(NOW)))));
        let buckets = MockBucketStore::new();
        let mut a = Applier::new(&store, &db, &buckets, apply_opts(true)).with_media(&media);
        assert_eq!(
            a.apply(&Finding::Orphan(obj("org/o1/x", 1))).await.unwrap(),
            Applied::Skipped("a media row for it appeared")
        );
    }

    #[tokio::test]
    async fn an_arrived_media_object_over_the_limit_is_rejected_like_confirm() {
        let r = media_row("org/o1/big", MediaStatus::Pending, Some(NOW));
        let mut store = MockObjectStore::new();
        store.expect_head().returning(|_, _| {
            Ok(ObjectMeta {
                size: 2 * 1024 * 1024,
                etag: Some("e".into()),
                content_type: Some("text/plain".into()),
                last_modified: None,
            })
        });
        let mut seq = mockall::Sequence::new();
        store
            .expect_delete()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| Ok(()));
        let mut media = crate::ports::MockMediaStore::new();
        let again = r.clone();
        media
            .expect_find()
            .returning(move |_| Ok(Some(again.clone())));
        media.expect_confirm().never();
        media
            .expect_delete()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(()));
        let db = MockObjectRowStore::new();
        let buckets = MockBucketStore::new();
        let mut a = Applier::new(&store, &db, &buckets, apply_opts(false)).with_media(&media);
        let object = obj("org/o1/big", 2 * 1024 * 1024);
        assert_eq!(
            a.apply(&Finding::MediaArrived { row: r, object })
                .await
                .unwrap(),
            Applied::Fixed(Fix::Rejected)
        );
    }

    #[tokio::test]
    async fn purge_removes_stale_media_rows_with_their_objects() {
        let hour = Duration::from_secs(3600);
        let stale = media_row("org/o1/stale", MediaStatus::Pending, Some(NOW - 2 * hour));
        let young = media_row("org/o1/young", MediaStatus::Pending, Some(NOW));
        let kept = media_row("org/o1/kept", MediaStatus::Confirmed, None);
        let mut media = media_table(vec![stale.clone(), young, kept]);
        let again = stale.clone();
        media
            .expect_find()
            .times(1)
            .returning(move |_| Ok(Some(again.clone())));
        let id = stale.id.clone();
        media
            .expect_delete()
            .withf(move |i| *i == id)
            .times(1)
            .returning(|_| Ok(()));
        let mut store = MockObjectStore::new();
        store
            .expect_delete()
            .withf(|_, k| k.as_str() == "org/o1/stale")
            .times(1)
            .returning(|_, _| Ok(()));
        let db = table(vec![]);
        let opts = PurgeOptions {
            bucket: bucket(),
            now: NOW,
            stale_after: default_stale_after(),
            deleted_grace: SOFT_DELETE_GRACE,
            batch: 2,
            dry_run: false,
        };
        let report = purge(&store, &db, Some(&media), &opts, &mut |_| {})
            .await
            .unwrap();
        assert_eq!(report.stale_pending.count, 1);
        assert_eq!(report.purged, 1);
        assert_eq!(report.scanned_rows, 3);
    }

    /// Byte order, not "text" order: 'Z' < 'a' < '~' < 'é' (0xC3…) < '€' (0xE2…), and '/'
    /// (0x2F) sorts before '0' and letters, so `a/x` < `a0` < `a~`.
    #[tokio::test]
    async fn keys_merge_in_byte_order_whatever_their_characters() {
        let keys = [
            "o/b/Z", "o/b/a", "o/b/a/x", "o/b/a0", "o/b/a~", "o/b/é", "o/b/€", "o/b/𝄞",
        ];
        let mut sorted = keys.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, keys, "the fixture is in byte order");
        let store = listing(keys.iter().map(|k| obj(k, 1)).collect(), 0);
        let db = table(keys.iter().map(|k| confirmed(k, 1)).collect());
        for (lp, rp) in [(1, 1), (1, 3), (3, 1), (1000, 1000)] {
            assert!(plan(&store, &db, opts(lp, rp)).await.is_empty());
        }
    }

    #[tokio::test]
    async fn a_side_out_of_byte_order_is_an_error_not_drift() {
        let mut store = MockObjectStore::new();
        store.expect_list().returning(|_, _, _, _| {
            Ok(ListPage {
                // Case-insensitive "text" order: 'a' before 'Z'.
                objects: vec![obj("o/b/a", 1), obj("o/b/Z", 1)],
                next: None,
            })
        });
        let db = table(vec![]);
        let err = Planner::new(&store, &db, opts(10, 10))
            .collect()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Internal { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn empty_pages_and_either_side_ending_first() {
        // Listing ends first: the rest of the rows are missing.
        let store = listing(vec![obj("o/b/a", 1)], 2);
        let db = table(vec![
            confirmed("o/b/a", 1),
            confirmed("o/b/b", 1),
            confirmed("o/b/c", 1),
        ]);
        assert_eq!(
            plan(&store, &db, opts(1, 1)).await,
            vec![
                cat("o/b/b", Category::Missing),
                cat("o/b/c", Category::Missing)
            ]
        );
        // Rows end first: the rest of the listing are orphans.
        let store = listing(vec![obj("o/b/a", 1), obj("o/b/b", 1), obj("o/b/c", 1)], 2);
        let db = table(vec![confirmed("o/b/a", 1)]);
        assert_eq!(
            plan(&store, &db, opts(1, 2)).await,
            vec![
                cat("o/b/b", Category::Orphan),
                cat("o/b/c", Category::Orphan)
            ]
        );
        // Both empty.
        let store = listing(vec![], 1);
        let db = table(vec![]);
        assert!(plan(&store, &db, opts(1, 1)).await.is_empty());
    }

    #[tokio::test]
    async fn prefix_bucket_name_and_start_after_bound_both_sides() {
        let keys = ["o/a/1", "o/b/1", "o/b/2", "o/c/1", "p/b/1"];
        let store = listing(keys.iter().map(|k| obj(k, 1)).collect(), 0);
        let db = table(vec![]);
        let with = |prefix: Option<&str>, name: Option<&str>, after: Option<&str>| PlanOptions {
            prefix: prefix.map(Into::into),
            bucket_name: name.map(Into::into),
            start_after: after.map(Into::into),
            ..opts(2, 2)
        };
        let keys_of =
            |v: Vec<(String, Category)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(
            keys_of(plan(&store, &db, with(Some("o/b/"), None, None)).await),
            ["o/b/1", "o/b/2"]
        );
        assert_eq!(
            keys_of(plan(&store, &db, with(None, Some("b"), None)).await),
            ["o/b/1", "o/b/2", "p/b/1"]
        );
        assert_eq!(
            keys_of(plan(&store, &db, with(None, None, Some("o/b/1"))).await),
            ["o/b/2", "o/c/1", "p/b/1"]
        );
        // Rows: the same bounds.
        let store = listing(vec![], 0);
        let db = table(keys.iter().map(|k| confirmed(k, 1)).collect());
        assert_eq!(
            keys_of(plan(&store, &db, with(Some("o/b/"), None, Some("o/b/1"))).await),
            ["o/b/2"]
        );
        assert_eq!(
            keys_of(plan(&store, &db, with(Some("o/b"), None, None)).await),
            ["o/b/1", "o/b/2"]
        );
    }

    #[test]
    fn row_cursors_are_valid_keys_at_or_below_the_bound() {
        assert_eq!(key_at_or_below("o/b/x", false).unwrap().as_str(), "o/b/x");
        assert_eq!(key_at_or_below("o/b/x", true).unwrap().as_str(), "o/b");
        assert_eq!(key_at_or_below("o/b/", false).unwrap().as_str(), "o/b");
        assert_eq!(key_at_or_below("o/é", true).unwrap().as_str(), "o");
        assert!(key_at_or_below("o", true).is_none());
        assert!(key_at_or_below("/", false).is_none());
    }

    // --- the applier ---------------------------------------------------------------------

    fn apply_opts(delete_orphans: bool) -> ApplyOptions {
        ApplyOptions {
            bucket: bucket(),
            max_file_size: ByteSize::mib(1),
            now: NOW,
            stale_after: default_stale_after(),
            delete_orphans,
            orphan_min_age: DEFAULT_ORPHAN_MIN_AGE,
        }
    }

    #[tokio::test]
    async fn orphans_are_kept_without_the_flag_and_when_young() {
        let store = MockObjectStore::new();
        let db = MockObjectRowStore::new();
        let buckets = MockBucketStore::new();
        let mut a = Applier::new(&store, &db, &buckets, apply_opts(false));
        assert!(matches!(
            a.apply(&Finding::Orphan(obj("o/b/x", 1))).await.unwrap(),
            Applied::Skipped(_)
        ));
        let mut a = Applier::new(&store, &db, &buckets, apply_opts(true));
        let mut young = obj("o/b/x", 1);
        young.last_modified = Some(NOW - Duration::from_secs(60));
        assert_eq!(
            a.apply(&Finding::Orphan(young)).await.unwrap(),
            Applied::Skipped("younger than --older-than")
        );
    }

    #[tokio::test]
    async fn an_old_orphan_is_deleted_after_rechecking() {
        let mut store = MockObjectStore::new();
        store.expect_head().returning(|_, _| {
            Ok(ObjectMeta {
                size: 1,
                etag: None,
                content_type: None,
                last_modified: Some(NOW - Duration::from_secs(48 * 3600)),
            })
        });
        store.expect_delete().times(1).returning(|_, _| Ok(()));
        let mut db = MockObjectRowStore::new();
        db.expect_find_object_by_key().returning(|_| Ok(None));
        let buckets = MockBucketStore::new();
        let mut a = Applier::new(&store, &db, &buckets, apply_opts(true));
        assert_eq!(
            a.apply(&Finding::Orphan(obj("o/b/x", 1))).await.unwrap(),
            Applied::Fixed(Fix::DeletedOrphan)
        );
    }

    #[tokio::test]
    async fn a_missing_object_soft_deletes_then_purges_its_row() {
        let r = confirmed("o/b/x", 1);
        let mut store = MockObjectStore::new();
        store
            .expect_head()
            .returning(|_, _| Err(Error::NotFound(Resource::Object)));
        let mut db = MockObjectRowStore::new();
        let again = r.clone();
        db.expect_find_object()
            .returning(move |_| Ok(Some(again.clone())));
        let mut seq = mockall::Sequence::new();
        db.expect_mark_object_deleted()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| Ok(()));
        db.expect_purge_object()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(()));
        let buckets = MockBucketStore::new();
        let mut a = Applier::new(&store, &db, &buckets, apply_opts(false));
        assert_eq!(
            a.apply(&Finding::Missing(r)).await.unwrap(),
            Applied::Fixed(Fix::RemovedRow)
        );
    }

    #[tokio::test]
    async fn an_arrived_object_over_the_limit_is_rejected_like_confirm() {
        let r = row("o/b/x", ObjectStatus::Pending, 1, YOUNG);
        let mut store = MockObjectStore::new();
        store.expect_head().returning(|_, _| {
            Ok(ObjectMeta {
                size: 2 * 1024 * 1024,
                etag: Some("e".into()),
                content_type: Some("image/png".into()),
                last_modified: None,
            })
        });
        store.expect_delete().times(1).returning(|_, _| Ok(()));
        let mut db = MockObjectRowStore::new();
        let again = r.clone();
        db.expect_find_object()
            .returning(move |_| Ok(Some(again.clone())));
        db.expect_purge_object().times(1).returning(|_| Ok(()));
        let mut buckets = MockBucketStore::new();
        let bid = r.bucket_id.clone();
        buckets.expect_find_bucket().times(1).returning(move |_| {
            Ok(Some(Bucket {
                id: bid.clone(),
                name: BucketName::parse("docs").unwrap(),
                organization_id: Some("org".into()),
                read_scope: crate::managed::ReadScope::Org,
                write_scope: crate::managed::WriteScope::Org,
                file_size_limit: None,
                allowed_mime_types: vec![],
                created_at: NOW,
                updated_at: NOW,
            }))
        });
        let mut a = Applier::new(&store, &db, &buckets, apply_opts(false));
        let object = obj("o/b/x", 2 * 1024 * 1024);
        assert_eq!(
            a.apply(&Finding::Arrived { row: r, object }).await.unwrap(),
            Applied::Fixed(Fix::Rejected)
        );
    }

    // --- the property: the merge equals a plain set difference ---------------------------

    fn key_strategy() -> impl Strategy<Value = String> {
        let seg = prop::collection::vec(
            prop::sample::select(vec!['a', 'Z', '~', '-', '0', 'é', '€', '𝄞', '_']),
            1..3,
        )
        .prop_map(|c| c.into_iter().collect::<String>());
        prop::collection::vec(seg, 1..4).prop_map(|s| format!("o/{}", s.join("/")))
    }

    #[derive(Debug, Clone)]
    struct RowSpec {
        pending: bool,
        old: bool,
        deleted: bool,
        size: u64,
    }

    fn row_spec() -> impl Strategy<Value = RowSpec> {
        (
            any::<bool>(),
            any::<bool>(),
            prop::bool::weighted(0.15),
            0u64..3,
        )
            .prop_map(|(pending, old, deleted, size)| RowSpec {
                pending,
                old,
                deleted,
                size,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn the_merge_equals_a_set_difference(
            objects in prop::collection::btree_map(key_strategy(), 0u64..3, 0..25),
            rows in prop::collection::btree_map(key_strategy(), row_spec(), 0..25),
            list_page in 1u32..5,
            row_page in 1u32..5,
            empty_every in 0usize..4,
            prefix in prop::option::of(prop::sample::select(vec!["o/a", "o/é", "o/Z/", "o/~", "o/𝄞"])),
            start_after in prop::option::of(key_strategy()),
        ) {
            let in_scope = |k: &str| {
                prefix.is_none_or(|p| k.starts_with(p))
                    && start_after.as_ref().is_none_or(|s| k > s.as_str())
            };
            let mut expected = Vec::new();
            let all: BTreeSet<&String> = objects.keys().chain(rows.keys()).collect();
            for k in all.into_iter().filter(|k| in_scope(k)) {
                let c = match (objects.get(k), rows.get(k)) {
                    (Some(_), None) => Some(Category::Orphan),
                    (_, Some(r)) if r.deleted => None,
                    (None, Some(r)) if r.pending && r.old => Some(Category::StalePending),
                    (None, Some(r)) if r.pending => None,
                    (None, Some(_)) => Some(Category::Missing),
                    (Some(_), Some(r)) if r.pending => Some(Category::Arrived),
                    (Some(size), Some(r)) if *size != r.size => Some(Category::Mismatch),
                    _ => None,
                };
                if let Some(c) = c {
                    expected.push((k.clone(), c));
                }
            }
            let store = listing(objects.iter().map(|(k, s)| obj(k, *s)).collect(), empty_every);
            let db = table(
                rows.iter()
                    .map(|(k, r)| {
                        let status = if r.pending { ObjectStatus::Pending } else { ObjectStatus::Confirmed };
                        let mut row = row(k, status, r.size, if r.old { OLD } else { YOUNG });
                        row.deleted_at = r.deleted.then_some(NOW);
                        row
                    })
                    .collect(),
            );
            let o = PlanOptions {
                prefix: prefix.map(Into::into),
                start_after: start_after.clone(),
                ..opts(list_page, row_page)
            };
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let got = rt.block_on(plan(&store, &db, o));
            prop_assert_eq!(got, expected);
        }
    }
}
