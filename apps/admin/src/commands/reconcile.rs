//! `reconcile`: compares the bucket listing with FILES_DB and the media table by a
//! streaming merge (see `filegate_core::reconcile`), reports the drift by category, and
//! with `--apply` fixes it.

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use anyhow::bail;
use filegate_bootstrap::metadata::FilesDb;
use filegate_core::ports::{MediaStore, ObjectStore as _};
use filegate_core::reconcile::{
    Applied, Applier, ApplyOptions, Category, DEFAULT_ORPHAN_MIN_AGE, Finding, KeySpaces,
    PlanOptions, Planner, Progress, ReconcileReport, run as reconcile_run, stale_pending_after,
};
use indicatif::{ProgressBar, ProgressStyle};
use time::OffsetDateTime;

use super::{
    ConfigOpts, EXIT_DIFFERENCES, EXIT_OK, close_storage, confirm, open_files_db, open_media_db,
    parse_age,
};

#[derive(Debug, clap::Args)]
pub(crate) struct Opts {
    /// Only keys of this managed bucket (`<owner>/<NAME>/…`), in every organization.
    #[arg(long, value_name = "NAME")]
    pub bucket: Option<String>,
    /// Only keys starting with this.
    #[arg(long, value_name = "P")]
    pub prefix: Option<String>,
    /// Fix what was found (default: a dry run that changes nothing).
    #[arg(long)]
    pub apply: bool,
    /// With --apply, delete orphan objects (older than --older-than).
    #[arg(long, requires = "apply")]
    pub delete_orphans: bool,
    /// Minimum age of an orphan object before --delete-orphans deletes it.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_age)]
    pub older_than: Duration,
    /// Resume after this key (the `last_key` of an interrupted run).
    #[arg(long, value_name = "KEY")]
    pub start_after: Option<String>,
    /// Also HEAD every confirmed object to compare its content type (and etag when the
    /// listing has none): one request per object.
    #[arg(long)]
    pub deep: bool,
    /// Print the report as JSON on stdout, and nothing else.
    #[arg(long)]
    pub json: bool,
    /// Do not ask for confirmation before --apply.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Keys per listing page and rows per database page.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub page_size: u32,
    #[command(flatten)]
    pub config: ConfigOpts,
}

pub(crate) async fn run(opts: Opts) -> anyhow::Result<u8> {
    let config = opts.config.load()?;
    let db = open_files_db(&config).await?;
    let media = open_media_db(&config).await?;
    let storage = super::storage(&config).await?;
    let result = reconcile(&opts, &config, &storage, &db, media.as_deref()).await;
    close_storage(storage).await;
    result
}

async fn reconcile(
    opts: &Opts,
    config: &filegate_bootstrap::config::Config,
    storage: &filegate_bootstrap::storage::OpenedStorage,
    db: &FilesDb,
    media: Option<&dyn MediaStore>,
) -> anyhow::Result<u8> {
    if opts.apply {
        let mut what = format!(
            "apply reconcile fixes to bucket {} and the databases in {}",
            config.bucket,
            config.data_dir.display()
        );
        if opts.delete_orphans {
            let _ = write!(
                what,
                ", deleting orphan objects older than {}",
                humantime::format_duration(opts.older_than)
            );
        }
        if !confirm(&format!("{what}?"), opts.yes)? {
            bail!("not confirmed; nothing changed");
        }
    }
    let now = OffsetDateTime::now_utc();
    // Only where a table would own a key is a key without a row an orphan.
    let key_spaces = KeySpaces {
        all: false,
        media: media.is_some(),
        buckets: db
            .bucket_names()
            .await
            .map_err(anyhow::Error::new)?
            .into_iter()
            .collect(),
    };
    let plan = PlanOptions {
        key_spaces,
        prefix: opts.prefix.clone(),
        start_after: opts.start_after.clone(),
        bucket_name: opts.bucket.clone(),
        deep: opts.deep,
        list_page: opts.page_size,
        row_page: opts.page_size,
        // Pending rows are abandoned once no URL the server signed for them can still run.
        stale_after: stale_pending_after(config.upload_expiry),
        ..PlanOptions::new(config.bucket.clone(), now)
    };
    let stale_after = plan.stale_after;
    let (rows, buckets) = (db.rows(), db.buckets());
    let mut planner = Planner::new(&storage.objects, &*rows, plan);
    let mut applier = Applier::new(
        &storage.objects,
        &*rows,
        &*buckets,
        ApplyOptions {
            bucket: config.bucket.clone(),
            max_file_size: config.max_upload_size,
            now,
            stale_after,
            delete_orphans: opts.delete_orphans,
            orphan_min_age: opts.older_than,
        },
    );
    if let Some(m) = media {
        planner = planner.with_media(m);
        applier = applier.with_media(m);
    }
    let mut reporter = Reporter::new(opts.json);
    let result = reconcile_run(
        planner,
        opts.apply.then_some(&mut applier),
        &mut |p, step| reporter.step(p, step),
    )
    .await;
    reporter.finish();
    let mut report = match result {
        Ok(r) => r,
        Err(interrupted) => {
            let resume = interrupted
                .report
                .last_key
                .as_deref()
                .map(|k| format!("; resume with --start-after {k:?}"))
                .unwrap_or_default();
            return Err(
                anyhow::Error::new(interrupted.error).context(format!("reconcile stopped{resume}"))
            );
        }
    };
    // Unfinished multipart uploads past their maximum age: purge's to abort.
    report.stale_multipart_uploads = storage
        .objects
        .list_multipart_uploads(&config.bucket, now - config.multipart_max_age)
        .await
        .map_err(|e| anyhow::Error::new(e).context("listing multipart uploads"))?
        .len() as u64;
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report, opts.delete_orphans));
        if report.stale_multipart_uploads > 0 {
            println!(
                "stale multipart uploads (older than FILEGATE_MULTIPART_MAX_AGE): {}; `filegate-admin purge` aborts them",
                report.stale_multipart_uploads
            );
        }
    }
    Ok(if report.remaining() > 0 {
        EXIT_DIFFERENCES
    } else {
        EXIT_OK
    })
}

