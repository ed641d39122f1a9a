//! Bad input always gets a 4xx envelope, never a 500 or a panic.

use filegate_e2e::{TestApp, assert_envelope};
use serde_json::json;

#[tokio::test]
async fn bad_sign_upload_bodies_are_validation_errors() {
    let app = TestApp::spawn().await;
    let token = app.token("u", Some("o"), Some("member"));
    let cases = [
        (json!({}), "filename"),
        (json!({ "filename": "a.txt" }), "contentType"),
        (
            json!({ "filename": 5, "contentType": "text/plain" }),
            "filename",
        ),
        (
            json!({ "filename": "a.txt", "contentType": "text/plain", "size": -1 }),
            "size",
        ),
        (
            json!({ "filename": "a.txt", "contentType": "text/plain", "size": "big" }),
            "size",
        ),
        (
            json!({ "filename": "", "contentType": "text/plain" }),
            "filename",
        ),
        (
            json!({ "filename": "x".repeat(256), "contentType": "text/plain" }),
            "filename",
        ),
        (
            json!({ "filename": "../../etc/passwd", "contentType": "text/plain" }),
            "filename",
        ),
        (
            json!({ "filename": "a\\b.txt", "contentType": "text/plain" }),
            "filename",
        ),
        (
            json!({ "filename": "a\u{0}.txt", "contentType": "text/plain" }),
            "filename",
        ),
        (
            json!({ "filename": "a.txt", "contentType": "nonsense" }),
            "contentType",
        ),
        (
            json!({ "filename": "a.txt", "contentType": "text/plain\r\nX-Evil: 1" }),
            "contentType",
        ),
    ];
    for (body, field) in cases {
        let res = app
            .post_json("/api/v1/media/sign-upload", Some(&token), &body)
            .await;
        assert_envelope(&res, 400, "VALIDATION_FAILED");
        assert!(
            res.body["details"]["fields"][field].is_string(),
            "{field} should be named for {body}: {res:?}"
        );
    }
    app.shutdown().await;
}

#[tokio::test]
async fn malformed_json_and_wrong_content_type_are_400() {
    let app = TestApp::spawn().await;
    let token = app.token("u", Some("o"), Some("member"));
    let url = format!("{}/api/v1/media/sign-upload", app.api);
    let res = app
        .send(
            app.http
                .post(&url)
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await;
    assert_envelope(&res, 400, "VALIDATION_FAILED");
    let res = app
        .send(
            app.http
                .post(&url)
                .bearer_auth(&token)
                .header("content-type", "text/plain")
                .body("{}"),
        )
        .await;
    assert_envelope(&res, 400, "VALIDATION_FAILED");
    let huge = format!(
        "{{\"filename\":\"{}\",\"contentType\":\"text/plain\"}}",
        "a".repeat(100_000)
    );
    let res = app
        .send(
            app.http
                .post(&url)
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(huge),
        )
        .await;
    assert_eq!(res.status / 100, 4, "{res:?}");
    assert!(res.body["code"].is_string());
    app.shutdown().await;
}

#[tokio::test]
async fn a_declared_size_over_the_limit_is_413() {
    let app =
        TestApp::spawn_with(|c| c.max_upload_size = filegate_core::domain::ByteSize(1000)).await;
    let token = app.token("u", Some("o"), Some("member"));
    let res = app
        .sign_upload(&token, "big.bin", "application/octet-stream", Some(1001))
        .await;
    assert_envelope(&res, 413, "STORAGE_FILE_TOO_LARGE");
    assert_eq!(res.body["details"]["maxSize"], 1000);
    assert_eq!(
        app.sign_upload(&token, "ok.bin", "application/octet-stream", Some(1000))
            .await
            .status,
        200
    );
    app.shutdown().await;
}

#[tokio::test]
async fn bad_sign_download_input_is_rejected() {
    let app = TestApp::spawn().await;
    let token = app.token("u", Some("o"), Some("member"));
    let signed = app.sign_upload(&token, "a.txt", "text/plain", None).await;
    let id = signed.body["id"].as_str().unwrap();
    for (body, field) in [
        (json!({ "expiresIn": 0 }), "expiresIn"),
        (json!({ "expiresIn": 604_801 }), "expiresIn"),
        (json!({ "expiresIn": "soon" }), "expiresIn"),
        (json!({ "downloadFilename": "../x" }), "downloadFilename"),
        (json!({ "downloadFilename": "" }), "downloadFilename"),
    ] {
        let res = app.sign_download(&token, id, &body).await;
        assert_envelope(&res, 400, "VALIDATION_FAILED");
        assert!(
            res.body["details"]["fields"][field].is_string(),
            "{field}: {res:?}"
        );
    }
    for bad_id in ["nope", "med_0123456789abcdef0123456789abcdef"] {
        assert_envelope(
            &app.sign_download(&token, bad_id, &json!({})).await,
            404,
            "FIREWALL_NOT_FOUND",
        );
    }
    app.shutdown().await;
}

#[tokio::test]
async fn bad_list_queries_are_validation_errors() {
    let app = TestApp::spawn().await;
    let token = app.token("u", Some("o"), Some("member"));
    for q in ["limit=0", "limit=201", "limit=abc", "cursor=bogus"] {
        assert_envelope(
            &app.get(&format!("/api/v1/media?{q}"), Some(&token)).await,
            400,
            "VALIDATION_FAILED",
        );
    }
    app.shutdown().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_get_envelopes_and_health_is_ok() {
    let app = TestApp::spawn().await;
    assert_envelope(&app.get("/nope", None).await, 404, "ROUTE_NOT_FOUND");
    assert_envelope(
        &app.get("/api/v1/media/sign-upload", None).await,
        405,
        "METHOD_NOT_ALLOWED",
    );
    let health = app.get("/healthz", None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body["status"], "ok");
    app.shutdown().await;
}

#[tokio::test]
async fn the_request_id_header_matches_the_envelope() {
    let app = TestApp::spawn().await;
    let res = app.get("/api/v1/media", None).await;
    let header = res.headers["x-request-id"].to_str().unwrap();
    assert_eq!(res.body["requestId"], header);
    app.shutdown().await;
}
