//! Presign-only media use cases (`/api/v1/media/*`): sign an upload into the caller's
//! organization, sign a download of one of its files, list its files.
//!
//! Every operation runs the security layers in the spec's order (§6.5), stopping at the
//! first failure; steps 1–5 are those of the [`AccessChecker`] managed mode uses too,
//! over the same [`AccessPolicy`] (`MediaPolicy::shared`):
//!
//! 1. **Authentication** (401 `AUTH_MISSING`): no caller, unless the operation's rule is
//!    `PUBLIC`. Every call under a `PUBLIC` rule is audit-logged first, refused or not;
//!    when the audit log cannot be written the call fails.
//! 2. **Organization context** (403 `ACCESS_NO_ORG`): every media operation is scoped to the
//!    caller's active organization. Without one the firewall has nothing to compare, so
//!    this comes before it, and it applies under `PUBLIC` too (an anonymous caller has no
//!    organization: `PUBLIC` lets it past authentication, not past the scope).
//! 3. **Firewall** (`sign_download` only; 404 `FIREWALL_NOT_FOUND` in hide mode, 403
//!    `FIREWALL_ORG_ISOLATION` in reveal mode): the row must belong to the caller's
//!    organization. Uploads and listings are scoped by construction.
//! 4. **Access** (403 `ACCESS_ROLE_REQUIRED`): the operation's
//!    [`AccessRule`](crate::domain::AccessRule). Platform admins pass; they do not pass
//!    steps 2 and 3.
//! 5. **Validation** (400 `VALIDATION_FAILED`), then **guards** (413 `STORAGE_FILE_TOO_LARGE`).
//!
//! # Lifecycle
//! `sign_upload` records a `pending` row. [`MediaService::confirm`] (and, on first use,
//! `sign_download` and `open_download`) HEADs the object: missing → 409 `NotUploaded`, the
//! row stays pending; over the size limit (413), of another size than signed or of another
//! type (400) → the object, then the row, are deleted; otherwise the row gets the object's
//! real size, etag and type and becomes `confirmed`. Listings show confirmed rows unless
//! asked otherwise.

use crate::domain::{
    AccessRules, BucketName, ByteSize, ContentType, Expiry, MediaId, MediaOperation, ObjectKey,
    Principal, key_safe_filename, validate_filename,
};
use crate::error::{Error, FieldError, Resource};
use crate::files::ReadableFile;
use crate::policy::{AccessChecker, AccessPolicy, FileOwner, Scoped};
use crate::ports::{
    AuditEntry, AuditLog, ByteRange, Clock, GetObject, Media, MediaConfirmation, MediaCursor,
    MediaPage, MediaStatus, MediaStore, ObjectMeta, ObjectStore,
};
use crate::storage::{GetOptions, PutOptions, SignedGet, Storage};
use std::collections::BTreeMap;
use std::sync::Arc;
use time::OffsetDateTime;

/// Limits and rules of the media routes.
#[derive(Debug, Clone, Default)]
pub struct MediaPolicy {
    /// Roles, firewall mode and upload limits, as in managed mode. `max_upload_size` is
    /// the largest declared size a client may sign an upload for.
    pub shared: AccessPolicy,
    /// Who may call each operation (default `member+` for all).
    pub rules: AccessRules,
    /// Refuse `sign_upload` without a `size`, so storage itself refuses any other size
    /// (the size is signed as `Content-Length`).
    pub require_size: bool,
}

/// The HTTP request an operation serves, as recorded in the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// The matched route, e.g. `/api/v1/media/{id}/sign-download`.
    pub route: String,
    /// The HTTP method, e.g. `POST`.
    pub method: String,
    /// The client address, when known.
    pub ip: Option<String>,
}

impl RequestInfo {
    /// A request of `method` on `route`, from an unknown address.
    pub fn new(method: impl Into<String>, route: impl Into<String>) -> Self {
        Self {
            route: route.into(),
            method: method.into(),
            ip: None,
        }
    }

    /// Sets the client address.
    #[must_use]
    pub fn with_ip(mut self, ip: impl Into<String>) -> Self {
        self.ip = Some(ip.into());
        self
    }
}

/// Input of [`MediaService::sign_upload`], as the client sent it.
#[derive(Debug, Clone, Default)]
pub struct SignUpload {
    /// The file's name, checked by [`validate_filename`]; kept verbatim in the row, and
    /// as [`key_safe_filename`] makes it in the key.
    pub filename: String,
    /// The media type the PUT must send (normalised, then signed).
    pub content_type: String,
    /// The size in bytes, signed as `Content-Length` when given; required when
    /// [`MediaPolicy::require_size`] is set.
    pub size: Option<u64>,
}

