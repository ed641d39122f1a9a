use super::plan::key_at_or_below;
use super::*;
use crate::domain::{BucketName, ByteSize, ContentType, ObjectKey};
use crate::error::Resource;
use crate::managed::{Bucket, BucketId, ObjectStatus};
use crate::managed::{MockBucketStore, MockObjectRowStore, ObjectId, ObjectPath};
use crate::ports::ObjectMeta;
use crate::ports::{ListPage, MockObjectStore};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2025-06-10 12:00 UTC);

fn bucket() -> BucketName {
    BucketName::parse("phys-bucket").unwrap()
}

fn obj(key: &str, size: u64) -> ObjectSummary {
    ObjectSummary {
        key: key.to_owned(),
        size,
        etag: None,
        last_modified: Some(NOW - Duration::from_hours(48)),
    }
}

fn row(key: &str, status: ObjectStatus, size: u64, age: Duration) -> ObjectRow {
    ObjectRow {
        id: ObjectId::generate(),
        bucket_id: BucketId::generate(),
        organization_id: Some("org".into()),
        owner_id: "u".into(),
        segment: key.split('/').next().unwrap().into(),
        key: ObjectKey::parse(key).unwrap(),
        path: ObjectPath::parse("p").unwrap(),
        content_type: ContentType::parse("image/png").unwrap(),
        size,
        etag: None,
        status,
        created_at: NOW - age,
        updated_at: NOW - age,
        deleted_at: None,
        multipart: None,
    }
}

fn confirmed(key: &str, size: u64) -> ObjectRow {
    row(key, ObjectStatus::Confirmed, size, Duration::from_mins(1))
}

const OLD: Duration = Duration::from_hours(192);
const YOUNG: Duration = Duration::from_hours(1);

/// A listing over `objects` (sorted here, by bytes), `empty_every`: every n-th call
/// returns an empty page that still has a continuation token.
fn listing(mut objects: Vec<ObjectSummary>, empty_every: usize) -> MockObjectStore {
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    let calls = Arc::new(AtomicUsize::new(0));
    let mut store = MockObjectStore::new();
    store
        .expect_list()
        .returning(move |_, prefix, continuation, max| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            let prefix = prefix.unwrap_or_default();
            let matching: Vec<&ObjectSummary> = objects
                .iter()
                .filter(|o| o.key.starts_with(&prefix))
                .filter(|o| continuation.as_ref().is_none_or(|c| o.key > *c))
                .collect();
            if empty_every >= 2 && n.is_multiple_of(empty_every) && !matching.is_empty() {
                return Ok(ListPage {
                    objects: vec![],
                    next: Some(continuation.unwrap_or_default()),
                });
            }
            let page: Vec<ObjectSummary> = matching
                .iter()
                .take(max as usize)
                .map(|o| (*o).clone())
                .collect();
            let next = (matching.len() > page.len()).then(|| page.last().unwrap().key.clone());
            Ok(ListPage {
                objects: page,
                next,
            })
        });
    store
}

fn table(mut rows: Vec<ObjectRow>) -> MockObjectRowStore {
    rows.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
    let mut db = MockObjectRowStore::new();
    db.expect_objects_by_key().returning(move |after, limit| {
        Ok(rows
            .iter()
            .filter(|r| after.as_ref().is_none_or(|a| r.key.as_str() > a.as_str()))
            .take(limit as usize)
            .cloned()
            .collect())
    });
    db
}

fn opts(list_page: u32, row_page: u32) -> PlanOptions {
    PlanOptions {
        list_page,
        row_page,
        key_spaces: KeySpaces::everything(),
        ..PlanOptions::new(bucket(), NOW)
    }
}

async fn plan(
    objects: &MockObjectStore,
    rows: &MockObjectRowStore,
    o: PlanOptions,
) -> Vec<(String, Category)> {
    Planner::new(objects, rows, o)
        .collect()
        .await
        .unwrap()
        .into_iter()
        .map(|f| (f.key().to_owned(), f.category()))
        .collect()
}

fn cat(key: &str, c: Category) -> (String, Category) {
    (key.to_owned(), c)
}

