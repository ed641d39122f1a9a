//! The embedded endpoint through a real S3 client (aws-sdk-s3), on port 0: the behaviours
//! R2 documents and filegate relies on, and a regression test for each way the previous
//! s3s-fs store lost or corrupted data (issue 14). Kept quick: CI has 2 cores.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, Delete, EncodingType, MetadataDirective,
    ObjectIdentifier,
};
use filegate_embedded_s3::{EmbeddedS3, EmbeddedS3Config};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const AKID: &str = "AKIDCONFORMANCE00001";
const SECRET: &str = "conformance-secret-key-0123456789abcdefgh";
const BUCKET: &str = "conformance";
const MIB: usize = 1024 * 1024;

struct Fixture {
    s3: EmbeddedS3,
    client: Client,
    dir: tempfile::TempDir,
}

fn client(endpoint: &str) -> Client {
    let creds = aws_credential_types::Credentials::new(AKID, SECRET, None, None, "test");
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(creds)
        .build();
    Client::from_conf(conf)
}

async fn start(root: &Path) -> Result<EmbeddedS3, Box<dyn std::error::Error>> {
    Ok(EmbeddedS3::start(EmbeddedS3Config {
        root: root.to_path_buf(),
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        access_key_id: AKID.to_owned(),
        secret_access_key: SECRET.to_owned(),
        allowed_origins: vec![],
    })
    .await?)
}

async fn fixture() -> Result<Fixture, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let s3 = start(&dir.path().join("objects")).await?;
    let client = client(&s3.endpoint());
    client.create_bucket().bucket(BUCKET).send().await?;
    Ok(Fixture { s3, client, dir })
}

impl Fixture {
    async fn put(&self, key: &str, body: &[u8]) -> Result<String, Box<dyn std::error::Error>> {
        let out = self
            .client
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await?;
        Ok(out.e_tag().unwrap_or_default().to_owned())
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        let out = self
            .client
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await?;
        Ok(out.body.collect().await?.into_bytes().to_vec())
    }

    async fn keys(&self, prefix: Option<&str>) -> Result<Vec<String>, Box<dyn std::error::Error>> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(BUCKET)
                .set_prefix(prefix.map(str::to_owned))
                .set_continuation_token(token)
                .send()
                .await?;
            keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            token = out.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                return Ok(keys);
            }
        }
    }
}

fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or_default().to_owned()
}

fn status<E, R: HttpStatus>(e: &aws_sdk_s3::error::SdkError<E, R>) -> u16 {
    e.raw_response().map_or(0, HttpStatus::status_code)
}

trait HttpStatus {
    fn status_code(&self) -> u16;
}

impl HttpStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

fn md5_hex(data: &[u8]) -> String {
    use s3s::crypto::{Checksum as _, Md5};
    let mut h = Md5::new();
    h.update(data);
    hex::encode(h.finalize())
}

fn quoted(s: &str) -> String {
    format!("\"{s}\"")
}

// ---------------------------------------------------------------------------------------
// Refused writes leave the old object (s3s-fs wrote the new bytes, then answered 400).
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_put_with_a_bad_content_md5_or_checksum_changes_nothing() -> TestResult {
    let f = fixture().await?;
    let etag = f.put("doc.txt", b"old body").await?;
    assert_eq!(etag, quoted(&md5_hex(b"old body")));

    let wrong_md5 = {
        use base64::Engine as _;
        use s3s::crypto::{Checksum as _, Md5};
        let mut h = Md5::new();
        h.update(b"something else");
        base64::engine::general_purpose::STANDARD.encode(h.finalize())
    };
    let err = f
        .client
        .put_object()
        .bucket(BUCKET)
        .key("doc.txt")
        .content_md5(wrong_md5)
        .body(ByteStream::from_static(b"new body"))
        .send()
        .await
        .err()
        .ok_or("a wrong Content-MD5 was accepted")?;
    assert_eq!(code(&err), "BadDigest");

    for (algo, value) in [
        ("crc32", "AAAAAA=="),
        ("sha256", "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="),
    ] {
        let mut put = f
            .client
            .put_object()
            .bucket(BUCKET)
            .key("doc.txt")
            .body(ByteStream::from_static(b"new body"));
        put = match algo {
            "crc32" => put.checksum_crc32(value),
            _ => put.checksum_sha256(value),
        };
        let err = put
            .send()
            .await
            .err()
            .ok_or("a wrong checksum was accepted")?;
        assert_eq!(code(&err), "BadDigest", "{algo}");
    }

    let got = f
        .client
        .get_object()
        .bucket(BUCKET)
        .key("doc.txt")
        .send()
        .await?;
    assert_eq!(got.e_tag(), Some(quoted(&md5_hex(b"old body")).as_str()));
    assert_eq!(got.body.collect().await?.into_bytes().as_ref(), b"old body");
    Ok(())
}

