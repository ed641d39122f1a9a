//! [`AuditLog`] fake: keeps entries in memory for assertions, and can be made to fail.

use async_trait::async_trait;
use filegate_core::Error;
use filegate_core::ports::{AuditEntry, AuditLog};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

/// The audit table in memory.
#[derive(Debug, Default)]
pub struct InMemoryAuditLog {
    entries: Mutex<Vec<AuditEntry>>,
    failing: AtomicBool,
}

impl InMemoryAuditLog {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Every entry recorded so far, oldest first.
    #[must_use]
    pub fn entries(&self) -> Vec<AuditEntry> {
        self.lock().clone()
    }

    /// While set, `record` fails with [`Error::Unavailable`] and stores nothing, so tests
    /// can check that an unaudited call does not proceed.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    // A panic while holding the lock cannot leave a half-written Vec, so poison is ignored.
    fn lock(&self) -> MutexGuard<'_, Vec<AuditEntry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl AuditLog for InMemoryAuditLog {
    async fn record(&self, entry: &AuditEntry) -> Result<(), Error> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(Error::unavailable("in-memory audit log set to fail"));
        }
        self.lock().push(entry.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;

    fn entry(route: &str) -> AuditEntry {
        AuditEntry {
            at: OffsetDateTime::UNIX_EPOCH,
            route: route.to_owned(),
            method: "GET".to_owned(),
            ip: None,
            user_id: None,
            resource: None,
        }
    }

    #[tokio::test]
    async fn records_in_order_and_fails_on_demand() {
        let log = InMemoryAuditLog::new();
        log.record(&entry("/a")).await.unwrap();
        log.set_failing(true);
        assert!(matches!(
            log.record(&entry("/b")).await,
            Err(Error::Unavailable { .. })
        ));
        log.set_failing(false);
        log.record(&entry("/c")).await.unwrap();
        let routes: Vec<_> = log.entries().into_iter().map(|e| e.route).collect();
        assert_eq!(routes, ["/a", "/c"]);
    }
}
