//! The HTTP error: the flat envelope `{error, layer, code, details?, hint?, requestId}`
//! with the spec's status codes. 5xx causes go to the log, never to the client.

use axum::Json;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use filegate_core::Error;
use http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use utoipa::ToSchema;

#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

// Built only here, from a core `Error` (`envelope_of`); the responses and the OpenAPI
// document's `ErrorEnvelope` schema share this one type (a doc comment would change the
// schema's description). `attach_request_id` fills in the request id.
/// The error envelope every error response carries (see docs/API.md, "Errors").
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "error": "Validation failed", "layer": "validation", "code": "VALIDATION_FAILED",
    "details": {"fields": {"filename": "must be a file name, not a path"}},
    "requestId": "0b6f3a52-8f3e-4a8e-9d0c-5a8f7d1e2c3b"
}))]
pub struct ErrorEnvelope {
    /// A human-readable message; generic for 5xx (the cause is only in the server log).
    error: String,
    /// Which check failed: `authentication`, `access`, `firewall`, `validation`, `guards`,
    /// `storage` or `internal`.
    #[schema(value_type = String)]
    layer: &'static str,
    /// Stable machine-readable code, e.g. `VALIDATION_FAILED`, `AUTH_MISSING`, `NOT_READY`.
    #[schema(value_type = String)]
    code: &'static str,
    /// Structured detail when there is something to say (e.g. `fields`, `checks`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    details: Option<Value>,
    /// What to do about it, when there is advice.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    hint: Option<&'static str>,
    /// The request's `x-request-id`.
    #[serde(rename = "requestId", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = true)]
    request_id: Option<String>,
}

// Private fields: no envelope is written by hand outside this module.
impl ErrorEnvelope {
    #[must_use]
    pub fn code(&self) -> &'static str {
        self.code
    }

    #[must_use]
    pub fn hint(&self) -> Option<&'static str> {
        self.hint
    }

    /// For answers rendered outside the router (no [`attach_request_id`]).
    #[must_use]
    pub fn with_request_id(self, request_id: Option<String>) -> Self {
        Self { request_id, ..self }
    }
}

/// The status and envelope (without its request id) of an error.
#[must_use]
pub fn envelope_of(e: &Error) -> (StatusCode, ErrorEnvelope) {
    let info = e.info();
    let envelope = ErrorEnvelope {
        error: info.message,
        layer: info.layer.as_str(),
        code: info.code,
        details: details_of(e),
        hint: info.hint,
        request_id: None,
    };
    (status(info.status), envelope)
}

fn status(code: u16) -> StatusCode {
    // Every status in core's table is a valid one (a test walks them all).
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

#[must_use]
pub fn status_of(e: &Error) -> StatusCode {
    status(e.info().status)
}

/// The envelope's `details`: the wire shape of what a variant carries. Exhaustive, so a
/// new variant is a decision here too.
fn details_of(e: &Error) -> Option<Value> {
    match e {
        Error::Validation(fields) => {
            let mut map = Map::new();
            for f in fields {
                map.entry(f.field.clone())
                    .or_insert_with(|| Value::String(f.message.clone()));
            }
            Some(json!({ "fields": map }))
        }
        Error::MalformedRequest(f) => Some(json!({ "fields": { f.field.clone(): f.message } })),
        Error::AccessRoleRequired { required, current } => {
            Some(json!({ "required": required, "current": current }))
        }
        Error::TooLarge { size, max } => Some(json!({ "size": size, "maxSize": max })),
        Error::MimeNotAllowed {
            content_type,
            allowed,
        } => Some(json!({ "contentType": content_type, "allowed": allowed })),
        Error::RangeNotSatisfiable { size } => Some(json!({ "size": size })),
        Error::RateLimited { retry_after } => Some(json!({ "retryAfter": retry_after })),
        Error::NotReady { checks } => {
            let checks: BTreeMap<&str, &str> = checks.iter().copied().collect();
            Some(json!({ "checks": checks }))
        }
        Error::AuthMissing
        | Error::AuthInvalidToken { .. }
        | Error::AuthExpired
        | Error::AuthRateLimited
        | Error::AccessNoOrg
        | Error::AccessAdminRequired
        | Error::CsrfOriginUntrusted
        | Error::FirewallOrgIsolation
        | Error::FirewallUserIsolation
        | Error::NotFound(_)
        | Error::Conflict { .. }
        | Error::ObjectExists
        | Error::NotUploaded
        | Error::BucketExists
        | Error::BucketNotEmpty
        | Error::ObjectChanged
        | Error::Unavailable { .. }
        | Error::Internal { .. }
        | Error::LengthRequired
        | Error::ManagedModeOff
        | Error::RouteNotFound
        | Error::MethodNotAllowed
        | Error::FilesTokenInvalid => None,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, envelope) = envelope_of(&self.0);
        if status.is_server_error() {
            tracing::error!(error = %self.0, cause = ?std::error::Error::source(&self.0), "request failed");
        }
        let mut res = status.into_response();
        res.extensions_mut().insert(envelope);
        res
    }
}

