//! Managed mode: Quickback's turnkey `/storage/v1/*` subsystem. Buckets and objects are
//! kept in a metadata database (FILES_DB) and the bytes in one physical bucket.
//!
//! - [`bucket`]: buckets, read and write scopes, MIME allow-lists, the default buckets.
//! - [`object`]: paths, the key layout `<userId or orgId>/<bucket>/<path>`, object rows.
//! - [`ports`]: [`BucketStore`] and [`ObjectRowStore`], the FILES_DB tables.
//! - [`service`]: [`ManagedService`], the use cases, with the check order and the write
//!   paths' ordering in its module docs: a façade over the bucket catalogue (`buckets`)
//!   and the object service (`objects`), which share one access checker (`access`, on
//!   top of [`crate::policy`]); `arrival` judges an uploaded object for confirm and
//!   reconcile alike.

mod access;
pub(crate) mod arrival;
pub mod bucket;
mod buckets;
mod ids;
pub mod object;
mod objects;
pub mod ports;
pub mod service;
#[cfg(test)]
mod tests;

pub use bucket::{Bucket, DEFAULT_BUCKETS, DefaultBucket, MimePattern, ReadScope, WriteScope};
pub use ids::{BucketId, ObjectId};
pub use object::{ObjectInfo, ObjectPath, ObjectRow, ObjectStatus, Owner, object_key};
pub use ports::{BucketStore, ObjectConfirmation, ObjectQuery, ObjectRowPage, ObjectRowStore};
#[cfg(test)]
pub use ports::{MockBucketStore, MockObjectRowStore};
pub use service::{
    CreateBucket, CreateObjectMultipart, Download, EtagMismatchHook, ListObjects, ManagedPolicy,
    ManagedService, ObjectPage, ObjectUrl, PresignUpload, PresignedUpload, UpdateBucket, Upload,
    UrlTokens,
};
