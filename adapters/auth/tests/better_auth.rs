//! The Better Auth authenticators against real SQLite files built by the testkit fixture
//! (whose cookie signing and key hashing are implemented independently of this crate).

#![expect(
    clippy::unwrap_used,
    reason = "test helpers panic on purpose: a failed set-up step is a failed test"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_sqlite::rusqlite::types::Value;
use filegate_auth::{
    ApiKeyAuthenticator, ApiKeyConfig, AuthDb, JwtAuthenticator, JwtConfig, QuickbackAuthenticator,
    SessionAuthenticator, SessionConfig, hash_api_key, mint_token,
};
use filegate_core::Error;
use filegate_core::domain::{AuthMethod, Principal};
use filegate_core::ports::{Authenticator, Clock, Credentials};
use filegate_testkit::auth_db::{AuthDbFixture, Layout, api_key_hash};
use tempfile::TempDir;
use time::OffsetDateTime;

const SECRET: &str = "better-auth-secret-for-tests-0123456789";
const HOUR: time::Duration = time::Duration::hours(1);

/// A clock the test moves by hand.
struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    fn new(now: OffsetDateTime) -> Arc<Self> {
        Arc::new(Self(Mutex::new(now)))
    }
    fn advance(&self, by: time::Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap()
    }
}

/// A fixture database with users, orgs and memberships, and the adapter opened on it.
struct World {
    _dir: TempDir,
    fx: AuthDbFixture,
    db: AuthDb,
    clock: Arc<ManualClock>,
    now: OffsetDateTime,
}

impl World {
    async fn new(layout: Layout) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let fx = AuthDbFixture::create_with(dir.path().join("auth.db"), layout);
        fx.add_user("alice", "alice@example.com", None);
        fx.add_user("root", "root@example.com", Some("admin"));
        fx.add_user("bob", "bob@example.com", Some("user"));
        fx.add_org("acme", "acme");
        fx.add_org("other", "other");
        fx.add_member("acme", "alice", "admin,member");
        fx.add_member("acme", "root", "owner");
        fx.add_member("other", "bob", "member");
        let db = AuthDb::open(fx.path()).await.unwrap();
        let now = OffsetDateTime::now_utc();
        Self {
            _dir: dir,
            fx,
            db,
            clock: ManualClock::new(now),
            now,
        }
    }

    fn sessions(&self) -> SessionAuthenticator {
        self.sessions_with(SessionConfig::new(SECRET))
    }

    fn sessions_with(&self, config: SessionConfig) -> SessionAuthenticator {
        SessionAuthenticator::new(self.db.clone(), config).with_clock(self.clock.clone())
    }

    fn api_keys(&self) -> ApiKeyAuthenticator {
        ApiKeyAuthenticator::new(self.db.clone(), ApiKeyConfig::default())
            .with_clock(self.clock.clone())
    }

    fn jwt(&self) -> JwtAuthenticator {
        JwtAuthenticator::new(JwtConfig::new(SECRET)).with_clock(self.clock.clone())
    }

    fn quickback(&self) -> QuickbackAuthenticator {
        QuickbackAuthenticator::new(self.jwt())
            .with_session(self.sessions())
            .with_api_key(self.api_keys())
    }

    fn mint(user: &str, org: Option<&str>, role: Option<&str>, at: OffsetDateTime) -> String {
        let ttl = Duration::from_hours(1);
        mint_token(&JwtConfig::new(SECRET), user, org, role, None, ttl, at).unwrap()
    }
}

fn cookie(header: impl Into<String>) -> Credentials {
    Credentials {
        cookie: Some(header.into()),
        ..Credentials::default()
    }
}

fn bearer(value: impl Into<String>) -> Credentials {
    Credentials {
        bearer: Some(value.into()),
        ..Credentials::default()
    }
}

fn api_key(value: impl Into<String>) -> Credentials {
    Credentials {
        api_key: Some(value.into()),
        ..Credentials::default()
    }
}

#[track_caller]
fn assert_invalid(result: Result<Principal, Error>) -> String {
    match result {
        Err(Error::AuthInvalidToken { reason }) => reason,
        other => panic!("expected AUTH_INVALID_TOKEN, got {other:?}"),
    }
}

