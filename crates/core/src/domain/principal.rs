/// Which kind of credential established a [`Principal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMethod {
    /// Quickback's HS256 JWT (the fast path).
    #[default]
    Jwt,
    /// A Better Auth session (cookie or bearer session token).
    Session,
    /// A Better Auth API key (`x-api-key`).
    ApiKey,
}

/// Who is calling, as established by an [`Authenticator`](crate::ports::Authenticator).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Principal {
    /// The authenticated user's id.
    pub user_id: String,
    /// Set only when the user really is a member of that organization.
    pub active_org_id: Option<String>,
    /// Roles in the active organization (`owner`, `admin`, `member`).
    pub roles: Vec<String>,
    /// The user table's own role; `admin` is a platform admin.
    pub platform_role: Option<String>,
    /// How the caller authenticated.
    pub method: AuthMethod,
}

impl Principal {
    /// Whether the user table's role is `admin`.
    #[must_use]
    pub fn is_platform_admin(&self) -> bool {
        self.platform_role.as_deref() == Some("admin")
    }
}
