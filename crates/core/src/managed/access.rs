//! Managed mode's rules on top of the shared [`AccessChecker`]: bucket management, read
//! and write scopes, the row owner in `user`-read buckets, and the bucket guards. The
//! bucket catalogue and the object service share one checker.

use super::bucket::{Bucket, ReadScope, WriteScope, mime_allowed};
use super::object::{ObjectRow, Owner};
use crate::domain::{AccessRule, ContentType, Principal};
use crate::error::{Error, Resource};
use crate::policy::AccessChecker;

impl AccessChecker {
    /// Who may manage a bucket: platform admins for project-wide ones, `manage_rule` in
    /// an organization.
    ///
    /// # Errors
    /// [`Error::AccessAdminRequired`]; [`Error::AccessRoleRequired`].
    pub(crate) fn manage(
        &self,
        manage_rule: &AccessRule,
        p: &Principal,
        bucket_org: Option<&str>,
    ) -> Result<(), Error> {
        match bucket_org {
            None if p.is_platform_admin() => Ok(()),
            None => Err(Error::AccessAdminRequired),
            Some(_) => self.rule(manage_rule, p),
        }
    }

    /// A write scope's rule, when it has one.
    ///
    /// # Errors
    /// [`Error::AccessRoleRequired`].
    pub(crate) fn write_scope(&self, b: &Bucket, p: &Principal) -> Result<(), Error> {
        match &b.write_scope {
            WriteScope::Rule(rule) => self.rule(rule, p),
            _ => Ok(()),
        }
    }

    /// The read scope (layers 1, 3 and 4 for one object). The uploader may always read.
    ///
    /// # Errors
    /// [`Error::AuthMissing`], [`Error::AccessNoOrg`], the firewall.
    pub(crate) fn read_scope(
        &self,
        b: &Bucket,
        row: &ObjectRow,
        caller: Option<&Principal>,
    ) -> Result<(), Error> {
        if b.read_scope == ReadScope::Public {
            return Ok(());
        }
        let p = self.authenticated(caller)?;
        match b.read_scope {
            ReadScope::Public | ReadScope::Authenticated => Ok(()),
            _ if p.user_id == row.owner_id => Ok(()),
            ReadScope::Org => {
                let org = p.active_org_id.as_deref().ok_or(Error::AccessNoOrg)?;
                self.firewall_org(
                    org,
                    row.organization_id.as_deref().unwrap_or_default(),
                    Resource::Object,
                )
            }
            ReadScope::User => self.firewall_user(&p.user_id, &row.owner_id, Resource::Object),
        }
    }

    /// In a `user`-read bucket rows are private to their uploader, for writes too.
    ///
    /// # Errors
    /// The firewall (user isolation).
    pub(crate) fn row_owner(
        &self,
        b: &Bucket,
        row: &ObjectRow,
        p: &Principal,
    ) -> Result<(), Error> {
        if b.read_scope == ReadScope::User {
            self.firewall_user(&p.user_id, &row.owner_id, Resource::Object)
        } else {
            Ok(())
        }
    }

    /// Guards: size (the bucket's limit under the policy's maximum), then MIME type.
    ///
    /// # Errors
    /// [`Error::TooLarge`]; [`Error::MimeNotAllowed`].
    pub(crate) fn limits(&self, b: &Bucket, size: u64, ct: &ContentType) -> Result<(), Error> {
        self.size(size, b.effective_size_limit(self.policy().max_upload_size))?;
        if !mime_allowed(&b.allowed_mime_types, ct) {
            return Err(Error::MimeNotAllowed {
                content_type: ct.as_str().to_owned(),
                allowed: b.allowed_mime_strings(),
            });
        }
        Ok(())
    }
}

/// Layer 3: the segment the caller's paths in `b` live under.
///
/// # Errors
/// [`Error::AccessNoOrg`] when keys live under the organization and there is none.
pub(crate) fn owner_of<'p>(b: &Bucket, p: &'p Principal) -> Result<Owner<'p>, Error> {
    if b.write_scope.is_per_user() {
        Ok(Owner::User(&p.user_id))
    } else {
        p.active_org_id
            .as_deref()
            .map(Owner::Org)
            .ok_or(Error::AccessNoOrg)
    }
}
