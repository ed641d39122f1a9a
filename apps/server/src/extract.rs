//! Extractors that turn every bad request into the error envelope, never a plain-text
//! rejection or a 500.

use crate::error::ApiError;
use crate::http::PrincipalSlot;
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{
    ConnectInfo, FromRequest, FromRequestParts, MatchedPath, Query, Request as HttpRequest,
};
use filegate_core::Error;
use filegate_core::domain::{AuthMethod, Principal};
use filegate_core::media::RequestInfo;
use filegate_core::ports::Credentials;
use http::StatusCode;
use http::request::Parts;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;

/// JSON body; an empty body reads as `{}` so optional-only bodies may be omitted.
pub struct ApiJson<T>(pub T);

fn json_error(rejection: &JsonRejection) -> Error {
    match rejection {
        JsonRejection::JsonDataError(e) => {
            // serde names the field and what was expected; no internals leak.
            let detail =
                std::error::Error::source(e).map_or_else(|| e.body_text(), ToString::to_string);
            let detail = detail
                .split(" at line ")
                .next()
                .unwrap_or_default()
                .to_owned();
            if let Some(name) = detail
                .strip_prefix("missing field `")
                .and_then(|r| r.split('`').next())
            {
                return Error::invalid(name, "is required");
            }
            match detail.split_once(": ") {
                Some((path, msg)) if !path.is_empty() && !path.contains(' ') => {
                    Error::invalid(path, msg)
                }
                _ => Error::invalid("body", detail),
            }
        }
        JsonRejection::JsonSyntaxError(_) => Error::invalid("body", "is not valid JSON"),
        JsonRejection::MissingJsonContentType(_) => {
            Error::invalid("body", "send Content-Type: application/json")
        }
        _ => Error::invalid("body", "could not be read"),
    }
}

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: HttpRequest, state: &S) -> Result<Self, Self::Rejection> {
        let empty = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() == b"0")
            && req.headers().get(http::header::CONTENT_TYPE).is_none();
        if empty {
            return serde_json::from_str("{}")
                .map(ApiJson)
                .map_err(|e| ApiError(Error::invalid("body", e.to_string())));
        }
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError(Error::invalid(
                    "body",
                    "is too large for a JSON request",
                )))
            }
            Err(rejection) => Err(ApiError(json_error(&rejection))),
        }
    }
}

/// Query string.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Self(v))
            .map_err(|e: QueryRejection| ApiError(Error::invalid("query", e.body_text())))
    }
}

/// The caller, authenticated through the configured [`Authenticator`](filegate_core::ports::Authenticator).
pub struct Authenticated(pub Principal);

/// The caller if any credential was sent. No credential is `None` (the domain then decides,
/// e.g. a `PUBLIC` rule); a credential that fails is still a 401.
pub struct MaybeAuthenticated(pub Option<Principal>);

impl FromRequestParts<AppState> for MaybeAuthenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match Authenticated::from_request_parts(parts, state).await {
            Ok(Authenticated(p)) => Ok(Self(Some(p))),
            Err(ApiError(Error::AuthMissing)) => Ok(Self(None)),
            Err(e) => Err(e),
        }
    }
}

/// Method, matched route and peer address of the request, for the audit log.
pub struct Request(pub RequestInfo);

impl<S: Send + Sync> FromRequestParts<S> for Request {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map_or_else(|| parts.uri.path().to_owned(), |m| m.as_str().to_owned());
        let mut info = RequestInfo::new(parts.method.as_str(), route);
        if let Some(ConnectInfo(addr)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            info = info.with_ip(addr.ip().to_string());
        }
        Ok(Self(info))
    }
}

#[must_use]
pub fn credentials(parts: &Parts) -> Credentials {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let bearer = header("authorization").and_then(|v| {
        let (scheme, token) = v.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned())
    });
    Credentials {
        api_key: header("x-api-key"),
        bearer,
        cookie: header("cookie"),
    }
}

