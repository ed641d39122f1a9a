//! Server configuration, layered defaults < TOML file < environment with figment
//! (the `layers` module), then checked and completed into [`Config`] here. Every setting and its
//! variable is listed in docs/CONFIG.md.

mod layers;

use anyhow::{Context, bail};
pub use filegate_auth::PgAuthPool;
use filegate_core::domain::{
    AccessRules, BucketName, ByteSize, Expiry, FirewallMode, RoleHierarchy,
};
use layers::{FileLayer, Settings};
use secrecy::SecretString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Per-IP request budget: `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

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

/// Where Better Auth's database is (`FILEGATE_AUTH_DB`).
#[derive(Clone)]
pub enum AuthDbLocation {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A `postgres://` or `postgresql://` URL; it may carry a password, so it is secret.
    Postgres(SecretString),
}

impl From<PathBuf> for AuthDbLocation {
    /// A `postgres://` or `postgresql://` value is a URL, anything else a file path.
    fn from(value: PathBuf) -> Self {
        match value.to_str() {
            Some(url) if filegate_auth::is_postgres_url(url) => {
                Self::Postgres(SecretString::from(url.trim().to_owned()))
            }
            _ => Self::Sqlite(value),
        }
    }
}

impl std::fmt::Debug for AuthDbLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Self::Postgres(_) => f.write_str("Postgres([REDACTED])"),
        }
    }
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
    /// How long a multipart upload may stay unfinished (its row is then stale and
    /// `purge` aborts it at storage).
    pub multipart_max_age: Duration,
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
    /// Better Auth's database (SQLite file or PostgreSQL URL); without it only JWTs
    /// authenticate.
    pub auth_db: Option<AuthDbLocation>,
    /// Pool size and timeout of the auth database when it is on Postgres.
    pub auth_db_pool: PgAuthPool,
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
    /// Postgres for the media table, the audit log and FILES_DB; `None`: SQLite files
    /// under `data_dir`.
    pub postgres: Option<PostgresConfig>,
}

/// Where the metadata lives when it is in Postgres (docs/CONFIG.md, "Database").
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// The media table and the audit log; also FILES_DB unless `files_url` is set.
    /// Secret: it may carry a password.
    pub url: SecretString,
    /// FILES_DB in a database of its own.
    pub files_url: Option<SecretString>,
    /// Connections per pool at most.
    pub pool_size: usize,
    /// Statements running longer are cancelled by the server; `None`: the server's limit.
    pub statement_timeout: Option<Duration>,
}

