use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::{self, Write};
use std::path::Path;

/// The one key pair the embedded endpoint accepts.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddedCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl fmt::Debug for EmbeddedCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

impl EmbeddedCredentials {
    /// A fresh random pair: a 20-character access key id (`FG` + 18 upper-case
    /// letters and digits, shaped like AWS ones) and a 40-character secret.
    #[must_use]
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let id = Alphanumeric
            .sample_string(&mut rng, 18)
            .to_ascii_uppercase();
        Self {
            access_key_id: format!("FG{id}"),
            secret_access_key: Alphanumeric.sample_string(&mut rng, 40),
        }
    }

    /// Reads the pair saved at `path`, or generates one and saves it there as JSON
    /// (mode 0600 on unix), so the keys stay the same across restarts.
    ///
    /// # Errors
    /// I/O errors; [`io::ErrorKind::InvalidData`] when the file exists but is not a
    /// valid key file (it is never overwritten).
    pub fn load_or_create(path: &Path) -> io::Result<Self> {
        match std::fs::read(path) {
            Ok(raw) => return Self::parse(path, &raw),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let creds = Self::generate();
        let json = serde_json::to_vec_pretty(&creds).map_err(io::Error::other)?;
        let mut options = std::fs::OpenOptions::new();
        // create_new: never clobber keys another process just wrote.
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        match options.open(path) {
            Ok(mut file) => {
                file.write_all(&json)?;
                file.sync_all()?;
                tracing::info!(path = %path.display(), "generated embedded S3 credentials");
                Ok(creds)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Self::parse(path, &std::fs::read(path)?)
            }
            Err(e) => Err(e),
        }
    }

    fn parse(path: &Path, raw: &[u8]) -> io::Result<Self> {
        let creds: Self = serde_json::from_slice(raw).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not a credentials file: {e}", path.display()),
            )
        })?;
        if creds.access_key_id.is_empty() || creds.secret_access_key.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} has an empty key", path.display()),
            ));
        }
        Ok(creds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_generated_once_and_reused() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("nested/creds.json");
        let first = EmbeddedCredentials::load_or_create(&path)?;
        assert_eq!(first.access_key_id.len(), 20);
        assert_eq!(first.secret_access_key.len(), 40);
        let again = EmbeddedCredentials::load_or_create(&path)?;
        assert_eq!(first, again);
        assert_ne!(EmbeddedCredentials::generate(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)?.permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        Ok(())
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_replaced() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("creds.json");
        std::fs::write(&path, b"not json")?;
        let err = EmbeddedCredentials::load_or_create(&path).err();
        assert_eq!(err.map(|e| e.kind()), Some(io::ErrorKind::InvalidData));
        assert_eq!(std::fs::read(&path)?, b"not json");
        Ok(())
    }

    #[test]
    fn debug_hides_the_secret() {
        let c = EmbeddedCredentials::generate();
        assert!(!format!("{c:?}").contains(&c.secret_access_key));
    }
}