#[tokio::test]
async fn every_category_is_found_once_in_key_order() {
    let mut deleted = confirmed("o/b/deleted", 1);
    deleted.deleted_at = Some(NOW);
    let store = listing(
        vec![
            obj("o/b/arrived", 7),
            obj("o/b/fine", 3),
            obj("o/b/mismatch", 10),
            obj("o/b/orphan", 5),
            obj("o/b/deleted", 1),
        ],
        0,
    );
    let db = table(vec![
        row("o/b/arrived", ObjectStatus::Pending, 7, YOUNG),
        confirmed("o/b/fine", 3),
        confirmed("o/b/mismatch", 9),
        confirmed("o/b/missing", 4),
        row("o/b/stale", ObjectStatus::Pending, 2, OLD),
        row("o/b/young", ObjectStatus::Pending, 2, YOUNG),
        deleted,
    ]);
    let mut planner = Planner::new(&store, &db, opts(2, 3));
    let mut got = Vec::new();
    while let Some(f) = planner.next().await.unwrap() {
        got.push(f);
    }
    let keys: Vec<(String, Category)> = got
        .iter()
        .map(|f| (f.key().to_owned(), f.category()))
        .collect();
    assert_eq!(
        keys,
        vec![
            cat("o/b/arrived", Category::Arrived),
            cat("o/b/mismatch", Category::Mismatch),
            cat("o/b/missing", Category::Missing),
            cat("o/b/orphan", Category::Orphan),
            cat("o/b/stale", Category::StalePending),
        ]
    );
    let Finding::Mismatch { fields, .. } = &got[1] else {
        panic!("{got:?}")
    };
    assert_eq!(fields, &vec!["size"]);
    let p = planner.progress();
    assert_eq!(
        (p.objects, p.rows, p.in_flight, p.soft_deleted),
        (5, 7, 1, 1)
    );
    let mut report = ReconcileReport::new(planner.options(), false);
    for f in &got {
        report.record(f);
    }
    assert_eq!(report.differences(), 5);
    assert_eq!(report.categories[&Category::Orphan].bytes, 5);
    assert_eq!(report.categories[&Category::Missing].bytes, 4);
}

fn media_row(key: &str, status: MediaStatus, expires: Option<OffsetDateTime>) -> Media {
    Media {
        id: crate::domain::MediaId::generate(),
        bucket: bucket(),
        key: ObjectKey::parse(key).unwrap(),
        organization_id: "org".into(),
        uploader_id: "u".into(),
        filename: "f.txt".into(),
        content_type: ContentType::parse("text/plain").unwrap(),
        declared_size: None,
        created_at: NOW - Duration::from_hours(720),
        status,
        size: (status == MediaStatus::Confirmed).then_some(5),
        etag: None,
        upload_expires_at: expires,
        multipart: None,
    }
}

fn media_table(mut rows: Vec<Media>) -> crate::ports::MockMediaStore {
    rows.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
    let mut m = crate::ports::MockMediaStore::new();
    m.expect_by_key().returning(move |after, limit| {
        Ok(rows
            .iter()
            .filter(|r| after.as_ref().is_none_or(|a| r.key.as_str() > a.as_str()))
            .take(limit as usize)
            .cloned()
            .collect())
    });
    m
}

