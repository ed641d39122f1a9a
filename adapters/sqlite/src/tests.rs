use super::*;
use crate::error::from_sqlite;
use crate::migrations::{MIGRATIONS, Migration, apply_pending};
use deadpool_sqlite::rusqlite::ffi;
use filegate_core::ports::{AuditEntry, AuditLog};
use filegate_testkit::media_store::media_store_contract;
use std::path::PathBuf;
use tempfile::TempDir;

fn temp_db() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/filegate.db");
    (dir, path)
}

fn row(org: &str, nanos: i128) -> Media {
    let id = MediaId::generate();
    Media {
        key: ObjectKey::parse(format!("{org}/{id}")).unwrap(),
        id,
        bucket: BucketName::parse("media").unwrap(),
        organization_id: org.to_owned(),
        uploader_id: "u1".to_owned(),
        filename: "a.txt".to_owned(),
        content_type: ContentType::parse("text/plain").unwrap(),
        declared_size: Some(3),
        created_at: OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap(),
        status: MediaStatus::Pending,
        size: None,
        etag: None,
        upload_expires_at: None,
        multipart: None,
    }
}

fn raw(path: &Path) -> Connection {
    Connection::open(path).unwrap()
}

fn internal_message(e: &Error) -> String {
    match e {
        Error::Internal { source } => source.to_string(),
        other => panic!("expected Error::Internal, got {other:?}"),
    }
}

#[tokio::test]
async fn sqlite_media_store_passes_the_contract() {
    let (_dir, path) = temp_db();
    let store = SqliteMediaStore::open(&path).await.unwrap();
    media_store_contract(&store).await;
    // Run twice on one database: the suite must not depend on an empty store.
    media_store_contract(&store).await;
}

#[tokio::test]
async fn open_creates_parent_directories_and_file_and_pings() {
    let (_dir, path) = temp_db();
    assert!(!path.exists());
    let store = SqliteMediaStore::open(&path).await.unwrap();
    assert!(path.is_file());
    store.ping().await.unwrap();
}

#[tokio::test]
async fn data_survives_reopening_and_migrations_are_idempotent() {
    let (_dir, path) = temp_db();
    let m = row("o1", 1_700_000_000_000_000_001);
    SqliteMediaStore::open(&path)
        .await
        .unwrap()
        .insert(&m)
        .await
        .unwrap();
    let again = SqliteMediaStore::open(&path).await.unwrap();
    assert_eq!(again.find(&m.id).await.unwrap(), Some(m));
    assert!(migrate(&path).await.unwrap().is_empty());
    let count: i64 = raw(&path)
        .query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, i64::try_from(MIGRATIONS.len()).unwrap());
}

#[tokio::test]
async fn migrate_applies_everything_once() {
    let (_dir, path) = temp_db();
    let applied = migrate(&path).await.unwrap();
    assert_eq!(
        applied.iter().map(|s| s.version).collect::<Vec<_>>(),
        MIGRATIONS.iter().map(|m| m.version).collect::<Vec<_>>()
    );
    assert!(applied.iter().all(|s| s.applied_at.is_some()));
    assert!(migrate(&path).await.unwrap().is_empty());
}

#[tokio::test]
async fn migration_status_before_and_after() {
    let (_dir, path) = temp_db();
    let before = migration_status(&path).await.unwrap();
    assert_eq!(before.len(), MIGRATIONS.len());
    assert!(before.iter().all(|s| s.applied_at.is_none()));
    assert!(!path.exists(), "status must not create the database");

    let applied = migrate(&path).await.unwrap();
    let after = migration_status(&path).await.unwrap();
    assert_eq!(
        after, applied,
        "status lists what migrate applied, with the same times"
    );
    let at = after[0].applied_at.as_deref().unwrap();
    assert!(
        OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).is_ok(),
        "applied_at is RFC 3339: {at}"
    );
}

#[tokio::test]
async fn migration_status_of_an_empty_file_is_all_pending() {
    let (dir, _) = temp_db();
    let path = dir.path().join("empty.db");
    std::fs::write(&path, b"").unwrap();
    let status = migration_status(&path).await.unwrap();
    assert!(status.iter().all(|s| s.applied_at.is_none()));
}

