//! Imports the layout the endpoint used before (s3s-fs 0.14) into the engine on start, so
//! an existing `data/objects` folder keeps working:
//! - `<root>/<bucket>/<key as a path>`: the bytes;
//! - `<root>/.bucket-<b64url bucket>.object-<b64url key>.metadata.json`: content headers
//!   and user metadata (or, in older files, only the user metadata map);
//! - `<root>/.bucket-….object-….internal.json`: the ETag and `checksum_*` values;
//! - `.upload-<id>.json`, `.upload_id-<id>.part-<n>`, `.tmp.<n>.internal.part`:
//!   unfinished multipart uploads and temp files, dropped (an upload cannot outlive the
//!   switch: its client gets `NoSuchUpload` and starts over).
//!
//! Crash-safe and idempotent: a file is hard-linked (or copied) to a new content file,
//! the batch's rows commit, and only then are the originals removed. Interrupted before
//! the commit, the content files are orphans the next start removes and the originals
//! are imported again; after it, the keys are already in the index and the originals are
//! just removed.

use crate::engine::{Blobs, Checksums, Engine, Meta, ObjectRow, sync_dir};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use s3s::crypto::{Checksum as _, Md5};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

const BATCH: usize = 500;

/// s3s-fs's `ObjectAttributes` JSON.
#[derive(serde::Deserialize, Default)]
struct LegacyAttributes {
    user_metadata: Option<BTreeMap<String, String>>,
    content_encoding: Option<String>,
    content_type: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    expires: Option<String>,
    website_redirect_location: Option<String>,
}

fn side_file(root: &Path, bucket: &str, key: &str, suffix: &str) -> PathBuf {
    root.join(format!(
        ".bucket-{}.object-{}.{suffix}",
        URL_SAFE_NO_PAD.encode(bucket),
        URL_SAFE_NO_PAD.encode(key)
    ))
}

fn legacy_meta(root: &Path, bucket: &str, key: &str) -> Meta {
    let mut meta = Meta::default();
    if let Ok(raw) = std::fs::read(side_file(root, bucket, key, "metadata.json")) {
        // As s3s-fs reads it: the attributes object, else (older files) the user map.
        let attrs = serde_json::from_slice::<LegacyAttributes>(&raw)
            .or_else(|_| {
                serde_json::from_slice::<BTreeMap<String, String>>(&raw).map(|user| {
                    LegacyAttributes {
                        user_metadata: Some(user),
                        ..Default::default()
                    }
                })
            })
            .unwrap_or_default();
        meta.user = attrs.user_metadata.unwrap_or_default();
        meta.content_type = attrs.content_type;
        meta.content_encoding = attrs.content_encoding;
        meta.content_disposition = attrs.content_disposition;
        meta.content_language = attrs.content_language;
        meta.cache_control = attrs.cache_control;
        meta.expires = attrs.expires;
        meta.website_redirect_location = attrs.website_redirect_location;
    }
    meta
}

fn legacy_internal(root: &Path, bucket: &str, key: &str) -> (Option<String>, Checksums) {
    let Ok(raw) = std::fs::read(side_file(root, bucket, key, "internal.json")) else {
        return (None, Checksums::default());
    };
    let Ok(map) = serde_json::from_slice::<BTreeMap<String, serde_json::Value>>(&raw) else {
        return (None, Checksums::default());
    };
    let get = |name: &str| map.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    (
        get("e_tag"),
        Checksums {
            crc32: get("checksum_crc32"),
            crc32c: get("checksum_crc32c"),
            sha1: get("checksum_sha1"),
            sha256: get("checksum_sha256"),
            crc64nvme: get("checksum_crc64nvme"),
        },
    )
}

fn md5_hex(path: &Path) -> io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut md5 = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        md5.update(&buf[..n]);
    }
    Ok(hex::encode(md5.finalize()))
}

