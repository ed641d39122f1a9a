//! The HTTP side of start-up: asks bootstrap for the services, then composes router,
//! listeners, metrics and shutdown around them.

use crate::metrics::{MeteredObjectStore, Metrics};
use crate::options::{FilesOptions, HttpOptions, TokenMinter};
use crate::page_cache::PageCache;
use crate::state::{AppState, Shared};
use anyhow::Context;
use filegate_auth::JwtConfig;
use filegate_bootstrap::config::{Config, LogFormat};
use filegate_bootstrap::services::{Hooks, Opened, Services};
use filegate_core::files::FileAccess;
use filegate_core::managed::ManagedService;
use filegate_embedded_s3::EmbeddedS3;
use secrecy::SecretString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

// Decided by bootstrap; re-exported for the banner's users.
pub use filegate_bootstrap::data_dir::SecretSource;

/// A serving listener: send to stop it, then await its task.
type Serving = (oneshot::Sender<()>, JoinHandle<std::io::Result<()>>);

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
    pub secret_source: SecretSource,
    embedded: Option<EmbeddedS3>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
    files_server: Option<Serving>,
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

/// Starts everything and returns once the API listens: bootstrap opens the store and
/// builds the services; this composes the HTTP side around them.
///
/// # Errors
/// Any setup failure, with context naming the part that failed.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let opened = Opened::open(&config, config.s3_listen).await?;
    // Bound before the services: on port 0 (tests) FILES_URL follows the bound address.
    let (files_listener, files_url) = bind_files_listener(&config).await?;
    let files_addr = files_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    let metrics = Arc::new(Metrics::new());
    let mut services = opened
        .into_services(&config, files_url, hooks(&metrics))
        .await?;
    let embedded = services.embedded.take();
    let (auth_secret, secret_source) = (services.auth_secret.clone(), services.secret_source);
    let state = app_state(&config, services, metrics)?;
    let managed = state.managed.clone();
    let files_server = files_listener.map(|listener| {
        spawn_serving(listener, crate::files::files_router(state.clone()), &config)
    });

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding the API listener on {}", config.listen))?;
    let api_addr = listener.local_addr()?;
    let (stop, task) = spawn_serving(listener, crate::router(state), &config);
    let s3_endpoint = embedded.as_ref().map(EmbeddedS3::endpoint);
    let files = files_addr.map_or_else(|| "off".to_owned(), |a| a.to_string());
    tracing::info!(api = %api_addr, files = %files, s3 = s3_endpoint.as_deref().unwrap_or("remote"), bucket = %config.bucket, "filegate is listening");
    Ok(Running {
        api_addr,
        files_addr,
        files_server,
        managed,
        s3_endpoint,
        bucket: config.bucket.to_string(),
        data_dir: config.data_dir.clone(),
        auth_secret,
        secret_source,
        embedded,
        stop,
        task,
    })
}

/// The files listener (managed mode, unless `off`) and the `FILES_URL` its URLs use.
async fn bind_files_listener(config: &Config) -> anyhow::Result<(Option<TcpListener>, String)> {
    let Some(addr) = config.files_listen.filter(|_| config.managed) else {
        return Ok((None, config.files_url.clone()));
    };
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the files listener on {addr}"))?;
    let files_url = if addr.port() == 0 {
        format!("http://{}", listener.local_addr()?)
    } else {
        config.files_url.clone()
    };
    Ok((Some(listener), files_url))
}

