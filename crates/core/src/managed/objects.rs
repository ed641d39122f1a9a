//! The object service: uploads, presign and confirm, downloads, listings and URLs, over
//! FILES_DB's `objects` table and one physical bucket.

use super::access::owner_of;
use super::arrival::{Arrival, Declared};
use super::bucket::{Bucket, ReadScope};
use super::buckets::{BucketCatalogue, Fields};
use super::ids::{BucketId, ObjectId};
use super::object::{ObjectInfo, ObjectPath, ObjectRow, ObjectStatus, Owner, object_key};
use super::ports::{ObjectConfirmation, ObjectQuery, ObjectRowStore};
#[cfg(doc)]
use super::service::ManagedService;
use super::service::{EtagMismatchHook, ManagedPolicy, UrlTokens};
use crate::domain::{BucketName, ContentType, MAX_KEY_BYTES, ObjectKey, Principal};
use crate::error::{Error, FieldError, Resource};
use crate::files::ReadableFile;
use crate::key_locks::KeyLocks;
use crate::policy::{AccessChecker, AccessPolicy, FileOwner};
use crate::ports::{ByteRange, ByteStream, Clock, GetObject, ObjectMeta, ObjectStore, PutObject};
use crate::reconcile::stale_pending_after;
use crate::storage::{GetOptions, PutOptions, Storage};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::collections::BTreeMap;
use std::sync::Arc;
use time::OffsetDateTime;

mod multipart;
pub use multipart::CreateObjectMultipart;

/// Input of [`ManagedService::upload`]: the request body, streamed.
pub struct Upload {
    /// The request's `Content-Type`, checked against the bucket's allow-list.
    pub content_type: String,
    /// The request's `Content-Length`; checked against the limit before any byte is read.
    pub content_length: u64,
    /// The request body, streamed to storage as it arrives.
    pub body: ByteStream,
    /// Replace an existing object at the path instead of answering 409.
    pub upsert: bool,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("content_type", &self.content_type)
            .field("content_length", &self.content_length)
            .field("upsert", &self.upsert)
            .finish_non_exhaustive()
    }
}

/// Input of [`ManagedService::presign`].
#[derive(Debug, Clone, Default)]
pub struct PresignUpload {
    /// The content type the PUT must send (it is signed), checked against the bucket's
    /// allow-list.
    pub content_type: String,
    /// Signed as `Content-Length`: storage refuses any other body size.
    pub size: u64,
}

/// Input of [`ManagedService::list`].
#[derive(Debug, Clone, Default)]
pub struct ListObjects {
    /// Only paths starting with this (a plain string prefix; empty: none).
    pub prefix: Option<String>,
    /// 1..=1000, default 100.
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// Result of [`ManagedService::presign`]: PUT `upload_url` with exactly `headers`, then
/// call confirm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedUpload {
    /// The pending row's id.
    pub id: ObjectId,
    /// The object key the URL writes (`<segment>/<bucket name>/<path>`).
    pub key: ObjectKey,
    /// The presigned, create-only PUT URL.
    pub upload_url: String,
    /// Always `PUT`.
    pub method: &'static str,
    /// Headers the PUT must send exactly as given (they are signed, `If-None-Match: *`
    /// included).
    pub headers: BTreeMap<String, String>,
    /// When the URL stops working.
    pub expires_at: OffsetDateTime,
}

/// One page of [`ManagedService::list`], by path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectPage {
    /// The objects of this page, by path in byte order.
    pub items: Vec<ObjectInfo>,
    /// The `cursor` of the next page, when more objects may follow.
    pub next_cursor: Option<String>,
}

/// Result of [`ManagedService::url`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectUrl {
    /// `<files_url>/public/<key>` for a public bucket's object; otherwise a files-listener URL
    /// with a `?token=`, or a signed storage GET.
    pub url: String,
    /// Set for signed URLs of private buckets; public URLs do not expire.
    pub expires_at: Option<OffsetDateTime>,
}

