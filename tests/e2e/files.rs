//! Downloads with full HTTP semantics: the files listener (`/public/{*key}`, `/{*key}`),
//! `GET /storage/v1/object/{bucket}/{*path}` and `GET /api/v1/files/{id}/download`.
//! Objects are seeded through the domain (presign → PUT to storage → confirm).

use filegate_core::domain::{Principal, content_disposition_attachment};
use filegate_core::managed::{CreateBucket, ManagedService, ObjectInfo, PresignUpload};
use filegate_e2e::TestApp;
use filegate_server::files::{FileTokens, TokenSubject};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n pretend image bytes 0123456789";
const DOC: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

fn member(user: &str, org: &str, role: &str) -> Principal {
    Principal {
        user_id: user.into(),
        active_org_id: Some(org.into()),
        roles: vec![role.into()],
        ..Principal::default()
    }
}

async fn spawn() -> (TestApp, Arc<ManagedService>, String) {
    let app = TestApp::spawn_with(|c| c.managed = true).await;
    let svc = app.running.managed().expect("managed mode is on");
    let files = format!("http://{}", app.running.files_addr.expect("files listener"));
    (app, svc, files)
}

/// An org-read bucket `docs` of `org_a`.
async fn docs_bucket(svc: &ManagedService) {
    svc.create_bucket(
        Some(&member("owner_a", "org_a", "owner")),
        CreateBucket {
            name: "docs".into(),
            read_scope: Some("org".into()),
            write_scope: Some("org".into()),
            ..CreateBucket::default()
        },
    )
    .await
    .expect("bucket created");
}

async fn seed(
    app: &TestApp,
    svc: &ManagedService,
    p: &Principal,
    bucket: &str,
    path: &str,
    content_type: &str,
    bytes: &[u8],
) -> ObjectInfo {
    let signed = svc
        .presign(
            Some(p),
            bucket,
            path,
            PresignUpload {
                content_type: content_type.into(),
                size: bytes.len() as u64,
            },
        )
        .await
        .expect("presign");
    let headers = serde_json::to_value(&signed.headers).expect("headers");
    let put = app
        .put_presigned(&signed.upload_url, &headers, bytes.to_vec())
        .await;
    assert_eq!(put.status(), 200, "PUT: {:?}", put.text().await);
    svc.confirm(Some(p), bucket, path).await.expect("confirm")
}

fn without_request_id(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("requestId");
    }
    v
}

