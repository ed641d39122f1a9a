//! Managed mode's `/storage/v1/*` routes through the real server (embedded S3 endpoint,
//! SQLite FILES_DB): buckets, uploads through the server, presign + confirm, listings, URLs.

use filegate_auth::mint_token;
use filegate_e2e::{JsonResponse, TestApp, assert_envelope, jwt_config};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

const JPEG: &[u8] = b"\xff\xd8\xff\xe0 pretend this is a cropped avatar \xff\xd9";

async fn managed() -> TestApp {
    TestApp::spawn_with(|c| c.managed = true).await
}

/// A platform admin (`userRole: admin`) acting in `org`.
fn platform_admin(app: &TestApp, user: &str, org: Option<&str>) -> String {
    mint_token(
        &jwt_config(app.running.auth_secret.clone()),
        user,
        org,
        Some("owner"),
        Some("admin"),
        Duration::from_hours(1),
        time::OffsetDateTime::now_utc(),
    )
    .expect("mint token")
}

fn url(app: &TestApp, path: &str) -> String {
    format!("{}{path}", app.api)
}

/// `POST /storage/v1/object/<bucket_path>` with the raw bytes (reqwest sends their
/// Content-Length).
async fn upload(
    app: &TestApp,
    token: Option<&str>,
    bucket_path: &str,
    content_type: Option<&str>,
    bytes: Vec<u8>,
    upsert: bool,
) -> JsonResponse {
    let mut req = app
        .http
        .post(url(app, &format!("/storage/v1/object/{bucket_path}")))
        .body(bytes);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    if upsert {
        req = req.header("x-upsert", "true");
    }
    app.send(req).await
}

async fn create_bucket(app: &TestApp, token: &str, body: &Value) -> JsonResponse {
    app.post_json("/storage/v1/bucket", Some(token), body).await
}

async fn put_json(app: &TestApp, path: &str, token: &str, body: &Value) -> JsonResponse {
    app.send(app.http.put(url(app, path)).bearer_auth(token).json(body))
        .await
}

