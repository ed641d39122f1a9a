//! The testkit's contract suites and this adapter's own rules, against a real Postgres
//! (each test in its own schema). Skipped, with one line saying so, when
//! FILEGATE_TEST_DATABASE_URL is unset.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers panic on purpose: a failed set-up step is a failed test"
)]

use filegate_core::Error;
use filegate_core::ports::{AuditEntry, AuditLog, Media, MediaStatus, MediaStore};
use filegate_postgres::testing::TestSchema;
use filegate_postgres::{
    PgPool, PgSettings, PostgresFilesDb, PostgresMediaStore, files_migration_status, migrate,
    migrate_files, migration_status,
};
use filegate_testkit::files_db::files_db_contract;
use filegate_testkit::media_store::media_store_contract;
use time::OffsetDateTime;

#[tokio::test]
async fn media_store_passes_the_contract() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let store = PostgresMediaStore::open(schema.pool().await).await.unwrap();
    media_store_contract(&store).await;
    // Twice on one database: the suite must not depend on an empty store.
    media_store_contract(&store).await;
}

#[tokio::test]
async fn files_db_passes_the_contract() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let db = PostgresFilesDb::open(schema.pool().await).await.unwrap();
    files_db_contract(&db).await;
    files_db_contract(&db).await;
}

#[tokio::test]
async fn media_and_files_db_share_one_schema() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let pool = schema.pool().await;
    let store = PostgresMediaStore::open(pool.clone()).await.unwrap();
    let db = PostgresFilesDb::open(pool.clone()).await.unwrap();
    media_store_contract(&store).await;
    files_db_contract(&db).await;
    assert!(migrate(&pool).await.unwrap().is_empty());
    assert!(migrate_files(&pool).await.unwrap().is_empty());
}

#[tokio::test]
async fn migrations_are_applied_once_and_reported() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let pool = schema.pool().await;
    let before = migration_status(&pool).await.unwrap();
    assert!(!before.is_empty());
    assert!(before.iter().all(|s| s.applied_at.is_none()), "{before:?}");
    assert!(
        files_migration_status(&pool)
            .await
            .unwrap()
            .iter()
            .all(|s| s.applied_at.is_none())
    );
    let applied = migrate(&pool).await.unwrap();
    assert_eq!(applied.len(), before.len());
    assert!(migrate(&pool).await.unwrap().is_empty());
    let after = migration_status(&pool).await.unwrap();
    assert!(after.iter().all(|s| s.applied_at.is_some()), "{after:?}");
    // The sets are tracked apart: the media set says nothing about FILES_DB.
    assert!(
        files_migration_status(&pool)
            .await
            .unwrap()
            .iter()
            .all(|s| s.applied_at.is_none())
    );
}

#[tokio::test]
async fn nodes_starting_at_once_apply_migrations_once() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let pools: Vec<PgPool> = pools_on(&schema, 6).await;
    let runs = pools.iter().map(|p| {
        let p = p.clone();
        tokio::spawn(async move {
            let media = migrate(&p).await.unwrap();
            let files = migrate_files(&p).await.unwrap();
            (media.len(), files.len())
        })
    });
    let mut totals = (0, 0);
    for run in runs.collect::<Vec<_>>() {
        let (m, f) = run.await.unwrap();
        totals.0 += m;
        totals.1 += f;
    }
    let pool = &pools[0];
    assert_eq!(totals.0, migration_status(pool).await.unwrap().len());
    assert_eq!(totals.1, files_migration_status(pool).await.unwrap().len());
}

async fn pools_on(schema: &TestSchema, n: usize) -> Vec<PgPool> {
    let mut pools = Vec::new();
    for _ in 0..n {
        pools.push(schema.pool().await);
    }
    pools
}

