//! filegate's one SQLite connection pool. Every SQLite user (the media table, FILES_DB,
//! Better Auth's database) opens and runs through it, so pragmas, the hop to a blocking
//! thread and the error mapping are the same everywhere.

use crate::error::{from_interact, from_pool, from_sqlite};
use deadpool::Runtime;
use deadpool::managed::{self, Hook, HookError, Metrics, RecycleError, RecycleResult};
use deadpool_sqlite::rusqlite::{self, Connection};
use deadpool_sync::SyncWrapper;
use filegate_core::Error;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
    let manager = Manager {
        path: path.to_owned(),
    };
    let pool = Pool::builder(manager)
        .runtime(Runtime::Tokio1)
        .post_create(Hook::async_fn(
            move |conn: &mut SyncWrapper<Connection>, _| {
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
            },
        ))
        .build()
        .map_err(Error::internal)?;
    drop(pool.get().await.map_err(from_pool)?);
    Ok(pool)
}

/// A pool of SQLite connections of one database file.
pub type Pool = managed::Pool<Manager>;

/// Opens the pool's connections, and hands them out again as they are. deadpool-sqlite's
/// manager ran a `SELECT` on a blocking thread before every checkout: two thread
/// wake-ups and a statement parse per query, the largest cost of a one-row read under
/// load. A SQLite connection is a handle on a local file and does not go stale; one a
/// panic left poisoned is dropped.
#[derive(Debug)]
pub struct Manager {
    path: std::path::PathBuf,
}

impl managed::Manager for Manager {
    type Type = SyncWrapper<Connection>;
    type Error = rusqlite::Error;

    async fn create(&self) -> Result<Self::Type, Self::Error> {
        let path = self.path.clone();
        SyncWrapper::new(Runtime::Tokio1, move || Connection::open(path)).await
    }

    async fn recycle(&self, conn: &mut Self::Type, _: &Metrics) -> RecycleResult<Self::Error> {
        if conn.is_mutex_poisoned() {
            return Err(RecycleError::message(
                "a panic poisoned this sqlite connection",
            ));
        }
        Ok(())
    }
}

/// Returns the journal mode in effect when this call set it (owned databases only).
fn set_pragmas(c: &mut Connection, ownership: Ownership) -> rusqlite::Result<Option<String>> {
    // First, so that switching to WAL below waits for other connections' locks.
    c.busy_handler(Some(wait_briefly))?;
    if ownership == Ownership::Foreign {
        return Ok(None);
    }
    let mode = c.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    c.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")?;
    // The [`Checkpointer`] checkpoints; a commit does so itself only past this backstop
    // (SQLite's default is 1 000 pages, checkpointed inside the commit that crosses it).
    c.pragma_update(None, "wal_autocheckpoint", WAL_BACKSTOP_PAGES)?;
    Ok(Some(mode))
}

/// Tries of [`wait_briefly`] 100 µs apart before it waits 1 ms between tries.
pub(crate) const FINE_TRIES: u32 = 100;

/// The busy handler of every connection: waits for another connection's lock up to
/// [`BUSY_TIMEOUT`] in all, retrying every 100 µs for the first 10 ms, then every
/// millisecond. SQLite's own (`busy_timeout`) sleeps 1, 2, 5, 10, 15, 20, 25 … 100 ms
/// between tries, so a waiter behind a lock held for 2 ms would sleep 8 ms; that was the
/// tail of sign-upload's latency under load.
pub(crate) fn wait_briefly(tries: i32) -> bool {
    let tries = u32::try_from(tries).unwrap_or(0);
    let fine = Duration::from_micros(100);
    let coarse = Duration::from_millis(1);
    let after_fine = BUSY_TIMEOUT.saturating_sub(fine * FINE_TRIES);
    let coarse_tries = u32::try_from(after_fine.as_millis()).unwrap_or(u32::MAX);
    if tries < FINE_TRIES {
        std::thread::sleep(fine);
        true
    } else if tries - FINE_TRIES < coarse_tries {
        std::thread::sleep(coarse);
        true
    } else {
        false
    }
}

/// Pages of WAL past which a committing connection checkpoints itself, should the
/// [`Checkpointer`] fall behind (about 40 MiB of 4 KiB pages).
const WAL_BACKSTOP_PAGES: i64 = 10_000;

