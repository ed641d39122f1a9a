//! `copy-metadata`: copies a SQLite deployment's metadata (media, audit, buckets,
//! objects) into Postgres, in key order and in batches, so a deployment can move to
//! several nodes sharing one database.
//!
//! Idempotent: rows go in with `ON CONFLICT DO NOTHING`, and every batch is read back by
//! key and compared cell by cell, so a rerun (`--resume`) skips the rows an earlier run
//! copied and fails on a row that exists with other content instead of hiding it.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use filegate_postgres::{self as pg, PgPool, PgSettings};
use filegate_sqlite::{self as sqlite, copy::Source};
use indicatif::{ProgressBar, ProgressStyle};

use super::{EXIT_ERROR, EXIT_OK, FILES_DB_FILE, migrate::MEDIA_DB_FILE};

#[derive(Debug, clap::Args)]
pub(crate) struct Opts {
    /// The SQLite deployment's data directory, holding filegate.db (media, audit) and
    /// files.db (FILES_DB); `sqlite://DIR` is accepted too.
    #[arg(long, value_name = "DIR")]
    pub from: String,
    /// The Postgres database to fill (`postgres://…`, as FILEGATE_DATABASE_URL).
    #[arg(
        long,
        value_name = "URL",
        env = "FILEGATE_DATABASE_URL",
        hide_env_values = true
    )]
    pub to: String,
    /// FILES_DB's Postgres database, when it is a separate one [default: --to].
    #[arg(
        long = "files-to",
        value_name = "URL",
        env = "FILEGATE_FILES_DATABASE_URL",
        hide_env_values = true
    )]
    pub files_to: Option<String>,
    /// Write into tables that already hold rows: continues an interrupted copy, skipping
    /// rows already there with the same content.
    #[arg(long)]
    pub resume: bool,
    /// Rows read, written and checked per statement.
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,
    /// Stop after this many rows (a staged copy; continue with --resume).
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
}

/// Which database a table lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Db {
    /// filegate.db / FILEGATE_DATABASE_URL: media and audit.
    Media,
    /// files.db / FILES_DB.
    Files,
}

/// A table copied: its columns with their Postgres types, the key (ordering, unique)
/// first. Both schemas hold exactly these columns (SQLite INTEGER = Postgres BIGINT).
struct Table {
    name: &'static str,
    db: Db,
    columns: &'static [(&'static str, &'static str)],
}

/// In copy order: buckets before the objects that reference them.
const TABLES: [Table; 4] = [
    Table {
        name: "media",
        db: Db::Media,
        columns: &[
            ("id", "text"),
            ("bucket", "text"),
            ("key", "text"),
            ("organization_id", "text"),
            ("uploader_id", "text"),
            ("filename", "text"),
            ("content_type", "text"),
            ("declared_size", "bigint"),
            ("created_at", "bigint"),
            ("status", "text"),
            ("size", "bigint"),
            ("etag", "text"),
            ("upload_expires_at", "bigint"),
            ("multipart_upload_id", "text"),
            ("multipart_part_size", "bigint"),
        ],
    },
    Table {
        name: "audit_log",
        db: Db::Media,
        columns: &[
            ("seq", "bigint"),
            ("at", "bigint"),
            ("route", "text"),
            ("method", "text"),
            ("ip", "text"),
            ("user_id", "text"),
            ("resource", "text"),
        ],
    },
    Table {
        name: "buckets",
        db: Db::Files,
        columns: &[
            ("id", "text"),
            ("name", "text"),
            ("organization_id", "text"),
            ("read_scope", "text"),
            ("write_scope", "text"),
            ("file_size_limit", "bigint"),
            ("allowed_mime_types", "text"),
            ("created_at", "bigint"),
            ("updated_at", "bigint"),
        ],
    },
    Table {
        name: "objects",
        db: Db::Files,
        columns: &[
            ("id", "text"),
            ("bucket_id", "text"),
            ("organization_id", "text"),
            ("owner_id", "text"),
            ("segment", "text"),
            ("key", "text"),
            ("path", "text"),
            ("content_type", "text"),
            ("size", "bigint"),
            ("etag", "text"),
            ("status", "text"),
            ("created_at", "bigint"),
            ("updated_at", "bigint"),
            ("deleted_at", "bigint"),
            ("multipart_upload_id", "text"),
            ("multipart_part_size", "bigint"),
        ],
    },
];

impl Table {
    fn column_names(&self) -> Vec<&'static str> {
        self.columns.iter().map(|(c, _)| *c).collect()
    }
}

/// One table's outcome.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Counts {
    source: u64,
    copied: u64,
    skipped: u64,
    target: u64,
}

/// The source data directory of `--from`.
fn source_dir(from: &str) -> PathBuf {
    PathBuf::from(from.strip_prefix("sqlite://").unwrap_or(from))
}

