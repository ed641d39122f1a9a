//! Managed mode's API: `/storage/v1/*` buckets, uploads through the server, presign +
//! confirm, listings and URLs, over [`ManagedService`] (its module docs give the check
//! order and the write paths).
//!
//! - Managed mode off (`AppState::managed` is `None`): every route answers 404
//!   `MANAGED_MODE_OFF`, before authentication.
//! - Uploads stream the request body straight to storage, which needs the length up front:
//!   `Content-Length` is required (a chunked body is 411 `LENGTH_REQUIRED`), and the
//!   bucket's size limit is checked against it before a byte is read. The route has no
//!   body limit of its own (the API's 64 KiB JSON limit is disabled for it).
//! - Routing: `GET /storage/v1/object/list/{bucket}` and `/storage/v1/object/{bucket}/{*path}`
//!   (uploads and deletes here; downloads in `routes::files`) coexist, axum's router
//!   preferring the static `list` segment. So no bucket may be named `list` (refused at
//!   creation): its objects would be shadowed by the listing.

use crate::error::{ApiError, ErrorEnvelope, responses};
use crate::extract::{ApiJson, ApiQuery, MaybeAuthenticated};
use crate::form_upload;
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, State};
use filegate_core::Error;
use filegate_core::managed::{
    CreateBucket, ListObjects, ManagedService, ObjectInfo, ObjectPage, ObjectUrl, PresignUpload,
    PresignedUpload, ReadScope, UpdateBucket, Upload,
};
use filegate_core::ports::ByteStream;
pub(crate) use filegate_views::BucketView;
use futures::StreamExt;
use http::request::Parts;
use http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::UtoipaMethodRouter;

/// Bucket names that cannot be created: `list` would be shadowed by the object listing.
const RESERVED_BUCKET_NAMES: &[&str] = &["list"];

/// Descriptions of the error statuses of these routes.
mod docs {
    pub(super) const BAD_REQUEST: &str = "`VALIDATION_FAILED`: bad JSON, header, query or value (`details.fields` maps field to message)";
    pub(super) const UNAUTHORIZED: &str =
        "`AUTH_MISSING` (no credentials), `AUTH_INVALID_TOKEN` or `AUTH_EXPIRED`";
    pub(super) const FORBIDDEN: &str = "`ACCESS_NO_ORG`, `ACCESS_ROLE_REQUIRED` (`details.required`, `details.current`), `ACCESS_ADMIN_REQUIRED` (project-wide buckets) or `FIREWALL_ORG_ISOLATION` / `FIREWALL_USER_ISOLATION` (reveal mode), or `CSRF_ORIGIN_UNTRUSTED` (a write authenticated by the session cookie from an untrusted page)";
    pub(super) const NOT_FOUND: &str = "`STORAGE_BUCKET_NOT_FOUND` (\"Bucket not found\"), `STORAGE_OBJECT_NOT_FOUND`, or `MANAGED_MODE_OFF` (managed mode is off: `FILEGATE_MANAGED=true`)";
    pub(super) const BUCKET_CONFLICT: &str = "`STORAGE_BUCKET_EXISTS` (create) or `STORAGE_BUCKET_NOT_EMPTY` (delete without `empty=true`)";
    pub(super) const OBJECT_EXISTS: &str = "`STORAGE_OBJECT_EXISTS`: an object is at this path (upload: send `x-upsert: true` to replace it)";
    pub(super) const NOT_UPLOADED: &str = "`STORAGE_NOT_UPLOADED`: nothing was PUT to the presigned URL yet; the upload stays pending";
    pub(super) const LENGTH_REQUIRED: &str = "`LENGTH_REQUIRED`: no `Content-Length` (e.g. a chunked body); the body is streamed to storage, which needs the length up front";
    pub(super) const TOO_LARGE: &str = "`STORAGE_FILE_TOO_LARGE`: over the bucket's size limit (`details.size`, `details.maxSize`); nothing is stored";
    pub(super) const MIME: &str = "`STORAGE_MIME_NOT_ALLOWED`: the content type is outside the bucket's allow-list (`details.contentType`, `details.allowed`)";
}

