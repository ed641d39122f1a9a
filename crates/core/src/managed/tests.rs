//! `ManagedService` through mockall mocks: the order of each write path's steps and what
//! a failure at each step leaves behind. Behaviour over realistic fakes is tested in
//! `tests/managed.rs`.

use super::*;
use crate::domain::{BucketName, ByteSize, ContentType, Expiry, ObjectKey, Principal};
use crate::error::Error;
use crate::ports::{
    ByteStream, MockClock, MockObjectStore, MockUrlSigner, ObjectMeta, PresignedUrl,
};
use crate::storage::Storage;
use bytes::Bytes;
use futures::StreamExt;
use mockall::Sequence;
use std::sync::Arc;
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

fn clock() -> Arc<MockClock> {
    let mut c = MockClock::new();
    c.expect_now().return_const(NOW);
    Arc::new(c)
}

fn echo_signer() -> MockUrlSigner {
    let mut s = MockUrlSigner::new();
    s.expect_presign().returning(|r| {
        Ok(PresignedUrl {
            url: format!("https://s3.test/{}/{}", r.bucket, r.key),
            headers: r.headers.clone(),
        })
    });
    s
}

fn service(
    signer: MockUrlSigner,
    objects: MockObjectStore,
    buckets: MockBucketStore,
    mut rows: MockObjectRowStore,
) -> ManagedService {
    // Reads in process, as SQLite's: every row is read after its bucket.
    rows.expect_reads_cost_a_round_trip().return_const(false);
    service_over(signer, objects, Arc::new(buckets), rows)
}

fn service_over(
    signer: MockUrlSigner,
    objects: MockObjectStore,
    buckets: Arc<dyn BucketStore>,
    rows: MockObjectRowStore,
) -> ManagedService {
    let clock = clock();
    let storage = Storage::new(
        Arc::new(signer),
        clock.clone(),
        BucketName::parse("filegate-files").unwrap(),
    );
    ManagedService::new(
        storage,
        Arc::new(objects),
        buckets,
        Arc::new(rows),
        clock,
        ManagedPolicy::default(),
    )
    .unwrap()
}

fn avatars() -> Bucket {
    Bucket {
        id: BucketId::generate(),
        name: BucketName::parse("avatars").unwrap(),
        organization_id: None,
        read_scope: ReadScope::Public,
        write_scope: WriteScope::User,
        file_size_limit: Some(ByteSize::mib(5)),
        allowed_mime_types: vec![MimePattern::parse("image/*").unwrap()],
        created_at: NOW,
        updated_at: NOW,
    }
}

/// A bucket store that resolves `avatars` (project-wide) and nothing else.
fn with_avatars(b: &Bucket) -> MockBucketStore {
    let mut s = MockBucketStore::new();
    let found = b.clone();
    s.expect_find_bucket_by_name().returning(move |org, name| {
        Ok((org.is_none() && name.as_str() == "avatars").then(|| found.clone()))
    });
    let found = b.clone();
    s.expect_find_bucket()
        .returning(move |id| Ok((*id == found.id).then(|| found.clone())));
    s
}

fn user(id: &str) -> Principal {
    Principal {
        user_id: id.into(),
        ..Principal::default()
    }
}

fn body(data: &'static [u8]) -> ByteStream {
    futures::stream::iter([Ok(Bytes::from_static(data))]).boxed()
}

fn row(b: &Bucket, key: &str, status: ObjectStatus) -> ObjectRow {
    ObjectRow {
        id: ObjectId::generate(),
        bucket_id: b.id.clone(),
        organization_id: None,
        owner_id: "u1".into(),
        segment: "u1".into(),
        key: ObjectKey::parse(key).unwrap(),
        path: ObjectPath::parse(key.splitn(3, '/').nth(2).unwrap()).unwrap(),
        content_type: ContentType::parse("image/png").unwrap(),
        size: 4,
        etag: None,
        status,
        created_at: NOW,
        updated_at: NOW,
        deleted_at: None,
        multipart: None,
    }
}

