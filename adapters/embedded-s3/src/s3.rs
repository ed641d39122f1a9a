//! The S3 operations R2 supports, over the engine; everything else is s3s's default 501
//! `NotImplemented`. s3s has already routed the request, checked its signature (and a
//! presigned URL's expiry) and parsed the XML and headers when a method here runs.

use crate::engine::{
    Blobs, Checksums, DbError, Engine, Listed, Meta, ObjectRow, PartRow, UploadRow, WriteCondition,
    now_ms, prefix_end, sync_dir,
};
use filegate_core::key_locks::KeyLocks;
use futures::StreamExt;
use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, Bucket, ChecksumAlgorithm, ChecksumMode,
    ChecksumType, CommonPrefix, CompleteMultipartUploadInput, CompleteMultipartUploadOutput,
    CopyObjectInput, CopyObjectOutput, CopyObjectResult, CopyPartResult, CopySource,
    CreateBucketInput, CreateBucketOutput, CreateMultipartUploadInput, CreateMultipartUploadOutput,
    DeleteBucketInput, DeleteBucketOutput, DeleteObjectInput, DeleteObjectOutput,
    DeleteObjectsInput, DeleteObjectsOutput, DeletedObject, ETag, ETagCondition, EncodingType,
    Error, GetBucketLocationInput, GetBucketLocationOutput, GetObjectInput, GetObjectOutput,
    HeadBucketInput, HeadBucketOutput, HeadObjectInput, HeadObjectOutput, ListBucketsInput,
    ListBucketsOutput, ListMultipartUploadsInput, ListMultipartUploadsOutput, ListObjectsInput,
    ListObjectsOutput, ListObjectsV2Input, ListObjectsV2Output, ListPartsInput, ListPartsOutput,
    MetadataDirective, MultipartUpload, Object, ObjectStorageClass, Owner, Part, PutObjectInput,
    PutObjectOutput, Range, StorageClass, StreamingBlob, Timestamp, TimestampFormat,
    UploadPartCopyInput, UploadPartCopyOutput, UploadPartInput, UploadPartOutput,
};
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// S3's minimum size of every part but the last.
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
const MAX_KEYS: usize = 1000;
const MAX_PARTS: i32 = 10_000;
/// Read and write buffer for object bytes.
const IO_BUF: usize = 256 * 1024;

impl From<DbError> for S3Error {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NoSuchBucket => s3_error!(NoSuchBucket),
            DbError::NoSuchUpload => s3_error!(NoSuchUpload),
            DbError::NoSuchKey => s3_error!(NoSuchKey),
            DbError::PreconditionFailed => s3_error!(PreconditionFailed),
            DbError::BucketNotEmpty => s3_error!(
                BucketNotEmpty,
                "The bucket you tried to delete is not empty"
            ),
            other => {
                tracing::error!(error = %other, "embedded S3 index error");
                s3_error!(InternalError)
            }
        }
    }
}

#[expect(clippy::needless_pass_by_value, reason = "a `map_err` function")]
fn io_error(e: std::io::Error) -> S3Error {
    tracing::error!(error = %e, "embedded S3 I/O error");
    s3_error!(InternalError)
}

pub(crate) struct Store {
    engine: Arc<Engine>,
    /// Serialises the writers of one object (PUT, copy, complete), so a complete is never
    /// assembled twice at once and conditional writes see each other's result.
    locks: KeyLocks,
}

/// A content file being written: removed when dropped before its row committed.
struct Pending {
    engine: Arc<Engine>,
    id: Option<String>,
}

impl Pending {
    fn new(engine: &Arc<Engine>) -> Self {
        Self {
            engine: Arc::clone(engine),
            id: Some(Blobs::new_id()),
        }
    }
    fn id(&self) -> &str {
        self.id.as_deref().unwrap_or_default()
    }
    fn path(&self) -> std::path::PathBuf {
        self.engine.blobs.path(self.id())
    }
    /// The row naming it committed: it is no longer ours to remove.
    fn keep(mut self) {
        self.id = None;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.engine.blobs.remove([id]);
        }
    }
}

/// What a streamed body turned into.
struct Written {
    blob: Pending,
    size: u64,
    md5: [u8; 16],
    checksums: Checksums,
}

/// The stored headers and user metadata of a PUT, copy (`REPLACE`) or multipart create:
/// their inputs name these fields alike.
macro_rules! meta_of {
    ($input:expr) => {
        Meta {
            content_type: $input.content_type,
            content_encoding: stored_encoding($input.content_encoding),
            content_disposition: $input.content_disposition,
            content_language: $input.content_language,
            cache_control: $input.cache_control,
            expires: fmt_expires($input.expires),
            website_redirect_location: $input.website_redirect_location,
            user: $input.metadata.unwrap_or_default().into_iter().collect(),
            ..Meta::default()
        }
    };
}

/// The one account that owns everything here.
fn owner() -> Owner {
    Owner {
        display_name: Some("filegate".to_owned()),
        id: Some("filegate".to_owned()),
    }
}

/// `Content-Encoding` as stored: without the `aws-chunked` transfer coding the SDKs add.
#[expect(clippy::needless_pass_by_value, reason = "takes the request's field")]
fn stored_encoding(e: Option<String>) -> Option<String> {
    let kept: Vec<&str> = e
        .as_deref()?
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    (!kept.is_empty()).then(|| kept.join(", "))
}

/// GET's or HEAD's output (two s3s types with the same header fields) for `row`: its
/// stored headers, ETag, date, part count and the checksums `c` to return, plus `extra`.
macro_rules! stored_headers {
    ($output:ident, $row:expr, $parts_count:expr, $c:expr, { $($field:ident $(: $value:expr)?),* $(,)? }) => {{
        let (row, c) = ($row, $c);
        let m = row.meta;
        $output {
            $($field $(: $value)?,)*
            accept_ranges: Some("bytes".to_owned()),
            last_modified: Some(ts(row.modified_ms)),
            e_tag: Some(ETag::Strong(row.etag)),
            parts_count: $parts_count,
            expires: parse_expires(m.expires.as_ref()),
            content_type: m.content_type,
            content_encoding: m.content_encoding,
            content_disposition: m.content_disposition,
            content_language: m.content_language,
            cache_control: m.cache_control,
            website_redirect_location: m.website_redirect_location,
            checksum_type: m
                .checksum_type
                .filter(|_| !c.is_empty())
                .map(ChecksumType::from),
            metadata: (!m.user.is_empty()).then(|| m.user.into_iter().collect()),
            checksum_crc32: c.crc32,
            checksum_crc32c: c.crc32c,
            checksum_sha1: c.sha1,
            checksum_sha256: c.sha256,
            checksum_crc64nvme: c.crc64nvme,
            ..Default::default()
        }
    }};
}

/// Only the `null` version exists (no versioning, as on R2): any other is 501.
fn unversioned(version_id: Option<&str>) -> S3Result<()> {
    if version_id.is_some_and(|v| v != "null") {
        return Err(s3_error!(NotImplemented, "versioning is not supported"));
    }
    Ok(())
}

/// The stored checksums a GET or HEAD returns: only when asked for (`x-amz-checksum-mode`),
/// and only of whole objects.
fn returned_checksums(row: &ObjectRow, partial: bool, mode: Option<&ChecksumMode>) -> Checksums {
    if partial || !checksums_wanted(mode) {
        Checksums::default()
    } else {
        row.meta.checksums.clone()
    }
}

fn checksums_wanted(mode: Option<&ChecksumMode>) -> bool {
    mode.is_some_and(|m| m.as_str().eq_ignore_ascii_case(ChecksumMode::ENABLED))
}

