//! The media multipart rules through mockall mocks: the plan recorded at create, the
//! creator-only access, the checks before completing, and what abort removes.

use super::tests::{member, no_audit, req, service_full, signer};
use super::*;
use crate::ports::{CompletedPart, MockMediaStore, MockObjectStore, MultipartRef, StoredPart};
use time::macros::datetime;

const MIB: u64 = 1024 * 1024;

fn pending(uploader: &str, org: &str) -> Media {
    Media {
        id: MediaId::parse("med_0123456789abcdef0123456789abcdef").unwrap(),
        bucket: BucketName::parse("filegate-media").unwrap(),
        key: ObjectKey::parse(format!("org/{org}/x-big.bin")).unwrap(),
        organization_id: org.into(),
        uploader_id: uploader.into(),
        filename: "big.bin".into(),
        content_type: ContentType::parse("video/mp4").unwrap(),
        declared_size: Some(12 * MIB),
        created_at: datetime!(2026-03-01 11:00 UTC),
        status: MediaStatus::Pending,
        size: None,
        etag: None,
        upload_expires_at: Some(datetime!(2026-03-02 11:00 UTC)),
        multipart: Some(MultipartRef {
            upload_id: "up-1".into(),
            part_size: 5 * MIB,
        }),
    }
}

fn finds(row: Media) -> MockMediaStore {
    let mut m = MockMediaStore::new();
    m.expect_find().returning(move |_| Ok(Some(row.clone())));
    m
}

fn held() -> Vec<StoredPart> {
    vec![
        StoredPart {
            part_number: 1,
            size: 5 * MIB,
            etag: "e1".into(),
        },
        StoredPart {
            part_number: 2,
            size: 5 * MIB,
            etag: "e2".into(),
        },
        StoredPart {
            part_number: 3,
            size: 2 * MIB,
            etag: "e3".into(),
        },
    ]
}

fn listed(parts: Vec<StoredPart>) -> MockObjectStore {
    let mut o = MockObjectStore::new();
    o.expect_list_parts()
        .withf(|_, _, id| id == "up-1")
        .returning(move |_, _, _| Ok(parts.clone()));
    o
}

fn client(etags: &[&str]) -> Vec<CompletedPart> {
    etags
        .iter()
        .enumerate()
        .map(|(i, e)| CompletedPart {
            part_number: u32::try_from(i + 1).unwrap(),
            etag: (*e).into(),
        })
        .collect()
}

const ID: &str = "med_0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn create_records_the_upload_id_and_plan_on_a_pending_row_until_the_max_age() {
    let mut objects = MockObjectStore::new();
    objects
        .expect_create_multipart()
        .withf(|b, k, ct| {
            b.as_str() == "filegate-media"
                && k.as_str().starts_with("org/org_a/")
                && ct.as_ref().map(ContentType::as_str) == Some("video/mp4")
        })
        .times(1)
        .returning(|_, _, _| Ok("up-1".into()));
    let mut media = MockMediaStore::new();
    media
        .expect_insert()
        .withf(|m| {
            m.status == MediaStatus::Pending
                && m.declared_size == Some(64 * MIB)
                && m.multipart
                    == Some(MultipartRef {
                        upload_id: "up-1".into(),
                        part_size: 8 * MIB,
                    })
                && m.upload_expires_at == Some(datetime!(2026-03-02 12:00 UTC))
        })
        .times(1)
        .returning(|_| Ok(()));
    let svc = service_full(signer(), objects, media, no_audit(), MediaPolicy::default());
    let out = svc
        .create_multipart(
            Some(&member("org_a")),
            &req(),
            CreateMultipart {
                filename: "big.bin".into(),
                content_type: "video/mp4".into(),
                size: 64 * MIB,
                part_size: None,
            },
        )
        .await
        .unwrap();
    assert_eq!((out.part_size, out.part_count), (8 * MIB, 8));
    assert_eq!(out.upload_id, "up-1");
}

#[tokio::test]
async fn create_checks_every_field_before_storage_and_the_limit_after() {
    let mut objects = MockObjectStore::new();
    objects.expect_create_multipart().never();
    let svc = service_full(
        signer(),
        objects,
        MockMediaStore::new(),
        no_audit(),
        MediaPolicy::default(),
    );
    let err = svc
        .create_multipart(
            Some(&member("org_a")),
            &req(),
            CreateMultipart {
                filename: "../x".into(),
                content_type: "nope".into(),
                size: 10 * MIB,
                part_size: Some(MIB),
            },
        )
        .await
        .unwrap_err();
    let Error::Validation(fields) = err else {
        panic!("{err:?}")
    };
    let names: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(names, ["filename", "contentType", "partSize"]);
    let err = svc
        .create_multipart(
            Some(&member("org_a")),
            &req(),
            CreateMultipart {
                filename: "a.bin".into(),
                content_type: "video/mp4".into(),
                size: 101 * MIB,
                part_size: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err:?}");
}

#[tokio::test]
async fn a_failed_insert_aborts_the_new_upload() {
    let mut objects = MockObjectStore::new();
    objects
        .expect_create_multipart()
        .returning(|_, _, _| Ok("up-9".into()));
    objects
        .expect_abort_multipart()
        .withf(|_, _, id| id == "up-9")
        .times(1)
        .returning(|_, _, _| Ok(()));
    let mut media = MockMediaStore::new();
    media
        .expect_insert()
        .returning(|_| Err(Error::unavailable(std::io::Error::other("db down"))));
    let svc = service_full(signer(), objects, media, no_audit(), MediaPolicy::default());
    let err = svc
        .create_multipart(
            Some(&member("org_a")),
            &req(),
            CreateMultipart {
                filename: "a.bin".into(),
                content_type: "video/mp4".into(),
                size: 10,
                part_size: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }));
}

