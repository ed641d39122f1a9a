//! Prometheus metrics, served at `GET /metrics` in the text exposition format 0.0.4.
//!
//! Every app owns its [`Metrics`] (its own registry, in [`AppState`](crate::AppState)), so
//! several servers in one process (the end-to-end tests) never share or clash.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `filegate_http_requests_total` | counter | `method`, `route`, `status` |
//! | `filegate_http_request_duration_seconds` | histogram | `method`, `route`, `status` |
//! | `filegate_presigned_urls_total` | counter | `method` (`PUT` upload, `GET` download) |
//! | `filegate_upload_bytes_total` | counter | (bytes streamed to storage through filegate) |
//! | `filegate_download_bytes_total` | counter | (bytes streamed from storage through filegate) |
//! | `filegate_storage_errors_total` | counter | `operation` (`head`, `get`, `put`, `delete`, `list`, `ping`) |
//! | `filegate_etag_mismatches_total` | counter | (managed reads refused: storage's etag is not the row's) |
//! | `filegate_open_storage_streams` | gauge | (download bodies being streamed to clients now) |
//!
//! `route` is the matched route template (`/api/v1/media/{id}/sign-download`), never the
//! raw path; a request that matched no route is `unmatched`. Scrapes of `/metrics` are
//! not counted, so reading the metrics does not change them.

use async_trait::async_trait;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use filegate_core::Error;
use filegate_core::domain::{BucketName, ContentType, ObjectKey};
use filegate_core::ports::{
    ByteRange, CompletedPart, GetObject, ListPage, ObjectMeta, ObjectStore, PendingUpload,
    PutObject, StoredPart,
};
use futures::StreamExt;
use http::{HeaderValue, Method, StatusCode, header};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;
use std::time::Instant;
use time::OffsetDateTime;

/// The route label of a request that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";
/// The route serving the metrics; not counted.
pub const METRICS_ROUTE: &str = "/metrics";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

type HistogramFamily = Family<HttpLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms … ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// One app's metrics and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: HistogramFamily,
    presigns: Family<MethodLabels, Counter>,
    upload_bytes: Counter,
    download_bytes: Counter,
    storage_errors: Family<OperationLabels, Counter>,
    etag_mismatches: Counter,
    listing_pages: Family<PageLabels, Counter>,
    open_streams: Gauge,
    db_pool: Family<PoolLabels, Gauge>,
    /// Reads the media database pool at scrape time.
    pool_probe: std::sync::OnceLock<PoolProbe>,
}

