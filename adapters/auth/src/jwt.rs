//! Quickback's JWT fast path: HS256 tokens signed with `BETTER_AUTH_SECRET`.
//!
//! Claims read (Quickback names): `sub` (user id), `orgId` (active organization),
//! `role` (organization role: `owner`, `admin`, `member`), `exp`, `iat`, and `iss` /
//! `aud`, which are checked only when configured. `nbf` is honoured when present.
//!
//! Filegate extension: `userRole`, the user table's platform role (`admin` = platform
//! admin). Quickback does not put it in its tokens; without it the principal has no
//! platform role.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use filegate_core::Error;
use filegate_core::domain::Principal;
use filegate_core::ports::{Authenticator, Clock, Credentials, SystemClock};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

/// Clock skew tolerated on `exp` and `nbf` unless configured otherwise.
pub const DEFAULT_LEEWAY_SECS: u64 = 5;

/// How to verify (and mint) tokens. `Debug` never shows the secret.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// `BETTER_AUTH_SECRET`, used as the raw HMAC key.
    pub secret: SecretString,
    /// When set, tokens must carry exactly this `iss`.
    pub issuer: Option<String>,
    /// When set, tokens must carry this `aud`.
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`; keep it small (0..=5).
    pub leeway_secs: u64,
}

impl JwtConfig {
    /// No issuer or audience check, [`DEFAULT_LEEWAY_SECS`] of leeway.
    pub fn new(secret: impl Into<SecretString>) -> Self {
        Self {
            secret: secret.into(),
            issuer: None,
            audience: None,
            leeway_secs: DEFAULT_LEEWAY_SECS,
        }
    }
}

/// The claims of a token, with Quickback's names on the wire (`orgId`, `userRole`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenClaims {
    /// The user id.
    pub sub: String,
    /// The active organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// Role in the active organization; several roles may be comma-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Filegate extension: the platform role (`admin` = platform admin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_role: Option<String>,
    /// Issued at, Unix seconds; 0 when the token has none.
    #[serde(default)]
    pub iat: i64,
    /// Expiry, Unix seconds.
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// A JSON array `aud` is read as its first element (validation sees all of them).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "string_or_first"
    )]
    pub aud: Option<String>,
}

impl TokenClaims {
    /// The principal these claims describe. Empty `orgId` / `role` / `userRole`
    /// count as absent; a comma-separated `role` (better-auth's multi-role form) is split.
    #[must_use]
    pub fn to_principal(&self) -> Principal {
        let non_empty = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let roles = self
            .role
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect();
        Principal {
            user_id: self.sub.clone(),
            active_org_id: non_empty(&self.org_id),
            roles,
            platform_role: non_empty(&self.user_role),
            method: filegate_core::domain::AuthMethod::Jwt,
        }
    }
}

/// The claims as decoded: lenient where [`TokenClaims`] is strict so that a missing
/// `sub` / `exp` reaches jsonwebtoken's required-claim check and gets a precise reason.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireClaims {
    #[serde(default)]
    sub: String,
    #[serde(default)]
    org_id: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    user_role: Option<String>,
    #[serde(default)]
    iat: i64,
    #[serde(default)]
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default, deserialize_with = "string_or_first")]
    iss: Option<String>,
    #[serde(default, deserialize_with = "string_or_first")]
    aud: Option<String>,
}

fn string_or_first<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => None,
        Some(OneOrMany::One(s)) => Some(s),
        Some(OneOrMany::Many(v)) => v.into_iter().next(),
    })
}

/// True for a bearer value shaped like a compact JWS (three dot-separated parts, a
/// JSON header). Other bearers (better-auth session tokens) belong to other authenticators.
#[must_use]
pub fn looks_like_jwt(bearer: &str) -> bool {
    bearer.starts_with("eyJ") && bearer.split('.').count() == 3
}

/// Verifies Quickback HS256 JWTs presented as `Authorization: Bearer`.
pub struct JwtAuthenticator {
    key: DecodingKey,
    validation: Validation,
    leeway_secs: i64,
    secret_is_empty: bool,
    clock: Arc<dyn Clock>,
    /// Tokens whose signature and claims checked out, by their exact text (see
    /// [`JwtAuthenticator::verify`]).
    verified: Mutex<HashMap<Box<str>, Verified>>,
}

/// A token's claims, and its `nbf`, which [`TokenClaims`] does not carry.
#[derive(Clone)]
struct Verified {
    claims: TokenClaims,
    nbf: Option<i64>,
}

/// Most tokens [`JwtAuthenticator`] remembers as verified; past it, it starts over.
/// About 1.5 MiB at most.
const VERIFIED_TOKENS: usize = 4_096;

impl fmt::Debug for JwtAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthenticator")
            .field("issuer", &self.validation.iss)
            .field("audience", &self.validation.aud)
            .field("leeway_secs", &self.leeway_secs)
            .finish_non_exhaustive()
    }
}

impl JwtAuthenticator {
    #[must_use]
    #[expect(
        clippy::needless_pass_by_value,
        reason = "adapters take their configuration by value"
    )]
    pub fn new(config: JwtConfig) -> Self {
        let secret = config.secret.expose_secret();
        let secret_is_empty = secret.is_empty();
        if secret_is_empty {
            // An empty HMAC key would let anyone forge tokens; every token is refused.
            tracing::error!("JWT secret is empty: every JWT will be refused");
        }

        let mut validation = Validation::new(Algorithm::HS256);
        // Time claims are checked below against the Clock port, not jsonwebtoken's
        // wall clock, so expiry is testable and follows jose's `exp <= now` rule.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        let mut required = vec!["exp", "sub"];
        if let Some(iss) = &config.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        // jsonwebtoken rejects any `aud` when no audience is set; Quickback's contract
        // is "checked only when configured".
        validation.validate_aud = config.audience.is_some();
        if let Some(aud) = &config.audience {
            validation.set_audience(&[aud]);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);

        Self {
            key: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            leeway_secs: i64::try_from(config.leeway_secs).unwrap_or(i64::MAX),
            secret_is_empty,
            clock: Arc::new(SystemClock),
            verified: Mutex::default(),
        }
    }

    /// Uses `clock` for `exp` / `nbf` instead of the wall clock.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Verifies one token and returns its claims.
    ///
    /// # Errors
    /// [`Error::AuthInvalidToken`] for a malformed or forged token, any algorithm but
    /// HS256, a missing `sub`, a wrong `iss` / `aud`, or an `nbf` in the future;
    /// [`Error::AuthExpired`] once `exp` has passed; [`Error::Internal`] when the
    /// configured secret is empty.
    ///
    /// A client sends the same token with every request until it expires, and decoding
    /// it (two base64 decodes, two JSON parses, the HMAC) was a tenth of a signed
    /// download's CPU. So the claims of a token that passed are remembered by the token's
    /// exact text: the same bytes under the same key verify the same way, and the time
    /// checks (`exp`, `nbf`) still run on every call. A forged or altered token is never
    /// remembered, and is a different text from any that is.
    pub fn verify(&self, token: &str) -> Result<TokenClaims, Error> {
        if self.secret_is_empty {
            return Err(Error::internal("JWT secret is empty"));
        }
        let known = self.remembered().get(token).cloned();
        let Verified { claims, nbf } = if let Some(verified) = known {
            verified
        } else {
            let verified = self.decode(token)?;
            let mut remembered = self.remembered();
            if remembered.len() >= VERIFIED_TOKENS {
                remembered.clear();
            }
            remembered.insert(token.into(), verified.clone());
            verified
        };
        let now = self.clock.now().unix_timestamp();
        if claims.exp.saturating_add(self.leeway_secs) <= now {
            return Err(Error::AuthExpired);
        }
        if nbf.is_some_and(|nbf| nbf > now.saturating_add(self.leeway_secs)) {
            return Err(invalid("token not yet valid"));
        }
        Ok(claims)
    }

    fn remembered(&self) -> MutexGuard<'_, HashMap<Box<str>, Verified>> {
        // The map holds only verified claims; a panic elsewhere leaves it consistent.
        self.verified.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many tokens are remembered as verified.
    #[cfg(test)]
    fn remembered_len(&self) -> usize {
        self.remembered().len()
    }

    /// The signature, the algorithm, `iss` / `aud` and the claims' shape: everything of
    /// [`JwtAuthenticator::verify`] that does not depend on the time.
    fn decode(&self, token: &str) -> Result<Verified, Error> {
        let data = jsonwebtoken::decode::<WireClaims>(token, &self.key, &self.validation)
            .map_err(|e| map_jwt_error(&e))?;
        if data.header.crit.is_some() {
            // RFC 7515: extensions we don't implement must make the token invalid.
            return Err(invalid("unsupported critical header"));
        }
        let c = data.claims;
        if c.sub.trim().is_empty() {
            return Err(invalid("missing sub claim"));
        }
        Ok(Verified {
            claims: TokenClaims {
                sub: c.sub,
                org_id: c.org_id,
                role: c.role,
                user_role: c.user_role,
                iat: c.iat,
                exp: c.exp,
                iss: c.iss,
                aud: c.aud,
            },
            nbf: c.nbf,
        })
    }
}

#[async_trait]
impl Authenticator for JwtAuthenticator {
    async fn authenticate(&self, credentials: &Credentials) -> Result<Principal, Error> {
        let Some(token) = credentials
            .bearer
            .as_deref()
            .map(str::trim)
            .filter(|b| looks_like_jwt(b))
        else {
            return Err(Error::AuthMissing);
        };
        match self.verify(token) {
            Ok(claims) => crate::ids::checked(claims.to_principal()),
            Err(err) => {
                tracing::debug!(error = %err, "JWT rejected");
                Err(err)
            }
        }
    }
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::AuthInvalidToken {
        reason: reason.into(),
    }
}

/// Short, secret-free reasons; the token itself is never echoed.
fn map_jwt_error(err: &jsonwebtoken::errors::Error) -> Error {
    match err.kind() {
        ErrorKind::ExpiredSignature => Error::AuthExpired,
        ErrorKind::InvalidSignature => invalid("bad signature"),
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            invalid("algorithm not allowed")
        }
        ErrorKind::InvalidIssuer => invalid("issuer mismatch"),
        ErrorKind::InvalidAudience => invalid("audience mismatch"),
        ErrorKind::ImmatureSignature => invalid("token not yet valid"),
        ErrorKind::MissingRequiredClaim(claim) => invalid(format!("missing {claim} claim")),
        ErrorKind::InvalidClaimFormat(claim) => invalid(format!("malformed {claim} claim")),
        _ => invalid("malformed token"),
    }
}

/// Mints an HS256 token the way Quickback does, with `iss` / `aud` from `config` when set.
///
/// # Errors
/// [`Error::Validation`] for an empty secret or user id, or a `ttl` under one second
/// or too large; [`Error::Internal`] if signing fails.
pub fn mint_token(
    config: &JwtConfig,
    user_id: &str,
    org_id: Option<&str>,
    role: Option<&str>,
    user_role: Option<&str>,
    ttl: Duration,
    now: OffsetDateTime,
) -> Result<String, Error> {
    let secret = config.secret.expose_secret();
    if secret.is_empty() {
        return Err(Error::invalid("secret", "must not be empty"));
    }
    if user_id.trim().is_empty() {
        return Err(Error::invalid("user", "must not be empty"));
    }
    let iat = now.unix_timestamp();
    let exp = i64::try_from(ttl.as_secs())
        .ok()
        .filter(|secs| *secs > 0)
        .and_then(|secs| iat.checked_add(secs))
        .ok_or_else(|| Error::invalid("ttl", "must be at least one second"))?;
    let claims = TokenClaims {
        sub: user_id.to_owned(),
        org_id: org_id.map(str::to_owned),
        role: role.map(str::to_owned),
        user_role: user_role.map(str::to_owned),
        iat,
        exp,
        iss: config.issuer.clone(),
        aud: config.audience.clone(),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(Error::internal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use time::macros::datetime;

    const SECRET: &str = "test-secret-that-is-long-enough-0123456789";
    const NOW: OffsetDateTime = datetime!(2025-06-01 12:00 UTC);
    const HOUR: Duration = Duration::from_hours(1);

    struct FixedClock(OffsetDateTime);
    impl Clock for FixedClock {
        fn now(&self) -> OffsetDateTime {
            self.0
        }
    }

    fn config() -> JwtConfig {
        JwtConfig::new(SECRET)
    }

    fn auth_at(config: JwtConfig, now: OffsetDateTime) -> JwtAuthenticator {
        JwtAuthenticator::new(config).with_clock(Arc::new(FixedClock(now)))
    }

    fn bearer(token: &str) -> Credentials {
        Credentials {
            bearer: Some(token.to_owned()),
            ..Credentials::default()
        }
    }

    fn mint(config: &JwtConfig, user: &str) -> String {
        mint_token(config, user, Some("org1"), Some("member"), None, HOUR, NOW).unwrap()
    }

    /// Signs arbitrary claims, for tokens `mint_token` would never make.
    fn sign(alg: Algorithm, claims: &serde_json::Value, secret: &str) -> String {
        jsonwebtoken::encode(
            &Header::new(alg),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn b64url(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            }
        }
        out
    }

    fn valid_claims() -> serde_json::Value {
        let iat = NOW.unix_timestamp();
        json!({ "sub": "u1", "orgId": "org1", "role": "member", "iat": iat, "exp": iat + 3600 })
    }

    async fn authenticate(auth: &JwtAuthenticator, token: &str) -> Result<Principal, Error> {
        auth.authenticate(&bearer(token)).await
    }

    fn assert_invalid(result: Result<Principal, Error>) -> String {
        match result {
            Err(Error::AuthInvalidToken { reason }) => reason,
            other => panic!("expected AuthInvalidToken, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn minted_token_round_trips_to_the_principal() {
        let config = config();
        let token = mint_token(
            &config,
            "u1",
            Some("org1"),
            Some("admin"),
            Some("admin"),
            HOUR,
            NOW,
        )
        .unwrap();
        assert!(looks_like_jwt(&token));
        let principal = authenticate(&auth_at(config, NOW), &token).await.unwrap();
        assert_eq!(
            principal,
            Principal {
                user_id: "u1".into(),
                active_org_id: Some("org1".into()),
                roles: vec!["admin".into()],
                platform_role: Some("admin".into()),
                method: filegate_core::domain::AuthMethod::default(),
            }
        );
        assert!(principal.is_platform_admin());
    }

    #[test]
    fn minted_token_uses_quickback_claim_names() {
        let token = mint_token(
            &config(),
            "u1",
            Some("org1"),
            Some("owner"),
            Some("admin"),
            HOUR,
            NOW,
        )
        .unwrap();
        let data = jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(&token).unwrap();
        assert_eq!(data.header.alg, Algorithm::HS256);
        let iat = NOW.unix_timestamp();
        assert_eq!(
            data.claims,
            json!({ "sub": "u1", "orgId": "org1", "role": "owner", "userRole": "admin",
                    "iat": iat, "exp": iat + 3600 })
        );
    }

    #[tokio::test]
    async fn token_without_org_or_role_gives_a_bare_principal() {
        let config = config();
        let token = mint_token(&config, "u1", None, None, None, HOUR, NOW).unwrap();
        let principal = authenticate(&auth_at(config, NOW), &token).await.unwrap();
        assert_eq!(
            principal,
            Principal {
                user_id: "u1".into(),
                ..Principal::default()
            }
        );
    }

    #[test]
    fn verify_returns_the_claims() {
        let config = config();
        let token = mint(&config, "u1");
        let claims = auth_at(config, NOW).verify(&token).unwrap();
        assert_eq!(claims.sub, "u1");
        assert_eq!(claims.org_id.as_deref(), Some("org1"));
        assert_eq!(claims.iat, NOW.unix_timestamp());
        assert_eq!(claims.exp, NOW.unix_timestamp() + 3600);
    }

    #[tokio::test]
    async fn comma_separated_roles_and_empty_org_are_normalised() {
        let mut claims = valid_claims();
        claims["role"] = json!("admin, member");
        claims["orgId"] = json!("");
        let token = sign(Algorithm::HS256, &claims, SECRET);
        let principal = authenticate(&auth_at(config(), NOW), &token).await.unwrap();
        assert_eq!(principal.roles, ["admin", "member"]);
        assert_eq!(principal.active_org_id, None);
    }

    #[tokio::test]
    async fn null_optional_claims_are_absent() {
        let mut claims = valid_claims();
        claims["orgId"] = json!(null);
        claims["role"] = json!(null);
        let token = sign(Algorithm::HS256, &claims, SECRET);
        let principal = authenticate(&auth_at(config(), NOW), &token).await.unwrap();
        assert_eq!(principal.active_org_id, None);
        assert!(principal.roles.is_empty());
    }

    #[tokio::test]
    async fn wrong_secret_is_invalid() {
        let token = mint(&JwtConfig::new("another-secret"), "u1");
        let reason = assert_invalid(authenticate(&auth_at(config(), NOW), &token).await);
        assert_eq!(reason, "bad signature");
    }

    #[tokio::test]
    async fn tampered_payload_is_invalid() {
        let config = config();
        let good = mint(&config, "u1");
        let other = mint(&config, "admin-user");
        // u1's signature over admin-user's payload.
        let good_parts: Vec<&str> = good.split('.').collect();
        let other_parts: Vec<&str> = other.split('.').collect();
        let forged = format!("{}.{}.{}", good_parts[0], other_parts[1], good_parts[2]);
        let reason = assert_invalid(authenticate(&auth_at(config, NOW), &forged).await);
        assert_eq!(reason, "bad signature");
    }

    #[tokio::test]
    async fn alg_none_is_invalid() {
        let header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = b64url(valid_claims().to_string().as_bytes());
        assert!(header.starts_with("eyJ"));
        let auth = auth_at(config(), NOW);
        for token in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}.c2ln"),
        ] {
            assert_invalid(authenticate(&auth, &token).await);
        }
    }

    #[tokio::test]
    async fn other_hmac_algorithms_with_the_same_secret_are_invalid() {
        let auth = auth_at(config(), NOW);
        for alg in [Algorithm::HS384, Algorithm::HS512] {
            let token = sign(alg, &valid_claims(), SECRET);
            let reason = assert_invalid(authenticate(&auth, &token).await);
            assert_eq!(reason, "algorithm not allowed", "{alg:?}");
        }
    }

    #[tokio::test]
    async fn expired_token_is_auth_expired() {
        let config = config();
        let token = mint_token(&config, "u1", None, None, None, HOUR, NOW).unwrap();
        let later = NOW + time::Duration::hours(2);
        let result = authenticate(&auth_at(config, later), &token).await;
        assert!(matches!(result, Err(Error::AuthExpired)), "{result:?}");
    }

    #[tokio::test]
    async fn expiry_honours_the_leeway_exactly() {
        let config = JwtConfig {
            leeway_secs: 5,
            ..JwtConfig::new(SECRET)
        };
        let token = mint_token(&config, "u1", None, None, None, HOUR, NOW).unwrap();
        let exp = NOW + time::Duration::hours(1);
        let at = |offset: i64| auth_at(config.clone(), exp + time::Duration::seconds(offset));
        assert!(authenticate(&at(4), &token).await.is_ok());
        assert!(matches!(
            authenticate(&at(5), &token).await,
            Err(Error::AuthExpired)
        ));

        let strict = JwtConfig {
            leeway_secs: 0,
            ..config.clone()
        };
        let at_exp = auth_at(strict.clone(), exp);
        assert!(matches!(
            authenticate(&at_exp, &token).await,
            Err(Error::AuthExpired)
        ));
        let just_before = auth_at(strict, exp - time::Duration::seconds(1));
        assert!(authenticate(&just_before, &token).await.is_ok());
    }

    #[tokio::test]
    async fn wall_clock_is_used_by_default() {
        let config = config();
        let fresh = mint_token(
            &config,
            "u1",
            None,
            None,
            None,
            HOUR,
            OffsetDateTime::now_utc(),
        )
        .unwrap();
        let auth = JwtAuthenticator::new(config);
        assert!(authenticate(&auth, &fresh).await.is_ok());
        // Minted for 2025-06-01, long expired by the wall clock.
        let old = mint(&JwtConfig::new(SECRET), "u1");
        assert!(matches!(
            authenticate(&auth, &old).await,
            Err(Error::AuthExpired)
        ));
    }

    #[tokio::test]
    async fn nbf_in_the_future_is_invalid() {
        let mut claims = valid_claims();
        claims["nbf"] = json!(NOW.unix_timestamp() + 60);
        let token = sign(Algorithm::HS256, &claims, SECRET);
        let auth = auth_at(config(), NOW);
        let reason = assert_invalid(authenticate(&auth, &token).await);
        assert_eq!(reason, "token not yet valid");
        let later = auth_at(config(), NOW + time::Duration::seconds(60));
        assert!(authenticate(&later, &token).await.is_ok());
    }

    #[tokio::test]
    async fn missing_or_empty_sub_is_invalid() {
        let auth = auth_at(config(), NOW);
        let mut claims = valid_claims();
        claims.as_object_mut().unwrap().remove("sub");
        let token = sign(Algorithm::HS256, &claims, SECRET);
        assert_eq!(
            assert_invalid(authenticate(&auth, &token).await),
            "missing sub claim"
        );

        claims["sub"] = json!("");
        let token = sign(Algorithm::HS256, &claims, SECRET);
        assert_eq!(
            assert_invalid(authenticate(&auth, &token).await),
            "missing sub claim"
        );
    }

    #[tokio::test]
    async fn missing_exp_is_invalid() {
        let mut claims = valid_claims();
        claims.as_object_mut().unwrap().remove("exp");
        let token = sign(Algorithm::HS256, &claims, SECRET);
        let reason = assert_invalid(authenticate(&auth_at(config(), NOW), &token).await);
        assert_eq!(reason, "missing exp claim");
    }

    #[tokio::test]
    async fn wrongly_typed_claims_are_invalid() {
        let auth = auth_at(config(), NOW);
        for (claim, value) in [
            ("sub", json!(42)),
            ("exp", json!("tomorrow")),
            ("orgId", json!(["a"])),
        ] {
            let mut claims = valid_claims();
            claims[claim] = value;
            let token = sign(Algorithm::HS256, &claims, SECRET);
            assert_invalid(authenticate(&auth, &token).await);
        }
    }

    #[tokio::test]
    async fn issuer_is_enforced_only_when_configured() {
        let with_iss = |iss: &str| JwtConfig {
            issuer: Some(iss.into()),
            ..JwtConfig::new(SECRET)
        };
        let expecting = auth_at(with_iss("https://auth.example"), NOW);

        let right = mint(&with_iss("https://auth.example"), "u1");
        assert!(authenticate(&expecting, &right).await.is_ok());

        let wrong = mint(&with_iss("https://evil.example"), "u1");
        assert_eq!(
            assert_invalid(authenticate(&expecting, &wrong).await),
            "issuer mismatch"
        );

        let none = mint(&config(), "u1");
        assert_eq!(
            assert_invalid(authenticate(&expecting, &none).await),
            "missing iss claim"
        );

        // Not configured: any iss is fine.
        assert!(authenticate(&auth_at(config(), NOW), &wrong).await.is_ok());
    }

    #[tokio::test]
    async fn audience_is_enforced_only_when_configured() {
        let with_aud = |aud: &str| JwtConfig {
            audience: Some(aud.into()),
            ..JwtConfig::new(SECRET)
        };
        let expecting = auth_at(with_aud("filegate"), NOW);

        let right = mint(&with_aud("filegate"), "u1");
        assert!(authenticate(&expecting, &right).await.is_ok());

        let wrong = mint(&with_aud("other-app"), "u1");
        assert_eq!(
            assert_invalid(authenticate(&expecting, &wrong).await),
            "audience mismatch"
        );

        let none = mint(&config(), "u1");
        assert_eq!(
            assert_invalid(authenticate(&expecting, &none).await),
            "missing aud claim"
        );

        let mut claims = valid_claims();
        claims["aud"] = json!(["other-app", "filegate"]);
        let list = sign(Algorithm::HS256, &claims, SECRET);
        assert!(authenticate(&expecting, &list).await.is_ok());

        // Not configured: any aud is fine.
        assert!(authenticate(&auth_at(config(), NOW), &wrong).await.is_ok());
    }

    #[tokio::test]
    async fn crit_header_is_invalid() {
        let mut header = Header::new(Algorithm::HS256);
        header.crit = Some(vec!["exp".into()]);
        let token = jsonwebtoken::encode(
            &header,
            &valid_claims(),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        let reason = assert_invalid(authenticate(&auth_at(config(), NOW), &token).await);
        assert_eq!(reason, "unsupported critical header");
    }

    #[tokio::test]
    async fn no_bearer_is_missing() {
        let auth = auth_at(config(), NOW);
        let only_others = Credentials {
            api_key: Some("key".into()),
            bearer: None,
            cookie: Some("better-auth.session_token=abc.def".into()),
        };
        for credentials in [Credentials::default(), only_others] {
            let result = auth.authenticate(&credentials).await;
            assert!(matches!(result, Err(Error::AuthMissing)), "{result:?}");
        }
    }

    #[tokio::test]
    async fn non_jwt_bearer_is_left_to_other_authenticators() {
        let auth = auth_at(config(), NOW);
        for token in [
            "abc.def",
            "sessiontoken",
            "",
            "a.b.c",
            "eyJhbGciOiJIUzI1NiJ9.e30",
        ] {
            let result = authenticate(&auth, token).await;
            assert!(
                matches!(result, Err(Error::AuthMissing)),
                "{token}: {result:?}"
            );
        }
    }

    #[tokio::test]
    async fn malformed_jwt_shaped_bearer_is_invalid() {
        let auth = auth_at(config(), NOW);
        for token in ["eyJ.abc.def", "eyJhbGciOiJIUzI1NiJ9..", "eyJ!!.!!.!!"] {
            assert_invalid(authenticate(&auth, token).await);
        }
    }

    #[tokio::test]
    async fn empty_secret_fails_closed() {
        // Signed with the empty key, which would verify if it were accepted.
        let token = sign(Algorithm::HS256, &valid_claims(), "");
        let auth = auth_at(JwtConfig::new(""), NOW);
        let result = authenticate(&auth, &token).await;
        assert!(matches!(result, Err(Error::Internal { .. })), "{result:?}");
    }

    #[test]
    fn mint_rejects_bad_input() {
        let config = config();
        let mint = |config: &JwtConfig, user: &str, ttl: Duration| {
            mint_token(config, user, None, None, None, ttl, NOW)
        };
        for result in [
            mint(&config, "", HOUR),
            mint(&config, "u1", Duration::ZERO),
            mint(&config, "u1", Duration::from_millis(500)),
            mint(&config, "u1", Duration::from_secs(u64::MAX)),
            mint(&JwtConfig::new(""), "u1", HOUR),
        ] {
            assert!(matches!(result, Err(Error::Validation(_))), "{result:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let config = config();
        let shown = format!("{config:?} {:?}", JwtAuthenticator::new(config.clone()));
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(!shown.contains("test-secret"), "{shown}");
    }

    #[test]
    fn b64url_matches_known_vectors() {
        assert_eq!(b64url(b"f"), "Zg");
        assert_eq!(b64url(b"fo"), "Zm8");
        assert_eq!(b64url(b"foo"), "Zm9v");
        assert_eq!(b64url(br#"{"alg""#), "eyJhbGci");
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    proptest! {
        #[test]
        fn garbage_bearer_never_authenticates(bearer in any::<String>()) {
            let auth = auth_at(config(), NOW);
            let result = runtime().block_on(authenticate(&auth, &bearer));
            prop_assert!(result.is_err());
        }

        #[test]
        fn jwt_shaped_garbage_is_invalid(
            header in "eyJ[A-Za-z0-9_-]{0,40}",
            payload in "[A-Za-z0-9_-]{0,80}",
            signature in "[A-Za-z0-9_-]{0,60}",
        ) {
            let auth = auth_at(config(), NOW);
            let token = format!("{header}.{payload}.{signature}");
            let result = runtime().block_on(authenticate(&auth, &token));
            prop_assert!(
                matches!(result, Err(Error::AuthInvalidToken { .. })),
                "{:?}", result
            );
        }

        #[test]
        fn flipping_any_signature_char_invalidates(index in 0usize..43, replacement in "[A-Za-z0-9_-]") {
            let config = config();
            let token = mint(&config, "u1");
            let (message, signature) = token.rsplit_once('.').unwrap();
            let mut chars: Vec<char> = signature.chars().collect();
            let index = index % chars.len();
            let new = replacement.chars().next().unwrap();
            prop_assume!(chars[index] != new);
            // The last char of a 32-byte base64url signature carries 2 padding bits.
            prop_assume!(index + 1 < chars.len());
            chars[index] = new;
            let forged = format!("{message}.{}", chars.into_iter().collect::<String>());
            let result = runtime().block_on(authenticate(&auth_at(config, NOW), &forged));
            prop_assert!(matches!(result, Err(Error::AuthInvalidToken { .. })), "{:?}", result);
        }
    }

    /// A clock the test moves.
    struct StepClock(std::sync::Mutex<OffsetDateTime>);
    impl Clock for StepClock {
        fn now(&self) -> OffsetDateTime {
            *self.0.lock().unwrap()
        }
    }

    fn stepping(config: JwtConfig) -> (JwtAuthenticator, Arc<StepClock>) {
        let clock = Arc::new(StepClock(std::sync::Mutex::new(NOW)));
        (
            JwtAuthenticator::new(config).with_clock(clock.clone()),
            clock,
        )
    }

    #[tokio::test]
    async fn a_remembered_token_still_expires() {
        let config = config();
        let token = mint(&config, "u1");
        let (auth, clock) = stepping(config);
        assert!(authenticate(&auth, &token).await.is_ok());
        assert_eq!(auth.remembered_len(), 1);
        *clock.0.lock().unwrap() = NOW + time::Duration::hours(2);
        let result = authenticate(&auth, &token).await;
        assert!(matches!(result, Err(Error::AuthExpired)), "{result:?}");
    }

    #[tokio::test]
    async fn a_remembered_token_waits_for_its_nbf() {
        let mut claims = valid_claims();
        claims["nbf"] = json!(NOW.unix_timestamp() + 600);
        let token = sign(Algorithm::HS256, &claims, SECRET);
        let (auth, clock) = stepping(config());
        let reason = assert_invalid(authenticate(&auth, &token).await);
        assert_eq!(reason, "token not yet valid");
        let reason = assert_invalid(authenticate(&auth, &token).await);
        assert_eq!(reason, "token not yet valid", "also once remembered");
        *clock.0.lock().unwrap() = NOW + time::Duration::minutes(11);
        assert!(authenticate(&auth, &token).await.is_ok());
    }

    #[tokio::test]
    async fn an_altered_token_is_refused_after_the_original_passed() {
        let config = config();
        let token = mint(&config, "u1");
        let auth = auth_at(config, NOW);
        assert!(authenticate(&auth, &token).await.is_ok());
        let mut altered = token.into_bytes();
        let last = altered.len() - 5;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        assert_eq!(
            assert_invalid(authenticate(&auth, &altered).await),
            "bad signature"
        );
        assert_eq!(
            auth.remembered_len(),
            1,
            "refused tokens are not remembered"
        );
    }

    #[tokio::test]
    async fn remembered_tokens_are_bounded() {
        let config = config();
        let auth = auth_at(config.clone(), NOW);
        for n in 0..VERIFIED_TOKENS + 5 {
            let token = mint(&config, &format!("u{n}"));
            assert!(authenticate(&auth, &token).await.is_ok());
            assert!(auth.remembered_len() <= VERIFIED_TOKENS);
        }
    }
}
