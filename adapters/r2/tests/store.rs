//! `S3ObjectStore` and `SigV4Signer` against the embedded s3s endpoint: the object store
//! contract, error mapping, CORS, and presigned URLs verified by a real SigV4 checker.

use bytes::Bytes;
use filegate_core::Error;
use filegate_core::domain::{BucketName, Expiry, ObjectKey, content_disposition_attachment};
use filegate_core::error::Resource;
use filegate_core::ports::{
    HttpMethod, ObjectStore, PresignRequest, PresignedUrl, PutObject, UrlSigner,
};
use filegate_embedded_s3::{EmbeddedS3, EmbeddedS3Config};
use filegate_r2::{R2Config, S3ObjectStore, SigV4Signer};
use futures::StreamExt;
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use time::OffsetDateTime;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const AKID: &str = "AKIDFILEGATETEST0001";
const SECRET: &str = "filegate-test-secret-key-0123456789abcdef";
const ORIGIN: &str = "https://app.example.com";
/// Long enough for a cold debug build, short enough to catch a hang.
const NO_HANG: Duration = Duration::from_secs(45);

struct Fixture {
    s3: EmbeddedS3,
    store: S3ObjectStore,
    signer: SigV4Signer,
    bucket: BucketName,
    _dir: tempfile::TempDir,
}

fn r2_config(endpoint: String, secret: &str, bucket: &BucketName) -> R2Config {
    R2Config {
        account_id: None,
        access_key_id: AKID.to_owned(),
        secret_access_key: SecretString::from(secret.to_owned()),
        bucket: bucket.clone(),
        endpoint: Some(endpoint),
        region: "auto".to_owned(),
    }
}

async fn fixture() -> Result<Fixture, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let s3 = EmbeddedS3::start(EmbeddedS3Config {
        root: dir.path().join("data"),
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        access_key_id: AKID.to_owned(),
        secret_access_key: SECRET.to_owned(),
        allowed_origins: vec![ORIGIN.to_owned()],
    })
    .await?;
    let bucket = BucketName::parse("filegate-test")?;
    let config = r2_config(s3.endpoint(), SECRET, &bucket);
    let store = S3ObjectStore::new(&config)?;
    store.ensure_bucket(&bucket).await?;
    let signer = SigV4Signer::new(&config)?;
    Ok(Fixture {
        s3,
        store,
        signer,
        bucket,
        _dir: dir,
    })
}

fn put_bytes(data: &'static [u8]) -> PutObject {
    PutObject {
        content_length: data.len() as u64,
        content_type: None,
        body: futures::stream::iter([Ok(Bytes::from_static(data))]).boxed(),
    }
}

