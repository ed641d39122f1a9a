//! Fast query-string SigV4 presigner for R2 / S3 (path-style URLs).
//!
//! The canonical request is streamed into SHA-256 from pieces of the URL being built, so
//! the path and query are encoded once and serve both purposes. The signing key (four
//! HMACs) is derived once per UTC day and cached.

use async_trait::async_trait;
use aws_sigv4::sign::v4::{calculate_signature, generate_signing_key};
use filegate_core::Error;
use filegate_core::ports::{PresignRequest, PresignedUrl, UrlSigner};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::fmt;
use std::fmt::Write as _;
use std::sync::{PoisonError, RwLock};
use std::time::SystemTime;

use crate::R2Config;

/// SigV4 `UriEncode`: everything but RFC 3986 unreserved characters.
const QUERY_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// Same for object keys, keeping `/` between segments.
const PATH_SET: &AsciiSet = &QUERY_SET.remove(b'/');

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const SERVICE: &str = "s3";
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// The query parameters the signer owns, in canonical (byte) order.
const FIXED_KEYS: [&str; 5] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
];
/// Names a caller may not pass as extra query parameters: they would clash with ours.
const RESERVED_QUERY: [&str; 7] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
];

/// The day's signing key, keyed by Julian day number (UTC).
#[derive(Clone, Copy)]
struct DayKey {
    day: i32,
    key: [u8; 32],
}

/// Presigns R2 / S3 requests locally with SigV4 query parameters.
pub struct SigV4Signer {
    secret: SecretString,
    access_key_id: String,
    region: String,
    /// `scheme://host[:port]`, default port dropped, host lowercased.
    origin: String,
    /// The `host` header value clients will send (what `origin` holds after the scheme).
    host: String,
    /// `<akid>%2F`, the encoded start of `X-Amz-Credential`.
    credential_prefix: String,
    /// `%2F<region>%2Fs3%2Faws4_request`, the encoded end of `X-Amz-Credential`.
    credential_suffix: String,
    /// `/<region>/s3/aws4_request`, the scope after the date in the string to sign.
    scope_suffix: String,
    cache: RwLock<Option<DayKey>>,
}

