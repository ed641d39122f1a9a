//! Presign-only media routes: `/api/v1/media/*`.

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, MaybeAuthenticated, Request};
use crate::openapi::{ErrorEnvelope, errors};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use filegate_core::media::{SignDownload, SignUpload};
use filegate_core::ports::Media;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

/// What to upload.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignUploadBody {
    /// 1–255 bytes, no `/` or `\`, no control characters, not `.` or `..`.
    #[schema(example = "report.pdf")]
    filename: String,
    /// A MIME type (`type/subtype[; params]`); signed, so the PUT must send exactly this value.
    #[schema(example = "application/pdf")]
    content_type: String,
    /// Bytes. When given it is signed as `Content-Length`; above the configured maximum → 413.
    #[schema(minimum = 0, example = 248000)]
    size: Option<u64>,
}

/// A presigned PUT.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignUploadResponse {
    /// The media id (`med_…`).
    id: String,
    /// Where to PUT the bytes.
    upload_url: String,
    /// Always `PUT`.
    #[schema(value_type = String, example = "PUT")]
    method: &'static str,
    /// The object key: `org/<orgId>/<uuid>-<filename>`.
    key: String,
    /// Exactly the headers the PUT must send.
    headers: BTreeMap<String, String>,
    /// When the URL stops working (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    expires_at: OffsetDateTime,
}

/// `POST /api/v1/media/sign-upload`
#[utoipa::path(
    post,
    path = "/api/v1/media/sign-upload",
    tag = "media",
    operation_id = "signUpload",
    summary = "Presign an upload",
    description = "Records a media row and returns a presigned PUT URL. Requires an active organization and role `member` or above (configurable).",
    request_body = SignUploadBody,
    responses(
        (status = 200, description = "The presigned PUT", body = SignUploadResponse),
        (status = 400, description = errors::BAD_REQUEST, body = ErrorEnvelope),
        (status = 401, description = errors::UNAUTHORIZED, body = ErrorEnvelope),
        (status = 403, description = errors::FORBIDDEN, body = ErrorEnvelope),
        (status = 409, description = errors::CONFLICT, body = ErrorEnvelope),
        (status = 413, description = errors::TOO_LARGE, body = ErrorEnvelope),
        (status = 429, description = errors::TOO_MANY, body = ErrorEnvelope),
        (status = 500, description = errors::INTERNAL, body = ErrorEnvelope),
        (status = 503, description = errors::UNAVAILABLE, body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("session" = []), ("apiKey" = []), ()),
)]
pub async fn sign_upload(
    State(state): State<AppState>,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    Request(info): Request,
    ApiJson(body): ApiJson<SignUploadBody>,
) -> Result<Json<SignUploadResponse>, ApiError> {
    let out = state
        .media
        .sign_upload(
            principal.as_ref(),
            &info,
            SignUpload {
                filename: body.filename,
                content_type: body.content_type,
                size: body.size,
            },
        )
        .await?;
    tracing::info!(media.id = %out.id, key = %out.key, "signed upload");
    state.metrics.presign_issued("PUT");
    Ok(Json(SignUploadResponse {
        id: out.id.to_string(),
        upload_url: out.upload_url,
        method: "PUT",
        key: out.key.to_string(),
        headers: out.headers,
        expires_at: out.expires_at,
    }))
}

/// Options of a download URL; the body may be empty.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignDownloadBody {
    /// 1–604800 seconds, default 600.
    #[schema(minimum = 1, maximum = 604800, example = 600)]
    expires_in: Option<u64>,
    /// When set, storage answers with `Content-Disposition: attachment` and this name.
    #[schema(example = "report.pdf")]
    download_filename: Option<String>,
}

/// A presigned GET.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignDownloadResponse {
    url: String,
    /// Always `GET`.
    #[schema(value_type = String, example = "GET")]
    method: &'static str,
    key: String,
    /// When the URL stops working (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    expires_at: OffsetDateTime,
}