fn header<'a>(res: &'a reqwest::Response, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test]
async fn public_objects_are_served_anonymously_with_validators_and_304() {
    let (app, svc, files) = spawn().await;
    let u1 = member("u1", "org_a", "member");
    let obj = seed(&app, &svc, &u1, "avatars", "me.png", "image/png", PNG).await;
    let url = format!("{files}/public/{}", obj.key);

    let res = app.http.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let etag = header(&res, "etag").to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
        "{etag}"
    );
    let last_modified = header(&res, "last-modified").to_owned();
    assert!(last_modified.ends_with(" GMT"), "{last_modified}");
    assert_eq!(header(&res, "content-type"), "image/png");
    assert_eq!(header(&res, "content-length"), PNG.len().to_string());
    assert_eq!(header(&res, "accept-ranges"), "bytes");
    assert_eq!(header(&res, "cache-control"), "public, max-age=3600");
    assert_eq!(header(&res, "x-content-type-options"), "nosniff");
    assert!(res.headers().get("content-disposition").is_none());
    assert_eq!(res.bytes().await.unwrap().as_ref(), PNG);

    // Revalidation.
    let res = app
        .http
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);
    assert_eq!(header(&res, "etag"), etag);
    assert!(res.bytes().await.unwrap().is_empty());
    let res = app
        .http
        .get(&url)
        .header("if-modified-since", &last_modified)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);
    let res = app
        .http
        .get(&url)
        .header("if-none-match", "\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // HEAD: the headers, no body.
    let res = app.http.head(&url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "etag"), etag);
    assert_eq!(header(&res, "content-length"), PNG.len().to_string());
    assert!(res.bytes().await.unwrap().is_empty());

    // A private object, a missing one and a bad path: the same 404.
    docs_bucket(&svc).await;
    let private = seed(
        &app,
        &svc,
        &u1,
        "docs",
        "secret.pdf",
        "application/pdf",
        DOC,
    )
    .await;
    let mut bodies = Vec::new();
    for path in [
        format!("/public/{}", private.key),
        "/public/u1/avatars/missing.png".to_owned(),
        "/public/a/../b".to_owned(),
        "/public/%00".to_owned(),
    ] {
        let res = app.send(app.http.get(format!("{files}{path}"))).await;
        assert_eq!(res.status, 404, "{path}: {res:?}");
        bodies.push(without_request_id(res.body));
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn private_objects_need_a_bearer_or_a_url_token_and_stay_in_their_org() {
    let (app, svc, files) = spawn().await;
    docs_bucket(&svc).await;
    let u1 = member("u1", "org_a", "member");
    let obj = seed(
        &app,
        &svc,
        &u1,
        "docs",
        "plan b.pdf",
        "application/pdf",
        DOC,
    )
    .await;
    let url = format!("{files}/{}", obj.key.as_str().replace(' ', "%20"));

    let anonymous = app.send(app.http.get(&url)).await;
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    assert_eq!(anonymous.body["code"], "AUTH_MISSING");

    let colleague = app.token("u2", Some("org_a"), Some("member"));
    let res = app
        .http
        .get(&url)
        .bearer_auth(&colleague)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "cache-control"), "private, no-store");
    assert_eq!(res.bytes().await.unwrap().as_ref(), DOC);

    let stranger = app.token("u3", Some("org_b"), Some("owner"));
    let res = app.send(app.http.get(&url).bearer_auth(&stranger)).await;
    assert_eq!(res.status, 404, "{res:?}");

    // The URL POST /storage/v1/url gives: the files listener with a token, no cookie needed.
    let signed = svc
        .url(Some(&member("u2", "org_a", "member")), obj.key.as_str())
        .await
        .unwrap();
    assert!(
        signed
            .url
            .starts_with(&format!("{files}/org_a/docs/plan%20b.pdf?token=")),
        "{}",
        signed.url
    );
    assert!(signed.expires_at.is_some());
    let res = app.http.get(&signed.url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), DOC);

    // Tampered, for another key, expired: 403.
    let token = signed.url.split("token=").nth(1).unwrap().to_owned();
    let mut tampered = token.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let other = seed(&app, &svc, &u1, "docs", "other.pdf", "application/pdf", DOC).await;
    let expired = FileTokens::new(&app.running.auth_secret).mint_for(
        &TokenSubject {
            key: obj.key.as_str(),
            id: obj.id.as_str(),
            etag: obj.etag.as_deref(),
        },
        time::OffsetDateTime::now_utc() - time::Duration::seconds(1),
    );
    for bad in [
        format!("{url}?token={tampered}"),
        format!("{files}/{}?token={token}", other.key),
        format!("{url}?token={expired}"),
        format!("{url}?token=garbage"),
    ] {
        let res = app.send(app.http.get(&bad)).await;
        assert_eq!(res.status, 403, "{bad}: {res:?}");
        assert_eq!(res.body["code"], "FILES_TOKEN_INVALID");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn ranges_are_served_as_206_and_416_through_the_object_route() {
    let (app, svc, _) = spawn().await;
    docs_bucket(&svc).await;
    let u1 = member("u1", "org_a", "member");
    seed(&app, &svc, &u1, "docs", "abc.txt", "text/plain", DOC).await;
    let token = app.token("u1", Some("org_a"), Some("member"));
    let url = format!("{}/storage/v1/object/docs/abc.txt", app.api);
    let size = DOC.len();

    for (range, status, content_range, bytes) in [
        ("bytes=0-4", 206, format!("bytes 0-4/{size}"), &DOC[..5]),
        (
            "bytes=-3",
            206,
            format!("bytes {}-{}/{size}", size - 3, size - 1),
            &DOC[size - 3..],
        ),
        (
            "bytes=30-",
            206,
            format!("bytes 30-{}/{size}", size - 1),
            &DOC[30..],
        ),
        ("bytes=0-1,4-5", 200, String::new(), DOC),
        ("bytes=oops", 200, String::new(), DOC),
    ] {
        let res = app
            .http
            .get(&url)
            .bearer_auth(&token)
            .header("range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{range}");
        assert_eq!(header(&res, "content-range"), content_range, "{range}");
        assert_eq!(
            header(&res, "content-length"),
            bytes.len().to_string(),
            "{range}"
        );
        assert_eq!(res.bytes().await.unwrap().as_ref(), bytes, "{range}");
    }
    let res = app
        .http
        .get(&url)
        .bearer_auth(&token)
        .header("range", "bytes=1000-")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 416);
    assert_eq!(header(&res, "content-range"), format!("bytes */{size}"));

    // HEAD through the API route.
    let res = app
        .http
        .head(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "content-length"), size.to_string());
    assert!(res.bytes().await.unwrap().is_empty());
    // Anonymous: 401.
    assert_eq!(app.send(app.http.get(&url)).await.status, 401);
    app.shutdown().await;
}

