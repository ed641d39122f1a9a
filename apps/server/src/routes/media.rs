//! Presign-only media routes: `/api/v1/media/*`.

use crate::error::{ApiError, ErrorEnvelope, responses};
use crate::extract::{ApiJson, ApiQuery, MaybeAuthenticated, Request};
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::FromRequest;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use filegate_core::Error;
use filegate_core::media::{CreateMultipart, SignDownload, SignUpload};
use filegate_core::ports::{Media, MediaStatus};
use filegate_views::multipart::{
    AbortedView, CompleteBody, MultipartView, SignPartsBody, SignedPartsView, StoredPartsView,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

/// What to upload.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SignUploadBody {
    /// 1–255 bytes, no `/` or `\`, no control characters, not `.` or `..`.
    #[schema(example = "report.pdf")]
    filename: String,
    /// A MIME type (`type/subtype[; params]`); signed, so the PUT must send exactly this value.
    #[schema(example = "application/pdf")]
    content_type: String,
    /// Bytes. When given it is signed as `Content-Length`; above the configured maximum → 413.
    /// Required when the server sets `FILEGATE_MEDIA_REQUIRE_SIZE=true`.
    #[schema(minimum = 0, example = 248_000)]
    size: Option<u64>,
}

/// A presigned PUT.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SignUploadResponse {
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
    description = "Records a `pending` media row and returns a presigned PUT URL. Requires an active organization and role `member` or above (configurable). After the PUT, call `confirm` (downloads confirm a pending row on first use).",
    request_body = SignUploadBody,
    responses(
        (status = 200, description = "The presigned PUT", body = SignUploadResponse),
        (status = 400, description = responses::BAD_REQUEST, body = ErrorEnvelope),
        (status = 401, description = responses::UNAUTHORIZED, body = ErrorEnvelope),
        (status = 403, description = responses::FORBIDDEN, body = ErrorEnvelope),
        (status = 409, description = responses::CONFLICT, body = ErrorEnvelope),
        (status = 413, description = responses::TOO_LARGE, body = ErrorEnvelope),
        (status = 429, description = responses::TOO_MANY, body = ErrorEnvelope),
        (status = 500, description = responses::INTERNAL, body = ErrorEnvelope),
        (status = 503, description = responses::UNAVAILABLE, body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("session" = []), ("apiKey" = []), ()),
)]
pub(crate) async fn sign_upload(
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
pub(crate) struct SignDownloadBody {
    /// 1–604800 seconds, default 600.
    #[schema(minimum = 1, maximum = 604_800, example = 600)]
    expires_in: Option<u64>,
    /// When set, storage answers with `Content-Disposition: attachment` and this name.
    #[schema(example = "report.pdf")]
    download_filename: Option<String>,
}

/// A presigned GET.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SignDownloadResponse {
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
    description = "Returns a presigned GET URL for a media id of the caller's organization. A `pending` row is confirmed first, as `confirm` does (409 while nothing was uploaded).",
    params(("id" = String, Path, description = "The media id (`med_…`)")),
    request_body(content = Option<SignDownloadBody>, description = "Optional; an empty body uses the defaults"),
    responses(
        (status = 200, description = "The presigned GET", body = SignDownloadResponse),
        (status = 400, description = responses::BAD_REQUEST, body = ErrorEnvelope),
        (status = 401, description = responses::UNAUTHORIZED, body = ErrorEnvelope),
        (status = 403, description = responses::FORBIDDEN, body = ErrorEnvelope),
        (status = 404, description = responses::NOT_FOUND, body = ErrorEnvelope),
        (status = 409, description = "`STORAGE_NOT_UPLOADED`: a pending upload whose object is not in storage yet", body = ErrorEnvelope),
        (status = 413, description = "A pending upload whose object is over the size limit (object and row deleted)", body = ErrorEnvelope),
        (status = 429, description = responses::TOO_MANY, body = ErrorEnvelope),
        (status = 500, description = responses::INTERNAL, body = ErrorEnvelope),
        (status = 503, description = responses::UNAVAILABLE, body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("session" = []), ("apiKey" = []), ()),
)]
pub(crate) async fn sign_download(
    State(state): State<AppState>,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    Request(info): Request,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<SignDownloadBody>,
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

/// A JSON body that may be empty: no body at all (with or without `Content-Length: 0`)
/// and no `Content-Type` gives `T::default()`; anything else goes through [`ApiJson`].
pub(crate) struct OptionalJson<T>(pub T);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        if req.headers().contains_key(http::header::CONTENT_TYPE) {
            return ApiJson::<T>::from_request(req, state)
                .await
                .map(|ApiJson(v)| Self(v));
        }
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|_| Error::invalid("body", "could not be read"))?;
        if body.is_empty() {
            Ok(Self(T::default()))
        } else {
            Err(Error::invalid("body", "send Content-Type: application/json").into())
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// 1–200, default 50.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// The `nextCursor` of the previous page (opaque).
    cursor: Option<String>,
    /// `confirmed` (default), `pending` (signed, not confirmed yet) or `all`.
    #[param(example = "all")]
    status: Option<String>,
}

