//! Serves a router on a TCP listener (HTTP/1.1, hyper) with the limits `axum::serve`
//! lacks: a header read timeout (which also bounds an idle keep-alive connection, as
//! hyper starts it as soon as it waits for the next request), an idle timeout (no byte
//! read or written: stalled bodies and stalled readers), a cap on open connections
//! (over it, new connections wait in the kernel's backlog), and graceful shutdown.
//!
//! Request heads hyper would refuse with its own bare `400` (a malformed
//! `Content-Length`, an unparsable request line or header) are answered with the error
//! envelope and an `x-request-id` instead: `GuardedIo` reads each head before hyper
//! does and, for a malformed one, hands hyper a stand-in request that the connection's
//! service answers with the envelope, then closes the connection (its framing is lost).

use crate::error::envelope_of;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use filegate_core::Error;
use filegate_core::error::FieldError;
use http::{HeaderValue, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::ServiceExt;
use tower_http::request_id::{MakeRequestId, MakeRequestUuid};

// A setting of the configuration (bootstrap); re-exported for this module's users.
pub use filegate_bootstrap::config::ListenerLimits;

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting and
/// lets open requests finish.
///
/// # Errors
/// None today: accept errors (e.g. out of file descriptors) are logged and retried.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ListenerLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        // The permit first: at the cap, connections stay in the backlog unaccepted.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let io = GuardedIo::new(stream);
        let activity = io.activity.clone();
        let malformed = io.malformed.clone();
        let app = app.clone();
        let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
            let app = app.clone();
            let malformed = malformed.get().copied();
            async move {
                if let Some(m) = malformed {
                    return Ok::<_, Infallible>(malformed_response(m));
                }
                let mut req = req.map(Body::new);
                req.extensions_mut().insert(ConnectInfo(peer));
                app.oneshot(req).await
            }
        });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(io), service));
        let idle = limits.idle_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                result = conn => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                () = activity.idle_for(idle) => {
                    // Dropping the connection closes the socket.
                    tracing::debug!(%peer, "connection idle too long, closed");
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The envelope for a request head hyper would refuse: 400 `VALIDATION_FAILED` naming
/// what was wrong, with a fresh request id; the connection closes after it.
fn malformed_response(m: Malformed) -> Response {
    let probe = http::Request::new(());
    let request_id = MakeRequestUuid
        .make_request_id(&probe)
        .map(tower_http::request_id::RequestId::into_header_value);
    let id_text = request_id
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (status, envelope) = envelope_of(&Error::MalformedRequest(FieldError::new(
        m.field, m.message,
    )));
    let mut res = (status, axum::Json(envelope.with_request_id(id_text))).into_response();
    if let Some(id) = request_id {
        res.headers_mut().insert("x-request-id", id);
    }
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

/// What was wrong with a request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Malformed {
    field: &'static str,
    message: &'static str,
}

const BAD_LENGTH: Malformed = Malformed {
    field: "Content-Length",
    message: "must be one whole number of bytes",
};
const BAD_HEAD: Malformed = Malformed {
    field: "request",
    message: "is not a well-formed HTTP/1.1 request head",
};

/// What the connection is fed to hyper in place of a malformed head: answered by the
/// service from the connection's [`Malformed`] flag, never routed.
const STAND_IN: &[u8] = b"GET / HTTP/1.1\r\nhost: malformed.invalid\r\nconnection: close\r\n\r\n";

/// Heads longer than this are left to hyper unchecked (it refuses them with 431).
const MAX_CHECKED_HEAD: usize = 64 * 1024;
/// hyper's default header count limit (more is a 431 from hyper).
const MAX_HEADERS: usize = 100;

/// Last time a byte moved on a connection, in milliseconds since `start`.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Completes once no byte moved for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = self.start + last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// Where the head scanner is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// Expecting a request head.
    Head,
    /// Passing on this many more bytes (a checked head and its body), then a head again.
    Forward(u64),
    /// Framing the scanner does not follow (chunked bodies, upgrades, huge heads):
    /// everything goes to hyper as is, which still enforces HTTP itself.
    Passthrough,
    /// Feeding hyper [`STAND_IN`] from this offset; then nothing more.
    StandIn(usize),
    /// Nothing more for hyper: reads stay pending (an end of stream would make hyper
    /// drop the stand-in's answer, as for a client half-close); the stand-in's
    /// `connection: close` ends the connection once answered.
    Closed,
}