#[tokio::test]
async fn checksums_are_verified_stored_and_returned() -> TestResult {
    let f = fixture().await?;
    // CRC32 of "hello world".
    let put = f
        .client
        .put_object()
        .bucket(BUCKET)
        .key("hello.txt")
        .checksum_crc32("DUoRhQ==")
        .body(ByteStream::from_static(b"hello world"))
        .send()
        .await?;
    assert_eq!(put.checksum_crc32(), Some("DUoRhQ=="));
    let head = f
        .client
        .head_object()
        .bucket(BUCKET)
        .key("hello.txt")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await?;
    assert_eq!(head.checksum_crc32(), Some("DUoRhQ=="));
    // Only when asked for, as S3 does.
    let plain = f
        .client
        .head_object()
        .bucket(BUCKET)
        .key("hello.txt")
        .send()
        .await?;
    assert_eq!(plain.checksum_crc32(), None);
    // The SDK's own default (a CRC32 trailer on an aws-chunked body) also lands.
    let sdk = f
        .client
        .put_object()
        .bucket(BUCKET)
        .key("sdk.txt")
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc32C)
        .body(ByteStream::from_static(b"hello world"))
        .send()
        .await?;
    assert!(sdk.checksum_crc32_c().is_some());
    assert_eq!(f.get("sdk.txt").await?, b"hello world");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Buckets.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn deleting_a_bucket_with_objects_is_refused_and_keeps_them() -> TestResult {
    let f = fixture().await?;
    f.put("keep/me.txt", b"precious").await?;
    let err = f
        .client
        .delete_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .err()
        .ok_or("a non-empty bucket was deleted")?;
    assert_eq!(code(&err), "BucketNotEmpty");
    assert_eq!(status(&err), 409);
    assert_eq!(f.get("keep/me.txt").await?, b"precious");

    f.client
        .delete_object()
        .bucket(BUCKET)
        .key("keep/me.txt")
        .send()
        .await?;
    f.client.delete_bucket().bucket(BUCKET).send().await?;
    let err = f
        .client
        .head_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .err()
        .ok_or("bucket still there")?;
    assert_eq!(status(&err), 404);
    Ok(())
}