async fn assert_absent(f: &Fixture, key: &ObjectKey) {
    match f.store.head(&f.bucket, key).await {
        Err(Error::NotFound(Resource::Object)) => {}
        other => panic!("expected {key} to be absent, head gave {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Object store
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn s3_object_store_passes_the_contract_on_embedded_s3() -> TestResult {
    let f = fixture().await?;
    f.store.ensure_bucket(&f.bucket).await?; // a second time is fine
    filegate_testkit::object_store::object_store_contract(&f.store, &f.bucket).await;
    f.s3.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn ping_tells_a_missing_bucket() -> TestResult {
    let f = fixture().await?;
    f.store.ping(&f.bucket).await?;
    let other = BucketName::parse("never-created")?;
    assert!(matches!(
        f.store.ping(&other).await,
        Err(Error::NotFound(Resource::Bucket))
    ));
    Ok(())
}

#[tokio::test]
async fn wrong_credentials_fail_fast() -> TestResult {
    let f = fixture().await?;
    let bad = S3ObjectStore::new(&r2_config(f.s3.endpoint(), "not-the-secret", &f.bucket))?;
    let ping = tokio::time::timeout(NO_HANG, bad.ping(&f.bucket)).await?;
    assert!(matches!(ping, Err(Error::Internal { .. })), "{ping:?}");
    let key = ObjectKey::parse("a.txt")?;
    let put = tokio::time::timeout(NO_HANG, bad.put(&f.bucket, &key, put_bytes(b"x"))).await?;
    assert!(matches!(put, Err(Error::Internal { .. })), "{put:?}");
    assert_absent(&f, &key).await;
    Ok(())
}

#[tokio::test]
async fn an_unreachable_store_is_unavailable() -> TestResult {
    // A port that was free a moment ago: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let bucket = BucketName::parse("filegate-test")?;
    let store = S3ObjectStore::new(&r2_config(
        format!("http://127.0.0.1:{port}"),
        SECRET,
        &bucket,
    ))?;
    let ping = tokio::time::timeout(NO_HANG, store.ping(&bucket)).await?;
    assert!(matches!(ping, Err(Error::Unavailable { .. })), "{ping:?}");
    Ok(())
}

#[tokio::test]
async fn a_bad_endpoint_is_a_validation_error() -> TestResult {
    let bucket = BucketName::parse("filegate-test")?;
    let err = S3ObjectStore::new(&r2_config("ftp://x".into(), SECRET, &bucket)).err();
    assert!(matches!(err, Some(Error::Validation(_))), "{err:?}");
    Ok(())
}

/// Suffix ranges as S3 serves them: longer than the object is all of it, on an empty
/// object nothing is satisfiable.
#[tokio::test]
async fn suffix_ranges_behave_like_s3() -> TestResult {
    use filegate_core::ports::ByteRange;
    let f = fixture().await?;
    let empty = ObjectKey::parse("empty.bin")?;
    f.store.put(&f.bucket, &empty, put_bytes(b"")).await?;
    let r = f
        .store
        .get(&f.bucket, &empty, Some(ByteRange::Suffix(5)))
        .await;
    // Not satisfiable, with the size for `Content-Range: bytes */0`.
    assert!(
        matches!(r, Err(Error::RangeNotSatisfiable { size: 0 })),
        "{r:?}"
    );
    let small = ObjectKey::parse("small.bin")?;
    f.store.put(&f.bucket, &small, put_bytes(b"abc")).await?;
    let got = f
        .store
        .get(&f.bucket, &small, Some(ByteRange::Suffix(10)))
        .await?;
    assert_eq!(got.range, Some((0, 2)));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// CORS
// ---------------------------------------------------------------------------------------

async fn preflight(endpoint: &str, origin: &str) -> Result<reqwest::Response, reqwest::Error> {
    reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            format!("{endpoint}/filegate-test/some/key.pdf"),
        )
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "PUT")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn cors_preflight_allows_a_listed_origin() -> TestResult {
    let f = fixture().await?;
    let resp = preflight(&f.s3.endpoint(), ORIGIN).await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "access-control-allow-origin"), Some(ORIGIN));
    let methods = header(&resp, "access-control-allow-methods").unwrap_or_default();
    for m in ["GET", "PUT", "HEAD"] {
        assert!(methods.contains(m), "allow-methods {methods:?} lacks {m}");
    }
    let allowed = header(&resp, "access-control-allow-headers").unwrap_or_default();
    assert!(
        allowed.to_ascii_lowercase().contains("content-type"),
        "{allowed:?}"
    );
    assert_eq!(header(&resp, "access-control-max-age"), Some("3600"));
    Ok(())
}

#[tokio::test]
async fn cors_preflight_denies_other_origins() -> TestResult {
    let f = fixture().await?;
    let resp = preflight(&f.s3.endpoint(), "https://evil.example.com").await?;
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Presigned URLs
// ---------------------------------------------------------------------------------------

fn presign_request(
    method: HttpMethod,
    bucket: &BucketName,
    key: &ObjectKey,
    headers: &[(&str, &str)],
    query: &[(&str, &str)],
) -> PresignRequest {
    PresignRequest {
        method,
        bucket: bucket.clone(),
        key: key.clone(),
        expires_in: Expiry::DEFAULT,
        signed_at: OffsetDateTime::now_utc(),
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
        query: query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// Sends a PUT like a browser would: the signed headers replayed (except Content-Length,
/// which the HTTP client derives from the body), with `overrides` replacing or adding headers.
async fn upload(
    presigned: &PresignedUrl,
    body: &'static [u8],
    overrides: &[(&str, &str)],
) -> Result<reqwest::Response, reqwest::Error> {
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in &presigned.headers {
        if !name.eq_ignore_ascii_case("content-length") {
            headers.insert(
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                value.parse().expect("header value"),
            );
        }
    }
    for (name, value) in overrides {
        headers.insert(
            reqwest::header::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            value.parse().expect("header value"),
        );
    }
    reqwest::Client::new()
        .put(&presigned.url)
        .headers(headers)
        .body(body)
        .send()
        .await
}

async fn presigned_put(f: &Fixture, key: &ObjectKey, len: usize) -> Result<PresignedUrl, Error> {
    let len = len.to_string();
    let headers = [
        ("Content-Type", "application/pdf"),
        ("Content-Length", len.as_str()),
    ];
    f.signer
        .presign(&presign_request(
            HttpMethod::Put,
            &f.bucket,
            key,
            &headers,
            &[],
        ))
        .await
}

#[tokio::test]
async fn presigned_put_and_get_round_trip() -> TestResult {
    let f = fixture().await?;
    let key = ObjectKey::parse("org/o1/Résumé 2026 (final).pdf")?;
    let body: &'static [u8] = b"%PDF-1.7 pretend";
    let put = presigned_put(&f, &key, body.len()).await?;
    let resp = upload(&put, body, &[]).await?;
    assert_eq!(resp.status(), 200, "{}", resp.text().await?);

    let meta = f.store.head(&f.bucket, &key).await?;
    assert_eq!(meta.size, body.len() as u64);
    assert_eq!(meta.content_type.as_deref(), Some("application/pdf"));
    // s3s-fs: the hex MD5 of the content, handed back without its quotes.
    let etag = meta.etag.clone().unwrap_or_default();
    assert!(
        etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit()),
        "{etag:?}"
    );

    let get = f
        .signer
        .presign(&presign_request(HttpMethod::Get, &f.bucket, &key, &[], &[]))
        .await?;
    let resp = reqwest::get(&get.url).await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "etag").map(|e| e.trim_matches('"').to_owned()),
        meta.etag
    );
    assert_eq!(resp.bytes().await?.as_ref(), body);
    Ok(())
}

/// Create-only PUTs (`If-None-Match: *` signed in, as managed presigns send them): of many
/// at once exactly one lands, the others get 412, and a later one cannot replace it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_only_puts_of_one_key_let_exactly_one_land() -> TestResult {
    let f = fixture().await?;
    let key = ObjectKey::parse("org/o1/once.pdf")?;
    let bodies: Vec<&'static [u8]> = (0..8)
        .map(|i| {
            &*Box::leak(
                format!("create-only body {i:02}")
                    .into_bytes()
                    .into_boxed_slice(),
            )
        })
        .collect();
    let len = bodies[0].len().to_string();
    let put = f
        .signer
        .presign(&presign_request(
            HttpMethod::Put,
            &f.bucket,
            &key,
            &[
                ("Content-Type", "application/pdf"),
                ("Content-Length", len.as_str()),
                ("If-None-Match", "*"),
            ],
            &[],
        ))
        .await?;
    let tasks: Vec<_> = bodies
        .iter()
        .map(|b| {
            let put = put.clone();
            let b: &'static [u8] = b;
            tokio::spawn(async move { upload(&put, b, &[]).await.map(|r| r.status().as_u16()) })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await??);
    }
    let won: Vec<usize> = (0..statuses.len())
        .filter(|i| statuses[*i] == 200)
        .collect();
    assert_eq!(won.len(), 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 412),
        "{statuses:?}"
    );
    let got = f.store.get(&f.bucket, &key, None).await?;
    let bytes: Vec<u8> = got
        .body
        .map(|c| c.map(|b| b.to_vec()))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?
        .concat();
    assert_eq!(bytes, bodies[won[0]]);
    // Replaying the URL later changes nothing.
    let resp = upload(&put, bodies[(won[0] + 1) % 8], &[]).await?;
    assert_eq!(resp.status(), 412);
    Ok(())
}

