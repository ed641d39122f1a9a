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
        Duration::from_mins(1),
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

#[tokio::test]
async fn reveal_mode_answers_403_for_another_orgs_file_and_404_for_a_missing_one() {
    let app =
        TestApp::spawn_with(|c| c.firewall = filegate_core::domain::FirewallMode::Reveal).await;
    let a = app.token("user_a", Some("org_a"), Some("owner"));
    let b = app.token("user_b", Some("org_b"), Some("owner"));
    let signed = app.sign_upload(&a, "secret.txt", "text/plain", None).await;
    let res = app
        .sign_download(&b, signed.body["id"].as_str().unwrap(), &json!({}))
        .await;
    assert_envelope(&res, 403, "FIREWALL_ORG_ISOLATION");
    let missing = app
        .sign_download(&b, "med_0123456789abcdef0123456789abcdef", &json!({}))
        .await;
    assert_envelope(&missing, 404, "FIREWALL_NOT_FOUND");
    app.shutdown().await;
}

#[tokio::test]
async fn hide_mode_makes_a_foreign_file_indistinguishable_from_a_missing_one() {
    let app = TestApp::spawn().await;
    let a = app.token("user_a", Some("org_a"), Some("owner"));
    let b = app.token("user_b", Some("org_b"), Some("owner"));
    let signed = app.sign_upload(&a, "secret.txt", "text/plain", None).await;
    let foreign = app
        .sign_download(&b, signed.body["id"].as_str().unwrap(), &json!({}))
        .await;
    let missing = app
        .sign_download(&b, "med_0123456789abcdef0123456789abcdef", &json!({}))
        .await;
    let strip = |v: &serde_json::Value| {
        let mut v = v.clone();
        v.as_object_mut().unwrap().remove("requestId");
        v
    };
    assert_eq!(foreign.status, missing.status);
    assert_eq!(strip(&foreign.body), strip(&missing.body));
    app.shutdown().await;
}

#[tokio::test]
async fn access_rules_come_from_configuration() {
    let app = TestApp::spawn_with(|c| c.access.sign_download = "admin+".parse().unwrap()).await;
    let owner = app.token("owner", Some("org_a"), Some("owner"));
    let member = app.token("member", Some("org_a"), Some("member"));
    let admin = app.token("admin", Some("org_a"), Some("admin"));
    let signed = app.sign_upload(&member, "a.txt", "text/plain", None).await;
    assert_eq!(signed.status, 200, "members may still upload");
    let put = app
        .put_presigned(
            signed.body["uploadUrl"].as_str().unwrap(),
            &signed.body["headers"],
            b"a".to_vec(),
        )
        .await;
    assert_eq!(put.status(), 200);
    let id = signed.body["id"].as_str().unwrap();
    let denied = app.sign_download(&member, id, &json!({})).await;
    assert_envelope(&denied, 403, "ACCESS_ROLE_REQUIRED");
    assert_eq!(denied.body["details"]["required"], "admin+");
    assert_eq!(app.sign_download(&admin, id, &json!({})).await.status, 200);
    assert_eq!(app.sign_download(&owner, id, &json!({})).await.status, 200);
    app.shutdown().await;
}

#[tokio::test]
async fn a_public_rule_lets_anonymous_callers_past_authentication_only() {
    let app = TestApp::spawn_with(|c| c.access.list = "PUBLIC".parse().unwrap()).await;
    // No organization context without credentials: access refuses, authentication does not.
    assert_envelope(&app.get("/api/v1/media", None).await, 403, "ACCESS_NO_ORG");
    // A bad credential is still a 401, never downgraded to anonymous.
    assert_envelope(
        &app.get("/api/v1/media", Some("eyJx.eyJ.y")).await,
        401,
        "AUTH_INVALID_TOKEN",
    );
    app.shutdown().await;
}