#[tokio::test]
async fn invalid_bucket_names_are_refused() -> TestResult {
    let f = fixture().await?;
    for name in [
        "ab",
        "a_b",
        "-abc",
        "abc-",
        "a..b",
        "192.168.1.1",
        "xn--abc",
        "x".repeat(64).as_str(),
        "abc-s3alias",
    ] {
        let err = f.client.create_bucket().bucket(name).send().await.err();
        let err = err.ok_or_else(|| format!("{name:?} was accepted"))?;
        assert!(
            ["InvalidBucketName", "InvalidRequest"].contains(&code(&err).as_str())
                || status(&err) == 400,
            "{name:?}: {err:?}"
        );
    }
    // Re-creating one's own bucket is a 200 that keeps its objects (S3's us-east-1).
    f.put("stays", b"1").await?;
    f.client.create_bucket().bucket(BUCKET).send().await?;
    assert_eq!(f.get("stays").await?, b"1");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Keys are strings, not paths.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn keys_of_any_shape_are_just_strings() -> TestResult {
    let f = fixture().await?;
    f.client.create_bucket().bucket("victim").send().await?;
    f.client
        .put_object()
        .bucket("victim")
        .key("x.txt")
        .body(ByteStream::from_static(b"safe"))
        .send()
        .await?;
    f.put("../victim/x.txt", b"evil").await?;
    let victim = f
        .client
        .get_object()
        .bucket("victim")
        .key("x.txt")
        .send()
        .await?;
    assert_eq!(victim.body.collect().await?.into_bytes().as_ref(), b"safe");
    assert_eq!(f.get("../victim/x.txt").await?, b"evil");

    f.put("a//b", b"double").await?;
    f.put("foo/bar", b"file").await?;
    f.put("foo/bar/x", b"below").await?;
    f.put("trailing/", b"").await?;
    assert_eq!(f.get("foo/bar").await?, b"file");
    assert_eq!(f.get("foo/bar/x").await?, b"below");
    assert_eq!(
        f.keys(None).await?,
        [
            "../victim/x.txt",
            "a//b",
            "foo/bar",
            "foo/bar/x",
            "trailing/"
        ]
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Listing.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn listings_encode_keys_page_without_duplicates_and_honour_prefixes() -> TestResult {
    let f = fixture().await?;
    for k in [
        "/root",
        "asdf+b",
        "asdf b",
        "dir/a",
        "dir/b",
        "dir/sub/c",
        "z%41",
    ] {
        f.put(k, b"x").await?;
    }
    // encoding-type=url: keys come percent-encoded (boto3 asks for it and decodes).
    let out = f
        .client
        .list_objects_v2()
        .bucket(BUCKET)
        .encoding_type(EncodingType::Url)
        .send()
        .await?;
    let keys: Vec<_> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(
        keys,
        [
            "/root",
            "asdf%20b",
            "asdf%2Bb",
            "dir/a",
            "dir/b",
            "dir/sub/c",
            "z%2541"
        ]
    );
    let v1 = f
        .client
        .list_objects()
        .bucket(BUCKET)
        .encoding_type(EncodingType::Url)
        .delimiter("/")
        .send()
        .await?;
    let prefixes: Vec<_> = v1
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, ["/", "dir/"]);

    // v1 paging one key at a time: every key exactly once.
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = f
            .client
            .list_objects()
            .bucket(BUCKET)
            .max_keys(1)
            .set_marker(marker.clone())
            .send()
            .await?;
        seen.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
        if !page.is_truncated().unwrap_or(false) {
            break;
        }
        marker = page
            .next_marker()
            .map(str::to_owned)
            .or_else(|| seen.last().cloned());
    }
    assert_eq!(seen, f.keys(None).await?);
    assert_eq!(seen.len(), 7);

    // Prefix "/" is a prefix like any other.
    assert_eq!(f.keys(Some("/")).await?, ["/root"]);
    assert_eq!(f.keys(Some("dir/")).await?, ["dir/a", "dir/b", "dir/sub/c"]);

    // Delimited v2 paging, two at a time: objects and rolled-up prefixes, in order, once.
    let mut entries = Vec::new();
    let mut token = None;
    loop {
        let page = f
            .client
            .list_objects_v2()
            .bucket(BUCKET)
            .delimiter("/")
            .max_keys(2)
            .set_continuation_token(token)
            .send()
            .await?;
        for o in page.contents() {
            entries.push(o.key().unwrap_or_default().to_owned());
        }
        for p in page.common_prefixes() {
            entries.push(p.prefix().unwrap_or_default().to_owned());
        }
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    entries.sort();
    assert_eq!(entries, ["/", "asdf b", "asdf+b", "dir/", "z%41"]);

    let start_after = f
        .client
        .list_objects_v2()
        .bucket(BUCKET)
        .start_after("dir/a")
        .send()
        .await?;
    let keys: Vec<_> = start_after
        .contents()
        .iter()
        .filter_map(|o| o.key())
        .collect();
    assert_eq!(keys, ["dir/b", "dir/sub/c", "z%41"]);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Conditional requests.
// ---------------------------------------------------------------------------------------

/// An unsatisfiable range is 416 with `Content-Range: bytes */<size>` (RFC 9110), so a
/// client (filegate's own 416 among them) learns the size without another request.
#[tokio::test]
async fn an_unsatisfiable_range_says_the_size() -> TestResult {
    let f = fixture().await?;
    f.put("twenty", b"01234567890123456789").await?;
    f.put("empty", b"").await?;
    for (key, range, size) in [
        ("twenty", "bytes=20-", 20),
        ("twenty", "bytes=100-200", 20),
        ("empty", "bytes=-5", 0),
    ] {
        let err = f
            .client
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .range(range)
            .send()
            .await
            .expect_err(range);
        assert_eq!(status(&err), 416, "{key} {range}");
        let content_range = err
            .raw_response()
            .and_then(|r| r.headers().get("content-range"))
            .map(str::to_owned);
        assert_eq!(
            content_range.as_deref(),
            Some(format!("bytes */{size}").as_str()),
            "{key} {range}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn conditional_reads_answer_412_and_304() -> TestResult {
    let f = fixture().await?;
    let etag = f.put("c.txt", b"v1").await?;
    let past = aws_sdk_s3::primitives::DateTime::from(SystemTime::now() - Duration::from_hours(1));
    let future =
        aws_sdk_s3::primitives::DateTime::from(SystemTime::now() + Duration::from_hours(1));

    let get = || f.client.get_object().bucket(BUCKET).key("c.txt");
    let e = get()
        .if_match("\"0123\"")
        .send()
        .await
        .err()
        .ok_or("If-Match ignored")?;
    assert_eq!(status(&e), 412);
    let e = get()
        .if_none_match(&etag)
        .send()
        .await
        .err()
        .ok_or("If-None-Match ignored")?;
    assert_eq!(status(&e), 304);
    let e = get()
        .if_modified_since(future)
        .send()
        .await
        .err()
        .ok_or("If-Modified-Since ignored")?;
    assert_eq!(status(&e), 304);
    let e = get()
        .if_unmodified_since(past)
        .send()
        .await
        .err()
        .ok_or("If-Unmodified-Since ignored")?;
    assert_eq!(status(&e), 412);
    assert!(get().if_match(&etag).send().await.is_ok());
    assert!(get().if_none_match("\"other\"").send().await.is_ok());
    assert!(get().if_modified_since(past).send().await.is_ok());
    // If-Match wins over a failing If-Unmodified-Since (RFC 9110).
    assert!(
        get()
            .if_match(&etag)
            .if_unmodified_since(past)
            .send()
            .await
            .is_ok()
    );

    let head = || f.client.head_object().bucket(BUCKET).key("c.txt");
    let e = head()
        .if_match("\"0123\"")
        .send()
        .await
        .err()
        .ok_or("HEAD If-Match ignored")?;
    assert_eq!(status(&e), 412);
    let e = head()
        .if_none_match(&etag)
        .send()
        .await
        .err()
        .ok_or("HEAD If-None-Match ignored")?;
    assert_eq!(status(&e), 304);

    // A resumed ranged read pinned to the first version cannot mix in the second.
    f.put("c.txt", b"v2").await?;
    let e = get()
        .range("bytes=1-")
        .if_match(&etag)
        .send()
        .await
        .err()
        .ok_or("mixed versions")?;
    assert_eq!(status(&e), 412);
    Ok(())
}

#[tokio::test]
async fn conditional_puts_are_atomic() -> TestResult {
    let f = fixture().await?;
    // Eight simultaneous create-only PUTs of one new key: exactly one lands.
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let c = f.client.clone();
        tasks.push(tokio::spawn(async move {
            c.put_object()
                .bucket(BUCKET)
                .key("once")
                .if_none_match("*")
                .body(ByteStream::from(vec![i; 64 * 1024]))
                .send()
                .await
        }));
    }
    let mut won = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await? {
            Ok(_) => won.push(i),
            Err(e) => assert_eq!(status(&e), 412, "{e:?}"),
        }
    }
    assert_eq!(won.len(), 1, "create-only PUTs that succeeded: {won:?}");
    let body = f.get("once").await?;
    assert!(body.iter().all(|b| usize::from(*b) == won[0]));

    let etag = f.put("cas", b"one").await?;
    let put = |v: &'static str| {
        f.client
            .put_object()
            .bucket(BUCKET)
            .key("cas")
            .body(ByteStream::from_static(v.as_bytes()))
    };
    let e = put("x")
        .if_match("\"deadbeef\"")
        .send()
        .await
        .err()
        .ok_or("If-Match ignored")?;
    assert_eq!(status(&e), 412);
    let e = put("x")
        .if_none_match(&etag)
        .send()
        .await
        .err()
        .ok_or("If-None-Match: etag ignored")?;
    assert_eq!(status(&e), 412);
    let e = f
        .client
        .put_object()
        .bucket(BUCKET)
        .key("absent")
        .if_match(&etag)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .err()
        .ok_or("If-Match on a missing key")?;
    // S3 answers a conditional overwrite of nothing with 404.
    assert_eq!(code(&e), "NoSuchKey");
    put("two").if_match(&etag).send().await?;
    assert_eq!(f.get("cas").await?, b"two");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Multipart.
// ---------------------------------------------------------------------------------------

async fn upload_part(
    f: &Fixture,
    key: &str,
    id: &str,
    n: i32,
    body: Vec<u8>,
) -> Result<String, Box<dyn std::error::Error>> {
    let out = f
        .client
        .upload_part()
        .bucket(BUCKET)
        .key(key)
        .upload_id(id)
        .part_number(n)
        .body(ByteStream::from(body))
        .send()
        .await?;
    Ok(out.e_tag().unwrap_or_default().to_owned())
}

fn parts(list: &[(i32, &str)]) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(
            list.iter()
                .map(|(n, e)| CompletedPart::builder().part_number(*n).e_tag(*e).build())
                .collect(),
        ))
        .build()
}

#[tokio::test]
async fn multipart_complete_verifies_parts_and_is_atomic() -> TestResult {
    let f = fixture().await?;
    // An existing object with a CRC32 the multipart overwrite must not inherit.
    f.client
        .put_object()
        .bucket(BUCKET)
        .key("big.bin")
        .content_type("text/old")
        .checksum_crc32("DUoRhQ==")
        .body(ByteStream::from_static(b"hello world"))
        .send()
        .await?;
    let up = f
        .client
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("big.bin")
        .content_type("application/new")
        .send()
        .await?;
    let id = up.upload_id().ok_or("no upload id")?.to_owned();
    let p1 = vec![1u8; 5 * MIB];
    let p2 = vec![2u8; 1024];
    let e1_stale = upload_part(&f, "big.bin", &id, 1, vec![9u8; 5 * MIB]).await?;
    let e1 = upload_part(&f, "big.bin", &id, 1, p1.clone()).await?;
    let e2 = upload_part(&f, "big.bin", &id, 2, p2.clone()).await?;
    let small = upload_part(&f, "big.bin", &id, 3, vec![3u8; 10]).await?;

    let complete = |list: CompletedMultipartUpload| {
        f.client
            .complete_multipart_upload()
            .bucket(BUCKET)
            .key("big.bin")
            .upload_id(&id)
            .multipart_upload(list)
            .send()
    };
    let e = complete(parts(&[
        (1, "\"00000000000000000000000000000000\""),
        (2, &e2),
    ]))
    .await
    .err()
    .ok_or("wrong ETag accepted")?;
    assert_eq!(code(&e), "InvalidPart");
    let e = complete(parts(&[(1, &e1_stale), (2, &e2)]))
        .await
        .err()
        .ok_or("stale ETag accepted")?;
    assert_eq!(code(&e), "InvalidPart");
    let e = complete(parts(&[(2, &e2), (1, &e1)]))
        .await
        .err()
        .ok_or("order not checked")?;
    assert_eq!(code(&e), "InvalidPartOrder");
    let e = complete(parts(&[(1, &e1), (4, &e2)]))
        .await
        .err()
        .ok_or("missing part accepted")?;
    assert_eq!(code(&e), "InvalidPart");
    let e = complete(parts(&[(1, &e1), (2, &e2), (3, &small)]))
        .await
        .err()
        .ok_or("small part accepted")?;
    assert_eq!(code(&e), "EntityTooSmall");

    // Failed completes changed nothing: the old object, the upload and its parts remain.
    let head = f
        .client
        .head_object()
        .bucket(BUCKET)
        .key("big.bin")
        .send()
        .await?;
    assert_eq!(head.content_type(), Some("text/old"));
    assert_eq!(f.get("big.bin").await?, b"hello world");
    let listed = f
        .client
        .list_parts()
        .bucket(BUCKET)
        .key("big.bin")
        .upload_id(&id)
        .send()
        .await?;
    let numbers: Vec<_> = listed
        .parts()
        .iter()
        .filter_map(aws_sdk_s3::types::Part::part_number)
        .collect();
    assert_eq!(numbers, [1, 2, 3], "ascending");
    let etags: Vec<_> = listed.parts().iter().filter_map(|p| p.e_tag()).collect();
    assert_eq!(etags, [e1.as_str(), e2.as_str(), small.as_str()]);
    let uploads = f
        .client
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await?;
    let ids: Vec<_> = uploads
        .uploads()
        .iter()
        .filter_map(|u| u.upload_id())
        .collect();
    assert_eq!(ids, [id.as_str()]);

    // The retry with the right list succeeds, with a Location, a multipart ETag and no
    // stale checksum.
    let done = complete(parts(&[(1, &e1), (2, &e2)])).await?;
    assert!(
        done.location()
            .is_some_and(|l| l.ends_with("/conformance/big.bin")),
        "{done:?}"
    );
    let etag = done.e_tag().ok_or("no etag")?.to_owned();
    assert!(etag.ends_with("-2\""), "{etag}");
    let head = f
        .client
        .head_object()
        .bucket(BUCKET)
        .key("big.bin")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await?;
    assert_eq!(head.content_type(), Some("application/new"));
    assert_eq!(head.checksum_crc32(), None);
    assert_eq!(
        head.content_length(),
        Some(i64::try_from(5 * MIB + 1024).unwrap())
    );
    let mut whole = p1.clone();
    whole.extend_from_slice(&p2);
    assert!(f.get("big.bin").await? == whole);

    // GET ?partNumber=N serves that part.
    let part2 = f
        .client
        .get_object()
        .bucket(BUCKET)
        .key("big.bin")
        .part_number(2)
        .send()
        .await?;
    assert_eq!(part2.parts_count(), Some(2));
    assert_eq!(
        part2.body.collect().await?.into_bytes().as_ref(),
        p2.as_slice()
    );

    // Repeating the successful complete answers the same, as S3 does.
    let again = complete(parts(&[(1, &e1), (2, &e2)])).await?;
    assert_eq!(again.e_tag(), Some(etag.as_str()));
    // The upload is gone from the listings, and its parts with it.
    let uploads = f
        .client
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await?;
    assert!(uploads.uploads().is_empty());
    let e = f
        .client
        .list_parts()
        .bucket(BUCKET)
        .key("big.bin")
        .upload_id(&id)
        .send()
        .await
        .err()
        .ok_or("parts listed after complete")?;
    assert_eq!(code(&e), "NoSuchUpload");
    Ok(())
}

#[tokio::test]
async fn a_failed_complete_can_be_aborted_and_abandoned_uploads_are_listed() -> TestResult {
    let f = fixture().await?;
    let mut ids = Vec::new();
    for key in ["u/a", "u/b", "v"] {
        let up = f
            .client
            .create_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await?;
        ids.push(up.upload_id().ok_or("id")?.to_owned());
    }
    let e1 = upload_part(&f, "u/a", &ids[0], 1, vec![1u8; 100]).await?;
    let e2 = upload_part(&f, "u/a", &ids[0], 2, vec![2u8; 100]).await?;
    let e = f
        .client
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("u/a")
        .upload_id(&ids[0])
        .multipart_upload(parts(&[(1, &e1), (2, &e2)]))
        .send()
        .await
        .err()
        .ok_or("small first part accepted")?;
    assert_eq!(code(&e), "EntityTooSmall");
    let e = f
        .client
        .head_object()
        .bucket(BUCKET)
        .key("u/a")
        .send()
        .await
        .err()
        .ok_or("object appeared")?;
    assert_eq!(status(&e), 404);

    let listed = f
        .client
        .list_multipart_uploads()
        .bucket(BUCKET)
        .delimiter("/")
        .send()
        .await?;
    let keys: Vec<_> = listed.uploads().iter().filter_map(|u| u.key()).collect();
    assert_eq!(keys, ["v"]);
    let prefixes: Vec<_> = listed
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, ["u/"]);
    let paged = f
        .client
        .list_multipart_uploads()
        .bucket(BUCKET)
        .max_uploads(1)
        .send()
        .await?;
    assert!(paged.is_truncated().unwrap_or(false));
    assert_eq!(paged.uploads().len(), 1);
    assert_eq!(paged.next_key_marker(), Some("u/a"));

    f.client
        .abort_multipart_upload()
        .bucket(BUCKET)
        .key("u/a")
        .upload_id(&ids[0])
        .send()
        .await?;
    let e = f
        .client
        .abort_multipart_upload()
        .bucket(BUCKET)
        .key("u/a")
        .upload_id(&ids[0])
        .send()
        .await
        .err()
        .ok_or("aborted twice")?;
    assert_eq!(code(&e), "NoSuchUpload");
    let e = upload_part(&f, "u/a", &ids[0], 3, vec![0u8; 10])
        .await
        .err()
        .ok_or("part after abort")?;
    assert!(
        e.to_string().contains("NoSuchUpload") || format!("{e:?}").contains("NoSuchUpload"),
        "{e:?}"
    );
    let listed = f
        .client
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await?;
    assert_eq!(listed.uploads().len(), 2);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The rest of R2's surface.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn copy_object_copies_bytes_and_metadata() -> TestResult {
    let f = fixture().await?;
    f.client
        .put_object()
        .bucket(BUCKET)
        .key("src")
        .content_type("text/plain")
        .metadata("owner", "ada")
        .body(ByteStream::from_static(b"copy me"))
        .send()
        .await?;
    f.client
        .copy_object()
        .bucket(BUCKET)
        .key("dst")
        .copy_source(format!("{BUCKET}/src"))
        .send()
        .await?;
    let dst = f
        .client
        .head_object()
        .bucket(BUCKET)
        .key("dst")
        .send()
        .await?;
    assert_eq!(dst.content_type(), Some("text/plain"));
    assert_eq!(
        dst.metadata()
            .and_then(|m| m.get("owner"))
            .map(String::as_str),
        Some("ada")
    );
    assert_eq!(f.get("dst").await?, b"copy me");
    // Deleting the source leaves the copy whole.
    f.client
        .delete_object()
        .bucket(BUCKET)
        .key("src")
        .send()
        .await?;
    assert_eq!(f.get("dst").await?, b"copy me");

    let e = f
        .client
        .copy_object()
        .bucket(BUCKET)
        .key("dst")
        .copy_source(format!("{BUCKET}/dst"))
        .send()
        .await
        .err()
        .ok_or("copy onto itself without REPLACE")?;
    assert_eq!(code(&e), "InvalidRequest");
    f.client
        .copy_object()
        .bucket(BUCKET)
        .key("dst")
        .copy_source(format!("{BUCKET}/dst"))
        .metadata_directive(MetadataDirective::Replace)
        .content_type("text/markdown")
        .send()
        .await?;
    let dst = f
        .client
        .head_object()
        .bucket(BUCKET)
        .key("dst")
        .send()
        .await?;
    assert_eq!(dst.content_type(), Some("text/markdown"));
    assert!(
        dst.metadata()
            .is_none_or(std::collections::HashMap::is_empty)
    );
    assert_eq!(f.get("dst").await?, b"copy me");
    let e = f
        .client
        .copy_object()
        .bucket(BUCKET)
        .key("dst2")
        .copy_source(format!("{BUCKET}/dst"))
        .copy_source_if_match("\"nope\"")
        .send()
        .await
        .err()
        .ok_or("copy condition ignored")?;
    assert_eq!(status(&e), 412);
    Ok(())
}