/// The TCP stream as hyper sees it: records activity and checks each request head
/// before hyper parses it.
struct GuardedIo {
    inner: TcpStream,
    activity: Arc<Activity>,
    malformed: Arc<OnceLock<Malformed>>,
    scan: Scan,
    /// Bytes read from the socket and not yet given to hyper.
    pending: Vec<u8>,
}

/// What a buffered head tells the scanner.
enum Verdict {
    NeedMore,
    Forward(u64),
    Passthrough,
    Malformed(Malformed),
}

/// Checks the head at the start of `buf` the way hyper parses it (httparse with its
/// header limit, method, URI, then the framing headers).
fn check_head(buf: &[u8]) -> Verdict {
    // An HTTP/2 preface: hyper closes such a connection itself.
    if buf.starts_with(b"PRI * HTTP/2.0") {
        return Verdict::Passthrough;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Verdict::NeedMore,
        Err(httparse::Error::TooManyHeaders) => return Verdict::Passthrough,
        Err(_) => return Verdict::Malformed(BAD_HEAD),
    };
    let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
        return Verdict::Malformed(BAD_HEAD);
    };
    let Ok(method) = http::Method::from_bytes(method.as_bytes()) else {
        return Verdict::Malformed(BAD_HEAD);
    };
    // A tunnel: no HTTP/1.1 messages after this head.
    if method == http::Method::CONNECT {
        return Verdict::Passthrough;
    }
    if path.parse::<http::Uri>().is_err() {
        return Verdict::Malformed(BAD_HEAD);
    }
    let mut length: Option<u64> = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if version == 0 {
                return Verdict::Malformed(BAD_HEAD);
            }
            // hyper ignores Content-Length from here on and frames chunks itself.
            return Verdict::Passthrough;
        }
        if h.name.eq_ignore_ascii_case("upgrade") {
            return Verdict::Passthrough;
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            // hyper's rule: one run of ASCII digits; repeats must agree.
            let Some(n) = digits(h.value) else {
                return Verdict::Malformed(BAD_LENGTH);
            };
            if length.is_some_and(|prev| prev != n) || n > u64::MAX - 2 {
                return Verdict::Malformed(BAD_LENGTH);
            }
            length = Some(n);
        }
    }
    let head = u64::try_from(head_len).unwrap_or(u64::MAX);
    Verdict::Forward(head.saturating_add(length.unwrap_or(0)))
}

fn digits(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, b| {
        b.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(u64::from(b - b'0')))
            .flatten()
    })
}

impl GuardedIo {
    fn new(inner: TcpStream) -> Self {
        Self {
            inner,
            activity: Arc::new(Activity {
                start: Instant::now(),
                last_ms: AtomicU64::new(0),
            }),
            malformed: Arc::new(OnceLock::new()),
            scan: Scan::Head,
            pending: Vec::new(),
        }
    }

    /// Reads up to `max` more bytes from the socket into `pending`; `Ok(0)` is its end.
    fn fill(&mut self, cx: &mut Context<'_>, max: usize) -> Poll<io::Result<usize>> {
        let mut scratch = [0u8; 8192];
        let take = max.clamp(1, scratch.len());
        let mut buf = ReadBuf::new(&mut scratch[..take]);
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut buf))?;
        let got = buf.filled().len();
        if got > 0 {
            self.activity.touch();
            self.pending.extend_from_slice(buf.filled());
        }
        Poll::Ready(Ok(got))
    }
}