impl fmt::Debug for SigV4Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigV4Signer")
            .field("access_key_id", &self.access_key_id)
            .field("region", &self.region)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl SigV4Signer {
    /// Builds a signer for the endpoint, region and credentials of `config`.
    ///
    /// # Errors
    /// [`Error::Validation`] on `endpoint` (see [`R2Config::endpoint_url`], or a host that
    /// is not a plain `host[:port]`), `region` (not `[a-z0-9-]+`), `accessKeyId` (empty or
    /// not printable ASCII) or `secretAccessKey` (empty).
    pub fn new(config: &R2Config) -> Result<Self, Error> {
        let endpoint = config.endpoint_url()?;
        let (origin, host) = normalise_origin(&endpoint)?;

        let region = config.region.as_str();
        if region.is_empty()
            || !region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(Error::invalid(
                "region",
                "must be like 'auto' or 'us-east-1'",
            ));
        }
        let akid = config.access_key_id.as_str();
        if akid.is_empty() || !akid.bytes().all(|b| b.is_ascii_graphic() && b != b'/') {
            return Err(Error::invalid(
                "accessKeyId",
                "must be non-empty printable ASCII without '/'",
            ));
        }
        if config.secret_access_key.expose_secret().is_empty() {
            return Err(Error::invalid("secretAccessKey", "must not be empty"));
        }

        Ok(Self {
            secret: config.secret_access_key.clone(),
            access_key_id: akid.to_owned(),
            region: region.to_owned(),
            origin,
            host,
            credential_prefix: format!("{}%2F", utf8_percent_encode(akid, QUERY_SET)),
            credential_suffix: format!("%2F{region}%2F{SERVICE}%2Faws4_request"),
            scope_suffix: format!("/{region}/{SERVICE}/aws4_request"),
            cache: RwLock::new(None),
        })
    }

    /// The synchronous core of [`UrlSigner::presign`]; it never blocks or awaits.
    ///
    /// # Errors
    /// As [`UrlSigner::presign`].
    pub fn presign_now(&self, request: &PresignRequest) -> Result<PresignedUrl, Error> {
        self.presign_with(request, true)
    }

    /// `path_style == false` leaves the bucket out of the path (virtual-hosted endpoints,
    /// where the bucket is in the host); only tests use that.
    fn presign_with(
        &self,
        request: &PresignRequest,
        path_style: bool,
    ) -> Result<PresignedUrl, Error> {
        let when = Timestamp::new(request.signed_at)?;
        let headers = canonical_headers(request, &self.host)?;
        let extra_query = encoded_query_keys(request)?;

        // Lowercase names joined by `;`; canonical header lines reuse slices of it.
        let mut signed_headers =
            String::with_capacity(headers.iter().map(|(n, _)| n.len() + 1).sum::<usize>());
        for (i, (name, _)) in headers.iter().enumerate() {
            if i > 0 {
                signed_headers.push(';');
            }
            signed_headers.extend(name.chars().map(|c| c.to_ascii_lowercase()));
        }

        let bucket = request.bucket.as_str();
        let key = request.key.as_str();
        let query_len: usize = request.query.iter().map(|(k, v)| k.len() + v.len()).sum();
        let mut url = String::with_capacity(
            self.origin.len()
                + bucket.len()
                + 3 * (key.len() + query_len + signed_headers.len())
                + self.credential_prefix.len()
                + self.credential_suffix.len()
                + 240,
        );

        url.push_str(&self.origin);
        let path_start = url.len();
        if path_style {
            url.push('/');
            url.push_str(bucket); // bucket names are [a-z0-9-]: nothing to encode
        }
        url.push('/');
        url.extend(utf8_percent_encode(key, PATH_SET));
        let path_end = url.len();

        url.push('?');
        let query_start = url.len();
        self.write_canonical_query(&mut url, &extra_query, request, &when, &signed_headers);
        let query_end = url.len();

        let mut creq = Sha256::new();
        creq.update(request.method.as_str());
        creq.update(b"\n");
        creq.update(&url[path_start..path_end]);
        creq.update(b"\n");
        creq.update(&url[query_start..query_end]);
        creq.update(b"\n");
        for ((_, value), lname) in headers.iter().zip(signed_headers.split(';')) {
            creq.update(lname);
            creq.update(b":");
            update_trimmed_all(&mut creq, value);
            creq.update(b"\n");
        }
        creq.update(b"\n");
        creq.update(&signed_headers);
        creq.update(b"\n");
        creq.update(UNSIGNED_PAYLOAD);
        let mut creq_hex = [0u8; 64];
        hex::encode_to_slice(creq.finalize(), &mut creq_hex).map_err(Error::internal)?;

        let mut string_to_sign =
            String::with_capacity(ALGORITHM.len() + 16 + 8 + self.scope_suffix.len() + 64 + 3);
        string_to_sign.push_str(ALGORITHM);
        string_to_sign.push('\n');
        string_to_sign.push_str(when.date_time());
        string_to_sign.push('\n');
        string_to_sign.push_str(when.date());
        string_to_sign.push_str(&self.scope_suffix);
        string_to_sign.push('\n');
        string_to_sign.push_str(std::str::from_utf8(&creq_hex).map_err(Error::internal)?);

        let key = self.signing_key(&when, request.signed_at);
        let signature = calculate_signature(key, string_to_sign.as_bytes());
        url.push_str("&X-Amz-Signature=");
        url.push_str(&signature);

        Ok(PresignedUrl {
            url,
            headers: request.headers.clone(),
        })
    }

    /// Writes the sorted, encoded query: the caller's parameters merged with ours.
    fn write_canonical_query(
        &self,
        url: &mut String,
        extra: &[(Cow<'_, str>, &str)],
        request: &PresignRequest,
        when: &Timestamp,
        signed_headers: &str,
    ) {
        let (mut fixed, mut user) = (0, 0);
        loop {
            let take_user = match (extra.get(user), FIXED_KEYS.get(fixed)) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((k, _)), Some(f)) => k.as_ref() < *f,
            };
            if fixed + user > 0 {
                url.push('&');
            }
            if take_user {
                let (k, v) = &extra[user];
                url.push_str(k);
                url.push('=');
                url.extend(utf8_percent_encode(v, QUERY_SET));
                user += 1;
                continue;
            }
            url.push_str(FIXED_KEYS[fixed]);
            url.push('=');
            match fixed {
                0 => url.push_str(ALGORITHM),
                1 => {
                    url.push_str(&self.credential_prefix);
                    url.push_str(when.date());
                    url.push_str(&self.credential_suffix);
                }
                2 => url.push_str(when.date_time()),
                3 => {
                    // Writing to a String cannot fail.
                    let _ = write!(url, "{}", request.expires_in.secs());
                }
                _ => url.extend(utf8_percent_encode(signed_headers, QUERY_SET)),
            }
            fixed += 1;
        }
    }

    /// The cached key for the day of `when`, derived on the first use of each day.
    fn signing_key(&self, when: &Timestamp, at: time::OffsetDateTime) -> [u8; 32] {
        let cached = *self.cache.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = cached.filter(|c| c.day == when.julian_day) {
            return c.key;
        }
        let derived = generate_signing_key(
            self.secret.expose_secret(),
            SystemTime::from(at),
            &self.region,
            SERVICE,
        );
        let mut key = [0u8; 32];
        key.copy_from_slice(derived.as_ref());
        *self.cache.write().unwrap_or_else(PoisonError::into_inner) = Some(DayKey {
            day: when.julian_day,
            key,
        });
        key
    }
}

