//! Wiring: picks the store (real R2 or the embedded endpoint), opens the database,
//! builds the services and serves the router until shut down.

use crate::config::{Config, LogFormat};
use crate::http::{HttpOptions, TokenMinter};
use crate::metrics::{MeteredObjectStore, Metrics};
use crate::state::{AppState, Readiness};
use crate::storage_setup::{OpenedStorage, open_storage};
use anyhow::Context;
use filegate_auth::{
    ApiKeyConfig, AuthDb, JwtAuthenticator, JwtConfig, QuickbackAuthenticator, SessionConfig,
};
use filegate_core::managed::{ManagedPolicy, ManagedService};
use filegate_core::media::{MediaPolicy, MediaService};
use filegate_core::ports::ObjectStore;
use filegate_core::ports::{Clock, SystemClock};
use filegate_core::storage::Storage;
use filegate_embedded_s3::EmbeddedS3;
use filegate_r2::SigV4Signer;
use filegate_sqlite::{SqliteFilesDb, SqliteMediaStore};
use secrecy::SecretString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A started server: its addresses, and a handle to stop it.
pub struct Running {
    pub api_addr: SocketAddr,
    /// The files listener (managed mode with `FILEGATE_FILES_LISTEN` not `off`).
    pub files_addr: Option<SocketAddr>,
    /// The embedded S3 endpoint, when no remote store is configured.
    pub s3_endpoint: Option<String>,
    pub bucket: String,
    pub data_dir: PathBuf,
    /// The JWT secret in use (configured, or the generated development one).
    pub auth_secret: SecretString,
    embedded: Option<EmbeddedS3>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
    files_server: Option<(oneshot::Sender<()>, JoinHandle<std::io::Result<()>>)>,
    managed: Option<Arc<ManagedService>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, then stops the embedded store.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let mut tasks = vec![self.task];
        if let Some((stop, task)) = self.files_server {
            let _ = stop.send(());
            tasks.push(task);
        }
        for task in tasks {
            match task.await {
                Ok(Err(e)) => tracing::warn!(error = %e, "server ended with an error"),
                Err(e) => tracing::warn!(error = %e, "server task failed"),
                Ok(Ok(())) => {}
            }
        }
        if let Some(embedded) = self.embedded {
            embedded.shutdown().await;
        }
    }

    /// Managed mode's service (tests seed objects through it).
    #[must_use]
    pub fn managed(&self) -> Option<Arc<ManagedService>> {
        self.managed.clone()
    }

    /// Stops only the embedded S3 endpoint (if any), leaving the API up: for tests of
    /// readiness and storage failures.
    pub async fn stop_storage(&mut self) {
        if let Some(embedded) = self.embedded.take() {
            embedded.shutdown().await;
        }
    }
}

pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,aws_smithy_runtime=warn,aws_sdk_s3=warn,s3s=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The configured secret, or one generated once and kept in `<data>/dev-secret`.
fn auth_secret(config: &Config) -> anyhow::Result<SecretString> {
    if let Some(s) = &config.auth_secret {
        return Ok(s.clone());
    }
    let path = config.data_dir.join("dev-secret");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim();
        if existing.len() >= 32 {
            return Ok(SecretString::from(existing.to_owned()));
        }
    }
    let secret = random_hex(32);
    write_private(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    tracing::warn!(path = %path.display(), "BETTER_AUTH_SECRET is not set: generated a development secret");
    Ok(SecretString::from(secret))
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)?.write_all(contents.as_bytes())
}

fn jwt_config(config: &Config, secret: &SecretString) -> JwtConfig {
    JwtConfig {
        secret: secret.clone(),
        issuer: config.jwt_issuer.clone(),
        audience: config.jwt_audience.clone(),
        leeway_secs: 0,
    }
}

