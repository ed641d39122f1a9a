//! `/storage/v1/object*`: uploads through the server, deletes, listings, presign +
//! confirm and URLs, with their views.

use super::{DeletedView, Managed, docs};
use crate::error::{ApiError, ErrorEnvelope, responses};
use crate::extract::{ApiJson, ApiQuery, MaybeAuthenticated};
use crate::form_upload;
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use filegate_core::Error;
use filegate_core::managed::{
    ListObjects, ObjectInfo, ObjectPage, ObjectUrl, PresignUpload, PresignedUpload, Upload,
};
use filegate_core::ports::ByteStream;
use futures::StreamExt;
use http::{HeaderMap, header};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

// ---------------------------------------------------------------------------------------
// Views
// ---------------------------------------------------------------------------------------

/// An object.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ObjectView {
    /// `obj_…`
    id: String,
    /// The storage key: `<userId or orgId>/<bucket>/<path>`; pass it to `POST /storage/v1/url`.
    #[schema(example = "user_1/avatars/user_1/avatar-1718000000000.jpg")]
    key: String,
    /// The bucket's name.
    bucket: String,
    /// The path inside the bucket.
    #[schema(example = "user_1/avatar-1718000000000.jpg")]
    path: String,
    /// Bytes.
    size: u64,
    /// The storage ETag; null until the upload is confirmed.
    etag: Option<String>,
    content_type: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    updated_at: OffsetDateTime,
}

impl From<ObjectInfo> for ObjectView {
    fn from(o: ObjectInfo) -> Self {
        Self {
            id: o.id.to_string(),
            key: o.key.as_str().to_owned(),
            bucket: o.bucket,
            path: o.path.as_str().to_owned(),
            size: o.size,
            etag: o.etag,
            content_type: o.content_type,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

/// One page of a bucket's objects, by path.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ObjectPageView {
    items: Vec<ObjectView>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

impl From<ObjectPage> for ObjectPageView {
    fn from(p: ObjectPage) -> Self {
        Self {
            items: p.items.into_iter().map(ObjectView::from).collect(),
            next_cursor: p.next_cursor,
        }
    }
}

/// A presigned PUT; send it, then `POST /storage/v1/confirm/{bucket}/{path}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PresignView {
    /// The object id (`obj_…`), pending until confirmed.
    id: String,
    key: String,
    /// Where to PUT the bytes.
    upload_url: String,
    /// Always `PUT`.
    #[schema(value_type = String, example = "PUT")]
    method: &'static str,
    /// Exactly the headers the PUT must send (`Content-Type`, `Content-Length`).
    headers: BTreeMap<String, String>,
    /// When the URL stops working (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    expires_at: OffsetDateTime,
}

impl From<PresignedUpload> for PresignView {
    fn from(p: PresignedUpload) -> Self {
        Self {
            id: p.id.to_string(),
            key: p.key.as_str().to_owned(),
            upload_url: p.upload_url,
            method: p.method,
            headers: p.headers,
            expires_at: p.expires_at,
        }
    }
}

/// Where to read an object.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UrlView {
    /// `<FILES_URL>/public/<key>` for a public bucket (no credentials, no expiry), else a
    /// short-lived one: `<FILES_URL>/<key>?token=…` (files listener) or a signed storage GET.
    #[schema(
        example = "https://files.example.com/public/user_1/avatars/user_1/avatar-1718000000000.jpg"
    )]
    url: String,
    /// Short-lived URLs only: when the URL stops working (RFC 3339, UTC).
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<OffsetDateTime>,
}

impl From<ObjectUrl> for UrlView {
    fn from(u: ObjectUrl) -> Self {
        Self {
            url: u.url,
            expires_at: u.expires_at,
        }
    }
}

/// The body's declared length: absent is 411.
pub(super) fn content_length(headers: &HeaderMap) -> Result<u64, Error> {
    let raw = headers
        .get(header::CONTENT_LENGTH)
        .ok_or(Error::LengthRequired)?;
    raw.to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| Error::invalid("Content-Length", "must be a whole number of bytes"))
}

/// How much of a refused chunked body is read (and dropped) before the 411 is sent, and for
/// how long at most: a client still sending a small body then gets the answer instead of a
/// broken pipe. Larger bodies are cut off.
const DRAIN_LIMIT: usize = 1024 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

async fn drain(body: Body) {
    let mut stream = body.into_data_stream();
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        let mut seen = 0;
        while let Some(Ok(chunk)) = stream.next().await {
            seen += chunk.len();
            if seen > DRAIN_LIMIT {
                break;
            }
        }
    })
    .await;
}

