//! The one error type of filegate, the domain's and the HTTP layer's alike. [`Error::info`]
//! is the one table of how each variant is reported: HTTP status, envelope `layer`, machine
//! `code`, public message and hint, in one exhaustive match (a new variant without a row
//! does not compile). The server renders it; core stays free of HTTP types.

use serde::Serialize;
use std::error::Error as StdError;

/// Boxed cause kept for logs; never shown to clients.
pub type Source = Box<dyn StdError + Send + Sync + 'static>;

/// The security or processing layer that produced an error (the envelope's `layer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// Who is calling (401, 429).
    Authentication,
    /// Another organization's or user's resource.
    Firewall,
    /// Roles and rules.
    Access,
    /// Limits on what is sent: size, content type, CSRF.
    Guards,
    /// Malformed input.
    Validation,
    /// State of storage or FILES_DB: not found, conflicts, unavailable.
    Storage,
    /// A failure of filegate itself.
    Internal,
}

impl Layer {
    /// The envelope's `layer` value.
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
    /// The field's name as the client sent it (`readScope`, `contentType`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A rejected `field` and why.
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
    /// A multipart upload: unknown, finished, aborted, or not the caller's.
    Upload,
}

/// Every failure, with its report in [`Error::info`]. Not `#[non_exhaustive]`: the server
/// matches it exhaustively too (the envelope's `details`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No credential was presented.
    #[error("authentication required")]
    AuthMissing,
    /// A credential was presented but is not valid (bad signature, malformed, wrong algorithm).
    #[error("invalid credentials: {reason}")]
    AuthInvalidToken {
        /// Why, without the credential itself (logged, never sent).
        reason: String,
    },
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
        /// The principal's roles in the active organization.
        current: Vec<String>,
    },
    /// Input rejected field by field. Its Display names every field (`invalid input:
    /// name: too short; readScope: unknown`); clients see "Validation failed" and the fields
    /// in `details`.
    #[error("invalid input: {}", describe_fields(.0))]
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
    TooLarge {
        /// The declared or actual size, in bytes.
        size: u64,
        /// The limit, in bytes.
        max: u64,
    },
    /// A unique value (id, key, name) already exists.
    #[error("{what} already exists")]
    Conflict {
        /// What conflicted (`media`, `object`, …).
        what: &'static str,
    },
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
        /// The refused content type.
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
        /// The cause, for the log.
        #[source]
        source: Source,
    },
    /// Anything else; the cause is logged, never sent.
    #[error("internal error")]
    Internal {
        /// The cause, for the log.
        #[source]
        source: Source,
    },
    /// The byte range asked for starts at or past the end of the object; `size` is the
    /// object's, from the GET that refused the range (for `Content-Range: bytes */<size>`).
    #[error("range not satisfiable: the object has {size} bytes")]
    RangeNotSatisfiable {
        /// The object's size, in bytes.
        size: u64,
    },
    /// A streamed upload came without `Content-Length` (e.g. chunked).
    #[error("Content-Length required")]
    LengthRequired,
    /// A managed-mode route was called while managed mode is off.
    #[error("managed mode is off")]
    ManagedModeOff,
    /// A readiness check failed: `(name, outcome)` of every check, in the order they ran;
    /// outcome `ok` passed, anything else (`failed`, `timeout`) did not.
    #[error("not ready: {} did not answer", failing_checks(checks))]
    NotReady {
        /// `(name, outcome)` of each check.
        checks: Vec<(&'static str, &'static str)>,
    },
    /// No route matches the path.
    #[error("route not found")]
    RouteNotFound,
    /// The route exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The client's address is over its request budget; retry after `retry_after` seconds.
    #[error("too many requests")]
    RateLimited {
        /// Seconds until a request is accepted again.
        retry_after: u64,
    },
    /// A files-origin token (`?token=`) is forged, expired, or for another object version.
    #[error("invalid or expired file token")]
    FilesTokenInvalid,
    /// A request head the HTTP layer refuses before routing (malformed `Content-Length`,
    /// unparsable request line or header); the connection is closed after the answer.
    #[error("malformed request: {}: {}", .0.field, .0.message)]
    MalformedRequest(FieldError),
}

/// How an error is reported: the HTTP status, the envelope's `layer`, `code`, `error`
/// (public message) and `hint`. `details` are rendered by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorInfo {
    /// The HTTP status, e.g. 404.
    pub status: u16,
    /// The envelope's `layer`.
    pub layer: Layer,
    /// Stable machine-readable code, e.g. `VALIDATION_FAILED`.
    pub code: &'static str,
    /// What clients read; never an internal cause.
    pub message: String,
    /// What to do about it, when there is advice.
    pub hint: Option<&'static str>,
}

impl Error {
    /// [`Error::Internal`] caused by `source`.
    pub fn internal(source: impl Into<Source>) -> Self {
        Self::Internal {
            source: source.into(),
        }
    }

    /// [`Error::Unavailable`] caused by `source`.
    pub fn unavailable(source: impl Into<Source>) -> Self {
        Self::Unavailable {
            source: source.into(),
        }
    }

