//! The real server with its metadata on Postgres (FILEGATE_DATABASE_URL pointing at a
//! fresh schema): presign-only media and managed mode end to end, and two nodes sharing
//! one database. Skipped, with one line saying so, when FILEGATE_TEST_DATABASE_URL is
//! unset.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers panic on purpose: a failed set-up step is a failed test"
)]

use filegate_e2e::{JsonResponse, TestApp, assert_envelope};
use filegate_postgres::testing::TestSchema;
use filegate_server::config::{PostgresConfig, RemoteStore};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::time::Duration;

/// Nodes of one deployment share the signing secret, so a token minted for one is
/// accepted by the others.
const SHARED_SECRET: &str = "postgres-e2e-shared-secret-0123456789abcdef0123456789abcdef";

async fn node(schema: &TestSchema, managed: bool) -> TestApp {
    let url = schema.url();
    TestApp::spawn_with(move |c| {
        c.managed = managed;
        c.auth_secret = Some(SecretString::from(SHARED_SECRET));
        c.postgres = Some(PostgresConfig {
            url: SecretString::from(url),
            files_url: None,
            pool_size: 4,
            statement_timeout: Some(Duration::from_secs(10)),
        });
    })
    .await
}

/// Rows of `table` in the schema, read straight from Postgres.
async fn count(schema: &TestSchema, table: &str) -> i64 {
    let (client, conn) = tokio_postgres::connect(&schema.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

fn filenames(res: &JsonResponse) -> Vec<String> {
    res.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{res:?}"))
        .iter()
        .map(|i| i["filename"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn media_sign_upload_put_confirm_and_list_on_postgres() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let app = node(&schema, false).await;
    let token = app.token("user_1", Some("org_a"), Some("member"));
    let signed = app
        .sign_upload(&token, "résumé été.txt", "text/plain", Some(12))
        .await;
    assert_eq!(signed.status, 200, "{signed:?}");
    let id = signed.body["id"].as_str().unwrap();
    let put = app
        .put_presigned(
            signed.body["uploadUrl"].as_str().unwrap(),
            &signed.body["headers"],
            b"twelve bytes".to_vec(),
        )
        .await;
    assert_eq!(put.status(), 200);
    let done = app
        .post_json(
            &format!("/api/v1/media/{id}/confirm"),
            Some(&token),
            &Value::Null,
        )
        .await;
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(done.body["status"], "confirmed");
    assert_eq!(done.body["size"], 12);
    let listed = app.get("/api/v1/media", Some(&token)).await;
    assert_eq!(filenames(&listed), ["résumé été.txt"]);
    let got = app
        .http
        .get(format!("{}/api/v1/files/{id}/download", app.api))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"twelve bytes");

    // The row is in Postgres, beside the audit table (empty: by default no operation is
    // public, and only public calls are audited), and no SQLite media file was made.
    assert_eq!(count(&schema, "media").await, 1);
    assert_eq!(count(&schema, "audit_log").await, 0);
    assert!(!app.data_dir().join("filegate.db").exists());
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, 200, "{ready:?}");
    assert_eq!(ready.body["checks"]["database"], "ok", "{ready:?}");
    let metrics = app.get("/metrics", None).await;
    assert_eq!(metrics.status, 200);
    app.shutdown().await;
}

#[tokio::test]
async fn managed_bucket_presign_confirm_download_on_postgres() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let app = node(&schema, true).await;
    let admin = app.token("admin_a", Some("org_a"), Some("admin"));
    let member = app.token("user_a", Some("org_a"), Some("member"));
    let created = app
        .post_json(
            "/storage/v1/bucket",
            Some(&admin),
            &json!({ "name": "docs" }),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let again = app
        .post_json(
            "/storage/v1/bucket",
            Some(&admin),
            &json!({ "name": "docs" }),
        )
        .await;
    assert_envelope(&again, 409, "STORAGE_BUCKET_EXISTS");

    let body = b"presigned straight to storage".to_vec();
    app.presign_and_put(
        &member,
        "docs/dossier/ü-report.txt",
        "text/plain",
        body.clone(),
    )
    .await;
    let confirmed = app
        .post_json(
            "/storage/v1/confirm/docs/dossier/ü-report.txt",
            Some(&member),
            &json!({}),
        )
        .await;
    assert_eq!(confirmed.status, 200, "{confirmed:?}");
    assert_eq!(confirmed.body["size"], body.len());
    let listed = app.get("/storage/v1/object/list/docs", Some(&member)).await;
    assert_eq!(
        listed.body["items"][0]["key"], "org_a/docs/dossier/ü-report.txt",
        "{listed:?}"
    );
    let id = confirmed.body["id"].as_str().unwrap();
    let got = app
        .http
        .get(format!("{}/api/v1/files/{id}/download", app.api))
        .bearer_auth(&member)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().to_vec(), body);

    assert_eq!(count(&schema, "objects").await, 1);
    assert!(!app.data_dir().join("files.db").exists());
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, 200, "{ready:?}");
    assert_eq!(ready.body["checks"]["files_db"], "ok", "{ready:?}");
    app.shutdown().await;
}