#[tokio::test]
async fn only_the_uploader_reaches_an_upload_others_get_not_found() {
    for (caller, row) in [
        (member("org_b"), pending("user_1", "org_a")),
        (member("org_a"), pending("user_2", "org_a")),
    ] {
        let mut objects = MockObjectStore::new();
        objects.expect_list_parts().never();
        objects.expect_abort_multipart().never();
        objects.expect_complete_multipart().never();
        let mut media = finds(row);
        media.expect_delete().never();
        let svc = service_full(signer(), objects, media, no_audit(), MediaPolicy::default());
        let r = req();
        let c = Some(&caller);
        for err in [
            svc.sign_parts(c, &r, ID, &[1]).await.map(drop).unwrap_err(),
            svc.list_parts(c, &r, ID).await.map(drop).unwrap_err(),
            svc.complete_multipart(c, &r, ID, &client(&["e1", "e2", "e3"]))
                .await
                .map(drop)
                .unwrap_err(),
            svc.abort_multipart(c, &r, ID).await.unwrap_err(),
        ] {
            assert!(matches!(err, Error::NotFound(Resource::Media)), "{err:?}");
        }
    }
}

#[tokio::test]
async fn sign_parts_signs_each_part_with_its_exact_length() {
    let svc = service_full(
        signer(),
        MockObjectStore::new(),
        finds(pending("user_1", "org_a")),
        no_audit(),
        MediaPolicy::default(),
    );
    let out = svc
        .sign_parts(Some(&member("org_a")), &req(), ID, &[3, 1])
        .await
        .unwrap();
    let lengths: Vec<_> = out
        .parts
        .iter()
        .map(|p| (p.part_number, p.headers["Content-Length"].clone()))
        .collect();
    assert_eq!(
        lengths,
        [(3, (2 * MIB).to_string()), (1, (5 * MIB).to_string())]
    );
    let err = svc
        .sign_parts(Some(&member("org_a")), &req(), ID, &[4])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Validation(ref f) if f[0].field == "partNumbers[0]"));
}

#[tokio::test]
async fn a_row_without_an_upload_in_progress_is_upload_not_found() {
    let mut single = pending("user_1", "org_a");
    single.multipart = None;
    let svc = service_full(
        signer(),
        MockObjectStore::new(),
        finds(single),
        no_audit(),
        MediaPolicy::default(),
    );
    let err = svc
        .list_parts(Some(&member("org_a")), &req(), ID)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(Resource::Upload)), "{err:?}");
}

#[tokio::test]
async fn complete_refuses_a_bad_list_without_completing_or_confirming() {
    for (list, parts, field) in [
        (client(&["e1", "e2"]), held(), "parts"),
        (client(&["e1", "x", "e3"]), held(), "parts[1].etag"),
        (client(&["e1", "e2", "e3"]), held()[..2].to_vec(), "parts"),
        (
            client(&["e1", "e2", "e3"]),
            {
                let mut h = held();
                h[2].size += 1;
                h
            },
            "size",
        ),
    ] {
        let mut objects = listed(parts);
        objects.expect_complete_multipart().never();
        let mut media = finds(pending("user_1", "org_a"));
        media.expect_confirm().never();
        media.expect_delete().never();
        let svc = service_full(signer(), objects, media, no_audit(), MediaPolicy::default());
        let err = svc
            .complete_multipart(Some(&member("org_a")), &req(), ID, &list)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Validation(ref f) if f[0].field == field),
            "{field}: {err:?}"
        );
    }
}

#[tokio::test]
async fn complete_sends_storages_list_then_confirms_from_the_object() {
    let mut objects = listed(held());
    objects
        .expect_complete_multipart()
        .withf(|_, _, id, parts| id == "up-1" && parts.len() == 3 && parts[0].etag == "e1")
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    objects.expect_head().times(1).returning(|_, _| {
        Ok(ObjectMeta {
            size: 12 * MIB,
            etag: Some("abc-3".into()),
            content_type: Some("video/mp4".into()),
            last_modified: None,
        })
    });
    let mut media = finds(pending("user_1", "org_a"));
    media
        .expect_confirm()
        .withf(|_, c| c.size == 12 * MIB && c.etag.as_deref() == Some("abc-3"))
        .times(1)
        .returning(|_, c| {
            let mut row = pending("user_1", "org_a");
            row.status = MediaStatus::Confirmed;
            row.size = Some(c.size);
            row.multipart = None;
            Ok(row)
        });
    let svc = service_full(signer(), objects, media, no_audit(), MediaPolicy::default());
    let row = svc
        .complete_multipart(
            Some(&member("org_a")),
            &req(),
            ID,
            &client(&["\"e1\"", "e2", "e3"]),
        )
        .await
        .unwrap();
    assert_eq!(row.status, MediaStatus::Confirmed);
}

#[tokio::test]
async fn abort_aborts_at_storage_then_removes_the_row() {
    let mut objects = MockObjectStore::new();
    objects
        .expect_abort_multipart()
        .withf(|_, _, id| id == "up-1")
        .times(1)
        .returning(|_, _, _| Ok(()));
    let mut media = finds(pending("user_1", "org_a"));
    media.expect_delete().times(1).returning(|_| Ok(()));
    let svc = service_full(signer(), objects, media, no_audit(), MediaPolicy::default());
    svc.abort_multipart(Some(&member("org_a")), &req(), ID)
        .await
        .unwrap();
}
