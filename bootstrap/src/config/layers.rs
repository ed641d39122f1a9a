//! The three layers of the configuration, merged by figment: defaults < TOML file <
//! environment. Each setting has one TOML key and one variable ([`VARIABLES`]); values
//! from the environment are typed here, with one boolean syntax ([`parse_bool`]), and
//! every error names the setting.

use super::ListenerLimits;
use anyhow::Context;
use figment::providers::Serialized;
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use filegate_core::domain::{AccessRules, ByteSize, Expiry, FirewallMode, RoleHierarchy};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Every setting, as layered; [`super::Config::resolve`] checks and completes it.
/// Fields left `None` have no default of their own (it follows from other settings).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Settings {
    pub project: String,
    pub bucket: Option<String>,
    pub listen: String,
    pub data_dir: PathBuf,
    pub s3_listen: String,
    pub cors_origins: Option<Vec<String>>,
    pub max_upload_size: u64,
    pub media_require_size: bool,
    pub upload_expires_in: u64,
    pub multipart_max_age: u64,
    pub log_format: String,
    pub rate_limit_per_second: u32,
    pub rate_limit_burst: u32,
    pub managed: bool,
    pub files_listen: String,
    pub files_url: Option<String>,
    pub public_max_age: u32,
    // Core's policy types only deserialize: their defaults apply in `resolve`.
    #[serde(default, skip_serializing)]
    pub role_hierarchy: Option<RoleHierarchy>,
    pub firewall_mode: FirewallMode,
    #[serde(default, skip_serializing)]
    pub access: Option<AccessRules>,
    pub pinned_organization_id: Option<String>,
    pub ui: bool,
    pub header_read_timeout: u32,
    pub idle_timeout: u32,
    pub max_connections: u32,
    pub r2: R2Settings,
    pub auth: AuthSettings,
    pub database: DatabaseSettings,
}

/// `[database]`: Postgres for the metadata instead of SQLite under the data folder.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DatabaseSettings {
    pub url: Option<String>,
    pub files_url: Option<String>,
    pub pool_size: u32,
    /// Seconds; 0 leaves the server's own limit.
    pub statement_timeout: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct R2Settings {
    pub account_id: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub endpoint: Option<String>,
    pub region: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuthSettings {
    /// Only from the file: the variable is `secret_env`'s (see `resolve`).
    pub secret: Option<String>,
    pub secret_env: Option<String>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub jwt_expires_in: u64,
    pub better_auth_url: Option<String>,
    pub database: Option<PathBuf>,
    /// Postgres only: most connections of the auth database's pool.
    pub database_pool_size: u32,
    /// Postgres only: seconds to connect, wait for a connection, and answer one lookup.
    pub database_timeout: u32,
}

impl Default for Settings {
    fn default() -> Self {
        let limits = ListenerLimits::default();
        let secs = |d: std::time::Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
        Self {
            project: "filegate".to_owned(),
            bucket: None,
            listen: super::DEFAULT_LISTEN.to_owned(),
            data_dir: PathBuf::from("data"),
            s3_listen: super::DEFAULT_S3_LISTEN.to_owned(),
            cors_origins: None,
            max_upload_size: 100 * ByteSize::MIB,
            media_require_size: false,
            upload_expires_in: Expiry::DEFAULT.secs(),
            multipart_max_age: filegate_core::policy::DEFAULT_MULTIPART_MAX_AGE.as_secs(),
            log_format: "text".to_owned(),
            rate_limit_per_second: 10,
            rate_limit_burst: 100,
            managed: false,
            files_listen: super::DEFAULT_FILES_LISTEN.to_owned(),
            files_url: None,
            public_max_age: 3600,
            role_hierarchy: None,
            firewall_mode: FirewallMode::default(),
            access: None,
            pinned_organization_id: None,
            ui: true,
            header_read_timeout: secs(limits.header_read_timeout),
            idle_timeout: secs(limits.idle_timeout),
            max_connections: u32::try_from(limits.max_connections).unwrap_or(u32::MAX),
            r2: R2Settings {
                account_id: None,
                access_key_id: None,
                secret_access_key: None,
                endpoint: None,
                region: "auto".to_owned(),
            },
            auth: AuthSettings {
                secret: None,
                secret_env: None,
                jwt_issuer: None,
                jwt_audience: None,
                jwt_expires_in: 180,
                better_auth_url: None,
                database: None,
                database_pool_size: 8,
                database_timeout: 5,
            },
            database: DatabaseSettings {
                url: None,
                files_url: None,
                pool_size: 16,
                statement_timeout: 30,
            },
        }
    }
}

/// How a variable's text becomes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    /// A whole number.
    Number,
    /// See [`parse_bool`].
    Bool,
    /// Comma-separated, trimmed, empty entries dropped.
    List,
    /// Comma-separated, trimmed, every entry kept (an empty role is an error later).
    Roles,
}

