//! The seed's curl flow against the real server and the real embedded S3 endpoint.

use filegate_e2e::{TestApp, assert_envelope};
use serde_json::json;

const PDF: &[u8] = b"%PDF-1.7 pretend this is a report\n";

#[tokio::test]
async fn upload_then_download_round_trips_the_bytes() {
    // Arrange
    let app = TestApp::spawn().await;
    let token = app.token("user_1", Some("org_a"), Some("member"));

    // Act: sign, PUT straight to storage, sign a download, GET it.
    let signed = app
        .sign_upload(&token, "report.pdf", "application/pdf", Some(PDF.len()))
        .await;
    assert_eq!(signed.status, 200, "{signed:?}");
    let upload_url = signed.body["uploadUrl"].as_str().unwrap();
    assert!(upload_url.contains("X-Amz-Signature="));
    assert_eq!(signed.body["method"], "PUT");
    assert_eq!(signed.body["headers"]["Content-Type"], "application/pdf");
    assert_eq!(
        signed.body["headers"]["Content-Length"],
        PDF.len().to_string()
    );
    let key = signed.body["key"].as_str().unwrap();
    assert!(
        key.starts_with("org/org_a/") && key.ends_with("-report.pdf"),
        "{key}"
    );
    assert!(signed.body["expiresAt"].as_str().unwrap().ends_with('Z'));

    let put = app
        .put_presigned(upload_url, &signed.body["headers"], PDF.to_vec())
        .await;
    assert_eq!(put.status(), 200, "PUT to storage: {:?}", put.text().await);

    let id = signed.body["id"].as_str().unwrap();
    let dl = app.sign_download(&token, id, &json!({})).await;
    assert_eq!(dl.status, 200, "{dl:?}");
    assert_eq!(dl.body["method"], "GET");
    let got = app
        .http
        .get(dl.body["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().as_ref(), PDF);
    app.shutdown().await;
}

#[tokio::test]
async fn the_media_list_shows_the_organizations_rows_newest_first_with_paging() {
    let app = TestApp::spawn().await;
    let a = app.token("user_1", Some("org_a"), Some("member"));
    let b = app.token("user_2", Some("org_b"), Some("owner"));
    for name in ["one.txt", "two.txt", "three.txt"] {
        assert_eq!(
            app.sign_upload(&a, name, "text/plain", None).await.status,
            200
        );
    }
    assert_eq!(
        app.sign_upload(&b, "other.txt", "text/plain", Some(3))
            .await
            .status,
        200
    );

    let first = app.get("/api/v1/media?status=all&limit=2", Some(&a)).await;
    assert_eq!(first.status, 200, "{first:?}");
    let names: Vec<_> = first.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["filename"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["three.txt", "two.txt"]);
    let cursor = first.body["nextCursor"].as_str().unwrap();
    let second = app
        .get(
            &format!("/api/v1/media?status=all&limit=2&cursor={cursor}"),
            Some(&a),
        )
        .await;
    let names: Vec<_> = second.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["filename"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["one.txt"]);
    assert!(second.body["nextCursor"].is_null());

    let theirs = app.get("/api/v1/media?status=all", Some(&b)).await;
    assert_eq!(theirs.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(theirs.body["items"][0]["size"], 3);
    app.shutdown().await;
}

fn filenames(res: &filegate_e2e::JsonResponse) -> Vec<String> {
    res.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a page: {res:?}"))
        .iter()
        .map(|i| i["filename"].as_str().expect("a filename").to_owned())
        .collect()
}

// Pages are kept rendered between commits (apps/server/src/page_cache.rs): every write,
// this server's or another connection's, must show in the next page, and a kept page must
// never reach another organization or a caller the checks refuse.
#[tokio::test]
async fn the_media_list_shows_every_write_at_once_wherever_it_came_from() {
    let app = TestApp::spawn_with(|c| c.access.list = "admin+".parse().unwrap()).await;
    let a = app.token("user_1", Some("org_a"), Some("admin"));
    let b = app.token("user_2", Some("org_b"), Some("owner"));
    let member = app.token("user_3", Some("org_a"), Some("member"));
    let page = "/api/v1/media?status=all&limit=5";
    for name in ["one.txt", "two.txt"] {
        assert_eq!(
            app.sign_upload(&a, name, "text/plain", None).await.status,
            200
        );
    }
    assert_eq!(
        filenames(&app.get(page, Some(&a)).await),
        ["two.txt", "one.txt"]
    );
    let again = app.get(page, Some(&a)).await;
    assert_eq!(filenames(&again), ["two.txt", "one.txt"]);
    // Nothing was committed between the two: the second was the kept page.
    let metrics = app
        .http
        .get(format!("{}/metrics", app.api))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (series, n) in [("kept", 1), ("read", 1)] {
        let line = format!("filegate_listing_pages_total{{source=\"{series}\"}} {n}\n");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }

    // The same question from another organization, and from a role the rule refuses.
    assert!(filenames(&app.get(page, Some(&b)).await).is_empty());
    assert_envelope(
        &app.get(page, Some(&member)).await,
        403,
        "ACCESS_ROLE_REQUIRED",
    );
    assert_envelope(&app.get(page, None).await, 401, "AUTH_MISSING");

    // A write through this server.
    assert_eq!(
        app.sign_upload(&a, "three.txt", "text/plain", None)
            .await
            .status,
        200
    );
    assert_eq!(
        filenames(&app.get(page, Some(&a)).await),
        ["three.txt", "two.txt", "one.txt"]
    );

    // Writes by another connection to the same file, as `filegate-admin` or a second
    // server would make them.
    let db = app.data_dir().join("filegate.db");
    let other = deadpool_sqlite::rusqlite::Connection::open(&db).unwrap();
    let deleted = other
        .execute("DELETE FROM media WHERE filename = 'two.txt'", [])
        .unwrap();
    assert_eq!(deleted, 1);
    assert_eq!(
        filenames(&app.get(page, Some(&a)).await),
        ["three.txt", "one.txt"]
    );
    other
        .execute(
            "UPDATE media SET filename = 'renamed.txt' WHERE filename = 'one.txt'",
            [],
        )
        .unwrap();
    assert_eq!(
        filenames(&app.get(page, Some(&a)).await),
        ["three.txt", "renamed.txt"]
    );
    let moved = other
        .execute(
            "UPDATE media SET organization_id = 'org_b' WHERE filename = 'three.txt'",
            [],
        )
        .unwrap();
    assert_eq!(moved, 1);
    assert_eq!(filenames(&app.get(page, Some(&a)).await), ["renamed.txt"]);
    assert_eq!(filenames(&app.get(page, Some(&b)).await), ["three.txt"]);
    app.shutdown().await;
}

#[tokio::test]
async fn download_filename_becomes_the_content_disposition_of_the_get() {
    let app = TestApp::spawn().await;
    let token = app.token("u", Some("o"), Some("member"));
    let signed = app.sign_upload(&token, "r.txt", "text/plain", None).await;
    let put = app
        .put_presigned(
            signed.body["uploadUrl"].as_str().unwrap(),
            &signed.body["headers"],
            b"hello".to_vec(),
        )
        .await;
    assert_eq!(put.status(), 200);
    let dl = app
        .sign_download(
            &token,
            signed.body["id"].as_str().unwrap(),
            &json!({ "downloadFilename": "Résumé \"final\".txt" }),
        )
        .await;
    assert_eq!(dl.status, 200, "{dl:?}");
    let got = app
        .http
        .get(dl.body["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    let cd = got.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        cd,
        "attachment; filename=\"R_sum_ _final_.txt\"; filename*=UTF-8''R%C3%A9sum%C3%A9%20%22final%22.txt"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn storage_rejects_a_tampered_signature() {
    let app = TestApp::spawn().await;
    let token = app.token("u", Some("o"), Some("member"));
    let signed = app.sign_upload(&token, "a.txt", "text/plain", None).await;
    let url = signed.body["uploadUrl"].as_str().unwrap();
    let (head, sig) = url.rsplit_once("X-Amz-Signature=").unwrap();
    let flipped: String = sig
        .chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect();
    let put = app
        .put_presigned(
            &format!("{head}X-Amz-Signature={flipped}"),
            &signed.body["headers"],
            b"x".to_vec(),
        )
        .await;
    assert_eq!(put.status(), 403);
    app.shutdown().await;
}

#[tokio::test]
async fn storage_rejects_a_different_content_type() {
    let app = TestApp::spawn().await;
    let token = app.token("u", Some("o"), Some("member"));
    let signed = app
        .sign_upload(&token, "a.pdf", "application/pdf", None)
        .await;
    let put = app
        .put_presigned(
            signed.body["uploadUrl"].as_str().unwrap(),
            &json!({ "Content-Type": "text/html" }),
            b"<script>".to_vec(),
        )
        .await;
    assert_eq!(put.status(), 403);
    app.shutdown().await;
}

#[tokio::test]
async fn storage_rejects_a_body_of_another_size_than_signed() {
    let app = TestApp::spawn().await;
    let token = app.token("u", Some("o"), Some("member"));
    let signed = app
        .sign_upload(&token, "a.bin", "application/octet-stream", Some(10))
        .await;
    let url = signed.body["uploadUrl"].as_str().unwrap();
    for body in [vec![1u8; 5], vec![1u8; 11]] {
        let put = app.put_presigned(url, &signed.body["headers"], body).await;
        assert_eq!(put.status(), 403, "a body of another size must be refused");
    }
    let ok = app
        .put_presigned(url, &signed.body["headers"], vec![1u8; 10])
        .await;
    assert_eq!(ok.status(), 200);
    app.shutdown().await;
}

#[tokio::test]
async fn storage_rejects_an_expired_url() {
    let app = TestApp::spawn().await;
    let token = app.token("u", Some("o"), Some("member"));
    let signed = app.sign_upload(&token, "a.txt", "text/plain", None).await;
    let put = app
        .put_presigned(
            signed.body["uploadUrl"].as_str().unwrap(),
            &signed.body["headers"],
            b"x".to_vec(),
        )
        .await;
    assert_eq!(put.status(), 200);
    let dl = app
        .sign_download(
            &token,
            signed.body["id"].as_str().unwrap(),
            &json!({ "expiresIn": 1 }),
        )
        .await;
    assert_eq!(dl.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let got = app
        .http
        .get(dl.body["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 403);
    app.shutdown().await;
}

#[tokio::test]
async fn a_member_of_another_org_cannot_sign_a_download() {
    let app = TestApp::spawn().await;
    let a = app.token("user_a", Some("org_a"), Some("owner"));
    let b = app.token("user_b", Some("org_b"), Some("owner"));
    let signed = app.sign_upload(&a, "secret.txt", "text/plain", None).await;
    let id = signed.body["id"].as_str().unwrap();
    let res = app.sign_download(&b, id, &json!({})).await;
    assert_envelope(&res, 404, "FIREWALL_NOT_FOUND");
    assert_eq!(res.body["layer"], "firewall");
    app.shutdown().await;
}