/// One media row.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MediaView<'a> {
    id: &'a str,
    key: &'a str,
    bucket: &'a str,
    filename: &'a str,
    content_type: &'a str,
    /// `pending` (signed; the object may not be uploaded yet) or `confirmed` (checked in
    /// storage).
    #[schema(example = "confirmed")]
    status: &'static str,
    /// Confirmed: the stored object's size (the declared one for rows confirmed before
    /// sizes were recorded). Pending: the size declared at signing. Null when unknown.
    size: Option<u64>,
    /// The stored object's etag, once confirmed.
    etag: Option<&'a str>,
    uploader_id: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
}

// Borrowed, so a page of rows is written out without copying each row's strings first.
impl<'a> From<&'a Media> for MediaView<'a> {
    fn from(m: &'a Media) -> Self {
        Self {
            id: m.id.as_str(),
            key: m.key.as_str(),
            bucket: m.bucket.as_str(),
            filename: &m.filename,
            content_type: m.content_type.as_str(),
            status: m.status.as_str(),
            size: match m.status {
                MediaStatus::Confirmed => m.size.or(m.declared_size),
                MediaStatus::Pending => m.declared_size,
            },
            etag: m.etag.as_deref(),
            uploader_id: &m.uploader_id,
            created_at: m.created_at,
        }
    }
}

/// One page of the caller organization's media, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListResponse<'a> {
    items: Vec<MediaView<'a>>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

