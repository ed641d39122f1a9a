//! filegate's authenticators, each an implementation of the core
//! [`Authenticator`](filegate_core::ports::Authenticator) port.
//!
//! - [`JwtAuthenticator`]: Quickback's JWT fast path, HS256 tokens signed with
//!   `BETTER_AUTH_SECRET`; [`mint_token`] makes such tokens (admin CLI, tests).
//! - [`SessionAuthenticator`]: Better Auth sessions (signed session cookie, or the bearer
//!   plugin's session token), looked up in Better Auth's database ([`AuthDb`]).
//! - [`ApiKeyAuthenticator`]: Better Auth API keys (`x-api-key`), with their rate limits.
//! - [`QuickbackAuthenticator`]: the three in Quickback's order, with an optional
//!   pinned organization.
//!
//! `docs/AUTH.md` records what these rely on in Better Auth and where it was found.

mod api_key;
mod auth_db;
mod ids;
mod jwt;
mod quickback;
mod session;

pub use api_key::{ApiKeyAuthenticator, ApiKeyConfig, hash_api_key};
pub use auth_db::{AuthDb, PgAuthPool, is_postgres_url};
pub use ids::is_safe_id;
pub use jwt::{
    DEFAULT_LEEWAY_SECS, JwtAuthenticator, JwtConfig, TokenClaims, looks_like_jwt, mint_token,
};
pub use quickback::QuickbackAuthenticator;
pub use session::{DEFAULT_COOKIE_PREFIX, SessionAuthenticator, SessionConfig, cookie_values};