/// Descriptions of the error statuses, shared by the operations' `responses(...)`.
pub mod responses {
    pub const BAD_REQUEST: &str = "`VALIDATION_FAILED`: bad JSON, missing or mistyped field, bad value (`details.fields` maps field to message)";
    pub const UNAUTHORIZED: &str =
        "`AUTH_MISSING` (no credentials), `AUTH_INVALID_TOKEN` or `AUTH_EXPIRED`";
    pub const FORBIDDEN: &str = "`ACCESS_NO_ORG`, `ACCESS_ROLE_REQUIRED` (`details.required`, `details.current`), `FIREWALL_ORG_ISOLATION`, or `CSRF_ORIGIN_UNTRUSTED` (a write authenticated by the session cookie from an untrusted origin)";
    pub const NOT_FOUND: &str =
        "`FIREWALL_NOT_FOUND`: no such media id in the caller's organization";
    pub const CONFLICT: &str = "`STORAGE_CONFLICT`: a unique value already exists";
    pub const TOO_LARGE: &str = "`STORAGE_FILE_TOO_LARGE`: declared size over the limit (`details.size`, `details.maxSize`)";
    pub const TOO_MANY: &str =
        "`RATE_LIMITED` (per-IP budget; see `Retry-After`) or `AUTH_RATE_LIMITED`";
    pub const INTERNAL: &str = "`INTERNAL_SERVER_ERROR`: generic message, cause in the server log";
    pub const UNAVAILABLE: &str = "`STORAGE_UNAVAILABLE`: database or storage unreachable";
    pub const NOT_READY: &str =
        "`NOT_READY`: a dependency did not answer; `details.checks` names each check's outcome";
}

