//! Reconcile throughput and memory.
//!
//! ```text
//! cargo run --release -p filegate-admin --example reconcile_bench -- [MEMORY_N] [EMBEDDED_N]
//! ```
//! defaults: 1 000 000 objects against 1 000 000 rows through in-memory fakes (sorted
//! vectors answering pages by binary search, like an index), then 50 000 objects on the
//! embedded S3 endpoint against a SQLite FILES_DB. Both with some drift (0.1 % orphans,
//! 0.1 % missing, 0.1 % size mismatches). Dry runs.
//!
//! Memory: the in-memory fakes hold the million entries themselves, so what matters is
//! the growth of RSS during the reconcile over RSS after seeding (sampled every 10 ms),
//! besides VmHWM.

#![expect(
    clippy::cast_precision_loss,
    reason = "rates and sizes are printed rounded; exactness past 2^52 does not matter"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use filegate_core::Error;
use filegate_core::domain::{BucketName, ContentType, ObjectKey};
use filegate_core::managed::{
    Bucket, BucketId, BucketStore, ObjectConfirmation, ObjectId, ObjectPath, ObjectQuery,
    ObjectRow, ObjectRowPage, ObjectRowStore, ObjectStatus, ReadScope, WriteScope,
};
use filegate_core::ports::{
    ByteRange, CompletedPart, GetObject, ListPage, ObjectMeta, ObjectStore, ObjectSummary,
    PendingUpload, PutObject, StoredPart,
};
use filegate_core::reconcile::{Category, KeySpaces, PlanOptions, Planner, ReconcileReport, run};
use time::OffsetDateTime;

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn unused() -> Error {
    Error::internal("not used by the benchmark")
}

struct SortedObjects(Vec<ObjectSummary>);

#[async_trait]
impl ObjectStore for SortedObjects {
    async fn head(&self, _: &BucketName, _: &ObjectKey) -> Result<ObjectMeta, Error> {
        Err(unused())
    }
    async fn get(
        &self,
        _: &BucketName,
        _: &ObjectKey,
        _: Option<ByteRange>,
    ) -> Result<GetObject, Error> {
        Err(unused())
    }
    async fn put(&self, _: &BucketName, _: &ObjectKey, _: PutObject) -> Result<ObjectMeta, Error> {
        Err(unused())
    }
    async fn delete(&self, _: &BucketName, _: &ObjectKey) -> Result<(), Error> {
        Err(unused())
    }
    async fn list(
        &self,
        _: &BucketName,
        _prefix: Option<String>,
        continuation: Option<String>,
        max_keys: u32,
    ) -> Result<ListPage, Error> {
        let start = continuation.map_or(0, |c| {
            self.0.partition_point(|o| o.key.as_str() <= c.as_str())
        });
        let end = (start + max_keys.clamp(1, 1000) as usize).min(self.0.len());
        let objects = self.0[start..end].to_vec();
        let next = (end < self.0.len())
            .then(|| objects.last().map(|o| o.key.clone()))
            .flatten();
        Ok(ListPage { objects, next })
    }
    async fn create_multipart(
        &self,
        _: &BucketName,
        _: &ObjectKey,
        _: Option<ContentType>,
    ) -> Result<String, Error> {
        Err(unused())
    }
    async fn upload_part(
        &self,
        _: &BucketName,
        _: &ObjectKey,
        _: &str,
        _: u32,
        _: PutObject,
    ) -> Result<String, Error> {
        Err(unused())
    }
    async fn list_parts(
        &self,
        _: &BucketName,
        _: &ObjectKey,
        _: &str,
    ) -> Result<Vec<StoredPart>, Error> {
        Err(unused())
    }
    async fn complete_multipart(
        &self,
        _: &BucketName,
        _: &ObjectKey,
        _: &str,
        _: &[CompletedPart],
    ) -> Result<(), Error> {
        Err(unused())
    }
    async fn abort_multipart(&self, _: &BucketName, _: &ObjectKey, _: &str) -> Result<(), Error> {
        Err(unused())
    }
    async fn list_multipart_uploads(
        &self,
        _: &BucketName,
        _: OffsetDateTime,
    ) -> Result<Vec<PendingUpload>, Error> {
        Ok(Vec::new())
    }
}

struct SortedRows(Vec<ObjectRow>);

