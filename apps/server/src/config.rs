//! Server configuration: environment variables over an optional TOML file over defaults.
//! Every setting and its variable is listed in docs/CONFIG.md.

use anyhow::{Context, bail};
use filegate_core::domain::{
    AccessRule, AccessRules, BucketName, ByteSize, Expiry, FirewallMode, RoleHierarchy,
};
use secrecy::SecretString;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::http::RateLimit;
pub use crate::listener::ListenerLimits;

/// Credentials and endpoint of a real R2 (or other S3-compatible) store.
#[derive(Debug, Clone)]
pub struct RemoteStore {
    pub account_id: Option<String>,
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub endpoint: Option<String>,
    pub region: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub project: String,
    pub bucket: BucketName,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `None`: serve the embedded S3 endpoint on `s3_listen`.
    pub remote: Option<RemoteStore>,
    pub s3_listen: SocketAddr,
    /// `None`: a development secret is generated once under the data directory.
    pub auth_secret: Option<SecretString>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub max_upload_size: ByteSize,
    /// `sign-upload` requires `size`, so storage refuses any other size.
    pub media_require_size: bool,
    pub upload_expiry: Expiry,
    /// Browser origins allowed to PUT/GET presigned URLs on the embedded endpoint.
    pub cors_origins: Vec<String>,
    pub log_format: LogFormat,
    /// Per-IP request budget; `None` switches rate limiting off.
    pub rate_limit: Option<RateLimit>,
    /// Lifetime of the JWT minted after a session authenticated (`set-auth-token`).
    pub session_jwt_ttl: Duration,
    /// Organization roles, lowest first.
    pub roles: RoleHierarchy,
    /// Access rule of each media operation.
    pub access: AccessRules,
    /// What a request for another organization's file gets: 404 (hide) or 403 (reveal).
    pub firewall: FirewallMode,
    /// Path of the Better Auth SQLite database; without it only JWTs authenticate.
    pub auth_db: Option<PathBuf>,
    /// When set, every principal acts in this organization.
    pub pinned_org_id: Option<String>,
    /// Print the start-up banner with a development token (embedded mode only).
    pub banner: bool,
    /// Managed mode: FILES_DB, the `/storage/v1` API and the files listener.
    pub managed: bool,
    /// The files listener's address; `None` switches it off.
    pub files_listen: Option<SocketAddr>,
    /// Public origin of the files listener, used in URLs (`FILES_URL`).
    pub files_url: String,
    /// `Cache-Control: max-age` of public files, seconds.
    pub public_max_age: u32,
    /// Serve the browser upload page at `GET /` and `GET /app`.
    pub ui: bool,
    /// Timeouts and connection cap of the API and files listeners (each).
    pub listener: ListenerLimits,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    project: Option<String>,
    bucket: Option<String>,
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    s3_listen: Option<String>,
    cors_origins: Option<Vec<String>>,
    max_upload_size: Option<u64>,
    media_require_size: Option<bool>,
    upload_expires_in: Option<u64>,
    log_format: Option<String>,
    rate_limit_per_second: Option<u32>,
    managed: Option<bool>,
    files_listen: Option<String>,
    files_url: Option<String>,
    public_max_age: Option<u32>,
    role_hierarchy: Option<RoleHierarchy>,
    firewall_mode: Option<FirewallMode>,
    access: Option<AccessRules>,
    pinned_organization_id: Option<String>,
    rate_limit_burst: Option<u32>,
    ui: Option<bool>,
    header_read_timeout: Option<u32>,
    idle_timeout: Option<u32>,
    max_connections: Option<u32>,
    #[serde(default)]
    r2: FileR2,
    #[serde(default)]
    auth: FileAuth,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileR2 {
    account_id: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAuth {
    secret: Option<String>,
    jwt_issuer: Option<String>,
    jwt_audience: Option<String>,
    jwt_expires_in: Option<u64>,
    better_auth_url: Option<String>,
    database: Option<PathBuf>,
    secret_env: Option<String>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";
pub const DEFAULT_S3_LISTEN: &str = "127.0.0.1:8788";
pub const DEFAULT_FILES_LISTEN: &str = "127.0.0.1:8789";

impl Config {
    /// Reads the process environment and `FILEGATE_CONFIG` (or `./filegate.toml` when present).
    ///
    /// # Errors
    /// A readable message naming the setting that is wrong.
    pub fn load() -> anyhow::Result<Self> {
        Self::load_from(&|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// As [`Config::load`], with the environment given as a lookup function.
    ///
    /// # Errors
    /// A readable message naming the setting that is wrong.
    pub fn load_from(env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let file = match env("FILEGATE_CONFIG") {
            Some(path) => read_file(Path::new(&path))?,
            None if Path::new("filegate.toml").exists() => read_file(Path::new("filegate.toml"))?,
            None => FileConfig::default(),
        };
        Self::resolve(env, file)
    }

    fn resolve(env: &dyn Fn(&str) -> Option<String>, file: FileConfig) -> anyhow::Result<Self> {
        let pick = |var: &str, from_file: Option<String>| env(var).or(from_file);

        let project =
            pick("FILEGATE_PROJECT", file.project).unwrap_or_else(|| "filegate".to_owned());
        let bucket_raw =
            pick("FILEGATE_BUCKET", file.bucket).unwrap_or_else(|| format!("{project}-media"));
        let bucket = BucketName::parse(bucket_raw.clone())
            .map_err(|_| anyhow::anyhow!("FILEGATE_BUCKET {bucket_raw:?} is not a valid R2 bucket name (3-63 of a-z, 0-9, '-')"))?;
        let listen = parse_addr(
            "FILEGATE_LISTEN",
            pick("FILEGATE_LISTEN", file.listen),
            DEFAULT_LISTEN,
        )?;
        let s3_listen = parse_addr(
            "FILEGATE_S3_LISTEN",
            pick("FILEGATE_S3_LISTEN", file.s3_listen),
            DEFAULT_S3_LISTEN,
        )?;
        let data_dir = env("FILEGATE_DATA_DIR")
            .map(PathBuf::from)
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("data"));

        let r2 = file.r2;
        let account_id = pick("R2_ACCOUNT_ID", r2.account_id);
        let access_key_id = pick("R2_ACCESS_KEY_ID", r2.access_key_id);
        let secret = pick("R2_SECRET_ACCESS_KEY", r2.secret_access_key);
        let endpoint = pick("R2_ENDPOINT", r2.endpoint);
        let region = pick("R2_REGION", r2.region).unwrap_or_else(|| "auto".to_owned());
        let remote = match (account_id, access_key_id, secret, endpoint) {
            (None, None, None, None) => None,
            (account_id, Some(access_key_id), Some(secret), endpoint)
                if account_id.is_some() || endpoint.is_some() =>
            {
                Some(RemoteStore {
                    account_id,
                    access_key_id,
                    secret_access_key: SecretString::from(secret),
                    endpoint,
                    region,
                })
            }
            _ => bail!(
                "incomplete R2 settings: set R2_ACCOUNT_ID (or R2_ENDPOINT), R2_ACCESS_KEY_ID and R2_SECRET_ACCESS_KEY together, or none of them to use the embedded store"
            ),
        };

        let auth = file.auth;
        // Quickback's `auth.jwt.secretEnv`: the secret may live in another variable.
        let secret_var = pick("FILEGATE_JWT_SECRET_ENV", auth.secret_env)
            .unwrap_or_else(|| "BETTER_AUTH_SECRET".to_owned());
        let auth_secret = match env(&secret_var) {
            Some(v) => Some(SecretString::from(v)),
            None if secret_var != "BETTER_AUTH_SECRET" => {
                bail!("FILEGATE_JWT_SECRET_ENV names {secret_var}, which is not set")
            }
            None => auth.secret.map(SecretString::from),
        };
        let jwt_issuer = pick("FILEGATE_JWT_ISSUER", auth.jwt_issuer);
        let jwt_audience = pick("FILEGATE_JWT_AUDIENCE", auth.jwt_audience);
        let jwt_expires_in = auth
            .jwt_expires_in
            .map(|v| u32::try_from(v).unwrap_or(u32::MAX));

        let max_upload_size = match env("FILEGATE_MAX_UPLOAD_SIZE") {
            Some(v) => v
                .parse()
                .context("FILEGATE_MAX_UPLOAD_SIZE must be a number of bytes")?,
            None => file.max_upload_size.unwrap_or(100 * ByteSize::MIB),
        };
        let media_require_size = match env("FILEGATE_MEDIA_REQUIRE_SIZE").as_deref() {
            None => file.media_require_size.unwrap_or(false),
            Some("true" | "1") => true,
            Some("false" | "0") => false,
            Some(other) => {
                bail!("FILEGATE_MEDIA_REQUIRE_SIZE must be 'true' or 'false', not {other:?}")
            }
        };
        let expiry_secs = match env("FILEGATE_UPLOAD_EXPIRES_IN") {
            Some(v) => v
                .parse()
                .context("FILEGATE_UPLOAD_EXPIRES_IN must be a number of seconds")?,
            None => file.upload_expires_in.unwrap_or(Expiry::DEFAULT.secs()),
        };
        let upload_expiry = Expiry::from_secs(expiry_secs).map_err(|_| {
            anyhow::anyhow!("FILEGATE_UPLOAD_EXPIRES_IN must be between 1 and 604800 seconds")
        })?;

        let mut cors_origins: Vec<String> = match env("FILEGATE_CORS_ORIGINS") {
            Some(v) => v
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            None => file.cors_origins.unwrap_or_else(|| default_origins(listen)),
        };
        // Quickback trusts BETTER_AUTH_URL besides the listed origins.
        if let Some(url) = pick("BETTER_AUTH_URL", auth.better_auth_url) {
            let origin = url.trim_end_matches('/').to_owned();
            if !cors_origins.contains(&origin) {
                cors_origins.push(origin);
            }
        }
        for origin in &cors_origins {
            if !(origin.starts_with("http://") || origin.starts_with("https://"))
                || origin.ends_with('/')
            {
                bail!(
                    "FILEGATE_CORS_ORIGINS entry {origin:?} must be an origin like https://app.example.com"
                );
            }
        }
        let per_second = parse_num(
            "FILEGATE_RATE_LIMIT_PER_SECOND",
            env("FILEGATE_RATE_LIMIT_PER_SECOND"),
            file.rate_limit_per_second,
            10,
        )?;
        let burst = parse_num(
            "FILEGATE_RATE_LIMIT_BURST",
            env("FILEGATE_RATE_LIMIT_BURST"),
            file.rate_limit_burst,
            100,
        )?;
        let rate_limit = (per_second > 0 && burst > 0).then_some(RateLimit { per_second, burst });
        let jwt_ttl = parse_num(
            "FILEGATE_JWT_EXPIRES_IN",
            env("FILEGATE_JWT_EXPIRES_IN"),
            jwt_expires_in,
            180,
        )?;
        if !(1..=86_400).contains(&jwt_ttl) {
            bail!("FILEGATE_JWT_EXPIRES_IN must be between 1 and 86400 seconds");
        }

        let roles = match env("FILEGATE_ROLE_HIERARCHY") {
            Some(v) => RoleHierarchy::new(v.split(',').map(|r| r.trim().to_owned()).collect())
                .map_err(|e| anyhow::anyhow!("FILEGATE_ROLE_HIERARCHY: {}", e.public_message()))?,
            None => file.role_hierarchy.unwrap_or_default(),
        };
        let firewall = match env("FILEGATE_FIREWALL_MODE").as_deref() {
            None => file.firewall_mode.unwrap_or_default(),
            Some("hide") => FirewallMode::Hide,
            Some("reveal") => FirewallMode::Reveal,
            Some(other) => {
                bail!("FILEGATE_FIREWALL_MODE must be 'hide' or 'reveal', not {other:?}")
            }
        };
        let mut access = file.access.unwrap_or_default();
        for (var, slot) in [
            ("FILEGATE_ACCESS_SIGN_UPLOAD", &mut access.sign_upload),
            ("FILEGATE_ACCESS_SIGN_DOWNLOAD", &mut access.sign_download),
            ("FILEGATE_ACCESS_LIST", &mut access.list),
        ] {
            if let Some(v) = env(var) {
                *slot = v
                    .parse::<AccessRule>()
                    .map_err(|e| anyhow::anyhow!("{var}: {e}"))?;
            }
        }
        access
            .check_against(&roles)
            .map_err(|e| anyhow::anyhow!("access rules do not fit the role hierarchy: {e:?}"))?;
        let auth_db = env("FILEGATE_AUTH_DB").map(PathBuf::from).or(auth.database);
        let pinned_org_id = pick(
            "FILEGATE_PINNED_ORGANIZATION_ID",
            file.pinned_organization_id,
        );

        let ui = match env("FILEGATE_UI").as_deref() {
            None => file.ui.unwrap_or(true),
            Some("true" | "1") => true,
            Some("false" | "0") => false,
            Some(other) => bail!("FILEGATE_UI must be 'true' or 'false', not {other:?}"),
        };

        let managed = match pick("FILEGATE_MANAGED", file.managed.map(|b| b.to_string())).as_deref()
        {
            None | Some("false" | "0" | "no") => false,
            Some("true" | "1" | "yes") => true,
            Some(other) => bail!("FILEGATE_MANAGED must be true or false, not {other:?}"),
        };
        let files_listen = match pick("FILEGATE_FILES_LISTEN", file.files_listen).as_deref() {
            Some("off") => None,
            other => Some(parse_addr(
                "FILEGATE_FILES_LISTEN",
                other.map(str::to_owned),
                DEFAULT_FILES_LISTEN,
            )?),
        };
        let files_url = match pick("FILES_URL", file.files_url) {
            Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                u.trim_end_matches('/').to_owned()
            }
            Some(u) => bail!("FILES_URL must be an http(s) URL, not {u:?}"),
            None => format!(
                "http://{}",
                files_listen.map_or_else(|| DEFAULT_FILES_LISTEN.to_owned(), |a| a.to_string())
            ),
        };
        let public_max_age = parse_num(
            "FILEGATE_PUBLIC_MAX_AGE",
            env("FILEGATE_PUBLIC_MAX_AGE"),
            file.public_max_age,
            3600,
        )?;

        let defaults = ListenerLimits::default();
        let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
        let header_read_timeout = parse_num(
            "FILEGATE_HEADER_READ_TIMEOUT",
            env("FILEGATE_HEADER_READ_TIMEOUT"),
            file.header_read_timeout,
            secs(defaults.header_read_timeout),
        )?;
        let idle_timeout = parse_num(
            "FILEGATE_IDLE_TIMEOUT",
            env("FILEGATE_IDLE_TIMEOUT"),
            file.idle_timeout,
            secs(defaults.idle_timeout),
        )?;
        let max_connections = parse_num(
            "FILEGATE_MAX_CONNECTIONS",
            env("FILEGATE_MAX_CONNECTIONS"),
            file.max_connections,
            u32::try_from(defaults.max_connections).unwrap_or(u32::MAX),
        )?;
        for (name, value) in [
            ("FILEGATE_HEADER_READ_TIMEOUT", header_read_timeout),
            ("FILEGATE_IDLE_TIMEOUT", idle_timeout),
            ("FILEGATE_MAX_CONNECTIONS", max_connections),
        ] {
            if value == 0 {
                bail!("{name} must be at least 1");
            }
        }
        let listener = ListenerLimits {
            header_read_timeout: Duration::from_secs(u64::from(header_read_timeout)),
            idle_timeout: Duration::from_secs(u64::from(idle_timeout)),
            max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
        };

        let log_format = match pick("FILEGATE_LOG_FORMAT", file.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => bail!("FILEGATE_LOG_FORMAT must be 'text' or 'json', not {other:?}"),
        };

        Ok(Self {
            project,
            bucket,
            listen,
            data_dir,
            remote,
            s3_listen,
            auth_secret,
            jwt_issuer,
            jwt_audience,
            max_upload_size: ByteSize(max_upload_size),
            media_require_size,
            upload_expiry,
            cors_origins,
            log_format,
            rate_limit,
            roles,
            access,
            firewall,
            auth_db,
            pinned_org_id,
            session_jwt_ttl: Duration::from_secs(u64::from(jwt_ttl)),
            banner: true,
            managed,
            files_listen,
            files_url,
            public_max_age,
            ui,
            listener,
        })
    }

    /// Embedded store, both listeners on port 0, everything under `data_dir`: for tests.
    #[must_use]
    pub fn ephemeral(data_dir: &Path) -> Self {
        let mut config = Self::resolve(&|_| None, FileConfig::default())
            .unwrap_or_else(|e| unreachable!("defaults are valid: {e}"));
        config.data_dir = data_dir.to_path_buf();
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.s3_listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.banner = false;
        config.files_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.rate_limit = None;
        config
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

fn parse_addr(name: &str, value: Option<String>, default: &str) -> anyhow::Result<SocketAddr> {
    let raw = value.unwrap_or_else(|| default.to_owned());
    raw.parse()
        .with_context(|| format!("{name} must be an address like {default}, not {raw:?}"))
}

fn parse_num(
    name: &str,
    env: Option<String>,
    file: Option<u32>,
    default: u32,
) -> anyhow::Result<u32> {
    match env {
        Some(v) => v
            .trim()
            .parse()
            .with_context(|| format!("{name} must be a whole number, not {v:?}")),
        None => Ok(file.unwrap_or(default)),
    }
}

fn default_origins(listen: SocketAddr) -> Vec<String> {
    let port = listen.port();
    vec![
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_describe_the_embedded_setup() {
        let c = Config::resolve(&env(&[]), FileConfig::default()).unwrap();
        assert_eq!(c.bucket.as_str(), "filegate-media");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8787");
        assert_eq!(c.s3_listen.to_string(), "127.0.0.1:8788");
        assert!(c.remote.is_none());
        assert_eq!(c.max_upload_size.bytes(), 100 * 1024 * 1024);
        assert_eq!(c.upload_expiry.secs(), 600);
        assert_eq!(
            c.cors_origins,
            ["http://127.0.0.1:8787", "http://localhost:8787"]
        );
    }

    #[test]
    fn r2_credentials_switch_to_the_remote_store() {
        let c = Config::resolve(
            &env(&[
                ("R2_ACCOUNT_ID", "acc"),
                ("R2_ACCESS_KEY_ID", "ak"),
                ("R2_SECRET_ACCESS_KEY", "sk"),
                ("FILEGATE_PROJECT", "myapp"),
            ]),
            FileConfig::default(),
        )
        .unwrap();
        let remote = c.remote.unwrap();
        assert_eq!(remote.account_id.as_deref(), Some("acc"));
        assert_eq!(remote.region, "auto");
        assert_eq!(c.bucket.as_str(), "myapp-media");
    }

    #[test]
    fn partial_r2_credentials_are_an_error() {
        let err =
            Config::resolve(&env(&[("R2_ACCOUNT_ID", "acc")]), FileConfig::default()).unwrap_err();
        assert!(err.to_string().contains("incomplete R2 settings"));
    }

    #[test]
    fn environment_overrides_the_file() {
        let file: FileConfig = toml::from_str(
            "bucket = \"from-file\"\nlisten = \"127.0.0.1:9000\"\n[auth]\nsecret = \"s\"",
        )
        .unwrap();
        let c = Config::resolve(&env(&[("FILEGATE_BUCKET", "from-env")]), file).unwrap();
        assert_eq!(c.bucket.as_str(), "from-env");
        assert_eq!(c.listen.port(), 9000);
        assert!(c.auth_secret.is_some());
    }

    #[test]
    fn bad_values_name_their_setting() {
        for (k, v) in [
            ("FILEGATE_BUCKET", "Bad_Name"),
            ("FILEGATE_LISTEN", "nope"),
            ("FILEGATE_UPLOAD_EXPIRES_IN", "604801"),
            ("FILEGATE_MAX_UPLOAD_SIZE", "-1"),
            ("FILEGATE_CORS_ORIGINS", "example.com"),
            ("FILEGATE_LOG_FORMAT", "xml"),
            ("FILEGATE_UI", "maybe"),
            ("FILEGATE_HEADER_READ_TIMEOUT", "0"),
            ("FILEGATE_IDLE_TIMEOUT", "soon"),
            ("FILEGATE_MAX_CONNECTIONS", "0"),
        ] {
            let err = Config::resolve(&env(&[(k, v)]), FileConfig::default()).unwrap_err();
            assert!(format!("{err:#}").contains(k), "{k}: {err:#}");
        }
    }

    #[test]
    fn the_secret_can_come_from_a_named_variable() {
        let c = Config::resolve(
            &env(&[
                ("FILEGATE_JWT_SECRET_ENV", "MY_SECRET"),
                ("MY_SECRET", "s3cret"),
            ]),
            FileConfig::default(),
        )
        .unwrap();
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(c.auth_secret.as_ref().unwrap()),
            "s3cret"
        );
        let err = Config::resolve(
            &env(&[("FILEGATE_JWT_SECRET_ENV", "MISSING")]),
            FileConfig::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("MISSING"));
    }

    #[test]
    fn the_upload_page_is_on_unless_switched_off() {
        let ui = |vars: &[(&str, &str)], file| Config::resolve(&env(vars), file).unwrap().ui;
        let off = || toml::from_str::<FileConfig>("ui = false").unwrap();
        assert!(ui(&[], FileConfig::default()));
        assert!(!ui(&[], off()));
        assert!(ui(&[("FILEGATE_UI", "1")], off()));
    }

    #[test]
    fn listener_limits_have_defaults_and_settings() {
        let c = Config::resolve(&env(&[]), FileConfig::default()).unwrap();
        assert_eq!(c.listener, ListenerLimits::default());
        let file: FileConfig =
            toml::from_str("header_read_timeout = 5\nidle_timeout = 7\nmax_connections = 9")
                .unwrap();
        let c = Config::resolve(&env(&[("FILEGATE_IDLE_TIMEOUT", "8")]), file).unwrap();
        assert_eq!(c.listener.header_read_timeout, Duration::from_secs(5));
        assert_eq!(c.listener.idle_timeout, Duration::from_secs(8));
        assert_eq!(c.listener.max_connections, 9);
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        assert!(toml::from_str::<FileConfig>("buckett = \"x\"").is_err());
    }
}