#[test]
fn known_migrations_are_numbered_from_one_without_gaps() {
    for (i, m) in MIGRATIONS.iter().enumerate() {
        assert_eq!(m.version as usize, i + 1, "migration {}", m.name);
        assert!(!m.sql.trim().is_empty());
    }
}

#[tokio::test]
async fn a_database_from_a_newer_binary_is_refused() {
    let (_dir, path) = temp_db();
    migrate(&path).await.unwrap();
    raw(&path)
        .execute(
            "INSERT INTO schema_migrations VALUES (9999, 'from_the_future', '2100-01-01T00:00:00Z')",
            [],
        )
        .unwrap();

    let err = SqliteMediaStore::open(&path).await.unwrap_err();
    let msg = internal_message(&err);
    assert!(msg.contains("9999") && msg.contains("newer"), "{msg}");
    assert!(internal_message(&migrate(&path).await.unwrap_err()).contains("newer"));
    assert!(internal_message(&migration_status(&path).await.unwrap_err()).contains("newer"));
}

static BROKEN: &[Migration] = &[
    Migration {
        version: 1,
        name: "good",
        sql: "CREATE TABLE good (x INTEGER);",
    },
    Migration {
        version: 2,
        name: "broken",
        sql: "CREATE TABLE half (x INTEGER); THIS IS NOT SQL;",
    },
];

#[tokio::test]
async fn a_failed_migration_leaves_nothing_half_applied() {
    let (_dir, path) = temp_db();
    let pool = pool::open(&path, pool::Ownership::Owned).await.unwrap();
    let err = apply_pending(&pool, BROKEN).await.unwrap_err();
    assert!(internal_message(&err).contains("0002_broken"), "{err:?}");

    let c = raw(&path);
    let tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(tables, ["good", "schema_migrations"]);
    let versions: Vec<i64> = c
        .prepare("SELECT version FROM schema_migrations")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(versions, [1]);
}

#[tokio::test]
async fn every_connection_gets_the_pragmas() {
    use rusqlite::types::Value;
    let (_dir, path) = temp_db();
    let store = SqliteMediaStore::open(&path).await.unwrap();
    // Hold several at once so they are distinct connections, each through post_create.
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(store.pool.get().await.unwrap());
    }
    for conn in &conns {
        let (mode, fk, busy, sync) = conn
            .interact(|c| {
                let q = |sql: &str| c.query_row(sql, [], |r| r.get::<_, rusqlite::types::Value>(0));
                Ok::<_, rusqlite::Error>((
                    q("PRAGMA journal_mode")?,
                    q("PRAGMA foreign_keys")?,
                    q("PRAGMA wal_autocheckpoint")?,
                    q("PRAGMA synchronous")?,
                ))
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(mode, Value::Text("wal".into()));
        assert_eq!(fk, Value::Integer(1));
        // The checkpointer checkpoints; a commit only past the backstop.
        assert_eq!(busy, Value::Integer(10_000));
        assert_eq!(sync, Value::Integer(1), "synchronous = NORMAL");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_inserts_from_many_tasks_all_land() {
    let (_dir, path) = temp_db();
    let store = SqliteMediaStore::open(&path).await.unwrap();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let m = row("busy-org", 1_700_000_000_000_000_000 + i);
                store.insert(&m).await.map(|()| m.id)
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap().unwrap());
    }
    let page = store.list("busy-org", None, 1000, None).await.unwrap();
    assert_eq!(page.items.len(), 64);
    assert!(ids.iter().all(|id| page.items.iter().any(|m| &m.id == id)));
}

/// Group commit keeps each caller's own result: in batches of concurrent inserts, the
/// rows that repeat a stored key fail alone with `Conflict`, and every other row commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_row_fails_alone_in_its_batch() {
    let (_dir, path) = temp_db();
    let store = SqliteMediaStore::open(&path).await.unwrap();
    let taken = row("batch-org", 1_700_000_000_000_000_000);
    store.insert(&taken).await.unwrap();
    let mut tasks = Vec::new();
    for round in 0..20 {
        let start = tokio::sync::Barrier::new(16);
        let start = std::sync::Arc::new(start);
        for i in 0..16_i128 {
            let (store, start) = (store.clone(), start.clone());
            let mut m = row("batch-org", 1_700_000_000_000_000_001 + round * 100 + i);
            // One row per round repeats the stored key.
            let dup = i == 7;
            if dup {
                m.key = taken.key.clone();
            }
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                (dup, m.id.clone(), store.insert(&m).await)
            }));
        }
    }
    let mut committed = Vec::new();
    for t in tasks {
        let (dup, id, result) = t.await.unwrap();
        if dup {
            assert!(
                matches!(result, Err(Error::Conflict { .. })),
                "the duplicate: {result:?}"
            );
            assert!(
                store.find(&id).await.unwrap().is_none(),
                "nothing of it stored"
            );
        } else {
            assert!(
                result.is_ok(),
                "a valid row beside the duplicate: {result:?}"
            );
            committed.push(id);
        }
    }
    assert_eq!(committed.len(), 20 * 15);
    for id in &committed {
        assert!(store.find(id).await.unwrap().is_some(), "{id} committed");
    }
    assert!(
        store.inserts.largest_batch() > 1,
        "the inserts were never batched, so the test proved nothing"
    );
}

