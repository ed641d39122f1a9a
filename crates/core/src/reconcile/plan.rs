//! The planner: a streaming merge of the bucket listing and the rows of both tables.

use super::{Finding, KeySpaces, default_stale_after, media_is_stale};
use crate::domain::{BucketName, ObjectKey};
use crate::error::Error;
use crate::managed::{ObjectRow, ObjectRowStore, ObjectStatus};
use crate::ports::{Media, MediaStatus, MediaStore, ObjectStore, ObjectSummary};
use std::collections::VecDeque;
use std::time::Duration;
use time::OffsetDateTime;

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
    /// Options over all of `bucket` at `now`: no prefix, resume point or bucket filter,
    /// [`default_stale_after`], no deep check, pages of 1000, and no covered key space.
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
    /// Objects listed within the range (after the prefix, resume and bucket filters).
    pub objects: u64,
    /// Their total size in bytes.
    pub object_bytes: u64,
    /// Rows of both tables merged within the range.
    pub rows: u64,
    /// Pending rows without an object that are not stale yet (uploads in flight; not drift).
    pub in_flight: u64,
    /// Soft-deleted FILES_DB rows met (deletes in progress, left to purge; not drift).
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
    /// A merge of the listing of [`PlanOptions::bucket`] in `objects` with the FILES_DB
    /// `rows`; an empty prefix or resume key counts as none, and page sizes are clamped
    /// (listing 1..=1000, rows at least 1).
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

    /// The options in force, as [`Planner::new`] normalised them.
    #[must_use]
    pub fn options(&self) -> &PlanOptions {
        &self.opts
    }

    /// The counters so far.
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
                // A multipart upload in progress can outlive any URL: purge judges it by
                // its maximum age and aborts it at storage first.
                if row.multipart.is_none() && row.created_at < self.opts.now - self.opts.stale_after
                {
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
pub(super) fn key_at_or_below(s: &str, strict: bool) -> Option<ObjectKey> {
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

/// Records `key` as the last one read from a source of the merge, which relies on every
/// source being in ascending byte order: a key not after the previous one is an error
/// (`what`, then the key).
pub(super) fn advance(last: &mut Option<String>, key: &str, what: &str) -> Result<(), Error> {
    if last.as_deref().is_some_and(|l| key <= l) {
        return Err(Error::internal(format!("{what} {key:?}")));
    }
    *last = Some(key.to_owned());
    Ok(())
}