/// GET `/storage/v1/object/<bucket_path>`: the status and the bytes.
async fn download(app: &TestApp, token: &str, bucket_path: &str) -> (u16, Vec<u8>) {
    let got = app
        .http
        .get(format!("{}/storage/v1/object/{bucket_path}", app.api))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (got.status().as_u16(), got.bytes().await.unwrap().to_vec())
}

/// On Postgres a confirm or read by path asks for the rows at both keys a path can have
/// (the user's segment and the organization's) beside the bucket. Only the row of the
/// bucket the name resolves to may answer: here an organization's bucket shadows the
/// project-wide `avatars` (per user), and the same path names two different objects.
#[tokio::test]
async fn a_path_reads_the_row_of_the_bucket_its_name_resolves_to_on_postgres() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let app = node(&schema, true).await;
    let path = "avatars/user_a/pic.png";
    // No organization yet: the project-wide bucket, under the user's segment.
    let alone = app.token("user_a", None, None);
    app.presign_and_put(&alone, path, "image/png", b"project png".to_vec())
        .await;
    let confirm = format!("/storage/v1/confirm/{path}");
    let first = app.post_json(&confirm, Some(&alone), &json!({})).await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.body["key"], "user_a/avatars/user_a/pic.png");
    let again = app.post_json(&confirm, Some(&alone), &json!({})).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.body["id"], first.body["id"]);

    // The same user in an organization that has its own `avatars`.
    let admin = app.token("admin_a", Some("org_a"), Some("admin"));
    let created = app
        .post_json(
            "/storage/v1/bucket",
            Some(&admin),
            &json!({ "name": "avatars" }),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let member = app.token("user_a", Some("org_a"), Some("member"));
    // The user's row was read beside the bucket, but it is not this bucket's.
    assert_eq!(download(&app, &member, path).await.0, 404);
    let not_yet = app.post_json(&confirm, Some(&member), &json!({})).await;
    assert_envelope(&not_yet, 404, "STORAGE_OBJECT_NOT_FOUND");

    app.presign_and_put(&member, path, "text/plain", b"org text".to_vec())
        .await;
    let org = app.post_json(&confirm, Some(&member), &json!({})).await;
    assert_eq!(org.status, 200, "{org:?}");
    assert_eq!(org.body["key"], "org_a/avatars/user_a/pic.png");
    assert_ne!(org.body["id"], first.body["id"]);
    assert_eq!(
        download(&app, &member, path).await,
        (200, b"org text".to_vec())
    );
    assert_eq!(
        download(&app, &alone, path).await,
        (200, b"project png".to_vec())
    );
    assert_eq!(count(&schema, "objects").await, 2);
    app.shutdown().await;
}

/// Two nodes on one schema (each with its own embedded store: what is checked here lives
/// in the database alone): rows signed on A are listed on B, and one bucket created on
/// both at once exists once.
#[tokio::test]
async fn two_nodes_share_one_database() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    // Started at once on an empty schema: the migrations run once, both serve.
    let (a, b) = tokio::join!(node(&schema, true), node(&schema, true));
    let token = a.token("user_1", Some("org_a"), Some("member"));
    let signed = a
        .sign_upload(&token, "from-a.txt", "text/plain", None)
        .await;
    assert_eq!(signed.status, 200, "{signed:?}");
    let on_b = b.get("/api/v1/media?status=pending", Some(&token)).await;
    assert_eq!(filenames(&on_b), ["from-a.txt"]);

    let admin = a.token("admin_a", Some("org_a"), Some("admin"));
    let body = json!({ "name": "shared" });
    let (ra, rb) = tokio::join!(
        a.post_json("/storage/v1/bucket", Some(&admin), &body),
        b.post_json("/storage/v1/bucket", Some(&admin), &body),
    );
    let mut statuses = [ra.status, rb.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409], "{ra:?} {rb:?}");
    let loser = if ra.status == 409 { &ra } else { &rb };
    assert_envelope(loser, 409, "STORAGE_BUCKET_EXISTS");
    for node in [&a, &b] {
        let listed = node.get("/storage/v1/bucket", Some(&admin)).await;
        let names: Vec<&str> = listed.body.as_array().map_or_else(
            || panic!("{listed:?}"),
            |items| items.iter().filter_map(|i| i["name"].as_str()).collect(),
        );
        assert_eq!(
            names.iter().filter(|n| **n == "shared").count(),
            1,
            "{names:?}"
        );
    }
    a.shutdown().await;
    b.shutdown().await;
}