/// Each variable, the TOML key it sets (dotted: `[auth] database` is `auth.database`),
/// and its kind. `BETTER_AUTH_SECRET` is absent: `FILEGATE_JWT_SECRET_ENV` may name
/// another variable, so `resolve` reads it.
const VARIABLES: &[(&str, &str, Kind)] = &[
    ("FILEGATE_PROJECT", "project", Kind::Text),
    ("FILEGATE_BUCKET", "bucket", Kind::Text),
    ("FILEGATE_LISTEN", "listen", Kind::Text),
    ("FILEGATE_DATA_DIR", "data_dir", Kind::Text),
    ("FILEGATE_S3_LISTEN", "s3_listen", Kind::Text),
    ("FILEGATE_CORS_ORIGINS", "cors_origins", Kind::List),
    ("FILEGATE_MAX_UPLOAD_SIZE", "max_upload_size", Kind::Number),
    (
        "FILEGATE_MEDIA_REQUIRE_SIZE",
        "media_require_size",
        Kind::Bool,
    ),
    (
        "FILEGATE_UPLOAD_EXPIRES_IN",
        "upload_expires_in",
        Kind::Number,
    ),
    (
        "FILEGATE_MULTIPART_MAX_AGE",
        "multipart_max_age",
        Kind::Number,
    ),
    ("FILEGATE_LOG_FORMAT", "log_format", Kind::Text),
    ("FILEGATE_UI", "ui", Kind::Bool),
    ("FILEGATE_MANAGED", "managed", Kind::Bool),
    ("FILEGATE_FILES_LISTEN", "files_listen", Kind::Text),
    ("FILES_URL", "files_url", Kind::Text),
    ("FILEGATE_PUBLIC_MAX_AGE", "public_max_age", Kind::Number),
    ("R2_ACCOUNT_ID", "r2.account_id", Kind::Text),
    ("R2_ACCESS_KEY_ID", "r2.access_key_id", Kind::Text),
    ("R2_SECRET_ACCESS_KEY", "r2.secret_access_key", Kind::Text),
    ("R2_ENDPOINT", "r2.endpoint", Kind::Text),
    ("R2_REGION", "r2.region", Kind::Text),
    ("FILEGATE_JWT_SECRET_ENV", "auth.secret_env", Kind::Text),
    ("BETTER_AUTH_URL", "auth.better_auth_url", Kind::Text),
    ("FILEGATE_AUTH_DB", "auth.database", Kind::Text),
    (
        "FILEGATE_AUTH_DB_POOL_SIZE",
        "auth.database_pool_size",
        Kind::Number,
    ),
    (
        "FILEGATE_AUTH_DB_TIMEOUT",
        "auth.database_timeout",
        Kind::Number,
    ),
    ("FILEGATE_DATABASE_URL", "database.url", Kind::Text),
    (
        "FILEGATE_FILES_DATABASE_URL",
        "database.files_url",
        Kind::Text,
    ),
    (
        "FILEGATE_DATABASE_POOL_SIZE",
        "database.pool_size",
        Kind::Number,
    ),
    (
        "FILEGATE_DATABASE_STATEMENT_TIMEOUT",
        "database.statement_timeout",
        Kind::Number,
    ),
    (
        "FILEGATE_JWT_EXPIRES_IN",
        "auth.jwt_expires_in",
        Kind::Number,
    ),
    ("FILEGATE_JWT_ISSUER", "auth.jwt_issuer", Kind::Text),
    ("FILEGATE_JWT_AUDIENCE", "auth.jwt_audience", Kind::Text),
    (
        "FILEGATE_PINNED_ORGANIZATION_ID",
        "pinned_organization_id",
        Kind::Text,
    ),
    ("FILEGATE_ROLE_HIERARCHY", "role_hierarchy", Kind::Roles),
    (
        "FILEGATE_ACCESS_SIGN_UPLOAD",
        "access.sign_upload",
        Kind::Text,
    ),
    (
        "FILEGATE_ACCESS_SIGN_DOWNLOAD",
        "access.sign_download",
        Kind::Text,
    ),
    ("FILEGATE_ACCESS_LIST", "access.list", Kind::Text),
    ("FILEGATE_FIREWALL_MODE", "firewall_mode", Kind::Text),
    (
        "FILEGATE_RATE_LIMIT_PER_SECOND",
        "rate_limit_per_second",
        Kind::Number,
    ),
    (
        "FILEGATE_RATE_LIMIT_BURST",
        "rate_limit_burst",
        Kind::Number,
    ),
    (
        "FILEGATE_HEADER_READ_TIMEOUT",
        "header_read_timeout",
        Kind::Number,
    ),
    ("FILEGATE_IDLE_TIMEOUT", "idle_timeout", Kind::Number),
    ("FILEGATE_MAX_CONNECTIONS", "max_connections", Kind::Number),
];

