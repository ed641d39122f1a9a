//! Two real server processes of one deployment: one Postgres schema, one storage endpoint
//! (a standalone embedded endpoint, as both nodes would share one R2 bucket), one signing
//! secret. A client alternates between them; races between them resolve in the database;
//! a database outage answers 503 and both recover on their own. Skipped, with one line
//! saying so, when FILEGATE_TEST_DATABASE_URL is unset.
//!
//! Each server process is this test binary re-run as `node_process`, which runs
//! `filegate_server::app::run` exactly as `filegate-server`'s `main` does (a test of
//! another package cannot rely on that binary being built). Its ports are the system's
//! (port 0), read from its JSON start-up log line.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers panic on purpose: a failed set-up step is a failed test"
)]

use filegate_auth::mint_token;
use filegate_core::domain::BucketName;
use filegate_e2e::{JsonResponse, TcpProxy, assert_envelope, jwt_config, send};
use filegate_embedded_s3::{EmbeddedS3, EmbeddedS3Config};
use filegate_postgres::testing::TestSchema;
use filegate_r2::{R2Config, S3ObjectStore};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CHILD: &str = "FILEGATE_E2E_NODE_PROCESS";
/// Nodes of one deployment share the signing secret.
const SHARED_SECRET: &str = "two-process-e2e-shared-secret-0123456789abcdef0123456789abcdef";
const BUCKET: &str = "nodes";
const STORE_KEY: &str = "nodes-access-key";
const STORE_SECRET: &str = "nodes-secret-key-0123456789abcdef";

#[test]
#[ignore = "a server process of the postgres_nodes tests, started by them"]
fn node_process() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    // Exit with the test that started this process, however it ends: its end of stdin
    // closes then.
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    let config = filegate_server::config::Config::load().unwrap();
    filegate_server::app::init_tracing(config.log_format);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async { filegate_server::app::run(config).await.unwrap() });
}

/// The storage endpoint both nodes use, with the default bucket created.
struct Store {
    endpoint: EmbeddedS3,
    _dir: tempfile::TempDir,
}

impl Store {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = EmbeddedS3::start(EmbeddedS3Config {
            root: dir.path().join("objects"),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            access_key_id: STORE_KEY.to_owned(),
            secret_access_key: STORE_SECRET.to_owned(),
            allowed_origins: Vec::new(),
        })
        .await
        .unwrap();
        let bucket = BucketName::parse(BUCKET).unwrap();
        S3ObjectStore::new(&R2Config {
            account_id: None,
            access_key_id: STORE_KEY.to_owned(),
            secret_access_key: SecretString::from(STORE_SECRET),
            bucket: bucket.clone(),
            endpoint: Some(endpoint.endpoint()),
            region: "auto".to_owned(),
        })
        .unwrap()
        .ensure_bucket(&bucket)
        .await
        .unwrap();
        Self {
            endpoint,
            _dir: dir,
        }
    }
}

