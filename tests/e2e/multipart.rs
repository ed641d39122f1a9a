//! Multipart uploads through the real server and the real embedded S3 endpoint: parts
//! PUT straight to storage with presigned `UploadPart` URLs, in both modes.

use filegate_core::domain::{BucketName, ObjectKey};
use filegate_core::ports::{ObjectStore, PutObject};
use filegate_e2e::{JsonResponse, TestApp, assert_envelope};
use filegate_embedded_s3::EmbeddedCredentials;
use filegate_r2::{R2Config, S3ObjectStore};
use serde_json::{Value, json};
use time::OffsetDateTime;

const MIB: usize = 1024 * 1024;

/// Deterministic, incompressible-looking bytes (xorshift), so a misplaced part shows.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The embedded endpoint as an S3 client with the server's own credentials: to look at
/// storage behind the API (unfinished uploads) and to store what no presigned URL allows.
fn raw_store(app: &TestApp) -> (S3ObjectStore, BucketName) {
    let creds = EmbeddedCredentials::load_or_create(&app.data_dir().join("embedded-s3.json"))
        .expect("the server's credentials");
    let bucket = BucketName::parse(app.running.bucket.clone()).expect("bucket");
    let store = S3ObjectStore::new(&R2Config {
        account_id: None,
        access_key_id: creds.access_key_id,
        secret_access_key: creds.secret_access_key.into(),
        bucket: bucket.clone(),
        endpoint: app.running.s3_endpoint.clone(),
        region: "auto".to_owned(),
    })
    .expect("S3 client");
    (store, bucket)
}

async fn unfinished_uploads(app: &TestApp) -> Vec<String> {
    let (store, bucket) = raw_store(app);
    store
        .list_multipart_uploads(
            &bucket,
            OffsetDateTime::now_utc() + time::Duration::hours(1),
        )
        .await
        .expect("ListMultipartUploads")
        .into_iter()
        .map(|u| u.key)
        .collect()
}

async fn create_media(
    app: &TestApp,
    token: &str,
    size: usize,
    part_size: Option<usize>,
) -> JsonResponse {
    let mut body =
        json!({ "filename": "big.bin", "contentType": "application/octet-stream", "size": size });
    if let Some(p) = part_size {
        body["partSize"] = json!(p);
    }
    app.post_json("/api/v1/media/multipart", Some(token), &body)
        .await
}

async fn sign(app: &TestApp, token: &str, base: &str, numbers: &[u32]) -> JsonResponse {
    app.post_json(
        &format!("{base}/parts"),
        Some(token),
        &json!({ "partNumbers": numbers }),
    )
    .await
}

/// PUTs one part with its signed URL and headers; returns storage's ETag header.
async fn put_part(client: &reqwest::Client, part: &Value, data: &[u8]) -> String {
    assert_eq!(part["method"], "PUT");
    assert_eq!(
        part["headers"]["Content-Length"],
        data.len().to_string(),
        "each part URL is signed with the part's exact length"
    );
    let res = client
        .put(part["url"].as_str().expect("url"))
        .body(data.to_vec())
        .send()
        .await
        .expect("part PUT sent");
    assert_eq!(res.status(), 200, "part PUT: {:?}", res.text().await);
    res.headers()
        .get("etag")
        .expect("ETag on a part PUT")
        .to_str()
        .expect("ASCII etag")
        .to_owned()
}

/// Signs `numbers` in one batch and PUTs each with its slice of `data`.
async fn upload_parts(
    app: &TestApp,
    token: &str,
    base: &str,
    data: &[u8],
    part_size: usize,
    numbers: &[u32],
) -> Vec<(u32, String)> {
    let signed = sign(app, token, base, numbers).await;
    assert_eq!(signed.status, 200, "{signed:?}");
    let mut etags = Vec::new();
    for part in signed.body["parts"].as_array().expect("parts") {
        let n = u32::try_from(part["partNumber"].as_u64().expect("partNumber")).expect("u32");
        let start = (n as usize - 1) * part_size;
        let end = (start + part_size).min(data.len());
        etags.push((n, put_part(&app.http, part, &data[start..end]).await));
    }
    etags
}

fn part_list(etags: &[(u32, String)]) -> Value {
    json!({ "parts": etags.iter().map(|(n, e)| json!({ "partNumber": n, "etag": e })).collect::<Vec<_>>() })
}