#[tokio::test]
async fn download_names_are_encoded_and_runnable_types_are_never_inline() {
    let (app, svc, files) = spawn().await;
    docs_bucket(&svc).await;
    let u1 = member("u1", "org_a", "member");
    let token = app.token("u1", Some("org_a"), Some("member"));
    let doc = seed(
        &app,
        &svc,
        &u1,
        "docs",
        "report.pdf",
        "application/pdf",
        DOC,
    )
    .await;
    let url = format!("{files}/{}", doc.key);

    let res = app.http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert!(res.headers().get("content-disposition").is_none());
    let name = "my \"final\" résumé 年.pdf";
    let res = app
        .http
        .get(&url)
        .query(&[("download", name)])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        header(&res, "content-disposition"),
        content_disposition_attachment(name)
    );
    let res = app
        .http
        .get(format!("{url}?download"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&res, "content-disposition"),
        content_disposition_attachment("report.pdf")
    );
    let res = app
        .send(
            app.http
                .get(&url)
                .query(&[("download", "../x")])
                .bearer_auth(&token),
        )
        .await;
    assert_eq!(res.status, 400, "{res:?}");

    for (path, ct) in [
        ("page.html", "text/html; charset=utf-8"),
        ("logo.svg", "image/svg+xml"),
        ("data.xml", "application/xml"),
        ("blob.bin", "application/x-unknown"),
    ] {
        let obj = seed(
            &app,
            &svc,
            &u1,
            "docs",
            path,
            ct,
            b"<html><script>alert(1)</script>",
        )
        .await;
        let res = app
            .http
            .get(format!("{files}/{}", obj.key))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(
            header(&res, "content-disposition"),
            content_disposition_attachment(path),
            "{path}"
        );
        assert_eq!(header(&res, "x-content-type-options"), "nosniff", "{path}");
    }
    app.shutdown().await;
}

