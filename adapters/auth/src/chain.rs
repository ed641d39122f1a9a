//! Several authenticators tried in order.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use filegate_core::Error;
use filegate_core::domain::Principal;
use filegate_core::ports::{Authenticator, Credentials};

/// Tries each authenticator in order and returns the first success.
///
/// On failure: [`Error::AuthMissing`] only if every authenticator said missing (or the
/// chain is empty); otherwise the most telling failure, ranked
/// `AuthInvalidToken` < `AuthExpired` < `AuthRateLimited` < anything else
/// (`Unavailable`, `Internal`), the first one winning a tie. Backend failures rank
/// highest so an outage is not reported as a bad credential (which logs users out).
#[derive(Clone, Default)]
pub struct AuthChain(pub Vec<Arc<dyn Authenticator>>);

impl AuthChain {
    #[must_use]
    pub fn new(authenticators: Vec<Arc<dyn Authenticator>>) -> Self {
        Self(authenticators)
    }

    /// Appends `authenticator`, tried after those already in the chain.
    #[must_use]
    pub fn with(mut self, authenticator: Arc<dyn Authenticator>) -> Self {
        self.0.push(authenticator);
        self
    }
}

impl fmt::Debug for AuthChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthChain")
            .field("len", &self.0.len())
            .finish()
    }
}

fn rank(err: &Error) -> u8 {
    match err {
        Error::AuthMissing => 0,
        Error::AuthInvalidToken { .. } => 1,
        Error::AuthExpired => 2,
        Error::AuthRateLimited => 3,
        _ => 4,
    }
}

#[async_trait]
impl Authenticator for AuthChain {
    async fn authenticate(&self, credentials: &Credentials) -> Result<Principal, Error> {
        let mut worst: Option<Error> = None;
        for authenticator in &self.0 {
            match authenticator.authenticate(credentials).await {
                Ok(principal) => return Ok(principal),
                Err(err) => {
                    if worst.as_ref().is_none_or(|w| rank(&err) > rank(w)) {
                        worst = Some(err);
                    }
                }
            }
        }
        Err(worst.unwrap_or(Error::AuthMissing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    type Outcome = fn() -> Result<Principal, Error>;

    /// Returns a fixed outcome and counts its calls.
    struct Stub {
        outcome: Outcome,
        calls: AtomicUsize,
    }

    impl Stub {
        fn new(outcome: Outcome) -> Arc<Self> {
            Arc::new(Self {
                outcome,
                calls: AtomicUsize::new(0),
            })
        }
        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl Authenticator for Stub {
        async fn authenticate(&self, _: &Credentials) -> Result<Principal, Error> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            (self.outcome)()
        }
    }

    fn user(id: &str) -> Principal {
        Principal {
            user_id: id.into(),
            ..Principal::default()
        }
    }

    fn missing() -> Result<Principal, Error> {
        Err(Error::AuthMissing)
    }
    fn invalid() -> Result<Principal, Error> {
        Err(Error::AuthInvalidToken {
            reason: "bad signature".into(),
        })
    }
    fn expired() -> Result<Principal, Error> {
        Err(Error::AuthExpired)
    }
    fn limited() -> Result<Principal, Error> {
        Err(Error::AuthRateLimited)
    }
    fn down() -> Result<Principal, Error> {
        Err(Error::unavailable("db down"))
    }
    fn alice() -> Result<Principal, Error> {
        Ok(user("alice"))
    }
    fn bob() -> Result<Principal, Error> {
        Ok(user("bob"))
    }

    async fn run(outcomes: &[Outcome]) -> Result<Principal, Error> {
        let chain = AuthChain::new(
            outcomes
                .iter()
                .map(|o| Stub::new(*o) as Arc<dyn Authenticator>)
                .collect(),
        );
        chain.authenticate(&Credentials::default()).await
    }

    #[tokio::test]
    async fn empty_chain_is_missing() {
        assert!(matches!(run(&[]).await, Err(Error::AuthMissing)));
    }

    #[tokio::test]
    async fn all_missing_is_missing() {
        assert!(matches!(
            run(&[missing, missing]).await,
            Err(Error::AuthMissing)
        ));
    }

    #[tokio::test]
    async fn first_success_wins_and_stops_the_chain() {
        let first = Stub::new(missing);
        let second = Stub::new(alice);
        let third = Stub::new(bob);
        let chain = AuthChain::default()
            .with(first.clone())
            .with(second.clone())
            .with(third.clone());
        let principal = chain.authenticate(&Credentials::default()).await.unwrap();
        assert_eq!(principal.user_id, "alice");
        assert_eq!((first.calls(), second.calls(), third.calls()), (1, 1, 0));
    }

    #[tokio::test]
    async fn a_failure_does_not_stop_a_later_success() {
        let principal = run(&[expired, invalid, bob]).await.unwrap();
        assert_eq!(principal.user_id, "bob");
    }

    #[tokio::test]
    async fn any_failure_beats_missing() {
        assert!(matches!(
            run(&[missing, invalid, missing]).await,
            Err(Error::AuthInvalidToken { .. })
        ));
    }

    #[tokio::test]
    async fn expired_beats_invalid_in_either_order() {
        assert!(matches!(
            run(&[invalid, expired]).await,
            Err(Error::AuthExpired)
        ));
        assert!(matches!(
            run(&[expired, invalid]).await,
            Err(Error::AuthExpired)
        ));
    }

    #[tokio::test]
    async fn backend_failures_beat_credential_failures() {
        assert!(matches!(
            run(&[expired, limited]).await,
            Err(Error::AuthRateLimited)
        ));
        assert!(matches!(
            run(&[down, limited, expired]).await,
            Err(Error::Unavailable { .. })
        ));
    }

    #[test]
    fn debug_shows_the_length() {
        let chain = AuthChain::default().with(Stub::new(missing));
        assert_eq!(format!("{chain:?}"), "AuthChain { len: 1 }");
    }
}