// ---------------------------------------------------------------------------------------
// The managed-mode guard
// ---------------------------------------------------------------------------------------

/// The managed-mode service; its rejection is 404 `MANAGED_MODE_OFF`. Put it first among a
/// handler's extractors so the answer does not depend on the credentials.
pub(crate) struct Managed(pub Arc<ManagedService>);

impl FromRequestParts<AppState> for Managed {
    type Rejection = ApiError;

    async fn from_request_parts(_: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        state
            .managed
            .clone()
            .map(Self)
            .ok_or(ApiError(Error::ManagedModeOff))
    }
}

/// Lifts the API's JSON body limit from a route: for the streamed upload.
pub(crate) fn unlimited_body(
    (schemas, paths, method_router): UtoipaMethodRouter<AppState>,
) -> UtoipaMethodRouter<AppState> {
    (
        schemas,
        paths,
        method_router.layer(DefaultBodyLimit::disable()),
    )
}

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

/// A delete succeeded (also when there was nothing to delete, for objects).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeletedView {
    /// Always `true`.
    deleted: bool,
}

// ---------------------------------------------------------------------------------------
// Buckets
// ---------------------------------------------------------------------------------------

/// A new bucket.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateBucketBody {
    /// 3–63 characters: lower-case letters, digits, `-`; unique in the organization (or
    /// among project-wide buckets). `list` is reserved.
    #[schema(example = "invoices")]
    name: String,
    /// Shorthand: `true` is `readScope: "public"`. Must agree with `readScope` when both
    /// are sent.
    public: Option<bool>,
    /// `public`, `authenticated`, `org` (default) or `user`.
    read_scope: Option<String>,
    /// `org` (default), `user`, or an access rule (`admin+`, `admin,owner`, `authenticated`).
    write_scope: Option<String>,
    /// Bytes; at most the server-wide maximum, which also applies when omitted.
    #[schema(minimum = 1)]
    file_size_limit: Option<u64>,
    /// MIME types or patterns (`image/png`, `image/*`); empty or omitted: any type.
    #[serde(default)]
    allowed_mime_types: Vec<String>,
    /// A bucket for every organization (platform admins only); default: the caller's
    /// organization's.
    #[serde(default)]
    project_wide: bool,
}

/// `public` and `readScope` together: `None` leaves the scope to the default / unchanged.
fn read_scope_of(
    public: Option<bool>,
    read_scope: Option<String>,
) -> Result<Option<String>, Error> {
    match (public, read_scope) {
        (None, scope) => Ok(scope),
        (Some(true), None) => Ok(Some(ReadScope::Public.as_str().to_owned())),
        (Some(false), None) => Ok(None),
        (Some(p), Some(scope)) if (scope == ReadScope::Public.as_str()) == p => Ok(Some(scope)),
        (Some(_), Some(_)) => Err(Error::invalid("public", "contradicts readScope")),
    }
}