/// `GET /api/v1/media?limit=&cursor=&status=`
#[utoipa::path(
    get,
    path = "/api/v1/media",
    tag = "media",
    operation_id = "listMedia",
    summary = "List media",
    description = "The caller organization's files, newest first: confirmed ones, unless `status=pending` or `status=all`.",
    params(ListQuery),
    responses(
        (status = 200, description = "One page", body = ListResponse<'static>),
        (status = 400, description = responses::BAD_REQUEST, body = ErrorEnvelope),
        (status = 401, description = responses::UNAUTHORIZED, body = ErrorEnvelope),
        (status = 403, description = responses::FORBIDDEN, body = ErrorEnvelope),
        (status = 429, description = responses::TOO_MANY, body = ErrorEnvelope),
        (status = 500, description = responses::INTERNAL, body = ErrorEnvelope),
        (status = 503, description = responses::UNAVAILABLE, body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("session" = []), ("apiKey" = []), ()),
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    Request(info): Request,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let query = state
        .media
        .page_request(
            principal.as_ref(),
            &info,
            q.limit,
            q.cursor.as_deref(),
            q.status.as_deref(),
        )
        .await?;
    // Before the rows: a page read after the token read `t` is the page while it reads `t`.
    let token = state.media.change_token().await?;
    if let Some(token) = token
        && let Some(body) = state.pages.get(&query, token)
    {
        state.metrics.listing_page(true);
        return Ok(super::json_body(body));
    }
    let page = state.media.page(&query).await?;
    state.metrics.listing_page(false);
    let body = serde_json::to_vec(&ListResponse {
        items: page.items.iter().map(MediaView::from).collect(),
        next_cursor: page.next.map(|c| c.encode()),
    })
    .map_err(Error::internal)?;
    let body = Bytes::from(body);
    if let Some(token) = token {
        state.pages.put(query, token, body.clone());
    }
    Ok(super::json_body(body))
}

/// `POST /api/v1/media/{id}/confirm`
#[utoipa::path(
    post,
    path = "/api/v1/media/{id}/confirm",
    tag = "media",
    operation_id = "confirmMedia",
    summary = "Confirm an upload",
    description = "HEADs the uploaded object and records its real size, etag and type; the row becomes `confirmed`. \
                   Confirming a confirmed row returns it. An object over `FILEGATE_MAX_UPLOAD_SIZE` (413), or of another \
                   size or type than signed (400), is deleted with its row. Same access rule as `signUpload`. No body.",
    params(("id" = String, Path, description = "The media id (`med_…`)")),
    responses(
        (status = 200, description = "The confirmed row", body = MediaView<'static>),
        (status = 400, description = "`VALIDATION_FAILED` on `size` or `contentType`: the object was not what was signed (object and row deleted)", body = ErrorEnvelope),
        (status = 401, description = responses::UNAUTHORIZED, body = ErrorEnvelope),
        (status = 403, description = responses::FORBIDDEN, body = ErrorEnvelope),
        (status = 404, description = responses::NOT_FOUND, body = ErrorEnvelope),
        (status = 409, description = "`STORAGE_NOT_UPLOADED`: nothing in storage yet; the row stays pending", body = ErrorEnvelope),
        (status = 413, description = "The object is over the size limit (object and row deleted)", body = ErrorEnvelope),
        (status = 429, description = responses::TOO_MANY, body = ErrorEnvelope),
        (status = 500, description = responses::INTERNAL, body = ErrorEnvelope),
        (status = 503, description = responses::UNAVAILABLE, body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("session" = []), ("apiKey" = []), ()),
)]
pub(crate) async fn confirm(
    State(state): State<AppState>,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    Request(info): Request,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let row = state.media.confirm(principal.as_ref(), &info, &id).await?;
    tracing::info!(media.id = %row.id, key = %row.key, size = ?row.size, "confirmed upload");
    Ok(Json(MediaView::from(&row)).into_response())
}

/// A multipart upload to start.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateMultipartBody {
    /// As in `signUpload`.
    #[schema(example = "video.mp4")]
    filename: String,
    /// The completed object's MIME type.
    #[schema(example = "video/mp4")]
    content_type: String,
    /// The total size in bytes (≥ 1); above the configured maximum → 413. Fixes the plan.
    #[schema(minimum = 1, example = 67_108_864)]
    size: u64,
    /// Bytes per part but the last: 5 MiB–5 GiB, at most 10 000 parts. Default 8 MiB,
    /// raised in whole MiB until there are at most 10 000 parts.
    #[schema(minimum = 5_242_880, example = 8_388_608)]
    part_size: Option<u64>,
}