/// A download: the row's view, whether it may be cached publicly, and the body.
#[derive(Debug)]
pub struct Download {
    /// The object, as its row describes it.
    pub object: ObjectInfo,
    /// The bucket is `public`: safe for `Cache-Control: public`.
    pub public: bool,
    /// The bytes (the whole object or the requested range) and storage's metadata.
    pub body: GetObject,
}

/// Objects per page of [`ManagedService::list`] when no `limit` is given.
pub const DEFAULT_OBJECT_LIST_LIMIT: u32 = 100;
/// The largest `limit` [`ManagedService::list`] accepts.
pub const MAX_OBJECT_LIST_LIMIT: u32 = 1000;
/// Rows deleted per round when emptying a bucket.
const EMPTY_BATCH: u32 = 100;

/// RFC 3986 unreserved characters stay; everything else in a key segment is escaped.
const URL_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A checked upload or presign: where the object goes and what it declares.
struct WriteTarget<'p> {
    principal: &'p Principal,
    bucket: Bucket,
    segment: String,
    key: ObjectKey,
    path: ObjectPath,
    content_type: ContentType,
    size: u64,
}

impl WriteTarget<'_> {
    /// The `pending` row both write paths insert before the object exists.
    fn pending_row(&self, now: OffsetDateTime) -> ObjectRow {
        ObjectRow {
            id: ObjectId::generate(),
            bucket_id: self.bucket.id.clone(),
            organization_id: self.principal.active_org_id.clone(),
            owner_id: self.principal.user_id.clone(),
            segment: self.segment.clone(),
            key: self.key.clone(),
            path: self.path.clone(),
            content_type: self.content_type.clone(),
            size: self.size,
            etag: None,
            status: ObjectStatus::Pending,
            created_at: now,
            updated_at: now,
            deleted_at: None,
            multipart: None,
        }
    }
}

/// What an upload or presign may do with the key.
enum Claim {
    /// No row holds it (any stale row was purged).
    Free,
    /// A confirmed row holds it and the caller asked to replace it.
    Replace(ObjectId),
}

/// Objects by path, key and id, their bytes and their URLs.
pub(super) struct ObjectService {
    pub(super) storage: Storage,
    pub(super) locks: KeyLocks,
    pub(super) on_etag_mismatch: Option<EtagMismatchHook>,
    /// When set, [`ObjectService::url`] gives private objects a files-listener URL.
    pub(super) url_tokens: Option<Arc<dyn UrlTokens>>,
    pub(super) objects: Arc<dyn ObjectStore>,
    pub(super) rows: Arc<dyn ObjectRowStore>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) catalogue: BucketCatalogue,
    pub(super) access: Arc<AccessChecker>,
    pub(super) policy: Arc<ManagedPolicy>,
}

impl ObjectService {
    /// [`ManagedService::upload`] (its docs give the errors).
    pub(super) async fn upload(
        &self,
        caller: Option<&Principal>,
        bucket: &str,
        path: &str,
        input: Upload,
    ) -> Result<ObjectInfo, Error> {
        let w = self
            .prepare_write(
                caller,
                bucket,
                path,
                input.content_type,
                input.content_length,
            )
            .await?;
        let _key = self.locks.lock(w.key.as_str()).await;
        let claim = self
            .claim(&w.bucket, &w.key, input.upsert, w.principal)
            .await?;
        let now = self.clock.now();
        let put = PutObject {
            content_length: input.content_length,
            content_type: Some(w.content_type.clone()),
            body: input.body,
        };
        let (id, meta) = match claim {
            Claim::Replace(id) => {
                let meta = self
                    .objects
                    .put(self.storage.default_bucket(), &w.key, put)
                    .await?;
                (id, meta)
            }
            Claim::Free => {
                let row = w.pending_row(now);
                self.rows.insert_object(&row).await?;
                match self
                    .objects
                    .put(self.storage.default_bucket(), &w.key, put)
                    .await
                {
                    Ok(meta) => (row.id, meta),
                    Err(e) => {
                        // Storage kept nothing (the port's promise); best effort: a row
                        // left pending is reconcile's.
                        let _ = self.rows.purge_object(&row.id).await;
                        return Err(e);
                    }
                }
            }
        };
        let row = self
            .rows
            .confirm_object(
                &id,
                &ObjectConfirmation {
                    size: meta.size,
                    etag: meta.etag,
                    content_type: w.content_type,
                    owner_id: w.principal.user_id.clone(),
                    at: now,
                },
            )
            .await?;
        Ok(ObjectInfo::new(&row, &w.bucket.name))
    }

