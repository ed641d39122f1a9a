//! [`ObjectStore`] on aws-sdk-s3, for R2 or any S3-compatible endpoint (path-style).

use crate::config::R2Config;
use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream as SdkByteStream, DateTime};
use bytes::Bytes;
use filegate_core::Error;
use filegate_core::domain::{BucketName, ContentType, ObjectKey};
use filegate_core::error::Resource;
use filegate_core::ports::{
    ByteRange, ByteStream, CompletedPart, GetObject, ListPage, ObjectMeta, ObjectStore,
    ObjectSummary, PendingUpload, PutObject, StoredPart,
};
use futures::StreamExt;
use secrecy::ExposeSecret;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use time::OffsetDateTime;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Whole-operation budget (retries included) for everything but uploads. A GET's body is
/// streamed after the operation ends, so this does not cap downloads.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Uploads get [`OPERATION_TIMEOUT`] plus one second per this many bytes (256 KiB/s).
const MIN_UPLOAD_BYTES_PER_SEC: u64 = 256 * 1024;

mod multipart;

/// Objects in R2 (or another S3-compatible store) through aws-sdk-s3.
///
/// - ETags are returned as the store sends them minus the surrounding quotes
///   (`"9a0364b9…"` becomes `9a0364b9…`; multipart ones keep their `-N` suffix).
/// - Checksums are sent and validated only when an operation requires them
///   (`WhenRequired`): R2 and s3s-fs lack parts of the SDK's default checksum behaviour.
/// - Unreachable storage becomes [`Error::Unavailable`] after at most ~30 s
///   (3 s connect timeout, 3 attempts); 5xx answers too.
/// - A HEAD cannot tell a missing key from a missing bucket (404 with no body), so a 404
///   on `head` costs one extra HeadBucket to report the right [`Resource`].
/// - `put` streams the body (never buffered) with an upload budget of 30 s + 1 s per
///   256 KiB; its result has no `last_modified` (S3's PUT response carries none).
/// - `get` reports `range` from the response's `Content-Range`; a store that ignores the
///   range gives `None` and the whole body.
#[derive(Clone)]
pub struct S3ObjectStore {
    client: Client,
}

impl std::fmt::Debug for S3ObjectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3ObjectStore").finish_non_exhaustive()
    }
}

impl S3ObjectStore {
    /// Builds the client; no network call is made.
    ///
    /// # Errors
    /// [`Error::Validation`] on field `endpoint` when the endpoint is not usable.
    pub fn new(config: &R2Config) -> Result<Self, Error> {
        let credentials = Credentials::new(
            config.access_key_id.clone(),
            config.secret_access_key.expose_secret().to_owned(),
            None,
            None,
            "filegate",
        );
        let s3_config = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .endpoint_url(config.endpoint_url()?)
            .credentials_provider(credentials)
            .force_path_style(true)
            .timeout_config(timeouts(OPERATION_TIMEOUT))
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        Ok(Self {
            client: Client::from_conf(s3_config),
        })
    }

    /// Creates the bucket unless it exists (and is ours).
    ///
    /// # Errors
    /// [`Error::Conflict`] when the name belongs to someone else; [`Error::Unavailable`];
    /// [`Error::Internal`] otherwise (e.g. rejected credentials).
    pub async fn ensure_bucket(&self, bucket: &BucketName) -> Result<(), Error> {
        match self.ping(bucket).await {
            Err(Error::NotFound(Resource::Bucket)) => {}
            other => return other,
        }
        let created = self
            .client
            .create_bucket()
            .bucket(bucket.as_str())
            .send()
            .await;
        match created {
            Ok(_) => {
                tracing::info!(%bucket, "created bucket");
                Ok(())
            }
            Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => Ok(()),
            // Lost a race with another creator, or the name is taken: ours if we can head it.
            Err(e) if e.code() == Some("BucketAlreadyExists") => match self.ping(bucket).await {
                Ok(()) => Ok(()),
                Err(_) => Err(Error::Conflict { what: "bucket" }),
            },
            Err(e) => Err(map_error(e, Resource::Bucket)),
        }
    }

