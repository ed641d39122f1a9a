//! Security findings of the release review, each through the real server: media types a
//! browser reads two ways, the headers every answer with user bytes carries, existence
//! oracles in hide mode, URL tokens bound to one object version, ranges past any object,
//! and bidirectional controls in names.

use deadpool_sqlite::rusqlite;
use filegate_core::domain::Principal;
use filegate_core::managed::{CreateBucket, ManagedService, ObjectInfo, PresignUpload};
use filegate_e2e::{TestApp, assert_envelope};
use serde_json::json;
use std::sync::Arc;

const PAGE: &[u8] = b"<html><script>document.title='pwned'</script>";
const CSP: &str = "default-src 'none'; sandbox";

fn member(user: &str, org: &str) -> Principal {
    Principal {
        user_id: user.into(),
        active_org_id: Some(org.into()),
        roles: vec!["member".into()],
        ..Principal::default()
    }
}

fn owner(user: &str, org: &str) -> Principal {
    Principal {
        roles: vec!["owner".into()],
        ..member(user, org)
    }
}

async fn spawn() -> (TestApp, Arc<ManagedService>, String) {
    let app = TestApp::spawn_with(|c| c.managed = true).await;
    let svc = app.running.managed().expect("managed mode is on");
    let files = format!("http://{}", app.running.files_addr.expect("files listener"));
    (app, svc, files)
}

async fn bucket(svc: &ManagedService, name: &str, read: &str, write: &str, mimes: &[&str]) {
    svc.create_bucket(
        Some(&owner("owner_a", "org_a")),
        CreateBucket {
            name: name.into(),
            read_scope: Some(read.into()),
            write_scope: Some(write.into()),
            allowed_mime_types: mimes.iter().map(|m| (*m).to_owned()).collect(),
            ..CreateBucket::default()
        },
    )
    .await
    .expect("bucket created");
}

async fn upload(app: &TestApp, token: &str, bucket: &str, path: &str, ct: &str, bytes: &[u8]) {
    let res = app
        .send(
            app.http
                .post(format!("{}/storage/v1/object/{bucket}/{path}", app.api))
                .bearer_auth(token)
                .header("content-type", ct)
                .body(bytes.to_vec()),
        )
        .await;
    assert_eq!(res.status, 200, "upload {path}: {res:?}");
}

fn header<'a>(res: &'a reqwest::Response, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn assert_protected(res: &reqwest::Response, corp: &str, what: &str) {
    assert_eq!(header(res, "content-security-policy"), CSP, "{what}");
    assert_eq!(header(res, "x-content-type-options"), "nosniff", "{what}");
    assert_eq!(header(res, "cross-origin-resource-policy"), corp, "{what}");
}

#[tokio::test]
async fn media_types_with_lists_or_empty_parameters_are_refused_everywhere() {
    let (app, svc, _) = spawn().await;
    bucket(&svc, "pics", "org", "org", &["image/*"]).await;
    let token = app.token("u1", Some("org_a"), Some("member"));
    for bad in [
        "image/png;,text/html",
        "image/png; x=1, text/html",
        "image/png,text/html",
        "image/png;",
        "image/png; x=\"a,b\"",
    ] {
        let res = app.sign_upload(&token, "a.png", bad, Some(3)).await;
        assert_envelope(&res, 400, "VALIDATION_FAILED");
        assert!(
            res.body["details"]["fields"]["contentType"].is_string(),
            "{bad}: {res:?}"
        );

        let res = app
            .post_json(
                "/storage/v1/presign/pics/a.png",
                Some(&token),
                &json!({ "contentType": bad, "size": 3 }),
            )
            .await;
        assert_envelope(&res, 400, "VALIDATION_FAILED");

        let res = app
            .send(
                app.http
                    .post(format!("{}/storage/v1/object/pics/a.png", app.api))
                    .bearer_auth(&token)
                    .header("content-type", bad)
                    .body(b"abc".to_vec()),
            )
            .await;
        assert_envelope(&res, 400, "VALIDATION_FAILED");
    }
    // Nothing was recorded.
    let listed = app.get("/storage/v1/object/list/pics", Some(&token)).await;
    assert_eq!(listed.status, 200, "{listed:?}");
    assert_eq!(listed.body["items"], json!([]), "{listed:?}");

    // What is accepted is stored, signed and served in one normalised form.
    let res = app
        .sign_upload(&token, "a.txt", "Text/Plain;Charset=UTF-8", Some(3))
        .await;
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(
        res.body["headers"]["Content-Type"],
        "text/plain; charset=UTF-8"
    );
    app.shutdown().await;
}