#[tokio::test]
async fn sizes_beyond_i64_are_rejected_without_writing() {
    let (_dir, path) = temp_db();
    let store = SqliteMediaStore::open(&path).await.unwrap();
    let mut m = row("o1", 1);
    m.declared_size = Some(u64::MAX);
    match store.insert(&m).await {
        Err(Error::Validation(fields)) => assert_eq!(fields[0].field, "size"),
        other => panic!("expected a size validation error, got {other:?}"),
    }
    assert_eq!(store.find(&m.id).await.unwrap(), None);
    m.declared_size = Some(i64::MAX.unsigned_abs());
    store.insert(&m).await.unwrap();
    assert_eq!(store.find(&m.id).await.unwrap(), Some(m));
}

#[tokio::test]
async fn corrupt_rows_are_internal_errors() {
    let (_dir, path) = temp_db();
    let store = SqliteMediaStore::open(&path).await.unwrap();
    raw(&path)
        .execute(
            "INSERT INTO media VALUES ('med_not-hex', 'media', 'k', 'o1', 'u', 'f', 'text/plain', NULL, 1, 'pending', NULL, NULL, NULL, NULL, NULL)",
            [],
        )
        .unwrap();
    let err = store.list("o1", None, 10, None).await.unwrap_err();
    assert!(internal_message(&err).contains("invalid id"), "{err:?}");
}

#[tokio::test]
async fn cursors_outside_the_storable_range_do_not_fail() {
    let (_dir, path) = temp_db();
    let store = SqliteMediaStore::open(&path).await.unwrap();
    let m = row("o1", 5);
    store.insert(&m).await.unwrap();
    let far = |year: i32| MediaCursor {
        created_at: time::Date::from_calendar_date(year, time::Month::January, 1)
            .unwrap()
            .midnight()
            .assume_utc(),
        id: MediaId::generate(),
    };
    let future = store.list("o1", None, 10, Some(far(9000))).await.unwrap();
    assert_eq!(future.items, [m]);
    let past = store.list("o1", None, 10, Some(far(1000))).await.unwrap();
    assert!(past.items.is_empty() && past.next.is_none());
}

