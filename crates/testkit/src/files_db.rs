//! [`InMemoryFilesDb`], a fake FILES_DB ([`BucketStore`] + [`ObjectRowStore`]), and
//! [`files_db_contract`], the suite every FILES_DB adapter (and the fake) must pass.

use async_trait::async_trait;
use filegate_core::Error;
use filegate_core::domain::{BucketName, ByteSize, ContentType, ObjectKey};
use filegate_core::error::Resource;
use filegate_core::managed::{
    Bucket, BucketId, BucketStore, MimePattern, ObjectConfirmation, ObjectId, ObjectPath,
    ObjectQuery, ObjectRow, ObjectRowPage, ObjectRowStore, ObjectStatus, ReadScope, WriteScope,
};
use filegate_core::ports::MultipartRef;
use std::sync::{Mutex, MutexGuard, PoisonError};
use time::OffsetDateTime;

#[derive(Debug, Default)]
struct Tables {
    buckets: Vec<Bucket>,
    objects: Vec<ObjectRow>,
}

/// FILES_DB in memory, with the SQLite adapter's conflict, ordering and size semantics.
#[derive(Debug, Default)]
pub struct InMemoryFilesDb {
    tables: Mutex<Tables>,
}

impl InMemoryFilesDb {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Every bucket, in insertion order (for assertions).
    #[must_use]
    pub fn buckets(&self) -> Vec<Bucket> {
        self.lock().buckets.clone()
    }

    /// Every object row, soft-deleted and pending included, in insertion order.
    #[must_use]
    pub fn objects(&self) -> Vec<ObjectRow> {
        self.lock().objects.clone()
    }