fn media(n: u8, org: &str, key: &str) -> Media {
    Media {
        id: filegate_core::domain::MediaId::parse(&format!("med_{:032x}", u128::from(n))).unwrap(),
        bucket: filegate_core::domain::BucketName::parse("media".to_owned()).unwrap(),
        key: filegate_core::domain::ObjectKey::parse(key.to_owned()).unwrap(),
        organization_id: org.to_owned(),
        uploader_id: "u".to_owned(),
        filename: "f".to_owned(),
        content_type: filegate_core::domain::ContentType::parse("text/plain").unwrap(),
        declared_size: None,
        created_at: OffsetDateTime::from_unix_timestamp_nanos(
            1_700_000_000_000_000_000 + i128::from(n),
        )
        .unwrap(),
        status: MediaStatus::Pending,
        size: None,
        etag: None,
        upload_expires_at: None,
        multipart: None,
    }
}

#[tokio::test]
async fn keys_are_in_byte_order_whatever_the_database_collation() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let store = PostgresMediaStore::open(schema.pool().await).await.unwrap();
    // Byte order: 'B' < 'a' < 'z' < 'é' < '中' < '😀'; a linguistic collation would differ.
    let keys = ["o/a", "o/é", "o/B", "o/😀", "o/z", "o/中", "o/a b", "o/a-b"];
    for (i, k) in keys.iter().enumerate() {
        store
            .insert(&media(u8::try_from(i).unwrap(), "org", k))
            .await
            .unwrap();
    }
    let mut expected: Vec<&str> = keys.to_vec();
    expected.sort_unstable();
    let all: Vec<String> = store
        .by_key(None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key.as_str().to_owned())
        .collect();
    assert_eq!(all, expected);
    // Page by page from a non-ASCII cursor.
    let after = filegate_core::domain::ObjectKey::parse("o/é".to_owned()).unwrap();
    let rest: Vec<String> = store
        .by_key(Some(after), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key.as_str().to_owned())
        .collect();
    assert_eq!(rest, ["o/中", "o/😀"]);

    // The test database may itself sort bytewise (C.UTF-8), so also check that the columns
    // carry their own collation and do not depend on the database's.
    let (client, conn) = tokio_postgres::connect(&schema.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    PostgresFilesDb::open(schema.pool().await).await.unwrap();
    let rows = client
        .query(
            "SELECT table_name || '.' || column_name, coalesce(collation_name, '') \
             FROM information_schema.columns WHERE table_schema = $1 \
             AND (table_name, column_name) IN (('media', 'id'), ('media', 'key'), \
             ('media', 'organization_id'), ('buckets', 'name'), ('objects', 'key'), \
             ('objects', 'path'), ('objects', 'segment'), ('objects', 'id')) ORDER BY 1",
            &[&schema.name()],
        )
        .await
        .unwrap();
    let collations: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(collations.len(), 8, "{collations:?}");
    assert!(collations.iter().all(|(_, c)| c == "C"), "{collations:?}");
}

#[tokio::test]
async fn the_audit_log_writes_rows_beside_the_media_table() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let pool = schema.pool().await;
    let store = PostgresMediaStore::open(pool.clone()).await.unwrap();
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
    store.insert(&media(1, "o1", "o1/k")).await.unwrap();
    log.clone().record(&full).await.unwrap();

    let (client, conn) = tokio_postgres::connect(&schema.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let rows = client
        .query(
            "SELECT at, route, method, ip, user_id, resource FROM audit_log ORDER BY seq",
            &[],
        )
        .await
        .unwrap();
    type AuditRow = (
        i64,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let got: Vec<AuditRow> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect();
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
    assert_eq!(got, [as_row(&full), as_row(&anonymous), as_row(&full)]);

    let far = AuditEntry {
        at: time::Date::from_calendar_date(9000, time::Month::January, 1)
            .unwrap()
            .midnight()
            .assume_utc(),
        ..anonymous
    };
    assert!(matches!(
        log.record(&far).await.unwrap_err(),
        Error::Internal { .. }
    ));
}

#[tokio::test]
async fn a_duplicate_media_row_is_a_conflict() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let store = PostgresMediaStore::open(schema.pool().await).await.unwrap();
    store.insert(&media(1, "o", "o/k")).await.unwrap();
    let err = store.insert(&media(2, "o", "o/k")).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
}

