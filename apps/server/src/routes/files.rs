//! Downloads through the API listener, with the HTTP semantics of [`crate::serve`]:
//! `GET|HEAD /storage/v1/object/{bucket}/{*path}` (managed mode) and
//! `GET|HEAD /api/v1/files/{id}/download` (managed `obj_…` ids and presign-only `med_…`
//! ids, the older "files" API), both through core's [`FileAccess`](filegate_core::files::FileAccess): it checks once and
//! says where the bytes are; this module only speaks HTTP.

use crate::error::{ApiError, ErrorEnvelope, responses};
use crate::extract::{MaybeAuthenticated, Request};
use crate::serve::{FileRequest, Open, Opened, serve};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use filegate_core::Error;
use filegate_core::error::Resource;
use filegate_core::managed::ManagedService;
use futures::FutureExt;
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use std::collections::HashMap;
use std::sync::Arc;

const FILE_RESPONSES: &str = "The bytes. `ETag`, `Last-Modified`, `Content-Type` (normalised), `Content-Length`, \
`Accept-Ranges: bytes`, `X-Content-Type-Options: nosniff`, `Content-Security-Policy: default-src 'none'; sandbox`, \
`Cross-Origin-Resource-Policy: same-site`, `Cache-Control`, and always `Content-Disposition: attachment` \
(named by `?download=<name>` when given): the API origin never renders user bytes as a document. \
HEAD: the same headers, no body.";

fn managed(state: &AppState) -> Result<Arc<ManagedService>, Error> {
    state
        .managed
        .clone()
        .ok_or(Error::NotFound(Resource::Bucket))
}

/// The API origin hosts the upload page and its token: user bytes served from it are
/// always attachments, never documents of this origin.
fn file_request(state: &AppState, parts: &Parts, query: &HashMap<String, String>) -> FileRequest {
    FileRequest::new(
        &parts.method,
        &parts.headers,
        query,
        state.files.public_max_age,
    )
    .attachments_only()
}

/// `GET|HEAD /storage/v1/object/{bucket}/{*path}`
#[utoipa::path(
    get,
    path = "/storage/v1/object/{bucket}/{*path}",
    tag = "storage",
    operation_id = "downloadObject",
    summary = "Download an object",
    description = "Streams one of the caller's objects (managed mode) with full HTTP semantics: \
                   conditional requests (304), one `Range` (206, 416 with `Content-Range: bytes */<size>`), \
                   `?download[=<name>]`. HEAD answers the same headers without a body.",
    params(
        ("bucket" = String, Path, description = "Bucket name or id"),
        ("path" = String, Path, description = "The object's path in the bucket"),
        ("download" = Option<String>, Query, description = "Serve as an attachment, optionally under this name"),
    ),
    responses(
        (status = 200, description = FILE_RESPONSES),
        (status = 206, description = "One range: `Content-Range: bytes <first>-<last>/<size>`"),
        (status = 304, description = "Not modified (`If-None-Match` / `If-Modified-Since`)"),
        (status = 400, description = responses::BAD_REQUEST, body = ErrorEnvelope),
        (status = 401, description = responses::UNAUTHORIZED, body = ErrorEnvelope),
        (status = 403, description = responses::FORBIDDEN, body = ErrorEnvelope),
        (status = 404, description = "`STORAGE_BUCKET_NOT_FOUND` or `STORAGE_OBJECT_NOT_FOUND`", body = ErrorEnvelope),
        (status = 416, description = "`RANGE_NOT_SATISFIABLE`, with `Content-Range: bytes */<size>`", body = ErrorEnvelope),
        (status = 429, description = responses::TOO_MANY, body = ErrorEnvelope),
        (status = 500, description = responses::INTERNAL, body = ErrorEnvelope),
        (status = 503, description = responses::UNAVAILABLE, body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("session" = []), ("apiKey" = [])),
)]
pub(crate) async fn download_object(
    State(state): State<AppState>,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    Path((bucket, path)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let svc = managed(&state)?;
    let req = file_request(&state, &parts, &query);
    let (principal, bucket, path) = (&principal, bucket.as_str(), path.as_str());
    let open: Open<'_> = Box::new(move |range| {
        let svc = svc.clone();
        async move {
            Ok(Opened::from(
                svc.download(principal.as_ref(), bucket, path, range)
                    .await?,
            ))
        }
        .boxed()
    });
    Ok(serve(&state.metrics, &req, open).await?)
}

