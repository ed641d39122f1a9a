//! Operations through the real server: the OpenAPI document, readiness, Prometheus metrics.

use filegate_e2e::{TestApp, assert_envelope};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Every route the server serves. Adding a route means adding it here and documenting it
/// (the router and the document are built from one list, `openapi::api_router`).
const ROUTES: &[(&str, &str)] = &[
    ("DELETE", "/api/v1/media/{id}/multipart"),
    ("DELETE", "/storage/v1/bucket/{name}"),
    ("DELETE", "/storage/v1/object/{bucket}/{path}"),
    ("DELETE", "/storage/v1/uploads/{id}"),
    ("GET", "/api/v1/files/{id}/download"),
    ("GET", "/api/v1/media"),
    ("GET", "/api/v1/media/{id}/parts"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/readyz"),
    ("GET", "/storage/v1/bucket"),
    ("GET", "/storage/v1/bucket/{name}"),
    ("GET", "/storage/v1/object/list/{bucket}"),
    ("GET", "/storage/v1/object/{bucket}/{path}"),
    ("GET", "/storage/v1/uploads/{id}/parts"),
    ("POST", "/api/v1/media/multipart"),
    ("POST", "/api/v1/media/sign-upload"),
    ("POST", "/api/v1/media/{id}/complete"),
    ("POST", "/api/v1/media/{id}/confirm"),
    ("POST", "/api/v1/media/{id}/parts"),
    ("POST", "/api/v1/media/{id}/sign-download"),
    ("POST", "/api/v1/token"),
    ("POST", "/storage/v1/bucket"),
    ("POST", "/storage/v1/confirm/{bucket}/{path}"),
    ("POST", "/storage/v1/multipart/{bucket}/{path}"),
    ("POST", "/storage/v1/object/{bucket}/{path}"),
    ("POST", "/storage/v1/presign/{bucket}/{path}"),
    ("POST", "/storage/v1/uploads/{id}/complete"),
    ("POST", "/storage/v1/uploads/{id}/parts"),
    ("POST", "/storage/v1/url"),
    ("PUT", "/storage/v1/bucket/{name}"),
];

fn documented_routes(doc: &Value) -> BTreeSet<(String, String)> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .keys()
                .map(move |method| (method.to_ascii_uppercase(), path.clone()))
        })
        .collect()
}

#[tokio::test]
async fn openapi_json_is_served_as_the_generated_3_1_document() {
    let app = TestApp::spawn().await;
    let res = app.get("/openapi.json", None).await;
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(res.headers["content-type"], "application/json");
    let doc = res.body;
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    let generated = serde_json::to_value(filegate_server::openapi::document()).unwrap();
    assert_eq!(
        doc, generated,
        "served document differs from the generated one"
    );
    for scheme in ["bearer", "session", "apiKey"] {
        assert!(
            doc["components"]["securitySchemes"][scheme].is_object(),
            "{scheme} scheme"
        );
    }
    assert!(doc["components"]["schemas"]["ErrorEnvelope"].is_object());
    app.shutdown().await;
}

#[tokio::test]
async fn every_route_is_documented_and_every_documented_route_is_served() {
    let app = TestApp::spawn().await;
    let doc = app.get("/openapi.json", None).await.body;
    let documented = documented_routes(&doc);
    let known: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, known, "documented routes vs the known list");

    for (method, path) in &documented {
        let url = format!("{}{}", app.api, path.replace("{id}", "med_does_not_exist"));
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let res = app
            .send(app.http.request(method.clone(), url).json(&json!({})))
            .await;
        assert_ne!(
            res.body["code"], "ROUTE_NOT_FOUND",
            "{method} {path} is documented but not served: {res:?}"
        );
        assert_ne!(
            res.status, 405,
            "{method} {path} is documented but not served: {res:?}"
        );
    }
    // The check above can tell: a route nobody serves is ROUTE_NOT_FOUND.
    assert_envelope(
        &app.get("/api/v1/not-a-route", None).await,
        404,
        "ROUTE_NOT_FOUND",
    );
    app.shutdown().await;
}

