use super::Principal;
use crate::error::Error;

/// Organization roles, lowest privilege first. `role+` in a rule means "this role or above".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleHierarchy(Vec<String>);

impl Default for RoleHierarchy {
    fn default() -> Self {
        Self(vec!["member".into(), "admin".into(), "owner".into()])
    }
}

impl RoleHierarchy {
    /// # Errors
    /// [`Error::Validation`] on field `roleHierarchy` when empty or with duplicates.
    pub fn new(roles: Vec<String>) -> Result<Self, Error> {
        let mut seen = std::collections::HashSet::new();
        if roles.is_empty()
            || !roles
                .iter()
                .all(|r| !r.is_empty() && seen.insert(r.clone()))
        {
            return Err(Error::invalid(
                "roleHierarchy",
                "must list distinct, non-empty roles",
            ));
        }
        Ok(Self(roles))
    }

    fn rank(&self, role: &str) -> Option<usize> {
        self.0.iter().position(|r| r == role)
    }

    /// Checks the principal has an active organization and a role at least `min`.
    /// Platform admins pass without an organization role.
    ///
    /// # Errors
    /// [`Error::AccessNoOrg`] without an active organization,
    /// [`Error::AccessRoleRequired`] when no role reaches `min`.
    pub fn require_org_role(&self, principal: &Principal, min: &str) -> Result<(), Error> {
        if principal.active_org_id.is_none() {
            return Err(Error::AccessNoOrg);
        }
        if principal.is_platform_admin() {
            return Ok(());
        }
        let needed = self.rank(min);
        let ok = needed.is_some_and(|needed| {
            principal
                .roles
                .iter()
                .filter_map(|r| self.rank(r))
                .any(|have| have >= needed)
        });
        if ok {
            Ok(())
        } else {
            Err(Error::AccessRoleRequired {
                required: min.to_owned(),
                current: principal.roles.clone(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(org: Option<&str>, roles: &[&str]) -> Principal {
        Principal {
            user_id: "u1".into(),
            active_org_id: org.map(Into::into),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            platform_role: None,
            method: Default::default(),
        }
    }

    #[test]
    fn higher_roles_satisfy_lower_requirements() {
        let h = RoleHierarchy::default();
        for role in ["member", "admin", "owner"] {
            assert!(
                h.require_org_role(&who(Some("o"), &[role]), "member")
                    .is_ok()
            );
        }
        assert!(
            h.require_org_role(&who(Some("o"), &["member"]), "admin")
                .is_err()
        );
        assert!(
            h.require_org_role(&who(Some("o"), &["owner"]), "admin")
                .is_ok()
        );
    }

    #[test]
    fn no_active_org_is_reported_before_roles() {
        let h = RoleHierarchy::default();
        assert!(matches!(
            h.require_org_role(&who(None, &["owner"]), "member"),
            Err(Error::AccessNoOrg)
        ));
    }

    #[test]
    fn unknown_roles_grant_nothing() {
        let h = RoleHierarchy::default();
        assert!(matches!(
            h.require_org_role(&who(Some("o"), &["guest"]), "member"),
            Err(Error::AccessRoleRequired { .. })
        ));
    }

    #[test]
    fn platform_admins_bypass_role_checks_but_need_an_org() {
        let h = RoleHierarchy::default();
        let mut p = who(Some("o"), &[]);
        p.platform_role = Some("admin".into());
        assert!(h.require_org_role(&p, "owner").is_ok());
    }

    #[test]
    fn hierarchy_rejects_duplicates() {
        assert!(RoleHierarchy::new(vec!["a".into(), "a".into()]).is_err());
        assert!(RoleHierarchy::new(vec![]).is_err());
    }
}
