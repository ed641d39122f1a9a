//! Multipart uploads of presign-only media (`/api/v1/media/multipart`, `…/{id}/parts`,
//! `…/{id}/complete`): the same layers and access rule as `sign_upload`; only the
//! uploader may sign parts, list, complete or abort (anyone else: 404 as for a missing
//! id). Completion checks the client's list against storage's, completes at storage,
//! then confirms the row like [`MediaService::confirm`] (size, type, limit).

use super::{MediaService, RequestInfo, gather, settle_arrival};
use crate::domain::{
    ContentType, MediaId, MediaOperation, ObjectKey, Principal, key_safe_filename,
    validate_filename,
};
use crate::error::{Error, FieldError, Resource};
use crate::multipart::{MultipartStarted, PartPlan, SignedParts};
use crate::policy::Scoped;
use crate::ports::{CompletedPart, Media, MediaStatus, MultipartRef, StoredPart};
use crate::storage::PartToSign;

/// Input of [`MediaService::create_multipart`], as the client sent it.
#[derive(Debug, Clone, Default)]
pub struct CreateMultipart {
    /// The file's name, under the rules of [`super::SignUpload::filename`].
    pub filename: String,
    /// The completed object's media type.
    pub content_type: String,
    /// The declared total size in bytes (fixes the part plan).
    pub size: u64,
    /// The part size the client wants (see [`PartPlan::new`]).
    pub part_size: Option<u64>,
}

impl MediaService {
    /// Starts a multipart upload into `org/<org>/<uuid>-<filename>` and records a
    /// `pending` row holding its upload id, until `multipart_max_age` from now.
    ///
    /// # Errors
    /// As [`MediaService::sign_upload`] (the size is required), with
    /// [`Error::Validation`] on `size` (0) or `partSize` (see [`PartPlan::new`]); then
    /// storage and store errors (a failed insert aborts the new upload).
    pub async fn create_multipart(
        &self,
        caller: Option<&Principal>,
        request: &RequestInfo,
        input: CreateMultipart,
    ) -> Result<MultipartStarted, Error> {
        let op = MediaOperation::SignUpload;
        let Scoped { principal, org } = self.enter(op, caller, request, None).await?;
        self.authorize(op, principal)?;
        let mut fields = Vec::new();
        gather(validate_filename("filename", &input.filename), &mut fields)?;
        let content_type = gather(ContentType::parse(input.content_type), &mut fields)?;
        let plan = gather(PartPlan::new(input.size, input.part_size), &mut fields)?;
        let (Some(content_type), Some(plan), true) = (content_type, plan, fields.is_empty()) else {
            return Err(Error::Validation(fields));
        };
        self.access
            .size(input.size, self.policy.shared.max_upload_size)?;

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
        let bucket = self.storage.default_bucket().clone();
        let upload_id = self
            .objects
            .create_multipart(&bucket, &key, Some(content_type.clone()))
            .await?;
        let now = self.clock.now();
        let expires_at = now + self.policy.shared.multipart_max_age;
        let row = Media {
            id: MediaId::generate(),
            bucket: bucket.clone(),
            key: key.clone(),
            organization_id: org.to_owned(),
            uploader_id: principal.user_id.clone(),
            filename: input.filename,
            content_type,
            declared_size: Some(input.size),
            created_at: now,
            status: MediaStatus::Pending,
            size: None,
            etag: None,
            upload_expires_at: Some(expires_at),
            multipart: Some(MultipartRef {
                upload_id: upload_id.clone(),
                part_size: plan.part_size(),
            }),
        };
        if let Err(e) = self.media.insert(&row).await {
            // Best effort: an upload left behind is purge's (it ages out).
            let _ = self
                .objects
                .abort_multipart(&bucket, &key, &upload_id)
                .await;
            return Err(e);
        }
        Ok(MultipartStarted {
            id: row.id.to_string(),
            upload_id,
            key,
            part_size: plan.part_size(),
            part_count: plan.part_count(),
            expires_at,
        })
    }

