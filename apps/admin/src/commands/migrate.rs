//! `migrate`: applies pending migrations of the media database, or shows their status.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use filegate_sqlite::{MigrationStatus, migrate, migration_status};

use super::DataDirOpts;

/// Name of the media database inside the data directory.
pub const MEDIA_DB_FILE: &str = "filegate.db";

#[derive(Debug, clap::Args)]
pub struct Opts {
    /// Only show which migrations are applied and which are pending.
    #[arg(long)]
    pub status: bool,
    #[command(flatten)]
    pub data: DataDirOpts,
    /// The media database file [default: <data-dir>/filegate.db].
    #[arg(long, env = "FILEGATE_MEDIA_DB", value_name = "PATH")]
    pub db: Option<PathBuf>,
}

impl Opts {
    pub fn db_path(&self) -> PathBuf {
        self.db
            .clone()
            .unwrap_or_else(|| self.data.data_dir.join(MEDIA_DB_FILE))
    }
}

pub async fn run(opts: Opts) -> anyhow::Result<()> {
    let path = opts.db_path();
    let shown = path.display();
    if !opts.status {
        let applied = migrate(&path)
            .await
            .with_context(|| format!("cannot migrate {shown}"))?;
        if applied.is_empty() {
            eprintln!("{shown} is up to date");
        } else {
            eprintln!("applied {} migration(s) to {shown}", applied.len());
        }
    }
    let status = migration_status(&path)
        .await
        .with_context(|| format!("cannot read the migration status of {shown}"))?;
    print!("{}", render_table(&status));
    if opts.status {
        let pending = status.iter().filter(|m| m.applied_at.is_none()).count();
        eprintln!("{shown}: {pending} pending migration(s)");
    }
    Ok(())
}

/// A plain table: version, name, and when applied or `pending`.
fn render_table(status: &[MigrationStatus]) -> String {
    const HEADERS: [&str; 3] = ["VERSION", "NAME", "APPLIED AT"];
    let rows: Vec<[String; 3]> = status
        .iter()
        .map(|m| {
            [
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
    let (w0, w1) = (width(0), width(1));
    let mut out = String::new();
    for [version, name, applied] in std::iter::once(HEADERS.map(str::to_owned)).chain(rows) {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{version:<w0$}  {name:<w1$}  {applied}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_applied_and_pending() {
        let table = render_table(&[
            MigrationStatus {
                version: 1,
                name: "media",
                applied_at: Some("2025-06-01T12:00:00Z".into()),
            },
            MigrationStatus {
                version: 2,
                name: "media_indexes",
                applied_at: None,
            },
        ]);
        assert_eq!(
            table,
            "VERSION  NAME           APPLIED AT\n\
             1        media          2025-06-01T12:00:00Z\n\
             2        media_indexes  pending\n"
        );
    }

    #[test]
    fn db_defaults_to_the_data_dir() {
        let opts = Opts {
            status: false,
            data: DataDirOpts {
                data_dir: PathBuf::from("/srv/fg"),
            },
            db: None,
        };
        assert_eq!(opts.db_path(), PathBuf::from("/srv/fg/filegate.db"));
    }
}
