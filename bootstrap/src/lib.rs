//! filegate's composition root, shared by `filegate-server` and `filegate-admin`: loads
//! the configuration ([`config`]) and builds from it the object store ([`storage`]), the
//! signer, the authenticator, the policies and the services ([`services`]). Layering:
//! `crates/` (pure) → `adapters/` → `bootstrap/` → `apps/`; nothing here knows HTTP.

pub mod config;
pub mod data_dir;
pub mod file_tokens;
pub mod metadata;
pub mod readiness;
pub mod services;
pub mod storage;