async fn open_streams(app: &TestApp) -> i64 {
    let text = app
        .http
        .get(format!("{}/metrics", app.api))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix("filegate_open_storage_streams "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the gauge is exposed")
}

#[tokio::test]
async fn a_client_that_disconnects_mid_download_drops_the_storage_stream() {
    let (app, svc, files) = spawn().await;
    docs_bucket(&svc).await;
    let u1 = member("u1", "org_a", "member");
    let big: Vec<u8> = (0..4 * 1024 * 1024)
        .map(|i: u32| u8::try_from(i % 251).unwrap_or(0))
        .collect();
    let obj = seed(
        &app,
        &svc,
        &u1,
        "docs",
        "big.bin",
        "application/octet-stream",
        &big,
    )
    .await;
    let token = app.token("u1", Some("org_a"), Some("member"));
    assert_eq!(open_streams(&app).await, 0);

    let addr = app.running.files_addr.unwrap();
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /{} HTTP/1.1\r\nHost: files\r\nAuthorization: Bearer {token}\r\n\r\n",
        obj.key
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let n = tcp.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert_eq!(open_streams(&app).await, 1, "the body is streaming");
    drop(tcp);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if open_streams(&app).await == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the storage stream was not dropped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A complete download closes it too.
    let res = app
        .http
        .get(format!("{files}/{}", obj.key))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.bytes().await.unwrap().len(), big.len());
    assert_eq!(open_streams(&app).await, 0);
    app.shutdown().await;
}

#[tokio::test]
async fn files_by_id_stream_or_redirect_for_obj_and_med_ids_within_the_org() {
    let (app, svc, _) = spawn().await;
    docs_bucket(&svc).await;
    let u1 = member("u1", "org_a", "member");
    let obj = seed(&app, &svc, &u1, "docs", "by-id.pdf", "application/pdf", DOC).await;
    let token = app.token("u2", Some("org_a"), Some("member"));
    let stranger = app.token("u3", Some("org_b"), Some("owner"));
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // A presign-only media row.
    let signed = app
        .sign_upload(&token, "notes.txt", "text/plain", Some(DOC.len()))
        .await;
    assert_eq!(signed.status, 200, "{signed:?}");
    let put = app
        .put_presigned(
            signed.body["uploadUrl"].as_str().unwrap(),
            &signed.body["headers"],
            DOC.to_vec(),
        )
        .await;
    assert_eq!(put.status(), 200);
    let med = signed.body["id"].as_str().unwrap().to_owned();

    for (id, ct) in [(obj.id.to_string(), "application/pdf"), (med, "text/plain")] {
        let url = format!("{}/api/v1/files/{id}/download", app.api);
        let res = app.http.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(res.status(), 200, "{id}");
        assert_eq!(header(&res, "content-type"), ct, "{id}");
        assert_eq!(header(&res, "cache-control"), "private, no-store");
        assert_eq!(res.bytes().await.unwrap().as_ref(), DOC, "{id}");

        let res = app
            .http
            .get(&url)
            .bearer_auth(&token)
            .header("range", "bytes=0-3")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 206, "{id}");
        assert_eq!(res.bytes().await.unwrap().as_ref(), &DOC[..4]);

        let res = no_redirects
            .get(format!("{url}?redirect=true"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 302, "{id}");
        let location = header(&res, "location").to_owned();
        let got = app.http.get(&location).send().await.unwrap();
        assert_eq!(got.status(), 200, "{id}: {location}");
        assert_eq!(got.bytes().await.unwrap().as_ref(), DOC);

        for redirect in ["", "?redirect=true"] {
            let res = app
                .send(
                    no_redirects
                        .get(format!("{url}{redirect}"))
                        .bearer_auth(&stranger),
                )
                .await;
            assert_eq!(res.status, 404, "{id}{redirect}: {res:?}");
        }
        assert_eq!(app.send(app.http.get(&url)).await.status, 401);
    }
    let res = app
        .get("/api/v1/files/obj_doesnotexist/download", Some(&token))
        .await;
    assert_eq!(res.status, 404);
    app.shutdown().await;
}

