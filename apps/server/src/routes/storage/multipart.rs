//! Managed multipart uploads: `POST /storage/v1/multipart/{bucket}/{*path}` starts one;
//! `/storage/v1/uploads/{id}/…` signs parts, lists them, completes and aborts.

use super::{Managed, ObjectView, docs};
use crate::error::{ApiError, ErrorEnvelope, responses};
use crate::extract::{ApiJson, MaybeAuthenticated};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use filegate_core::managed::CreateObjectMultipart;
use filegate_views::multipart::{
    AbortedView, CompleteBody, MultipartView, SignPartsBody, SignedPartsView, StoredPartsView,
};
use serde::Deserialize;
use utoipa::ToSchema;

/// A multipart upload to start.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateObjectMultipartBody {
    /// The completed object's content type, checked against the bucket's allow-list.
    #[schema(example = "video/mp4")]
    content_type: String,
    /// The total size in bytes (≥ 1), checked against the bucket's limit. Fixes the plan.
    #[schema(minimum = 1, example = 67_108_864)]
    size: u64,
    /// Bytes per part but the last: 5 MiB–5 GiB, at most 10 000 parts. Default 8 MiB,
    /// raised in whole MiB until there are at most 10 000 parts.
    #[schema(minimum = 5_242_880, example = 8_388_608)]
    part_size: Option<u64>,
}

const UPLOAD_NOT_FOUND: &str = "`STORAGE_OBJECT_NOT_FOUND` (unknown id, or another user's upload), `STORAGE_UPLOAD_NOT_FOUND` (no multipart upload in progress: completed, aborted or purged) or `MANAGED_MODE_OFF`";

/// `POST /storage/v1/multipart/{bucket}/{path}`
#[utoipa::path(
    post,
    path = "/storage/v1/multipart/{bucket}/{*path}",
    tag = "storage",
    operation_id = "createObjectMultipart",
    summary = "Start a multipart upload",
    description = "For large files: the checks of `presignObjectUpload` (write scope, limits against `size`, allow-list, 409 on a taken path), then a multipart upload at storage and a pending object holding its upload id. Then sign parts, PUT them, and complete.",
    params(
        ("bucket" = String, Path, description = "The bucket's name"),
        ("path" = String, Path, description = "The path inside the bucket; may contain `/`"),
    ),
    request_body = CreateObjectMultipartBody,
    responses(
        (status = 200, description = "The upload and its part plan", body = MultipartView),
        (status = 400, description = docs::BAD_REQUEST, body = ErrorEnvelope),
        (status = 401, description = docs::UNAUTHORIZED, body = ErrorEnvelope),
        (status = 403, description = docs::FORBIDDEN, body = ErrorEnvelope),
        (status = 404, description = docs::NOT_FOUND, body = ErrorEnvelope),
        (status = 409, description = docs::OBJECT_EXISTS, body = ErrorEnvelope),
        (status = 413, description = docs::TOO_LARGE, body = ErrorEnvelope),
        (status = 415, description = docs::MIME, body = ErrorEnvelope),
        (status = 429, description = responses::TOO_MANY, body = ErrorEnvelope),
        (status = 500, description = responses::INTERNAL, body = ErrorEnvelope),
        (status = 503, description = responses::UNAVAILABLE, body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("session" = []), ("apiKey" = []), ()),
)]
pub(crate) async fn create_multipart(
    Managed(svc): Managed,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    Path((bucket, path)): Path<(String, String)>,
    ApiJson(body): ApiJson<CreateObjectMultipartBody>,
) -> Result<Json<MultipartView>, ApiError> {
    let out = svc
        .create_multipart(
            principal.as_ref(),
            &bucket,
            &path,
            CreateObjectMultipart {
                content_type: body.content_type,
                size: body.size,
                part_size: body.part_size,
            },
        )
        .await?;
    tracing::info!(object.id = %out.id, key = %out.key, parts = out.part_count, "started managed multipart upload");
    Ok(Json(MultipartView::new(out, Some(bucket), Some(path))))
}

/// `POST /storage/v1/uploads/{id}/parts`
#[utoipa::path(
    post,
    path = "/storage/v1/uploads/{id}/parts",
    tag = "storage",
    operation_id = "signObjectParts",
    summary = "Presign parts of a multipart upload",
    description = "One presigned `UploadPart` URL per part number (at most 1000 per call), each signed with the part's exact `Content-Length`. Only the upload's creator, while the bucket lets it write.",
    params(("id" = String, Path, description = "The object id (`obj_…`)")),
    request_body = SignPartsBody,
    responses(
        (status = 200, description = "The presigned part URLs", body = SignedPartsView),
        (status = 400, description = "`VALIDATION_FAILED` on `partNumbers` or `partNumbers[i]`", body = ErrorEnvelope),
        (status = 401, description = docs::UNAUTHORIZED, body = ErrorEnvelope),
        (status = 403, description = docs::FORBIDDEN, body = ErrorEnvelope),
        (status = 404, description = UPLOAD_NOT_FOUND, body = ErrorEnvelope),
        (status = 429, description = responses::TOO_MANY, body = ErrorEnvelope),
        (status = 500, description = responses::INTERNAL, body = ErrorEnvelope),
        (status = 503, description = responses::UNAVAILABLE, body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("session" = []), ("apiKey" = []), ()),
)]
pub(crate) async fn sign_parts(
    State(state): State<AppState>,
    Managed(svc): Managed,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SignPartsBody>,
) -> Result<Json<SignedPartsView>, ApiError> {
    let out = svc
        .sign_parts(principal.as_ref(), &id, &body.part_numbers)
        .await?;
    for _ in &out.parts {
        state.metrics.presign_issued("PUT");
    }
    Ok(Json(out.into()))
}