    /// [`ManagedService::download`] (its docs give the errors).
    pub(super) async fn download(
        &self,
        caller: Option<&Principal>,
        bucket: &str,
        path: &str,
        range: Option<ByteRange>,
    ) -> Result<Download, Error> {
        let (b, row) = self.find_by_path(caller, bucket, path).await?;
        self.open(caller, b, row, range).await
    }

    /// [`ManagedService::head`] (its docs give the errors).
    pub(super) async fn head(
        &self,
        caller: Option<&Principal>,
        bucket: &str,
        path: &str,
    ) -> Result<ObjectInfo, Error> {
        let (b, row) = self.find_by_path(caller, bucket, path).await?;
        self.access.read_scope(&b, &row, caller)?;
        Ok(ObjectInfo::new(&row, &b.name))
    }

    /// [`ManagedService::delete`] (its docs give the errors).
    pub(super) async fn delete(
        &self,
        caller: Option<&Principal>,
        bucket: &str,
        path: &str,
    ) -> Result<(), Error> {
        let (p, b, owner) = self.enter_write(caller, bucket).await?;
        let path = ObjectPath::parse(path)?;
        let key = object_key(owner, &b.name, &path)?;
        let _key = self.locks.lock(key.as_str()).await;
        match self.rows.find_object_by_key(&key).await? {
            Some(row) if row.bucket_id == b.id => match self.access.row_owner(&b, &row, p) {
                Ok(()) => self.delete_row(&row).await,
                // Hidden: as for a missing path.
                Err(Error::NotFound(_)) => Ok(()),
                Err(e) => Err(e),
            },
            _ => Ok(()),
        }
    }

    /// [`ManagedService::list`] (its docs give the errors).
    pub(super) async fn list(
        &self,
        caller: Option<&Principal>,
        bucket: &str,
        input: ListObjects,
    ) -> Result<ObjectPage, Error> {
        let p = self.access.authenticated(caller)?;
        let b = self.catalogue.resolve_bucket(caller, bucket).await?;
        let owner = owner_of(&b, p)?;
        let mut fields = Fields::default();
        let limit = input.limit.unwrap_or(DEFAULT_OBJECT_LIST_LIMIT);
        if !(1..=MAX_OBJECT_LIST_LIMIT).contains(&limit) {
            fields
                .0
                .push(FieldError::new("limit", "must be between 1 and 1000"));
        }
        let prefix = fields.take(list_text("prefix", input.prefix))?.flatten();
        let after = fields.take(list_text("cursor", input.cursor))?.flatten();
        fields.finish()?;
        let page = self
            .rows
            .list_objects(&ObjectQuery {
                bucket_id: b.id.clone(),
                segment: owner.segment().to_owned(),
                prefix,
                // Rows of a `user`-read bucket are private to their uploader.
                owner_id: (b.read_scope == ReadScope::User).then(|| p.user_id.clone()),
                after,
                limit,
            })
            .await?;
        Ok(ObjectPage {
            items: page
                .items
                .iter()
                .map(|r| ObjectInfo::new(r, &b.name))
                .collect(),
            next_cursor: page.next,
        })
    }

