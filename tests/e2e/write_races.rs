//! Managed write paths under concurrency, replays and hang-ups, through the real server and
//! the embedded S3 endpoint: the row and the bytes of a path always describe one upload.

use filegate_e2e::{JsonResponse, TestApp, assert_envelope};
use serde_json::json;
use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

async fn managed() -> TestApp {
    TestApp::spawn_with(|c| {
        c.managed = true;
        // Hundreds of requests at once from one address.
        c.rate_limit = None;
    })
    .await
}

/// org_a's `docs` bucket; returns a member's token.
async fn docs(app: &TestApp, read_scope: &str) -> String {
    let admin = app.token("admin_a", Some("org_a"), Some("admin"));
    let res = app
        .post_json(
            "/storage/v1/bucket",
            Some(&admin),
            &json!({ "name": "docs", "readScope": read_scope }),
        )
        .await;
    assert_eq!(res.status, 201, "{res:?}");
    app.token("user_a", Some("org_a"), Some("member"))
}

async fn upload(
    app: &TestApp,
    token: &str,
    path: &str,
    bytes: Vec<u8>,
    upsert: bool,
) -> JsonResponse {
    let mut req = app
        .http
        .post(format!("{}/storage/v1/object/docs/{path}", app.api))
        .bearer_auth(token)
        .header("content-type", "text/plain")
        .body(bytes);
    if upsert {
        req = req.header("x-upsert", "true");
    }
    app.send(req).await
}

async fn presign(app: &TestApp, token: &str, path: &str, size: usize) -> JsonResponse {
    app.post_json(
        &format!("/storage/v1/presign/docs/{path}"),
        Some(token),
        &json!({ "contentType": "text/plain", "size": size }),
    )
    .await
}

async fn confirm(app: &TestApp, token: &str, path: &str) -> JsonResponse {
    app.post_json(
        &format!("/storage/v1/confirm/docs/{path}"),
        Some(token),
        &json!({}),
    )
    .await
}

async fn delete(app: &TestApp, token: &str, path: &str) -> JsonResponse {
    app.send(
        app.http
            .delete(format!("{}/storage/v1/object/docs/{path}", app.api))
            .bearer_auth(token),
    )
    .await
}

/// The served bytes and their `ETag`, or the status when not 200.
async fn served(app: &TestApp, token: &str, path: &str) -> Result<(Vec<u8>, String), u16> {
    let res = app
        .http
        .get(format!("{}/storage/v1/object/docs/{path}", app.api))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET sent");
    let status = res.status().as_u16();
    if status != 200 {
        return Err(status);
    }
    let etag = res
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim_matches('"')
        .to_owned();
    Ok((res.bytes().await.expect("body").to_vec(), etag))
}

/// Every confirmed row of the bucket: path → (size, etag).
async fn rows(app: &TestApp, token: &str) -> HashMap<String, (u64, String)> {
    let res = app
        .get("/storage/v1/object/list/docs?limit=1000", Some(token))
        .await;
    assert_eq!(res.status, 200, "{res:?}");
    res.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| {
            (
                o["path"].as_str().expect("path").to_owned(),
                (
                    o["size"].as_u64().expect("size"),
                    o["etag"].as_str().unwrap_or_default().to_owned(),
                ),
            )
        })
        .collect()
}

/// A presigned PUT replaying exactly the returned headers.
async fn put_signed(app: &TestApp, signed: &JsonResponse, bytes: Vec<u8>) -> u16 {
    app.put_presigned(
        signed.body["uploadUrl"].as_str().expect("uploadUrl"),
        &signed.body["headers"],
        bytes,
    )
    .await
    .status()
    .as_u16()
}

fn bytes_of(tag: &str, i: usize, len: usize) -> Vec<u8> {
    let mut b = format!("{tag}-{i}-").into_bytes();
    b.resize(len, tag.as_bytes()[0]);
    b
}

/// What one request of a pair was acknowledged with.
#[derive(Debug, Clone)]
struct Ack {
    bytes: Vec<u8>,
    etag: String,
    upsert: bool,
}

fn ack(res: &JsonResponse, bytes: &[u8], upsert: bool) -> Option<Ack> {
    (res.status == 200).then(|| Ack {
        bytes: bytes.to_vec(),
        etag: res.body["etag"].as_str().unwrap_or_default().to_owned(),
        upsert,
    })
}

/// Both requests of a pair as `(acknowledged, status)` of each.
type PairResult = (Vec<Ack>, Vec<u16>);