/// How often the [`Checkpointer`] copies the WAL into the database, which first makes
/// the WAL durable: with `synchronous = NORMAL` that bounds what a power loss can take.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// WAL frames past which the [`Checkpointer`] follows its `PASSIVE` checkpoint with a
/// `RESTART` one, so the WAL starts over from its beginning (about 8 MiB).
const RESTART_FRAMES: i64 = 2_000;

/// One connection of an owned database outside the pool, with the pool's pragmas, for a
/// thread that keeps it (the media writer, the checkpointer).
///
/// # Errors
/// As [`open`].
pub(crate) fn connect(path: &Path) -> Result<Connection, Error> {
    let mut c = Connection::open(path).map_err(from_sqlite)?;
    set_pragmas(&mut c, Ownership::Owned).map_err(from_sqlite)?;
    Ok(c)
}

/// Checkpoints an owned database's WAL on a thread of its own, every
/// [`CHECKPOINT_EVERY`], so that no request's commit pays for copying pages and syncing
/// files (SQLite otherwise checkpoints inside the commit that crosses 1 000 pages, a
/// stall of milliseconds for every request waiting behind it).
///
/// A `PASSIVE` checkpoint copies what is committed without blocking anyone. Under a
/// steady stream of commits it never catches up with the last one, though, and the WAL
/// only starts over once it has: so past [`RESTART_FRAMES`] a `RESTART` checkpoint
/// follows, which holds writers back only while it copies the few frames committed since
/// the `PASSIVE` one. A database with a writer thread ([`GroupCommit`]) hands that
/// `RESTART` to it, to run between two batches: polling for the write lock from here
/// would rarely find it free under load. The thread stops when the last clone is dropped.
///
/// [`GroupCommit`]: crate::group_commit::GroupCommit
#[derive(Clone, Debug)]
pub(crate) struct Checkpointer {
    _stop: Arc<std::sync::mpsc::SyncSender<()>>,
}

impl Checkpointer {
    /// # Errors
    /// As [`open`], or [`Error::Unavailable`] when no thread can be started.
    pub(crate) fn start(path: &Path, restart: Restart) -> Result<Self, Error> {
        let conn = connect(path)?;
        let (stop, stopped) = std::sync::mpsc::sync_channel::<()>(0);
        std::thread::Builder::new()
            .name("filegate-sqlite-checkpoint".into())
            .spawn(move || {
                // Only a disconnect ends the wait early: the last handle is gone.
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CHECKPOINT_EVERY)
                {
                    if let Err(e) = checkpoint(&conn, &restart) {
                        tracing::warn!(error = %e, "sqlite checkpoint failed; retrying");
                    }
                }
            })
            .map_err(Error::unavailable)?;
        Ok(Self {
            _stop: Arc::new(stop),
        })
    }
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

/// Who runs the [`Checkpointer`]'s `RESTART` checkpoints.
#[derive(Clone, Debug)]
pub(crate) enum Restart {
    /// The checkpointer's own thread.
    Here,
    /// The database's writer thread, asked through this flag ([`restart_if_asked`]).
    Handed(Arc<AtomicBool>),
}

/// Runs the `RESTART` checkpoint the [`Checkpointer`] asked for, if it did.
///
/// # Errors
/// The checkpoint's.
pub(crate) fn restart_if_asked(conn: &Connection, asked: &AtomicBool) -> rusqlite::Result<()> {
    if asked.swap(false, Ordering::Relaxed) {
        wal_checkpoint(conn, "RESTART")?;
    }
    Ok(())
}

/// Runs one checkpoint in `mode`; returns (frames in the WAL, frames copied), both -1
/// when the database is not in WAL mode.
fn wal_checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<(i64, i64)> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get(1)?, r.get(2)?))
    })
}

/// One round of the [`Checkpointer`]; returns the frames its own checkpoints left in
/// the WAL.
pub(crate) fn checkpoint(conn: &Connection, restart: &Restart) -> rusqlite::Result<i64> {
    let (frames, copied) = wal_checkpoint(conn, "PASSIVE")?;
    if frames < RESTART_FRAMES {
        return Ok(frames - copied);
    }
    // Once more, for what was committed during the first (a few percent of it): the
    // RESTART that holds writers back then has almost nothing left to copy.
    let (frames, copied) = wal_checkpoint(conn, "PASSIVE")?;
    match restart {
        Restart::Here => {
            let (frames, copied) = wal_checkpoint(conn, "RESTART")?;
            Ok(frames - copied)
        }
        Restart::Handed(asked) => {
            asked.store(true, Ordering::Relaxed);
            Ok(frames - copied)
        }
    }
}