/// Group commit: concurrent inserts share statements, and each keeps its own result; a
/// row repeating a stored key fails alone with `Conflict`.
#[tokio::test]
async fn concurrent_inserts_are_batched_and_a_conflict_fails_alone() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let store = PostgresMediaStore::open(schema.pool().await).await.unwrap();
    store.insert(&media(0, "o", "o/taken")).await.unwrap();
    let rows: Vec<Media> = (1..=64)
        .map(|n| {
            media(
                n,
                "o",
                &if n % 16 == 0 {
                    "o/taken".to_owned()
                } else {
                    format!("o/{n}")
                },
            )
        })
        .collect();
    let results = futures::future::join_all(rows.iter().map(|m| store.insert(m))).await;
    for (m, result) in rows.iter().zip(&results) {
        if m.key.as_str() == "o/taken" {
            assert!(matches!(result, Err(Error::Conflict { .. })), "{result:?}");
            assert!(store.find(&m.id).await.unwrap().is_none());
        } else {
            assert!(result.is_ok(), "{result:?}");
            assert!(store.find(&m.id).await.unwrap().is_some());
        }
    }
    assert!(
        store.largest_insert_batch() > 1,
        "the inserts were never batched, so the test proved nothing"
    );
}

/// A value the server refuses (text with a NUL byte) fails the statement of its batch:
/// the batch is retried row by row, so only that row's caller fails.
#[tokio::test]
async fn a_row_the_server_refuses_fails_alone_in_its_batch() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let store = PostgresMediaStore::open(schema.pool().await).await.unwrap();
    let mut rows: Vec<Media> = (1..=32).map(|n| media(n, "o", &format!("o/{n}"))).collect();
    rows[9].filename = "nul\0byte".to_owned();
    let results = futures::future::join_all(rows.iter().map(|m| store.insert(m))).await;
    for (i, (m, result)) in rows.iter().zip(&results).enumerate() {
        if i == 9 {
            assert!(matches!(result, Err(Error::Internal { .. })), "{result:?}");
            assert!(store.find(&m.id).await.unwrap().is_none());
        } else {
            assert!(result.is_ok(), "row {i}: {result:?}");
            assert!(store.find(&m.id).await.unwrap().is_some());
        }
    }
    assert!(store.largest_insert_batch() > 1, "never batched");
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    // A closed port: no test database needed.
    let mut settings = PgSettings::new("postgres://postgres@127.0.0.1:1/none");
    settings.pool_size = 1;
    let err = PgPool::connect(&settings).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    let err = PgPool::build(&PgSettings::new("not a url at all")).unwrap_err();
    assert!(matches!(err, Error::Validation(_)), "{err:?}");
}

