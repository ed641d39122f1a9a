//! Group commit of media inserts: one writer task takes the inserts of every concurrent
//! sign-upload waiting at that moment and writes them with one multi-row `INSERT` (one
//! statement, so one transaction and one WAL flush), then answers each caller.
//!
//! One transaction per request costs a round trip and a commit flush each; a batch costs
//! them once. Each caller keeps its own result: the statement is `ON CONFLICT DO NOTHING
//! RETURNING id`, so a row that repeats a stored id or key is skipped alone and its caller
//! gets [`Error::Conflict`], as a single insert would. Rows of one batch never repeat each
//! other's id or key (a repeat waits for the next batch), so the returned ids say exactly
//! which rows were written. Any other failure of the statement (a value the server
//! refuses) retries the batch one row per statement, so it fails only its own caller;
//! an unreachable server fails the whole batch with [`Error::Unavailable`].
//!
//! Durability is the server's: the statement commits (with `synchronous_commit` as the
//! server sets it, `on` by default) before any caller is answered.

use crate::error::Failure;
use crate::pool::PgPool;
use filegate_core::Error;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{mpsc, oneshot};

/// The most rows one statement takes; more wait for the next batch.
const MAX_BATCH: usize = 256;
/// Inserts waiting for the writer; senders wait (back-pressure) when it is full.
const QUEUE: usize = 1024;

/// One media row's values, as the `media` table stores them.
#[derive(Debug, Clone)]
pub(crate) struct NewRow {
    pub(crate) id: String,
    pub(crate) bucket: String,
    pub(crate) key: String,
    pub(crate) organization_id: String,
    pub(crate) uploader_id: String,
    pub(crate) filename: String,
    pub(crate) content_type: String,
    pub(crate) declared_size: Option<i64>,
    pub(crate) created_at: i64,
    pub(crate) status: &'static str,
    pub(crate) size: Option<i64>,
    pub(crate) etag: Option<String>,
    pub(crate) upload_expires_at: Option<i64>,
    pub(crate) multipart_upload_id: Option<String>,
    pub(crate) multipart_part_size: Option<i64>,
}

/// Any number of rows in one statement: one array parameter per column.
const INSERT_MANY: &str = "INSERT INTO media (id, bucket, key, organization_id, uploader_id, \
     filename, content_type, declared_size, created_at, status, size, etag, upload_expires_at, \
     multipart_upload_id, multipart_part_size) \
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
     $6::text[], $7::text[], $8::int8[], $9::int8[], $10::text[], $11::int8[], $12::text[], \
     $13::int8[], $14::text[], $15::int8[]) \
     ON CONFLICT DO NOTHING RETURNING id";

/// One row, for the fallback that gives each row of a refused batch its own result.
const INSERT_ONE: &str = "INSERT INTO media (id, bucket, key, organization_id, uploader_id, \
     filename, content_type, declared_size, created_at, status, size, etag, upload_expires_at, \
     multipart_upload_id, multipart_part_size) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";

struct Job {
    row: NewRow,
    reply: oneshot::Sender<Result<(), Error>>,
}

/// A handle on the writer task of one pool; cheap to clone. The task ends when the last
/// handle is dropped.
#[derive(Clone, Debug)]
pub(crate) struct GroupCommit {
    jobs: mpsc::Sender<Job>,
    /// The most rows one statement has held so far (tests check batching happens).
    largest: Arc<AtomicUsize>,
}

impl GroupCommit {
    /// Starts the writer task on `pool`. Needs a Tokio runtime.
    pub(crate) fn start(pool: PgPool) -> Self {
        let (jobs, rx) = mpsc::channel(QUEUE);
        let largest = Arc::new(AtomicUsize::new(0));
        tokio::spawn(writer(pool, rx, largest.clone()));
        Self { jobs, largest }
    }

    /// The most rows one statement has held so far.
    pub(crate) fn largest_batch(&self) -> usize {
        self.largest.load(Ordering::Relaxed)
    }

    /// Inserts one row; returns once the statement holding it has committed.
    ///
    /// # Errors
    /// This row's own failure (a duplicate id or key is [`Error::Conflict`]), or the
    /// batch's: an unreachable server or a stopped writer is [`Error::Unavailable`].
    pub(crate) async fn insert(&self, row: NewRow) -> Result<(), Error> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { row, reply })
            .await
            .map_err(|_| Error::unavailable("the media writer has stopped"))?;
        answer
            .await
            .map_err(|_| Error::unavailable("the media writer stopped before answering"))?
    }
}