#[tokio::test]
async fn a_failed_put_purges_the_pending_row_and_never_confirms() {
    let b = avatars();
    let mut seq = Sequence::new();
    let mut rows = MockObjectRowStore::new();
    rows.expect_find_object_by_key().returning(|_| Ok(None));
    rows.expect_insert_object()
        .withf(|r| {
            r.status == ObjectStatus::Pending
                && r.key.as_str() == "u1/avatars/u1/a.png"
                && r.size == 4
                && r.segment == "u1"
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    let mut objects = MockObjectStore::new();
    objects
        .expect_put()
        .withf(|bucket, key, put| {
            bucket.as_str() == "filegate-files"
                && key.as_str() == "u1/avatars/u1/a.png"
                && put.content_length == 4
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Err(Error::unavailable("connection reset")));
    rows.expect_purge_object()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    rows.expect_confirm_object().never();
    let svc = service(echo_signer(), objects, with_avatars(&b), rows);
    let err = svc
        .upload(
            Some(&user("u1")),
            "avatars",
            "u1/a.png",
            Upload {
                content_type: "image/png".into(),
                content_length: 4,
                body: body(b"data"),
                upsert: false,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }));
}

#[tokio::test]
async fn a_failed_confirm_after_the_put_leaves_a_pending_row_not_a_confirmed_one() {
    let b = avatars();
    let mut rows = MockObjectRowStore::new();
    rows.expect_find_object_by_key().returning(|_| Ok(None));
    rows.expect_insert_object().times(1).returning(|_| Ok(()));
    rows.expect_confirm_object()
        .times(1)
        .returning(|_, _| Err(Error::unavailable("db busy")));
    rows.expect_purge_object().never();
    let mut objects = MockObjectStore::new();
    objects.expect_put().times(1).returning(|_, _, p| {
        Ok(ObjectMeta {
            size: p.content_length,
            etag: Some("e".into()),
            content_type: None,
            last_modified: None,
        })
    });
    let svc = service(echo_signer(), objects, with_avatars(&b), rows);
    let err = svc
        .upload(
            Some(&user("u1")),
            "avatars",
            "u1/a.png",
            Upload {
                content_type: "image/png".into(),
                content_length: 4,
                body: body(b"data"),
                upsert: false,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }));
}

#[tokio::test]
async fn presign_signs_first_so_a_signer_failure_writes_nothing() {
    let b = avatars();
    let mut rows = MockObjectRowStore::new();
    rows.expect_find_object_by_key().returning(|_| Ok(None));
    rows.expect_insert_object().never();
    let mut signer = MockUrlSigner::new();
    signer
        .expect_presign()
        .withf(|r| {
            r.headers.get("Content-Length").map(String::as_str) == Some("1234")
                && r.headers.get("Content-Type").map(String::as_str) == Some("image/png")
                && r.expires_in == Expiry::DEFAULT
        })
        .times(1)
        .returning(|_| Err(Error::internal("no credentials")));
    let svc = service(signer, MockObjectStore::new(), with_avatars(&b), rows);
    let err = svc
        .presign(
            Some(&user("u1")),
            "avatars",
            "u1/a.png",
            PresignUpload {
                content_type: "image/png".into(),
                size: 1234,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Internal { .. }));
}

#[tokio::test]
async fn delete_hides_the_row_then_deletes_the_object_then_purges() {
    let b = avatars();
    let r = row(&b, "u1/avatars/u1/a.png", ObjectStatus::Confirmed);
    let id = r.id.clone();
    let mut seq = Sequence::new();
    let mut rows = MockObjectRowStore::new();
    let found = r.clone();
    rows.expect_find_object_by_key()
        .returning(move |_| Ok(Some(found.clone())));
    let i = id.clone();
    rows.expect_mark_object_deleted()
        .withf(move |x, at| *x == i && *at == NOW)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(()));
    let mut objects = MockObjectStore::new();
    objects
        .expect_delete()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(()));
    rows.expect_purge_object()
        .withf(move |x| *x == id)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    let svc = service(echo_signer(), objects, with_avatars(&b), rows);
    svc.delete(Some(&user("u1")), "avatars", "u1/a.png")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_failed_object_delete_leaves_the_row_hidden_and_a_retry_finishes() {
    let b = avatars();
    let mut r = row(&b, "u1/avatars/u1/a.png", ObjectStatus::Confirmed);
    // First attempt: storage fails after the soft delete; the row must not be purged.
    let mut rows = MockObjectRowStore::new();
    let found = r.clone();
    rows.expect_find_object_by_key()
        .returning(move |_| Ok(Some(found.clone())));
    rows.expect_mark_object_deleted()
        .times(1)
        .returning(|_, _| Ok(()));
    rows.expect_purge_object().never();
    let mut objects = MockObjectStore::new();
    objects
        .expect_delete()
        .returning(|_, _| Err(Error::unavailable("storage down")));
    let svc = service(echo_signer(), objects, with_avatars(&b), rows);
    assert!(
        svc.delete(Some(&user("u1")), "avatars", "u1/a.png")
            .await
            .is_err()
    );

    // Retry: the row is soft-deleted already; no second mark, object then purge.
    r.deleted_at = Some(NOW);
    let mut rows = MockObjectRowStore::new();
    rows.expect_find_object_by_key()
        .returning(move |_| Ok(Some(r.clone())));
    rows.expect_mark_object_deleted().never();
    rows.expect_purge_object().times(1).returning(|_| Ok(()));
    let mut objects = MockObjectStore::new();
    objects.expect_delete().times(1).returning(|_, _| Ok(()));
    let svc = service(echo_signer(), objects, with_avatars(&b), rows);
    svc.delete(Some(&user("u1")), "avatars", "u1/a.png")
        .await
        .unwrap();
}