/// The one boolean syntax of variables: `true`, `1` or `yes`; `false`, `0` or `no`
/// (the TOML file uses TOML's own `true` and `false`).
fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// The setting a TOML key path belongs to, for messages: `FILEGATE_UI (ui)`.
fn setting_name(key: &str) -> String {
    let var = match key {
        "auth.secret" => Some("BETTER_AUTH_SECRET"),
        _ => VARIABLES
            .iter()
            .find(|(_, k, _)| *k == key || key.starts_with(&format!("{k}.")))
            .map(|(var, _, _)| *var),
    };
    match var {
        Some(var) => format!("{var} ({key})"),
        None => key.to_owned(),
    }
}

/// One layer: a dictionary of settings and where it came from.
struct Layer {
    metadata: Metadata,
    dict: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// The TOML file, parsed (so a syntax error names the file) but not yet checked.
pub(super) struct FileLayer {
    path: PathBuf,
    table: toml::Table,
}

impl FileLayer {
    pub(super) fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        Self::parse(path, &text)
    }

    pub(super) fn parse(path: &Path, text: &str) -> anyhow::Result<Self> {
        let table = toml::from_str(text)
            .with_context(|| format!("parsing config file {}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            table,
        })
    }

    fn into_layer(self) -> anyhow::Result<Layer> {
        let Ok(Value::Dict(_, dict)) = Value::serialize(&self.table) else {
            anyhow::bail!("parsing config file {}", self.path.display())
        };
        let metadata = Metadata::named(format!("config file {}", self.path.display()))
            .source(self.path.as_path());
        Ok(Layer { metadata, dict })
    }
}

/// The variables that are set, typed by their [`Kind`].
fn env_layer(env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Layer> {
    let mut dict = Dict::new();
    for &(var, key, kind) in VARIABLES {
        let Some(raw) = env(var) else { continue };
        let split = |keep_empty: bool| -> Value {
            raw.split(',')
                .map(str::trim)
                .filter(|s| keep_empty || !s.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
                .into()
        };
        let value = match kind {
            Kind::Text => Value::from(raw.clone()),
            Kind::Number => raw
                .trim()
                .parse::<u64>()
                .map(Value::from)
                .map_err(|_| anyhow::anyhow!("{var} must be a whole number, not {raw:?}"))?,
            Kind::Bool => parse_bool(&raw).map(Value::from).ok_or_else(|| {
                anyhow::anyhow!("{var} must be true or false (or 1/0, yes/no), not {raw:?}")
            })?,
            Kind::List => split(false),
            Kind::Roles => split(true),
        };
        insert(&mut dict, key, value);
    }
    Ok(Layer {
        metadata: Metadata::named("environment"),
        dict,
    })
}

/// Sets `a.b` to `value` in `dict`, creating `a`'s table when needed.
fn insert(dict: &mut Dict, key: &str, value: Value) {
    match key.split_once('.') {
        None => {
            dict.insert(key.to_owned(), value);
        }
        Some((table, rest)) => {
            let entry = dict
                .entry(table.to_owned())
                .or_insert_with(|| Value::from(Dict::new()));
            if let Value::Dict(_, inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}

/// Defaults < `file` < the environment, extracted into [`Settings`].
///
/// # Errors
/// A malformed variable, an unknown key in the file, or a value of the wrong type; each
/// message names the setting and the layer it came from.
pub(super) fn layered(
    env: &dyn Fn(&str) -> Option<String>,
    file: Option<FileLayer>,
) -> anyhow::Result<Settings> {
    let mut figment = Figment::from(Serialized::defaults(Settings::default()));
    if let Some(file) = file {
        figment = figment.merge(file.into_layer()?);
    }
    figment
        .merge(env_layer(env)?)
        .extract::<Settings>()
        .map_err(explain)
}

/// figment's errors, each with the setting it is about and where the value came from.
fn explain(errors: figment::Error) -> anyhow::Error {
    let messages: Vec<String> = errors
        .into_iter()
        .map(|e| {
            let source = e
                .metadata
                .as_ref()
                .map(|m| format!(" (in the {})", m.name))
                .unwrap_or_default();
            match &e.kind {
                figment::error::Kind::UnknownField(field, _) => {
                    // figment's path usually ends with the field already.
                    let mut key = e.path.clone();
                    if key.last() != Some(field) {
                        key.push(field.clone());
                    }
                    format!("unknown setting `{}`{source}", key.join("."))
                }
                kind => format!("{}: {kind}{source}", setting_name(&e.path.join("."))),
            }
        })
        .collect();
    anyhow::anyhow!("{}", messages.join("; "))
}
