//! Reads of concurrent requests share one statement: the hot lookups (a media row by id,
//! the first page of an organization's media, an object row by key, a bucket by name)
//! go through a [`Lookups`], whose task takes every lookup waiting at that moment and
//! answers them all from one query over arrays of keys (`= ANY($1)`, or a `LATERAL` join
//! over `unnest`).
//!
//! On Postgres a statement costs a round trip, a wake-up of a server process and an
//! implicit transaction, far more than finding one row by an index; a batch pays them once.
//! Nothing waits for a batch to fill: a lookup that finds a free slot goes out at once,
//! alone. Only while [`IN_FLIGHT`] statements are out do lookups queue, and the next
//! statement takes them all. Lookups of the same key in one batch are asked once and share
//! the answer.
//!
//! A batch is read after every caller in it asked, so a caller still sees every write that
//! finished before its request (read-your-writes, as with a statement of its own).

use crate::error::column;
use filegate_core::Error;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_postgres::Row;

/// The most distinct keys one statement takes; more wait for the next one.
const MAX_BATCH: usize = 128;
/// Statements of one kind out at once; further lookups queue and form the next batch.
/// Fewer slots make larger batches: with 64 connections listing one row each, one
/// slot gave 18.3k lookups/s, two 17.9k (with half the p99 of one), four 14.5k, sixteen
/// 8.6k, while Postgres's processes spent 263, 433, 623 and 961 ticks of CPU in the same
/// 8 s (docs/BENCHMARKS.md). Two keep a second statement going while one waits.
pub(crate) const IN_FLIGHT: usize = 2;
/// Lookups waiting; callers wait (back-pressure) when it is full.
const QUEUE: usize = 4096;

/// One key's answer: its value, or the error that concerns this key alone (a corrupt row).
pub(crate) type Answer<T> = Result<T, Error>;

/// The statement of a batch: the answers to `keys`, in their order, or the error of the
/// whole statement.
pub(crate) type Fetch<K, T> = Arc<
    dyn Fn(Vec<K>) -> Pin<Box<dyn Future<Output = Result<Vec<Answer<T>>, Error>> + Send>>
        + Send
        + Sync,
>;

struct Job<K, T> {
    key: K,
    reply: oneshot::Sender<Result<T, Error>>,
}

/// A handle on one kind of batched lookup; cheap to clone. The task ends when the last
/// handle is dropped.
pub(crate) struct Lookups<K, T> {
    jobs: mpsc::Sender<Job<K, T>>,
    largest: Arc<AtomicUsize>,
}

impl<K, T> Clone for Lookups<K, T> {
    fn clone(&self) -> Self {
        Self {
            jobs: self.jobs.clone(),
            largest: self.largest.clone(),
        }
    }
}

impl<K, T> std::fmt::Debug for Lookups<K, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lookups")
            .field("largest", &self.largest.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<K, T> Lookups<K, T>
where
    K: Eq + Hash + Clone + Send + 'static,
    T: Clone + Send + 'static,
{
    /// Starts the task that batches lookups and runs `fetch` per batch. Needs a Tokio
    /// runtime.
    pub(crate) fn start(fetch: Fetch<K, T>) -> Self {
        let (jobs, rx) = mpsc::channel(QUEUE);
        let largest = Arc::new(AtomicUsize::new(0));
        tokio::spawn(batcher(fetch, rx, largest.clone()));
        Self { jobs, largest }
    }

    /// The answer for `key`, from the statement of the batch it joined.
    ///
    /// # Errors
    /// This key's own error, or the statement's (an unreachable server is
    /// [`Error::Unavailable`]).
    pub(crate) async fn get(&self, key: K) -> Result<T, Error> {
        answer_to(self.ask(key).await?).await
    }

    /// The answers for `keys`, in their order. All are queued before any is awaited, so
    /// they go out in one statement unless a batch fills, or is taken, between two of them.
    ///
    /// # Errors
    /// As [`Lookups::get`], for the first key that failed.
    pub(crate) async fn get_many(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<T>, Error> {
        let mut answers = Vec::new();
        for key in keys {
            answers.push(self.ask(key).await?);
        }
        let mut values = Vec::with_capacity(answers.len());
        for answer in answers {
            values.push(answer_to(answer).await?);
        }
        Ok(values)
    }

    /// Queues a lookup of `key`; its answer arrives on the returned receiver.
    async fn ask(&self, key: K) -> Result<oneshot::Receiver<Result<T, Error>>, Error> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { key, reply })
            .await
            .map_err(|_| Error::unavailable("the lookup task has stopped"))?;
        Ok(answer)
    }

    /// The most distinct keys one statement has held so far (tests check batching).
    pub(crate) fn largest_batch(&self) -> usize {
        self.largest.load(Ordering::Relaxed)
    }
}

