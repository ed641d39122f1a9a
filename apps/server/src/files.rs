//! The files listener (Quickback's "Files Worker", `FILEGATE_FILES_LISTEN`, public origin
//! `FILES_URL`): a second axum server serving managed-mode objects by key.
//!
//! - `GET|HEAD /public/{*key}`: no credentials; objects of buckets whose read scope is
//!   `public` only. A private object, a missing one and a malformed key are the same 404.
//! - `GET|HEAD /{*key}`: `?token=` (see [`FileTokens`]), else the Better Auth session
//!   cookie or `Authorization: Bearer` (JWT or session token); then the firewall and the
//!   bucket's read scope ([`ManagedService::download_key`]).
//!
//! Responses follow [`crate::serve`]. CORS: the trusted origins, GET/HEAD, with
//! credentials, exposing `ETag`, `Content-Range`, `Content-Length`.

use crate::error::ApiError;
use crate::extract::credentials;
use crate::serve::{Corp, FileRequest, Open, Opened, serve};
use crate::state::AppState;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use filegate_core::Error;
use filegate_core::error::Resource;
use filegate_core::managed::service::UrlTokens;
use filegate_core::managed::{ManagedService, ObjectRow};
use futures::FutureExt;
use hmac::{Hmac, Mac};
use http::request::Parts;
use http::{HeaderName, Method, header};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tower::ServiceBuilder;
use tower_http::cors::CorsLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

type HmacSha256 = Hmac<Sha256>;

/// Length of a token's MAC (the full SHA-256 output).
const MAC_LEN: usize = 32;

/// Settings of the files listener kept in [`AppState`].
#[derive(Clone)]
pub struct FilesOptions {
    /// `Cache-Control: public, max-age=` of public objects, seconds.
    pub public_max_age: u32,
    pub tokens: Arc<FileTokens>,
}

impl std::fmt::Debug for FilesOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilesOptions")
            .field("public_max_age", &self.public_max_age)
            .finish_non_exhaustive()
    }
}

/// The `?token=` of private URLs: `base64url(exp || mac)` without padding, where `exp` is
/// the expiry as 8 big-endian bytes of Unix seconds and `mac` is
/// `HMAC-SHA256(k, "filegate-file-token/v2" 0x00 exp key 0x00 id 0x00 etag)`, `k` being
/// `HMAC-SHA256(server secret, "filegate files listener url tokens")` (so the JWT secret
/// itself never signs anything but JWTs). Bound to one version of one object (key, row id
/// and etag, none of which holds a NUL) and one expiry: a changed byte, another key, an
/// object deleted and uploaded again or replaced, or a past expiry is refused.
pub struct FileTokens {
    key: [u8; 32],
}

impl std::fmt::Debug for FileTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileTokens").finish_non_exhaustive()
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    BadSignature,
    Expired,
}

impl FileTokens {
    #[must_use]
    pub fn new(secret: &SecretString) -> Self {
        let mut mac = HmacSha256::new_from_slice(secret.expose_secret().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"filegate files listener url tokens");
        Self {
            key: mac.finalize().into_bytes().into(),
        }
    }

    fn mac(&self, subject: &TokenSubject<'_>, exp: [u8; 8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"filegate-file-token/v2\0");
        mac.update(&exp);
        mac.update(subject.key.as_bytes());
        mac.update(b"\0");
        mac.update(subject.id.as_bytes());
        mac.update(b"\0");
        mac.update(subject.etag.unwrap_or_default().as_bytes());
        mac
    }

    /// A token for this object version valid until `expires_at`.
    #[must_use]
    pub fn mint_for(&self, subject: &TokenSubject<'_>, expires_at: OffsetDateTime) -> String {
        let exp = u64::try_from(expires_at.unix_timestamp())
            .unwrap_or_default()
            .to_be_bytes();
        let mut raw = exp.to_vec();
        raw.extend_from_slice(&self.mac(subject, exp).finalize().into_bytes());
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The expiry a well-formed token claims, unverified: lets an expired or garbled token
    /// be refused before any lookup.
    ///
    /// # Errors
    /// [`TokenError::Malformed`], or [`TokenError::Expired`] at `now`.
    pub fn precheck(token: &str, now: OffsetDateTime) -> Result<(), TokenError> {
        let (exp, _) = Self::split(token)?;
        let exp = i64::try_from(u64::from_be_bytes(exp)).map_err(|_| TokenError::Malformed)?;
        if now.unix_timestamp() >= exp {
            return Err(TokenError::Expired);
        }
        Ok(())
    }

    fn split(token: &str) -> Result<([u8; 8], Vec<u8>), TokenError> {
        let raw = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| TokenError::Malformed)?;
        if raw.len() != 8 + MAC_LEN {
            return Err(TokenError::Malformed);
        }
        let (exp, mac) = raw.split_at(8);
        let exp: [u8; 8] = exp.try_into().map_err(|_| TokenError::Malformed)?;
        Ok((exp, mac.to_vec()))
    }

