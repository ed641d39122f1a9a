//! Serving a storage object over HTTP, for every download route (the files listener,
//! `GET /storage/v1/object/{bucket}/{*path}`, `GET /api/v1/files/{id}/download`):
//!
//! - `ETag` (the stored etag, quoted), `Last-Modified`, `Content-Type`, `Content-Length`,
//!   `Accept-Ranges: bytes`;
//! - on every answer that carries (or describes) user bytes: `X-Content-Type-Options:
//!   nosniff`, `Content-Security-Policy: default-src 'none'; sandbox` (a document opened
//!   from user bytes runs no script and gets an opaque origin, while images and media still
//!   display) and `Cross-Origin-Resource-Policy` as the route asks ([`Corp`]);
//! - the stored content type is parsed again strictly before use (rows may predate strict
//!   parsing): what does not parse is served as `application/octet-stream`;
//! - `If-None-Match` (weak comparison, `*`), else `If-Modified-Since` → 304 without body;
//! - one `Range: bytes=a-b | a- | -n`, parsed before storage is called and sent to it as a
//!   ranged GET → 206 with `Content-Range`; not satisfiable → 416 with
//!   `Content-Range: bytes */<size>`; several ranges, a malformed header or any `If-Range`
//!   → the whole object (200);
//! - `Cache-Control: public, max-age=<n>` for public buckets, `private, no-store` otherwise;
//! - `?download[=<name>]` → `Content-Disposition: attachment` (the signer's encoder);
//!   types a browser would run (HTML, SVG, XML, unknown or missing) are always
//!   `attachment`, and so is everything when the route asks ([`FileRequest::always_attachment`],
//!   the API origin, which hosts the upload page and its token);
//! - HEAD: the same headers, no body. The body is streamed (never buffered); when the
//!   client goes away hyper drops it, and with it the storage stream
//!   ([`Metrics::open_stream`] counts open bodies).

use crate::error::ApiError;
use crate::metrics::{Metrics, OpenStream};
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use filegate_core::Error;
use filegate_core::domain::{ContentType, content_disposition_attachment, validate_filename};
use filegate_core::managed::Download;
use filegate_core::ports::{ByteRange, ByteStream, GetObject};
use futures::Stream;
use futures::future::BoxFuture;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll};
use time::OffsetDateTime;

/// An opened object: the (possibly ranged) GET and what the response says about it.
pub struct Opened {
    pub body: GetObject,
    /// The recorded content type (the stored one when missing).
    pub content_type: Option<String>,
    /// The recorded etag, used when storage gives none.
    pub etag: Option<String>,
    /// Used when storage gives no `Last-Modified`.
    pub updated_at: OffsetDateTime,
    /// May be cached by shared caches.
    pub public: bool,
    /// The default name of `?download` and of forced attachments.
    pub filename: String,
}

impl From<Download> for Opened {
    fn from(d: Download) -> Self {
        let filename = d
            .object
            .path
            .as_str()
            .rsplit('/')
            .next()
            .unwrap_or("download")
            .to_owned();
        Self {
            body: d.body,
            content_type: Some(d.object.content_type),
            etag: d.object.etag,
            updated_at: d.object.updated_at,
            public: d.public,
            filename,
        }
    }
}

/// `Cross-Origin-Resource-Policy`: who may embed the bytes without CORS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corp {
    /// Public objects and capability URLs (`?token=`): made to be embedded anywhere.
    CrossOrigin,
    /// Bytes released by a cookie or bearer credential: only the app's own site.
    SameSite,
}

impl Corp {
    fn value(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::CrossOrigin => "cross-origin",
            Self::SameSite => "same-site",
        })
    }
}

/// The policy sent with user bytes: no script, no plugins, no same-origin document.
pub const USER_CONTENT_CSP: &str = "default-src 'none'; sandbox";

/// The headers every answer about user bytes carries, whatever its status.
fn protect(h: &mut HeaderMap, corp: Corp) {
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(USER_CONTENT_CSP),
    );
    h.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        corp.value(),
    );
}

/// What the request asks of the response.
#[derive(Debug, Clone)]
pub struct FileRequest {
    pub head: bool,
    pub headers: HeaderMap,
    /// `?download` (`Some(None)`) or `?download=<name>`.
    pub download: Option<Option<String>>,
    /// `max-age` of public objects, seconds.
    pub public_max_age: u32,
    pub corp: Corp,
    /// Never inline, whatever the type (routes on the API origin).
    pub always_attachment: bool,
}