fn ts(ms: i64) -> Timestamp {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(t)
}

/// Seconds since the epoch: HTTP dates have no finer precision.
fn secs(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

fn fmt_expires(t: Option<Timestamp>) -> Option<String> {
    let t = t?;
    let mut buf = Vec::new();
    t.format(TimestampFormat::DateTime, &mut buf).ok()?;
    String::from_utf8(buf).ok()
}

fn parse_expires(s: Option<&String>) -> Option<Timestamp> {
    s.and_then(|s| Timestamp::parse(TimestampFormat::DateTime, s).ok())
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Keys, prefixes and markers as `encoding-type=url` wants them: every byte outside
/// the unreserved set and `/` percent-encoded (boto3 then decodes `+` correctly).
const URL_SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

fn encoder(encoding: Option<&EncodingType>) -> S3Result<impl Fn(String) -> String + Copy> {
    let url = match encoding {
        None => false,
        Some(e) if e.as_str() == EncodingType::URL => true,
        Some(_) => {
            return Err(s3_error!(
                InvalidArgument,
                "Invalid Encoding Method specified in Request"
            ));
        }
    };
    Ok(move |s: String| {
        if url {
            percent_encoding::utf8_percent_encode(&s, URL_SET).to_string()
        } else {
            s
        }
    })
}

fn max_keys(requested: Option<i32>) -> S3Result<usize> {
    match requested {
        None => Ok(MAX_KEYS),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must not be negative")),
        Some(n) => Ok(usize::try_from(n).unwrap_or(MAX_KEYS).min(MAX_KEYS)),
    }
}

/// The value of an `ETag` or condition, without quotes.
fn etag_value(e: &ETag) -> &str {
    e.value()
}

/// What ListObjects returns, in order.
enum Entry {
    Object(Listed),
    Prefix(String),
}

/// When `marker` lies inside a common prefix (under `delimiter`), the end of that prefix:
/// resuming there skips the keys it rolled up.
fn resume_point(marker: &str, prefix: &str, delimiter: Option<&str>) -> Vec<u8> {
    if let Some(d) = delimiter
        && let Some(rest) = marker.strip_prefix(prefix)
        && let Some(pos) = rest.find(d)
    {
        return prefix_end(&marker.as_bytes()[..prefix.len() + pos + d.len()]);
    }
    marker.as_bytes().to_vec()
}

/// Walks the index from `after` (exclusive) under `prefix`, rolling keys up to common
/// prefixes at `delimiter`, until `max` entries. Each common prefix costs one index
/// seek past its keys, so a page costs O(page), whatever the bucket's size.
fn walk(
    engine: &Engine,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<&str>,
    max: usize,
) -> Result<(Vec<Entry>, bool), DbError> {
    let until = prefix_end(prefix.as_bytes());
    let mut cursor: Option<Vec<u8>> = after.map(|a| resume_point(a, prefix, delimiter));
    let mut out = Vec::new();
    if max == 0 {
        return Ok((out, false));
    }
    loop {
        let want = max - out.len() + 1;
        let batch = engine.index.list_objects(
            bucket,
            cursor.as_deref(),
            prefix.as_bytes(),
            &until,
            want,
        )?;
        let full = batch.len() == want;
        let mut jumped = false;
        for item in batch {
            if out.len() == max {
                return Ok((out, true));
            }
            let rolled = delimiter.and_then(|d| {
                item.key[prefix.len()..]
                    .find(d)
                    .map(|pos| item.key[..prefix.len() + pos + d.len()].to_owned())
            });
            if let Some(cp) = rolled {
                cursor = Some(prefix_end(cp.as_bytes()));
                out.push(Entry::Prefix(cp));
                jumped = true;
                break;
            }
            cursor = Some(item.key.as_bytes().to_vec());
            out.push(Entry::Object(item));
        }
        if !jumped && !full {
            return Ok((out, false));
        }
    }
}

fn entry_key(e: &Entry) -> &str {
    match e {
        Entry::Object(o) => &o.key,
        Entry::Prefix(p) => p,
    }
}

fn split_entries(
    entries: Vec<Entry>,
    enc: impl Fn(String) -> String,
    with_owner: bool,
) -> (Vec<Object>, Vec<CommonPrefix>) {
    let mut objects = Vec::new();
    let mut prefixes = Vec::new();
    for e in entries {
        match e {
            Entry::Object(o) => objects.push(Object {
                key: Some(enc(o.key)),
                size: Some(i64_of(o.size)),
                e_tag: Some(ETag::Strong(o.etag)),
                last_modified: Some(ts(o.modified_ms)),
                storage_class: Some(ObjectStorageClass::from_static(
                    ObjectStorageClass::STANDARD,
                )),
                owner: with_owner.then(owner),
                ..Default::default()
            }),
            Entry::Prefix(p) => prefixes.push(CommonPrefix {
                prefix: Some(enc(p)),
            }),
        }
    }
    (objects, prefixes)
}

fn write_condition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> WriteCondition {
    WriteCondition {
        if_absent: if_none_match.is_some_and(ETagCondition::is_any),
        if_none_match: if_none_match
            .and_then(|c| c.as_etag())
            .map(|e| etag_value(e).to_owned()),
        if_match: if_match.map(|c| c.as_etag().map(|e| etag_value(e).to_owned())),
    }
}

/// GET/HEAD preconditions in RFC 9110's order: If-Match, If-Unmodified-Since (only
/// without If-Match), If-None-Match, If-Modified-Since (only without If-None-Match).
fn read_preconditions(
    row: &ObjectRow,
    if_match: Option<&ETagCondition>,
    if_unmodified_since: Option<&Timestamp>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let matches = |c: &ETagCondition| match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => etag_value(e) == row.etag,
    };
    let modified = row.modified_ms.div_euclid(1000);
    match if_match {
        Some(c) if !matches(c) => return Err(s3_error!(PreconditionFailed)),
        Some(_) => {}
        None => {
            if let Some(t) = if_unmodified_since
                && modified > secs(t)
            {
                return Err(s3_error!(PreconditionFailed));
            }
        }
    }
    let not_modified = || {
        let mut e = s3_error!(NotModified);
        let mut headers = http::HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_str(&format!("\"{}\"", row.etag)) {
            headers.insert(http::header::ETAG, v);
        }
        e.set_headers(headers);
        e
    };
    match if_none_match {
        Some(c) if matches(c) => return Err(not_modified()),
        Some(_) => {}
        None => {
            if let Some(t) = if_modified_since
                && modified <= secs(t)
            {
                return Err(not_modified());
            }
        }
    }
    Ok(())
}

#[expect(
    clippy::default_trait_access,
    reason = "the hashers' types are s3s's, named only through these fields"
)]
fn enable_checksum(h: &mut s3s::checksum::ChecksumHasher, name: &str) -> S3Result<()> {
    match name.to_ascii_lowercase().as_str() {
        "crc32" => h.crc32 = Some(Default::default()),
        "crc32c" => h.crc32c = Some(Default::default()),
        "sha1" => h.sha1 = Some(Default::default()),
        "sha256" => h.sha256 = Some(Default::default()),
        "crc64nvme" => h.crc64nvme = Some(Default::default()),
        _ => return Err(s3_error!(InvalidRequest, "Unsupported checksum algorithm")),
    }
    Ok(())
}