#[tokio::test]
async fn a_statement_over_the_timeout_is_unavailable() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let mut settings = PgSettings::new(schema.url());
    settings.statement_timeout = Some(std::time::Duration::from_millis(50));
    let pool = PgPool::connect(&settings).await.unwrap();
    let store = PostgresMediaStore::open(pool.clone()).await.unwrap();
    store.insert(&media(1, "o", "o/k")).await.unwrap();
    // Hold the row's lock in another session, so the confirm below waits past the timeout.
    let (client, conn) = tokio_postgres::connect(&schema.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute("BEGIN; SELECT * FROM media FOR UPDATE")
        .await
        .unwrap();
    let err = store
        .confirm(
            &media(1, "o", "o/k").id,
            &filegate_core::ports::MediaConfirmation {
                size: 1,
                etag: Some("\"e\"".to_owned()),
                content_type: filegate_core::domain::ContentType::parse("text/plain").unwrap(),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    client.batch_execute("ROLLBACK").await.unwrap();
}

/// `url` with `params` appended to its query.
fn with_params(url: &str, params: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{params}")
}

/// Whether the pool's connections (named `app`) are encrypted, as the server sees them.
async fn encrypted(base: &str, app: &str) -> bool {
    let (client, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let rows = client
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = $1",
            &[&app],
        )
        .await
        .unwrap();
    assert!(!rows.is_empty(), "no connection named {app}");
    rows.iter().all(|r| r.get::<_, bool>(0))
}

async fn pool_for(url: String) -> Result<PgPool, Error> {
    let mut settings = PgSettings::new(url);
    settings.pool_size = 1;
    PgPool::connect(&settings).await
}

#[tokio::test]
async fn sslmode_is_honoured() {
    let Some(_schema) = TestSchema::create().await else {
        return;
    };
    let base = std::env::var(TestSchema::VAR).unwrap();
    let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let ssl: String = client.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    let n = rand_suffix();

    let app = format!("fg_tls_disable_{n}");
    let plain = pool_for(with_params(
        &base,
        &format!("sslmode=disable&application_name={app}"),
    ))
    .await
    .unwrap();
    assert!(!encrypted(&base, &app).await);
    drop(plain);

    let app = format!("fg_tls_require_{n}");
    let required = pool_for(with_params(
        &base,
        &format!("sslmode=require&application_name={app}"),
    ))
    .await;
    if ssl != "on" {
        // A server without TLS cannot satisfy `require`.
        assert!(matches!(required.unwrap_err(), Error::Unavailable { .. }));
        return;
    }
    let required = required.unwrap();
    assert!(encrypted(&base, &app).await);
    drop(required);

    // verify-full against the server's own (self-signed) certificate, when this test can
    // read it: trusted, but only under the name it was issued for.
    let cert_file: String = client
        .query_one("SHOW ssl_cert_file", &[])
        .await
        .unwrap()
        .get(0);
    if std::fs::read(&cert_file).is_err() || !base.contains("127.0.0.1") {
        return;
    }
    let root = percent_encode_path(&cert_file);
    let wrong_name = pool_for(with_params(
        &base,
        &format!("sslmode=verify-full&sslrootcert={root}"),
    ))
    .await;
    assert!(
        matches!(wrong_name, Err(Error::Unavailable { .. })),
        "127.0.0.1 is not the certificate's name: {wrong_name:?}"
    );
    let app = format!("fg_tls_verify_ca_{n}");
    let any_name = pool_for(with_params(
        &base,
        &format!("sslmode=verify-ca&sslrootcert={root}&application_name={app}"),
    ))
    .await
    .unwrap();
    assert!(encrypted(&base, &app).await);
    drop(any_name);
}

fn rand_suffix() -> u64 {
    u64::from(std::process::id()) << 16 ^ u64::from(OffsetDateTime::now_utc().nanosecond())
}

fn percent_encode_path(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn lost_connections_are_unavailable_then_recover() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let app = format!("fg_lost_{}", rand_suffix());
    let mut settings = PgSettings::new(with_params(
        &schema.url(),
        &format!("application_name={app}"),
    ));
    settings.pool_size = 2;
    let pool = PgPool::connect(&settings).await.unwrap();
    let store = PostgresMediaStore::open(pool).await.unwrap();
    store.insert(&media(1, "o", "o/k")).await.unwrap();
    let id = media(1, "o", "o/k").id;

    let (admin, conn) = tokio_postgres::connect(&schema.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    for _ in 0..3 {
        // What a server restart or a failover does to every open connection.
        let killed: i64 = admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE application_name = $1",
                &[&app],
            )
            .await
            .unwrap()
            .get(0);
        assert!(killed >= 1);
        // The first call may meet a dead connection: Unavailable, never Internal.
        match store.find(&id).await {
            Ok(found) => assert!(found.is_some()),
            Err(e) => assert!(matches!(e, Error::Unavailable { .. }), "{e:?}"),
        }
        // The pool replaces it on its own.
        let mut recovered = false;
        for _ in 0..5 {
            if let Ok(Some(_)) = store.find(&id).await {
                recovered = true;
                break;
            }
        }
        assert!(recovered, "the pool did not reconnect");
    }
}

/// Lookups by id and first pages of listings from many concurrent callers share
/// statements (`= ANY`, a `LATERAL` join), and each caller still gets exactly its own
/// answer: its row or none, its organization's rows in order, its status, its limit.
#[tokio::test]
async fn concurrent_lookups_are_batched_and_each_gets_its_own_answer() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let store = PostgresMediaStore::open(schema.pool().await).await.unwrap();
    let orgs = ["a", "b", "c"];
    let rows: Vec<Media> = (1..=60)
        .map(|n| media(n, orgs[usize::from(n) % 3], &format!("k/{n}")))
        .collect();
    for m in &rows {
        store.insert(m).await.unwrap();
    }
    let confirmation = filegate_core::ports::MediaConfirmation {
        size: 5,
        etag: Some("\"e\"".to_owned()),
        content_type: filegate_core::domain::ContentType::parse("text/plain").unwrap(),
    };
    for m in rows.iter().filter(|m| m.created_at.nanosecond() % 4 == 0) {
        store.confirm(&m.id, &confirmation).await.unwrap();
    }
    let stored: Vec<Media> = futures::future::join_all(rows.iter().map(|m| store.find(&m.id)))
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();

    // 200 lookups at once: every row three times over, and ids nobody stored.
    let wanted: Vec<filegate_core::domain::MediaId> = (0..200u32)
        .map(|i| match i % 5 {
            4 => filegate_core::domain::MediaId::parse(&format!("med_{:032x}", 1000 + i)).unwrap(),
            _ => rows[i as usize % rows.len()].id.clone(),
        })
        .collect();
    let found = futures::future::join_all(wanted.iter().map(|id| store.find(id))).await;
    for (id, answer) in wanted.iter().zip(found) {
        let expected = stored.iter().find(|m| &m.id == id);
        assert_eq!(answer.unwrap().as_ref(), expected, "{id}");
    }
    assert!(
        store.largest_lookup_batch() > 1,
        "the lookups were never batched"
    );

    // First pages of every organization, status and a few limits, all at once.
    let statuses = [
        None,
        Some(MediaStatus::Confirmed),
        Some(MediaStatus::Pending),
    ];
    let mut asks = Vec::new();
    for _ in 0..4 {
        for org in orgs.iter().chain(&["nobody"]) {
            for status in statuses {
                for limit in [1, 7, 50] {
                    asks.push((*org, status, limit));
                }
            }
        }
    }
    let pages = futures::future::join_all(
        asks.iter()
            .map(|(org, status, limit)| store.list(org, *status, *limit, None)),
    )
    .await;
    for ((org, status, limit), page) in asks.iter().zip(pages) {
        let page = page.unwrap();
        let mut expected: Vec<&Media> = stored
            .iter()
            .filter(|m| m.organization_id == *org && status.is_none_or(|s| m.status == s))
            .collect();
        expected.sort_by_key(|m| std::cmp::Reverse(m.created_at));
        let more = expected.len() > *limit as usize;
        expected.truncate(*limit as usize);
        assert_eq!(
            page.items.iter().collect::<Vec<_>>(),
            expected,
            "{org} {status:?} {limit}"
        );
        assert_eq!(page.next.is_some(), more, "{org} {status:?} {limit}");
    }
    assert!(
        store.largest_listing_batch() > 1,
        "the listings were never batched"
    );
}

/// Bucket lookups by name and object lookups by key from many concurrent callers share
/// statements, and each gets its own answer: an organization's bucket, the project-wide
/// one of the same name, or none; its object row, or none.
#[tokio::test]
async fn concurrent_bucket_and_object_lookups_are_batched() {
    use filegate_core::domain::{BucketName, ContentType, ObjectKey};
    use filegate_core::managed::{
        Bucket, BucketId, BucketStore, ObjectId, ObjectPath, ObjectRow, ObjectRowStore,
        ObjectStatus, ReadScope, WriteScope,
    };
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let db = PostgresFilesDb::open(schema.pool().await).await.unwrap();
    let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    let mut buckets = Vec::new();
    for (name, org) in [
        ("shared", None),
        ("shared", Some("o1")),
        ("shared", Some("o2")),
        ("own", Some("o1")),
        ("wide", None),
    ] {
        let b = Bucket {
            id: BucketId::generate(),
            name: BucketName::parse(name.to_owned()).unwrap(),
            organization_id: org.map(str::to_owned),
            read_scope: ReadScope::Org,
            write_scope: WriteScope::Org,
            file_size_limit: None,
            allowed_mime_types: vec![],
            created_at: at,
            updated_at: at,
        };
        db.insert_bucket(&b).await.unwrap();
        buckets.push(b);
    }
    let mut asks: Vec<(Option<String>, BucketName)> = Vec::new();
    for name in ["shared", "own", "wide", "missing"] {
        for org in [None, Some("o1"), Some("o2"), Some("o3")] {
            asks.push((
                org.map(str::to_owned),
                BucketName::parse(name.to_owned()).unwrap(),
            ));
        }
    }
    let asked_four_times: Vec<_> = asks.iter().chain(&asks).chain(&asks).chain(&asks).collect();
    let found = futures::future::join_all(
        asked_four_times
            .iter()
            .map(|(org, name)| db.find_bucket_by_name(org.clone(), name)),
    )
    .await;
    for ((org, name), found) in asked_four_times.iter().zip(found) {
        let expected = buckets
            .iter()
            .find(|b| &b.organization_id == org && &b.name == name);
        assert_eq!(found.unwrap().as_ref(), expected, "{org:?} {name}");
    }

    let mut objects = Vec::new();
    for (n, b) in buckets.iter().enumerate() {
        for i in 0..8 {
            let segment = b.organization_id.clone().unwrap_or_else(|| "u1".to_owned());
            let path = ObjectPath::parse(format!("dir/{i}.txt")).unwrap();
            let row = ObjectRow {
                id: ObjectId::generate(),
                bucket_id: b.id.clone(),
                organization_id: b.organization_id.clone(),
                owner_id: "u1".to_owned(),
                key: ObjectKey::parse(format!("{segment}/{}/{n}/{path}", b.name)).unwrap(),
                segment,
                path,
                content_type: ContentType::parse("text/plain").unwrap(),
                size: 3,
                etag: None,
                status: ObjectStatus::Pending,
                created_at: at,
                updated_at: at,
                deleted_at: None,
                multipart: None,
            };
            db.insert_object(&row).await.unwrap();
            objects.push(row);
        }
    }
    let mut keys: Vec<ObjectKey> = objects.iter().map(|o| o.key.clone()).collect();
    keys.push(ObjectKey::parse("no/such/key".to_owned()).unwrap());
    let asked: Vec<&ObjectKey> = keys.iter().chain(&keys).collect();
    let found = futures::future::join_all(asked.iter().map(|k| db.find_object_by_key(k))).await;
    for (k, found) in asked.iter().zip(found) {
        let expected = objects.iter().find(|o| &&o.key == k);
        assert_eq!(found.unwrap().as_ref(), expected, "{k}");
    }
    assert!(
        db.largest_lookup_batch() > 1,
        "the object lookups were never batched"
    );

    // The keys of one call go out together, in one statement.
    let fresh = PostgresFilesDb::open(schema.pool().await).await.unwrap();
    let some = &keys[keys.len() - 6..];
    let mut found = fresh.find_objects_by_keys(some).await.unwrap();
    found.sort_by(|a, b| a.key.cmp(&b.key));
    let mut expected: Vec<ObjectRow> = objects
        .iter()
        .filter(|o| some.contains(&o.key))
        .cloned()
        .collect();
    expected.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(found, expected);
    assert_eq!(fresh.largest_lookup_batch(), some.len());
}

#[tokio::test]
async fn the_change_token_moves_with_every_commit_of_any_connection() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let store = PostgresMediaStore::open(schema.pool().await).await.unwrap();
    let token = || async { store.change_token().await.unwrap().unwrap() };
    let (other, conn) = tokio_postgres::connect(&schema.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);

    // (Other tests commit beside this one, so the token may move without us; what must
    // hold is that it always moves with our commits and never comes back.)
    let mut last = token().await;
    let m = media(1, "a", "k/1");
    store.insert(&m).await.unwrap();
    let after_insert = token().await;
    assert!(after_insert > last, "an insert of this store");
    last = after_insert;
    other
        .execute("UPDATE media SET filename = 'b.txt'", &[])
        .await
        .unwrap();
    let after_other = token().await;
    assert!(after_other > last, "an update by another connection");
    last = after_other;

    // Many callers at once share statements, and each one's token is at least the one
    // read before it asked.
    let tokens = futures::future::join_all((0..64).map(|_| store.change_token())).await;
    for t in tokens {
        assert!(t.unwrap().unwrap() >= last);
    }
    other.execute("DELETE FROM media", &[]).await.unwrap();
    assert!(token().await > last, "a delete by another connection");
}
