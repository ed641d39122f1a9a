//! The one error type of the domain. Every variant knows the envelope `layer` and machine
//! `code` it is reported with; the HTTP status is chosen by the server from the variant.

use serde::Serialize;
use std::error::Error as StdError;

/// Boxed cause kept for logs; never shown to clients.
pub type Source = Box<dyn StdError + Send + Sync + 'static>;

/// The security or processing layer that produced an error (the envelope's `layer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    Authentication,
    Firewall,
    Access,
    Guards,
    Validation,
    Storage,
    Internal,
}

impl Layer {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authentication => "authentication",
            Self::Firewall => "firewall",
            Self::Access => "access",
            Self::Guards => "guards",
            Self::Validation => "validation",
            Self::Storage => "storage",
            Self::Internal => "internal",
        }
    }
}

/// One rejected input field, reported in `details.fields`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// What kind of thing was not found; picks the machine code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// A media row, or one outside the caller's organization (firewall, hide mode).
    Media,
    /// An object in storage.
    Object,
    /// A bucket in storage.
    Bucket,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No credential was presented.
    #[error("authentication required")]
    AuthMissing,
    /// A credential was presented but is not valid (bad signature, malformed, wrong algorithm).
    #[error("invalid credentials: {reason}")]
    AuthInvalidToken { reason: String },
    /// A credential was valid once but has expired.
    #[error("credentials expired")]
    AuthExpired,
    /// The credential is rate limited.
    #[error("too many requests for this credential")]
    AuthRateLimited,
    /// The operation needs an active organization and the principal has none.
    #[error("organization context required")]
    AccessNoOrg,
    /// The principal's roles do not satisfy the operation's access rule.
    #[error("{}", role_required_message(required))]
    AccessRoleRequired {
        /// The rule as configured: `member+`, `admin,owner`, …
        required: String,
        current: Vec<String>,
    },
    /// Input rejected field by field.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// The resource exists but belongs to another organization (firewall, reveal mode).
    #[error("this resource belongs to another organization")]
    FirewallOrgIsolation,
    /// The resource exists but belongs to another user (firewall, reveal mode).
    #[error("this resource belongs to another user")]
    FirewallUserIsolation,
    /// The thing does not exist, or is hidden from this principal.
    #[error("not found")]
    NotFound(Resource),
    /// A declared or actual size is over the limit.
    #[error("file of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge { size: u64, max: u64 },
    /// A unique value (id, key, name) already exists.
    #[error("{what} already exists")]
    Conflict { what: &'static str },
    /// The operation is reserved to platform admins (`user.role = admin`).
    #[error("platform admin required")]
    AccessAdminRequired,
    /// A write authenticated by a session cookie came from a page of an untrusted
    /// origin (cross-site request forgery).
    #[error("this request's origin is not trusted to write with a session cookie")]
    CsrfOriginUntrusted,
    /// The content type is outside the bucket's allow-list.
    #[error("content type '{content_type}' is not allowed in this bucket")]
    MimeNotAllowed {
        content_type: String,
        /// The bucket's patterns, e.g. `image/*`.
        allowed: Vec<String>,
    },
    /// An object already exists at this path (and the upload did not ask to replace it).
    #[error("an object already exists at this path")]
    ObjectExists,
    /// A presigned upload is confirmed but its object never reached storage.
    #[error("the object has not been uploaded yet")]
    NotUploaded,
    /// A bucket with this name already exists in the same scope.
    #[error("a bucket with this name already exists")]
    BucketExists,
    /// The bucket still holds objects.
    #[error("the bucket is not empty")]
    BucketNotEmpty,
    /// Storage holds other bytes than the object's row describes (an upsert between its
    /// PUT and its row update, or drift); nothing was served, retrying may help.
    #[error("the stored object changed; retry")]
    ObjectChanged,
    /// A backing service could not be reached or timed out; retrying may help.
    #[error("backing service unavailable")]
    Unavailable {
        #[source]
        source: Source,
    },
    /// Anything else; the cause is logged, never sent.
    #[error("internal error")]
    Internal {
        #[source]
        source: Source,
    },
}