/// A multipart object's `COMPOSITE` checksum: the algorithm over the concatenated binary
/// part checksums, suffixed `-<parts>`.
fn composite_checksum(algorithm: &str, parts: &[PartRow]) -> S3Result<String> {
    use base64::Engine as _;
    let mut h = s3s::checksum::ChecksumHasher::default();
    enable_checksum(&mut h, algorithm)?;
    for p in parts {
        let mut c = p.meta.checksums.clone();
        let value = c.slot(algorithm).and_then(Option::take).ok_or_else(|| {
            s3_error!(InvalidPart, "Part {} has no {algorithm} checksum", p.number)
        })?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(value)
            .map_err(|_| s3_error!(InternalError, "a stored part checksum is not base64"))?;
        h.update(&raw);
    }
    let mut sum = checksums_of(h.finalize());
    let value = sum
        .slot(algorithm)
        .and_then(Option::take)
        .unwrap_or_default();
    Ok(format!("{value}-{}", parts.len()))
}

/// Which checksums the request asks for: named by value, by algorithm or as a trailer.
fn checksum_hasher(
    claimed: &Checksums,
    algorithm: Option<&ChecksumAlgorithm>,
    headers: &http::HeaderMap,
) -> S3Result<s3s::checksum::ChecksumHasher> {
    let mut h = s3s::checksum::ChecksumHasher::default();
    let mut enable = |name: &str| enable_checksum(&mut h, name);
    for (name, value) in [
        ("crc32", &claimed.crc32),
        ("crc32c", &claimed.crc32c),
        ("sha1", &claimed.sha1),
        ("sha256", &claimed.sha256),
        ("crc64nvme", &claimed.crc64nvme),
    ] {
        if value.is_some() {
            enable(name)?;
        }
    }
    if let Some(a) = algorithm {
        enable(a.as_str())?;
    }
    if let Some(trailer) = headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()) {
        for t in trailer.split(',') {
            if let Some(name) = t
                .trim()
                .to_ascii_lowercase()
                .strip_prefix("x-amz-checksum-")
            {
                enable(name)?;
            }
        }
    }
    Ok(h)
}

fn trailer_checksums(
    claimed: &mut Checksums,
    trailers: Option<&s3s::TrailingHeaders>,
) -> S3Result<()> {
    let Some(map) = trailers.and_then(s3s::TrailingHeaders::take) else {
        return Ok(());
    };
    for (name, slot) in [
        ("x-amz-checksum-crc32", &mut claimed.crc32),
        ("x-amz-checksum-crc32c", &mut claimed.crc32c),
        ("x-amz-checksum-sha1", &mut claimed.sha1),
        ("x-amz-checksum-sha256", &mut claimed.sha256),
        ("x-amz-checksum-crc64nvme", &mut claimed.crc64nvme),
    ] {
        if let Some(v) = map.get(name) {
            *slot = Some(
                v.to_str()
                    .map_err(|_| s3_error!(InvalidArgument, "bad {name} trailer"))?
                    .to_owned(),
            );
        }
    }
    Ok(())
}

/// Every claim (Content-MD5, x-amz-checksum-*, Content-Length) against what was received.
fn verify(
    written: &Written,
    content_md5: Option<&String>,
    content_length: Option<i64>,
    claimed: &Checksums,
) -> S3Result<()> {
    if let Some(len) = content_length
        && u64::try_from(len).ok() != Some(written.size)
    {
        return Err(s3_error!(IncompleteBody));
    }
    if let Some(md5) = content_md5 {
        use base64::Engine as _;
        let want = base64::engine::general_purpose::STANDARD
            .decode(md5.trim())
            .ok()
            .filter(|d| d.len() == 16)
            .ok_or_else(|| s3_error!(InvalidDigest, "The Content-MD5 you specified was invalid"))?;
        if want != written.md5 {
            return Err(s3_error!(
                BadDigest,
                "The Content-MD5 you specified did not match what we received"
            ));
        }
    }
    let got = &written.checksums;
    for (name, want, have) in [
        ("CRC32", &claimed.crc32, &got.crc32),
        ("CRC32C", &claimed.crc32c, &got.crc32c),
        ("SHA1", &claimed.sha1, &got.sha1),
        ("SHA256", &claimed.sha256, &got.sha256),
        ("CRC64NVME", &claimed.crc64nvme, &got.crc64nvme),
    ] {
        if let Some(want) = want
            && Some(want) != have.as_ref()
        {
            return Err(s3_error!(
                BadDigest,
                "The {name} you specified did not match the calculated checksum"
            ));
        }
    }
    Ok(())
}

fn checksums_of(c: s3s::dto::Checksum) -> Checksums {
    Checksums {
        crc32: c.checksum_crc32,
        crc32c: c.checksum_crc32c,
        sha1: c.checksum_sha1,
        sha256: c.checksum_sha256,
        crc64nvme: c.checksum_crc64nvme,
    }
}

fn body_error(e: s3s::StdError) -> S3Error {
    match e.downcast::<S3Error>() {
        Ok(e) => *e,
        Err(e) => s3_error!(IncompleteBody, "the request body ended early: {e}"),
    }
}

/// `http://<host>/<bucket>/<key>` for CompleteMultipartUpload's `Location`.
fn location(headers: &http::HeaderMap, bucket: &str, key: &str) -> String {
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!(
        "http://{host}/{bucket}/{}",
        percent_encoding::utf8_percent_encode(key, URL_SET)
    )
}

impl Store {
    pub(crate) fn new(engine: Engine) -> Self {
        Self {
            engine: Arc::new(engine),
            locks: KeyLocks::default(),
        }
    }

