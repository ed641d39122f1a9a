//! `copy-metadata`: a SQLite deployment seeded through the real adapters is copied into
//! a fresh Postgres schema by the real binary, then read back through the ports; reruns,
//! a staged (interrupted) copy and a conflicting target.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers panic on purpose: a failed set-up step is a failed test"
)]

use std::path::Path;
use std::process::{Command, Output};

use filegate_core::domain::{BucketName, ByteSize, ContentType, MediaId, ObjectKey};
use filegate_core::managed::{
    Bucket, BucketId, BucketStore, MimePattern, ObjectId, ObjectPath, ObjectRow, ObjectRowStore,
    ObjectStatus, ReadScope, WriteScope,
};
use filegate_core::ports::{
    AuditEntry, AuditLog, Media, MediaConfirmation, MediaStatus, MediaStore,
};
use filegate_postgres::testing::TestSchema;
use filegate_postgres::{PostgresFilesDb, PostgresMediaStore};
use filegate_sqlite::{SqliteFilesDb, SqliteMediaStore};
use time::OffsetDateTime;

fn admin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_filegate-admin"));
    for var in [
        "FILEGATE_CONFIG",
        "FILEGATE_DATA_DIR",
        "FILEGATE_DATABASE_URL",
        "FILEGATE_FILES_DATABASE_URL",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("RUST_LOG", "warn");
    cmd
}

fn copy(from: &Path, to: &str, extra: &[&str]) -> Output {
    admin()
        .arg("copy-metadata")
        .arg("--from")
        .arg(from)
        .args(["--to", to])
        .args(extra)
        .output()
        .expect("runs filegate-admin")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn show(o: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", text(&o.stdout), text(&o.stderr))
}

/// `(table, source, target, copied, skipped)` from the final table on stdout.
fn counts(o: &Output) -> Vec<(String, u64, u64, u64, u64)> {
    text(&o.stdout)
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let n = |i: usize| f[i].parse::<u64>().unwrap();
            (f[0].to_owned(), n(1), n(2), n(3), n(4))
        })
        .collect()
}

/// An instant with nanoseconds, so a copy through microseconds would show.
fn at(seconds: i64, nanos: i128) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(seconds) * 1_000_000_000 + nanos).unwrap()
}

struct Seeded {
    media: Vec<Media>,
    audit: usize,
    buckets: Vec<Bucket>,
    objects: Vec<ObjectRow>,
}

fn media(key: &str, status: MediaStatus, created_at: OffsetDateTime) -> Media {
    Media {
        id: MediaId::generate(),
        bucket: BucketName::parse("filegate-media").unwrap(),
        key: ObjectKey::parse(key).unwrap(),
        organization_id: "o1".into(),
        uploader_id: "u1".into(),
        filename: key.rsplit('/').next().unwrap().into(),
        content_type: ContentType::parse("image/png").unwrap(),
        declared_size: Some(42),
        created_at,
        status,
        size: None,
        etag: None,
        upload_expires_at: (status == MediaStatus::Pending)
            .then(|| created_at + time::Duration::minutes(10)),
        multipart: None,
    }
}