/// Input of [`MediaService::sign_download`], as the client sent it.
#[derive(Debug, Clone, Default)]
pub struct SignDownload {
    /// The URL's lifetime in seconds (1–604800); `None`: 600.
    pub expires_in: Option<u64>,
    /// A name to download as (`Content-Disposition: attachment`), under the rules of
    /// [`SignUpload::filename`].
    pub download_filename: Option<String>,
}

/// Result of [`MediaService::sign_upload`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedUpload {
    /// The new pending row's id, for confirm.
    pub id: MediaId,
    /// The presigned, create-only PUT URL.
    pub upload_url: String,
    /// The object key the URL writes: `org/<orgId>/<uuid>-<safe filename>`.
    pub key: ObjectKey,
    /// Headers the PUT must send exactly as given (they are signed, `If-None-Match: *`
    /// included).
    pub headers: BTreeMap<String, String>,
    /// When the URL stops working (the row records it too).
    pub expires_at: OffsetDateTime,
}

/// Rows per page of [`MediaService::list`] when no `limit` is given.
pub const DEFAULT_LIST_LIMIT: u32 = 50;
/// The largest `limit` [`MediaService::list`] accepts.
pub const MAX_LIST_LIMIT: u32 = 200;

/// Longest `resource` written to the audit log; the id comes from the URL, unvalidated.
const MAX_AUDITED_RESOURCE: usize = 128;

/// The presign-only media use cases (see the module docs): sign an upload, confirm it,
/// sign a download, list the organization's files.
pub struct MediaService {
    storage: Storage,
    objects: Arc<dyn ObjectStore>,
    media: Arc<dyn MediaStore>,
    audit: Arc<dyn AuditLog>,
    clock: Arc<dyn Clock>,
    policy: MediaPolicy,
    access: AccessChecker,
}

