//! Per-key async locks for one process: one mutex per key in use, forgotten when the last
//! holder or waiter leaves. Managed mode's writers hold a storage key's lock from reading
//! the row to its last write (across processes the unique key of FILES_DB still lets only
//! one upload create a row); the embedded S3 endpoint serialises writes of one object.
//!
//! The mutexes are fair (first come, first served): under many writers of one key an
//! unfair lock lets newcomers take it again and again while an early waiter starves
//! (64 concurrent confirms of one path waited up to 1.3 s, and some timed out).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// One async mutex per key in use; share one instance among the writers to keep apart.
#[derive(Debug, Default)]
pub struct KeyLocks {
    map: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
}

/// Held while a writer owns a key; dropping it (also when the future is cancelled)
/// releases the key and forgets it once nobody waits.
pub struct KeyGuard<'a> {
    locks: &'a KeyLocks,
    key: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl KeyLocks {
    /// Waits until nobody else holds `key`, then holds it until the guard is dropped.
    pub async fn lock(&self, key: &str) -> KeyGuard<'_> {
        let entry = {
            let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(map.entry(key.to_owned()).or_default())
        };
        let guard = entry.lock_owned().await;
        KeyGuard {
            locks: self,
            key: key.to_owned(),
            guard: Some(guard),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        let mut map = self
            .locks
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Release first: the guard holds one reference to the entry.
        drop(self.guard.take());
        // Only the map's reference left: no holder, no waiter (waiters hold a clone).
        if map
            .get(&self.key)
            .is_some_and(|e| Arc::strong_count(e) == 1)
        {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn a_second_writer_of_the_same_key_waits_and_other_keys_do_not() {
        futures::executor::block_on(async {
            let locks = KeyLocks::default();
            let a = locks.lock("o/b/x").await;
            // Another key is free at once.
            assert!(locks.lock("o/b/y").now_or_never().is_some());
            // The same key is not.
            let mut waiting = Box::pin(locks.lock("o/b/x"));
            assert!((&mut waiting).now_or_never().is_none());
            drop(a);
            let b = waiting.await;
            drop(b);
            assert_eq!(locks.len(), 0, "released keys are forgotten");
        });
    }

    #[test]
    fn a_waiter_is_served_before_a_later_caller() {
        futures::executor::block_on(async {
            let locks = KeyLocks::default();
            let a = locks.lock("o/b/x").await;
            let mut first = Box::pin(locks.lock("o/b/x"));
            assert!((&mut first).now_or_never().is_none());
            drop(a);
            // The key is free, but the caller that waited has it before a newcomer.
            assert!(locks.lock("o/b/x").now_or_never().is_none());
            let b = first
                .now_or_never()
                .expect("the first waiter holds the key");
            drop(b);
            assert_eq!(locks.len(), 0, "released keys are forgotten");
        });
    }
}