/// `POST /api/v1/media/multipart`
#[utoipa::path(
    post,
    path = "/api/v1/media/multipart",
    tag = "media",
    operation_id = "createMediaMultipart",
    summary = "Start a multipart upload",
    description = "For large files: starts a multipart upload at storage and records a `pending` media row holding its upload id. Same access rule and limits as `signUpload`. Then sign parts in batches, PUT each part, and complete.",
    request_body = CreateMultipartBody,
    responses(
        (status = 200, description = "The upload and its part plan", body = MultipartView),
        (status = 400, description = "`VALIDATION_FAILED` on `filename`, `contentType`, `size` or `partSize`", body = ErrorEnvelope),
        (status = 401, description = responses::UNAUTHORIZED, body = ErrorEnvelope),
        (status = 403, description = responses::FORBIDDEN, body = ErrorEnvelope),
        (status = 413, description = responses::TOO_LARGE, body = ErrorEnvelope),
        (status = 429, description = responses::TOO_MANY, body = ErrorEnvelope),
        (status = 500, description = responses::INTERNAL, body = ErrorEnvelope),
        (status = 503, description = responses::UNAVAILABLE, body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("session" = []), ("apiKey" = []), ()),
)]
pub(crate) async fn create_multipart(
    State(state): State<AppState>,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    Request(info): Request,
    ApiJson(body): ApiJson<CreateMultipartBody>,
) -> Result<Json<MultipartView>, ApiError> {
    let out = state
        .media
        .create_multipart(
            principal.as_ref(),
            &info,
            CreateMultipart {
                filename: body.filename,
                content_type: body.content_type,
                size: body.size,
                part_size: body.part_size,
            },
        )
        .await?;
    tracing::info!(media.id = %out.id, key = %out.key, parts = out.part_count, "started multipart upload");
    Ok(Json(MultipartView::new(out, None, None)))
}

const UPLOAD_NOT_FOUND: &str = "`FIREWALL_NOT_FOUND` (unknown id, another organization's or another uploader's) or `STORAGE_UPLOAD_NOT_FOUND` (the row is no multipart upload in progress: completed, aborted, purged, or a single PUT)";

/// `POST /api/v1/media/{id}/parts`
#[utoipa::path(
    post,
    path = "/api/v1/media/{id}/parts",
    tag = "media",
    operation_id = "signMediaParts",
    summary = "Presign parts of a multipart upload",
    description = "One presigned `UploadPart` URL per part number (at most 1000 per call), each signed with the part's exact `Content-Length`. Only the upload's creator.",
    params(("id" = String, Path, description = "The media id (`med_…`)")),
    request_body = SignPartsBody,
    responses(
        (status = 200, description = "The presigned part URLs", body = SignedPartsView),
        (status = 400, description = "`VALIDATION_FAILED` on `partNumbers` or `partNumbers[i]`", body = ErrorEnvelope),
        (status = 401, description = responses::UNAUTHORIZED, body = ErrorEnvelope),
        (status = 403, description = responses::FORBIDDEN, body = ErrorEnvelope),
        (status = 404, description = UPLOAD_NOT_FOUND, body = ErrorEnvelope),
        (status = 429, description = responses::TOO_MANY, body = ErrorEnvelope),
        (status = 500, description = responses::INTERNAL, body = ErrorEnvelope),
        (status = 503, description = responses::UNAVAILABLE, body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("session" = []), ("apiKey" = []), ()),
)]
pub(crate) async fn sign_parts(
    State(state): State<AppState>,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    Request(info): Request,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SignPartsBody>,
) -> Result<Json<SignedPartsView>, ApiError> {
    let out = state
        .media
        .sign_parts(principal.as_ref(), &info, &id, &body.part_numbers)
        .await?;
    for _ in &out.parts {
        state.metrics.presign_issued("PUT");
    }
    Ok(Json(out.into()))
}

/// `GET /api/v1/media/{id}/parts`
#[utoipa::path(
    get,
    path = "/api/v1/media/{id}/parts",
    tag = "media",
    operation_id = "listMediaParts",
    summary = "List the uploaded parts",
    description = "The parts storage already holds (from its ListParts), ascending: to resume after a reload or a crash, upload only the missing ones. Only the upload's creator.",
    params(("id" = String, Path, description = "The media id (`med_…`)")),
    responses(
        (status = 200, description = "The stored parts", body = StoredPartsView),
        (status = 401, description = responses::UNAUTHORIZED, body = ErrorEnvelope),
        (status = 403, description = responses::FORBIDDEN, body = ErrorEnvelope),
        (status = 404, description = UPLOAD_NOT_FOUND, body = ErrorEnvelope),
        (status = 429, description = responses::TOO_MANY, body = ErrorEnvelope),
        (status = 500, description = responses::INTERNAL, body = ErrorEnvelope),
        (status = 503, description = responses::UNAVAILABLE, body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("session" = []), ("apiKey" = []), ()),
)]
pub(crate) async fn list_parts(
    State(state): State<AppState>,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    Request(info): Request,
    Path(id): Path<String>,
) -> Result<Json<StoredPartsView>, ApiError> {
    let parts = state
        .media
        .list_parts(principal.as_ref(), &info, &id)
        .await?;
    Ok(Json(parts.into()))
}

