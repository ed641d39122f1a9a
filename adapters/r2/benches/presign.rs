//! Presigning cost per URL: our signer (as the server calls it) against aws-sdk-s3, and
//! the cost of multipart part URLs.

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::presigning::PresigningConfig;
use criterion::{Criterion, criterion_group, criterion_main};
use filegate_core::domain::{BucketName, Expiry, ObjectKey};
use filegate_core::ports::{HttpMethod, PresignRequest, SystemClock, UrlSigner};
use filegate_core::storage::{PartToSign, Storage};
use filegate_r2::{R2Config, SigV4Signer};
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

const ENDPOINT: &str = "https://0123456789abcdef0123456789abcdef.r2.cloudflarestorage.com";
const AKID: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const SECRET: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const BUCKET: &str = "filegate-media";
const KEY: &str = "org/org_2f8a/media/med_0123456789abcdef0123456789abcdef/quarterly report.pdf";

/// The benchmarks' R2 account (no network: signing is local).
fn config() -> R2Config {
    R2Config {
        account_id: None,
        access_key_id: AKID.to_owned(),
        secret_access_key: SecretString::from(SECRET),
        bucket: BucketName::parse(BUCKET).expect("bucket"),
        endpoint: Some(ENDPOINT.to_owned()),
        region: "auto".to_owned(),
    }
}

fn presign(c: &mut Criterion) {
    let config = config();
    let signer: Box<dyn UrlSigner> = Box::new(SigV4Signer::new(&config).expect("signer"));
    let now = OffsetDateTime::now_utc();
    let request = PresignRequest {
        method: HttpMethod::Put,
        bucket: BucketName::parse(BUCKET).expect("bucket"),
        key: ObjectKey::parse(KEY).expect("key"),
        expires_in: Expiry::DEFAULT,
        signed_at: now.replace_nanosecond(0).unwrap_or(now),
        headers: BTreeMap::from([("Content-Type".to_owned(), "application/pdf".to_owned())]),
        query: BTreeMap::new(),
    };

    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("auto"))
            .endpoint_url(ENDPOINT)
            .force_path_style(true)
            .credentials_provider(Credentials::new(AKID, SECRET, None, None, "bench"))
            .build(),
    );
    // The SDK's identity cache wants a Tokio runtime; ours needs none (its future is ready).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let presigning = PresigningConfig::expires_in(Duration::from_mins(10)).expect("expiry");

    let mut group = c.benchmark_group("presign");
    group.bench_function("filegate_sigv4_put", |b| {
        b.iter(|| {
            futures::executor::block_on(signer.presign(black_box(&request))).expect("presign")
        });
    });
    group.bench_function("aws_sdk_s3_presigned_put", |b| {
        b.iter(|| {
            runtime
                .block_on(
                    client
                        .put_object()
                        .bucket(BUCKET)
                        .key(black_box(KEY))
                        .content_type("application/pdf")
                        .presigned(presigning.clone()),
                )
                .expect("presigned")
        });
    });
    group.finish();
}

/// One `UploadPart` URL: `partNumber` and `uploadId` in the query, `Content-Length` signed;
/// alone, and as the server signs a batch of 100 through the `Storage` facade.
fn part_signatures(c: &mut Criterion) {
    let config = config();
    let signer: Arc<dyn UrlSigner> = Arc::new(SigV4Signer::new(&config).expect("signer"));
    let now = OffsetDateTime::now_utc();
    let upload_id = "2~n5fWbC3JKj0Hc8uYq4dTPpBsvLxRmZaEoFgIhNtAOyD1eQ9r7w6V";
    let request = PresignRequest {
        method: HttpMethod::Put,
        bucket: BucketName::parse(BUCKET).expect("bucket"),
        key: ObjectKey::parse(KEY).expect("key"),
        expires_in: Expiry::DEFAULT,
        signed_at: now.replace_nanosecond(0).unwrap_or(now),
        headers: BTreeMap::from([("Content-Length".to_owned(), "8388608".to_owned())]),
        query: BTreeMap::from([
            ("partNumber".to_owned(), "137".to_owned()),
            ("uploadId".to_owned(), upload_id.to_owned()),
        ]),
    };
    let storage = Storage::new(
        Arc::clone(&signer),
        Arc::new(SystemClock),
        BucketName::parse(BUCKET).expect("bucket"),
    );
    let bucket = BucketName::parse(BUCKET).expect("bucket");
    let key = ObjectKey::parse(KEY).expect("key");

    let mut group = c.benchmark_group("multipart");
    group.bench_function("filegate_sigv4_upload_part", |b| {
        b.iter(|| {
            futures::executor::block_on(signer.presign(black_box(&request))).expect("presign")
        });
    });
    group.bench_function("storage_sign_100_parts", |b| {
        b.iter(|| {
            futures::executor::block_on(async {
                for n in 1..=100u32 {
                    let part = PartToSign {
                        upload_id,
                        part_number: n,
                        content_length: 8_388_608,
                    };
                    black_box(
                        storage
                            .sign_part_url(&bucket, &key, &part, Expiry::DEFAULT)
                            .await
                            .expect("part"),
                    );
                }
            });
        });
    });
    group.finish();
}

criterion_group!(benches, presign, part_signatures);
criterion_main!(benches);
