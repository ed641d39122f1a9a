//! Better Auth sessions: the signed session cookie, and the bearer plugin's session token.
//!
//! Cookie: `better-auth.session_token` (`__Secure-` prefixed when Better Auth serves
//! secure cookies; the `better-auth` part is `advanced.cookiePrefix`). Its value is
//! better-call's signed cookie, `encodeURIComponent(token + "." + base64(HMAC-SHA256(secret,
//! token)))`, standard base64 with its `=` padding, so the signature is always 44 chars.
//!
//! Bearer (bearer plugin): a value with a `.` is a signed token as above (usually still
//! URL-encoded, as the `set-auth-token` header hands it out) and is verified; a value
//! without one is the raw session token, accepted as is unless `requireSignature`.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use filegate_core::Error;
use filegate_core::domain::{AuthMethod, Principal};
use filegate_core::ports::{Authenticator, Clock, Credentials, SystemClock};
use hmac::{Hmac, Mac};
use percent_encoding::percent_decode_str;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::auth_db::{AuthDb, Stamp};
use crate::jwt::looks_like_jwt;

/// Better Auth's default `advanced.cookiePrefix`.
pub const DEFAULT_COOKIE_PREFIX: &str = "better-auth";

type HmacSha256 = Hmac<Sha256>;

/// How Better Auth is configured. `Debug` never shows the secret.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// `BETTER_AUTH_SECRET`: the HMAC key of the session cookie.
    pub secret: SecretString,
    /// `advanced.cookiePrefix`; the cookie is `<prefix>.session_token`.
    pub cookie_prefix: String,
    /// The bearer plugin's `requireSignature`: refuse raw (unsigned) bearer tokens.
    pub bearer_require_signature: bool,
    /// `session.storeTokenHash`: the `session.token` column holds
    /// base64url(SHA-256(token)) rather than the token.
    pub store_token_hash: bool,
}

impl SessionConfig {
    /// Better Auth's defaults: prefix `better-auth`, raw bearer tokens accepted, tokens
    /// stored as they are.
    pub fn new(secret: impl Into<SecretString>) -> Self {
        Self {
            secret: secret.into(),
            cookie_prefix: DEFAULT_COOKIE_PREFIX.to_owned(),
            bearer_require_signature: false,
            store_token_hash: false,
        }
    }
}

/// Authenticates Better Auth sessions against its database.
pub struct SessionAuthenticator {
    db: AuthDb,
    secret: SecretString,
    /// `__Secure-<prefix>.session_token`, then the plain form: the secure one wins.
    cookie_names: [String; 2],
    bearer_require_signature: bool,
    store_token_hash: bool,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for SessionAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionAuthenticator")
            .field("cookie_names", &self.cookie_names)
            .field("bearer_require_signature", &self.bearer_require_signature)
            .field("store_token_hash", &self.store_token_hash)
            .finish_non_exhaustive()
    }
}

impl SessionAuthenticator {
    #[must_use]
    pub fn new(db: AuthDb, config: SessionConfig) -> Self {
        if config.secret.expose_secret().is_empty() {
            // An empty HMAC key would let anyone forge cookies; signed values are refused.
            tracing::error!("Better Auth secret is empty: every session cookie will be refused");
        }
        let name = format!("{}.session_token", config.cookie_prefix);
        Self {
            db,
            secret: config.secret,
            cookie_names: [format!("__Secure-{name}"), name],
            bearer_require_signature: config.bearer_require_signature,
            store_token_hash: config.store_token_hash,
            clock: Arc::new(SystemClock),
        }
    }

