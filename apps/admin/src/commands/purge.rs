//! `purge`: removes soft-deleted objects and stale pending uploads of FILES_DB and of the
//! media table (object, then row), in batches.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use anyhow::bail;
use filegate_core::reconcile::{
    PurgeOptions, PurgeReport, SOFT_DELETE_GRACE, purge, stale_pending_after,
};
use time::OffsetDateTime;

use super::{ConfigOpts, EXIT_OK, close_storage, confirm, open_files_db, open_media_db};

#[derive(Debug, clap::Args)]
pub(crate) struct Opts {
    /// Only report what would be purged.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Abort multipart uploads older than this many seconds instead of
    /// FILEGATE_MULTIPART_MAX_AGE (0: every unfinished upload).
    #[arg(long, value_name = "SECS")]
    pub multipart_max_age: Option<u64>,
    /// Rows per batch.
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch: u32,
    #[command(flatten)]
    pub config: ConfigOpts,
}

pub(crate) async fn run(opts: Opts) -> anyhow::Result<u8> {
    let config = opts.config.load()?;
    let db = open_files_db(&config).await?;
    let media = open_media_db(&config).await?;
    // Pending rows are abandoned once no URL the server signed for them can still run.
    let stale_after = stale_pending_after(config.upload_expiry);
    let multipart_max_age = opts
        .multipart_max_age
        .map_or(config.multipart_max_age, Duration::from_secs);
    if !opts.dry_run
        && !confirm(
            &format!(
                "delete soft-deleted objects, managed pending uploads older than {}, presign-only uploads whose URL expired over an hour ago and multipart uploads older than {}, from bucket {} and the databases?",
                humantime::format_duration(stale_after),
                humantime::format_duration(multipart_max_age),
                config.bucket
            ),
            opts.yes,
        )?
    {
        bail!("not confirmed; nothing deleted");
    }
    let storage = super::storage(&config).await?;
    let purge_opts = PurgeOptions {
        bucket: config.bucket.clone(),
        now: OffsetDateTime::now_utc(),
        stale_after,
        multipart_max_age,
        deleted_grace: SOFT_DELETE_GRACE,
        batch: opts.batch,
        dry_run: opts.dry_run,
    };
    let plain = !opts.json;
    let terminal = std::io::stderr().is_terminal();
    let mut last = Instant::now();
    let result = purge(
        &storage.objects,
        &*db.rows(),
        media.as_deref(),
        &purge_opts,
        &mut |r: &PurgeReport| {
            if plain && (terminal || last.elapsed() >= Duration::from_secs(5)) {
                eprintln!(
                    "purge: {} rows scanned, {} purged",
                    r.scanned_rows, r.purged
                );
                last = Instant::now();
            }
        },
    )
    .await;
    close_storage(storage).await;
    let report = result.map_err(|e| anyhow::Error::new(e).context("purge stopped"))?;
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let verb = if report.dry_run {
            "would purge"
        } else {
            "purged"
        };
        println!(
            "scanned {} rows in {} batch(es)",
            report.scanned_rows, report.batches
        );
        println!(
            "soft-deleted rows: {} ({} bytes); stale pending uploads: {} ({} bytes)",
            report.soft_deleted.count,
            report.soft_deleted.bytes,
            report.stale_pending.count,
            report.stale_pending.bytes
        );
        println!(
            "multipart uploads older than {}: {}",
            humantime::format_duration(multipart_max_age),
            report.stale_multipart.count
        );
        let n = if report.dry_run {
            report.soft_deleted.count + report.stale_pending.count + report.stale_multipart.count
        } else {
            report.purged
        };
        println!("{verb} {n} row(s) and their objects");
    }
    Ok(EXIT_OK)
}