    /// [`ManagedService::presign`] (its docs give the errors).
    pub(super) async fn presign(
        &self,
        caller: Option<&Principal>,
        bucket: &str,
        path: &str,
        input: PresignUpload,
    ) -> Result<PresignedUpload, Error> {
        let w = self
            .prepare_write(caller, bucket, path, input.content_type, input.size)
            .await?;
        let _key = self.locks.lock(w.key.as_str()).await;
        // Presign never overwrites: a confirmed object at the path is a 409.
        self.claim(&w.bucket, &w.key, false, w.principal).await?;

        // Create-only: a replay of this URL after confirm or delete cannot replace bytes.
        let signed = self
            .storage
            .sign_put_url(
                &w.key,
                PutOptions::default()
                    .with_content_type(w.content_type.clone())
                    .with_content_length(input.size)
                    .with_expires_in(self.policy.shared.upload_expiry)
                    .with_create_only(),
            )
            .await?;
        let row = w.pending_row(self.clock.now());
        self.rows.insert_object(&row).await?;
        // The row holds the key now; an object there has no row (a replayed URL's after a
        // delete) and would make this create-only PUT fail.
        if let Err(e) = self
            .objects
            .delete(self.storage.default_bucket(), &w.key)
            .await
        {
            let _ = self.rows.purge_object(&row.id).await;
            return Err(e);
        }
        Ok(PresignedUpload {
            id: row.id,
            key: w.key,
            upload_url: signed.url,
            method: "PUT",
            headers: signed.headers,
            expires_at: signed.expires_at,
        })
    }

    /// [`ManagedService::confirm`] (its docs give the errors).
    pub(super) async fn confirm(
        &self,
        caller: Option<&Principal>,
        bucket: &str,
        path: &str,
    ) -> Result<ObjectInfo, Error> {
        let p = self.access.authenticated(caller)?;
        let (b, rows) = self.bucket_with_rows(caller, p, bucket, path).await?;
        let owner = self.write_owner(&b, p)?;
        let path = ObjectPath::parse(path)?;
        let key = object_key(owner, &b.name, &path)?;
        // A confirmed object answers without the path's lock: a repeated confirm (a
        // client's retry, or many at once) is then one read and waits for no writer.
        let row = rows.row_at(self.rows.as_ref(), &key).await?;
        if let Confirming::Done(info) = self.confirming(&b, row, p)? {
            return Ok(info);
        }
        let _key = self.locks.lock(key.as_str()).await;
        // Again under the lock: another writer may have settled or replaced the row.
        let row = self.rows.find_object_by_key(&key).await?;
        let row = match self.confirming(&b, row, p)? {
            Confirming::Done(info) => return Ok(info),
            Confirming::Pending(row) => row,
        };
        let meta = match self.objects.head(self.storage.default_bucket(), &key).await {
            Ok(m) => m,
            Err(Error::NotFound(Resource::Object)) => return Err(Error::NotUploaded),
            Err(e) => return Err(e),
        };
        let arrival = Arrival {
            objects: self.objects.as_ref(),
            rows: self.rows.as_ref(),
            physical: self.storage.default_bucket(),
            bucket: &b,
            ceiling: self.policy.shared.max_upload_size,
            declared: Declared::Check,
            at: self.clock.now(),
        };
        match arrival.settle(&row, meta).await? {
            Ok(row) => Ok(ObjectInfo::new(&row, &b.name)),
            Err(broken) => Err(Error::Validation(vec![broken])),
        }
    }

    /// [`ManagedService::url`] (its docs give the errors).
    pub(super) async fn url(
        &self,
        caller: Option<&Principal>,
        key: &str,
    ) -> Result<ObjectUrl, Error> {
        let (b, row) = self.find_by_key(key).await?;
        self.access
            .read_scope(&b, &row, caller)
            .map_err(|e| self.access.conceal(e, Resource::Object))?;
        if b.is_public() {
            return Ok(ObjectUrl {
                url: self.public_url(&row.key),
                expires_at: None,
            });
        }
        if let Some(tokens) = &self.url_tokens {
            let expires_at = self.clock.now() + self.policy.url_expiry.duration();
            let mut url = self.files_url_of(&row.key, "");
            url.push_str("?token=");
            url.push_str(&tokens.mint(&row, expires_at));
            return Ok(ObjectUrl {
                url,
                expires_at: Some(expires_at),
            });
        }
        let signed = self
            .storage
            .sign_get_url(
                &row.key,
                GetOptions::default().with_expires_in(self.policy.url_expiry),
            )
            .await?;
        Ok(ObjectUrl {
            url: signed.url,
            expires_at: Some(signed.expires_at),
        })
    }