#[tokio::test]
async fn a_browser_put_gets_cors_headers_and_can_read_the_etag() -> TestResult {
    let f = fixture().await?;
    let key = ObjectKey::parse("cors/upload.pdf")?;
    let put = presigned_put(&f, &key, 3).await?;
    // Origin is not signed: browsers add it and the signature must still hold.
    let resp = upload(&put, b"abc", &[("Origin", ORIGIN)]).await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "access-control-allow-origin"), Some(ORIGIN));
    let exposed = header(&resp, "access-control-expose-headers").unwrap_or_default();
    assert!(exposed.to_ascii_lowercase().contains("etag"), "{exposed:?}");
    assert!(header(&resp, "etag").is_some());
    Ok(())
}

#[tokio::test]
async fn a_tampered_signature_is_refused() -> TestResult {
    let f = fixture().await?;
    let key = ObjectKey::parse("tampered.pdf")?;
    let mut put = presigned_put(&f, &key, 3).await?;
    let at = put.url.find("X-Amz-Signature=").ok_or("no signature")? + "X-Amz-Signature=".len();
    let flipped = if put.url.as_bytes()[at] == b'0' {
        "1"
    } else {
        "0"
    };
    put.url.replace_range(at..=at, flipped);
    let resp = upload(&put, b"abc", &[]).await?;
    assert_eq!(resp.status(), 403);
    assert_absent(&f, &key).await;
    Ok(())
}

