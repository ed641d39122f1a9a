//! The handlers' shared state. Imports only option types, never a handler's module.

use crate::metrics::Metrics;
use crate::options::{FilesOptions, HttpOptions, TokenMinter};
use crate::page_cache::PageCache;
use filegate_core::domain::BucketName;
use filegate_core::files::FileAccess;
use filegate_core::managed::ManagedService;
use filegate_core::media::MediaService;
use filegate_core::ports::Authenticator;
use std::sync::Arc;

// Built by bootstrap; re-exported where handlers and tests already look for them.
pub use filegate_bootstrap::readiness::{CheckOutcome, ProbeFuture, Readiness};

/// Everything a handler needs, behind one pointer: axum clones the state for every
/// request and every stateful layer, and one reference count is all that copies.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    #[must_use]
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    pub media: Arc<MediaService>,
    pub auth: Arc<dyn Authenticator>,
    /// Reads by id in either mode (`med_…` and `obj_…`): one access check, then the bytes.
    pub reads: Arc<FileAccess>,
    pub bucket: BucketName,
    pub tokens: Arc<TokenMinter>,
    pub http: Arc<HttpOptions>,
    /// This app's Prometheus registry (one per app, never a process global).
    pub metrics: Arc<Metrics>,
    /// The checks `GET /readyz` runs.
    pub readiness: Arc<Readiness>,
    /// Managed mode's service; `None` when managed mode is off.
    pub managed: Option<Arc<ManagedService>>,
    /// The files listener's settings and URL tokens (also used by the API's downloads).
    pub files: Arc<FilesOptions>,
    /// Where form uploads are spooled (`<data>/tmp`), emptied at start.
    pub spool_dir: Arc<std::path::Path>,
    /// Rendered listing pages, while the media store's change token holds.
    pub pages: Arc<PageCache>,
}