impl std::fmt::Debug for MediaService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaService")
            .field("storage", &self.storage)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl MediaService {
    /// A service over these ports, applying `policy`.
    ///
    /// # Errors
    /// [`Error::Validation`] on `access.<operation>` when a `role+` rule names a role
    /// missing from `policy.shared.roles` (it would admit nobody).
    pub fn new(
        storage: Storage,
        objects: Arc<dyn ObjectStore>,
        media: Arc<dyn MediaStore>,
        audit: Arc<dyn AuditLog>,
        clock: Arc<dyn Clock>,
        policy: MediaPolicy,
    ) -> Result<Self, Error> {
        policy.rules.check_against(&policy.shared.roles)?;
        Ok(Self {
            storage,
            objects,
            media,
            audit,
            clock,
            access: AccessChecker::new(policy.shared.clone()),
            policy,
        })
    }

    /// The limits and rules the service applies.
    #[must_use]
    pub fn policy(&self) -> &MediaPolicy {
        &self.policy
    }

    /// Layers 1 and 2 of the module docs: authentication (with the audit of `PUBLIC`
    /// calls) and the organization context.
    async fn enter<'p>(
        &self,
        op: MediaOperation,
        caller: Option<&'p Principal>,
        request: &RequestInfo,
        resource: Option<&str>,
    ) -> Result<Scoped<'p>, Error> {
        let public = self.policy.rules.rule(op).is_public();
        if public {
            self.audit
                .record(&AuditEntry {
                    at: self.clock.now(),
                    route: request.route.clone(),
                    method: request.method.clone(),
                    ip: request.ip.clone(),
                    user_id: caller.map(|p| p.user_id.clone()),
                    resource: resource.map(|r| r.chars().take(MAX_AUDITED_RESOURCE).collect()),
                })
                .await?;
        }
        self.access.scoped(caller, public)
    }

    /// Layer 4: the operation's access rule.
    fn authorize(&self, op: MediaOperation, principal: &Principal) -> Result<(), Error> {
        self.access.rule(self.policy.rules.rule(op), principal)
    }

    /// Signs a PUT into `org/<org>/<uuid>-<filename>` and records a `pending` row.
    ///
    /// # Errors
    /// The layers of the module docs in order ([`Error::AuthMissing`],
    /// [`Error::AccessNoOrg`], [`Error::AccessRoleRequired`], [`Error::Validation`] for
    /// every bad field at once, `size` included when [`MediaPolicy::require_size`] is set
    /// and none was given, [`Error::TooLarge`]), then audit, signer and store errors.
    pub async fn sign_upload(
        &self,
        caller: Option<&Principal>,
        request: &RequestInfo,
        input: SignUpload,
    ) -> Result<SignedUpload, Error> {
        let op = MediaOperation::SignUpload;
        let Scoped { principal, org } = self.enter(op, caller, request, None).await?;
        self.authorize(op, principal)?;
        let mut fields = Vec::new();
        gather(validate_filename("filename", &input.filename), &mut fields)?;
        let content_type = gather(ContentType::parse(input.content_type), &mut fields)?;
        if self.policy.require_size && input.size.is_none() {
            fields.push(FieldError::new(
                "size",
                "is required: this server signs the exact size of every upload",
            ));
        }
        let (Some(content_type), true) = (content_type, fields.is_empty()) else {
            return Err(Error::Validation(fields));
        };
        if let Some(size) = input.size {
            self.access.size(size, self.policy.shared.max_upload_size)?;
        }

        let id = MediaId::generate();
        let raw_key = format!(
            "org/{org}/{}-{}",
            uuid::Uuid::now_v7(),
            key_safe_filename(&input.filename)
        );
        let key = ObjectKey::parse(raw_key).map_err(|_| {
            Error::Validation(vec![FieldError::new(
                "orgId",
                "the active organization id cannot be used in an object key",
            )])
        })?;
        // Create-only: a replayed URL can never change the bytes under a confirmed row.
        let mut opts = PutOptions::default()
            .with_content_type(content_type.clone())
            .with_expires_in(self.policy.shared.upload_expiry)
            .with_create_only();
        if let Some(size) = input.size {
            opts = opts.with_content_length(size);
        }
        let signed = self.storage.sign_put_url(&key, opts).await?;
        let row = Media {
            id: id.clone(),
            bucket: self.storage.default_bucket().clone(),
            key: key.clone(),
            organization_id: org.to_owned(),
            uploader_id: principal.user_id.clone(),
            filename: input.filename,
            content_type,
            declared_size: input.size,
            created_at: self.clock.now(),
            status: MediaStatus::Pending,
            size: None,
            etag: None,
            upload_expires_at: Some(signed.expires_at),
            multipart: None,
        };
        self.media.insert(&row).await?;
        Ok(SignedUpload {
            id,
            upload_url: signed.url,
            key,
            headers: signed.headers,
            expires_at: signed.expires_at,
        })
    }

    /// Signs a GET of one of the caller organization's files.
    ///
    /// # Errors
    /// The layers of the module docs in order: [`Error::AuthMissing`],
    /// [`Error::AccessNoOrg`]; [`Error::NotFound`]`(Media)` for an unknown or malformed id
    /// and, in hide mode, for another organization's ([`Error::FirewallOrgIsolation`] in
    /// reveal mode); [`Error::AccessRoleRequired`]; then, for a pending row, the errors of
    /// [`MediaService::confirm`]; [`Error::Validation`] for `expiresIn` or
    /// `downloadFilename`.
    pub async fn sign_download(
        &self,
        caller: Option<&Principal>,
        request: &RequestInfo,
        id: &str,
        input: SignDownload,
    ) -> Result<SignedGet, Error> {
        let row = self
            .open_row(MediaOperation::SignDownload, caller, request, id)
            .await?;
        // Validation before the state check (confirming a pending row), as everywhere.
        let mut opts = GetOptions::default().with_bucket(row.bucket.clone());
        if let Some(secs) = input.expires_in {
            opts = opts.with_expires_in(Expiry::from_secs(secs)?);
        }
        if let Some(name) = input.download_filename {
            validate_filename("downloadFilename", &name)?;
            opts = opts.with_download_filename(name);
        }
        let row = self.settle(row).await?;
        self.storage.sign_get_url(&row.key, opts).await
    }

    /// The row of one of the caller organization's files, after the same checks as
    /// [`MediaService::sign_download`] (its access rule included, and the confirmation of
    /// a pending row): for routes that stream the bytes through the server
    /// (`GET /api/v1/files/{id}/download`).
    ///
    /// # Errors
    /// As [`MediaService::sign_download`], without the validation of its input.
    pub async fn open_download(
        &self,
        caller: Option<&Principal>,
        request: &RequestInfo,
        id: &str,
    ) -> Result<Media, Error> {
        let row = self
            .open_row(MediaOperation::SignDownload, caller, request, id)
            .await?;
        self.settle(row).await
    }

    /// Streams the bytes of a file [`FileAccess`](crate::files::FileAccess) authorised.
    ///
    /// # Errors
    /// Storage errors ([`Error::Validation`] on `range` when not satisfiable).
    pub(crate) async fn read(
        &self,
        file: &ReadableFile,
        range: Option<ByteRange>,
    ) -> Result<GetObject, Error> {
        self.objects.get(&file.bucket, &file.key, range).await
    }

    /// Confirms an upload from the stored object's real metadata (`POST
    /// /api/v1/media/{id}/confirm`), under the `sign_upload` rule. Confirming a confirmed
    /// row returns it unchanged.
    ///
    /// # Errors
    /// As [`MediaService::sign_download`] up to the access rule (that of `sign_upload`);
    /// [`Error::NotUploaded`] when storage has no object (the row stays pending);
    /// [`Error::TooLarge`] when the object exceeds the maximum upload size, and
    /// [`Error::Validation`] on `size` or `contentType` when it is not what was signed: in
    /// both cases the object, then the row, are deleted first.
    pub async fn confirm(
        &self,
        caller: Option<&Principal>,
        request: &RequestInfo,
        id: &str,
    ) -> Result<Media, Error> {
        let row = self
            .open_row(MediaOperation::SignUpload, caller, request, id)
            .await?;
        self.settle(row).await
    }

    /// Layers 1 to 4 for one row, under `op`'s rule.
    async fn open_row(
        &self,
        op: MediaOperation,
        caller: Option<&Principal>,
        request: &RequestInfo,
        id: &str,
    ) -> Result<Media, Error> {
        let scope = self.enter(op, caller, request, Some(id)).await?;
        // A malformed id cannot exist: same answer as a missing one, without a lookup.
        let row = match MediaId::parse(id) {
            Ok(id) => self.media.find(&id).await?,
            Err(_) => None,
        }
        .ok_or(Error::NotFound(Resource::Media))?;
        self.access
            .firewall(scope, FileOwner::Org(&row.organization_id), Resource::Media)?;
        self.authorize(op, scope.principal)?;
        Ok(row)
    }

    /// A confirmed row as it is; a pending one confirmed from storage, or refused (and
    /// removed with its object when the object breaks the rules).
    async fn settle(&self, row: Media) -> Result<Media, Error> {
        if row.status == MediaStatus::Confirmed {
            return Ok(row);
        }
        let meta = match self.objects.head(&row.bucket, &row.key).await {
            Ok(m) => m,
            Err(Error::NotFound(Resource::Object)) => return Err(Error::NotUploaded),
            Err(e) => return Err(e),
        };
        settle_arrival(
            self.objects.as_ref(),
            self.media.as_ref(),
            &row.bucket,
            &row,
            &meta,
            self.policy.shared.max_upload_size,
        )
        .await?
    }

    /// The caller organization's rows, newest first: confirmed ones by default, `status`
    /// `pending`, `confirmed` or `all` otherwise ([`page_request`](Self::page_request),
    /// then [`page`](Self::page)).
    ///
    /// # Errors
    /// As [`page_request`](Self::page_request), then store errors.
    pub async fn list(
        &self,
        caller: Option<&Principal>,
        request: &RequestInfo,
        limit: Option<u32>,
        cursor: Option<&str>,
        status: Option<&str>,
    ) -> Result<MediaPage, Error> {
        let query = self
            .page_request(caller, request, limit, cursor, status)
            .await?;
        self.page(&query).await
    }

    /// What a listing asks the store, once the caller passed every layer: the page is
    /// then [`page`](Self::page)'s answer to it, the same for every caller it was made
    /// for.
    ///
    /// # Errors
    /// The layers of the module docs in order ([`Error::AuthMissing`],
    /// [`Error::AccessNoOrg`], [`Error::AccessRoleRequired`]), then [`Error::Validation`]
    /// for `limit` outside 1..=200, a foreign cursor or an unknown `status`.
    pub async fn page_request(
        &self,
        caller: Option<&Principal>,
        request: &RequestInfo,
        limit: Option<u32>,
        cursor: Option<&str>,
        status: Option<&str>,
    ) -> Result<PageRequest, Error> {
        let op = MediaOperation::List;
        let Scoped { principal, org } = self.enter(op, caller, request, None).await?;
        self.authorize(op, principal)?;
        let limit = limit.unwrap_or(DEFAULT_LIST_LIMIT);
        if !(1..=MAX_LIST_LIMIT).contains(&limit) {
            return Err(Error::invalid("limit", "must be between 1 and 200"));
        }
        let status = match status.unwrap_or("confirmed") {
            "all" => None,
            raw => Some(
                MediaStatus::parse(raw)
                    .map_err(|_| Error::invalid("status", "must be confirmed, pending or all"))?,
            ),
        };
        let after = cursor.map(MediaCursor::decode).transpose()?;
        Ok(PageRequest {
            organization_id: org.to_owned(),
            status,
            limit,
            after,
        })
    }

    /// The page `query` asks for.
    ///
    /// # Errors
    /// Store errors.
    pub async fn page(&self, query: &PageRequest) -> Result<MediaPage, Error> {
        self.media
            .list(
                &query.organization_id,
                query.status,
                query.limit,
                query.after.clone(),
            )
            .await
    }

    /// The media store's [`change_token`](MediaStore::change_token): while it reads the
    /// same, a page read after it is still the page.
    ///
    /// # Errors
    /// Store errors.
    pub async fn change_token(&self) -> Result<Option<u64>, Error> {
        self.media.change_token().await
    }
}

