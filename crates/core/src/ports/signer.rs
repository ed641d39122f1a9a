use crate::domain::{BucketName, Expiry, ObjectKey};
use crate::error::Error;
use async_trait::async_trait;
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// The methods R2 can presign (it has no presigned POST).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    /// Reads an object.
    Get,
    /// Writes an object.
    Put,
    /// Reads an object's metadata.
    Head,
    /// Deletes an object.
    Delete,
}

impl HttpMethod {
    /// The method's name as sent on the wire.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Put => "PUT",
            Self::Head => "HEAD",
            Self::Delete => "DELETE",
        }
    }
}

/// What to presign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignRequest {
    /// The method the URL allows.
    pub method: HttpMethod,
    /// The bucket the URL addresses.
    pub bucket: BucketName,
    /// The object key the URL addresses.
    pub key: ObjectKey,
    /// How long the URL stays valid after `signed_at`.
    pub expires_in: Expiry,
    /// The signature's start time (`X-Amz-Date`); expiry counts from here.
    pub signed_at: OffsetDateTime,
    /// Headers to sign, which the client must then send with exactly these values.
    /// Names in the canonical capitalisation the client should use (`Content-Type`).
    pub headers: BTreeMap<String, String>,
    /// Extra query parameters to sign, e.g. `response-content-disposition`.
    pub query: BTreeMap<String, String>,
}

/// A presigned URL and the headers the client must replay with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedUrl {
    /// The presigned URL.
    pub url: String,
    /// Headers the client must send with exactly these values.
    pub headers: BTreeMap<String, String>,
}

/// Makes presigned (query-string SigV4) URLs. Implementations sign locally, without
/// a network call.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait UrlSigner: Send + Sync {
    /// Presigns one request.
    ///
    /// # Errors
    /// - [`Error::Validation`] when a header or query value cannot be signed (e.g. non-ASCII header value).
    /// - [`Error::Internal`] for any other failure of the signing machinery.
    async fn presign(&self, request: &PresignRequest) -> Result<PresignedUrl, Error>;
}