/// Rows written before strict parsing keep their type: they must still be served safely.
#[tokio::test]
async fn a_stored_list_type_is_served_as_an_opaque_attachment() {
    let (app, svc, files) = spawn().await;
    bucket(&svc, "pics", "org", "org", &["image/*"]).await;
    let u1 = member("u1", "org_a");
    let token = app.token("u1", Some("org_a"), Some("member"));
    upload(&app, &token, "pics", "avatar.png", "image/png", PAGE).await;
    let db = rusqlite::Connection::open(app.data_dir().join("files.db")).expect("files.db");
    let changed = db
        .execute(
            "UPDATE objects SET content_type = 'image/png;,text/html' WHERE path = 'avatar.png'",
            [],
        )
        .expect("update");
    assert_eq!(changed, 1);
    drop(db);

    let info = svc.head(Some(&u1), "pics", "avatar.png").await.unwrap();
    let url = format!("{files}/{}", info.key);
    let res = app.http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "content-type"), "application/octet-stream");
    assert!(
        header(&res, "content-disposition").starts_with("attachment"),
        "{:?}",
        res.headers()
    );
    assert_protected(&res, "same-site", "files listener, bearer");
    app.shutdown().await;
}

#[tokio::test]
async fn every_answer_with_user_bytes_is_sandboxed_and_the_api_origin_never_renders_them() {
    let (app, svc, files) = spawn().await;
    bucket(&svc, "pics", "org", "org", &[]).await;
    bucket(&svc, "open", "public", "org", &[]).await;
    let u1 = member("u1", "org_a");
    let token = app.token("u1", Some("org_a"), Some("member"));
    upload(&app, &token, "pics", "a.png", "image/png", PAGE).await;
    upload(&app, &token, "open", "b.png", "image/png", PAGE).await;
    let private = svc.head(Some(&u1), "pics", "a.png").await.unwrap();
    let public = svc.head(Some(&u1), "open", "b.png").await.unwrap();

    // Files listener: public, token and credentialed.
    let res = app
        .http
        .get(format!("{files}/public/{}", public.key))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_protected(&res, "cross-origin", "public");
    assert!(
        res.headers().get("content-disposition").is_none(),
        "images stay inline"
    );

    let signed = svc.url(Some(&u1), private.key.as_str()).await.unwrap();
    let res = app.http.get(&signed.url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_protected(&res, "cross-origin", "token URL");

    let res = app
        .http
        .get(format!("{files}/{}", private.key))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_protected(&res, "same-site", "bearer on the files listener");

    // API origin: always an attachment, image or not, and the 304 and 416 answers too.
    for url in [
        format!("{}/storage/v1/object/pics/a.png", app.api),
        format!("{}/api/v1/files/{}/download", app.api, private.id),
    ] {
        let res = app.http.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(res.status(), 200, "{url}");
        assert_protected(&res, "same-site", &url);
        assert!(
            header(&res, "content-disposition").starts_with("attachment"),
            "{url}: {:?}",
            res.headers()
        );
        let etag = header(&res, "etag").to_owned();
        let res = app
            .http
            .get(&url)
            .bearer_auth(&token)
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 304, "{url}");
        assert_protected(&res, "same-site", &url);
        let res = app
            .http
            .get(&url)
            .bearer_auth(&token)
            .header("range", "bytes=9999-")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 416, "{url}");
        assert_protected(&res, "same-site", &url);
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_range_ending_past_any_object_is_read_to_the_end() {
    let (app, svc, files) = spawn().await;
    bucket(&svc, "pics", "org", "org", &[]).await;
    let u1 = member("u1", "org_a");
    let token = app.token("u1", Some("org_a"), Some("member"));
    upload(
        &app,
        &token,
        "pics",
        "a.bin",
        "application/octet-stream",
        PAGE,
    )
    .await;
    let info = svc.head(Some(&u1), "pics", "a.bin").await.unwrap();
    for url in [
        format!("{files}/{}", info.key),
        format!("{}/storage/v1/object/pics/a.bin", app.api),
    ] {
        for (range, status) in [
            ("bytes=0-18446744073709551615", 206),
            ("bytes=5-9223372036854775807", 206),
            ("bytes=18446744073709551614-18446744073709551615", 416),
            ("bytes=-18446744073709551615", 206),
        ] {
            let res = app
                .http
                .get(&url)
                .bearer_auth(&token)
                .header("range", range)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), status, "{url} {range}");
            if status == 206 {
                let start = if range.starts_with("bytes=5") { 5 } else { 0 };
                assert_eq!(
                    header(&res, "content-range"),
                    format!("bytes {start}-{}/{}", PAGE.len() - 1, PAGE.len())
                );
                assert_eq!(res.bytes().await.unwrap().as_ref(), &PAGE[start..]);
            }
        }
    }
    app.shutdown().await;
}