/// Renders every [`ErrorEnvelope`] with the request's id, and turns axum's own plain-text
/// rejections (404 route, 405 method) into envelopes too.
pub async fn attach_request_id(req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let res = next.run(req).await;
    let envelope = match res.extensions().get::<ErrorEnvelope>() {
        Some(e) => e.clone(),
        None if res.status() == StatusCode::NOT_FOUND
            && res.headers().get(http::header::CONTENT_TYPE).is_none() =>
        {
            envelope_of(&Error::RouteNotFound).1
        }
        None if res.status() == StatusCode::METHOD_NOT_ALLOWED => {
            envelope_of(&Error::MethodNotAllowed).1
        }
        None => return res,
    };
    let (mut parts, _) = res.into_parts();
    parts.headers.remove(http::header::CONTENT_LENGTH);
    let body = envelope.with_request_id(request_id);
    let mut out = (parts.status, Json(body)).into_response();
    for (k, v) in &parts.headers {
        if k != http::header::CONTENT_TYPE {
            out.headers_mut().insert(k, v.clone());
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use filegate_core::error::{FieldError, Resource};
    use std::collections::BTreeSet;

    /// One value of every variant. [`variant_index`] is exhaustive, so a new variant needs
    /// an index there, and the test below then fails until it has a sample here.
    pub(crate) fn samples() -> Vec<Error> {
        vec![
            Error::AuthMissing,
            Error::AuthInvalidToken {
                reason: "bad signature".into(),
            },
            Error::AuthExpired,
            Error::AuthRateLimited,
            Error::AccessNoOrg,
            Error::AccessRoleRequired {
                required: "admin+".into(),
                current: vec!["member".into()],
            },
            Error::Validation(vec![FieldError::new("filename", "must not be empty")]),
            Error::FirewallOrgIsolation,
            Error::FirewallUserIsolation,
            Error::NotFound(Resource::Media),
            Error::NotFound(Resource::Object),
            Error::NotFound(Resource::Bucket),
            Error::NotFound(Resource::Upload),
            Error::TooLarge { size: 2, max: 1 },
            Error::Conflict { what: "media" },
            Error::AccessAdminRequired,
            Error::CsrfOriginUntrusted,
            Error::MimeNotAllowed {
                content_type: "text/html".into(),
                allowed: vec!["image/*".into()],
            },
            Error::ObjectExists,
            Error::NotUploaded,
            Error::BucketExists,
            Error::BucketNotEmpty,
            Error::ObjectChanged,
            Error::unavailable(std::io::Error::other("connection refused")),
            Error::internal(std::io::Error::other("disk on fire")),
            Error::RangeNotSatisfiable { size: 10 },
            Error::LengthRequired,
            Error::ManagedModeOff,
            Error::NotReady {
                checks: vec![("database", "ok"), ("storage", "timeout")],
            },
            Error::RouteNotFound,
            Error::MethodNotAllowed,
            Error::RateLimited { retry_after: 3 },
            Error::FilesTokenInvalid,
            Error::MalformedRequest(FieldError::new(
                "Content-Length",
                "must be one whole number of bytes",
            )),
        ]
    }

    const VARIANTS: usize = 31;

    fn variant_index(e: &Error) -> usize {
        match e {
            Error::AuthMissing => 0,
            Error::AuthInvalidToken { .. } => 1,
            Error::AuthExpired => 2,
            Error::AuthRateLimited => 3,
            Error::AccessNoOrg => 4,
            Error::AccessRoleRequired { .. } => 5,
            Error::Validation(_) => 6,
            Error::FirewallOrgIsolation => 7,
            Error::FirewallUserIsolation => 8,
            Error::NotFound(_) => 9,
            Error::TooLarge { .. } => 10,
            Error::Conflict { .. } => 11,
            Error::AccessAdminRequired => 12,
            Error::CsrfOriginUntrusted => 13,
            Error::MimeNotAllowed { .. } => 14,
            Error::ObjectExists => 15,
            Error::NotUploaded => 16,
            Error::BucketExists => 17,
            Error::BucketNotEmpty => 18,
            Error::ObjectChanged => 19,
            Error::Unavailable { .. } => 20,
            Error::Internal { .. } => 21,
            Error::RangeNotSatisfiable { .. } => 22,
            Error::LengthRequired => 23,
            Error::ManagedModeOff => 24,
            Error::NotReady { .. } => 25,
            Error::RouteNotFound => 26,
            Error::MethodNotAllowed => 27,
            Error::RateLimited { .. } => 28,
            Error::FilesTokenInvalid => 29,
            Error::MalformedRequest(_) => 30,
        }
    }

    /// `(status, code, layer)` of every row of docs/API.md's "Errors" table.
    fn documented() -> BTreeSet<(u16, String, String)> {
        let doc = include_str!("../../../docs/API.md");
        let table = doc
            .split("| status | code | layer | when |")
            .nth(1)
            .expect("docs/API.md has the Errors table");
        table
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|row| {
                let cells: Vec<&str> = row.split('|').map(str::trim).collect();
                let status = cells[1].parse().expect("a status");
                (
                    status,
                    cells[2].trim_matches('`').to_owned(),
                    cells[3].to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn every_variant_has_a_sample() {
        let seen: BTreeSet<usize> = samples().iter().map(variant_index).collect();
        assert_eq!(seen, (0..VARIANTS).collect(), "a variant without a sample");
    }

    #[test]
    fn every_variant_maps_to_the_status_code_and_layer_docs_api_md_lists() {
        let documented = documented();
        let mut produced = BTreeSet::new();
        for e in samples() {
            let info = e.info();
            let row = (
                info.status,
                info.code.to_owned(),
                info.layer.as_str().to_owned(),
            );
            assert!(
                documented.contains(&row),
                "{e:?}: {row:?} is not in docs/API.md's Errors table"
            );
            assert!(
                StatusCode::from_u16(info.status)
                    .is_ok_and(|s| s.is_client_error() || s.is_server_error()),
                "{e:?}"
            );
            assert_eq!(status_of(&e).as_u16(), info.status);
            produced.insert(row);
        }
        // And the table lists nothing that no error produces.
        assert_eq!(produced, documented);
    }

    #[test]
    fn envelopes_once_written_by_hand_render_as_before() {
        let render = |e: Error| {
            let (status, envelope) = envelope_of(&e);
            (status.as_u16(), serde_json::to_value(envelope).unwrap())
        };
        assert_eq!(
            render(Error::RangeNotSatisfiable { size: 10 }),
            (
                416,
                json!({"error": "Range not satisfiable", "layer": "validation", "code": "RANGE_NOT_SATISFIABLE",
                "details": {"size": 10}, "hint": "Ask for a range that starts before the end of the object"})
            )
        );
        assert_eq!(
            render(Error::LengthRequired),
            (
                411,
                json!({"error": "Content-Length required", "layer": "validation", "code": "LENGTH_REQUIRED",
                "hint": "Send the body with a Content-Length (not chunked): it is streamed to storage, which needs the size up front"})
            )
        );
        assert_eq!(
            render(Error::ManagedModeOff),
            (
                404,
                json!({"error": "Managed mode is off", "layer": "validation", "code": "MANAGED_MODE_OFF",
                "hint": "Start the server with FILEGATE_MANAGED=true to serve /storage/v1"})
            )
        );
        assert_eq!(
            render(Error::NotReady {
                checks: vec![
                    ("storage", "failed"),
                    ("database", "ok"),
                    ("auth", "timeout")
                ]
            }),
            (
                503,
                json!({"error": "Not ready: storage, auth did not answer", "layer": "storage", "code": "NOT_READY",
                "details": {"checks": {"auth": "timeout", "database": "ok", "storage": "failed"}},
                "hint": "See the server log for the cause; retry when the dependency is back"})
            )
        );
        assert_eq!(
            render(Error::RouteNotFound),
            (
                404,
                json!({"error": "Route not found", "layer": "validation", "code": "ROUTE_NOT_FOUND",
                "hint": "See docs/API.md for the routes"})
            )
        );
        assert_eq!(
            render(Error::MethodNotAllowed),
            (
                405,
                json!({"error": "Method not allowed", "layer": "validation", "code": "METHOD_NOT_ALLOWED"})
            )
        );
        assert_eq!(
            render(Error::RateLimited { retry_after: 3 }),
            (
                429,
                json!({"error": "Too many requests", "layer": "guards", "code": "RATE_LIMITED",
                "details": {"retryAfter": 3}, "hint": "Slow down and retry after the number of seconds in Retry-After"})
            )
        );
        assert_eq!(
            render(Error::FilesTokenInvalid),
            (
                403,
                json!({"error": "Invalid or expired file token", "layer": "authentication", "code": "FILES_TOKEN_INVALID",
                "hint": "Ask POST /storage/v1/url for a fresh URL"})
            )
        );
        assert_eq!(
            render(Error::MalformedRequest(FieldError::new(
                "request",
                "is not a valid HTTP/1.1 request head"
            ))),
            (
                400,
                json!({"error": "Validation failed", "layer": "validation", "code": "VALIDATION_FAILED",
                "details": {"fields": {"request": "is not a valid HTTP/1.1 request head"}},
                "hint": "Send a well-formed HTTP/1.1 request (RFC 9112)"})
            )
        );
    }

    #[test]
    fn every_variant_has_the_documented_status() {
        assert_eq!(status_of(&Error::AuthMissing), StatusCode::UNAUTHORIZED);
        assert_eq!(status_of(&Error::AuthExpired), StatusCode::UNAUTHORIZED);
        assert_eq!(
            status_of(&Error::AuthRateLimited),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(status_of(&Error::AccessNoOrg), StatusCode::FORBIDDEN);
        assert_eq!(
            status_of(&Error::FirewallOrgIsolation),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status_of(&Error::FirewallUserIsolation),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status_of(&Error::invalid("f", "m")),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status_of(&Error::NotFound(Resource::Media)),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status_of(&Error::TooLarge { size: 2, max: 1 }),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            status_of(&Error::Conflict { what: "media" }),
            StatusCode::CONFLICT
        );
        assert_eq!(
            status_of(&Error::internal(std::io::Error::other("x"))),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn validation_details_map_fields_to_messages() {
        let d = details_of(&Error::invalid("filename", "must not be empty")).unwrap();
        assert_eq!(d, json!({"fields": {"filename": "must not be empty"}}));
    }
}