async fn pair(app: Arc<TestApp>, token: Arc<String>, kind: usize, i: usize) -> PairResult {
    let path = format!("race/{kind}/{i}.txt");
    let a = bytes_of("a", i, 4096 + i);
    let b = bytes_of("b", i, 3000 + 2 * i);
    match kind {
        // upload / upload
        0 => {
            let (ra, rb) = tokio::join!(
                upload(&app, &token, &path, a.clone(), false),
                upload(&app, &token, &path, b.clone(), false),
            );
            let acks = [ack(&ra, &a, false), ack(&rb, &b, false)];
            (
                acks.into_iter().flatten().collect(),
                vec![ra.status, rb.status],
            )
        }
        // upload / upsert
        1 => {
            let (ra, rb) = tokio::join!(
                upload(&app, &token, &path, a.clone(), false),
                upload(&app, &token, &path, b.clone(), true),
            );
            let acks = [ack(&ra, &a, false), ack(&rb, &b, true)];
            (
                acks.into_iter().flatten().collect(),
                vec![ra.status, rb.status],
            )
        }
        // upload / presign + PUT + confirm
        2 => {
            let direct = async {
                let signed = presign(&app, &token, &path, b.len()).await;
                if signed.status != 200 {
                    return signed;
                }
                let put = put_signed(&app, &signed, b.clone()).await;
                let done = confirm(&app, &token, &path).await;
                // A refused PUT leaves nothing to confirm.
                if put != 200 {
                    assert_ne!(done.status, 200, "confirmed a refused PUT: {done:?}");
                }
                done
            };
            let (ra, rb) = tokio::join!(upload(&app, &token, &path, a.clone(), false), direct);
            let acks = [ack(&ra, &a, false), ack(&rb, &b, false)];
            (
                acks.into_iter().flatten().collect(),
                vec![ra.status, rb.status],
            )
        }
        // delete / upload over an existing object
        _ => {
            let first = upload(&app, &token, &path, b.clone(), false).await;
            assert_eq!(first.status, 200, "{first:?}");
            let (rd, ru) = tokio::join!(
                delete(&app, &token, &path),
                upload(&app, &token, &path, a.clone(), false),
            );
            assert_eq!(rd.status, 200, "{rd:?}");
            (ack(&ru, &a, false).into_iter().collect(), vec![ru.status])
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_of_one_path_never_split_the_row_from_the_bytes() {
    const PAIRS: usize = 30;
    let app = Arc::new(managed().await);
    let token = Arc::new(docs(&app, "org").await);
    let mut tasks = Vec::new();
    for kind in 0..4 {
        for i in 0..PAIRS {
            tasks.push((
                kind,
                i,
                tokio::spawn(pair(app.clone(), token.clone(), kind, i)),
            ));
        }
    }
    let rows = {
        let mut results = Vec::new();
        for (kind, i, t) in tasks {
            results.push((kind, i, t.await.expect("pair ran")));
        }
        let rows = rows(&app, &token).await;
        let mut failures = Vec::new();
        for (kind, i, (acks, statuses)) in &results {
            let path = format!("race/{kind}/{i}.txt");
            // Every answer is 200 or a documented 409.
            if statuses.iter().any(|s| *s != 200 && *s != 409) {
                failures.push(format!("{path}: statuses {statuses:?}"));
                continue;
            }
            let got = served(&app, &token, &path).await;
            let row = rows.get(&path);
            match (&got, row) {
                (Ok((bytes, etag)), Some((size, row_etag))) => {
                    if *size != bytes.len() as u64 || etag != row_etag {
                        failures.push(format!(
                            "{path}: row {size}/{row_etag} but served {}/{etag}",
                            bytes.len()
                        ));
                    }
                    // What is served was acknowledged, and with the row's etag.
                    let Some(served_ack) = acks.iter().find(|a| &a.bytes == bytes) else {
                        failures.push(format!("{path}: serves bytes no 200 acknowledged"));
                        continue;
                    };
                    if &served_ack.etag != row_etag {
                        failures.push(format!("{path}: acknowledged etag is not the row's"));
                    }
                    // Any other 200 was replaced by an upsert acknowledged with these bytes.
                    if acks.iter().any(|a| &a.bytes != bytes) && !served_ack.upsert {
                        failures.push(format!("{path}: a 200 upload's bytes are not served"));
                    }
                }
                (Err(404), None) => {
                    // Only a delete may leave the path empty, and then no upload won after it.
                    if *kind != 3 || !acks.is_empty() {
                        failures.push(format!("{path}: acknowledged but missing"));
                    }
                }
                other => failures.push(format!(
                    "{path}: served {:?} with row {row:?}",
                    other.0.as_ref().map(|b| b.0.len())
                )),
            }
            // Without upsert exactly one writer wins.
            if *kind == 0 && acks.len() != 1 {
                failures.push(format!("{path}: {} winners", acks.len()));
            }
            if *kind == 2 && acks.len() != 1 {
                failures.push(format!(
                    "{path}: {} winners of upload vs presign",
                    acks.len()
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} pairs: {failures:#?}",
            failures.len(),
            results.len()
        );
        rows
    };
    assert!(
        rows.len() >= 3 * PAIRS,
        "every upload pair leaves an object"
    );
    let metrics = app
        .http
        .get(format!("{}/metrics", app.api))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("filegate_etag_mismatches_total 0"),
        "no read was refused: {metrics}"
    );
}

#[tokio::test]
async fn a_presigned_put_replayed_after_confirm_or_delete_neither_replaces_nor_is_served() {
    let app = managed().await;
    let token = docs(&app, "org").await;
    let first = b"the confirmed bytes".to_vec();
    let signed = presign(&app, &token, "r.txt", first.len()).await;
    assert_eq!(signed.status, 200, "{signed:?}");
    assert_eq!(signed.body["headers"]["If-None-Match"], "*", "{signed:?}");
    assert_eq!(put_signed(&app, &signed, first.clone()).await, 200);
    let done = confirm(&app, &token, "r.txt").await;
    assert_eq!(done.status, 200, "{done:?}");

    // Replay with other bytes of the signed size: storage refuses it.
    let other = b"REPLACED by a replay".to_vec()[..first.len()].to_vec();
    assert_eq!(put_signed(&app, &signed, other.clone()).await, 412);
    let (bytes, etag) = served(&app, &token, "r.txt").await.expect("served");
    assert_eq!(bytes, first);
    assert_eq!(etag, done.body["etag"].as_str().unwrap());

    // After a delete the replay can create bytes again, but no row describes them.
    assert_eq!(delete(&app, &token, "r.txt").await.status, 200);
    assert_eq!(put_signed(&app, &signed, other).await, 200);
    assert_eq!(served(&app, &token, "r.txt").await.unwrap_err(), 404);
    assert_envelope(
        &confirm(&app, &token, "r.txt").await,
        404,
        "STORAGE_OBJECT_NOT_FOUND",
    );
    // A new presign at the path clears those bytes, so its own create-only PUT lands.
    let again = presign(&app, &token, "r.txt", 5).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(put_signed(&app, &again, b"fresh".to_vec()).await, 200);
    assert_eq!(confirm(&app, &token, "r.txt").await.status, 200);
    assert_eq!(served(&app, &token, "r.txt").await.unwrap().0, b"fresh");
}

#[tokio::test]
async fn a_second_member_cannot_take_over_or_confirm_a_pending_upload() {
    let app = managed().await;
    let alice = docs(&app, "user").await;
    let bob = app.token("user_b", Some("org_a"), Some("member"));
    let mine = b"alice's private bytes".to_vec();
    let signed = presign(&app, &alice, "shared.txt", mine.len()).await;
    assert_eq!(signed.status, 200, "{signed:?}");
    assert_envelope(
        &presign(&app, &bob, "shared.txt", mine.len()).await,
        409,
        "STORAGE_OBJECT_EXISTS",
    );
    assert_eq!(put_signed(&app, &signed, mine.clone()).await, 200);
    assert_envelope(
        &confirm(&app, &bob, "shared.txt").await,
        404,
        "STORAGE_OBJECT_NOT_FOUND",
    );
    assert_eq!(confirm(&app, &alice, "shared.txt").await.status, 200);
    assert_eq!(served(&app, &bob, "shared.txt").await.unwrap_err(), 404);
    assert_eq!(served(&app, &alice, "shared.txt").await.unwrap().0, mine);

    // Hide mode: Bob's writes over the path are one answer, upsert or not, and his
    // delete is that of a missing path.
    for upsert in [false, true] {
        assert_envelope(
            &upload(&app, &bob, "shared.txt", b"x".to_vec(), upsert).await,
            409,
            "STORAGE_OBJECT_EXISTS",
        );
    }
    assert_eq!(delete(&app, &bob, "shared.txt").await.status, 200);
    assert_eq!(served(&app, &alice, "shared.txt").await.unwrap().0, mine);
}

#[tokio::test]
async fn a_client_hanging_up_mid_body_leaves_no_pending_row() {
    let app = managed().await;
    let token = docs(&app, "org").await;
    let addr = app.running.api_addr;
    let auth = token.clone();
    // A blocking socket on its own thread: the server runs on this test's runtime.
    tokio::task::spawn_blocking(move || {
        for i in 0..3 {
            let mut sock = std::net::TcpStream::connect(addr).expect("connect");
            let head = format!(
                "POST /storage/v1/object/docs/hangup/{i}.txt HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {auth}\r\nContent-Type: text/plain\r\nContent-Length: 200000\r\n\r\n"
            );
            sock.write_all(head.as_bytes()).expect("headers");
            sock.write_all(&vec![b'x'; 100_000]).expect("half a body");
            sock.flush().expect("flush");
        }
    })
    .await
    .expect("hang-ups sent");
    // The server notices the hang-ups on its own schedule: wait (bounded) for the rows.
    let db = filegate_sqlite::SqliteFilesDb::open(&app.running.data_dir.join("files.db"))
        .await
        .expect("FILES_DB");
    let far = time::OffsetDateTime::now_utc() + Duration::from_hours(24);
    let mut pending = Vec::new();
    for _ in 0..100 {
        pending = filegate_core::managed::ObjectRowStore::pending_objects(&db, far, 10)
            .await
            .expect("pending rows");
        if pending.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(pending.is_empty(), "left pending: {pending:?}");
    // The paths are free for anyone.
    let other = app.token("user_b", Some("org_a"), Some("member"));
    for i in 0..3 {
        let res = upload(
            &app,
            &other,
            &format!("hangup/{i}.txt"),
            b"ok".to_vec(),
            false,
        )
        .await;
        assert_eq!(res.status, 200, "{res:?}");
    }
}