/// Whether the session cookie (the one credential a browser attaches on its own) is what
/// authenticated the request: a session principal and no session bearer. A JWT bearer
/// may have failed and fallen back to the cookie.
fn authenticated_by_cookie(creds: &Credentials, principal: &Principal) -> bool {
    principal.method == AuthMethod::Session
        && creds
            .bearer
            .as_deref()
            .is_none_or(filegate_auth::looks_like_jwt)
}

/// The CSRF rule for cookie-authenticated writes, as Better Auth's trusted-origins check:
/// the browser says the page is on this origin (`Sec-Fetch-Site: same-origin`), or its
/// `Origin` (else the `Referer`'s origin) is a trusted origin. A request without any of
/// these browser headers comes from no browser page and cannot be forged by one; a
/// `null` origin or a cross-site fetch without an origin is refused.
fn origin_trusted(headers: &http::HeaderMap, trusted: &[String]) -> bool {
    let header = |name: http::header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let fetch_site = header(http::header::HeaderName::from_static("sec-fetch-site"));
    if fetch_site == Some("same-origin") {
        return true;
    }
    let origin = match header(http::header::ORIGIN) {
        Some(o) => Some(o.trim().to_owned()),
        None if headers.contains_key(http::header::ORIGIN) => Some(String::new()),
        None => header(http::header::REFERER).map(|r| origin_of(r.trim()).unwrap_or_default()),
    };
    match origin {
        Some(origin) => {
            origin != "null"
                && !origin.is_empty()
                && trusted.iter().any(|t| t.eq_ignore_ascii_case(&origin))
        }
        None => fetch_site.is_none(),
    }
}

/// `scheme://host[:port]` of a URL, `None` when it has no such prefix.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    (!scheme.is_empty() && !authority.is_empty() && !authority.contains('@'))
        .then(|| format!("{scheme}://{authority}"))
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let creds = credentials(parts);
        let principal = state.auth.authenticate(&creds).await?;
        if authenticated_by_cookie(&creds, &principal)
            && !parts.method.is_safe()
            && !origin_trusted(&parts.headers, &state.http.trusted_origins)
        {
            tracing::warn!(method = %parts.method, "cookie-authenticated write from an untrusted origin refused");
            return Err(ApiError(Error::CsrfOriginUntrusted));
        }
        if let Some(slot) = parts.extensions.get::<PrincipalSlot>() {
            let _ = slot.0.set(principal.clone());
        }
        tracing::Span::current().record("user", principal.user_id.as_str());
        if let Some(org) = &principal.active_org_id {
            tracing::Span::current().record("org", org.as_str());
        }
        Ok(Self(principal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, v.parse().expect("header value"));
        }
        map
    }

    #[test]
    fn only_trusted_or_same_origin_pages_may_write_with_the_cookie() {
        let trusted = ["https://app.example.com".to_owned()];
        let ok = |pairs: &[(&'static str, &str)]| origin_trusted(&headers(pairs), &trusted);
        assert!(ok(&[("origin", "https://app.example.com")]));
        assert!(ok(&[("origin", "https://APP.example.com")]));
        assert!(ok(&[
            ("sec-fetch-site", "same-origin"),
            ("origin", "https://api.example.com")
        ]));
        assert!(ok(&[("referer", "https://app.example.com/page?x=1")]));
        assert!(ok(&[]), "no browser headers: not a page");
        assert!(!ok(&[("origin", "http://evil.example")]));
        assert!(!ok(&[("origin", "null")]));
        assert!(!ok(&[("origin", "https://app.example.com.evil.example")]));
        assert!(!ok(&[
            ("origin", "http://evil.example"),
            ("sec-fetch-site", "same-site")
        ]));
        assert!(!ok(&[("sec-fetch-site", "cross-site")]));
        assert!(!ok(&[("sec-fetch-site", "same-site")]));
        assert!(!ok(&[("referer", "http://evil.example/")]));
        assert!(!ok(&[("referer", "https://app.example.com@evil.example/")]));
    }
}
