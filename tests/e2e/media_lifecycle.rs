//! Presign-only media: the body rules of sign-download and the pending → confirmed
//! lifecycle, through the real server and the embedded S3 endpoint.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers panic on purpose: a failed set-up step is a failed test"
)]

use filegate_e2e::TestApp;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Sends `head` (request line and headers, without the blank line) and `body` on a raw
/// socket, so no client adds a Content-Length or Content-Type of its own.
async fn raw_post(app: &TestApp, head: &str, body: &[u8]) -> (u16, Value) {
    let mut tcp = tokio::net::TcpStream::connect(app.running.api_addr)
        .await
        .unwrap();
    let mut req = format!("{head}\r\nHost: api\r\nConnection: close\r\n\r\n").into_bytes();
    req.extend_from_slice(body);
    tcp.write_all(&req).await.unwrap();
    let mut out = Vec::new();
    tcp.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text[9..12].parse().unwrap();
    let (_, json) = text.split_once("\r\n\r\n").unwrap();
    // A chunked answer: take the JSON between the chunk-size lines.
    let json = json
        .find('{')
        .and_then(|s| json.rfind('}').map(|e| &json[s..=e]))
        .unwrap_or("null");
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

#[tokio::test]
async fn sign_download_accepts_an_empty_body_without_content_length() {
    let app = TestApp::spawn().await;
    let token = app.token("user_1", Some("org_a"), Some("member"));
    let signed = app
        .sign_upload(&token, "a.txt", "text/plain", Some(2))
        .await;
    let put = app
        .put_presigned(
            signed.body["uploadUrl"].as_str().unwrap(),
            &signed.body["headers"],
            b"hi".to_vec(),
        )
        .await;
    assert_eq!(put.status(), 200);
    let id = signed.body["id"].as_str().unwrap();
    let line =
        format!("POST /api/v1/media/{id}/sign-download HTTP/1.1\r\nAuthorization: Bearer {token}");

    // No body, no Content-Length, no Content-Type.
    let (status, body) = raw_post(&app, &line, b"").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["method"], "GET");
    // An empty chunked body.
    let (status, body) = raw_post(
        &app,
        &format!("{line}\r\nTransfer-Encoding: chunked"),
        b"0\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // A body without a JSON Content-Type is still refused with the envelope.
    let (status, body) = raw_post(&app, &format!("{line}\r\nContent-Length: 2"), b"{}").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "VALIDATION_FAILED");
    assert!(body["requestId"].is_string(), "{body}");
    app.shutdown().await;
}

/// Where the embedded S3 endpoint keeps `key`'s bytes (a path that does not exist when
/// the object does not).
fn stored_file(app: &TestApp, key: &str) -> std::path::PathBuf {
    let objects = app.running.data_dir.join("objects");
    filegate_embedded_s3::stored_object_path(&objects, &app.running.bucket, key)
        .unwrap_or_else(|| objects.join("no-such-object"))
}

