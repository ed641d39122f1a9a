//! Runs the built `filegate-admin` binary.

use std::path::Path;
use std::process::{Command, Output};

use filegate_auth::{JwtAuthenticator, JwtConfig};
use filegate_core::domain::Principal;
use filegate_core::ports::{Authenticator, Credentials};

const SECRET: &str = "cli-test-secret-0123456789abcdef";

/// The binary with no secret or path settings inherited from the caller's environment.
fn admin(data_dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_filegate-admin"));
    cmd.env_remove("BETTER_AUTH_SECRET")
        .env_remove("FILEGATE_MEDIA_DB")
        .env_remove("FILEGATE_DATABASE_URL")
        .env_remove("FILEGATE_FILES_DATABASE_URL")
        .env("FILEGATE_DATA_DIR", data_dir)
        .env("RUST_LOG", "warn");
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("runs filegate-admin")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn principal_of(token: &str, secret: &str) -> Principal {
    let credentials = Credentials {
        bearer: Some(token.to_owned()),
        ..Credentials::default()
    };
    JwtAuthenticator::new(JwtConfig::new(secret))
        .authenticate(&credentials)
        .await
        .expect("the server would accept the token")
}

/// stdout must be the token alone, so `TOKEN=$(filegate-admin token …)` works.
fn only_token(output: &Output) -> String {
    assert!(output.status.success(), "stderr: {}", stderr(output));
    let out = stdout(output);
    let token = out.strip_suffix('\n').expect("ends with a newline");
    assert!(!token.contains(char::is_whitespace), "{out:?}");
    assert_eq!(token.split('.').count(), 3, "{out:?}");
    token.to_owned()
}

#[tokio::test]
async fn token_from_env_secret_is_accepted_with_the_right_principal() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(admin(dir.path())
        .env("BETTER_AUTH_SECRET", SECRET)
        .args(["token", "--user", "u1", "--org", "org1", "--role", "member"]));
    let token = only_token(&output);
    assert_eq!(
        principal_of(&token, SECRET).await,
        Principal {
            user_id: "u1".into(),
            active_org_id: Some("org1".into()),
            roles: vec!["member".into()],
            platform_role: None,
            method: filegate_core::domain::AuthMethod::default(),
        }
    );
}

#[tokio::test]
async fn token_from_secret_flag_carries_the_platform_role() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(admin(dir.path()).args([
        "token",
        "--user",
        "root",
        "--platform-role",
        "admin",
        "--ttl",
        "15m",
        "--secret",
        SECRET,
    ]));
    let principal = principal_of(&only_token(&output), SECRET).await;
    assert_eq!(principal.user_id, "root");
    assert!(principal.is_platform_admin());
    assert_eq!(principal.active_org_id, None);
}

#[tokio::test]
async fn token_falls_back_to_the_dev_secret_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dev-secret"), "generated-dev-secret\n").unwrap();
    let output = run(admin(dir.path()).args(["token", "--user", "u2"]));
    let token = only_token(&output);
    assert!(
        stderr(&output).contains("dev-secret"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        principal_of(&token, "generated-dev-secret").await.user_id,
        "u2"
    );
}

#[test]
fn token_without_any_secret_fails_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(admin(dir.path()).args(["token", "--user", "u1"]));
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).is_empty());
    let err = stderr(&output);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("BETTER_AUTH_SECRET"), "{err}");
}

#[test]
fn token_rejects_a_ttl_over_30_days() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(admin(dir.path())
        .env("BETTER_AUTH_SECRET", SECRET)
        .args(["token", "--user", "u1", "--ttl", "31d"]));
    assert!(!output.status.success());
    assert!(stdout(&output).is_empty());
    assert!(stderr(&output).contains("30d"), "{}", stderr(&output));
}

#[test]
fn help_never_shows_the_secret_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(admin(dir.path())
        .env("BETTER_AUTH_SECRET", SECRET)
        .args(["token", "--help"]));
    assert!(output.status.success());
    assert!(!stdout(&output).contains(SECRET));
}

#[test]
fn migrate_then_status_on_a_fresh_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let before = run(admin(&data).args(["migrate", "--status"]));
    assert!(before.status.success(), "{}", stderr(&before));
    assert!(stdout(&before).contains("pending"), "{}", stdout(&before));
    assert!(
        !data.join("filegate.db").exists() && !data.join("files.db").exists(),
        "--status must not create the databases"
    );

    let migrated = run(admin(&data).arg("migrate"));
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    assert!(data.join("filegate.db").exists());
    assert!(
        stderr(&migrated).contains("applied"),
        "{}",
        stderr(&migrated)
    );

    let status = run(admin(&data).args(["migrate", "--status"]));
    assert!(status.status.success(), "{}", stderr(&status));
    let table = stdout(&status);
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("DATABASE"), "{table}");
    let rows: Vec<&str> = lines.collect();
    assert!(!rows.is_empty(), "{table}");
    assert!(rows.iter().all(|r| !r.contains("pending")), "{table}");
    assert!(rows[0].starts_with("media"), "{table}");
    assert!(rows.iter().any(|r| r.starts_with("files")), "{table}");
    assert!(data.join("files.db").exists());

    let again = run(admin(&data).arg("migrate"));
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stderr(&again).contains("up to date"), "{}", stderr(&again));
}

#[tokio::test]
async fn migrate_then_status_on_postgres() {
    let Some(schema) = filegate_postgres::testing::TestSchema::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let on_pg = |args: &[&str]| {
        run(admin(&data)
            .env("FILEGATE_DATABASE_URL", schema.url())
            .args(args))
    };

    let before = on_pg(&["migrate", "--status"]);
    assert!(before.status.success(), "{}", stderr(&before));
    assert!(stdout(&before).contains("pending"), "{}", stdout(&before));
    let migrated = on_pg(&["migrate"]);
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    assert!(
        stderr(&migrated).contains("applied"),
        "{}",
        stderr(&migrated)
    );
    let status = on_pg(&["migrate", "--status"]);
    let table = stdout(&status);
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert!(rows.iter().any(|r| r.starts_with("media")), "{table}");
    assert!(rows.iter().any(|r| r.starts_with("files")), "{table}");
    assert!(rows.iter().all(|r| !r.contains("pending")), "{table}");
    let again = on_pg(&["migrate"]);
    assert!(stderr(&again).contains("up to date"), "{}", stderr(&again));
    // Nothing was written under the data folder.
    assert!(!data.join("filegate.db").exists() && !data.join("files.db").exists());
    // The URL (it may hold a password) is never printed.
    for out in [&before, &migrated, &status, &again] {
        assert!(!stderr(out).contains(&schema.url()) && !stdout(out).contains(&schema.url()));
    }
}

#[test]
fn migrate_honours_the_db_override() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("elsewhere").join("media.db");
    let output = run(admin(&dir.path().join("data"))
        .arg("migrate")
        .arg("--db")
        .arg(&db));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(db.exists());
    assert!(!dir.path().join("data").join("filegate.db").exists());
}