/// Every regular file under `dir` with its key (path components joined by `/`).
fn walk(
    dir: &Path,
    prefix: &str,
    out: &mut Vec<(PathBuf, String)>,
    dirs: &mut Vec<PathBuf>,
) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            tracing::warn!(path = %entry.path().display(), "embedded S3 import: skipping a name that is not UTF-8");
            continue;
        };
        let key = format!("{prefix}{name}");
        let kind = entry.file_type()?;
        if kind.is_dir() {
            dirs.push(entry.path());
            walk(&entry.path(), &format!("{key}/"), out, dirs)?;
        } else if kind.is_file() {
            out.push((entry.path(), key));
        }
    }
    Ok(())
}

fn link_or_copy(from: &Path, to: &Path) -> io::Result<()> {
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to)?;
    std::fs::File::open(to)?.sync_all()
}

fn modified_ms(path: &Path) -> i64 {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .map(time::OffsetDateTime::from)
        .map_or(0, |t| {
            i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
        })
}

fn import_bucket(root: &Path, bucket: &str, engine: &Engine) -> io::Result<usize> {
    let dir = root.join(bucket);
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    walk(&dir, "", &mut files, &mut dirs)?;
    let now = crate::engine::now_ms();
    let mut imported = 0;
    // The bucket exists even with no objects.
    engine
        .index
        .import_objects(bucket, &[], now)
        .map_err(io::Error::other)?;
    for batch in files.chunks(BATCH) {
        let mut rows = Vec::new();
        let mut touched = BTreeSet::new();
        for (path, key) in batch {
            if engine
                .index
                .has_object(bucket, key)
                .map_err(io::Error::other)?
            {
                continue;
            }
            let blob = Blobs::new_id();
            let target = engine.blobs.path(&blob);
            link_or_copy(path, &target)?;
            if let Some(parent) = target.parent() {
                touched.insert(parent.to_path_buf());
            }
            let (etag, checksums) = legacy_internal(root, bucket, key);
            let etag = match etag {
                Some(e) => e,
                None => md5_hex(path)?,
            };
            let mut meta = legacy_meta(root, bucket, key);
            meta.checksums = checksums;
            rows.push(ObjectRow {
                key: key.clone(),
                blob,
                size: std::fs::metadata(path)?.len(),
                etag,
                modified_ms: modified_ms(path),
                meta,
            });
        }
        for d in &touched {
            sync_dir(d)?;
        }
        imported += engine
            .index
            .import_objects(bucket, &rows, now)
            .map_err(io::Error::other)?;
        for (path, _) in batch {
            std::fs::remove_file(path)?;
        }
    }
    // Deepest first; a folder something else still uses stays.
    for d in dirs.iter().rev() {
        let _ = std::fs::remove_dir(d);
    }
    let _ = std::fs::remove_dir(&dir);
    Ok(imported)
}

#[expect(
    clippy::case_sensitive_file_extension_comparisons,
    reason = "s3s-fs wrote these names in lower case"
)]
fn is_legacy_side_file(name: &str) -> bool {
    (name.starts_with(".bucket-")
        && (name.ends_with(".metadata.json") || name.ends_with(".internal.json")))
        || (name.starts_with(".upload-") && name.ends_with(".json"))
        || name.starts_with(".upload_id-")
        || (name.starts_with(".tmp.") && name.ends_with(".internal.part"))
}

/// Imports every legacy bucket folder in `root`, then drops s3s-fs's side files.
pub(crate) fn import_legacy(root: &Path, engine: &Engine) -> io::Result<()> {
    let mut buckets = Vec::new();
    let mut side_files = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let kind = entry.file_type()?;
        if kind.is_dir() && name != crate::engine::STORE_DIR {
            if s3s::path::check_bucket_name(&name) {
                buckets.push(name);
            } else {
                tracing::warn!(folder = %name, "embedded S3 import: not a bucket name, left alone");
            }
        } else if kind.is_file() && is_legacy_side_file(&name) {
            side_files.push(entry.path());
        }
    }
    for bucket in &buckets {
        let n = import_bucket(root, bucket, engine)?;
        tracing::info!(%bucket, imported = n, "embedded S3: imported a folder of the previous layout");
    }
    for f in side_files {
        std::fs::remove_file(f)?;
    }
    Ok(())
}
