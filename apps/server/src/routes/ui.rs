//! The browser upload page: `GET /` (and `/app`) serves one HTML page with its script and
//! stylesheet, embedded in the binary. No build step, no framework: the page calls the
//! JSON API from the same origin and PUTs the bytes straight to the presigned URL.

use axum::Router;
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const HTML: &str = include_str!("../../assets/upload.html");
const SCRIPT: &str = include_str!("../../assets/upload.js");
const STYLE: &str = include_str!("../../assets/upload.css");

/// The page's own files may come from this origin only; `connect-src` stays open because
/// the presigned URLs point at the storage endpoint (R2, or the embedded one), another origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src *; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /`, `GET /app` and the page's assets under `/ui/`. Stateless, so it merges into
/// the API router whatever its state type.
pub(crate) fn ui_router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/", get(page))
        .route("/app", get(page))
        .route("/ui/upload.js", get(script))
        .route("/ui/upload.css", get(style))
}

async fn page() -> Response {
    asset("text/html; charset=utf-8", HTML)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // Revalidate every time: the files change with the binary, not with a hash.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (
                HeaderName::from_static("x-frame-options"),
                HeaderValue::from_static("DENY"),
            ),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    async fn get_path(path: &str) -> Response {
        ui_router::<()>()
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("infallible")
    }

    #[tokio::test]
    async fn the_page_and_its_assets_are_served_with_their_types() {
        for (path, ty) in [
            ("/", "text/html"),
            ("/app", "text/html"),
            ("/ui/upload.js", "text/javascript"),
            ("/ui/upload.css", "text/css"),
        ] {
            let res = get_path(path).await;
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            let got = res.headers()[header::CONTENT_TYPE].to_str().expect("ascii");
            assert!(got.starts_with(ty), "{path}: {got}");
            assert!(res.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        }
    }

    #[test]
    fn the_page_links_the_assets_it_is_served_with() {
        assert!(HTML.contains("src=\"/ui/upload.js\""));
        assert!(HTML.contains("href=\"/ui/upload.css\""));
    }
}