impl Error {
    pub fn internal(source: impl Into<Source>) -> Self {
        Self::Internal {
            source: source.into(),
        }
    }

    pub fn unavailable(source: impl Into<Source>) -> Self {
        Self::Unavailable {
            source: source.into(),
        }
    }

    /// A single-field validation error.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    #[must_use]
    pub fn layer(&self) -> Layer {
        match self {
            Self::AuthMissing
            | Self::AuthInvalidToken { .. }
            | Self::AuthExpired
            | Self::AuthRateLimited => Layer::Authentication,
            Self::AccessNoOrg
            | Self::AccessRoleRequired { .. }
            | Self::AccessAdminRequired
            | Self::CsrfOriginUntrusted => Layer::Access,
            Self::Validation(_) => Layer::Validation,
            Self::NotFound(Resource::Media)
            | Self::FirewallOrgIsolation
            | Self::FirewallUserIsolation => Layer::Firewall,
            Self::NotFound(_)
            | Self::Conflict { .. }
            | Self::Unavailable { .. }
            | Self::ObjectChanged
            | Self::ObjectExists
            | Self::NotUploaded
            | Self::BucketExists
            | Self::BucketNotEmpty => Layer::Storage,
            Self::TooLarge { .. } | Self::MimeNotAllowed { .. } => Layer::Guards,
            Self::Internal { .. } => Layer::Internal,
        }
    }

    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::AuthMissing => "AUTH_MISSING",
            Self::AuthInvalidToken { .. } => "AUTH_INVALID_TOKEN",
            Self::AuthExpired => "AUTH_EXPIRED",
            Self::AuthRateLimited => "AUTH_RATE_LIMITED",
            Self::AccessNoOrg => "ACCESS_NO_ORG",
            Self::AccessRoleRequired { .. } => "ACCESS_ROLE_REQUIRED",
            Self::Validation(_) => "VALIDATION_FAILED",
            Self::FirewallOrgIsolation => "FIREWALL_ORG_ISOLATION",
            Self::FirewallUserIsolation => "FIREWALL_USER_ISOLATION",
            Self::NotFound(Resource::Media) => "FIREWALL_NOT_FOUND",
            Self::NotFound(Resource::Object) => "STORAGE_OBJECT_NOT_FOUND",
            Self::NotFound(Resource::Bucket) => "STORAGE_BUCKET_NOT_FOUND",
            Self::TooLarge { .. } => "STORAGE_FILE_TOO_LARGE",
            Self::Conflict { .. } => "STORAGE_CONFLICT",
            Self::AccessAdminRequired => "ACCESS_ADMIN_REQUIRED",
            Self::CsrfOriginUntrusted => "CSRF_ORIGIN_UNTRUSTED",
            Self::MimeNotAllowed { .. } => "STORAGE_MIME_NOT_ALLOWED",
            Self::ObjectExists => "STORAGE_OBJECT_EXISTS",
            Self::NotUploaded => "STORAGE_NOT_UPLOADED",
            Self::BucketExists => "STORAGE_BUCKET_EXISTS",
            Self::BucketNotEmpty => "STORAGE_BUCKET_NOT_EMPTY",
            Self::Unavailable { .. } => "STORAGE_UNAVAILABLE",
            Self::ObjectChanged => "STORAGE_OBJECT_CHANGED",
            Self::Internal { .. } => "INTERNAL_SERVER_ERROR",
        }
    }

    /// The message clients see. Internal causes are never included.
    #[must_use]
    pub fn public_message(&self) -> String {
        match self {
            Self::Internal { .. } => "Internal server error".to_owned(),
            Self::Unavailable { .. } => "Storage is temporarily unavailable".to_owned(),
            Self::NotFound(Resource::Media) => "Media not found".to_owned(),
            Self::NotFound(Resource::Object) => "Object not found".to_owned(),
            Self::NotFound(Resource::Bucket) => "Bucket not found".to_owned(),
            Self::Validation(_) => "Validation failed".to_owned(),
            other => {
                let mut s = other.to_string();
                if let Some(first) = s.get_mut(0..1) {
                    first.make_ascii_uppercase();
                }
                s
            }
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `member+` → "role 'member' or above required"; `admin` → "role 'admin' required";
/// `admin,owner` → "one of the roles 'admin', 'owner' required".
fn role_required_message(rule: &str) -> String {
    if rule.contains(',') {
        let roles: Vec<String> = rule.split(',').map(|r| format!("'{r}'")).collect();
        format!("one of the roles {} required", roles.join(", "))
    } else if let Some(role) = rule.strip_suffix('+') {
        format!("role '{role}' or above required")
    } else {
        format!("role '{rule}' required")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_never_leak_their_cause() {
        let err = Error::internal(std::io::Error::other("db password is hunter2"));
        assert_eq!(err.public_message(), "Internal server error");
        assert_eq!(err.code(), "INTERNAL_SERVER_ERROR");
        assert_eq!(err.layer(), Layer::Internal);
    }

    #[test]
    fn media_not_found_is_reported_by_the_firewall() {
        let err = Error::NotFound(Resource::Media);
        assert_eq!(err.layer(), Layer::Firewall);
        assert_eq!(err.code(), "FIREWALL_NOT_FOUND");
    }

    #[test]
    fn role_error_message_names_the_rule() {
        let msg = |rule: &str| {
            Error::AccessRoleRequired {
                required: rule.into(),
                current: vec!["member".into()],
            }
            .public_message()
        };
        assert_eq!(msg("admin+"), "Role 'admin' or above required");
        assert_eq!(msg("owner"), "Role 'owner' required");
        assert_eq!(
            msg("admin,owner"),
            "One of the roles 'admin', 'owner' required"
        );
    }

    #[test]
    fn managed_storage_errors_have_their_codes_and_layers() {
        for (err, code, layer) in [
            (
                Error::AccessAdminRequired,
                "ACCESS_ADMIN_REQUIRED",
                Layer::Access,
            ),
            (
                Error::MimeNotAllowed {
                    content_type: "text/html".into(),
                    allowed: vec!["image/*".into()],
                },
                "STORAGE_MIME_NOT_ALLOWED",
                Layer::Guards,
            ),
            (Error::ObjectExists, "STORAGE_OBJECT_EXISTS", Layer::Storage),
            (Error::NotUploaded, "STORAGE_NOT_UPLOADED", Layer::Storage),
            (
                Error::ObjectChanged,
                "STORAGE_OBJECT_CHANGED",
                Layer::Storage,
            ),
            (Error::BucketExists, "STORAGE_BUCKET_EXISTS", Layer::Storage),
            (
                Error::BucketNotEmpty,
                "STORAGE_BUCKET_NOT_EMPTY",
                Layer::Storage,
            ),
            (
                Error::NotFound(Resource::Bucket),
                "STORAGE_BUCKET_NOT_FOUND",
                Layer::Storage,
            ),
            (
                Error::NotFound(Resource::Object),
                "STORAGE_OBJECT_NOT_FOUND",
                Layer::Storage,
            ),
        ] {
            assert_eq!(err.code(), code);
            assert_eq!(err.layer(), layer, "{code}");
        }
        // The Account UI matches this text exactly.
        assert_eq!(
            Error::NotFound(Resource::Bucket).public_message(),
            "Bucket not found"
        );
        assert_eq!(
            Error::MimeNotAllowed {
                content_type: "text/html".into(),
                allowed: vec![]
            }
            .public_message(),
            "Content type 'text/html' is not allowed in this bucket"
        );
    }

    #[test]
    fn firewall_isolation_errors_keep_their_codes() {
        for (err, code) in [
            (Error::FirewallOrgIsolation, "FIREWALL_ORG_ISOLATION"),
            (Error::FirewallUserIsolation, "FIREWALL_USER_ISOLATION"),
        ] {
            assert_eq!(err.layer(), Layer::Firewall);
            assert_eq!(err.code(), code);
        }
        assert_eq!(
            Error::FirewallOrgIsolation.public_message(),
            "This resource belongs to another organization"
        );
    }
}