#[tokio::test]
async fn media_rows_own_their_keys_and_uncovered_keys_are_not_orphans() {
    let store = listing(
        vec![
            obj("org/o1/a-kept.txt", 5),
            obj("org/o1/b-arrived.txt", 5),
            obj("org/o1/stray.txt", 5),
            obj("o/b/orphan", 5),
            obj("backups/db.dump", 9),
            obj("top-level.txt", 1),
        ],
        0,
    );
    let db = table(vec![]);
    let hour = Duration::from_hours(1);
    let media = media_table(vec![
        media_row("org/o1/a-kept.txt", MediaStatus::Confirmed, None),
        media_row("org/o1/b-arrived.txt", MediaStatus::Pending, Some(NOW)),
        media_row("org/o1/c-gone.txt", MediaStatus::Confirmed, None),
        // URL expired two hours ago: past the one-hour grace.
        media_row(
            "org/o1/d-stale.txt",
            MediaStatus::Pending,
            Some(NOW - 2 * hour),
        ),
        // Expired half an hour ago: still within the grace.
        media_row(
            "org/o1/e-young.txt",
            MediaStatus::Pending,
            Some(NOW - hour / 2),
        ),
        // Signed before expiries were recorded, 30 days ago: created + 7 days passed.
        media_row("org/o1/f-legacy.txt", MediaStatus::Pending, None),
    ]);
    let spaces = KeySpaces {
        all: false,
        media: true,
        buckets: BTreeSet::from(["b".to_owned()]),
    };
    for (lp, rp) in [(1, 1), (2, 3), (1000, 1000)] {
        let o = PlanOptions {
            key_spaces: spaces.clone(),
            ..opts(lp, rp)
        };
        let got: Vec<(String, Category)> = Planner::new(&store, &db, o)
            .with_media(&media)
            .collect()
            .await
            .unwrap()
            .into_iter()
            .map(|f| (f.key().to_owned(), f.category()))
            .collect();
        assert_eq!(
            got,
            vec![
                cat("backups/db.dump", Category::Uncovered),
                cat("o/b/orphan", Category::Orphan),
                cat("org/o1/b-arrived.txt", Category::Arrived),
                cat("org/o1/c-gone.txt", Category::Missing),
                cat("org/o1/d-stale.txt", Category::StalePending),
                cat("org/o1/f-legacy.txt", Category::StalePending),
                cat("org/o1/stray.txt", Category::Orphan),
                cat("top-level.txt", Category::Uncovered),
            ],
            "pages {lp}/{rp}"
        );
    }
    // Without the media table, its key space is not covered either.
    let o = PlanOptions {
        key_spaces: KeySpaces {
            media: false,
            ..spaces
        },
        ..opts(10, 10)
    };
    let got = plan(&store, &db, o).await;
    assert!(
        got.contains(&cat("org/o1/a-kept.txt", Category::Uncovered)),
        "{got:?}"
    );
}

#[tokio::test]
async fn uncovered_objects_are_reported_but_not_drift_nor_deleted() {
    let o = PlanOptions::new(bucket(), NOW);
    let mut report = ReconcileReport::new(&o, true);
    let f = Finding::Uncovered(obj("backups/x", 3));
    report.record(&f);
    assert_eq!(report.differences(), 0);
    assert_eq!(report.remaining(), 0);
    let store = MockObjectStore::new();
    let db = MockObjectRowStore::new();
    let buckets = MockBucketStore::new();
    let mut a = Applier::new(&store, &db, &buckets, apply_opts(true));
    assert!(matches!(a.apply(&f).await.unwrap(), Applied::Skipped(_)));
}

#[tokio::test]
async fn an_orphan_that_a_media_row_now_owns_is_kept() {
    let store = MockObjectStore::new();
    let mut db = MockObjectRowStore::new();
    db.expect_find_object_by_key().returning(|_| Ok(None));
    let mut media = crate::ports::MockMediaStore::new();
    media
        .expect_find_by_key()
        .times(1)
        .returning(|k| Ok(Some(media_row(k.as_str(), MediaStatus::Pending, Some(NOW)))));
    let buckets = MockBucketStore::new();
    let mut a = Applier::new(&store, &db, &buckets, apply_opts(true)).with_media(&media);
    assert_eq!(
        a.apply(&Finding::Orphan(obj("org/o1/x", 1))).await.unwrap(),
        Applied::Skipped("a media row for it appeared")
    );
}

#[tokio::test]
async fn an_arrived_media_object_over_the_limit_is_rejected_like_confirm() {
    let r = media_row("org/o1/big", MediaStatus::Pending, Some(NOW));
    let mut store = MockObjectStore::new();
    store.expect_head().returning(|_, _| {
        Ok(ObjectMeta {
            size: 2 * 1024 * 1024,
            etag: Some("e".into()),
            content_type: Some("text/plain".into()),
            last_modified: None,
        })
    });
    let mut seq = mockall::Sequence::new();
    store
        .expect_delete()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(()));
    let mut media = crate::ports::MockMediaStore::new();
    let again = r.clone();
    media
        .expect_find()
        .returning(move |_| Ok(Some(again.clone())));
    media.expect_confirm().never();
    media
        .expect_delete()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    let db = MockObjectRowStore::new();
    let buckets = MockBucketStore::new();
    let mut a = Applier::new(&store, &db, &buckets, apply_opts(false)).with_media(&media);
    let object = obj("org/o1/big", 2 * 1024 * 1024);
    assert_eq!(
        a.apply(&Finding::MediaArrived { row: r, object })
            .await
            .unwrap(),
        Applied::Fixed(Fix::Rejected)
    );
}

