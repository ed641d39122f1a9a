//! The metadata databases, chosen from the configuration: SQLite files under the data
//! folder (the default), or Postgres when `FILEGATE_DATABASE_URL` is set, so several
//! nodes can share them.

use crate::config::{Config, PostgresConfig};
use crate::data_dir::prepare_database;
use anyhow::Context;
use filegate_core::Error;
use filegate_core::managed::{BucketStore, ObjectRowStore};
use filegate_core::ports::{AuditLog, MediaStore};
use filegate_postgres::{PgPool, PgSettings, PostgresFilesDb, PostgresMediaStore};
use filegate_sqlite::{SqliteFilesDb, SqliteMediaStore};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;

/// Name of the media database inside the data directory.
pub const MEDIA_DB_FILE: &str = "filegate.db";
/// Name of FILES_DB (managed mode) inside the data directory.
pub const FILES_DB_FILE: &str = "files.db";

/// The media table and the audit log. Cheap to clone.
#[derive(Clone, Debug)]
pub enum MediaDb {
    Sqlite(SqliteMediaStore),
    Postgres(PostgresMediaStore),
}

fn pg_settings(pg: &PostgresConfig, url: &SecretString) -> PgSettings {
    PgSettings {
        url: url.expose_secret().to_owned(),
        pool_size: pg.pool_size,
        statement_timeout: pg.statement_timeout,
    }
}

/// Connects a pool; errors name the setting, never the URL (it may hold a password).
///
/// # Errors
/// The server cannot be reached or refuses the login.
pub async fn connect(
    pg: &PostgresConfig,
    url: &SecretString,
    setting: &str,
) -> anyhow::Result<PgPool> {
    PgPool::connect(&pg_settings(pg, url))
        .await
        .map_err(|e| anyhow::anyhow!("connecting to the Postgres database of {setting}: {e:?}"))
}

impl MediaDb {
    /// Opens (and migrates) the media database `config` names.
    ///
    /// # Errors
    /// The database cannot be reached, opened or migrated.
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        if let Some(pg) = &config.postgres {
            let pool = connect(pg, &pg.url, "FILEGATE_DATABASE_URL").await?;
            let store = PostgresMediaStore::open(pool)
                .await
                .map_err(|e| anyhow::anyhow!("migrating the Postgres media tables: {e:?}"))?;
            return Ok(Self::Postgres(store));
        }
        let path = config.data_dir.join(MEDIA_DB_FILE);
        prepare_database(&path)?;
        let store = SqliteMediaStore::open(&path)
            .await
            .with_context(|| format!("opening the media database {}", path.display()))?;
        Ok(Self::Sqlite(store))
    }

    #[must_use]
    pub fn store(&self) -> Arc<dyn MediaStore> {
        match self {
            Self::Sqlite(s) => Arc::new(s.clone()),
            Self::Postgres(s) => Arc::new(s.clone()),
        }
    }

    #[must_use]
    pub fn audit_log(&self) -> Arc<dyn AuditLog> {
        match self {
            Self::Sqlite(s) => Arc::new(s.audit_log()),
            Self::Postgres(s) => Arc::new(s.audit_log()),
        }
    }

    /// Round-trips a trivial query, for readiness checks.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the database does not answer.
    pub async fn ping(&self) -> Result<(), Error> {
        match self {
            Self::Sqlite(s) => s.ping().await,
            Self::Postgres(s) => s.pool().ping().await,
        }
    }

    /// (open, idle, waiting) connections of the pool, for metrics.
    #[must_use]
    pub fn pool_usage(&self) -> (usize, usize, usize) {
        match self {
            Self::Sqlite(s) => s.pool_usage(),
            Self::Postgres(s) => s.pool().usage(),
        }
    }

    fn pg_pool(&self) -> Option<&PgPool> {
        match self {
            Self::Sqlite(_) => None,
            Self::Postgres(s) => Some(s.pool()),
        }
    }
}

/// FILES_DB (managed mode). Cheap to clone.
#[derive(Clone, Debug)]
pub enum FilesDb {
    Sqlite(Arc<SqliteFilesDb>),
    Postgres(Arc<PostgresFilesDb>),
}

impl FilesDb {
    /// Opens (and migrates) FILES_DB; on Postgres without `FILEGATE_FILES_DATABASE_URL`
    /// it shares `media`'s pool (same database, its own tables).
    ///
    /// # Errors
    /// The database cannot be reached, opened or migrated.
    pub async fn open(config: &Config, media: Option<&MediaDb>) -> anyhow::Result<Self> {
        if let Some(pg) = &config.postgres {
            let pool = match (&pg.files_url, media.and_then(MediaDb::pg_pool)) {
                (Some(url), _) => connect(pg, url, "FILEGATE_FILES_DATABASE_URL").await?,
                (None, Some(shared)) => shared.clone(),
                (None, None) => connect(pg, &pg.url, "FILEGATE_DATABASE_URL").await?,
            };
            let db = PostgresFilesDb::open(pool)
                .await
                .map_err(|e| anyhow::anyhow!("migrating the Postgres FILES_DB tables: {e:?}"))?;
            return Ok(Self::Postgres(Arc::new(db)));
        }
        let path = config.data_dir.join(FILES_DB_FILE);
        prepare_database(&path)?;
        let db = SqliteFilesDb::open(&path)
            .await
            .with_context(|| format!("opening FILES_DB {}", path.display()))?;
        Ok(Self::Sqlite(Arc::new(db)))
    }

    #[must_use]
    pub fn buckets(&self) -> Arc<dyn BucketStore> {
        match self {
            Self::Sqlite(d) => d.clone(),
            Self::Postgres(d) => d.clone(),
        }
    }

    #[must_use]
    pub fn rows(&self) -> Arc<dyn ObjectRowStore> {
        match self {
            Self::Sqlite(d) => d.clone(),
            Self::Postgres(d) => d.clone(),
        }
    }

    /// Round-trips a trivial query, for readiness checks.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the database does not answer.
    pub async fn ping(&self) -> Result<(), Error> {
        match self {
            Self::Sqlite(d) => d.ping().await,
            Self::Postgres(d) => d.pool().ping().await,
        }
    }

    /// Every bucket name, for reconcile.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    pub async fn bucket_names(&self) -> Result<Vec<String>, Error> {
        match self {
            Self::Sqlite(d) => d.bucket_names().await,
            Self::Postgres(d) => d.bucket_names().await,
        }
    }
}
