//! [`MediaStore`] fake and the contract suite every `MediaStore` adapter must pass.

use async_trait::async_trait;
use filegate_core::Error;
use filegate_core::domain::{BucketName, ContentType, MediaId, ObjectKey};
use filegate_core::error::Resource;
use filegate_core::ports::{
    Media, MediaConfirmation, MediaCursor, MediaPage, MediaStatus, MediaStore, MultipartRef,
};
use std::sync::{Mutex, MutexGuard};
use time::OffsetDateTime;

/// The media table in memory, with the SQLite adapter's conflict and ordering semantics.
#[derive(Debug, Default)]
pub struct InMemoryMediaStore {
    rows: Mutex<Vec<Media>>,
}

impl InMemoryMediaStore {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Every row, in insertion order (for assertions in tests).
    #[must_use]
    pub fn rows(&self) -> Vec<Media> {
        self.lock().clone()
    }

    // A panic while holding the lock cannot leave a half-written Vec, so poison is ignored.
    fn lock(&self) -> MutexGuard<'_, Vec<Media>> {
        self.rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn is_after(m: &Media, cursor: &MediaCursor) -> bool {
    (m.created_at, &m.id) < (cursor.created_at, &cursor.id)
}

#[async_trait]
impl MediaStore for InMemoryMediaStore {
    async fn insert(&self, media: &Media) -> Result<(), Error> {
        let mut rows = self.lock();
        if rows.iter().any(|r| r.id == media.id || r.key == media.key) {
            return Err(Error::Conflict { what: "media" });
        }
        rows.push(media.clone());
        Ok(())
    }

    async fn find(&self, id: &MediaId) -> Result<Option<Media>, Error> {
        Ok(self.lock().iter().find(|r| &r.id == id).cloned())
    }

    async fn find_by_key(&self, key: &ObjectKey) -> Result<Option<Media>, Error> {
        Ok(self.lock().iter().find(|r| &r.key == key).cloned())
    }

    async fn list(
        &self,
        organization_id: &str,
        status: Option<MediaStatus>,
        limit: u32,
        after: Option<MediaCursor>,
    ) -> Result<MediaPage, Error> {
        if limit == 0 {
            return Ok(MediaPage::default());
        }
        let mut rows: Vec<Media> = self
            .lock()
            .iter()
            .filter(|r| r.organization_id == organization_id)
            .filter(|r| status.is_none_or(|s| r.status == s))
            .filter(|r| after.as_ref().is_none_or(|c| is_after(r, c)))
            .cloned()
            .collect();
        rows.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        let limit = limit as usize;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = if more {
            rows.last().map(|m| MediaCursor {
                created_at: m.created_at,
                id: m.id.clone(),
            })
        } else {
            None
        };
        Ok(MediaPage { items: rows, next })
    }

    async fn confirm(
        &self,
        id: &MediaId,
        confirmation: &MediaConfirmation,
    ) -> Result<Media, Error> {
        if i64::try_from(confirmation.size).is_err() {
            return Err(Error::invalid("size", "is too large to store"));
        }
        let mut rows = self.lock();
        let row = rows
            .iter_mut()
            .find(|r| &r.id == id)
            .ok_or(Error::NotFound(Resource::Media))?;
        row.status = MediaStatus::Confirmed;
        row.size = Some(confirmation.size);
        row.etag.clone_from(&confirmation.etag);
        row.content_type = confirmation.content_type.clone();
        row.multipart = None;
        Ok(row.clone())
    }

    async fn delete(&self, id: &MediaId) -> Result<(), Error> {
        self.lock().retain(|r| &r.id != id);
        Ok(())
    }