#[tokio::test]
async fn the_storage_routes_and_the_download_route_coexist() {
    let (app, svc, files) = spawn().await;
    docs_bucket(&svc).await;
    let token = app.token("u1", Some("org_a"), Some("member"));
    let up = app
        .send(
            app.http
                .post(format!("{}/storage/v1/object/docs/via/api.txt", app.api))
                .bearer_auth(&token)
                .header("content-type", "text/plain")
                .body(DOC.to_vec()),
        )
        .await;
    assert_eq!(up.status, 200, "{up:?}");
    let key = up.body["key"].as_str().expect("key").to_owned();

    let res = app
        .http
        .get(format!("{}/storage/v1/object/docs/via/api.txt", app.api))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), DOC);

    let list = app.get("/storage/v1/object/list/docs", Some(&token)).await;
    assert_eq!(list.status, 200, "{list:?}");
    assert!(list.body.to_string().contains("via/api.txt"), "{list:?}");

    // POST /storage/v1/url: a private object's URL is the files listener's, with a token.
    let url = app
        .post_json(
            "/storage/v1/url",
            Some(&token),
            &serde_json::json!({ "key": key }),
        )
        .await;
    assert_eq!(url.status, 200, "{url:?}");
    let url = url.body["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{files}/")) && url.contains("?token="),
        "{url}"
    );
    let res = app.http.get(url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), DOC);
    app.shutdown().await;
}

#[tokio::test]
async fn a_better_auth_session_cookie_opens_private_files() {
    const SECRET: &str = "files-listener-cookie-secret-0123456789abcdef";
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("auth.db");
    let db = filegate_testkit::auth_db::AuthDbFixture::create(&path);
    db.add_user("u2", "u2@example.com", None);
    db.add_user("u3", "u3@example.com", None);
    db.add_org("org_a", "a");
    db.add_org("org_b", "b");
    db.add_member("org_a", "u2", "member");
    db.add_member("org_b", "u3", "owner");
    let app = TestApp::spawn_with(move |c| {
        c.managed = true;
        c.auth_db = Some(path.into());
        c.auth_secret = Some(secrecy::SecretString::from(SECRET));
    })
    .await;
    let svc = app.running.managed().expect("managed mode is on");
    let files = format!("http://{}", app.running.files_addr.expect("files listener"));
    docs_bucket(&svc).await;
    let obj = seed(
        &app,
        &svc,
        &member("u1", "org_a", "member"),
        "docs",
        "c.pdf",
        "application/pdf",
        DOC,
    )
    .await;
    let url = format!("{files}/{}", obj.key.as_str());
    let in_an_hour = time::OffsetDateTime::now_utc() + time::Duration::hours(1);

    let colleague = db.add_session("u2", Some("org_a"), in_an_hour);
    let res = app
        .http
        .get(&url)
        .header("cookie", colleague.cookie_header(SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), DOC);

    let stranger = db.add_session("u3", Some("org_b"), in_an_hour);
    let res = app
        .http
        .get(&url)
        .header("cookie", stranger.cookie_header(SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    let forged = app
        .http
        .get(&url)
        .header(
            "cookie",
            colleague.cookie_header("not-the-secret-0123456789abcdef"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    app.shutdown().await;
}

#[tokio::test]
async fn the_files_listener_is_rate_limited_per_ip_like_the_api() {
    let app = TestApp::spawn_with(|c| {
        c.managed = true;
        c.rate_limit = Some(filegate_server::http::RateLimit {
            per_second: 1,
            burst: 2,
        });
    })
    .await;
    let files = format!("http://{}", app.running.files_addr.expect("files listener"));
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            app.send(app.http.get(format!("{files}/public/nobody/avatars/x.png")))
                .await,
        );
    }
    assert_eq!(statuses[0].status, 404, "{:?}", statuses[0]);
    let limited = statuses
        .iter()
        .find(|r| r.status == 429)
        .expect("a request over the budget is refused");
    assert_eq!(limited.body["code"], "RATE_LIMITED");
    assert!(limited.headers.get("retry-after").is_some());
    app.shutdown().await;
}
