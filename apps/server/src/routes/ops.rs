//! `GET /metrics` and `GET /openapi.json`.

use crate::error::{ErrorEnvelope, responses};
use crate::state::AppState;
use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use std::sync::Arc;
use utoipa::openapi::OpenApi as OpenApiDoc;

/// The serialized document, handed to the `/openapi.json` handler as an extension.
#[derive(Debug, Clone)]
pub(crate) struct OpenApiJson(pub Arc<str>);

impl OpenApiJson {
    #[must_use]
    pub(crate) fn new(doc: &OpenApiDoc) -> Self {
        let json = doc.to_pretty_json().unwrap_or_else(|e| {
            tracing::error!(error = %e, "could not serialize the OpenAPI document");
            "{}".to_owned()
        });
        Self(json.into())
    }
}

/// `GET /metrics`: this app's Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    summary = "Prometheus metrics",
    description = "Prometheus text exposition format 0.0.4. Names and labels: docs/CONFIG.md, \"Operations\". Scrapes are not counted.",
    responses(
        (status = 200, description = "The metrics", body = String, content_type = "text/plain; version=0.0.4; charset=utf-8"),
        (status = 429, description = responses::TOO_MANY, body = ErrorEnvelope),
    ),
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    crate::metrics::exposition(&state.metrics)
}

/// `GET /openapi.json`: the OpenAPI 3.1 document of this API.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    operation_id = "openapi",
    summary = "This OpenAPI document",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", body = Object, content_type = "application/json"),
        (status = 429, description = responses::TOO_MANY, body = ErrorEnvelope),
    ),
)]
pub(crate) async fn openapi_json(Extension(doc): Extension<OpenApiJson>) -> Response {
    super::json_body(doc.0.to_string())
}
