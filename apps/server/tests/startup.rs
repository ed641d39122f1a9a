//! The real `filegate-server` binary's start-up: what it prints on stdout and what it
//! leaves on disk.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The last line of the embedded-mode banner.
const BANNER_END: &str = "-T report.pdf";

/// A server process; killed when dropped.
struct Server {
    child: Child,
    stdout: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary in `dir` (its own data folder, every port picked by the system)
/// with `env`, and returns once the banner is printed.
fn start(dir: &Path, env: &[(&str, &str)]) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_filegate-server"));
    cmd.env_clear()
        .current_dir(dir)
        .env("FILEGATE_DATA_DIR", dir.join("data"))
        .env("FILEGATE_LISTEN", "127.0.0.1:0")
        .env("FILEGATE_S3_LISTEN", "127.0.0.1:0")
        .env("FILEGATE_FILES_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("server binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = String::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            seen.push_str(&line);
            seen.push('\n');
            if line.contains(BANNER_END) {
                break;
            }
        }
        let _ = tx.send(seen);
    });
    // A guard against a hung start-up, far above the few seconds it takes.
    let stdout = rx
        .recv_timeout(Duration::from_mins(2))
        .expect("the banner within two minutes");
    assert!(stdout.contains(BANNER_END), "no banner: {stdout}");
    Server { child, stdout }
}

fn exported_token(stdout: &str) -> Option<String> {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("export TOKEN="))
        .map(str::to_owned)
}

async fn verifies(token: &str, secret: &str) -> bool {
    use filegate_core::ports::{Authenticator, Credentials};
    let auth = filegate_auth::JwtAuthenticator::new(filegate_auth::JwtConfig::new(
        secrecy::SecretString::from(secret.to_owned()),
    ));
    auth.authenticate(&Credentials {
        bearer: Some(token.to_owned()),
        ..Credentials::default()
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn a_configured_secret_never_yields_a_printed_token() {
    let dir = tempfile::tempdir().expect("temp dir");
    let secret = "production-secret-0123456789abcdef-0123456789";
    let server = start(dir.path(), &[("BETTER_AUTH_SECRET", secret)]);
    assert!(
        exported_token(&server.stdout).is_none(),
        "a token signed with the configured secret was printed:\n{}",
        server.stdout
    );
    // Nothing JWT-shaped either.
    assert!(!server.stdout.contains("eyJ"), "{}", server.stdout);
    assert!(
        server.stdout.contains("filegate-admin token"),
        "the banner says how to mint one: {}",
        server.stdout
    );

    // The same with the secret in another variable (Quickback's secretEnv).
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start(
        dir.path(),
        &[("FILEGATE_JWT_SECRET_ENV", "MY_JWT"), ("MY_JWT", secret)],
    );
    assert!(
        exported_token(&server.stdout).is_none(),
        "{}",
        server.stdout
    );
}

#[tokio::test]
async fn a_generated_development_secret_still_gets_a_printed_token() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start(dir.path(), &[]);
    let token = exported_token(&server.stdout).expect("a development token");
    let secret = std::fs::read_to_string(dir.path().join("data/dev-secret")).expect("dev-secret");
    assert!(verifies(&token, secret.trim()).await);
    drop(server);

    // A dev-secret file left over from development does not count once a secret is set.
    let server = start(
        dir.path(),
        &[(
            "BETTER_AUTH_SECRET",
            "configured-secret-0123456789abcdef-01234",
        )],
    );
    assert!(
        exported_token(&server.stdout).is_none(),
        "{}",
        server.stdout
    );
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_folder_secrets_and_databases_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let set = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod");
    };

    // A fresh data folder.
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let server = start(dir.path(), &[("FILEGATE_MANAGED", "true")]);
    let private = [
        ("data", 0o700),
        ("data/objects", 0o700),
        ("data/dev-secret", 0o600),
        ("data/embedded-s3.json", 0o600),
        ("data/filegate.db", 0o600),
        ("data/files.db", 0o600),
    ];
    for (path, want) in private {
        assert_eq!(mode(&dir.path().join(path)), want, "{path}");
    }
    drop(server);

    // A folder left by an older version: everything world-readable; fixed at start.
    for (path, _) in private {
        let p = dir.path().join(path);
        set(&p, if p.is_dir() { 0o755 } else { 0o644 });
    }
    for sidecar in ["filegate.db-wal", "files.db-wal"] {
        let p = data.join(sidecar);
        if p.exists() {
            set(&p, 0o644);
        }
    }
    let server = start(dir.path(), &[("FILEGATE_MANAGED", "true")]);
    for (path, want) in private {
        assert_eq!(mode(&dir.path().join(path)), want, "{path} after restart");
    }
    for sidecar in [
        "filegate.db-wal",
        "filegate.db-shm",
        "files.db-wal",
        "files.db-shm",
    ] {
        let p = data.join(sidecar);
        if p.exists() {
            assert_eq!(mode(&p) & 0o077, 0, "{sidecar}");
        }
    }
    drop(server);

    // A dev-secret too short to use is rewritten, and stays private.
    std::fs::write(data.join("dev-secret"), "short").expect("write");
    set(&data.join("dev-secret"), 0o644);
    let server = start(dir.path(), &[]);
    assert_eq!(mode(&data.join("dev-secret")), 0o600);
    drop(server);
}

/// A server whose stdout is closed (started by a supervisor that does not read it, or
/// piped into `head`) still starts and serves: the banner is best effort.
#[tokio::test]
async fn a_closed_stdout_does_not_stop_the_server() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_filegate-server"));
    cmd.env_clear()
        .current_dir(dir.path())
        .env("FILEGATE_DATA_DIR", dir.path().join("data"))
        .env("FILEGATE_LISTEN", "127.0.0.1:0")
        .env("FILEGATE_S3_LISTEN", "127.0.0.1:0")
        .env("FILEGATE_FILES_LISTEN", "127.0.0.1:0")
        .env("FILEGATE_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("server binary starts");
    // Nobody will ever read the banner.
    drop(child.stdout.take());
    // The API's port, from the start-up log line (stderr stays drained until the end).
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let api = serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .and_then(|v| v["fields"]["api"].as_str().map(str::to_owned));
            if let Some(api) = api
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(api);
            }
        }
    });
    let mut server = Server {
        child,
        stdout: String::new(),
    };
    let api = rx
        .recv_timeout(Duration::from_mins(2))
        .expect("the start-up log line within two minutes");
    let port: u16 = api
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port in the logged address");
    let mut healthy = false;
    for _ in 0..600 {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("the server exited with {status}");
        }
        if healthz(port) {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(healthy, "the server never answered /healthz on port {port}");
    // Still up a moment later (the banner is printed once serving has started).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        server.child.try_wait().expect("wait").is_none(),
        "the server exited after start-up"
    );
    server.stdout.clear();
}

/// `GET /healthz` answered 200.
fn healthz(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    if conn
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    conn.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}
