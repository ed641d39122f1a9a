//! filegate's authenticators, each an implementation of the core
//! [`Authenticator`](filegate_core::ports::Authenticator) port.
//!
//! - [`JwtAuthenticator`]: Quickback's JWT fast path, HS256 tokens signed with
//!   `BETTER_AUTH_SECRET`; [`mint_token`] makes such tokens (admin CLI, tests).
//! - [`AuthChain`]: tries several authenticators in order, so the session and API-key
//!   authenticators can sit beside the JWT one.

mod chain;
mod jwt;

pub use chain::AuthChain;
pub use jwt::{
    DEFAULT_LEEWAY_SECS, JwtAuthenticator, JwtConfig, TokenClaims, looks_like_jwt, mint_token,
};
