//! The files listener (Quickback's "Files Worker", `FILEGATE_FILES_LISTEN`, public origin
//! `FILES_URL`): a second axum server serving managed-mode objects by key.
//!
//! - `GET|HEAD /public/{*key}`: no credentials; objects of buckets whose read scope is
//!   `public` only. A private object, a missing one and a malformed key are the same 404.
//! - `GET|HEAD /{*key}`: `?token=` (see [`FileTokens`]), else the Better Auth session
//!   cookie or `Authorization: Bearer` (JWT or session token); then the firewall and the
//!   bucket's read scope ([`ManagedService::download_key`]).
//!
//! Responses follow [`crate::serve`]. CORS: the trusted origins, GET/HEAD, with
//! credentials, exposing `ETag`, `Content-Range`, `Content-Length`.

use crate::error::ApiError;
use crate::extract::credentials;
use crate::serve::{Corp, FileRequest, Open, Opened, serve};
use crate::state::AppState;
// Moved to bootstrap (the managed service mints them); re-exported for existing paths.
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
pub use filegate_bootstrap::file_tokens::{FileTokens, TokenError, TokenSubject};
use filegate_core::Error;
use filegate_core::error::Resource;
use filegate_core::managed::{ManagedService, ObjectRow};
use futures::FutureExt;
use http::request::Parts;
use http::{HeaderName, Method, header};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tower::ServiceBuilder;
use tower_http::cors::CorsLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// The files listener's app.
pub fn files_router(state: AppState) -> Router {
    let cors = cors(&state.http.trusted_origins);
    let metrics = state.metrics.clone();
    let limit = state.http.rate_limit;
    let router = Router::new()
        .route("/public/{*key}", get(public_file))
        .route("/{*key}", get(private_file))
        .fallback(|| async { ApiError(Error::NotFound(Resource::Object)) })
        .with_state(state);
    // The same per-IP budget as the API; inside the envelope renderer so 429 is an envelope.
    let router = match limit {
        Some(limit) => router.layer(crate::http::rate_limiter(limit)),
        None => router,
    };
    router.layer(
        ServiceBuilder::new()
            .layer(axum::middleware::from_fn_with_state(
                metrics,
                crate::metrics::track_requests,
            ))
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(PropagateRequestIdLayer::x_request_id())
            // Never the URI: it may carry a `?token=`.
            .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let (route, request_id) = crate::span_fields(req);
                tracing::info_span!("files", method = %req.method(), route, request_id)
            }))
            .layer(cors)
            .layer(axum::middleware::from_fn(crate::error::attach_request_id)),
    )
}

fn cors(origins: &[String]) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(crate::http::allow_origins(origins))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::HEAD])
        .allow_headers([
            header::AUTHORIZATION,
            header::RANGE,
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::IF_RANGE,
        ])
        .expose_headers([
            header::ETAG,
            header::CONTENT_RANGE,
            header::CONTENT_LENGTH,
            header::ACCEPT_RANGES,
            header::CONTENT_DISPOSITION,
            HeaderName::from_static("x-request-id"),
        ])
        .max_age(Duration::from_mins(10))
}

fn managed(state: &AppState) -> Result<Arc<ManagedService>, Error> {
    state
        .managed
        .clone()
        .ok_or(Error::NotFound(Resource::Object))
}

fn file_request(state: &AppState, parts: &Parts, query: &HashMap<String, String>) -> FileRequest {
    FileRequest::new(
        &parts.method,
        &parts.headers,
        query,
        state.files.public_max_age,
    )
}

/// `GET|HEAD /public/{*key}`
async fn public_file(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    parts: Parts,
) -> Response {
    let req = file_request(&state, &parts, &query).with_corp(Corp::CrossOrigin);
    let result = async {
        let svc = managed(&state)?;
        let key = key.as_str();
        let open: Open<'_> = Box::new(move |range| {
            let svc = svc.clone();
            async move {
                let d = svc.download_key(None, key, range).await?;
                if !d.public {
                    return Err(Error::NotFound(Resource::Object));
                }
                Ok(Opened::from(d))
            }
            .boxed()
        });
        serve(&state.metrics, &req, open).await
    }
    .await;
    match result {
        Ok(res) => res,
        // Unreachable storage and server faults are what they are; anything else (private,
        // missing, malformed, another org's) is the one 404.
        Err(e @ (Error::Unavailable { .. } | Error::Internal { .. })) => {
            ApiError(e).into_response()
        }
        Err(Error::Validation(f)) if f.iter().any(|f| f.field == "download") => {
            ApiError(Error::Validation(f)).into_response()
        }
        Err(_) => ApiError(Error::NotFound(Resource::Object)).into_response(),
    }
}

/// `GET|HEAD /{*key}`
async fn private_file(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    parts: Parts,
) -> Response {
    let req = file_request(&state, &parts, &query);
    let result = async {
        let svc = managed(&state)?;
        let token = query.get("token").map(String::as_str);
        let caller = match token {
            Some(token) => {
                if let Err(why) = FileTokens::precheck(token, OffsetDateTime::now_utc()) {
                    tracing::info!(reason = ?why, "refused a file token");
                    return Ok(bad_token());
                }
                None
            }
            None => Some(state.auth.authenticate(&credentials(&parts)).await?),
        };
        // A capability URL is made to be embedded anywhere; credentialed bytes are not.
        let req = req.with_corp(if token.is_some() {
            Corp::CrossOrigin
        } else {
            Corp::SameSite
        });
        let tokens = state.files.tokens.clone();
        let key = key.as_str();
        let open: Open<'_> = Box::new(move |range| {
            let (svc, caller, tokens) = (svc.clone(), caller.clone(), tokens.clone());
            async move {
                let d = match token {
                    Some(token) => {
                        let granted = move |row: &ObjectRow| {
                            tokens
                                .verify(token, &TokenSubject::from(row), OffsetDateTime::now_utc())
                                .is_ok()
                        };
                        svc.download_key_granted(key, &granted, range).await?
                    }
                    None => svc.download_key(caller.as_ref(), key, range).await?,
                };
                Ok(Opened::from(d))
            }
            .boxed()
        });
        match serve(&state.metrics, &req, open).await {
            // Missing, or not the version the token was minted for: the same refusal.
            Err(Error::NotFound(_)) if token.is_some() => Ok(bad_token()),
            other => other,
        }
    }
    .await;
    result.unwrap_or_else(|e| ApiError(e).into_response())
}

fn bad_token() -> Response {
    ApiError(Error::FilesTokenInvalid).into_response()
}