    /// Checks that the bucket exists and the credentials work (HeadBucket).
    ///
    /// # Errors
    /// [`Error::NotFound`]`(Bucket)`; [`Error::Unavailable`]; [`Error::Internal`] otherwise.
    pub async fn ping(&self, bucket: &BucketName) -> Result<(), Error> {
        self.client
            .head_bucket()
            .bucket(bucket.as_str())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| map_error(e, Resource::Bucket))
    }
}

fn timeouts(operation: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_timeout(operation)
        .build()
}

#[async_trait]
impl ObjectStore for S3ObjectStore {
    async fn head(&self, bucket: &BucketName, key: &ObjectKey) -> Result<ObjectMeta, Error> {
        let out = self
            .client
            .head_object()
            .bucket(bucket.as_str())
            .key(key.as_str())
            .send()
            .await;
        match out {
            Ok(out) => Ok(ObjectMeta {
                size: non_negative(out.content_length),
                etag: out.e_tag.as_deref().map(unquote),
                content_type: out.content_type,
                last_modified: out.last_modified.as_ref().and_then(to_offset),
            }),
            Err(e) => match map_error(e, Resource::Object) {
                // A HEAD 404 has no body to say which is missing.
                Error::NotFound(Resource::Object) => match self.ping(bucket).await {
                    Err(bucket_err @ Error::NotFound(Resource::Bucket)) => Err(bucket_err),
                    _ => Err(Error::NotFound(Resource::Object)),
                },
                other => Err(other),
            },
        }
    }

    async fn get(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        range: Option<ByteRange>,
    ) -> Result<GetObject, Error> {
        let header = match range.map(range_header) {
            None => None,
            Some(Ok(header)) => Some(header),
            // A reversed range or an empty suffix: no object satisfies it.
            Some(Err(Unsatisfiable)) => return Err(self.unsatisfiable(bucket, key, None).await),
        };
        let out = match self
            .client
            .get_object()
            .bucket(bucket.as_str())
            .key(key.as_str())
            .set_range(header)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if is_invalid_range(&e) => {
                let told = e
                    .raw_response()
                    .and_then(|r| told_size(r.headers().get("content-range"), r.body().bytes()));
                return Err(self.unsatisfiable(bucket, key, told).await);
            }
            Err(e) => return Err(map_error(e, Resource::Object)),
        };

