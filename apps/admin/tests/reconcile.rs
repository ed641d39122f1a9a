//! `reconcile`, `purge`, `stats` and `bucket` against the embedded S3 endpoint and a SQLite
//! FILES_DB: the test seeds through `ManagedService`, corrupts, then runs the real binary.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers panic on purpose: a failed set-up step is a failed test"
)]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::admin;
use filegate_bootstrap::config::Config;
use filegate_bootstrap::storage::{OpenedStorage, open_storage};
use filegate_core::domain::{ContentType, ObjectKey, Principal};
use filegate_core::managed::{
    BucketStore, CreateBucket, ManagedPolicy, ManagedService, ObjectConfirmation, ObjectRowStore,
    ObjectStatus, PresignUpload, Upload,
};
use filegate_core::ports::{Clock, Media, MediaStatus, MediaStore as _, ObjectStore, PutObject};
use filegate_core::storage::Storage;
use filegate_r2::SigV4Signer;
use filegate_sqlite::SqliteFilesDb;
use futures::StreamExt;
use serde_json::Value;
use time::OffsetDateTime;

struct FixedClock(OffsetDateTime);

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        self.0
    }
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("runs filegate-admin")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&output.stdout), text(&output.stderr)))
}

fn member() -> Principal {
    Principal {
        user_id: "u1".into(),
        active_org_id: Some("o1".into()),
        roles: vec!["owner".into()],
        platform_role: None,
        method: filegate_core::domain::AuthMethod::default(),
    }
}

fn service<D>(
    config: &Config,
    storage: &OpenedStorage,
    db: &D,
    now: OffsetDateTime,
) -> ManagedService
where
    D: BucketStore + ObjectRowStore + Clone + 'static,
{
    let clock: Arc<dyn Clock> = Arc::new(FixedClock(now));
    let signer = SigV4Signer::new(&storage.r2).unwrap();
    let db = Arc::new(db.clone());
    ManagedService::new(
        Storage::new(Arc::new(signer), clock.clone(), config.bucket.clone()),
        Arc::new(storage.objects.clone()),
        db.clone(),
        db,
        clock,
        ManagedPolicy::default(),
    )
    .unwrap()
}

fn body(bytes: &'static [u8]) -> Upload {
    Upload {
        content_type: "text/plain".into(),
        content_length: bytes.len() as u64,
        body: futures::stream::once(async move { Ok(Bytes::from_static(bytes)) }).boxed(),
        upsert: false,
    }
}

async fn put(storage: &OpenedStorage, config: &Config, key: &str, bytes: &'static [u8]) {
    storage
        .objects
        .put(
            &config.bucket,
            &ObjectKey::parse(key).unwrap(),
            PutObject {
                content_length: bytes.len() as u64,
                content_type: Some(ContentType::parse("text/plain").unwrap()),
                body: futures::stream::once(async move { Ok(Bytes::from_static(bytes)) }).boxed(),
            },
        )
        .await
        .unwrap();
}

fn key(k: &str) -> ObjectKey {
    ObjectKey::parse(k).unwrap()
}

/// Seeds one of each kind of drift in bucket `docs` of organization `o1`.
async fn seed(dir: &Path) -> (Config, OpenedStorage, SqliteFilesDb) {
    let db = SqliteFilesDb::open(&dir.join("files.db")).await.unwrap();
    seed_into(dir, db).await
}