impl FileRequest {
    #[must_use]
    pub fn new(
        method: &Method,
        headers: &HeaderMap,
        query: &HashMap<String, String>,
        public_max_age: u32,
    ) -> Self {
        Self {
            head: method == Method::HEAD,
            headers: headers.clone(),
            download: query
                .get("download")
                .map(|n| Some(n.clone()).filter(|n| !n.is_empty())),
            public_max_age,
            corp: Corp::SameSite,
            always_attachment: false,
        }
    }

    #[must_use]
    pub fn with_corp(mut self, corp: Corp) -> Self {
        self.corp = corp;
        self
    }

    /// Every answer is an attachment: for routes on the API origin.
    #[must_use]
    pub fn attachments_only(mut self) -> Self {
        self.always_attachment = true;
        self
    }

    /// The single range asked for, if it is to be honoured.
    #[must_use]
    pub fn range(&self) -> Option<ByteRange> {
        if self.headers.contains_key(header::IF_RANGE) {
            return None;
        }
        let raw = self.headers.get(header::RANGE)?.to_str().ok()?;
        parse_range(raw)
    }
}

/// Opens the object, with or without a range.
pub type Open<'a> =
    Box<dyn Fn(Option<ByteRange>) -> BoxFuture<'a, Result<Opened, Error>> + Send + Sync + 'a>;

/// Opens the object the request asks for and answers with full HTTP semantics.
///
/// # Errors
/// The opener's errors, except an unsatisfiable range: 416 here, with the size the
/// refusing open reported (nothing is opened twice).
pub async fn serve(
    metrics: &Metrics,
    req: &FileRequest,
    open: Open<'_>,
) -> Result<Response, Error> {
    if let Some(name) = req.download.as_ref().and_then(Option::as_deref) {
        validate_filename("download", name)?;
    }
    let range = req.range();
    let opened = match open(range).await {
        Ok(o) => o,
        Err(Error::RangeNotSatisfiable { size }) => return Ok(unsatisfiable(size, req.corp)),
        Err(e) => return Err(e),
    };
    Ok(respond(metrics, req, opened))
}

/// 416 with `Content-Range: bytes */<size>` and the protective headers of user bytes.
fn unsatisfiable(size: u64, corp: Corp) -> Response {
    let mut res = ApiError(Error::RangeNotSatisfiable { size }).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_RANGE, value(&format!("bytes */{size}")));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    protect(h, corp);
    res
}

fn value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn respond(metrics: &Metrics, req: &FileRequest, opened: Opened) -> Response {
    let Opened {
        body: get,
        content_type,
        etag,
        updated_at,
        public,
        filename,
    } = opened;
    let size = get.meta.size;
    let etag = get
        .meta
        .etag
        .clone()
        .or(etag)
        .map(|e| format!("\"{}\"", e.trim_matches('"')));
    let last_modified = get.meta.last_modified.unwrap_or(updated_at);
    // Never the stored string itself: it may predate strict parsing.
    let content_type = content_type
        .or_else(|| get.meta.content_type.clone())
        .map_or_else(ContentType::octet_stream, |c| ContentType::from_stored(&c));

    let mut headers = HeaderMap::new();
    if let Some(e) = &etag {
        headers.insert(header::ETAG, value(e));
    }
    headers.insert(header::LAST_MODIFIED, value(&http_date(last_modified)));
    headers.insert(
        header::CACHE_CONTROL,
        if public {
            value(&format!("public, max-age={}", req.public_max_age))
        } else {
            HeaderValue::from_static("private, no-store")
        },
    );
    protect(&mut headers, req.corp);
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));

    if not_modified(&req.headers, etag.as_deref(), last_modified) {
        drop(get.body);
        let mut res = StatusCode::NOT_MODIFIED.into_response();
        res.headers_mut().extend(headers);
        return res;
    }

    let inline = inline_safe(content_type.essence()) && !req.always_attachment;
    headers.insert(header::CONTENT_TYPE, value(content_type.as_str()));
    let attachment = match &req.download {
        Some(Some(name)) => Some(name.as_str()),
        Some(None) => Some(filename.as_str()),
        None if !inline => Some(filename.as_str()),
        None => None,
    };
    if let Some(name) = attachment {
        headers.insert(
            header::CONTENT_DISPOSITION,
            value(&content_disposition_attachment(name)),
        );
    }

    let (status, length) = match get.range {
        Some((first, last)) => {
            headers.insert(
                header::CONTENT_RANGE,
                value(&format!("bytes {first}-{last}/{size}")),
            );
            (StatusCode::PARTIAL_CONTENT, last - first + 1)
        }
        None => (StatusCode::OK, size),
    };
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));

    let body = if req.head {
        drop(get.body);
        Body::empty()
    } else {
        Body::from_stream(Counted {
            inner: get.body,
            _open: metrics.open_stream(),
        })
    };
    let mut res = Response::new(body);
    *res.status_mut() = status;
    res.headers_mut().extend(headers);
    res
}