    /// [`ManagedService::download_key`] (its docs give the errors).
    pub(super) async fn download_key(
        &self,
        caller: Option<&Principal>,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<Download, Error> {
        let (b, row) = self.find_by_key(key).await?;
        self.access
            .read_scope(&b, &row, caller)
            .map_err(|e| self.access.conceal(e, Resource::Object))?;
        self.open(caller, b, row, range).await
    }

    /// [`ManagedService::download_key_granted`] (its docs give the errors).
    pub(super) async fn download_key_granted(
        &self,
        key: &str,
        granted: &(dyn Fn(&ObjectRow) -> bool + Send + Sync),
        range: Option<ByteRange>,
    ) -> Result<Download, Error> {
        let (b, row) = self.find_by_key(key).await?;
        if !granted(&row) {
            return Err(Error::NotFound(Resource::Object));
        }
        let body = self.fetch(&row.key, row.etag.as_deref(), range).await?;
        Ok(Download {
            object: ObjectInfo::new(&row, &b.name),
            public: b.is_public(),
            body,
        })
    }

    /// [`ManagedService::public_url`].
    #[must_use]
    pub(super) fn public_url(&self, key: &ObjectKey) -> String {
        self.files_url_of(key, "/public")
    }

    /// `<files_url><prefix>/<key>`, each key segment percent-encoded.
    fn files_url_of(&self, key: &ObjectKey, prefix: &str) -> String {
        let mut url = format!("{}{prefix}", self.policy.files_url);
        for seg in key.as_str().split('/') {
            url.push('/');
            url.extend(utf8_percent_encode(seg, URL_SEGMENT));
        }
        url
    }

    /// [`ManagedService::download_by_id`] (its docs give the errors).
    pub(super) async fn download_by_id(
        &self,
        caller: Option<&Principal>,
        id: &str,
        range: Option<ByteRange>,
    ) -> Result<Download, Error> {
        let (b, row) = self.find_by_id(caller, id).await?;
        self.open(caller, b, row, range).await
    }

    /// [`ManagedService::read_grant_by_id`] (its docs give the errors).
    pub(super) async fn read_grant_by_id(
        &self,
        caller: Option<&Principal>,
        id: &str,
    ) -> Result<ReadableFile, Error> {
        let (b, row) = self.find_by_id(caller, id).await?;
        self.access.read_scope(&b, &row, caller)?;
        Ok(ReadableFile::of_object(
            &row,
            &b,
            self.storage.default_bucket(),
        ))
    }

    /// Streams an authorised object's bytes, refusing other bytes than its row's.
    ///
    /// # Errors
    /// As [`ManagedService::download_by_id`]'s storage part.
    pub(super) async fn read(
        &self,
        file: &ReadableFile,
        range: Option<ByteRange>,
    ) -> Result<GetObject, Error> {
        self.fetch(&file.key, file.etag.as_deref(), range).await
    }

    /// [`ManagedService::sign_download_by_id`] (its docs give the errors).
    pub(super) async fn sign_download_by_id(
        &self,
        caller: Option<&Principal>,
        id: &str,
    ) -> Result<ObjectUrl, Error> {
        let file = self.read_grant_by_id(caller, id).await?;
        let signed = self
            .storage
            .sign_get_url(
                &file.key,
                GetOptions::default().with_expires_in(self.policy.url_expiry),
            )
            .await?;
        Ok(ObjectUrl {
            url: signed.url,
            expires_at: Some(signed.expires_at),
        })
    }

    /// Layers 1–5 of a write: caller, bucket, owner segment, write scope.
    /// Everything an upload and a presign check before touching rows or storage, in the
    /// documented order: auth, bucket, org, access, then `path`/`contentType` together,
    /// then the size and type limits.
    async fn prepare_write<'p>(
        &self,
        caller: Option<&'p Principal>,
        bucket: &str,
        path: &str,
        content_type: String,
        size: u64,
    ) -> Result<WriteTarget<'p>, Error> {
        let (p, b, owner) = self.enter_write(caller, bucket).await?;
        let mut fields = Fields::default();
        let path = fields.take(ObjectPath::parse(path))?;
        let ct = fields.take(ContentType::parse(content_type))?;
        fields.finish()?;
        let (Some(path), Some(ct)) = (path, ct) else {
            return Err(Error::internal("validated write fields went missing"));
        };
        let key = object_key(owner, &b.name, &path)?;
        self.access.limits(&b, size, &ct)?;
        Ok(WriteTarget {
            principal: p,
            segment: owner.segment().to_owned(),
            bucket: b,
            key,
            path,
            content_type: ct,
            size,
        })
    }

    async fn enter_write<'p>(
        &self,
        caller: Option<&'p Principal>,
        bucket: &str,
    ) -> Result<(&'p Principal, Bucket, Owner<'p>), Error> {
        let p = self.access.authenticated(caller)?;
        let b = self.catalogue.resolve_bucket(caller, bucket).await?;
        let owner = self.write_owner(&b, p)?;
        Ok((p, b, owner))
    }

    /// Layers 3–5 of a write into `b` by `p`, in order: the owner segment its key lives
    /// under, then the write scope.
    fn write_owner<'p>(&self, b: &Bucket, p: &'p Principal) -> Result<Owner<'p>, Error> {
        let owner = owner_of(b, p)?;
        self.access.write_scope(b, p)?;
        Ok(owner)
    }

    /// What a confirm by `p` of the key `row` was read at settles, after its checks: its
    /// answer when the row is confirmed already, else the pending row.
    fn confirming(
        &self,
        b: &Bucket,
        row: Option<ObjectRow>,
        p: &Principal,
    ) -> Result<Confirming, Error> {
        let row = match row {
            Some(r) if r.bucket_id == b.id && r.deleted_at.is_none() => r,
            _ => return Err(Error::NotFound(Resource::Object)),
        };
        // A pending row is its presign's: nobody else may see or confirm it.
        if row.status == ObjectStatus::Pending && row.owner_id != p.user_id {
            return Err(Error::NotFound(Resource::Object));
        }
        self.access.row_owner(b, &row, p)?;
        Ok(if row.status == ObjectStatus::Confirmed {
            Confirming::Done(ObjectInfo::new(&row, &b.name))
        } else {
            Confirming::Pending(row)
        })
    }

    /// Who holds `key` now, and whether this writer may take it. Call it holding the
    /// key's lock.
    async fn claim(
        &self,
        b: &Bucket,
        key: &ObjectKey,
        upsert: bool,
        p: &Principal,
    ) -> Result<Claim, Error> {
        let Some(r) = self.rows.find_object_by_key(key).await? else {
            return Ok(Claim::Free);
        };
        // Same key in another bucket (an org bucket shadowing a project-wide one).
        if r.bucket_id != b.id {
            return Err(Error::ObjectExists);
        }
        if r.is_live() {
            if !upsert {
                return Err(Error::ObjectExists);
            }
            // Hide mode: another member's object is a taken path like any other (409),
            // never a 404 that a read of a missing path would also give.
            return match self.access.row_owner(b, &r, p) {
                Ok(()) => Ok(Claim::Replace(r.id)),
                Err(Error::NotFound(_)) => Err(Error::ObjectExists),
                Err(e) => Err(e),
            };
        }
        // Pending or soft-deleted. An upload in progress keeps the key, even against its own
        // uploader: its URL may still PUT, and its confirm must find its own row (a DELETE
        // of the path cancels it).
        let abandoned = r.deleted_at.is_some()
            || r.created_at + pending_lifetime(&r, &self.policy.shared) < self.clock.now();
        if !abandoned {
            return Err(Error::ObjectExists);
        }
        // Finish what its writer left: any object it stored goes, then the row.
        self.delete_row(&r).await?;
        Ok(Claim::Free)
    }

    /// The bucket `reference` resolves to (layer 2). Where reads cost a round trip, read
    /// together with the rows at every key `path` can have in a bucket of that name (the
    /// caller's user segment and its organization's): one round trip, not two in a row.
    /// The caller still runs its checks in their order before it uses a row.
    async fn bucket_with_rows(
        &self,
        caller: Option<&Principal>,
        p: &Principal,
        reference: &str,
        path: &str,
    ) -> Result<(Bucket, RowsRead), Error> {
        let resolve = self.catalogue.resolve_bucket(caller, reference);
        let keys = if self.rows.reads_cost_a_round_trip() {
            candidate_keys(p, reference, path)
        } else {
            Vec::new()
        };
        if keys.is_empty() {
            let rows = Ok(Vec::new());
            return Ok((resolve.await?, RowsRead { keys, rows }));
        }
        let (b, rows) = futures::join!(resolve, self.rows.find_objects_by_keys(&keys));
        Ok((b?, RowsRead { keys, rows }))
    }

    /// The caller's live row at a path, with its bucket (layers 1–3 and validation).
    async fn find_by_path(
        &self,
        caller: Option<&Principal>,
        bucket: &str,
        path: &str,
    ) -> Result<(Bucket, ObjectRow), Error> {
        let p = self.access.authenticated(caller)?;
        let (b, rows) = self.bucket_with_rows(caller, p, bucket, path).await?;
        let owner = owner_of(&b, p)?;
        let path = ObjectPath::parse(path)?;
        let key = object_key(owner, &b.name, &path)?;
        match rows.row_at(self.rows.as_ref(), &key).await? {
            Some(r) if r.bucket_id == b.id && r.is_live() => Ok((b, r)),
            _ => Err(Error::NotFound(Resource::Object)),
        }
    }

    /// A live row by id, with its bucket, past authentication, organization context and
    /// the firewall (see [`ManagedService::download_by_id`]).
    async fn find_by_id(
        &self,
        caller: Option<&Principal>,
        id: &str,
    ) -> Result<(Bucket, ObjectRow), Error> {
        let scope = self.access.scoped(caller, false)?;
        let not_found = || Error::NotFound(Resource::Object);
        // A malformed id cannot exist: same answer as a missing one, without a lookup.
        let row = match ObjectId::parse(id) {
            Ok(id) => self.rows.find_object(&id).await?,
            Err(_) => None,
        }
        .filter(ObjectRow::is_live)
        .ok_or_else(not_found)?;
        let owner = match row.organization_id.as_deref() {
            Some(org) => FileOwner::Org(org),
            None => FileOwner::User(&row.owner_id),
        };
        self.access.firewall(scope, owner, Resource::Object)?;
        let b = self
            .catalogue
            .find(&row.bucket_id)
            .await?
            .ok_or_else(not_found)?;
        Ok((b, row))
    }

    /// A live row by key, with its bucket. Malformed keys cannot exist: 404 as well.
    async fn find_by_key(&self, key: &str) -> Result<(Bucket, ObjectRow), Error> {
        let not_found = || Error::NotFound(Resource::Object);
        let key = ObjectKey::parse(key).map_err(|_| not_found())?;
        let row = self
            .rows
            .find_object_by_key(&key)
            .await?
            .filter(ObjectRow::is_live)
            .ok_or_else(not_found)?;
        let b = self
            .catalogue
            .find(&row.bucket_id)
            .await?
            .ok_or_else(not_found)?;
        Ok((b, row))
    }

    async fn open(
        &self,
        caller: Option<&Principal>,
        b: Bucket,
        row: ObjectRow,
        range: Option<ByteRange>,
    ) -> Result<Download, Error> {
        self.access.read_scope(&b, &row, caller)?;
        let body = self.fetch(&row.key, row.etag.as_deref(), range).await?;
        Ok(Download {
            object: ObjectInfo::new(&row, &b.name),
            public: b.is_public(),
            body,
        })
    }

    /// GETs a row's object, refusing bytes that are not the ones the row describes (an
    /// upsert between its PUT and its row update, or drift): 503, retryable.
    async fn fetch(
        &self,
        key: &ObjectKey,
        recorded_etag: Option<&str>,
        range: Option<ByteRange>,
    ) -> Result<GetObject, Error> {
        let body = self
            .objects
            .get(self.storage.default_bucket(), key, range)
            .await?;
        if etag_differs(recorded_etag, &body.meta) {
            if let Some(hook) = &self.on_etag_mismatch {
                hook(key);
            }
            return Err(Error::ObjectChanged);
        }
        Ok(body)
    }

    /// The Delete write path for one row.
    async fn delete_row(&self, row: &ObjectRow) -> Result<(), Error> {
        if row.deleted_at.is_none() {
            self.rows
                .mark_object_deleted(&row.id, self.clock.now())
                .await?;
        }
        if let Some(mp) = &row.multipart {
            self.objects
                .abort_multipart(self.storage.default_bucket(), &row.key, &mp.upload_id)
                .await?;
        }
        self.objects
            .delete(self.storage.default_bucket(), &row.key)
            .await?;
        self.rows.purge_object(&row.id).await
    }

    /// Deletes every object of `b` (storage, then row), as the Delete path.
    ///
    /// # Errors
    /// Storage and store errors (a failure leaves the rest for a retry).
    pub(super) async fn empty_bucket(&self, b: &Bucket) -> Result<(), Error> {
        loop {
            let batch = self.rows.objects_in_bucket(&b.id, EMPTY_BATCH).await?;
            if batch.is_empty() {
                return Ok(());
            }
            for row in &batch {
                self.delete_row(row).await?;
            }
        }
    }
}