#[track_caller]
fn assert_err(result: Result<Principal, Error>, code: &str) {
    match result {
        Err(err) => assert_eq!(err.code(), code, "{err:?}"),
        Ok(p) => panic!("expected {code}, got {p:?}"),
    }
}

fn roles(p: &Principal) -> Vec<&str> {
    p.roles.iter().map(String::as_str).collect()
}

// ---------------------------------------------------------------------------------------
// Sessions

mod sessions {
    use super::*;

    #[tokio::test]
    async fn valid_cookie_authenticates_under_either_cookie_name() {
        let w = World::new(Layout::BetterAuth).await;
        let token = w.fx.add_session("alice", Some("acme"), w.now + HOUR);
        let auth = w.sessions();
        for name in [
            "better-auth.session_token",
            "__Secure-better-auth.session_token",
        ] {
            let header = format!("theme=dark; {name}={}; lang=en", token.cookie_value(SECRET));
            let p = auth.authenticate(&cookie(header)).await.unwrap();
            assert_eq!(p.user_id, "alice");
            assert_eq!(p.active_org_id.as_deref(), Some("acme"));
            assert_eq!(roles(&p), ["admin", "member"]);
            assert_eq!(p.platform_role, None);
            assert_eq!(p.method, AuthMethod::Session);
        }
    }

    #[tokio::test]
    async fn url_encoded_and_plain_cookie_values_both_verify() {
        let w = World::new(Layout::BetterAuth).await;
        let token = w.fx.add_session("alice", None, w.now + HOUR);
        let auth = w.sessions();
        let encoded = token.cookie_value(SECRET);
        assert!(
            encoded.contains("%3D"),
            "Better Auth URL-encodes the cookie: {encoded}"
        );
        for value in [
            encoded.clone(),
            token.signed_value(SECRET),
            format!("\"{encoded}\""),
        ] {
            let header = format!("better-auth.session_token={value}");
            let p = auth.authenticate(&cookie(header)).await.unwrap();
            assert_eq!(p.user_id, "alice");
            assert_eq!(p.active_org_id, None);
        }
    }

    #[tokio::test]
    async fn tampered_signature_or_token_is_invalid() {
        let w = World::new(Layout::BetterAuth).await;
        let token = w.fx.add_session("alice", None, w.now + HOUR);
        let other = w.fx.add_session("bob", None, w.now + HOUR);
        let auth = w.sessions();
        let signed = token.signed_value(SECRET);
        let (value, signature) = signed.rsplit_once('.').unwrap();

        let mut chars: Vec<char> = signature.chars().collect();
        chars[10] = if chars[10] == 'A' { 'B' } else { 'A' };
        let forged_sig: String = chars.into_iter().collect();
        let swapped_token = format!("{}.{signature}", other.token());
        for forged in [
            format!("{value}.{forged_sig}"),
            swapped_token,
            format!("{value}.{}", &signature[..43]),
            value.to_owned(),
            format!("{value}."),
        ] {
            let header = format!("better-auth.session_token={forged}");
            assert_eq!(
                assert_invalid(auth.authenticate(&cookie(header)).await),
                "bad signature",
                "{forged}"
            );
        }
    }

    #[tokio::test]
    async fn cookie_signed_with_another_secret_is_invalid() {
        let w = World::new(Layout::BetterAuth).await;
        let token = w.fx.add_session("alice", None, w.now + HOUR);
        let header = format!(
            "better-auth.session_token={}",
            token.cookie_value("some-other-secret-0123456789abcdef")
        );
        assert_invalid(w.sessions().authenticate(&cookie(header)).await);
    }

    #[tokio::test]
    async fn expired_session_is_expired() {
        let w = World::new(Layout::BetterAuth).await;
        let token = w.fx.add_session("alice", None, w.now + HOUR);
        let auth = w.sessions();
        assert!(
            auth.authenticate(&cookie(token.cookie_header(SECRET)))
                .await
                .is_ok()
        );
        w.clock.advance(HOUR + time::Duration::seconds(1));
        assert_err(
            auth.authenticate(&cookie(token.cookie_header(SECRET)))
                .await,
            "AUTH_EXPIRED",
        );
    }

