//! The managed-mode use cases behind `/storage/v1/*`: buckets, uploads through the server,
//! presign + confirm, downloads, listings and URLs, over FILES_DB ([`BucketStore`],
//! [`ObjectRowStore`]) and one physical bucket ([`ObjectStore`], the [`Storage`] default).
//!
//! [`ManagedService`] is a façade over two rooms sharing one
//! [`AccessChecker`]: the bucket catalogue
//! (`managed/buckets.rs`) and the object service (`managed/objects.rs`); managed mode's
//! scope rules live in `managed/access.rs`, the judging of an arrived upload (shared with
//! reconcile) in `managed/arrival.rs`.
//!
//! # Check order
//! Every operation stops at the first failure, in this order (the steps of the shared
//! [`AccessChecker`], over `ManagedPolicy::shared`):
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

use super::bucket::Bucket;
use super::buckets::BucketCatalogue;
pub use super::buckets::{CreateBucket, UpdateBucket};
use super::object::{ObjectInfo, ObjectRow};
use super::objects::ObjectService;
pub use super::objects::{
    CreateObjectMultipart, DEFAULT_OBJECT_LIST_LIMIT, Download, ListObjects, MAX_OBJECT_LIST_LIMIT,
    ObjectPage, ObjectUrl, PresignUpload, PresignedUpload, Upload,
};
use super::ports::{BucketStore, ObjectRowStore};
use crate::domain::{AccessRule, Expiry, ObjectKey, Principal};
use crate::error::Error;
use crate::files::ReadableFile;
use crate::key_locks::KeyLocks;
use crate::multipart::{MultipartStarted, SignedParts};
use crate::policy::{AccessChecker, AccessPolicy};
use crate::ports::{ByteRange, Clock, CompletedPart, GetObject, ObjectStore, StoredPart};
use crate::storage::Storage;
use std::sync::Arc;
use time::OffsetDateTime;

/// Settings of managed mode.
#[derive(Debug, Clone)]
pub struct ManagedPolicy {
    /// Roles, firewall mode and upload limits, as for media. `max_upload_size` is the
    /// ceiling of every bucket's size limit, and the limit of buckets without one.
    pub shared: AccessPolicy,
    /// Base URL of the files listener; public objects are at `<files_url>/public/<key>`.
    pub files_url: String,
    /// Lifetime of the signed GET URLs [`ManagedService::url`] gives for private buckets.
    pub url_expiry: Expiry,
    /// Who may create, update and delete an organization's buckets (default `admin+`).
    /// Project-wide buckets are managed by platform admins only.
    pub manage_rule: AccessRule,
}

impl Default for ManagedPolicy {
    fn default() -> Self {
        Self {
            shared: AccessPolicy::default(),
            files_url: "http://127.0.0.1:8789".to_owned(),
            url_expiry: Expiry::DEFAULT,
            manage_rule: AccessRule::at_least("admin"),
        }
    }
}

/// Mints the `?token=` of the files listener's private URLs (`<files_url>/<key>?token=…`):
/// a credential for one version of one object (its key, id and etag) until `expires_at`,
/// so `<img src>` works without cookies, and an object deleted and uploaded again at the
/// same key (by anyone) is not served by an old URL. The server implements it (an HMAC
/// under its secret) and checks it when the URL is fetched
/// ([`ManagedService::download_key_granted`]).
pub trait UrlTokens: Send + Sync {
    /// A token for this version of `object`, valid until `expires_at`.
    fn mint(&self, object: &ObjectRow, expires_at: OffsetDateTime) -> String;
}

/// Called when storage holds other bytes than a row describes (the read is refused).
pub type EtagMismatchHook = Arc<dyn Fn(&ObjectKey) + Send + Sync>;

/// Managed mode's use cases: a façade over the bucket catalogue and the object service,
/// which share one access checker.
pub struct ManagedService {
    catalogue: BucketCatalogue,
    objects: ObjectService,
    policy: Arc<ManagedPolicy>,
}

