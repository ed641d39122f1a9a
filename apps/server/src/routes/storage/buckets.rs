//! `/storage/v1/bucket*`: create, list, read, update and delete buckets.

use super::{DeletedView, Managed, docs};
use crate::error::{ApiError, ErrorEnvelope, responses};
use crate::extract::{ApiJson, ApiQuery, MaybeAuthenticated};
use axum::Json;
use axum::extract::Path;
use filegate_core::Error;
use filegate_core::managed::{CreateBucket, ReadScope, UpdateBucket};
pub(crate) use filegate_views::BucketView;
use http::StatusCode;
use serde::{Deserialize, Deserializer};
use utoipa::{IntoParams, ToSchema};

/// Bucket names that cannot be created: `list` would be shadowed by the object listing.
const RESERVED_BUCKET_NAMES: &[&str] = &["list"];

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
pub(super) fn read_scope_of(
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