    /// Uses `clock` for session expiry instead of the wall clock.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub(crate) fn db(&self) -> &AuthDb {
        &self.db
    }

    /// The session token the credentials carry. A non-JWT bearer decides when present
    /// (it is the explicit credential); otherwise the cookie does.
    fn session_token(&self, credentials: &Credentials) -> Result<Option<String>, Error> {
        if let Some(bearer) = credentials
            .bearer
            .as_deref()
            .map(str::trim)
            .filter(|b| !b.is_empty() && !looks_like_jwt(b))
        {
            if !bearer.contains('.') {
                if self.bearer_require_signature {
                    return Err(invalid("unsigned session token"));
                }
                return Ok(Some(bearer.to_owned()));
            }
            let decoded = try_decode(bearer);
            return self
                .verify(&decoded, SignatureForm::Lenient)?
                .map(|t| Some(t.to_owned()))
                .ok_or_else(|| invalid("bad signature"));
        }

        let Some(header) = credentials.cookie.as_deref() else {
            return Ok(None);
        };
        // Only the `__Secure-` cookie counts when it is there: the plain name can be
        // planted by a sibling subdomain or plain-HTTP page (cookie tossing), so it must
        // neither win over nor stand in for the secure one.
        let Some(value) = cookie_values(header, &self.cookie_names).into_iter().next() else {
            return Ok(None);
        };
        self.verify(&value, SignatureForm::Cookie)?
            .map(|t| Some(t.to_owned()))
            .ok_or_else(|| invalid("bad signature"))
    }

    /// The token of a signed value, when its HMAC is right.
    fn verify<'a>(&self, value: &'a str, form: SignatureForm) -> Result<Option<&'a str>, Error> {
        let secret = self.secret.expose_secret();
        if secret.is_empty() {
            return Err(Error::internal("Better Auth secret is empty"));
        }
        Ok(verify_signed(value, secret.as_bytes(), form))
    }
}

#[async_trait]
impl Authenticator for SessionAuthenticator {
    async fn authenticate(&self, credentials: &Credentials) -> Result<Principal, Error> {
        let Some(token) = self.session_token(credentials)? else {
            return Err(Error::AuthMissing);
        };
        if token.is_empty() {
            return Err(invalid("empty session token"));
        }
        let stored = if self.store_token_hash {
            sha256_base64url(&token)
        } else {
            token
        };
        let now = self.clock.now();
        let session = self
            .db
            .session(stored)
            .await?
            .ok_or_else(|| invalid("unknown or signed-out session"))?;
        match session.expires_at {
            // Better Auth: `expiresAt < new Date()` is expired.
            Stamp::At(t) if t < now => return Err(Error::AuthExpired),
            Stamp::At(_) => {}
            Stamp::Absent | Stamp::Unreadable => {
                tracing::warn!("session row has no readable expiresAt");
                return Err(invalid("malformed session"));
            }
        }
        let facts = self
            .db
            .user_facts(session.user_id.clone(), session.active_org_id.clone())
            .await?
            .ok_or_else(|| invalid("session user not found"))?;
        if facts.user.is_banned(now) {
            return Err(invalid("user banned"));
        }
        crate::ids::checked(facts.principal(
            session.user_id,
            session.active_org_id,
            AuthMethod::Session,
        ))
    }
}

fn invalid(reason: &str) -> Error {
    Error::AuthInvalidToken {
        reason: reason.to_owned(),
    }
}

/// base64url(SHA-256(value)) without padding: Better Auth's `defaultKeyHasher`, also
/// used for `session.storeTokenHash`.
pub(crate) fn sha256_base64url(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(value.as_bytes()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SignatureForm {
    /// better-call's `getSignedCookie`: exactly 44 chars of padded standard base64.
    Cookie,
    /// The bearer plugin: its HMAC check decodes the signature with or without padding.
    Lenient,
}

/// `token.signature` → `token` when the signature is HMAC-SHA256(secret, token),
/// compared in constant time. Like better-call, the signature starts after the last `.`
/// and the token must not be empty.
fn verify_signed<'a>(value: &'a str, secret: &[u8], form: SignatureForm) -> Option<&'a str> {
    let dot = value.rfind('.').filter(|d| *d >= 1)?;
    let (token, signature) = (&value[..dot], &value[dot + 1..]);
    let bytes = match form {
        SignatureForm::Cookie => {
            if signature.len() != 44 || !signature.ends_with('=') {
                return None;
            }
            STANDARD.decode(signature).ok()?
        }
        SignatureForm::Lenient => {
            let bare = signature.trim_end_matches('=');
            if bare.contains(['-', '_']) {
                URL_SAFE_NO_PAD.decode(bare).ok()?
            } else {
                STANDARD_NO_PAD.decode(bare).ok()?
            }
        }
    };
    let mut mac = HmacSha256::new_from_slice(secret).ok()?;
    mac.update(token.as_bytes());
    mac.verify_slice(&bytes).ok()?;
    Some(token)
}

