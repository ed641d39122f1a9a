//! One download path for both modes (`GET /api/v1/files/{id}/download`): "may this
//! caller read this file, and where are its bytes".
//!
//! [`FileAccess::authorize_read`] parses the id ([`FileId`]), runs the owning mode's
//! access sequence once ([`MediaService`]: authentication with the audit of `PUBLIC`
//! calls, organization, firewall, the `signDownload` rule, confirmation of a pending row;
//! [`ManagedService`]: authentication, organization, firewall, the bucket's read scope)
//! and answers a [`ReadableFile`]: the bytes' location and what a response says about
//! them. [`FileAccess::open`] then streams them (whole or a range) through the
//! [`ObjectStore`](crate::ports::ObjectStore) port, as often as the caller needs, without
//! checking again. Handlers never call storage ports nor look at id prefixes.

use crate::domain::{BucketName, MediaId, ObjectKey, Principal};
use crate::error::Error;
use crate::managed::{Bucket, ManagedService, ObjectId, ObjectRow};
use crate::media::{MediaService, RequestInfo, SignDownload};
use crate::ports::{ByteRange, GetObject, Media};
use std::sync::Arc;
use time::OffsetDateTime;

/// The id of a file of either mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileId {
    /// Presign-only media: `med_…`.
    Media(MediaId),
    /// A managed object: `obj_…`.
    Object(ObjectId),
}

impl FileId {
    /// Reads a file id: a media id (`med_…`) or an object id (`obj_…`).
    ///
    /// # Errors
    /// [`Error::Validation`] on `id` unless it is a media or an object id.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        if let Ok(id) = MediaId::parse(raw) {
            return Ok(Self::Media(id));
        }
        ObjectId::parse(raw)
            .map(Self::Object)
            .map_err(|_| Error::invalid("id", "must be a file id like 'obj_…' or 'med_…'"))
    }
}

/// Which mode answers for an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Media,
    Managed,
}

/// A file the caller may read: where its bytes are and what a response says about them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadableFile {
    /// The physical bucket holding the bytes.
    pub bucket: BucketName,
    /// The object key of the bytes.
    pub key: ObjectKey,
    /// The recorded content type.
    pub content_type: String,
    /// The recorded etag, for when storage reports none.
    pub etag: Option<String>,
    /// For when storage reports no `Last-Modified`.
    pub updated_at: OffsetDateTime,
    /// May be cached by shared caches (a `public` bucket's object).
    pub public: bool,
    /// The default name of a download.
    pub filename: String,
    mode: Mode,
}

impl ReadableFile {
    pub(crate) fn of_media(row: Media) -> Self {
        Self {
            bucket: row.bucket,
            key: row.key,
            content_type: row.content_type.as_str().to_owned(),
            etag: None,
            updated_at: row.created_at,
            public: false,
            filename: row.filename,
            mode: Mode::Media,
        }
    }

    pub(crate) fn of_object(row: &ObjectRow, bucket: &Bucket, physical: &BucketName) -> Self {
        Self {
            bucket: physical.clone(),
            key: row.key.clone(),
            content_type: row.content_type.as_str().to_owned(),
            etag: row.etag.clone(),
            updated_at: row.updated_at,
            public: bucket.is_public(),
            filename: row
                .path
                .as_str()
                .rsplit('/')
                .next()
                .unwrap_or("download")
                .to_owned(),
            mode: Mode::Managed,
        }
    }
}

/// Reads of files of either mode, by id. Cheap to build and to clone.
#[derive(Debug, Clone)]
pub struct FileAccess {
    media: Arc<MediaService>,
    /// `None` when managed mode is off: every id is then a media id or unknown.
    managed: Option<Arc<ManagedService>>,
}

impl FileAccess {
    /// Reads through `media`, and through `managed` while managed mode is on (`None`: every
    /// id is a media id or unknown).
    #[must_use]
    pub fn new(media: Arc<MediaService>, managed: Option<Arc<ManagedService>>) -> Self {
        Self { media, managed }
    }

    /// Managed mode answers for object ids, and for malformed ids that do not claim to
    /// be media ids, while it is on; media answers for the rest. Either way a malformed
    /// id is "not found" after that mode's checks.
    fn route(&self, raw: &str) -> (Mode, Option<&Arc<ManagedService>>) {
        let Some(managed) = &self.managed else {
            return (Mode::Media, None);
        };
        let managed_id = match FileId::parse(raw) {
            Ok(FileId::Object(_)) => true,
            Ok(FileId::Media(_)) => false,
            Err(_) => !raw.starts_with(MediaId::PREFIX),
        };
        if managed_id {
            (Mode::Managed, Some(managed))
        } else {
            (Mode::Media, None)
        }
    }

    /// The one access sequence of a read by id; see the module docs.
    ///
    /// # Errors
    /// Media ids: as [`MediaService::open_download`]; otherwise (managed mode on) as
    /// [`ManagedService::download_by_id`] up to storage.
    pub async fn authorize_read(
        &self,
        caller: Option<&Principal>,
        request: &RequestInfo,
        id: &str,
    ) -> Result<ReadableFile, Error> {
        match self.route(id) {
            (Mode::Managed, Some(managed)) => managed.read_grant_by_id(caller, id).await,
            _ => self
                .media
                .open_download(caller, request, id)
                .await
                .map(ReadableFile::of_media),
        }
    }

    /// A short-lived presigned storage GET of the file, after the same checks as
    /// [`FileAccess::authorize_read`]. `download_filename` names a media download (managed
    /// objects keep their own name).
    ///
    /// # Errors
    /// As [`MediaService::sign_download`] or [`ManagedService::sign_download_by_id`].
    pub async fn sign_read(
        &self,
        caller: Option<&Principal>,
        request: &RequestInfo,
        id: &str,
        download_filename: Option<String>,
    ) -> Result<String, Error> {
        match self.route(id) {
            (Mode::Managed, Some(managed)) => {
                managed.sign_download_by_id(caller, id).await.map(|u| u.url)
            }
            _ => self
                .media
                .sign_download(
                    caller,
                    request,
                    id,
                    SignDownload {
                        expires_in: None,
                        download_filename,
                    },
                )
                .await
                .map(|s| s.url),
        }
    }

    /// Streams an authorised file's bytes (or one range of them).
    ///
    /// # Errors
    /// Storage errors ([`Error::Validation`] on `range` when not satisfiable); for a
    /// managed object, [`Error::ObjectChanged`] when storage holds other bytes than its
    /// row describes.
    pub async fn open(
        &self,
        file: &ReadableFile,
        range: Option<ByteRange>,
    ) -> Result<GetObject, Error> {
        match (file.mode, &self.managed) {
            (Mode::Managed, Some(managed)) => managed.read(file, range).await,
            (Mode::Managed, None) => Err(Error::internal("a managed file without managed mode")),
            (Mode::Media, _) => self.media.read(file, range).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_ids_parse_into_their_mode() {
        let m = MediaId::generate();
        assert_eq!(FileId::parse(m.as_str()).unwrap(), FileId::Media(m));
        let o = ObjectId::generate();
        assert_eq!(FileId::parse(o.as_str()).unwrap(), FileId::Object(o));
        for bad in ["", "med_", "obj_x", "bkt_0123456789abcdef0123456789abcdef"] {
            let err = FileId::parse(bad).unwrap_err();
            assert!(
                matches!(err, Error::Validation(ref f) if f[0].field == "id"),
                "{bad}"
            );
        }
    }
}