/// A listing's question to the store, made by [`MediaService::page_request`] after the
/// caller's checks. Equal requests get equal pages while the store's
/// [`change_token`](MediaStore::change_token) reads the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageRequest {
    /// The caller's organization: a page never holds another's rows.
    pub organization_id: String,
    /// `None` lists every status.
    pub status: Option<MediaStatus>,
    /// 1..=200.
    pub limit: u32,
    /// Rows strictly older than this.
    pub after: Option<MediaCursor>,
}

/// Settles a pending row from the object that arrived for it: confirmed with the
/// object's real size, etag and type, or refused by [`check_arrival`] (the object in
/// `bucket`, then the row, deleted; `Ok(Err)` carries the refusal). Confirm and reconcile
/// both settle through it.
///
/// # Errors
/// Storage and store errors.
pub(crate) async fn settle_arrival(
    objects: &dyn ObjectStore,
    media: &dyn MediaStore,
    bucket: &BucketName,
    row: &Media,
    meta: &ObjectMeta,
    max: ByteSize,
) -> Result<Result<Media, Error>, Error> {
    match check_arrival(row, meta, max) {
        Ok(confirmation) => media.confirm(&row.id, &confirmation).await.map(Ok),
        Err(refused) => {
            // Object first: a failure here leaves a pending row that purge clears.
            objects.delete(bucket, &row.key).await?;
            media.delete(&row.id).await?;
            Ok(Err(refused))
        }
    }
}