/// Limits of one listener (docs/CONFIG.md, "Listener limits").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Longest time to receive a request head, from when the connection starts waiting
    /// for it (also the keep-alive idle time between requests).
    pub header_read_timeout: Duration,
    /// A connection on which no byte moves either way for this long is closed.
    pub idle_timeout: Duration,
    /// Open connections at most; further ones wait to be accepted.
    pub max_connections: usize,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_mins(1),
            max_connections: 512,
        }
    }
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
            Some(path) => Some(FileLayer::read(Path::new(&path))?),
            None if Path::new("filegate.toml").exists() => {
                Some(FileLayer::read(Path::new("filegate.toml"))?)
            }
            None => None,
        };
        Self::from_layers(env, file)
    }

    fn from_layers(
        env: &dyn Fn(&str) -> Option<String>,
        file: Option<FileLayer>,
    ) -> anyhow::Result<Self> {
        Self::resolve(env, layers::layered(env, file)?)
    }

    /// Checks the layered settings and fills the defaults that follow from other settings.
    fn resolve(env: &dyn Fn(&str) -> Option<String>, s: Settings) -> anyhow::Result<Self> {
        let project = s.project;
        let bucket_raw = s.bucket.unwrap_or_else(|| format!("{project}-media"));
        let bucket = BucketName::parse(bucket_raw.clone())
            .map_err(|_| anyhow::anyhow!("FILEGATE_BUCKET {bucket_raw:?} is not a valid R2 bucket name (3-63 of a-z, 0-9, '-')"))?;
        let listen = parse_addr("FILEGATE_LISTEN", &s.listen, DEFAULT_LISTEN)?;
        let s3_listen = parse_addr("FILEGATE_S3_LISTEN", &s.s3_listen, DEFAULT_S3_LISTEN)?;
        let data_dir = s.data_dir;

        let remote = remote_store(s.r2)?;

        let auth = s.auth;
        let auth_secret = auth_secret(env, auth.secret_env, auth.secret)?;

        let upload_expiry = Expiry::from_secs(s.upload_expires_in).map_err(|_| {
            anyhow::anyhow!("FILEGATE_UPLOAD_EXPIRES_IN must be between 1 and 604800 seconds")
        })?;

        // At least the part URLs' lifetime plus the margin: a part signed late must finish.
        let multipart_floor = upload_expiry.duration().as_secs() + 3600;
        if s.multipart_max_age < multipart_floor || s.multipart_max_age > 90 * 86_400 {
            bail!(
                "FILEGATE_MULTIPART_MAX_AGE must be between FILEGATE_UPLOAD_EXPIRES_IN + 3600 ({multipart_floor}) and 7776000 seconds (90 days)"
            );
        }
        let multipart_max_age = Duration::from_secs(s.multipart_max_age);

        let cors_origins = cors_origins(s.cors_origins, listen, auth.better_auth_url)?;
        let (per_second, burst) = (s.rate_limit_per_second, s.rate_limit_burst);
        let rate_limit = (per_second > 0 && burst > 0).then_some(RateLimit { per_second, burst });
        let jwt_ttl = auth.jwt_expires_in;
        if !(1..=86_400).contains(&jwt_ttl) {
            bail!("FILEGATE_JWT_EXPIRES_IN must be between 1 and 86400 seconds");
        }

        let roles = s.role_hierarchy.unwrap_or_default();
        let access: AccessRules = s.access.unwrap_or_default();
        access
            .check_against(&roles)
            .map_err(|e| anyhow::anyhow!("access rules do not fit the role hierarchy: {e:?}"))?;

        let files_listen = match s.files_listen.as_str() {
            "off" => None,
            other => Some(parse_addr(
                "FILEGATE_FILES_LISTEN",
                other,
                DEFAULT_FILES_LISTEN,
            )?),
        };
        let files_url = match s.files_url {
            Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                u.trim_end_matches('/').to_owned()
            }
            Some(u) => bail!("FILES_URL must be an http(s) URL, not {u:?}"),
            None => format!(
                "http://{}",
                files_listen.map_or_else(|| DEFAULT_FILES_LISTEN.to_owned(), |a| a.to_string())
            ),
        };

        let listener = listener_limits(s.header_read_timeout, s.idle_timeout, s.max_connections)?;
        let postgres = postgres_config(s.database)?;
        let auth_db_pool = auth_db_pool(auth.database_pool_size, auth.database_timeout)?;

        let log_format = match s.log_format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => bail!("FILEGATE_LOG_FORMAT must be 'text' or 'json', not {other:?}"),
        };

        Ok(Self {
            project,
            bucket,
            listen,
            data_dir,
            remote,
            s3_listen,
            auth_secret,
            jwt_issuer: auth.jwt_issuer,
            jwt_audience: auth.jwt_audience,
            max_upload_size: ByteSize(s.max_upload_size),
            media_require_size: s.media_require_size,
            upload_expiry,
            multipart_max_age,
            cors_origins,
            log_format,
            rate_limit,
            roles,
            access,
            firewall: s.firewall_mode,
            auth_db: auth.database.map(AuthDbLocation::from),
            auth_db_pool,
            pinned_org_id: s.pinned_organization_id,
            session_jwt_ttl: Duration::from_secs(jwt_ttl),
            banner: true,
            managed: s.managed,
            files_listen,
            files_url,
            public_max_age: s.public_max_age,
            ui: s.ui,
            listener,
            postgres,
        })
    }

    /// Embedded store, both listeners on port 0, everything under `data_dir`: for tests.
    #[must_use]
    pub fn ephemeral(data_dir: &Path) -> Self {
        let mut config = Self::from_layers(&|_| None, None)
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

/// The remote store, when `[r2]` / `R2_*` describe one completely; none when all are unset.
fn remote_store(r2: layers::R2Settings) -> anyhow::Result<Option<RemoteStore>> {
    match (
        r2.account_id,
        r2.access_key_id,
        r2.secret_access_key,
        r2.endpoint,
    ) {
        (None, None, None, None) => Ok(None),
        (account_id, Some(access_key_id), Some(secret), endpoint)
            if account_id.is_some() || endpoint.is_some() =>
        {
            Ok(Some(RemoteStore {
                account_id,
                access_key_id,
                secret_access_key: SecretString::from(secret),
                endpoint,
                region: r2.region,
            }))
        }
        _ => bail!(
            "incomplete R2 settings: set R2_ACCOUNT_ID (or R2_ENDPOINT), R2_ACCESS_KEY_ID and R2_SECRET_ACCESS_KEY together, or none of them to use the embedded store"
        ),
    }
}

/// The signing secret: the variable `secret_env` names (Quickback's `auth.jwt.secretEnv`,
/// default `BETTER_AUTH_SECRET`), else the file's `[auth] secret`.
fn auth_secret(
    env: &dyn Fn(&str) -> Option<String>,
    secret_env: Option<String>,
    from_file: Option<String>,
) -> anyhow::Result<Option<SecretString>> {
    let secret_var = secret_env.unwrap_or_else(|| "BETTER_AUTH_SECRET".to_owned());
    match env(&secret_var) {
        Some(v) => Ok(Some(SecretString::from(v))),
        None if secret_var != "BETTER_AUTH_SECRET" => {
            bail!("FILEGATE_JWT_SECRET_ENV names {secret_var}, which is not set")
        }
        None => Ok(from_file.map(SecretString::from)),
    }
}

/// The trusted origins: the configured ones (default: the API's own) and `BETTER_AUTH_URL`.
fn cors_origins(
    configured: Option<Vec<String>>,
    listen: SocketAddr,
    better_auth_url: Option<String>,
) -> anyhow::Result<Vec<String>> {
    let mut cors_origins = configured.unwrap_or_else(|| default_origins(listen));
    // Quickback trusts BETTER_AUTH_URL besides the listed origins.
    if let Some(url) = better_auth_url {
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
    Ok(cors_origins)
}

/// The auth database's pool on Postgres.
fn auth_db_pool(size: u32, timeout: u32) -> anyhow::Result<PgAuthPool> {
    if !(1..=1000).contains(&size) {
        bail!("FILEGATE_AUTH_DB_POOL_SIZE must be between 1 and 1000");
    }
    if !(1..=300).contains(&timeout) {
        bail!("FILEGATE_AUTH_DB_TIMEOUT must be between 1 and 300 seconds");
    }
    Ok(PgAuthPool {
        size: size as usize,
        timeout: Duration::from_secs(u64::from(timeout)),
    })
}

/// The Postgres settings, when `FILEGATE_DATABASE_URL` is set.
fn postgres_config(d: layers::DatabaseSettings) -> anyhow::Result<Option<PostgresConfig>> {
    // Messages never repeat a URL: it may hold a password.
    let check = |name: &str, url: &str| {
        if filegate_postgres::is_postgres_url(url) {
            Ok(())
        } else {
            Err(anyhow::anyhow!(
                "{name} must be a postgres:// or postgresql:// URL"
            ))
        }
    };
    let Some(url) = d.url else {
        if d.files_url.is_some() {
            bail!(
                "FILEGATE_FILES_DATABASE_URL needs FILEGATE_DATABASE_URL (FILES_DB on Postgres with the media table in SQLite is not supported)"
            );
        }
        return Ok(None);
    };
    check("FILEGATE_DATABASE_URL", &url)?;
    if let Some(files) = &d.files_url {
        check("FILEGATE_FILES_DATABASE_URL", files)?;
    }
    if !(1..=1000).contains(&d.pool_size) {
        bail!("FILEGATE_DATABASE_POOL_SIZE must be between 1 and 1000");
    }
    Ok(Some(PostgresConfig {
        url: SecretString::from(url),
        files_url: d.files_url.map(SecretString::from),
        pool_size: d.pool_size as usize,
        statement_timeout: (d.statement_timeout > 0)
            .then(|| Duration::from_secs(u64::from(d.statement_timeout))),
    }))
}

fn listener_limits(
    header_read_timeout: u32,
    idle_timeout: u32,
    max_connections: u32,
) -> anyhow::Result<ListenerLimits> {
    for (name, value) in [
        ("FILEGATE_HEADER_READ_TIMEOUT", header_read_timeout),
        ("FILEGATE_IDLE_TIMEOUT", idle_timeout),
        ("FILEGATE_MAX_CONNECTIONS", max_connections),
    ] {
        if value == 0 {
            bail!("{name} must be at least 1");
        }
    }
    Ok(ListenerLimits {
        header_read_timeout: Duration::from_secs(u64::from(header_read_timeout)),
        idle_timeout: Duration::from_secs(u64::from(idle_timeout)),
        max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
    })
}

fn parse_addr(name: &str, raw: &str, default: &str) -> anyhow::Result<SocketAddr> {
    raw.parse()
        .with_context(|| format!("{name} must be an address like {default}, not {raw:?}"))
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
    use filegate_core::domain::AccessRule;
    use secrecy::ExposeSecret as _;
    use std::collections::HashMap;

    /// The configuration from these variables and, when given, this TOML file.
    fn load(pairs: &[(&str, &str)], file: Option<&str>) -> anyhow::Result<Config> {
        let file = file.map(|text| FileLayer::parse(Path::new("test.toml"), text).unwrap());
        Config::from_layers(&env(pairs), file)
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn a_database_url_puts_the_metadata_on_postgres() {
        assert!(load(&[], None).unwrap().postgres.is_none());
        let c = load(
            &[
                ("FILEGATE_DATABASE_URL", "postgres://u:pw@db:5432/filegate"),
                ("FILEGATE_DATABASE_POOL_SIZE", "4"),
                ("FILEGATE_DATABASE_STATEMENT_TIMEOUT", "0"),
            ],
            None,
        )
        .unwrap();
        let pg = c.postgres.unwrap();
        assert_eq!(pg.url.expose_secret(), "postgres://u:pw@db:5432/filegate");
        assert!(pg.files_url.is_none());
        assert_eq!(pg.pool_size, 4);
        assert_eq!(pg.statement_timeout, None);
        assert!(
            !format!("{pg:?}").contains("pw"),
            "the password stays out of logs"
        );

        let c = load(
            &[],
            Some("[database]\nurl = \"postgresql://db/a\"\nfiles_url = \"postgres://db/b\"\n"),
        )
        .unwrap();
        let pg = c.postgres.unwrap();
        assert_eq!(pg.files_url.unwrap().expose_secret(), "postgres://db/b");
        assert_eq!(pg.pool_size, 16);
        assert_eq!(pg.statement_timeout, Some(Duration::from_secs(30)));

        for (pairs, needle) in [
            (
                &[("FILEGATE_DATABASE_URL", "mysql://u:secretpw@db/x")][..],
                "FILEGATE_DATABASE_URL must be a postgres://",
            ),
            (
                &[("FILEGATE_FILES_DATABASE_URL", "postgres://db/b")][..],
                "needs FILEGATE_DATABASE_URL",
            ),
            (
                &[
                    ("FILEGATE_DATABASE_URL", "postgres://db/a"),
                    ("FILEGATE_DATABASE_POOL_SIZE", "0"),
                ][..],
                "FILEGATE_DATABASE_POOL_SIZE",
            ),
        ] {
            let err = load(pairs, None).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
            assert!(!err.contains("secretpw"), "{err}");
        }
    }

    #[test]
    fn defaults_describe_the_embedded_setup() {
        let c = load(&[], None).unwrap();
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
        let c = load(
            &[
                ("R2_ACCOUNT_ID", "acc"),
                ("R2_ACCESS_KEY_ID", "ak"),
                ("R2_SECRET_ACCESS_KEY", "sk"),
                ("FILEGATE_PROJECT", "myapp"),
            ],
            None,
        )
        .unwrap();
        let remote = c.remote.unwrap();
        assert_eq!(remote.account_id.as_deref(), Some("acc"));
        assert_eq!(remote.region, "auto");
        assert_eq!(c.bucket.as_str(), "myapp-media");
    }

    #[test]
    fn partial_r2_credentials_are_an_error() {
        let err = load(&[("R2_ACCOUNT_ID", "acc")], None).unwrap_err();
        assert!(err.to_string().contains("incomplete R2 settings"));
    }

    #[test]
    fn environment_overrides_the_file() {
        let file = "bucket = \"from-file\"\nlisten = \"127.0.0.1:9000\"\n[auth]\nsecret = \"s\"";
        let c = load(&[("FILEGATE_BUCKET", "from-env")], Some(file)).unwrap();
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
            let err = load(&[(k, v)], None).unwrap_err();
            assert!(format!("{err:#}").contains(k), "{k}: {err:#}");
        }
    }

    #[test]
    fn the_secret_can_come_from_a_named_variable() {
        let c = load(
            &[
                ("FILEGATE_JWT_SECRET_ENV", "MY_SECRET"),
                ("MY_SECRET", "s3cret"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(c.auth_secret.as_ref().unwrap()),
            "s3cret"
        );
        let err = load(&[("FILEGATE_JWT_SECRET_ENV", "MISSING")], None).unwrap_err();
        assert!(err.to_string().contains("MISSING"));
    }

    #[test]
    fn the_auth_database_is_a_file_or_a_postgres_url_that_never_prints() {
        let c = load(&[("FILEGATE_AUTH_DB", "/srv/auth.db")], None).unwrap();
        assert!(
            matches!(&c.auth_db, Some(AuthDbLocation::Sqlite(p)) if p == Path::new("/srv/auth.db"))
        );
        for url in [
            "postgres://ba:hunter2@db.internal/auth",
            "PostgreSQL://ba:hunter2@db.internal/auth",
        ] {
            let c = load(&[("FILEGATE_AUTH_DB", url)], None).unwrap();
            let Some(AuthDbLocation::Postgres(secret)) = &c.auth_db else {
                panic!("{url}: {:?}", c.auth_db);
            };
            assert_eq!(secrecy::ExposeSecret::expose_secret(secret), url);
            assert!(!format!("{c:?}").contains("hunter2"));
        }
    }

    #[test]
    fn the_auth_database_pool_is_a_setting() {
        assert_eq!(load(&[], None).unwrap().auth_db_pool, PgAuthPool::default());
        let c = load(
            &[
                ("FILEGATE_AUTH_DB_POOL_SIZE", "3"),
                ("FILEGATE_AUTH_DB_TIMEOUT", "2"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(c.auth_db_pool.size, 3);
        assert_eq!(c.auth_db_pool.timeout, Duration::from_secs(2));
        for (k, v) in [
            ("FILEGATE_AUTH_DB_POOL_SIZE", "0"),
            ("FILEGATE_AUTH_DB_TIMEOUT", "0"),
        ] {
            let err = load(&[(k, v)], None).unwrap_err();
            assert!(format!("{err:#}").contains(k), "{k}: {err:#}");
        }
    }

    #[test]
    fn the_upload_page_is_on_unless_switched_off() {
        let ui = |vars: &[(&str, &str)], file| load(vars, file).unwrap().ui;
        let off = || Some("ui = false");
        assert!(ui(&[], None));
        assert!(!ui(&[], off()));
        assert!(ui(&[("FILEGATE_UI", "1")], off()));
    }

    #[test]
    fn listener_limits_have_defaults_and_settings() {
        let c = load(&[], None).unwrap();
        assert_eq!(c.listener, ListenerLimits::default());
        let file = "header_read_timeout = 5\nidle_timeout = 7\nmax_connections = 9";
        let c = load(&[("FILEGATE_IDLE_TIMEOUT", "8")], Some(file)).unwrap();
        assert_eq!(c.listener.header_read_timeout, Duration::from_secs(5));
        assert_eq!(c.listener.idle_timeout, Duration::from_secs(8));
        assert_eq!(c.listener.max_connections, 9);
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        let err = load(&[], Some("buckett = \"x\"")).unwrap_err();
        assert!(format!("{err:#}").contains("buckett"), "{err:#}");
    }

    #[test]
    fn each_layer_overrides_the_one_below() {
        let file = "project = \"fromfile\"\nlisten = \"127.0.0.1:9000\"\n[r2]\nregion = \"eu\"";
        let c = load(&[("FILEGATE_LISTEN", "127.0.0.1:9100")], Some(file)).unwrap();
        // Environment over file.
        assert_eq!(c.listen.port(), 9100);
        // File over default, and the defaults that follow from it.
        assert_eq!(c.project, "fromfile");
        assert_eq!(c.bucket.as_str(), "fromfile-media");
        assert_eq!(
            c.cors_origins,
            ["http://127.0.0.1:9100", "http://localhost:9100"]
        );
        // Defaults where neither says anything.
        assert_eq!(c.s3_listen.to_string(), DEFAULT_S3_LISTEN);
        assert_eq!(c.session_jwt_ttl, Duration::from_mins(3));
        // A nested key of the file stays when the environment sets a sibling.
        let c = load(
            &[
                ("R2_ACCOUNT_ID", "acc"),
                ("R2_ACCESS_KEY_ID", "ak"),
                ("R2_SECRET_ACCESS_KEY", "sk"),
            ],
            Some(file),
        )
        .unwrap();
        assert_eq!(c.remote.unwrap().region, "eu");
    }

    #[test]
    fn tables_of_the_file_and_the_environment_merge() {
        let file = "[access]\nsign_download = \"admin+\"";
        let c = load(&[("FILEGATE_ACCESS_SIGN_UPLOAD", "owner+")], Some(file)).unwrap();
        assert_eq!(c.access.sign_download, AccessRule::at_least("admin"));
        assert_eq!(c.access.sign_upload, AccessRule::at_least("owner"));
        assert_eq!(c.access.list, AccessRule::at_least("member"));
    }

    #[test]
    fn every_flag_takes_the_one_boolean_syntax() {
        type Read = fn(&Config) -> bool;
        let flags: [(&str, Read); 3] = [
            ("FILEGATE_UI", |c| c.ui),
            ("FILEGATE_MANAGED", |c| c.managed),
            ("FILEGATE_MEDIA_REQUIRE_SIZE", |c| c.media_require_size),
        ];
        for (var, read) in flags {
            for (raw, want) in [
                ("true", true),
                ("1", true),
                ("yes", true),
                ("false", false),
                ("0", false),
                ("no", false),
            ] {
                assert_eq!(
                    read(&load(&[(var, raw)], None).unwrap()),
                    want,
                    "{var}={raw}"
                );
            }
            for raw in ["maybe", "TRUE", "on", "2"] {
                let err = load(&[(var, raw)], None).unwrap_err();
                assert!(format!("{err:#}").contains(var), "{var}={raw}: {err:#}");
            }
        }
    }

    #[test]
    fn bad_values_in_the_file_name_their_setting() {
        for (text, setting) in [
            ("ui = \"maybe\"", "FILEGATE_UI"),
            ("managed = 1", "FILEGATE_MANAGED"),
            ("idle_timeout = \"soon\"", "FILEGATE_IDLE_TIMEOUT"),
            ("max_connections = -1", "FILEGATE_MAX_CONNECTIONS"),
            ("firewall_mode = \"open\"", "FILEGATE_FIREWALL_MODE"),
            ("role_hierarchy = [\"a\", \"a\"]", "FILEGATE_ROLE_HIERARCHY"),
            ("[access]\nlist = \"*\"", "FILEGATE_ACCESS_LIST"),
            (
                "[auth]\njwt_expires_in = \"long\"",
                "FILEGATE_JWT_EXPIRES_IN",
            ),
            (
                "[r2]\nregoin = \"x\"",
                "unknown setting `r2.regoin` (in the config file",
            ),
            ("listen = \"x\"", "FILEGATE_LISTEN"),
        ] {
            let err = format!("{:#}", load(&[], Some(text)).unwrap_err());
            assert!(err.contains(setting), "{text}: {err}");
        }
        // Type errors also say which layer the value came from.
        let err = format!("{:#}", load(&[], Some("ui = 3")).unwrap_err());
        assert!(err.contains("test.toml"), "{err}");
        // A file that is not TOML at all names the file.
        let err = FileLayer::parse(Path::new("broken.toml"), "ui = ")
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("broken.toml"), "{err:#}");
    }

    #[test]
    fn bad_values_in_the_environment_name_their_variable() {
        for (k, v) in [
            ("FILEGATE_MAX_CONNECTIONS", "99999999999"),
            ("FILEGATE_FIREWALL_MODE", "open"),
            ("FILEGATE_ROLE_HIERARCHY", "member,,owner"),
            ("FILEGATE_ACCESS_LIST", "*"),
            ("FILEGATE_JWT_EXPIRES_IN", "0"),
            ("FILEGATE_FILES_LISTEN", "everywhere"),
            ("FILES_URL", "ftp://files"),
        ] {
            let err = load(&[(k, v)], None).unwrap_err();
            assert!(format!("{err:#}").contains(k), "{k}: {err:#}");
        }
    }

    #[test]
    fn text_that_looks_like_a_number_stays_text() {
        let c = load(
            &[
                ("R2_ACCOUNT_ID", "12345"),
                ("R2_ACCESS_KEY_ID", "678"),
                ("R2_SECRET_ACCESS_KEY", "true"),
                ("FILEGATE_PINNED_ORGANIZATION_ID", "42"),
                ("FILEGATE_PROJECT", "2024"),
            ],
            None,
        )
        .unwrap();
        let remote = c.remote.unwrap();
        assert_eq!(remote.account_id.as_deref(), Some("12345"));
        assert_eq!(remote.access_key_id, "678");
        assert_eq!(c.pinned_org_id.as_deref(), Some("42"));
        assert_eq!(c.bucket.as_str(), "2024-media");
    }
}
