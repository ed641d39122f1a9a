//! The files listener's URL tokens (`?token=` of private managed-mode URLs): minted by
//! the managed service through core's [`UrlTokens`] port, verified by the files listener.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use filegate_core::managed::ObjectRow;
use filegate_core::managed::service::UrlTokens;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use time::OffsetDateTime;

type HmacSha256 = Hmac<Sha256>;

/// Length of a token's MAC (the full SHA-256 output).
const MAC_LEN: usize = 32;

/// The `?token=` of private URLs: `base64url(exp || mac)` without padding, where `exp` is
/// the expiry as 8 big-endian bytes of Unix seconds and `mac` is
/// `HMAC-SHA256(k, "filegate-file-token/v2" 0x00 exp key 0x00 id 0x00 etag)`, `k` being
/// `HMAC-SHA256(server secret, "filegate files listener url tokens")` (so the JWT secret
/// itself never signs anything but JWTs). Bound to one version of one object (key, row id
/// and etag, none of which holds a NUL) and one expiry: a changed byte, another key, an
/// object deleted and uploaded again or replaced, or a past expiry is refused.
pub struct FileTokens {
    key: [u8; 32],
}

impl std::fmt::Debug for FileTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileTokens").finish_non_exhaustive()
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    BadSignature,
    Expired,
}

impl FileTokens {
    #[must_use]
    pub fn new(secret: &SecretString) -> Self {
        let mut mac = HmacSha256::new_from_slice(secret.expose_secret().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"filegate files listener url tokens");
        Self {
            key: mac.finalize().into_bytes().into(),
        }
    }

    fn mac(&self, subject: &TokenSubject<'_>, exp: [u8; 8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"filegate-file-token/v2\0");
        mac.update(&exp);
        mac.update(subject.key.as_bytes());
        mac.update(b"\0");
        mac.update(subject.id.as_bytes());
        mac.update(b"\0");
        mac.update(subject.etag.unwrap_or_default().as_bytes());
        mac
    }

    /// A token for this object version valid until `expires_at`.
    #[must_use]
    pub fn mint_for(&self, subject: &TokenSubject<'_>, expires_at: OffsetDateTime) -> String {
        let exp = u64::try_from(expires_at.unix_timestamp())
            .unwrap_or_default()
            .to_be_bytes();
        let mut raw = exp.to_vec();
        raw.extend_from_slice(&self.mac(subject, exp).finalize().into_bytes());
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The expiry a well-formed token claims, unverified: lets an expired or garbled token
    /// be refused before any lookup.
    ///
    /// # Errors
    /// [`TokenError::Malformed`], or [`TokenError::Expired`] at `now`.
    pub fn precheck(token: &str, now: OffsetDateTime) -> Result<(), TokenError> {
        let (exp, _) = Self::split(token)?;
        let exp = i64::try_from(u64::from_be_bytes(exp)).map_err(|_| TokenError::Malformed)?;
        if now.unix_timestamp() >= exp {
            return Err(TokenError::Expired);
        }
        Ok(())
    }

    fn split(token: &str) -> Result<([u8; 8], Vec<u8>), TokenError> {
        let raw = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| TokenError::Malformed)?;
        if raw.len() != 8 + MAC_LEN {
            return Err(TokenError::Malformed);
        }
        let (exp, mac) = raw.split_at(8);
        let exp: [u8; 8] = exp.try_into().map_err(|_| TokenError::Malformed)?;
        Ok((exp, mac.to_vec()))
    }

    /// Checks `token` for this object version at `now`.
    ///
    /// # Errors
    /// [`TokenError`] when malformed, signed for something else, or expired.
    pub fn verify(
        &self,
        token: &str,
        subject: &TokenSubject<'_>,
        now: OffsetDateTime,
    ) -> Result<(), TokenError> {
        let (exp, mac) = Self::split(token)?;
        // Constant-time comparison.
        self.mac(subject, exp)
            .verify_slice(&mac)
            .map_err(|_| TokenError::BadSignature)?;
        Self::precheck(token, now)
    }
}

/// What a URL token is bound to: one version of one object.
#[derive(Debug, Clone, Copy)]
pub struct TokenSubject<'a> {
    pub key: &'a str,
    pub id: &'a str,
    pub etag: Option<&'a str>,
}

impl<'a> From<&'a ObjectRow> for TokenSubject<'a> {
    fn from(row: &'a ObjectRow) -> Self {
        Self {
            key: row.key.as_str(),
            id: row.id.as_str(),
            etag: row.etag.as_deref(),
        }
    }
}

impl UrlTokens for FileTokens {
    fn mint(&self, object: &ObjectRow, expires_at: OffsetDateTime) -> String {
        self.mint_for(&TokenSubject::from(object), expires_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_to_the_object_version_and_the_expiry() {
        let t = FileTokens::new(&SecretString::from("s".repeat(32)));
        let now = OffsetDateTime::now_utc();
        let exp = now + time::Duration::seconds(60);
        let a = TokenSubject {
            key: "org/docs/a.pdf",
            id: "obj_1",
            etag: Some("\"e1\""),
        };
        let tok = t.mint_for(&a, exp);
        assert_eq!(t.verify(&tok, &a, now), Ok(()));
        for other in [
            TokenSubject {
                key: "org/docs/b.pdf",
                ..a
            },
            // Deleted and uploaded again at the same key.
            TokenSubject { id: "obj_2", ..a },
            // Replaced in place.
            TokenSubject {
                etag: Some("\"e2\""),
                ..a
            },
            TokenSubject { etag: None, ..a },
        ] {
            assert_eq!(
                t.verify(&tok, &other, now),
                Err(TokenError::BadSignature),
                "{other:?}"
            );
        }
        assert_eq!(t.verify(&tok, &a, exp), Err(TokenError::Expired));
        assert_eq!(FileTokens::precheck(&tok, exp), Err(TokenError::Expired));
        assert_eq!(FileTokens::precheck(&tok, now), Ok(()));
        let other = FileTokens::new(&SecretString::from("t".repeat(32)));
        assert_eq!(other.verify(&tok, &a, now), Err(TokenError::BadSignature));
        let mut raw = URL_SAFE_NO_PAD.decode(&tok).unwrap();
        raw[7] ^= 1; // a later expiry
        let forged = URL_SAFE_NO_PAD.encode(&raw);
        assert_eq!(t.verify(&forged, &a, now), Err(TokenError::BadSignature));
        assert_eq!(t.verify("not base64!", &a, now), Err(TokenError::Malformed));
        assert_eq!(t.verify("", &a, now), Err(TokenError::Malformed));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_tokens_never_verify_and_never_panic(raw in "\\PC{0,64}|[A-Za-z0-9_-]{54}") {
            let t = FileTokens::new(&SecretString::from("s".repeat(32)));
            let subject = TokenSubject { key: "k", id: "obj_1", etag: None };
            let now = OffsetDateTime::now_utc();
            let _ = FileTokens::precheck(&raw, now);
            proptest::prop_assert!(t.verify(&raw, &subject, now).is_err());
        }
    }
}