/// Media in both statuses (one confirmed through the port), audit rows with and without
/// their optional fields, an organization and a project-wide bucket, objects pending,
/// confirmed and being deleted, under non-ASCII keys.
async fn seed(dir: &Path) -> Seeded {
    let store = SqliteMediaStore::open(&dir.join("filegate.db"))
        .await
        .unwrap();
    let mut rows = vec![
        media(
            "o1/m/plain.png",
            MediaStatus::Pending,
            at(1_750_000_000, 123_456_789),
        ),
        media(
            "o1/m/ünïcödé-日本.png",
            MediaStatus::Pending,
            at(1_750_000_001, 1),
        ),
        media(
            "o1/m/zz.png",
            MediaStatus::Confirmed,
            at(1_750_000_002, 999_999_999),
        ),
    ];
    for m in &rows {
        store.insert(m).await.unwrap();
    }
    rows[0] = store
        .confirm(
            &rows[0].id,
            &MediaConfirmation {
                size: 41,
                etag: Some("\"abc\"".into()),
                content_type: ContentType::parse("image/png").unwrap(),
            },
        )
        .await
        .unwrap();
    let audit = store.audit_log();
    let entries = [
        AuditEntry {
            at: at(1_750_000_003, 7),
            route: "/api/v1/media/{id}/sign-download".into(),
            method: "POST".into(),
            ip: Some("203.0.113.9".into()),
            user_id: Some("u1".into()),
            resource: Some("med_x".into()),
        },
        AuditEntry {
            at: at(1_750_000_004, 0),
            route: "/files/{key}".into(),
            method: "GET".into(),
            ip: None,
            user_id: None,
            resource: Some("o1/m/ünïcödé-日本.png".into()),
        },
        AuditEntry {
            at: at(1_750_000_005, 500),
            route: "/files/{key}".into(),
            method: "HEAD".into(),
            ip: Some("::1".into()),
            user_id: None,
            resource: None,
        },
    ];
    for e in &entries {
        audit.record(e).await.unwrap();
    }

    let files = SqliteFilesDb::open(&dir.join("files.db")).await.unwrap();
    let buckets = vec![
        Bucket {
            id: BucketId::generate(),
            name: BucketName::parse("docs").unwrap(),
            organization_id: Some("o1".into()),
            read_scope: ReadScope::Org,
            write_scope: WriteScope::Org,
            file_size_limit: Some(ByteSize(1_000_000)),
            allowed_mime_types: vec![
                MimePattern::parse("image/*").unwrap(),
                MimePattern::parse("text/plain").unwrap(),
            ],
            created_at: at(1_750_000_010, 11),
            updated_at: at(1_750_000_011, 12),
        },
        Bucket {
            id: BucketId::generate(),
            name: BucketName::parse("avatars").unwrap(),
            organization_id: None,
            read_scope: ReadScope::Public,
            write_scope: WriteScope::User,
            file_size_limit: None,
            allowed_mime_types: Vec::new(),
            created_at: at(1_750_000_012, 13),
            updated_at: at(1_750_000_012, 13),
        },
    ];
    for b in &buckets {
        files.insert_bucket(b).await.unwrap();
    }
    let object = |bucket: &Bucket,
                  segment: &str,
                  path: &str,
                  status: ObjectStatus,
                  deleted: Option<OffsetDateTime>| ObjectRow {
        id: ObjectId::generate(),
        bucket_id: bucket.id.clone(),
        organization_id: bucket.organization_id.clone(),
        owner_id: "u1".into(),
        segment: segment.into(),
        key: ObjectKey::parse(format!("{segment}/{}/{path}", bucket.name)).unwrap(),
        path: ObjectPath::parse(path).unwrap(),
        content_type: ContentType::parse("text/plain").unwrap(),
        size: 5,
        etag: (status == ObjectStatus::Confirmed).then(|| "\"e\"".to_owned()),
        status,
        created_at: at(1_750_000_020, 21),
        updated_at: at(1_750_000_021, 987_654_321),
        deleted_at: deleted,
        multipart: None,
    };
    let objects = vec![
        object(&buckets[0], "o1", "é~/ß.txt", ObjectStatus::Confirmed, None),
        object(&buckets[0], "o1", "a b.txt", ObjectStatus::Pending, None),
        object(
            &buckets[0],
            "o1",
            "z.txt",
            ObjectStatus::Confirmed,
            Some(at(1_750_000_030, 3)),
        ),
        object(&buckets[1], "u1", "日本.png", ObjectStatus::Confirmed, None),
    ];
    for o in &objects {
        files.insert_object(o).await.unwrap();
    }
    Seeded {
        media: rows,
        audit: entries.len(),
        buckets,
        objects,
    }
}