#[async_trait]
impl UrlSigner for SigV4Signer {
    async fn presign(&self, request: &PresignRequest) -> Result<PresignedUrl, Error> {
        self.presign_now(request)
    }
}

/// `YYYYMMDD'T'HHMMSS'Z'` in UTC, plus the day number for the key cache.
struct Timestamp {
    text: [u8; 16],
    julian_day: i32,
}

impl Timestamp {
    fn new(at: time::OffsetDateTime) -> Result<Self, Error> {
        let utc = at
            .checked_to_utc()
            .filter(|t| (0..=9999).contains(&t.year()))
            .ok_or_else(|| Error::internal("signing time out of range"))?;
        let mut text = *b"00000000T000000Z";
        let year = utc.year().unsigned_abs();
        put_digits(&mut text[0..4], year);
        put_digits(&mut text[4..6], u32::from(u8::from(utc.month())));
        put_digits(&mut text[6..8], u32::from(utc.day()));
        put_digits(&mut text[9..11], u32::from(utc.hour()));
        put_digits(&mut text[11..13], u32::from(utc.minute()));
        put_digits(&mut text[13..15], u32::from(utc.second()));
        Ok(Self {
            text,
            julian_day: utc.date().to_julian_day(),
        })
    }

    fn date_time(&self) -> &str {
        // Only ASCII digits, 'T' and 'Z' are ever written.
        std::str::from_utf8(&self.text).unwrap_or_default()
    }

    fn date(&self) -> &str {
        &self.date_time()[..8]
    }
}

fn put_digits(out: &mut [u8], mut n: u32) {
    for slot in out.iter_mut().rev() {
        // n % 10 < 10, so the cast cannot truncate.
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Splits `scheme://host[:port]` into an origin without the default port and the
/// `host` header value, both lowercased like HTTP clients send them.
fn normalise_origin(endpoint: &str) -> Result<(String, String), Error> {
    let bad = || Error::invalid("endpoint", "must be http(s)://host[:port]");
    let (scheme, authority) = endpoint.split_once("://").ok_or_else(bad)?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => "443",
        "http" => "80",
        _ => return Err(bad()),
    };
    let authority = authority.to_ascii_lowercase();
    // The port is after the last ':' unless that ':' is inside an IPv6 literal.
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h, Some(p)),
        _ => (authority.as_str(), None),
    };
    let host_ok = !host.is_empty()
        && if let Some(v6) = host.strip_prefix('[') {
            v6.strip_suffix(']').is_some_and(|a| {
                !a.is_empty()
                    && a.bytes()
                        .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            })
        } else {
            host.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    if !host_ok || !port_ok {
        return Err(bad());
    }
    let host_header = match port {
        Some(p) if p != default_port => format!("{host}:{p}"),
        _ => host.to_owned(),
    };
    Ok((format!("{scheme}://{host_header}"), host_header))
}

