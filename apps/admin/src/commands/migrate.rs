//! `migrate`: applies pending migrations of the media database and of FILES_DB, or shows
//! their status.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use filegate_sqlite::{
    MigrationStatus, files_migration_status, migrate, migrate_files, migration_status,
};

use super::{ConfigOpts, FILES_DB_FILE};
use filegate_bootstrap::config::PostgresConfig;
use filegate_bootstrap::metadata::connect;
use filegate_postgres as pg;

/// Name of the media database inside the data directory.
pub(crate) use filegate_bootstrap::services::MEDIA_DB_FILE;

#[derive(Debug, clap::Args)]
pub(crate) struct Opts {
    /// Only show which migrations are applied and which are pending (creates nothing).
    #[arg(long)]
    pub status: bool,
    #[command(flatten)]
    pub config: ConfigOpts,
    /// The media database file [default: DATA_DIR/filegate.db].
    #[arg(long, env = "FILEGATE_MEDIA_DB", value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// FILES_DB, managed mode's database [default: DATA_DIR/files.db].
    #[arg(long = "files-db", value_name = "PATH")]
    pub files_db: Option<PathBuf>,
}

impl Opts {
    pub(crate) fn db_path(&self, data_dir: &Path) -> PathBuf {
        self.db
            .clone()
            .unwrap_or_else(|| data_dir.join(MEDIA_DB_FILE))
    }

    pub(crate) fn files_db_path(&self, data_dir: &Path) -> PathBuf {
        self.files_db
            .clone()
            .unwrap_or_else(|| data_dir.join(FILES_DB_FILE))
    }
}

/// The two databases: label, path, and whether it is FILES_DB.
fn databases(opts: &Opts, data_dir: &Path) -> [(&'static str, PathBuf, bool); 2] {
    [
        ("media", opts.db_path(data_dir), false),
        ("files", opts.files_db_path(data_dir), true),
    ]
}

pub(crate) async fn run(opts: Opts) -> anyhow::Result<u8> {
    let config = opts.config.load()?;
    if let Some(pg) = &config.postgres
        && opts.db.is_none()
        && opts.files_db.is_none()
    {
        let rows = run_postgres(opts.status, pg).await?;
        print!("{}", render_table(&rows));
        return Ok(super::EXIT_OK);
    }
    let mut rows: Vec<(&'static str, MigrationStatus)> = Vec::new();
    for (label, path, files) in databases(&opts, &config.data_dir) {
        let shown = path.display();
        if !opts.status {
            let applied = if files {
                migrate_files(&path).await
            } else {
                migrate(&path).await
            }
            .map_err(anyhow::Error::new)
            .with_context(|| format!("cannot migrate {shown}"))?;
            if applied.is_empty() {
                eprintln!("{shown} is up to date");
            } else {
                eprintln!("applied {} migration(s) to {shown}", applied.len());
            }
        }
        let status = if files {
            files_migration_status(&path).await
        } else {
            migration_status(&path).await
        }
        .map_err(anyhow::Error::new)
        .with_context(|| format!("cannot read the migration status of {shown}"))?;
        if opts.status {
            let pending = status.iter().filter(|m| m.applied_at.is_none()).count();
            eprintln!("{shown}: {pending} pending migration(s)");
        }
        rows.extend(status.into_iter().map(|m| (label, m)));
    }
    print!("{}", render_table(&rows));
    Ok(super::EXIT_OK)
}

/// `migrate` against the Postgres database(s) of `FILEGATE_DATABASE_URL` (and
/// `FILEGATE_FILES_DATABASE_URL`): the same sets and table as for SQLite files. Several
/// runs (or nodes starting) at once queue behind the schema's advisory lock.
async fn run_postgres(
    status_only: bool,
    pg: &PostgresConfig,
) -> anyhow::Result<Vec<(&'static str, MigrationStatus)>> {
    let media_pool = connect(pg, &pg.url, "FILEGATE_DATABASE_URL").await?;
    let files_pool = match &pg.files_url {
        Some(url) => connect(pg, url, "FILEGATE_FILES_DATABASE_URL").await?,
        None => media_pool.clone(),
    };
    let mut rows = Vec::new();
    for (label, pool, files) in [("media", &media_pool, false), ("files", &files_pool, true)] {
        let shown = format!("the Postgres {label} tables");
        if !status_only {
            let applied = if files {
                pg::migrate_files(pool).await
            } else {
                pg::migrate(pool).await
            }
            .map_err(anyhow::Error::new)
            .with_context(|| format!("cannot migrate {shown}"))?;
            if applied.is_empty() {
                eprintln!("{shown} are up to date");
            } else {
                eprintln!("applied {} migration(s) to {shown}", applied.len());
            }
        }
        let status = if files {
            pg::files_migration_status(pool).await
        } else {
            pg::migration_status(pool).await
        }
        .map_err(anyhow::Error::new)
        .with_context(|| format!("cannot read the migration status of {shown}"))?;
        if status_only {
            let pending = status.iter().filter(|m| m.applied_at.is_none()).count();
            eprintln!("{shown}: {pending} pending migration(s)");
        }
        rows.extend(status.into_iter().map(|m| {
            (
                label,
                MigrationStatus {
                    version: m.version,
                    name: m.name,
                    applied_at: m.applied_at,
                },
            )
        }));
    }
    media_pool.close();
    files_pool.close();
    Ok(rows)
}

/// A plain table: database, version, name, and when applied or `pending`.
fn render_table(status: &[(&str, MigrationStatus)]) -> String {
    const HEADERS: [&str; 4] = ["DATABASE", "VERSION", "NAME", "APPLIED AT"];
    let rows: Vec<[String; 4]> = status
        .iter()
        .map(|(db, m)| {
            [
                (*db).to_owned(),
                m.version.to_string(),
                m.name.to_owned(),
                m.applied_at.clone().unwrap_or_else(|| "pending".to_owned()),
            ]
        })
        .collect();
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].len())
            .chain([HEADERS[i].len()])
            .max()
            .unwrap_or_default()
    };
    let (w0, w1, w2) = (width(0), width(1), width(2));
    let mut out = String::new();
    for [db, version, name, applied] in std::iter::once(HEADERS.map(str::to_owned)).chain(rows) {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{db:<w0$}  {version:<w1$}  {name:<w2$}  {applied}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_both_databases_applied_and_pending() {
        let table = render_table(&[
            (
                "media",
                MigrationStatus {
                    version: 1,
                    name: "media",
                    applied_at: Some("2025-06-01T12:00:00Z".into()),
                },
            ),
            (
                "media",
                MigrationStatus {
                    version: 2,
                    name: "media_indexes",
                    applied_at: None,
                },
            ),
            (
                "files",
                MigrationStatus {
                    version: 1,
                    name: "files",
                    applied_at: None,
                },
            ),
        ]);
        assert_eq!(
            table,
            "DATABASE  VERSION  NAME           APPLIED AT\n\
             media     1        media          2025-06-01T12:00:00Z\n\
             media     2        media_indexes  pending\n\
             files     1        files          pending\n"
        );
    }

    #[test]
    fn databases_default_to_the_data_dir() {
        let opts = Opts {
            status: false,
            config: ConfigOpts::default(),
            db: None,
            files_db: None,
        };
        let dir = Path::new("/srv/fg");
        assert_eq!(opts.db_path(dir), PathBuf::from("/srv/fg/filegate.db"));
        assert_eq!(opts.files_db_path(dir), PathBuf::from("/srv/fg/files.db"));
    }
}
