//! Value types that can only hold valid values. Constructors validate; the only one that
//! normalises is [`ContentType`], whose one canonical form is what gets signed, stored
//! and served.

mod access;
mod disposition;
mod firewall;
pub(crate) mod ids;
mod media_type;
pub(crate) mod names;
mod principal;
mod time_limits;

pub use access::{
    AccessRule, AccessRules, InvalidAccessRule, MediaOperation, RoleHierarchy, RoleTerm,
};
pub use disposition::{
    content_disposition_attachment, is_bidi_control, key_safe_filename, validate_filename,
};
pub use firewall::FirewallMode;
pub use ids::MediaId;
pub use media_type::{MAX_MEDIA_TYPE_BYTES, MediaType, MediaTypeError};
pub use names::{BucketName, ContentType, MAX_KEY_BYTES, ObjectKey};
pub use principal::{AuthMethod, Principal};
pub use time_limits::{ByteSize, Expiry};
