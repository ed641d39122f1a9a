use crate::error::Error;
use async_trait::async_trait;
use time::OffsetDateTime;

/// One call of a `PUBLIC` operation (spec §6.5: every such call is audit-logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// When the call was made.
    pub at: OffsetDateTime,
    /// The route as the server names it, e.g. `/api/v1/media/{id}/sign-download`.
    pub route: String,
    /// The HTTP method.
    pub method: String,
    /// The client's address, when known.
    pub ip: Option<String>,
    /// Set when the caller was authenticated anyway.
    pub user_id: Option<String>,
    /// The resource the call named (a media id), if any.
    pub resource: Option<String>,
}

/// The security audit table.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends one entry. Callers fail the request when this fails: an unaudited public
    /// call is not allowed to proceed.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the store is busy or unreachable; [`Error::Internal`]
    /// when the entry cannot be stored (e.g. `at` outside the storable range).
    async fn record(&self, entry: &AuditEntry) -> Result<(), Error>;
}