    /// A single-field validation error.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    /// The one table of how each variant is reported. Exhaustive by design: a new variant
    /// needs its row here before anything compiles.
    #[must_use]
    pub fn info(&self) -> ErrorInfo {
        use Layer::{Access, Authentication, Firewall, Guards, Internal, Storage, Validation};
        let sentence = || sentence_case(self.to_string());
        let row = |status, layer, code, message: String, hint| ErrorInfo {
            status,
            layer,
            code,
            message,
            hint,
        };
        match self {
            Self::AuthMissing => row(
                401,
                Authentication,
                "AUTH_MISSING",
                sentence(),
                Some(
                    "Send 'Authorization: Bearer <token>'; 'filegate-admin token' mints a development token",
                ),
            ),
            Self::AuthInvalidToken { .. } => {
                row(401, Authentication, "AUTH_INVALID_TOKEN", sentence(), None)
            }
            Self::AuthExpired => row(
                401,
                Authentication,
                "AUTH_EXPIRED",
                sentence(),
                Some("Get a fresh token and retry"),
            ),
            Self::AuthRateLimited => {
                row(429, Authentication, "AUTH_RATE_LIMITED", sentence(), None)
            }
            Self::AccessNoOrg => row(
                403,
                Access,
                "ACCESS_NO_ORG",
                sentence(),
                Some("Select an active organization for this session or token"),
            ),
            Self::AccessRoleRequired { .. } => {
                row(403, Access, "ACCESS_ROLE_REQUIRED", sentence(), None)
            }
            Self::AccessAdminRequired => {
                row(403, Access, "ACCESS_ADMIN_REQUIRED", sentence(), None)
            }
            Self::CsrfOriginUntrusted => row(
                403,
                Access,
                "CSRF_ORIGIN_UNTRUSTED",
                sentence(),
                Some(
                    "Send the request from a trusted origin (FILEGATE_CORS_ORIGINS), or authenticate with a bearer token instead of the cookie",
                ),
            ),
            Self::Validation(_) => row(
                400,
                Validation,
                "VALIDATION_FAILED",
                "Validation failed".to_owned(),
                None,
            ),
            Self::MalformedRequest(_) => row(
                400,
                Validation,
                "VALIDATION_FAILED",
                "Validation failed".to_owned(),
                Some("Send a well-formed HTTP/1.1 request (RFC 9112)"),
            ),
            Self::FirewallOrgIsolation => {
                row(403, Firewall, "FIREWALL_ORG_ISOLATION", sentence(), None)
            }
            Self::FirewallUserIsolation => {
                row(403, Firewall, "FIREWALL_USER_ISOLATION", sentence(), None)
            }
            Self::NotFound(Resource::Media) => row(
                404,
                Firewall,
                "FIREWALL_NOT_FOUND",
                "Media not found".to_owned(),
                Some("The id does not exist in your organization"),
            ),
            Self::NotFound(Resource::Object) => row(
                404,
                Storage,
                "STORAGE_OBJECT_NOT_FOUND",
                "Object not found".to_owned(),
                None,
            ),
            Self::NotFound(Resource::Bucket) => row(
                404,
                Storage,
                "STORAGE_BUCKET_NOT_FOUND",
                "Bucket not found".to_owned(),
                None,
            ),
            Self::NotFound(Resource::Upload) => row(
                404,
                Storage,
                "STORAGE_UPLOAD_NOT_FOUND",
                "Upload not found".to_owned(),
                Some("The multipart upload was completed, aborted or purged; start a new one"),
            ),
            Self::TooLarge { .. } => row(
                413,
                Guards,
                "STORAGE_FILE_TOO_LARGE",
                sentence(),
                Some(
                    "Upload a smaller file; the limit is the bucket's or FILEGATE_MAX_UPLOAD_SIZE",
                ),
            ),
            Self::MimeNotAllowed { .. } => {
                row(415, Guards, "STORAGE_MIME_NOT_ALLOWED", sentence(), None)
            }
            Self::Conflict { .. } => row(409, Storage, "STORAGE_CONFLICT", sentence(), None),
            Self::ObjectExists => row(409, Storage, "STORAGE_OBJECT_EXISTS", sentence(), None),
            Self::NotUploaded => row(409, Storage, "STORAGE_NOT_UPLOADED", sentence(), None),
            Self::BucketExists => row(409, Storage, "STORAGE_BUCKET_EXISTS", sentence(), None),
            Self::BucketNotEmpty => row(409, Storage, "STORAGE_BUCKET_NOT_EMPTY", sentence(), None),
            Self::ObjectChanged => row(503, Storage, "STORAGE_OBJECT_CHANGED", sentence(), None),
            Self::Unavailable { .. } => row(
                503,
                Storage,
                "STORAGE_UNAVAILABLE",
                "Storage is temporarily unavailable".to_owned(),
                None,
            ),
            Self::Internal { .. } => row(
                500,
                Internal,
                "INTERNAL_SERVER_ERROR",
                "Internal server error".to_owned(),
                None,
            ),
            Self::RangeNotSatisfiable { .. } => row(
                416,
                Validation,
                "RANGE_NOT_SATISFIABLE",
                "Range not satisfiable".to_owned(),
                Some("Ask for a range that starts before the end of the object"),
            ),
            Self::LengthRequired => row(
                411,
                Validation,
                "LENGTH_REQUIRED",
                sentence(),
                Some(
                    "Send the body with a Content-Length (not chunked): it is streamed to storage, which needs the size up front",
                ),
            ),
            Self::ManagedModeOff => row(
                404,
                Validation,
                "MANAGED_MODE_OFF",
                sentence(),
                Some("Start the server with FILEGATE_MANAGED=true to serve /storage/v1"),
            ),
            Self::NotReady { .. } => row(
                503,
                Storage,
                "NOT_READY",
                sentence(),
                Some("See the server log for the cause; retry when the dependency is back"),
            ),
            Self::RouteNotFound => row(
                404,
                Validation,
                "ROUTE_NOT_FOUND",
                sentence(),
                Some("See docs/API.md for the routes"),
            ),
            Self::MethodNotAllowed => row(405, Validation, "METHOD_NOT_ALLOWED", sentence(), None),
            Self::RateLimited { .. } => row(
                429,
                Guards,
                "RATE_LIMITED",
                sentence(),
                Some("Slow down and retry after the number of seconds in Retry-After"),
            ),
            Self::FilesTokenInvalid => row(
                403,
                Authentication,
                "FILES_TOKEN_INVALID",
                sentence(),
                Some("Ask POST /storage/v1/url for a fresh URL"),
            ),
        }
    }

