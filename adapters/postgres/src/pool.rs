//! filegate's Postgres connection pool: one URL, a size, a statement timeout. Every
//! statement runs through [`PgPool`], so retries and the error mapping are the same
//! everywhere.

use crate::error::Failure;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use filegate_core::Error;
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How long to wait for a connection (opening one, or a free one from the pool) before a
/// request fails with `Unavailable` instead of hanging.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Serialization failures and deadlocks are retried this many times in all.
const ATTEMPTS: u32 = 3;

/// What a pool is built from.
#[derive(Clone, Debug)]
pub struct PgSettings {
    /// `postgres://user[:password]@host[:port]/database[?param=value…]`.
    pub url: String,
    /// Most connections the pool opens.
    pub pool_size: usize,
    /// Longest a statement may run before the server cancels it (`None`: the server's).
    pub statement_timeout: Option<Duration>,
}

impl PgSettings {
    /// `url` with the default pool size (16) and no statement timeout.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: 16,
            statement_timeout: None,
        }
    }
}

/// A Postgres URL ready to connect: tokio-postgres's settings (with [`CONNECT_TIMEOUT`]
/// unless the URL sets `connect_timeout`) and TLS as its `sslmode` says (rustls; see
/// the crate docs). Better Auth's pool uses it too, so both databases read URLs alike.
pub struct PgTarget {
    /// What tokio-postgres parsed, `sslmode` and `sslrootcert` applied.
    pub config: tokio_postgres::Config,
    tls: Option<MakeRustlsConnect>,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config holds the password.
        f.debug_struct("PgTarget")
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl PgTarget {
    /// Parses `url`; errors are [`Error::Validation`] on the field `setting` and never
    /// repeat the URL (it may hold a password).
    ///
    /// # Errors
    /// The URL does not parse, names an unknown `sslmode`, or its `sslrootcert` cannot be
    /// read.
    pub fn parse(url: &str, setting: &str) -> Result<Self, Error> {
        let rename = |e: Error| match e {
            Error::Validation(mut fields) => {
                for f in &mut fields {
                    setting.clone_into(&mut f.field);
                }
                Error::Validation(fields)
            }
            other => other,
        };
        let tls = crate::tls::split(url.trim()).map_err(rename)?;
        let mut config = tokio_postgres::Config::from_str(&tls.url)
            .map_err(|e| Error::invalid(setting, format!("is not a Postgres URL: {e}")))?;
        config.ssl_mode(tls.mode.ssl_mode());
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let connector =
            crate::tls::connector(tls.mode, tls.root_cert.as_deref()).map_err(rename)?;
        Ok(Self {
            config,
            tls: connector,
        })
    }

    /// A deadpool manager for this target. Fast recycling: a connection whose socket
    /// closed (a database restart) is dropped when next handed out, not reused.
    #[must_use]
    pub fn manager(self) -> Manager {
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        match self.tls {
            Some(tls) => Manager::from_config(self.config, tls, manager_config),
            None => Manager::from_config(self.config, NoTls, manager_config),
        }
    }
}

/// A pool of Postgres connections. Cheap to clone (shares the pool).
#[derive(Clone)]
pub struct PgPool {
    pool: Pool,
}

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPool")
            .field("status", &self.pool.status())
            .finish()
    }
}

/// A `postgres://` or `postgresql://` URL.
#[must_use]
pub fn is_postgres_url(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

impl PgPool {
    /// Builds the pool and checks one connection out, so a wrong URL or an unreachable
    /// server fails at startup rather than on a request.
    ///
    /// # Errors
    /// [`Error::Validation`] on `database_url` when the URL does not parse;
    /// [`Error::Unavailable`] when the server cannot be reached or refuses the login.
    pub async fn connect(settings: &PgSettings) -> Result<Self, Error> {
        let pool = Self::build(settings)?;
        drop(pool.client().await?);
        Ok(pool)
    }

    /// Builds the pool without connecting (connections open on first use).
    ///
    /// # Errors
    /// [`Error::Validation`] on `database_url` when the URL does not parse.
    pub fn build(settings: &PgSettings) -> Result<Self, Error> {
        let mut target = PgTarget::parse(&settings.url, "database_url")?;
        if let Some(t) = settings.statement_timeout {
            let ms = t.as_millis().max(1);
            let options = match target.config.get_options() {
                Some(o) if !o.trim().is_empty() => format!("{o} -c statement_timeout={ms}"),
                _ => format!("-c statement_timeout={ms}"),
            };
            target.config.options(options);
        }
        let manager = target.manager();
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(Error::internal)?;
        Ok(Self { pool })
    }

    /// Round-trips a trivial query, for readiness checks.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when no connection can be had or the query fails.
    pub async fn ping(&self) -> Result<(), Error> {
        self.query("SELECT 1", &[])
            .await
            .map(drop)
            .map_err(Error::from)
    }

    /// Connections of the pool: (open, idle, callers waiting for one). For metrics.
    #[must_use]
    pub fn usage(&self) -> (usize, usize, usize) {
        let s = self.pool.status();
        (s.size, s.available, s.waiting)
    }

    /// Closes the pool: idle connections are dropped, waiting callers fail.
    pub fn close(&self) {
        self.pool.close();
    }

    pub(crate) async fn client(&self) -> Result<Object, Error> {
        self.pool.get().await.map_err(Error::unavailable)
    }

    /// Runs one statement (prepared once per connection) and returns its rows, retrying
    /// serialization failures and deadlocks.
    pub(crate) async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Failure> {
        let mut attempt = 1;
        loop {
            let client = self.pool.get().await.map_err(Failure::Pool)?;
            let result = match client.prepare_cached(sql).await {
                Ok(stmt) => client.query(&stmt, params).await,
                Err(e) => Err(e),
            };
            match result {
                Err(e) if attempt < ATTEMPTS && Failure::is_retryable(&e) => attempt += 1,
                other => return other.map_err(Failure::Db),
            }
        }
    }

    /// [`Self::query`] for statements without rows; returns how many rows changed.
    pub(crate) async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Failure> {
        let mut attempt = 1;
        loop {
            let client = self.pool.get().await.map_err(Failure::Pool)?;
            let result = match client.prepare_cached(sql).await {
                Ok(stmt) => client.execute(&stmt, params).await,
                Err(e) => Err(e),
            };
            match result {
                Err(e) if attempt < ATTEMPTS && Failure::is_retryable(&e) => attempt += 1,
                other => return other.map_err(Failure::Db),
            }
        }
    }
}