/// One server process; killed when dropped.
struct Node {
    child: Child,
    api: String,
    /// The files listener's address (`host:port`).
    files: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A started process and the fields of its start-up log line, once it is written.
type Starting = (
    Child,
    tempfile::TempDir,
    tokio::sync::oneshot::Receiver<Result<Value, String>>,
);

fn spawn_node(database_url: &str, store: &Store) -> Starting {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "postgres_nodes::node_process",
        "--exact",
        "--ignored",
        "--nocapture",
    ])
    .env_clear()
    .env(CHILD, "1")
    .env("FILEGATE_DATA_DIR", dir.path())
    .env("FILEGATE_LISTEN", "127.0.0.1:0")
    .env("FILEGATE_FILES_LISTEN", "127.0.0.1:0")
    .env("FILEGATE_MANAGED", "true")
    .env("FILEGATE_BUCKET", BUCKET)
    .env("FILEGATE_RATE_LIMIT_PER_SECOND", "0")
    .env("FILEGATE_LOG_FORMAT", "json")
    .env("RUST_LOG", "warn,filegate_server::app=info")
    .env("BETTER_AUTH_SECRET", SHARED_SECRET)
    .env("R2_ENDPOINT", store.endpoint.endpoint())
    .env("R2_ACCESS_KEY_ID", STORE_KEY)
    .env("R2_SECRET_ACCESS_KEY", STORE_SECRET)
    .env("FILEGATE_DATABASE_URL", database_url)
    .env("FILEGATE_DATABASE_POOL_SIZE", "4")
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        let mut seen = String::new();
        // Drained to the end, so the process never blocks on a full pipe.
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let fields = serde_json::from_str::<Value>(&line)
                .ok()
                .map(|v| v["fields"].clone())
                .filter(|f| f["api"].is_string());
            match (fields, tx.take()) {
                (Some(fields), Some(tx)) => {
                    let _ = tx.send(Ok(fields));
                }
                (None, Some(waiting)) => {
                    seen.push_str(&line);
                    seen.push('\n');
                    tx = Some(waiting);
                }
                (_, None) => {}
            }
        }
        if let Some(tx) = tx {
            let _ = tx.send(Err(seen));
        }
    });
    (child, dir, rx)
}

async fn ready((mut child, dir, started): Starting) -> Node {
    // A guard against a hung start-up, far above the second or two it takes.
    let fields = match tokio::time::timeout(Duration::from_mins(2), started).await {
        Ok(Ok(Ok(fields))) => fields,
        Ok(Ok(Err(log))) => panic!("the server exited: {:?}\n{log}", child.wait()),
        other => {
            let _ = child.kill();
            panic!("no start-up line: {other:?}");
        }
    };
    Node {
        child,
        api: format!("http://{}", fields["api"].as_str().unwrap()),
        files: fields["files"].as_str().unwrap().to_owned(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        _dir: dir,
    }
}

/// Both nodes, started at the same instant (on a fresh schema: both race to migrate).
async fn two_nodes(database_url: &str, store: &Store) -> (Node, Node) {
    let (a, b) = (
        spawn_node(database_url, store),
        spawn_node(database_url, store),
    );
    tokio::join!(ready(a), ready(b))
}

fn token(user: &str, org: &str, role: &str) -> String {
    mint_token(
        &jwt_config(SecretString::from(SHARED_SECRET)),
        user,
        Some(org),
        Some(role),
        None,
        Duration::from_hours(1),
        time::OffsetDateTime::now_utc(),
    )
    .unwrap()
}

impl Node {
    async fn post(&self, path: &str, token: &str, body: &Value) -> JsonResponse {
        send(
            self.http
                .post(format!("{}{path}", self.api))
                .bearer_auth(token)
                .json(body),
        )
        .await
    }

    async fn get(&self, path: &str, token: Option<&str>) -> JsonResponse {
        let mut req = self.http.get(format!("{}{path}", self.api));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        send(req).await
    }

    async fn download(&self, id: &str, token: &str) -> (u16, Vec<u8>) {
        let res = self
            .http
            .get(format!("{}/api/v1/files/{id}/download", self.api))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.bytes().await.unwrap().to_vec())
    }

    /// PUTs `bytes` to a presigned URL with the headers the signing answer listed.
    async fn put_presigned(&self, signed: &JsonResponse, bytes: Vec<u8>) {
        let mut req = self.http.put(signed.body["uploadUrl"].as_str().unwrap());
        for (k, v) in signed.body["headers"].as_object().unwrap() {
            if !k.eq_ignore_ascii_case("content-length") {
                req = req.header(k, v.as_str().unwrap());
            }
        }
        let put = req.body(bytes).send().await.unwrap();
        assert_eq!(put.status(), 200, "PUT to the presigned URL");
    }

    async fn presign_and_put(&self, token: &str, bucket_path: &str, bytes: Vec<u8>) {
        let signed = self
            .post(
                &format!("/storage/v1/presign/{bucket_path}"),
                token,
                &json!({ "contentType": "text/plain", "size": bytes.len() }),
            )
            .await;
        assert_eq!(signed.status, 200, "{signed:?}");
        self.put_presigned(&signed, bytes).await;
    }
}