#[async_trait]
impl ObjectRowStore for SortedRows {
    async fn insert_object(&self, _: &ObjectRow) -> Result<(), Error> {
        Err(unused())
    }
    async fn find_object(&self, _: &ObjectId) -> Result<Option<ObjectRow>, Error> {
        Err(unused())
    }
    async fn find_object_by_key(&self, _: &ObjectKey) -> Result<Option<ObjectRow>, Error> {
        Err(unused())
    }
    async fn confirm_object(
        &self,
        _: &ObjectId,
        _: &ObjectConfirmation,
    ) -> Result<ObjectRow, Error> {
        Err(unused())
    }
    async fn mark_object_deleted(&self, _: &ObjectId, _: OffsetDateTime) -> Result<(), Error> {
        Err(unused())
    }
    async fn purge_object(&self, _: &ObjectId) -> Result<(), Error> {
        Err(unused())
    }
    async fn list_objects(&self, _: &ObjectQuery) -> Result<ObjectRowPage, Error> {
        Err(unused())
    }
    async fn objects_in_bucket(&self, _: &BucketId, _: u32) -> Result<Vec<ObjectRow>, Error> {
        Err(unused())
    }
    async fn objects_by_key(
        &self,
        after: Option<ObjectKey>,
        limit: u32,
    ) -> Result<Vec<ObjectRow>, Error> {
        let start = after.map_or(0, |a| {
            self.0.partition_point(|r| r.key.as_str() <= a.as_str())
        });
        let end = (start + limit as usize).min(self.0.len());
        Ok(self.0[start..end].to_vec())
    }
    async fn pending_objects(&self, _: OffsetDateTime, _: u32) -> Result<Vec<ObjectRow>, Error> {
        Err(unused())
    }
}

fn key_of(i: usize) -> String {
    format!("org{:02}/docs/file-{i:08}.bin", i % 50)
}

fn row_of(key: &str, bucket: &BucketId, size: u64, now: OffsetDateTime) -> ObjectRow {
    ObjectRow {
        id: ObjectId::generate(),
        bucket_id: bucket.clone(),
        organization_id: key.split('/').next().map(str::to_owned),
        owner_id: "u1".into(),
        segment: key.split('/').next().unwrap_or_default().to_owned(),
        key: ObjectKey::parse(key).expect("valid key"),
        path: ObjectPath::parse(key.splitn(3, '/').nth(2).unwrap_or("x")).expect("valid path"),
        content_type: ContentType::parse("application/octet-stream").expect("valid type"),
        size,
        etag: None,
        status: ObjectStatus::Confirmed,
        created_at: now,
        updated_at: now,
        deleted_at: None,
        multipart: None,
    }
}

/// Which side(s) key `i` is on, and its row size: 0.1 % orphans, 0.1 % missing,
/// 0.1 % size mismatches.
fn drift(i: usize) -> (bool, bool, u64) {
    match i % 1000 {
        1 => (true, false, 0),
        2 => (false, true, 100),
        3 => (true, true, 101),
        _ => (true, true, 100),
    }
}