/// Opens a SQLite source file after checking its schema is the one this binary knows
/// (a pending migration would mean missing columns).
async fn open_source(path: &Path, files: bool) -> anyhow::Result<Source> {
    let shown = path.display();
    let status = if files {
        sqlite::files_migration_status(path).await
    } else {
        sqlite::migration_status(path).await
    }
    .map_err(anyhow::Error::new)
    .with_context(|| format!("cannot read the migration status of {shown}"))?;
    if status.iter().any(|m| m.applied_at.is_none()) {
        bail!(
            "{shown} has pending migrations: run `filegate-admin migrate --data-dir {}` first",
            path.parent().unwrap_or(path).display()
        );
    }
    Source::open(path)
        .await
        .map_err(anyhow::Error::new)
        .with_context(|| format!("cannot open {shown}"))
}

async fn connect(url: &str, what: &str) -> anyhow::Result<PgPool> {
    if !pg::is_postgres_url(url) {
        bail!("{what} is not a postgres:// URL");
    }
    let mut settings = PgSettings::new(url);
    settings.pool_size = 2;
    PgPool::connect(&settings)
        .await
        .map_err(anyhow::Error::new)
        .with_context(|| format!("cannot connect to {what}"))
}

pub(crate) async fn run(opts: Opts) -> anyhow::Result<u8> {
    let dir = source_dir(&opts.from);
    if !dir.is_dir() {
        bail!("--from {}: no such directory", dir.display());
    }
    let (media_path, files_path) = (dir.join(MEDIA_DB_FILE), dir.join(FILES_DB_FILE));
    if !media_path.exists() && !files_path.exists() {
        bail!(
            "--from {}: neither {MEDIA_DB_FILE} nor {FILES_DB_FILE} is there",
            dir.display()
        );
    }
    let media_src = if media_path.exists() {
        Some(open_source(&media_path, false).await?)
    } else {
        None
    };
    let files_src = if files_path.exists() {
        Some(open_source(&files_path, true).await?)
    } else {
        None
    };

    let media_pool = connect(&opts.to, "--to").await?;
    let files_pool = match &opts.files_to {
        Some(url) => connect(url, "--files-to").await?,
        None => media_pool.clone(),
    };
    // The target's schema first, as a node starting on it would apply it.
    pg::migrate(&media_pool)
        .await
        .map_err(anyhow::Error::new)
        .context("cannot migrate the target's media tables")?;
    pg::migrate_files(&files_pool)
        .await
        .map_err(anyhow::Error::new)
        .context("cannot migrate the target's FILES_DB tables")?;

    let pool_of = |db: Db| match db {
        Db::Media => &media_pool,
        Db::Files => &files_pool,
    };
    let source_of = |db: Db| match db {
        Db::Media => media_src.as_ref(),
        Db::Files => files_src.as_ref(),
    };

    let mut counts: Vec<Counts> = Vec::new();
    let mut non_empty = Vec::new();
    for table in &TABLES {
        let target = pg::copy::count(pool_of(table.db), table.name)
            .await
            .map_err(anyhow::Error::new)
            .with_context(|| format!("cannot count the target's {}", table.name))?;
        if target > 0 {
            non_empty.push(format!("{} ({target} rows)", table.name));
        }
        let source = match source_of(table.db) {
            Some(src) => src
                .count(table.name)
                .await
                .map_err(anyhow::Error::new)
                .with_context(|| format!("cannot count the source's {}", table.name))?,
            None => 0,
        };
        counts.push(Counts {
            source,
            ..Counts::default()
        });
    }
    if !non_empty.is_empty() && !opts.resume {
        bail!(
            "the target is not empty: {}; pass --resume to continue an earlier copy into it",
            non_empty.join(", ")
        );
    }

    let total: u64 = counts.iter().map(|c| c.source).sum();
    let progress = Progress::new(total);
    let mut budget = opts.limit.unwrap_or(u64::MAX);
    let batch = usize::try_from(opts.batch_size).unwrap_or(1000);
    for (table, count) in TABLES.iter().zip(counts.iter_mut()) {
        if let Some(src) = source_of(table.db) {
            copy_table(
                src,
                pool_of(table.db),
                table,
                batch,
                &mut budget,
                count,
                &progress,
            )
            .await
            .with_context(|| format!("copying {}", table.name))?;
        }
        if table.name == "audit_log" {
            // The server appends after the copied rows, never on their numbers.
            pg::copy::restart_identity(pool_of(table.db), table.name, "seq")
                .await
                .map_err(anyhow::Error::new)
                .context("cannot move audit_log's sequence past the copied rows")?;
        }
    }
    progress.finish();

    for (table, count) in TABLES.iter().zip(counts.iter_mut()) {
        count.target = pg::copy::count(pool_of(table.db), table.name)
            .await
            .map_err(anyhow::Error::new)
            .with_context(|| format!("cannot count the target's {}", table.name))?;
    }
    media_pool.close();
    files_pool.close();

    print!("{}", render(&counts));
    if budget == 0 && opts.limit.is_some() && counts.iter().any(|c| c.source != c.target) {
        eprintln!("stopped at --limit: rerun with --resume to continue");
        return Ok(EXIT_ERROR);
    }
    if counts.iter().any(|c| c.source != c.target) {
        eprintln!("row counts differ between source and target");
        return Ok(EXIT_ERROR);
    }
    eprintln!("all row counts match");
    Ok(EXIT_OK)
}

