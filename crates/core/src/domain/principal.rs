/// Who is calling, as established by an [`Authenticator`](crate::ports::Authenticator).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Principal {
    pub user_id: String,
    /// Set only when the user really is a member of that organization.
    pub active_org_id: Option<String>,
    /// Roles in the active organization (`owner`, `admin`, `member`).
    pub roles: Vec<String>,
    /// The user table's own role; `admin` is a platform admin.
    pub platform_role: Option<String>,
}

impl Principal {
    #[must_use]
    pub fn is_platform_admin(&self) -> bool {
        self.platform_role.as_deref() == Some("admin")
    }
}
