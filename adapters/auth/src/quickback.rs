//! Quickback's credential order over the JWT, session and API-key authenticators.

use std::fmt;

use async_trait::async_trait;
use filegate_core::Error;
use filegate_core::domain::Principal;
use filegate_core::ports::{Authenticator, Credentials};

use crate::api_key::{ApiKeyAuthenticator, ApiKeyConfig};
use crate::auth_db::{AuthDb, split_roles};
use crate::jwt::{JwtAuthenticator, looks_like_jwt};
use crate::session::{SessionAuthenticator, SessionConfig};

/// Quickback's order, where the first credential present decides:
///
/// 1. `x-api-key` present → only the API key decides (a bad key is refused even when a
///    valid cookie or JWT is also sent).
/// 2. A JWT-shaped bearer → the JWT. If it fails, the session (cookie) is tried; if that
///    fails too, the JWT's own error is returned (`AUTH_INVALID_TOKEN` / `AUTH_EXPIRED`).
/// 3. Otherwise the session: a non-JWT bearer (bearer plugin) or the session cookie.
/// 4. Nothing → [`Error::AuthMissing`].
///
/// Without an auth database only JWTs work: an `x-api-key` or a non-JWT bearer is then
/// refused as [`Error::AuthInvalidToken`] (the client clearly meant to authenticate), a
/// cookie alone counts as no credential ([`Error::AuthMissing`]).
///
/// With a pinned organization every principal's active organization is that one; the
/// roles are the user's membership there (looked up in the auth database; without one,
/// a JWT keeps its `role` only when its `orgId` is the pinned organization).
pub struct QuickbackAuthenticator {
    jwt: JwtAuthenticator,
    session: Option<SessionAuthenticator>,
    api_key: Option<ApiKeyAuthenticator>,
    pinned_org_id: Option<String>,
}

impl fmt::Debug for QuickbackAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuickbackAuthenticator")
            .field("jwt", &self.jwt)
            .field("session", &self.session)
            .field("api_key", &self.api_key)
            .field("pinned_org_id", &self.pinned_org_id)
            .finish()
    }
}

impl QuickbackAuthenticator {
    /// JWTs only (no auth database).
    #[must_use]
    pub fn new(jwt: JwtAuthenticator) -> Self {
        Self {
            jwt,
            session: None,
            api_key: None,
            pinned_org_id: None,
        }
    }

    /// JWTs, sessions and API keys, the last two from Better Auth's database `db`.
    #[must_use]
    pub fn with_auth_db(
        jwt: JwtAuthenticator,
        db: AuthDb,
        session: SessionConfig,
        api_key: ApiKeyConfig,
    ) -> Self {
        Self::new(jwt)
            .with_session(SessionAuthenticator::new(db.clone(), session))
            .with_api_key(ApiKeyAuthenticator::new(db, api_key))
    }

    #[must_use]
    pub fn with_session(mut self, session: SessionAuthenticator) -> Self {
        self.session = Some(session);
        self
    }

    #[must_use]
    pub fn with_api_key(mut self, api_key: ApiKeyAuthenticator) -> Self {
        self.api_key = Some(api_key);
        self
    }

    /// Pins every principal to `org_id` (`None` or blank: no pinning).
    #[must_use]
    pub fn with_pinned_org(mut self, org_id: Option<String>) -> Self {
        self.pinned_org_id = org_id
            .map(|o| o.trim().to_owned())
            .filter(|o| !o.is_empty());
        self
    }

    fn db(&self) -> Option<&AuthDb> {
        self.session
            .as_ref()
            .map(SessionAuthenticator::db)
            .or_else(|| self.api_key.as_ref().map(ApiKeyAuthenticator::db))
    }

    async fn decide(&self, credentials: &Credentials) -> Result<Principal, Error> {
        let present = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());

        if present(&credentials.api_key) {
            return match &self.api_key {
                Some(api_key) => api_key.authenticate(credentials).await,
                None => Err(invalid("API keys need the auth database")),
            };
        }

        let bearer = credentials
            .bearer
            .as_deref()
            .map(str::trim)
            .filter(|b| !b.is_empty());
        if bearer.is_some_and(looks_like_jwt) {
            let jwt_error = match self.jwt.authenticate(credentials).await {
                Ok(principal) => return Ok(principal),
                Err(err) => err,
            };
            // The session authenticator ignores a JWT-shaped bearer, so this is the cookie.
            if let Some(session) = &self.session {
                match session.authenticate(credentials).await {
                    Ok(principal) => return Ok(principal),
                    Err(err) => tracing::debug!(error = %err, "session fallback after JWT failed"),
                }
            }
            return Err(jwt_error);
        }

        match &self.session {
            Some(session) => session.authenticate(credentials).await,
            None if bearer.is_some() => Err(invalid("session tokens need the auth database")),
            None => Err(Error::AuthMissing),
        }
    }

    /// Applies the pinned organization.
    async fn pin(&self, mut principal: Principal) -> Result<Principal, Error> {
        let Some(org) = &self.pinned_org_id else {
            return Ok(principal);
        };
        // Already there: a verified membership, or a signed JWT claim.
        if principal.active_org_id.as_deref() == Some(org.as_str()) {
            return Ok(principal);
        }
        principal.roles = match self.db() {
            Some(db) => db
                .user_facts(principal.user_id.clone(), Some(org.clone()))
                .await?
                .and_then(|facts| facts.member_role)
                .map(|role| split_roles(&role))
                .unwrap_or_default(),
            None => Vec::new(),
        };
        principal.active_org_id = Some(org.clone());
        Ok(principal)
    }
}

#[async_trait]
impl Authenticator for QuickbackAuthenticator {
    async fn authenticate(&self, credentials: &Credentials) -> Result<Principal, Error> {
        let principal = self.decide(credentials).await?;
        self.pin(principal).await
    }
}

fn invalid(reason: &str) -> Error {
    Error::AuthInvalidToken {
        reason: reason.to_owned(),
    }
}
