//! Better Auth API keys (`x-api-key`), checked against its `apikey` table.
//!
//! Better Auth stores `base64url(SHA-256(key))` without padding (`defaultKeyHasher`),
//! so the key is hashed and looked up by hash. Checks and counter updates follow
//! better-auth's `validateApiKey`; see [`ApiKeyAuthenticator`] for the codes.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use filegate_core::Error;
use filegate_core::domain::{AuthMethod, Principal};
use filegate_core::ports::{Authenticator, Clock, Credentials, SystemClock};

use crate::auth_db::{AuthDb, KeyUse, Refusal};
use crate::session::sha256_base64url;

/// How Better Auth's API-key plugin is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiKeyConfig {
    /// The plugin's `rateLimit.enabled` (default `true`); each key also has its own
    /// `rateLimitEnabled`.
    pub rate_limit_enabled: bool,
    /// The plugin's `disableKeyHashing`: keys are stored as they are.
    pub disable_key_hashing: bool,
}

impl Default for ApiKeyConfig {
    fn default() -> Self {
        Self {
            rate_limit_enabled: true,
            disable_key_hashing: false,
        }
    }
}

/// How Better Auth stores an API key: base64url(SHA-256(key)), no padding.
#[must_use]
pub fn hash_api_key(key: &str) -> String {
    sha256_base64url(key)
}

/// Authenticates `x-api-key` against Better Auth's `apikey` table.
///
/// Unknown key, disabled key, owner not found or banned → [`Error::AuthInvalidToken`];
/// `expiresAt` passed → [`Error::AuthExpired`]; over the key's rate limit, or
/// `remaining` used up (Better Auth answers 429 `USAGE_EXCEEDED`) →
/// [`Error::AuthRateLimited`]. The organization is the key's `metadata.organizationId`,
/// active only when the owner is a member of it.
///
/// Each accepted request updates the key's counters as Better Auth does
/// (`lastRequest`, `requestCount`, `remaining`, `lastRefillAt`, `updatedAt`), atomically.
/// Unlike Better Auth, expired and used-up keys are not deleted.
pub struct ApiKeyAuthenticator {
    db: AuthDb,
    config: ApiKeyConfig,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for ApiKeyAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyAuthenticator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ApiKeyAuthenticator {
    #[must_use]
    pub fn new(db: AuthDb, config: ApiKeyConfig) -> Self {
        Self {
            db,
            config,
            clock: Arc::new(SystemClock),
        }
    }

    /// Uses `clock` for expiry and rate-limit windows instead of the wall clock.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub(crate) fn db(&self) -> &AuthDb {
        &self.db
    }
}

#[async_trait]
impl Authenticator for ApiKeyAuthenticator {
    async fn authenticate(&self, credentials: &Credentials) -> Result<Principal, Error> {
        let Some(key) = credentials
            .api_key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
        else {
            return Err(Error::AuthMissing);
        };
        if !self.db.has_api_keys() {
            return Err(invalid("API keys are not enabled"));
        }
        let stored = if self.config.disable_key_hashing {
            key.to_owned()
        } else {
            hash_api_key(key)
        };
        let now = self.clock.now();
        let row = match self
            .db
            .use_api_key(stored, now, self.config.rate_limit_enabled)
            .await?
        {
            None => return Err(invalid("unknown API key")),
            Some(KeyUse::Refused(refusal)) => {
                tracing::debug!(?refusal, "API key refused");
                return Err(match refusal {
                    Refusal::Disabled => invalid("API key disabled"),
                    Refusal::UnreadableExpiry => invalid("malformed API key"),
                    Refusal::Expired => Error::AuthExpired,
                    Refusal::UsageExceeded | Refusal::RateLimited => Error::AuthRateLimited,
                });
            }
            Some(KeyUse::Accepted(row)) => *row,
        };
        let org_id = row.metadata.as_deref().and_then(organization_id);
        let facts = self
            .db
            .user_facts(row.owner_id.clone(), org_id.clone())
            .await?
            .ok_or_else(|| invalid("API key owner not found"))?;
        if facts.user.is_banned(now) {
            return Err(invalid("user banned"));
        }
        crate::ids::checked(facts.principal(row.owner_id, org_id, AuthMethod::ApiKey))
    }
}

fn invalid(reason: &str) -> Error {
    Error::AuthInvalidToken {
        reason: reason.to_owned(),
    }
}

/// `organizationId` of a key's metadata JSON. Older Better Auth versions stored the
/// metadata JSON-encoded twice (a JSON string holding the object), so one more level
/// is unwrapped.
fn organization_id(metadata: &str) -> Option<String> {
    let mut value: serde_json::Value = serde_json::from_str(metadata).ok()?;
    if let serde_json::Value::String(inner) = &value {
        value = serde_json::from_str(inner).ok()?;
    }
    value
        .get("organizationId")?
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_organization_from_metadata() {
        assert_eq!(
            organization_id(r#"{"organizationId":"org1","x":1}"#).as_deref(),
            Some("org1")
        );
        assert_eq!(
            organization_id(r#""{\"organizationId\":\"org2\"}""#).as_deref(),
            Some("org2")
        );
        for none in [
            "",
            "null",
            "{}",
            r#"{"organizationId":""}"#,
            r#"{"organizationId":7}"#,
            "not json",
        ] {
            assert_eq!(organization_id(none), None, "{none}");
        }
    }

    #[test]
    fn default_config_is_better_auths() {
        let config = ApiKeyConfig::default();
        assert!(config.rate_limit_enabled);
        assert!(!config.disable_key_hashing);
    }
}
