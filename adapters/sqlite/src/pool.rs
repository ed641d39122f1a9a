//! filegate's one SQLite connection pool. Every SQLite user (the media table, FILES_DB,
//! Better Auth's database) opens and runs through it, so pragmas, the hop to a blocking
//! thread and the error mapping are the same everywhere.

use crate::error::{from_interact, from_pool, from_sqlite};
use deadpool_sqlite::rusqlite::{self, Connection};
use deadpool_sqlite::{Config, Hook, HookError, Pool, Runtime};
use filegate_core::Error;
use std::path::Path;
use std::time::Duration;

/// Long enough to ride out another writer's transaction, short enough to fail a request.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Who owns the database file, which decides what opening it may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// filegate's own database: the folder and file are created, WAL is required, and
    /// `synchronous = NORMAL` and foreign keys are set.
    Owned,
    /// Another program's database (Better Auth's): nothing that outlives the connection
    /// is set, so its journal mode stays the owner's choice; only `busy_timeout` is.
    Foreign,
}

/// Opens a pool over `path` and checks one connection out, so a bad path or a database
/// that refuses WAL fails at startup rather than on a request.
///
/// # Errors
/// [`Error::Unavailable`] when the folder or file cannot be created or opened, or it is
/// busy; [`Error::Internal`] when an owned database refuses WAL.
pub async fn open(path: &Path, ownership: Ownership) -> Result<Pool, Error> {
    if ownership == Ownership::Owned
        && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
    {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(Error::unavailable)?;
    }
    let builder = match Config::new(path).builder(Runtime::Tokio1) {
        Ok(b) => b,
        Err(never) => match never {},
    };
    let pool = builder
        .post_create(Hook::async_fn(move |conn, _| {
            Box::pin(async move {
                let mode = conn
                    .interact(move |c| set_pragmas(c, ownership))
                    .await
                    .map_err(|e| HookError::message(format!("sqlite worker failed: {e}")))?
                    .map_err(HookError::Backend)?;
                // WAL is what lets readers run beside the single writer; refuse to run without it.
                match mode {
                    Some(mode) if !mode.eq_ignore_ascii_case("wal") => Err(HookError::message(
                        format!("sqlite refused journal_mode=WAL (got '{mode}')"),
                    )),
                    _ => Ok(()),
                }
            })
        }))
        .build()
        .map_err(Error::internal)?;
    drop(pool.get().await.map_err(from_pool)?);
    Ok(pool)
}

/// Returns the journal mode in effect when this call set it (owned databases only).
fn set_pragmas(c: &mut Connection, ownership: Ownership) -> rusqlite::Result<Option<String>> {
    // First, so that switching to WAL below waits for other connections' locks.
    c.busy_timeout(BUSY_TIMEOUT)?;
    if ownership == Ownership::Foreign {
        return Ok(None);
    }
    let mode = c.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    c.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")?;
    Ok(Some(mode))
}

/// Runs a short read `f` on a pooled connection on the calling task's own thread, without
/// [`interact`]'s hop to a blocking thread and back (two thread wake-ups, which cost more
/// than an indexed read of a few rows from the page cache). Only for reads of a bounded
/// number of rows by an index: in WAL mode a reader never waits for the writer's lock, so
/// `f` does not block on other connections. Writes, and scans, go through [`interact`].
///
/// # Errors
/// As [`interact`].
pub async fn read<T, F>(pool: &Pool, f: F) -> Result<T, Error>
where
    F: FnOnce(&mut Connection) -> rusqlite::Result<T>,
{
    let conn = pool.get().await.map_err(from_pool)?;
    // Poisoned only if a closure panicked holding it; the connection itself is intact.
    let mut guard = conn
        .lock()
        .map_err(|_| Error::unavailable("a sqlite connection was poisoned by a panic"))?;
    f(&mut guard).map_err(from_sqlite)
}

/// Runs `f` on a pooled connection, on a blocking thread.
///
/// # Errors
/// `f`'s error or a pool failure, mapped as the ports' `# Errors` contracts say: UNIQUE
/// or PRIMARY KEY violations → [`Error::Conflict`]; busy, locked, unreachable or not a
/// database → [`Error::Unavailable`]; anything else → [`Error::Internal`].
pub async fn interact<T, F>(pool: &Pool, f: F) -> Result<T, Error>
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