/// Progress: a bar on a terminal, a line every few seconds otherwise, nothing with --json.
struct Reporter {
    bar: Option<ProgressBar>,
    plain: bool,
    last_line: Instant,
    findings: u64,
}

impl Reporter {
    fn new(json: bool) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let bar = (!json && terminal).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            bar,
            plain: !json && !terminal,
            last_line: Instant::now(),
            findings: 0,
        }
    }

    fn line(&self, p: &Progress) -> String {
        format!(
            "{} objects, {} rows, {} findings, at {}",
            p.objects,
            p.rows,
            self.findings,
            p.last_key.as_deref().unwrap_or("-")
        )
    }

    fn step(&mut self, p: &Progress, step: Option<(&Finding, Option<&Applied>)>) {
        if let Some((finding, applied)) = step {
            self.findings += 1;
            match applied {
                Some(Applied::Skipped(why)) => tracing::info!(
                    category = finding.category().as_str(),
                    key = finding.key(),
                    reason = why,
                    "left as it is"
                ),
                Some(Applied::Fixed(fix)) => tracing::info!(
                    category = finding.category().as_str(),
                    key = finding.key(),
                    fix = ?fix,
                    "fixed"
                ),
                None => tracing::info!(
                    category = finding.category().as_str(),
                    key = finding.key(),
                    "found"
                ),
            }
        }
        if let Some(bar) = &self.bar {
            bar.set_message(self.line(p));
        } else if self.plain && self.last_line.elapsed() >= Duration::from_secs(5) {
            eprintln!("reconcile: {}", self.line(p));
            self.last_line = Instant::now();
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The text report.
fn render(report: &ReconcileReport, delete_orphans: bool) -> String {
    let mut out = String::new();
    let mode = if report.applied { "applied" } else { "dry run" };
    let _ = writeln!(out, "reconcile of bucket {} ({mode})", report.bucket);
    if let Some(p) = &report.prefix {
        let _ = writeln!(out, "prefix: {p}");
    }
    if let Some(s) = &report.start_after {
        let _ = writeln!(out, "start after: {s}");
    }
    let _ = writeln!(
        out,
        "scanned {} objects ({} bytes) and {} rows; {} pending uploads in flight, {} soft-deleted rows (for purge)",
        report.scanned_objects,
        report.scanned_bytes,
        report.scanned_rows,
        report.in_flight,
        report.soft_deleted
    );
    let _ = writeln!(
        out,
        "{:<58}  {:>9}  {:>14}  {:>9}  {:>9}",
        "CATEGORY", "COUNT", "BYTES", "FIXED", "SKIPPED"
    );
    for c in Category::ALL {
        let t = report.categories.get(&c).cloned().unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<58}  {:>9}  {:>14}  {:>9}  {:>9}",
            c.describe(),
            t.count,
            t.bytes,
            t.fixed,
            t.skipped
        );
    }
    for c in Category::ALL {
        if let Some(t) = report.categories.get(&c)
            && !t.examples.is_empty()
        {
            let _ = writeln!(out, "{} e.g.: {}", c.as_str(), t.examples.join(", "));
        }
    }
    let found = report.differences();
    let remaining = report.remaining();
    if found == 0 {
        let _ = writeln!(out, "clean: storage and the databases agree");
    } else if !report.applied {
        let _ = writeln!(
            out,
            "{found} difference(s) found; run again with --apply to fix them"
        );
    } else {
        let _ = writeln!(
            out,
            "{} fixed, {remaining} left as they are",
            found - remaining
        );
        let orphans = report
            .categories
            .get(&Category::Orphan)
            .map_or(0, |t| t.count - t.fixed);
        if orphans > 0 && !delete_orphans {
            let _ = writeln!(
                out,
                "orphan objects are deleted only with --delete-orphans (older than --older-than, default {})",
                humantime::format_duration(DEFAULT_ORPHAN_MIN_AGE)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use filegate_core::domain::BucketName;

    #[test]
    fn the_text_report_names_every_category() {
        let opts = PlanOptions::new(
            BucketName::parse("media-bucket").unwrap(),
            OffsetDateTime::UNIX_EPOCH,
        );
        let report = ReconcileReport::new(&opts, false);
        let text = render(&report, false);
        for c in Category::ALL {
            assert!(text.contains(c.describe()), "{text}");
        }
        assert!(text.contains("clean"), "{text}");
    }
}