/// The headers to sign, `host` included, sorted by lowercase name.
///
/// Values must already be trimmed printable ASCII: the client replays them verbatim, so
/// anything a client or proxy could rewrite would break the signature.
fn canonical_headers<'a>(
    request: &'a PresignRequest,
    host: &'a str,
) -> Result<Vec<(&'a str, &'a str)>, Error> {
    let mut headers = Vec::with_capacity(request.headers.len() + 1);
    headers.push(("host", host));
    for (name, value) in &request.headers {
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(Error::invalid(
                "headers",
                "header names must be HTTP tokens",
            ));
        }
        if name.eq_ignore_ascii_case("host") {
            return Err(Error::invalid(
                "headers",
                "host is signed from the endpoint and cannot be set",
            ));
        }
        if value.trim() != value || !value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
            return Err(Error::invalid(
                "headers",
                format!("value of {name} must be trimmed printable ASCII"),
            ));
        }
        headers.push((name.as_str(), value.as_str()));
    }
    headers.sort_unstable_by(|a, b| cmp_lowercase(a.0, b.0));
    if headers
        .windows(2)
        .any(|w| w[0].0.eq_ignore_ascii_case(w[1].0))
    {
        return Err(Error::invalid("headers", "duplicate header name"));
    }
    Ok(headers)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn cmp_lowercase(a: &str, b: &str) -> std::cmp::Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

/// SigV4 `Trimall`: runs of spaces count as one (values are already trimmed).
fn update_trimmed_all(hasher: &mut Sha256, value: &str) {
    if !value.contains("  ") {
        hasher.update(value);
        return;
    }
    let mut prev_space = false;
    for part in value.split(' ') {
        if part.is_empty() {
            continue;
        }
        if prev_space {
            hasher.update(b" ");
        }
        hasher.update(part);
        prev_space = true;
    }
}