#[tokio::test]
async fn bulk_delete_caps_at_1000_keys() -> TestResult {
    let f = fixture().await?;
    f.put("a", b"1").await?;
    f.put("b", b"2").await?;
    let ids = |n: usize| -> Result<Delete, Box<dyn std::error::Error>> {
        let objects = (0..n)
            .map(|i| {
                ObjectIdentifier::builder()
                    .key(if i == 0 {
                        "a".to_owned()
                    } else {
                        format!("k{i}")
                    })
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Delete::builder().set_objects(Some(objects)).build()?)
    };
    let e = f
        .client
        .delete_objects()
        .bucket(BUCKET)
        .delete(ids(1001)?)
        .send()
        .await
        .err()
        .ok_or("1001 keys accepted")?;
    assert_eq!(code(&e), "MalformedXML");
    assert_eq!(f.get("a").await?, b"1");
    let out = f
        .client
        .delete_objects()
        .bucket(BUCKET)
        .delete(ids(1000)?)
        .send()
        .await?;
    assert_eq!(out.deleted().len(), 1000);
    assert_eq!(f.keys(None).await?, ["b"]);
    Ok(())
}

#[tokio::test]
async fn presigned_urls_expire_with_403() -> TestResult {
    let f = fixture().await?;
    f.put("p.txt", b"presigned").await?;
    let ok = f
        .client
        .get_object()
        .bucket(BUCKET)
        .key("p.txt")
        .presigned(PresigningConfig::expires_in(Duration::from_mins(1))?)
        .await?;
    let resp = reqwest::get(ok.uri()).await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await?.as_ref(), b"presigned");
    // A negative or over-a-week expiry is refused with 403 too (s3s alone says 400 / 200).
    for bad in ["-1000", "604801"] {
        let url = ok
            .uri()
            .replace("X-Amz-Expires=60", &format!("X-Amz-Expires={bad}"));
        assert_ne!(url, ok.uri());
        let resp = reqwest::get(&url).await?;
        assert_eq!(resp.status(), 403, "{bad}");
        assert!(resp.text().await?.contains("AccessDenied"));
    }

    let late = f
        .client
        .get_object()
        .bucket(BUCKET)
        .key("p.txt")
        .presigned(
            PresigningConfig::builder()
                .start_time(SystemTime::now() - Duration::from_hours(2))
                .expires_in(Duration::from_mins(1))
                .build()?,
        )
        .await?;
    let resp = reqwest::get(late.uri()).await?;
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await?.contains("AccessDenied"));
    Ok(())
}