#[tokio::test]
async fn readyz_is_ready_then_names_storage_once_the_endpoint_stops() {
    let mut app = TestApp::spawn().await;
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, 200, "{ready:?}");
    assert_eq!(
        ready.body,
        json!({"status": "ready", "checks": {"database": "ok", "storage": "ok"}})
    );

    app.running.stop_storage().await;
    let started = Instant::now();
    let res = app.get("/readyz", None).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "readiness took {:?}",
        started.elapsed()
    );
    assert_envelope(&res, 503, "NOT_READY");
    let checks = &res.body["details"]["checks"];
    assert_eq!(checks["database"], "ok", "{res:?}");
    assert!(
        checks["storage"] == "failed" || checks["storage"] == "timeout",
        "{res:?}"
    );
    assert!(
        res.body["error"].as_str().unwrap().contains("storage"),
        "{res:?}"
    );

    // Liveness does not depend on storage.
    assert_eq!(app.get("/healthz", None).await.status, 200);
    let metrics = metrics_text(&app).await;
    assert!(
        metrics.contains(r#"filegate_storage_errors_total{operation="ping"} 1"#),
        "{metrics}"
    );
    app.shutdown().await;
}

async fn metrics_text(app: &TestApp) -> String {
    let res = app
        .http
        .get(format!("{}/metrics", app.api))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"]
        .to_str()
        .expect("ascii content type")
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    res.text().await.expect("metrics body")
}

/// The value of the sample `series` (name and labels exactly as rendered), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_by_matched_route_and_presigns_by_method() {
    let app = TestApp::spawn().await;
    // Families without a sample yet are not rendered; the byte counters always are.
    let before = metrics_text(&app).await;
    assert_eq!(
        sample(&before, "filegate_upload_bytes_total"),
        Some(0.0),
        "{before}"
    );
    assert_eq!(
        sample(&before, "filegate_download_bytes_total"),
        Some(0.0),
        "{before}"
    );

    let token = app.token("user_1", Some("org_a"), Some("member"));
    let signed = app
        .sign_upload(&token, "report.pdf", "application/pdf", Some(3))
        .await;
    assert_eq!(signed.status, 200, "{signed:?}");
    let put = app
        .put_presigned(
            signed.body["uploadUrl"].as_str().unwrap(),
            &signed.body["headers"],
            b"pdf".to_vec(),
        )
        .await;
    assert_eq!(put.status(), 200);
    let id = signed.body["id"].as_str().unwrap();
    assert_eq!(app.sign_download(&token, id, &json!({})).await.status, 200);
    assert_eq!(app.get("/api/v1/not-a-route", None).await.status, 404);

    let text = metrics_text(&app).await;
    assert!(
        text.contains("# TYPE filegate_http_requests_total counter"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE filegate_http_request_duration_seconds histogram"),
        "{text}"
    );
    let upload = r#"filegate_http_requests_total{method="POST",route="/api/v1/media/sign-upload",status="200"}"#;
    assert_eq!(sample(&text, upload), Some(1.0), "{text}");
    let latency = r#"filegate_http_request_duration_seconds_count{method="POST",route="/api/v1/media/sign-upload",status="200"}"#;
    assert_eq!(sample(&text, latency), Some(1.0), "{text}");
    let download = r#"filegate_http_requests_total{method="POST",route="/api/v1/media/{id}/sign-download",status="200"}"#;
    assert_eq!(sample(&text, download), Some(1.0), "{text}");
    let unmatched = r#"filegate_http_requests_total{method="GET",route="unmatched",status="404"}"#;
    assert_eq!(sample(&text, unmatched), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, r#"filegate_presigned_urls_total{method="PUT"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"filegate_presigned_urls_total{method="GET"}"#),
        Some(1.0),
        "{text}"
    );
    // The media database pool is read at scrape time: at least one connection is open.
    let open = sample(&text, r#"filegate_db_pool_connections{state="open"}"#);
    assert!(open.is_some_and(|n| n >= 1.0), "{text}");
    assert!(
        sample(&text, r#"filegate_db_pool_connections{state="waiting"}"#).is_some(),
        "{text}"
    );
    // The route label is the template, never the raw path; scrapes are not counted.
    assert!(!text.contains(id), "raw id in the metrics:\n{text}");
    assert!(
        !text.contains("not-a-route"),
        "raw path in the metrics:\n{text}"
    );
    assert!(!text.contains(r#"route="/metrics""#), "{text}");
    app.shutdown().await;
}

#[tokio::test]
async fn two_servers_in_one_process_keep_their_own_metrics() {
    let (a, b) = (TestApp::spawn().await, TestApp::spawn().await);
    for _ in 0..3 {
        assert_eq!(a.get("/healthz", None).await.status, 200);
    }
    assert_eq!(b.get("/healthz", None).await.status, 200);
    let healthz = r#"filegate_http_requests_total{method="GET",route="/healthz",status="200"}"#;
    assert_eq!(sample(&metrics_text(&a).await, healthz), Some(3.0));
    assert_eq!(sample(&metrics_text(&b).await, healthz), Some(1.0));
    a.shutdown().await;
    b.shutdown().await;
}