/// `POST /api/v1/media/{id}/complete`
#[utoipa::path(
    post,
    path = "/api/v1/media/{id}/complete",
    tag = "media",
    operation_id = "completeMediaMultipart",
    summary = "Complete a multipart upload",
    description = "Checks the part list against storage's ListParts (every part, ascending, storage's ETags, the planned sizes adding up to the declared size), completes the upload at storage, then confirms the row as `confirm` does. Completing a confirmed row returns it. Only the upload's creator.",
    params(("id" = String, Path, description = "The media id (`med_…`)")),
    request_body = CompleteBody,
    responses(
        (status = 200, description = "The confirmed row", body = MediaView<'static>),
        (status = 400, description = "`VALIDATION_FAILED` on `parts` (a gap, a missing part, not ascending), `parts[i].etag` (not storage's) or `size` (the parts do not add up to the declared size): nothing is completed or confirmed; or on `contentType` after completion (object and row deleted)", body = ErrorEnvelope),
        (status = 401, description = responses::UNAUTHORIZED, body = ErrorEnvelope),
        (status = 403, description = responses::FORBIDDEN, body = ErrorEnvelope),
        (status = 404, description = UPLOAD_NOT_FOUND, body = ErrorEnvelope),
        (status = 413, description = "The object is over the size limit (object and row deleted)", body = ErrorEnvelope),
        (status = 429, description = responses::TOO_MANY, body = ErrorEnvelope),
        (status = 500, description = responses::INTERNAL, body = ErrorEnvelope),
        (status = 503, description = responses::UNAVAILABLE, body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("session" = []), ("apiKey" = []), ()),
)]
pub(crate) async fn complete_multipart(
    State(state): State<AppState>,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    Request(info): Request,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CompleteBody>,
) -> Result<Response, ApiError> {
    let row = state
        .media
        .complete_multipart(principal.as_ref(), &info, &id, &body.into_parts())
        .await?;
    tracing::info!(media.id = %row.id, key = %row.key, size = ?row.size, "completed multipart upload");
    Ok(Json(MediaView::from(&row)).into_response())
}

/// `DELETE /api/v1/media/{id}/multipart`
#[utoipa::path(
    delete,
    path = "/api/v1/media/{id}/multipart",
    tag = "media",
    operation_id = "abortMediaMultipart",
    summary = "Abort a multipart upload",
    description = "Aborts the upload at storage (its parts are dropped) and removes the pending row. Only the upload's creator.",
    params(("id" = String, Path, description = "The media id (`med_…`)")),
    responses(
        (status = 200, description = "Aborted", body = AbortedView),
        (status = 401, description = responses::UNAUTHORIZED, body = ErrorEnvelope),
        (status = 403, description = responses::FORBIDDEN, body = ErrorEnvelope),
        (status = 404, description = UPLOAD_NOT_FOUND, body = ErrorEnvelope),
        (status = 429, description = responses::TOO_MANY, body = ErrorEnvelope),
        (status = 500, description = responses::INTERNAL, body = ErrorEnvelope),
        (status = 503, description = responses::UNAVAILABLE, body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("session" = []), ("apiKey" = []), ()),
)]
pub(crate) async fn abort_multipart(
    State(state): State<AppState>,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    Request(info): Request,
    Path(id): Path<String>,
) -> Result<Json<AbortedView>, ApiError> {
    state
        .media
        .abort_multipart(principal.as_ref(), &info, &id)
        .await?;
    tracing::info!(media.id = %id, "aborted multipart upload");
    Ok(Json(AbortedView::new()))
}