/// In hide mode (the default) an object the caller may not read answers exactly as a
/// missing one, on `POST /storage/v1/url` and on the files listener.
#[tokio::test]
async fn objects_the_caller_may_not_read_are_indistinguishable_from_missing_ones() {
    let (app, svc, files) = spawn().await;
    bucket(&svc, "docs", "org", "org", &[]).await;
    let token = app.token("u1", Some("org_a"), Some("member"));
    upload(&app, &token, "docs", "plan.pdf", "application/pdf", PAGE).await;
    let existing = "org_a/docs/plan.pdf";
    let missing = "org_a/docs/nothing.pdf";

    let stranger = app.token("u9", Some("org_b"), Some("owner"));
    let no_org = app.token("u9", None, None);
    for (who, caller) in [
        ("another org", Some(stranger.as_str())),
        ("no organization", Some(no_org.as_str())),
        ("anonymous", None),
    ] {
        let answers: Vec<_> = futures_answers(&app, caller, &[existing, missing]).await;
        assert_eq!(answers[0], answers[1], "/storage/v1/url, {who}");
        assert_eq!(answers[0].0, 404, "/storage/v1/url, {who}: {answers:?}");
        if let Some(t) = caller {
            let mut seen = Vec::new();
            for key in [existing, missing] {
                let res = app
                    .send(app.http.get(format!("{files}/{key}")).bearer_auth(t))
                    .await;
                seen.push((res.status, res.body["code"].clone()));
            }
            assert_eq!(seen[0], seen[1], "files listener, {who}");
            assert_eq!(seen[0].0, 404, "files listener, {who}");
        }
    }
    app.shutdown().await;
}

async fn futures_answers(
    app: &TestApp,
    token: Option<&str>,
    keys: &[&str],
) -> Vec<(u16, serde_json::Value)> {
    let mut out = Vec::new();
    for key in keys {
        let res = app
            .post_json("/storage/v1/url", token, &json!({ "key": key }))
            .await;
        out.push((res.status, res.body["code"].clone()));
    }
    out
}