#[tokio::test]
async fn purge_removes_stale_media_rows_with_their_objects() {
    let hour = Duration::from_hours(1);
    let stale = media_row("org/o1/stale", MediaStatus::Pending, Some(NOW - 2 * hour));
    let young = media_row("org/o1/young", MediaStatus::Pending, Some(NOW));
    let kept = media_row("org/o1/kept", MediaStatus::Confirmed, None);
    let mut media = media_table(vec![stale.clone(), young, kept]);
    let again = stale.clone();
    media
        .expect_find()
        .times(1)
        .returning(move |_| Ok(Some(again.clone())));
    let id = stale.id.clone();
    media
        .expect_delete()
        .withf(move |i| *i == id)
        .times(1)
        .returning(|_| Ok(()));
    let mut store = MockObjectStore::new();
    store
        .expect_delete()
        .withf(|_, k| k.as_str() == "org/o1/stale")
        .times(1)
        .returning(|_, _| Ok(()));
    store
        .expect_list_multipart_uploads()
        .times(1)
        .returning(|_, _| Ok(vec![]));
    let db = table(vec![]);
    let opts = PurgeOptions {
        bucket: bucket(),
        now: NOW,
        stale_after: default_stale_after(),
        multipart_max_age: crate::policy::DEFAULT_MULTIPART_MAX_AGE,
        deleted_grace: SOFT_DELETE_GRACE,
        batch: 2,
        dry_run: false,
    };
    let report = purge(&store, &db, Some(&media), &opts, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(report.stale_pending.count, 1);
    assert_eq!(report.purged, 1);
    assert_eq!(report.scanned_rows, 3);
}

#[tokio::test]
async fn purge_aborts_stale_multipart_uploads_and_removes_only_the_rows_recording_them() {
    use crate::ports::{MultipartRef, PendingUpload};
    let hour = Duration::from_hours(1);
    // A pending multipart row, not yet past its own expiry, whose upload storage lists as
    // stale; and a row at another key recording another upload than storage's.
    let mut ours = media_row("org/o1/big", MediaStatus::Pending, Some(NOW + hour));
    ours.multipart = Some(MultipartRef {
        upload_id: "up-1".into(),
        part_size: 5 * 1024 * 1024,
    });
    let mut other = media_row("org/o1/other", MediaStatus::Pending, Some(NOW + hour));
    other.multipart = Some(MultipartRef {
        upload_id: "up-newer".into(),
        part_size: 5 * 1024 * 1024,
    });
    let mut media = media_table(vec![ours.clone(), other.clone()]);
    let (o1, o2) = (ours.clone(), other.clone());
    media
        .expect_find_by_key()
        .returning(move |k| Ok([&o1, &o2].into_iter().find(|r| r.key == *k).cloned()));
    let id = ours.id.clone();
    media
        .expect_delete()
        .withf(move |i| *i == id)
        .times(1)
        .returning(|_| Ok(()));
    let mut store = MockObjectStore::new();
    store
        .expect_list_multipart_uploads()
        .withf(|_, before| *before == NOW - crate::policy::DEFAULT_MULTIPART_MAX_AGE)
        .times(1)
        .returning(|_, _| {
            Ok(vec![
                PendingUpload {
                    key: "org/o1/big".into(),
                    upload_id: "up-1".into(),
                    initiated: None,
                },
                PendingUpload {
                    key: "org/o1/other".into(),
                    upload_id: "up-old".into(),
                    initiated: None,
                },
            ])
        });
    store
        .expect_abort_multipart()
        .times(2)
        .returning(|_, _, _| Ok(()));
    let mut db = table(vec![]);
    db.expect_find_object_by_key().returning(|_| Ok(None));
    let opts = PurgeOptions {
        bucket: bucket(),
        now: NOW,
        stale_after: default_stale_after(),
        multipart_max_age: crate::policy::DEFAULT_MULTIPART_MAX_AGE,
        deleted_grace: SOFT_DELETE_GRACE,
        batch: 10,
        dry_run: false,
    };
    let report = purge(&store, &db, Some(&media), &opts, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(report.stale_multipart.count, 2);
    assert_eq!(report.stale_multipart.fixed, 2);
    assert_eq!(report.stale_pending.count, 0);
    assert_eq!(report.purged, 1);
}

/// Byte order, not "text" order: 'Z' < 'a' < '~' < 'é' (0xC3…) < '€' (0xE2…), and '/'
/// (0x2F) sorts before '0' and letters, so `a/x` < `a0` < `a~`.
#[tokio::test]
async fn keys_merge_in_byte_order_whatever_their_characters() {
    let keys = [
        "o/b/Z", "o/b/a", "o/b/a/x", "o/b/a0", "o/b/a~", "o/b/é", "o/b/€", "o/b/𝄞",
    ];
    let mut sorted = keys.to_vec();
    sorted.sort_unstable();
    assert_eq!(sorted, keys, "the fixture is in byte order");
    let store = listing(keys.iter().map(|k| obj(k, 1)).collect(), 0);
    let db = table(keys.iter().map(|k| confirmed(k, 1)).collect());
    for (lp, rp) in [(1, 1), (1, 3), (3, 1), (1000, 1000)] {
        assert!(plan(&store, &db, opts(lp, rp)).await.is_empty());
    }
}

#[tokio::test]
async fn a_side_out_of_byte_order_is_an_error_not_drift() {
    let mut store = MockObjectStore::new();
    store.expect_list().returning(|_, _, _, _| {
        Ok(ListPage {
            // Case-insensitive "text" order: 'a' before 'Z'.
            objects: vec![obj("o/b/a", 1), obj("o/b/Z", 1)],
            next: None,
        })
    });
    let db = table(vec![]);
    let err = Planner::new(&store, &db, opts(10, 10))
        .collect()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Internal { .. }), "{err:?}");
}

