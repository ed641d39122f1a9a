//! Group commit of media inserts: one writer thread takes the inserts of every concurrent
//! sign-upload waiting at that moment, runs them in one `BEGIN IMMEDIATE` transaction and
//! answers each caller after the commit.
//!
//! SQLite has one write lock per database. With one transaction per request, concurrent
//! writers queue on that lock through the busy handler, which sleeps; the writer task takes
//! the lock once per batch instead. A failing row does not fail its batch: SQLite undoes a
//! failed statement alone (its default `ABORT` conflict resolution), so a duplicate key is
//! that caller's `Conflict` while the other rows commit. A failed commit fails every caller
//! of the batch, and none of their rows is kept.
//!
//! The writer is a thread of its own with a connection of its own (not a pooled one
//! reached through `spawn_blocking`): a caller's insert then costs one wake-up of that
//! thread and one of the caller, and the connection keeps its prepared statements,
//! `BEGIN` and `COMMIT` included.
//!
//! Durability is the database's own: WAL with `synchronous = NORMAL`, so an acknowledged
//! row survives a crash of the process; a power loss can lose what was committed since
//! the last checkpoint, which [`Checkpointer`](crate::pool::Checkpointer) runs every
//! 100 ms (docs/BENCHMARKS.md, "Durability").

use crate::error::from_sqlite;
use crate::pool;
use deadpool_sqlite::rusqlite::{self, Connection, ToSql};
use filegate_core::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::{mpsc, oneshot};

/// The most rows one transaction takes; more wait for the next batch.
const MAX_BATCH: usize = 256;
/// Inserts waiting for the writer; senders wait (back-pressure) when it is full.
const QUEUE: usize = 1024;

/// One row's values, in the order of the insert statement's parameters.
pub(crate) type Params = Vec<Box<dyn ToSql + Send>>;

struct Job {
    params: Params,
    reply: oneshot::Sender<Result<(), Error>>,
}

/// A handle on the writer thread of one database and one insert statement; cheap to
/// clone. The thread ends when the last handle is dropped.
#[derive(Clone, Debug)]
pub(crate) struct GroupCommit {
    jobs: mpsc::Sender<Job>,
    /// The most rows one transaction has held so far (tests check batching happens).
    #[cfg_attr(not(test), expect(dead_code, reason = "read by the tests only"))]
    largest: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// Starts the writer thread for `sql` (one `INSERT` with `?N` parameters) on `conn`,
    /// which it keeps. It also runs the `RESTART` checkpoints `restart` asks for, between
    /// two batches.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when no thread can be started.
    pub(crate) fn start(
        conn: Connection,
        sql: String,
        restart: Arc<AtomicBool>,
    ) -> Result<Self, Error> {
        let (jobs, rx) = mpsc::channel(QUEUE);
        let largest = Arc::new(AtomicUsize::new(0));
        let seen = largest.clone();
        std::thread::Builder::new()
            .name("filegate-media-writer".into())
            .spawn(move || writer(conn, &sql, rx, &seen, &restart))
            .map_err(Error::unavailable)?;
        Ok(Self { jobs, largest })
    }

    /// The most rows one transaction has held so far.
    #[cfg(test)]
    pub(crate) fn largest_batch(&self) -> usize {
        self.largest.load(Ordering::Relaxed)
    }

    /// Inserts one row; returns once the transaction holding it has committed.
    ///
    /// # Errors
    /// This row's own failure (a duplicate key is [`Error::Conflict`]), or the batch's:
    /// a failed begin or commit, or a stopped writer, is [`Error::Unavailable`].
    pub(crate) async fn insert(&self, params: Params) -> Result<(), Error> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { params, reply })
            .await
            .map_err(|_| Error::unavailable("the media writer has stopped"))?;
        answer
            .await
            .map_err(|_| Error::unavailable("the media writer stopped before answering"))?
    }
}

fn writer(
    mut conn: Connection,
    sql: &str,
    mut rx: mpsc::Receiver<Job>,
    largest: &AtomicUsize,
    restart: &AtomicBool,
) {
    // Not a runtime thread: blocking here is what this thread is for.
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        largest.fetch_max(batch.len(), Ordering::Relaxed);
        match commit_batch(&mut conn, sql, &batch) {
            Ok(results) => {
                for (job, result) in batch.into_iter().zip(results) {
                    // A caller that gave up (its request was cancelled) needs no answer.
                    let _ = job.reply.send(result.map_err(from_sqlite));
                }
            }
            Err(e) => {
                let e = from_sqlite(e);
                tracing::warn!(error = %e, rows = batch.len(), "media batch not committed");
                let unavailable = matches!(e, Error::Unavailable { .. });
                for job in batch {
                    let cause = format!("the media batch was not committed: {e}");
                    let _ = job.reply.send(Err(if unavailable {
                        Error::unavailable(cause)
                    } else {
                        Error::internal(cause)
                    }));
                }
            }
        }
        // After the answers, so the callers just committed do not wait for it.
        if let Err(e) = pool::restart_if_asked(&conn, restart) {
            tracing::warn!(error = %e, "sqlite checkpoint failed; the checkpointer asks again");
        }
    }
}

/// Runs every row's insert in one transaction; each row keeps its own result. A failed
/// begin or commit rolls the whole batch back.
fn commit_batch(
    c: &mut Connection,
    sql: &str,
    batch: &[Job],
) -> rusqlite::Result<Vec<rusqlite::Result<()>>> {
    // Cached statements rather than `Transaction`, whose BEGIN and COMMIT are parsed anew
    // on every call.
    c.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let inserted = (|| {
        let mut stmt = c.prepare_cached(sql)?;
        let results = batch
            .iter()
            .map(|job| {
                let refs: Vec<&dyn ToSql> = job
                    .params
                    .iter()
                    .map(|p| p.as_ref() as &dyn ToSql)
                    .collect();
                stmt.execute(refs.as_slice()).map(drop)
            })
            .collect();
        drop(stmt);
        c.prepare_cached("COMMIT")?.execute([])?;
        Ok(results)
    })();
    if inserted.is_err() && !c.is_autocommit() {
        // The commit (or a statement's preparation) failed: nothing of the batch stays.
        if let Err(e) = c.execute_batch("ROLLBACK") {
            tracing::warn!(error = %e, "rollback of a media batch failed");
        }
    }
    inserted
}
