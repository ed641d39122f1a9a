//! The JSON shapes filegate writes for its domain types: the HTTP API's views (with their
//! OpenAPI schemas) and the admin's `--json`, one definition for both. Core's types carry
//! no wire format; a shape changes here, and the API and the CLI change together.

pub mod multipart;

use filegate_core::managed::Bucket;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// A bucket.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BucketView {
    /// `bkt_…`
    id: String,
    #[schema(example = "avatars")]
    name: String,
    /// Null for a project-wide bucket (visible from every organization).
    organization_id: Option<String>,
    /// `readScope` is `public`: objects are served without credentials at
    /// `<FILES_URL>/public/<key>`.
    public: bool,
    /// `public`, `authenticated`, `org` or `user`.
    #[schema(example = "public")]
    read_scope: String,
    /// `org`, `user` (keys under the uploader's user id) or an access rule (`admin+`).
    #[schema(example = "user")]
    write_scope: String,
    /// Bytes; null: the server-wide maximum (`FILEGATE_MAX_UPLOAD_SIZE`).
    #[schema(example = 5_242_880)]
    file_size_limit: Option<u64>,
    /// MIME types or patterns (`image/*`); empty: any type.
    #[schema(example = json!(["image/*"]))]
    allowed_mime_types: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    updated_at: OffsetDateTime,
}

impl From<Bucket> for BucketView {
    fn from(b: Bucket) -> Self {
        Self {
            public: b.is_public(),
            allowed_mime_types: b.allowed_mime_strings(),
            id: b.id.to_string(),
            name: b.name.as_str().to_owned(),
            organization_id: b.organization_id,
            read_scope: b.read_scope.as_str().to_owned(),
            write_scope: b.write_scope.to_string(),
            file_size_limit: b
                .file_size_limit
                .map(filegate_core::domain::ByteSize::bytes),
            created_at: b.created_at,
            updated_at: b.updated_at,
        }
    }
}
