//! Better Auth on PostgreSQL through the real server: `FILEGATE_AUTH_DB` set to a
//! `postgres://` URL (a fresh schema per test, built by `filegate-auth`'s Postgres fixture).
//! Skipped, with one line saying so, unless `FILEGATE_TEST_DATABASE_URL` is set.

use filegate_e2e::{TestApp, assert_envelope};
use filegate_testkit::auth_db::Layout;
use serde_json::json;
use time::{Duration, OffsetDateTime};

// One fixture for both suites; the test kit itself stays free of a Postgres client.
#[path = "../../adapters/auth/tests/support/postgres.rs"]
#[expect(dead_code, reason = "shared fixture: these tests use part of it")]
mod pg_fixture;

use pg_fixture::PgAuthFixture;

const SECRET: &str = "better-auth-secret-for-the-e2e-tests-0123456789";

async fn world() -> Option<(TestApp, PgAuthFixture)> {
    let db = PgAuthFixture::create(Layout::BetterAuth).await?;
    db.add_user("u1", "u1@example.com", None).await;
    db.add_org("org_a", "a").await;
    db.add_member("org_a", "u1", "member").await;
    let url = db.url();
    let app = TestApp::spawn_with(move |c| {
        c.auth_db = Some(std::path::PathBuf::from(url).into());
        c.auth_secret = Some(secrecy::SecretString::from(SECRET));
    })
    .await;
    Some((app, db))
}

fn upload_body() -> serde_json::Value {
    json!({ "filename": "a.txt", "contentType": "text/plain" })
}

#[tokio::test]
async fn sessions_and_api_keys_authenticate_against_postgres() {
    let Some((app, db)) = world().await else {
        return;
    };
    let url = format!("{}/api/v1/media/sign-upload", app.api);
    let in_an_hour = OffsetDateTime::now_utc() + Duration::hours(1);

    let session = db.add_session("u1", Some("org_a"), in_an_hour).await;
    let res = app
        .send(
            app.http
                .post(&url)
                .header("cookie", session.cookie_header(SECRET))
                .json(&upload_body()),
        )
        .await;
    assert_eq!(res.status, 200, "{res:?}");
    assert!(res.body["key"].as_str().unwrap().starts_with("org/org_a/"));
    assert!(res.headers.get("set-auth-token").is_some());

    let limited = db
        .add_api_key("u1", Some("org_a"), None, Some((60_000, 2)))
        .await;
    let call = |k: String| {
        app.send(
            app.http
                .post(&url)
                .header("x-api-key", k)
                .json(&upload_body()),
        )
    };
    assert_eq!(call(limited.clone()).await.status, 200);
    assert_eq!(call(limited.clone()).await.status, 200);
    assert_envelope(&call(limited.clone()).await, 429, "AUTH_RATE_LIMITED");
    assert_envelope(&call("not-a-key".into()).await, 401, "AUTH_INVALID_TOKEN");
    let counters = db.api_key_counters(&limited).await.unwrap();
    assert_eq!(counters.request_count, Some(2));
    app.shutdown().await;
}