/// `POST /api/v1/media/{id}/sign-download`
#[utoipa::path(
    post,
    path = "/api/v1/media/{id}/sign-download",
    tag = "media",
    operation_id = "signDownload",
    summary = "Presign a download",
    description = "Returns a presigned GET URL for a media id of the caller's organization.",
    params(("id" = String, Path, description = "The media id (`med_…`)")),
    request_body(content = Option<SignDownloadBody>, description = "Optional; an empty body uses the defaults"),
    responses(
        (status = 200, description = "The presigned GET", body = SignDownloadResponse),
        (status = 400, description = errors::BAD_REQUEST, body = ErrorEnvelope),
        (status = 401, description = errors::UNAUTHORIZED, body = ErrorEnvelope),
        (status = 403, description = errors::FORBIDDEN, body = ErrorEnvelope),
        (status = 404, description = errors::NOT_FOUND, body = ErrorEnvelope),
        (status = 429, description = errors::TOO_MANY, body = ErrorEnvelope),
        (status = 500, description = errors::INTERNAL, body = ErrorEnvelope),
        (status = 503, description = errors::UNAVAILABLE, body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("session" = []), ("apiKey" = []), ()),
)]
pub async fn sign_download(
    State(state): State<AppState>,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    Request(info): Request,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SignDownloadBody>,
) -> Result<Json<SignDownloadResponse>, ApiError> {
    let out = state
        .media
        .sign_download(
            principal.as_ref(),
            &info,
            &id,
            SignDownload {
                expires_in: body.expires_in,
                download_filename: body.download_filename,
            },
        )
        .await?;
    state.metrics.presign_issued(out.method);
    Ok(Json(SignDownloadResponse {
        url: out.url,
        method: out.method,
        key: out.key.to_string(),
        expires_at: out.expires_at,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1–200, default 50.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// The `nextCursor` of the previous page (opaque).
    cursor: Option<String>,
}

/// One media row.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MediaView {
    id: String,
    key: String,
    bucket: String,
    filename: String,
    content_type: String,
    /// The size declared at signing; null when none was declared.
    size: Option<u64>,
    uploader_id: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
}

impl From<Media> for MediaView {
    fn from(m: Media) -> Self {
        Self {
            id: m.id.to_string(),
            key: m.key.to_string(),
            bucket: m.bucket.to_string(),
            filename: m.filename,
            content_type: m.content_type.to_string(),
            size: m.declared_size,
            uploader_id: m.uploader_id,
            created_at: m.created_at,
        }
    }
}

/// One page of the caller organization's media, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse {
    items: Vec<MediaView>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

/// `GET /api/v1/media?limit=&cursor=`
#[utoipa::path(
    get,
    path = "/api/v1/media",
    tag = "media",
    operation_id = "listMedia",
    summary = "List media",
    description = "The caller organization's files, newest first.",
    params(ListQuery),
    responses(
        (status = 200, description = "One page", body = ListResponse),
        (status = 400, description = errors::BAD_REQUEST, body = ErrorEnvelope),
        (status = 401, description = errors::UNAUTHORIZED, body = ErrorEnvelope),
        (status = 403, description = errors::FORBIDDEN, body = ErrorEnvelope),
        (status = 429, description = errors::TOO_MANY, body = ErrorEnvelope),
        (status = 500, description = errors::INTERNAL, body = ErrorEnvelope),
        (status = 503, description = errors::UNAVAILABLE, body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("session" = []), ("apiKey" = []), ()),
)]
pub async fn list(
    State(state): State<AppState>,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    Request(info): Request,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<ListResponse>, ApiError> {
    let page = state
        .media
        .list(principal.as_ref(), &info, q.limit, q.cursor.as_deref())
        .await?;
    Ok(Json(ListResponse {
        items: page.items.into_iter().map(MediaView::from).collect(),
        next_cursor: page.next.map(|c| c.encode()),
    }))
}
