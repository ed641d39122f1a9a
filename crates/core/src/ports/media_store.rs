use crate::domain::{BucketName, ContentType, MediaId, ObjectKey};
use crate::error::Error;
use crate::ports::MultipartRef;
use async_trait::async_trait;
use time::OffsetDateTime;

/// Whether a media row's object is known to be in storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaStatus {
    /// Signed: the object may or may not have been uploaded yet.
    Pending,
    /// Checked in storage: `size` and `etag` are the object's.
    Confirmed,
}

impl MediaStatus {
    /// The status as the media table stores it (`pending`, `confirmed`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
        }
    }

    /// Reads a status as the media table stores it ([`MediaStatus::as_str`]).
    ///
    /// # Errors
    /// [`Error::Validation`] on field `status` for anything but `pending` or `confirmed`.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        match raw {
            "pending" => Ok(Self::Pending),
            "confirmed" => Ok(Self::Confirmed),
            _ => Err(Error::invalid("status", "must be pending or confirmed")),
        }
    }
}

/// A row of the media table: one presigned upload in presign-only mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// The row's id (`med_…`).
    pub id: MediaId,
    /// The physical bucket the upload was signed into.
    pub bucket: BucketName,
    /// The object key: `org/<orgId>/<uuid>-<safe filename>`.
    pub key: ObjectKey,
    /// The uploader's active organization when signing; the firewall compares it.
    pub organization_id: String,
    /// The user who signed the upload.
    pub uploader_id: String,
    /// The file name the client gave, kept verbatim (validated, never a path).
    pub filename: String,
    /// The signed content type; once confirmed, the stored object's.
    pub content_type: ContentType,
    /// The size in bytes signed at upload; `None` when the client declared none.
    pub declared_size: Option<u64>,
    /// When the upload was signed.
    pub created_at: OffsetDateTime,
    /// Pending until the object is checked in storage, then confirmed.
    pub status: MediaStatus,
    /// The stored object's size, set by confirmation (`None` while pending, and for rows
    /// confirmed by the schema migration before their object was ever checked).
    pub size: Option<u64>,
    /// The stored object's etag, set by confirmation.
    pub etag: Option<String>,
    /// When the upload URL stops working; `None` for rows signed before it was recorded.
    /// For a multipart upload: when the upload itself is abandoned (its maximum age).
    pub upload_expires_at: Option<OffsetDateTime>,
    /// Set while the row is a multipart upload in progress (cleared by confirmation).
    pub multipart: Option<MultipartRef>,
}

/// What a confirmation writes into a media row: the object's real metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaConfirmation {
    /// The object's size in bytes.
    pub size: u64,
    /// The object's etag, when storage reported one.
    pub etag: Option<String>,
    /// The content type to record.
    pub content_type: ContentType,
}

/// Position in the newest-first listing: rows strictly after (older than) this one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MediaCursor {
    /// `created_at` of the last row already returned.
    pub created_at: OffsetDateTime,
    /// That row's id, which orders rows created at the same instant.
    pub id: MediaId,
}

impl MediaCursor {
    /// Opaque text form: `<unix nanoseconds>.<id>`.
    #[must_use]
    pub fn encode(&self) -> String {
        format!("{}.{}", self.created_at.unix_timestamp_nanos(), self.id)
    }

    /// Reads back the text form [`MediaCursor::encode`] made.
    ///
    /// # Errors
    /// [`Error::Validation`] on field `cursor` for anything [`MediaCursor::encode`] did not make.
    pub fn decode(raw: &str) -> Result<Self, Error> {
        let bad = || Error::invalid("cursor", "is not a cursor returned by this API");
        let (nanos, id) = raw.split_once('.').ok_or_else(bad)?;
        let nanos: i128 = nanos.parse().map_err(|_| bad())?;
        let created_at = OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| bad())?;
        let id = MediaId::parse(id).map_err(|_| bad())?;
        Ok(Self { created_at, id })
    }
}

/// One page of media rows, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MediaPage {
    /// The rows, newest first.
    pub items: Vec<Media>,
    /// Where the next page starts, when more rows may follow.
    pub next: Option<MediaCursor>,
}

/// The media table.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait MediaStore: Send + Sync {
    /// Inserts a new row (with its `multipart`, when set).
    ///
    /// # Errors
    /// [`Error::Conflict`] when the id or the key already exists (nothing is written);
    /// [`Error::Unavailable`] when the database is busy or unreachable.
    async fn insert(&self, media: &Media) -> Result<(), Error>;

    /// The row with this id, whatever its organization: the firewall is applied by the
    /// domain, which must tell "another organization's" from "missing" in reveal mode.
    ///
    /// # Errors
    /// [`Error::Unavailable`]. A missing row is `Ok(None)`, not an error.
    async fn find(&self, id: &MediaId) -> Result<Option<Media>, Error>;

    /// The row holding this key, any status.
    ///
    /// # Errors
    /// [`Error::Unavailable`]. Missing is `Ok(None)`.
    async fn find_by_key(&self, key: &ObjectKey) -> Result<Option<Media>, Error>;

    /// Rows of one organization, newest first (`created_at` then `id`, both descending),
    /// only of `status` when given, at most `limit`, strictly after `after`. `next` is set
    /// when more rows may follow.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn list(
        &self,
        organization_id: &str,
        status: Option<MediaStatus>,
        limit: u32,
        after: Option<MediaCursor>,
    ) -> Result<MediaPage, Error>;

    /// A number that changes whenever a commit, by any connection or process, may have
    /// changed what [`list`](Self::list) returns, and never goes back to a value it had
    /// before; `None` when the store cannot tell
    /// cheaply, and then no earlier read may stand in for a new one. Read it before the
    /// rows: a page read after the token read `t` may be served again for as long as the
    /// token still reads `t`.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn change_token(&self) -> Result<Option<u64>, Error> {
        Ok(None)
    }

    /// Writes the object's real metadata into the row and marks it `confirmed` (also used
    /// to refresh a confirmed row), clearing its `multipart`. Returns the updated row.
    ///
    /// # Errors
    /// [`Error::NotFound`]`(Media)` when no row has this id; [`Error::Validation`] on
    /// `size` when it exceeds what the store can hold; [`Error::Unavailable`].
    async fn confirm(&self, id: &MediaId, confirmation: &MediaConfirmation)
    -> Result<Media, Error>;

    /// Removes the row for good. A missing row succeeds (idempotent).
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn delete(&self, id: &MediaId) -> Result<(), Error>;

    /// Every row, any status, by key in byte order, strictly after `after`, at most
    /// `limit` (reconcile, purge and stats walk the table with it).
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn by_key(&self, after: Option<ObjectKey>, limit: u32) -> Result<Vec<Media>, Error>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        let c = MediaCursor {
            created_at: OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789)
                .unwrap(),
            id: MediaId::generate(),
        };
        assert_eq!(MediaCursor::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn garbage_cursors_are_validation_errors() {
        for bad in [
            "",
            "x",
            "1.",
            "abc.med_x",
            "99999999999999999999999999999999999.med_0123456789abcdef0123456789abcdef",
        ] {
            assert!(
                matches!(MediaCursor::decode(bad), Err(Error::Validation(_))),
                "{bad}"
            );
        }
    }
}