async fn delete(app: &TestApp, path: &str, token: Option<&str>) -> JsonResponse {
    let mut req = app.http.delete(url(app, path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    app.send(req).await
}

/// `POST /storage/v1/url`, then GETs the short-lived URL it gives for a private object
/// (files listener token URL, or signed storage URL) and returns the bytes.
async fn read_back(app: &TestApp, token: &str, key: &str) -> Vec<u8> {
    let res = app
        .post_json("/storage/v1/url", Some(token), &json!({ "key": key }))
        .await;
    assert_eq!(res.status, 200, "{res:?}");
    assert!(res.body["expiresAt"].is_string(), "signed: {res:?}");
    let got = app
        .http
        .get(res.body["url"].as_str().expect("a url"))
        .send()
        .await
        .expect("GET the signed URL");
    assert_eq!(got.status(), 200);
    got.bytes().await.expect("bytes").to_vec()
}

/// Where the embedded S3 endpoint keeps `key`'s bytes (a path that does not exist when
/// the object does not).
fn stored_file(app: &TestApp, key: &str) -> PathBuf {
    let objects = app.running.data_dir.join("objects");
    filegate_embedded_s3::stored_object_path(&objects, &app.running.bucket, key)
        .unwrap_or_else(|| objects.join("no-such-object"))
}

/// org_a's admin creates an organization bucket `docs`; returns (admin, member) tokens.
async fn docs_bucket(app: &TestApp, extra: Value) -> (String, String) {
    let admin = app.token("admin_a", Some("org_a"), Some("admin"));
    let member = app.token("user_a", Some("org_a"), Some("member"));
    let mut body = json!({ "name": "docs" });
    for (k, v) in extra.as_object().expect("an object") {
        body[k] = v.clone();
    }
    let res = create_bucket(app, &admin, &body).await;
    assert_eq!(res.status, 201, "{res:?}");
    (admin, member)
}

async fn metrics_text(app: &TestApp) -> String {
    app.http
        .get(url(app, "/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text")
}

#[tokio::test]
async fn managed_mode_off_answers_every_storage_route_with_the_envelope() {
    let app = TestApp::spawn().await;
    let token = app.token("user_1", Some("org_a"), Some("owner"));
    let routes = [
        ("POST", "/storage/v1/bucket"),
        ("GET", "/storage/v1/bucket"),
        ("GET", "/storage/v1/bucket/docs"),
        ("PUT", "/storage/v1/bucket/docs"),
        ("DELETE", "/storage/v1/bucket/docs?empty=true"),
        ("POST", "/storage/v1/object/docs/a/b.txt"),
        ("DELETE", "/storage/v1/object/docs/a/b.txt"),
        ("GET", "/storage/v1/object/list/docs"),
        ("POST", "/storage/v1/presign/docs/a.txt"),
        ("POST", "/storage/v1/confirm/docs/a.txt"),
        ("POST", "/storage/v1/url"),
    ];
    for (method, path) in routes {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        for token in [Some(token.as_str()), None] {
            let mut req = app
                .http
                .request(method.clone(), url(&app, path))
                .json(&json!({}));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let res = app.send(req).await;
            assert_envelope(&res, 404, "MANAGED_MODE_OFF");
            assert!(
                res.body["hint"]
                    .as_str()
                    .is_some_and(|h| h.contains("FILEGATE_MANAGED=true")),
                "{method} {path}: {res:?}"
            );
        }
    }
    app.shutdown().await;
}

#[tokio::test]
async fn buckets_are_created_listed_read_updated_and_deleted() {
    let app = managed().await;
    let admin = app.token("admin_a", Some("org_a"), Some("admin"));
    let member = app.token("user_a", Some("org_a"), Some("member"));

    // Create.
    let created = create_bucket(
        &app,
        &admin,
        &json!({
            "name": "docs", "writeScope": "org", "fileSizeLimit": 1024,
            "allowedMimeTypes": ["text/*", "application/pdf"]
        }),
    )
    .await;
    assert_eq!(created.status, 201, "{created:?}");
    let b = &created.body;
    assert!(b["id"].as_str().is_some_and(|id| !id.is_empty()), "{b}");
    assert_eq!(b["name"], "docs");
    assert_eq!(b["organizationId"], "org_a");
    assert_eq!(b["public"], false);
    assert_eq!(b["readScope"], "org");
    assert_eq!(b["writeScope"], "org");
    assert_eq!(b["fileSizeLimit"], 1024);
    assert_eq!(b["allowedMimeTypes"], json!(["text/*", "application/pdf"]));
    assert!(b["createdAt"].as_str().unwrap().ends_with('Z'));

    // Refusals: same name, reserved name, bad fields, too low a role, contradictions.
    assert_envelope(
        &create_bucket(&app, &admin, &json!({ "name": "docs" })).await,
        409,
        "STORAGE_BUCKET_EXISTS",
    );
    let reserved = create_bucket(&app, &admin, &json!({ "name": "list" })).await;
    assert_envelope(&reserved, 400, "VALIDATION_FAILED");
    assert!(reserved.body["details"]["fields"]["name"].is_string());
    let bad = create_bucket(
        &app,
        &admin,
        &json!({ "name": "x2", "readScope": "everyone", "allowedMimeTypes": ["nope"] }),
    )
    .await;
    assert_envelope(&bad, 400, "VALIDATION_FAILED");
    assert!(
        bad.body["details"]["fields"]["readScope"].is_string(),
        "{bad:?}"
    );
    assert!(bad.body["details"]["fields"]["allowedMimeTypes"].is_string());
    assert_envelope(
        &create_bucket(
            &app,
            &admin,
            &json!({ "name": "pics", "public": true, "readScope": "org" }),
        )
        .await,
        400,
        "VALIDATION_FAILED",
    );
    assert_envelope(
        &create_bucket(&app, &member, &json!({ "name": "mine" })).await,
        403,
        "ACCESS_ROLE_REQUIRED",
    );
    assert_envelope(
        &create_bucket(
            &app,
            &admin,
            &json!({ "name": "shared", "projectWide": true }),
        )
        .await,
        403,
        "ACCESS_ADMIN_REQUIRED",
    );
    assert_envelope(
        &app.post_json("/storage/v1/bucket", None, &json!({ "name": "anon" }))
            .await,
        401,
        "AUTH_MISSING",
    );
    // A platform admin may create a project-wide one, visible from every organization.
    let root = platform_admin(&app, "root", None);
    let shared = create_bucket(
        &app,
        &root,
        &json!({ "name": "shared", "projectWide": true, "public": true }),
    )
    .await;
    assert_eq!(shared.status, 201, "{shared:?}");
    assert_eq!(shared.body["organizationId"], Value::Null);
    assert_eq!(shared.body["readScope"], "public");

    // List: the organization's and the project-wide ones (the defaults too), by name.
    let list = app.get("/storage/v1/bucket", Some(&member)).await;
    assert_eq!(list.status, 200, "{list:?}");
    let names: Vec<_> = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["avatars", "docs", "org-logos", "shared"]);
    let other_org = app.token("user_b", Some("org_b"), Some("owner"));
    let theirs = app.get("/storage/v1/bucket", Some(&other_org)).await;
    assert!(
        !theirs
            .body
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["name"] == "docs"),
        "{theirs:?}"
    );

    // Get, by name and by id.
    let got = app.get("/storage/v1/bucket/docs", Some(&member)).await;
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(got.body, created.body);
    let id = created.body["id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/storage/v1/bucket/{id}"), Some(&member))
            .await
            .body["name"],
        "docs"
    );
    let missing = app.get("/storage/v1/bucket/nope", Some(&member)).await;
    assert_envelope(&missing, 404, "STORAGE_BUCKET_NOT_FOUND");
    assert_eq!(missing.body["error"], "Bucket not found");
    assert_envelope(
        &app.get("/storage/v1/bucket/docs", Some(&other_org)).await,
        404,
        "STORAGE_BUCKET_NOT_FOUND",
    );

    // Update: public, the limit removed (null), an unchanged allow-list.
    let updated = put_json(
        &app,
        "/storage/v1/bucket/docs",
        &admin,
        &json!({ "public": true, "fileSizeLimit": null }),
    )
    .await;
    assert_eq!(updated.status, 200, "{updated:?}");
    assert_eq!(updated.body["public"], true);
    assert_eq!(updated.body["readScope"], "public");
    assert_eq!(updated.body["fileSizeLimit"], Value::Null);
    assert_eq!(
        updated.body["allowedMimeTypes"],
        created.body["allowedMimeTypes"]
    );
    let back = put_json(
        &app,
        "/storage/v1/bucket/docs",
        &admin,
        &json!({ "public": false }),
    )
    .await;
    assert_eq!(back.body["readScope"], "org", "{back:?}");
    assert_envelope(
        &put_json(
            &app,
            "/storage/v1/bucket/docs",
            &member,
            &json!({ "public": true }),
        )
        .await,
        403,
        "ACCESS_ROLE_REQUIRED",
    );
    assert_envelope(
        &put_json(
            &app,
            "/storage/v1/bucket/docs",
            &admin,
            &json!({ "writeScope": "PUBLIC" }),
        )
        .await,
        400,
        "VALIDATION_FAILED",
    );

    // Delete: refused while it holds an object, then with ?empty=true.
    let up = upload(
        &app,
        Some(&member),
        "docs/a.txt",
        Some("text/plain"),
        b"hello".to_vec(),
        false,
    )
    .await;
    assert_eq!(up.status, 200, "{up:?}");
    let key = up.body["key"].as_str().unwrap().to_owned();
    assert!(stored_file(&app, &key).exists());
    assert_envelope(
        &delete(&app, "/storage/v1/bucket/docs", Some(&admin)).await,
        409,
        "STORAGE_BUCKET_NOT_EMPTY",
    );
    assert_envelope(
        &delete(&app, "/storage/v1/bucket/docs?empty=true", Some(&member)).await,
        403,
        "ACCESS_ROLE_REQUIRED",
    );
    let gone = delete(&app, "/storage/v1/bucket/docs?empty=true", Some(&admin)).await;
    assert_eq!(gone.status, 200, "{gone:?}");
    assert_eq!(gone.body, json!({ "deleted": true }));
    assert!(!stored_file(&app, &key).exists(), "the object was emptied");
    assert_envelope(
        &app.get("/storage/v1/bucket/docs", Some(&admin)).await,
        404,
        "STORAGE_BUCKET_NOT_FOUND",
    );
    // An empty bucket needs no flag.
    assert_eq!(
        create_bucket(&app, &admin, &json!({ "name": "tmp" }))
            .await
            .status,
        201
    );
    assert_eq!(
        delete(&app, "/storage/v1/bucket/tmp", Some(&admin))
            .await
            .status,
        200
    );
    app.shutdown().await;
}

