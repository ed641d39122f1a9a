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

mod buckets;
mod multipart;
mod objects;
#[cfg(test)]
mod tests;

pub(crate) use buckets::*;
pub(crate) use multipart::*;
pub(crate) use objects::*;

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use filegate_core::Error;
use filegate_core::managed::ManagedService;
use http::request::Parts;
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::UtoipaMethodRouter;

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

/// A delete succeeded (also when there was nothing to delete, for objects).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeletedView {
    /// Always `true`.
    deleted: bool,
}
