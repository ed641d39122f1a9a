//! filegate's HTTP server. [`router`] builds the axum app from an [`AppState`] (tests call
//! it without a socket); [`app::start`] wires the adapters and serves it.

pub mod app;
pub mod config;
pub mod error;
pub mod extract;
pub mod http;
pub mod routes;
pub mod state;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::routing::{get, post};
pub use state::AppState;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// JSON bodies of the API are small; anything bigger is refused before parsing.
const JSON_BODY_LIMIT: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route(
            "/api/v1/media/sign-upload",
            post(routes::media::sign_upload),
        )
        .route(
            "/api/v1/media/{id}/sign-download",
            post(routes::media::sign_download),
        )
        .route("/api/v1/media", get(routes::media::list))
        .route("/api/v1/token", post(routes::token::mint))
        .route("/healthz", get(routes::health::healthz))
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(state.clone(), http::session_token_header));

    let trace = TraceLayer::new_for_http().make_span_with(|req: &Request| {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map_or("-", MatchedPath::as_str)
            .to_owned();
        let request_id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned();
        tracing::info_span!(
            "request",
            method = %req.method(),
            route,
            request_id,
            user = tracing::field::Empty,
            org = tracing::field::Empty,
        )
    });

    let options = state.http.clone();
    let api = api.with_state(state);
    // Innermost first: the limiter sits inside the envelope renderer so its 429 is an envelope.
    let api = match options.rate_limit {
        Some(limit) => api.layer(http::rate_limiter(limit)),
        None => api,
    };
    api.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(trace)
            .layer(http::cors(&options.trusted_origins))
            .layer(axum::middleware::from_fn(error::attach_request_id)),
    )
}
