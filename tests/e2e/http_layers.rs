//! Rate limiting, CORS and the token route through the real server.

use filegate_e2e::{TestApp, assert_envelope};
use filegate_server::http::RateLimit;

#[tokio::test]
async fn a_burst_over_the_per_ip_budget_gets_429_with_retry_after() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limit = Some(RateLimit {
            per_second: 1,
            burst: 3,
        });
    })
    .await;
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..5 {
        let res = app.get("/healthz", None).await;
        statuses.push(res.status);
        if res.status == 429 {
            limited = Some(res);
        }
    }
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    let limited = limited.expect("a request over the budget is refused");
    assert_envelope(&limited, 429, "RATE_LIMITED");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    app.shutdown().await;
}

#[tokio::test]
async fn rate_limiting_is_on_by_default() {
    let c = filegate_server::config::Config::load_from(&|_| None).unwrap();
    assert_eq!(
        c.rate_limit,
        Some(RateLimit {
            per_second: 10,
            burst: 100
        })
    );
}

#[tokio::test]
async fn cors_allows_trusted_origins_with_credentials_only() {
    let app = TestApp::spawn_with(|c| c.cors_origins = vec!["http://app.test".to_owned()]).await;
    let url = format!("{}/api/v1/media/sign-upload", app.api);
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let ok = preflight("http://app.test").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "http://app.test"
    );
    assert_eq!(ok.headers()["access-control-allow-credentials"], "true");
    let denied = preflight("http://evil.test").await.unwrap();
    assert!(
        denied
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    let res = app
        .http
        .get(format!("{}/healthz", app.api))
        .header("origin", "http://app.test")
        .send()
        .await
        .unwrap();
    let exposed = res.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for h in ["set-auth-token", "etag", "x-request-id"] {
        assert!(exposed.contains(h), "{h} exposed in {exposed}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn minting_a_token_needs_a_session_not_a_jwt() {
    let app = TestApp::spawn().await;
    let jwt = app.token("u", Some("o"), Some("member"));
    let res = app
        .post_json("/api/v1/token", Some(&jwt), &serde_json::json!({}))
        .await;
    assert_envelope(&res, 401, "AUTH_INVALID_TOKEN");
    assert!(res.headers.get("set-auth-token").is_none());
    app.shutdown().await;
}

#[tokio::test]
async fn the_upload_page_can_be_switched_off() {
    let on = TestApp::spawn().await;
    let page = on.http.get(format!("{}/", on.api)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    on.shutdown().await;

    let off = TestApp::spawn_with(|c| c.ui = false).await;
    assert_envelope(&off.get("/", None).await, 404, "ROUTE_NOT_FOUND");
    off.shutdown().await;
}