#[tokio::test]
async fn an_upload_streams_the_body_to_storage_and_returns_the_object() {
    let app = managed().await;
    let (_, member) = docs_bucket(&app, json!({})).await;
    // Far above the API's 64 KiB JSON limit: the upload route has none.
    let big: Vec<u8> = (0..300 * 1024)
        .map(|i: u32| u8::try_from(i % 251).unwrap_or(0))
        .collect();

    let res = upload(
        &app,
        Some(&member),
        "docs/reports/2024/q1.bin",
        Some("application/octet-stream"),
        big.clone(),
        false,
    )
    .await;

    assert_eq!(res.status, 200, "{res:?}");
    let o = &res.body;
    assert_eq!(o["key"], "org_a/docs/reports/2024/q1.bin");
    assert_eq!(o["bucket"], "docs");
    assert_eq!(o["path"], "reports/2024/q1.bin");
    assert_eq!(o["size"], big.len());
    assert_eq!(o["contentType"], "application/octet-stream");
    assert!(o["etag"].as_str().is_some_and(|e| !e.is_empty()), "{o}");
    assert!(o["id"].is_string());
    assert_eq!(
        std::fs::read(stored_file(&app, "org_a/docs/reports/2024/q1.bin")).unwrap(),
        big
    );
    assert_eq!(
        read_back(&app, &member, "org_a/docs/reports/2024/q1.bin").await,
        big
    );
    let metrics = metrics_text(&app).await;
    assert!(
        metrics.contains(&format!("filegate_upload_bytes_total {}", big.len())),
        "{metrics}"
    );
    // Anonymous uploads have no owner.
    assert_envelope(
        &upload(
            &app,
            None,
            "docs/anon.txt",
            Some("text/plain"),
            b"x".to_vec(),
            false,
        )
        .await,
        401,
        "AUTH_MISSING",
    );
    app.shutdown().await;
}