/// Straight to Postgres, on the test's schema.
async fn sql(schema: &TestSchema) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&schema.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_serve_one_deployment() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let store = Store::start().await;
    let (a, b) = two_nodes(&schema.url(), &store).await;

    // Both raced to migrate the empty schema: each migration is recorded once.
    let db = sql(&schema).await;
    let applied: Vec<(String, i32)> = db
        .query(
            "SELECT set_name, version FROM filegate_migrations ORDER BY set_name, version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        applied,
        [
            ("files".to_owned(), 1),
            ("files".to_owned(), 2),
            ("media".to_owned(), 1),
            ("media".to_owned(), 2),
            ("media".to_owned(), 3)
        ]
    );

    // Presign-only media: signed on A, PUT, listed and confirmed on B, downloaded on A.
    let member = token("user_a", "org_a", "member");
    let signed = a
        .post(
            "/api/v1/media/sign-upload",
            &member,
            &json!({ "filename": "from-a.txt", "contentType": "text/plain", "size": 6 }),
        )
        .await;
    assert_eq!(signed.status, 200, "{signed:?}");
    a.put_presigned(&signed, b"from A".to_vec()).await;
    let id = signed.body["id"].as_str().unwrap();
    let listed = b.get("/api/v1/media?status=pending", Some(&member)).await;
    assert_eq!(listed.status, 200, "{listed:?}");
    assert_eq!(listed.body["items"][0]["id"], id, "{listed:?}");
    let confirmed = b
        .post(&format!("/api/v1/media/{id}/confirm"), &member, &json!({}))
        .await;
    assert_eq!(confirmed.status, 200, "{confirmed:?}");
    assert_eq!(a.download(id, &member).await, (200, b"from A".to_vec()));

    // One bucket created on both at once: one 201, one 409.
    let admin = token("admin_a", "org_a", "admin");
    let body = json!({ "name": "docs" });
    let (ra, rb) = tokio::join!(
        a.post("/storage/v1/bucket", &admin, &body),
        b.post("/storage/v1/bucket", &admin, &body),
    );
    let mut statuses = [ra.status, rb.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409], "{ra:?} {rb:?}");
    assert_envelope(
        if ra.status == 409 { &ra } else { &rb },
        409,
        "STORAGE_BUCKET_EXISTS",
    );

    // Managed: presigned on B, PUT, confirmed on A, downloaded by id on B.
    let bytes = b"written through B, confirmed on A".to_vec();
    b.presign_and_put(&member, "docs/shared/report.txt", bytes.clone())
        .await;
    let confirmed = a
        .post(
            "/storage/v1/confirm/docs/shared/report.txt",
            &member,
            &json!({}),
        )
        .await;
    assert_eq!(confirmed.status, 200, "{confirmed:?}");
    let id = confirmed.body["id"].as_str().unwrap();
    assert_eq!(b.download(id, &member).await, (200, bytes.clone()));

    // A URL token minted on A is served by B's files listener (same secret).
    let minted = a
        .post(
            "/storage/v1/url",
            &member,
            &json!({ "key": "org_a/docs/shared/report.txt" }),
        )
        .await;
    assert_eq!(minted.status, 200, "{minted:?}");
    let on_a = minted.body["url"].as_str().unwrap();
    assert!(on_a.contains(&a.files), "{on_a} is not on {}", a.files);
    let on_b = on_a.replace(&a.files, &b.files);
    let served = b.http.get(&on_b).send().await.unwrap();
    assert_eq!(served.status(), 200, "{on_b}");
    assert_eq!(served.bytes().await.unwrap().to_vec(), bytes);

    // One object confirmed on both at once: one row, both answers that row.
    a.presign_and_put(&member, "docs/shared/twice.txt", b"both".to_vec())
        .await;
    let path = "/storage/v1/confirm/docs/shared/twice.txt";
    let empty = json!({});
    let (ca, cb) = tokio::join!(a.post(path, &member, &empty), b.post(path, &member, &empty),);
    assert_eq!((ca.status, cb.status), (200, 200), "{ca:?} {cb:?}");
    assert_eq!(ca.body["id"], cb.body["id"]);
    assert_eq!((&ca.body["size"], &cb.body["size"]), (&json!(4), &json!(4)));
    let rows: i64 = db
        .query_one(
            "SELECT count(*) FROM objects WHERE key = 'org_a/docs/shared/twice.txt'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
}

