//! Multipart uploads of managed objects: create (the checks and claim of a presign),
//! sign parts, list parts, complete (then confirm), abort. An upload in progress is its
//! creator's: for anyone else its id does not exist (404, as the firewall's hide mode).

use super::{Arrival, Claim, Declared, ObjectService};
use crate::domain::Principal;
use crate::error::{Error, Resource};
use crate::managed::bucket::Bucket;
use crate::managed::ids::ObjectId;
use crate::managed::object::{ObjectInfo, ObjectRow, ObjectStatus};
use crate::multipart::{MultipartStarted, PartPlan, SignedParts};
use crate::ports::{CompletedPart, MultipartRef, StoredPart};
use crate::storage::PartToSign;

/// Input of [`ManagedService::create_multipart`](crate::managed::ManagedService::create_multipart).
#[derive(Debug, Clone, Default)]
pub struct CreateObjectMultipart {
    /// The completed object's content type, checked against the bucket's allow-list.
    pub content_type: String,
    /// The declared total size in bytes: checked against the limits, fixes the plan.
    pub size: u64,
    /// The part size the client wants (see [`PartPlan::new`]).
    pub part_size: Option<u64>,
}

/// A managed multipart upload in progress, past its checks.
struct OpenUpload {
    bucket: Bucket,
    row: ObjectRow,
    multipart: MultipartRef,
    plan: PartPlan,
}

impl ObjectService {
    /// [`ManagedService::create_multipart`](crate::managed::ManagedService::create_multipart).
    pub(crate) async fn create_multipart(
        &self,
        caller: Option<&Principal>,
        bucket: &str,
        path: &str,
        input: CreateObjectMultipart,
    ) -> Result<MultipartStarted, Error> {
        let w = self
            .prepare_write(caller, bucket, path, input.content_type, input.size)
            .await?;
        let plan = PartPlan::new(input.size, input.part_size)?;
        let _key = self.locks.lock(w.key.as_str()).await;
        // Like a presign: never over a confirmed object or another upload in progress.
        let Claim::Free = self.claim(&w.bucket, &w.key, false, w.principal).await? else {
            return Err(Error::ObjectExists);
        };
        let physical = self.storage.default_bucket();
        let upload_id = self
            .objects
            .create_multipart(physical, &w.key, Some(w.content_type.clone()))
            .await?;
        let now = self.clock.now();
        let mut row = w.pending_row(now);
        row.multipart = Some(MultipartRef {
            upload_id: upload_id.clone(),
            part_size: plan.part_size(),
        });
        if let Err(e) = self.rows.insert_object(&row).await {
            let _ = self
                .objects
                .abort_multipart(physical, &w.key, &upload_id)
                .await;
            return Err(e);
        }
        Ok(MultipartStarted {
            id: row.id.to_string(),
            upload_id,
            key: w.key,
            part_size: plan.part_size(),
            part_count: plan.part_count(),
            expires_at: now + self.policy.shared.multipart_max_age,
        })
    }

    /// [`ManagedService::sign_parts`](crate::managed::ManagedService::sign_parts).
    pub(crate) async fn sign_parts(
        &self,
        caller: Option<&Principal>,
        id: &str,
        part_numbers: &[u32],
    ) -> Result<SignedParts, Error> {
        let u = self.open_upload(caller, id).await?;
        let batch = u.plan.check_batch(part_numbers)?;
        let expiry = self.policy.shared.upload_expiry;
        let mut parts = Vec::with_capacity(batch.len());
        for (part_number, content_length) in batch {
            let part = PartToSign {
                upload_id: &u.multipart.upload_id,
                part_number,
                content_length,
            };
            parts.push(
                self.storage
                    .sign_part_url(self.storage.default_bucket(), &u.row.key, &part, expiry)
                    .await?,
            );
        }
        let expires_at = parts
            .first()
            .map_or_else(|| self.clock.now() + expiry.duration(), |p| p.expires_at);
        Ok(SignedParts { parts, expires_at })
    }

    /// [`ManagedService::list_parts`](crate::managed::ManagedService::list_parts).
    pub(crate) async fn list_parts(
        &self,
        caller: Option<&Principal>,
        id: &str,
    ) -> Result<Vec<StoredPart>, Error> {
        let u = self.open_upload(caller, id).await?;
        self.objects
            .list_parts(
                self.storage.default_bucket(),
                &u.row.key,
                &u.multipart.upload_id,
            )
            .await
    }