/// `POST /storage/v1/bucket`
#[utoipa::path(
    post,
    path = "/storage/v1/bucket",
    tag = "storage",
    operation_id = "createBucket",
    summary = "Create a bucket",
    description = "Creates a bucket in the caller's organization (manage rule, `admin+` by default) or, with `projectWide`, for every organization (platform admins only).",
    request_body = CreateBucketBody,
    responses(
        (status = 201, description = "The bucket", body = BucketView),
        (status = 400, description = docs::BAD_REQUEST, body = ErrorEnvelope),
        (status = 401, description = docs::UNAUTHORIZED, body = ErrorEnvelope),
        (status = 403, description = docs::FORBIDDEN, body = ErrorEnvelope),
        (status = 404, description = docs::NOT_FOUND, body = ErrorEnvelope),
        (status = 409, description = docs::BUCKET_CONFLICT, body = ErrorEnvelope),
        (status = 429, description = responses::TOO_MANY, body = ErrorEnvelope),
        (status = 500, description = responses::INTERNAL, body = ErrorEnvelope),
        (status = 503, description = responses::UNAVAILABLE, body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("session" = []), ("apiKey" = []), ()),
)]
pub(crate) async fn create_bucket(
    Managed(svc): Managed,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    ApiJson(body): ApiJson<CreateBucketBody>,
) -> Result<(StatusCode, Json<BucketView>), ApiError> {
    // After authentication, like the domain's own validation.
    if principal.is_some() && RESERVED_BUCKET_NAMES.contains(&body.name.as_str()) {
        return Err(Error::invalid(
            "name",
            "is reserved: /storage/v1/object/list/{bucket} lists a bucket's objects",
        )
        .into());
    }
    let read_scope = read_scope_of(body.public, body.read_scope)?;
    let bucket = svc
        .create_bucket(
            principal.as_ref(),
            CreateBucket {
                name: body.name,
                project_wide: body.project_wide,
                read_scope,
                write_scope: body.write_scope,
                file_size_limit: body.file_size_limit,
                allowed_mime_types: body.allowed_mime_types,
            },
        )
        .await?;
    tracing::info!(bucket.id = %bucket.id, bucket.name = %bucket.name, "created bucket");
    Ok((StatusCode::CREATED, Json(bucket.into())))
}

/// `GET /storage/v1/bucket`
#[utoipa::path(
    get,
    path = "/storage/v1/bucket",
    tag = "storage",
    operation_id = "listBuckets",
    summary = "List buckets",
    description = "The caller organization's buckets and the project-wide ones, by name.",
    responses(
        (status = 200, description = "The buckets", body = Vec<BucketView>),
        (status = 401, description = docs::UNAUTHORIZED, body = ErrorEnvelope),
        (status = 404, description = docs::NOT_FOUND, body = ErrorEnvelope),
        (status = 429, description = responses::TOO_MANY, body = ErrorEnvelope),
        (status = 500, description = responses::INTERNAL, body = ErrorEnvelope),
        (status = 503, description = responses::UNAVAILABLE, body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("session" = []), ("apiKey" = []), ()),
)]
pub(crate) async fn list_buckets(
    Managed(svc): Managed,
    MaybeAuthenticated(principal): MaybeAuthenticated,
) -> Result<Json<Vec<BucketView>>, ApiError> {
    let buckets = svc.list_buckets(principal.as_ref()).await?;
    Ok(Json(buckets.into_iter().map(BucketView::from).collect()))
}

/// `GET /storage/v1/bucket/{name}`
#[utoipa::path(
    get,
    path = "/storage/v1/bucket/{name}",
    tag = "storage",
    operation_id = "getBucket",
    summary = "Get a bucket",
    description = "By name (the caller organization's first, else the project-wide one) or by id.",
    params(("name" = String, Path, description = "The bucket's name or id")),
    responses(
        (status = 200, description = "The bucket", body = BucketView),
        (status = 401, description = docs::UNAUTHORIZED, body = ErrorEnvelope),
        (status = 403, description = docs::FORBIDDEN, body = ErrorEnvelope),
        (status = 404, description = docs::NOT_FOUND, body = ErrorEnvelope),
        (status = 429, description = responses::TOO_MANY, body = ErrorEnvelope),
        (status = 500, description = responses::INTERNAL, body = ErrorEnvelope),
        (status = 503, description = responses::UNAVAILABLE, body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("session" = []), ("apiKey" = []), ()),
)]
pub(crate) async fn get_bucket(
    Managed(svc): Managed,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    Path(name): Path<String>,
) -> Result<Json<BucketView>, ApiError> {
    let bucket = svc.get_bucket(principal.as_ref(), &name).await?;
    Ok(Json(bucket.into()))
}

