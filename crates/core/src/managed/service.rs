//! The managed-mode use cases behind `/storage/v1/*`: buckets, uploads through the server,
//! presign + confirm, downloads, listings and URLs, over FILES_DB ([`BucketStore`],
//! [`ObjectRowStore`]) and one physical bucket ([`ObjectStore`], the [`Storage`] default).
//!
//! # Check order
//! Every operation stops at the first failure, in this order:
//! 1. authentication: 401 `AUTH_MISSING` (only reads of a `public` bucket by key skip it);
//! 2. the bucket: 404 `STORAGE_BUCKET_NOT_FOUND` ("Bucket not found"). A name resolves to
//!    the caller organization's bucket, else the project-wide one; another organization's
//!    bucket named by id is the firewall's (hide 404 / reveal 403);
//! 3. organization context: 403 `ACCESS_NO_ORG` when keys live under the organization
//!    (every write scope but `user`), or a read needs one;
//! 4. firewall: reads of another organization's or user's object, per read scope
//!    (hide 404 `STORAGE_OBJECT_NOT_FOUND` / reveal 403 `FIREWALL_*_ISOLATION`);
//! 5. access: 403 `ACCESS_ROLE_REQUIRED` (a write-scope rule, the manage rule) or
//!    `ACCESS_ADMIN_REQUIRED` (project-wide buckets);
//! 6. validation: 400 `VALIDATION_FAILED`;
//! 7. guards: 413 `STORAGE_FILE_TOO_LARGE`, 415 `STORAGE_MIME_NOT_ALLOWED`;
//! 8. state: 409 `STORAGE_OBJECT_EXISTS` / `STORAGE_NOT_UPLOADED` / `STORAGE_BUCKET_*`.
//!
//! # Write paths
//! Invariant: a `confirmed`, not soft-deleted row always has its object in storage, and
//! that object's etag is the row's (reads compare them and refuse a mismatch).
//! Every through-server writer of a key (upload, upsert, presign's claim, confirm, delete)
//! holds that key's lock in this process from reading the row to its last write, so row
//! and bytes change together; across processes the unique key lets one upload create a
//! row, and presigned PUTs are create-only (`If-None-Match: *`).
//! Leftovers of a failure are pending rows, soft-deleted rows and objects without rows;
//! `filegate-admin reconcile` and `purge` clear them, using the `objects_by_key` and
//! `pending_objects` scans of [`ObjectRowStore`].
//! - **Upload**: insert a `pending` row → stream the PUT → confirm the row with the PUT's
//!   size and etag. PUT fails (or the client hangs up): purge the pending row.
//! - **Upload with upsert over a confirmed row**: PUT (atomic replace; on failure the old
//!   object stays) → refresh the row's metadata. Between the two, reads answer 503.
//! - **The row at the key** decides: confirmed → 409 (upsert: replace); pending, not yet
//!   past its URL's expiry plus a grace → 409 (a DELETE of the path cancels it); expired
//!   or soft-deleted → finished as a Delete, then the key is free.
//! - **Presign**: claim → sign a create-only PUT → insert a `pending` row → delete any
//!   object at the key (it has no row; left, it would make the create-only PUT fail).
//! - **Confirm** (only by the presign's uploader): HEAD → missing: 409, row stays pending;
//!   not the declared size or type, or over a limit: delete the object → purge the row →
//!   400; else write the real size, etag, content type and mark confirmed.
//! - **Delete**: soft-delete the row (it disappears) → delete the object → purge the row.
//!   A retry finds the soft-deleted row and finishes.
//! - **Bucket delete with `empty`**: each row as Delete, then the bucket row (refused while
//!   rows remain).
//!
//! Two server processes sharing one FILES_DB do not share the key locks: creates stay
//! exclusive (the unique key), but two upserts of one path at once may leave the bytes of
//! one and the row of the other; reads then answer 503 until the next write of the path.

use super::bucket::{Bucket, DEFAULT_BUCKETS, MimePattern, ReadScope, WriteScope, mime_allowed};
use super::ids::{BucketId, ObjectId};
use super::object::{ObjectInfo, ObjectPath, ObjectRow, ObjectStatus, Owner, object_key};
use super::ports::{BucketStore, ObjectConfirmation, ObjectQuery, ObjectRowStore};
use crate::domain::{
    AccessRule, BucketName, ByteSize, ContentType, Expiry, FirewallMode, MAX_KEY_BYTES, ObjectKey,
    Principal, RoleHierarchy,
};
use crate::error::{Error, FieldError, Resource};
use crate::key_locks::KeyLocks;
use crate::ports::{ByteRange, ByteStream, Clock, GetObject, ObjectMeta, ObjectStore, PutObject};
use crate::reconcile::stale_pending_after;
use crate::storage::{GetOptions, PutOptions, Storage};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use time::OffsetDateTime;

