//! filegate's domain: validated value types, the ports adapters implement, and the
//! services the apps call. This crate does no I/O; it depends on no adapter.
//!
//! - [`domain`]: value types that can only hold valid values (`ObjectKey`, `Expiry`, …),
//!   and the security layers as data (`AccessRules`, `RoleHierarchy`, `FirewallMode`).
//! - [`ports`]: the traits adapters implement (`UrlSigner`, `ObjectStore`, `MediaStore`,
//!   `Authenticator`, `Clock`, `AuditLog`).
//! - [`storage`]: the `ctx.storage` signer facade (`sign_put_url`, `sign_get_url`).
//! - [`media`]: the presign-only media use cases behind `/api/v1/media/*`.
//! - [`managed`]: managed mode (`/storage/v1/*`): buckets and objects in FILES_DB.
//! - [`error`]: the error type with the layer and machine code of the HTTP envelope.

#![warn(missing_docs)]

pub mod domain;
pub mod error;
pub mod files;
pub mod key_locks;
pub mod managed;
pub mod media;
pub mod multipart;
pub mod policy;
pub mod ports;
pub mod reconcile;
pub mod storage;

pub use error::{Error, Layer};