/// The Postgres server's address in `url`.
async fn server_of(url: &str) -> SocketAddr {
    let config = tokio_postgres::Config::from_str(url).unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        other @ tokio_postgres::config::Host::Unix(_) => {
            panic!("the Postgres tests need a TCP host, not {other:?}")
        }
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    tokio::net::lookup_host((host.as_str(), port))
        .await
        .unwrap()
        .next()
        .unwrap()
}

/// `url` with its host and port replaced by `addr`.
fn via(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let userinfo = rest[..end].rfind('@').map_or("", |at| &rest[..=at]);
    format!("{scheme}://{userinfo}{addr}{}", &rest[end..])
}

/// Before, during and after the outage; `RESTORING` from just before the proxy lets
/// connections through again until just after, so that a request labelled `DOWN` ran
/// while the database was surely away.
const UP: u8 = 0;
const DOWN: u8 = 1;
const BACK: u8 = 2;
const RESTORING: u8 = 3;

/// A sign-upload answer: the phases it was sent and answered in, its file name, status
/// and code.
type Answer = (u8, u8, String, u16, Value);

/// Signs uploads on `node` until `stop`, one after another, recording every answer.
async fn traffic(
    node: Arc<Node>,
    name: &'static str,
    phase: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
) {
    let member = token("user_t", "org_t", "member");
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let sent_in = phase.load(Ordering::SeqCst);
        let filename = format!("{name}-{n}.txt");
        n += 1;
        let res = node
            .post(
                "/api/v1/media/sign-upload",
                &member,
                &json!({ "filename": filename, "contentType": "text/plain" }),
            )
            .await;
        let answered_in = phase.load(Ordering::SeqCst);
        answers.lock().unwrap().push((
            sent_in,
            answered_in,
            filename,
            res.status,
            res.body["code"].clone(),
        ));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits (bounded) until `node`'s traffic has `n` answers sent in `phase`.
async fn answered(answers: &Mutex<Vec<Answer>>, node: &str, phase: u8, n: usize) {
    for _ in 0..2000 {
        let got = answers
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _, f, ..)| *p == phase && f.starts_with(&format!("{node}-")))
            .count();
        if got >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{node}: fewer than {n} answers in phase {phase}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_answers_503_and_both_processes_recover() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let store = Store::start().await;
    let proxy = TcpProxy::start(server_of(&schema.url()).await).await;
    let (a, b) = two_nodes(&via(&schema.url(), proxy.addr()), &store).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let admin = token("admin_t", "org_t", "admin");
    let member = token("user_t", "org_t", "member");
    let created = a
        .post("/storage/v1/bucket", &admin, &json!({ "name": "docs" }))
        .await;
    assert_eq!(created.status, 201, "{created:?}");

    let (phase, stop) = (
        Arc::new(AtomicU8::new(UP)),
        Arc::new(AtomicBool::new(false)),
    );
    let answers: Arc<Mutex<Vec<Answer>>> = Arc::default();
    let writers = [(a.clone(), "a"), (b.clone(), "b")].map(|(node, name)| {
        tokio::spawn(traffic(
            node,
            name,
            phase.clone(),
            stop.clone(),
            answers.clone(),
        ))
    });
    for name in ["a", "b"] {
        answered(&answers, name, UP, 5).await;
    }

    // The database goes away in the middle of the traffic.
    proxy.cut().await;
    phase.store(DOWN, Ordering::SeqCst);
    for name in ["a", "b"] {
        answered(&answers, name, DOWN, 3).await;
    }
    for node in [&a, &b] {
        let ready = node.get("/readyz", None).await;
        assert_envelope(&ready, 503, "NOT_READY");
        let checks = &ready.body["details"]["checks"];
        assert_eq!(checks["database"], "failed", "{ready:?}");
        assert_eq!(checks["storage"], "ok", "{ready:?}");
    }
    // Uploads through the API and presigns fail before writing anything.
    let upload = send(
        a.http
            .post(format!("{}/storage/v1/object/docs/outage.txt", a.api))
            .bearer_auth(&member)
            .header("content-type", "text/plain")
            .body("during the outage"),
    )
    .await;
    assert_envelope(&upload, 503, "STORAGE_UNAVAILABLE");
    let presign = b
        .post(
            "/storage/v1/presign/docs/outage-presign.txt",
            &member,
            &json!({ "contentType": "text/plain", "size": 3 }),
        )
        .await;
    assert_envelope(&presign, 503, "STORAGE_UNAVAILABLE");

    // It comes back: the next request on each node is served.
    phase.store(RESTORING, Ordering::SeqCst);
    proxy.restore();
    phase.store(BACK, Ordering::SeqCst);
    for node in [&a, &b] {
        let signed = node
            .post(
                "/api/v1/media/sign-upload",
                &member,
                &json!({ "filename": "after.txt", "contentType": "text/plain" }),
            )
            .await;
        assert_eq!(signed.status, 200, "{signed:?}");
        let ready = node.get("/readyz", None).await;
        assert_eq!(ready.status, 200, "{ready:?}");
    }
    for name in ["a", "b"] {
        answered(&answers, name, BACK, 3).await;
    }
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }

    // Every answer was a 200 or a 503 STORAGE_UNAVAILABLE; a request sent and answered
    // during the outage only a 503 (one sent during it may wait for a connection and be
    // served once the database is back), one sent after it only a 200.
    let answers = answers.lock().unwrap().clone();
    for (sent_in, answered_in, filename, status, code) in &answers {
        match (*sent_in, *answered_in, *status) {
            (DOWN, DOWN, 200) => panic!("{filename} was served during the outage"),
            (_, _, 200) => {}
            (UP | DOWN | RESTORING, _, 503) => {
                assert_eq!(code, "STORAGE_UNAVAILABLE", "{filename}");
            }
            other => panic!("{filename}: {other:?} ({code})"),
        }
    }
    // No row for what failed during the outage; one for every 200. A request in flight
    // at the cut may have committed before its answer was lost: either way its row is
    // whole (the columns are NOT NULL and a row is one statement).
    let db = sql(&schema).await;
    let rows: HashSet<String> = db
        .query(
            "SELECT filename FROM media WHERE organization_id = 'org_t'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for (sent_in, _, filename, status, _) in &answers {
        match (*sent_in, *status) {
            (_, 200) => assert!(rows.contains(filename), "{filename} was acknowledged"),
            (DOWN, _) => assert!(!rows.contains(filename), "{filename} failed"),
            _ => {}
        }
    }
    let outage_rows: i64 = db
        .query_one(
            "SELECT count(*) FROM objects WHERE path IN ('outage.txt', 'outage-presign.txt')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(outage_rows, 0);
    let listed = b.get("/api/v1/media?limit=100", Some(&member)).await;
    assert_eq!(listed.status, 200, "{listed:?}");
}