/// Settings of managed mode.
#[derive(Debug, Clone)]
pub struct ManagedPolicy {
    /// Base URL of the files listener; public objects are at `<files_url>/public/<key>`.
    pub files_url: String,
    /// Ceiling of every bucket's size limit, and the limit of buckets without one.
    pub max_file_size: ByteSize,
    /// Lifetime of presigned upload URLs.
    pub upload_expiry: Expiry,
    /// Lifetime of the signed GET URLs [`ManagedService::url`] gives for private buckets.
    pub url_expiry: Expiry,
    /// Who may create, update and delete an organization's buckets (default `admin+`).
    /// Project-wide buckets are managed by platform admins only.
    pub manage_rule: AccessRule,
    /// Resolves `role+` in rules.
    pub roles: RoleHierarchy,
    /// How another organization's or user's object or bucket is reported.
    pub firewall: FirewallMode,
}

impl Default for ManagedPolicy {
    fn default() -> Self {
        Self {
            files_url: "http://127.0.0.1:8789".to_owned(),
            max_file_size: ByteSize::mib(100),
            upload_expiry: Expiry::DEFAULT,
            url_expiry: Expiry::DEFAULT,
            manage_rule: AccessRule::at_least("admin"),
            roles: RoleHierarchy::default(),
            firewall: FirewallMode::default(),
        }
    }
}

/// Input of [`ManagedService::create_bucket`], as the client sent it.
#[derive(Debug, Clone, Default)]
pub struct CreateBucket {
    pub name: String,
    /// A bucket for every organization (platform admins only); otherwise the caller's
    /// organization's.
    pub project_wide: bool,
    /// Default `org`.
    pub read_scope: Option<String>,
    /// Default `org`.
    pub write_scope: Option<String>,
    /// Bytes; `None`: the service-wide maximum.
    pub file_size_limit: Option<u64>,
    /// `image/png`, `image/*`; empty: any type.
    pub allowed_mime_types: Vec<String>,
}

/// Input of [`ManagedService::update_bucket`]: `None` leaves a field unchanged.
#[derive(Debug, Clone, Default)]
pub struct UpdateBucket {
    pub read_scope: Option<String>,
    pub write_scope: Option<String>,
    /// `Some(None)` removes the bucket's own limit.
    pub file_size_limit: Option<Option<u64>>,
    pub allowed_mime_types: Option<Vec<String>>,
}

/// Input of [`ManagedService::upload`]: the request body, streamed.
pub struct Upload {
    pub content_type: String,
    /// The request's `Content-Length`; checked against the limit before any byte is read.
    pub content_length: u64,
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
    pub content_type: String,
    /// Signed as `Content-Length`: storage refuses any other body size.
    pub size: u64,
}

/// Input of [`ManagedService::list`].
#[derive(Debug, Clone, Default)]
pub struct ListObjects {
    pub prefix: Option<String>,
    /// 1..=1000, default 100.
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// Result of [`ManagedService::presign`]: PUT `upload_url` with exactly `headers`, then
/// call confirm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PresignedUpload {
    pub id: ObjectId,
    pub key: ObjectKey,
    pub upload_url: String,
    pub method: &'static str,
    pub headers: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// One page of [`ManagedService::list`], by path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectPage {
    pub items: Vec<ObjectInfo>,
    pub next_cursor: Option<String>,
}

/// Result of [`ManagedService::url`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectUrl {
    pub url: String,
    /// Set for signed URLs of private buckets; public URLs do not expire.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<OffsetDateTime>,
}

/// A download: the row's view, whether it may be cached publicly, and the body.
#[derive(Debug)]
pub struct Download {
    pub object: ObjectInfo,
    /// The bucket is `public`: safe for `Cache-Control: public`.
    pub public: bool,
    pub body: GetObject,
}

pub const DEFAULT_OBJECT_LIST_LIMIT: u32 = 100;
pub const MAX_OBJECT_LIST_LIMIT: u32 = 1000;
/// Rows deleted per round when emptying a bucket.
const EMPTY_BATCH: u32 = 100;

/// RFC 3986 unreserved characters stay; everything else in a key segment is escaped.
const URL_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Collects field errors so a request reports every bad field at once.
#[derive(Default)]
struct Fields(Vec<FieldError>);

impl Fields {
    fn take<T>(&mut self, r: Result<T, Error>) -> Result<Option<T>, Error> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(Error::Validation(mut f)) => {
                self.0.append(&mut f);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn finish(self) -> Result<(), Error> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(self.0))
        }
    }
}

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

/// Mints the `?token=` of the files listener's private URLs (`<files_url>/<key>?token=…`):
/// a credential for one version of one object (its key, id and etag) until `expires_at`,
/// so `<img src>` works without cookies, and an object deleted and uploaded again at the
/// same key (by anyone) is not served by an old URL. The server implements it (an HMAC
/// under its secret) and checks it when the URL is fetched
/// ([`ManagedService::download_key_granted`]).
pub trait UrlTokens: Send + Sync {
    fn mint(&self, object: &ObjectRow, expires_at: OffsetDateTime) -> String;
}

/// Called when storage holds other bytes than a row describes (the read is refused).
pub type EtagMismatchHook = Arc<dyn Fn(&ObjectKey) + Send + Sync>;