impl AsyncRead for GuardedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match this.scan {
                Scan::Closed => return Poll::Pending,
                Scan::StandIn(pos) => {
                    let rest = STAND_IN.get(pos..).unwrap_or_default();
                    let n = rest.len().min(out.remaining());
                    out.put_slice(&rest[..n]);
                    this.scan = if pos + n >= STAND_IN.len() {
                        Scan::Closed
                    } else {
                        Scan::StandIn(pos + n)
                    };
                    return Poll::Ready(Ok(()));
                }
                Scan::Head => match check_head(&this.pending) {
                    Verdict::Forward(n) => this.scan = Scan::Forward(n),
                    Verdict::Passthrough => this.scan = Scan::Passthrough,
                    Verdict::Malformed(m) => {
                        let _ = this.malformed.set(m);
                        this.pending.clear();
                        this.scan = Scan::StandIn(0);
                    }
                    Verdict::NeedMore if this.pending.len() >= MAX_CHECKED_HEAD => {
                        this.scan = Scan::Passthrough;
                    }
                    Verdict::NeedMore => {
                        if ready!(this.fill(cx, 8192))? == 0 {
                            if this.pending.is_empty() {
                                return Poll::Ready(Ok(()));
                            }
                            // A cut-off head: hyper reports it.
                            this.scan = Scan::Passthrough;
                        }
                    }
                },
                Scan::Forward(0) => this.scan = Scan::Head,
                Scan::Forward(_) | Scan::Passthrough => {
                    let limit = match this.scan {
                        Scan::Forward(n) => usize::try_from(n).unwrap_or(usize::MAX),
                        _ => usize::MAX,
                    };
                    if this.pending.is_empty() {
                        let want = limit.min(out.remaining());
                        if ready!(this.fill(cx, want))? == 0 {
                            return Poll::Ready(Ok(()));
                        }
                    }
                    let n = this.pending.len().min(out.remaining()).min(limit);
                    out.put_slice(&this.pending[..n]);
                    this.pending.drain(..n);
                    if let Scan::Forward(left) = this.scan {
                        this.scan = Scan::Forward(left - u64::try_from(n).unwrap_or(left));
                    }
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        if n > 0 {
            this.activity.touch();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        if n > 0 {
            this.activity.touch();
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(head: &str) -> &'static str {
        match check_head(head.as_bytes()) {
            Verdict::NeedMore => "more",
            Verdict::Forward(_) => "forward",
            Verdict::Passthrough => "pass",
            Verdict::Malformed(m) if m == BAD_LENGTH => "bad-length",
            Verdict::Malformed(_) => "bad-head",
        }
    }

    #[test]
    fn heads_are_judged_as_hyper_would() {
        let h = |extra: &str| format!("POST /x HTTP/1.1\r\nHost: a\r\n{extra}\r\n");
        assert_eq!(verdict("GET / HTTP/1.1\r\nHost: a\r\n"), "more");
        assert_eq!(verdict(&h("")), "forward");
        assert_eq!(verdict(&h("Content-Length: 12\r\n")), "forward");
        assert_eq!(
            verdict(&h("Content-Length: 12\r\nContent-Length: 12\r\n")),
            "forward"
        );
        for bad in ["Aq", "-1", "+5", "1 2", "5, 5", "", "18446744073709551616"] {
            assert_eq!(
                verdict(&h(&format!("Content-Length: {bad}\r\n"))),
                "bad-length",
                "{bad:?}"
            );
        }
        assert_eq!(
            verdict(&h("Content-Length: 1\r\nContent-Length: 2\r\n")),
            "bad-length"
        );
        assert_eq!(verdict(&h("Transfer-Encoding: chunked\r\n")), "pass");
        assert_eq!(verdict(&h("Upgrade: websocket\r\n")), "pass");
        assert_eq!(verdict("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), "pass");
        assert_eq!(
            verdict("GET / HTTP/1.1\r\nBad Header: x\r\n\r\n"),
            "bad-head"
        );
        assert_eq!(verdict("G(T / HTTP/1.1\r\n\r\n"), "bad-head");
        assert_eq!(
            verdict("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            "bad-head"
        );
    }

    #[test]
    fn forwarding_covers_the_head_and_its_body() {
        let head = "POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\n";
        match check_head(format!("{head}hello").as_bytes()) {
            Verdict::Forward(n) => assert_eq!(n, head.len() as u64 + 5),
            _ => panic!("a valid head"),
        }
    }
}