#[tokio::test]
async fn unsupported_operations_answer_501() -> TestResult {
    let f = fixture().await?;
    f.put("t", b"x").await?;
    let e = f
        .client
        .get_object_acl()
        .bucket(BUCKET)
        .key("t")
        .send()
        .await
        .err()
        .ok_or("ACL answered")?;
    assert_eq!(status(&e), 501);
    let e = f
        .client
        .get_bucket_versioning()
        .bucket(BUCKET)
        .send()
        .await
        .err()
        .ok_or("versioning answered")?;
    assert_eq!(status(&e), 501);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Restart, crash and migration.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn objects_survive_a_restart() -> TestResult {
    let f = fixture().await?;
    f.client
        .put_object()
        .bucket(BUCKET)
        .key("kept")
        .content_type("image/png")
        .metadata("k", "v")
        .body(ByteStream::from_static(b"png"))
        .send()
        .await?;
    let root = f.dir.path().join("objects");
    f.s3.shutdown().await;
    let s3 = start(&root).await?;
    let c = client(&s3.endpoint());
    let got = c.get_object().bucket(BUCKET).key("kept").send().await?;
    assert_eq!(got.content_type(), Some("image/png"));
    assert_eq!(
        got.metadata().and_then(|m| m.get("k")).map(String::as_str),
        Some("v")
    );
    assert_eq!(got.body.collect().await?.into_bytes().as_ref(), b"png");
    s3.shutdown().await;
    Ok(())
}

/// Sends one unsigned request to an s3s service over s3s-fs (the previous store).
async fn legacy_call(
    service: &s3s::service::S3Service,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &'static [u8],
) -> Result<u16, Box<dyn std::error::Error>> {
    let mut req = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .header("content-length", body.len().to_string())
        .body(s3s::Body::from(bytes::Bytes::from_static(body)))?;
    let resp = service.call(req).await.map_err(|e| format!("{e:?}"))?;
    Ok(resp.status().as_u16())
}

#[tokio::test]
async fn a_folder_written_by_s3s_fs_is_imported_on_start() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("objects");
    std::fs::create_dir_all(&root)?;
    {
        let fs = s3s_fs::FileSystem::new(&root).map_err(|e| format!("{e:?}"))?;
        let service = s3s::service::S3ServiceBuilder::new(fs).build();
        assert_eq!(
            legacy_call(&service, "PUT", "/legacy", &[], b"").await?,
            200
        );
        assert_eq!(
            legacy_call(&service, "PUT", "/empty-one", &[], b"").await?,
            200
        );
        let put = |uri: &'static str, headers: &'static [(&'static str, &'static str)], body| {
            legacy_call(&service, "PUT", uri, headers, body)
        };
        assert_eq!(
            put(
                "/legacy/docs/report.pdf",
                &[
                    ("content-type", "application/pdf"),
                    ("x-amz-meta-owner", "ada")
                ],
                b"%PDF-1.7 report"
            )
            .await?,
            200
        );
        assert_eq!(
            put(
                "/legacy/hello.txt",
                &[("x-amz-checksum-crc32", "DUoRhQ==")],
                b"hello world"
            )
            .await?,
            200
        );
        assert_eq!(put("/legacy/a/b/c/deep.bin", &[], b"deep").await?, 200);
        // An unfinished multipart upload: dropped by the import.
        assert_eq!(
            legacy_call(&service, "POST", "/legacy/up.bin?uploads", &[], b"").await?,
            200
        );
    }
    assert!(
        root.join("legacy/docs/report.pdf").is_file(),
        "s3s-fs layout as expected"
    );

    for round in 0..2 {
        let s3 = start(&root).await?;
        let c = client(&s3.endpoint());
        let listed = c.list_objects_v2().bucket("legacy").send().await?;
        let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
        assert_eq!(
            keys,
            ["a/b/c/deep.bin", "docs/report.pdf", "hello.txt"],
            "round {round}"
        );
        c.head_bucket().bucket("empty-one").send().await?;
        let pdf = c
            .get_object()
            .bucket("legacy")
            .key("docs/report.pdf")
            .send()
            .await?;
        assert_eq!(pdf.content_type(), Some("application/pdf"));
        assert_eq!(
            pdf.metadata()
                .and_then(|m| m.get("owner"))
                .map(String::as_str),
            Some("ada")
        );
        assert_eq!(
            pdf.e_tag(),
            Some(quoted(&md5_hex(b"%PDF-1.7 report")).as_str())
        );
        assert_eq!(
            pdf.body.collect().await?.into_bytes().as_ref(),
            b"%PDF-1.7 report"
        );
        let hello = c
            .head_object()
            .bucket("legacy")
            .key("hello.txt")
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await?;
        assert_eq!(hello.checksum_crc32(), Some("DUoRhQ=="));
        let uploads = c.list_multipart_uploads().bucket("legacy").send().await?;
        assert!(uploads.uploads().is_empty());
        s3.shutdown().await;

        // Nothing of the old layout is left: only the engine's folder.
        let left: Vec<_> = std::fs::read_dir(&root)?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        assert_eq!(left, [".filegate-store"], "round {round}");
        if round == 0 {
            // As if a crash hit after the import committed but before the original was
            // removed: the leftover is not imported again over the committed object.
            std::fs::create_dir_all(root.join("legacy"))?;
            std::fs::write(root.join("legacy/hello.txt"), b"leftover")?;
        }
    }
    Ok(())
}