/// How long a pending row belongs to its upload: a presign's until its URL expired plus
/// the margin, a multipart upload's for the configured maximum age.
pub(crate) fn pending_lifetime(row: &ObjectRow, policy: &AccessPolicy) -> std::time::Duration {
    if row.multipart.is_some() {
        policy.multipart_max_age
    } else {
        stale_pending_after(policy.upload_expiry)
    }
}

/// Storage's etag is not the row's (a row without one, e.g. from an older version, or an
/// object without one cannot be compared).
fn etag_differs(recorded: Option<&str>, meta: &ObjectMeta) -> bool {
    match (recorded, &meta.etag) {
        (Some(a), Some(b)) => a.trim_matches('"') != b.trim_matches('"'),
        _ => false,
    }
}

/// A prefix or cursor: at most 1024 bytes, no control characters; empty means none.
fn list_text(field: &str, raw: Option<String>) -> Result<Option<String>, Error> {
    match raw {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) if s.len() > MAX_KEY_BYTES || s.chars().any(char::is_control) => {
            Err(Error::invalid(
                field,
                "must be at most 1024 bytes without control characters",
            ))
        }
        Some(s) => Ok(Some(s)),
    }
}

/// The rows [`ObjectService::bucket_with_rows`] read beside the bucket.
struct RowsRead {
    keys: Vec<ObjectKey>,
    rows: Result<Vec<ObjectRow>, Error>,
}

