//! A loopback S3-compatible endpoint over a storage engine filegate owns: [`s3s`] for the
//! protocol (routing, SigV4, XML), an SQLite index plus immutable content files for
//! storage (see `engine` and docs/EMBEDDED-STORE.md), hyper for HTTP/1.1, and a
//! `tower_http` CORS layer in front. It gives filegate a cloud-free default, real S3
//! behaviour in tests, and a store small deployments can keep in production.
//!
//! - One key pair ([`s3s::auth::SimpleAuth`]): SigV4 `Authorization` headers and presigned
//!   query-string URLs are both verified. Anonymous requests get 403. Path-style only
//!   (`http://127.0.0.1:<port>/<bucket>/<key>`). HTTP/1.1 only.
//! - Scope is what R2 supports: object CRUD, CopyObject, ListObjects v1/v2, multipart
//!   (with ListParts and ListMultipartUploads), conditional reads and writes, checksums
//!   (CRC32, CRC32C, SHA-1, SHA-256; CRC64NVME too). Everything else is 501.
//! - A write is checked whole (length, Content-MD5, `x-amz-checksum-*`, conditions)
//!   before it becomes visible; a refused or interrupted one leaves the old object.
//! - A folder written by the previous s3s-fs based endpoint is imported on start.
//!
//! What s3s 0.14 does itself, before an operation runs:
//! - Expiry: a request after `X-Amz-Date + X-Amz-Expires` gets 403 `AccessDenied`
//!   ("Request has expired"), checked before the signature. An `X-Amz-Date` more than
//!   15 min in the future gets 403 `RequestTimeTooSkewed`. s3s accepts any `u32` expiry
//!   and answers 400 to a negative one; `PresignGuard` refuses both more than 7 days
//!   (604800 s) and a malformed value with 403 `AccessDenied`, as AWS and R2 do.
//! - A signed `Content-Length` or `Content-Type` is checked like any signed header: a
//!   body of another size or another type gets 403 `SignatureDoesNotMatch`. A body cut
//!   short of its `Content-Length` aborts the upload and stores nothing.
//! - `response-content-disposition` (and the other `response-*` parameters) on a GET
//!   are applied to the response.
//! - aws-chunked bodies and their trailers are decoded; the checksums they name are
//!   compared here, before the object is stored.
//! - ETags are the hex MD5 of the content (`<md5 of part MD5s>-<n>` after multipart), in
//!   quotes as S3 sends them.
//! - CORS: s3s answers `OPTIONS` with 501, so a `CorsLayer` sits in front. Every
//!   `OPTIONS` gets 200, with `Access-Control-Allow-Origin` only for a listed origin.
//!   Allowed methods: GET, PUT, HEAD. Request headers are mirrored, `ETag` is exposed,
//!   and max-age is 3600.
//! - Every response carries `Content-Security-Policy: default-src 'none'; sandbox` and
//!   `X-Content-Type-Options: nosniff`: a presigned GET of an HTML or SVG upload displays
//!   nothing that runs, whatever type the object was stored with.
//! - Accepted sockets get `TCP_NODELAY`: without it a keep-alive GET's small response
//!   waits on the client's delayed ACK (about 40 ms).

mod credentials;
mod engine;
mod migrate;
mod s3;

pub use credentials::EmbeddedCredentials;

/// Where the endpoint serving `root` keeps the bytes of `bucket`/`key`, when that object
/// exists (`None` otherwise): for tests that check what is on disk.
#[must_use]
pub fn stored_object_path(root: &std::path::Path, bucket: &str, key: &str) -> Option<PathBuf> {
    engine::stored_object_path(root, bucket, key)
}

use http::{HeaderName, HeaderValue, Method};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

/// How long `shutdown` waits for in-flight requests before dropping them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how to serve.
#[derive(Clone)]
pub struct EmbeddedS3Config {
    /// Folder the engine keeps its index and content files in (under `.filegate-store/`);
    /// created if missing. Bucket folders of the previous s3s-fs layout found here are
    /// imported on start.
    pub root: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    pub addr: SocketAddr,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Exact browser origins (`https://app.example.com`) allowed by CORS; `*` allows any.
    pub allowed_origins: Vec<String>,
}