    /// Runs index work on the blocking pool (SQLite calls block; commits fsync).
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Engine) -> Result<T, DbError> + Send + 'static,
    ) -> S3Result<T> {
        let engine = Arc::clone(&self.engine);
        tokio::task::spawn_blocking(move || f(&engine))
            .await
            .map_err(|e| s3_error!(InternalError, "index task failed: {e}"))?
            .map_err(S3Error::from)
    }

    async fn require_bucket(&self, bucket: &str) -> S3Result<()> {
        let b = bucket.to_owned();
        if self.run(move |e| e.index.bucket_exists(&b)).await? {
            Ok(())
        } else {
            Err(s3_error!(NoSuchBucket))
        }
    }

    async fn object(&self, bucket: &str, key: &str) -> S3Result<Option<ObjectRow>> {
        let (b, k) = (bucket.to_owned(), key.to_owned());
        self.run(move |e| e.index.get_object(&b, &k)).await
    }

    /// Streams `body` into a new content file, hashing as it goes, and fsyncs it.
    async fn write_body(
        &self,
        body: Option<StreamingBlob>,
        mut hasher: s3s::checksum::ChecksumHasher,
    ) -> S3Result<Written> {
        let blob = Pending::new(&self.engine);
        let file = tokio::fs::File::create(blob.path())
            .await
            .map_err(io_error)?;
        let mut out = tokio::io::BufWriter::with_capacity(IO_BUF, file);
        let mut md5 = Md5::new();
        let mut size = 0u64;
        if let Some(mut body) = body {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(body_error)?;
                md5.update(&chunk);
                hasher.update(&chunk);
                size += chunk.len() as u64;
                out.write_all(&chunk).await.map_err(io_error)?;
            }
        }
        out.flush().await.map_err(io_error)?;
        // fdatasync: the bytes and the size, not the timestamps.
        out.into_inner().sync_data().await.map_err(io_error)?;
        Ok(Written {
            blob,
            size,
            md5: md5.finalize(),
            checksums: checksums_of(hasher.finalize()),
        })
    }

    /// Opens an object's content file; a concurrent overwrite may have removed the file
    /// between reading the row and opening it, then the row is read again.
    async fn open_object(&self, bucket: &str, key: &str) -> S3Result<(ObjectRow, tokio::fs::File)> {
        for _ in 0..5 {
            let row = self
                .object(bucket, key)
                .await?
                .ok_or_else(|| s3_error!(NoSuchKey))?;
            match tokio::fs::File::open(self.engine.blobs.path(&row.blob)).await {
                Ok(f) => return Ok((row, f)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(e)),
            }
        }
        Err(s3_error!(
            InternalError,
            "the object kept changing while it was opened"
        ))
    }

    /// Commits `row` at `bucket`/its key under `condition`; the new content file is kept
    /// and the replaced one removed.
    async fn commit_object(
        &self,
        bucket: &str,
        row: ObjectRow,
        condition: WriteCondition,
        blob: Pending,
    ) -> S3Result<()> {
        let b = bucket.to_owned();
        let dir = blob.path().parent().map(std::path::Path::to_path_buf);
        let old = self
            .run(move |e| {
                if let Some(dir) = dir {
                    sync_dir(&dir).map_err(|e| {
                        DbError::Sqlite(rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
                    })?;
                }
                e.index.put_object(&b, &row, &condition)
            })
            .await?;
        blob.keep();
        self.engine.blobs.remove(old);
        Ok(())
    }

    /// Copies `len` bytes at `start` of a content file into a new one.
    /// Also computes `checksum` (an algorithm name) when given; fsyncs file and folder.
    async fn copy_range(
        &self,
        src: &str,
        start: u64,
        len: u64,
        checksum: Option<&str>,
    ) -> S3Result<(Pending, [u8; 16], Checksums)> {
        let blob = Pending::new(&self.engine);
        let (from, to) = (self.engine.blobs.path(src), blob.path());
        let mut hasher = s3s::checksum::ChecksumHasher::default();
        if let Some(a) = checksum {
            enable_checksum(&mut hasher, a)?;
        }
        let (md5, sums) =
            tokio::task::spawn_blocking(move || -> std::io::Result<([u8; 16], Checksums)> {
                let mut input = std::fs::File::open(from)?;
                input.seek(SeekFrom::Start(start))?;
                let mut input = input.take(len);
                let mut output = std::fs::File::create(&to)?;
                let mut md5 = Md5::new();
                let mut buf = vec![0u8; IO_BUF];
                loop {
                    let n = input.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    md5.update(&buf[..n]);
                    hasher.update(&buf[..n]);
                    output.write_all(&buf[..n])?;
                }
                output.sync_data()?;
                if let Some(dir) = to.parent() {
                    sync_dir(dir)?;
                }
                Ok((md5.finalize(), checksums_of(hasher.finalize())))
            })
            .await
            .map_err(|e| s3_error!(InternalError, "copy task failed: {e}"))?
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    s3_error!(NoSuchKey)
                } else {
                    io_error(e)
                }
            })?;
        Ok((blob, md5, sums))
    }
}

fn parse_copy_range(range: &str, size: u64) -> S3Result<(u64, u64)> {
    let bad = || {
        s3_error!(
            InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last"
        )
    };
    let spec = range.strip_prefix("bytes=").ok_or_else(bad)?;
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let first: u64 = a.parse().map_err(|_| bad())?;
    let last: u64 = b.parse().map_err(|_| bad())?;
    if first > last || last >= size {
        return Err(s3_error!(InvalidRange));
    }
    Ok((first, last - first + 1))
}

fn copy_source(src: &CopySource) -> S3Result<(String, String)> {
    match src {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => {
            unversioned(version_id.as_deref())?;
            Ok((bucket.to_string(), key.to_string()))
        }
        _ => Err(s3_error!(NotImplemented)),
    }
}

fn copy_preconditions(
    row: &ObjectRow,
    if_match: Option<&ETagCondition>,
    if_unmodified_since: Option<&Timestamp>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
) -> S3Result<()> {
    // A copy answers 412 where a GET would answer 304.
    read_preconditions(
        row,
        if_match,
        if_unmodified_since,
        if_none_match,
        if_modified_since,
    )
    .map_err(|e| {
        if *e.code() == S3ErrorCode::NotModified {
            s3_error!(PreconditionFailed)
        } else {
            e
        }
    })
}