        let length = non_negative(out.content_length);
        let (range, size) = match out.content_range.as_deref() {
            Some(raw) => {
                let (first, last, total) = parse_content_range(raw)
                    .ok_or_else(|| Error::internal(format!("unparsable Content-Range {raw:?}")))?;
                (Some((first, last)), total.unwrap_or(length))
            }
            // The store sent the whole object (e.g. it ignored the range).
            None => (None, length),
        };
        let meta = ObjectMeta {
            size,
            etag: out.e_tag.as_deref().map(unquote),
            content_type: out.content_type,
            last_modified: out.last_modified.as_ref().and_then(to_offset),
        };
        Ok(GetObject {
            meta,
            range,
            body: body_stream(out.body),
        })
    }

    async fn put(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        object: PutObject,
    ) -> Result<ObjectMeta, Error> {
        let declared = object.content_length;
        let length = i64::try_from(declared)
            .map_err(|_| Error::invalid("body", "content length is too large"))?;
        let failure = Arc::new(Mutex::new(None));
        let body = LengthCheckedBody {
            stream: Mutex::new(object.body),
            remaining: declared,
            held_back: None,
            ended: false,
            failure: Arc::clone(&failure),
        };
        let budget = OPERATION_TIMEOUT + Duration::from_secs(declared / MIN_UPLOAD_BYTES_PER_SEC);
        let content_type = object.content_type.map(|c| c.as_str().to_owned());
        let result = self
            .client
            .put_object()
            .bucket(bucket.as_str())
            .key(key.as_str())
            .content_length(length)
            .set_content_type(content_type.clone())
            .body(SdkByteStream::from_body_1_x(body))
            .customize()
            .config_override(aws_sdk_s3::config::Builder::new().timeout_config(timeouts(budget)))
            .send()
            .await;
        // A failure of our own body explains the SDK's (dispatch) error better.
        let body_failure = failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match (result, body_failure) {
            (_, Some(err)) => Err(err),
            (Ok(out), None) => Ok(ObjectMeta {
                size: declared,
                etag: out.e_tag.as_deref().map(unquote),
                content_type,
                last_modified: None,
            }),
            (Err(e), None) => Err(map_error(e, Resource::Bucket)),
        }
    }

    async fn delete(&self, bucket: &BucketName, key: &ObjectKey) -> Result<(), Error> {
        let result = self
            .client
            .delete_object()
            .bucket(bucket.as_str())
            .key(key.as_str())
            .send()
            .await;
        match result.map_err(|e| map_error(e, Resource::Bucket)) {
            // S3 answers 204 for a missing key; some stores say NoSuchKey instead.
            Ok(_) | Err(Error::NotFound(Resource::Object)) => Ok(()),
            Err(other) => Err(other),
        }
    }

    async fn list(
        &self,
        bucket: &BucketName,
        prefix: Option<String>,
        continuation: Option<String>,
        max_keys: u32,
    ) -> Result<ListPage, Error> {
        let max_keys = i32::try_from(max_keys.clamp(1, 1000)).unwrap_or(1000);
        let out = self
            .client
            .list_objects_v2()
            .bucket(bucket.as_str())
            .set_prefix(prefix.filter(|p| !p.is_empty()))
            .set_continuation_token(continuation)
            .max_keys(max_keys)
            .send()
            .await
            .map_err(|e| map_error(e, Resource::Bucket))?;
        let objects = out
            .contents
            .unwrap_or_default()
            .into_iter()
            .filter_map(|o| {
                Some(ObjectSummary {
                    key: o.key?,
                    size: non_negative(o.size),
                    etag: o.e_tag.as_deref().map(unquote),
                    last_modified: o.last_modified.as_ref().and_then(to_offset),
                })
            })
            .collect();
        let next = if out.is_truncated.unwrap_or(false) {
            out.next_continuation_token
        } else {
            None
        };
        Ok(ListPage { objects, next })
    }

    async fn create_multipart(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        content_type: Option<ContentType>,
    ) -> Result<String, Error> {
        self.mp_create(bucket, key, content_type).await
    }

    async fn upload_part(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        part: PutObject,
    ) -> Result<String, Error> {
        self.mp_upload_part(bucket, key, upload_id, part_number, part)
            .await
    }

    async fn list_parts(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        upload_id: &str,
    ) -> Result<Vec<StoredPart>, Error> {
        self.mp_list_parts(bucket, key, upload_id).await
    }

    async fn complete_multipart(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<(), Error> {
        self.mp_complete(bucket, key, upload_id, parts).await
    }

    async fn abort_multipart(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        upload_id: &str,
    ) -> Result<(), Error> {
        self.mp_abort(bucket, key, upload_id).await
    }

    async fn list_multipart_uploads(
        &self,
        bucket: &BucketName,
        initiated_before: OffsetDateTime,
    ) -> Result<Vec<PendingUpload>, Error> {
        self.mp_list_uploads(bucket, initiated_before).await
    }
}

fn non_negative(n: Option<i64>) -> u64 {
    n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0)
}

fn unquote(etag: &str) -> String {
    etag.strip_prefix('"')
        .and_then(|e| e.strip_suffix('"'))
        .unwrap_or(etag)
        .to_owned()
}

fn to_offset(t: &DateTime) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(t.as_nanos()).ok()
}

