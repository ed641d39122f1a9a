//! `token`: mints a development JWT the server's JWT authenticator accepts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use filegate_auth::{JwtConfig, mint_token};
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;

use super::DataDirOpts;

/// Longest TTL a development token may have.
pub(crate) const MAX_TTL: Duration = Duration::from_hours(720);

/// File in the data directory where the server keeps its generated development secret.
pub(crate) const DEV_SECRET_FILE: &str = "dev-secret";

#[derive(Debug, clap::Args)]
pub(crate) struct Opts {
    /// User id (`sub`).
    #[arg(long, value_name = "USER")]
    pub user: String,
    /// Active organization id (`orgId`).
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,
    /// Role in the organization (`role`): owner, admin or member.
    #[arg(long, value_name = "ROLE")]
    pub role: Option<String>,
    /// Platform role (`userRole`, a filegate extension); `admin` is a platform admin.
    #[arg(long = "platform-role", value_name = "ROLE")]
    pub platform_role: Option<String>,
    /// Lifetime, e.g. 90s, 15m, 1h, 7d (at most 30d).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_ttl)]
    pub ttl: Duration,
    /// HMAC secret; without it, `<data-dir>/dev-secret` written by the server is used.
    #[arg(
        long,
        env = "BETTER_AUTH_SECRET",
        hide_env_values = true,
        value_name = "SECRET",
        value_parser = parse_secret
    )]
    pub secret: Option<SecretString>,
    /// Required `iss`, if the server is configured with one.
    #[arg(long, value_name = "ISSUER")]
    pub issuer: Option<String>,
    /// Required `aud`, if the server is configured with one.
    #[arg(long, value_name = "AUDIENCE")]
    pub audience: Option<String>,
    #[command(flatten)]
    pub data: DataDirOpts,
}

pub(crate) async fn run(opts: Opts) -> anyhow::Result<()> {
    let secret = resolve_secret(opts.secret, &opts.data.data_dir).await?;
    let config = JwtConfig {
        issuer: opts.issuer,
        audience: opts.audience,
        ..JwtConfig::new(secret)
    };
    let token = mint_token(
        &config,
        &opts.user,
        opts.org.as_deref(),
        opts.role.as_deref(),
        opts.platform_role.as_deref(),
        opts.ttl,
        OffsetDateTime::now_utc(),
    )
    .context("cannot mint the token")?;
    println!("{token}");
    Ok(())
}

/// Parses a TTL such as `90s`, `15m`, `1h` or `7d`, between one second and [`MAX_TTL`].
pub(crate) fn parse_ttl(s: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e} (use e.g. 90s, 15m, 1h, 7d)"))?;
    if ttl < Duration::from_secs(1) {
        return Err("must be at least 1s".to_owned());
    }
    if ttl > MAX_TTL {
        return Err("must be at most 30d".to_owned());
    }
    Ok(ttl)
}

#[expect(
    clippy::unnecessary_wraps,
    reason = "clap's value_parser takes a fallible function"
)]
fn parse_secret(s: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(s))
}

/// The explicit secret (flag or `BETTER_AUTH_SECRET`), else the server's dev secret.
async fn resolve_secret(
    explicit: Option<SecretString>,
    data_dir: &Path,
) -> anyhow::Result<SecretString> {
    // An empty BETTER_AUTH_SECRET counts as unset.
    if let Some(secret) = explicit.filter(|s| !s.expose_secret().is_empty()) {
        return Ok(secret);
    }
    let path: PathBuf = data_dir.join(DEV_SECRET_FILE);
    let contents = match tokio::fs::read_to_string(&path).await {
        Ok(contents) => contents,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "no JWT secret: set BETTER_AUTH_SECRET (or pass --secret), or start the server \
             once so it writes its development secret to {}",
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let secret = contents.trim();
    if secret.is_empty() {
        bail!(
            "{} is empty; set BETTER_AUTH_SECRET instead",
            path.display()
        );
    }
    eprintln!("using the development secret from {}", path.display());
    Ok(SecretString::from(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_accepts_the_usual_units() {
        for (input, secs) in [
            ("90s", 90),
            ("15m", 900),
            ("1h", 3600),
            ("7d", 7 * 86_400),
            ("30d", 30 * 86_400),
            ("1h 30m", 5400),
        ] {
            assert_eq!(parse_ttl(input), Ok(Duration::from_secs(secs)), "{input}");
        }
    }

    #[test]
    fn ttl_rejects_out_of_range_and_garbage() {
        for input in ["31d", "0s", "500ms", "", "10", "abc", "-1h", "1y"] {
            assert!(parse_ttl(input).is_err(), "{input}");
        }
    }

    #[tokio::test]
    async fn explicit_secret_wins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DEV_SECRET_FILE), "from-file\n").unwrap();
        let secret = resolve_secret(Some("explicit".into()), dir.path())
            .await
            .unwrap();
        assert_eq!(secret.expose_secret(), "explicit");
    }

    #[tokio::test]
    async fn dev_secret_file_is_the_fallback() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DEV_SECRET_FILE), "from-file\n").unwrap();
        for explicit in [None, Some(SecretString::from(""))] {
            let secret = resolve_secret(explicit, dir.path()).await.unwrap();
            assert_eq!(secret.expose_secret(), "from-file");
        }
    }

    #[tokio::test]
    async fn no_secret_anywhere_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve_secret(None, dir.path())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("BETTER_AUTH_SECRET"), "{err}");
        assert!(err.contains("start the server"), "{err}");
    }

    #[tokio::test]
    async fn empty_dev_secret_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DEV_SECRET_FILE), "\n").unwrap();
        assert!(resolve_secret(None, dir.path()).await.is_err());
    }
}
