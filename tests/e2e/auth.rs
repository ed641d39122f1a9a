//! Authentication and access through the real server.

use filegate_e2e::{TestApp, assert_envelope};
use serde_json::json;
use std::time::Duration;

fn upload_body() -> serde_json::Value {
    json!({ "filename": "a.txt", "contentType": "text/plain" })
}

#[tokio::test]
async fn missing_token_is_auth_missing() {
    let app = TestApp::spawn().await;
    let res = app
        .post_json("/api/v1/media/sign-upload", None, &upload_body())
        .await;
    assert_envelope(&res, 401, "AUTH_MISSING");
    assert_eq!(res.body["layer"], "authentication");
    assert!(res.body["hint"].is_string());
    app.shutdown().await;
}

#[tokio::test]
async fn expired_token_is_auth_expired() {
    let app = TestApp::spawn().await;
    let two_hours_ago = time::OffsetDateTime::now_utc() - time::Duration::hours(2);
    let token = app.token_at(
        "u",
        Some("o"),
        Some("member"),
        two_hours_ago,
        Duration::from_secs(60),
    );
    let res = app
        .post_json("/api/v1/media/sign-upload", Some(&token), &upload_body())
        .await;
    assert_envelope(&res, 401, "AUTH_EXPIRED");
    app.shutdown().await;
}

#[tokio::test]
async fn forged_or_garbage_tokens_are_invalid() {
    let app = TestApp::spawn().await;
    let good = app.token("u", Some("o"), Some("owner"));
    let (head_payload, _sig) = good.rsplit_once('.').unwrap();
    let forged = format!("{head_payload}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    // alg=none with the same claims.
    let payload = head_payload.split_once('.').unwrap().1;
    let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    for token in [forged, none, "eyJ.garbage.x".to_owned()] {
        let res = app
            .post_json("/api/v1/media/sign-upload", Some(&token), &upload_body())
            .await;
        assert_envelope(&res, 401, "AUTH_INVALID_TOKEN");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_token_without_an_active_org_gets_access_no_org() {
    let app = TestApp::spawn().await;
    let token = app.token("u", None, None);
    let res = app
        .post_json("/api/v1/media/sign-upload", Some(&token), &upload_body())
        .await;
    assert_envelope(&res, 403, "ACCESS_NO_ORG");
    assert_eq!(res.body["layer"], "access");
    app.shutdown().await;
}

#[tokio::test]
async fn an_unknown_role_is_refused_with_the_required_role() {
    let app = TestApp::spawn().await;
    let token = app.token("u", Some("o"), Some("guest"));
    let res = app
        .post_json("/api/v1/media/sign-upload", Some(&token), &upload_body())
        .await;
    assert_envelope(&res, 403, "ACCESS_ROLE_REQUIRED");
    assert_eq!(res.body["details"]["required"], "member+");
    assert_eq!(res.body["details"]["current"], json!(["guest"]));
    app.shutdown().await;
}

#[tokio::test]
async fn listing_needs_a_token_too() {
    let app = TestApp::spawn().await;
    assert_envelope(&app.get("/api/v1/media", None).await, 401, "AUTH_MISSING");
    app.shutdown().await;
}