async fn download_media(app: &TestApp, token: &str, id: &str) -> Vec<u8> {
    let dl = app.sign_download(token, id, &json!({})).await;
    assert_eq!(dl.status, 200, "{dl:?}");
    let got = app
        .http
        .get(dl.body["url"].as_str().expect("url"))
        .send()
        .await
        .expect("GET sent");
    assert_eq!(got.status(), 200);
    got.bytes().await.expect("body").to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_upload_in_8_mib_parts_signed_in_batches_completes_and_downloads_the_same_bytes() {
    let app =
        TestApp::spawn_with(|c| c.max_upload_size = filegate_core::domain::ByteSize::mib(100))
            .await;
    let token = app.token("user_1", Some("org_a"), Some("member"));
    let data = bytes(64 * MIB, 64);

    let created = create_media(&app, &token, data.len(), None).await;
    assert_eq!(created.status, 200, "{created:?}");
    assert_eq!(created.body["partSize"], 8 * MIB);
    assert_eq!(created.body["partCount"], 8);
    assert!(
        created.body["uploadId"]
            .as_str()
            .is_some_and(|u| !u.is_empty())
    );
    assert!(
        created.body["key"]
            .as_str()
            .unwrap()
            .starts_with("org/org_a/")
    );
    let id = created.body["id"].as_str().unwrap().to_owned();
    let base = format!("/api/v1/media/{id}");

    // Three batches, out of order: 1-3, 7-8, 4-6.
    let mut etags = Vec::new();
    for batch in [&[1, 2, 3][..], &[7, 8], &[4, 5, 6]] {
        etags.extend(upload_parts(&app, &token, &base, &data, 8 * MIB, batch).await);
    }
    etags.sort();
    // Pending until completed: not listed by default, not downloadable.
    let listed = app.get("/api/v1/media", Some(&token)).await;
    assert_eq!(
        listed.body["items"].as_array().unwrap().len(),
        0,
        "{listed:?}"
    );

    let done = app
        .post_json(
            &format!("{base}/complete"),
            Some(&token),
            &part_list(&etags),
        )
        .await;
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(done.body["status"], "confirmed");
    assert_eq!(done.body["size"], data.len());
    assert!(
        done.body["etag"].as_str().unwrap().ends_with("-8"),
        "{done:?}"
    );

    assert!(
        download_media(&app, &token, &id).await == data,
        "downloaded bytes differ"
    );
    assert!(unfinished_uploads(&app).await.is_empty());
    // Completing again answers the confirmed row.
    let again = app
        .post_json(
            &format!("{base}/complete"),
            Some(&token),
            &part_list(&etags),
        )
        .await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.body["status"], "confirmed");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_dropped_half_way_resumes_from_the_parts_storage_lists() {
    let app = TestApp::spawn().await;
    let token = app.token("user_1", Some("org_a"), Some("member"));
    let data = bytes(15 * MIB + 123, 7);
    let created = create_media(&app, &token, data.len(), Some(5 * MIB)).await;
    assert_eq!(created.status, 200, "{created:?}");
    assert_eq!(created.body["partCount"], 4);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let base = format!("/api/v1/media/{id}");

    // The first client uploads parts 1 and 3, then goes away (its ETags with it).
    {
        let first = reqwest::Client::new();
        let signed = sign(&app, &token, &base, &[1, 3]).await;
        for part in signed.body["parts"].as_array().unwrap() {
            let n = usize::try_from(part["partNumber"].as_u64().unwrap()).unwrap();
            let slice = &data[(n - 1) * 5 * MIB..(n * 5 * MIB).min(data.len())];
            put_part(&first, part, slice).await;
        }
    }

    // A new client asks what storage holds and uploads only the rest.
    let held = app.get(&format!("{base}/parts"), Some(&token)).await;
    assert_eq!(held.status, 200, "{held:?}");
    let parts = held.body["parts"].as_array().unwrap();
    let numbers: Vec<u64> = parts
        .iter()
        .map(|p| p["partNumber"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 3]);
    assert_eq!(parts[0]["size"], 5 * MIB);
    let mut etags: Vec<(u32, String)> = parts
        .iter()
        .map(|p| {
            (
                u32::try_from(p["partNumber"].as_u64().unwrap()).unwrap(),
                p["etag"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    etags.extend(upload_parts(&app, &token, &base, &data, 5 * MIB, &[2, 4]).await);
    etags.sort();

    let done = app
        .post_json(
            &format!("{base}/complete"),
            Some(&token),
            &part_list(&etags),
        )
        .await;
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(done.body["size"], data.len());
    assert!(
        download_media(&app, &token, &id).await == data,
        "downloaded bytes differ"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_refuses_a_wrong_etag_a_missing_part_and_a_wrong_total_and_confirms_nothing() {
    let app = TestApp::spawn().await;
    let token = app.token("user_1", Some("org_a"), Some("member"));
    let data = bytes(10 * MIB + 10, 3);
    let created = create_media(&app, &token, data.len(), Some(5 * MIB)).await;
    assert_eq!(created.status, 200, "{created:?}");
    let id = created.body["id"].as_str().unwrap().to_owned();
    let key = created.body["key"].as_str().unwrap().to_owned();
    let upload_id = created.body["uploadId"].as_str().unwrap().to_owned();
    let base = format!("/api/v1/media/{id}");
    let mut etags = upload_parts(&app, &token, &base, &data, 5 * MIB, &[1, 2]).await;
    let complete = |body: Value| {
        let app = &app;
        let token = &token;
        let base = &base;
        async move {
            app.post_json(&format!("{base}/complete"), Some(token), &body)
                .await
        }
    };
    let field_of = |res: &JsonResponse, field: &str| {
        assert_envelope(res, 400, "VALIDATION_FAILED");
        assert!(
            res.body["details"]["fields"][field].is_string(),
            "expected field {field} in {res:?}"
        );
    };

    // Part 3 was never uploaded.
    let mut missing = etags.clone();
    missing.push((3, "\"0123456789abcdef0123456789abcdef\"".to_owned()));
    field_of(&complete(part_list(&missing)).await, "parts");
    field_of(&complete(part_list(&etags)).await, "parts");

    // Storage holds part 3 now; a wrong ETag for part 2.
    etags.extend(upload_parts(&app, &token, &base, &data, 5 * MIB, &[3]).await);
    let mut wrong = etags.clone();
    wrong[1].1 = "\"ffffffffffffffffffffffffffffffff\"".to_owned();
    field_of(&complete(part_list(&wrong)).await, "parts[1].etag");

    // Part 3 replaced (behind the API: a part URL is signed with its exact length) by
    // one byte more: the parts no longer add up to the declared size.
    let (store, bucket) = raw_store(&app);
    let longer = store
        .upload_part(
            &bucket,
            &ObjectKey::parse(key.clone()).unwrap(),
            &upload_id,
            3,
            PutObject {
                content_length: 11,
                content_type: None,
                body: futures_once(vec![1; 11]),
            },
        )
        .await
        .expect("raw UploadPart");
    etags[2].1 = longer;
    field_of(&complete(part_list(&etags)).await, "size");

    // Nothing was confirmed: still pending, nothing at the key, the upload still there.
    let pending = app.get("/api/v1/media?status=all", Some(&token)).await;
    assert_eq!(pending.body["items"][0]["status"], "pending", "{pending:?}");
    assert!(
        store
            .head(&bucket, &ObjectKey::parse(key.clone()).unwrap())
            .await
            .is_err()
    );
    assert_eq!(unfinished_uploads(&app).await, vec![key]);
    app.shutdown().await;
}

fn futures_once(bytes: Vec<u8>) -> filegate_core::ports::ByteStream {
    use futures::StreamExt as _;
    futures::stream::once(async move { Ok(bytes::Bytes::from(bytes)) }).boxed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_leaves_no_row_and_no_upload_behind() {
    let app = TestApp::spawn().await;
    let token = app.token("user_1", Some("org_a"), Some("member"));
    let data = bytes(6 * MIB, 9);
    let created = create_media(&app, &token, data.len(), None).await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let base = format!("/api/v1/media/{id}");
    upload_parts(&app, &token, &base, &data, 8 * MIB, &[1]).await;
    assert_eq!(unfinished_uploads(&app).await.len(), 1);

    let aborted = app
        .send(
            app.http
                .delete(format!("{}{base}/multipart", app.api))
                .bearer_auth(&token),
        )
        .await;
    assert_eq!(aborted.status, 200, "{aborted:?}");
    assert_eq!(aborted.body, json!({ "aborted": true }));

    assert!(unfinished_uploads(&app).await.is_empty());
    let all = app.get("/api/v1/media?status=all", Some(&token)).await;
    assert_eq!(all.body["items"], json!([]), "{all:?}");
    assert_envelope(
        &app.get(&format!("{base}/parts"), Some(&token)).await,
        404,
        "FIREWALL_NOT_FOUND",
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organization_or_user_cannot_sign_list_complete_or_abort() {
    let app = TestApp::spawn().await;
    let owner = app.token("user_1", Some("org_a"), Some("member"));
    let data = bytes(1000, 1);
    let created = create_media(&app, &owner, data.len(), None).await;
    assert_eq!(created.status, 200, "{created:?}");
    let id = created.body["id"].as_str().unwrap().to_owned();
    let base = format!("/api/v1/media/{id}");
    let etags = upload_parts(&app, &owner, &base, &data, 8 * MIB, &[1]).await;

    for stranger in [
        app.token("user_2", Some("org_b"), Some("owner")),
        app.token("user_3", Some("org_a"), Some("owner")),
    ] {
        assert_envelope(
            &sign(&app, &stranger, &base, &[1]).await,
            404,
            "FIREWALL_NOT_FOUND",
        );
        assert_envelope(
            &app.get(&format!("{base}/parts"), Some(&stranger)).await,
            404,
            "FIREWALL_NOT_FOUND",
        );
        assert_envelope(
            &app.post_json(
                &format!("{base}/complete"),
                Some(&stranger),
                &part_list(&etags),
            )
            .await,
            404,
            "FIREWALL_NOT_FOUND",
        );
        let abort = app
            .send(
                app.http
                    .delete(format!("{}{base}/multipart", app.api))
                    .bearer_auth(&stranger),
            )
            .await;
        assert_envelope(&abort, 404, "FIREWALL_NOT_FOUND");
    }
    let anonymous = app
        .send(
            app.http
                .post(format!("{}{base}/parts", app.api))
                .json(&json!({ "partNumbers": [1] })),
        )
        .await;
    assert_envelope(&anonymous, 401, "AUTH_MISSING");
    // The owner's upload is intact.
    let done = app
        .post_json(
            &format!("{base}/complete"),
            Some(&owner),
            &part_list(&etags),
        )
        .await;
    assert_eq!(done.status, 200, "{done:?}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_plans_and_batches_name_their_field() {
    let app = TestApp::spawn().await;
    let token = app.token("user_1", Some("org_a"), Some("member"));
    assert_envelope(
        &create_media(&app, &token, 200 * MIB, None).await,
        413,
        "STORAGE_FILE_TOO_LARGE",
    );
    let small_part = create_media(&app, &token, 10 * MIB, Some(MIB)).await;
    assert_envelope(&small_part, 400, "VALIDATION_FAILED");
    assert!(small_part.body["details"]["fields"]["partSize"].is_string());
    let zero = create_media(&app, &token, 0, None).await;
    assert!(
        zero.body["details"]["fields"]["size"].is_string(),
        "{zero:?}"
    );

    let created = create_media(&app, &token, 11 * MIB, Some(5 * MIB)).await;
    let base = format!("/api/v1/media/{}", created.body["id"].as_str().unwrap());
    let out_of_plan = sign(&app, &token, &base, &[1, 4]).await;
    assert_envelope(&out_of_plan, 400, "VALIDATION_FAILED");
    assert!(out_of_plan.body["details"]["fields"]["partNumbers[1]"].is_string());
    let dup = sign(&app, &token, &base, &[2, 2]).await;
    assert!(
        dup.body["details"]["fields"]["partNumbers[1]"].is_string(),
        "{dup:?}"
    );
    let signed = sign(&app, &token, &base, &[3]).await;
    assert_eq!(
        signed.body["parts"][0]["headers"]["Content-Length"],
        (MIB).to_string()
    );
    let url = signed.body["parts"][0]["url"].as_str().unwrap();
    assert!(
        url.contains("partNumber=3") && url.contains("uploadId="),
        "{url}"
    );

    // A single-PUT row is no multipart upload.
    let single = app
        .sign_upload(&token, "a.txt", "text/plain", Some(3))
        .await;
    let single_id = single.body["id"].as_str().unwrap();
    assert_envelope(
        &app.get(&format!("/api/v1/media/{single_id}/parts"), Some(&token))
            .await,
        404,
        "STORAGE_UPLOAD_NOT_FOUND",
    );
    app.shutdown().await;
}

/// Managed mode: the creator's flow, a foreign organization refused, and an abort.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_multipart_upload_completes_into_a_confirmed_object() {
    let app = TestApp::spawn_with(|c| c.managed = true).await;
    let admin = app.token("admin_a", Some("org_a"), Some("admin"));
    let member = app.token("user_1", Some("org_a"), Some("member"));
    let made = app
        .post_json(
            "/storage/v1/bucket",
            Some(&admin),
            &json!({ "name": "videos" }),
        )
        .await;
    assert_eq!(made.status, 201, "{made:?}");
    let data = bytes(12 * MIB + 5, 5);
    let created = app
        .post_json(
            "/storage/v1/multipart/videos/clips/a.mp4",
            Some(&member),
            &json!({ "contentType": "video/mp4", "size": data.len(), "partSize": 5 * MIB }),
        )
        .await;
    assert_eq!(created.status, 200, "{created:?}");
    assert_eq!(created.body["bucket"], "videos");
    assert_eq!(created.body["path"], "clips/a.mp4");
    assert_eq!(created.body["partCount"], 3);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("obj_"));
    let base = format!("/storage/v1/uploads/{id}");

    // The path is taken while the upload runs.
    let taken = app
        .post_json(
            "/storage/v1/presign/videos/clips/a.mp4",
            Some(&member),
            &json!({ "contentType": "video/mp4", "size": 3 }),
        )
        .await;
    assert_envelope(&taken, 409, "STORAGE_OBJECT_EXISTS");

    let etags = upload_parts(&app, &member, &base, &data, 5 * MIB, &[1, 2, 3]).await;
    let stranger = app.token("user_9", Some("org_b"), Some("owner"));
    assert_envelope(
        &sign(&app, &stranger, &base, &[1]).await,
        404,
        "STORAGE_OBJECT_NOT_FOUND",
    );
    assert_envelope(
        &app.get(&format!("{base}/parts"), Some(&stranger)).await,
        404,
        "STORAGE_OBJECT_NOT_FOUND",
    );
    assert_envelope(
        &app.post_json(
            &format!("{base}/complete"),
            Some(&stranger),
            &part_list(&etags),
        )
        .await,
        404,
        "STORAGE_OBJECT_NOT_FOUND",
    );
    let abort = app
        .send(
            app.http
                .delete(format!("{}{base}", app.api))
                .bearer_auth(&stranger),
        )
        .await;
    assert_envelope(&abort, 404, "STORAGE_OBJECT_NOT_FOUND");

    let listed = app.get(&format!("{base}/parts"), Some(&member)).await;
    assert_eq!(
        listed.body["parts"].as_array().unwrap().len(),
        3,
        "{listed:?}"
    );
    let done = app
        .post_json(
            &format!("{base}/complete"),
            Some(&member),
            &part_list(&etags),
        )
        .await;
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(done.body["id"], id);
    assert_eq!(done.body["size"], data.len());
    assert_eq!(done.body["contentType"], "video/mp4");
    // A retried complete (its answer lost) gets the object, as in presign-only mode.
    let again = app
        .post_json(
            &format!("{base}/complete"),
            Some(&member),
            &part_list(&etags),
        )
        .await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.body, done.body);
    let got = app
        .http
        .get(format!("{}/storage/v1/object/videos/clips/a.mp4", app.api))
        .bearer_auth(&member)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert!(
        got.bytes().await.unwrap().as_ref() == data.as_slice(),
        "downloaded bytes differ"
    );

    // Another upload, aborted: no row (the path is free again), no upload at storage.
    let second = app
        .post_json(
            "/storage/v1/multipart/videos/clips/b.mp4",
            Some(&member),
            &json!({ "contentType": "video/mp4", "size": 100 }),
        )
        .await;
    let second_base = format!(
        "/storage/v1/uploads/{}",
        second.body["id"].as_str().unwrap()
    );
    upload_parts(&app, &member, &second_base, &bytes(100, 2), 8 * MIB, &[1]).await;
    let aborted = app
        .send(
            app.http
                .delete(format!("{}{second_base}", app.api))
                .bearer_auth(&member),
        )
        .await;
    assert_eq!(aborted.status, 200, "{aborted:?}");
    assert!(unfinished_uploads(&app).await.is_empty());
    app.presign_and_put(&member, "videos/clips/b.mp4", "video/mp4", vec![1, 2, 3])
        .await;
    app.shutdown().await;
}
