//! `purge` and unfinished multipart uploads: the real binary aborts the uploads older than
//! the maximum age at the embedded endpoint and removes the pending rows recording them.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers panic on purpose: a failed set-up step is a failed test"
)]

mod common;

use std::process::Output;
use std::time::Duration;

use bytes::Bytes;
use common::admin;
use filegate_bootstrap::config::Config;
use filegate_bootstrap::storage::open_storage;
use filegate_core::domain::{ContentType, MediaId, ObjectKey};
use filegate_core::ports::{
    Media, MediaStatus, MediaStore as _, MultipartRef, ObjectStore, PutObject,
};
use futures::StreamExt;
use serde_json::Value;
use time::OffsetDateTime;

fn report(output: &Output) -> Value {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn key(k: &str) -> ObjectKey {
    ObjectKey::parse(k).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_aborts_old_multipart_uploads_and_removes_their_pending_rows() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::ephemeral(dir.path());
    let storage = open_storage(&config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let media = filegate_sqlite::SqliteMediaStore::open(&dir.path().join("filegate.db"))
        .await
        .unwrap();
    // purge needs FILES_DB too (the server creates it in managed mode).
    drop(
        filegate_sqlite::SqliteFilesDb::open(&dir.path().join("files.db"))
            .await
            .unwrap(),
    );
    let store = &storage.objects;
    let bucket = &config.bucket;

    // A media row recording its upload (one part uploaded), and an upload no row records.
    let recorded = key("org/o1/0b7e4c1a-big.bin");
    let upload_id = store
        .create_multipart(
            bucket,
            &recorded,
            Some(ContentType::parse("video/mp4").unwrap()),
        )
        .await
        .unwrap();
    store
        .upload_part(
            bucket,
            &recorded,
            &upload_id,
            1,
            PutObject {
                content_length: 5,
                content_type: None,
                body: futures::stream::once(async { Ok(Bytes::from_static(b"parts")) }).boxed(),
            },
        )
        .await
        .unwrap();
    let now = OffsetDateTime::now_utc();
    let row = Media {
        id: MediaId::generate(),
        bucket: bucket.clone(),
        key: recorded.clone(),
        organization_id: "o1".into(),
        uploader_id: "u1".into(),
        filename: "big.bin".into(),
        content_type: ContentType::parse("video/mp4").unwrap(),
        declared_size: Some(20 * 1024 * 1024),
        created_at: now,
        status: MediaStatus::Pending,
        size: None,
        etag: None,
        upload_expires_at: Some(now + Duration::from_hours(24)),
        multipart: Some(MultipartRef {
            upload_id: upload_id.clone(),
            part_size: 8 * 1024 * 1024,
        }),
    };
    media.insert(&row).await.unwrap();
    let stray = key("org/o2/stray.bin");
    store.create_multipart(bucket, &stray, None).await.unwrap();

    // With the default maximum age (a day) both are young: nothing happens.
    let young = report(
        &admin(dir.path())
            .args(["purge", "--yes", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(young["stale_multipart"]["count"], 0, "{young}");
    assert_eq!(
        store
            .list_multipart_uploads(bucket, now + time::Duration::hours(1))
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(media.find(&row.id).await.unwrap().is_some());

    // A dry run with a zero age counts both and changes nothing.
    let dry = report(
        &admin(dir.path())
            .args(["purge", "--dry-run", "--json", "--multipart-max-age", "0"])
            .output()
            .unwrap(),
    );
    assert_eq!(dry["stale_multipart"]["count"], 2, "{dry}");
    assert!(media.find(&row.id).await.unwrap().is_some());

    // For real: both uploads aborted, the recording row removed.
    let done = report(
        &admin(dir.path())
            .args(["purge", "--yes", "--json", "--multipart-max-age", "0"])
            .output()
            .unwrap(),
    );
    assert_eq!(done["stale_multipart"]["count"], 2, "{done}");
    assert_eq!(done["stale_multipart"]["fixed"], 2, "{done}");
    assert!(
        store
            .list_multipart_uploads(bucket, OffsetDateTime::now_utc() + time::Duration::hours(1))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(media.find(&row.id).await.unwrap().is_none());
    assert!(
        store
            .list_parts(bucket, &recorded, &upload_id)
            .await
            .is_err()
    );
    if let Some(e) = storage.embedded {
        e.shutdown().await;
    }
}
