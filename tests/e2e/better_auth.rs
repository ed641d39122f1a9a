//! Better Auth sessions and API keys through the real server, against a real SQLite auth
//! database built by the test kit's fixture.

use filegate_e2e::{TestApp, assert_envelope};
use filegate_testkit::auth_db::AuthDbFixture;
use serde_json::json;
use time::{Duration, OffsetDateTime};

const SECRET: &str = "better-auth-secret-for-the-e2e-tests-0123456789";

struct World {
    app: TestApp,
    db: AuthDbFixture,
    _dir: tempfile::TempDir,
}

async fn world(pinned: Option<&str>) -> World {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("auth.db");
    let db = AuthDbFixture::create(&path);
    db.add_user("u1", "u1@example.com", None);
    db.add_user("u2", "u2@example.com", None);
    db.add_org("org_a", "a");
    db.add_member("org_a", "u1", "member");
    let pinned = pinned.map(str::to_owned);
    let app = TestApp::spawn_with(move |c| {
        c.auth_db = Some(path.into());
        c.auth_secret = Some(secrecy::SecretString::from(SECRET));
        c.pinned_org_id = pinned;
    })
    .await;
    World { app, db, _dir: dir }
}

fn in_an_hour() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::hours(1)
}

fn upload_body() -> serde_json::Value {
    json!({ "filename": "a.txt", "contentType": "text/plain" })
}

#[tokio::test]
async fn a_session_cookie_authenticates_and_returns_a_fresh_jwt() {
    let w = world(None).await;
    let session = w.db.add_session("u1", Some("org_a"), in_an_hour());
    let url = format!("{}/api/v1/media/sign-upload", w.app.api);
    let res = w
        .app
        .send(
            w.app
                .http
                .post(&url)
                .header("cookie", session.cookie_header(SECRET))
                .json(&upload_body()),
        )
        .await;
    assert_eq!(res.status, 200, "{res:?}");
    assert!(res.body["key"].as_str().unwrap().starts_with("org/org_a/"));
    let jwt = res.headers["set-auth-token"].to_str().unwrap().to_owned();

    // The minted JWT works on the fast path and carries the same org.
    let list = w.app.get("/api/v1/media?status=pending", Some(&jwt)).await;
    assert_eq!(list.status, 200, "{list:?}");
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert!(
        list.headers.get("set-auth-token").is_none(),
        "no new token for a JWT request"
    );
    w.app.shutdown().await;
}

#[tokio::test]
async fn post_token_mints_a_jwt_for_the_session() {
    let w = world(None).await;
    let session = w.db.add_session("u1", Some("org_a"), in_an_hour());
    let res = w
        .app
        .send(
            w.app
                .http
                .post(format!("{}/api/v1/token", w.app.api))
                .header("cookie", session.cookie_header(SECRET)),
        )
        .await;
    assert_eq!(res.status, 200, "{res:?}");
    let token = res.body["token"].as_str().unwrap();
    assert_eq!(
        w.app
            .post_json("/api/v1/media/sign-upload", Some(token), &upload_body())
            .await
            .status,
        200
    );
    w.app.shutdown().await;
}

#[tokio::test]
async fn expired_signed_out_and_tampered_sessions_are_refused() {
    let w = world(None).await;
    let expired = w.db.add_session(
        "u1",
        Some("org_a"),
        OffsetDateTime::now_utc() - Duration::minutes(1),
    );
    let gone = w.db.add_session("u1", Some("org_a"), in_an_hour());
    w.db.sign_out(&gone);
    let url = format!("{}/api/v1/media", w.app.api);
    let get = |cookie: String| w.app.send(w.app.http.get(&url).header("cookie", cookie));
    assert_envelope(
        &get(expired.cookie_header(SECRET)).await,
        401,
        "AUTH_EXPIRED",
    );
    assert_envelope(
        &get(gone.cookie_header(SECRET)).await,
        401,
        "AUTH_INVALID_TOKEN",
    );
    let live = w.db.add_session("u1", Some("org_a"), in_an_hour());
    assert_envelope(
        &get(live.cookie_header("another-secret-of-sufficient-length")).await,
        401,
        "AUTH_INVALID_TOKEN",
    );
    w.app.shutdown().await;
}

#[tokio::test]
async fn a_session_in_an_org_the_user_left_has_no_org_context() {
    let w = world(None).await;
    let session = w.db.add_session("u2", Some("org_a"), in_an_hour());
    let res = w
        .app
        .send(
            w.app
                .http
                .get(format!("{}/api/v1/media", w.app.api))
                .header("cookie", session.cookie_header(SECRET)),
        )
        .await;
    assert_envelope(&res, 403, "ACCESS_NO_ORG");
    w.app.shutdown().await;
}

#[tokio::test]
async fn api_keys_authenticate_with_their_metadata_org_and_fail_precisely() {
    let w = world(None).await;
    let key = w.db.add_api_key("u1", Some("org_a"), None, None);
    let expired = w.db.add_api_key(
        "u1",
        Some("org_a"),
        Some(OffsetDateTime::now_utc() - Duration::minutes(1)),
        None,
    );
    let limited =
        w.db.add_api_key("u1", Some("org_a"), None, Some((60_000, 2)));
    let url = format!("{}/api/v1/media/sign-upload", w.app.api);
    let call = |k: &str| {
        w.app.send(
            w.app
                .http
                .post(&url)
                .header("x-api-key", k)
                .json(&upload_body()),
        )
    };

    let ok = call(&key).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert!(ok.body["key"].as_str().unwrap().starts_with("org/org_a/"));
    assert!(ok.headers.get("set-auth-token").is_none());
    assert_envelope(&call("not-a-key").await, 401, "AUTH_INVALID_TOKEN");
    assert_envelope(&call(&expired).await, 401, "AUTH_EXPIRED");
    assert_eq!(call(&limited).await.status, 200);
    assert_eq!(call(&limited).await.status, 200);
    assert_envelope(&call(&limited).await, 429, "AUTH_RATE_LIMITED");
    w.app.shutdown().await;
}

#[tokio::test]
async fn a_wrong_api_key_is_not_rescued_by_a_valid_cookie() {
    let w = world(None).await;
    let session = w.db.add_session("u1", Some("org_a"), in_an_hour());
    let res = w
        .app
        .send(
            w.app
                .http
                .get(format!("{}/api/v1/media", w.app.api))
                .header("x-api-key", "wrong")
                .header("cookie", session.cookie_header(SECRET)),
        )
        .await;
    assert_envelope(&res, 401, "AUTH_INVALID_TOKEN");
    w.app.shutdown().await;
}

#[tokio::test]
async fn a_pinned_organization_is_always_the_active_one() {
    let w = world(Some("org_a")).await;
    // The session has no active org; the pinned one applies with the user's role there.
    let session = w.db.add_session("u1", None, in_an_hour());
    let res = w
        .app
        .send(
            w.app
                .http
                .post(format!("{}/api/v1/media/sign-upload", w.app.api))
                .header("cookie", session.cookie_header(SECRET))
                .json(&upload_body()),
        )
        .await;
    assert_eq!(res.status, 200, "{res:?}");
    assert!(res.body["key"].as_str().unwrap().starts_with("org/org_a/"));
    w.app.shutdown().await;
}