#[tokio::test]
async fn listing_uses_the_organization_index() {
    let (_dir, path) = temp_db();
    SqliteMediaStore::open(&path).await.unwrap();
    let plan: Vec<String> = raw(&path)
        .prepare(
            "EXPLAIN QUERY PLAN SELECT id FROM media WHERE organization_id = ?1 \
             AND (created_at, id) < (?2, ?3) ORDER BY created_at DESC, id DESC LIMIT ?4",
        )
        .unwrap()
        .query_map(params!["o", 1, "x", 3], |r| r.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let plan = plan.join("\n");
    assert!(plan.contains("media_org_created_id"), "{plan}");
    assert!(
        !plan.contains("TEMP B-TREE"),
        "listing must not sort: {plan}"
    );
}

#[test]
fn sqlite_errors_map_to_the_port_contract() {
    use rusqlite::ErrorCode::{ConstraintViolation, DatabaseBusy, DatabaseLocked};
    let failure = |code, extended| {
        rusqlite::Error::SqliteFailure(
            ffi::Error {
                code,
                extended_code: extended,
            },
            None,
        )
    };
    assert!(matches!(
        from_sqlite(failure(ConstraintViolation, ffi::SQLITE_CONSTRAINT_UNIQUE)),
        Error::Conflict { what: "media" }
    ));
    assert!(matches!(
        from_sqlite(failure(
            ConstraintViolation,
            ffi::SQLITE_CONSTRAINT_PRIMARYKEY
        )),
        Error::Conflict { .. }
    ));
    assert!(matches!(
        from_sqlite(failure(ConstraintViolation, ffi::SQLITE_CONSTRAINT_CHECK)),
        Error::Internal { .. }
    ));
    assert!(matches!(
        from_sqlite(failure(DatabaseBusy, ffi::SQLITE_BUSY)),
        Error::Unavailable { .. }
    ));
    assert!(matches!(
        from_sqlite(failure(DatabaseLocked, ffi::SQLITE_LOCKED)),
        Error::Unavailable { .. }
    ));
    assert!(matches!(
        from_sqlite(rusqlite::Error::InvalidColumnType(
            0,
            "x".into(),
            rusqlite::types::Type::Text
        )),
        Error::Internal { .. }
    ));
}

#[tokio::test]
async fn a_held_write_lock_surfaces_as_unavailable() {
    // A second process holding the write lock past busy_timeout must look like "busy",
    // not like a bug. Uses a short-timeout raw connection to keep the test fast.
    let (_dir, path) = temp_db();
    SqliteMediaStore::open(&path).await.unwrap();
    let holder = raw(&path);
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let other = raw(&path);
    other.busy_timeout(std::time::Duration::ZERO).unwrap();
    let e = other
        .execute("INSERT INTO schema_migrations VALUES (500, 'x', 'y')", [])
        .unwrap_err();
    assert!(matches!(from_sqlite(e), Error::Unavailable { .. }));
    holder.execute_batch("ROLLBACK").unwrap();
}

/// The audit table as stored, oldest first: (at nanos, route, method, ip, user_id, resource).
type AuditRow = (
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn audit_rows(path: &Path) -> Vec<AuditRow> {
    raw(path)
        .prepare("SELECT at, route, method, ip, user_id, resource FROM audit_log ORDER BY seq")
        .unwrap()
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test]
async fn the_audit_log_writes_rows_into_the_media_database() {
    let (_dir, path) = temp_db();
    let store = SqliteMediaStore::open(&path).await.unwrap();
    let log = store.audit_log();
    let full = AuditEntry {
        at: OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap(),
        route: "/api/v1/media/{id}/sign-download".to_owned(),
        method: "POST".to_owned(),
        ip: Some("2001:db8::1".to_owned()),
        user_id: Some("user-ü".to_owned()),
        resource: Some("med_0123456789abcdef0123456789abcdef".to_owned()),
    };
    let anonymous = AuditEntry {
        at: OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_790).unwrap(),
        route: "/api/v1/media".to_owned(),
        method: "GET".to_owned(),
        ip: None,
        user_id: None,
        resource: None,
    };
    log.record(&full).await.unwrap();
    log.record(&anonymous).await.unwrap();
    // Shares the store's pool: a media write in between works and lands in the same file.
    store.insert(&row("o1", 1)).await.unwrap();
    log.clone().record(&full).await.unwrap();

    let as_row = |e: &AuditEntry| -> AuditRow {
        (
            i64::try_from(e.at.unix_timestamp_nanos()).unwrap(),
            e.route.clone(),
            e.method.clone(),
            e.ip.clone(),
            e.user_id.clone(),
            e.resource.clone(),
        )
    };
    assert_eq!(
        audit_rows(&path),
        [as_row(&full), as_row(&anonymous), as_row(&full)]
    );
}

#[tokio::test]
async fn audit_times_outside_the_storable_range_are_internal_errors() {
    let (_dir, path) = temp_db();
    let log = SqliteMediaStore::open(&path).await.unwrap().audit_log();
    let entry = AuditEntry {
        at: time::Date::from_calendar_date(9000, time::Month::January, 1)
            .unwrap()
            .midnight()
            .assume_utc(),
        route: "/r".to_owned(),
        method: "GET".to_owned(),
        ip: None,
        user_id: None,
        resource: None,
    };
    let err = log.record(&entry).await.unwrap_err();
    assert!(internal_message(&err).contains("storable range"), "{err:?}");
    assert!(audit_rows(&path).is_empty());
}

#[tokio::test]
async fn an_existing_v1_database_gains_the_audit_table() {
    let (_dir, path) = temp_db();
    let pool = pool::open(&path, pool::Ownership::Owned).await.unwrap();
    apply_pending(&pool, &MIGRATIONS[..1]).await.unwrap();
    pool.close();
    let m = row("o1", 7);
    raw(&path)
        .execute(
            "INSERT INTO media VALUES (?1, 'media', ?2, 'o1', 'u1', 'a.txt', 'text/plain', 3, 7)",
            params![m.id.as_str(), m.key.as_str()],
        )
        .unwrap();

    let applied = migrate(&path).await.unwrap();
    assert_eq!(
        applied.iter().map(|s| s.name).collect::<Vec<_>>(),
        ["audit", "media_lifecycle", "media_multipart"]
    );
    let store = SqliteMediaStore::open(&path).await.unwrap();
    // Rows from before the lifecycle were listed and served as files: they stay so.
    let migrated = Media {
        status: MediaStatus::Confirmed,
        ..m
    };
    assert_eq!(store.find(&migrated.id).await.unwrap(), Some(migrated));
    assert!(audit_rows(&path).is_empty());
}

#[tokio::test]
async fn the_lifecycle_migration_refuses_unknown_statuses() {
    let (_dir, path) = temp_db();
    SqliteMediaStore::open(&path).await.unwrap();
    let m = row("o1", 7);
    let err = raw(&path)
        .execute(
            "INSERT INTO media (id, bucket, key, organization_id, uploader_id, filename, \
             content_type, created_at, status) \
             VALUES (?1, 'media', ?2, 'o1', 'u1', 'a.txt', 'text/plain', 7, 'done')",
            params![m.id.as_str(), m.key.as_str()],
        )
        .unwrap_err();
    assert!(err.to_string().contains("CHECK"), "{err}");
}

/// How often SQLite had to parse and plan `sql` again while it ran once per argument
/// set: more than zero means every call of that statement pays a fresh prepare.
pub(crate) fn prepared_again(
    path: &Path,
    sql: &str,
    runs: Vec<Vec<rusqlite::types::Value>>,
) -> i32 {
    let conn = raw(path);
    let mut stmt = conn.prepare(sql).unwrap();
    for args in runs {
        let mut rows = stmt.query(rusqlite::params_from_iter(args)).unwrap();
        while rows.next().unwrap().is_some() {}
    }
    stmt.get_status(rusqlite::StatementStatus::RePrepare)
}

#[tokio::test]
async fn no_statement_is_prepared_again() {
    use rusqlite::types::Value::{Integer, Null, Text};
    let (_dir, path) = temp_db();
    let store = SqliteMediaStore::open(&path).await.unwrap();
    for n in 0..3 {
        store.insert(&row("o1", 1_000 + n)).await.unwrap();
    }
    let text = |s: &str| Text(s.to_owned());
    for (name, sql, runs) in [
        (
            "list, first page",
            LIST_FIRST.as_str(),
            vec![
                vec![text("o1"), Null, Integer(2)],
                vec![text("o1"), text("pending"), Integer(51)],
            ],
        ),
        (
            "list, next page",
            LIST_AFTER.as_str(),
            vec![
                vec![text("o1"), Null, Integer(i64::MAX), text("x"), Integer(2)],
                vec![text("o2"), Null, Integer(5), text("y"), Integer(3)],
            ],
        ),
        (
            "by key",
            BY_KEY.as_str(),
            vec![vec![Null, Integer(2)], vec![text("a"), Integer(7)]],
        ),
        (
            "find",
            FIND_BY_ID.as_str(),
            vec![vec![text("med_1")], vec![text("med_2")]],
        ),
    ] {
        assert_eq!(prepared_again(&path, sql, runs), 0, "{name}: {sql}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_waits_for_a_lock_held_briefly_elsewhere() {
    let (_dir, path) = temp_db();
    let store = SqliteMediaStore::open(&path).await.unwrap();
    let holder = raw(&path);
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(30));
        holder.execute_batch("COMMIT").unwrap();
    });
    let m = row("o1", 1);
    store
        .insert(&m)
        .await
        .expect("waits for the lock, then commits");
    release.join().unwrap();
    assert_eq!(store.find(&m.id).await.unwrap(), Some(m));
}

