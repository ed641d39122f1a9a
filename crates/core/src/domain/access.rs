//! The access layer as data: the role hierarchy, one [`AccessRule`] per operation, and the
//! check of a principal against a rule.
//!
//! A platform admin (`principal.is_platform_admin()`) passes every role rule (spec §6.3:
//! "bypasses all access checks"). It does NOT bypass the organization context or the
//! firewall: those scope the data, they are not access checks, and reaching across
//! organizations needs an explicitly unscoped operation.

use super::Principal;
use crate::error::Error;
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::str::FromStr;

/// Organization roles, lowest privilege first. `role+` in a rule means "this role or above".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleHierarchy(Vec<String>);

impl Default for RoleHierarchy {
    fn default() -> Self {
        Self(vec!["member".into(), "admin".into(), "owner".into()])
    }
}

impl RoleHierarchy {
    /// A hierarchy of `roles`, lowest privilege first.
    ///
    /// # Errors
    /// [`Error::Validation`] on field `roleHierarchy` when empty, with duplicates, or with
    /// a name that could not be written in a rule (see [`AccessRule`]).
    pub fn new(roles: Vec<String>) -> Result<Self, Error> {
        let mut seen = std::collections::HashSet::new();
        if roles.is_empty()
            || !roles
                .iter()
                .all(|r| is_role_name(r) && !is_keyword(r) && seen.insert(r.clone()))
        {
            return Err(Error::invalid(
                "roleHierarchy",
                "must list distinct role names (letters, digits, '_', '-')",
            ));
        }
        Ok(Self(roles))
    }

    /// Every role, lowest first.
    #[must_use]
    pub fn roles(&self) -> &[String] {
        &self.0
    }

    /// `role` and every role above it; `None` when `role` is not in the hierarchy.
    #[must_use]
    pub fn at_or_above(&self, role: &str) -> Option<&[String]> {
        let rank = self.0.iter().position(|r| r == role)?;
        Some(&self.0[rank..])
    }
}

impl<'de> Deserialize<'de> for RoleHierarchy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let roles = Vec::<String>::deserialize(d)?;
        Self::new(roles).map_err(|_| {
            serde::de::Error::custom(
                "role hierarchy must list distinct role names (letters, digits, '_', '-'), \
                 lowest first",
            )
        })
    }
}

/// One term of a role list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleTerm {
    /// `admin`: exactly this role.
    Exactly(String),
    /// `admin+`: this role or any above it in the [`RoleHierarchy`].
    AtLeast(String),
}

impl RoleTerm {
    fn role(&self) -> &str {
        match self {
            Self::Exactly(r) | Self::AtLeast(r) => r,
        }
    }

    fn matches(&self, hierarchy: &RoleHierarchy, role: &str) -> bool {
        match self {
            Self::Exactly(r) => r == role,
            // A role missing from the hierarchy resolves to nothing: fail closed.
            Self::AtLeast(r) => hierarchy
                .at_or_above(r)
                .is_some_and(|above| above.iter().any(|a| a == role)),
        }
    }
}

impl fmt::Display for RoleTerm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exactly(r) => f.write_str(r),
            Self::AtLeast(r) => write!(f, "{r}+"),
        }
    }
}

/// Who may call an operation, written as in Quickback's `access.roles`:
///
/// - `PUBLIC`: skips authentication and role checks; every call is audit-logged.
/// - `authenticated`: any principal.
/// - `admin,owner`: any of these organization roles (OR).
/// - `admin+`: that role or any above it in the [`RoleHierarchy`], resolved at check time.
///
/// Terms may be mixed (`billing,admin+`). The `*` wildcard is rejected, as in Quickback.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum AccessRule {
    /// `PUBLIC`: anyone, with or without credentials; every call is audit-logged.
    Public,
    /// `authenticated`: any authenticated principal, whatever its roles.
    Authenticated,
    /// Any of these terms; an empty list admits only platform admins.
    AnyOf(Vec<RoleTerm>),
}

/// Why a rule string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid access rule '{input}': {reason}")]
pub struct InvalidAccessRule {
    /// The refused rule, as written.
    pub input: String,
    /// Why it was refused.
    pub reason: &'static str,
}

const PUBLIC: &str = "PUBLIC";
const AUTHENTICATED: &str = "authenticated";

fn is_role_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn is_keyword(s: &str) -> bool {
    s.eq_ignore_ascii_case(PUBLIC) || s.eq_ignore_ascii_case(AUTHENTICATED)
}