#[async_trait::async_trait]
impl S3 for Store {
    // Buckets.

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let bucket = req.input.bucket;
        if !s3s::path::check_bucket_name(&bucket)
            || bucket.ends_with("-s3alias")
            || bucket.ends_with("--ol-s3")
        {
            return Err(s3_error!(InvalidBucketName));
        }
        let b = bucket.clone();
        // One account owns every bucket: creating an existing one is a no-op 200, as in
        // S3's us-east-1 (its objects stay).
        self.run(move |e| e.index.create_bucket(&b, now_ms()))
            .await?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{bucket}")),
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let b = req.input.bucket;
        let blobs = self.run(move |e| e.index.delete_bucket(&b)).await?;
        self.engine.blobs.remove(blobs);
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.require_bucket(&req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.require_bucket(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketLocationOutput::default()))
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let input = req.input;
        let max = match input.max_buckets {
            None => 10_000,
            Some(n) if n < 1 => {
                return Err(s3_error!(InvalidArgument, "max-buckets must be at least 1"));
            }
            Some(n) => usize::try_from(n).unwrap_or(10_000).min(10_000),
        };
        let prefix = input.prefix.clone().unwrap_or_default();
        let after = input.continuation_token.clone().unwrap_or_default();
        let mut rows = self
            .run(move |e| e.index.list_buckets(&prefix, &after, max + 1))
            .await?;
        let truncated = rows.len() > max;
        rows.truncate(max);
        let next = truncated
            .then(|| rows.last().map(|(n, _)| n.clone()))
            .flatten();
        let buckets = rows
            .into_iter()
            .map(|(name, created)| Bucket {
                name: Some(name),
                creation_date: Some(ts(created)),
                bucket_region: None,
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner()),
            continuation_token: next,
            prefix: input.prefix,
        }))
    }

    // Objects.

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let input = req.input;
        if let Some(class) = &input.storage_class
            && class.as_str() != StorageClass::STANDARD
        {
            return Err(s3_error!(InvalidStorageClass));
        }
        if input.write_offset_bytes.is_some() {
            return Err(s3_error!(NotImplemented, "appends are not supported"));
        }
        // A missing bucket is found by the commit (NoSuchBucket): no extra index round
        // trip on the hot path.
        let condition = write_condition(input.if_match.as_ref(), input.if_none_match.as_ref());
        // Cheap early refusal; the commit checks again atomically.
        if input.if_match.is_some() || input.if_none_match.is_some() {
            let current = self.object(&input.bucket, &input.key).await?;
            condition.check(current.as_ref().map(|o| o.etag.as_str()))?;
        }
        let mut claimed = Checksums {
            crc32: input.checksum_crc32,
            crc32c: input.checksum_crc32c,
            sha1: input.checksum_sha1,
            sha256: input.checksum_sha256,
            crc64nvme: input.checksum_crc64nvme,
        };
        let hasher = checksum_hasher(&claimed, input.checksum_algorithm.as_ref(), &req.headers)?;
        let written = self.write_body(input.body, hasher).await?;
        trailer_checksums(&mut claimed, req.trailing_headers.as_ref())?;
        verify(
            &written,
            input.content_md5.as_ref(),
            input.content_length,
            &claimed,
        )?;

        let etag = hex::encode(written.md5);
        let mut meta = meta_of!(input);
        meta.checksums = written.checksums.clone();
        let row = ObjectRow {
            key: input.key.clone(),
            blob: written.blob.id().to_owned(),
            size: written.size,
            etag: etag.clone(),
            modified_ms: now_ms(),
            meta,
        };
        let _guard = self
            .locks
            .lock(&format!("{}/{}", input.bucket, input.key))
            .await;
        self.commit_object(&input.bucket, row, condition, written.blob)
            .await?;
        let c = written.checksums;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(etag)),
            checksum_crc32: c.crc32,
            checksum_crc32c: c.crc32c,
            checksum_sha1: c.sha1,
            checksum_sha256: c.sha256,
            checksum_crc64nvme: c.crc64nvme,
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        unversioned(input.version_id.as_deref())?;
        let (row, mut file) = self.open_object(&input.bucket, &input.key).await?;
        read_preconditions(
            &row,
            input.if_match.as_ref(),
            input.if_unmodified_since.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
        )?;
        let (span, parts_count) = span_of(&row, input.part_number, input.range.as_ref())?;
        // S3 answers any Range (even one covering everything) or part with 206.
        let partial = input.range.is_some() || input.part_number.is_some();
        let len = span.end - span.start;
        if span.start > 0 {
            file.seek(SeekFrom::Start(span.start))
                .await
                .map_err(io_error)?;
        }
        let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), IO_BUF);
        let content_range = (partial && len > 0)
            .then(|| format!("bytes {}-{}/{}", span.start, span.end - 1, row.size));
        let c = returned_checksums(&row, partial, input.checksum_mode.as_ref());
        Ok(S3Response::new(
            stored_headers!(GetObjectOutput, row, parts_count, c, {
                body: Some(StreamingBlob::wrap(stream)),
                content_length: Some(i64_of(len)),
                content_range,
            }),
        ))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = req.input;
        unversioned(input.version_id.as_deref())?;
        let row = self
            .object(&input.bucket, &input.key)
            .await?
            .ok_or_else(|| s3_error!(NoSuchKey))?;
        read_preconditions(
            &row,
            input.if_match.as_ref(),
            input.if_unmodified_since.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
        )?;
        let (span, parts_count) = span_of(&row, input.part_number, input.range.as_ref())?;
        let partial = input.range.is_some() || input.part_number.is_some();
        let c = returned_checksums(&row, partial, input.checksum_mode.as_ref());
        let content_range = (partial && span.end > span.start)
            .then(|| format!("bytes {}-{}/{}", span.start, span.end - 1, row.size));
        Ok(S3Response::new(
            stored_headers!(HeadObjectOutput, row, parts_count, c, {
                content_length: Some(i64_of(span.end - span.start)),
                content_range,
            }),
        ))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let input = req.input;
        unversioned(input.version_id.as_deref())?;
        let _guard = self
            .locks
            .lock(&format!("{}/{}", input.bucket, input.key))
            .await;
        let (b, k) = (input.bucket, input.key);
        let old = self.run(move |e| e.index.delete_object(&b, &k)).await?;
        self.engine.blobs.remove(old);
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        if input.delete.objects.len() > 1000 {
            return Err(s3_error!(
                MalformedXML,
                "A DeleteObjects request may name at most 1000 keys"
            ));
        }
        self.require_bucket(&input.bucket).await?;
        let quiet = input.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for obj in input.delete.objects {
            if obj.version_id.as_deref().is_some_and(|v| v != "null") {
                errors.push(Error {
                    key: Some(obj.key),
                    code: Some("NotImplemented".to_owned()),
                    message: Some("versioning is not supported".to_owned()),
                    version_id: obj.version_id,
                });
                continue;
            }
            let _guard = self
                .locks
                .lock(&format!("{}/{}", input.bucket, obj.key))
                .await;
            let (b, k) = (input.bucket.clone(), obj.key.clone());
            let old = self.run(move |e| e.index.delete_object(&b, &k)).await?;
            self.engine.blobs.remove(old);
            if !quiet {
                deleted.push(DeletedObject {
                    key: Some(obj.key),
                    ..Default::default()
                });
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let input = req.input;
        let (src_bucket, src_key) = copy_source(&input.copy_source)?;
        let src = self
            .object(&src_bucket, &src_key)
            .await?
            .ok_or_else(|| s3_error!(NoSuchKey))?;
        copy_preconditions(
            &src,
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
        )?;
        self.require_bucket(&input.bucket).await?;
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        if src_bucket == input.bucket && src_key == input.key && !replace {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
            ));
        }
        let (blob, _, _) = self.copy_range(&src.blob, 0, src.size, None).await?;
        let mut meta = if replace {
            meta_of!(input)
        } else {
            src.meta.clone()
        };
        meta.checksums = src.meta.checksums.clone();
        meta.parts = src.meta.parts.clone();
        meta.upload_id = None;
        let modified_ms = now_ms();
        let row = ObjectRow {
            key: input.key.clone(),
            blob: blob.id().to_owned(),
            size: src.size,
            etag: src.etag.clone(),
            modified_ms,
            meta,
        };
        let _guard = self
            .locks
            .lock(&format!("{}/{}", input.bucket, input.key))
            .await;
        self.commit_object(&input.bucket, row, WriteCondition::default(), blob)
            .await?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(ETag::Strong(src.etag)),
                last_modified: Some(ts(modified_ms)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let enc = encoder(input.encoding_type.as_ref())?;
        let max = max_keys(input.max_keys)?;
        self.require_bucket(&input.bucket).await?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
        let marker = input.marker.clone().filter(|m| !m.is_empty());
        let b = input.bucket.clone();
        let (entries, truncated) = self
            .run(move |e| walk(e, &b, &prefix, delimiter.as_deref(), marker.as_deref(), max))
            .await?;
        let next_marker = truncated
            .then(|| entries.last().map(|e| entry_key(e).to_owned()))
            .flatten();
        let (contents, prefixes) = split_entries(entries, enc, true);
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            // v1 echoes Prefix as sent (botocore does not decode it there).
            prefix: Some(input.prefix.unwrap_or_default()),
            marker: Some(enc(input.marker.unwrap_or_default())),
            next_marker: next_marker.map(enc),
            max_keys: Some(i32::try_from(max).unwrap_or(1000)),
            delimiter: input.delimiter.filter(|d| !d.is_empty()).map(enc),
            is_truncated: Some(truncated),
            contents: (!contents.is_empty()).then_some(contents),
            common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        use base64::Engine as _;
        let input = req.input;
        let enc = encoder(input.encoding_type.as_ref())?;
        let max = max_keys(input.max_keys)?;
        self.require_bucket(&input.bucket).await?;
        let token = match input.continuation_token.as_deref() {
            None => None,
            Some(t) => Some(
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(t)
                    .ok()
                    .and_then(|raw| String::from_utf8(raw).ok())
                    .ok_or_else(|| {
                        s3_error!(
                            InvalidArgument,
                            "The continuation token provided is incorrect"
                        )
                    })?,
            ),
        };
        let after = match (token, input.start_after.clone().filter(|s| !s.is_empty())) {
            (Some(t), Some(s)) => Some(t.max(s)),
            (t, s) => t.or(s),
        };
        let prefix = input.prefix.clone().unwrap_or_default();
        let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
        let b = input.bucket.clone();
        let (entries, truncated) = self
            .run(move |e| walk(e, &b, &prefix, delimiter.as_deref(), after.as_deref(), max))
            .await?;
        let next = truncated
            .then(|| {
                entries
                    .last()
                    .map(|e| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(entry_key(e)))
            })
            .flatten();
        let count = entries.len();
        let (contents, prefixes) = split_entries(entries, enc, input.fetch_owner == Some(true));
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(enc(input.prefix.unwrap_or_default())),
            max_keys: Some(i32::try_from(max).unwrap_or(1000)),
            key_count: Some(i32::try_from(count).unwrap_or(i32::MAX)),
            continuation_token: input.continuation_token,
            next_continuation_token: next,
            is_truncated: Some(truncated),
            delimiter: input.delimiter.filter(|d| !d.is_empty()).map(enc),
            start_after: input.start_after.map(enc),
            contents: (!contents.is_empty()).then_some(contents),
            common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    // Multipart uploads.

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = req.input;
        if let Some(class) = &input.storage_class
            && class.as_str() != StorageClass::STANDARD
        {
            return Err(s3_error!(InvalidStorageClass));
        }
        let mut meta = meta_of!(input);
        if let Some(a) = &input.checksum_algorithm {
            let algorithm = a.as_str().to_ascii_uppercase();
            if Checksums::default().slot(&algorithm).is_none() {
                return Err(s3_error!(InvalidRequest, "Unsupported checksum algorithm"));
            }
            let full_only = algorithm == "CRC64NVME";
            let kind = match input
                .checksum_type
                .as_ref()
                .map(|t| t.as_str().to_ascii_uppercase())
            {
                None if full_only => ChecksumType::FULL_OBJECT.to_owned(),
                None => ChecksumType::COMPOSITE.to_owned(),
                Some(t) if t == ChecksumType::COMPOSITE && !full_only => t,
                // A whole-object value can only be a CRC (it is what S3 combines).
                Some(t) if t == ChecksumType::FULL_OBJECT && algorithm.starts_with("CRC") => t,
                Some(_) => {
                    return Err(s3_error!(
                        InvalidRequest,
                        "The checksum type is not supported with this algorithm"
                    ));
                }
            };
            meta.checksum_algorithm = Some(algorithm);
            meta.checksum_type = Some(kind);
        }
        let (algorithm, kind) = (meta.checksum_algorithm.clone(), meta.checksum_type.clone());
        let upload = UploadRow {
            id: Blobs::new_id(),
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            initiated_ms: now_ms(),
            meta,
            completed_etag: None,
        };
        let id = upload.id.clone();
        self.run(move |e| e.index.create_upload(&upload)).await?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(id),
            checksum_algorithm: algorithm.map(ChecksumAlgorithm::from),
            checksum_type: kind.map(ChecksumType::from),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let input = req.input;
        if !(1..=MAX_PARTS).contains(&input.part_number) {
            return Err(s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            ));
        }
        let (b, k, u) = (
            input.bucket.clone(),
            input.key.clone(),
            input.upload_id.clone(),
        );
        let upload = self.run(move |e| e.index.get_upload(&b, &k, &u)).await?;
        if upload.completed_etag.is_some() {
            return Err(s3_error!(NoSuchUpload));
        }
        let mut claimed = Checksums {
            crc32: input.checksum_crc32,
            crc32c: input.checksum_crc32c,
            sha1: input.checksum_sha1,
            sha256: input.checksum_sha256,
            crc64nvme: input.checksum_crc64nvme,
        };
        // The upload's algorithm is computed for every part, asked for or not.
        let algorithm = input.checksum_algorithm.clone().or_else(|| {
            upload
                .meta
                .checksum_algorithm
                .clone()
                .map(ChecksumAlgorithm::from)
        });
        let mut hasher = checksum_hasher(&claimed, algorithm.as_ref(), &req.headers)?;
        if let (Some(a), Some(_)) = (&upload.meta.checksum_algorithm, &input.checksum_algorithm) {
            enable_checksum(&mut hasher, a)?;
        }
        let written = self.write_body(input.body, hasher).await?;
        trailer_checksums(&mut claimed, req.trailing_headers.as_ref())?;
        verify(
            &written,
            input.content_md5.as_ref(),
            input.content_length,
            &claimed,
        )?;
        let etag = hex::encode(written.md5);
        let part = PartRow {
            number: input.part_number,
            blob: written.blob.id().to_owned(),
            size: written.size,
            etag: etag.clone(),
            modified_ms: now_ms(),
            meta: Meta {
                checksums: written.checksums.clone(),
                ..Meta::default()
            },
        };
        let dir = written
            .blob
            .path()
            .parent()
            .map(std::path::Path::to_path_buf);
        let upload_id = input.upload_id;
        let old = self
            .run(move |e| {
                if let Some(dir) = dir {
                    sync_dir(&dir).map_err(|e| {
                        DbError::Sqlite(rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
                    })?;
                }
                e.index.put_part(&upload_id, &part)
            })
            .await?;
        written.blob.keep();
        self.engine.blobs.remove(old);
        let c = written.checksums;
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(etag)),
            checksum_crc32: c.crc32,
            checksum_crc32c: c.crc32c,
            checksum_sha1: c.sha1,
            checksum_sha256: c.sha256,
            checksum_crc64nvme: c.crc64nvme,
            ..Default::default()
        }))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let input = req.input;
        if !(1..=MAX_PARTS).contains(&input.part_number) {
            return Err(s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            ));
        }
        let (b, k, u) = (
            input.bucket.clone(),
            input.key.clone(),
            input.upload_id.clone(),
        );
        let upload = self.run(move |e| e.index.get_upload(&b, &k, &u)).await?;
        if upload.completed_etag.is_some() {
            return Err(s3_error!(NoSuchUpload));
        }
        let (src_bucket, src_key) = copy_source(&input.copy_source)?;
        let src = self
            .object(&src_bucket, &src_key)
            .await?
            .ok_or_else(|| s3_error!(NoSuchKey))?;
        copy_preconditions(
            &src,
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
        )?;
        let (start, len) = match input.copy_source_range.as_deref() {
            Some(r) => parse_copy_range(r, src.size)?,
            None => (0, src.size),
        };
        let (blob, md5, checksums) = self
            .copy_range(
                &src.blob,
                start,
                len,
                upload.meta.checksum_algorithm.as_deref(),
            )
            .await?;
        let etag = hex::encode(md5);
        let modified_ms = now_ms();
        let part = PartRow {
            number: input.part_number,
            blob: blob.id().to_owned(),
            size: len,
            etag: etag.clone(),
            modified_ms,
            meta: Meta {
                checksums,
                ..Meta::default()
            },
        };
        let upload_id = input.upload_id;
        let old = self
            .run(move |e| e.index.put_part(&upload_id, &part))
            .await?;
        blob.keep();
        self.engine.blobs.remove(old);
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(ETag::Strong(etag)),
                last_modified: Some(ts(modified_ms)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        let (b, k, u) = (
            input.bucket.clone(),
            input.key.clone(),
            input.upload_id.clone(),
        );
        let upload = self.run(move |e| e.index.get_upload(&b, &k, &u)).await?;
        if upload.completed_etag.is_some() {
            return Err(s3_error!(NoSuchUpload));
        }
        let max = match input.max_parts {
            None => 1000,
            Some(n) if n < 0 => {
                return Err(s3_error!(InvalidArgument, "max-parts must not be negative"));
            }
            Some(n) => usize::try_from(n).unwrap_or(1000).min(1000),
        };
        let after = input.part_number_marker.unwrap_or(0).max(0);
        let u = input.upload_id.clone();
        let mut rows = self
            .run(move |e| e.index.list_parts(&u, after, max + 1))
            .await?;
        let truncated = rows.len() > max;
        rows.truncate(max);
        let next = truncated.then(|| rows.last().map(|p| p.number)).flatten();
        let parts = rows
            .into_iter()
            .map(|p| Part {
                part_number: Some(p.number),
                e_tag: Some(ETag::Strong(p.etag)),
                size: Some(i64_of(p.size)),
                last_modified: Some(ts(p.modified_ms)),
                checksum_crc32: p.meta.checksums.crc32,
                checksum_crc32c: p.meta.checksums.crc32c,
                checksum_sha1: p.meta.checksums.sha1,
                checksum_sha256: p.meta.checksums.sha256,
                checksum_crc64nvme: p.meta.checksums.crc64nvme,
            })
            .collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            parts: Some(parts),
            max_parts: Some(i32::try_from(max).unwrap_or(1000)),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: next,
            is_truncated: Some(truncated),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            ..Default::default()
        }))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        let enc = encoder(input.encoding_type.as_ref())?;
        let max = match input.max_uploads {
            None => 1000,
            Some(n) if n < 0 => {
                return Err(s3_error!(
                    InvalidArgument,
                    "max-uploads must not be negative"
                ));
            }
            Some(n) => usize::try_from(n).unwrap_or(1000).min(1000),
        };
        self.require_bucket(&input.bucket).await?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
        let key_marker = input.key_marker.clone().filter(|k| !k.is_empty());
        let id_marker = input
            .upload_id_marker
            .clone()
            .filter(|_| key_marker.is_some());
        let b = input.bucket.clone();
        let (uploads, prefixes, truncated) = self
            .run(move |e| {
                list_uploads(
                    e,
                    &b,
                    &prefix,
                    delimiter.as_deref(),
                    key_marker.as_deref(),
                    id_marker.as_deref(),
                    max,
                )
            })
            .await?;
        let (next_key, next_id) = if truncated {
            let last_upload = uploads.last().map(|u| (u.key.clone(), u.id.clone()));
            let last_prefix = prefixes.last().cloned();
            match (last_upload, last_prefix) {
                (Some((k, _)), Some(p)) if p > k => (Some(p), None),
                (Some((k, id)), _) => (Some(k), Some(id)),
                (None, Some(p)) => (Some(p), None),
                (None, None) => (None, None),
            }
        } else {
            (None, None)
        };
        let uploads = uploads
            .into_iter()
            .map(|u| MultipartUpload {
                key: Some(enc(u.key)),
                upload_id: Some(u.id),
                initiated: Some(ts(u.initiated_ms)),
                storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                ..Default::default()
            })
            .collect::<Vec<_>>();
        let prefixes = prefixes
            .into_iter()
            .map(|p| CommonPrefix {
                prefix: Some(enc(p)),
            })
            .collect::<Vec<_>>();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix.map(enc),
            delimiter: input.delimiter.map(enc),
            key_marker: Some(enc(input.key_marker.unwrap_or_default())),
            upload_id_marker: Some(input.upload_id_marker.unwrap_or_default()),
            next_key_marker: next_key.map(enc),
            next_upload_id_marker: next_id,
            max_uploads: Some(i32::try_from(max).unwrap_or(1000)),
            is_truncated: Some(truncated),
            uploads: Some(uploads),
            common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        let (b, k, u) = (input.bucket, input.key, input.upload_id);
        let blobs = self
            .run(move |e| {
                let upload = e.index.get_upload(&b, &k, &u)?;
                if upload.completed_etag.is_some() {
                    return Err(DbError::NoSuchUpload);
                }
                e.index.abort_upload(&u)
            })
            .await?;
        self.engine.blobs.remove(blobs);
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    #[expect(
        clippy::many_single_char_names,
        reason = "bucket, key and upload id, as b, k and u, beside the S3 names"
    )]
    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let location = location(&req.headers, &input.bucket, &input.key);
        let _guard = self
            .locks
            .lock(&format!("{}/{}", input.bucket, input.key))
            .await;
        let (b, k, u) = (
            input.bucket.clone(),
            input.key.clone(),
            input.upload_id.clone(),
        );
        let upload = self.run(move |e| e.index.get_upload(&b, &k, &u)).await?;
        let done = |etag: String, c: Checksums, kind: Option<String>| {
            Ok(S3Response::new(CompleteMultipartUploadOutput {
                bucket: Some(input.bucket.clone()),
                key: Some(input.key.clone()),
                e_tag: Some(ETag::Strong(etag)),
                location: Some(location.clone()),
                checksum_type: kind.filter(|_| !c.is_empty()).map(ChecksumType::from),
                checksum_crc32: c.crc32,
                checksum_crc32c: c.crc32c,
                checksum_sha1: c.sha1,
                checksum_sha256: c.sha256,
                checksum_crc64nvme: c.crc64nvme,
                ..Default::default()
            }))
        };
        if let Some(etag) = upload.completed_etag {
            // A retried complete (its answer was lost): S3 answers it again while the
            // object is still the one that upload made.
            let current = self.object(&input.bucket, &input.key).await?;
            return match current {
                Some(o) if o.meta.upload_id.as_deref() == Some(upload.id.as_str()) => {
                    done(etag, o.meta.checksums, o.meta.checksum_type)
                }
                _ => Err(s3_error!(NoSuchUpload)),
            };
        }
        let requested = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default();
        if requested.is_empty() {
            return Err(s3_error!(
                MalformedXML,
                "You must specify at least one part"
            ));
        }
        let u = upload.id.clone();
        let stored = self
            .run(move |e| e.index.list_parts(&u, 0, MAX_PARTS as usize))
            .await?;
        let mut chosen: Vec<PartRow> = Vec::with_capacity(requested.len());
        let mut previous = 0;
        for part in &requested {
            let number = part
                .part_number
                .ok_or_else(|| s3_error!(InvalidPart, "a part has no PartNumber"))?;
            if number <= previous {
                return Err(s3_error!(
                    InvalidPartOrder,
                    "The list of parts was not in ascending order"
                ));
            }
            previous = number;
            let found = stored
                .iter()
                .find(|p| p.number == number)
                .filter(|p| part.e_tag.as_ref().is_some_and(|e| etag_value(e) == p.etag))
                .ok_or_else(|| {
                    s3_error!(
                        InvalidPart,
                        "One or more of the specified parts could not be found or its ETag did not match"
                    )
                })?;
            if let Some(a) = &upload.meta.checksum_algorithm {
                let mut sent = Checksums {
                    crc32: part.checksum_crc32.clone(),
                    crc32c: part.checksum_crc32c.clone(),
                    sha1: part.checksum_sha1.clone(),
                    sha256: part.checksum_sha256.clone(),
                    crc64nvme: part.checksum_crc64nvme.clone(),
                };
                let mut stored = found.meta.checksums.clone();
                if let Some(want) = sent.slot(a).and_then(Option::take)
                    && stored.slot(a).and_then(Option::take).as_deref() != Some(want.as_str())
                {
                    return Err(s3_error!(
                        InvalidPart,
                        "The {a} checksum of part {number} does not match"
                    ));
                }
            }
            chosen.push(found.clone());
        }
        if let Some((_, init)) = chosen.split_last()
            && let Some(small) = init.iter().find(|p| p.size < MIN_PART_SIZE)
        {
            return Err(s3_error!(
                EntityTooSmall,
                "Part {} is smaller than the minimum allowed size (5 MiB)",
                small.number
            ));
        }
        let condition = write_condition(input.if_match.as_ref(), input.if_none_match.as_ref());
        if input.if_match.is_some() || input.if_none_match.is_some() {
            let current = self.object(&input.bucket, &input.key).await?;
            condition.check(current.as_ref().map(|o| o.etag.as_str()))?;
        }

        // Assemble into a new content file; nothing is visible until the commit.
        let blob = Pending::new(&self.engine);
        let target = blob.path();
        let sources: Vec<std::path::PathBuf> = chosen
            .iter()
            .map(|p| self.engine.blobs.path(&p.blob))
            .collect();
        let algorithm = upload.meta.checksum_algorithm.clone();
        let full_object = upload.meta.checksum_type.as_deref() == Some(ChecksumType::FULL_OBJECT);
        let mut hasher = s3s::checksum::ChecksumHasher::default();
        if let (true, Some(a)) = (full_object, &algorithm) {
            enable_checksum(&mut hasher, a)?;
        }
        let whole = tokio::task::spawn_blocking(move || -> std::io::Result<Checksums> {
            let mut out = std::fs::File::create(&target)?;
            let mut buf = vec![0u8; IO_BUF];
            for src in sources {
                let mut f = std::fs::File::open(src)?;
                if full_object {
                    loop {
                        let n = f.read(&mut buf)?;
                        if n == 0 {
                            break;
                        }
                        hasher.update(&buf[..n]);
                        out.write_all(&buf[..n])?;
                    }
                } else {
                    std::io::copy(&mut f, &mut out)?;
                }
            }
            out.sync_data()?;
            if let Some(dir) = target.parent() {
                sync_dir(dir)?;
            }
            Ok(checksums_of(hasher.finalize()))
        })
        .await
        .map_err(|e| s3_error!(InternalError, "assembly failed: {e}"))?
        .map_err(io_error)?;
        // The object's checksum (COMPOSITE: of the parts' checksums; FULL_OBJECT: of the
        // bytes), checked against the one the client sent.
        let mut object_checksums = Checksums::default();
        if let Some(a) = &algorithm {
            let value = if full_object {
                let mut w = whole;
                w.slot(a).and_then(Option::take).unwrap_or_default()
            } else {
                composite_checksum(a, &chosen)?
            };
            let mut claimed = Checksums {
                crc32: input.checksum_crc32.clone(),
                crc32c: input.checksum_crc32c.clone(),
                sha1: input.checksum_sha1.clone(),
                sha256: input.checksum_sha256.clone(),
                crc64nvme: input.checksum_crc64nvme.clone(),
            };
            if let Some(want) = claimed.slot(a).and_then(Option::take) {
                // A composite value may come with or without its `-<n>`.
                let base = value.split('-').next().unwrap_or_default();
                if want != value && want != base {
                    return Err(s3_error!(
                        BadDigest,
                        "The {a} you specified did not match the calculated checksum"
                    ));
                }
            }
            if let Some(slot) = object_checksums.slot(a) {
                *slot = Some(value);
            }
        }

        let mut md5s = Md5::new();
        for p in &chosen {
            let raw = hex::decode(&p.etag)
                .map_err(|_| s3_error!(InternalError, "a stored part ETag is not hex"))?;
            md5s.update(&raw);
        }
        let etag = format!("{}-{}", hex::encode(md5s.finalize()), chosen.len());
        let mut meta = upload.meta.clone();
        meta.parts = chosen.iter().map(|p| p.size).collect();
        meta.upload_id = Some(upload.id.clone());
        meta.checksums = object_checksums.clone();
        let row = ObjectRow {
            key: input.key.clone(),
            blob: blob.id().to_owned(),
            size: chosen.iter().map(|p| p.size).sum(),
            etag: etag.clone(),
            modified_ms: now_ms(),
            meta,
        };
        let (u, b) = (upload.id.clone(), input.bucket.clone());
        let garbage = self
            .run(move |e| e.index.complete_upload(&u, &b, &row, &condition, now_ms()))
            .await?;
        blob.keep();
        self.engine.blobs.remove(garbage);
        done(etag, object_checksums, upload.meta.checksum_type.clone())
    }
}