/// `GET /storage/v1/uploads/{id}/parts`
#[utoipa::path(
    get,
    path = "/storage/v1/uploads/{id}/parts",
    tag = "storage",
    operation_id = "listObjectParts",
    summary = "List the uploaded parts",
    description = "The parts storage already holds (from its ListParts), ascending: to resume, upload only the missing ones.",
    params(("id" = String, Path, description = "The object id (`obj_…`)")),
    responses(
        (status = 200, description = "The stored parts", body = StoredPartsView),
        (status = 401, description = docs::UNAUTHORIZED, body = ErrorEnvelope),
        (status = 403, description = docs::FORBIDDEN, body = ErrorEnvelope),
        (status = 404, description = UPLOAD_NOT_FOUND, body = ErrorEnvelope),
        (status = 429, description = responses::TOO_MANY, body = ErrorEnvelope),
        (status = 500, description = responses::INTERNAL, body = ErrorEnvelope),
        (status = 503, description = responses::UNAVAILABLE, body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("session" = []), ("apiKey" = []), ()),
)]
pub(crate) async fn list_parts(
    Managed(svc): Managed,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    Path(id): Path<String>,
) -> Result<Json<StoredPartsView>, ApiError> {
    let parts = svc.list_parts(principal.as_ref(), &id).await?;
    Ok(Json(parts.into()))
}

/// `POST /storage/v1/uploads/{id}/complete`
#[utoipa::path(
    post,
    path = "/storage/v1/uploads/{id}/complete",
    tag = "storage",
    operation_id = "completeObjectMultipart",
    summary = "Complete a multipart upload",
    description = "Checks the part list against storage's ListParts (every part, ascending, storage's ETags, the planned sizes adding up to the declared size), completes the upload at storage, then confirms the object as `confirmObjectUpload` does.",
    params(("id" = String, Path, description = "The object id (`obj_…`)")),
    request_body = CompleteBody,
    responses(
        (status = 200, description = "The confirmed object", body = ObjectView),
        (status = 400, description = "`VALIDATION_FAILED` on `parts`, `parts[i].etag` or `size` (nothing completed or confirmed), or on `size` / `contentType` after completion when the object breaks the bucket's limits (object and row deleted)", body = ErrorEnvelope),
        (status = 401, description = docs::UNAUTHORIZED, body = ErrorEnvelope),
        (status = 403, description = docs::FORBIDDEN, body = ErrorEnvelope),
        (status = 404, description = UPLOAD_NOT_FOUND, body = ErrorEnvelope),
        (status = 429, description = responses::TOO_MANY, body = ErrorEnvelope),
        (status = 500, description = responses::INTERNAL, body = ErrorEnvelope),
        (status = 503, description = responses::UNAVAILABLE, body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("session" = []), ("apiKey" = []), ()),
)]
pub(crate) async fn complete_multipart(
    Managed(svc): Managed,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CompleteBody>,
) -> Result<Json<ObjectView>, ApiError> {
    let object = svc
        .complete_multipart(principal.as_ref(), &id, &body.into_parts())
        .await?;
    tracing::info!(object.id = %object.id, key = %object.key, size = object.size, "completed managed multipart upload");
    Ok(Json(object.into()))
}

/// `DELETE /storage/v1/uploads/{id}`
#[utoipa::path(
    delete,
    path = "/storage/v1/uploads/{id}",
    tag = "storage",
    operation_id = "abortObjectMultipart",
    summary = "Abort a multipart upload",
    description = "Aborts the upload at storage (its parts are dropped) and removes the pending object.",
    params(("id" = String, Path, description = "The object id (`obj_…`)")),
    responses(
        (status = 200, description = "Aborted", body = AbortedView),
        (status = 401, description = docs::UNAUTHORIZED, body = ErrorEnvelope),
        (status = 403, description = docs::FORBIDDEN, body = ErrorEnvelope),
        (status = 404, description = UPLOAD_NOT_FOUND, body = ErrorEnvelope),
        (status = 429, description = responses::TOO_MANY, body = ErrorEnvelope),
        (status = 500, description = responses::INTERNAL, body = ErrorEnvelope),
        (status = 503, description = responses::UNAVAILABLE, body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("session" = []), ("apiKey" = []), ()),
)]
pub(crate) async fn abort_multipart(
    Managed(svc): Managed,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    Path(id): Path<String>,
) -> Result<Json<AbortedView>, ApiError> {
    svc.abort_multipart(principal.as_ref(), &id).await?;
    tracing::info!(object.id = %id, "aborted managed multipart upload");
    Ok(Json(AbortedView::new()))
}