impl AccessRule {
    /// `role+`: the common "this role or above" rule.
    pub fn at_least(role: impl Into<String>) -> Self {
        Self::AnyOf(vec![RoleTerm::AtLeast(role.into())])
    }

    /// Whether the rule is `PUBLIC` (authentication skipped, calls audit-logged).
    #[must_use]
    pub fn is_public(&self) -> bool {
        matches!(self, Self::Public)
    }

    /// Whether holding `roles` satisfies the rule (platform admins aside).
    #[must_use]
    pub fn allows_roles(&self, hierarchy: &RoleHierarchy, roles: &[String]) -> bool {
        match self {
            Self::Public | Self::Authenticated => true,
            Self::AnyOf(terms) => terms
                .iter()
                .any(|t| roles.iter().any(|r| t.matches(hierarchy, r))),
        }
    }

    /// The access layer for an authenticated principal. Platform admins always pass.
    ///
    /// # Errors
    /// [`Error::AccessRoleRequired`] with this rule's text as `required`.
    pub fn check(&self, hierarchy: &RoleHierarchy, principal: &Principal) -> Result<(), Error> {
        if principal.is_platform_admin() || self.allows_roles(hierarchy, &principal.roles) {
            Ok(())
        } else {
            Err(Error::AccessRoleRequired {
                required: self.to_string(),
                current: principal.roles.clone(),
            })
        }
    }

    /// Every `role+` must name a role of `hierarchy`; otherwise the term admits nobody,
    /// which is almost certainly a typo in the configuration.
    ///
    /// # Errors
    /// [`Error::Validation`] on `field`.
    pub fn check_against(&self, hierarchy: &RoleHierarchy, field: &str) -> Result<(), Error> {
        let Self::AnyOf(terms) = self else {
            return Ok(());
        };
        match terms.iter().find(|t| {
            matches!(t, RoleTerm::AtLeast(_)) && hierarchy.at_or_above(t.role()).is_none()
        }) {
            Some(t) => Err(Error::invalid(
                field,
                format!("'{t}' names a role that is not in the role hierarchy"),
            )),
            None => Ok(()),
        }
    }
}

impl FromStr for AccessRule {
    type Err = InvalidAccessRule;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason| InvalidAccessRule {
            input: s.to_owned(),
            reason,
        };
        let trimmed = s.trim();
        match trimmed {
            PUBLIC => return Ok(Self::Public),
            AUTHENTICATED => return Ok(Self::Authenticated),
            "" => return Err(bad("is empty")),
            _ => {}
        }
        let mut terms = Vec::new();
        for raw in trimmed.split(',') {
            let term = raw.trim();
            let (name, at_least) = match term.strip_suffix('+') {
                Some(name) => (name, true),
                None => (term, false),
            };
            if term.contains('*') {
                return Err(bad(
                    "the '*' wildcard is not allowed; use PUBLIC or authenticated",
                ));
            }
            if is_keyword(name) {
                return Err(bad(
                    "PUBLIC and authenticated must be written alone, in that exact case",
                ));
            }
            if !is_role_name(name) {
                return Err(bad(
                    "expected PUBLIC, authenticated, or comma-separated roles \
                     (letters, digits, '_', '-'), each optionally followed by '+'",
                ));
            }
            terms.push(if at_least {
                RoleTerm::AtLeast(name.to_owned())
            } else {
                RoleTerm::Exactly(name.to_owned())
            });
        }
        Ok(Self::AnyOf(terms))
    }
}

impl TryFrom<String> for AccessRule {
    type Error = InvalidAccessRule;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for AccessRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Public => f.write_str(PUBLIC),
            Self::Authenticated => f.write_str(AUTHENTICATED),
            Self::AnyOf(terms) => {
                for (i, t) in terms.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{t}")?;
                }
                Ok(())
            }
        }
    }
}

/// The operations of the presign-only media routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaOperation {
    /// `POST /api/v1/media/sign-upload`, and the confirm of an upload.
    SignUpload,
    /// `POST /api/v1/media/{id}/sign-download`, and downloads by id through the server.
    SignDownload,
    /// `GET /api/v1/media`: the organization's files.
    List,
}

impl MediaOperation {
    /// The configuration key of this operation's rule.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignUpload => "sign_upload",
            Self::SignDownload => "sign_download",
            Self::List => "list",
        }
    }
}