/// Every copied row, read back through the ports on both sides, is the same; the audit
/// table (which has no read port) is compared cell by cell.
async fn assert_same(dir: &Path, schema: &TestSchema, seeded: &Seeded) {
    let sqlite_media = SqliteMediaStore::open(&dir.join("filegate.db"))
        .await
        .unwrap();
    let sqlite_files = SqliteFilesDb::open(&dir.join("files.db")).await.unwrap();
    let pg_media = PostgresMediaStore::open(schema.pool().await).await.unwrap();
    let pg_files = PostgresFilesDb::open(schema.pool().await).await.unwrap();

    let from = sqlite_media.by_key(None, 100).await.unwrap();
    assert_eq!(from.len(), seeded.media.len());
    assert_eq!(pg_media.by_key(None, 100).await.unwrap(), from);
    for m in &seeded.media {
        assert_eq!(pg_media.find(&m.id).await.unwrap().as_ref(), Some(m));
    }

    for b in &seeded.buckets {
        assert_eq!(
            sqlite_files.find_bucket(&b.id).await.unwrap().as_ref(),
            Some(b)
        );
        assert_eq!(pg_files.find_bucket(&b.id).await.unwrap().as_ref(), Some(b));
    }
    let from = sqlite_files.objects_by_key(None, 100).await.unwrap();
    assert_eq!(from.len(), seeded.objects.len());
    assert_eq!(pg_files.objects_by_key(None, 100).await.unwrap(), from);
    for o in &seeded.objects {
        assert_eq!(pg_files.find_object(&o.id).await.unwrap().as_ref(), Some(o));
    }

    let columns = ["seq", "at", "route", "method", "ip", "user_id", "resource"];
    let source = filegate_sqlite::copy::Source::open(&dir.join("filegate.db"))
        .await
        .unwrap();
    let audit = source
        .rows_after(
            filegate_sqlite::copy::TableRef {
                name: "audit_log",
                columns: &columns,
                integer_key: true,
            },
            None,
            100,
        )
        .await
        .unwrap();
    assert_eq!(audit.len(), seeded.audit);
    let keys: Vec<String> = audit.iter().map(|r| r[0].clone().unwrap()).collect();
    let typed: Vec<(&str, &str)> = columns
        .iter()
        .map(|c| {
            (
                *c,
                if matches!(*c, "seq" | "at") {
                    "bigint"
                } else {
                    "text"
                },
            )
        })
        .collect();
    let mut copied = filegate_postgres::copy::rows_by_key(
        &schema.pool().await,
        filegate_postgres::copy::TableRef {
            name: "audit_log",
            columns: &typed,
        },
        &keys,
    )
    .await
    .unwrap();
    copied.sort_by_key(|r| r[0].as_deref().unwrap().parse::<i64>().unwrap());
    assert_eq!(copied, audit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_every_row_then_resumes_without_duplicating() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let seeded = seed(dir.path()).await;

    let first = copy(dir.path(), &schema.url(), &["--batch-size", "2"]);
    assert_eq!(first.status.code(), Some(0), "{}", show(&first));
    assert_eq!(
        counts(&first),
        [
            ("media".to_owned(), 3, 3, 3, 0),
            ("audit_log".to_owned(), 3, 3, 3, 0),
            ("buckets".to_owned(), 2, 2, 2, 0),
            ("objects".to_owned(), 4, 4, 4, 0),
        ],
        "{}",
        show(&first)
    );
    assert_same(dir.path(), &schema, &seeded).await;

    // The target now holds rows: a plain rerun refuses, touching nothing.
    let again = copy(dir.path(), &schema.url(), &[]);
    assert_eq!(again.status.code(), Some(1), "{}", show(&again));
    assert!(text(&again.stderr).contains("--resume"), "{}", show(&again));

    // With --resume every row is found there already, unchanged.
    let resumed = copy(dir.path(), &schema.url(), &["--resume"]);
    assert_eq!(resumed.status.code(), Some(0), "{}", show(&resumed));
    for (table, source, target, copied, skipped) in counts(&resumed) {
        assert_eq!(
            (copied, skipped),
            (0, source),
            "{table}: {}",
            show(&resumed)
        );
        assert_eq!(source, target, "{table}");
    }
    assert_same(dir.path(), &schema, &seeded).await;

    // The server appends audit rows after the copied ones.
    let pg_media = PostgresMediaStore::open(schema.pool().await).await.unwrap();
    pg_media
        .audit_log()
        .record(&AuditEntry {
            at: OffsetDateTime::now_utc(),
            route: "/files/{key}".into(),
            method: "GET".into(),
            ip: None,
            user_id: None,
            resource: None,
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_copy_resumes_to_completion() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let seeded = seed(dir.path()).await;

    // Stopped after 5 rows: all media, two audit rows, no FILES_DB rows.
    let partial = copy(
        dir.path(),
        &schema.url(),
        &["--batch-size", "2", "--limit", "5"],
    );
    assert_eq!(partial.status.code(), Some(1), "{}", show(&partial));
    assert!(
        text(&partial.stderr).contains("--limit"),
        "{}",
        show(&partial)
    );
    let targets: Vec<u64> = counts(&partial).iter().map(|c| c.2).collect();
    assert_eq!(targets, [3, 2, 0, 0], "{}", show(&partial));

    let refused = copy(dir.path(), &schema.url(), &[]);
    assert_eq!(refused.status.code(), Some(1), "{}", show(&refused));

    let resumed = copy(
        dir.path(),
        &schema.url(),
        &["--resume", "--batch-size", "2"],
    );
    assert_eq!(resumed.status.code(), Some(0), "{}", show(&resumed));
    assert_eq!(
        counts(&resumed),
        [
            ("media".to_owned(), 3, 3, 0, 3),
            ("audit_log".to_owned(), 3, 3, 1, 2),
            ("buckets".to_owned(), 2, 2, 2, 0),
            ("objects".to_owned(), 4, 4, 4, 0),
        ],
        "{}",
        show(&resumed)
    );
    assert_same(dir.path(), &schema, &seeded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_changed_in_the_target_stops_a_resumed_copy() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let seeded = seed(dir.path()).await;
    let first = copy(dir.path(), &schema.url(), &[]);
    assert_eq!(first.status.code(), Some(0), "{}", show(&first));

    // A node on Postgres confirms a row the source still has as pending.
    let pending = seeded
        .media
        .iter()
        .find(|m| m.status == MediaStatus::Pending)
        .unwrap();
    let pg_media = PostgresMediaStore::open(schema.pool().await).await.unwrap();
    pg_media
        .confirm(
            &pending.id,
            &MediaConfirmation {
                size: 7,
                etag: None,
                content_type: ContentType::parse("image/png").unwrap(),
            },
        )
        .await
        .unwrap();

    let resumed = copy(dir.path(), &schema.url(), &["--resume"]);
    assert_eq!(resumed.status.code(), Some(1), "{}", show(&resumed));
    let err = text(&resumed.stderr);
    assert!(
        err.contains(pending.id.as_str())
            && err.contains("other content")
            && err.contains("status"),
        "{}",
        show(&resumed)
    );
}

#[test]
fn a_missing_source_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = copy(dir.path(), "postgres://127.0.0.1:1/none", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("neither filegate.db nor files.db"),
        "{}",
        show(&out)
    );
}