#[tokio::test]
async fn confirm_over_the_limit_deletes_the_object_before_the_row() {
    let b = avatars();
    let mut r = row(&b, "u1/avatars/u1/a.png", ObjectStatus::Pending);
    // Declared under an older, larger limit: the object is the declared one.
    r.size = 6 * 1024 * 1024;
    let mut seq = Sequence::new();
    let mut rows = MockObjectRowStore::new();
    rows.expect_find_object_by_key()
        .returning(move |_| Ok(Some(r.clone())));
    let mut objects = MockObjectStore::new();
    objects.expect_head().returning(|_, _| {
        Ok(ObjectMeta {
            size: 6 * 1024 * 1024,
            etag: Some("e".into()),
            content_type: Some("image/png".into()),
            last_modified: None,
        })
    });
    objects
        .expect_delete()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(()));
    rows.expect_purge_object()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    rows.expect_confirm_object().never();
    let svc = service(echo_signer(), objects, with_avatars(&b), rows);
    let err = svc
        .confirm(Some(&user("u1")), "avatars", "u1/a.png")
        .await
        .unwrap_err();
    let Error::Validation(f) = err else {
        panic!("expected validation")
    };
    assert_eq!(f[0].field, "size");
    assert!(f[0].message.contains("5 MiB"), "{}", f[0].message);
}

#[tokio::test]
async fn confirm_writes_the_stored_metadata_not_the_declared_one() {
    let b = avatars();
    let mut r = row(&b, "u1/avatars/u1/a.png", ObjectStatus::Pending);
    // The declared size and type were signed, so storage holds those; the etag is new.
    r.size = 3;
    r.content_type = ContentType::parse("image/webp").unwrap();
    let mut rows = MockObjectRowStore::new();
    let found = r.clone();
    rows.expect_find_object_by_key()
        .returning(move |_| Ok(Some(found.clone())));
    rows.expect_confirm_object()
        .withf(|_, c| {
            c.size == 3
                && c.etag.as_deref() == Some("real")
                && c.content_type.as_str() == "image/webp"
                && c.owner_id == "u1"
                && c.at == NOW
        })
        .times(1)
        .returning(move |_, c| {
            let mut done = r.clone();
            done.size = c.size;
            done.status = ObjectStatus::Confirmed;
            Ok(done)
        });
    let mut objects = MockObjectStore::new();
    objects.expect_head().returning(|_, _| {
        Ok(ObjectMeta {
            size: 3,
            etag: Some("real".into()),
            content_type: Some("image/webp".into()),
            last_modified: None,
        })
    });
    let svc = service(echo_signer(), objects, with_avatars(&b), rows);
    let out = svc
        .confirm(Some(&user("u1")), "avatars", "u1/a.png")
        .await
        .unwrap();
    assert_eq!(out.size, 3);
}

#[tokio::test]
async fn confirming_a_confirmed_object_waits_for_no_writer() {
    use futures::FutureExt;
    let b = avatars();
    let r = row(&b, "u1/avatars/u1/a.png", ObjectStatus::Confirmed);
    let mut rows = MockObjectRowStore::new();
    rows.expect_find_object_by_key()
        .returning(move |_| Ok(Some(r.clone())));
    rows.expect_confirm_object().never();
    let mut objects = MockObjectStore::new();
    objects.expect_head().never();
    let svc = service(echo_signer(), objects, with_avatars(&b), rows);
    // A writer of the same path holds its lock (an upload in progress).
    let _writer = svc.key_locks().lock("u1/avatars/u1/a.png").await;
    let out = svc
        .confirm(Some(&user("u1")), "avatars", "u1/a.png")
        .now_or_never()
        .expect("answered without the path's lock")
        .unwrap();
    assert_eq!(out.size, 4);
}