/// A part number the object does not have: 400 `InvalidPart`, as Ceph's s3-tests
/// expect (AWS documents 416 `InvalidPartNumber`).
fn invalid_part_number() -> S3Error {
    s3_error!(InvalidPart, "The requested partnumber is not satisfiable")
}

/// The byte span a GET/HEAD serves and the part count to report.
fn span_of(
    row: &ObjectRow,
    part_number: Option<i32>,
    range: Option<&Range>,
) -> S3Result<(std::ops::Range<u64>, Option<i32>)> {
    match (part_number, range) {
        (Some(_), Some(_)) => Err(s3_error!(
            InvalidRequest,
            "Cannot specify both Range header and partNumber query parameter"
        )),
        (Some(n), None) => {
            let idx = usize::try_from(n).ok().filter(|n| *n >= 1).map(|n| n - 1);
            if row.meta.parts.is_empty() {
                // A single-part object is its own part 1.
                return if idx == Some(0) {
                    Ok((0..row.size, Some(1)))
                } else {
                    Err(invalid_part_number())
                };
            }
            let idx = idx
                .filter(|i| *i < row.meta.parts.len())
                .ok_or_else(invalid_part_number)?;
            let start: u64 = row.meta.parts[..idx].iter().sum();
            let count = i32::try_from(row.meta.parts.len()).unwrap_or(i32::MAX);
            Ok((start..start + row.meta.parts[idx], Some(count)))
        }
        // No byte of an empty object can be satisfied (s3s would serve a suffix as 0..0).
        (None, Some(_)) if row.size == 0 => Err(invalid_range(row.size)),
        (None, Some(r)) => Ok((
            r.check(row.size).map_err(|_| invalid_range(row.size))?,
            None,
        )),
        (None, None) => Ok((0..row.size, None)),
    }
}

