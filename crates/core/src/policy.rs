//! The policy both product modes share, and the one access checker that applies it.
//!
//! Presign-only media ([`MediaPolicy`](crate::media::MediaPolicy)) and managed mode
//! ([`ManagedPolicy`](crate::managed::ManagedPolicy)) each embed one [`AccessPolicy`]:
//! the role hierarchy, the firewall mode and the upload limits are configured once and
//! mean the same in both. Each service holds an [`AccessChecker`] over it and runs the
//! same steps in the same order (spec §6.5): authentication, organization context,
//! firewall, access rule, then the guards.

use crate::domain::{AccessRule, ByteSize, Expiry, FirewallMode, Principal, RoleHierarchy};
use crate::error::{Error, Resource};

/// Roles, firewall mode and upload limits, shared by both modes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPolicy {
    /// Resolves `role+` in every rule.
    pub roles: RoleHierarchy,
    /// How another organization's or user's file is reported (default hide: 404).
    pub firewall: FirewallMode,
    /// Largest upload: the limit of a media upload's declared size, and the ceiling of
    /// every managed bucket's limit (the limit of buckets without one).
    pub max_upload_size: ByteSize,
    /// Lifetime of presigned upload URLs (a multipart upload's part URLs too).
    pub upload_expiry: Expiry,
    /// How long a multipart upload may stay unfinished before it is abandoned: its row
    /// is stale and `purge` aborts it at storage ([`DEFAULT_MULTIPART_MAX_AGE`]).
    pub multipart_max_age: std::time::Duration,
}

/// The default of [`AccessPolicy::multipart_max_age`]: one day.
pub const DEFAULT_MULTIPART_MAX_AGE: std::time::Duration = std::time::Duration::from_hours(24);

impl Default for AccessPolicy {
    fn default() -> Self {
        Self {
            roles: RoleHierarchy::default(),
            firewall: FirewallMode::default(),
            max_upload_size: ByteSize::mib(100),
            upload_expiry: Expiry::DEFAULT,
            multipart_max_age: DEFAULT_MULTIPART_MAX_AGE,
        }
    }
}

/// Whose a file is, for the firewall: an organization's, or (uploaded without one) its
/// uploader's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileOwner<'a> {
    /// An organization's file (the organization's id).
    Org(&'a str),
    /// A file uploaded without an organization (its uploader's user id).
    User(&'a str),
}

/// A caller past authentication and the organization context.
#[derive(Debug, Clone, Copy)]
pub struct Scoped<'p> {
    /// The authenticated caller.
    pub principal: &'p Principal,
    /// The caller's active organization.
    pub org: &'p str,
}

/// Applies an [`AccessPolicy`]: each method is one step of the access sequence.
#[derive(Debug, Clone)]
pub struct AccessChecker {
    policy: AccessPolicy,
}

impl AccessChecker {
    /// A checker applying `policy`.
    #[must_use]
    pub fn new(policy: AccessPolicy) -> Self {
        Self { policy }
    }

    /// The policy it applies.
    #[must_use]
    pub fn policy(&self) -> &AccessPolicy {
        &self.policy
    }

    /// Authentication.
    ///
    /// # Errors
    /// [`Error::AuthMissing`] without a caller.
    pub fn authenticated<'p>(&self, caller: Option<&'p Principal>) -> Result<&'p Principal, Error> {
        caller.ok_or(Error::AuthMissing)
    }

    /// Authentication, then the organization context. Under a `PUBLIC` rule (`public`) an
    /// anonymous caller passes authentication but still has no organization.
    ///
    /// # Errors
    /// [`Error::AuthMissing`] without a caller (unless `public`); [`Error::AccessNoOrg`]
    /// without an active organization.
    pub fn scoped<'p>(
        &self,
        caller: Option<&'p Principal>,
        public: bool,
    ) -> Result<Scoped<'p>, Error> {
        let principal = match caller {
            Some(p) => p,
            None if public => return Err(Error::AccessNoOrg),
            None => return Err(Error::AuthMissing),
        };
        let org = principal
            .active_org_id
            .as_deref()
            .ok_or(Error::AccessNoOrg)?;
        Ok(Scoped { principal, org })
    }

    /// The firewall for a file named by id: it must be the caller organization's, or,
    /// uploaded without one, the caller's own. Platform admins do not cross it.
    ///
    /// # Errors
    /// [`Error::NotFound`]`(resource)` in hide mode; [`Error::FirewallOrgIsolation`] /
    /// [`Error::FirewallUserIsolation`] in reveal mode.
    pub fn firewall(
        &self,
        caller: Scoped<'_>,
        owner: FileOwner<'_>,
        resource: Resource,
    ) -> Result<(), Error> {
        match owner {
            FileOwner::Org(org) => self.firewall_org(caller.org, org, resource),
            FileOwner::User(user) => self.firewall_user(&caller.principal.user_id, user, resource),
        }
    }

    /// Organization isolation.
    ///
    /// # Errors
    /// As [`FirewallMode::check_org`].
    pub fn firewall_org(
        &self,
        caller_org: &str,
        owner_org: &str,
        resource: Resource,
    ) -> Result<(), Error> {
        self.policy
            .firewall
            .check_org(caller_org, owner_org, resource)
    }

    /// User isolation.
    ///
    /// # Errors
    /// As [`FirewallMode::check_user`].
    pub fn firewall_user(
        &self,
        caller_user: &str,
        owner_user: &str,
        resource: Resource,
    ) -> Result<(), Error> {
        self.policy
            .firewall
            .check_user(caller_user, owner_user, resource)
    }

    /// What a caller who may not read an existing file is told (see
    /// [`FirewallMode::conceal`]).
    #[must_use]
    pub fn conceal(&self, e: Error, resource: Resource) -> Error {
        self.policy.firewall.conceal(e, resource)
    }

    /// An access rule, its `role+` resolved in the policy's hierarchy.
    ///
    /// # Errors
    /// [`Error::AccessRoleRequired`] (as [`AccessRule::check`]).
    pub fn rule(&self, rule: &AccessRule, principal: &Principal) -> Result<(), Error> {
        rule.check(&self.policy.roles, principal)
    }

    /// The size guard: `size` within `max`.
    ///
    /// # Errors
    /// [`Error::TooLarge`].
    pub fn size(&self, size: u64, max: ByteSize) -> Result<(), Error> {
        if size > max.bytes() {
            return Err(Error::TooLarge {
                size,
                max: max.bytes(),
            });
        }
        Ok(())
    }
}
