//! Policies, authenticator and services, built from the configuration: the one place the
//! server and `filegate-admin` wire them. The server opens everything in two steps
//! ([`Opened::open`], then [`Opened::into_services`]) because managed mode's URLs follow the
//! files listener's bound port, which the server binds in between.

use crate::config::{AuthDbLocation, Config};
use crate::data_dir::{SecretSource, auth_secret, prepare_data_dir, restrict_objects_dir};
use crate::file_tokens::FileTokens;
use crate::metadata::{FilesDb, MediaDb};
use crate::readiness::Readiness;
use crate::storage::{OpenedStorage, open_storage};
use anyhow::Context;
use filegate_auth::{
    ApiKeyConfig, AuthDb, JwtAuthenticator, JwtConfig, QuickbackAuthenticator, SessionConfig,
};
use filegate_core::managed::{
    BucketStore, EtagMismatchHook, ManagedPolicy, ManagedService, ObjectRowStore,
};
use filegate_core::media::{MediaPolicy, MediaService};
use filegate_core::policy::AccessPolicy;
use filegate_core::ports::{Clock, ObjectStore, SystemClock};
use filegate_core::storage::Storage;
use filegate_embedded_s3::EmbeddedS3;
use filegate_r2::{R2Config, SigV4Signer};
use secrecy::{ExposeSecret, SecretString};
use std::net::SocketAddr;
use std::sync::Arc;

pub use crate::metadata::{FILES_DB_FILE, MEDIA_DB_FILE};

/// The JWT settings of `config`, signing with `secret`.
#[must_use]
pub fn jwt_config(config: &Config, secret: &SecretString) -> JwtConfig {
    JwtConfig {
        secret: secret.clone(),
        issuer: config.jwt_issuer.clone(),
        audience: config.jwt_audience.clone(),
        leeway_secs: 0,
    }
}

/// Presigned URLs for the configured bucket, signed for the store `r2` describes.
///
/// # Errors
/// Settings the signer refuses.
pub fn signing(config: &Config, r2: &R2Config, clock: Arc<dyn Clock>) -> anyhow::Result<Storage> {
    let signer = SigV4Signer::new(r2).context("configuring the URL signer")?;
    Ok(Storage::new(Arc::new(signer), clock, config.bucket.clone()))
}

/// Roles, firewall mode and upload limits: configured once, meaning the same in both modes.
#[must_use]
pub fn access_policy(config: &Config) -> AccessPolicy {
    AccessPolicy {
        roles: config.roles.clone(),
        firewall: config.firewall,
        max_upload_size: config.max_upload_size,
        upload_expiry: config.upload_expiry,
        multipart_max_age: config.multipart_max_age,
    }
}

/// Presign-only mode's policy.
#[must_use]
pub fn media_policy(config: &Config) -> MediaPolicy {
    MediaPolicy {
        shared: access_policy(config),
        rules: config.access.clone(),
        require_size: config.media_require_size,
    }
}

/// Managed mode's policy; `files_url` is the files listener's public origin.
#[must_use]
pub fn managed_policy(config: &Config, files_url: String) -> ManagedPolicy {
    ManagedPolicy {
        shared: access_policy(config),
        files_url,
        ..ManagedPolicy::default()
    }
}

