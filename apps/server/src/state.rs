use crate::http::{HttpOptions, TokenMinter};
use filegate_core::domain::BucketName;
use filegate_core::media::MediaService;
use filegate_core::ports::{Authenticator, ObjectStore};
use std::sync::Arc;

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub media: Arc<MediaService>,
    pub auth: Arc<dyn Authenticator>,
    pub objects: Arc<dyn ObjectStore>,
    pub bucket: BucketName,
    pub tokens: Arc<TokenMinter>,
    pub http: Arc<HttpOptions>,
}