/// `GET|HEAD /api/v1/files/{id}/download`
#[utoipa::path(
    get,
    path = "/api/v1/files/{id}/download",
    tag = "storage",
    operation_id = "downloadFile",
    summary = "Download a file by id",
    description = "For a managed object id (`obj_…`) or a presign-only media id (`med_…`): session, \
                   firewall (the file must belong to the caller's organization; hide mode 404 by default), \
                   access (`med_`: the `signDownload` rule, default `member+`; `obj_`: the bucket's read scope), \
                   then the bytes streamed with the semantics of the object download. \
                   `?redirect=true` answers 302 to a short-lived presigned GET instead.",
    params(
        ("id" = String, Path, description = "`obj_…` or `med_…`"),
        ("redirect" = Option<bool>, Query, description = "302 to a presigned storage GET instead of streaming"),
        ("download" = Option<String>, Query, description = "Serve as an attachment, optionally under this name"),
    ),
    responses(
        (status = 200, description = FILE_RESPONSES),
        (status = 206, description = "One range: `Content-Range: bytes <first>-<last>/<size>`"),
        (status = 302, description = "`?redirect=true`: `Location` is a presigned GET"),
        (status = 304, description = "Not modified (`If-None-Match` / `If-Modified-Since`)"),
        (status = 400, description = responses::BAD_REQUEST, body = ErrorEnvelope),
        (status = 401, description = responses::UNAUTHORIZED, body = ErrorEnvelope),
        (status = 403, description = responses::FORBIDDEN, body = ErrorEnvelope),
        (status = 404, description = "`FIREWALL_NOT_FOUND` (`med_`) or `STORAGE_OBJECT_NOT_FOUND` (`obj_`): no such id in the caller's organization", body = ErrorEnvelope),
        (status = 416, description = "`RANGE_NOT_SATISFIABLE`, with `Content-Range: bytes */<size>`", body = ErrorEnvelope),
        (status = 429, description = responses::TOO_MANY, body = ErrorEnvelope),
        (status = 500, description = responses::INTERNAL, body = ErrorEnvelope),
        (status = 503, description = responses::UNAVAILABLE, body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("session" = []), ("apiKey" = [])),
)]
pub(crate) async fn download_file(
    State(state): State<AppState>,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    Request(info): Request,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let redirect = query
        .get("redirect")
        .is_some_and(|v| matches!(v.as_str(), "true" | "1" | ""));
    let req = file_request(&state, &parts, &query);
    let caller = principal.as_ref();
    let files = state.reads.as_ref();
    if redirect {
        let url = files
            .sign_read(caller, &info, &id, req.download.clone().flatten())
            .await?;
        state.metrics.presign_issued("GET");
        return Ok(found(&url));
    }
    let file = files.authorize_read(caller, &info, &id).await?;
    let file = &file;
    let open: Open<'_> = Box::new(move |range| {
        async move {
            Ok(Opened {
                body: files.open(file, range).await?,
                content_type: Some(file.content_type.clone()),
                etag: file.etag.clone(),
                updated_at: file.updated_at,
                public: file.public,
                filename: file.filename.clone(),
            })
        }
        .boxed()
    });
    Ok(serve(&state.metrics, &req, open).await?)
}

fn found(url: &str) -> Response {
    match HeaderValue::from_str(url) {
        Ok(location) => {
            let mut res = StatusCode::FOUND.into_response();
            res.headers_mut().insert(header::LOCATION, location);
            res.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-store"),
            );
            res
        }
        Err(_) => {
            ApiError(Error::internal("a presigned URL is not a header value")).into_response()
        }
    }
}