/// The answer a queued lookup receives.
async fn answer_to<T>(answer: oneshot::Receiver<Result<T, Error>>) -> Result<T, Error> {
    answer
        .await
        .map_err(|_| Error::unavailable("the lookup task stopped before answering"))?
}

async fn batcher<K, T>(
    fetch: Fetch<K, T>,
    mut rx: mpsc::Receiver<Job<K, T>>,
    largest: Arc<AtomicUsize>,
) where
    K: Eq + Hash + Clone + Send + 'static,
    T: Clone + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        // While every slot is busy, lookups queue up behind `first` for this batch.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut jobs = vec![first];
        let mut index: HashMap<K, usize> = HashMap::new();
        let mut keys = vec![jobs[0].key.clone()];
        index.insert(jobs[0].key.clone(), 0);
        while keys.len() < MAX_BATCH {
            let Ok(job) = rx.try_recv() else { break };
            if !index.contains_key(&job.key) {
                index.insert(job.key.clone(), keys.len());
                keys.push(job.key.clone());
            }
            jobs.push(job);
        }
        largest.fetch_max(keys.len(), Ordering::Relaxed);
        let fetch = fetch.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let answers = fetch(keys).await;
            reply(jobs, &index, answers);
        });
    }
}

/// Answers each caller of a batch from the statement's answers.
fn reply<K: Eq + Hash, T: Clone>(
    jobs: Vec<Job<K, T>>,
    index: &HashMap<K, usize>,
    answers: Result<Vec<Answer<T>>, Error>,
) {
    match answers {
        Ok(answers) => {
            for job in jobs {
                let answer = match index.get(&job.key).and_then(|&i| answers.get(i)) {
                    Some(Ok(v)) => Ok(v.clone()),
                    Some(Err(e)) => Err(copy_of(e)),
                    None => Err(Error::internal("a batched lookup returned too few answers")),
                };
                // A caller that gave up (its request was cancelled) needs no answer.
                let _ = job.reply.send(answer);
            }
        }
        Err(e) => {
            for job in jobs {
                let _ = job.reply.send(Err(copy_of(&e)));
            }
        }
    }
}

/// The answers to `keys` of a statement that returns at most one row per key, its key in
/// column `key_column`: each key's row as `convert` reads it, or `None`.
///
/// # Errors
/// The key column is not text.
pub(crate) fn one_row_per_key<T>(
    keys: &[String],
    rows: &[Row],
    key_column: usize,
    convert: fn(&Row) -> Result<T, Error>,
) -> Result<Vec<Answer<Option<T>>>, Error> {
    let mut found: HashMap<String, Answer<Option<T>>> = HashMap::new();
    for r in rows {
        let key: String = r.try_get(key_column).map_err(column)?;
        found.insert(key, convert(r).map(Some));
    }
    Ok(keys
        .iter()
        .map(|k| found.remove(k).unwrap_or(Ok(None)))
        .collect())
}

/// The answer a row of a join over `unnest(…) WITH ORDINALITY` belongs to: column
/// `ordinality_column` holds its lookup's 1-based position among `answers`.
///
/// # Errors
/// The column is not an integer, or names no lookup of the batch.
pub(crate) fn answer_of<'a, T>(
    answers: &'a mut [Answer<T>],
    row: &Row,
    ordinality_column: usize,
) -> Result<&'a mut Answer<T>, Error> {
    let n: i64 = row.try_get(ordinality_column).map_err(column)?;
    usize::try_from(n - 1)
        .ok()
        .and_then(|i| answers.get_mut(i))
        .ok_or_else(|| Error::internal(format!("a batched row answers lookup {n}, not asked")))
}