/// [`seed`] into any FILES_DB.
async fn seed_into<D>(dir: &Path, db: D) -> (Config, OpenedStorage, D)
where
    D: BucketStore + ObjectRowStore + Clone + 'static,
{
    let config = Config::ephemeral(dir);
    let storage = open_storage(&config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let now = OffsetDateTime::now_utc();
    let svc = service(&config, &storage, &db, now);
    let p = member();
    svc.create_bucket(
        Some(&p),
        CreateBucket {
            name: "docs".into(),
            ..CreateBucket::default()
        },
    )
    .await
    .unwrap();
    for path in ["fine.txt", "gone.txt", "resized.txt", "é~/ß.txt"] {
        svc.upload(Some(&p), "docs", path, body(b"hello"))
            .await
            .unwrap();
    }
    let presign = || PresignUpload {
        content_type: "text/plain".into(),
        size: 5,
    };
    // A pending row whose object arrived (its confirm never came), and one in flight.
    svc.presign(Some(&p), "docs", "arrived.txt", presign())
        .await
        .unwrap();
    put(&storage, &config, "o1/docs/arrived.txt", b"world").await;
    svc.presign(Some(&p), "docs", "in-flight.txt", presign())
        .await
        .unwrap();
    // A pending row presigned two hours ago, never uploaded: its 10-minute URL expired
    // well over the 1-hour grace ago, so it is abandoned (not kept for the 7-day maximum).
    let old = service(&config, &storage, &db, now - Duration::from_hours(2));
    old.presign(Some(&p), "docs", "abandoned.txt", presign())
        .await
        .unwrap();
    // Corruption: an object deleted behind its row, an orphan, a row's size changed.
    storage
        .objects
        .delete(&config.bucket, &key("o1/docs/gone.txt"))
        .await
        .unwrap();
    put(&storage, &config, "o1/docs/orphan.txt", b"orphan!").await;
    let resized = db
        .find_object_by_key(&key("o1/docs/resized.txt"))
        .await
        .unwrap()
        .unwrap();
    db.confirm_object(
        &resized.id,
        &ObjectConfirmation {
            size: 999,
            etag: resized.etag.clone(),
            content_type: resized.content_type.clone(),
            owner_id: resized.owner_id.clone(),
            at: now,
        },
    )
    .await
    .unwrap();
    (config, storage, db)
}

fn count(report: &Value, category: &str) -> u64 {
    report["categories"][category]["count"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_and_purge_work_against_a_postgres_files_db() {
    let Some(schema) = filegate_postgres::testing::TestSchema::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = filegate_postgres::PostgresFilesDb::open(schema.pool().await)
        .await
        .unwrap();
    let (_config, _storage, db) = seed_into(dir.path(), db).await;
    let on_pg = |args: &[&str]| {
        run(admin(dir.path())
            .env("FILEGATE_DATABASE_URL", schema.url())
            .args(args))
    };

    let dry = on_pg(&["reconcile", "--json"]);
    assert_eq!(dry.status.code(), Some(3), "{}", text(&dry.stderr));
    let report = json(&dry);
    // Exactly the seeded drift: had Postgres ordered `é~/ß.txt` otherwise than storage
    // lists it, the merge would also report it missing and orphaned.
    for (category, n) in [
        ("orphan", 1),
        ("missing", 1),
        ("stale_pending", 1),
        ("arrived", 1),
        ("mismatch", 1),
    ] {
        assert_eq!(count(&report, category), n, "{category}: {report:#}");
    }

    // Purge finds the abandoned pending row in Postgres and removes it.
    let abandoned = key("o1/docs/abandoned.txt");
    let dry = on_pg(&["purge", "--dry-run", "--json"]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert_eq!(
        json(&dry)["stale_pending"]["count"],
        1,
        "{}",
        text(&dry.stdout)
    );
    assert!(db.find_object_by_key(&abandoned).await.unwrap().is_some());
    let purged = on_pg(&["purge", "--yes", "--json"]);
    assert!(purged.status.success(), "{}", text(&purged.stderr));
    assert_eq!(json(&purged)["purged"], 1, "{}", text(&purged.stdout));
    assert!(db.find_object_by_key(&abandoned).await.unwrap().is_none());

    let applied = on_pg(&[
        "reconcile",
        "--apply",
        "--yes",
        "--delete-orphans",
        "--older-than",
        "0s",
        "--json",
    ]);
    assert_eq!(
        applied.status.code(),
        Some(0),
        "{}\n{}",
        text(&applied.stdout),
        text(&applied.stderr)
    );
    let resized = db
        .find_object_by_key(&key("o1/docs/resized.txt"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resized.size, 5);
    assert!(
        db.find_object_by_key(&key("o1/docs/gone.txt"))
            .await
            .unwrap()
            .is_none()
    );
    let again = on_pg(&["reconcile", "--json"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stdout));

    let purged = on_pg(&["purge", "--yes", "--json"]);
    assert_eq!(purged.status.code(), Some(0), "{}", text(&purged.stderr));
    assert_eq!(json(&purged)["purged"], 0, "{}", text(&purged.stdout));
    let stats = on_pg(&["stats", "--json"]);
    assert_eq!(stats.status.code(), Some(0), "{}", text(&stats.stderr));
    // Nothing was written to SQLite files.
    assert!(!dir.path().join("files.db").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_reports_then_fixes_every_kind_of_drift() {
    let dir = tempfile::tempdir().unwrap();
    let (config, storage, db) = seed(dir.path()).await;
    let rows_before = db.objects_by_key(None, 100).await.unwrap();

    // Dry run: the report, exit 3, nothing changed.
    let dry = run(admin(dir.path()).args(["reconcile", "--json"]));
    assert_eq!(dry.status.code(), Some(3), "{}", text(&dry.stderr));
    let report = json(&dry);
    for (category, n) in [
        ("orphan", 1),
        ("missing", 1),
        ("stale_pending", 1),
        ("arrived", 1),
        ("mismatch", 1),
    ] {
        assert_eq!(count(&report, category), n, "{category}: {report:#}");
    }
    assert_eq!(
        report["categories"]["orphan"]["examples"][0],
        "o1/docs/orphan.txt"
    );
    assert_eq!(report["categories"]["orphan"]["bytes"], 7);
    assert_eq!(report["in_flight"], 1);
    assert_eq!(report["applied"], false);
    assert_eq!(
        db.objects_by_key(None, 100).await.unwrap(),
        rows_before,
        "a dry run changes nothing"
    );
    assert!(
        storage
            .objects
            .head(&config.bucket, &key("o1/docs/orphan.txt"))
            .await
            .is_ok()
    );

    // The text report says the same.
    let plain = run(admin(dir.path()).arg("reconcile"));
    assert_eq!(plain.status.code(), Some(3));
    assert!(
        text(&plain.stdout).contains("5 difference(s) found"),
        "{}",
        text(&plain.stdout)
    );

    // Orphans are kept without --delete-orphans: still exit 3.
    let kept = run(admin(dir.path()).args(["reconcile", "--apply", "--yes", "--json"]));
    assert_eq!(kept.status.code(), Some(3), "{}", text(&kept.stderr));
    let kept = json(&kept);
    assert_eq!(kept["categories"]["orphan"]["skipped"], 1);
    assert_eq!(kept["categories"]["arrived"]["fixed"], 1);

    // Apply with orphans: everything fixed, exit 0.
    let applied = run(admin(dir.path()).args([
        "reconcile",
        "--apply",
        "--yes",
        "--delete-orphans",
        "--older-than",
        "0s",
        "--json",
    ]));
    assert_eq!(
        applied.status.code(),
        Some(0),
        "{}\n{}",
        text(&applied.stdout),
        text(&applied.stderr)
    );
    assert_eq!(count(&json(&applied), "orphan"), 1);

    let arrived = db
        .find_object_by_key(&key("o1/docs/arrived.txt"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(arrived.status, ObjectStatus::Confirmed);
    assert_eq!(arrived.size, 5);
    let resized = db
        .find_object_by_key(&key("o1/docs/resized.txt"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resized.size, 5);
    assert!(
        db.find_object_by_key(&key("o1/docs/gone.txt"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        db.find_object_by_key(&key("o1/docs/abandoned.txt"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        db.find_object_by_key(&key("o1/docs/in-flight.txt"))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        db.find_object_by_key(&key("o1/docs/é~/ß.txt"))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        storage
            .objects
            .head(&config.bucket, &key("o1/docs/orphan.txt"))
            .await
            .is_err()
    );

    // Again: clean, exit 0.
    let again = run(admin(dir.path()).args(["reconcile", "--json"]));
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stdout));
    let again = json(&again);
    assert_eq!(
        again["categories"]
            .as_object()
            .unwrap()
            .values()
            .map(|t| t["count"].as_u64().unwrap())
            .sum::<u64>(),
        0
    );
    assert_eq!(again["in_flight"], 1);

    // stats: the live objects of o1.
    let stats = run(admin(dir.path()).args(["stats", "--json"]));
    assert!(stats.status.success(), "{}", text(&stats.stderr));
    let stats = json(&stats);
    assert_eq!(stats["organizations"]["o1"]["objects"], 4, "{stats:#}");
    assert_eq!(stats["organizations"]["o1"]["pending"], 1, "{stats:#}");

    if let Some(e) = storage.embedded {
        e.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_limits_to_a_prefix_and_resumes_after_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let (_config, storage, _db) = seed(dir.path()).await;
    let only = run(admin(dir.path()).args(["reconcile", "--json", "--prefix", "o1/docs/o"]));
    assert_eq!(only.status.code(), Some(3));
    let only = json(&only);
    assert_eq!(count(&only, "orphan"), 1);
    assert_eq!(count(&only, "missing"), 0);
    let after =
        run(admin(dir.path()).args(["reconcile", "--json", "--start-after", "o1/docs/orphan.txt"]));
    let after = json(&after);
    assert_eq!(count(&after, "orphan"), 0);
    assert_eq!(
        count(&after, "mismatch"),
        1,
        "resized.txt sorts after orphan.txt"
    );
    let bucket = run(admin(dir.path()).args(["reconcile", "--json", "--bucket", "other"]));
    assert_eq!(bucket.status.code(), Some(0));
    if let Some(e) = storage.embedded {
        e.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_removes_stale_pending_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let (_config, storage, db) = seed(dir.path()).await;
    let dry = run(admin(dir.path()).args(["purge", "--dry-run", "--json"]));
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert_eq!(json(&dry)["stale_pending"]["count"], 1);
    assert!(
        db.find_object_by_key(&key("o1/docs/abandoned.txt"))
            .await
            .unwrap()
            .is_some()
    );
    let done = run(admin(dir.path()).args(["purge", "--yes", "--json"]));
    assert!(done.status.success(), "{}", text(&done.stderr));
    assert_eq!(json(&done)["purged"], 1);
    assert!(
        db.find_object_by_key(&key("o1/docs/abandoned.txt"))
            .await
            .unwrap()
            .is_none()
    );
    if let Some(e) = storage.embedded {
        e.shutdown().await;
    }
}

#[test]
fn bucket_commands_follow_the_api_rules() {
    let dir = tempfile::tempdir().unwrap();
    let migrated = run(admin(dir.path()).arg("migrate"));
    assert!(migrated.status.success(), "{}", text(&migrated.stderr));
    let created = run(admin(dir.path()).args([
        "bucket",
        "create",
        "reports",
        "--org",
        "o1",
        "--read-scope",
        "org",
        "--allowed-mime-types",
        "application/pdf",
        "--json",
    ]));
    assert!(created.status.success(), "{}", text(&created.stderr));
    assert_eq!(json(&created)["organizationId"], "o1");
    let dup = run(admin(dir.path()).args(["bucket", "create", "reports", "--org", "o1"]));
    assert_eq!(dup.status.code(), Some(1));
    let bad = run(admin(dir.path()).args(["bucket", "create", "x", "--read-scope", "nope"]));
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("readScope"),
        "{}",
        text(&bad.stderr)
    );
    let updated = run(admin(dir.path()).args([
        "bucket",
        "update",
        "reports",
        "--org",
        "o1",
        "--file-size-limit",
        "1024",
        "--json",
    ]));
    assert!(updated.status.success(), "{}", text(&updated.stderr));
    assert_eq!(json(&updated)["fileSizeLimit"], 1024);
    let listed = run(admin(dir.path()).args(["bucket", "list", "--org", "o1", "--json"]));
    let names: Vec<String> = json(&listed)
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(names.contains(&"reports".to_owned()), "{names:?}");
    // Another organization does not see it.
    let hidden = run(admin(dir.path()).args(["bucket", "show", "reports", "--org", "o2"]));
    assert_eq!(hidden.status.code(), Some(1));
    let deleted =
        run(admin(dir.path()).args(["bucket", "delete", "reports", "--org", "o1", "--yes"]));
    assert!(deleted.status.success(), "{}", text(&deleted.stderr));
    let gone = run(admin(dir.path()).args(["bucket", "show", "reports", "--org", "o1"]));
    assert_eq!(gone.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_non_empty_bucket_needs_empty() {
    let dir = tempfile::tempdir().unwrap();
    let (_config, storage, db) = seed(dir.path()).await;
    let refused = run(admin(dir.path()).args(["bucket", "delete", "docs", "--org", "o1", "--yes"]));
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("--empty"),
        "{}",
        text(&refused.stderr)
    );
    let done = run(admin(dir.path()).args([
        "bucket", "delete", "docs", "--org", "o1", "--yes", "--empty",
    ]));
    assert!(done.status.success(), "{}", text(&done.stderr));
    assert!(db.objects_by_key(None, 100).await.unwrap().is_empty());
    if let Some(e) = storage.embedded {
        e.shutdown().await;
    }
}

/// A presign-only media row (as `sign-upload` writes it) with its object in the bucket.
async fn media_file(
    media: &filegate_sqlite::SqliteMediaStore,
    storage: &OpenedStorage,
    config: &Config,
    org: &str,
    name: &str,
    status: MediaStatus,
) -> ObjectKey {
    use filegate_core::domain::MediaId;
    let key = key(&format!("org/{org}/0b7e4c1a-{name}"));
    media
        .insert(&Media {
            id: MediaId::generate(),
            bucket: config.bucket.clone(),
            key: key.clone(),
            organization_id: org.into(),
            uploader_id: "u1".into(),
            filename: name.into(),
            content_type: ContentType::parse("text/plain").unwrap(),
            declared_size: Some(5),
            created_at: OffsetDateTime::now_utc() - Duration::from_hours(72),
            status,
            size: (status == MediaStatus::Confirmed).then_some(5),
            etag: None,
            upload_expires_at: Some(OffsetDateTime::now_utc() + Duration::from_mins(10)),
            multipart: None,
        })
        .await
        .unwrap();
    put(storage, config, key.as_str(), b"media").await;
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_orphans_never_touches_presign_only_files_or_uncovered_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (config, storage, _db) = seed(dir.path()).await;
    let media = filegate_sqlite::SqliteMediaStore::open(&dir.path().join("filegate.db"))
        .await
        .unwrap();
    let owned = [
        media_file(
            &media,
            &storage,
            &config,
            "o1",
            "report.txt",
            MediaStatus::Confirmed,
        )
        .await,
        // Uploaded, never confirmed.
        media_file(
            &media,
            &storage,
            &config,
            "o2",
            "photo.txt",
            MediaStatus::Pending,
        )
        .await,
    ];
    // No row owns these: one in the media key space, one in a space no table covers.
    put(&storage, &config, "org/o1/stray.txt", b"stray").await;
    put(&storage, &config, "backups/db.dump", b"dump").await;

    let applied = run(admin(dir.path()).args([
        "reconcile",
        "--apply",
        "--yes",
        "--delete-orphans",
        "--older-than",
        "0s",
        "--json",
    ]));
    let report = json(&applied);
    assert_eq!(
        applied.status.code(),
        Some(0),
        "{report:#}\n{}",
        text(&applied.stderr)
    );

    let exists = |k: &str| {
        let (storage, config, k) = (&storage, &config, key(k));
        async move { storage.objects.head(&config.bucket, &k).await.is_ok() }
    };
    for k in &owned {
        assert!(
            exists(k.as_str()).await,
            "{k} is owned by a media row: {report:#}"
        );
    }
    assert!(exists("o1/docs/fine.txt").await, "a managed file");
    assert!(
        exists("backups/db.dump").await,
        "no table covers backups/: {report:#}"
    );
    assert!(
        !exists("org/o1/stray.txt").await,
        "an orphan of the media key space"
    );
    assert!(
        !exists("o1/docs/orphan.txt").await,
        "an orphan of a managed bucket"
    );
    assert_eq!(report["categories"]["uncovered"]["count"], 1, "{report:#}");
    assert_eq!(report["categories"]["orphan"]["count"], 2, "{report:#}");
    for k in &owned {
        let row = media.find_by_key(k).await.unwrap().unwrap();
        assert_eq!(
            row.status,
            MediaStatus::Confirmed,
            "{k}: arrived uploads are confirmed"
        );
        assert_eq!(row.size, Some(5));
    }

    // purge and stats see the media table too.
    let stats = run(admin(dir.path()).args(["stats", "--json"]));
    let stats = json(&stats);
    assert_eq!(stats["media"]["objects"], 2, "{stats:#}");
    assert_eq!(stats["organizations"]["o2"]["objects"], 1, "{stats:#}");
    if let Some(e) = storage.embedded {
        e.shutdown().await;
    }
}
