use crate::domain::{BucketName, ContentType, ObjectKey};
use crate::error::Error;
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use time::OffsetDateTime;

/// Object bytes as a stream of chunks; never the whole object in memory.
pub type ByteStream = BoxStream<'static, Result<Bytes, Error>>;

/// A single byte range of a GET.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=first-last`, both inclusive.
    FromTo(u64, u64),
    /// `bytes=first-`.
    From(u64),
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

/// What HEAD tells about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The object's size in bytes.
    pub size: u64,
    /// Storage's entity tag.
    pub etag: Option<String>,
    /// The stored `Content-Type`, as storage reported it (not validated).
    pub content_type: Option<String>,
    /// When the object was last written.
    pub last_modified: Option<OffsetDateTime>,
}

/// One entry of a listing. The key is a plain string: storage may hold keys filegate
/// would not accept, and a listing must still show them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSummary {
    /// The key as storage holds it.
    pub key: String,
    /// The object's size in bytes.
    pub size: u64,
    /// Storage's entity tag.
    pub etag: Option<String>,
    /// When the object was last written.
    pub last_modified: Option<OffsetDateTime>,
}

/// One page of a listing, in ascending byte order of keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListPage {
    /// The objects of this page.
    pub objects: Vec<ObjectSummary>,
    /// Pass back to get the next page; `None` on the last page.
    pub next: Option<String>,
}

/// A GET's result: metadata of the whole object and the (possibly ranged) body.
pub struct GetObject {
    /// Metadata of the whole object.
    pub meta: ObjectMeta,
    /// The inclusive byte range the body covers, when a range was asked for.
    pub range: Option<(u64, u64)>,
    /// The body: the whole object, or the range.
    pub body: ByteStream,
}

impl std::fmt::Debug for GetObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetObject")
            .field("meta", &self.meta)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// A PUT: the body is streamed; its exact length must be known up front.
pub struct PutObject {
    /// The exact number of bytes the body yields.
    pub content_length: u64,
    /// Stored as the object's `Content-Type`.
    pub content_type: Option<ContentType>,
    /// The body.
    pub body: ByteStream,
}

impl std::fmt::Debug for PutObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutObject")
            .field("content_length", &self.content_length)
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

/// A multipart upload a row records: storage's upload id and the part size its plan was
/// made with (the declared size is the row's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartRef {
    /// Storage's `UploadId`.
    pub upload_id: String,
    /// The size of every part but the last.
    pub part_size: u64,
}

/// A part storage holds for an unfinished multipart upload (ListParts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPart {
    /// 1..=10 000.
    pub part_number: u32,
    /// The part's size in bytes.
    pub size: u64,
    /// Storage's ETag of the part, without quotes.
    pub etag: String,
}

/// A part as CompleteMultipartUpload names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    /// 1..=10 000.
    pub part_number: u32,
    /// The part's ETag.
    pub etag: String,
}

/// An unfinished multipart upload (ListMultipartUploads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpload {
    /// The key the upload writes.
    pub key: String,
    /// Storage's `UploadId`.
    pub upload_id: String,
    /// When it was created, when storage says.
    pub initiated: Option<OffsetDateTime>,
}

/// Object operations on an S3-compatible store.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Metadata of one object.
    ///
    /// # Errors
    /// [`Error::NotFound`]`(Object)` when the key does not exist, `(Bucket)` when the bucket
    /// does not; [`Error::Unavailable`] when storage cannot be reached.
    async fn head(&self, bucket: &BucketName, key: &ObjectKey) -> Result<ObjectMeta, Error>;

    /// Streams an object, or one range of it (a ranged request to storage, not a cut).
    ///
    /// # Errors
    /// As [`ObjectStore::head`]; [`Error::RangeNotSatisfiable`] with the object's size when
    /// the range is not satisfiable (the caller answers 416 with it, opening nothing again).
    async fn get(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        range: Option<ByteRange>,
    ) -> Result<GetObject, Error>;

    /// Stores an object from a stream, replacing any object at that key.
    ///
    /// # Errors
    /// [`Error::NotFound`]`(Bucket)` when the bucket does not exist; [`Error::Validation`]
    /// on field `body` when the stream's length differs from `content_length`;
    /// [`Error::Unavailable`] when storage cannot be reached. On error nothing is stored.
    async fn put(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        object: PutObject,
    ) -> Result<ObjectMeta, Error>;

    /// Deletes an object. Deleting a missing key succeeds (idempotent).
    ///
    /// # Errors
    /// [`Error::NotFound`]`(Bucket)` when the bucket does not exist; [`Error::Unavailable`].
    async fn delete(&self, bucket: &BucketName, key: &ObjectKey) -> Result<(), Error>;

    /// One page of keys starting with `prefix`, in ascending byte order, resuming from
    /// the `next` token of the previous page. `max_keys` is clamped to 1..=1000.
    ///
    /// # Errors
    /// [`Error::NotFound`]`(Bucket)` when the bucket does not exist; [`Error::Unavailable`].
    async fn list(
        &self,
        bucket: &BucketName,
        prefix: Option<String>,
        continuation: Option<String>,
        max_keys: u32,
    ) -> Result<ListPage, Error>;

    /// Starts a multipart upload of `key`; the completed object will have `content_type`.
    /// Returns storage's upload id.
    ///
    /// # Errors
    /// [`Error::NotFound`]`(Bucket)` when the bucket does not exist; [`Error::Unavailable`].
    async fn create_multipart(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        content_type: Option<ContentType>,
    ) -> Result<String, Error>;

    /// Uploads one part through this port (clients use presigned URLs; tests and tools
    /// use this). Returns the part's ETag without quotes.
    ///
    /// # Errors
    /// [`Error::NotFound`]`(Upload)` when no such upload is in progress; otherwise as
    /// [`ObjectStore::put`].
    async fn upload_part(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        part: PutObject,
    ) -> Result<String, Error>;

    /// Every part storage holds for the upload, by part number.
    ///
    /// # Errors
    /// [`Error::NotFound`]`(Upload)` when no such upload is in progress (never created,
    /// completed or aborted); [`Error::Unavailable`].
    async fn list_parts(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        upload_id: &str,
    ) -> Result<Vec<StoredPart>, Error>;

    /// Completes the upload from `parts` (ascending): the object appears at `key`,
    /// replacing any object there.
    ///
    /// # Errors
    /// [`Error::NotFound`]`(Upload)` when no such upload is in progress;
    /// [`Error::Validation`] on `parts` when storage refuses the list (a part it lacks,
    /// another ETag, a part too small); [`Error::Unavailable`].
    async fn complete_multipart(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<(), Error>;

    /// Aborts the upload and drops its parts. Aborting an unknown (or already finished)
    /// upload succeeds (idempotent).
    ///
    /// # Errors
    /// [`Error::NotFound`]`(Bucket)`; [`Error::Unavailable`].
    async fn abort_multipart(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        upload_id: &str,
    ) -> Result<(), Error>;

    /// The unfinished uploads of the bucket created strictly before `initiated_before`
    /// (an upload whose creation time storage does not report is included), by key.
    ///
    /// # Errors
    /// [`Error::NotFound`]`(Bucket)`; [`Error::Unavailable`].
    async fn list_multipart_uploads(
        &self,
        bucket: &BucketName,
        initiated_before: OffsetDateTime,
    ) -> Result<Vec<PendingUpload>, Error>;
}