/// A storage body on its way to a client; counted open until dropped.
struct Counted {
    inner: ByteStream,
    _open: OpenStream,
}

impl Stream for Counted {
    type Item = Result<axum::body::Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// Types served inline, by essence; everything else (HTML, SVG, XML, scripts, unknown) is
/// an attachment.
fn inline_safe(essence: &str) -> bool {
    let Some((kind, sub)) = essence.split_once('/') else {
        return false;
    };
    match kind {
        "image" => matches!(
            sub,
            "png" | "jpeg" | "gif" | "webp" | "avif" | "bmp" | "x-icon" | "vnd.microsoft.icon"
        ),
        "audio" | "video" => !sub.contains("xml"),
        "text" => matches!(sub, "plain" | "csv"),
        "application" => matches!(sub, "pdf" | "json"),
        _ => false,
    }
}

/// `If-None-Match` (weak comparison) when sent, else `If-Modified-Since`.
#[must_use]
pub fn not_modified(
    headers: &HeaderMap,
    etag: Option<&str>,
    last_modified: OffsetDateTime,
) -> bool {
    if let Some(inm) = headers.get(header::IF_NONE_MATCH) {
        let Ok(inm) = inm.to_str() else {
            return false;
        };
        let weak = |t: &str| t.trim().trim_start_matches("W/").to_owned();
        return inm
            .split(',')
            .any(|t| t.trim() == "*" || etag.is_some_and(|e| weak(t) == weak(e)));
    }
    headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date)
        .is_some_and(|since| last_modified.unix_timestamp() <= since.unix_timestamp())
}

/// Positions past this are beyond any object and beyond what S3 parses; they are clamped
/// (an end past the object means "to the end", as RFC 9110 and S3 read it).
const MAX_POSITION: u64 = i64::MAX as u64;

/// One range of `bytes=…`; several, or anything malformed, is `None` (serve it all).
#[must_use]
pub fn parse_range(raw: &str) -> Option<ByteRange> {
    let spec = raw.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, false) => num(last).map(|n| ByteRange::Suffix(n.min(MAX_POSITION))),
        (false, true) => num(first).map(|a| ByteRange::From(a.min(MAX_POSITION))),
        (false, false) => {
            let (a, b) = (num(first)?, num(last)?);
            (a <= b).then_some(if b >= MAX_POSITION {
                ByteRange::From(a.min(MAX_POSITION))
            } else {
                ByteRange::FromTo(a, b)
            })
        }
        (true, true) => None,
    }
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
#[must_use]
pub fn http_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[usize::from(t.weekday().number_days_from_monday())],
        t.day(),
        MONTHS[usize::from(u8::from(t.month())) - 1],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Parses an IMF-fixdate; other forms are `None` (the condition is then ignored).