#[tokio::test]
async fn another_content_type_than_signed_is_refused() -> TestResult {
    let f = fixture().await?;
    let key = ObjectKey::parse("typed.pdf")?;
    let put = presigned_put(&f, &key, 3).await?;
    let resp = upload(&put, b"abc", &[("Content-Type", "text/html")]).await?;
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await?.contains("SignatureDoesNotMatch"));
    assert_absent(&f, &key).await;
    Ok(())
}

#[tokio::test]
async fn a_body_of_another_size_than_signed_is_refused() -> TestResult {
    let f = fixture().await?;
    let key = ObjectKey::parse("sized.pdf")?;
    let put = presigned_put(&f, &key, 3).await?;
    for body in [&b"abcd"[..], &b"ab"[..]] {
        let resp = upload(&put, body, &[]).await?;
        assert_eq!(
            resp.status(),
            403,
            "{} bytes against a signed 3",
            body.len()
        );
        assert!(resp.text().await?.contains("SignatureDoesNotMatch"));
    }
    assert_absent(&f, &key).await;
    Ok(())
}

/// An honest Content-Length but a body cut short (client gone): nothing is stored.
#[tokio::test]
async fn a_body_cut_short_stores_nothing() -> TestResult {
    use std::io::{Read, Write};
    let f = fixture().await?;
    let key = ObjectKey::parse("cut.pdf")?;
    let put = presigned_put(&f, &key, 10).await?;
    let addr = f.s3.local_addr();
    let path = put
        .url
        .strip_prefix(&f.s3.endpoint())
        .ok_or("url is not on the endpoint")?
        .to_owned();
    let response = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let mut tcp = std::net::TcpStream::connect(addr)?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            tcp,
            "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/pdf\r\nContent-Length: 10\r\n\r\n12345"
        )?;
        tcp.shutdown(std::net::Shutdown::Write)?;
        let mut out = Vec::new();
        // The server may reset instead of answering; either way the upload is over.
        let _ = tcp.read_to_end(&mut out);
        Ok(String::from_utf8_lossy(&out).into_owned())
    })
    .await??;
    assert!(!response.starts_with("HTTP/1.1 200"), "{response}");
    // The handler may still be unwinding when the socket closes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_absent(&f, &key).await;
    Ok(())
}