/// Copies `table` in key order, `batch` rows at a time, until it or `budget` runs out.
async fn copy_table(
    src: &Source,
    pool: &PgPool,
    table: &Table,
    batch: usize,
    budget: &mut u64,
    count: &mut Counts,
    progress: &Progress,
) -> anyhow::Result<()> {
    let names = table.column_names();
    let src_table = sqlite::copy::TableRef {
        name: table.name,
        columns: &names,
        integer_key: table.columns.first().is_some_and(|(_, t)| *t == "bigint"),
    };
    let dst_table = pg::copy::TableRef {
        name: table.name,
        columns: table.columns,
    };
    let mut after: Option<String> = None;
    while *budget > 0 {
        let want = usize::try_from(*budget).unwrap_or(usize::MAX).min(batch);
        let rows = src
            .rows_after(src_table, after.as_deref(), want)
            .await
            .map_err(anyhow::Error::new)?;
        let Some(last) = rows.last() else {
            break;
        };
        after = Some(key_of(last)?.to_owned());
        let inserted = pg::copy::insert(pool, dst_table, &rows)
            .await
            .map_err(anyhow::Error::new)?;
        verify(pool, table, dst_table, &rows).await?;
        let n = u64::try_from(rows.len()).unwrap_or(u64::MAX);
        count.copied += inserted;
        count.skipped += n - inserted.min(n);
        *budget = budget.saturating_sub(n);
        progress.advance(table.name, n);
    }
    Ok(())
}

/// A row's key: its first cell, never NULL (a primary key).
fn key_of(row: &[Option<String>]) -> anyhow::Result<&str> {
    row.first()
        .and_then(Option::as_deref)
        .context("a source row without a key")
}

/// Reads the batch back from the target and compares it cell by cell: a row that was
/// already there must hold what the source holds.
async fn verify(
    pool: &PgPool,
    table: &Table,
    dst_table: pg::copy::TableRef<'_>,
    rows: &[Vec<Option<String>>],
) -> anyhow::Result<()> {
    let keys = rows
        .iter()
        .map(|r| key_of(r).map(str::to_owned))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let stored = pg::copy::rows_by_key(pool, dst_table, &keys)
        .await
        .map_err(anyhow::Error::new)?;
    let by_key: HashMap<&str, &Vec<Option<String>>> = stored
        .iter()
        .filter_map(|r| Some((r.first()?.as_deref()?, r)))
        .collect();
    for row in rows {
        let key = key_of(row)?;
        let Some(target) = by_key.get(key) else {
            bail!(
                "{} {key:?} is not in the target: another row there holds one of its unique values",
                table.name
            );
        };
        let differing: Vec<&str> = table
            .columns
            .iter()
            .zip(row.iter().zip(target.iter()))
            .filter(|(_, (a, b))| a != b)
            .map(|((c, _), _)| *c)
            .collect();
        if !differing.is_empty() {
            bail!(
                "{} {key:?} already exists in the target with other content ({}): \
                 the target was written by something else than this copy",
                table.name,
                differing.join(", ")
            );
        }
    }
    Ok(())
}

/// A bar on a terminal; otherwise one line per finished table.
struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new(total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:<10} [{elapsed_precise}] [{bar:30}] {pos}/{len} rows ({per_sec})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        Self { bar }
    }

    fn advance(&self, table: &str, rows: u64) {
        if let Some(bar) = &self.bar {
            bar.set_message(table.to_owned());
            bar.inc(rows);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Per table: rows in the source and the target, copied now, and skipped (already there).
fn render(counts: &[Counts]) -> String {
    let mut out = String::from("TABLE      SOURCE    TARGET    COPIED    SKIPPED\n");
    for (table, c) in TABLES.iter().zip(counts) {
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "{:<10} {:<9} {:<9} {:<9} {}",
            table.name, c.source, c.target, c.copied, c.skipped
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_is_a_directory_with_or_without_a_scheme() {
        assert_eq!(source_dir("/srv/fg"), PathBuf::from("/srv/fg"));
        assert_eq!(source_dir("sqlite:///srv/fg"), PathBuf::from("/srv/fg"));
    }

    #[test]
    fn keys_come_first_and_buckets_before_objects() {
        let order: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        assert_eq!(order, ["media", "audit_log", "buckets", "objects"]);
        let keys: Vec<&str> = TABLES.iter().map(|t| t.columns[0].0).collect();
        assert_eq!(keys, ["id", "seq", "id", "id"]);
    }

    #[test]
    fn counts_render_as_a_table() {
        let counts = vec![
            Counts {
                source: 3,
                copied: 2,
                skipped: 1,
                target: 3,
            },
            Counts::default(),
            Counts::default(),
            Counts::default(),
        ];
        assert_eq!(
            render(&counts),
            "TABLE      SOURCE    TARGET    COPIED    SKIPPED\n\
             media      3         3         2         1\n\
             audit_log  0         0         0         0\n\
             buckets    0         0         0         0\n\
             objects    0         0         0         0\n"
        );
    }
}
