//! Option types kept in [`AppState`](crate::AppState): plain settings and helpers built at
//! start. Imports nothing from `state`, so the handlers' modules and `state` form no circle.

use filegate_auth::{JwtConfig, mint_token};
use filegate_bootstrap::config::RateLimit;
use filegate_bootstrap::file_tokens::FileTokens;
use filegate_core::Error;
use filegate_core::domain::Principal;
use std::sync::Arc;
use std::time::Duration;

/// Options of the HTTP layers.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Origins allowed to call the API from a browser, with credentials.
    pub trusted_origins: Vec<String>,
    /// `None` switches rate limiting off.
    pub rate_limit: Option<RateLimit>,
    /// Serve the upload page at `/`.
    pub ui: bool,
}

/// Mints the short-lived JWT returned in `set-auth-token` and by `POST /api/v1/token`.
#[derive(Debug, Clone)]
pub struct TokenMinter {
    pub config: JwtConfig,
    pub ttl: Duration,
}

impl TokenMinter {
    /// # Errors
    /// [`Error::Internal`] if signing fails.
    pub fn mint(&self, p: &Principal) -> Result<String, Error> {
        mint_token(
            &self.config,
            &p.user_id,
            p.active_org_id.as_deref(),
            p.roles.first().map(String::as_str),
            p.platform_role.as_deref(),
            self.ttl,
            time::OffsetDateTime::now_utc(),
        )
        .map_err(|e| Error::internal(e.to_string()))
    }
}

/// Settings of the files listener kept in [`AppState`](crate::AppState).
#[derive(Clone)]
pub struct FilesOptions {
    /// `Cache-Control: public, max-age=` of public objects, seconds.
    pub public_max_age: u32,
    pub tokens: Arc<FileTokens>,
}

impl std::fmt::Debug for FilesOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilesOptions")
            .field("public_max_age", &self.public_max_age)
            .finish_non_exhaustive()
    }
}
