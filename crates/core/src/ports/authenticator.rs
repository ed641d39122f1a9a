use crate::domain::Principal;
use crate::error::Error;
use async_trait::async_trait;

/// The credentials a request carried, as raw strings. The HTTP layer only extracts them;
/// an [`Authenticator`] decides what they mean.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// `x-api-key` header.
    pub api_key: Option<String>,
    /// `Authorization: Bearer …` value (a JWT or a session token).
    pub bearer: Option<String>,
    /// The whole `Cookie` header.
    pub cookie: Option<String>,
}

impl Credentials {
    /// No credential of any kind was sent.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.api_key.is_none() && self.bearer.is_none() && self.cookie.is_none()
    }
}

/// Turns request credentials into a [`Principal`].
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Authenticator: Send + Sync {
    /// The principal the credentials identify.
    ///
    /// # Errors
    /// - [`Error::AuthMissing`] when no credential this authenticator understands is present.
    /// - [`Error::AuthInvalidToken`] when one is present but malformed, forged, or signed with another algorithm.
    /// - [`Error::AuthExpired`] when it was valid but has expired.
    /// - [`Error::AuthRateLimited`] when the credential is over its rate limit.
    /// - [`Error::Unavailable`] when the backing store cannot be reached.
    async fn authenticate(&self, credentials: &Credentials) -> Result<Principal, Error>;
}
