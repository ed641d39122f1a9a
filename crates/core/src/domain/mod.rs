//! Value types that can only hold valid values. Constructors validate and never
//! normalise silently: input that is not already in canonical form is rejected.

mod access;
mod disposition;
mod firewall;
mod ids;
pub(crate) mod names;
mod principal;
mod time_limits;

pub use access::{
    AccessRule, AccessRules, InvalidAccessRule, MediaOperation, RoleHierarchy, RoleTerm,
};
pub use disposition::{content_disposition_attachment, key_safe_filename, validate_filename};
pub use firewall::FirewallMode;
pub use ids::MediaId;
pub use names::{BucketName, ContentType, MAX_KEY_BYTES, ObjectKey};
pub use principal::{AuthMethod, Principal};
pub use time_limits::{ByteSize, Expiry};
