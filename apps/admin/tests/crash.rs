//! `kill -9` of a server process under concurrent writers: after a restart on the same
//! data folder every acknowledged upload is there byte for byte, and `filegate-admin
//! reconcile` finds nothing missing or mismatched. The writers create (an upsert killed
//! between its PUT and its row update leaves a `mismatch` by design: docs/ARCHITECTURE.md).
//!
//! The server process is this test binary re-run as `crash_child_server`, which runs
//! `filegate_server::app::run` exactly as `filegate-server`'s `main` does (a test of this
//! package cannot rely on that binary being built).

#![expect(
    clippy::unwrap_used,
    reason = "test helpers panic on purpose: a failed set-up step is a failed test"
)]

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CHILD: &str = "FILEGATE_CRASH_TEST_CHILD";
/// Acknowledged uploads to collect before the kill.
const ACKS_BEFORE_KILL: usize = 60;
const WRITERS: usize = 6;

#[test]
#[ignore = "the server process of kill_9_under_writers_loses_no_acknowledged_upload"]
fn crash_child_server() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let config = filegate_server::config::Config::load().unwrap();
        filegate_server::app::run(config).await.unwrap();
    });
}

struct Ports {
    api: u16,
    s3: u16,
    files: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Server and admin read the same settings.
fn configure(cmd: &mut Command, dir: &Path, ports: &Ports) {
    for var in [
        "FILEGATE_CONFIG",
        "FILEGATE_BUCKET",
        "FILEGATE_PROJECT",
        "R2_ACCOUNT_ID",
        "R2_ACCESS_KEY_ID",
        "R2_SECRET_ACCESS_KEY",
        "R2_ENDPOINT",
        "BETTER_AUTH_SECRET",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("FILEGATE_DATA_DIR", dir)
        .env("FILEGATE_MANAGED", "true")
        .env("FILEGATE_LISTEN", format!("127.0.0.1:{}", ports.api))
        .env("FILEGATE_S3_LISTEN", format!("127.0.0.1:{}", ports.s3))
        .env(
            "FILEGATE_FILES_LISTEN",
            format!("127.0.0.1:{}", ports.files),
        )
        .env("FILEGATE_RATE_LIMIT_PER_SECOND", "0")
        .env("RUST_LOG", "warn");
}

fn start_server(dir: &Path, ports: &Ports) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["crash_child_server", "--exact", "--ignored", "--nocapture"])
        .env(CHILD, "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    configure(&mut cmd, dir, ports);
    cmd.spawn().unwrap()
}

fn admin(dir: &Path, ports: &Ports) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_filegate-admin"));
    configure(&mut cmd, dir, ports);
    cmd
}

/// Polls `/readyz` (bounded: a cold start opens two databases and the S3 endpoint).
async fn wait_ready(http: &reqwest::Client, api: &str, child: &mut Child) {
    for _ in 0..400 {
        assert!(child.try_wait().unwrap().is_none(), "the server exited");
        if let Ok(r) = http.get(format!("{api}/readyz")).send().await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not become ready");
}

fn body(writer: usize, n: usize) -> Vec<u8> {
    let mut b = format!("\u{89}PNG writer {writer} upload {n} ").into_bytes();
    b.resize(
        1024 + (writer * 7919 + n * 104_729) % 60_000,
        u8::try_from(n % 251).unwrap_or(0),
    );
    b
}

/// A path and the SHA-256 of the bytes its 200 acknowledged.
type Acked = (String, Vec<u8>);

fn sha(b: &[u8]) -> Vec<u8> {
    Sha256::digest(b).to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_writers_loses_no_acknowledged_upload() {
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports {
        api: free_port(),
        s3: free_port(),
        files: free_port(),
    };
    let api = format!("http://127.0.0.1:{}", ports.api);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();

    let mut server = start_server(dir.path(), &ports);
    wait_ready(&http, &api, &mut server).await;
    let token = admin(dir.path(), &ports)
        .args(["token", "--user", "u1"])
        .output()
        .unwrap();
    assert!(token.status.success(), "{token:?}");
    let token = String::from_utf8(token.stdout).unwrap().trim().to_owned();

    // Writers: each creates its own paths.
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (http, api, token, acked, stop) = (
            http.clone(),
            api.clone(),
            token.clone(),
            acked.clone(),
            stop.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let path = format!("u1/w{w}/{n}.png");
                let bytes = body(w, n);
                n += 1;
                let res = http
                    .post(format!("{api}/storage/v1/object/avatars/{path}"))
                    .bearer_auth(&token)
                    .header("content-type", "image/png")
                    .body(bytes.clone())
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status() == 200 => acked.lock().unwrap().push((path, sha(&bytes))),
                    Ok(r) => panic!("unexpected {}", r.status()),
                    // The server is gone.
                    Err(_) => break,
                }
            }
        }));
    }
    while acked.lock().unwrap().len() < ACKS_BEFORE_KILL {
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(server.try_wait().unwrap().is_none(), "the server exited");
    }
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    let mut server = start_server(dir.path(), &ports);
    wait_ready(&http, &api, &mut server).await;
    let mut lost = Vec::new();
    for (path, hash) in &acked {
        let res = http
            .get(format!("{api}/storage/v1/object/avatars/{path}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let bytes = res.bytes().await.unwrap();
        if status != 200 || &sha(&bytes) != hash {
            lost.push(format!("{path}: {status}"));
        }
    }
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged uploads: {lost:?}",
        lost.len(),
        acked.len()
    );

    let out = admin(dir.path(), &ports)
        .args(["reconcile", "--json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    for category in ["missing", "mismatch"] {
        assert_eq!(
            report["categories"][category]["count"], 0,
            "{category}: {report:#}"
        );
    }
}
