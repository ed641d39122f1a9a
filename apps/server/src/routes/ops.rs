//! `GET /metrics` and `GET /openapi.json`.

use crate::openapi::{ErrorEnvelope, OpenApiJson, errors};
use crate::state::AppState;
use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};

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
        (status = 429, description = errors::TOO_MANY, body = ErrorEnvelope),
    ),
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
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
        (status = 429, description = errors::TOO_MANY, body = ErrorEnvelope),
    ),
)]
pub async fn openapi_json(Extension(doc): Extension<OpenApiJson>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        doc.0.to_string(),
    )
        .into_response()
}