impl S3ObjectStore {
    /// The port's 416 error, with the object's size: the one the refusing store told
    /// (`told`), else a HEAD's (some stores say nothing; a reversed range never reaches one).
    async fn unsatisfiable(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        told: Option<u64>,
    ) -> Error {
        if let Some(size) = told {
            return Error::RangeNotSatisfiable { size };
        }
        match self.head(bucket, key).await {
            Ok(meta) => Error::RangeNotSatisfiable { size: meta.size },
            Err(e) => e,
        }
    }
}

/// A range no object satisfies.
#[derive(Debug)]
struct Unsatisfiable;

fn range_header(range: ByteRange) -> Result<String, Unsatisfiable> {
    match range {
        ByteRange::FromTo(first, last) if first <= last => Ok(format!("bytes={first}-{last}")),
        ByteRange::From(first) => Ok(format!("bytes={first}-")),
        ByteRange::Suffix(n) if n > 0 => Ok(format!("bytes=-{n}")),
        _ => Err(Unsatisfiable),
    }
}

fn is_invalid_range<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    err.code() == Some("InvalidRange")
        || err
            .raw_response()
            .is_some_and(|r| r.status().as_u16() == 416)
}

/// The object's size as a 416 tells it: `Content-Range: bytes */<size>`, or S3's
/// `<ActualObjectSize>` in the error body.
fn told_size(content_range: Option<&str>, body: Option<&[u8]>) -> Option<u64> {
    let from_header = content_range
        .and_then(|v| v.trim().strip_prefix("bytes */"))
        .and_then(|n| n.trim().parse().ok());
    from_header.or_else(|| {
        let body = std::str::from_utf8(body?).ok()?;
        let (_, rest) = body.split_once("<ActualObjectSize>")?;
        let (n, _) = rest.split_once("</ActualObjectSize>")?;
        n.trim().parse().ok()
    })
}

/// `bytes first-last/total` (total may be `*`).
fn parse_content_range(raw: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = raw.trim().strip_prefix("bytes")?.trim_start();
    let (span, total) = rest.split_once('/')?;
    let (first, last) = span.trim().split_once('-')?;
    let (first, last) = (first.parse().ok()?, last.parse().ok()?);
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    (first <= last).then_some((first, last, total))
}

fn body_stream(body: SdkByteStream) -> ByteStream {
    futures::stream::unfold(Some(body), |state| async move {
        let mut body = state?;
        match body.next().await? {
            Ok(chunk) => Some((Ok(chunk), Some(body))),
            // The connection broke mid-body; stop after reporting it.
            Err(e) => Some((Err(Error::unavailable(e)), None)),
        }
    })
    .boxed()
}

/// The upload body: passes chunks through while checking the stream yields exactly the
/// declared number of bytes. On a mismatch it fails the request *before* the last
/// declared byte is sent (the chunk completing the length is held back until the stream
/// has ended), so the store never receives a complete body and stores nothing.
struct LengthCheckedBody {
    /// Mutex only to make the body `Sync` as the SDK requires; never contended.
    stream: Mutex<ByteStream>,
    remaining: u64,
    held_back: Option<Bytes>,
    ended: bool,
    /// Why the body failed, read by `put` after the SDK returns.
    failure: Arc<Mutex<Option<Error>>>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl LengthCheckedBody {
    fn fail(&mut self, err: Error) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let message = err.to_string();
        self.ended = true;
        *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(err);
        Poll::Ready(Some(Err(message.into())))
    }
}