/// One rule per media operation; each defaults to `member+`. Loads from configuration,
/// e.g. TOML `[access] sign_download = "admin+"`; unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessRules {
    /// Who may sign uploads and confirm them (`[access] sign_upload`).
    pub sign_upload: AccessRule,
    /// Who may sign downloads and download by id (`[access] sign_download`).
    pub sign_download: AccessRule,
    /// Who may list the organization's files (`[access] list`).
    pub list: AccessRule,
}

impl Default for AccessRules {
    fn default() -> Self {
        Self {
            sign_upload: AccessRule::at_least("member"),
            sign_download: AccessRule::at_least("member"),
            list: AccessRule::at_least("member"),
        }
    }
}

impl AccessRules {
    /// The rule of `op`.
    #[must_use]
    pub fn rule(&self, op: MediaOperation) -> &AccessRule {
        match op {
            MediaOperation::SignUpload => &self.sign_upload,
            MediaOperation::SignDownload => &self.sign_download,
            MediaOperation::List => &self.list,
        }
    }

    /// [`AccessRule::check_against`] for every rule, field `access.<operation>`.
    ///
    /// # Errors
    /// [`Error::Validation`] naming the first bad rule.
    pub fn check_against(&self, hierarchy: &RoleHierarchy) -> Result<(), Error> {
        for op in [
            MediaOperation::SignUpload,
            MediaOperation::SignDownload,
            MediaOperation::List,
        ] {
            self.rule(op)
                .check_against(hierarchy, &format!("access.{}", op.as_str()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(roles: &[&str]) -> Principal {
        Principal {
            user_id: "u1".into(),
            active_org_id: Some("o".into()),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            platform_role: None,
            method: crate::domain::AuthMethod::default(),
        }
    }

    fn rule(s: &str) -> AccessRule {
        s.parse().unwrap()
    }

    fn roles(rs: &[&str]) -> Vec<String> {
        rs.iter().map(|r| (*r).to_owned()).collect()
    }

    #[test]
    fn parses_keywords_lists_and_shorthand() {
        assert_eq!(rule("PUBLIC"), AccessRule::Public);
        assert_eq!(rule("authenticated"), AccessRule::Authenticated);
        assert_eq!(rule("member+"), AccessRule::at_least("member"));
        assert_eq!(
            rule(" admin , owner "),
            AccessRule::AnyOf(vec![
                RoleTerm::Exactly("admin".into()),
                RoleTerm::Exactly("owner".into())
            ])
        );
        assert_eq!(
            rule("billing,admin+"),
            AccessRule::AnyOf(vec![
                RoleTerm::Exactly("billing".into()),
                RoleTerm::AtLeast("admin".into())
            ])
        );
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "PUBLIC",
            "authenticated",
            "member+",
            "admin,owner",
            "x_1,y-2+",
        ] {
            assert_eq!(rule(s).to_string(), s);
        }
    }

    #[test]
    fn rejects_wildcards_and_unknown_syntax() {
        for bad in [
            "",
            "  ",
            "*",
            "admin,*",
            "admin*",
            "public",
            "Public",
            "PUBLIC,admin",
            "admin,authenticated",
            "admin,,owner",
            "admin,",
            "+",
            "admin++",
            "+admin",
            "ad min",
            "admin;owner",
            "ädmin",
        ] {
            let err = bad.parse::<AccessRule>().unwrap_err();
            assert_eq!(err.input, bad);
            assert!(err.to_string().starts_with("invalid access rule"), "{err}");
        }
        assert!(
            "*".parse::<AccessRule>()
                .unwrap_err()
                .reason
                .contains("wildcard")
        );
    }

    #[test]
    fn shorthand_means_that_role_and_above() {
        let h = RoleHierarchy::default();
        let admin_plus = rule("admin+");
        assert!(!admin_plus.allows_roles(&h, &roles(&["member"])));
        assert!(admin_plus.allows_roles(&h, &roles(&["admin"])));
        assert!(admin_plus.allows_roles(&h, &roles(&["owner"])));
        assert!(admin_plus.allows_roles(&h, &roles(&["guest", "owner"])));
        assert!(!admin_plus.allows_roles(&h, &roles(&["guest"])));
        assert!(!admin_plus.allows_roles(&h, &[]));
    }

    #[test]
    fn plain_roles_are_exact_and_or_combined() {
        let h = RoleHierarchy::default();
        let r = rule("admin,member");
        assert!(r.allows_roles(&h, &roles(&["member"])));
        assert!(r.allows_roles(&h, &roles(&["admin"])));
        assert!(
            !r.allows_roles(&h, &roles(&["owner"])),
            "no implicit 'above'"
        );
    }

    #[test]
    fn shorthand_resolves_against_a_custom_hierarchy() {
        let h = RoleHierarchy::new(roles(&["viewer", "editor", "admin", "owner"])).unwrap();
        let r = rule("editor+");
        assert!(!r.allows_roles(&h, &roles(&["viewer"])));
        for ok in ["editor", "admin", "owner"] {
            assert!(r.allows_roles(&h, &roles(&[ok])), "{ok}");
        }
        // Same rule, default hierarchy: 'editor' is unknown, so the term admits nobody.
        assert!(!r.allows_roles(&RoleHierarchy::default(), &roles(&["owner"])));
        assert_eq!(
            h.at_or_above("admin").unwrap(),
            &roles(&["admin", "owner"])[..]
        );
        assert!(h.at_or_above("member").is_none());
    }

    #[test]
    fn keywords_admit_any_principal_and_empty_lists_nobody() {
        let h = RoleHierarchy::default();
        assert!(AccessRule::Public.allows_roles(&h, &[]));
        assert!(AccessRule::Authenticated.allows_roles(&h, &[]));
        assert!(!AccessRule::AnyOf(vec![]).allows_roles(&h, &roles(&["owner"])));
    }

    #[test]
    fn check_reports_the_rule_and_the_callers_roles() {
        let h = RoleHierarchy::default();
        let err = rule("admin+").check(&h, &who(&["member"])).unwrap_err();
        let Error::AccessRoleRequired { required, current } = err else {
            panic!("expected AccessRoleRequired");
        };
        assert_eq!(required, "admin+");
        assert_eq!(current, ["member"]);
        assert!(rule("owner").check(&h, &who(&["owner"])).is_ok());
    }

    #[test]
    fn platform_admins_pass_every_role_rule() {
        let h = RoleHierarchy::default();
        let mut p = who(&[]);
        p.platform_role = Some("admin".into());
        for r in ["owner", "admin+", "nobody"] {
            assert!(rule(r).check(&h, &p).is_ok(), "{r}");
        }
        assert!(AccessRule::AnyOf(vec![]).check(&h, &p).is_ok());
        // The user-table role 'user' is no bypass.
        p.platform_role = Some("user".into());
        assert!(rule("owner").check(&h, &p).is_err());
    }

    #[test]
    fn hierarchy_rejects_duplicates_empties_and_unwritable_names() {
        for bad in [
            vec![],
            vec!["a", "a"],
            vec![""],
            vec!["a,b"],
            vec!["a+"],
            vec!["PUBLIC"],
            vec!["authenticated"],
        ] {
            assert!(RoleHierarchy::new(roles(&bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rules_load_from_config_with_member_plus_defaults() {
        let rules: AccessRules =
            serde_json::from_str(r#"{"sign_download": "admin+", "list": "PUBLIC"}"#).unwrap();
        assert_eq!(rules.sign_upload, AccessRule::at_least("member"));
        assert_eq!(rules.sign_download, AccessRule::at_least("admin"));
        assert_eq!(rules.list, AccessRule::Public);
        assert_eq!(
            serde_json::from_str::<AccessRules>("{}").unwrap(),
            AccessRules::default()
        );
        let err = serde_json::from_str::<AccessRules>(r#"{"list": "*"}"#).unwrap_err();
        assert!(err.to_string().contains("wildcard"), "{err}");
        assert!(serde_json::from_str::<AccessRules>(r#"{"sign_uplaod": "owner"}"#).is_err());
    }

    #[test]
    fn hierarchy_loads_from_config() {
        let h: RoleHierarchy = serde_json::from_str(r#"["viewer", "member"]"#).unwrap();
        assert_eq!(h.roles(), ["viewer", "member"]);
        assert!(serde_json::from_str::<RoleHierarchy>(r#"["a", "a"]"#).is_err());
    }

    #[test]
    fn shorthand_of_a_role_outside_the_hierarchy_is_a_config_error() {
        let h = RoleHierarchy::default();
        let mut rules = AccessRules::default();
        assert!(rules.check_against(&h).is_ok());
        rules.list = rule("auditor,editor+");
        let Err(Error::Validation(fields)) = rules.check_against(&h) else {
            panic!("expected a validation error");
        };
        assert_eq!(fields[0].field, "access.list");
        assert!(fields[0].message.contains("'editor+'"));
        // Exact custom roles need not be in the hierarchy.
        rules.list = rule("auditor,admin+");
        assert!(rules.check_against(&h).is_ok());
    }
}