/// Samples RSS every 10 ms while `work` runs; returns its result and the peak.
async fn with_peak_rss<T>(work: impl std::future::Future<Output = T>) -> (T, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(status_kib("VmRSS:")));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(status_kib("VmRSS:"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let out = work.await;
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    peak.fetch_max(status_kib("VmRSS:"), Ordering::Relaxed);
    (out, peak.load(Ordering::Relaxed))
}

fn summary(report: &ReconcileReport) -> String {
    Category::ALL
        .iter()
        .map(|c| format!("{}={}", c.as_str(), report.categories[c].count))
        .collect::<Vec<_>>()
        .join(" ")
}

async fn reconcile(
    objects: &dyn ObjectStore,
    rows: &dyn ObjectRowStore,
    bucket: &BucketName,
) -> ReconcileReport {
    let planner = Planner::new(
        objects,
        rows,
        PlanOptions {
            key_spaces: KeySpaces::everything(),
            ..PlanOptions::new(bucket.clone(), OffsetDateTime::now_utc())
        },
    );
    run(planner, None, &mut |_, _| {}).await.expect("reconcile")
}

async fn in_memory(n: usize, bucket: &BucketName) {
    let now = OffsetDateTime::now_utc();
    let bid = BucketId::generate();
    let started = Instant::now();
    let mut objects = Vec::with_capacity(n);
    let mut rows = Vec::with_capacity(n);
    for i in 0..n {
        let key = key_of(i);
        let (has_object, has_row, size) = drift(i);
        if has_object {
            objects.push(ObjectSummary {
                key: key.clone(),
                size: 100,
                etag: None,
                last_modified: Some(now),
            });
        }
        if has_row {
            rows.push(row_of(&key, &bid, size, now));
        }
    }
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    rows.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
    let (objects, rows) = (SortedObjects(objects), SortedRows(rows));
    let seeded_rss = status_kib("VmRSS:");
    println!(
        "in-memory: seeded {} objects and {} rows in {:.1?}; RSS after seeding {:.0} MiB",
        objects.0.len(),
        rows.0.len(),
        started.elapsed(),
        mib(seeded_rss)
    );
    let t = Instant::now();
    let (report, peak) = with_peak_rss(reconcile(&objects, &rows, bucket)).await;
    let took = t.elapsed();
    println!(
        "in-memory: reconcile of {} objects x {} rows: {:.2?} ({:.0} keys/s); {}",
        report.scanned_objects,
        report.scanned_rows,
        took,
        (report.scanned_objects + report.scanned_rows) as f64 / took.as_secs_f64(),
        summary(&report)
    );
    println!(
        "in-memory: RSS growth during reconcile {:.1} MiB (peak {:.0} MiB over {:.0} MiB after seeding); VmHWM {:.0} MiB",
        mib(peak.saturating_sub(seeded_rss)),
        mib(peak),
        mib(seeded_rss),
        mib(status_kib("VmHWM:"))
    );
}

async fn embedded(n: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = filegate_bootstrap::config::Config::ephemeral(dir.path());
    let db = filegate_sqlite::SqliteFilesDb::open(&dir.path().join("files.db"))
        .await
        .expect("FILES_DB");
    let now = OffsetDateTime::now_utc();
    let bucket = Bucket {
        id: BucketId::generate(),
        name: BucketName::parse("docs").expect("name"),
        organization_id: None,
        read_scope: ReadScope::Org,
        write_scope: WriteScope::Org,
        file_size_limit: None,
        allowed_mime_types: vec![],
        created_at: now,
        updated_at: now,
    };
    db.insert_bucket(&bucket).await.expect("bucket");
    let started = Instant::now();
    // Objects as plain files in the folder layout of the store's previous version, which
    // the embedded endpoint imports when it starts (far faster than 50 000 PUTs).
    let root = dir.path().join("objects").join(config.bucket.as_str());
    let payload = vec![7u8; 100];
    for i in 0..n {
        let key = key_of(i);
        let (has_object, has_row, size) = drift(i);
        if has_object {
            let path = root.join(&key);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
            std::fs::write(&path, &payload).expect("object");
        }
        if has_row {
            db.insert_object(&row_of(&key, &bucket.id, size, now))
                .await
                .expect("row");
        }
    }
    println!(
        "embedded: seeded {n} keys (files + SQLite rows) in {:.1?}",
        started.elapsed()
    );
    let t = Instant::now();
    let storage =
        filegate_bootstrap::storage::open_storage(&config, "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("embedded endpoint");
    println!(
        "embedded: endpoint started, files imported into its index, in {:.1?}",
        t.elapsed()
    );
    let seeded_rss = status_kib("VmRSS:");
    let t = Instant::now();
    let (report, peak) = with_peak_rss(reconcile(&storage.objects, &db, &config.bucket)).await;
    let took = t.elapsed();
    println!(
        "embedded: reconcile of {} objects x {} rows: {:.2?} ({:.0} keys/s); {}",
        report.scanned_objects,
        report.scanned_rows,
        took,
        (report.scanned_objects + report.scanned_rows) as f64 / took.as_secs_f64(),
        summary(&report)
    );
    println!(
        "embedded: RSS growth during reconcile {:.1} MiB (peak {:.0} MiB, includes the in-process endpoint); VmHWM {:.0} MiB",
        mib(peak.saturating_sub(seeded_rss)),
        mib(peak),
        mib(status_kib("VmHWM:"))
    );
    if let Some(e) = storage.embedded {
        e.shutdown().await;
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a count"));
    let memory_n = args.next().unwrap_or(1_000_000);
    let embedded_n = args.next().unwrap_or(50_000);
    let bucket = BucketName::parse("bench-bucket").expect("name");
    if memory_n > 0 {
        in_memory(memory_n, &bucket).await;
    }
    if embedded_n > 0 {
        embedded(embedded_n).await;
    }
}