impl std::fmt::Debug for EmbeddedS3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedS3Config")
            .field("root", &self.root)
            .field("addr", &self.addr)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("allowed_origins", &self.allowed_origins)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedS3Error {
    #[error("cannot use storage folder {path}: {message}")]
    Root { path: PathBuf, message: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid CORS origin {0:?}")]
    InvalidOrigin(String),
    #[error("access key id and secret must not be empty")]
    EmptyCredentials,
}

/// A running endpoint. Dropping it stops accepting connections too; [`EmbeddedS3::shutdown`]
/// also waits for in-flight requests.
#[derive(Debug)]
pub struct EmbeddedS3 {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl EmbeddedS3 {
    /// Creates `root` if needed, binds `addr` and serves in a tokio task.
    ///
    /// # Errors
    /// [`EmbeddedS3Error`] when the folder, the address, an origin or the keys are unusable.
    pub async fn start(config: EmbeddedS3Config) -> Result<Self, EmbeddedS3Error> {
        if config.access_key_id.is_empty() || config.secret_access_key.is_empty() {
            return Err(EmbeddedS3Error::EmptyCredentials);
        }
        let cors = cors_layer(&config.allowed_origins)?;
        let root_err = |message: String| EmbeddedS3Error::Root {
            path: config.root.clone(),
            message,
        };
        tokio::fs::create_dir_all(&config.root)
            .await
            .map_err(|e| root_err(e.to_string()))?;
        let root = tokio::fs::canonicalize(&config.root)
            .await
            .map_err(|e| root_err(e.to_string()))?;
        // Opening may import a legacy folder: blocking file work, off the runtime.
        let engine_root = root.clone();
        let engine = tokio::task::spawn_blocking(move || engine::Engine::open(&engine_root))
            .await
            .map_err(|e| root_err(e.to_string()))?
            .map_err(|e| root_err(e.to_string()))?;

        let mut builder = S3ServiceBuilder::new(s3::Store::new(engine));
        builder.set_auth(SimpleAuth::from_single(
            config.access_key_id.clone(),
            config.secret_access_key.clone(),
        ));
        builder.set_access(Access);
        let service = tower::ServiceBuilder::new()
            .layer(cors)
            // Presigned GETs serve user bytes from this origin: they must never run there.
            .layer(SetResponseHeaderLayer::overriding(
                http::header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; sandbox"),
            ))
            .layer(SetResponseHeaderLayer::overriding(
                http::header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ))
            .service(PresignGuard {
                inner: builder.build(),
            });

        let listener =
            TcpListener::bind(config.addr)
                .await
                .map_err(|source| EmbeddedS3Error::Bind {
                    addr: config.addr,
                    source,
                })?;
        let addr = listener
            .local_addr()
            .map_err(|source| EmbeddedS3Error::Bind {
                addr: config.addr,
                source,
            })?;

        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(serve(listener, service, stop_rx));
        tracing::info!(
            %addr,
            root = %root.display(),
            origins = ?config.allowed_origins,
            "embedded S3 endpoint listening"
        );
        Ok(Self {
            addr,
            stop: Some(stop_tx),
            task: Some(task),
        })
    }

    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<ip>:<port>`, e.g. `http://127.0.0.1:8788`; IPv6 in brackets.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets in-flight requests finish (up to 5 s) and ends the task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            tracing::warn!(error = %e, "embedded S3 task failed");
        }
    }
}

/// Longest presigned URL lifetime AWS and R2 accept: 7 days.
const MAX_PRESIGNED_EXPIRY_SECS: u64 = 604_800;

/// Runs after authentication, before each operation: anonymous requests are denied, as
/// s3s's default check does (setting an access check replaces that default).
struct Access;

#[async_trait::async_trait]
impl s3s::access::S3Access for Access {
    async fn check(&self, cx: &mut s3s::access::S3AccessContext<'_>) -> s3s::S3Result<()> {
        if cx.credentials().is_none() {
            return Err(s3s::s3_error!(AccessDenied, "Signature is required"));
        }
        Ok(())
    }
}

/// Why a presigned URL's `X-Amz-Expires` is refused: more than 7 days, or not a number of
/// seconds at all (a negative one: s3s would answer 400 where S3 answers 403).
fn bad_presign_expiry(uri: &http::Uri) -> Option<&'static str> {
    let value = uri
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("X-Amz-Expires="))?;
    match value.parse::<u64>() {
        Ok(secs) if secs <= MAX_PRESIGNED_EXPIRY_SECS => None,
        Ok(_) => Some("X-Amz-Expires must be less than a week (in seconds) that is 604800"),
        Err(_) => Some("X-Amz-Expires must be a number of seconds"),
    }
}