#[tokio::test]
async fn an_upload_over_the_bucket_limit_is_413_and_leaves_nothing() {
    let app = managed().await;
    let (_, member) = docs_bucket(&app, json!({ "fileSizeLimit": 16 })).await;

    let res = upload(
        &app,
        Some(&member),
        "docs/big.txt",
        Some("text/plain"),
        vec![b'x'; 100],
        false,
    )
    .await;

    assert_envelope(&res, 413, "STORAGE_FILE_TOO_LARGE");
    assert_eq!(res.body["details"], json!({ "size": 100, "maxSize": 16 }));
    assert!(!stored_file(&app, "org_a/docs/big.txt").exists());
    let list = app.get("/storage/v1/object/list/docs", Some(&member)).await;
    assert_eq!(list.body["items"], json!([]), "{list:?}");
    assert_envelope(
        &app.post_json(
            "/storage/v1/url",
            Some(&member),
            &json!({ "key": "org_a/docs/big.txt" }),
        )
        .await,
        404,
        "STORAGE_OBJECT_NOT_FOUND",
    );
    // At the limit is fine.
    let ok = upload(
        &app,
        Some(&member),
        "docs/big.txt",
        Some("text/plain"),
        vec![b'x'; 16],
        false,
    )
    .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn an_upload_of_a_type_outside_the_allow_list_is_415() {
    let app = managed().await;
    let user = app.token("user_9", None, None);

    let res = upload(
        &app,
        Some(&user),
        "avatars/user_9/avatar.html",
        Some("text/html"),
        b"<p>".to_vec(),
        false,
    )
    .await;

    assert_envelope(&res, 415, "STORAGE_MIME_NOT_ALLOWED");
    assert_eq!(res.body["details"]["contentType"], "text/html");
    assert_eq!(res.body["details"]["allowed"], json!(["image/*"]));
    assert!(!stored_file(&app, "user_9/avatars/user_9/avatar.html").exists());
    app.shutdown().await;
}

#[tokio::test]
async fn an_upload_to_a_missing_bucket_is_404_bucket_not_found() {
    let app = managed().await;
    let user = app.token("user_1", Some("org_a"), Some("owner"));

    let res = upload(
        &app,
        Some(&user),
        "nope/a.txt",
        Some("text/plain"),
        b"a".to_vec(),
        false,
    )
    .await;

    assert_envelope(&res, 404, "STORAGE_BUCKET_NOT_FOUND");
    assert_eq!(res.body["error"], "Bucket not found");
    app.shutdown().await;
}

#[tokio::test]
async fn an_existing_path_is_409_unless_x_upsert_replaces_it() {
    let app = managed().await;
    let (_, member) = docs_bucket(&app, json!({})).await;
    let first = upload(
        &app,
        Some(&member),
        "docs/notes.txt",
        Some("text/plain"),
        b"first".to_vec(),
        false,
    )
    .await;
    assert_eq!(first.status, 200, "{first:?}");

    let again = upload(
        &app,
        Some(&member),
        "docs/notes.txt",
        Some("text/plain"),
        b"second!".to_vec(),
        false,
    )
    .await;
    assert_envelope(&again, 409, "STORAGE_OBJECT_EXISTS");
    assert_eq!(
        read_back(&app, &member, "org_a/docs/notes.txt").await,
        b"first"
    );

    let replaced = upload(
        &app,
        Some(&member),
        "docs/notes.txt",
        Some("text/markdown"),
        b"second!".to_vec(),
        true,
    )
    .await;
    assert_eq!(replaced.status, 200, "{replaced:?}");
    assert_eq!(replaced.body["id"], first.body["id"], "the same object");
    assert_eq!(replaced.body["size"], 7);
    assert_eq!(replaced.body["contentType"], "text/markdown");
    assert_ne!(replaced.body["etag"], first.body["etag"]);
    assert_eq!(
        read_back(&app, &member, "org_a/docs/notes.txt").await,
        b"second!"
    );

    let bad = app
        .send(
            app.http
                .post(url(&app, "/storage/v1/object/docs/notes.txt"))
                .bearer_auth(&member)
                .header("content-type", "text/plain")
                .header("x-upsert", "yes")
                .body("x"),
        )
        .await;
    assert_envelope(&bad, 400, "VALIDATION_FAILED");
    assert!(
        bad.body["details"]["fields"]["x-upsert"].is_string(),
        "{bad:?}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn an_upload_without_content_length_is_411() {
    let app = managed().await;
    let (_, member) = docs_bucket(&app, json!({})).await;
    // A file body has no known length: reqwest sends it chunked, without Content-Length.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("body.txt");
    std::fs::write(&path, b"streamed without a length").unwrap();
    let file = tokio::fs::File::open(&path).await.unwrap();

    let res = app
        .send(
            app.http
                .post(url(&app, "/storage/v1/object/docs/chunked.txt"))
                .bearer_auth(&member)
                .header("content-type", "text/plain")
                .body(reqwest::Body::from(file)),
        )
        .await;

    assert_envelope(&res, 411, "LENGTH_REQUIRED");
    assert!(
        res.body["hint"]
            .as_str()
            .unwrap()
            .contains("Content-Length")
    );
    assert!(!stored_file(&app, "org_a/docs/chunked.txt").exists());
    app.shutdown().await;
}

#[tokio::test]
async fn an_upload_without_content_type_is_400() {
    let app = managed().await;
    let (_, member) = docs_bucket(&app, json!({})).await;

    let res = upload(
        &app,
        Some(&member),
        "docs/untyped",
        None,
        b"abc".to_vec(),
        false,
    )
    .await;

    assert_envelope(&res, 400, "VALIDATION_FAILED");
    assert!(
        res.body["details"]["fields"]["contentType"]
            .as_str()
            .is_some_and(|m| m.contains("Content-Type")),
        "{res:?}"
    );
    // Bad paths are refused too.
    let traversal = upload(
        &app,
        Some(&member),
        "docs/a%5Cb.txt",
        Some("text/plain"),
        b"abc".to_vec(),
        false,
    )
    .await;
    assert_envelope(&traversal, 400, "VALIDATION_FAILED");
    assert!(
        traversal.body["details"]["fields"]["path"].is_string(),
        "{traversal:?}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn another_organization_cannot_see_or_touch_the_objects() {
    let app = managed().await;
    let (_, member) = docs_bucket(&app, json!({})).await;
    let up = upload(
        &app,
        Some(&member),
        "docs/secret.txt",
        Some("text/plain"),
        b"org a only".to_vec(),
        false,
    )
    .await;
    assert_eq!(up.status, 200, "{up:?}");
    let key = up.body["key"].as_str().unwrap();
    let intruder = app.token("user_b", Some("org_b"), Some("owner"));
    let no_org = app.token("user_c", None, None);

    // The name resolves in the caller's organization: org_b has no `docs`.
    // By key, another organization's object is hidden like a missing one (firewall, hide
    // mode), and so is every other refusal of the read: no organization, no credentials.
    for (token, by_key) in [
        (&intruder, (404, "STORAGE_OBJECT_NOT_FOUND")),
        (&no_org, (404, "STORAGE_OBJECT_NOT_FOUND")),
    ] {
        assert_envelope(
            &app.get("/storage/v1/object/list/docs", Some(token)).await,
            404,
            "STORAGE_BUCKET_NOT_FOUND",
        );
        assert_envelope(
            &upload(
                &app,
                Some(token),
                "docs/secret.txt",
                Some("text/plain"),
                b"overwrite".to_vec(),
                true,
            )
            .await,
            404,
            "STORAGE_BUCKET_NOT_FOUND",
        );
        assert_envelope(
            &delete(&app, "/storage/v1/object/docs/secret.txt", Some(token)).await,
            404,
            "STORAGE_BUCKET_NOT_FOUND",
        );
        assert_envelope(
            &app.post_json("/storage/v1/url", Some(token), &json!({ "key": key }))
                .await,
            by_key.0,
            by_key.1,
        );
    }
    assert_envelope(
        &app.post_json("/storage/v1/url", None, &json!({ "key": key }))
            .await,
        404,
        "STORAGE_OBJECT_NOT_FOUND",
    );
    // Untouched.
    assert_eq!(read_back(&app, &member, key).await, b"org a only");
    app.shutdown().await;
}

#[tokio::test]
async fn the_account_ui_avatar_flow_gets_a_public_files_url() {
    let app = managed().await;
    // A signed-up user who belongs to no organization yet.
    let user = app.token("user_42", None, None);
    let path = "avatars/user_42/avatar-1718000000000.jpg";

    let up = upload(
        &app,
        Some(&user),
        path,
        Some("image/jpeg"),
        JPEG.to_vec(),
        false,
    )
    .await;

    assert_eq!(up.status, 200, "{up:?}");
    let key = up.body["key"].as_str().unwrap();
    assert_eq!(key, "user_42/avatars/user_42/avatar-1718000000000.jpg");
    assert_eq!(up.body["contentType"], "image/jpeg");
    assert_eq!(up.body["size"], JPEG.len());
    let res = app
        .post_json("/storage/v1/url", Some(&user), &json!({ "key": key }))
        .await;
    assert_eq!(res.status, 200, "{res:?}");
    let public = res.body["url"].as_str().unwrap();
    assert!(
        public.starts_with("http://") && public.ends_with(&format!("/public/{key}")),
        "{public}"
    );
    assert!(!public.contains("X-Amz-"), "not a signed URL: {public}");
    assert!(res.body.get("expiresAt").is_none(), "{res:?}");
    // Public: anyone may ask for the URL.
    let anon = app
        .post_json("/storage/v1/url", None, &json!({ "key": key }))
        .await;
    assert_eq!(anon.body["url"], public);
    // The client's next avatar goes next to it; only the user's own segment is listed.
    let listed = app
        .get("/storage/v1/object/list/avatars", Some(&user))
        .await;
    assert_eq!(listed.status, 200, "{listed:?}");
    assert_eq!(listed.body["items"][0]["key"], key);
    let other = app.token("user_43", None, None);
    let theirs = app
        .get("/storage/v1/object/list/avatars", Some(&other))
        .await;
    assert_eq!(theirs.body["items"], json!([]), "{theirs:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn presign_put_confirm_records_the_real_size_and_etag() {
    let app = managed().await;
    let (_, member) = docs_bucket(&app, json!({})).await;
    let body = b"presigned straight to storage".to_vec();

    let signed = app
        .post_json(
            "/storage/v1/presign/docs/direct/report.txt",
            Some(&member),
            &json!({ "contentType": "text/plain", "size": body.len() }),
        )
        .await;
    assert_eq!(signed.status, 200, "{signed:?}");
    assert_eq!(signed.body["method"], "PUT");
    assert_eq!(signed.body["key"], "org_a/docs/direct/report.txt");
    assert!(signed.body["id"].is_string());
    assert!(signed.body["expiresAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(signed.body["headers"]["Content-Type"], "text/plain");
    let upload_url = signed.body["uploadUrl"].as_str().unwrap();
    assert!(upload_url.contains("X-Amz-Signature="), "{upload_url}");
    // Pending objects are not listed.
    let pending = app.get("/storage/v1/object/list/docs", Some(&member)).await;
    assert_eq!(pending.body["items"], json!([]), "{pending:?}");

    let put = app
        .put_presigned(upload_url, &signed.body["headers"], body.clone())
        .await;
    assert_eq!(put.status(), 200, "PUT to storage: {:?}", put.text().await);
    let confirmed = app
        .post_json(
            "/storage/v1/confirm/docs/direct/report.txt",
            Some(&member),
            &json!({}),
        )
        .await;

    assert_eq!(confirmed.status, 200, "{confirmed:?}");
    assert_eq!(confirmed.body["id"], signed.body["id"]);
    assert_eq!(confirmed.body["size"], body.len());
    assert!(
        confirmed.body["etag"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{confirmed:?}"
    );
    assert_eq!(confirmed.body["contentType"], "text/plain");
    let listed = app.get("/storage/v1/object/list/docs", Some(&member)).await;
    assert_eq!(
        listed.body["items"][0]["key"],
        "org_a/docs/direct/report.txt"
    );
    assert_eq!(
        read_back(&app, &member, "org_a/docs/direct/report.txt").await,
        body
    );
    // Confirming again returns it; presigning the path again is a conflict.
    let again = app
        .post_json(
            "/storage/v1/confirm/docs/direct/report.txt",
            Some(&member),
            &json!({}),
        )
        .await;
    assert_eq!(again.body, confirmed.body);
    assert_envelope(
        &app.post_json(
            "/storage/v1/presign/docs/direct/report.txt",
            Some(&member),
            &json!({ "contentType": "text/plain", "size": 3 }),
        )
        .await,
        409,
        "STORAGE_OBJECT_EXISTS",
    );
    let metrics = metrics_text(&app).await;
    assert!(
        metrics.contains(r#"filegate_presigned_urls_total{method="PUT"} 1"#),
        "{metrics}"
    );
    app.shutdown().await;
}

async fn presign(app: &TestApp, token: &str, bucket_path: &str, body: &Value) -> JsonResponse {
    app.post_json(
        &format!("/storage/v1/presign/{bucket_path}"),
        Some(token),
        body,
    )
    .await
}

#[tokio::test]
async fn presign_checks_the_bucket_limits_up_front() {
    let app = managed().await;
    let (_, member) = docs_bucket(
        &app,
        json!({ "fileSizeLimit": 10, "allowedMimeTypes": ["text/*"] }),
    )
    .await;
    let text = |size: u64| json!({ "contentType": "text/plain", "size": size });

    assert_envelope(
        &presign(&app, &member, "docs/big.txt", &text(11)).await,
        413,
        "STORAGE_FILE_TOO_LARGE",
    );
    assert_envelope(
        &presign(
            &app,
            &member,
            "docs/x.png",
            &json!({ "contentType": "image/png", "size": 3 }),
        )
        .await,
        415,
        "STORAGE_MIME_NOT_ALLOWED",
    );
    assert_envelope(
        &presign(
            &app,
            &member,
            "docs/x.txt",
            &json!({ "contentType": "text/plain" }),
        )
        .await,
        400,
        "VALIDATION_FAILED",
    );
    assert_envelope(
        &presign(&app, &member, "nope/x.txt", &text(3)).await,
        404,
        "STORAGE_BUCKET_NOT_FOUND",
    );
    assert_eq!(
        presign(&app, &member, "docs/x.txt", &text(10)).await.status,
        200
    );
    app.shutdown().await;
}

#[tokio::test]
async fn confirm_before_the_put_is_409_and_the_upload_stays_pending() {
    let app = managed().await;
    let (_, member) = docs_bucket(&app, json!({})).await;
    let signed = app
        .post_json(
            "/storage/v1/presign/docs/later.txt",
            Some(&member),
            &json!({ "contentType": "text/plain", "size": 5 }),
        )
        .await;
    assert_eq!(signed.status, 200, "{signed:?}");

    let early = app
        .post_json(
            "/storage/v1/confirm/docs/later.txt",
            Some(&member),
            &json!({}),
        )
        .await;
    assert_envelope(&early, 409, "STORAGE_NOT_UPLOADED");

    // Still pending: the PUT then the confirm succeed.
    let put = app
        .put_presigned(
            signed.body["uploadUrl"].as_str().unwrap(),
            &signed.body["headers"],
            b"later".to_vec(),
        )
        .await;
    assert_eq!(put.status(), 200);
    let confirmed = app
        .post_json(
            "/storage/v1/confirm/docs/later.txt",
            Some(&member),
            &json!({}),
        )
        .await;
    assert_eq!(confirmed.status, 200, "{confirmed:?}");
    // Nothing presigned at all: no such object.
    assert_envelope(
        &app.post_json(
            "/storage/v1/confirm/docs/never.txt",
            Some(&member),
            &json!({}),
        )
        .await,
        404,
        "STORAGE_OBJECT_NOT_FOUND",
    );
    app.shutdown().await;
}

#[tokio::test]
async fn confirm_over_the_bucket_limit_is_400_and_deletes_the_object() {
    let app = managed().await;
    let (admin, member) = docs_bucket(&app, json!({})).await;
    let body = vec![b'z'; 64];
    let signed = app
        .post_json(
            "/storage/v1/presign/docs/shrunk.txt",
            Some(&member),
            &json!({ "contentType": "text/plain", "size": body.len() }),
        )
        .await;
    assert_eq!(signed.status, 200, "{signed:?}");
    let put = app
        .put_presigned(
            signed.body["uploadUrl"].as_str().unwrap(),
            &signed.body["headers"],
            body,
        )
        .await;
    assert_eq!(put.status(), 200);
    assert!(stored_file(&app, "org_a/docs/shrunk.txt").exists());
    // The limit drops between the presign and the confirm.
    let lowered = put_json(
        &app,
        "/storage/v1/bucket/docs",
        &admin,
        &json!({ "fileSizeLimit": 10 }),
    )
    .await;
    assert_eq!(lowered.status, 200, "{lowered:?}");

    let res = app
        .post_json(
            "/storage/v1/confirm/docs/shrunk.txt",
            Some(&member),
            &json!({}),
        )
        .await;

    assert_envelope(&res, 400, "VALIDATION_FAILED");
    assert!(res.body["details"]["fields"]["size"].is_string(), "{res:?}");
    assert!(
        !stored_file(&app, "org_a/docs/shrunk.txt").exists(),
        "deleted from storage"
    );
    assert_envelope(
        &app.post_json(
            "/storage/v1/confirm/docs/shrunk.txt",
            Some(&member),
            &json!({}),
        )
        .await,
        404,
        "STORAGE_OBJECT_NOT_FOUND",
    );
    app.shutdown().await;
}

#[tokio::test]
async fn objects_are_listed_by_path_with_prefix_and_paging() {
    let app = managed().await;
    let (_, member) = docs_bucket(&app, json!({})).await;
    for path in ["b/2.txt", "a/1.txt", "b/1.txt", "c.txt"] {
        let res = upload(
            &app,
            Some(&member),
            &format!("docs/{path}"),
            Some("text/plain"),
            path.as_bytes().to_vec(),
            false,
        )
        .await;
        assert_eq!(res.status, 200, "{res:?}");
    }
    let paths = |res: &JsonResponse| -> Vec<String> {
        res.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["path"].as_str().unwrap().to_owned())
            .collect()
    };

    let first = app
        .get("/storage/v1/object/list/docs?limit=3", Some(&member))
        .await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(paths(&first), ["a/1.txt", "b/1.txt", "b/2.txt"]);
    let cursor = first.body["nextCursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let second = app
        .get(
            &format!("/storage/v1/object/list/docs?limit=3&cursor={cursor}"),
            Some(&member),
        )
        .await;
    assert_eq!(paths(&second), ["c.txt"]);
    assert_eq!(second.body["nextCursor"], Value::Null);
    let b = app
        .get("/storage/v1/object/list/docs?prefix=b/", Some(&member))
        .await;
    assert_eq!(paths(&b), ["b/1.txt", "b/2.txt"]);
    assert_eq!(b.body["items"][0]["size"], 7);
    assert_envelope(
        &app.get("/storage/v1/object/list/docs?limit=0", Some(&member))
            .await,
        400,
        "VALIDATION_FAILED",
    );
    assert_envelope(
        &app.get("/storage/v1/object/list/docs?limit=many", Some(&member))
            .await,
        400,
        "VALIDATION_FAILED",
    );
    assert_envelope(
        &app.get("/storage/v1/object/list/docs", None).await,
        401,
        "AUTH_MISSING",
    );
    app.shutdown().await;
}

#[tokio::test]
async fn deleting_an_object_is_idempotent() {
    let app = managed().await;
    let (_, member) = docs_bucket(&app, json!({})).await;
    let up = upload(
        &app,
        Some(&member),
        "docs/tmp/x.txt",
        Some("text/plain"),
        b"x".to_vec(),
        false,
    )
    .await;
    assert_eq!(up.status, 200, "{up:?}");
    assert!(stored_file(&app, "org_a/docs/tmp/x.txt").exists());

    for _ in 0..2 {
        let res = delete(&app, "/storage/v1/object/docs/tmp/x.txt", Some(&member)).await;
        assert_eq!(res.status, 200, "{res:?}");
        assert_eq!(res.body, json!({ "deleted": true }));
    }

    assert!(!stored_file(&app, "org_a/docs/tmp/x.txt").exists());
    let list = app.get("/storage/v1/object/list/docs", Some(&member)).await;
    assert_eq!(list.body["items"], json!([]));
    // The path is free again.
    let again = upload(
        &app,
        Some(&member),
        "docs/tmp/x.txt",
        Some("text/plain"),
        b"y".to_vec(),
        false,
    )
    .await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_envelope(
        &delete(&app, "/storage/v1/object/docs/tmp/x.txt", None).await,
        401,
        "AUTH_MISSING",
    );
    app.shutdown().await;
}

/// `GET /storage/v1/object/list/{bucket}` and `/storage/v1/object/{bucket}/{*path}` live
/// side by side: `list` as a static segment wins, every other path reaches the object
/// routes (`list` inside a path included).
#[tokio::test]
async fn the_list_route_and_the_object_routes_coexist() {
    let app = managed().await;
    let (_, member) = docs_bucket(&app, json!({})).await;
    // (Not both `list` and `list/…`: the embedded store keeps keys as files and folders.)
    for path in ["a/list", "list/inner.txt"] {
        let res = upload(
            &app,
            Some(&member),
            &format!("docs/{path}"),
            Some("text/plain"),
            b"l".to_vec(),
            false,
        )
        .await;
        assert_eq!(res.status, 200, "{path}: {res:?}");
        assert_eq!(res.body["path"], path);
    }

    let listed = app.get("/storage/v1/object/list/docs", Some(&member)).await;
    assert_eq!(listed.status, 200, "{listed:?}");
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 2);
    // A GET of an object path is the download (routes::files), never the listing.
    let download = app
        .http
        .get(url(&app, "/storage/v1/object/docs/a/list"))
        .bearer_auth(&member)
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.bytes().await.unwrap().as_ref(), b"l");
    assert_eq!(
        delete(
            &app,
            "/storage/v1/object/docs/list/inner.txt",
            Some(&member)
        )
        .await
        .status,
        200
    );
    app.shutdown().await;
}