    /// The envelope's `layer`.
    #[must_use]
    pub fn layer(&self) -> Layer {
        self.info().layer
    }

    /// The envelope's machine-readable `code`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        self.info().code
    }

    /// The message clients see. Internal causes are never included.
    #[must_use]
    pub fn public_message(&self) -> String {
        self.info().message
    }
}

/// The Display text as a sentence: its first letter upper case.
fn sentence_case(mut s: String) -> String {
    if let Some(first) = s.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    s
}

/// `name: too short; readScope: unknown`.
fn describe_fields(fields: &[FieldError]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .map(|f| format!("{}: {}", f.field, f.message))
        .collect();
    parts.join("; ")
}

/// The names of the checks that did not pass, `, `-separated.
fn failing_checks(checks: &[(&'static str, &'static str)]) -> String {
    let failing: Vec<&str> = checks
        .iter()
        .filter(|(_, outcome)| *outcome != "ok")
        .map(|(name, _)| *name)
        .collect();
    failing.join(", ")
}

/// A result whose error is filegate's [`Error`].
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
    fn validation_display_names_every_field_and_clients_see_a_generic_message() {
        let err = Error::Validation(vec![
            FieldError::new("name", "too short"),
            FieldError::new("readScope", "unknown"),
        ]);
        assert_eq!(
            err.to_string(),
            "invalid input: name: too short; readScope: unknown"
        );
        assert_eq!(err.public_message(), "Validation failed");
    }

    #[test]
    fn errors_of_the_http_layer_have_their_rows() {
        for (err, status, code, layer) in [
            (
                Error::RangeNotSatisfiable { size: 3 },
                416,
                "RANGE_NOT_SATISFIABLE",
                Layer::Validation,
            ),
            (
                Error::LengthRequired,
                411,
                "LENGTH_REQUIRED",
                Layer::Validation,
            ),
            (
                Error::ManagedModeOff,
                404,
                "MANAGED_MODE_OFF",
                Layer::Validation,
            ),
            (
                Error::RouteNotFound,
                404,
                "ROUTE_NOT_FOUND",
                Layer::Validation,
            ),
            (
                Error::MethodNotAllowed,
                405,
                "METHOD_NOT_ALLOWED",
                Layer::Validation,
            ),
            (
                Error::RateLimited { retry_after: 1 },
                429,
                "RATE_LIMITED",
                Layer::Guards,
            ),
            (
                Error::FilesTokenInvalid,
                403,
                "FILES_TOKEN_INVALID",
                Layer::Authentication,
            ),
            (
                Error::NotReady {
                    checks: vec![("database", "ok"), ("storage", "failed")],
                },
                503,
                "NOT_READY",
                Layer::Storage,
            ),
            (
                Error::MalformedRequest(FieldError::new("request", "bad")),
                400,
                "VALIDATION_FAILED",
                Layer::Validation,
            ),
        ] {
            let info = err.info();
            assert_eq!((info.status, info.code, info.layer), (status, code, layer));
        }
        assert_eq!(
            Error::NotReady {
                checks: vec![
                    ("database", "timeout"),
                    ("storage", "ok"),
                    ("auth", "failed")
                ]
            }
            .public_message(),
            "Not ready: database, auth did not answer"
        );
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
            (
                Error::NotFound(Resource::Upload),
                "STORAGE_UPLOAD_NOT_FOUND",
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