/// In front of s3s: refuses presigned URLs with an unusable expiry with 403
/// `AccessDenied`, as AWS and R2 do.
#[derive(Clone)]
struct PresignGuard<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for PresignGuard<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<s3s::Body>>,
{
    type Response = http::Response<s3s::Body>;
    type Error = S::Error;
    type Future = futures::future::Either<
        futures::future::Ready<Result<Self::Response, Self::Error>>,
        S::Future,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let Some(message) = bad_presign_expiry(req.uri()) else {
            return futures::future::Either::Right(self.inner.call(req));
        };
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>{message}</Message></Error>"
        );
        let mut resp = http::Response::new(s3s::Body::from(bytes::Bytes::from(xml)));
        *resp.status_mut() = http::StatusCode::FORBIDDEN;
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        futures::future::Either::Left(futures::future::ready(Ok(resp)))
    }
}

fn cors_layer(origins: &[String]) -> Result<CorsLayer, EmbeddedS3Error> {
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let values = origins
            .iter()
            .map(|o| {
                let trimmed = o.trim_end_matches('/');
                // An origin is scheme://host[:port]; anything else would never match.
                let ok = (trimmed.starts_with("http://") || trimmed.starts_with("https://"))
                    && !trimmed.contains(['*', ' ', ','])
                    && trimmed
                        .split("://")
                        .nth(1)
                        .is_some_and(|h| !h.is_empty() && !h.contains('/'));
                HeaderValue::from_str(trimmed)
                    .ok()
                    .filter(|_| ok)
                    .ok_or_else(|| EmbeddedS3Error::InvalidOrigin(o.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(values)
    };
    Ok(CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::GET, Method::PUT, Method::HEAD])
        // A presigned PUT may sign any header (content-type, x-amz-meta-*, checksums).
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers([
            http::header::ETAG,
            http::header::CONTENT_LENGTH,
            http::header::CONTENT_RANGE,
            HeaderName::from_static("x-amz-request-id"),
        ])
        .max_age(Duration::from_hours(1)))
}

async fn serve<S>(listener: TcpListener, service: S, mut stop: oneshot::Receiver<()>)
where
    S: tower::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<s3s::Body>,
            Error = s3s::HttpError,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(%peer, error = %e, "embedded S3: cannot set TCP_NODELAY");
                    }
                    let conn = http.serve_connection(
                        TokioIo::new(stream),
                        TowerToHyperService::new(service.clone()),
                    );
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(%peer, error = %e, "embedded S3 connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "embedded S3 accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            // Sent by shutdown(), or the handle was dropped.
            _ = &mut stop => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("embedded S3: requests still running after shutdown timeout, dropped");
    }
    tracing::info!("embedded S3 endpoint stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(root: PathBuf, origins: &[&str]) -> EmbeddedS3Config {
        EmbeddedS3Config {
            root,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            access_key_id: "AKIDEMBEDDEDTEST".into(),
            secret_access_key: "embedded-test-secret".into(),
            allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
        }
    }

    #[tokio::test]
    async fn serves_creates_root_refuses_anonymous_and_shuts_down()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().join("not/yet/there");
        let s3 = EmbeddedS3::start(config(root.clone(), &[])).await?;
        assert!(root.is_dir());
        let endpoint = s3.endpoint();
        assert_eq!(
            endpoint,
            format!("http://127.0.0.1:{}", s3.local_addr().port())
        );

        let resp = reqwest::get(format!("{endpoint}/some-bucket/key")).await?;
        assert_eq!(resp.status(), 403, "anonymous requests are denied");

        s3.shutdown().await;
        let after = reqwest::get(format!("{endpoint}/some-bucket/key")).await;
        assert!(after.is_err(), "nothing listens after shutdown");
        Ok(())
    }

    #[tokio::test]
    async fn bad_origins_and_empty_keys_are_refused() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        for bad in [
            "localhost:3000",
            "https://a.example/path",
            "https://*.example",
            "",
        ] {
            let err = EmbeddedS3::start(config(dir.path().into(), &[bad]))
                .await
                .err();
            assert!(
                matches!(err, Some(EmbeddedS3Error::InvalidOrigin(_))),
                "{bad:?}: {err:?}"
            );
        }
        let mut no_keys = config(dir.path().into(), &[]);
        no_keys.secret_access_key.clear();
        let err = EmbeddedS3::start(no_keys).await.err();
        assert!(matches!(err, Some(EmbeddedS3Error::EmptyCredentials)));
        Ok(())
    }

    #[tokio::test]
    async fn a_taken_port_is_a_bind_error() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let first = EmbeddedS3::start(config(dir.path().into(), &[])).await?;
        let mut same = config(dir.path().into(), &[]);
        same.addr = first.local_addr();
        let err = EmbeddedS3::start(same).await.err();
        assert!(matches!(err, Some(EmbeddedS3Error::Bind { .. })), "{err:?}");
        first.shutdown().await;
        Ok(())
    }
}