/// `InvalidRange` with `Content-Range: bytes */<size>` (RFC 9110), so a client learns the
/// size from the refusal without another request.
fn invalid_range(size: u64) -> S3Error {
    let mut err = s3_error!(InvalidRange);
    if let Ok(value) = http::HeaderValue::from_str(&format!("bytes */{size}")) {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::CONTENT_RANGE, value);
        err.set_headers(headers);
    }
    err
}

/// Unfinished uploads after the markers, rolled up at `delimiter` like a listing.
fn list_uploads(
    engine: &Engine,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    key_marker: Option<&str>,
    id_marker: Option<&str>,
    max: usize,
) -> Result<(Vec<UploadRow>, Vec<String>, bool), DbError> {
    let until = prefix_end(prefix.as_bytes());
    // Without an upload-id marker, everything at the key marker itself is skipped.
    let mut cursor: Option<(Vec<u8>, String)> = key_marker.map(|k| match id_marker {
        Some(id) => (k.as_bytes().to_vec(), id.to_owned()),
        None => (resume_point(k, prefix, delimiter), "\u{10FFFF}".to_owned()),
    });
    let mut uploads = Vec::new();
    let mut prefixes = Vec::new();
    if max == 0 {
        return Ok((uploads, prefixes, false));
    }
    loop {
        let want = max - uploads.len() - prefixes.len() + 1;
        let batch = engine.index.list_uploads(
            bucket,
            cursor.as_ref().map(|(k, id)| (k.as_slice(), id.as_str())),
            prefix.as_bytes(),
            &until,
            want,
        )?;
        let full = batch.len() == want;
        let mut jumped = false;
        for u in batch {
            if uploads.len() + prefixes.len() == max {
                return Ok((uploads, prefixes, true));
            }
            let rolled = delimiter.and_then(|d| {
                u.key[prefix.len()..]
                    .find(d)
                    .map(|pos| u.key[..prefix.len() + pos + d.len()].to_owned())
            });
            if let Some(cp) = rolled {
                cursor = Some((prefix_end(cp.as_bytes()), String::new()));
                prefixes.push(cp);
                jumped = true;
                break;
            }
            cursor = Some((u.key.as_bytes().to_vec(), u.id.clone()));
            uploads.push(u);
        }
        if !jumped && !full {
            return Ok((uploads, prefixes, false));
        }
    }
}