    /// Checks `token` for this object version at `now`.
    ///
    /// # Errors
    /// [`TokenError`] when malformed, signed for something else, or expired.
    pub fn verify(
        &self,
        token: &str,
        subject: &TokenSubject<'_>,
        now: OffsetDateTime,
    ) -> Result<(), TokenError> {
        let (exp, mac) = Self::split(token)?;
        // Constant-time comparison.
        self.mac(subject, exp)
            .verify_slice(&mac)
            .map_err(|_| TokenError::BadSignature)?;
        Self::precheck(token, now)
    }
}

/// What a URL token is bound to: one version of one object.
#[derive(Debug, Clone, Copy)]
pub struct TokenSubject<'a> {
    pub key: &'a str,
    pub id: &'a str,
    pub etag: Option<&'a str>,
}

impl<'a> From<&'a ObjectRow> for TokenSubject<'a> {
    fn from(row: &'a ObjectRow) -> Self {
        Self {
            key: row.key.as_str(),
            id: row.id.as_str(),
            etag: row.etag.as_deref(),
        }
    }
}

impl UrlTokens for FileTokens {
    fn mint(&self, object: &ObjectRow, expires_at: OffsetDateTime) -> String {
        self.mint_for(&TokenSubject::from(object), expires_at)
    }
}

/// The files listener's app.
pub fn files_router(state: AppState) -> Router {
    let cors = cors(&state.http.trusted_origins);
    let metrics = state.metrics.clone();
    let limit = state.http.rate_limit;
    let router = Router::new()
        .route("/public/{*key}", get(public_file))
        .route("/{*key}", get(private_file))
        .fallback(|| async { ApiError(Error::NotFound(Resource::Object)) })
        .with_state(state);
    // The same per-IP budget as the API; inside the envelope renderer so 429 is an envelope.
    let router = match limit {
        Some(limit) => router.layer(crate::http::rate_limiter(limit)),
        None => router,
    };
    router.layer(
        ServiceBuilder::new()
            .layer(axum::middleware::from_fn_with_state(
                metrics,
                crate::metrics::track_requests,
            ))
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(PropagateRequestIdLayer::x_request_id())
            // Never the URI: it may carry a `?token=`.
            .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let (route, request_id) = crate::span_fields(req);
                tracing::info_span!("files", method = %req.method(), route, request_id)
            }))
            .layer(cors)
            .layer(axum::middleware::from_fn(crate::error::attach_request_id)),
    )
}

fn cors(origins: &[String]) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(crate::http::allow_origins(origins))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::HEAD])
        .allow_headers([
            header::AUTHORIZATION,
            header::RANGE,
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::IF_RANGE,
        ])
        .expose_headers([
            header::ETAG,
            header::CONTENT_RANGE,
            header::CONTENT_LENGTH,
            header::ACCEPT_RANGES,
            header::CONTENT_DISPOSITION,
            HeaderName::from_static("x-request-id"),
        ])
        .max_age(Duration::from_secs(600))
}

fn managed(state: &AppState) -> Result<Arc<ManagedService>, Error> {
    state
        .managed
        .clone()
        .ok_or(Error::NotFound(Resource::Object))
}

fn file_request(state: &AppState, parts: &Parts, query: &HashMap<String, String>) -> FileRequest {
    FileRequest::new(
        &parts.method,
        &parts.headers,
        query,
        state.files.public_max_age,
    )
}

/// `GET|HEAD /public/{*key}`
async fn public_file(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    parts: Parts,
) -> Response {
    let req = file_request(&state, &parts, &query).with_corp(Corp::CrossOrigin);
    let result = async {
        let svc = managed(&state)?;
        let key = key.as_str();
        let open: Open<'_> = Box::new(move |range| {
            let svc = svc.clone();
            async move {
                let d = svc.download_key(None, key, range).await?;
                if !d.public {
                    return Err(Error::NotFound(Resource::Object));
                }
                Ok(Opened::from(d))
            }
            .boxed()
        });
        serve(&state.metrics, &req, open).await
    }
    .await;
    match result {
        Ok(res) => res,
        // Unreachable storage and server faults are what they are; anything else (private,
        // missing, malformed, another org's) is the one 404.
        Err(e @ (Error::Unavailable { .. } | Error::Internal { .. })) => {
            ApiError(e).into_response()
        }
        Err(Error::Validation(f)) if f.iter().any(|f| f.field == "download") => {
            ApiError(Error::Validation(f)).into_response()
        }
        Err(_) => ApiError(Error::NotFound(Resource::Object)).into_response(),
    }
}

