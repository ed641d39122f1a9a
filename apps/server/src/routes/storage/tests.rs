use super::buckets::read_scope_of;
use super::objects::{content_length, upsert};
use super::*;
use crate::error::ErrorEnvelope;
use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use filegate_core::managed::{ObjectInfo, ObjectPage, ObjectUrl, PresignedUpload, ReadScope};
use http::{HeaderMap, StatusCode, header};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use tower::ServiceExt;

async fn hit(app: &Router, method: &str, uri: &str) -> (StatusCode, String) {
    let req = http::Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .expect("request");
    let res = app.clone().oneshot(req).await.expect("answer");
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1024)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// The wire shapes of the views (core's types carry no serialisation of their own).
#[test]
fn views_write_the_api_shapes() {
    use filegate_core::domain::{BucketName, ByteSize, ContentType, ObjectKey};
    use filegate_core::managed::{
        Bucket, BucketId, ObjectId, ObjectPath, ObjectRow, ObjectStatus, WriteScope,
    };
    let epoch = OffsetDateTime::UNIX_EPOCH;
    let mut b = Bucket {
        id: BucketId::generate(),
        name: BucketName::parse("docs").expect("name"),
        organization_id: None,
        read_scope: ReadScope::Org,
        write_scope: WriteScope::Org,
        file_size_limit: Some(ByteSize(1000)),
        allowed_mime_types: vec![],
        created_at: epoch,
        updated_at: epoch,
    };
    let json = serde_json::to_value(BucketView::from(b.clone())).expect("json");
    assert_eq!(json["name"], "docs");
    assert_eq!(json["writeScope"], "org");
    assert_eq!(json["fileSizeLimit"], 1000);
    assert_eq!(json["organizationId"], serde_json::Value::Null);
    assert_eq!(json["createdAt"], "1970-01-01T00:00:00Z");
    b.read_scope = ReadScope::Public;
    let json = serde_json::to_value(BucketView::from(b.clone())).expect("json");
    assert_eq!(json["readScope"], "public");
    assert_eq!(json["public"], true);

    let row = ObjectRow {
        id: ObjectId::generate(),
        bucket_id: b.id.clone(),
        organization_id: None,
        owner_id: "u".into(),
        segment: "u".into(),
        key: ObjectKey::parse("u/docs/a.txt").expect("key"),
        path: ObjectPath::parse("a.txt").expect("path"),
        content_type: ContentType::parse("text/plain").expect("type"),
        size: 3,
        etag: Some("e".into()),
        status: ObjectStatus::Confirmed,
        created_at: epoch,
        updated_at: epoch,
        deleted_at: None,
        multipart: None,
    };
    let info = ObjectInfo::new(&row, &b.name);
    let json = serde_json::to_value(ObjectView::from(info.clone())).expect("json");
    for f in ["id", "key", "bucket", "path", "size", "etag", "contentType"] {
        assert!(json.get(f).is_some(), "{f} missing from {json}");
    }
    let page = ObjectPage {
        items: vec![info],
        next_cursor: None,
    };
    let json = serde_json::to_value(ObjectPageView::from(page)).expect("json");
    assert!(json.get("nextCursor").is_some() && json["items"].is_array());

    let want = "http://127.0.0.1:8789/public/u/docs/a.txt";
    let url = ObjectUrl {
        url: want.into(),
        expires_at: None,
    };
    assert_eq!(
        serde_json::to_value(UrlView::from(url)).expect("json"),
        serde_json::json!({ "url": want })
    );

    let p = PresignedUpload {
        id: row.id.clone(),
        key: row.key.clone(),
        upload_url: "https://s3.test/x".into(),
        method: "PUT",
        headers: BTreeMap::new(),
        expires_at: epoch,
    };
    let json = serde_json::to_value(PresignView::from(p)).expect("json");
    for f in ["id", "key", "uploadUrl", "headers", "expiresAt"] {
        assert!(json.get(f).is_some(), "{f}");
    }
}

/// The routing this module relies on: the static `list` segment beats the `{bucket}`
/// capture, and the object routes still serve every other path, `list` segments inside
/// the path included.
#[tokio::test]
async fn the_list_route_and_the_object_routes_coexist() {
    let app: Router =
        Router::new()
            .route(
                "/storage/v1/object/list/{bucket}",
                get(|Path(b): Path<String>| async move { format!("list {b}") }),
            )
            .route(
                "/storage/v1/object/{bucket}/{*path}",
                post(
                    |Path((b, p)): Path<(String, String)>| async move { format!("upload {b} {p}") },
                )
                .get(|Path((b, p)): Path<(String, String)>| async move {
                    format!("download {b} {p}")
                }),
            );
    assert_eq!(
        hit(&app, "GET", "/storage/v1/object/list/docs").await,
        (StatusCode::OK, "list docs".to_owned())
    );
    assert_eq!(
        hit(&app, "GET", "/storage/v1/object/docs/a/b.txt").await,
        (StatusCode::OK, "download docs a/b.txt".to_owned())
    );
    assert_eq!(
        hit(&app, "POST", "/storage/v1/object/docs/list/x").await,
        (StatusCode::OK, "upload docs list/x".to_owned())
    );
    assert_eq!(
        hit(&app, "GET", "/storage/v1/object/docs/list").await,
        (StatusCode::OK, "download docs list".to_owned())
    );
    // Deeper than `list/{bucket}`: falls back to the object routes.
    assert_eq!(
        hit(&app, "GET", "/storage/v1/object/list/a/b").await,
        (StatusCode::OK, "download list a/b".to_owned())
    );
}

#[test]
fn public_and_read_scope_must_agree() {
    assert_eq!(read_scope_of(None, None).unwrap(), None);
    assert_eq!(
        read_scope_of(Some(true), None).unwrap().as_deref(),
        Some("public")
    );
    assert_eq!(read_scope_of(Some(false), None).unwrap(), None);
    assert_eq!(
        read_scope_of(Some(false), Some("user".into()))
            .unwrap()
            .as_deref(),
        Some("user")
    );
    assert!(read_scope_of(Some(true), Some("org".into())).is_err());
    assert!(read_scope_of(Some(false), Some("public".into())).is_err());
}

#[test]
fn upload_headers_are_parsed_strictly() {
    let mut h = HeaderMap::new();
    assert!(matches!(content_length(&h), Err(Error::LengthRequired)));
    h.insert(header::CONTENT_LENGTH, "12".parse().unwrap());
    assert_eq!(content_length(&h).unwrap(), 12);
    assert!(!upsert(&h).unwrap());
    h.insert("x-upsert", "TRUE".parse().unwrap());
    assert!(upsert(&h).unwrap());
    h.insert("x-upsert", "yes".parse().unwrap());
    assert!(upsert(&h).is_err());
}

#[test]
fn managed_off_and_length_required_are_envelopes() {
    for (err, status, code) in [
        (
            ApiError(Error::ManagedModeOff),
            StatusCode::NOT_FOUND,
            "MANAGED_MODE_OFF",
        ),
        (
            ApiError(Error::LengthRequired),
            StatusCode::LENGTH_REQUIRED,
            "LENGTH_REQUIRED",
        ),
    ] {
        let res = err.into_response();
        assert_eq!(res.status(), status);
        let env = res
            .extensions()
            .get::<ErrorEnvelope>()
            .expect("an envelope");
        assert_eq!(env.code(), code);
        assert!(env.hint().is_some());
    }
}
