//! TLS to Postgres with rustls, following libpq's `sslmode`: `disable` never encrypts;
//! `prefer` (the default) and `require` encrypt without authenticating the server (as
//! libpq does without a root certificate); `verify-ca` also checks the certificate chain,
//! `verify-full` the chain and the host name. Roots come from `sslrootcert` (a PEM file)
//! or else the system's store.

use filegate_core::Error;
use percent_encoding::percent_decode_str;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::sync::Arc;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Mode {
    /// What tokio-postgres is told: it knows only whether to try and whether to insist.
    pub(crate) fn ssl_mode(self) -> SslMode {
        match self {
            Self::Disable => SslMode::Disable,
            Self::Prefer => SslMode::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => SslMode::Require,
        }
    }
}

/// A URL split into what tokio-postgres parses and the TLS settings it does not know.
#[derive(Debug)]
pub(crate) struct Split {
    pub(crate) url: String,
    pub(crate) mode: Mode,
    pub(crate) root_cert: Option<String>,
}

fn bad(message: impl Into<String>) -> Error {
    Error::invalid("database_url", message)
}

/// Takes `sslmode` and `sslrootcert` out of the URL's query.
pub(crate) fn split(url: &str) -> Result<Split, Error> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut mode = Mode::Prefer;
    let mut root_cert = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode_str(value).decode_utf8_lossy();
        match key {
            "sslmode" => {
                mode = match value.as_ref() {
                    "disable" => Mode::Disable,
                    "allow" | "prefer" => Mode::Prefer,
                    "require" => Mode::Require,
                    "verify-ca" => Mode::VerifyCa,
                    "verify-full" => Mode::VerifyFull,
                    other => {
                        return Err(bad(format!(
                            "sslmode {other:?} is not one of disable, allow, prefer, require, \
                             verify-ca, verify-full"
                        )));
                    }
                };
            }
            "sslrootcert" => root_cert = Some(value.into_owned()),
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok(Split {
        url,
        mode,
        root_cert,
    })
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn roots(root_cert: Option<&str>) -> Result<RootCertStore, Error> {
    let mut store = RootCertStore::empty();
    if let Some(path) = root_cert {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| {
                bad(format!(
                    "sslrootcert cannot be read as PEM certificates: {e}"
                ))
            })?;
        let (added, _) = store.add_parsable_certificates(certs);
        if added == 0 {
            return Err(bad("sslrootcert holds no usable certificate"));
        }
        return Ok(store);
    }
    let found = rustls_native_certs::load_native_certs();
    store.add_parsable_certificates(found.certs);
    if store.is_empty() {
        return Err(bad(
            "no system root certificates found for sslmode=verify-ca/verify-full; set sslrootcert",
        ));
    }
    Ok(store)
}

/// The connector for `mode`; `None` for `disable`.
pub(crate) fn connector(
    mode: Mode,
    root_cert: Option<&str>,
) -> Result<Option<MakeRustlsConnect>, Error> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        Mode::Disable => return Ok(None),
        Mode::Prefer | Mode::Require => Arc::new(Unauthenticated(provider.clone())),
        Mode::VerifyCa | Mode::VerifyFull => {
            let webpki = WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots(root_cert)?),
                provider.clone(),
            )
            .build()
            .map_err(|e| bad(format!("TLS roots refused: {e}")))?;
            if mode == Mode::VerifyCa {
                Arc::new(AnyName(webpki))
            } else {
                webpki
            }
        }
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(Error::internal)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Some(MakeRustlsConnect::new(config)))
}

/// `prefer`/`require`: encryption against passive eavesdroppers only, as in libpq; the
/// handshake's signatures are still checked.
#[derive(Debug)]
struct Unauthenticated(Arc<CryptoProvider>);

impl ServerCertVerifier for Unauthenticated {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the name may differ.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_settings_are_taken_out_of_the_url() {
        let s = split(
            "postgres://u@h/db?sslmode=verify-full&application_name=fg&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(s.url, "postgres://u@h/db?application_name=fg");
        assert_eq!(s.mode, Mode::VerifyFull);
        assert_eq!(s.root_cert.as_deref(), Some("/etc/ca.pem"));
        let s = split("postgres://u@h/db").unwrap();
        assert_eq!(
            (s.url.as_str(), s.mode),
            ("postgres://u@h/db", Mode::Prefer)
        );
        assert_eq!(
            split("postgres://h/db?sslmode=require").unwrap().mode,
            Mode::Require
        );
        assert_eq!(
            split("postgres://h/db?sslmode=disable")
                .unwrap()
                .mode
                .ssl_mode(),
            SslMode::Disable
        );
        assert!(matches!(
            split("postgres://h/db?sslmode=sometimes").unwrap_err(),
            Error::Validation(_)
        ));
    }

    #[test]
    fn a_missing_root_file_is_a_clear_error() {
        let Err(err) = connector(Mode::VerifyFull, Some("/nonexistent/ca.pem")) else {
            panic!("a missing sslrootcert must be refused");
        };
        assert!(matches!(err, Error::Validation(_)), "{err:?}");
        assert!(connector(Mode::Disable, None).unwrap().is_none());
        assert!(connector(Mode::Require, None).unwrap().is_some());
    }
}