    /// Presigns `UploadPart` URLs for a batch of the upload's parts, each with its exact
    /// `Content-Length`, valid for the upload expiry.
    ///
    /// # Errors
    /// As [`MediaService::confirm`] up to the access rule (another uploader's row is
    /// [`Error::NotFound`]`(Media)` too); [`Error::NotFound`]`(Upload)` when the row is
    /// no multipart upload in progress; [`Error::Validation`] on `partNumbers`.
    pub async fn sign_parts(
        &self,
        caller: Option<&Principal>,
        request: &RequestInfo,
        id: &str,
        part_numbers: &[u32],
    ) -> Result<SignedParts, Error> {
        let (row, mp, plan) = self.open_upload(caller, request, id).await?;
        let batch = plan.check_batch(part_numbers)?;
        let expiry = self.policy.shared.upload_expiry;
        let mut parts = Vec::with_capacity(batch.len());
        for (part_number, content_length) in batch {
            let part = PartToSign {
                upload_id: &mp.upload_id,
                part_number,
                content_length,
            };
            parts.push(
                self.storage
                    .sign_part_url(&row.bucket, &row.key, &part, expiry)
                    .await?,
            );
        }
        let expires_at = parts
            .first()
            .map_or_else(|| self.clock.now() + expiry.duration(), |p| p.expires_at);
        Ok(SignedParts { parts, expires_at })
    }

    /// The parts storage already holds for the upload, by part number (to resume).
    ///
    /// # Errors
    /// As [`MediaService::sign_parts`] without the validation; storage errors.
    pub async fn list_parts(
        &self,
        caller: Option<&Principal>,
        request: &RequestInfo,
        id: &str,
    ) -> Result<Vec<StoredPart>, Error> {
        let (row, mp, _) = self.open_upload(caller, request, id).await?;
        self.objects
            .list_parts(&row.bucket, &row.key, &mp.upload_id)
            .await
    }

    /// Completes the upload: the client's part list must be every part, in order, with
    /// the ETags storage holds and the planned sizes; then storage completes it and the
    /// row is confirmed from the object like [`MediaService::confirm`]. Completing a
    /// confirmed row returns it unchanged.
    ///
    /// # Errors
    /// As [`MediaService::sign_parts`]; [`Error::Validation`] on `parts`,
    /// `parts[i].etag` or `size` (nothing completed or confirmed); then the errors of
    /// [`MediaService::confirm`]'s check of the object.
    pub async fn complete_multipart(
        &self,
        caller: Option<&Principal>,
        request: &RequestInfo,
        id: &str,
        parts: &[CompletedPart],
    ) -> Result<Media, Error> {
        let row = self
            .open_row(MediaOperation::SignUpload, caller, request, id)
            .await?;
        Self::uploader_only(caller, &row)?;
        if row.status == MediaStatus::Confirmed {
            return Ok(row);
        }
        let (mp, plan) = Self::plan_of(&row)?;
        let stored = self
            .objects
            .list_parts(&row.bucket, &row.key, &mp.upload_id)
            .await?;
        let list = plan.check_completion(parts, &stored)?;
        self.objects
            .complete_multipart(&row.bucket, &row.key, &mp.upload_id, &list)
            .await?;
        let meta = self.objects.head(&row.bucket, &row.key).await?;
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

    /// Aborts the upload at storage (its parts are dropped) and removes the pending row.
    ///
    /// # Errors
    /// As [`MediaService::list_parts`].
    pub async fn abort_multipart(
        &self,
        caller: Option<&Principal>,
        request: &RequestInfo,
        id: &str,
    ) -> Result<(), Error> {
        let (row, mp, _) = self.open_upload(caller, request, id).await?;
        self.objects
            .abort_multipart(&row.bucket, &row.key, &mp.upload_id)
            .await?;
        self.media.delete(&row.id).await
    }

    /// Layers 1–4 under the `sign_upload` rule, the uploader check, and the row's
    /// upload in progress with its plan.
    async fn open_upload(
        &self,
        caller: Option<&Principal>,
        request: &RequestInfo,
        id: &str,
    ) -> Result<(Media, MultipartRef, PartPlan), Error> {
        let row = self
            .open_row(MediaOperation::SignUpload, caller, request, id)
            .await?;
        Self::uploader_only(caller, &row)?;
        if row.status != MediaStatus::Pending {
            return Err(Error::NotFound(Resource::Upload));
        }
        let (mp, plan) = Self::plan_of(&row)?;
        Ok((row, mp, plan))
    }

    /// An upload is its uploader's: anyone else is told it does not exist.
    fn uploader_only(caller: Option<&Principal>, row: &Media) -> Result<(), Error> {
        match caller {
            Some(p) if p.user_id == row.uploader_id => Ok(()),
            _ => Err(Error::NotFound(Resource::Media)),
        }
    }

    fn plan_of(row: &Media) -> Result<(MultipartRef, PartPlan), Error> {
        let (Some(mp), Some(size)) = (row.multipart.clone(), row.declared_size) else {
            return Err(Error::NotFound(Resource::Upload));
        };
        let plan = PartPlan::of(size, mp.part_size)?;
        Ok((mp, plan))
    }
}