impl http_body::Body for LengthCheckedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            let stream = this
                .stream
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner);
            match ready!(stream.poll_next_unpin(cx)) {
                Some(Ok(chunk)) if chunk.is_empty() => {}
                Some(Ok(chunk)) => {
                    let len = chunk.len() as u64;
                    if this.held_back.is_some() || len > this.remaining {
                        return this.fail(Error::invalid(
                            "body",
                            "stream is longer than the declared content length",
                        ));
                    }
                    this.remaining -= len;
                    if this.remaining == 0 {
                        this.held_back = Some(chunk);
                    } else {
                        return Poll::Ready(Some(Ok(http_body::Frame::data(chunk))));
                    }
                }
                Some(Err(e)) => return this.fail(e),
                None if this.remaining > 0 => {
                    let remaining = this.remaining;
                    return this.fail(Error::invalid(
                        "body",
                        format!(
                            "stream ended {remaining} bytes short of the declared content length"
                        ),
                    ));
                }
                None => {
                    this.ended = true;
                    return Poll::Ready(
                        this.held_back.take().map(|c| Ok(http_body::Frame::data(c))),
                    );
                }
            }
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let held = self.held_back.as_ref().map_or(0, |c| c.len() as u64);
        http_body::SizeHint::with_exact(self.remaining + held)
    }
}

/// Maps an SDK error. `missing` is what a bare 404 (no error code) means for this call.
fn map_error<E>(err: SdkError<E, HttpResponse>, missing: Resource) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    if err.code() == Some("NoSuchUpload") {
        return Error::NotFound(Resource::Upload);
    }
    if matches!(
        err.code(),
        Some("InvalidPart" | "InvalidPartOrder" | "EntityTooSmall")
    ) {
        return Error::invalid(
            "parts",
            format!(
                "storage refused the part list: {}",
                err.message().unwrap_or("invalid part")
            ),
        );
    }
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            return Error::unavailable(err);
        }
        SdkError::ServiceError(_) | SdkError::ResponseError(_) => {}
        _ => return Error::internal(err),
    }
    match (err.code(), status) {
        (Some("NoSuchBucket"), _) => Error::NotFound(Resource::Bucket),
        (Some("NoSuchKey"), _) => Error::NotFound(Resource::Object),
        (_, Some(404)) => Error::NotFound(missing),
        (Some("SlowDown" | "ServiceUnavailable" | "InternalError"), _)
        | (_, Some(500 | 502 | 503 | 504)) => Error::unavailable(err),
        _ => Error::internal(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_416_tells_the_size_in_its_header_or_body() {
        assert_eq!(told_size(Some("bytes */20"), None), Some(20));
        let xml = b"<Error><Code>InvalidRange</Code><RangeRequested>bytes=30-</RangeRequested><ActualObjectSize>20</ActualObjectSize></Error>";
        assert_eq!(told_size(None, Some(xml)), Some(20));
        assert_eq!(told_size(Some("bytes 0-1/20"), Some(b"<Error/>")), None);
        assert_eq!(told_size(None, None), None);
    }

    #[test]
    fn content_ranges_are_parsed() {
        assert_eq!(
            parse_content_range("bytes 0-9/100"),
            Some((0, 9, Some(100)))
        );
        assert_eq!(parse_content_range("bytes 5-5/*"), Some((5, 5, None)));
        assert_eq!(parse_content_range("bytes 9-0/100"), None);
        assert_eq!(parse_content_range("items 0-9/100"), None);
    }

    #[test]
    fn ranges_become_headers() {
        assert_eq!(
            range_header(ByteRange::FromTo(0, 9)).ok().as_deref(),
            Some("bytes=0-9")
        );
        assert_eq!(
            range_header(ByteRange::From(7)).ok().as_deref(),
            Some("bytes=7-")
        );
        assert_eq!(
            range_header(ByteRange::Suffix(3)).ok().as_deref(),
            Some("bytes=-3")
        );
        assert!(range_header(ByteRange::FromTo(5, 4)).is_err());
        assert!(range_header(ByteRange::Suffix(0)).is_err());
    }

    #[test]
    fn etags_lose_only_their_quotes() {
        assert_eq!(unquote("\"abc\""), "abc");
        assert_eq!(unquote("\"abc-2\""), "abc-2");
        assert_eq!(unquote("abc"), "abc");
    }
}
