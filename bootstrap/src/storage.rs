//! Opens the object store as the server does: real R2 when configured, else the embedded
//! S3 endpoint over `<data>/objects` with the credentials in `<data>/embedded-s3.json`.
//! Shared by the server and `filegate-admin` (which starts its own embedded endpoint on a
//! free loopback port: the store's index is safe to share between processes, so it
//! works whether the server runs or not; docs/EMBEDDED-STORE.md, "Limits").

use crate::config::Config;
use anyhow::Context;
use filegate_embedded_s3::{EmbeddedCredentials, EmbeddedS3, EmbeddedS3Config};
use filegate_r2::{R2Config, S3ObjectStore};
use secrecy::SecretString;
use std::net::SocketAddr;

/// File in the data directory holding the embedded endpoint's generated credentials.
pub const EMBEDDED_CREDENTIALS_FILE: &str = "embedded-s3.json";
/// Folder in the data directory the embedded endpoint stores objects in.
pub const EMBEDDED_OBJECTS_DIR: &str = "objects";

/// An opened store: its settings (also for the URL signer), the client, and the embedded
/// endpoint when one was started (stop it with [`EmbeddedS3::shutdown`]).
#[derive(Debug)]
pub struct OpenedStorage {
    pub r2: R2Config,
    pub objects: S3ObjectStore,
    pub embedded: Option<EmbeddedS3>,
}

/// Opens the store. In embedded mode the endpoint listens on `embedded_listen` (the
/// server passes `config.s3_listen`, the admin `127.0.0.1:0`) and the default bucket is
/// created if missing.
///
/// # Errors
/// Unreadable credentials, an unusable address or folder, or an invalid endpoint.
pub async fn open_storage(
    config: &Config,
    embedded_listen: SocketAddr,
) -> anyhow::Result<OpenedStorage> {
    let (r2, embedded) = if let Some(remote) = &config.remote {
        (
            R2Config {
                account_id: remote.account_id.clone(),
                access_key_id: remote.access_key_id.clone(),
                secret_access_key: remote.secret_access_key.clone(),
                bucket: config.bucket.clone(),
                endpoint: remote.endpoint.clone(),
                region: remote.region.clone(),
            },
            None,
        )
    } else {
        let creds =
            EmbeddedCredentials::load_or_create(&config.data_dir.join(EMBEDDED_CREDENTIALS_FILE))
                .context("loading the embedded S3 credentials")?;
        let embedded = EmbeddedS3::start(EmbeddedS3Config {
            root: config.data_dir.join(EMBEDDED_OBJECTS_DIR),
            addr: embedded_listen,
            access_key_id: creds.access_key_id.clone(),
            secret_access_key: creds.secret_access_key.clone(),
            allowed_origins: config.cors_origins.clone(),
        })
        .await
        .with_context(|| format!("starting the embedded S3 endpoint on {embedded_listen}"))?;
        (
            R2Config {
                account_id: None,
                access_key_id: creds.access_key_id,
                secret_access_key: SecretString::from(creds.secret_access_key),
                bucket: config.bucket.clone(),
                endpoint: Some(embedded.endpoint()),
                region: "auto".to_owned(),
            },
            Some(embedded),
        )
    };
    let objects = S3ObjectStore::new(&r2).context("configuring the object store")?;
    if embedded.is_some() {
        objects
            .ensure_bucket(&config.bucket)
            .await
            .context("creating the default bucket on the embedded endpoint")?;
    }
    Ok(OpenedStorage {
        r2,
        objects,
        embedded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use filegate_core::ports::ObjectStore;

    #[tokio::test]
    async fn embedded_mode_reopens_the_same_folder_with_the_same_credentials() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = Config::ephemeral(dir.path());
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let first = open_storage(&config, any).await.expect("opens");
        let second = open_storage(&config, any).await.expect("opens again");
        assert_eq!(first.r2.access_key_id, second.r2.access_key_id);
        assert!(dir.path().join(EMBEDDED_CREDENTIALS_FILE).exists());
        let page = second
            .objects
            .list(&config.bucket, None, None, 10)
            .await
            .expect("the bucket exists");
        assert!(page.objects.is_empty());
        for s in [first, second] {
            if let Some(e) = s.embedded {
                e.shutdown().await;
            }
        }
    }
}