/// Returns (open, idle, waiting) connections of a database pool.
pub type PoolProbe = Box<dyn Fn() -> (usize, usize, usize) + Send + Sync>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PageLabels {
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: &'static str,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("filegate");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, matched route and status",
            http_requests.clone(),
        );
        let http_duration: HistogramFamily = Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request, by method, matched route and status",
            Unit::Seconds,
            http_duration.clone(),
        );
        let presigns = Family::<MethodLabels, Counter>::default();
        registry.register(
            "presigned_urls",
            "Presigned URLs issued, by HTTP method (PUT upload, GET download)",
            presigns.clone(),
        );
        let upload_bytes = Counter::default();
        registry.register_with_unit(
            "upload",
            "Bytes streamed to storage through filegate (presigned uploads bypass it)",
            Unit::Bytes,
            upload_bytes.clone(),
        );
        let download_bytes = Counter::default();
        registry.register_with_unit(
            "download",
            "Bytes streamed from storage through filegate (presigned downloads bypass it)",
            Unit::Bytes,
            download_bytes.clone(),
        );
        let storage_errors = Family::<OperationLabels, Counter>::default();
        registry.register(
            "storage_errors",
            "Object storage operations that failed (unreachable or erroring storage), by operation",
            storage_errors.clone(),
        );
        let etag_mismatches = Counter::default();
        registry.register(
            "etag_mismatches",
            "Managed reads refused (503) because storage held other bytes than the object's row describes",
            etag_mismatches.clone(),
        );
        let listing_pages = Family::<PageLabels, Counter>::default();
        registry.register(
            "listing_pages",
            "Media listing pages answered, by source: kept (rendered already, nothing committed since) or read (from the database)",
            listing_pages.clone(),
        );
        let open_streams = Gauge::default();
        registry.register(
            "open_storage_streams",
            "Download bodies streaming from storage to a client now (dropped on completion or disconnect)",
            open_streams.clone(),
        );
        let db_pool = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "Media database pool connections by state (open, idle, waiting callers), read at scrape time",
            db_pool.clone(),
        );
        Self {
            registry,
            open_streams,
            db_pool,
            pool_probe: std::sync::OnceLock::new(),
            http_requests,
            http_duration,
            presigns,
            upload_bytes,
            download_bytes,
            storage_errors,
            etag_mismatches,
            listing_pages,
        }
    }

    /// Reports the media database pool in `filegate_db_pool_connections`; set once at start.
    pub fn set_pool_probe(&self, probe: PoolProbe) {
        let _ = self.pool_probe.set(probe);
    }

    /// The Prometheus text exposition (format 0.0.4).
    #[must_use]
    pub fn render(&self) -> String {
        if let Some(probe) = self.pool_probe.get() {
            let (open, idle, waiting) = probe();
            for (state, n) in [("open", open), ("idle", idle), ("waiting", waiting)] {
                self.db_pool
                    .get_or_create(&PoolLabels { state })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        let mut out = String::new();
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::error!(error = %e, "could not encode the metrics");
        }
        out
    }

    /// Records one answered request.
    pub fn observe_request(&self, method: &Method, route: &str, status: StatusCode, seconds: f64) {
        let labels = HttpLabels {
            method: method_label(method),
            route: route.to_owned(),
            status: status.as_u16(),
        };
        self.http_requests.get_or_create(&labels).inc();
        self.http_duration.get_or_create(&labels).observe(seconds);
    }

    /// Records one presigned URL issued for `method` (`PUT` or `GET`).
    pub fn presign_issued(&self, method: &str) {
        let method = match method {
            "PUT" => "PUT",
            "GET" => "GET",
            "POST" => "POST",
            "DELETE" => "DELETE",
            "HEAD" => "HEAD",
            _ => "other",
        };
        self.presigns.get_or_create(&MethodLabels { method }).inc();
    }

    pub fn add_upload_bytes(&self, n: u64) {
        self.upload_bytes.inc_by(n);
    }

    pub fn add_download_bytes(&self, n: u64) {
        self.download_bytes.inc_by(n);
    }

    /// Counts one download body as open until the guard is dropped.
    #[must_use]
    pub fn open_stream(&self) -> OpenStream {
        self.open_streams.inc();
        OpenStream(self.open_streams.clone())
    }

    /// Download bodies open now.
    #[must_use]
    pub fn open_streams(&self) -> i64 {
        self.open_streams.get()
    }

    /// Records a managed read refused because storage's etag was not the row's.
    pub fn etag_mismatch(&self) {
        self.etag_mismatches.inc();
    }

    /// Records a media listing page answered from the kept pages (`kept`) or the database.
    pub fn listing_page(&self, kept: bool) {
        let source = if kept { "kept" } else { "read" };
        self.listing_pages
            .get_or_create(&PageLabels { source })
            .inc();
    }

    /// Records a failed storage operation (`head`, `get`, `put`, `delete`, `list`, `ping`).
    pub fn storage_error(&self, operation: &'static str) {
        self.storage_errors
            .get_or_create(&OperationLabels { operation })
            .inc();
    }
}

/// One open download body of [`Metrics::open_stream`]; dropping it closes it.
#[derive(Debug)]
pub struct OpenStream(Gauge);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A fixed set of label values, so odd methods cannot grow the series without bound.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// Middleware counting and timing every request by matched route and status. Added with
/// `Router::layer`, so it runs after routing and sees [`MatchedPath`].
pub async fn track_requests(
    State(metrics): State<Arc<Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str)
        .to_owned();
    if route == METRICS_ROUTE {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let started = Instant::now();
    let res = next.run(req).await;
    metrics.observe_request(
        &method,
        &route,
        res.status(),
        started.elapsed().as_secs_f64(),
    );
    res
}

/// `GET /metrics` body and content type.
#[must_use]
pub fn exposition(metrics: &Metrics) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(prometheus_client::encoding::prometheus_text::CONTENT_TYPE),
        )],
        metrics.render(),
    )
        .into_response()
}

/// An [`ObjectStore`] that counts failed operations and the bytes streamed through it.
pub struct MeteredObjectStore {
    inner: Arc<dyn ObjectStore>,
    metrics: Arc<Metrics>,
}

impl MeteredObjectStore {
    #[must_use]
    pub fn new(inner: Arc<dyn ObjectStore>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }

    fn record<T>(&self, operation: &'static str, result: Result<T, Error>) -> Result<T, Error> {
        if let Err(e) = &result
            && is_storage_failure(e)
        {
            self.metrics.storage_error(operation);
        }
        result
    }
}

/// A missing key or a bad request is the caller's, not a storage failure.
fn is_storage_failure(e: &Error) -> bool {
    !matches!(e, Error::NotFound(_) | Error::Validation(_))
}

impl std::fmt::Debug for MeteredObjectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeteredObjectStore").finish_non_exhaustive()
    }
}