    async fn by_key(&self, after: Option<ObjectKey>, limit: u32) -> Result<Vec<Media>, Error> {
        let mut rows: Vec<Media> = self
            .lock()
            .iter()
            .filter(|r| after.as_ref().is_none_or(|a| r.key.as_str() > a.as_str()))
            .cloned()
            .collect();
        rows.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
        rows.truncate(limit as usize);
        Ok(rows)
    }
}

// ---------------------------------------------------------------------------------------
// Contract suite
// ---------------------------------------------------------------------------------------

/// Ids sharing a random stem (so reruns against a shared store do not collide) and ending
/// in `n`, so their order is known.
struct Ids(String);

impl Ids {
    fn new() -> Self {
        // The random tail: ids are UUIDv7, whose leading digits are the time.
        let id = MediaId::generate();
        let tail = &id.as_str()[id.as_str().len() - 24..];
        Self(format!("{}{tail}", MediaId::PREFIX))
    }

    fn id(&self, n: u32) -> MediaId {
        MediaId::parse(&format!("{}{n:08x}", self.0)).expect("contract: test id is valid")
    }

    /// A unique organization id for this run.
    fn org(&self, name: &str) -> String {
        format!("org-{name}-{}", &self.0[MediaId::PREFIX.len()..])
    }
}

fn at(unix_nanos: i128) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(unix_nanos).expect("contract: valid instant")
}

fn media(id: MediaId, org: &str, created_at: OffsetDateTime) -> Media {
    Media {
        key: ObjectKey::parse(format!("{org}/{id}/file.bin")).expect("contract: valid key"),
        id,
        bucket: BucketName::parse("filegate-contract").expect("contract: valid bucket"),
        organization_id: org.to_owned(),
        uploader_id: "user-1".to_owned(),
        filename: "file.bin".to_owned(),
        content_type: ContentType::parse("application/octet-stream")
            .expect("contract: valid content type"),
        declared_size: Some(1),
        created_at,
        status: MediaStatus::Pending,
        size: None,
        etag: None,
        upload_expires_at: Some(created_at + time::Duration::minutes(10)),
        multipart: None,
    }
}

async fn must_insert(store: &dyn MediaStore, m: &Media, what: &str) {
    if let Err(e) = store.insert(m).await {
        panic!("contract: inserting {what} ({}) failed: {e:?}", m.id);
    }
}

async fn must_find(store: &dyn MediaStore, id: &MediaId) -> Option<Media> {
    store
        .find(id)
        .await
        .unwrap_or_else(|e| panic!("contract: find({id}) failed: {e:?}"))
}

async fn must_list(
    store: &dyn MediaStore,
    org: &str,
    limit: u32,
    after: Option<MediaCursor>,
) -> MediaPage {
    store
        .list(org, None, limit, after.clone())
        .await
        .unwrap_or_else(|e| panic!("contract: list({org}, {limit}, {after:?}) failed: {e:?}"))
}

fn ids_of(items: &[Media]) -> Vec<String> {
    items.iter().map(|m| m.id.to_string()).collect()
}

/// Every `MediaStore` adapter must pass this. Panics with a message naming the broken rule.
///
/// Uses organization ids unique to this run, so the store need not be empty, but it must
/// accept instants with nanosecond precision between 1677 and 2262.
pub async fn media_store_contract(store: &dyn MediaStore) {
    let ids = Ids::new();
    round_trip_and_find(store, &ids).await;
    conflicts(store, &ids).await;
    listing(store, &ids).await;
    lifecycle(store, &ids).await;
    key_order(store, &ids).await;
    multipart(store, &ids).await;
    concurrent_inserts(store, &ids).await;
}