/// The handlers' state over bootstrap's services.
fn app_state(
    config: &Config,
    services: Services,
    metrics: Arc<Metrics>,
) -> anyhow::Result<AppState> {
    metrics.set_pool_probe(services.media_pool);
    let media = Arc::new(services.media);
    let managed = services.managed.map(Arc::new);
    Ok(AppState::new(Shared {
        reads: Arc::new(FileAccess::new(media.clone(), managed.clone())),
        media,
        auth: Arc::new(services.auth),
        bucket: config.bucket.clone(),
        tokens: Arc::new(TokenMinter {
            config: services.session_jwt,
            ttl: config.session_jwt_ttl,
        }),
        http: Arc::new(HttpOptions {
            trusted_origins: config.cors_origins.clone(),
            rate_limit: config.rate_limit,
            ui: config.ui,
        }),
        metrics,
        readiness: Arc::new(services.readiness),
        managed,
        files: Arc::new(FilesOptions {
            public_max_age: config.public_max_age,
            tokens: services.file_tokens,
        }),
        spool_dir: spool_dir(&config.data_dir)?.into(),
        pages: Arc::new(PageCache::default()),
    }))
}

/// Serves `app` on `listener` with the configured limits until the sender is used.
fn spawn_serving(listener: TcpListener, app: axum::Router, config: &Config) -> Serving {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(crate::listener::serve(
        listener,
        app,
        config.listener,
        async {
            let _ = stopped.await;
        },
    ));
    (stop, task)
}

/// Storage metered into `metrics`; an ETag mismatch counted and logged.
fn hooks(metrics: &Arc<Metrics>) -> Hooks {
    let for_objects = metrics.clone();
    let for_mismatch = metrics.clone();
    Hooks {
        objects: Box::new(move |objects| Arc::new(MeteredObjectStore::new(objects, for_objects))),
        etag_mismatch: Some(Arc::new(move |key| {
            for_mismatch.etag_mismatch();
            tracing::warn!(%key, "storage holds other bytes than the object's row; read refused");
        })),
    }
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

/// Best effort: a closed or full stdout (a supervisor that does not read it, `| head`)
/// must not stop a server that is already serving.
fn print_banner(running: &Running) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let api = format!("http://{}", running.api_addr);
    let Some(s3) = &running.s3_endpoint else {
        let _ = writeln!(
            out,
            "filegate API on {api}, storage: R2 bucket {}",
            running.bucket
        );
        return;
    };
    // Only a secret filegate generated itself may sign a printed token: one signed with a
    // configured secret would be a real credential in logs and terminal scrollback.
    let token_lines = match running.secret_source {
        SecretSource::Generated => {
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
                std::time::Duration::from_hours(1),
                time::OffsetDateTime::now_utc(),
            );
            let token = token.unwrap_or_else(|e| format!("<could not mint: {e}>"));
            format!(
                "A development token (user dev-user, org dev-org, role owner, valid 1 h):\n  export TOKEN={token}"
            )
        }
        SecretSource::Configured => "The signing secret is configured, so no token is printed. Mint one with the same secret:\n  filegate-admin token --user dev-user --org dev-org --role owner".to_owned(),
    };
    let _ = writeln!(
        out,
        r#"
filegate is running on its embedded defaults (no cloud account needed)
  API            {api}
  S3 endpoint    {s3}  (bucket {bucket}, files under {objects})
  database       {db}

{token_lines}

Try the presigned upload flow:
  curl -s -X POST {api}/api/v1/media/sign-upload \
    -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \
    -d '{{"filename":"report.pdf","contentType":"application/pdf"}}'
  # then PUT the bytes to uploadUrl, replaying the returned headers, and confirm:
  curl -X PUT "<uploadUrl>" -H "Content-Type: application/pdf" -H "If-None-Match: *" -T report.pdf
  curl -s -X POST {api}/api/v1/media/<id>/confirm -H "Authorization: Bearer $TOKEN"
"#,
        bucket = running.bucket,
        objects = running.data_dir.join("objects").display(),
        db = running.data_dir.join("filegate.db").display(),
    );
}

/// `<data>/tmp`, for form uploads in flight; what a crash left there is removed.
fn spool_dir(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = data_dir.join("tmp");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("emptying spool directory {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating spool directory {}", dir.display()))?;
    Ok(dir)
}
