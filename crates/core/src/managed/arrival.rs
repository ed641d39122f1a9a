//! An object that arrived for a pending row: kept (the row confirmed with the object's
//! real metadata) or refused (the object, then the row, deleted). One rule for
//! [`ManagedService::confirm`](super::ManagedService::confirm) and the reconcile applier.

use super::bucket::{Bucket, mime_allowed};
use super::object::ObjectRow;
use super::ports::{ObjectConfirmation, ObjectRowStore};
use crate::domain::{BucketName, ByteSize, ContentType};
use crate::error::{Error, FieldError};
use crate::ports::{ObjectMeta, ObjectStore};
use time::OffsetDateTime;

/// Whether the object must also be what the presign declared (size and type). Confirm
/// checks it; reconcile, repairing drift after the fact, keeps any object within the
/// bucket's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Declared {
    Check,
    Ignore,
}

/// Storage's content type when it is a valid one, else the row's.
pub(crate) fn stored_content_type(meta: &ObjectMeta, row: &ObjectRow) -> ContentType {
    meta.content_type
        .as_deref()
        .and_then(|c| ContentType::parse(c).ok())
        .unwrap_or_else(|| row.content_type.clone())
}

/// The row's new metadata: the object's real size, etag and type.
pub(crate) fn confirmation(
    row: &ObjectRow,
    meta: ObjectMeta,
    content_type: ContentType,
    at: OffsetDateTime,
) -> ObjectConfirmation {
    ObjectConfirmation {
        size: meta.size,
        etag: meta.etag,
        content_type,
        owner_id: row.owner_id.clone(),
        at,
    }
}

/// The first rule the object breaks: the declared size, the declared type (with
/// [`Declared::Check`]), the bucket's size limit under `ceiling`, its MIME allow-list.
fn judge(
    row: &ObjectRow,
    meta: &ObjectMeta,
    ct: &ContentType,
    bucket: &Bucket,
    ceiling: ByteSize,
    declared: Declared,
) -> Option<FieldError> {
    let max = bucket.effective_size_limit(ceiling);
    if declared == Declared::Check && meta.size != row.size {
        Some(FieldError::new(
            "size",
            format!(
                "the uploaded object is {} bytes; the presign declared {}",
                meta.size, row.size
            ),
        ))
    } else if declared == Declared::Check && *ct != row.content_type {
        Some(FieldError::new(
            "contentType",
            format!(
                "the uploaded object is '{ct}'; the presign declared '{}'",
                row.content_type
            ),
        ))
    } else if meta.size > max.bytes() {
        Some(FieldError::new(
            "size",
            format!(
                "the uploaded object is {} bytes; this bucket allows at most {max}",
                meta.size
            ),
        ))
    } else if !mime_allowed(&bucket.allowed_mime_types, ct) {
        Some(FieldError::new(
            "contentType",
            format!(
                "'{ct}' is not allowed; this bucket allows {}",
                bucket.allowed_mime_strings().join(", ")
            ),
        ))
    } else {
        None
    }
}

/// Where [`settle`] finds the object and what it holds it to.
pub(crate) struct Arrival<'a> {
    pub objects: &'a dyn ObjectStore,
    pub rows: &'a dyn ObjectRowStore,
    /// The physical bucket holding the object.
    pub physical: &'a BucketName,
    /// The row's bucket, for its limits.
    pub bucket: &'a Bucket,
    /// The service-wide maximum (buckets without a limit use it).
    pub ceiling: ByteSize,
    pub declared: Declared,
    pub at: OffsetDateTime,
}

impl Arrival<'_> {
    /// Keeps or refuses the object `meta` describes, at the pending `row`'s key. `Ok(Err)`:
    /// refused, object and row deleted, with the broken rule.
    ///
    /// # Errors
    /// Storage and store errors (a refusal interrupted midway leaves a pending row that
    /// purge clears).
    pub(crate) async fn settle(
        &self,
        row: &ObjectRow,
        meta: ObjectMeta,
    ) -> Result<Result<ObjectRow, FieldError>, Error> {
        let ct = stored_content_type(&meta, row);
        if let Some(broken) = judge(row, &meta, &ct, self.bucket, self.ceiling, self.declared) {
            self.objects.delete(self.physical, &row.key).await?;
            self.rows.purge_object(&row.id).await?;
            return Ok(Err(broken));
        }
        let c = confirmation(row, meta, ct, self.at);
        self.rows.confirm_object(&row.id, &c).await.map(Ok)
    }
}