/// Managed mode's service over FILES_DB `db` and the store `objects`.
///
/// # Errors
/// A policy the service refuses.
pub fn managed_service<D>(
    config: &Config,
    files_url: String,
    signing: Storage,
    objects: Arc<dyn ObjectStore>,
    db: Arc<D>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<ManagedService>
where
    D: BucketStore + ObjectRowStore + 'static,
{
    managed_service_over(config, files_url, signing, objects, db.clone(), db, clock)
}

/// [`managed_service`] over FILES_DB's two ports given apart.
///
/// # Errors
/// A policy the service refuses.
pub fn managed_service_over(
    config: &Config,
    files_url: String,
    signing: Storage,
    objects: Arc<dyn ObjectStore>,
    buckets: Arc<dyn BucketStore>,
    rows: Arc<dyn ObjectRowStore>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<ManagedService> {
    ManagedService::new(
        signing,
        objects,
        buckets,
        rows,
        clock,
        managed_policy(config, files_url),
    )
    .map_err(|e| anyhow::anyhow!("invalid managed-mode policy: {e:?}"))
}

/// JWTs signed with `secret`; with `auth_db` also Better Auth sessions and API keys.
///
/// # Errors
/// The Better Auth database cannot be opened.
pub async fn authenticator(
    config: &Config,
    secret: &SecretString,
) -> anyhow::Result<QuickbackAuthenticator> {
    let jwt = JwtAuthenticator::new(jwt_config(config, secret));
    let auth = match &config.auth_db {
        Some(location) => {
            let db = match location {
                AuthDbLocation::Sqlite(path) => AuthDb::open(path).await.with_context(|| {
                    format!("opening the Better Auth database {}", path.display())
                })?,
                AuthDbLocation::Postgres(url) => {
                    AuthDb::open_postgres_with(url.expose_secret(), config.auth_db_pool)
                        .await
                        .context("opening the Better Auth database on PostgreSQL")?
                }
            };
            QuickbackAuthenticator::with_auth_db(
                jwt,
                db,
                SessionConfig::new(secret.clone()),
                ApiKeyConfig::default(),
            )
        }
        None => QuickbackAuthenticator::new(jwt),
    };
    Ok(auth.with_pinned_org(config.pinned_org_id.clone()))
}

/// Wraps the object store every service uses (the server meters it).
pub type WrapObjects = Box<dyn FnOnce(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore> + Send>;

/// What the caller adds to the services: the server meters storage.
pub struct Hooks {
    /// Wraps the object store every service uses.
    pub objects: WrapObjects,
    /// Called when a managed read finds other bytes than the object's row describes.
    pub etag_mismatch: Option<EtagMismatchHook>,
}

impl Default for Hooks {
    fn default() -> Self {
        Self {
            objects: Box::new(|objects| objects),
            etag_mismatch: None,
        }
    }
}

/// The data folder, the signing secret, the object store and the media database: what
/// the server opens before it binds anything.
pub struct Opened {
    pub auth_secret: SecretString,
    pub secret_source: SecretSource,
    pub storage: OpenedStorage,
    media_db: MediaDb,
}

/// Everything the server's handlers use.
pub struct Services {
    pub media: MediaService,
    /// `None` when managed mode is off.
    pub managed: Option<ManagedService>,
    pub auth: QuickbackAuthenticator,
    /// `database`, `storage` and, in managed mode, `files_db`.
    pub readiness: Readiness,
    /// The files listener's URL tokens (the managed service mints them).
    pub file_tokens: Arc<FileTokens>,
    /// Settings of the JWTs the server mints after a session authenticated.
    pub session_jwt: JwtConfig,
    pub auth_secret: SecretString,
    pub secret_source: SecretSource,
    /// The embedded S3 endpoint, when no remote store is configured.
    pub embedded: Option<EmbeddedS3>,
    /// (open, idle, waiting) connections of the media database pool.
    pub media_pool: Box<dyn Fn() -> (usize, usize, usize) + Send + Sync>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("managed", &self.managed.is_some())
            .field("readiness", &self.readiness)
            .field("secret_source", &self.secret_source)
            .finish_non_exhaustive()
    }
}

impl Opened {
    /// Prepares the data folder, reads or generates the signing secret, opens the store
    /// (the embedded endpoint on `embedded_listen`) and the media database.
    ///
    /// # Errors
    /// Any of these failing, with context naming it.
    pub async fn open(config: &Config, embedded_listen: SocketAddr) -> anyhow::Result<Self> {
        prepare_data_dir(&config.data_dir)?;
        let (auth_secret, secret_source) = auth_secret(config)?;
        let storage = open_storage(config, embedded_listen).await?;
        restrict_objects_dir(&config.data_dir)?;
        let media_db = MediaDb::open(config).await?;
        Ok(Self {
            auth_secret,
            secret_source,
            storage,
            media_db,
        })
    }

    /// Builds the services; `files_url` is the files listener's public origin (managed
    /// mode). In managed mode this opens FILES_DB and seeds the default buckets.
    ///
    /// # Errors
    /// An invalid policy, or a database that cannot be opened.
    pub async fn into_services(
        self,
        config: &Config,
        files_url: String,
        hooks: Hooks,
    ) -> anyhow::Result<Services> {
        let Self {
            auth_secret,
            secret_source,
            storage,
            media_db,
        } = self;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let signing = signing(config, &storage.r2, clock.clone())?;
        let audit = media_db.audit_log();
        let readiness = Readiness::for_adapters(
            media_db.clone(),
            storage.objects.clone(),
            config.bucket.clone(),
        );
        let pool = media_db.clone();
        let media_pool = Box::new(move || pool.pool_usage());
        let objects = (hooks.objects)(Arc::new(storage.objects.clone()));
        let media = MediaService::new(
            signing.clone(),
            objects.clone(),
            media_db.store(),
            audit,
            clock.clone(),
            media_policy(config),
        )
        .map_err(|e| anyhow::anyhow!("invalid media policy: {e:?}"))?;
        let file_tokens = Arc::new(FileTokens::new(&auth_secret));
        let (managed, readiness) = if config.managed {
            let files_db = FilesDb::open(config, Some(&media_db)).await?;
            let mut service = managed_service_over(
                config,
                files_url,
                signing,
                objects.clone(),
                files_db.buckets(),
                files_db.rows(),
                clock,
            )?
            .with_url_tokens(file_tokens.clone());
            if let Some(hook) = hooks.etag_mismatch {
                service = service.with_etag_mismatch_hook(hook);
            }
            service
                .seed_default_buckets()
                .await
                .map_err(|e| anyhow::anyhow!("seeding the default buckets: {e:?}"))?;
            let db = files_db.clone();
            let readiness = readiness.check("files_db", move || {
                let db = db.clone();
                async move { db.ping().await }
            });
            (Some(service), readiness)
        } else {
            (None, readiness)
        };
        let auth = authenticator(config, &auth_secret).await?;
        Ok(Services {
            media,
            managed,
            auth,
            readiness,
            file_tokens,
            session_jwt: jwt_config(config, &auth_secret),
            auth_secret,
            secret_source,
            embedded: storage.embedded,
            media_pool,
        })
    }
}
