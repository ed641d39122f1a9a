//! The firewall layer: data isolation by organization or user, applied to a resource that
//! was looked up without scope.
//!
//! Runs after authentication and the organization-context check, before access rules
//! (spec §6.5: auth 401 → firewall 404 → access 403).

use crate::error::{Error, Resource};
use serde::{Deserialize, Serialize};

/// How a resource outside the caller's scope is reported.
///
/// Quickback's default is `reveal`; filegate defaults to `hide` for files, so ids of other
/// organizations' files cannot be probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FirewallMode {
    /// 404, exactly as for an id that does not exist.
    #[default]
    Hide,
    /// 403 with a structured `FIREWALL_*_ISOLATION` error.
    Reveal,
}

impl FirewallMode {
    /// Organization isolation of an org-owned resource.
    ///
    /// # Errors
    /// When the organizations differ: [`Error::NotFound`]`(resource)` in hide mode,
    /// [`Error::FirewallOrgIsolation`] in reveal mode.
    pub fn check_org(
        self,
        caller_org: &str,
        resource_org: &str,
        resource: Resource,
    ) -> Result<(), Error> {
        self.check(
            caller_org == resource_org,
            resource,
            Error::FirewallOrgIsolation,
        )
    }

    /// User isolation of a user-owned resource.
    ///
    /// # Errors
    /// When the users differ: [`Error::NotFound`]`(resource)` in hide mode,
    /// [`Error::FirewallUserIsolation`] in reveal mode.
    pub fn check_user(
        self,
        caller_user: &str,
        owner_user: &str,
        resource: Resource,
    ) -> Result<(), Error> {
        self.check(
            caller_user == owner_user,
            resource,
            Error::FirewallUserIsolation,
        )
    }

    /// What a caller who may not read an existing resource is told. In hide mode every
    /// refusal of the read (no credentials, no organization, a role or scope missing,
    /// isolation) becomes [`Error::NotFound`]`(resource)`, the answer for a missing one,
    /// so the response is no existence oracle. Other errors pass unchanged.
    #[must_use]
    pub fn conceal(self, e: Error, resource: Resource) -> Error {
        match (self, e) {
            (
                Self::Hide,
                Error::AuthMissing
                | Error::AccessNoOrg
                | Error::AccessRoleRequired { .. }
                | Error::AccessAdminRequired
                | Error::FirewallOrgIsolation
                | Error::FirewallUserIsolation,
            ) => Error::NotFound(resource),
            (_, e) => e,
        }
    }

    fn check(self, same: bool, resource: Resource, revealed: Error) -> Result<(), Error> {
        match (same, self) {
            (true, _) => Ok(()),
            (false, Self::Hide) => Err(Error::NotFound(resource)),
            (false, Self::Reveal) => Err(revealed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Layer;

    #[test]
    fn hide_mode_conceals_every_read_refusal() {
        let refusals = || {
            [
                Error::AuthMissing,
                Error::AccessNoOrg,
                Error::FirewallOrgIsolation,
                Error::FirewallUserIsolation,
            ]
        };
        for e in refusals() {
            assert!(matches!(
                FirewallMode::Hide.conceal(e, Resource::Object),
                Error::NotFound(Resource::Object)
            ));
        }
        for e in refusals() {
            assert!(!matches!(
                FirewallMode::Reveal.conceal(e, Resource::Object),
                Error::NotFound(_)
            ));
        }
        assert!(matches!(
            FirewallMode::Hide.conceal(Error::NotUploaded, Resource::Object),
            Error::NotUploaded
        ));
    }

    #[test]
    fn same_scope_passes_in_both_modes() {
        for mode in [FirewallMode::Hide, FirewallMode::Reveal] {
            assert!(mode.check_org("a", "a", Resource::Media).is_ok());
            assert!(mode.check_user("u", "u", Resource::Media).is_ok());
        }
    }

    #[test]
    fn hide_mode_is_indistinguishable_from_a_missing_id() {
        let hidden = FirewallMode::Hide
            .check_org("a", "b", Resource::Media)
            .unwrap_err();
        let missing = Error::NotFound(Resource::Media);
        assert!(matches!(hidden, Error::NotFound(Resource::Media)));
        assert_eq!(hidden.code(), missing.code());
        assert_eq!(hidden.public_message(), missing.public_message());
        assert!(matches!(
            FirewallMode::Hide.check_user("u", "v", Resource::Media),
            Err(Error::NotFound(Resource::Media))
        ));
    }

    #[test]
    fn reveal_mode_names_the_isolation() {
        let org = FirewallMode::Reveal
            .check_org("a", "b", Resource::Media)
            .unwrap_err();
        assert_eq!(org.code(), "FIREWALL_ORG_ISOLATION");
        assert_eq!(org.layer(), Layer::Firewall);
        let user = FirewallMode::Reveal
            .check_user("u", "v", Resource::Media)
            .unwrap_err();
        assert_eq!(user.code(), "FIREWALL_USER_ISOLATION");
        assert_eq!(user.layer(), Layer::Firewall);
    }

    #[test]
    fn mode_loads_lowercase_and_defaults_to_hide() {
        assert_eq!(FirewallMode::default(), FirewallMode::Hide);
        assert_eq!(
            serde_json::from_str::<FirewallMode>(r#""reveal""#).unwrap(),
            FirewallMode::Reveal
        );
        assert_eq!(
            serde_json::from_str::<FirewallMode>(r#""hide""#).unwrap(),
            FirewallMode::Hide
        );
        assert!(serde_json::from_str::<FirewallMode>(r#""Hide""#).is_err());
    }
}