#[tokio::test]
async fn an_expired_url_is_refused() -> TestResult {
    let f = fixture().await?;
    let key = ObjectKey::parse("late.pdf")?;
    f.store.put(&f.bucket, &key, put_bytes(b"old")).await?;
    let mut request = presign_request(HttpMethod::Get, &f.bucket, &key, &[], &[]);
    request.signed_at = OffsetDateTime::now_utc() - time::Duration::hours(2);
    request.expires_in = Expiry::from_secs(60)?;
    let get = f.signer.presign(&request).await?;
    let resp = reqwest::get(&get.url).await?;
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await?.contains("AccessDenied"));
    Ok(())
}

#[tokio::test]
async fn a_url_signed_in_the_future_is_refused() -> TestResult {
    let f = fixture().await?;
    let key = ObjectKey::parse("early.pdf")?;
    f.store.put(&f.bucket, &key, put_bytes(b"new")).await?;
    let mut request = presign_request(HttpMethod::Get, &f.bucket, &key, &[], &[]);
    request.signed_at = OffsetDateTime::now_utc() + time::Duration::hours(1);
    let get = f.signer.presign(&request).await?;
    let resp = reqwest::get(&get.url).await?;
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await?.contains("RequestTimeTooSkewed"));
    Ok(())
}

#[tokio::test]
async fn a_presigned_get_can_set_content_disposition() -> TestResult {
    let f = fixture().await?;
    let key = ObjectKey::parse("files/abc123-report.pdf")?;
    f.store.put(&f.bucket, &key, put_bytes(b"pdf")).await?;
    let disposition = content_disposition_attachment("Quarterly report – Q1 \"final\".pdf");
    let get = f
        .signer
        .presign(&presign_request(
            HttpMethod::Get,
            &f.bucket,
            &key,
            &[],
            &[("response-content-disposition", disposition.as_str())],
        ))
        .await?;
    let resp = reqwest::get(&get.url).await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "content-disposition"),
        Some(disposition.as_str())
    );
    Ok(())
}

/// The embedded endpoint refuses a URL valid for more than 7 days like AWS and R2 (s3s
/// alone would accept it): one signed for 8 days with an independent signer (aws-sigv4)
/// gets 403 `AccessDenied`.
#[tokio::test]
async fn embedded_s3_caps_expiry_at_seven_days() -> TestResult {
    use aws_sigv4::http_request::{
        PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
        UriPathNormalizationMode, sign,
    };
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

    let f = fixture().await?;
    let key = ObjectKey::parse("long-lived.txt")?;
    f.store
        .put(&f.bucket, &key, put_bytes(b"still here"))
        .await?;

    let identity = aws_credential_types::Credentials::new(AKID, SECRET, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_hours(192));
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("auto")
        .name("s3")
        .time(std::time::SystemTime::now())
        .settings(settings)
        .build()?
        .into();
    let url = format!("{}/{}/{}", f.s3.endpoint(), f.bucket, key);
    let host = f.s3.local_addr().to_string();
    let signable = SignableRequest::new(
        "GET",
        url.as_str(),
        [("host", host.as_str())].into_iter(),
        SignableBody::UnsignedPayload,
    )?;
    let (_, query) = sign(signable, &params)?.into_parts().0.into_parts();
    let query: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, NON_ALPHANUMERIC)))
        .collect();
    let resp = reqwest::get(format!("{url}?{}", query.join("&"))).await?;
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await?.contains("AccessDenied"));
    Ok(())
}