/// Absent stays `None`; `null` is `Some(None)`.
#[expect(
    clippy::option_option,
    reason = "PATCH tells an absent field from a null one"
)]
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Changes to a bucket; omitted fields stay as they are. The name and organization are fixed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UpdateBucketBody {
    /// `true`: `readScope: "public"`; `false` on a public bucket: `readScope: "org"`.
    public: Option<bool>,
    read_scope: Option<String>,
    /// Cannot switch between `user` and an organization scope while the bucket holds objects.
    write_scope: Option<String>,
    /// Bytes; `null` removes the bucket's own limit (the server-wide maximum applies).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u64>, minimum = 1)]
    #[expect(
        clippy::option_option,
        reason = "absent keeps the limit, null removes it"
    )]
    file_size_limit: Option<Option<u64>>,
    /// Replaces the allow-list; `[]` allows any type.
    allowed_mime_types: Option<Vec<String>>,
}

/// `PUT /storage/v1/bucket/{name}`
#[utoipa::path(
    put,
    path = "/storage/v1/bucket/{name}",
    tag = "storage",
    operation_id = "updateBucket",
    summary = "Update a bucket",
    description = "Changes a bucket's scopes and limits (manage rule; platform admins for project-wide buckets). Objects already stored are not re-checked.",
    params(("name" = String, Path, description = "The bucket's name or id")),
    request_body = UpdateBucketBody,
    responses(
        (status = 200, description = "The updated bucket", body = BucketView),
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
pub(crate) async fn update_bucket(
    Managed(svc): Managed,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<UpdateBucketBody>,
) -> Result<Json<BucketView>, ApiError> {
    let read_scope = match read_scope_of(body.public, body.read_scope)? {
        // `public: false` alone makes a public bucket organization-readable.
        None if body.public == Some(false) => {
            let current = svc.get_bucket(principal.as_ref(), &name).await?;
            current
                .is_public()
                .then(|| ReadScope::Org.as_str().to_owned())
        }
        scope => scope,
    };
    let bucket = svc
        .update_bucket(
            principal.as_ref(),
            &name,
            UpdateBucket {
                read_scope,
                write_scope: body.write_scope,
                file_size_limit: body.file_size_limit,
                allowed_mime_types: body.allowed_mime_types,
            },
        )
        .await?;
    tracing::info!(bucket.id = %bucket.id, bucket.name = %bucket.name, "updated bucket");
    Ok(Json(bucket.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeleteBucketQuery {
    /// `true`: delete every object of the bucket first; otherwise a non-empty bucket is 409.
    empty: Option<bool>,
}

/// `DELETE /storage/v1/bucket/{name}?empty=true`
#[utoipa::path(
    delete,
    path = "/storage/v1/bucket/{name}",
    tag = "storage",
    operation_id = "deleteBucket",
    summary = "Delete a bucket",
    description = "Deletes a bucket (manage rule). A bucket holding objects is refused unless `empty=true`, which deletes them first (a failure midway leaves the rest for a retry).",
    params(("name" = String, Path, description = "The bucket's name or id"), DeleteBucketQuery),
    responses(
        (status = 200, description = "Deleted", body = DeletedView),
        (status = 400, description = docs::BAD_REQUEST, body = ErrorEnvelope),
        (status = 401, description = docs::UNAUTHORIZED, body = ErrorEnvelope),
        (status = 403, description = docs::FORBIDDEN, body = ErrorEnvelope),
        (status = 404, description = docs::NOT_FOUND, body = ErrorEnvelope),
        (status = 409, description = docs::BUCKET_CONFLICT, body = ErrorEnvelope),
        (status = 429, description = responses::TOO_MANY, body = ErrorEnvelope),
        (status = 500, description = responses::INTERNAL, body = ErrorEnvelope),
        (status = 503, description = responses::UNAVAILABLE, body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("session" = []), ("apiKey" = []), ()),
)]
pub(crate) async fn delete_bucket(
    Managed(svc): Managed,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<DeleteBucketQuery>,
) -> Result<Json<DeletedView>, ApiError> {
    svc.delete_bucket(principal.as_ref(), &name, q.empty.unwrap_or(false))
        .await?;
    tracing::info!(bucket = %name, "deleted bucket");
    Ok(Json(DeletedView { deleted: true }))
}

// ---------------------------------------------------------------------------------------
// Objects
// ---------------------------------------------------------------------------------------

/// The body's declared length: absent is 411.
fn content_length(headers: &HeaderMap) -> Result<u64, Error> {
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
fn upsert(headers: &HeaderMap) -> Result<bool, Error> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::response::IntoResponse;
    use axum::routing::{get, post};
    use tower::ServiceExt;

    async fn hit(app: &Router, method: &str, uri: &str) -> (StatusCode, String) {
        let req = http::Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .expect("request");
        let res = app.clone().oneshot(req).await.expect("answer");
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 1024)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The wire shapes of the views (core's types carry no serialisation of their own).
    #[test]
    fn views_write_the_api_shapes() {
        use filegate_core::domain::{BucketName, ByteSize, ContentType, ObjectKey};
        use filegate_core::managed::{
            Bucket, BucketId, ObjectId, ObjectPath, ObjectRow, ObjectStatus, WriteScope,
        };
        let epoch = OffsetDateTime::UNIX_EPOCH;
        let mut b = Bucket {
            id: BucketId::generate(),
            name: BucketName::parse("docs").expect("name"),
            organization_id: None,
            read_scope: ReadScope::Org,
            write_scope: WriteScope::Org,
            file_size_limit: Some(ByteSize(1000)),
            allowed_mime_types: vec![],
            created_at: epoch,
            updated_at: epoch,
        };
        let json = serde_json::to_value(BucketView::from(b.clone())).expect("json");
        assert_eq!(json["name"], "docs");
        assert_eq!(json["writeScope"], "org");
        assert_eq!(json["fileSizeLimit"], 1000);
        assert_eq!(json["organizationId"], serde_json::Value::Null);
        assert_eq!(json["createdAt"], "1970-01-01T00:00:00Z");
        b.read_scope = ReadScope::Public;
        let json = serde_json::to_value(BucketView::from(b.clone())).expect("json");
        assert_eq!(json["readScope"], "public");
        assert_eq!(json["public"], true);

        let row = ObjectRow {
            id: ObjectId::generate(),
            bucket_id: b.id.clone(),
            organization_id: None,
            owner_id: "u".into(),
            segment: "u".into(),
            key: ObjectKey::parse("u/docs/a.txt").expect("key"),
            path: ObjectPath::parse("a.txt").expect("path"),
            content_type: ContentType::parse("text/plain").expect("type"),
            size: 3,
            etag: Some("e".into()),
            status: ObjectStatus::Confirmed,
            created_at: epoch,
            updated_at: epoch,
            deleted_at: None,
        };
        let info = ObjectInfo::new(&row, &b.name);
        let json = serde_json::to_value(ObjectView::from(info.clone())).expect("json");
        for f in ["id", "key", "bucket", "path", "size", "etag", "contentType"] {
            assert!(json.get(f).is_some(), "{f} missing from {json}");
        }
        let page = ObjectPage {
            items: vec![info],
            next_cursor: None,
        };
        let json = serde_json::to_value(ObjectPageView::from(page)).expect("json");
        assert!(json.get("nextCursor").is_some() && json["items"].is_array());

        let want = "http://127.0.0.1:8789/public/u/docs/a.txt";
        let url = ObjectUrl {
            url: want.into(),
            expires_at: None,
        };
        assert_eq!(
            serde_json::to_value(UrlView::from(url)).expect("json"),
            serde_json::json!({ "url": want })
        );

        let p = PresignedUpload {
            id: row.id.clone(),
            key: row.key.clone(),
            upload_url: "https://s3.test/x".into(),
            method: "PUT",
            headers: BTreeMap::new(),
            expires_at: epoch,
        };
        let json = serde_json::to_value(PresignView::from(p)).expect("json");
        for f in ["id", "key", "uploadUrl", "headers", "expiresAt"] {
            assert!(json.get(f).is_some(), "{f}");
        }
    }

    /// The routing this module relies on: the static `list` segment beats the `{bucket}`
    /// capture, and the object routes still serve every other path, `list` segments inside
    /// the path included.
    #[tokio::test]
    async fn the_list_route_and_the_object_routes_coexist() {
        let app: Router = Router::new()
            .route(
                "/storage/v1/object/list/{bucket}",
                get(|Path(b): Path<String>| async move { format!("list {b}") }),
            )
            .route(
                "/storage/v1/object/{bucket}/{*path}",
                post(
                    |Path((b, p)): Path<(String, String)>| async move { format!("upload {b} {p}") },
                )
                .get(|Path((b, p)): Path<(String, String)>| async move {
                    format!("download {b} {p}")
                }),
            );
        assert_eq!(
            hit(&app, "GET", "/storage/v1/object/list/docs").await,
            (StatusCode::OK, "list docs".to_owned())
        );
        assert_eq!(
            hit(&app, "GET", "/storage/v1/object/docs/a/b.txt").await,
            (StatusCode::OK, "download docs a/b.txt".to_owned())
        );
        assert_eq!(
            hit(&app, "POST", "/storage/v1/object/docs/list/x").await,
            (StatusCode::OK, "upload docs list/x".to_owned())
        );
        assert_eq!(
            hit(&app, "GET", "/storage/v1/object/docs/list").await,
            (StatusCode::OK, "download docs list".to_owned())
        );
        // Deeper than `list/{bucket}`: falls back to the object routes.
        assert_eq!(
            hit(&app, "GET", "/storage/v1/object/list/a/b").await,
            (StatusCode::OK, "download list a/b".to_owned())
        );
    }

    #[test]
    fn public_and_read_scope_must_agree() {
        assert_eq!(read_scope_of(None, None).unwrap(), None);
        assert_eq!(
            read_scope_of(Some(true), None).unwrap().as_deref(),
            Some("public")
        );
        assert_eq!(read_scope_of(Some(false), None).unwrap(), None);
        assert_eq!(
            read_scope_of(Some(false), Some("user".into()))
                .unwrap()
                .as_deref(),
            Some("user")
        );
        assert!(read_scope_of(Some(true), Some("org".into())).is_err());
        assert!(read_scope_of(Some(false), Some("public".into())).is_err());
    }

    #[test]
    fn upload_headers_are_parsed_strictly() {
        let mut h = HeaderMap::new();
        assert!(matches!(content_length(&h), Err(Error::LengthRequired)));
        h.insert(header::CONTENT_LENGTH, "12".parse().unwrap());
        assert_eq!(content_length(&h).unwrap(), 12);
        assert!(!upsert(&h).unwrap());
        h.insert("x-upsert", "TRUE".parse().unwrap());
        assert!(upsert(&h).unwrap());
        h.insert("x-upsert", "yes".parse().unwrap());
        assert!(upsert(&h).is_err());
    }

    #[test]
    fn managed_off_and_length_required_are_envelopes() {
        for (err, status, code) in [
            (
                ApiError(Error::ManagedModeOff),
                StatusCode::NOT_FOUND,
                "MANAGED_MODE_OFF",
            ),
            (
                ApiError(Error::LengthRequired),
                StatusCode::LENGTH_REQUIRED,
                "LENGTH_REQUIRED",
            ),
        ] {
            let res = err.into_response();
            assert_eq!(res.status(), status);
            let env = res
                .extensions()
                .get::<ErrorEnvelope>()
                .expect("an envelope");
            assert_eq!(env.code(), code);
            assert!(env.hint().is_some());
        }
    }
}