/// better-call's `tryDecode`: URL-decoded when it holds a `%`, as is when that fails.
fn try_decode(value: &str) -> String {
    if !value.contains('%') {
        return value.to_owned();
    }
    percent_decode_str(value)
        .decode_utf8()
        .map_or_else(|_| value.to_owned(), std::borrow::Cow::into_owned)
}

/// The values of the cookies named `names` in a `Cookie` header, in `names` order,
/// parsed as better-call's `parseCookies` does: the first cookie of a name wins, the
/// value is trimmed, unquoted and URL-decoded.
#[must_use]
pub fn cookie_values(header: &str, names: &[String]) -> Vec<String> {
    let mut found: Vec<Option<String>> = vec![None; names.len()];
    for part in header.split(';') {
        let Some((key, value)) = part.split_once('=') else {
            continue;
        };
        let key = key.trim();
        let Some(slot) = names.iter().position(|n| n == key) else {
            continue;
        };
        if found[slot].is_some() {
            continue;
        }
        let mut value = value.trim();
        if value.starts_with('"') {
            // JavaScript's `slice(1, -1)`.
            value = value
                .get(1..value.len().saturating_sub(1).max(1))
                .unwrap_or("");
        }
        found[slot] = Some(try_decode(value));
    }
    found.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"better-auth-secret-0123456789abcdef";

    fn sign(token: &str, secret: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(secret).unwrap();
        mac.update(token.as_bytes());
        format!("{token}.{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn verifies_better_calls_signed_values() {
        let signed = sign("abc123", SECRET);
        assert_eq!(signed.rsplit_once('.').unwrap().1.len(), 44);
        assert_eq!(
            verify_signed(&signed, SECRET, SignatureForm::Cookie),
            Some("abc123")
        );
        assert_eq!(
            verify_signed(&signed, b"other", SignatureForm::Cookie),
            None
        );
        // The bearer plugin also takes it without its padding; cookies do not.
        let unpadded = signed.trim_end_matches('=');
        assert_eq!(verify_signed(unpadded, SECRET, SignatureForm::Cookie), None);
        assert_eq!(
            verify_signed(unpadded, SECRET, SignatureForm::Lenient),
            Some("abc123")
        );
        for bad in ["", ".", "abc123", &format!(".{}", &signed[7..])] {
            assert_eq!(
                verify_signed(bad, SECRET, SignatureForm::Lenient),
                None,
                "{bad}"
            );
        }
    }

    #[test]
    fn the_signature_starts_after_the_last_dot() {
        let signed = sign("a.b", SECRET);
        assert_eq!(
            verify_signed(&signed, SECRET, SignatureForm::Cookie),
            Some("a.b")
        );
    }

    #[test]
    fn parses_cookie_headers_like_better_call() {
        let names = ["a".to_owned(), "b".to_owned()];
        assert_eq!(
            cookie_values(" x=1; b = two ; a=\"q%3Dx\"; a=second", &names),
            ["q=x", "two"]
        );
        assert_eq!(cookie_values("a=%E0%A4%A", &names), ["%E0%A4%A"]);
        assert_eq!(cookie_values("a=\"", &names), [""]);
        assert!(cookie_values("nothing here; c=3", &names).is_empty());
    }

    #[test]
    fn token_hash_is_sha256_base64url_without_padding() {
        // echo -n abc | sha256sum → ba7816bf…; base64url of those bytes:
        assert_eq!(
            sha256_base64url("abc"),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_cookie_header_parses_without_panic(raw in "\\PC{0,80}|[ -~]{0,80}") {
            let names = vec![
                "__Secure-better-auth.session_token".to_owned(),
                "better-auth.session_token".to_owned(),
            ];
            let found = cookie_values(&raw, &names);
            proptest::prop_assert!(found.len() <= names.len());
        }

        #[test]
        fn a_named_cookie_round_trips(value in "[A-Za-z0-9._-]{1,40}", noise in "[a-z]{1,8}=[a-z0-9]{0,8}") {
            let header = format!("{noise}; better-auth.session_token={value}; {noise}");
            let got = cookie_values(&header, &["better-auth.session_token".to_owned()]);
            proptest::prop_assert_eq!(got, vec![value]);
        }
    }
}
