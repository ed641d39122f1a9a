//! One module per subcommand, each with its `Opts` and `run`; shared set-up here.

pub(crate) mod bucket;
pub(crate) mod copy_metadata;
pub(crate) mod migrate;
pub(crate) mod purge;
pub(crate) mod reconcile;
pub(crate) mod stats;
pub(crate) mod token;

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use filegate_bootstrap::config::Config;
use filegate_bootstrap::metadata::{FilesDb, MediaDb};
use filegate_bootstrap::storage::{OpenedStorage, open_storage};
use filegate_core::managed::ManagedService;
use filegate_core::ports::{Clock, MediaStore, SystemClock};

/// Exit code: success, and nothing left to fix.
pub(crate) const EXIT_OK: u8 = 0;
/// Exit code: an error (bad configuration, storage or database unreachable, …).
pub(crate) const EXIT_ERROR: u8 = 1;
/// Exit code: reconcile found differences (dry run), or some were left unfixed (`--apply`).
pub(crate) const EXIT_DIFFERENCES: u8 = 3;

/// Name of FILES_DB inside the data directory (as the server names it).
pub(crate) use filegate_bootstrap::services::FILES_DB_FILE;

/// Where the server keeps its state; shared by the commands.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DataDirOpts {
    /// The server's data directory.
    #[arg(
        long = "data-dir",
        env = "FILEGATE_DATA_DIR",
        value_name = "DIR",
        default_value = "./data"
    )]
    pub data_dir: PathBuf,
}

/// The server's configuration (environment, `FILEGATE_CONFIG` or `./filegate.toml`),
/// with the data directory optionally overridden.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct ConfigOpts {
    /// The server's data directory [default: as the server: FILEGATE_DATA_DIR, the
    /// config file's data_dir, else ./data].
    #[arg(long = "data-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl ConfigOpts {
    /// Reads the configuration exactly as the server does.
    ///
    /// # Errors
    /// An invalid setting, named.
    pub(crate) fn load(&self) -> anyhow::Result<Config> {
        let mut config = Config::load().context("reading the server configuration")?;
        if let Some(dir) = &self.data_dir {
            config.data_dir.clone_from(dir);
        }
        Ok(config)
    }
}

/// FILES_DB of `config`; refuses to create a SQLite one where none exists. On Postgres
/// opening applies the binary's pending migrations, as the server does.
///
/// # Errors
/// A missing or unopenable database.
pub(crate) async fn open_files_db(config: &Config) -> anyhow::Result<FilesDb> {
    if config.postgres.is_none() {
        let path = config.data_dir.join(FILES_DB_FILE);
        if !path.exists() {
            bail!(
                "no FILES_DB at {}: start the server in managed mode once, or run `filegate-admin migrate`",
                path.display()
            );
        }
    }
    FilesDb::open(config, None).await
}

/// The media table (presign-only uploads) of `config`, when its database exists; never
/// creates a SQLite one. Opening applies the binary's pending migrations, as the server
/// does.
///
/// # Errors
/// An unopenable database.
pub(crate) async fn open_media_db(config: &Config) -> anyhow::Result<Option<Arc<dyn MediaStore>>> {
    if config.postgres.is_none() && !config.data_dir.join(migrate::MEDIA_DB_FILE).exists() {
        return Ok(None);
    }
    Ok(Some(MediaDb::open(config).await?.store()))
}

/// The object store as the server opens it; in embedded mode our own endpoint on a free
/// loopback port over the same folder.
///
/// # Errors
/// As [`open_storage`].
pub(crate) async fn storage(config: &Config) -> anyhow::Result<OpenedStorage> {
    open_storage(config, std::net::SocketAddr::from(([127, 0, 0, 1], 0))).await
}

/// Stops the embedded endpoint, if any.
pub(crate) async fn close_storage(storage: OpenedStorage) {
    if let Some(e) = storage.embedded {
        e.shutdown().await;
    }
}

/// Managed mode's service as the server builds it (bootstrap's wiring).
///
/// # Errors
/// An invalid policy.
pub(crate) fn managed_service(
    config: &Config,
    storage: &OpenedStorage,
    db: &FilesDb,
) -> anyhow::Result<ManagedService> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let signing = filegate_bootstrap::services::signing(config, &storage.r2, clock.clone())?;
    filegate_bootstrap::services::managed_service_over(
        config,
        config.files_url.clone(),
        signing,
        Arc::new(storage.objects.clone()),
        db.buckets(),
        db.rows(),
        clock,
    )
}

/// Asks `question` on the terminal unless `yes`; off a terminal the answer is yes
/// (scripts pass `--yes` anyway). Returns whether to go on.
///
/// # Errors
/// Reading the terminal failed.
pub(crate) fn confirm(question: &str, yes: bool) -> anyhow::Result<bool> {
    if yes || !std::io::stdin().is_terminal() {
        return Ok(true);
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

/// Parses a duration such as `24h`, `7d` or `0s`.
///
/// # Errors
/// A readable message.
pub(crate) fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("{e} (use e.g. 0s, 90m, 24h, 7d)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use filegate_core::Error;

    #[test]
    fn ages_parse() {
        assert_eq!(parse_age("24h"), Ok(std::time::Duration::from_hours(24)));
        assert_eq!(parse_age("0s"), Ok(std::time::Duration::ZERO));
        assert!(parse_age("soon").is_err());
    }

    #[test]
    fn validation_errors_name_every_field() {
        let e = Error::Validation(vec![
            filegate_core::error::FieldError::new("name", "too short"),
            filegate_core::error::FieldError::new("readScope", "unknown"),
        ]);
        // As `main` prints it.
        assert_eq!(
            format!("{:#}", anyhow::Error::new(e)),
            "invalid input: name: too short; readScope: unknown"
        );
    }
}
