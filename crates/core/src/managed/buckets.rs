//! The bucket catalogue: creating, listing, changing and resolving buckets (layer 2 of
//! the check order), over the FILES_DB `buckets` table.

use super::bucket::{Bucket, DEFAULT_BUCKETS, MimePattern, ReadScope, WriteScope};
use super::ids::BucketId;
use super::ports::{BucketStore, ObjectRowStore};
use super::service::ManagedPolicy;
#[cfg(doc)]
use super::service::ManagedService;
use crate::domain::{BucketName, ByteSize, Principal};
use crate::error::{Error, FieldError, Resource};
use crate::policy::AccessChecker;
use crate::ports::Clock;
use std::sync::Arc;

/// Input of [`ManagedService::create_bucket`], as the client sent it.
#[derive(Debug, Clone, Default)]
pub struct CreateBucket {
    /// The bucket's name, checked as a [`BucketName`] (errors on field `name`).
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
    /// A new read scope: `public`, `authenticated`, `org` or `user`.
    pub read_scope: Option<String>,
    /// A new write scope: `org`, `user` or an access rule; switching between per-user and
    /// per-organization keys is refused while the bucket holds objects.
    pub write_scope: Option<String>,
    /// `Some(None)` removes the bucket's own limit.
    pub file_size_limit: Option<Option<u64>>,
    /// A new allow-list (`image/png`, `image/*`); an empty list allows any type.
    pub allowed_mime_types: Option<Vec<String>>,
}

/// Collects field errors so a request reports every bad field at once.
#[derive(Default)]
pub(super) struct Fields(pub(super) Vec<FieldError>);

impl Fields {
    pub(super) fn take<T>(&mut self, r: Result<T, Error>) -> Result<Option<T>, Error> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(Error::Validation(mut f)) => {
                self.0.append(&mut f);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    pub(super) fn finish(self) -> Result<(), Error> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(self.0))
        }
    }
}

/// Buckets by name or id, and their management (the manage rule).
#[derive(Clone)]
pub(super) struct BucketCatalogue {
    pub(super) buckets: Arc<dyn BucketStore>,
    /// For the checks that depend on a bucket's objects.
    pub(super) rows: Arc<dyn ObjectRowStore>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) access: Arc<AccessChecker>,
    pub(super) policy: Arc<ManagedPolicy>,
}

impl BucketCatalogue {
    /// Creates `avatars` and `org-logos` (project-wide) unless buckets of those names
    /// exist; existing ones are left as they are. Returns both. Idempotent and safe to run
    /// from several processes at once.
    ///
    /// # Errors
    /// Store errors ([`Error::Unavailable`]).
    pub(super) async fn seed_default_buckets(&self) -> Result<Vec<Bucket>, Error> {
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
    pub(super) async fn create_bucket(
        &self,
        caller: Option<&Principal>,
        input: CreateBucket,
    ) -> Result<Bucket, Error> {
        let p = self.access.authenticated(caller)?;
        let organization_id = if input.project_wide {
            None
        } else {
            Some(p.active_org_id.clone().ok_or(Error::AccessNoOrg)?)
        };
        self.access
            .manage(&self.policy.manage_rule, p, organization_id.as_deref())?;

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
    pub(super) async fn list_buckets(
        &self,
        caller: Option<&Principal>,
    ) -> Result<Vec<Bucket>, Error> {
        let p = self.access.authenticated(caller)?;
        self.buckets.list_buckets(p.active_org_id.clone()).await
    }

    /// One bucket, by name (the caller organization's first, else project-wide) or by id.
    ///
    /// # Errors
    /// [`Error::AuthMissing`]; [`Error::NotFound`]`(Bucket)` (also for another
    /// organization's id in hide mode; [`Error::FirewallOrgIsolation`] in reveal mode).
    pub(super) async fn get_bucket(
        &self,
        caller: Option<&Principal>,
        bucket: &str,
    ) -> Result<Bucket, Error> {
        self.access.authenticated(caller)?;
        self.resolve_bucket(caller, bucket).await
    }

    /// Changes a bucket's scopes and limits; its name and organization are fixed.
    ///
    /// # Errors
    /// As [`BucketCatalogue::get_bucket`], then [`Error::AccessAdminRequired`] /
    /// [`Error::AccessRoleRequired`], [`Error::Validation`] (also on `writeScope` when it
    /// would switch between per-user and per-organization keys while objects exist).
    pub(super) async fn update_bucket(
        &self,
        caller: Option<&Principal>,
        bucket: &str,
        input: UpdateBucket,
    ) -> Result<Bucket, Error> {
        let p = self.access.authenticated(caller)?;
        let mut b = self.resolve_bucket(caller, bucket).await?;
        self.access
            .manage(&self.policy.manage_rule, p, b.organization_id.as_deref())?;

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

    /// Layer 2: a name resolves in the caller's organization, then project-wide; an id
    /// goes through the firewall.
    pub(super) async fn resolve_bucket(
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
                self.access
                    .firewall_org(caller_org.unwrap_or_default(), org, Resource::Bucket)?;
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

    fn parse_write_scope(&self, raw: &str) -> Result<WriteScope, Error> {
        let scope = WriteScope::parse(raw)?;
        if let WriteScope::Rule(rule) = &scope {
            rule.check_against(&self.policy.shared.roles, "writeScope")?;
        }
        Ok(scope)
    }

    fn parse_size_limit(&self, raw: Option<u64>) -> Result<Option<ByteSize>, Error> {
        let max = self.policy.shared.max_upload_size;
        match raw {
            None => Ok(None),
            Some(n) if (1..=max.bytes()).contains(&n) => Ok(Some(ByteSize(n))),
            Some(_) => Err(Error::invalid(
                "fileSizeLimit",
                format!("must be between 1 and {} bytes", max.bytes()),
            )),
        }
    }

    /// A bucket the caller may manage (for a delete), by name or id.
    ///
    /// # Errors
    /// As [`BucketCatalogue::update_bucket`] up to access.
    pub(super) async fn managed_bucket(
        &self,
        caller: Option<&Principal>,
        bucket: &str,
    ) -> Result<Bucket, Error> {
        let p = self.access.authenticated(caller)?;
        let b = self.resolve_bucket(caller, bucket).await?;
        self.access
            .manage(&self.policy.manage_rule, p, b.organization_id.as_deref())?;
        Ok(b)
    }

    /// A bucket by id, without checks (its rows name it).
    ///
    /// # Errors
    /// Store errors.
    pub(super) async fn find(&self, id: &BucketId) -> Result<Option<Bucket>, Error> {
        self.buckets.find_bucket(id).await
    }

    /// Deletes an empty bucket's row.
    ///
    /// # Errors
    /// [`Error::BucketNotEmpty`]; store errors.
    pub(super) async fn remove(&self, id: &BucketId) -> Result<(), Error> {
        self.buckets.delete_bucket(id).await
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
