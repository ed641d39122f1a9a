//! R2 (or any S3-compatible store) adapter.
//!
//! - [`SigV4Signer`] implements [`UrlSigner`](filegate_core::ports::UrlSigner): query-string
//!   SigV4 presigning done locally, with the day's signing key cached.
//! - [`S3ObjectStore`] implements [`ObjectStore`](filegate_core::ports::ObjectStore) with aws-sdk-s3.

mod config;
mod signer;
mod store;

pub use config::R2Config;
pub use signer::SigV4Signer;
pub use store::S3ObjectStore;