#[tokio::test]
async fn a_url_token_opens_only_the_object_version_it_was_minted_for() {
    let (app, svc, _) = spawn().await;
    bucket(&svc, "docs", "org", "org", &[]).await;
    let u1 = member("u1", "org_a");
    let t1 = app.token("u1", Some("org_a"), Some("member"));
    let t2 = app.token("u2", Some("org_a"), Some("member"));
    upload(
        &app,
        &t1,
        "docs",
        "plan.pdf",
        "application/pdf",
        b"first version",
    )
    .await;
    let first: ObjectInfo = svc.head(Some(&u1), "docs", "plan.pdf").await.unwrap();
    let url = svc.url(Some(&u1), first.key.as_str()).await.unwrap().url;
    let res = app.http.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 200);

    // Deleted, then another member uploads at the same path.
    let res = app
        .send(
            app.http
                .delete(format!("{}/storage/v1/object/docs/plan.pdf", app.api))
                .bearer_auth(&t1),
        )
        .await;
    assert_eq!(res.status, 200, "{res:?}");
    upload(
        &app,
        &t2,
        "docs",
        "plan.pdf",
        "application/pdf",
        b"someone else's",
    )
    .await;
    let res = app.send(app.http.get(&url)).await;
    assert_envelope(&res, 403, "FILES_TOKEN_INVALID");

    // Replaced in place (upsert) by its owner: the old URL is refused too.
    let url = svc
        .url(Some(&member("u2", "org_a")), first.key.as_str())
        .await
        .unwrap()
        .url;
    assert_eq!(app.http.get(&url).send().await.unwrap().status(), 200);
    let res = app
        .send(
            app.http
                .post(format!("{}/storage/v1/object/docs/plan.pdf", app.api))
                .bearer_auth(&t2)
                .header("content-type", "application/pdf")
                .header("x-upsert", "true")
                .body(b"third".to_vec()),
        )
        .await;
    assert_eq!(res.status, 200, "{res:?}");
    let res = app.send(app.http.get(&url)).await;
    assert_envelope(&res, 403, "FILES_TOKEN_INVALID");
    app.shutdown().await;
}

#[tokio::test]
async fn names_with_bidirectional_controls_are_refused() {
    let (app, svc, _) = spawn().await;
    bucket(&svc, "docs", "org", "org", &[]).await;
    let token = app.token("u1", Some("org_a"), Some("member"));
    let res = app
        .sign_upload(&token, "invoice\u{202E}fdp.exe", "application/pdf", Some(3))
        .await;
    assert_envelope(&res, 400, "VALIDATION_FAILED");
    assert!(
        res.body["details"]["fields"]["filename"].is_string(),
        "{res:?}"
    );
    let res = svc
        .presign(
            Some(&member("u1", "org_a")),
            "docs",
            "a\u{2066}b.pdf",
            PresignUpload {
                content_type: "application/pdf".into(),
                size: 3,
            },
        )
        .await;
    assert!(
        matches!(res, Err(filegate_core::Error::Validation(ref f)) if f[0].field == "path"),
        "{res:?}"
    );
    app.shutdown().await;
}