/// The caller's query parameters with encoded names, sorted as SigV4 requires (by the
/// encoded name, which can differ from the `BTreeMap` order of raw names).
fn encoded_query_keys(request: &PresignRequest) -> Result<Vec<(Cow<'_, str>, &str)>, Error> {
    let mut out = Vec::with_capacity(request.query.len());
    for (k, v) in &request.query {
        if k.is_empty() {
            return Err(Error::invalid("query", "parameter names must not be empty"));
        }
        if RESERVED_QUERY.iter().any(|r| r.eq_ignore_ascii_case(k)) {
            return Err(Error::invalid("query", format!("{k} is set by the signer")));
        }
        out.push((Cow::from(utf8_percent_encode(k, QUERY_SET)), v.as_str()));
    }
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{
        PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
        UriPathNormalizationMode, sign,
    };
    use aws_sigv4::sign::v4;
    use filegate_core::domain::{BucketName, Expiry, ObjectKey};
    use filegate_core::ports::HttpMethod;
    use std::collections::BTreeMap;
    use std::time::Duration;
    use time::OffsetDateTime;
    use time::macros::datetime;

    const AKID: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
    const SECRET: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
    const AT: OffsetDateTime = datetime!(2026-03-14 09:26:53 UTC);

    fn config(endpoint: &str, region: &str, akid: &str, secret: &str) -> R2Config {
        R2Config {
            account_id: None,
            access_key_id: akid.to_owned(),
            secret_access_key: SecretString::from(secret),
            bucket: BucketName::parse("filegate-media").unwrap(),
            endpoint: Some(endpoint.to_owned()),
            region: region.to_owned(),
        }
    }

    fn r2() -> R2Config {
        config(
            "https://acc0123.r2.cloudflarestorage.com",
            "auto",
            AKID,
            SECRET,
        )
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn request(method: HttpMethod, key: &str, at: OffsetDateTime) -> PresignRequest {
        PresignRequest {
            method,
            bucket: BucketName::parse("filegate-media").unwrap(),
            key: ObjectKey::parse(key).unwrap(),
            expires_in: Expiry::DEFAULT,
            signed_at: at,
            headers: BTreeMap::new(),
            query: BTreeMap::new(),
        }
    }

    /// Splits a URL into its part before `?` and its decoded query parameters.
    fn split_url(url: &str) -> (&str, BTreeMap<String, String>) {
        let (base, query) = url.split_once('?').unwrap();
        let params = query
            .split('&')
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap();
                let dec = |s: &str| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8()
                        .unwrap()
                        .into_owned()
                };
                (dec(k), dec(v))
            })
            .collect();
        (base, params)
    }

    /// Presigns with aws-sigv4's own canonicaliser. `path` is the already-encoded URL
    /// path, written by hand in each test so the encoding is checked independently.
    fn reference(
        cfg: &R2Config,
        req: &PresignRequest,
        path: &str,
    ) -> (String, BTreeMap<String, String>) {
        use std::fmt::Write as _;
        let mut uri = format!("{}{path}", cfg.endpoint_url().unwrap());
        let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
        for (i, (k, v)) in req.query.iter().enumerate() {
            uri.push(if i == 0 { '?' } else { '&' });
            let _ = write!(uri, "{}={}", enc(k), enc(v));
        }
        let identity = Credentials::new(
            cfg.access_key_id.clone(),
            cfg.secret_access_key.expose_secret().to_owned(),
            None,
            None,
            "test",
        )
        .into();
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_secs(req.expires_in.secs()));
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&cfg.region)
            .name("s3")
            .time(SystemTime::from(req.signed_at))
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let signable = SignableRequest::new(
            req.method.as_str(),
            uri,
            req.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::UnsignedPayload,
        )
        .unwrap();
        let (instructions, signature) = sign(signable, &params).unwrap().into_parts();
        let mut all: BTreeMap<String, String> = instructions
            .params()
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_string()))
            .collect();
        all.extend(req.query.clone());
        (signature, all)
    }

    /// Signs `req` with both implementations and checks they agree on the URL.
    fn assert_matches_reference(cfg: &R2Config, req: &PresignRequest, path: &str) -> String {
        let signer = SigV4Signer::new(cfg).unwrap();
        let ours = signer.presign_now(req).unwrap();
        let (expected_sig, expected_params) = reference(cfg, req, path);
        let (base, params) = split_url(&ours.url);
        assert_eq!(base, format!("{}{path}", signer.origin));
        assert_eq!(params, expected_params, "{}", ours.url);
        assert_eq!(params["X-Amz-Signature"], expected_sig);
        assert_eq!(ours.headers, req.headers);
        ours.url
    }

    #[test]
    fn signatures_match_the_aws_sigv4_reference() {
        let plain = request(HttpMethod::Put, "org/o1/report.pdf", AT);
        assert_matches_reference(&r2(), &plain, "/filegate-media/org/o1/report.pdf");

        let mut odd_key = request(HttpMethod::Put, "dir/a b+c%d~e é 東京 (1)!*'.txt", AT);
        odd_key.headers = map(&[
            ("Content-Type", "application/pdf"),
            ("Content-Length", "1234"),
        ]);
        assert_matches_reference(
            &r2(),
            &odd_key,
            "/filegate-media/dir/a%20b%2Bc%25d~e%20%C3%A9%20%E6%9D%B1%E4%BA%AC%20%281%29%21%2A%27.txt",
        );

        let mut download = request(HttpMethod::Get, "x/y z.txt", AT);
        download.expires_in = Expiry::from_secs(3600).unwrap();
        download.query = map(&[
            (
                "response-content-disposition",
                "attachment; filename=\"na_ve _q_.pdf\"; filename*=UTF-8''na%C3%AFve%20%22q%22.pdf",
            ),
            ("response-content-type", "application/pdf"),
        ]);
        let local = config("http://127.0.0.1:8788", "auto", AKID, SECRET);
        let url = assert_matches_reference(&local, &download, "/filegate-media/x/y%20z.txt");
        assert!(url.contains(
            "response-content-disposition=attachment%3B%20filename%3D%22na_ve%20_q_.pdf%22%3B%20filename%2A%3DUTF-8%27%27na%25C3%25AFve%2520%2522q%2522.pdf&"
        ));

        // Header names out of case order, a run of spaces, and query names whose encoded
        // order differs from their raw order.
        let mut mixed = request(HttpMethod::Head, "k", AT);
        mixed.headers = map(&[
            ("Content-Type", "text/plain"),
            ("accept", "*/*"),
            ("X-Amz-Meta-Note", "two  spaces"),
        ]);
        mixed.query = map(&[("a~", "1"), ("aé", "2"), ("a b", "3"), ("Z", "+ %")]);
        assert_matches_reference(&r2(), &mixed, "/filegate-media/k");

        let del = request(HttpMethod::Delete, "k", AT);
        for endpoint in ["https://s3.example.com:443", "https://s3.example.com:8443"] {
            let cfg = config(endpoint, "us-east-1", "AKIDEXAMPLE", "secret");
            assert_matches_reference(&cfg, &del, "/filegate-media/k");
        }
    }

    #[test]
    fn url_has_the_documented_shape() {
        let mut req = request(HttpMethod::Put, "org/o1/report.pdf", AT);
        req.headers = map(&[
            ("Content-Type", "application/pdf"),
            ("Content-Length", "10"),
        ]);
        let signed = SigV4Signer::new(&r2()).unwrap().presign_now(&req).unwrap();
        let (base, params) = split_url(&signed.url);
        assert_eq!(
            base,
            "https://acc0123.r2.cloudflarestorage.com/filegate-media/org/o1/report.pdf"
        );
        assert_eq!(params["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
        assert_eq!(
            params["X-Amz-Credential"],
            format!("{AKID}/20260314/auto/s3/aws4_request")
        );
        assert_eq!(params["X-Amz-Date"], "20260314T092653Z");
        assert_eq!(params["X-Amz-Expires"], "600");
        assert_eq!(
            params["X-Amz-SignedHeaders"],
            "content-length;content-type;host"
        );
        let sig = &params["X-Amz-Signature"];
        assert!(
            sig.len() == 64
                && sig
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(params.len(), 6);
        assert!(
            signed
                .url
                .contains("X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost")
        );
        assert_eq!(signed.headers, req.headers);
    }

    #[test]
    fn reproduces_the_aws_documentation_example() {
        // https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html
        // The example is virtual-hosted (bucket in the host), so the bucket stays out of the path.
        let cfg = config(
            "https://examplebucket.s3.amazonaws.com",
            "us-east-1",
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        );
        let mut req = request(
            HttpMethod::Get,
            "test.txt",
            datetime!(2013-05-24 00:00:00 UTC),
        );
        req.bucket = BucketName::parse("examplebucket").unwrap();
        req.expires_in = Expiry::from_secs(86_400).unwrap();
        let signed = SigV4Signer::new(&cfg)
            .unwrap()
            .presign_with(&req, false)
            .unwrap();
        assert_eq!(
            signed.url,
            "https://examplebucket.s3.amazonaws.com/test.txt\
             ?X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
             &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
    }

    #[test]
    fn cached_key_follows_the_utc_day() {
        let signer = SigV4Signer::new(&r2()).unwrap();
        let cfg = r2();
        let days = [
            datetime!(2026-03-14 23:59:59 UTC),
            datetime!(2026-03-15 00:00:00 UTC),
            // Same instant as the first, in another offset: still the 14th in UTC.
            datetime!(2026-03-15 01:59:59 +02:00),
            datetime!(2026-03-15 12:00:00 UTC),
        ];
        let mut dates = Vec::new();
        for at in days {
            let req = request(HttpMethod::Get, "a/b", at);
            let ours = signer.presign_now(&req).unwrap();
            let (sig, params) = reference(&cfg, &req, "/filegate-media/a/b");
            let (_, got) = split_url(&ours.url);
            assert_eq!(got, params);
            assert_eq!(got["X-Amz-Signature"], sig);
            dates.push(
                got["X-Amz-Credential"]
                    .split('/')
                    .nth(1)
                    .unwrap()
                    .to_owned(),
            );
        }
        assert_eq!(dates, ["20260314", "20260315", "20260314", "20260315"]);
    }

    #[test]
    fn unsignable_headers_and_query_are_validation_errors() {
        let signer = SigV4Signer::new(&r2()).unwrap();
        let bad_headers: [&[(&str, &str)]; 7] = [
            &[("Content-Type", "text/plain\nX-Evil: 1")],
            &[("Content-Type", " text/plain")],
            &[("Content-Type", "text/plain\t")],
            &[("Content-Type", "tëxt/plain")],
            &[("Bad Name", "x")],
            &[("Content-Type", "a"), ("content-type", "a")],
            &[("Host", "evil.example.com")],
        ];
        for headers in bad_headers {
            let mut req = request(HttpMethod::Put, "k", AT);
            req.headers = map(headers);
            let err = signer.presign_now(&req).unwrap_err();
            assert!(
                matches!(&err, Error::Validation(f) if f[0].field == "headers"),
                "{headers:?}: {err:?}"
            );
        }
        for query in [
            [("X-Amz-Signature", "x")],
            [("x-amz-date", "x")],
            [("", "x")],
        ] {
            let mut req = request(HttpMethod::Get, "k", AT);
            req.query = map(&query);
            let err = signer.presign_now(&req).unwrap_err();
            assert!(matches!(&err, Error::Validation(f) if f[0].field == "query"));
        }
    }

    #[test]
    fn debug_does_not_leak_the_secret() {
        let signer = SigV4Signer::new(&r2()).unwrap();
        // Fill the key cache too: the derived key must not show either.
        signer
            .presign_now(&request(HttpMethod::Get, "k", AT))
            .unwrap();
        let shown = format!("{signer:?}");
        assert!(shown.contains(AKID));
        assert!(!shown.contains(SECRET) && !shown.contains(&SECRET[..8]));
        assert!(!shown.contains("key:"));
    }

    #[test]
    fn endpoints_are_normalised_like_http_clients_send_them() {
        for (endpoint, origin, host) in [
            (
                "https://ACC.r2.cloudflarestorage.com:443",
                "https://acc.r2.cloudflarestorage.com",
                "acc.r2.cloudflarestorage.com",
            ),
            (
                "http://127.0.0.1:8788/",
                "http://127.0.0.1:8788",
                "127.0.0.1:8788",
            ),
            ("http://localhost:80", "http://localhost", "localhost"),
            ("http://[::1]:9000", "http://[::1]:9000", "[::1]:9000"),
            ("https://[::1]", "https://[::1]", "[::1]"),
        ] {
            let signer = SigV4Signer::new(&config(endpoint, "auto", AKID, SECRET)).unwrap();
            assert_eq!(
                (signer.origin.as_str(), signer.host.as_str()),
                (origin, host)
            );
        }
        for bad in [
            "https://user@host",
            "https://host:",
            "https://host:x1",
            "ftp://host",
            "https://[::1",
        ] {
            let err = SigV4Signer::new(&config(bad, "auto", AKID, SECRET)).unwrap_err();
            assert!(
                matches!(&err, Error::Validation(f) if f[0].field == "endpoint"),
                "{bad}"
            );
        }
        assert!(SigV4Signer::new(&config("https://h", "Auto", AKID, SECRET)).is_err());
        assert!(SigV4Signer::new(&config("https://h", "auto", "", SECRET)).is_err());
        assert!(SigV4Signer::new(&config("https://h", "auto", AKID, "")).is_err());
    }

    /// aws-sdk-s3 encodes keys itself, so agreeing with it checks our key encoding
    /// against a second implementation.
    #[tokio::test]
    async fn urls_match_aws_sdk_s3_presigned_put() {
        use aws_sdk_s3::presigning::PresigningConfig;
        let cfg = r2();
        let client = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::new()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .region(aws_sdk_s3::config::Region::new("auto"))
                .endpoint_url(cfg.endpoint_url().unwrap())
                .force_path_style(true)
                .credentials_provider(Credentials::new(AKID, SECRET, None, None, "test"))
                .build(),
        );
        let signer = SigV4Signer::new(&cfg).unwrap();
        for key in [
            "plain.txt",
            "dir/a b+c%d~e é 東京 (1)!*'.txt",
            "a/b=c&d?e#f;g,h:i@j$k",
        ] {
            let sdk = client
                .put_object()
                .bucket("filegate-media")
                .key(key)
                .content_type("application/pdf")
                .presigned(
                    PresigningConfig::builder()
                        .start_time(SystemTime::from(AT))
                        .expires_in(Duration::from_mins(10))
                        .build()
                        .unwrap(),
                )
                .await
                .unwrap();
            let mut req = request(HttpMethod::Put, key, AT);
            req.headers = map(&[("Content-Type", "application/pdf")]);
            // The SDK tags presigned URLs with the operation; sign the same parameter.
            req.query = map(&[("x-id", "PutObject")]);
            let ours = signer.presign_now(&req).unwrap();
            let (sdk_base, sdk_params) = split_url(sdk.uri());
            let (base, params) = split_url(&ours.url);
            assert_eq!(base, sdk_base);
            assert_eq!(params, sdk_params);
        }
    }
}
