//! The multipart shapes both modes share (`/api/v1/media/…` and `/storage/v1/…`): the
//! bodies of sign-parts and complete, and the views of a started upload, its signed part
//! URLs and its stored parts.

use filegate_core::multipart::{MultipartStarted, SignedParts};
use filegate_core::ports::{CompletedPart, StoredPart};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// A started multipart upload.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MultipartView {
    /// The row's id (`med_…` or `obj_…`): name it in the part, complete and abort calls.
    #[schema(example = "med_0123456789abcdef0123456789abcdef")]
    id: String,
    /// Storage's upload id (what S3 clients call `UploadId`).
    upload_id: String,
    /// The object key the upload writes.
    key: String,
    /// Managed mode: the bucket's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    bucket: Option<String>,
    /// Managed mode: the path inside the bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    /// Bytes of every part but the last.
    #[schema(example = 8_388_608)]
    part_size: u64,
    /// Parts 1..=partCount; the last has `size - (partCount-1) * partSize` bytes.
    #[schema(example = 8)]
    part_count: u32,
    /// When the unfinished upload is abandoned (`FILEGATE_MULTIPART_MAX_AGE` after its
    /// creation): `purge` then aborts it and removes its row.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    expires_at: OffsetDateTime,
}

impl MultipartView {
    /// The view of a started upload; `bucket` and `path` in managed mode.
    #[must_use]
    pub fn new(started: MultipartStarted, bucket: Option<String>, path: Option<String>) -> Self {
        Self {
            id: started.id,
            upload_id: started.upload_id,
            key: started.key.to_string(),
            bucket,
            path,
            part_size: started.part_size,
            part_count: started.part_count,
            expires_at: started.expires_at,
        }
    }
}

/// Which parts to sign.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignPartsBody {
    /// 1–1000 distinct part numbers, each in 1..=partCount.
    #[schema(example = json!([1, 2, 3]))]
    pub part_numbers: Vec<u32>,
}

/// One presigned `UploadPart`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignedPartView {
    /// The part number.
    part_number: u32,
    /// `PUT <key>?partNumber=N&uploadId=…`, presigned.
    url: String,
    /// Always `PUT`.
    #[schema(value_type = String, example = "PUT")]
    method: &'static str,
    /// Exactly the headers the PUT must send: `Content-Length`, the part's exact size
    /// (browsers set it themselves).
    headers: BTreeMap<String, String>,
}

/// A batch of presigned part URLs.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignedPartsView {
    /// One per part asked for, in request order.
    parts: Vec<SignedPartView>,
    /// When the URLs stop working (`FILEGATE_UPLOAD_EXPIRES_IN`).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    expires_at: OffsetDateTime,
}

impl From<SignedParts> for SignedPartsView {
    fn from(s: SignedParts) -> Self {
        Self {
            parts: s
                .parts
                .into_iter()
                .map(|p| SignedPartView {
                    part_number: p.part_number,
                    url: p.url,
                    method: "PUT",
                    headers: p.headers,
                })
                .collect(),
            expires_at: s.expires_at,
        }
    }
}

/// A part storage holds.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoredPartView {
    /// The part number.
    part_number: u32,
    /// Its size in bytes.
    size: u64,
    /// Its ETag, without quotes: send it back in complete.
    etag: String,
}

/// The parts storage already holds for an upload, by part number.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoredPartsView {
    /// Ascending by part number.
    parts: Vec<StoredPartView>,
}

impl From<Vec<StoredPart>> for StoredPartsView {
    fn from(parts: Vec<StoredPart>) -> Self {
        Self {
            parts: parts
                .into_iter()
                .map(|p| StoredPartView {
                    part_number: p.part_number,
                    size: p.size,
                    etag: p.etag,
                })
                .collect(),
        }
    }
}

/// One part of a complete call.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompletedPartBody {
    /// The part number.
    pub part_number: u32,
    /// The ETag storage answered to the part's PUT (quoted or not).
    pub etag: String,
}

/// The client's part list.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompleteBody {
    /// Every part 1..=partCount, ascending, with its ETag.
    pub parts: Vec<CompletedPartBody>,
}

impl CompleteBody {
    /// The list as core takes it.
    #[must_use]
    pub fn into_parts(self) -> Vec<CompletedPart> {
        self.parts
            .into_iter()
            .map(|p| CompletedPart {
                part_number: p.part_number,
                etag: p.etag,
            })
            .collect()
    }
}

/// The answer of an abort.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AbortedView {
    /// Always `true`.
    aborted: bool,
}

impl AbortedView {
    /// The one answer.
    #[must_use]
    pub fn new() -> Self {
        Self { aborted: true }
    }
}

impl Default for AbortedView {
    fn default() -> Self {
        Self::new()
    }
}