#[test]
fn the_busy_handler_gives_up_after_the_busy_timeout() {
    let fine = pool::FINE_TRIES;
    let coarse = u32::try_from(pool::BUSY_TIMEOUT.as_millis()).unwrap() - fine / 10;
    let last = i32::try_from(fine + coarse - 1).unwrap();
    assert!(pool::wait_briefly(0));
    assert!(pool::wait_briefly(last));
    assert!(!pool::wait_briefly(last + 1));
}

#[tokio::test]
async fn the_checkpointer_lets_the_wal_start_over() {
    let (_dir, path) = temp_db();
    let store = SqliteMediaStore::open(&path).await.unwrap();
    // Enough rows for a WAL past the RESTART threshold.
    let conn = raw(&path);
    conn.execute_batch("BEGIN").unwrap();
    let filler = "x".repeat(3_000);
    for n in 0..4_000 {
        conn.execute(
            "INSERT INTO audit_log (at, route, method, resource) VALUES (?1, 'r', 'GET', ?2)",
            params![n, filler],
        )
        .unwrap();
    }
    conn.execute_batch("COMMIT").unwrap();
    let wal = path.with_extension("db-wal");
    assert!(
        std::fs::metadata(&wal).unwrap().len() > 8 << 20,
        "the inserts went to the WAL"
    );
    assert_eq!(
        pool::checkpoint(&conn, &pool::Restart::Here).unwrap(),
        0,
        "all copied"
    );
    let frames = |c: &Connection| {
        c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1))
            .unwrap()
    };
    // The next commit writes from the WAL's start again.
    store.insert(&row("o1", 2)).await.unwrap();
    assert!(frames(&conn) < 100, "the WAL started over");
}