/// `x-upsert: true|false`, absent is false.
pub(super) fn upsert(headers: &HeaderMap) -> Result<bool, Error> {
    match headers.get("x-upsert").map(|v| v.to_str().map(str::trim)) {
        None => Ok(false),
        Some(Ok(v)) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(Ok(v)) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(_) => Err(Error::invalid("x-upsert", "must be 'true' or 'false'")),
    }
}

/// The request body as the domain's stream, chunk by chunk (never collected).
fn byte_stream(body: Body) -> ByteStream {
    body.into_data_stream()
        .map(|chunk| {
            chunk.map_err(|e| {
                tracing::debug!(error = %e, "upload body failed");
                Error::invalid("body", "could not be read to the end")
            })
        })
        .boxed()
}

/// The raw bytes of an upload (any content type).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub(crate) struct RawBody(
    #[expect(
        dead_code,
        reason = "only its schema is used, for the OpenAPI document"
    )]
    Vec<u8>,
);

/// `POST /storage/v1/object/{bucket}/{path}`
#[utoipa::path(
    post,
    path = "/storage/v1/object/{bucket}/{*path}",
    tag = "storage",
    operation_id = "uploadObject",
    summary = "Upload an object",
    description = "Streams the raw body to storage at `<userId or orgId>/<bucket>/<path>` and records it. `Content-Type` is required and checked against the bucket's allow-list; `Content-Length` is required (a chunked body is 411) and checked against the bucket's size limit before the body is read. An object already at the path is 409 unless `x-upsert: true`. No JSON body limit applies. A `multipart/form-data` body (an HTML form, a browser storage client's `FormData`) must hold exactly one file part (a part with a filename): that part is the object and its own `Content-Type` the object's type; text fields are ignored; the envelope is never stored.",
    params(
        ("bucket" = String, Path, description = "The bucket's name"),
        ("path" = String, Path, description = "The path inside the bucket; may contain `/` (`user_1/avatar-1.jpg`)"),
        ("Content-Length" = u64, Header, description = "Required: the body's size in bytes"),
        ("x-upsert" = Option<bool>, Header, description = "`true` replaces an existing object at the path"),
    ),
    request_body(content = RawBody, content_type = "*/*", description = "The object's bytes; `Content-Type` is stored as the object's type"),
    responses(
        (status = 200, description = "The stored object", body = ObjectView),
        (status = 400, description = docs::BAD_REQUEST, body = ErrorEnvelope),
        (status = 401, description = docs::UNAUTHORIZED, body = ErrorEnvelope),
        (status = 403, description = docs::FORBIDDEN, body = ErrorEnvelope),
        (status = 404, description = docs::NOT_FOUND, body = ErrorEnvelope),
        (status = 409, description = docs::OBJECT_EXISTS, body = ErrorEnvelope),
        (status = 411, description = docs::LENGTH_REQUIRED, body = ErrorEnvelope),
        (status = 413, description = docs::TOO_LARGE, body = ErrorEnvelope),
        (status = 415, description = docs::MIME, body = ErrorEnvelope),
        (status = 429, description = responses::TOO_MANY, body = ErrorEnvelope),
        (status = 500, description = responses::INTERNAL, body = ErrorEnvelope),
        (status = 503, description = responses::UNAVAILABLE, body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("session" = []), ("apiKey" = []), ()),
)]
pub(crate) async fn upload(
    State(state): State<AppState>,
    Managed(svc): Managed,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    Path((bucket, path)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ObjectView>, ApiError> {
    let content_length = match content_length(&headers) {
        Err(Error::LengthRequired) => {
            drain(body).await;
            return Err(Error::LengthRequired.into());
        }
        other => other?,
    };
    let upsert = upsert(&headers)?;
    // A missing header goes to the domain as "" so its check order holds (401, 404, 403
    // before 400); the message then says what is missing.
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let missing_type = content_type.is_none();
    let input = if form_upload::is_form(content_type.as_deref()) {
        // Nothing is spooled for a caller who could not write anyway.
        if principal.is_none() {
            return Err(Error::AuthMissing.into());
        }
        let file = form_upload::spool(
            content_type.as_deref().unwrap_or_default(),
            body,
            &state.spool_dir,
        )
        .await?;
        Upload {
            content_type: file.content_type,
            content_length: file.size,
            body: file.body,
            upsert,
        }
    } else {
        Upload {
            content_type: content_type.unwrap_or_default(),
            content_length,
            body: byte_stream(body),
            upsert,
        }
    };
    // Its own task: a client hanging up mid-body fails the body stream instead of
    // cancelling the upload, so the upload's failure path purges its pending row.
    let result =
        tokio::spawn(async move { svc.upload(principal.as_ref(), &bucket, &path, input).await })
            .await
            .unwrap_or_else(|e| Err(Error::internal(e)));
    let object = match result {
        Err(Error::Validation(mut fields)) if missing_type => {
            for f in fields.iter_mut().filter(|f| f.field == "contentType") {
                "is required: send the Content-Type header".clone_into(&mut f.message);
            }
            return Err(Error::Validation(fields).into());
        }
        other => other?,
    };
    tracing::info!(key = %object.key, size = object.size, upsert, "uploaded object");
    Ok(Json(object.into()))
}

/// `DELETE /storage/v1/object/{bucket}/{path}`
#[utoipa::path(
    delete,
    path = "/storage/v1/object/{bucket}/{*path}",
    tag = "storage",
    operation_id = "deleteObject",
    summary = "Delete an object",
    description = "Deletes the caller's object at the path (and cancels a pending presigned upload there). Idempotent: a missing path is also 200.",
    params(
        ("bucket" = String, Path, description = "The bucket's name"),
        ("path" = String, Path, description = "The path inside the bucket; may contain `/`"),
    ),
    responses(
        (status = 200, description = "Deleted, or nothing was there", body = DeletedView),
        (status = 400, description = docs::BAD_REQUEST, body = ErrorEnvelope),
        (status = 401, description = docs::UNAUTHORIZED, body = ErrorEnvelope),
        (status = 403, description = docs::FORBIDDEN, body = ErrorEnvelope),
        (status = 404, description = docs::NOT_FOUND, body = ErrorEnvelope),
        (status = 429, description = responses::TOO_MANY, body = ErrorEnvelope),
        (status = 500, description = responses::INTERNAL, body = ErrorEnvelope),
        (status = 503, description = responses::UNAVAILABLE, body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("session" = []), ("apiKey" = []), ()),
)]
pub(crate) async fn delete_object(
    Managed(svc): Managed,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    Path((bucket, path)): Path<(String, String)>,
) -> Result<Json<DeletedView>, ApiError> {
    svc.delete(principal.as_ref(), &bucket, &path).await?;
    tracing::info!(bucket = %bucket, path = %path, "deleted object");
    Ok(Json(DeletedView { deleted: true }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListObjectsQuery {
    /// Only paths starting with this.
    prefix: Option<String>,
    /// 1–1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    cursor: Option<String>,
}

/// `GET /storage/v1/object/list/{bucket}?prefix=&limit=&cursor=`
#[utoipa::path(
    get,
    path = "/storage/v1/object/list/{bucket}",
    tag = "storage",
    operation_id = "listObjects",
    summary = "List objects",
    description = "The caller's objects in a bucket (the organization's, or the caller's own in `user` buckets), confirmed ones only, by path.",
    params(("bucket" = String, Path, description = "The bucket's name"), ListObjectsQuery),
    responses(
        (status = 200, description = "One page", body = ObjectPageView),
        (status = 400, description = docs::BAD_REQUEST, body = ErrorEnvelope),
        (status = 401, description = docs::UNAUTHORIZED, body = ErrorEnvelope),
        (status = 403, description = docs::FORBIDDEN, body = ErrorEnvelope),
        (status = 404, description = docs::NOT_FOUND, body = ErrorEnvelope),
        (status = 429, description = responses::TOO_MANY, body = ErrorEnvelope),
        (status = 500, description = responses::INTERNAL, body = ErrorEnvelope),
        (status = 503, description = responses::UNAVAILABLE, body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("session" = []), ("apiKey" = []), ()),
)]
pub(crate) async fn list_objects(
    Managed(svc): Managed,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    Path(bucket): Path<String>,
    ApiQuery(q): ApiQuery<ListObjectsQuery>,
) -> Result<Json<ObjectPageView>, ApiError> {
    let page = svc
        .list(
            principal.as_ref(),
            &bucket,
            ListObjects {
                prefix: q.prefix,
                limit: q.limit,
                cursor: q.cursor,
            },
        )
        .await?;
    Ok(Json(page.into()))
}

/// What will be PUT.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PresignBody {
    /// Signed: the PUT must send exactly this `Content-Type`.
    #[schema(example = "image/jpeg")]
    content_type: String,
    /// Bytes, signed as `Content-Length`: storage refuses any other body size.
    #[schema(minimum = 0, example = 48213)]
    size: u64,
}

/// `POST /storage/v1/presign/{bucket}/{path}`
#[utoipa::path(
    post,
    path = "/storage/v1/presign/{bucket}/{*path}",
    tag = "storage",
    operation_id = "presignObjectUpload",
    summary = "Presign an upload",
    description = "Checks the upload as `POST /storage/v1/object` would (limits against `size`), records a pending object and returns a presigned PUT. Never overwrites: a confirmed object at the path is 409. Then confirm.",
    params(
        ("bucket" = String, Path, description = "The bucket's name"),
        ("path" = String, Path, description = "The path inside the bucket; may contain `/`"),
    ),
    request_body = PresignBody,
    responses(
        (status = 200, description = "The presigned PUT", body = PresignView),
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
pub(crate) async fn presign(
    State(state): State<AppState>,
    Managed(svc): Managed,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    Path((bucket, path)): Path<(String, String)>,
    ApiJson(body): ApiJson<PresignBody>,
) -> Result<Json<PresignView>, ApiError> {
    let out = svc
        .presign(
            principal.as_ref(),
            &bucket,
            &path,
            PresignUpload {
                content_type: body.content_type,
                size: body.size,
            },
        )
        .await?;
    tracing::info!(object.id = %out.id, key = %out.key, "presigned managed upload");
    state.metrics.presign_issued(out.method);
    Ok(Json(out.into()))
}

/// `POST /storage/v1/confirm/{bucket}/{path}`
#[utoipa::path(
    post,
    path = "/storage/v1/confirm/{bucket}/{*path}",
    tag = "storage",
    operation_id = "confirmObjectUpload",
    summary = "Confirm a presigned upload",
    description = "Reads the stored object's real size, ETag and type and marks it confirmed. Nothing stored yet: 409 `STORAGE_NOT_UPLOADED` (still pending, retry after the PUT). Over the bucket's limits: 400 and the object is deleted. Confirming a confirmed object returns it.",
    params(
        ("bucket" = String, Path, description = "The bucket's name"),
        ("path" = String, Path, description = "The path inside the bucket; may contain `/`"),
    ),
    responses(
        (status = 200, description = "The confirmed object", body = ObjectView),
        (status = 400, description = docs::BAD_REQUEST, body = ErrorEnvelope),
        (status = 401, description = docs::UNAUTHORIZED, body = ErrorEnvelope),
        (status = 403, description = docs::FORBIDDEN, body = ErrorEnvelope),
        (status = 404, description = docs::NOT_FOUND, body = ErrorEnvelope),
        (status = 409, description = docs::NOT_UPLOADED, body = ErrorEnvelope),
        (status = 429, description = responses::TOO_MANY, body = ErrorEnvelope),
        (status = 500, description = responses::INTERNAL, body = ErrorEnvelope),
        (status = 503, description = responses::UNAVAILABLE, body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("session" = []), ("apiKey" = []), ()),
)]
pub(crate) async fn confirm(
    Managed(svc): Managed,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    Path((bucket, path)): Path<(String, String)>,
) -> Result<Json<ObjectView>, ApiError> {
    let object = svc.confirm(principal.as_ref(), &bucket, &path).await?;
    tracing::info!(key = %object.key, size = object.size, "confirmed managed upload");
    Ok(Json(object.into()))
}

/// Which object.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UrlBody {
    /// The `key` an upload returned.
    #[schema(example = "user_1/avatars/user_1/avatar-1718000000000.jpg")]
    key: String,
}

/// `POST /storage/v1/url`
#[utoipa::path(
    post,
    path = "/storage/v1/url",
    tag = "storage",
    operation_id = "objectUrl",
    summary = "Get an object's URL",
    description = "A public bucket's object: `<FILES_URL>/public/<key>`, permanent, no credentials needed. Otherwise, after the bucket's read scope, a short-lived URL (`expiresAt`): the files listener's `<FILES_URL>/<key>?token=…`, or a signed storage GET. Anonymous callers get public objects only.",
    request_body = UrlBody,
    responses(
        (status = 200, description = "The URL", body = UrlView),
        (status = 400, description = docs::BAD_REQUEST, body = ErrorEnvelope),
        (status = 401, description = docs::UNAUTHORIZED, body = ErrorEnvelope),
        (status = 403, description = docs::FORBIDDEN, body = ErrorEnvelope),
        (status = 404, description = docs::NOT_FOUND, body = ErrorEnvelope),
        (status = 429, description = responses::TOO_MANY, body = ErrorEnvelope),
        (status = 500, description = responses::INTERNAL, body = ErrorEnvelope),
        (status = 503, description = responses::UNAVAILABLE, body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("session" = []), ("apiKey" = []), ()),
)]
pub(crate) async fn url(
    State(state): State<AppState>,
    Managed(svc): Managed,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    ApiJson(body): ApiJson<UrlBody>,
) -> Result<Json<UrlView>, ApiError> {
    let out = svc.url(principal.as_ref(), &body.key).await?;
    // A signed storage GET is a presigned URL; the files listener's token URLs are not.
    if out.expires_at.is_some() && !out.url.starts_with(svc.policy().files_url.as_str()) {
        state.metrics.presign_issued("GET");
    }
    Ok(Json(out.into()))
}
