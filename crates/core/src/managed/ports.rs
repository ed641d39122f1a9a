//! The FILES_DB ports: the `buckets` and `objects` tables. One adapter usually implements
//! both over one database. Method names carry their table so a type implementing both
//! never has ambiguous methods.

use super::bucket::Bucket;
use super::ids::{BucketId, ObjectId};
use super::object::ObjectRow;
use crate::domain::{BucketName, ContentType, ObjectKey};
use crate::error::Error;
use async_trait::async_trait;
use time::OffsetDateTime;

/// The `buckets` table.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait BucketStore: Send + Sync {
    /// Inserts a new bucket.
    ///
    /// # Errors
    /// [`Error::BucketExists`] when the id exists, or the name exists in the same scope
    /// (the same organization, or among project-wide buckets); nothing is written.
    /// [`Error::Unavailable`] when the database is busy or unreachable.
    async fn insert_bucket(&self, bucket: &Bucket) -> Result<(), Error>;

    /// The bucket with this id, whatever its organization (the domain applies the firewall).
    ///
    /// # Errors
    /// [`Error::Unavailable`]. Missing is `Ok(None)`.
    async fn find_bucket(&self, id: &BucketId) -> Result<Option<Bucket>, Error>;

    /// The bucket named `name` in `organization_id`'s scope; `None` looks among
    /// project-wide buckets only (no fallback either way: the domain resolves shadowing).
    ///
    /// # Errors
    /// [`Error::Unavailable`]. Missing is `Ok(None)`.
    async fn find_bucket_by_name(
        &self,
        organization_id: Option<String>,
        name: &BucketName,
    ) -> Result<Option<Bucket>, Error>;

    /// Every project-wide bucket plus, when `organization_id` is set, that organization's;
    /// ordered by name, an organization's bucket before a project-wide one of the same name.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn list_buckets(&self, organization_id: Option<String>) -> Result<Vec<Bucket>, Error>;

    /// Overwrites the mutable fields (`read_scope`, `write_scope`, `file_size_limit`,
    /// `allowed_mime_types`, `updated_at`) of the bucket with `bucket.id`; the name,
    /// organization and `created_at` are never changed.
    ///
    /// # Errors
    /// [`Error::NotFound`]`(Bucket)` when no bucket has that id; [`Error::Unavailable`].
    async fn update_bucket(&self, bucket: &Bucket) -> Result<(), Error>;

    /// Deletes a bucket. Deleting a missing id succeeds (idempotent).
    ///
    /// # Errors
    /// [`Error::BucketNotEmpty`] when any object row (of any status, soft-deleted
    /// included) still references it; nothing is deleted. [`Error::Unavailable`].
    async fn delete_bucket(&self, id: &BucketId) -> Result<(), Error>;
}

/// What a confirmation writes into a row: the object's real metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectConfirmation {
    /// The object's size in bytes.
    pub size: u64,
    /// The object's etag, when storage reported one.
    pub etag: Option<String>,
    /// The content type to record.
    pub content_type: ContentType,
    /// The user who uploaded this version.
    pub owner_id: String,
    /// When it was confirmed: the row's new `updated_at`.
    pub at: OffsetDateTime,
}

/// A page request of [`ObjectRowStore::list_objects`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectQuery {
    /// The bucket whose rows are listed.
    pub bucket_id: BucketId,
    /// The owner segment (user id or organization id).
    pub segment: String,
    /// Only paths starting with this (a plain string prefix, not only whole segments).
    pub prefix: Option<String>,
    /// Only rows of this uploader.
    pub owner_id: Option<String>,
    /// Only paths strictly after this one.
    pub after: Option<String>,
    /// At most this many rows.
    pub limit: u32,
}

/// One page of rows; `next` is the last row's path when more may follow.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectRowPage {
    /// The rows, by path in byte order.
    pub items: Vec<ObjectRow>,
    /// The last row's path when more rows may follow: the next page's `after`.
    pub next: Option<String>,
}

/// The `objects` table.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ObjectRowStore: Send + Sync {
    /// Inserts a new row (normally `pending`).
    ///
    /// # Errors
    /// [`Error::ObjectExists`] when the id or the key exists, whatever that row's status
    /// (nothing is written); [`Error::NotFound`]`(Bucket)` when `bucket_id` names no
    /// bucket; [`Error::Validation`] on `size` when it exceeds what the store can hold;
    /// [`Error::Unavailable`].
    async fn insert_object(&self, row: &ObjectRow) -> Result<(), Error>;

    /// The row with this id, any status, soft-deleted included.
    ///
    /// # Errors
    /// [`Error::Unavailable`]. Missing is `Ok(None)`.
    async fn find_object(&self, id: &ObjectId) -> Result<Option<ObjectRow>, Error>;

    /// The row holding this key, any status, soft-deleted included.
    ///
    /// # Errors
    /// [`Error::Unavailable`]. Missing is `Ok(None)`.
    async fn find_object_by_key(&self, key: &ObjectKey) -> Result<Option<ObjectRow>, Error>;

    /// Whether a read costs a round trip to another process (a database server), so that
    /// reading a guess beside another read is cheaper than reading after it. `false` for a
    /// store read in process, where a guess would only add work.
    fn reads_cost_a_round_trip(&self) -> bool {
        false
    }

    /// The rows holding any of `keys`, any status, soft-deleted included, in no set order;
    /// a key without a row has none. A store with round trips reads them in one.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn find_objects_by_keys(&self, keys: &[ObjectKey]) -> Result<Vec<ObjectRow>, Error> {
        let mut rows = Vec::with_capacity(keys.len());
        for key in keys {
            rows.extend(self.find_object_by_key(key).await?);
        }
        Ok(rows)
    }

    /// Writes the object's real metadata into a row that is not soft-deleted and marks it
    /// `confirmed` (also used to refresh a confirmed row after an overwrite), clearing its
    /// `multipart`. Returns the updated row.
    ///
    /// # Errors
    /// [`Error::NotFound`]`(Object)` when no such row exists or it is soft-deleted;
    /// [`Error::Validation`] on `size` as for insert; [`Error::Unavailable`].
    async fn confirm_object(
        &self,
        id: &ObjectId,
        confirmation: &ObjectConfirmation,
    ) -> Result<ObjectRow, Error>;

    /// Soft-deletes: sets `deleted_at` (keeping an earlier one). A missing row succeeds.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn mark_object_deleted(&self, id: &ObjectId, at: OffsetDateTime) -> Result<(), Error>;

    /// Removes the row for good. A missing row succeeds (idempotent).
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn purge_object(&self, id: &ObjectId) -> Result<(), Error>;

    /// Confirmed, not soft-deleted rows of one bucket and segment, by path in byte order,
    /// at most `limit`, strictly after `after`. `next` is set when more rows may follow.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn list_objects(&self, query: &ObjectQuery) -> Result<ObjectRowPage, Error>;

    /// Up to `limit` rows of a bucket, any status, soft-deleted included (for emptying it).
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn objects_in_bucket(
        &self,
        bucket_id: &BucketId,
        limit: u32,
    ) -> Result<Vec<ObjectRow>, Error>;

    /// Every row, any status, by key in byte order, strictly after `after` (reconcile).
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn objects_by_key(
        &self,
        after: Option<ObjectKey>,
        limit: u32,
    ) -> Result<Vec<ObjectRow>, Error>;

    /// `pending` rows created strictly before `before`, oldest first (`created_at`, then
    /// id), soft-deleted included (reconcile).
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn pending_objects(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<ObjectRow>, Error>;
}