#[test]
fn a_read_needs_no_blocking_thread() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (_dir, path) = temp_db();
        let store = SqliteMediaStore::open(&path).await.unwrap();
        let m = row("o1", 1);
        store.insert(&m).await.unwrap();
        // The runtime's only blocking thread stays busy until the read is done: a pool
        // checkout that hopped to it (as deadpool-sqlite's did) would never return.
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let busy = tokio::task::spawn_blocking(move || {
            let _ = wait.recv_timeout(std::time::Duration::from_secs(30));
        });
        let found = tokio::time::timeout(std::time::Duration::from_secs(5), store.find(&m.id))
            .await
            .expect("the read ran on the caller's thread")
            .unwrap();
        assert_eq!(found, Some(m));
        release.send(()).unwrap();
        busy.await.unwrap();
    });
}

#[tokio::test]
async fn the_change_token_moves_with_every_commit_of_any_connection_and_only_then() {
    let (_dir, path) = temp_db();
    let store = SqliteMediaStore::open(&path).await.unwrap();
    let token = || async { store.change_token().await.unwrap().unwrap() };
    let first = token().await;
    assert_eq!(token().await, first, "nothing committed");

    // A commit through the store's own writer thread.
    let mine = row("org_a", 1_700_000_000_000_000_000);
    store.insert(&mine).await.unwrap();
    let after_insert = token().await;
    assert_ne!(after_insert, first);
    // Reads change nothing.
    store.find(&mine.id).await.unwrap();
    store.list("org_a", None, 10, None).await.unwrap();
    assert_eq!(token().await, after_insert);

    // A commit through the pool (confirm), then one by a connection outside the store,
    // as another process's.
    store
        .confirm(
            &mine.id,
            &MediaConfirmation {
                size: 3,
                etag: Some("\"e\"".into()),
                content_type: ContentType::parse("text/plain").unwrap(),
            },
        )
        .await
        .unwrap();
    let after_confirm = token().await;
    assert_ne!(after_confirm, after_insert);
    let other = raw(&path);
    other
        .execute("UPDATE media SET filename = 'b.txt'", [])
        .unwrap();
    let after_other = token().await;
    assert_ne!(after_other, after_confirm);
    // A transaction the other connection rolls back commits nothing.
    other
        .execute_batch("BEGIN; DELETE FROM media; ROLLBACK;")
        .unwrap();
    assert_eq!(token().await, after_other);
    assert!(after_other > after_confirm && after_confirm > after_insert);
}
