//! The HTTP error: the flat envelope `{error, layer, code, details?, hint?, requestId}`
//! with the spec's status codes. 5xx causes go to the log, never to the client.

use axum::Json;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use filegate_core::Error;
use filegate_core::error::Resource;
use http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value, json};

#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

/// The envelope without its request id; [`attach_request_id`] completes and renders it.
#[derive(Debug, Clone, Serialize)]
pub struct Envelope {
    pub error: String,
    pub layer: &'static str,
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<&'static str>,
    #[serde(rename = "requestId", skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[must_use]
pub fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::AuthMissing | Error::AuthInvalidToken { .. } | Error::AuthExpired => {
            StatusCode::UNAUTHORIZED
        }
        Error::AuthRateLimited => StatusCode::TOO_MANY_REQUESTS,
        Error::AccessNoOrg
        | Error::AccessRoleRequired { .. }
        | Error::FirewallOrgIsolation
        | Error::FirewallUserIsolation
        | Error::AccessAdminRequired
        | Error::CsrfOriginUntrusted => StatusCode::FORBIDDEN,
        Error::Validation(_) => StatusCode::BAD_REQUEST,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        Error::Conflict { .. }
        | Error::ObjectExists
        | Error::NotUploaded
        | Error::BucketExists
        | Error::BucketNotEmpty => StatusCode::CONFLICT,
        Error::MimeNotAllowed { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Error::Unavailable { .. } | Error::ObjectChanged => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

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
        Error::AccessRoleRequired { required, current } => {
            Some(json!({ "required": required, "current": current }))
        }
        Error::TooLarge { size, max } => Some(json!({ "size": size, "maxSize": max })),
        Error::MimeNotAllowed {
            content_type,
            allowed,
        } => Some(json!({ "contentType": content_type, "allowed": allowed })),
        _ => None,
    }
}

fn hint_of(e: &Error) -> Option<&'static str> {
    match e {
        Error::AuthMissing => Some(
            "Send 'Authorization: Bearer <token>'; 'filegate-admin token' mints a development token",
        ),
        Error::AuthExpired => Some("Get a fresh token and retry"),
        Error::AccessNoOrg => Some("Select an active organization for this session or token"),
        Error::TooLarge { .. } => {
            Some("Upload a smaller file; the limit is the bucket's or FILEGATE_MAX_UPLOAD_SIZE")
        }
        Error::NotFound(Resource::Media) => Some("The id does not exist in your organization"),
        Error::CsrfOriginUntrusted => Some(
            "Send the request from a trusted origin (FILEGATE_CORS_ORIGINS), or authenticate with a bearer token instead of the cookie",
        ),
        _ => None,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(&self.0);
        if status.is_server_error() {
            tracing::error!(error = %self.0, cause = ?std::error::Error::source(&self.0), "request failed");
        }
        let envelope = Envelope {
            error: self.0.public_message(),
            layer: self.0.layer().as_str(),
            code: self.0.code(),
            details: details_of(&self.0),
            hint: hint_of(&self.0),
            request_id: None,
        };
        let mut res = status.into_response();
        res.extensions_mut().insert(envelope);
        res
    }
}

/// Renders every [`Envelope`] with the request's id, and turns axum's own plain-text
/// rejections (404 route, 405 method) into envelopes too.
pub async fn attach_request_id(req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let res = next.run(req).await;
    let envelope = match res.extensions().get::<Envelope>() {
        Some(e) => e.clone(),
        None if res.status() == StatusCode::NOT_FOUND
            && res.headers().get(http::header::CONTENT_TYPE).is_none() =>
        {
            Envelope {
                error: "Route not found".into(),
                layer: "validation",
                code: "ROUTE_NOT_FOUND",
                details: None,
                hint: Some("See docs/API.md for the routes"),
                request_id: None,
            }
        }
        None if res.status() == StatusCode::METHOD_NOT_ALLOWED => Envelope {
            error: "Method not allowed".into(),
            layer: "validation",
            code: "METHOD_NOT_ALLOWED",
            details: None,
            hint: None,
            request_id: None,
        },
        None => return res,
    };
    let (mut parts, _) = res.into_parts();
    parts.headers.remove(http::header::CONTENT_LENGTH);
    let body = Envelope {
        request_id,
        ..envelope
    };
    let mut out = (parts.status, Json(body)).into_response();
    for (k, v) in &parts.headers {
        if k != http::header::CONTENT_TYPE {
            out.headers_mut().insert(k, v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