/// `GET|HEAD /{*key}`
async fn private_file(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    parts: Parts,
) -> Response {
    let req = file_request(&state, &parts, &query);
    let result = async {
        let svc = managed(&state)?;
        let token = query.get("token").map(String::as_str);
        let caller = match token {
            Some(token) => {
                if let Err(why) = FileTokens::precheck(token, OffsetDateTime::now_utc()) {
                    tracing::info!(reason = ?why, "refused a file token");
                    return Ok(bad_token());
                }
                None
            }
            None => Some(state.auth.authenticate(&credentials(&parts)).await?),
        };
        // A capability URL is made to be embedded anywhere; credentialed bytes are not.
        let req = req.with_corp(if token.is_some() {
            Corp::CrossOrigin
        } else {
            Corp::SameSite
        });
        let tokens = state.files.tokens.clone();
        let key = key.as_str();
        let open: Open<'_> = Box::new(move |range| {
            let (svc, caller, tokens) = (svc.clone(), caller.clone(), tokens.clone());
            async move {
                let d = match token {
                    Some(token) => {
                        let granted = move |row: &ObjectRow| {
                            tokens
                                .verify(token, &TokenSubject::from(row), OffsetDateTime::now_utc())
                                .is_ok()
                        };
                        svc.download_key_granted(key, &granted, range).await?
                    }
                    None => svc.download_key(caller.as_ref(), key, range).await?,
                };
                Ok(Opened::from(d))
            }
            .boxed()
        });
        match serve(&state.metrics, &req, open).await {
            // Missing, or not the version the token was minted for: the same refusal.
            Err(Error::NotFound(_)) if token.is_some() => Ok(bad_token()),
            other => other,
        }
    }
    .await;
    result.unwrap_or_else(|e| ApiError(e).into_response())
}

fn bad_token() -> Response {
    ApiError(Error::FilesTokenInvalid).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_to_the_object_version_and_the_expiry() {
        let t = FileTokens::new(&SecretString::from("s".repeat(32)));
        let now = OffsetDateTime::now_utc();
        let exp = now + time::Duration::seconds(60);
        let a = TokenSubject {
            key: "org/docs/a.pdf",
            id: "obj_1",
            etag: Some("\"e1\""),
        };
        let tok = t.mint_for(&a, exp);
        assert_eq!(t.verify(&tok, &a, now), Ok(()));
        for other in [
            TokenSubject {
                key: "org/docs/b.pdf",
                ..a
            },
            // Deleted and uploaded again at the same key.
            TokenSubject { id: "obj_2", ..a },
            // Replaced in place.
            TokenSubject {
                etag: Some("\"e2\""),
                ..a
            },
            TokenSubject { etag: None, ..a },
        ] {
            assert_eq!(
                t.verify(&tok, &other, now),
                Err(TokenError::BadSignature),
                "{other:?}"
            );
        }
        assert_eq!(t.verify(&tok, &a, exp), Err(TokenError::Expired));
        assert_eq!(FileTokens::precheck(&tok, exp), Err(TokenError::Expired));
        assert_eq!(FileTokens::precheck(&tok, now), Ok(()));
        let other = FileTokens::new(&SecretString::from("t".repeat(32)));
        assert_eq!(other.verify(&tok, &a, now), Err(TokenError::BadSignature));
        let mut raw = URL_SAFE_NO_PAD.decode(&tok).unwrap();
        raw[7] ^= 1; // a later expiry
        let forged = URL_SAFE_NO_PAD.encode(&raw);
        assert_eq!(t.verify(&forged, &a, now), Err(TokenError::BadSignature));
        assert_eq!(t.verify("not base64!", &a, now), Err(TokenError::Malformed));
        assert_eq!(t.verify("", &a, now), Err(TokenError::Malformed));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_tokens_never_verify_and_never_panic(raw in "\\PC{0,64}|[A-Za-z0-9_-]{54}") {
            let t = FileTokens::new(&SecretString::from("s".repeat(32)));
            let subject = TokenSubject { key: "k", id: "obj_1", etag: None };
            let now = OffsetDateTime::now_utc();
            let _ = FileTokens::precheck(&raw, now);
            proptest::prop_assert!(t.verify(&raw, &subject, now).is_err());
        }
    }
}