async fn writer(pool: PgPool, mut rx: mpsc::Receiver<Job>, largest: Arc<AtomicUsize>) {
    let mut waiting: Vec<Job> = Vec::new();
    loop {
        if waiting.is_empty() {
            match rx.recv().await {
                Some(job) => waiting.push(job),
                None => return,
            }
        }
        while waiting.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => waiting.push(job),
                Err(_) => break,
            }
        }
        // A row repeating an id or key of an earlier row waits for the next batch, where
        // the stored row (or its absence) decides its result.
        let (mut ids, mut keys) = (HashSet::new(), HashSet::new());
        let (batch, later): (Vec<Job>, Vec<Job>) = waiting.drain(..).partition(|j| {
            let new_id = ids.insert(j.row.id.clone());
            let new_key = keys.insert(j.row.key.clone());
            new_id && new_key
        });
        waiting = later;
        largest.fetch_max(batch.len(), Ordering::Relaxed);
        commit(&pool, batch).await;
    }
}

/// Writes `batch` and answers each of its callers.
async fn commit(pool: &PgPool, batch: Vec<Job>) {
    let (rows, replies): (Vec<NewRow>, Vec<_>) =
        batch.into_iter().map(|j| (j.row, j.reply)).unzip();
    match insert_many(pool, &rows).await {
        Ok(written) => {
            for (row, reply) in rows.iter().zip(replies) {
                let result = if written.contains(&row.id) {
                    Ok(())
                } else {
                    Err(Error::Conflict { what: "media" })
                };
                // A caller that gave up (its request was cancelled) needs no answer.
                let _ = reply.send(result);
            }
        }
        Err(f) if rows.len() > 1 && !f.is_unavailable() => {
            // The statement (one transaction) wrote nothing: some value was refused. Each
            // row alone, so only its own caller fails.
            for (row, reply) in rows.iter().zip(replies) {
                let _ = reply.send(insert_one(pool, row).await.map(drop).map_err(Error::from));
            }
        }
        Err(f) if rows.len() == 1 => {
            // A batch of one fails with its row's own error.
            if let Some(reply) = replies.into_iter().next() {
                let _ = reply.send(Err(Error::from(f)));
            }
        }
        Err(f) => {
            let e = Error::from(f);
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

async fn insert_many(pool: &PgPool, rows: &[NewRow]) -> Result<HashSet<String>, Failure> {
    let col = |f: fn(&NewRow) -> &str| rows.iter().map(f).collect::<Vec<_>>();
    let num = |f: fn(&NewRow) -> Option<i64>| rows.iter().map(f).collect::<Vec<_>>();
    let (id, bucket, key) = (col(|r| &r.id), col(|r| &r.bucket), col(|r| &r.key));
    let (org, uploader) = (col(|r| &r.organization_id), col(|r| &r.uploader_id));
    let (filename, content_type) = (col(|r| &r.filename), col(|r| &r.content_type));
    let declared_size = num(|r| r.declared_size);
    let created_at: Vec<i64> = rows.iter().map(|r| r.created_at).collect();
    let status = col(|r| r.status);
    let size = num(|r| r.size);
    let etag: Vec<Option<&str>> = rows.iter().map(|r| r.etag.as_deref()).collect();
    let expires = num(|r| r.upload_expires_at);
    let upload_id: Vec<Option<&str>> = rows
        .iter()
        .map(|r| r.multipart_upload_id.as_deref())
        .collect();
    let part_size = num(|r| r.multipart_part_size);
    let written = pool
        .query(
            INSERT_MANY,
            &[
                &id,
                &bucket,
                &key,
                &org,
                &uploader,
                &filename,
                &content_type,
                &declared_size,
                &created_at,
                &status,
                &size,
                &etag,
                &expires,
                &upload_id,
                &part_size,
            ],
        )
        .await?;
    written
        .iter()
        .map(|r| r.try_get::<_, String>(0))
        .collect::<Result<_, _>>()
        .map_err(Failure::Db)
}

async fn insert_one(pool: &PgPool, r: &NewRow) -> Result<u64, Failure> {
    pool.execute(
        INSERT_ONE,
        &[
            &r.id,
            &r.bucket,
            &r.key,
            &r.organization_id,
            &r.uploader_id,
            &r.filename,
            &r.content_type,
            &r.declared_size,
            &r.created_at,
            &r.status,
            &r.size,
            &r.etag,
            &r.upload_expires_at,
            &r.multipart_upload_id,
            &r.multipart_part_size,
        ],
    )
    .await
}