pub struct ManagedService {
    storage: Storage,
    locks: KeyLocks,
    on_etag_mismatch: Option<EtagMismatchHook>,
    /// When set, [`ManagedService::url`] gives private objects a files-listener URL.
    url_tokens: Option<Arc<dyn UrlTokens>>,
    objects: Arc<dyn ObjectStore>,
    buckets: Arc<dyn BucketStore>,
    rows: Arc<dyn ObjectRowStore>,
    clock: Arc<dyn Clock>,
    policy: ManagedPolicy,
}

impl std::fmt::Debug for ManagedService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedService")
            .field("storage", &self.storage)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl ManagedService {
    /// Objects go to `storage`'s default bucket through `objects`; `storage` signs.
    ///
    /// # Errors
    /// [`Error::Validation`] on `filesUrl` unless it is an `http(s)://` URL (a trailing `/`
    /// is dropped), on `manageRule` when a `role+` names a role missing from the hierarchy.
    pub fn new(
        storage: Storage,
        objects: Arc<dyn ObjectStore>,
        buckets: Arc<dyn BucketStore>,
        rows: Arc<dyn ObjectRowStore>,
        clock: Arc<dyn Clock>,
        mut policy: ManagedPolicy,
    ) -> Result<Self, Error> {
        let url = policy.files_url.trim_end_matches('/');
        let scheme_ok = ["http://", "https://"]
            .iter()
            .any(|s| url.len() > s.len() && url.starts_with(s));
        if !scheme_ok || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::invalid(
                "filesUrl",
                "must be an http:// or https:// URL",
            ));
        }
        policy.files_url = url.to_owned();
        policy
            .manage_rule
            .check_against(&policy.roles, "manageRule")?;
        Ok(Self {
            storage,
            locks: KeyLocks::default(),
            on_etag_mismatch: None,
            url_tokens: None,
            objects,
            buckets,
            rows,
            clock,
            policy,
        })
    }

    /// Private objects' URLs become `<files_url>/<key>?token=…` (minted by `tokens`)
    /// instead of signed storage URLs.
    #[must_use]
    pub fn with_url_tokens(mut self, tokens: Arc<dyn UrlTokens>) -> Self {
        self.url_tokens = Some(tokens);
        self
    }

    /// `hook` hears of every read refused because storage's etag is not the row's.
    #[must_use]
    pub fn with_etag_mismatch_hook(mut self, hook: EtagMismatchHook) -> Self {
        self.on_etag_mismatch = Some(hook);
        self
    }

    #[must_use]
    pub fn policy(&self) -> &ManagedPolicy {
        &self.policy
    }

    // -----------------------------------------------------------------------------------
    // Buckets
    // -----------------------------------------------------------------------------------

    /// Creates `avatars` and `org-logos` (project-wide) unless buckets of those names
    /// exist; existing ones are left as they are. Returns both. Idempotent and safe to run
    /// from several processes at once.
    ///
    /// # Errors
    /// Store errors ([`Error::Unavailable`]).
    pub async fn seed_default_buckets(&self) -> Result<Vec<Bucket>, Error> {
        let mut out = Vec::with_capacity(DEFAULT_BUCKETS.len());
        for d in DEFAULT_BUCKETS {
            let name = BucketName::parse(d.name)?;
            if let Some(b) = self.buckets.find_bucket_by_name(None, &name).await? {
                out.push(b);
                continue;
            }
            let now = self.clock.now();
            let bucket = Bucket {
                id: BucketId::generate(),
                name: name.clone(),
                organization_id: None,
                read_scope: d.read_scope,
                write_scope: WriteScope::parse(d.write_scope)?,
                file_size_limit: Some(d.file_size_limit),
                allowed_mime_types: d
                    .allowed_mime_types
                    .iter()
                    .map(|m| MimePattern::parse(m))
                    .collect::<Result<_, _>>()?,
                created_at: now,
                updated_at: now,
            };
            match self.buckets.insert_bucket(&bucket).await {
                Ok(()) => out.push(bucket),
                // Another process seeded it between our lookup and insert.
                Err(Error::BucketExists) => out.push(
                    self.buckets
                        .find_bucket_by_name(None, &name)
                        .await?
                        .ok_or(Error::NotFound(Resource::Bucket))?,
                ),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Creates a bucket in the caller's organization, or a project-wide one.
    ///
    /// # Errors
    /// [`Error::AuthMissing`]; [`Error::AccessAdminRequired`] for a project-wide bucket
    /// unless a platform admin; [`Error::AccessNoOrg`] / [`Error::AccessRoleRequired`]
    /// (manage rule) for an organization's; [`Error::Validation`] naming every bad field;
    /// [`Error::BucketExists`].
    pub async fn create_bucket(
        &self,
        caller: Option<&Principal>,
        input: CreateBucket,
    ) -> Result<Bucket, Error> {
        let p = caller.ok_or(Error::AuthMissing)?;
        let organization_id = if input.project_wide {
            None
        } else {
            Some(p.active_org_id.clone().ok_or(Error::AccessNoOrg)?)
        };
        self.authorize_manage(p, organization_id.as_deref())?;

        let mut fields = Fields::default();
        let name =
            fields.take(BucketName::parse(input.name).map_err(|e| rename_field(e, "name")))?;
        let read_scope = fields.take(ReadScope::parse(
            input.read_scope.as_deref().unwrap_or("org"),
        ))?;
        let write_scope =
            fields.take(self.parse_write_scope(input.write_scope.as_deref().unwrap_or("org")))?;
        let limit = fields.take(self.parse_size_limit(input.file_size_limit))?;
        let mimes = fields.take(parse_mimes(&input.allowed_mime_types))?;
        fields.finish()?;
        let (Some(name), Some(read_scope), Some(write_scope), Some(file_size_limit), Some(mimes)) =
            (name, read_scope, write_scope, limit, mimes)
        else {
            return Err(Error::internal("validated bucket fields went missing"));
        };
        let now = self.clock.now();
        let bucket = Bucket {
            id: BucketId::generate(),
            name,
            organization_id,
            read_scope,
            write_scope,
            file_size_limit,
            allowed_mime_types: mimes,
            created_at: now,
            updated_at: now,
        };
        self.buckets.insert_bucket(&bucket).await?;
        Ok(bucket)
    }

    /// The caller organization's buckets and the project-wide ones, by name.
    ///
    /// # Errors
    /// [`Error::AuthMissing`]; store errors.
    pub async fn list_buckets(&self, caller: Option<&Principal>) -> Result<Vec<Bucket>, Error> {
        let p = caller.ok_or(Error::AuthMissing)?;
        self.buckets.list_buckets(p.active_org_id.clone()).await
    }

    /// One bucket, by name (the caller organization's first, else project-wide) or by id.
    ///
    /// # Errors
    /// [`Error::AuthMissing`]; [`Error::NotFound`]`(Bucket)` (also for another
    /// organization's id in hide mode; [`Error::FirewallOrgIsolation`] in reveal mode).
    pub async fn get_bucket(
        &self,
        caller: Option<&Principal>,
        bucket: &str,
    ) -> Result<Bucket, Error> {
        caller.ok_or(Error::AuthMissing)?;
        self.resolve_bucket(caller, bucket).await
    }

    /// Changes a bucket's scopes and limits; its name and organization are fixed.
    ///
    /// # Errors
    /// As [`ManagedService::get_bucket`], then [`Error::AccessAdminRequired`] /
    /// [`Error::AccessRoleRequired`], [`Error::Validation`] (also on `writeScope` when it
    /// would switch between per-user and per-organization keys while objects exist).
    pub async fn update_bucket(
        &self,
        caller: Option<&Principal>,
        bucket: &str,
        input: UpdateBucket,
    ) -> Result<Bucket, Error> {
        let p = caller.ok_or(Error::AuthMissing)?;
        let mut b = self.resolve_bucket(caller, bucket).await?;
        self.authorize_manage(p, b.organization_id.as_deref())?;

        let mut fields = Fields::default();
        if let Some(s) = input.read_scope.as_deref()
            && let Some(v) = fields.take(ReadScope::parse(s))?
        {
            b.read_scope = v;
        }
        if let Some(s) = input.write_scope.as_deref()
            && let Some(v) = fields.take(self.parse_write_scope(s))?
        {
            if v.is_per_user() != b.write_scope.is_per_user()
                && !self.rows.objects_in_bucket(&b.id, 1).await?.is_empty()
            {
                fields.0.push(FieldError::new(
                    "writeScope",
                    "cannot switch between 'user' and organization keys while the bucket holds objects",
                ));
            } else {
                b.write_scope = v;
            }
        }
        if let Some(limit) = input.file_size_limit
            && let Some(v) = fields.take(self.parse_size_limit(limit))?
        {
            b.file_size_limit = v;
        }
        if let Some(m) = &input.allowed_mime_types
            && let Some(v) = fields.take(parse_mimes(m))?
        {
            b.allowed_mime_types = v;
        }
        fields.finish()?;
        b.updated_at = self.clock.now();
        self.buckets.update_bucket(&b).await?;
        Ok(b)
    }

    /// Deletes a bucket. A non-empty one is refused unless `empty`, which first deletes
    /// every object (storage, then row) of it.
    ///
    /// # Errors
    /// As [`ManagedService::update_bucket`]'s lookup and access, then
    /// [`Error::BucketNotEmpty`]; storage and store errors (a failure while emptying leaves
    /// the rest for a retry).
    pub async fn delete_bucket(
        &self,
        caller: Option<&Principal>,
        bucket: &str,
        empty: bool,
    ) -> Result<(), Error> {
        let p = caller.ok_or(Error::AuthMissing)?;
        let b = self.resolve_bucket(caller, bucket).await?;
        self.authorize_manage(p, b.organization_id.as_deref())?;
        if empty {
            loop {
                let batch = self.rows.objects_in_bucket(&b.id, EMPTY_BATCH).await?;
                if batch.is_empty() {
                    break;
                }
                for row in &batch {
                    self.delete_row(row).await?;
                }
            }
        }
        self.buckets.delete_bucket(&b.id).await
    }

    // -----------------------------------------------------------------------------------
    // Objects by bucket and path
    // -----------------------------------------------------------------------------------

    /// Streams the body into `<owner>/<bucket>/<path>` and records it.
    ///
    /// # Errors
    /// In order: [`Error::AuthMissing`], [`Error::NotFound`]`(Bucket)`,
    /// [`Error::AccessNoOrg`], [`Error::AccessRoleRequired`], [`Error::Validation`] (`path`,
    /// `contentType`), [`Error::TooLarge`] (from `content_length`, before reading),
    /// [`Error::MimeNotAllowed`], [`Error::ObjectExists`] (without `upsert`, or while
    /// another uploader's upload to the path is pending, or over another member's object
    /// in a `user`-read bucket in hide mode), then storage errors (e.g.
    /// [`Error::Validation`] on `body` when the stream's length differs).
    ///
    /// Run it to completion even when the client leaves (e.g. in its own task): a failed
    /// body then purges its pending row; a dropped future leaves the row to reconcile.
    pub async fn upload(
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

    /// Streams one of the caller's objects (or a range of it).
    ///
    /// # Errors
    /// [`Error::AuthMissing`], [`Error::NotFound`]`(Bucket)`, [`Error::AccessNoOrg`],
    /// [`Error::Validation`] on `path`, [`Error::NotFound`]`(Object)`, the firewall per
    /// read scope, [`Error::RangeNotSatisfiable`] when not satisfiable.
    pub async fn download(
        &self,
        caller: Option<&Principal>,
        bucket: &str,
        path: &str,
        range: Option<ByteRange>,
    ) -> Result<Download, Error> {
        let (b, row) = self.find_by_path(caller, bucket, path).await?;
        self.open(caller, b, row, range).await
    }

    /// The row of one of the caller's objects, without touching storage.
    ///
    /// # Errors
    /// As [`ManagedService::download`].
    pub async fn head(
        &self,
        caller: Option<&Principal>,
        bucket: &str,
        path: &str,
    ) -> Result<ObjectInfo, Error> {
        let (b, row) = self.find_by_path(caller, bucket, path).await?;
        self.check_read(&b, &row, caller)?;
        Ok(ObjectInfo::new(&row, &b.name))
    }

    /// Deletes an object: soft-delete the row, delete the object, purge the row. A missing
    /// path succeeds (idempotent); a pending upload is cancelled.
    ///
    /// # Errors
    /// As [`ManagedService::upload`] up to validation of `path`; in a bucket read-scoped
    /// `user`, another member's object is missing in hide mode (200, nothing deleted) and
    /// [`Error::FirewallUserIsolation`] in reveal mode; storage and store errors.
    pub async fn delete(
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
            Some(row) if row.bucket_id == b.id => match self.check_row_owner(&b, &row, p) {
                Ok(()) => self.delete_row(&row).await,
                // Hidden: as for a missing path.
                Err(Error::NotFound(_)) => Ok(()),
                Err(e) => Err(e),
            },
            _ => Ok(()),
        }
    }

    /// The caller's objects in a bucket, by path, with keyset pagination.
    ///
    /// # Errors
    /// [`Error::AuthMissing`], [`Error::NotFound`]`(Bucket)`, [`Error::AccessNoOrg`],
    /// [`Error::Validation`] on `limit`, `prefix` or `cursor`.
    pub async fn list(
        &self,
        caller: Option<&Principal>,
        bucket: &str,
        input: ListObjects,
    ) -> Result<ObjectPage, Error> {
        let p = caller.ok_or(Error::AuthMissing)?;
        let b = self.resolve_bucket(caller, bucket).await?;
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

    /// Signs a direct PUT of exactly `size` bytes and records a `pending` row.
    ///
    /// # Errors
    /// As [`ManagedService::upload`] (the limits checked against `size`), then signer
    /// and store errors.
    pub async fn presign(
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
                    .with_expires_in(self.policy.upload_expiry)
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

    /// Confirms a presigned upload from the stored object's real metadata. Confirming a
    /// confirmed object returns it. Only the presign's uploader confirms a pending row,
    /// and only an object of the declared size and type.
    ///
    /// # Errors
    /// As [`ManagedService::delete`] up to `path`; [`Error::NotFound`]`(Object)` without
    /// a row, or for another user's pending row; [`Error::NotUploaded`] when storage has
    /// no object; [`Error::Validation`] on `size` or `contentType` when the object is not
    /// the declared one or breaks the bucket's limits (object and row are deleted).
    pub async fn confirm(
        &self,
        caller: Option<&Principal>,
        bucket: &str,
        path: &str,
    ) -> Result<ObjectInfo, Error> {
        let (p, b, owner) = self.enter_write(caller, bucket).await?;
        let path = ObjectPath::parse(path)?;
        let key = object_key(owner, &b.name, &path)?;
        let _key = self.locks.lock(key.as_str()).await;
        let row = match self.rows.find_object_by_key(&key).await? {
            Some(r) if r.bucket_id == b.id && r.deleted_at.is_none() => r,
            _ => return Err(Error::NotFound(Resource::Object)),
        };
        // A pending row is its presign's: nobody else may see or confirm it.
        if row.status == ObjectStatus::Pending && row.owner_id != p.user_id {
            return Err(Error::NotFound(Resource::Object));
        }
        self.check_row_owner(&b, &row, p)?;
        if row.status == ObjectStatus::Confirmed {
            return Ok(ObjectInfo::new(&row, &b.name));
        }
        let meta = match self.objects.head(self.storage.default_bucket(), &key).await {
            Ok(m) => m,
            Err(Error::NotFound(Resource::Object)) => return Err(Error::NotUploaded),
            Err(e) => return Err(e),
        };
        let ct = meta
            .content_type
            .as_deref()
            .and_then(|c| ContentType::parse(c).ok())
            .unwrap_or_else(|| row.content_type.clone());
        let max = b.effective_size_limit(self.policy.max_file_size);
        let broken = if meta.size != row.size {
            Some(FieldError::new(
                "size",
                format!(
                    "the uploaded object is {} bytes; the presign declared {}",
                    meta.size, row.size
                ),
            ))
        } else if ct != row.content_type {
            Some(FieldError::new(
                "contentType",
                format!(
                    "the uploaded object is '{ct}'; the presign declared '{}'",
                    row.content_type
                ),
            ))
        } else if meta.size > max.bytes() {
            Some(FieldError::new(
                "size",
                format!(
                    "the uploaded object is {} bytes; this bucket allows at most {max}",
                    meta.size
                ),
            ))
        } else if !mime_allowed(&b.allowed_mime_types, &ct) {
            Some(FieldError::new(
                "contentType",
                format!(
                    "'{ct}' is not allowed; this bucket allows {}",
                    b.allowed_mime_strings().join(", ")
                ),
            ))
        } else {
            None
        };
        if let Some(reason) = broken {
            self.objects
                .delete(self.storage.default_bucket(), &key)
                .await?;
            self.rows.purge_object(&row.id).await?;
            return Err(Error::Validation(vec![reason]));
        }
        let row = self
            .rows
            .confirm_object(
                &row.id,
                &ObjectConfirmation {
                    size: meta.size,
                    etag: meta.etag,
                    content_type: ct,
                    owner_id: row.owner_id.clone(),
                    at: self.clock.now(),
                },
            )
            .await?;
        Ok(ObjectInfo::new(&row, &b.name))
    }

    // -----------------------------------------------------------------------------------
    // Objects by key (`POST /storage/v1/url`, the files listener)
    // -----------------------------------------------------------------------------------

    /// A URL for an object: `<files_url>/public/<key>` in a public bucket, else one valid
    /// for `policy.url_expiry`: `<files_url>/<key>?token=…` when [`UrlTokens`] are set
    /// ([`ManagedService::with_url_tokens`]), a signed storage GET otherwise. Anonymous
    /// callers get public objects only.
    ///
    /// # Errors
    /// [`Error::NotFound`]`(Object)` for a missing or malformed key; then the read scope:
    /// [`Error::AuthMissing`], [`Error::AccessNoOrg`], the firewall.
    pub async fn url(&self, caller: Option<&Principal>, key: &str) -> Result<ObjectUrl, Error> {
        let (b, row) = self.find_by_key(key).await?;
        self.check_read(&b, &row, caller)
            .map_err(|e| self.policy.firewall.conceal(e, Resource::Object))?;
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

    /// Streams an object named by its key (the files listener's `GET /public/<key>` and
    /// `GET /<key>`). Anonymous callers get public objects only.
    ///
    /// # Errors
    /// As [`ManagedService::url`], then [`Error::RangeNotSatisfiable`].
    pub async fn download_key(
        &self,
        caller: Option<&Principal>,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<Download, Error> {
        let (b, row) = self.find_by_key(key).await?;
        self.check_read(&b, &row, caller)
            .map_err(|e| self.policy.firewall.conceal(e, Resource::Object))?;
        self.open(caller, b, row, range).await
    }

    /// Streams an object named by its key without a caller, when `granted` accepts the
    /// object's live row: for a `?token=` of a URL [`ManagedService::url`] gave, checked
    /// against the version it was minted for.
    ///
    /// # Errors
    /// [`Error::NotFound`]`(Object)` for a missing or malformed key or a row `granted`
    /// refuses, then storage errors ([`Error::RangeNotSatisfiable`]).
    pub async fn download_key_granted(
        &self,
        key: &str,
        granted: &(dyn Fn(&ObjectRow) -> bool + Send + Sync),
        range: Option<ByteRange>,
    ) -> Result<Download, Error> {
        let (b, row) = self.find_by_key(key).await?;
        if !granted(&row) {
            return Err(Error::NotFound(Resource::Object));
        }
        let body = self.fetch(&row, range).await?;
        Ok(Download {
            object: ObjectInfo::new(&row, &b.name),
            public: b.is_public(),
            body,
        })
    }

    /// `<files_url>/public/<key>`, each key segment percent-encoded.
    #[must_use]
    pub fn public_url(&self, key: &ObjectKey) -> String {
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

    // -----------------------------------------------------------------------------------
    // Objects by id (`GET /api/v1/files/{id}/download`)
    // -----------------------------------------------------------------------------------

    /// Streams an object named by its id (`obj_…`), for a caller of its organization.
    ///
    /// Checks, in order: authentication (401), an active organization (403
    /// `ACCESS_NO_ORG`), the firewall (the object's organization must be the caller's; an
    /// object uploaded without one belongs to its uploader: hide 404 / reveal 403; a
    /// missing or malformed id is 404), then the bucket's read scope as the access rule.
    ///
    /// # Errors
    /// As above, then [`Error::RangeNotSatisfiable`] when not satisfiable.
    pub async fn download_by_id(
        &self,
        caller: Option<&Principal>,
        id: &str,
        range: Option<ByteRange>,
    ) -> Result<Download, Error> {
        let (b, row) = self.find_by_id(caller, id).await?;
        self.open(caller, b, row, range).await
    }

    /// A signed storage GET (valid for `policy.url_expiry`) of an object named by its id,
    /// after the checks of [`ManagedService::download_by_id`].
    ///
    /// # Errors
    /// As [`ManagedService::download_by_id`], then signer errors.
    pub async fn sign_download_by_id(
        &self,
        caller: Option<&Principal>,
        id: &str,
    ) -> Result<ObjectUrl, Error> {
        let (b, row) = self.find_by_id(caller, id).await?;
        self.check_read(&b, &row, caller)?;
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

    // -----------------------------------------------------------------------------------
    // Layers
    // -----------------------------------------------------------------------------------

    /// Layer 2: a name resolves in the caller's organization, then project-wide; an id
    /// goes through the firewall.
    async fn resolve_bucket(
        &self,
        caller: Option<&Principal>,
        reference: &str,
    ) -> Result<Bucket, Error> {
        let caller_org = caller.and_then(|p| p.active_org_id.as_deref());
        if let Ok(id) = BucketId::parse(reference) {
            let b = self
                .buckets
                .find_bucket(&id)
                .await?
                .ok_or(Error::NotFound(Resource::Bucket))?;
            if let Some(org) = &b.organization_id {
                self.policy.firewall.check_org(
                    caller_org.unwrap_or_default(),
                    org,
                    Resource::Bucket,
                )?;
            }
            return Ok(b);
        }
        // A name that cannot exist is simply not found (the Account UI expects 404).
        let Ok(name) = BucketName::parse(reference) else {
            return Err(Error::NotFound(Resource::Bucket));
        };
        if let Some(org) = caller_org
            && let Some(b) = self
                .buckets
                .find_bucket_by_name(Some(org.to_owned()), &name)
                .await?
        {
            return Ok(b);
        }
        self.buckets
            .find_bucket_by_name(None, &name)
            .await?
            .ok_or(Error::NotFound(Resource::Bucket))
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
        self.check_limits(&b, size, &ct)?;
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
        let p = caller.ok_or(Error::AuthMissing)?;
        let b = self.resolve_bucket(caller, bucket).await?;
        let owner = owner_of(&b, p)?;
        if let WriteScope::Rule(rule) = &b.write_scope {
            rule.check(&self.policy.roles, p)?;
        }
        Ok((p, b, owner))
    }

    fn authorize_manage(&self, p: &Principal, bucket_org: Option<&str>) -> Result<(), Error> {
        match bucket_org {
            None if p.is_platform_admin() => Ok(()),
            None => Err(Error::AccessAdminRequired),
            Some(_) => self.policy.manage_rule.check(&self.policy.roles, p),
        }
    }

    /// The read scope (layers 1, 3 and 4 for one object). The uploader may always read.
    fn check_read(
        &self,
        b: &Bucket,
        row: &ObjectRow,
        caller: Option<&Principal>,
    ) -> Result<(), Error> {
        if b.read_scope == ReadScope::Public {
            return Ok(());
        }
        let p = caller.ok_or(Error::AuthMissing)?;
        match b.read_scope {
            ReadScope::Public | ReadScope::Authenticated => Ok(()),
            _ if p.user_id == row.owner_id => Ok(()),
            ReadScope::Org => {
                let org = p.active_org_id.as_deref().ok_or(Error::AccessNoOrg)?;
                self.policy.firewall.check_org(
                    org,
                    row.organization_id.as_deref().unwrap_or_default(),
                    Resource::Object,
                )
            }
            ReadScope::User => {
                self.policy
                    .firewall
                    .check_user(&p.user_id, &row.owner_id, Resource::Object)
            }
        }
    }

    /// In a `user`-read bucket rows are private to their uploader, for writes too.
    fn check_row_owner(&self, b: &Bucket, row: &ObjectRow, p: &Principal) -> Result<(), Error> {
        if b.read_scope == ReadScope::User {
            self.policy
                .firewall
                .check_user(&p.user_id, &row.owner_id, Resource::Object)
        } else {
            Ok(())
        }
    }

    /// Guards: size, then MIME type.
    fn check_limits(&self, b: &Bucket, size: u64, ct: &ContentType) -> Result<(), Error> {
        let max = b.effective_size_limit(self.policy.max_file_size).bytes();
        if size > max {
            return Err(Error::TooLarge { size, max });
        }
        if !mime_allowed(&b.allowed_mime_types, ct) {
            return Err(Error::MimeNotAllowed {
                content_type: ct.as_str().to_owned(),
                allowed: b.allowed_mime_strings(),
            });
        }
        Ok(())
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
            return match self.check_row_owner(b, &r, p) {
                Ok(()) => Ok(Claim::Replace(r.id)),
                Err(Error::NotFound(_)) => Err(Error::ObjectExists),
                Err(e) => Err(e),
            };
        }
        // Pending or soft-deleted. An upload in progress keeps the key, even against its own
        // uploader: its URL may still PUT, and its confirm must find its own row (a DELETE
        // of the path cancels it).
        let abandoned = r.deleted_at.is_some()
            || r.created_at + stale_pending_after(self.policy.upload_expiry) < self.clock.now();
        if !abandoned {
            return Err(Error::ObjectExists);
        }
        // Finish what its writer left: any object it stored goes, then the row.
        self.delete_row(&r).await?;
        Ok(Claim::Free)
    }

    /// The caller's live row at a path, with its bucket (layers 1–3 and validation).
    async fn find_by_path(
        &self,
        caller: Option<&Principal>,
        bucket: &str,
        path: &str,
    ) -> Result<(Bucket, ObjectRow), Error> {
        let p = caller.ok_or(Error::AuthMissing)?;
        let b = self.resolve_bucket(caller, bucket).await?;
        let owner = owner_of(&b, p)?;
        let path = ObjectPath::parse(path)?;
        let key = object_key(owner, &b.name, &path)?;
        match self.rows.find_object_by_key(&key).await? {
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
        let p = caller.ok_or(Error::AuthMissing)?;
        let org = p.active_org_id.as_deref().ok_or(Error::AccessNoOrg)?;
        let not_found = || Error::NotFound(Resource::Object);
        // A malformed id cannot exist: same answer as a missing one, without a lookup.
        let row = match ObjectId::parse(id) {
            Ok(id) => self.rows.find_object(&id).await?,
            Err(_) => None,
        }
        .filter(ObjectRow::is_live)
        .ok_or_else(not_found)?;
        match row.organization_id.as_deref() {
            Some(row_org) => self
                .policy
                .firewall
                .check_org(org, row_org, Resource::Object)?,
            None => self
                .policy
                .firewall
                .check_user(&p.user_id, &row.owner_id, Resource::Object)?,
        }
        let b = self
            .buckets
            .find_bucket(&row.bucket_id)
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
            .buckets
            .find_bucket(&row.bucket_id)
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
        self.check_read(&b, &row, caller)?;
        let body = self.fetch(&row, range).await?;
        Ok(Download {
            object: ObjectInfo::new(&row, &b.name),
            public: b.is_public(),
            body,
        })
    }

    /// GETs a row's object, refusing bytes that are not the ones the row describes (an
    /// upsert between its PUT and its row update, or drift): 503, retryable.
    async fn fetch(&self, row: &ObjectRow, range: Option<ByteRange>) -> Result<GetObject, Error> {
        let body = self
            .objects
            .get(self.storage.default_bucket(), &row.key, range)
            .await?;
        if etag_differs(row, &body.meta) {
            if let Some(hook) = &self.on_etag_mismatch {
                hook(&row.key);
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
        self.objects
            .delete(self.storage.default_bucket(), &row.key)
            .await?;
        self.rows.purge_object(&row.id).await
    }

    fn parse_write_scope(&self, raw: &str) -> Result<WriteScope, Error> {
        let scope = WriteScope::parse(raw)?;
        if let WriteScope::Rule(rule) = &scope {
            rule.check_against(&self.policy.roles, "writeScope")?;
        }
        Ok(scope)
    }

    fn parse_size_limit(&self, raw: Option<u64>) -> Result<Option<ByteSize>, Error> {
        let max = self.policy.max_file_size;
        match raw {
            None => Ok(None),
            Some(n) if (1..=max.bytes()).contains(&n) => Ok(Some(ByteSize(n))),
            Some(_) => Err(Error::invalid(
                "fileSizeLimit",
                format!("must be between 1 and {} bytes", max.bytes()),
            )),
        }
    }
}

/// Storage's etag is not the row's (a row without one, e.g. from an older version, or an
/// object without one cannot be compared).
fn etag_differs(row: &ObjectRow, meta: &ObjectMeta) -> bool {
    match (&row.etag, &meta.etag) {
        (Some(a), Some(b)) => a.trim_matches('"') != b.trim_matches('"'),
        _ => false,
    }
}

/// Layer 3: the segment the caller's paths in `b` live under.
fn owner_of<'p>(b: &Bucket, p: &'p Principal) -> Result<Owner<'p>, Error> {
    if b.write_scope.is_per_user() {
        Ok(Owner::User(&p.user_id))
    } else {
        p.active_org_id
            .as_deref()
            .map(Owner::Org)
            .ok_or(Error::AccessNoOrg)
    }
}

fn parse_mimes(raw: &[String]) -> Result<Vec<MimePattern>, Error> {
    let mut out: Vec<MimePattern> = Vec::with_capacity(raw.len());
    for m in raw {
        let p = MimePattern::parse(m)?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
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

fn rename_field(e: Error, field: &str) -> Error {
    match e {
        Error::Validation(fields) => Error::Validation(
            fields
                .into_iter()
                .map(|f| FieldError::new(field, f.message))
                .collect(),
        ),
        other => other,
    }
}
