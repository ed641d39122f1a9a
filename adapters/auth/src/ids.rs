//! Ids taken from credentials become key prefixes (`org/<orgId>/…`, `<userId>/…`), so
//! one holding a `/` or a control character could reach into another prefix or forge
//! log lines. Such a credential is refused, whatever signed it.

use filegate_core::Error;
use filegate_core::domain::Principal;

/// Whether `id` may stand for a user or an organization: not empty, no `/`, `\`, or
/// control characters.
#[must_use]
pub fn is_safe_id(id: &str) -> bool {
    !id.is_empty() && !id.chars().any(|c| c == '/' || c == '\\' || c.is_control())
}

/// `principal` when its user and organization ids are safe, else 401
/// `AUTH_INVALID_TOKEN`.
///
/// # Errors
/// [`Error::AuthInvalidToken`] naming which id was refused (never the id itself).
pub(crate) fn checked(principal: Principal) -> Result<Principal, Error> {
    if !is_safe_id(&principal.user_id) {
        return Err(Error::AuthInvalidToken {
            reason: "user id holds '/', '\\' or a control character".to_owned(),
        });
    }
    if principal
        .active_org_id
        .as_deref()
        .is_some_and(|org| !is_safe_id(org))
    {
        return Err(Error::AuthInvalidToken {
            reason: "organization id holds '/', '\\' or a control character".to_owned(),
        });
    }
    Ok(principal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_would_leave_their_prefix_are_refused() {
        for ok in ["u1", "org_a", "ÄÖ-123", "a.b", "user@example.com"] {
            assert!(is_safe_id(ok), "{ok}");
        }
        for bad in [
            "", "a/b", "../x", "a\\b", "a\nb", "a\u{0}b", "a\u{7f}", "\u{85}x",
        ] {
            assert!(!is_safe_id(bad), "{bad:?}");
        }
    }
}