#[tokio::test]
async fn empty_pages_and_either_side_ending_first() {
    // Listing ends first: the rest of the rows are missing.
    let store = listing(vec![obj("o/b/a", 1)], 2);
    let db = table(vec![
        confirmed("o/b/a", 1),
        confirmed("o/b/b", 1),
        confirmed("o/b/c", 1),
    ]);
    assert_eq!(
        plan(&store, &db, opts(1, 1)).await,
        vec![
            cat("o/b/b", Category::Missing),
            cat("o/b/c", Category::Missing)
        ]
    );
    // Rows end first: the rest of the listing are orphans.
    let store = listing(vec![obj("o/b/a", 1), obj("o/b/b", 1), obj("o/b/c", 1)], 2);
    let db = table(vec![confirmed("o/b/a", 1)]);
    assert_eq!(
        plan(&store, &db, opts(1, 2)).await,
        vec![
            cat("o/b/b", Category::Orphan),
            cat("o/b/c", Category::Orphan)
        ]
    );
    // Both empty.
    let store = listing(vec![], 1);
    let db = table(vec![]);
    assert!(plan(&store, &db, opts(1, 1)).await.is_empty());
}

#[tokio::test]
async fn prefix_bucket_name_and_start_after_bound_both_sides() {
    let keys = ["o/a/1", "o/b/1", "o/b/2", "o/c/1", "p/b/1"];
    let store = listing(keys.iter().map(|k| obj(k, 1)).collect(), 0);
    let db = table(vec![]);
    let with = |prefix: Option<&str>, name: Option<&str>, after: Option<&str>| PlanOptions {
        prefix: prefix.map(Into::into),
        bucket_name: name.map(Into::into),
        start_after: after.map(Into::into),
        ..opts(2, 2)
    };
    let keys_of = |v: Vec<(String, Category)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(
        keys_of(plan(&store, &db, with(Some("o/b/"), None, None)).await),
        ["o/b/1", "o/b/2"]
    );
    assert_eq!(
        keys_of(plan(&store, &db, with(None, Some("b"), None)).await),
        ["o/b/1", "o/b/2", "p/b/1"]
    );
    assert_eq!(
        keys_of(plan(&store, &db, with(None, None, Some("o/b/1"))).await),
        ["o/b/2", "o/c/1", "p/b/1"]
    );
    // Rows: the same bounds.
    let store = listing(vec![], 0);
    let db = table(keys.iter().map(|k| confirmed(k, 1)).collect());
    assert_eq!(
        keys_of(plan(&store, &db, with(Some("o/b/"), None, Some("o/b/1"))).await),
        ["o/b/2"]
    );
    assert_eq!(
        keys_of(plan(&store, &db, with(Some("o/b"), None, None)).await),
        ["o/b/1", "o/b/2"]
    );
}

