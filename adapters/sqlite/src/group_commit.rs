//! Group commit of media inserts: one writer task takes the inserts of every concurrent
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
//! Durability is the database's own: WAL with `synchronous = NORMAL`, so an acknowledged
//! row survives a crash of the process; a power loss can lose the last transactions before
//! the next checkpoint (docs/BENCHMARKS.md, "Durability").

use crate::error::from_sqlite;
use crate::pool;
use deadpool_sqlite::Pool;
use deadpool_sqlite::rusqlite::{self, ToSql, TransactionBehavior};
use filegate_core::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// A handle on the writer task of one database and one insert statement; cheap to clone.
/// The task ends when the last handle is dropped.
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
    /// Starts the writer task for `sql` (one `INSERT` with `?N` parameters) on `pool`.
    /// Needs a Tokio runtime.
    pub(crate) fn start(pool: Pool, sql: String) -> Self {
        let (jobs, rx) = mpsc::channel(QUEUE);
        let largest = Arc::new(AtomicUsize::new(0));
        tokio::spawn(writer(pool, sql, rx, largest.clone()));
        Self { jobs, largest }
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

async fn writer(pool: Pool, sql: String, mut rx: mpsc::Receiver<Job>, largest: Arc<AtomicUsize>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        largest.fetch_max(batch.len(), Ordering::Relaxed);
        let (rows, replies): (Vec<Params>, Vec<_>) =
            batch.into_iter().map(|j| (j.params, j.reply)).unzip();
        let sql = sql.clone();
        let outcome = pool::interact(&pool, move |c| commit_batch(c, &sql, &rows)).await;
        match outcome {
            Ok(results) => {
                for (reply, result) in replies.into_iter().zip(results) {
                    // A caller that gave up (its request was cancelled) needs no answer.
                    let _ = reply.send(result.map_err(from_sqlite));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, rows = replies.len(), "media batch not committed");
                let unavailable = matches!(e, Error::Unavailable { .. });
                for reply in replies {
                    let cause = format!("the media batch was not committed: {e}");
                    let _ = reply.send(Err(if unavailable {
                        Error::unavailable(cause)
                    } else {
                        Error::internal(cause)
                    }));
                }
            }
        }
    }
}

/// Runs every row's insert in one transaction; each row keeps its own result.
fn commit_batch(
    c: &mut rusqlite::Connection,
    sql: &str,
    rows: &[Params],
) -> rusqlite::Result<Vec<rusqlite::Result<()>>> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let results = {
        let mut stmt = tx.prepare_cached(sql)?;
        rows.iter()
            .map(|params| {
                let refs: Vec<&dyn ToSql> =
                    params.iter().map(|p| p.as_ref() as &dyn ToSql).collect();
                stmt.execute(refs.as_slice()).map(drop)
            })
            .collect()
    };
    tx.commit()?;
    Ok(results)
}