/// Whether an object that arrived for a pending row may be kept: within `max`, of the
/// signed size when one was signed, of the signed type when storage reports one. Shared
/// by confirm and reconcile so both judge alike.
///
/// # Errors
/// [`Error::TooLarge`] over `max`; [`Error::Validation`] on `size` or `contentType`.
fn check_arrival(
    row: &Media,
    meta: &ObjectMeta,
    max: ByteSize,
) -> Result<MediaConfirmation, Error> {
    if meta.size > max.bytes() {
        return Err(Error::TooLarge {
            size: meta.size,
            max: max.bytes(),
        });
    }
    if let Some(declared) = row.declared_size
        && declared != meta.size
    {
        return Err(Error::invalid(
            "size",
            format!(
                "the uploaded object is {} bytes; {declared} were signed",
                meta.size
            ),
        ));
    }
    let stored = match meta.content_type.as_deref() {
        None => row.content_type.clone(),
        Some(raw) => match ContentType::parse(raw) {
            Ok(ct) if ct.as_str().eq_ignore_ascii_case(row.content_type.as_str()) => ct,
            _ => {
                return Err(Error::invalid(
                    "contentType",
                    format!(
                        "the uploaded object is '{raw}'; '{}' was signed",
                        row.content_type
                    ),
                ));
            }
        },
    };
    Ok(MediaConfirmation {
        size: meta.size,
        etag: meta.etag.clone(),
        content_type: stored,
    })
}

mod multipart;
#[cfg(test)]
mod multipart_tests;
#[cfg(test)]
mod tests;

pub use multipart::CreateMultipart;

/// Collects a field's validation errors into `fields`, so one answer names every bad
/// field; any other error is returned.
pub(crate) fn gather<T>(
    result: Result<T, Error>,
    fields: &mut Vec<FieldError>,
) -> Result<Option<T>, Error> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(Error::Validation(mut f)) => {
            fields.append(&mut f);
            Ok(None)
        }
        Err(e) => Err(e),
    }
}