/// A multipart row keeps its upload id and part size; confirmation clears them.
async fn multipart(store: &dyn MediaStore, ids: &Ids) {
    let org = ids.org("mp");
    let mut row = media(ids.id(90), &org, at(1_700_000_000_000_000_000));
    row.declared_size = Some(64 * 1024 * 1024);
    row.multipart = Some(MultipartRef {
        upload_id: "2~VGhlIHVwbG9hZCBpZA==/ü".to_owned(),
        part_size: 8 * 1024 * 1024,
    });
    must_insert(store, &row, "a multipart row").await;
    assert_eq!(
        must_find(store, &row.id).await.as_ref(),
        Some(&row),
        "contract: a multipart row must round-trip its upload id and part size"
    );
    let confirmed = store
        .confirm(
            &row.id,
            &MediaConfirmation {
                size: 64 * 1024 * 1024,
                etag: Some("abc-8".to_owned()),
                content_type: row.content_type.clone(),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("contract: confirm of a multipart row failed: {e:?}"));
    assert_eq!(
        confirmed.multipart, None,
        "contract: confirm must clear the multipart upload"
    );
    assert_eq!(
        must_find(store, &row.id).await.and_then(|m| m.multipart),
        None,
        "contract: confirm must clear the multipart upload in the stored row"
    );
}

async fn round_trip_and_find(store: &dyn MediaStore, ids: &Ids) {
    let org = ids.org("rt");
    let mut full = media(ids.id(1), &org, at(1_700_000_000_123_456_789));
    "user-ü/ñ".clone_into(&mut full.uploader_id);
    "Rapport final (v2) – été.pdf".clone_into(&mut full.filename);
    full.content_type =
        ContentType::parse("text/plain; charset=utf-8").expect("contract: valid content type");
    full.declared_size = Some(i64::MAX.unsigned_abs());
    full.status = MediaStatus::Confirmed;
    full.size = Some(i64::MAX.unsigned_abs());
    full.etag = Some("\"0123abcd\"".to_owned());
    let mut bare = media(ids.id(2), &org, at(1));
    bare.declared_size = None;
    bare.upload_expires_at = None;

    for m in [&full, &bare] {
        must_insert(store, m, "a new row").await;
        let got = must_find(store, &m.id).await;
        assert_eq!(
            got.as_ref(),
            Some(m),
            "contract: find must return the inserted row exactly (every field, created_at to \
             the nanosecond, declared_size None/Some)"
        );
        if let Some(got) = got {
            assert_eq!(
                got.created_at.unix_timestamp_nanos(),
                m.created_at.unix_timestamp_nanos(),
                "contract: created_at must keep its nanoseconds"
            );
        }
    }

    // find is unscoped: the domain applies the firewall, and in reveal mode must tell
    // "another organization's" from "missing". Rows of several organizations must be found.
    let other_org = ids.org("rt-other");
    let foreign = media(ids.id(3), &other_org, at(1_700_000_000_000_000_000));
    must_insert(store, &foreign, "another organization's row").await;
    assert_eq!(
        must_find(store, &foreign.id).await.as_ref(),
        Some(&foreign),
        "contract: find must return a row whatever its organization (no firewall in the store)"
    );
    assert_eq!(
        must_find(store, &full.id).await.map(|m| m.organization_id),
        Some(org),
        "contract: find must return the row's own organization_id"
    );
    assert_eq!(
        must_find(store, &ids.id(0xdead)).await,
        None,
        "contract: find of an unknown id must be Ok(None)"
    );
}

async fn conflicts(store: &dyn MediaStore, ids: &Ids) {
    let org = ids.org("conflict");
    let original = media(ids.id(10), &org, at(1_700_000_000_000_000_000));
    must_insert(store, &original, "the original row").await;

    let mut same_id = media(ids.id(10), &org, at(1_700_000_000_000_000_001));
    same_id.key = ObjectKey::parse(format!("{org}/another-key")).expect("contract: valid key");
    "changed.bin".clone_into(&mut same_id.filename);
    let err = store.insert(&same_id).await;
    assert!(
        matches!(err, Err(Error::Conflict { .. })),
        "contract: inserting a duplicate id must be Err(Conflict), got {err:?}"
    );

    let mut same_key = media(ids.id(11), &org, at(1_700_000_000_000_000_002));
    same_key.key = original.key.clone();
    let err = store.insert(&same_key).await;
    assert!(
        matches!(err, Err(Error::Conflict { .. })),
        "contract: inserting a duplicate key must be Err(Conflict), got {err:?}"
    );

    assert_eq!(
        must_find(store, &original.id).await.as_ref(),
        Some(&original),
        "contract: a rejected duplicate must leave the existing row unchanged"
    );
    assert_eq!(
        must_find(store, &same_key.id).await,
        None,
        "contract: a row rejected for a duplicate key must not be written"
    );
    let page = must_list(store, &org, 10, None).await;
    assert_eq!(
        ids_of(&page.items),
        ids_of(std::slice::from_ref(&original)),
        "contract: after rejected duplicates the organization must hold only the original row"
    );
}

async fn listing(store: &dyn MediaStore, ids: &Ids) {
    let org = ids.org("list");
    let base: i128 = 1_700_000_000_000_000_000;
    // Rows 21..=23 share created_at, so their order rests on the id tiebreak; they are
    // inserted neither in id order nor in reverse. Neighbours differ by one nanosecond.
    let rows = [
        media(ids.id(22), &org, at(base + 1)),
        media(ids.id(20), &org, at(base)),
        media(ids.id(21), &org, at(base + 1)),
        media(ids.id(24), &org, at(base + 2)),
        media(ids.id(23), &org, at(base + 1)),
    ];
    for m in &rows {
        must_insert(store, m, "a listing row").await;
    }
    // Another organization's newer row must never show up.
    let foreign = media(ids.id(99), &ids.org("list-other"), at(base + 10));
    must_insert(store, &foreign, "another organization's row").await;

    let expected: Vec<String> = [24, 23, 22, 21, 20].map(|n| ids.id(n).to_string()).to_vec();

    let all = must_list(store, &org, 100, None).await;
    assert_eq!(
        ids_of(&all.items),
        expected,
        "contract: list must return only this organization's rows, newest first \
         (created_at DESC, then id DESC)"
    );
    assert_eq!(
        all.next, None,
        "contract: next must be None when everything fit"
    );

    let exact = must_list(store, &org, 5, None).await;
    assert_eq!(
        ids_of(&exact.items),
        expected,
        "contract: list with limit == row count"
    );
    assert_eq!(
        exact.next, None,
        "contract: next must be None when the page holds exactly the last row"
    );

    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut after = None;
    loop {
        let page = must_list(store, &org, 2, after.clone()).await;
        assert!(
            page.items.len() <= 2,
            "contract: a page must hold at most `limit` rows, got {}",
            page.items.len()
        );
        sizes.push(page.items.len());
        seen.extend(ids_of(&page.items));
        match page.next {
            Some(next) => {
                let last = page.items.last().unwrap_or_else(|| {
                    panic!("contract: an empty page must not carry a next cursor")
                });
                assert_eq!(
                    (&next.created_at, &next.id),
                    (&last.created_at, &last.id),
                    "contract: next must be the cursor of the page's last row"
                );
                // Through the text form, as the HTTP layer does.
                after = Some(MediaCursor::decode(&next.encode()).expect("contract: cursor"));
            }
            None => break,
        }
        assert!(sizes.len() <= 5, "contract: paging did not end: {sizes:?}");
    }
    assert_eq!(
        seen, expected,
        "contract: paging with limit 2 must return every row exactly once, in order"
    );
    assert_eq!(
        sizes,
        vec![2, 2, 1],
        "contract: paging 5 rows by 2 must give pages of 2, 2, 1 and then next = None"
    );

    let empty = must_list(store, &ids.org("nobody"), 10, None).await;
    assert!(
        empty.items.is_empty() && empty.next.is_none(),
        "contract: listing an organization without rows must be empty with no next, got {empty:?}"
    );
}

async fn lifecycle(store: &dyn MediaStore, ids: &Ids) {
    let org = ids.org("life");
    let base: i128 = 1_700_000_000_000_000_000;
    let pending = media(ids.id(30), &org, at(base));
    let mut confirmed = media(ids.id(31), &org, at(base + 1));
    confirmed.status = MediaStatus::Confirmed;
    confirmed.size = Some(7);
    must_insert(store, &pending, "a pending row").await;
    must_insert(store, &confirmed, "a confirmed row").await;

    let org_ref = org.as_str();
    let by_status = |status: Option<MediaStatus>| async move {
        store
            .list(org_ref, status, 10, None)
            .await
            .unwrap_or_else(|e| panic!("contract: list by {status:?} failed: {e:?}"))
    };
    assert_eq!(
        ids_of(&by_status(Some(MediaStatus::Pending)).await.items),
        ids_of(std::slice::from_ref(&pending)),
        "contract: list with a status must return only rows of that status"
    );
    assert_eq!(
        ids_of(&by_status(Some(MediaStatus::Confirmed)).await.items),
        ids_of(std::slice::from_ref(&confirmed)),
        "contract: list with a status must return only rows of that status"
    );
    assert_eq!(
        by_status(None).await.items.len(),
        2,
        "contract: list without a status must return every row"
    );

    assert_eq!(
        store
            .find_by_key(&pending.key)
            .await
            .ok()
            .flatten()
            .as_ref(),
        Some(&pending),
        "contract: find_by_key must return the row holding the key"
    );
    let unknown = ObjectKey::parse(format!("{org}/nobody")).expect("contract: valid key");
    assert!(
        matches!(store.find_by_key(&unknown).await, Ok(None)),
        "contract: find_by_key of an unknown key must be Ok(None)"
    );

    let confirmation = MediaConfirmation {
        size: 5,
        etag: Some("\"e\"".to_owned()),
        content_type: ContentType::parse("text/plain").expect("contract: valid content type"),
    };
    let got = store
        .confirm(&pending.id, &confirmation)
        .await
        .unwrap_or_else(|e| panic!("contract: confirm failed: {e:?}"));
    let mut want = pending.clone();
    want.status = MediaStatus::Confirmed;
    want.size = Some(5);
    want.etag.clone_from(&confirmation.etag);
    want.content_type = confirmation.content_type.clone();
    assert_eq!(got, want, "contract: confirm must return the updated row");
    assert_eq!(
        must_find(store, &pending.id).await.as_ref(),
        Some(&want),
        "contract: confirm must write status, size, etag and content type, nothing else"
    );
    let err = store.confirm(&ids.id(0xbeef), &confirmation).await;
    assert!(
        matches!(err, Err(Error::NotFound(Resource::Media))),
        "contract: confirming an unknown id must be Err(NotFound(Media)), got {err:?}"
    );
    let huge = MediaConfirmation {
        size: u64::MAX,
        ..confirmation
    };
    let err = store.confirm(&confirmed.id, &huge).await;
    assert!(
        matches!(err, Err(Error::Validation(_))),
        "contract: a size beyond i64 must be Err(Validation), got {err:?}"
    );
    assert_eq!(
        must_find(store, &confirmed.id).await.as_ref(),
        Some(&confirmed),
        "contract: a refused confirm must leave the row unchanged"
    );

    for _ in 0..2 {
        store
            .delete(&confirmed.id)
            .await
            .unwrap_or_else(|e| panic!("contract: delete must be idempotent: {e:?}"));
    }
    assert_eq!(
        must_find(store, &confirmed.id).await,
        None,
        "contract: a deleted row is gone"
    );
}

async fn key_order(store: &dyn MediaStore, ids: &Ids) {
    let org = ids.org("keys");
    // Byte order, not text order: 'Z' < 'a' < 'é' < '€' < '𝄞'.
    let names = ["𝄞", "a", "é", "Z", "€"];
    for (n, name) in (40..).zip(names) {
        let mut m = media(ids.id(n), &org, at(1_700_000_000_000_000_000));
        m.key = ObjectKey::parse(format!("{org}/{name}")).expect("contract: valid key");
        must_insert(store, &m, "a row for the key order").await;
    }
    let mut seen = Vec::new();
    let mut after: Option<ObjectKey> = None;
    for _ in 0..10_000 {
        let page = store
            .by_key(after.clone(), 2)
            .await
            .unwrap_or_else(|e| panic!("contract: by_key failed: {e:?}"));
        assert!(page.len() <= 2, "contract: by_key must honour limit");
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        seen.extend(page.iter().map(|m| m.key.as_str().to_owned()));
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        seen, sorted,
        "contract: by_key must page through every row once, in byte order of keys"
    );
    let ours: Vec<&str> = seen
        .iter()
        .filter_map(|k| k.strip_prefix(&format!("{org}/")))
        .collect();
    assert_eq!(ours, ["Z", "a", "é", "€", "𝄞"], "contract: by_key order");
}

/// Inserts in flight together (an adapter may write them in one batch) keep their own
/// results: a row repeating a stored key, and the second of two rows sharing a new key,
/// fail alone with `Conflict` and write nothing; every other row is written.
async fn concurrent_inserts(store: &dyn MediaStore, ids: &Ids) {
    const ROUNDS: u32 = 4;
    const PER_ROUND: u32 = 16;
    let org = ids.org("concurrent");
    let base: i128 = 1_700_000_000_000_000_000;
    let taken = media(ids.id(0x1000), &org, at(base));
    must_insert(store, &taken, "the row whose key the others repeat").await;
    let mut written = vec![taken.id.clone()];
    for round in 0..ROUNDS {
        let rows: Vec<Media> = (0..PER_ROUND)
            .map(|i| {
                let n = 0x1001 + round * PER_ROUND + i;
                let mut m = media(ids.id(n), &org, at(base + i128::from(n)));
                if i == 5 {
                    m.key = taken.key.clone();
                }
                if i == 10 || i == 11 {
                    m.key = ObjectKey::parse(format!("{org}/shared-{round}"))
                        .expect("contract: valid key");
                }
                m
            })
            .collect();
        let results = futures::future::join_all(rows.iter().map(|m| store.insert(m))).await;
        let mut pair = Vec::new();
        for (i, (m, result)) in (0..PER_ROUND).zip(rows.iter().zip(results)) {
            match i {
                5 => {
                    assert!(
                        matches!(result, Err(Error::Conflict { .. })),
                        "contract: a concurrent insert repeating a stored key must be \
                         Err(Conflict), got {result:?}"
                    );
                    assert_eq!(
                        must_find(store, &m.id).await,
                        None,
                        "contract: a concurrent insert refused for its key must write nothing"
                    );
                }
                10 | 11 => pair.push((m, result)),
                _ => {
                    assert!(
                        result.is_ok(),
                        "contract: an insert in flight beside failing ones must succeed, got \
                         {result:?}"
                    );
                    written.push(m.id.clone());
                }
            }
        }
        let (won, lost): (Vec<_>, Vec<_>) = pair.into_iter().partition(|(_, r)| r.is_ok());
        assert!(
            won.len() == 1 && matches!(lost[..], [(_, Err(Error::Conflict { .. }))]),
            "contract: of two concurrent inserts of one new key exactly one must succeed and \
             the other be Err(Conflict), got {:?}",
            won.iter().chain(&lost).map(|(_, r)| r).collect::<Vec<_>>()
        );
        written.push(won[0].0.id.clone());
        assert_eq!(
            must_find(store, &lost[0].0.id).await,
            None,
            "contract: the losing insert of a shared key must write nothing"
        );
    }
    let page = must_list(store, &org, 1000, None).await;
    let mut listed = ids_of(&page.items);
    listed.sort();
    let mut expected: Vec<String> = written.iter().map(ToString::to_string).collect();
    expected.sort();
    assert_eq!(
        listed, expected,
        "contract: after concurrent inserts the organization must hold exactly the rows \
         whose insert succeeded"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn in_memory_media_store_passes_the_contract() {
        media_store_contract(&InMemoryMediaStore::new()).await;
    }

    #[tokio::test]
    async fn in_memory_media_store_passes_the_contract_twice_on_one_store() {
        let store = InMemoryMediaStore::new();
        media_store_contract(&store).await;
        media_store_contract(&store).await;
    }
}