impl RowsRead {
    /// The row at `key`: the one read already when `key` was asked, else read now (reads
    /// in process, a bucket named by id, or a key no guess covered).
    async fn row_at(
        self,
        store: &dyn ObjectRowStore,
        key: &ObjectKey,
    ) -> Result<Option<ObjectRow>, Error> {
        if self.keys.contains(key) {
            Ok(self.rows?.into_iter().find(|r| &r.key == key))
        } else {
            store.find_object_by_key(key).await
        }
    }
}

/// The keys `path` can have under a bucket named `reference` for `p`: one per owner
/// segment it may write under. None when `reference` is an id, or a name or path that
/// cannot be (the caller's own checks then report it, in their order).
fn candidate_keys(p: &Principal, reference: &str, path: &str) -> Vec<ObjectKey> {
    if BucketId::parse(reference).is_ok() {
        return Vec::new();
    }
    let (Ok(name), Ok(path)) = (BucketName::parse(reference), ObjectPath::parse(path)) else {
        return Vec::new();
    };
    let user = Some(Owner::User(&p.user_id));
    let org = p.active_org_id.as_deref().map(Owner::Org);
    [user, org]
        .into_iter()
        .flatten()
        .filter_map(|owner| object_key(owner, &name, &path).ok())
        .collect()
}

/// What [`ObjectService::confirming`] found.
enum Confirming {
    /// Confirmed already: the answer.
    Done(ObjectInfo),
    /// Pending: the row to settle.
    Pending(ObjectRow),
}