    // A panic under the lock cannot leave a half-written Vec, so poison is ignored.
    fn lock(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// SQLite stores sizes as INTEGER (i64).
fn check_size(size: u64) -> Result<(), Error> {
    if i64::try_from(size).is_ok() {
        Ok(())
    } else {
        Err(Error::invalid(
            "size",
            format!("must be at most {} bytes", i64::MAX),
        ))
    }
}

#[async_trait]
impl BucketStore for InMemoryFilesDb {
    async fn insert_bucket(&self, bucket: &Bucket) -> Result<(), Error> {
        let mut t = self.lock();
        if t.buckets.iter().any(|b| {
            b.id == bucket.id
                || (b.organization_id == bucket.organization_id && b.name == bucket.name)
        }) {
            return Err(Error::BucketExists);
        }
        t.buckets.push(bucket.clone());
        Ok(())
    }

    async fn find_bucket(&self, id: &BucketId) -> Result<Option<Bucket>, Error> {
        Ok(self.lock().buckets.iter().find(|b| &b.id == id).cloned())
    }

    async fn find_bucket_by_name(
        &self,
        organization_id: Option<String>,
        name: &BucketName,
    ) -> Result<Option<Bucket>, Error> {
        Ok(self
            .lock()
            .buckets
            .iter()
            .find(|b| b.organization_id == organization_id && &b.name == name)
            .cloned())
    }

    async fn list_buckets(&self, organization_id: Option<String>) -> Result<Vec<Bucket>, Error> {
        let mut out: Vec<Bucket> = self
            .lock()
            .buckets
            .iter()
            .filter(|b| b.organization_id.is_none() || b.organization_id == organization_id)
            .cloned()
            .collect();
        out.sort_by(|a, b| {
            (a.name.as_str(), a.organization_id.is_none())
                .cmp(&(b.name.as_str(), b.organization_id.is_none()))
        });
        Ok(out)
    }

    async fn update_bucket(&self, bucket: &Bucket) -> Result<(), Error> {
        let mut t = self.lock();
        let stored = t
            .buckets
            .iter_mut()
            .find(|b| b.id == bucket.id)
            .ok_or(Error::NotFound(Resource::Bucket))?;
        stored.read_scope = bucket.read_scope;
        stored.write_scope = bucket.write_scope.clone();
        stored.file_size_limit = bucket.file_size_limit;
        stored
            .allowed_mime_types
            .clone_from(&bucket.allowed_mime_types);
        stored.updated_at = bucket.updated_at;
        Ok(())
    }

    async fn delete_bucket(&self, id: &BucketId) -> Result<(), Error> {
        let mut t = self.lock();
        if t.objects.iter().any(|o| &o.bucket_id == id) {
            return Err(Error::BucketNotEmpty);
        }
        t.buckets.retain(|b| &b.id != id);
        Ok(())
    }
}

#[async_trait]
impl ObjectRowStore for InMemoryFilesDb {
    async fn insert_object(&self, row: &ObjectRow) -> Result<(), Error> {
        check_size(row.size)?;
        let mut t = self.lock();
        if t.objects.iter().any(|o| o.id == row.id || o.key == row.key) {
            return Err(Error::ObjectExists);
        }
        if !t.buckets.iter().any(|b| b.id == row.bucket_id) {
            return Err(Error::NotFound(Resource::Bucket));
        }
        t.objects.push(row.clone());
        Ok(())
    }

    async fn find_object(&self, id: &ObjectId) -> Result<Option<ObjectRow>, Error> {
        Ok(self.lock().objects.iter().find(|o| &o.id == id).cloned())
    }

    async fn find_object_by_key(&self, key: &ObjectKey) -> Result<Option<ObjectRow>, Error> {
        Ok(self.lock().objects.iter().find(|o| &o.key == key).cloned())
    }

    async fn confirm_object(
        &self,
        id: &ObjectId,
        c: &ObjectConfirmation,
    ) -> Result<ObjectRow, Error> {
        check_size(c.size)?;
        let mut t = self.lock();
        let row = t
            .objects
            .iter_mut()
            .find(|o| &o.id == id && o.deleted_at.is_none())
            .ok_or(Error::NotFound(Resource::Object))?;
        row.size = c.size;
        row.etag.clone_from(&c.etag);
        row.content_type = c.content_type.clone();
        row.owner_id.clone_from(&c.owner_id);
        row.status = ObjectStatus::Confirmed;
        row.updated_at = c.at;
        row.multipart = None;
        Ok(row.clone())
    }

    async fn mark_object_deleted(&self, id: &ObjectId, at: OffsetDateTime) -> Result<(), Error> {
        if let Some(row) = self.lock().objects.iter_mut().find(|o| &o.id == id) {
            row.deleted_at.get_or_insert(at);
        }
        Ok(())
    }

    async fn purge_object(&self, id: &ObjectId) -> Result<(), Error> {
        self.lock().objects.retain(|o| &o.id != id);
        Ok(())
    }

    async fn list_objects(&self, q: &ObjectQuery) -> Result<ObjectRowPage, Error> {
        if q.limit == 0 {
            return Ok(ObjectRowPage::default());
        }
        let mut rows: Vec<ObjectRow> = self
            .lock()
            .objects
            .iter()
            .filter(|o| o.bucket_id == q.bucket_id && o.segment == q.segment && o.is_live())
            .filter(|o| {
                q.prefix
                    .as_deref()
                    .is_none_or(|p| o.path.as_str().starts_with(p))
            })
            .filter(|o| q.owner_id.as_ref().is_none_or(|w| &o.owner_id == w))
            .filter(|o| q.after.as_deref().is_none_or(|a| o.path.as_str() > a))
            .cloned()
            .collect();
        rows.sort_by(|a, b| a.path.as_str().cmp(b.path.as_str()));
        let limit = q.limit as usize;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = if more {
            rows.last().map(|r| r.path.as_str().to_owned())
        } else {
            None
        };
        Ok(ObjectRowPage { items: rows, next })
    }

    async fn objects_in_bucket(
        &self,
        bucket_id: &BucketId,
        limit: u32,
    ) -> Result<Vec<ObjectRow>, Error> {
        let mut rows: Vec<ObjectRow> = self
            .lock()
            .objects
            .iter()
            .filter(|o| &o.bucket_id == bucket_id)
            .cloned()
            .collect();
        rows.sort_by(|a, b| (&a.segment, a.path.as_str()).cmp(&(&b.segment, b.path.as_str())));
        rows.truncate(limit as usize);
        Ok(rows)
    }

    async fn objects_by_key(
        &self,
        after: Option<ObjectKey>,
        limit: u32,
    ) -> Result<Vec<ObjectRow>, Error> {
        let mut rows: Vec<ObjectRow> = self
            .lock()
            .objects
            .iter()
            .filter(|o| after.as_ref().is_none_or(|a| o.key.as_str() > a.as_str()))
            .cloned()
            .collect();
        rows.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
        rows.truncate(limit as usize);
        Ok(rows)
    }

    async fn pending_objects(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<ObjectRow>, Error> {
        let mut rows: Vec<ObjectRow> = self
            .lock()
            .objects
            .iter()
            .filter(|o| o.status == ObjectStatus::Pending && o.created_at < before)
            .cloned()
            .collect();
        rows.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        rows.truncate(limit as usize);
        Ok(rows)
    }
}

// ---------------------------------------------------------------------------------------
// Contract suite
// ---------------------------------------------------------------------------------------

/// Names unique to one run, so the suite can run twice against one database.
struct Run(String);

impl Run {
    fn new() -> Self {
        // The tail: ids are UUIDv7, whose leading digits are the time (and a counter).
        let id = BucketId::generate();
        Self(id.as_str()[id.as_str().len() - 20..].to_owned())
    }

    fn org(&self, name: &str) -> String {
        format!("org-{name}-{}", self.0)
    }

    fn bucket_name(&self, name: &str) -> BucketName {
        BucketName::parse(format!("{name}-{}", self.0)).expect("contract: valid bucket name")
    }

    fn segment(&self, name: &str) -> String {
        format!("seg-{name}-{}", self.0)
    }
}

fn at(unix_nanos: i128) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(unix_nanos).expect("contract: valid instant")
}

fn ct(raw: &str) -> ContentType {
    ContentType::parse(raw).expect("contract: valid content type")
}

fn bucket(name: BucketName, org: Option<&str>) -> Bucket {
    Bucket {
        id: BucketId::generate(),
        name,
        organization_id: org.map(str::to_owned),
        read_scope: ReadScope::Org,
        write_scope: WriteScope::Org,
        file_size_limit: None,
        allowed_mime_types: vec![],
        created_at: at(1_700_000_000_000_000_001),
        updated_at: at(1_700_000_000_000_000_002),
    }
}

fn object(b: &Bucket, segment: &str, path: &str, status: ObjectStatus) -> ObjectRow {
    let path = ObjectPath::parse(path).expect("contract: valid path");
    ObjectRow {
        id: ObjectId::generate(),
        bucket_id: b.id.clone(),
        organization_id: b.organization_id.clone(),
        owner_id: "user-1".to_owned(),
        segment: segment.to_owned(),
        key: ObjectKey::parse(format!("{segment}/{}/{path}", b.name)).expect("contract: valid key"),
        path,
        content_type: ct("application/octet-stream"),
        size: 3,
        etag: None,
        status,
        created_at: at(1_700_000_000_000_000_000),
        updated_at: at(1_700_000_000_000_000_000),
        deleted_at: None,
        multipart: None,
    }
}

fn must<T>(what: &str, r: Result<T, Error>) -> T {
    r.unwrap_or_else(|e| panic!("contract: {what} failed: {e:?}"))
}

fn paths(rows: &[ObjectRow]) -> Vec<&str> {
    rows.iter().map(|r| r.path.as_str()).collect()
}

/// Every FILES_DB adapter must pass this. Panics with a message naming the broken rule.
///
/// Uses names unique to this run, so the database need not be empty; it must keep
/// instants to the nanosecond between 1677 and 2262.
pub async fn files_db_contract<D>(db: &D)
where
    D: BucketStore + ObjectRowStore + ?Sized,
{
    let run = Run::new();
    buckets_round_trip(db, &run).await;
    bucket_names_are_unique_per_scope(db, &run).await;
    bucket_listing(db, &run).await;
    bucket_updates(db, &run).await;
    object_rows(db, &run).await;
    rows_by_many_keys(db, &run).await;
    object_listing(db, &run).await;
    bucket_deletion(db, &run).await;
    reconcile_scans(db, &run).await;
    multipart_rows(db, &run).await;
}

/// A multipart row keeps its upload id and part size; confirmation clears them.
async fn multipart_rows<D: BucketStore + ObjectRowStore + ?Sized>(db: &D, run: &Run) {
    let b = bucket(run.bucket_name("mp"), Some(&run.org("mp")));
    must("insert_bucket", db.insert_bucket(&b).await);
    let mut row = object(&b, &run.segment("mp"), "video.mp4", ObjectStatus::Pending);
    row.multipart = Some(MultipartRef {
        upload_id: "2~VGhlIHVwbG9hZCBpZA==/ü".to_owned(),
        part_size: 5 * 1024 * 1024,
    });
    must("insert_object", db.insert_object(&row).await);
    assert_eq!(
        must("find_object", db.find_object(&row.id).await).as_ref(),
        Some(&row),
        "contract: a multipart row must round-trip its upload id and part size"
    );
    let confirmed = must(
        "confirm_object",
        db.confirm_object(
            &row.id,
            &ObjectConfirmation {
                size: 3,
                etag: Some("abc-1".to_owned()),
                content_type: row.content_type.clone(),
                owner_id: row.owner_id.clone(),
                at: at(1_700_000_000_000_000_009),
            },
        )
        .await,
    );
    assert_eq!(
        confirmed.multipart, None,
        "contract: confirm_object must clear the multipart upload"
    );
    let stored = must("find_object", db.find_object(&row.id).await);
    assert_eq!(
        stored.and_then(|r| r.multipart),
        None,
        "contract: confirm_object must clear the multipart upload in the stored row"
    );
    must("purge_object", db.purge_object(&row.id).await);
    must("delete_bucket", db.delete_bucket(&b.id).await);
}

async fn buckets_round_trip<D: BucketStore + ObjectRowStore + ?Sized>(db: &D, run: &Run) {
    let org = run.org("rt");
    let mut full = bucket(run.bucket_name("rt"), Some(&org));
    full.read_scope = ReadScope::Public;
    full.write_scope = WriteScope::parse("admin,owner+").expect("contract: scope");
    full.file_size_limit = Some(ByteSize(i64::MAX.unsigned_abs()));
    full.allowed_mime_types = vec![
        MimePattern::parse("image/*").expect("contract: mime"),
        MimePattern::parse("application/pdf").expect("contract: mime"),
        MimePattern::parse("*/*").expect("contract: mime"),
    ];
    full.created_at = at(1_700_000_000_123_456_789);
    let mut project = bucket(run.bucket_name("rt"), None);
    project.write_scope = WriteScope::User;
    project.read_scope = ReadScope::User;

    for b in [&full, &project] {
        must("insert_bucket", db.insert_bucket(b).await);
        let got = must("find_bucket", db.find_bucket(&b.id).await);
        assert_eq!(
            got.as_ref(),
            Some(b),
            "contract: find_bucket must return the inserted bucket exactly (scopes, limit, \
             MIME list in order, instants to the nanosecond)"
        );
    }
    let by_org = must(
        "find_bucket_by_name",
        db.find_bucket_by_name(Some(org.clone()), &full.name).await,
    );
    assert_eq!(
        by_org.map(|b| b.id),
        Some(full.id.clone()),
        "contract: find_bucket_by_name(org) must find the organization's bucket, not the \
         project-wide one of the same name"
    );
    let by_project = must(
        "find_bucket_by_name",
        db.find_bucket_by_name(None, &full.name).await,
    );
    assert_eq!(
        by_project.map(|b| b.id),
        Some(project.id.clone()),
        "contract: find_bucket_by_name(None) must find the project-wide bucket only"
    );
    let elsewhere = must(
        "find_bucket_by_name",
        db.find_bucket_by_name(Some(run.org("rt-other")), &full.name)
            .await,
    );
    assert_eq!(
        elsewhere, None,
        "contract: find_bucket_by_name must not fall back to the project-wide bucket"
    );
    assert_eq!(
        must("find_bucket", db.find_bucket(&BucketId::generate()).await),
        None,
        "contract: an unknown bucket id is Ok(None)"
    );
}

async fn bucket_names_are_unique_per_scope<D: BucketStore + ObjectRowStore + ?Sized>(
    db: &D,
    run: &Run,
) {
    let org = run.org("uniq");
    let name = run.bucket_name("uniq");
    let first = bucket(name.clone(), Some(&org));
    must("insert_bucket", db.insert_bucket(&first).await);
    let dup = bucket(name.clone(), Some(&org));
    let err = db.insert_bucket(&dup).await;
    assert!(
        matches!(err, Err(Error::BucketExists)),
        "contract: a second bucket of the same name in one organization must be \
         Err(BucketExists), got {err:?}"
    );
    let mut same_id = bucket(run.bucket_name("uniq-id"), Some(&org));
    same_id.id = first.id.clone();
    let err = db.insert_bucket(&same_id).await;
    assert!(
        matches!(err, Err(Error::BucketExists)),
        "contract: a duplicate bucket id must be Err(BucketExists), got {err:?}"
    );
    must(
        "insert_bucket (same name, other organization)",
        db.insert_bucket(&bucket(name.clone(), Some(&run.org("uniq-b"))))
            .await,
    );
    must(
        "insert_bucket (same name, project-wide)",
        db.insert_bucket(&bucket(name.clone(), None)).await,
    );
    let err = db.insert_bucket(&bucket(name.clone(), None)).await;
    assert!(
        matches!(err, Err(Error::BucketExists)),
        "contract: project-wide names must be unique among project-wide buckets, got {err:?}"
    );
    assert_eq!(
        must("find_bucket", db.find_bucket(&first.id).await),
        Some(first),
        "contract: a rejected duplicate must leave the existing bucket unchanged"
    );
}

async fn bucket_listing<D: BucketStore + ObjectRowStore + ?Sized>(db: &D, run: &Run) {
    let org = run.org("list");
    let shared = run.bucket_name("b-shared");
    let mine_a = bucket(run.bucket_name("a-mine"), Some(&org));
    let mine_shared = bucket(shared.clone(), Some(&org));
    let project_shared = bucket(shared, None);
    let project_c = bucket(run.bucket_name("c-project"), None);
    let foreign = bucket(run.bucket_name("a-foreign"), Some(&run.org("list-other")));
    for b in [&project_c, &foreign, &project_shared, &mine_shared, &mine_a] {
        must("insert_bucket", db.insert_bucket(b).await);
    }
    let ours = |list: Vec<Bucket>| -> Vec<BucketId> {
        list.into_iter()
            .filter(|b| b.name.as_str().ends_with(&run.0))
            .map(|b| b.id)
            .collect()
    };
    let listed = ours(must(
        "list_buckets",
        db.list_buckets(Some(org.clone())).await,
    ));
    let want: Vec<BucketId> = [&mine_a, &mine_shared, &project_shared, &project_c]
        .iter()
        .map(|b| b.id.clone())
        .collect();
    let listed: Vec<BucketId> = listed
        .into_iter()
        .filter(|id| want.contains(id) || *id == foreign.id)
        .collect();
    assert_eq!(
        listed, want,
        "contract: list_buckets(org) must give the organization's and the project-wide \
         buckets, by name, the organization's first on a tie, and no other organization's"
    );
    let anonymous = ours(must("list_buckets", db.list_buckets(None).await));
    assert!(
        anonymous.contains(&project_c.id)
            && anonymous.contains(&project_shared.id)
            && !anonymous.contains(&mine_a.id)
            && !anonymous.contains(&foreign.id),
        "contract: list_buckets(None) must give project-wide buckets only"
    );
}

async fn bucket_updates<D: BucketStore + ObjectRowStore + ?Sized>(db: &D, run: &Run) {
    let org = run.org("upd");
    let original = bucket(run.bucket_name("upd"), Some(&org));
    must("insert_bucket", db.insert_bucket(&original).await);
    let mut changed = original.clone();
    changed.read_scope = ReadScope::Authenticated;
    changed.write_scope = WriteScope::parse("member+").expect("contract: scope");
    changed.file_size_limit = Some(ByteSize(42));
    changed.allowed_mime_types = vec![MimePattern::parse("text/*").expect("contract: mime")];
    changed.updated_at = at(1_800_000_000_000_000_007);
    // Immutable fields: the store must ignore these changes.
    let mut attempt = changed.clone();
    attempt.name = run.bucket_name("upd-renamed");
    attempt.organization_id = Some(run.org("upd-thief"));
    attempt.created_at = at(5);
    must("update_bucket", db.update_bucket(&attempt).await);
    assert_eq!(
        must("find_bucket", db.find_bucket(&original.id).await),
        Some(changed.clone()),
        "contract: update_bucket must write scopes, limit, MIME list and updated_at, and \
         never the name, organization or created_at"
    );
    changed.file_size_limit = None;
    changed.allowed_mime_types = vec![];
    must("update_bucket", db.update_bucket(&changed).await);
    assert_eq!(
        must("find_bucket", db.find_bucket(&original.id).await),
        Some(changed),
        "contract: update_bucket must be able to clear the limit and the MIME list"
    );
    let err = db
        .update_bucket(&bucket(run.bucket_name("upd-missing"), None))
        .await;
    assert!(
        matches!(err, Err(Error::NotFound(Resource::Bucket))),
        "contract: updating a missing bucket must be Err(NotFound(Bucket)), got {err:?}"
    );
}

async fn object_rows<D: BucketStore + ObjectRowStore + ?Sized>(db: &D, run: &Run) {
    let b = bucket(run.bucket_name("obj"), Some(&run.org("obj")));
    must("insert_bucket", db.insert_bucket(&b).await);
    let seg = run.segment("obj");
    let mut pending = object(&b, &seg, "dir/Été rapport (v2).pdf", ObjectStatus::Pending);
    pending.organization_id = None;
    "user-ü".clone_into(&mut pending.owner_id);
    pending.content_type = ct("text/plain; charset=utf-8");
    pending.size = i64::MAX.unsigned_abs();
    pending.created_at = at(1_700_000_000_123_456_789);
    must("insert_object", db.insert_object(&pending).await);
    for got in [
        must("find_object", db.find_object(&pending.id).await),
        must(
            "find_object_by_key",
            db.find_object_by_key(&pending.key).await,
        ),
    ] {
        assert_eq!(
            got.as_ref(),
            Some(&pending),
            "contract: find_object / find_object_by_key must return the inserted row exactly"
        );
    }

    let mut same_key = object(
        &b,
        &seg,
        "dir/Été rapport (v2).pdf",
        ObjectStatus::Confirmed,
    );
    same_key.key = pending.key.clone();
    let err = db.insert_object(&same_key).await;
    assert!(
        matches!(err, Err(Error::ObjectExists)),
        "contract: a duplicate key (even over a pending row) must be Err(ObjectExists), got {err:?}"
    );
    let mut same_id = object(&b, &seg, "other.bin", ObjectStatus::Pending);
    same_id.id = pending.id.clone();
    let err = db.insert_object(&same_id).await;
    assert!(
        matches!(err, Err(Error::ObjectExists)),
        "contract: a duplicate object id must be Err(ObjectExists), got {err:?}"
    );
    let orphan = object(
        &bucket(run.bucket_name("obj-missing"), None),
        &seg,
        "x",
        ObjectStatus::Pending,
    );
    let err = db.insert_object(&orphan).await;
    assert!(
        matches!(err, Err(Error::NotFound(Resource::Bucket))),
        "contract: a row of a missing bucket must be Err(NotFound(Bucket)), got {err:?}"
    );
    let mut huge = object(&b, &seg, "huge.bin", ObjectStatus::Pending);
    huge.size = u64::MAX;
    let err = db.insert_object(&huge).await;
    assert!(
        matches!(err, Err(Error::Validation(ref f)) if f[0].field == "size"),
        "contract: a size beyond i64 must be Err(Validation) on 'size', got {err:?}"
    );
    assert_eq!(
        must("find_object", db.find_object(&huge.id).await),
        None,
        "contract: rejected rows must not be written"
    );

    let confirmation = ObjectConfirmation {
        size: 12,
        etag: Some("abc123".to_owned()),
        content_type: ct("application/pdf"),
        owner_id: "user-2".to_owned(),
        at: at(1_700_000_001_000_000_009),
    };
    let confirmed = must(
        "confirm_object",
        db.confirm_object(&pending.id, &confirmation).await,
    );
    let mut want = pending.clone();
    want.size = 12;
    want.etag = Some("abc123".to_owned());
    want.content_type = ct("application/pdf");
    "user-2".clone_into(&mut want.owner_id);
    want.status = ObjectStatus::Confirmed;
    want.updated_at = confirmation.at;
    assert_eq!(
        confirmed, want,
        "contract: confirm_object must write size, etag, content type, owner, updated_at and \
         status, and keep everything else"
    );
    assert_eq!(
        must("find_object", db.find_object(&pending.id).await),
        Some(want.clone()),
        "contract: confirm_object must persist what it returns"
    );
    let err = db
        .confirm_object(&ObjectId::generate(), &confirmation)
        .await;
    assert!(
        matches!(err, Err(Error::NotFound(Resource::Object))),
        "contract: confirming a missing row must be Err(NotFound(Object)), got {err:?}"
    );

    let first = at(1_700_000_002_000_000_000);
    must(
        "mark_object_deleted",
        db.mark_object_deleted(&pending.id, first).await,
    );
    must(
        "mark_object_deleted again",
        db.mark_object_deleted(&pending.id, at(1_700_000_003_000_000_000))
            .await,
    );
    let deleted = must(
        "find_object_by_key",
        db.find_object_by_key(&pending.key).await,
    );
    assert_eq!(
        deleted.as_ref().and_then(|r| r.deleted_at),
        Some(first),
        "contract: a soft-deleted row is still found by key, with the first deleted_at"
    );
    let err = db.confirm_object(&pending.id, &confirmation).await;
    assert!(
        matches!(err, Err(Error::NotFound(Resource::Object))),
        "contract: confirming a soft-deleted row must be Err(NotFound(Object)), got {err:?}"
    );
    must(
        "mark_object_deleted (missing)",
        db.mark_object_deleted(&ObjectId::generate(), first).await,
    );
    must("purge_object", db.purge_object(&pending.id).await);
    must("purge_object again", db.purge_object(&pending.id).await);
    assert_eq!(
        must(
            "find_object_by_key",
            db.find_object_by_key(&pending.key).await
        ),
        None,
        "contract: a purged row is gone"
    );
    must(
        "insert_object (key reused after purge)",
        db.insert_object(&same_key).await,
    );
}

/// `find_objects_by_keys` answers exactly the rows at the keys asked, whatever their
/// status, and nothing for a key without a row.
async fn rows_by_many_keys<D: BucketStore + ObjectRowStore + ?Sized>(db: &D, run: &Run) {
    let b = bucket(run.bucket_name("many"), Some(&run.org("many")));
    must("insert_bucket", db.insert_bucket(&b).await);
    let seg = run.segment("many");
    let pending = object(&b, &seg, "a.txt", ObjectStatus::Pending);
    let confirmed = object(&b, &seg, "b.txt", ObjectStatus::Confirmed);
    let deleted = object(&b, &seg, "c.txt", ObjectStatus::Confirmed);
    let unasked = object(&b, &seg, "d.txt", ObjectStatus::Confirmed);
    for r in [&pending, &confirmed, &deleted, &unasked] {
        must("insert_object", db.insert_object(r).await);
    }
    must(
        "mark_object_deleted",
        db.mark_object_deleted(&deleted.id, at(1_700_000_004_000_000_000))
            .await,
    );
    let deleted = must("find_object", db.find_object(&deleted.id).await)
        .expect("contract: a soft-deleted row is still found");
    let missing = object(&b, &seg, "missing.txt", ObjectStatus::Pending).key;
    let mut got = must(
        "find_objects_by_keys",
        db.find_objects_by_keys(&[
            missing.clone(),
            deleted.key.clone(),
            pending.key.clone(),
            confirmed.key.clone(),
        ])
        .await,
    );
    got.sort_by(|x, y| x.key.cmp(&y.key));
    assert_eq!(
        got,
        vec![pending.clone(), confirmed.clone(), deleted.clone()],
        "contract: find_objects_by_keys must return the rows at the keys asked, of any status, and no other"
    );
    assert_eq!(
        must(
            "find_objects_by_keys",
            db.find_objects_by_keys(&[missing]).await
        ),
        vec![],
        "contract: a key without a row has none"
    );
    assert_eq!(
        must("find_objects_by_keys", db.find_objects_by_keys(&[]).await),
        vec![],
        "contract: no keys, no rows"
    );
    for r in [&pending, &confirmed, &deleted, &unasked] {
        must("purge_object", db.purge_object(&r.id).await);
    }
    must("delete_bucket", db.delete_bucket(&b.id).await);
}

async fn object_listing<D: BucketStore + ObjectRowStore + ?Sized>(db: &D, run: &Run) {
    let b = bucket(run.bucket_name("lst"), Some(&run.org("lst")));
    let other_bucket = bucket(run.bucket_name("lst-other"), Some(&run.org("lst")));
    for x in [&b, &other_bucket] {
        must("insert_bucket", db.insert_bucket(x).await);
    }
    let seg = run.segment("lst");
    // Byte order: 'B' < '_' < 'a' < 'é' < '\u{10FFFF}'. Inserted out of order.
    let live = [
        "a/é.txt",
        "a/B.txt",
        "a/_.txt",
        "a\u{10FFFF}/x",
        "a\u{10FFFF}",
        "a/a.txt",
        "b.txt",
    ];
    for p in live {
        let mut row = object(&b, &seg, p, ObjectStatus::Confirmed);
        if p == "b.txt" {
            "user-2".clone_into(&mut row.owner_id);
        }
        must("insert_object", db.insert_object(&row).await);
    }
    let hidden_pending = object(&b, &seg, "a/pending.txt", ObjectStatus::Pending);
    let hidden_deleted = object(&b, &seg, "a/deleted.txt", ObjectStatus::Confirmed);
    let other_segment = object(
        &b,
        &run.segment("lst-2"),
        "a/other.txt",
        ObjectStatus::Confirmed,
    );
    let other_bucket_row = object(&other_bucket, &seg, "a/other.txt", ObjectStatus::Confirmed);
    for row in [
        &hidden_pending,
        &hidden_deleted,
        &other_segment,
        &other_bucket_row,
    ] {
        must("insert_object", db.insert_object(row).await);
    }
    must(
        "mark_object_deleted",
        db.mark_object_deleted(&hidden_deleted.id, at(1_700_000_000_000_000_000))
            .await,
    );

    let query =
        |prefix: Option<&str>, after: Option<&str>, owner: Option<&str>, limit| ObjectQuery {
            bucket_id: b.id.clone(),
            segment: seg.clone(),
            prefix: prefix.map(str::to_owned),
            owner_id: owner.map(str::to_owned),
            after: after.map(str::to_owned),
            limit,
        };
    let all = must(
        "list_objects",
        db.list_objects(&query(None, None, None, 100)).await,
    );
    let expected = [
        "a/B.txt",
        "a/_.txt",
        "a/a.txt",
        "a/é.txt",
        "a\u{10FFFF}",
        "a\u{10FFFF}/x",
        "b.txt",
    ];
    assert_eq!(
        paths(&all.items),
        expected,
        "contract: list_objects must give confirmed, not deleted rows of one bucket and \
         segment, by path in byte order"
    );
    assert_eq!(
        all.next, None,
        "contract: next must be None when everything fit"
    );

    let prefixed = must(
        "list_objects",
        db.list_objects(&query(Some("a/"), None, None, 100)).await,
    );
    assert_eq!(
        paths(&prefixed.items),
        ["a/B.txt", "a/_.txt", "a/a.txt", "a/é.txt"],
        "contract: prefix 'a/' must give exactly the paths starting with it"
    );
    let high = must(
        "list_objects",
        db.list_objects(&query(Some("a\u{10FFFF}"), None, None, 100))
            .await,
    );
    assert_eq!(
        paths(&high.items),
        ["a\u{10FFFF}", "a\u{10FFFF}/x"],
        "contract: a prefix ending in U+10FFFF must still match its paths"
    );
    let partial = must(
        "list_objects",
        db.list_objects(&query(Some("a/_"), None, None, 100)).await,
    );
    assert_eq!(
        paths(&partial.items),
        ["a/_.txt"],
        "contract: the prefix is a plain string prefix ('_' and '%' are not wildcards)"
    );
    let owned = must(
        "list_objects",
        db.list_objects(&query(None, None, Some("user-2"), 100))
            .await,
    );
    assert_eq!(
        paths(&owned.items),
        ["b.txt"],
        "contract: owner_id must restrict the listing to that uploader's rows"
    );

    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = must(
            "list_objects",
            db.list_objects(&query(None, after.as_deref(), None, 2))
                .await,
        );
        sizes.push(page.items.len());
        seen.extend(paths(&page.items).into_iter().map(str::to_owned));
        match page.next {
            Some(next) => {
                assert_eq!(
                    Some(next.as_str()),
                    page.items.last().map(|r| r.path.as_str()),
                    "contract: next must be the page's last path"
                );
                after = Some(next);
            }
            None => break,
        }
        assert!(sizes.len() <= 7, "contract: paging did not end: {sizes:?}");
    }
    assert_eq!(
        seen, expected,
        "contract: paging by 2 must give every row once, in order"
    );
    assert_eq!(
        sizes,
        [2, 2, 2, 1],
        "contract: 7 rows by 2 must page as 2, 2, 2, 1"
    );
    let empty = must(
        "list_objects",
        db.list_objects(&query(Some("zzz"), None, None, 10)).await,
    );
    assert!(
        empty.items.is_empty() && empty.next.is_none(),
        "contract: an empty listing has no next, got {empty:?}"
    );
}

async fn bucket_deletion<D: BucketStore + ObjectRowStore + ?Sized>(db: &D, run: &Run) {
    let b = bucket(run.bucket_name("del"), Some(&run.org("del")));
    must("insert_bucket", db.insert_bucket(&b).await);
    let seg = run.segment("del");
    let rows = [
        object(&b, &seg, "z.bin", ObjectStatus::Confirmed),
        object(&b, &seg, "a.bin", ObjectStatus::Pending),
        object(&b, &seg, "m.bin", ObjectStatus::Confirmed),
    ];
    for r in &rows {
        must("insert_object", db.insert_object(r).await);
    }
    must(
        "mark_object_deleted",
        db.mark_object_deleted(&rows[2].id, at(1)).await,
    );
    let first_two = must("objects_in_bucket", db.objects_in_bucket(&b.id, 2).await);
    assert_eq!(
        paths(&first_two),
        ["a.bin", "m.bin"],
        "contract: objects_in_bucket gives rows of any status, soft-deleted included, by \
         segment and path, at most limit"
    );
    for r in &rows[..2] {
        must("purge_object", db.purge_object(&r.id).await);
        let err = db.delete_bucket(&b.id).await;
        assert!(
            matches!(err, Err(Error::BucketNotEmpty)),
            "contract: deleting a bucket with rows (even only a soft-deleted one) must be \
             Err(BucketNotEmpty), got {err:?}"
        );
    }
    assert!(
        must("find_bucket", db.find_bucket(&b.id).await).is_some(),
        "contract: a refused bucket delete deletes nothing"
    );
    must("purge_object", db.purge_object(&rows[2].id).await);
    must("delete_bucket", db.delete_bucket(&b.id).await);
    assert_eq!(
        must("find_bucket", db.find_bucket(&b.id).await),
        None,
        "contract: a deleted bucket is gone"
    );
    must("delete_bucket again", db.delete_bucket(&b.id).await);
}

async fn reconcile_scans<D: BucketStore + ObjectRowStore + ?Sized>(db: &D, run: &Run) {
    let b = bucket(run.bucket_name("rec"), None);
    must("insert_bucket", db.insert_bucket(&b).await);
    let seg = run.segment("rec");
    // Instants unique to this run, so other runs' pending rows can be told apart.
    let base: i128 = 1_600_000_000_000_000_000
        + i128::from(u32::from_str_radix(&run.0[..8], 16).unwrap_or(0)) * 1000;
    let mut rows = Vec::new();
    for (i, (path, status)) in [
        ("c", ObjectStatus::Pending),
        ("a", ObjectStatus::Confirmed),
        ("d", ObjectStatus::Pending),
        ("b", ObjectStatus::Pending),
        ("e", ObjectStatus::Pending),
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = object(&b, &seg, path, status);
        // d and b share an instant; e is not old enough.
        r.created_at = at(base + [3, 1, 2, 2, 9][i]);
        must("insert_object", db.insert_object(&r).await);
        rows.push(r);
    }
    must(
        "mark_object_deleted",
        db.mark_object_deleted(&rows[0].id, at(base)).await,
    );

    let start = ObjectKey::parse(seg.clone()).expect("contract: key");
    let mut keys = Vec::new();
    let mut after = Some(start);
    loop {
        let page = must("objects_by_key", db.objects_by_key(after.clone(), 2).await);
        assert!(
            page.len() <= 2,
            "contract: objects_by_key must honour limit"
        );
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        let done = !last.key.as_str().starts_with(&seg);
        keys.extend(
            page.iter()
                .filter(|r| r.key.as_str().starts_with(&seg))
                .map(|r| r.path.as_str().to_owned()),
        );
        if done {
            break;
        }
    }
    assert_eq!(
        keys,
        ["a", "b", "c", "d", "e"],
        "contract: objects_by_key pages every row (any status, soft-deleted included) by key"
    );

    let pending = must(
        "pending_objects",
        db.pending_objects(at(base + 5), 10_000).await,
    );
    let ours: Vec<&ObjectRow> = pending
        .iter()
        .filter(|r| r.key.as_str().starts_with(&seg))
        .collect();
    let mut tie = [&rows[2], &rows[3]];
    tie.sort_by(|x, y| x.id.cmp(&y.id));
    let want = [tie[0].path.as_str(), tie[1].path.as_str(), "c"];
    assert_eq!(
        ours.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        want,
        "contract: pending_objects gives pending rows (soft-deleted included) created before \
         the instant, oldest first, ties by id"
    );
    assert!(
        pending
            .windows(2)
            .all(|w| (w[0].created_at, &w[0].id) <= (w[1].created_at, &w[1].id)),
        "contract: pending_objects must be ordered by created_at, then id"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn in_memory_files_db_passes_the_contract() {
        files_db_contract(&InMemoryFilesDb::new()).await;
    }

    #[tokio::test]
    async fn in_memory_files_db_passes_the_contract_twice_on_one_store() {
        let db = InMemoryFilesDb::new();
        files_db_contract(&db).await;
        files_db_contract(&db).await;
    }
}