    #[tokio::test]
    async fn active_org_without_membership_gives_no_org() {
        let w = World::new(Layout::BetterAuth).await;
        let token = w.fx.add_session("alice", Some("other"), w.now + HOUR);
        let p = w
            .sessions()
            .authenticate(&cookie(token.cookie_header(SECRET)))
            .await
            .unwrap();
        assert_eq!(p.user_id, "alice");
        assert_eq!(p.active_org_id, None);
        assert!(p.roles.is_empty());
    }

    #[tokio::test]
    async fn signed_out_session_is_invalid() {
        let w = World::new(Layout::BetterAuth).await;
        let token = w.fx.add_session("alice", None, w.now + HOUR);
        let auth = w.sessions();
        assert!(
            auth.authenticate(&cookie(token.cookie_header(SECRET)))
                .await
                .is_ok()
        );
        w.fx.sign_out(&token);
        let reason = assert_invalid(
            auth.authenticate(&cookie(token.cookie_header(SECRET)))
                .await,
        );
        assert_eq!(reason, "unknown or signed-out session");
    }

    #[tokio::test]
    async fn bearer_session_token_raw_or_signed() {
        let w = World::new(Layout::BetterAuth).await;
        let token = w.fx.add_session("alice", Some("acme"), w.now + HOUR);
        let auth = w.sessions();
        for value in [
            token.token().to_owned(),
            token.cookie_value(SECRET),
            token.signed_value(SECRET),
            token.signed_value(SECRET).trim_end_matches('=').to_owned(),
        ] {
            let p = auth.authenticate(&bearer(value.clone())).await.unwrap();
            assert_eq!(p.user_id, "alice", "{value}");
            assert_eq!(p.method, AuthMethod::Session);
        }
        let forged = format!("{}.{}", token.token(), "A".repeat(43));
        assert_invalid(auth.authenticate(&bearer(forged)).await);

        // requireSignature: the raw token is refused, the signed one still works.
        let strict = w.sessions_with(SessionConfig {
            bearer_require_signature: true,
            ..SessionConfig::new(SECRET)
        });
        assert_invalid(strict.authenticate(&bearer(token.token())).await);
        assert!(
            strict
                .authenticate(&bearer(token.cookie_value(SECRET)))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn jwt_shaped_bearer_is_left_to_the_jwt_path() {
        let w = World::new(Layout::BetterAuth).await;
        let token = w.fx.add_session("alice", None, w.now + HOUR);
        let jwt = World::mint("alice", None, None, w.now);
        let auth = w.sessions();
        assert_err(
            auth.authenticate(&bearer(jwt.clone())).await,
            "AUTH_MISSING",
        );
        // …and the cookie beside it still counts.
        let both = Credentials {
            bearer: Some(jwt),
            cookie: Some(token.cookie_header(SECRET)),
            ..Credentials::default()
        };
        assert_eq!(auth.authenticate(&both).await.unwrap().user_id, "alice");
    }

    #[tokio::test]
    async fn platform_admin_role_comes_from_the_user_row() {
        let w = World::new(Layout::BetterAuth).await;
        let token = w.fx.add_session("root", Some("acme"), w.now + HOUR);
        let p = w
            .sessions()
            .authenticate(&cookie(token.cookie_header(SECRET)))
            .await
            .unwrap();
        assert_eq!(p.platform_role.as_deref(), Some("admin"));
        assert!(p.is_platform_admin());
        assert_eq!(roles(&p), ["owner"]);
    }

    #[tokio::test]
    async fn no_session_credential_is_missing() {
        let w = World::new(Layout::BetterAuth).await;
        let auth = w.sessions();
        for credentials in [
            Credentials::default(),
            cookie("theme=dark; better-auth.session_data=abc"),
            cookie(""),
            bearer("   "),
        ] {
            assert_err(auth.authenticate(&credentials).await, "AUTH_MISSING");
        }
    }

    #[tokio::test]
    async fn valid_signature_on_an_unknown_token_is_invalid() {
        let w = World::new(Layout::BetterAuth).await;
        // Another database's token, signed with the right secret, never stored here.
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = AuthDbFixture::create(dir.path().join("other.db"));
        elsewhere.add_user("alice", "alice@example.com", None);
        let stranger = elsewhere.add_session("alice", None, w.now + HOUR);
        assert_invalid(
            w.sessions()
                .authenticate(&cookie(stranger.cookie_header(SECRET)))
                .await,
        );
    }

    #[tokio::test]
    async fn banned_user_is_refused_until_the_ban_ends() {
        let w = World::new(Layout::BetterAuth).await;
        let token = w.fx.add_session("alice", None, w.now + 3 * HOUR);
        w.fx.ban_user("alice", Some(w.now + HOUR));
        let auth = w.sessions();
        let reason = assert_invalid(
            auth.authenticate(&cookie(token.cookie_header(SECRET)))
                .await,
        );
        assert_eq!(reason, "user banned");
        w.clock.advance(2 * HOUR);
        assert!(
            auth.authenticate(&cookie(token.cookie_header(SECRET)))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn custom_cookie_prefix() {
        let w = World::new(Layout::BetterAuth).await;
        let token = w.fx.add_session("alice", None, w.now + HOUR);
        let auth = w.sessions_with(SessionConfig {
            cookie_prefix: "quickback".into(),
            ..SessionConfig::new(SECRET)
        });
        let value = token.cookie_value(SECRET);
        assert!(
            auth.authenticate(&cookie(format!("quickback.session_token={value}")))
                .await
                .is_ok()
        );
        assert_err(
            auth.authenticate(&cookie(token.cookie_header(SECRET)))
                .await,
            "AUTH_MISSING",
        );
    }

    #[tokio::test]
    async fn hashed_session_tokens_are_looked_up_by_hash() {
        let mut w = World::new(Layout::BetterAuth).await;
        w.fx.store_token_hashes(true);
        let token = w.fx.add_session("alice", None, w.now + HOUR);
        let hashing = w.sessions_with(SessionConfig {
            store_token_hash: true,
            ..SessionConfig::new(SECRET)
        });
        assert!(
            hashing
                .authenticate(&cookie(token.cookie_header(SECRET)))
                .await
                .is_ok()
        );
        // The stored hash is not a credential.
        assert_invalid(
            hashing
                .authenticate(&bearer(api_key_hash(token.token())))
                .await,
        );
        assert_invalid(
            w.sessions()
                .authenticate(&cookie(token.cookie_header(SECRET)))
                .await,
        );
    }

    #[tokio::test]
    async fn drizzle_layout_with_millisecond_dates() {
        let w = World::new(Layout::Drizzle).await;
        let token = w.fx.add_session("alice", Some("acme"), w.now + HOUR);
        let auth = w.sessions();
        let p = auth
            .authenticate(&cookie(token.cookie_header(SECRET)))
            .await
            .unwrap();
        assert_eq!(p.active_org_id.as_deref(), Some("acme"));
        assert_eq!(roles(&p), ["admin", "member"]);
        w.clock.advance(2 * HOUR);
        assert_err(
            auth.authenticate(&cookie(token.cookie_header(SECRET)))
                .await,
            "AUTH_EXPIRED",
        );
    }

    #[tokio::test]
    async fn opening_a_missing_or_foreign_database_fails() {
        let dir = tempfile::tempdir().unwrap();
        let missing = AuthDb::open(dir.path().join("nope.db")).await;
        assert!(
            matches!(missing, Err(Error::Unavailable { .. })),
            "{missing:?}"
        );
        assert!(
            !dir.path().join("nope.db").exists(),
            "must not create the file"
        );

        let path = dir.path().join("foreign.db");
        AuthDbFixture::create(&path)
            .connection()
            .execute_batch("DROP TABLE member")
            .unwrap();
        let foreign = AuthDb::open(&path).await;
        assert!(
            matches!(foreign, Err(Error::Internal { .. })),
            "{foreign:?}"
        );
    }

    #[tokio::test]
    async fn debug_never_shows_the_secret() {
        let w = World::new(Layout::BetterAuth).await;
        let shown = format!("{:?} {:?}", SessionConfig::new(SECRET), w.quickback());
        assert!(!shown.contains(SECRET), "{shown}");
    }
}

// ---------------------------------------------------------------------------------------
// API keys

mod api_keys {
    use super::*;

    #[tokio::test]
    async fn valid_key_authenticates_with_the_org_of_its_metadata() {
        let w = World::new(Layout::BetterAuth).await;
        let key =
            w.fx.add_api_key("alice", Some("acme"), None, Some((60_000, 10)));
        let p = w.api_keys().authenticate(&api_key(&key)).await.unwrap();
        assert_eq!(p.user_id, "alice");
        assert_eq!(p.active_org_id.as_deref(), Some("acme"));
        assert_eq!(roles(&p), ["admin", "member"]);
        assert_eq!(p.method, AuthMethod::ApiKey);
        assert_eq!(hash_api_key(&key), api_key_hash(&key));

        let counters = w.fx.api_key_counters(&key).unwrap();
        assert_eq!(counters.request_count, Some(1));
        // Written the way the row stores dates: `toISOString()` text here.
        assert_eq!(counters.last_request, w.fx.date(w.now));
        assert!(matches!(counters.last_request, Value::Text(ref t) if t.ends_with('Z')));
    }

    #[tokio::test]
    async fn wrong_key_is_invalid() {
        let w = World::new(Layout::BetterAuth).await;
        let key = w.fx.add_api_key("alice", None, None, None);
        let auth = w.api_keys();
        let mut wrong = key.clone();
        wrong.replace_range(..1, if key.starts_with('a') { "b" } else { "a" });
        for attempt in [wrong, format!("{key}x"), "short".into(), api_key_hash(&key)] {
            assert_eq!(
                assert_invalid(auth.authenticate(&api_key(attempt)).await),
                "unknown API key"
            );
        }
        assert_err(auth.authenticate(&api_key("  ")).await, "AUTH_MISSING");
    }

    #[tokio::test]
    async fn expired_key_is_expired() {
        let w = World::new(Layout::BetterAuth).await;
        let key = w.fx.add_api_key("alice", None, Some(w.now + HOUR), None);
        let auth = w.api_keys();
        assert!(auth.authenticate(&api_key(&key)).await.is_ok());
        w.clock.advance(HOUR + time::Duration::milliseconds(1));
        assert_err(auth.authenticate(&api_key(&key)).await, "AUTH_EXPIRED");
    }

    #[tokio::test]
    async fn disabled_key_is_invalid() {
        let w = World::new(Layout::BetterAuth).await;
        let key = w.fx.add_api_key("alice", None, None, None);
        w.fx.disable_key(&key);
        let reason = assert_invalid(w.api_keys().authenticate(&api_key(&key)).await);
        assert_eq!(reason, "API key disabled");
    }

    #[tokio::test]
    async fn key_of_a_non_member_has_no_org() {
        let w = World::new(Layout::BetterAuth).await;
        let key = w.fx.add_api_key("bob", Some("acme"), None, None);
        let p = w.api_keys().authenticate(&api_key(&key)).await.unwrap();
        assert_eq!(p.user_id, "bob");
        assert_eq!(p.active_org_id, None);
        assert!(p.roles.is_empty());
        assert_eq!(p.platform_role.as_deref(), Some("user"));
    }

    #[tokio::test]
    async fn rate_limit_refuses_after_max_then_resets_after_the_window() {
        let w = World::new(Layout::BetterAuth).await;
        let key = w.fx.add_api_key("alice", None, None, Some((1000, 3)));
        let auth = w.api_keys();
        for _ in 0..3 {
            auth.authenticate(&api_key(&key)).await.unwrap();
        }
        assert_err(auth.authenticate(&api_key(&key)).await, "AUTH_RATE_LIMITED");
        assert_eq!(w.fx.api_key_counters(&key).unwrap().request_count, Some(3));
        // A refused request moves nothing, so the window still runs from the 3rd request.
        w.clock.advance(time::Duration::milliseconds(1000));
        assert_err(auth.authenticate(&api_key(&key)).await, "AUTH_RATE_LIMITED");
        w.clock.advance(time::Duration::milliseconds(1));
        auth.authenticate(&api_key(&key)).await.unwrap();
        assert_eq!(w.fx.api_key_counters(&key).unwrap().request_count, Some(1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rate_limit_holds_under_concurrency_and_across_instances() {
        let w = World::new(Layout::BetterAuth).await;
        let key = w.fx.add_api_key("alice", None, None, Some((3_600_000, 4)));
        // Two authenticators with their own pools, as two filegate processes would be.
        let second_db = AuthDb::open(w.fx.path()).await.unwrap();
        let auths = [
            Arc::new(w.api_keys()),
            Arc::new(
                ApiKeyAuthenticator::new(second_db, ApiKeyConfig::default())
                    .with_clock(w.clock.clone()),
            ),
        ];
        let mut tasks = Vec::new();
        for i in 0..10 {
            let auth = Arc::clone(&auths[i % 2]);
            let key = key.clone();
            tasks.push(tokio::spawn(async move {
                auth.authenticate(&api_key(key)).await
            }));
        }
        let mut accepted = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => accepted += 1,
                Err(err) => assert_eq!(err.code(), "AUTH_RATE_LIMITED", "{err:?}"),
            }
        }
        assert_eq!(accepted, 4);
        assert_eq!(w.fx.api_key_counters(&key).unwrap().request_count, Some(4));
    }

    #[tokio::test]
    async fn used_up_remaining_is_rate_limited_until_refilled() {
        let w = World::new(Layout::BetterAuth).await;
        let key = w.fx.add_api_key("alice", None, None, None);
        w.fx.set_key_remaining(&key, Some(2), None);
        let auth = w.api_keys();
        auth.authenticate(&api_key(&key)).await.unwrap();
        auth.authenticate(&api_key(&key)).await.unwrap();
        assert_eq!(w.fx.api_key_counters(&key).unwrap().remaining, Some(0));
        assert_err(auth.authenticate(&api_key(&key)).await, "AUTH_RATE_LIMITED");

        // With a refill configured, the allowance comes back after the interval.
        w.fx.set_key_remaining(&key, Some(0), Some((60_000, 5)));
        w.clock.advance(time::Duration::seconds(61));
        auth.authenticate(&api_key(&key)).await.unwrap();
        assert_eq!(w.fx.api_key_counters(&key).unwrap().remaining, Some(4));
    }

    #[tokio::test]
    async fn banned_or_missing_owner_is_invalid() {
        let w = World::new(Layout::BetterAuth).await;
        let key = w.fx.add_api_key("alice", None, None, None);
        w.fx.ban_user("alice", None);
        assert_eq!(
            assert_invalid(w.api_keys().authenticate(&api_key(&key)).await),
            "user banned"
        );
        w.fx.connection()
            .execute_batch("PRAGMA foreign_keys = OFF")
            .unwrap();
        let orphan = w.fx.add_api_key("ghost", None, None, None);
        assert_eq!(
            assert_invalid(w.api_keys().authenticate(&api_key(&orphan)).await),
            "API key owner not found"
        );
    }

    #[tokio::test]
    async fn drizzle_layout_reference_id_and_millisecond_counters() {
        let w = World::new(Layout::Drizzle).await;
        let key =
            w.fx.add_api_key("alice", Some("acme"), Some(w.now + HOUR), Some((1000, 1)));
        let auth = w.api_keys();
        let p = auth.authenticate(&api_key(&key)).await.unwrap();
        assert_eq!(p.active_org_id.as_deref(), Some("acme"));
        let counters = w.fx.api_key_counters(&key).unwrap();
        assert_eq!(counters.request_count, Some(1));
        let expected_ms = i64::try_from(w.now.unix_timestamp_nanos() / 1_000_000).unwrap();
        assert_eq!(counters.last_request, Value::Integer(expected_ms));
        assert_err(auth.authenticate(&api_key(&key)).await, "AUTH_RATE_LIMITED");
    }
}

// ---------------------------------------------------------------------------------------
// Quickback's order

mod quickback {
    use super::*;

    #[tokio::test]
    async fn a_present_api_key_decides_alone() {
        let w = World::new(Layout::BetterAuth).await;
        let session = w.fx.add_session("alice", Some("acme"), w.now + HOUR);
        let jwt = World::mint("alice", Some("acme"), Some("owner"), w.now);
        let auth = w.quickback();
        let credentials = Credentials {
            api_key: Some("not-a-real-key".into()),
            bearer: Some(jwt),
            cookie: Some(session.cookie_header(SECRET)),
        };
        assert_invalid(auth.authenticate(&credentials).await);

        let key = w.fx.add_api_key("bob", None, None, None);
        let credentials = Credentials {
            api_key: Some(key),
            ..credentials
        };
        let p = auth.authenticate(&credentials).await.unwrap();
        assert_eq!((p.user_id.as_str(), p.method), ("bob", AuthMethod::ApiKey));
    }

    #[tokio::test]
    async fn a_valid_jwt_wins_over_the_cookie() {
        let w = World::new(Layout::BetterAuth).await;
        let session = w.fx.add_session("bob", None, w.now + HOUR);
        let credentials = Credentials {
            bearer: Some(World::mint("alice", Some("acme"), Some("owner"), w.now)),
            cookie: Some(session.cookie_header(SECRET)),
            ..Credentials::default()
        };
        let p = w.quickback().authenticate(&credentials).await.unwrap();
        assert_eq!((p.user_id.as_str(), p.method), ("alice", AuthMethod::Jwt));
        assert_eq!(roles(&p), ["owner"]);
    }

    #[tokio::test]
    async fn an_invalid_jwt_falls_back_to_the_session() {
        let w = World::new(Layout::BetterAuth).await;
        let session = w.fx.add_session("alice", Some("acme"), w.now + HOUR);
        let mut jwt = World::mint("bob", None, None, w.now);
        jwt.push('x');
        let credentials = Credentials {
            bearer: Some(jwt),
            cookie: Some(session.cookie_header(SECRET)),
            ..Credentials::default()
        };
        let p = w.quickback().authenticate(&credentials).await.unwrap();
        assert_eq!(
            (p.user_id.as_str(), p.method),
            ("alice", AuthMethod::Session)
        );
    }

    #[tokio::test]
    async fn an_invalid_jwt_without_a_session_keeps_its_error() {
        let w = World::new(Layout::BetterAuth).await;
        let mut jwt = World::mint("bob", None, None, w.now);
        jwt.push('x');
        let auth = w.quickback();
        assert_invalid(auth.authenticate(&bearer(jwt.clone())).await);

        // A signed-out session cookie does not change which error is reported.
        let session = w.fx.add_session("alice", None, w.now + HOUR);
        w.fx.sign_out(&session);
        let credentials = Credentials {
            bearer: Some(jwt),
            cookie: Some(session.cookie_header(SECRET)),
            ..Credentials::default()
        };
        assert_eq!(
            assert_invalid(auth.authenticate(&credentials).await),
            "bad signature"
        );
    }

    #[tokio::test]
    async fn an_expired_jwt_without_a_session_is_expired() {
        let w = World::new(Layout::BetterAuth).await;
        let jwt = World::mint("bob", None, None, w.now - 2 * HOUR);
        assert_err(
            w.quickback().authenticate(&bearer(jwt)).await,
            "AUTH_EXPIRED",
        );
    }

    #[tokio::test]
    async fn a_session_bearer_and_nothing_at_all() {
        let w = World::new(Layout::BetterAuth).await;
        let session = w.fx.add_session("alice", None, w.now + HOUR);
        let auth = w.quickback();
        let p = auth.authenticate(&bearer(session.token())).await.unwrap();
        assert_eq!(p.method, AuthMethod::Session);
        assert_err(
            auth.authenticate(&Credentials::default()).await,
            "AUTH_MISSING",
        );
    }

    #[tokio::test]
    async fn without_an_auth_db_only_jwts_work() {
        let w = World::new(Layout::BetterAuth).await;
        let session = w.fx.add_session("alice", None, w.now + HOUR);
        let auth = QuickbackAuthenticator::new(w.jwt());
        let p = auth
            .authenticate(&bearer(World::mint(
                "alice",
                Some("acme"),
                Some("member"),
                w.now,
            )))
            .await
            .unwrap();
        assert_eq!(p.method, AuthMethod::Jwt);
        assert_invalid(auth.authenticate(&api_key("some-key")).await);
        assert_invalid(auth.authenticate(&bearer(session.token())).await);
        assert_err(
            auth.authenticate(&cookie(session.cookie_header(SECRET)))
                .await,
            "AUTH_MISSING",
        );
    }

    #[tokio::test]
    async fn a_pinned_org_is_always_active_with_the_membership_there() {
        let w = World::new(Layout::BetterAuth).await;
        let auth = w.quickback().with_pinned_org(Some("acme".into()));

        // Session active in another org; alice is a member of the pinned one.
        let s = w.fx.add_session("alice", Some("other"), w.now + HOUR);
        let p = auth
            .authenticate(&cookie(s.cookie_header(SECRET)))
            .await
            .unwrap();
        assert_eq!(p.active_org_id.as_deref(), Some("acme"));
        assert_eq!(roles(&p), ["admin", "member"]);

        // bob is not a member of it: pinned anyway, but no roles.
        let s = w.fx.add_session("bob", Some("other"), w.now + HOUR);
        let p = auth
            .authenticate(&cookie(s.cookie_header(SECRET)))
            .await
            .unwrap();
        assert_eq!(p.active_org_id.as_deref(), Some("acme"));
        assert!(p.roles.is_empty());

        // API key with no org in its metadata.
        let key = w.fx.add_api_key("root", None, None, None);
        let p = auth.authenticate(&api_key(key)).await.unwrap();
        assert_eq!(p.active_org_id.as_deref(), Some("acme"));
        assert_eq!(roles(&p), ["owner"]);

        // JWT for another org: the role comes from the database, not the token.
        let jwt = World::mint("alice", Some("other"), Some("owner"), w.now);
        let p = auth.authenticate(&bearer(jwt)).await.unwrap();
        assert_eq!(p.active_org_id.as_deref(), Some("acme"));
        assert_eq!(roles(&p), ["admin", "member"]);
    }

    #[tokio::test]
    async fn a_pinned_org_without_auth_db_trusts_only_a_matching_jwt() {
        let w = World::new(Layout::BetterAuth).await;
        let auth = QuickbackAuthenticator::new(w.jwt()).with_pinned_org(Some("acme".into()));
        let same = World::mint("alice", Some("acme"), Some("owner"), w.now);
        let p = auth.authenticate(&bearer(same)).await.unwrap();
        assert_eq!(p.active_org_id.as_deref(), Some("acme"));
        assert_eq!(roles(&p), ["owner"]);

        let other = World::mint("alice", Some("other"), Some("owner"), w.now);
        let p = auth.authenticate(&bearer(other)).await.unwrap();
        assert_eq!(p.active_org_id.as_deref(), Some("acme"));
        assert!(p.roles.is_empty());

        let blank = QuickbackAuthenticator::new(w.jwt()).with_pinned_org(Some("  ".into()));
        let p = blank
            .authenticate(&bearer(World::mint("alice", Some("other"), None, w.now)))
            .await
            .unwrap();
        assert_eq!(p.active_org_id.as_deref(), Some("other"));
    }
}

// ---------------------------------------------------------------------------------------
// Garbage in

mod garbage {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    /// Cookie headers: arbitrary text, and near-misses built around a real session.
    fn headers(real_token: String) -> impl Strategy<Value = String> {
        let name = prop_oneof![
            Just("better-auth.session_token".to_owned()),
            Just("__Secure-better-auth.session_token".to_owned()),
            "[ -~]{0,30}",
        ];
        let value = prop_oneof![
            any::<String>(),
            "[A-Za-z0-9%.=+/_-]{0,120}",
            "[A-Za-z0-9+/]{43}=".prop_map(move |sig| format!("{real_token}.{sig}")),
            ("[A-Za-z0-9]{32}", "[A-Za-z0-9+/]{43}=").prop_map(|(t, s)| format!("{t}.{s}")),
        ];
        prop_oneof![
            any::<String>(),
            (name, value, any::<String>()).prop_map(|(n, v, rest)| format!("{n}={v}; {rest}")),
        ]
    }

    #[test]
    fn random_cookie_headers_never_panic_and_never_authenticate() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Pooled connections are closed on a blocking task, so drop them inside the runtime.
        let _context = rt.enter();
        let w = rt.block_on(World::new(Layout::BetterAuth));
        let real = w.fx.add_session("alice", Some("acme"), w.now + HOUR);
        let auth = w.quickback();

        let mut runner = TestRunner::new(Config {
            cases: 256,
            ..Config::default()
        });
        runner
            .run(&headers(real.token().to_owned()), |header| {
                let result = rt.block_on(auth.authenticate(&cookie(header.clone())));
                prop_assert!(result.is_err(), "{header:?} authenticated");
                let code = result.unwrap_err().code();
                prop_assert!(
                    code == "AUTH_MISSING" || code == "AUTH_INVALID_TOKEN",
                    "{header:?}: {code}"
                );
                Ok(())
            })
            .unwrap();
        // The real cookie still works, so the harness itself is sound.
        assert!(
            rt.block_on(auth.authenticate(&cookie(real.cookie_header(SECRET))))
                .is_ok()
        );
    }
}