// Each node keeps rendered pages while Postgres's snapshot stays put: a write through the
// other node, or straight into the database, must show in the very next page.
#[tokio::test]
async fn a_node_lists_the_other_nodes_writes_at_once() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let (a, b) = tokio::join!(node(&schema, false), node(&schema, false));
    let token = a.token("user_1", Some("org_a"), Some("member"));
    let page = "/api/v1/media?status=all&limit=10";
    assert!(filenames(&b.get(page, Some(&token)).await).is_empty());
    assert!(filenames(&b.get(page, Some(&token)).await).is_empty());
    for (n, name) in ["one.txt", "two.txt", "three.txt"].iter().enumerate() {
        let signed = a.sign_upload(&token, name, "text/plain", None).await;
        assert_eq!(signed.status, 200, "{signed:?}");
        assert_eq!(filenames(&b.get(page, Some(&token)).await).len(), n + 1);
    }
    let (client, conn) = tokio_postgres::connect(&schema.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .execute("DELETE FROM media WHERE filename = 'two.txt'", &[])
        .await
        .unwrap();
    for node in [&a, &b] {
        assert_eq!(
            filenames(&node.get(page, Some(&token)).await),
            ["three.txt", "one.txt"]
        );
    }
    a.shutdown().await;
    b.shutdown().await;
}

/// Node B of a deployment whose storage is node A's embedded endpoint: what a second
/// node behind a load balancer sees when both use one R2 bucket.
async fn second_node(schema: &TestSchema, a: &TestApp) -> TestApp {
    let creds: Value = serde_json::from_str(
        &std::fs::read_to_string(a.data_dir().join("embedded-s3.json")).unwrap(),
    )
    .unwrap();
    let endpoint = a.running.s3_endpoint.clone().unwrap();
    let url = schema.url();
    TestApp::spawn_with(move |c| {
        c.managed = true;
        c.auth_secret = Some(SecretString::from(SHARED_SECRET));
        c.remote = Some(RemoteStore {
            account_id: None,
            access_key_id: creds["access_key_id"].as_str().unwrap().to_owned(),
            secret_access_key: SecretString::from(
                creds["secret_access_key"].as_str().unwrap().to_owned(),
            ),
            endpoint: Some(endpoint),
            region: "auto".to_owned(),
        });
        c.postgres = Some(PostgresConfig {
            url: SecretString::from(url),
            files_url: None,
            pool_size: 4,
            statement_timeout: Some(Duration::from_secs(10)),
        });
    })
    .await
}

#[tokio::test]
async fn two_nodes_share_one_database_and_one_store() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let a = node(&schema, true).await;
    let b = second_node(&schema, &a).await;
    let admin = a.token("admin_a", Some("org_a"), Some("admin"));
    let member = a.token("user_a", Some("org_a"), Some("member"));
    let created = a
        .post_json(
            "/storage/v1/bucket",
            Some(&admin),
            &json!({ "name": "docs" }),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");

    // Presign on B, PUT to storage, confirm on A, download by id on B.
    let body = b"written through B, confirmed on A".to_vec();
    b.presign_and_put(
        &member,
        "docs/shared/report.txt",
        "text/plain",
        body.clone(),
    )
    .await;
    let confirmed = a
        .post_json(
            "/storage/v1/confirm/docs/shared/report.txt",
            Some(&member),
            &json!({}),
        )
        .await;
    assert_eq!(confirmed.status, 200, "{confirmed:?}");
    let id = confirmed.body["id"].as_str().unwrap();
    let got = b
        .http
        .get(format!("{}/api/v1/files/{id}/download", b.api))
        .bearer_auth(&member)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().to_vec(), body);

    // A URL token minted on A is served by B's files listener (same secret).
    let minted = a
        .post_json(
            "/storage/v1/url",
            Some(&member),
            &json!({ "key": "org_a/docs/shared/report.txt" }),
        )
        .await;
    assert_eq!(minted.status, 200, "{minted:?}");
    let on_a = minted.body["url"].as_str().unwrap();
    let (a_files, b_files) = (
        a.running.files_addr.unwrap().to_string(),
        b.running.files_addr.unwrap().to_string(),
    );
    assert!(on_a.contains(&a_files), "{on_a}");
    let on_b = on_a.replace(&a_files, &b_files);
    let served = b.http.get(&on_b).send().await.unwrap();
    assert_eq!(served.status(), 200, "{on_b}");
    assert_eq!(served.bytes().await.unwrap().to_vec(), body);

    // The same object confirmed on both at once: one row, both answers the same object.
    a.presign_and_put(
        &member,
        "docs/shared/twice.txt",
        "text/plain",
        b"both".to_vec(),
    )
    .await;
    let (path, empty) = ("/storage/v1/confirm/docs/shared/twice.txt", json!({}));
    let (ca, cb) = tokio::join!(
        a.post_json(path, Some(&member), &empty),
        b.post_json(path, Some(&member), &empty),
    );
    assert_eq!((ca.status, cb.status), (200, 200), "{ca:?} {cb:?}");
    assert_eq!(ca.body["id"], cb.body["id"]);
    assert_eq!(ca.body["size"], 4);
    assert_eq!(cb.body["size"], 4);
    assert_eq!(count(&schema, "objects").await, 2);
    a.shutdown().await;
    b.shutdown().await;
}