#[test]
fn row_cursors_are_valid_keys_at_or_below_the_bound() {
    assert_eq!(key_at_or_below("o/b/x", false).unwrap().as_str(), "o/b/x");
    assert_eq!(key_at_or_below("o/b/x", true).unwrap().as_str(), "o/b");
    assert_eq!(key_at_or_below("o/b/", false).unwrap().as_str(), "o/b");
    assert_eq!(key_at_or_below("o/é", true).unwrap().as_str(), "o");
    assert!(key_at_or_below("o", true).is_none());
    assert!(key_at_or_below("/", false).is_none());
}

// --- the applier ---------------------------------------------------------------------

fn apply_opts(delete_orphans: bool) -> ApplyOptions {
    ApplyOptions {
        bucket: bucket(),
        max_file_size: ByteSize::mib(1),
        now: NOW,
        stale_after: default_stale_after(),
        delete_orphans,
        orphan_min_age: DEFAULT_ORPHAN_MIN_AGE,
    }
}

#[tokio::test]
async fn orphans_are_kept_without_the_flag_and_when_young() {
    let store = MockObjectStore::new();
    let db = MockObjectRowStore::new();
    let buckets = MockBucketStore::new();
    let mut a = Applier::new(&store, &db, &buckets, apply_opts(false));
    assert!(matches!(
        a.apply(&Finding::Orphan(obj("o/b/x", 1))).await.unwrap(),
        Applied::Skipped(_)
    ));
    let mut a = Applier::new(&store, &db, &buckets, apply_opts(true));
    let mut young = obj("o/b/x", 1);
    young.last_modified = Some(NOW - Duration::from_mins(1));
    assert_eq!(
        a.apply(&Finding::Orphan(young)).await.unwrap(),
        Applied::Skipped("younger than --older-than")
    );
}

#[tokio::test]
async fn an_old_orphan_is_deleted_after_rechecking() {
    let mut store = MockObjectStore::new();
    store.expect_head().returning(|_, _| {
        Ok(ObjectMeta {
            size: 1,
            etag: None,
            content_type: None,
            last_modified: Some(NOW - Duration::from_hours(48)),
        })
    });
    store.expect_delete().times(1).returning(|_, _| Ok(()));
    let mut db = MockObjectRowStore::new();
    db.expect_find_object_by_key().returning(|_| Ok(None));
    let buckets = MockBucketStore::new();
    let mut a = Applier::new(&store, &db, &buckets, apply_opts(true));
    assert_eq!(
        a.apply(&Finding::Orphan(obj("o/b/x", 1))).await.unwrap(),
        Applied::Fixed(Fix::DeletedOrphan)
    );
}

#[tokio::test]
async fn a_missing_object_soft_deletes_then_purges_its_row() {
    let r = confirmed("o/b/x", 1);
    let mut store = MockObjectStore::new();
    store
        .expect_head()
        .returning(|_, _| Err(Error::NotFound(Resource::Object)));
    let mut db = MockObjectRowStore::new();
    let again = r.clone();
    db.expect_find_object()
        .returning(move |_| Ok(Some(again.clone())));
    let mut seq = mockall::Sequence::new();
    db.expect_mark_object_deleted()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(()));
    db.expect_purge_object()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    let buckets = MockBucketStore::new();
    let mut a = Applier::new(&store, &db, &buckets, apply_opts(false));
    assert_eq!(
        a.apply(&Finding::Missing(r)).await.unwrap(),
        Applied::Fixed(Fix::RemovedRow)
    );
}