/// Starts everything and returns once the API listens.
///
/// # Errors
/// Any setup failure, with context naming the part that failed.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let auth_secret = auth_secret(&config)?;

    let OpenedStorage {
        r2,
        objects,
        embedded,
    } = open_storage(&config, config.s3_listen).await?;
    let signer = SigV4Signer::new(&r2).context("configuring the URL signer")?;
    let db_path = config.data_dir.join("filegate.db");
    let media_store = SqliteMediaStore::open(&db_path)
        .await
        .with_context(|| format!("opening the media database {}", db_path.display()))?;

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let storage = Storage::new(Arc::new(signer), clock.clone(), config.bucket.clone());
    let policy = MediaPolicy {
        max_upload_size: config.max_upload_size,
        upload_expiry: config.upload_expiry,
        roles: config.roles.clone(),
        rules: config.access.clone(),
        firewall: config.firewall,
        require_size: config.media_require_size,
    };
    let audit = Arc::new(media_store.audit_log());
    let readiness =
        Readiness::for_adapters(media_store.clone(), objects.clone(), config.bucket.clone());
    let metrics = Arc::new(Metrics::new());
    let pool = media_store.clone();
    metrics.set_pool_probe(Box::new(move || pool.pool_usage()));
    let objects: Arc<dyn ObjectStore> =
        Arc::new(MeteredObjectStore::new(Arc::new(objects), metrics.clone()));
    let media = MediaService::new(
        storage.clone(),
        objects.clone(),
        Arc::new(media_store),
        audit,
        clock.clone(),
        policy,
    )
    .map_err(|e| anyhow::anyhow!("invalid media policy: {e:?}"))?;
    let file_tokens = Arc::new(crate::files::FileTokens::new(&auth_secret));
    // Bound before the policy: on port 0 (tests) FILES_URL follows the bound address.
    let files_listener = match config.files_listen.filter(|_| config.managed) {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the files listener on {addr}"))?,
        ),
        None => None,
    };
    let files_addr = files_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    let files_url = match (config.files_listen, files_addr) {
        (Some(wanted), Some(bound)) if wanted.port() == 0 => format!("http://{bound}"),
        _ => config.files_url.clone(),
    };
    let (managed, readiness) = if config.managed {
        let path = config.data_dir.join("files.db");
        let files_db = Arc::new(
            SqliteFilesDb::open(&path)
                .await
                .with_context(|| format!("opening FILES_DB {}", path.display()))?,
        );
        let policy = ManagedPolicy {
            files_url,
            max_file_size: config.max_upload_size,
            upload_expiry: config.upload_expiry,
            roles: config.roles.clone(),
            firewall: config.firewall,
            ..ManagedPolicy::default()
        };
        let service = ManagedService::new(
            storage,
            objects.clone(),
            files_db.clone(),
            files_db.clone(),
            clock,
            policy,
        )
        .map_err(|e| anyhow::anyhow!("invalid managed-mode policy: {e:?}"))?
        .with_url_tokens(file_tokens.clone());
        service
            .seed_default_buckets()
            .await
            .map_err(|e| anyhow::anyhow!("seeding the default buckets: {e:?}"))?;
        let db = files_db.clone();
        let readiness = readiness.check("files_db", move || {
            let db = db.clone();
            async move { db.ping().await }
        });
        (Some(Arc::new(service)), readiness)
    } else {
        (None, readiness)
    };
    let jwt = JwtAuthenticator::new(jwt_config(&config, &auth_secret));
    let auth = match &config.auth_db {
        Some(path) => {
            let db = AuthDb::open(path)
                .await
                .with_context(|| format!("opening the Better Auth database {}", path.display()))?;
            QuickbackAuthenticator::with_auth_db(
                jwt,
                db,
                SessionConfig::new(auth_secret.clone()),
                ApiKeyConfig::default(),
            )
        }
        None => QuickbackAuthenticator::new(jwt),
    }
    .with_pinned_org(config.pinned_org_id.clone());
    let state = AppState {
        media: Arc::new(media),
        auth: Arc::new(auth),
        objects,
        bucket: config.bucket.clone(),
        tokens: Arc::new(TokenMinter {
            config: jwt_config(&config, &auth_secret),
            ttl: config.session_jwt_ttl,
        }),
        http: Arc::new(HttpOptions {
            trusted_origins: config.cors_origins.clone(),
            rate_limit: config.rate_limit,
            ui: config.ui,
        }),
        metrics,
        readiness: Arc::new(readiness),
        managed: managed.clone(),
        files: Arc::new(crate::files::FilesOptions {
            public_max_age: config.public_max_age,
            tokens: file_tokens,
        }),
    };
    let files_server = files_listener.map(|listener| {
        let (stop, stopped) = oneshot::channel::<()>();
        let app = crate::files::files_router(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
        });
        (stop, task)
    });

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding the API listener on {}", config.listen))?;
    let api_addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let app = crate::router(state);
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = stopped.await;
        })
        .await
    });
    let s3_endpoint = embedded.as_ref().map(EmbeddedS3::endpoint);
    tracing::info!(api = %api_addr, s3 = s3_endpoint.as_deref().unwrap_or("remote"), bucket = %config.bucket, "filegate is listening");
    Ok(Running {
        api_addr,
        files_addr,
        files_server,
        managed,
        s3_endpoint,
        bucket: config.bucket.to_string(),
        data_dir: config.data_dir.clone(),
        auth_secret,
        embedded,
        stop,
        task,
    })
}

/// Runs until Ctrl-C or SIGTERM, then shuts down gracefully.
///
/// # Errors
/// Setup failures from [`start`].
pub async fn run(config: Config) -> anyhow::Result<()> {
    let banner = config.banner;
    let running = start(config).await?;
    if banner {
        print_banner(&running);
    }
    shutdown_signal().await;
    tracing::info!("shutting down");
    tokio::time::timeout(std::time::Duration::from_secs(30), running.shutdown())
        .await
        .context("in-flight requests did not finish within 30 s")?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

fn print_banner(running: &Running) {
    let api = format!("http://{}", running.api_addr);
    let Some(s3) = &running.s3_endpoint else {
        println!(
            "filegate API on {api}, storage: R2 bucket {}",
            running.bucket
        );
        return;
    };
    let token = filegate_auth::mint_token(
        &JwtConfig {
            secret: running.auth_secret.clone(),
            issuer: None,
            audience: None,
            leeway_secs: 0,
        },
        "dev-user",
        Some("dev-org"),
        Some("owner"),
        None,
        std::time::Duration::from_secs(3600),
        time::OffsetDateTime::now_utc(),
    );
    let token = token.unwrap_or_else(|e| format!("<could not mint: {e}>"));
    println!(
        r#"
filegate is running on its embedded defaults (no cloud account needed)
  API            {api}
  S3 endpoint    {s3}  (bucket {bucket}, files under {objects})
  database       {db}

A development token (user dev-user, org dev-org, role owner, valid 1 h):
  export TOKEN={token}

Try the presigned upload flow:
  curl -s -X POST {api}/api/v1/media/sign-upload \
    -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \
    -d '{{"filename":"report.pdf","contentType":"application/pdf"}}'
  # then PUT the bytes to uploadUrl, replaying the returned headers:
  curl -X PUT "<uploadUrl>" -H "Content-Type: application/pdf" -T report.pdf
"#,
        bucket = running.bucket,
        objects = running.data_dir.join("objects").display(),
        db = running.data_dir.join("filegate.db").display(),
    );
}