/// A bucket store whose name lookups yield once before answering, as a database's would.
struct YieldingBuckets(MockBucketStore);

#[async_trait::async_trait]
impl BucketStore for YieldingBuckets {
    async fn insert_bucket(&self, b: &Bucket) -> Result<(), Error> {
        self.0.insert_bucket(b).await
    }
    async fn find_bucket(&self, id: &BucketId) -> Result<Option<Bucket>, Error> {
        self.0.find_bucket(id).await
    }
    async fn find_bucket_by_name(
        &self,
        org: Option<String>,
        name: &BucketName,
    ) -> Result<Option<Bucket>, Error> {
        let mut yielded = false;
        futures::future::poll_fn(|cx| {
            if yielded {
                std::task::Poll::Ready(())
            } else {
                yielded = true;
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        })
        .await;
        self.0.find_bucket_by_name(org, name).await
    }
    async fn list_buckets(&self, org: Option<String>) -> Result<Vec<Bucket>, Error> {
        self.0.list_buckets(org).await
    }
    async fn update_bucket(&self, b: &Bucket) -> Result<(), Error> {
        self.0.update_bucket(b).await
    }
    async fn delete_bucket(&self, id: &BucketId) -> Result<(), Error> {
        self.0.delete_bucket(id).await
    }
}

#[tokio::test]
async fn a_confirm_reads_the_row_while_the_bucket_is_still_read() {
    let mut b = avatars();
    b.organization_id = Some("o1".into());
    let key = "u1/avatars/u1/a.png";
    let r = row(&b, key, ObjectStatus::Confirmed);
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = asked.clone();
    let mut rows = MockObjectRowStore::new();
    rows.expect_reads_cost_a_round_trip().return_const(true);
    rows.expect_find_objects_by_keys()
        .times(1)
        .returning(move |keys| {
            log.lock().unwrap().push(keys.to_vec());
            Ok(vec![r.clone()])
        });
    rows.expect_find_object_by_key().never();
    let mut buckets = MockBucketStore::new();
    let found = b.clone();
    buckets
        .expect_find_bucket_by_name()
        .returning(move |org, _| Ok((org.as_deref() == Some("o1")).then(|| found.clone())));
    let mut objects = MockObjectStore::new();
    objects.expect_head().never();
    let svc = service_over(
        echo_signer(),
        objects,
        Arc::new(YieldingBuckets(buckets)),
        rows,
    );
    let mut caller = user("u1");
    caller.active_org_id = Some("o1".into());
    let confirm = svc.confirm(Some(&caller), "avatars", "u1/a.png");
    futures::pin_mut!(confirm);
    assert!(
        futures::poll!(&mut confirm).is_pending(),
        "the bucket is still being read"
    );
    // Both keys the path can have (the user's segment and the organization's), in one
    // read that went out beside the bucket's.
    assert_eq!(
        *asked.lock().unwrap(),
        vec![vec![
            ObjectKey::parse(key).unwrap(),
            ObjectKey::parse("o1/avatars/u1/a.png").unwrap()
        ]]
    );
    assert_eq!(confirm.await.unwrap().size, 4);
}

#[tokio::test]
async fn a_bucket_named_by_id_reads_the_row_after_it() {
    let b = avatars();
    let key = "u1/avatars/u1/a.png";
    let r = row(&b, key, ObjectStatus::Confirmed);
    let mut rows = MockObjectRowStore::new();
    rows.expect_reads_cost_a_round_trip().return_const(true);
    rows.expect_find_objects_by_keys().never();
    rows.expect_find_object_by_key()
        .times(1)
        .returning(move |k| Ok((k.as_str() == key).then(|| r.clone())));
    let mut buckets = MockBucketStore::new();
    let found = b.clone();
    buckets
        .expect_find_bucket()
        .returning(move |_| Ok(Some(found.clone())));
    let svc = service_over(
        echo_signer(),
        MockObjectStore::new(),
        Arc::new(buckets),
        rows,
    );
    let out = svc
        .confirm(Some(&user("u1")), b.id.as_str(), "u1/a.png")
        .await
        .unwrap();
    assert_eq!(out.size, 4);
}

#[tokio::test]
async fn anonymous_callers_touch_nothing() {
    let mut buckets = MockBucketStore::new();
    buckets.expect_find_bucket_by_name().never();
    buckets.expect_insert_bucket().never();
    let mut rows = MockObjectRowStore::new();
    rows.expect_find_object_by_key().never();
    let svc = service(echo_signer(), MockObjectStore::new(), buckets, rows);
    let up = svc
        .upload(
            None,
            "avatars",
            "a",
            Upload {
                content_type: "image/png".into(),
                content_length: 1,
                body: body(b"x"),
                upsert: false,
            },
        )
        .await;
    assert!(matches!(up, Err(Error::AuthMissing)));
    assert!(matches!(
        svc.create_bucket(None, CreateBucket::default()).await,
        Err(Error::AuthMissing)
    ));
    assert!(matches!(
        svc.list_buckets(None).await,
        Err(Error::AuthMissing)
    ));
    assert!(matches!(
        svc.list(None, "avatars", ListObjects::default()).await,
        Err(Error::AuthMissing)
    ));
    assert!(matches!(
        svc.delete_bucket(None, "avatars", true).await,
        Err(Error::AuthMissing)
    ));
}

#[tokio::test]
async fn seeding_tolerates_another_process_seeding_at_the_same_time() {
    let b = avatars();
    let mut buckets = MockBucketStore::new();
    let mut lookups = 0;
    let winner = b.clone();
    buckets
        .expect_find_bucket_by_name()
        .returning(move |_, name| {
            if name.as_str() != "avatars" {
                return Ok(None);
            }
            lookups += 1;
            Ok((lookups > 1).then(|| winner.clone()))
        });
    buckets.expect_insert_bucket().returning(|new| {
        if new.name.as_str() == "avatars" {
            Err(Error::BucketExists)
        } else {
            Ok(())
        }
    });
    let svc = service(
        echo_signer(),
        MockObjectStore::new(),
        buckets,
        MockObjectRowStore::new(),
    );
    let seeded = svc.seed_default_buckets().await.unwrap();
    assert_eq!(seeded[0].id, b.id, "the other process's bucket is returned");
    assert_eq!(seeded[1].name.as_str(), "org-logos");
}

#[test]
fn construction_validates_the_files_url_and_the_manage_rule() {
    let make = |policy: ManagedPolicy| {
        let clock = clock();
        ManagedService::new(
            Storage::new(
                Arc::new(MockUrlSigner::new()),
                clock.clone(),
                BucketName::parse("filegate-files").unwrap(),
            ),
            Arc::new(MockObjectStore::new()),
            Arc::new(MockBucketStore::new()),
            Arc::new(MockObjectRowStore::new()),
            clock,
            policy,
        )
    };
    for bad in ["", "files.example.com", "ftp://x", "http://", "http://a b"] {
        let err = make(ManagedPolicy {
            files_url: bad.into(),
            ..ManagedPolicy::default()
        })
        .unwrap_err();
        assert!(
            matches!(err, Error::Validation(ref f) if f[0].field == "filesUrl"),
            "{bad:?}"
        );
    }
    let ok = make(ManagedPolicy {
        files_url: "https://files.example.com//".into(),
        ..ManagedPolicy::default()
    })
    .unwrap();
    assert_eq!(ok.policy().files_url, "https://files.example.com");
    let err = make(ManagedPolicy {
        manage_rule: crate::domain::AccessRule::at_least("editor"),
        ..ManagedPolicy::default()
    })
    .unwrap_err();
    assert!(matches!(err, Error::Validation(ref f) if f[0].field == "manageRule"));
}

#[tokio::test]
async fn a_key_held_by_another_bucket_is_never_overwritten() {
    // An organization bucket shadowing a project-wide one can compute the same key.
    let b = avatars();
    let mut other = row(&b, "u1/avatars/u1/a.png", ObjectStatus::Pending);
    other.bucket_id = BucketId::generate();
    let mut rows = MockObjectRowStore::new();
    rows.expect_find_object_by_key()
        .returning(move |_| Ok(Some(other.clone())));
    rows.expect_purge_object().never();
    rows.expect_insert_object().never();
    let mut objects = MockObjectStore::new();
    objects.expect_put().never();
    let svc = service(echo_signer(), objects, with_avatars(&b), rows);
    let err = svc
        .upload(
            Some(&user("u1")),
            "avatars",
            "u1/a.png",
            Upload {
                content_type: "image/png".into(),
                content_length: 1,
                body: body(b"x"),
                upsert: true,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ObjectExists));
}

fn org_docs() -> Bucket {
    Bucket {
        name: BucketName::parse("docs").unwrap(),
        organization_id: Some("org_a".into()),
        read_scope: ReadScope::Org,
        write_scope: WriteScope::Org,
        file_size_limit: None,
        allowed_mime_types: vec![],
        ..avatars()
    }
}

fn member_of(user: &str, org: &str) -> Principal {
    Principal {
        user_id: user.into(),
        active_org_id: Some(org.into()),
        roles: vec!["member".into()],
        ..Principal::default()
    }
}

fn finding_row(r: &ObjectRow) -> MockObjectRowStore {
    let mut rows = MockObjectRowStore::new();
    let found = r.clone();
    rows.expect_find_object()
        .returning(move |id| Ok((*id == found.id).then(|| found.clone())));
    let found = r.clone();
    rows.expect_find_object_by_key()
        .returning(move |k| Ok((*k == found.key).then(|| found.clone())));
    rows
}

fn serving_bytes() -> MockObjectStore {
    let mut objects = MockObjectStore::new();
    objects.expect_get().returning(|_, _, range| {
        Ok(crate::ports::GetObject {
            meta: ObjectMeta {
                size: 4,
                etag: Some("e".into()),
                content_type: Some("application/pdf".into()),
                last_modified: None,
            },
            range: range.map(|_| (0, 1)),
            body: body(b"data"),
        })
    });
    objects
}

#[tokio::test]
async fn download_by_id_serves_the_callers_org_and_hides_other_orgs() {
    let b = org_docs();
    let mut r = row(&b, "org_a/docs/a.pdf", ObjectStatus::Confirmed);
    r.organization_id = Some("org_a".into());
    let id = r.id.to_string();
    let svc = service(
        echo_signer(),
        serving_bytes(),
        with_avatars(&b),
        finding_row(&r),
    );
    let got = svc
        .download_by_id(Some(&member_of("u2", "org_a")), &id, None)
        .await
        .unwrap();
    assert_eq!(got.object.id, r.id);
    assert!(!got.public);
    for (caller, code) in [
        (Some(member_of("u3", "org_b")), "STORAGE_OBJECT_NOT_FOUND"),
        (None, "AUTH_MISSING"),
        (Some(user("u1")), "ACCESS_NO_ORG"),
    ] {
        let err = svc
            .download_by_id(caller.as_ref(), &id, None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), code);
    }
    for bad in ["garbage", &ObjectId::generate().to_string()] {
        let err = svc
            .download_by_id(Some(&member_of("u2", "org_a")), bad, None)
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            Error::NotFound(crate::error::Resource::Object)
        ));
    }
    let signed = svc
        .sign_download_by_id(Some(&member_of("u2", "org_a")), &id)
        .await
        .unwrap();
    assert!(signed.url.starts_with("https://s3.test/"), "{}", signed.url);
}

struct FixedTokens;

impl super::service::UrlTokens for FixedTokens {
    fn mint(&self, object: &ObjectRow, expires_at: OffsetDateTime) -> String {
        format!(
            "{}.{}",
            object.key.as_str().len(),
            expires_at.unix_timestamp()
        )
    }
}

#[tokio::test]
async fn with_url_tokens_private_urls_point_at_the_files_listener() {
    let b = org_docs();
    let mut r = row(&b, "org_a/docs/a b.pdf", ObjectStatus::Confirmed);
    r.organization_id = Some("org_a".into());
    let svc = service(
        echo_signer(),
        MockObjectStore::new(),
        with_avatars(&b),
        finding_row(&r),
    )
    .with_url_tokens(Arc::new(FixedTokens));
    let url = svc
        .url(Some(&member_of("u2", "org_a")), "org_a/docs/a b.pdf")
        .await
        .unwrap();
    let exp = NOW + Expiry::DEFAULT.duration();
    assert_eq!(
        url.url,
        format!(
            "http://127.0.0.1:8789/org_a/docs/a%20b.pdf?token=18.{}",
            exp.unix_timestamp()
        )
    );
    assert_eq!(url.expires_at, Some(exp));
}
