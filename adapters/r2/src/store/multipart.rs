//! The multipart half of [`S3ObjectStore`]'s [`ObjectStore`](filegate_core::ports::ObjectStore):
//! CreateMultipartUpload, UploadPart, ListParts (all pages), CompleteMultipartUpload,
//! AbortMultipartUpload, ListMultipartUploads (all pages). `NoSuchUpload` is
//! [`Error::NotFound`]`(Upload)`; a refused part list is [`Error::Validation`] on `parts`.

use super::{
    LengthCheckedBody, MIN_UPLOAD_BYTES_PER_SEC, OPERATION_TIMEOUT, S3ObjectStore, map_error,
    non_negative, timeouts, to_offset, unquote,
};
use aws_sdk_s3::primitives::ByteStream as SdkByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart as SdkCompletedPart};
use filegate_core::Error;
use filegate_core::domain::{BucketName, ContentType, ObjectKey};
use filegate_core::error::Resource;
use filegate_core::ports::{CompletedPart, PendingUpload, PutObject, StoredPart};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use time::OffsetDateTime;

/// Parts per ListParts page (S3's maximum).
const PARTS_PAGE: i32 = 1000;

impl S3ObjectStore {
    pub(super) async fn mp_create(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        content_type: Option<ContentType>,
    ) -> Result<String, Error> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(bucket.as_str())
            .key(key.as_str())
            .set_content_type(content_type.map(|c| c.as_str().to_owned()))
            .send()
            .await
            .map_err(|e| map_error(e, Resource::Bucket))?;
        out.upload_id
            .ok_or_else(|| Error::internal("CreateMultipartUpload answered no UploadId"))
    }

    pub(super) async fn mp_upload_part(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        part: PutObject,
    ) -> Result<String, Error> {
        let declared = part.content_length;
        let length = i64::try_from(declared)
            .map_err(|_| Error::invalid("body", "content length is too large"))?;
        let number = i32::try_from(part_number)
            .map_err(|_| Error::invalid("partNumber", "must be at most 10000"))?;
        let failure = Arc::new(Mutex::new(None));
        let body = LengthCheckedBody {
            stream: Mutex::new(part.body),
            remaining: declared,
            held_back: None,
            ended: false,
            failure: Arc::clone(&failure),
        };
        let budget = OPERATION_TIMEOUT + Duration::from_secs(declared / MIN_UPLOAD_BYTES_PER_SEC);
        let result = self
            .client
            .upload_part()
            .bucket(bucket.as_str())
            .key(key.as_str())
            .upload_id(upload_id)
            .part_number(number)
            .content_length(length)
            .body(SdkByteStream::from_body_1_x(body))
            .customize()
            .config_override(aws_sdk_s3::config::Builder::new().timeout_config(timeouts(budget)))
            .send()
            .await;
        let body_failure = failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match (result, body_failure) {
            (_, Some(err)) => Err(err),
            (Ok(out), None) => Ok(out.e_tag.as_deref().map(unquote).unwrap_or_default()),
            (Err(e), None) => Err(map_error(e, Resource::Upload)),
        }
    }

    pub(super) async fn mp_list_parts(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        upload_id: &str,
    ) -> Result<Vec<StoredPart>, Error> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .client
                .list_parts()
                .bucket(bucket.as_str())
                .key(key.as_str())
                .upload_id(upload_id)
                .max_parts(PARTS_PAGE)
                .set_part_number_marker(marker.take())
                .send()
                .await
                .map_err(|e| map_error(e, Resource::Upload))?;
            for p in out.parts.unwrap_or_default() {
                let Some(n) = p.part_number.and_then(|n| u32::try_from(n).ok()) else {
                    continue;
                };
                parts.push(StoredPart {
                    part_number: n,
                    size: non_negative(p.size),
                    etag: p.e_tag.as_deref().map(unquote).unwrap_or_default(),
                });
            }
            match (out.is_truncated, out.next_part_number_marker) {
                (Some(true), Some(next)) if !next.is_empty() => marker = Some(next),
                _ => break,
            }
        }
        parts.sort_by_key(|p| p.part_number);
        Ok(parts)
    }

    pub(super) async fn mp_complete(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<(), Error> {
        let mut list = Vec::with_capacity(parts.len());
        for p in parts {
            let n = i32::try_from(p.part_number)
                .map_err(|_| Error::invalid("parts", "part numbers go up to 10000"))?;
            // S3 compares the quoted form.
            let etag = format!("\"{}\"", p.etag.trim_matches('"'));
            list.push(
                SdkCompletedPart::builder()
                    .part_number(n)
                    .e_tag(etag)
                    .build(),
            );
        }
        self.client
            .complete_multipart_upload()
            .bucket(bucket.as_str())
            .key(key.as_str())
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(list))
                    .build(),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| map_error(e, Resource::Upload))
    }

    pub(super) async fn mp_abort(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        upload_id: &str,
    ) -> Result<(), Error> {
        let result = self
            .client
            .abort_multipart_upload()
            .bucket(bucket.as_str())
            .key(key.as_str())
            .upload_id(upload_id)
            .send()
            .await;
        match result.map_err(|e| map_error(e, Resource::Upload)) {
            // Already gone (completed, aborted, expired): nothing left to abort.
            Ok(_) | Err(Error::NotFound(Resource::Upload)) => Ok(()),
            Err(other) => Err(other),
        }
    }

    pub(super) async fn mp_list_uploads(
        &self,
        bucket: &BucketName,
        initiated_before: OffsetDateTime,
    ) -> Result<Vec<PendingUpload>, Error> {
        let mut found = Vec::new();
        let (mut key_marker, mut id_marker): (Option<String>, Option<String>) = (None, None);
        loop {
            let out = self
                .client
                .list_multipart_uploads()
                .bucket(bucket.as_str())
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| map_error(e, Resource::Bucket))?;
            for u in out.uploads.unwrap_or_default() {
                let (Some(key), Some(upload_id)) = (u.key, u.upload_id) else {
                    continue;
                };
                let initiated = u.initiated.as_ref().and_then(to_offset);
                if initiated.is_none_or(|t| t < initiated_before) {
                    found.push(PendingUpload {
                        key,
                        upload_id,
                        initiated,
                    });
                }
            }
            match (
                out.is_truncated,
                out.next_key_marker,
                out.next_upload_id_marker,
            ) {
                (Some(true), Some(k), id) if !k.is_empty() => {
                    key_marker = Some(k);
                    id_marker = id;
                }
                _ => break,
            }
        }
        Ok(found)
    }
}