#[async_trait]
impl ObjectStore for MeteredObjectStore {
    async fn head(&self, bucket: &BucketName, key: &ObjectKey) -> Result<ObjectMeta, Error> {
        let result = self.inner.head(bucket, key).await;
        self.record("head", result)
    }

    async fn get(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        range: Option<ByteRange>,
    ) -> Result<GetObject, Error> {
        let mut out = self.record("get", self.inner.get(bucket, key, range).await)?;
        let metrics = Arc::clone(&self.metrics);
        out.body = out
            .body
            .inspect(move |chunk| match chunk {
                Ok(bytes) => metrics.add_download_bytes(bytes.len() as u64),
                Err(e) if is_storage_failure(e) => metrics.storage_error("get"),
                Err(_) => {}
            })
            .boxed();
        Ok(out)
    }

    async fn put(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        mut object: PutObject,
    ) -> Result<ObjectMeta, Error> {
        let metrics = Arc::clone(&self.metrics);
        object.body = object
            .body
            .inspect(move |chunk| {
                if let Ok(bytes) = chunk {
                    metrics.add_upload_bytes(bytes.len() as u64);
                }
            })
            .boxed();
        let result = self.inner.put(bucket, key, object).await;
        self.record("put", result)
    }

    async fn delete(&self, bucket: &BucketName, key: &ObjectKey) -> Result<(), Error> {
        let result = self.inner.delete(bucket, key).await;
        self.record("delete", result)
    }

    async fn list(
        &self,
        bucket: &BucketName,
        prefix: Option<String>,
        continuation: Option<String>,
        max_keys: u32,
    ) -> Result<ListPage, Error> {
        let result = self
            .inner
            .list(bucket, prefix, continuation, max_keys)
            .await;
        self.record("list", result)
    }

    async fn create_multipart(
        &self,
        b: &BucketName,
        k: &ObjectKey,
        ct: Option<ContentType>,
    ) -> Result<String, Error> {
        let result = self.inner.create_multipart(b, k, ct).await;
        self.record("create_multipart", result)
    }
    async fn upload_part(
        &self,
        b: &BucketName,
        k: &ObjectKey,
        id: &str,
        n: u32,
        part: PutObject,
    ) -> Result<String, Error> {
        let result = self.inner.upload_part(b, k, id, n, part).await;
        self.record("upload_part", result)
    }
    async fn list_parts(
        &self,
        b: &BucketName,
        k: &ObjectKey,
        id: &str,
    ) -> Result<Vec<StoredPart>, Error> {
        let result = self.inner.list_parts(b, k, id).await;
        self.record("list_parts", result)
    }
    async fn complete_multipart(
        &self,
        b: &BucketName,
        k: &ObjectKey,
        id: &str,
        parts: &[CompletedPart],
    ) -> Result<(), Error> {
        let result = self.inner.complete_multipart(b, k, id, parts).await;
        self.record("complete_multipart", result)
    }
    async fn abort_multipart(&self, b: &BucketName, k: &ObjectKey, id: &str) -> Result<(), Error> {
        let result = self.inner.abort_multipart(b, k, id).await;
        self.record("abort_multipart", result)
    }
    async fn list_multipart_uploads(
        &self,
        b: &BucketName,
        before: OffsetDateTime,
    ) -> Result<Vec<PendingUpload>, Error> {
        let result = self.inner.list_multipart_uploads(b, before).await;
        self.record("list_multipart_uploads", result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text_with_the_documented_names() {
        let m = Metrics::new();
        m.observe_request(
            &Method::POST,
            "/api/v1/media/sign-upload",
            StatusCode::OK,
            0.01,
        );
        m.presign_issued("PUT");
        m.add_upload_bytes(5);
        m.storage_error("ping");
        let text = m.render();
        for needle in [
            "# TYPE filegate_http_requests_total counter",
            r#"filegate_http_requests_total{method="POST",route="/api/v1/media/sign-upload",status="200"} 1"#,
            "# TYPE filegate_http_request_duration_seconds histogram",
            r#"filegate_http_request_duration_seconds_count{method="POST",route="/api/v1/media/sign-upload",status="200"} 1"#,
            r#"filegate_presigned_urls_total{method="PUT"} 1"#,
            "filegate_upload_bytes_total 5",
            "filegate_download_bytes_total 0",
            r#"filegate_storage_errors_total{operation="ping"} 1"#,
        ] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
    }

    #[test]
    fn two_apps_keep_separate_counts() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.presign_issued("GET");
        assert!(
            a.render()
                .contains(r#"filegate_presigned_urls_total{method="GET"} 1"#)
        );
        assert!(!b.render().contains(r#"method="GET""#));
    }
}
