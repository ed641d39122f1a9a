//! Reconcile, purge and usage statistics over the objects in the physical bucket
//! ([`ObjectStore`](crate::ports::ObjectStore)) and every table that owns keys in it:
//! FILES_DB's objects ([`ObjectRowStore`](crate::managed::ObjectRowStore), managed mode)
//! and the media table ([`MediaStore`](crate::ports::MediaStore), presign-only uploads,
//! keys `org/<org>/…`). A key owned by a row of either table is never an orphan,
//! whatever its prefix; an object in a key space no table covers ([`KeySpaces`]) is
//! reported as [`Finding::Uncovered`] and never deleted.
//!
//! # The plan: a streaming merge
//! [`Planner`] reads the bucket listing (ListObjectsV2 pages, ascending byte order of keys)
//! and the rows
//! ([`ObjectRowStore::objects_by_key`](crate::managed::ObjectRowStore::objects_by_key),
//! the same byte order: SQLite's default `BINARY` collation compares UTF-8 bytes, as
//! Rust's `str` ordering does) one page at a time, and walks both like the merge step of
//! a merge sort. At any moment it holds at
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

//!
//! # Rooms
//! - `plan`: [`Planner`], the streaming merge and its classification.
//! - `apply`: [`Applier`], one idempotent fix per finding.
//! - `purge`: [`purge()`], soft-deleted rows and stale pending uploads.
//! - `stats`: [`stats()`], usage by bucket and organization.
//! - here: the findings, the report, and [`run`], which drives a planner and an applier.

mod apply;
mod plan;
mod purge;
mod stats;
#[cfg(test)]
mod tests;

pub use apply::{Applier, ApplyOptions};
pub use plan::{PlanOptions, Planner, Progress};
pub use purge::{PurgeOptions, PurgeReport, purge};
pub use stats::{Stats, Usage, stats};

use crate::domain::Expiry;
use crate::error::Error;
use crate::managed::ObjectRow;
use crate::ports::{Media, MediaStatus, ObjectSummary};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use time::OffsetDateTime;

/// Added to the presigned URL maximum before a pending row counts as abandoned.
pub const STALE_PENDING_MARGIN: Duration = Duration::from_hours(1);

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
pub const DEFAULT_ORPHAN_MIN_AGE: Duration = Duration::from_hours(24);

/// Soft-deleted rows younger than this are left to the server's own Delete path.
pub const SOFT_DELETE_GRACE: Duration = Duration::from_mins(5);

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
    /// Every category, in the order reports list them (their `Ord`).
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

    /// The category's name in reports and JSON (`orphan`, `stale_pending`, …).
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
    /// An object without a row of either table, in a covered key space ([`KeySpaces`]).
    Orphan(ObjectSummary),
    /// A confirmed, not soft-deleted FILES_DB row whose object is not in storage.
    Missing(ObjectRow),
    /// A pending FILES_DB row without its object, created more than
    /// [`PlanOptions::stale_after`] ago.
    StalePending(ObjectRow),
    /// A pending FILES_DB row whose object is in storage (its confirm never came).
    Arrived {
        /// The pending row, as the plan read it.
        row: ObjectRow,
        /// The object, as the listing showed it.
        object: ObjectSummary,
    },
    /// A confirmed FILES_DB row whose size or etag (with [`PlanOptions::deep`], also content
    /// type) differ from its object's.
    Mismatch {
        /// The confirmed row, as the plan read it.
        row: ObjectRow,
        /// The object, as the listing showed it.
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
        /// The pending media row, as the plan read it.
        row: Media,
        /// The object, as the listing showed it.
        object: ObjectSummary,
    },
    /// A confirmed media row whose recorded size, etag or type differ from storage.
    MediaMismatch {
        /// The confirmed media row, as the plan read it.
        row: Media,
        /// The object, as the listing showed it.
        object: ObjectSummary,
        /// `size`, `etag`, `content_type`: what differs.
        fields: Vec<&'static str>,
    },
}

impl Finding {
    /// The category the finding counts under; media findings share those of FILES_DB.
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

    /// The object key the finding is about.
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
    /// The finding was dealt with, as the [`Fix`] says ([`Fix::AlreadyResolved`] when
    /// someone else had).
    Fixed(Fix),
    /// Left as it is, with the reason.
    Skipped(&'static str),
}

/// Count and bytes of one category.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Findings of this category (rows, in a [`PurgeReport`]).
    pub count: u64,
    /// Their bytes: [`Finding::bytes`] of each finding (a purge adds up the rows' sizes).
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
    /// The key prefix the run was limited to ([`PlanOptions::prefix`]).
    pub prefix: Option<String>,
    /// The key the run resumed after ([`PlanOptions::start_after`]).
    pub start_after: Option<String>,
    /// Whether fixes were applied (`--apply`); `false` for a dry run.
    pub applied: bool,
    /// Objects listed in storage within the run's range.
    pub scanned_objects: u64,
    /// Their total size in bytes.
    pub scanned_bytes: u64,
    /// Rows of both tables merged within the run's range.
    pub scanned_rows: u64,
    /// Pending rows without an object, younger than the stale threshold (not drift).
    pub in_flight: u64,
    /// Soft-deleted rows (a delete in progress, or for `purge`; not drift).
    pub soft_deleted: u64,
    /// Unfinished multipart uploads in storage older than the maximum age (`purge` aborts
    /// them); counted by the caller, which lists them (`ObjectStore::list_multipart_uploads`).
    pub stale_multipart_uploads: u64,
    /// Count, bytes, outcomes and example keys per category ([`ReconcileReport::new`] lists
    /// every category, found or not).
    pub categories: BTreeMap<Category, Tally>,
    /// The last key the run got through; resume with `--start-after` it.
    pub last_key: Option<String>,
}

impl ReconcileReport {
    /// An empty report of a run with `opts`, every category at zero; `applied` says whether
    /// fixes will be applied.
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

    /// Counts a finding in its category, and keeps its key while the category has fewer than
    /// [`EXAMPLES_PER_CATEGORY`] examples.
    pub fn record(&mut self, finding: &Finding) {
        let t = self.categories.entry(finding.category()).or_default();
        t.count += 1;
        t.bytes += finding.bytes();
        if t.examples.len() < EXAMPLES_PER_CATEGORY {
            t.examples.push(finding.key().to_owned());
        }
    }

    /// Counts what applying a finding did: [`Tally::fixed`] or [`Tally::skipped`].
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

/// A failed run: the error, and the report up to it (its `last_key` is safe to resume
/// from with `start_after`).
#[derive(Debug)]
pub struct Interrupted {
    /// The error that stopped the run: a port error, or a side out of byte order.
    pub error: Error,
    /// What the run found and did before it; its `last_key` is the last key fully handled.
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
        let outcome = match applier.as_deref_mut() {
            Some(a) => match a.apply(&finding).await {
                Ok(x) => Some(x),
                Err(e) => return Err(fail(e, report, safe)),
            },
            None => None,
        };
        if let Some(a) = &outcome {
            report.record_applied(&finding, a);
        }
        safe.clone_from(&report.last_key);
        on_step(planner.progress(), Some((&finding, outcome.as_ref())));
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
