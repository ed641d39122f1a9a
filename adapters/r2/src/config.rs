use filegate_core::domain::BucketName;
use secrecy::SecretString;

/// Where and as whom to talk to R2 (or another S3-compatible endpoint).
#[derive(Debug, Clone)]
pub struct R2Config {
    /// Cloudflare account id; gives the endpoint `https://<id>.r2.cloudflarestorage.com`.
    pub account_id: Option<String>,
    pub access_key_id: String,
    /// Redacted in `Debug`.
    pub secret_access_key: SecretString,
    /// The default bucket.
    pub bucket: BucketName,
    /// Overrides the endpoint, e.g. `http://127.0.0.1:8788` for the embedded store.
    /// Presigned URLs use exactly this scheme, host and port (the host is signed).
    pub endpoint: Option<String>,
    /// SigV4 region; R2 uses `auto`.
    pub region: String,
}

impl R2Config {
    /// The endpoint URL without a trailing slash.
    ///
    /// # Errors
    /// [`filegate_core::Error::Validation`] on field `endpoint` when neither an endpoint nor an account id is set,
    /// or the endpoint is not an `http(s)://host[:port]` URL.
    pub fn endpoint_url(&self) -> Result<String, filegate_core::Error> {
        let raw = match (&self.endpoint, &self.account_id) {
            (Some(e), _) => e.trim_end_matches('/').to_owned(),
            (None, Some(id)) => format!("https://{id}.r2.cloudflarestorage.com"),
            (None, None) => {
                return Err(filegate_core::Error::invalid(
                    "endpoint",
                    "set R2_ACCOUNT_ID or an explicit endpoint",
                ));
            }
        };
        let rest = raw
            .strip_prefix("https://")
            .or_else(|| raw.strip_prefix("http://"));
        match rest {
            Some(host) if !host.is_empty() && !host.contains(['/', '?', '#', ' ']) => Ok(raw),
            _ => Err(filegate_core::Error::invalid(
                "endpoint",
                "must be http(s)://host[:port] with no path",
            )),
        }
    }
}
