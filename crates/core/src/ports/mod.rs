//! The traits adapters implement. Each method's `# Errors` section is a contract:
//! adapters MUST map the named cases to the named [`Error`](crate::Error) variants,
//! so the domain and the HTTP layer can rely on them.

mod audit;
mod authenticator;
mod clock;
mod media_store;
mod object_store;
mod signer;

pub use audit::{AuditEntry, AuditLog};
pub use authenticator::{Authenticator, Credentials};
pub use clock::{Clock, SystemClock};
pub use media_store::{Media, MediaConfirmation, MediaCursor, MediaPage, MediaStatus, MediaStore};
pub use object_store::{
    ByteRange, ByteStream, CompletedPart, GetObject, ListPage, MultipartRef, ObjectMeta,
    ObjectStore, ObjectSummary, PendingUpload, PutObject, StoredPart,
};
pub use signer::{HttpMethod, PresignRequest, PresignedUrl, UrlSigner};

#[cfg(test)]
pub use audit::MockAuditLog;
#[cfg(test)]
pub use authenticator::MockAuthenticator;
#[cfg(test)]
pub use clock::MockClock;
#[cfg(test)]
pub use media_store::MockMediaStore;
#[cfg(test)]
pub use object_store::MockObjectStore;
#[cfg(test)]
pub use signer::MockUrlSigner;