    /// [`ManagedService::complete_multipart`](crate::managed::ManagedService::complete_multipart).
    pub(crate) async fn complete_multipart(
        &self,
        caller: Option<&Principal>,
        id: &str,
        parts: &[CompletedPart],
    ) -> Result<ObjectInfo, Error> {
        let first = match self.open_upload(caller, id).await {
            Err(Error::NotFound(Resource::Upload)) => return self.completed(caller, id).await,
            other => other?,
        };
        let _key = self.locks.lock(first.row.key.as_str()).await;
        // Re-read under the lock: an abort or a complete may have won.
        let u = match self.open_upload(caller, id).await {
            Err(Error::NotFound(Resource::Upload)) => return self.completed(caller, id).await,
            other => other?,
        };
        let physical = self.storage.default_bucket();
        let stored = self
            .objects
            .list_parts(physical, &u.row.key, &u.multipart.upload_id)
            .await?;
        let list = u.plan.check_completion(parts, &stored)?;
        self.objects
            .complete_multipart(physical, &u.row.key, &u.multipart.upload_id, &list)
            .await?;
        let meta = self.objects.head(physical, &u.row.key).await?;
        let arrival = Arrival {
            objects: self.objects.as_ref(),
            rows: self.rows.as_ref(),
            physical,
            bucket: &u.bucket,
            ceiling: self.policy.shared.max_upload_size,
            declared: Declared::Check,
            at: self.clock.now(),
        };
        match arrival.settle(&u.row, meta).await? {
            Ok(row) => Ok(ObjectInfo::new(&row, &u.bucket.name)),
            Err(broken) => Err(Error::Validation(vec![broken])),
        }
    }

    /// [`ManagedService::abort_multipart`](crate::managed::ManagedService::abort_multipart).
    pub(crate) async fn abort_multipart(
        &self,
        caller: Option<&Principal>,
        id: &str,
    ) -> Result<(), Error> {
        let first = self.open_upload(caller, id).await?;
        let _key = self.locks.lock(first.row.key.as_str()).await;
        let u = self.open_upload(caller, id).await?;
        self.objects
            .abort_multipart(
                self.storage.default_bucket(),
                &u.row.key,
                &u.multipart.upload_id,
            )
            .await?;
        self.rows.purge_object(&u.row.id).await
    }

    /// A complete retried after it succeeded (its answer lost) gets the object, as a
    /// repeated confirm does; called once `open_upload` found no upload in progress.
    async fn completed(&self, caller: Option<&Principal>, id: &str) -> Result<ObjectInfo, Error> {
        let p = self.access.authenticated(caller)?;
        let row = match ObjectId::parse(id) {
            Ok(id) => self.rows.find_object(&id).await?,
            Err(_) => None,
        }
        .filter(|r| {
            r.owner_id == p.user_id && r.deleted_at.is_none() && r.status == ObjectStatus::Confirmed
        })
        .ok_or(Error::NotFound(Resource::Upload))?;
        let b = self
            .catalogue
            .find(&row.bucket_id)
            .await?
            .ok_or(Error::NotFound(Resource::Upload))?;
        Ok(ObjectInfo::new(&row, &b.name))
    }

    /// The caller's upload in progress: authentication, then a pending multipart row of
    /// the caller's (anything else: 404), then its bucket's write scope (the rules may
    /// have changed since the upload started).
    async fn open_upload(&self, caller: Option<&Principal>, id: &str) -> Result<OpenUpload, Error> {
        let p = self.access.authenticated(caller)?;
        let not_found = || Error::NotFound(Resource::Object);
        let row = match ObjectId::parse(id) {
            Ok(id) => self.rows.find_object(&id).await?,
            Err(_) => None,
        }
        .filter(|r| r.owner_id == p.user_id && r.deleted_at.is_none())
        .ok_or_else(not_found)?;
        let b = self
            .catalogue
            .find(&row.bucket_id)
            .await?
            .ok_or_else(not_found)?;
        self.access.write_scope(&b, p)?;
        let (ObjectStatus::Pending, Some(multipart)) = (row.status, row.multipart.clone()) else {
            return Err(Error::NotFound(Resource::Upload));
        };
        let plan = PartPlan::of(row.size, multipart.part_size)?;
        Ok(OpenUpload {
            bucket: b,
            row,
            multipart,
            plan,
        })
    }
}