#[expect(
    clippy::default_trait_access,
    reason = "the hashers' types are s3s's, named only through these fields"
)]
fn checksum_of(algorithm: &str, data: &[u8]) -> String {
    let mut h = s3s::checksum::ChecksumHasher::default();
    match algorithm {
        "crc32" => h.crc32 = Some(Default::default()),
        _ => h.sha256 = Some(Default::default()),
    }
    h.update(data);
    let c = h.finalize();
    c.checksum_crc32.or(c.checksum_sha256).unwrap_or_default()
}

#[tokio::test]
async fn multipart_checksums_are_composite_or_full_object_and_verified() -> TestResult {
    use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumType};
    use base64::Engine as _;
    let f = fixture().await?;
    let p1 = vec![b'a'; 5 * MIB];
    let p2 = b"tail".to_vec();

    // COMPOSITE SHA-256: the hash of the parts' binary hashes, "-2".
    let up = f
        .client
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("composite")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await?;
    assert_eq!(up.checksum_type(), Some(&ChecksumType::Composite));
    let id = up.upload_id().ok_or("id")?.to_owned();
    let mut list = Vec::new();
    for (n, body) in [(1, &p1), (2, &p2)] {
        let out = f
            .client
            .upload_part()
            .bucket(BUCKET)
            .key("composite")
            .upload_id(&id)
            .part_number(n)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(body.clone()))
            .send()
            .await?;
        assert_eq!(
            out.checksum_sha256(),
            Some(checksum_of("sha256", body).as_str())
        );
        list.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag().unwrap_or_default())
                .checksum_sha256(out.checksum_sha256().unwrap_or_default())
                .build(),
        );
    }
    let mut raw = Vec::new();
    for body in [&p1, &p2] {
        raw.extend(base64::engine::general_purpose::STANDARD.decode(checksum_of("sha256", body))?);
    }
    let expected = format!("{}-2", checksum_of("sha256", &raw));
    let complete = || {
        f.client
            .complete_multipart_upload()
            .bucket(BUCKET)
            .key("composite")
            .upload_id(&id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(list.clone()))
                    .build(),
            )
    };
    let e = complete()
        .checksum_sha256(checksum_of("sha256", b"wrong"))
        .send()
        .await
        .err()
        .ok_or("a wrong composite checksum was accepted")?;
    assert_eq!(code(&e), "BadDigest");
    let done = complete().send().await?;
    assert_eq!(done.checksum_sha256(), Some(expected.as_str()));
    assert_eq!(done.checksum_type(), Some(&ChecksumType::Composite));
    // A repeated complete answers the same checksum.
    let again = complete().send().await?;
    assert_eq!(again.checksum_sha256(), Some(expected.as_str()));
    let head = f
        .client
        .head_object()
        .bucket(BUCKET)
        .key("composite")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await?;
    assert_eq!(head.checksum_sha256(), Some(expected.as_str()));

    // FULL_OBJECT CRC32: the CRC of the whole object.
    let up = f
        .client
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("full")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .checksum_type(ChecksumType::FullObject)
        .send()
        .await?;
    let id = up.upload_id().ok_or("id")?.to_owned();
    let mut list = Vec::new();
    for (n, body) in [(1, &p1), (2, &p2)] {
        let e = upload_part(&f, "full", &id, n, body.clone()).await?;
        list.push(CompletedPart::builder().part_number(n).e_tag(e).build());
    }
    let done = f
        .client
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("full")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(list))
                .build(),
        )
        .send()
        .await?;
    let mut whole = p1.clone();
    whole.extend_from_slice(&p2);
    assert_eq!(
        done.checksum_crc32(),
        Some(checksum_of("crc32", &whole).as_str())
    );
    assert_eq!(done.checksum_type(), Some(&ChecksumType::FullObject));

    // A part copied from another object gets the upload's checksum as well.
    f.put("source", &p1).await?;
    let up = f
        .client
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("copied")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await?;
    let id = up.upload_id().ok_or("id")?.to_owned();
    let copied = f
        .client
        .upload_part_copy()
        .bucket(BUCKET)
        .key("copied")
        .upload_id(&id)
        .part_number(1)
        .copy_source(format!("{BUCKET}/source"))
        .send()
        .await?;
    let e1 = copied
        .copy_part_result()
        .and_then(|r| r.e_tag())
        .ok_or("no etag")?
        .to_owned();
    let e2 = upload_part(&f, "copied", &id, 2, p2.clone()).await?;
    let done = f
        .client
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("copied")
        .upload_id(&id)
        .multipart_upload(parts(&[(1, &e1), (2, &e2)]))
        .send()
        .await?;
    assert_eq!(done.checksum_sha256(), Some(expected.as_str()));
    Ok(())
}