/// What HTML forms and browser storage clients send: the file part is stored, with its
/// own type, never the envelope.
#[tokio::test]
async fn a_form_upload_stores_its_file_part_not_the_envelope() {
    let (app, svc, _) = spawn().await;
    bucket(&svc, "pics", "org", "org", &["image/*"]).await;
    let u1 = member("u1", "org_a");
    let token = app.token("u1", Some("org_a"), Some("member"));
    let png = b"\x89PNG\r\n\x1a\n a form's image".to_vec();
    let form = reqwest::multipart::Form::new()
        .text("cacheControl", "3600")
        .part(
            "",
            reqwest::multipart::Part::bytes(png.clone())
                .file_name("blob")
                .mime_str("image/png")
                .unwrap(),
        );
    let res = app
        .send(
            app.http
                .post(format!("{}/storage/v1/object/pics/me.png", app.api))
                .bearer_auth(&token)
                .multipart(form),
        )
        .await;
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(res.body["size"], png.len(), "{res:?}");
    assert_eq!(res.body["contentType"], "image/png", "{res:?}");
    let got = app
        .http
        .get(format!("{}/storage/v1/object/pics/me.png", app.api))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), png.as_slice());
    let info = svc.head(Some(&u1), "pics", "me.png").await.unwrap();
    assert_eq!(info.size, png.len() as u64);

    // The part's own type meets the allow-list; a form without a file is refused.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"<html>".to_vec())
            .file_name("x.html")
            .mime_str("text/html")
            .unwrap(),
    );
    let res = app
        .send(
            app.http
                .post(format!("{}/storage/v1/object/pics/x.png", app.api))
                .bearer_auth(&token)
                .multipart(form),
        )
        .await;
    assert_envelope(&res, 415, "STORAGE_MIME_NOT_ALLOWED");
    let form = reqwest::multipart::Form::new().text("a", "b");
    let res = app
        .send(
            app.http
                .post(format!("{}/storage/v1/object/pics/y.png", app.api))
                .bearer_auth(&token)
                .multipart(form),
        )
        .await;
    assert_envelope(&res, 400, "VALIDATION_FAILED");
    // Nothing is left in the spool folder.
    assert_eq!(
        std::fs::read_dir(app.data_dir().join("tmp"))
            .unwrap()
            .count(),
        0
    );
    app.shutdown().await;
}

/// Presigned storage GETs serve user bytes from the embedded endpoint's origin: they are
/// sandboxed there too, whatever type the upload declared.
#[tokio::test]
async fn presigned_downloads_from_the_embedded_endpoint_are_sandboxed() {
    let app = TestApp::spawn().await;
    let token = app.token("u1", Some("org_a"), Some("member"));
    let signed = app
        .sign_upload(&token, "page.html", "text/html", Some(PAGE.len()))
        .await;
    assert_eq!(signed.status, 200, "{signed:?}");
    let put = app
        .put_presigned(
            signed.body["uploadUrl"].as_str().unwrap(),
            &signed.body["headers"],
            PAGE.to_vec(),
        )
        .await;
    assert_eq!(put.status(), 200);
    let id = signed.body["id"].as_str().unwrap();
    let dl = app.sign_download(&token, id, &json!({})).await;
    assert_eq!(dl.status, 200, "{dl:?}");
    let res = app
        .http
        .get(dl.body["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "content-security-policy"), CSP);
    assert_eq!(header(&res, "x-content-type-options"), "nosniff");
    assert_eq!(res.bytes().await.unwrap().as_ref(), PAGE);
    app.shutdown().await;
}

/// A presign-only upload URL creates its object once: replayed after the upload was
/// confirmed it cannot change the bytes under the row.
#[tokio::test]
async fn a_replayed_sign_upload_url_cannot_replace_a_confirmed_file() {
    let app = TestApp::spawn().await;
    let token = app.token("u1", Some("org_a"), Some("member"));
    let signed = app
        .sign_upload(&token, "a.txt", "text/plain", Some(5))
        .await;
    assert_eq!(signed.status, 200, "{signed:?}");
    assert_eq!(signed.body["headers"]["If-None-Match"], "*", "{signed:?}");
    let url = signed.body["uploadUrl"].as_str().unwrap();
    let headers = &signed.body["headers"];
    let put = app.put_presigned(url, headers, b"first".to_vec()).await;
    assert_eq!(put.status(), 200);
    let id = signed.body["id"].as_str().unwrap();
    let confirmed = app
        .post_json(
            &format!("/api/v1/media/{id}/confirm"),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(confirmed.status, 200, "{confirmed:?}");

    let replay = app.put_presigned(url, headers, b"evil!".to_vec()).await;
    assert_eq!(replay.status(), 412);
    let dl = app.sign_download(&token, id, &json!({})).await;
    let got = app
        .http
        .get(dl.body["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"first");
    app.shutdown().await;
}
