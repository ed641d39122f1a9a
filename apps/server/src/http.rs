//! Cross-cutting HTTP layers: CORS from the trusted origins, per-IP rate limiting, and the
//! `set-auth-token` header after a session authenticated a request.

use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use filegate_core::Error;
use filegate_core::domain::{AuthMethod, Principal};
use http::{HeaderValue, Method, header};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tower_governor::GovernorError;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::PeerIpKeyExtractor;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

// Moved to their own modules; re-exported for the paths tests and tools already use.
pub use crate::options::{HttpOptions, TokenMinter};
pub use filegate_bootstrap::config::RateLimit;

/// Where the `Authenticated` extractor leaves the principal for [`session_token_header`].
#[derive(Debug, Clone, Default)]
pub struct PrincipalSlot(pub Arc<OnceLock<Principal>>);

/// After a request authenticated by a Better Auth session, returns a fresh JWT in
/// `set-auth-token` so the client can use the stateless fast path next time.
pub async fn session_token_header(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let slot = PrincipalSlot::default();
    req.extensions_mut().insert(slot.clone());
    let mut res = next.run(req).await;
    if let Some(p) = slot.0.get()
        && p.method == AuthMethod::Session
    {
        if let Ok(Ok(v)) = state.tokens.mint(p).map(HeaderValue::try_from) {
            res.headers_mut().insert("set-auth-token", v);
        } else {
            tracing::warn!("could not mint the set-auth-token JWT");
        }
    }
    res
}

/// The trusted origins as a CORS allow-list of exact origins (config validation already
/// refused malformed ones).
pub(crate) fn allow_origins(origins: &[String]) -> AllowOrigin {
    AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
}

pub fn cors(origins: &[String]) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(allow_origins(origins))
        .allow_credentials(true)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::DELETE,
        ])
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers([
            header::HeaderName::from_static("set-auth-token"),
            header::ETAG,
            header::HeaderName::from_static("x-request-id"),
        ])
        .max_age(Duration::from_mins(10))
}

fn rate_limited(err: GovernorError) -> Response<Body> {
    let (retry_after, headers) = match err {
        GovernorError::TooManyRequests { wait_time, headers } => (wait_time, headers),
        // The peer address is always known with connect info; refuse rather than let through.
        _ => (1, None),
    };
    let mut res = ApiError(Error::RateLimited { retry_after }).into_response();
    if let Some(h) = headers {
        res.headers_mut().extend(h);
    }
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
    res
}

/// The per-IP limiter layer, plus a task that forgets idle IPs so memory stays bounded.
pub fn rate_limiter(
    limit: RateLimit,
) -> tower_governor::GovernorLayer<PeerIpKeyExtractor, governor::middleware::NoOpMiddleware, Body> {
    let period = Duration::from_nanos(1_000_000_000 / u64::from(limit.per_second.max(1)));
    let config = Arc::new(
        GovernorConfigBuilder::default()
            .period(period)
            .burst_size(limit.burst.max(1))
            .finish()
            .unwrap_or_else(|| unreachable!("period and burst are non-zero")),
    );
    let limiter = config.limiter().clone();
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_mins(1));
            loop {
                tick.tick().await;
                limiter.retain_recent();
            }
        });
    }
    tower_governor::GovernorLayer::new(config).error_handler(rate_limited)
}
