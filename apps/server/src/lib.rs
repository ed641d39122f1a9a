//! filegate's HTTP server. [`router`] builds the axum app from an [`AppState`] (tests call
//! it without a socket); [`app::start`] gets the services from `filegate-bootstrap` and
//! serves them.

pub mod app;
pub mod error;
pub mod extract;
pub mod files;
pub mod form_upload;
pub mod http;
pub mod listener;
pub mod metrics;
pub mod openapi;
pub mod options;
pub mod page_cache;
pub(crate) mod routes;
pub mod serve;
pub mod state;

// The configuration lives in bootstrap; re-exported at its old path for tests and tools.
pub use filegate_bootstrap::config;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::{Extension, Router};
pub use state::AppState;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// JSON bodies of the API are small; anything bigger is refused before parsing.
const JSON_BODY_LIMIT: usize = 64 * 1024;

/// The app. Its routes and the OpenAPI document come from one list, [`openapi::api_router`].
pub fn router(state: AppState) -> Router {
    let (api, doc) = openapi::api_router().split_for_parts();
    // The upload page; merged before the layers so it shares the 404 envelope and CORS.
    let api = if state.http.ui {
        api.merge(routes::ui::ui_router())
    } else {
        api
    };
    let api = api
        .layer(Extension(routes::ops::OpenApiJson::new(&doc)))
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::session_token_header,
        ));

    let options = state.http.clone();
    let app_metrics = state.metrics.clone();
    let api = api.with_state(state);
    // Innermost first: the limiter sits inside the envelope renderer so its 429 is an envelope.
    let api = match options.rate_limit {
        Some(limit) => api.layer(http::rate_limiter(limit)),
        None => api,
    };
    api.layer(
        ServiceBuilder::new()
            // Outermost, so it sees the final status of every request (429s and envelopes too).
            .layer(axum::middleware::from_fn_with_state(
                app_metrics,
                metrics::track_requests,
            ))
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(trace_layer())
            .layer(http::cors(&options.trusted_origins))
            .layer(axum::middleware::from_fn(error::attach_request_id)),
    )
}

/// The matched route (`-` before routing) and the request id of a request, for its span.
/// Never the URI: the files listener's may carry a `?token=`.
pub(crate) fn span_fields(req: &Request) -> (String, String) {
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
    (route, request_id)
}

/// The request span: method, matched route, request id, and (recorded once authenticated)
/// user and org. No header is ever logged: the span records only these fields, and
/// tower-http's default request/response/failure events log no headers.
fn trace_layer() -> TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::ServerErrorsAsFailures>,
    impl Fn(&Request) -> tracing::Span + Clone,
> {
    TraceLayer::new_for_http().make_span_with(|req: &Request| {
        let (route, request_id) = span_fields(req);
        tracing::info_span!(
            "request",
            method = %req.method(),
            route,
            request_id,
            user = tracing::field::Empty,
            org = tracing::field::Empty,
        )
    })
}

#[cfg(test)]
mod tests {
    use crate::app::start;
    use crate::config::Config;
    use secrecy::ExposeSecret;
    use std::io::{Read, Write};
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex, PoisonError};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Sends one raw HTTP/1.1 request (headers exactly as given) and returns the response.
    async fn raw(addr: SocketAddr, request: String) -> String {
        tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(addr).expect("connect");
            s.write_all(request.as_bytes()).expect("write");
            let mut out = String::new();
            s.read_to_string(&mut out).expect("read");
            out
        })
        .await
        .expect("request task")
    }

    /// Every log line of the server, at TRACE for every crate, while requests carry a
    /// bearer JWT (valid and forged), a session cookie and an API key: none of them, nor
    /// the signing secret, may appear.
    #[tokio::test]
    async fn no_credential_or_secret_reaches_the_logs() {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            // Everything at TRACE but the S3 client's own outbound requests (their SigV4
            // headers are storage credentials, kept at warn in production too).
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "trace,aws_smithy_runtime=warn,aws_smithy_runtime_api=warn,aws_sdk_s3=warn,aws_sigv4=warn,s3s=warn",
            ))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let dir = tempfile::tempdir().expect("temp dir");
        let running = start(Config::ephemeral(dir.path()))
            .await
            .expect("server starts");
        let secret = running.auth_secret.expose_secret().to_owned();
        let valid_jwt = filegate_auth::mint_token(
            &filegate_auth::JwtConfig {
                secret: running.auth_secret.clone(),
                issuer: None,
                audience: None,
                leeway_secs: 0,
            },
            "log-user",
            Some("log-org"),
            Some("owner"),
            None,
            std::time::Duration::from_mins(10),
            time::OffsetDateTime::now_utc(),
        )
        .expect("mint");
        let forged_jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.FORGEDSIGNATUREsecret0001";
        let cookie = "SESSIONCOOKIEsecret0002.signaturepart";
        let api_key = "APIKEYsecret0003";

        let body = r#"{"filename":"a.pdf","contentType":"application/pdf"}"#;
        let requests = [
            format!(
                "POST /api/v1/media/sign-upload HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {valid_jwt}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
            format!(
                "GET /api/v1/media HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {forged_jwt}\r\nConnection: close\r\n\r\n"
            ),
            format!(
                "GET /api/v1/media HTTP/1.1\r\nHost: t\r\nCookie: better-auth.session_token={cookie}\r\nConnection: close\r\n\r\n"
            ),
            format!(
                "GET /api/v1/media HTTP/1.1\r\nHost: t\r\nx-api-key: {api_key}\r\nConnection: close\r\n\r\n"
            ),
            format!(
                "POST /api/v1/token HTTP/1.1\r\nHost: t\r\nCookie: better-auth.session_token={cookie}\r\nx-api-key: {api_key}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ),
        ];
        let mut statuses = Vec::new();
        for r in requests {
            let res = raw(running.api_addr, r).await;
            statuses.push(res.lines().next().unwrap_or_default().to_owned());
        }
        assert!(statuses[0].contains(" 200 "), "{statuses:?}");
        running.shutdown().await;

        let logs = String::from_utf8(
            capture
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
        .expect("utf-8 logs");
        // The capture works: the request spans were logged.
        assert!(
            logs.contains(r#"route="/api/v1/media/sign-upload""#),
            "{logs}"
        );
        assert!(logs.contains(r#"user="log-user""#), "{logs}");
        for (what, needle) in [
            ("valid JWT", valid_jwt.as_str()),
            (
                "JWT signature",
                valid_jwt.rsplit('.').next().unwrap_or_default(),
            ),
            ("forged JWT", forged_jwt),
            ("session cookie", cookie),
            ("API key", api_key),
            ("signing secret", secret.as_str()),
        ] {
            assert!(!logs.contains(needle), "the {what} reached the logs");
        }
        for header in ["authorization:", "cookie:", "x-api-key:"] {
            assert!(
                !logs.to_ascii_lowercase().contains(header),
                "the {header} header reached the logs"
            );
        }
    }
}