/// The same failure for another caller: unavailable stays unavailable (a 503 the client
/// may retry); anything else is internal; both keep the cause's text for the log.
fn copy_of(e: &Error) -> Error {
    match e {
        Error::Unavailable { source } => Error::unavailable(source.to_string()),
        Error::Internal { source } => Error::internal(source.to_string()),
        other => Error::internal(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A fetch that records each batch and answers `key * 10`, after `gate` opens.
    fn recording(
        batches: Arc<Mutex<Vec<Vec<u32>>>>,
        gate: Arc<tokio::sync::Notify>,
    ) -> Fetch<u32, u32> {
        Arc::new(move |keys: Vec<u32>| {
            let batches = batches.clone();
            let gate = gate.clone();
            Box::pin(async move {
                batches.lock().unwrap().push(keys.clone());
                gate.notified().await;
                Ok(keys
                    .iter()
                    .map(|&k| {
                        if k == 13 {
                            Err(Error::internal("row 13 is corrupt"))
                        } else {
                            Ok(k * 10)
                        }
                    })
                    .collect())
            })
        })
    }

    #[tokio::test]
    async fn lookups_queued_behind_busy_slots_share_one_statement_and_keep_their_answers() {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(tokio::sync::Notify::new());
        let lookups = Lookups::start(recording(batches.clone(), gate.clone()));
        // Fill every slot, one lookup at a time, each held at the gate.
        let mut held = Vec::new();
        for (n, k) in (100..).take(IN_FLIGHT).enumerate() {
            let l = lookups.clone();
            held.push(tokio::spawn(async move { l.get(k).await }));
            while batches.lock().unwrap().len() < n + 1 {
                tokio::task::yield_now().await;
            }
        }
        // These queue: 7 twice (one key, two callers), 13 fails alone.
        let mut queued = Vec::new();
        for k in [1, 7, 7, 13, 2] {
            let l = lookups.clone();
            queued.push(tokio::spawn(async move { l.get(k).await }));
        }
        tokio::task::yield_now().await;
        gate.notify_waiters();
        for (k, h) in (100..).zip(held) {
            assert_eq!(h.await.unwrap().unwrap(), k * 10);
        }
        // The queued batch starts after the held ones finish; let it through.
        while batches.lock().unwrap().len() < IN_FLIGHT + 1 {
            tokio::task::yield_now().await;
        }
        gate.notify_waiters();
        let answers: Vec<_> = futures::future::join_all(queued)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(answers[0].as_ref().unwrap(), &10);
        assert_eq!(answers[1].as_ref().unwrap(), &70);
        assert_eq!(answers[2].as_ref().unwrap(), &70);
        assert!(matches!(answers[3], Err(Error::Internal { .. })));
        assert_eq!(answers[4].as_ref().unwrap(), &20);
        let last = batches.lock().unwrap().last().cloned().unwrap();
        assert_eq!(last, vec![1, 7, 13, 2], "one statement, each key once");
        assert_eq!(lookups.largest_batch(), 4);
    }

    #[tokio::test]
    async fn a_lookup_with_a_free_slot_goes_out_alone_and_a_failed_statement_fails_its_batch() {
        let fetch: Fetch<u32, u32> = Arc::new(|keys: Vec<u32>| {
            Box::pin(async move {
                if keys.contains(&0) {
                    Err(Error::unavailable("the database went away"))
                } else {
                    Ok(keys.iter().map(|&k| Ok(k + 1)).collect())
                }
            })
        });
        let lookups = Lookups::start(fetch);
        assert_eq!(lookups.get(41).await.unwrap(), 42);
        assert_eq!(lookups.largest_batch(), 1);
        assert!(matches!(
            lookups.get(0).await,
            Err(Error::Unavailable { .. })
        ));
    }
}
