//! Throughput, listing and latency of the embedded endpoint against the previous store
//! (s3s-fs 0.14 served the same way), in one run on one machine. Results go to
//! docs/BENCHMARKS.md.
//!
//! `cargo run --release -p filegate-embedded-s3 --example store_bench -- [objects]`
//! (default 200 000 objects in the large bucket; 0 measures throughput and latency only).

#![expect(
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    reason = "a benchmark: a failed step aborts it, and rates are printed rounded"
)]

use aws_sdk_s3::Client;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use filegate_embedded_s3::{EmbeddedS3, EmbeddedS3Config};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

const AKID: &str = "AKIDBENCH00000000001";
const SECRET: &str = "bench-secret-key-0123456789abcdefghijklmn";
const SMALL: usize = 4 * 1024;
const LARGE: usize = 64 * 1024 * 1024;

fn client(endpoint: &str) -> Client {
    let creds = aws_credential_types::Credentials::new(AKID, SECRET, None, None, "bench");
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(creds)
        // Client-side hashing would dominate small requests and is the same for both.
        .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
        .build();
    Client::from_conf(conf)
}

/// The previous store: s3s-fs behind s3s with the same auth, HTTP/1.1, no TCP_NODELAY.
async fn start_legacy(root: &Path) -> SocketAddr {
    let fs = s3s_fs::FileSystem::new(root).unwrap();
    let mut builder = s3s::service::S3ServiceBuilder::new(fs);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(AKID, SECRET));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let svc = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// Writes `n` objects of the s3s-fs layout (`<root>/<bucket>/<key path>`): the previous
/// store serves them as they are, the new one imports them on start.
fn seed_files(root: &Path, bucket: &str, n: usize) {
    let payload = [7u8; 100];
    for i in 0..n {
        let path = root
            .join(bucket)
            .join(format!("d{:03}/obj-{i:08}", i % 200));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, payload).unwrap();
    }
}

struct Numbers {
    put_small: f64,
    get_small: f64,
    put_large: f64,
    get_large: f64,
}

async fn throughput(c: &Client, bucket: &str) -> Numbers {
    let n = 1000;
    let body = vec![5u8; SMALL];
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (c, body, bucket) = (c.clone(), body.clone(), bucket.to_owned());
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(8) {
                c.put_object()
                    .bucket(&bucket)
                    .key(format!("small/{i}"))
                    .body(ByteStream::from(body.clone()))
                    .send()
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let put_small = f64::from(n) / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (c, bucket) = (c.clone(), bucket.to_owned());
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(8) {
                let got = c
                    .get_object()
                    .bucket(&bucket)
                    .key(format!("small/{i}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(got.body.collect().await.unwrap().into_bytes().len(), SMALL);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let get_small = f64::from(n) / t.elapsed().as_secs_f64();

    let big = bytes::Bytes::from(vec![9u8; LARGE]);
    let rounds = 4;
    let t = Instant::now();
    for i in 0..rounds {
        c.put_object()
            .bucket(bucket)
            .key(format!("large/{i}"))
            .body(ByteStream::from(big.clone()))
            .send()
            .await
            .unwrap();
    }
    let mib = (rounds * LARGE) as f64 / (1024.0 * 1024.0);
    let put_large = mib / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for i in 0..rounds {
        let got = c
            .get_object()
            .bucket(bucket)
            .key(format!("large/{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(got.body.collect().await.unwrap().into_bytes().len(), LARGE);
    }
    let get_large = mib / t.elapsed().as_secs_f64();
    Numbers {
        put_small,
        get_small,
        put_large,
        get_large,
    }
}

/// Median time of a first ListObjectsV2 page (1 000 keys).
async fn page_cost(c: &Client, bucket: &str, runs: usize) -> Duration {
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let out = c
            .list_objects_v2()
            .bucket(bucket)
            .start_after("d100/")
            .send()
            .await
            .unwrap();
        times.push(t.elapsed());
        assert!(!out.contents().is_empty());
    }
    times.sort();
    times[times.len() / 2]
}

async fn full_walk(c: &Client, bucket: &str) -> (usize, Duration) {
    let t = Instant::now();
    let mut n = 0;
    let mut token = None;
    loop {
        let out = c
            .list_objects_v2()
            .bucket(bucket)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap();
        n += out.contents().len();
        token = out.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            return (n, t.elapsed());
        }
    }
}

/// p50 and p90 of sequential GETs of one presigned URL on one keep-alive connection.
async fn keep_alive_latency(c: &Client, bucket: &str) -> (Duration, Duration) {
    let url = c
        .get_object()
        .bucket(bucket)
        .key("small/1")
        .presigned(PresigningConfig::expires_in(Duration::from_mins(10)).unwrap())
        .await
        .unwrap()
        .uri()
        .to_owned();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let mut times = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let body = http.get(&url).send().await.unwrap().bytes().await.unwrap();
        times.push(t.elapsed());
        assert_eq!(body.len(), SMALL);
    }
    times.sort();
    (times[100], times[180])
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let large: usize = std::env::args()
        .nth(1)
        .map_or(200_000, |a| a.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let (old_root, new_root) = (dir.path().join("old"), dir.path().join("new"));

    let t = Instant::now();
    for root in [&old_root, &new_root] {
        seed_files(root, "page-small", 1000);
        seed_files(root, "page-large", large);
        std::fs::create_dir_all(root.join("bench")).unwrap();
    }
    println!("seeded 2 x ({large} + 1000) files in {:.1?}", t.elapsed());

    let old = start_legacy(&old_root).await;
    let t = Instant::now();
    let new = EmbeddedS3::start(EmbeddedS3Config {
        root: new_root.clone(),
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        access_key_id: AKID.to_owned(),
        secret_access_key: SECRET.to_owned(),
        allowed_origins: vec![],
    })
    .await
    .unwrap();
    println!(
        "new store: start with import of {} objects: {:.1?}",
        large + 1000,
        t.elapsed()
    );
    let old_c = client(&format!("http://{old}"));
    let new_c = client(&new.endpoint());

    for (name, c) in [("old (s3s-fs)", &old_c), ("new (engine)", &new_c)] {
        let n = throughput(c, "bench").await;
        println!(
            "{name}: PUT 4 KiB {:.0}/s, GET 4 KiB {:.0}/s, PUT 64 MiB {:.0} MiB/s, GET 64 MiB {:.0} MiB/s",
            n.put_small, n.get_small, n.put_large, n.get_large
        );
        let (p50, p90) = keep_alive_latency(c, "bench").await;
        println!(
            "{name}: keep-alive GET 4 KiB p50 {}, p90 {}",
            ms(p50),
            ms(p90)
        );
        if large == 0 {
            continue;
        }
        let small = page_cost(c, "page-small", 21).await;
        let runs = if name.starts_with("old") { 3 } else { 21 };
        let big = page_cost(c, "page-large", runs).await;
        println!(
            "{name}: one 1000-key page: {} in a bucket of 1 000, {} in a bucket of {large}",
            ms(small),
            ms(big)
        );
    }
    if large == 0 {
        new.shutdown().await;
        return;
    }
    let (n, took) = full_walk(&new_c, "page-large").await;
    println!(
        "new (engine): full ListObjectsV2 walk of {n} keys: {:.2?} ({:.0} keys/s)",
        took,
        n as f64 / took.as_secs_f64()
    );
    new.shutdown().await;
}
