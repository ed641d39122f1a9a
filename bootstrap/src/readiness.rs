//! Named dependency checks behind `GET /readyz`; [`Readiness::for_adapters`] is the
//! server's set, over the adapters bootstrap opened.

use crate::metadata::MediaDb;
use filegate_core::Error;
use filegate_core::domain::BucketName;
use filegate_r2::S3ObjectStore;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// What a readiness probe returns: `Ok` when the dependency answers.
pub type ProbeFuture = Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>;

type Probe = Arc<dyn Fn() -> ProbeFuture + Send + Sync>;

/// Named dependency checks for `GET /readyz`, run concurrently, each within `timeout`.
#[derive(Clone)]
pub struct Readiness {
    pub timeout: Duration,
    checks: Vec<(&'static str, Probe)>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.checks.iter().map(|(n, _)| *n).collect();
        f.debug_struct("Readiness")
            .field("timeout", &self.timeout)
            .field("checks", &names)
            .finish()
    }
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new(Self::DEFAULT_TIMEOUT)
    }
}

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    Ok,
    /// The dependency answered with an error; the error's public code.
    Failed(&'static str),
    /// No answer within the timeout.
    TimedOut,
}

impl CheckOutcome {
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed(_) => "failed",
            Self::TimedOut => "timeout",
        }
    }
}

impl Readiness {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

    /// No checks yet: always ready.
    #[must_use]
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            checks: Vec::new(),
        }
    }

    /// Adds a named check, e.g. `.check("database", move || { let s = store.clone(); async move { s.ping().await } })`.
    #[must_use]
    pub fn check<F, Fut>(mut self, name: &'static str, probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Error>> + Send + 'static,
    {
        self.checks
            .push((name, Arc::new(move || Box::pin(probe()) as ProbeFuture)));
        self
    }

    /// The server's checks: `database` (the media database answers `SELECT 1`) and
    /// `storage` (HeadBucket on the configured bucket), each within the default timeout.
    #[must_use]
    pub fn for_adapters(db: MediaDb, objects: S3ObjectStore, bucket: BucketName) -> Self {
        Self::default()
            .check("database", move || {
                let db = db.clone();
                async move { db.ping().await }
            })
            .check("storage", move || {
                let (objects, bucket) = (objects.clone(), bucket.clone());
                async move { objects.ping(&bucket).await }
            })
    }

    /// The names of the checks, in the order they were added.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.checks.iter().map(|(n, _)| *n)
    }

    /// Runs every check concurrently, each bounded by the timeout.
    pub async fn run(&self) -> Vec<(&'static str, CheckOutcome)> {
        let timeout = self.timeout;
        let runs = self.checks.iter().map(|(name, probe)| {
            let fut = probe();
            async move {
                let outcome = match tokio::time::timeout(timeout, fut).await {
                    Ok(Ok(())) => CheckOutcome::Ok,
                    Ok(Err(e)) => {
                        tracing::warn!(check = name, error = %e, "readiness check failed");
                        CheckOutcome::Failed(e.code())
                    }
                    Err(_) => {
                        tracing::warn!(check = name, timeout = ?timeout, "readiness check timed out");
                        CheckOutcome::TimedOut
                    }
                };
                (*name, outcome)
            }
        });
        futures::future::join_all(runs).await
    }
}
