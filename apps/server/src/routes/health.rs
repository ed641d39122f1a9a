//! `GET /healthz` (the process is up) and `GET /readyz` (its dependencies answer).

use crate::error::Envelope;
use crate::openapi::{ErrorEnvelope, errors};
use crate::state::{AppState, CheckOutcome};
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The process is up.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    #[schema(example = "ok")]
    status: &'static str,
}

/// `GET /healthz`: the process is up and serving.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "healthz",
    summary = "Liveness",
    description = "200 while the process serves requests; checks no dependency.",
    responses(
        (status = 200, description = "The process is up", body = HealthResponse),
        (status = 429, description = errors::TOO_MANY, body = ErrorEnvelope),
    ),
)]
pub async fn healthz() -> Json<HealthResponse> {
    Json(HealthResponse { status: "ok" })
}

/// Every dependency answered.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ready", "checks": {"database": "ok", "storage": "ok"}}))]
pub struct ReadyResponse {
    /// Always `ready`.
    #[schema(example = "ready")]
    status: &'static str,
    /// Each check's outcome: `ok`, `failed` or `timeout`.
    checks: BTreeMap<&'static str, &'static str>,
}

/// `GET /readyz`: the media database and storage answer, each within the readiness timeout.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    operation_id = "readyz",
    summary = "Readiness",
    description = "Pings the media database and object storage concurrently, each within 2 s. 503 `NOT_READY` names the failing checks in `details.checks`.",
    responses(
        (status = 200, description = "Every dependency answered", body = ReadyResponse),
        (status = 429, description = errors::TOO_MANY, body = ErrorEnvelope),
        (status = 503, description = errors::NOT_READY, body = ErrorEnvelope),
    ),
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let results = state.readiness.run().await;
    let checks: BTreeMap<&'static str, &'static str> = results
        .iter()
        .map(|(name, outcome)| (*name, outcome.as_str()))
        .collect();
    let failing: Vec<&str> = results
        .iter()
        .filter(|(_, outcome)| *outcome != CheckOutcome::Ok)
        .map(|(name, _)| *name)
        .collect();
    if failing.is_empty() {
        return Json(ReadyResponse {
            status: "ready",
            checks,
        })
        .into_response();
    }
    if failing.contains(&"storage") {
        state.metrics.storage_error("ping");
    }
    let envelope = Envelope {
        error: format!("Not ready: {} did not answer", failing.join(", ")),
        layer: "storage",
        code: "NOT_READY",
        details: Some(serde_json::json!({ "checks": checks })),
        hint: Some("See the server log for the cause; retry when the dependency is back"),
        request_id: None,
    };
    let mut res = StatusCode::SERVICE_UNAVAILABLE.into_response();
    res.extensions_mut().insert(envelope);
    res
}
