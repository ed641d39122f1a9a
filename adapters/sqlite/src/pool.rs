//! Connection pool: every new connection gets the same pragmas before first use.

use crate::error::{from_interact, from_pool, from_sqlite};
use deadpool_sqlite::rusqlite::{self, Connection};
use deadpool_sqlite::{Config, Hook, HookError, Pool, Runtime};
use filegate_core::Error;
use std::path::Path;
use std::time::Duration;

/// Long enough to ride out another writer's transaction, short enough to fail a request.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

/// Opens (creating parent directories and the file) and checks one connection out, so a
/// bad path or a database that refuses WAL fails at startup rather than on a request.
pub(crate) async fn open(path: &Path) -> Result<Pool, Error> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(Error::unavailable)?;
    }
    let builder = match Config::new(path).builder(Runtime::Tokio1) {
        Ok(b) => b,
        Err(never) => match never {},
    };
    let pool = builder
        .post_create(Hook::async_fn(|conn, _| {
            Box::pin(async move {
                let mode = conn
                    .interact(set_pragmas)
                    .await
                    .map_err(|e| HookError::message(format!("sqlite worker failed: {e}")))?
                    .map_err(HookError::Backend)?;
                // WAL is what lets readers run beside the single writer; refuse to run without it.
                if mode.eq_ignore_ascii_case("wal") {
                    Ok(())
                } else {
                    Err(HookError::message(format!(
                        "sqlite refused journal_mode=WAL (got '{mode}')"
                    )))
                }
            })
        }))
        .build()
        .map_err(Error::internal)?;
    drop(pool.get().await.map_err(from_pool)?);
    Ok(pool)
}

/// Returns the journal mode actually in effect.
fn set_pragmas(c: &mut Connection) -> rusqlite::Result<String> {
    // First, so that switching to WAL below waits for other connections' locks.
    c.busy_timeout(BUSY_TIMEOUT)?;
    let mode = c.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    c.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")?;
    Ok(mode)
}

/// Runs `f` on a pooled connection, on a blocking thread.
pub(crate) async fn interact<T, F>(pool: &Pool, f: F) -> Result<T, Error>
where
    F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    T: Send + 'static,
{
    let conn = pool.get().await.map_err(from_pool)?;
    conn.interact(f)
        .await
        .map_err(from_interact)?
        .map_err(from_sqlite)
}
