//! `stats`: live objects and bytes per bucket and per organization, from FILES_DB and the
//! media table.

use filegate_core::managed::BucketId;
use filegate_core::reconcile::{Usage, stats};
use serde::Serialize;
use std::collections::BTreeMap;

use super::{ConfigOpts, EXIT_OK, open_files_db, open_media_db};

#[derive(Debug, clap::Args)]
pub(crate) struct Opts {
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub config: ConfigOpts,
}

#[derive(Debug, Serialize)]
struct BucketUsage {
    id: String,
    name: Option<String>,
    organization_id: Option<String>,
    #[serde(flatten)]
    usage: Usage,
}

#[derive(Debug, Serialize)]
struct Output {
    total: Usage,
    /// Presign-only uploads (the media table).
    media: Usage,
    buckets: Vec<BucketUsage>,
    organizations: BTreeMap<String, Usage>,
}

pub(crate) async fn run(opts: Opts) -> anyhow::Result<u8> {
    let config = opts.config.load()?;
    let db = open_files_db(&config).await?;
    let media = open_media_db(&config).await?;
    let s = stats(&*db.rows(), media.as_deref(), 1000)
        .await
        .map_err(anyhow::Error::new)?;
    let mut buckets = Vec::with_capacity(s.by_bucket.len());
    for (id, usage) in s.by_bucket {
        let found = match BucketId::parse(&id) {
            Ok(bid) => db
                .buckets()
                .find_bucket(&bid)
                .await
                .map_err(anyhow::Error::new)?,
            Err(_) => None,
        };
        buckets.push(BucketUsage {
            id,
            name: found.as_ref().map(|b| b.name.as_str().to_owned()),
            organization_id: found.and_then(|b| b.organization_id),
            usage,
        });
    }
    let out = Output {
        total: s.total,
        media: s.media,
        buckets,
        organizations: s.by_organization,
    };
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(EXIT_OK);
    }
    println!(
        "total: {} objects, {} bytes, {} pending",
        out.total.objects, out.total.bytes, out.total.pending
    );
    println!(
        "media (presign-only): {} objects, {} bytes, {} pending",
        out.media.objects, out.media.bytes, out.media.pending
    );
    println!(
        "{:<34}  {:<24}  {:<16}  {:>10}  {:>14}  {:>8}",
        "BUCKET", "NAME", "ORGANIZATION", "OBJECTS", "BYTES", "PENDING"
    );
    for b in &out.buckets {
        println!(
            "{:<34}  {:<24}  {:<16}  {:>10}  {:>14}  {:>8}",
            b.id,
            b.name.as_deref().unwrap_or("(deleted)"),
            b.organization_id.as_deref().unwrap_or("(project)"),
            b.usage.objects,
            b.usage.bytes,
            b.usage.pending
        );
    }
    println!(
        "{:<34}  {:>10}  {:>14}  {:>8}",
        "ORGANIZATION", "OBJECTS", "BYTES", "PENDING"
    );
    for (org, u) in &out.organizations {
        let org = if org.is_empty() {
            "(none)"
        } else {
            org.as_str()
        };
        println!(
            "{org:<34}  {:>10}  {:>14}  {:>8}",
            u.objects, u.bytes, u.pending
        );
    }
    Ok(EXIT_OK)
}