#[must_use]
#[expect(
    clippy::many_single_char_names,
    reason = "the date's fields, as RFC 9110 lays them out"
)]
pub fn parse_http_date(raw: &str) -> Option<OffsetDateTime> {
    let mut parts = raw.split_whitespace();
    let (_day, d, mon, y, hms, gmt) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if gmt != "GMT" || parts.next().is_some() {
        return None;
    }
    let month = MONTHS.iter().position(|m| *m == mon)?;
    let month = time::Month::try_from(u8::try_from(month + 1).ok()?).ok()?;
    let date = time::Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()?;
    let mut hms = hms.split(':').map(str::parse::<u8>);
    let (h, m, s) = (hms.next()?.ok()?, hms.next()?.ok()?, hms.next()?.ok()?);
    let time = time::Time::from_hms(h, m, s).ok()?;
    Some(date.with_time(time).assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn ranges_parse_one_range_and_ignore_the_rest() {
        assert_eq!(parse_range("bytes=0-9"), Some(ByteRange::FromTo(0, 9)));
        assert_eq!(parse_range("bytes=5-"), Some(ByteRange::From(5)));
        assert_eq!(parse_range("bytes=-3"), Some(ByteRange::Suffix(3)));
        assert_eq!(parse_range(" bytes= 1 - 2 "), Some(ByteRange::FromTo(1, 2)));
        for bad in [
            "bytes=0-1,4-5",
            "bytes=9-1",
            "bytes=-",
            "items=0-1",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=0-99999999999999999999999",
        ] {
            assert_eq!(parse_range(bad), None, "{bad}");
        }
        assert_eq!(
            parse_range("bytes=0-18446744073709551615"),
            Some(ByteRange::From(0))
        );
        assert_eq!(
            parse_range("bytes=18446744073709551614-18446744073709551615"),
            Some(ByteRange::From(MAX_POSITION))
        );
    }

    #[test]
    fn http_dates_round_trip() {
        let t = datetime!(1994-11-06 08:49:37 UTC);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(parse_http_date(&http_date(t)), Some(t));
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
    }

    #[test]
    fn runnable_types_are_never_inline() {
        for t in [
            "text/html",
            "image/svg+xml",
            "application/xhtml+xml",
            "text/xml",
            "application/xml",
            "application/octet-stream",
            "application/javascript",
            "nonsense",
        ] {
            assert!(!inline_safe(t), "{t}");
        }
        for t in [
            "image/png",
            "image/jpeg",
            "application/pdf",
            "text/plain",
            "video/mp4",
        ] {
            assert!(inline_safe(t), "{t}");
        }
    }

    #[test]
    fn conditionals_prefer_if_none_match() {
        let t = datetime!(2026-03-01 12:00 UTC);
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("W/\"abc\", \"x\""),
        );
        assert!(not_modified(&h, Some("\"abc\""), t));
        assert!(!not_modified(&h, Some("\"other\""), t));
        h.insert(
            header::IF_MODIFIED_SINCE,
            HeaderValue::from_static("Sun, 01 Mar 2026 12:00:00 GMT"),
        );
        assert!(!not_modified(&h, Some("\"other\""), t));
        h.remove(header::IF_NONE_MATCH);
        assert!(not_modified(&h, Some("\"other\""), t));
        assert!(!not_modified(&h, None, t + time::Duration::seconds(1)));
    }

    proptest::proptest! {
        #[test]
        fn header_parsers_never_panic_and_stay_in_bounds(raw in "\\PC{0,48}|bytes=[0-9-]{0,44}|[ -~]{0,48}") {
            match parse_range(&raw) {
                Some(ByteRange::FromTo(a, b)) => proptest::prop_assert!(a <= b && b < MAX_POSITION),
                Some(ByteRange::From(a) | ByteRange::Suffix(a)) => proptest::prop_assert!(a <= MAX_POSITION),
                None => {}
            }
            if let Some(t) = parse_http_date(&raw) {
                proptest::prop_assert_eq!(parse_http_date(&http_date(t)), Some(t));
            }
            if let Ok(v) = HeaderValue::from_str(&raw) {
                let mut h = HeaderMap::new();
                h.insert(header::IF_NONE_MATCH, v.clone());
                let _ = not_modified(&h, Some("\"abc\""), OffsetDateTime::UNIX_EPOCH);
                h.clear();
                h.insert(header::IF_MODIFIED_SINCE, v);
                let _ = not_modified(&h, None, OffsetDateTime::UNIX_EPOCH);
            }
        }

        #[test]
        fn http_dates_round_trip_for_any_second(secs in 0i64..253_402_300_799) {
            let t = OffsetDateTime::from_unix_timestamp(secs).unwrap();
            proptest::prop_assert_eq!(parse_http_date(&http_date(t)), Some(t));
        }
    }
}