fn names(res: &filegate_e2e::JsonResponse) -> Vec<(String, String)> {
    res.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{res:?}"))
        .iter()
        .map(|i| {
            (
                i["filename"].as_str().unwrap().to_owned(),
                i["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_signed_upload_is_pending_until_confirmed_with_its_real_size() {
    let app = TestApp::spawn().await;
    let token = app.token("user_1", Some("org_a"), Some("member"));
    let signed = app
        .sign_upload(&token, "notes.txt", "text/plain", None)
        .await;
    assert_eq!(signed.status, 200, "{signed:?}");
    let id = signed.body["id"].as_str().unwrap();
    let confirm = format!("/api/v1/media/{id}/confirm");

    // Nothing uploaded: hidden from the default listing, 409 on confirm and downloads.
    let listed = app.get("/api/v1/media", Some(&token)).await;
    assert_eq!(names(&listed), [] as [(String, String); 0]);
    let pending = app.get("/api/v1/media?status=pending", Some(&token)).await;
    assert_eq!(names(&pending), [("notes.txt".into(), "pending".into())]);
    let early = app.post_json(&confirm, Some(&token), &Value::Null).await;
    filegate_e2e::assert_envelope(&early, 409, "STORAGE_NOT_UPLOADED");
    let dl = app.sign_download(&token, id, &serde_json::json!({})).await;
    filegate_e2e::assert_envelope(&dl, 409, "STORAGE_NOT_UPLOADED");
    let streamed = app
        .get(&format!("/api/v1/files/{id}/download"), Some(&token))
        .await;
    filegate_e2e::assert_envelope(&streamed, 409, "STORAGE_NOT_UPLOADED");

    let put = app
        .put_presigned(
            signed.body["uploadUrl"].as_str().unwrap(),
            &signed.body["headers"],
            b"twelve bytes".to_vec(),
        )
        .await;
    assert_eq!(put.status(), 200);
    let done = app.post_json(&confirm, Some(&token), &Value::Null).await;
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(done.body["status"], "confirmed");
    assert_eq!(done.body["size"], 12);
    assert!(done.body["etag"].is_string(), "{done:?}");
    // Again: the same row.
    let again = app.post_json(&confirm, Some(&token), &Value::Null).await;
    assert_eq!(again.body, done.body);

    let listed = app.get("/api/v1/media", Some(&token)).await;
    assert_eq!(names(&listed), [("notes.txt".into(), "confirmed".into())]);
    assert_eq!(listed.body["items"][0]["size"], 12);
    let all = app.get("/api/v1/media?status=all", Some(&token)).await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), 1);
    let bad = app.get("/api/v1/media?status=done", Some(&token)).await;
    filegate_e2e::assert_envelope(&bad, 400, "VALIDATION_FAILED");
    assert!(
        bad.body["details"]["fields"]["status"].is_string(),
        "{bad:?}"
    );
    // Another organization cannot confirm it.
    let stranger = app.token("user_9", Some("org_b"), Some("owner"));
    let foreign = app.post_json(&confirm, Some(&stranger), &Value::Null).await;
    filegate_e2e::assert_envelope(&foreign, 404, "FIREWALL_NOT_FOUND");
    app.shutdown().await;
}

#[tokio::test]
async fn an_unsized_upload_over_the_limit_is_deleted_with_its_row() {
    let app =
        TestApp::spawn_with(|c| c.max_upload_size = filegate_core::domain::ByteSize(10)).await;
    let token = app.token("user_1", Some("org_a"), Some("member"));
    let signed = app
        .sign_upload(&token, "big.bin", "application/octet-stream", None)
        .await;
    let key = signed.body["key"].as_str().unwrap().to_owned();
    let put = app
        .put_presigned(
            signed.body["uploadUrl"].as_str().unwrap(),
            &signed.body["headers"],
            vec![7; 11],
        )
        .await;
    assert_eq!(
        put.status(),
        200,
        "without a signed size storage takes any size"
    );
    assert!(stored_file(&app, &key).exists());

    // The download route confirms first, and refuses.
    let id = signed.body["id"].as_str().unwrap();
    let res = app
        .get(&format!("/api/v1/files/{id}/download"), Some(&token))
        .await;
    filegate_e2e::assert_envelope(&res, 413, "STORAGE_FILE_TOO_LARGE");
    assert_eq!(res.body["details"]["size"], 11, "{res:?}");
    assert!(!stored_file(&app, &key).exists(), "the object is deleted");
    let all = app.get("/api/v1/media?status=all", Some(&token)).await;
    assert_eq!(names(&all), [] as [(String, String); 0], "and its row");
    let gone = app
        .post_json(
            &format!("/api/v1/media/{id}/confirm"),
            Some(&token),
            &Value::Null,
        )
        .await;
    filegate_e2e::assert_envelope(&gone, 404, "FIREWALL_NOT_FOUND");
    app.shutdown().await;
}

#[tokio::test]
async fn a_pending_upload_is_confirmed_by_its_first_download() {
    let app = TestApp::spawn().await;
    let token = app.token("user_1", Some("org_a"), Some("member"));
    let signed = app
        .sign_upload(&token, "a.txt", "text/plain", Some(5))
        .await;
    let put = app
        .put_presigned(
            signed.body["uploadUrl"].as_str().unwrap(),
            &signed.body["headers"],
            b"hello".to_vec(),
        )
        .await;
    assert_eq!(put.status(), 200);
    let id = signed.body["id"].as_str().unwrap();
    let res = app
        .http
        .get(format!("{}/api/v1/files/{id}/download", app.api))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"hello");
    let listed = app.get("/api/v1/media", Some(&token)).await;
    assert_eq!(names(&listed), [("a.txt".into(), "confirmed".into())]);
    app.shutdown().await;
}

#[tokio::test]
async fn require_size_makes_storage_refuse_any_other_size() {
    let app = TestApp::spawn_with(|c| c.media_require_size = true).await;
    let token = app.token("user_1", Some("org_a"), Some("member"));
    let no_size = app.sign_upload(&token, "a.txt", "text/plain", None).await;
    filegate_e2e::assert_envelope(&no_size, 400, "VALIDATION_FAILED");
    assert!(
        no_size.body["details"]["fields"]["size"].is_string(),
        "{no_size:?}"
    );

    let signed = app
        .sign_upload(&token, "a.txt", "text/plain", Some(5))
        .await;
    assert_eq!(signed.status, 200, "{signed:?}");
    let url = signed.body["uploadUrl"].as_str().unwrap();
    let longer = app
        .put_presigned(url, &signed.body["headers"], b"hello!".to_vec())
        .await;
    assert!(longer.status().is_client_error(), "{}", longer.status());
    assert!(!stored_file(&app, signed.body["key"].as_str().unwrap()).exists());
    app.shutdown().await;
}
