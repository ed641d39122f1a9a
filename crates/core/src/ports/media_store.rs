use crate::domain::{BucketName, ContentType, MediaId, ObjectKey};
use crate::error::Error;
use async_trait::async_trait;
use time::OffsetDateTime;

/// A row of the media table: one presigned upload in presign-only mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub id: MediaId,
    pub bucket: BucketName,
    pub key: ObjectKey,
    pub organization_id: String,
    pub uploader_id: String,
    /// The file name the client gave, kept verbatim (validated, never a path).
    pub filename: String,
    pub content_type: ContentType,
    pub declared_size: Option<u64>,
    pub created_at: OffsetDateTime,
}

/// Position in the newest-first listing: rows strictly after (older than) this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaCursor {
    pub created_at: OffsetDateTime,
    pub id: MediaId,
}

impl MediaCursor {
    /// Opaque text form: `<unix nanoseconds>.<id>`.
    #[must_use]
    pub fn encode(&self) -> String {
        format!("{}.{}", self.created_at.unix_timestamp_nanos(), self.id)
    }

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
    pub items: Vec<Media>,
    pub next: Option<MediaCursor>,
}

/// The media table.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait MediaStore: Send + Sync {
    /// Inserts a new row.
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

    /// Rows of one organization, newest first (`created_at` then `id`, both descending),
    /// at most `limit`, strictly after `after`. `next` is set when more rows may follow.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn list(
        &self,
        organization_id: &str,
        limit: u32,
        after: Option<MediaCursor>,
    ) -> Result<MediaPage, Error>;
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
