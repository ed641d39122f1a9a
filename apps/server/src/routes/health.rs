//! `GET /healthz` (the process is up) and `GET /readyz` (its dependencies answer).

use crate::error::{ApiError, ErrorEnvelope, responses};
use crate::state::{AppState, CheckOutcome};
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use filegate_core::Error;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The process is up.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HealthResponse {
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
        (status = 429, description = responses::TOO_MANY, body = ErrorEnvelope),
    ),
)]
pub(crate) async fn healthz() -> Json<HealthResponse> {
    Json(HealthResponse { status: "ok" })
}

/// Every dependency answered.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ready", "checks": {"database": "ok", "storage": "ok"}}))]
pub(crate) struct ReadyResponse {
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
        (status = 429, description = responses::TOO_MANY, body = ErrorEnvelope),
        (status = 503, description = responses::NOT_READY, body = ErrorEnvelope),
    ),
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let results = state.readiness.run().await;
    let checks: Vec<(&'static str, &'static str)> = results
        .iter()
        .map(|(name, outcome)| (*name, outcome.as_str()))
        .collect();
    if results
        .iter()
        .all(|(_, outcome)| *outcome == CheckOutcome::Ok)
    {
        return Json(ReadyResponse {
            status: "ready",
            checks: checks.into_iter().collect(),
        })
        .into_response();
    }
    if results
        .iter()
        .any(|(name, outcome)| *name == "storage" && *outcome != CheckOutcome::Ok)
    {
        state.metrics.storage_error("ping");
    }
    ApiError(Error::NotReady { checks }).into_response()
}