impl std::fmt::Debug for ManagedService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedService")
            .field("storage", &self.objects.storage)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl ManagedService {
    /// The per-key locks of this service's writers.
    #[cfg(test)]
    pub(super) fn key_locks(&self) -> &crate::key_locks::KeyLocks {
        &self.objects.locks
    }

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
        let trimmed = policy.files_url.trim_end_matches('/').len();
        policy.files_url.truncate(trimmed);
        policy
            .manage_rule
            .check_against(&policy.shared.roles, "manageRule")?;
        let policy = Arc::new(policy);
        let access = Arc::new(AccessChecker::new(policy.shared.clone()));
        let catalogue = BucketCatalogue {
            buckets,
            rows: rows.clone(),
            clock: clock.clone(),
            access: access.clone(),
            policy: policy.clone(),
        };
        Ok(Self {
            objects: ObjectService {
                storage,
                locks: KeyLocks::default(),
                on_etag_mismatch: None,
                url_tokens: None,
                objects,
                rows,
                clock,
                catalogue: catalogue.clone(),
                access,
                policy: policy.clone(),
            },
            catalogue,
            policy,
        })
    }

    /// Private objects' URLs become `<files_url>/<key>?token=…` (minted by `tokens`)
    /// instead of signed storage URLs.
    #[must_use]
    pub fn with_url_tokens(mut self, tokens: Arc<dyn UrlTokens>) -> Self {
        self.objects.url_tokens = Some(tokens);
        self
    }

    /// `hook` hears of every read refused because storage's etag is not the row's.
    #[must_use]
    pub fn with_etag_mismatch_hook(mut self, hook: EtagMismatchHook) -> Self {
        self.objects.on_etag_mismatch = Some(hook);
        self
    }

    /// The policy the service was built with.
    #[must_use]
    pub fn policy(&self) -> &ManagedPolicy {
        &self.policy
    }

    // Buckets: the catalogue.

    /// Creates `avatars` and `org-logos` (project-wide) unless buckets of those names
    /// exist; existing ones are left as they are. Returns both. Idempotent and safe to run
    /// from several processes at once.
    ///
    /// # Errors
    /// Store errors ([`Error::Unavailable`]).
    pub async fn seed_default_buckets(&self) -> Result<Vec<Bucket>, Error> {
        self.catalogue.seed_default_buckets().await
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
        self.catalogue.create_bucket(caller, input).await
    }

    /// The caller organization's buckets and the project-wide ones, by name.
    ///
    /// # Errors
    /// [`Error::AuthMissing`]; store errors.
    pub async fn list_buckets(&self, caller: Option<&Principal>) -> Result<Vec<Bucket>, Error> {
        self.catalogue.list_buckets(caller).await
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
        self.catalogue.get_bucket(caller, bucket).await
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
        self.catalogue.update_bucket(caller, bucket, input).await
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
        let b = self.catalogue.managed_bucket(caller, bucket).await?;
        if empty {
            self.objects.empty_bucket(&b).await?;
        }
        self.catalogue.remove(&b.id).await
    }

    // Objects: the object service.

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
        self.objects.upload(caller, bucket, path, input).await
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
        self.objects.download(caller, bucket, path, range).await
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
        self.objects.head(caller, bucket, path).await
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
        self.objects.delete(caller, bucket, path).await
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
        self.objects.list(caller, bucket, input).await
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
        self.objects.presign(caller, bucket, path, input).await
    }

    /// Starts a multipart upload of `size` bytes at a path: the checks, limits and claim
    /// of [`ManagedService::presign`], then a `pending` row holding storage's upload id.
    ///
    /// # Errors
    /// As [`ManagedService::presign`], with [`Error::Validation`] on `size` (0) or
    /// `partSize` (see [`PartPlan::new`](crate::multipart::PartPlan::new)).
    pub async fn create_multipart(
        &self,
        caller: Option<&Principal>,
        bucket: &str,
        path: &str,
        input: CreateObjectMultipart,
    ) -> Result<MultipartStarted, Error> {
        self.objects
            .create_multipart(caller, bucket, path, input)
            .await
    }

    /// Presigns `UploadPart` URLs for a batch of an upload's parts, each with its exact
    /// `Content-Length`. Only the upload's creator, while the bucket lets it write.
    ///
    /// # Errors
    /// [`Error::AuthMissing`]; [`Error::NotFound`]`(Object)` for an unknown id or
    /// another user's; the bucket's write rule ([`Error::AccessRoleRequired`]);
    /// [`Error::NotFound`]`(Upload)` when the row is no upload in progress;
    /// [`Error::Validation`] on `partNumbers`.
    pub async fn sign_parts(
        &self,
        caller: Option<&Principal>,
        id: &str,
        part_numbers: &[u32],
    ) -> Result<SignedParts, Error> {
        self.objects.sign_parts(caller, id, part_numbers).await
    }

    /// The parts storage already holds for an upload, by part number.
    ///
    /// # Errors
    /// As [`ManagedService::sign_parts`] without the validation; storage errors.
    pub async fn list_parts(
        &self,
        caller: Option<&Principal>,
        id: &str,
    ) -> Result<Vec<StoredPart>, Error> {
        self.objects.list_parts(caller, id).await
    }

    /// Completes an upload after checking the client's part list against storage's
    /// (every part, in order, storage's ETags, the planned sizes), then confirms the row
    /// like [`ManagedService::confirm`].
    ///
    /// # Errors
    /// As [`ManagedService::list_parts`]; [`Error::Validation`] on `parts`,
    /// `parts[i].etag` or `size` (nothing completed); then as confirm (an object breaking
    /// the bucket's limits is deleted with its row: 400).
    pub async fn complete_multipart(
        &self,
        caller: Option<&Principal>,
        id: &str,
        parts: &[CompletedPart],
    ) -> Result<ObjectInfo, Error> {
        self.objects.complete_multipart(caller, id, parts).await
    }

    /// Aborts an upload at storage and removes its pending row.
    ///
    /// # Errors
    /// As [`ManagedService::list_parts`].
    pub async fn abort_multipart(&self, caller: Option<&Principal>, id: &str) -> Result<(), Error> {
        self.objects.abort_multipart(caller, id).await
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
        self.objects.confirm(caller, bucket, path).await
    }

    /// A URL for an object: `<files_url>/public/<key>` in a public bucket, else one valid
    /// for `policy.url_expiry`: `<files_url>/<key>?token=…` when [`UrlTokens`] are set
    /// ([`ManagedService::with_url_tokens`]), a signed storage GET otherwise. Anonymous
    /// callers get public objects only.
    ///
    /// # Errors
    /// [`Error::NotFound`]`(Object)` for a missing or malformed key; then the read scope:
    /// [`Error::AuthMissing`], [`Error::AccessNoOrg`], the firewall.
    pub async fn url(&self, caller: Option<&Principal>, key: &str) -> Result<ObjectUrl, Error> {
        self.objects.url(caller, key).await
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
        self.objects.download_key(caller, key, range).await
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
        self.objects.download_key_granted(key, granted, range).await
    }

    /// `<files_url>/public/<key>`, each key segment percent-encoded.
    #[must_use]
    pub fn public_url(&self, key: &ObjectKey) -> String {
        self.objects.public_url(key)
    }

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
        self.objects.download_by_id(caller, id, range).await
    }

    /// An object named by its id that the caller may read, after the checks of
    /// [`ManagedService::download_by_id`], without touching storage: for
    /// [`FileAccess`](crate::files::FileAccess).
    ///
    /// # Errors
    /// As [`ManagedService::download_by_id`] up to storage.
    pub async fn read_grant_by_id(
        &self,
        caller: Option<&Principal>,
        id: &str,
    ) -> Result<ReadableFile, Error> {
        self.objects.read_grant_by_id(caller, id).await
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
        self.objects.sign_download_by_id(caller, id).await
    }

    /// Streams an authorised object's bytes, refusing other bytes than its row's.
    ///
    /// # Errors
    /// As [`ManagedService::download_by_id`]'s storage part.
    pub(crate) async fn read(
        &self,
        file: &ReadableFile,
        range: Option<ByteRange>,
    ) -> Result<GetObject, Error> {
        self.objects.read(file, range).await
    }
}