#[tokio::test]
async fn an_arrived_object_over_the_limit_is_rejected_like_confirm() {
    let r = row("o/b/x", ObjectStatus::Pending, 1, YOUNG);
    let mut store = MockObjectStore::new();
    store.expect_head().returning(|_, _| {
        Ok(ObjectMeta {
            size: 2 * 1024 * 1024,
            etag: Some("e".into()),
            content_type: Some("image/png".into()),
            last_modified: None,
        })
    });
    store.expect_delete().times(1).returning(|_, _| Ok(()));
    let mut db = MockObjectRowStore::new();
    let again = r.clone();
    db.expect_find_object()
        .returning(move |_| Ok(Some(again.clone())));
    db.expect_purge_object().times(1).returning(|_| Ok(()));
    let mut buckets = MockBucketStore::new();
    let bid = r.bucket_id.clone();
    buckets.expect_find_bucket().times(1).returning(move |_| {
        Ok(Some(Bucket {
            id: bid.clone(),
            name: BucketName::parse("docs").unwrap(),
            organization_id: Some("org".into()),
            read_scope: crate::managed::ReadScope::Org,
            write_scope: crate::managed::WriteScope::Org,
            file_size_limit: None,
            allowed_mime_types: vec![],
            created_at: NOW,
            updated_at: NOW,
        }))
    });
    let mut a = Applier::new(&store, &db, &buckets, apply_opts(false));
    let object = obj("o/b/x", 2 * 1024 * 1024);
    assert_eq!(
        a.apply(&Finding::Arrived { row: r, object }).await.unwrap(),
        Applied::Fixed(Fix::Rejected)
    );
}

// --- the property: the merge equals a plain set difference ---------------------------

fn key_strategy() -> impl Strategy<Value = String> {
    let seg = prop::collection::vec(
        prop::sample::select(vec!['a', 'Z', '~', '-', '0', 'é', '€', '𝄞', '_']),
        1..3,
    )
    .prop_map(|c| c.into_iter().collect::<String>());
    prop::collection::vec(seg, 1..4).prop_map(|s| format!("o/{}", s.join("/")))
}

#[derive(Debug, Clone)]
struct RowSpec {
    pending: bool,
    old: bool,
    deleted: bool,
    size: u64,
}

fn row_spec() -> impl Strategy<Value = RowSpec> {
    (
        any::<bool>(),
        any::<bool>(),
        prop::bool::weighted(0.15),
        0u64..3,
    )
        .prop_map(|(pending, old, deleted, size)| RowSpec {
            pending,
            old,
            deleted,
            size,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn the_merge_equals_a_set_difference(
        objects in prop::collection::btree_map(key_strategy(), 0u64..3, 0..25),
        rows in prop::collection::btree_map(key_strategy(), row_spec(), 0..25),
        list_page in 1u32..5,
        row_page in 1u32..5,
        empty_every in 0usize..4,
        prefix in prop::option::of(prop::sample::select(vec!["o/a", "o/é", "o/Z/", "o/~", "o/𝄞"])),
        start_after in prop::option::of(key_strategy()),
    ) {
        let in_scope = |k: &str| {
            prefix.is_none_or(|p| k.starts_with(p))
                && start_after.as_ref().is_none_or(|s| k > s.as_str())
        };
        let mut expected = Vec::new();
        let all: BTreeSet<&String> = objects.keys().chain(rows.keys()).collect();
        for k in all.into_iter().filter(|k| in_scope(k)) {
            let c = match (objects.get(k), rows.get(k)) {
                (Some(_), None) => Some(Category::Orphan),
                (_, Some(r)) if r.deleted => None,
                (None, Some(r)) if r.pending && r.old => Some(Category::StalePending),
                (None, Some(r)) if r.pending => None,
                (None, Some(_)) => Some(Category::Missing),
                (Some(_), Some(r)) if r.pending => Some(Category::Arrived),
                (Some(size), Some(r)) if *size != r.size => Some(Category::Mismatch),
                _ => None,
            };
            if let Some(c) = c {
                expected.push((k.clone(), c));
            }
        }
        let store = listing(objects.iter().map(|(k, s)| obj(k, *s)).collect(), empty_every);
        let db = table(
            rows.iter()
                .map(|(k, r)| {
                    let status = if r.pending { ObjectStatus::Pending } else { ObjectStatus::Confirmed };
                    let mut row = row(k, status, r.size, if r.old { OLD } else { YOUNG });
                    row.deleted_at = r.deleted.then_some(NOW);
                    row
                })
                .collect(),
        );
        let o = PlanOptions {
            prefix: prefix.map(Into::into),
            start_after: start_after.clone(),
            ..opts(list_page, row_page)
        };
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let got = rt.block_on(plan(&store, &db, o));
        prop_assert_eq!(got, expected);
    }
}
