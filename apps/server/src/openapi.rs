//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations.
//!
//! [`api_router`] is the single list of routes: it builds both the axum router and the
//! document (utoipa-axum's `routes!`), so a route cannot be served without being
//! documented. The document is served at `GET /openapi.json`. The only module that knows
//! every route; routes take their error docs from `crate::error` and never import this.

use crate::error::ErrorEnvelope;
use crate::routes;
use crate::state::AppState;
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Names of the security schemes, as used in the operations' `security`.
pub const BEARER: &str = "bearer";
pub const SESSION: &str = "session";
pub const API_KEY: &str = "apiKey";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "filegate",
        description = "Presigned uploads and downloads for Cloudflare R2 (or the embedded S3 endpoint). \
                       Every error is the envelope `ErrorEnvelope`; every response carries `x-request-id`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "http://127.0.0.1:8787", description = "Default local address")),
    modifiers(&SecuritySchemes),
    tags(
        (name = "media", description = "Presigned media uploads and downloads"),
        (name = "auth", description = "Tokens for Better Auth sessions"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
        (name = "storage", description = "Managed mode (`FILEGATE_MANAGED=true`): `/storage/v1` buckets and objects"),
    ),
    components(schemas(ErrorEnvelope)),
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "`Authorization: Bearer <jwt>`: Quickback's HS256 JWT (or a Better Auth session token)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            SESSION,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "better-auth.session_token",
                "Better Auth session cookie",
            ))),
        );
        components.add_security_scheme(
            API_KEY,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-api-key",
                "Better Auth API key",
            ))),
        );
    }
}

/// Every route of the API, with its documentation. The only place routes are listed.
#[must_use]
pub fn api_router() -> OpenApiRouter<AppState> {
    let mut router = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::media::sign_upload))
        .routes(routes!(routes::media::sign_download))
        .routes(routes!(routes::media::list))
        .routes(routes!(routes::media::confirm))
        .routes(routes!(routes::media::create_multipart))
        .routes(routes!(
            routes::media::sign_parts,
            routes::media::list_parts
        ))
        .routes(routes!(routes::media::complete_multipart))
        .routes(routes!(routes::media::abort_multipart))
        .routes(routes!(routes::token::mint))
        .routes(routes!(routes::health::healthz))
        .routes(routes!(routes::health::readyz))
        .routes(routes!(routes::ops::metrics))
        .routes(routes!(routes::ops::openapi_json))
        .routes(routes!(routes::files::download_object))
        .routes(routes!(routes::files::download_file))
        .routes(routes!(
            routes::storage::create_bucket,
            routes::storage::list_buckets
        ))
        .routes(routes!(
            routes::storage::get_bucket,
            routes::storage::update_bucket,
            routes::storage::delete_bucket
        ))
        .routes(routes::storage::unlimited_body(routes!(
            routes::storage::upload
        )))
        .routes(routes!(routes::storage::delete_object))
        .routes(routes!(routes::storage::list_objects))
        .routes(routes!(routes::storage::presign))
        .routes(routes!(routes::storage::confirm))
        .routes(routes!(routes::storage::url))
        .routes(routes!(routes::storage::create_multipart))
        .routes(routes!(
            routes::storage::sign_parts,
            routes::storage::list_parts
        ))
        .routes(routes!(routes::storage::complete_multipart))
        .routes(routes!(routes::storage::abort_multipart));
    document_wildcards(router.get_openapi_mut());
    router
}

/// axum's catch-all `{*path}` is the OpenAPI template `{path}` (its value may contain `/`,
/// as the operation's parameter says).
fn document_wildcards(doc: &mut OpenApiDoc) {
    let paths = std::mem::take(&mut doc.paths.paths);
    for (path, item) in paths {
        let path = path.replace("{*", "{");
        match doc.paths.paths.get_mut(&path) {
            Some(existing) => existing.merge_operations(item),
            None => {
                doc.paths.paths.insert(path, item);
            }
        }
    }
}

/// The document, as served at `GET /openapi.json`.
#[must_use]
pub fn document() -> OpenApiDoc {
    api_router().into_openapi()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::BTreeSet;

    fn json() -> Value {
        serde_json::to_value(document()).expect("document serializes")
    }

    /// Every `$ref` in `v`.
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    fn pointer(doc: &Value, reference: &str) -> Option<Value> {
        doc.pointer(reference.strip_prefix('#')?).cloned()
    }

    #[test]
    fn is_openapi_3_1_and_round_trips_through_utoipa() {
        let doc = json();
        assert!(
            doc["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.1")),
            "{}",
            doc["openapi"]
        );
        let text = serde_json::to_string(&doc).unwrap();
        let back: OpenApiDoc =
            serde_json::from_str(&text).expect("parses back as utoipa's OpenApi");
        assert_eq!(serde_json::to_value(back).unwrap(), doc);
    }

    #[test]
    fn validates_with_oas3() {
        let text = document().to_json().unwrap();
        let spec = oas3::from_json(&text).expect("oas3 parses the document");
        spec.validate_version().expect("OpenAPI 3.1.x");
        let mut n = 0;
        for (path, method, op) in spec.operations() {
            n += 1;
            let declared = op.responses.as_ref().map_or(0, oas3::Map::len);
            let resolved = op.responses(&spec);
            assert!(declared > 0, "{method} {path}: no responses");
            assert_eq!(
                resolved.len(),
                declared,
                "{method} {path}: a response ref does not resolve"
            );
            for (status, res) in &resolved {
                assert!(
                    res.description.as_deref().is_some_and(|d| !d.is_empty()),
                    "{method} {path} {status}: no description"
                );
                for media in res.content.values() {
                    media.schema(&spec).expect("response schema resolves");
                }
            }
            if let Some(body) = op.request_body(&spec).expect("request body resolves") {
                for media in body.content.values() {
                    media.schema(&spec).expect("request schema resolves");
                }
            }
            let params = op.parameters(&spec).expect("parameters resolve");
            assert_eq!(
                params.len(),
                op.parameters.len(),
                "{method} {path}: a parameter ref does not resolve"
            );
        }
        // media 4 + 5 multipart, token 1, ops 4, files 2, storage 11 + 5 multipart.
        assert_eq!(n, 32, "operations");
    }

    #[test]
    fn every_ref_resolves_and_every_operation_has_responses() {
        let doc = json();
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty());
        for r in all {
            assert!(r.starts_with("#/components/"), "{r} is not a component ref");
            assert!(pointer(&doc, r).is_some(), "{r} does not resolve");
        }
        let paths = doc["paths"].as_object().expect("paths");
        for (path, item) in paths {
            for (method, op) in item.as_object().expect("path item") {
                let responses = op["responses"].as_object();
                assert!(
                    responses.is_some_and(|r| !r.is_empty()),
                    "{method} {path} has no responses"
                );
                assert!(
                    op["operationId"].is_string(),
                    "{method} {path} has no operationId"
                );
                // Every error status is described by the envelope.
                for (status, res) in responses.unwrap() {
                    if status.starts_with('4') || status.starts_with('5') {
                        let schema = &res["content"]["application/json"]["schema"]["$ref"];
                        assert_eq!(
                            schema, "#/components/schemas/ErrorEnvelope",
                            "{method} {path} {status}"
                        );
                    }
                }
            }
        }
    }

    /// Every code an error response's description names is a real code, served with that
    /// response's status (`Error::info` is the source of both).
    #[test]
    fn error_responses_name_codes_with_their_status() {
        let served: BTreeSet<(String, String)> = crate::error::tests::samples()
            .iter()
            .map(|e| {
                let info = e.info();
                (info.status.to_string(), info.code.to_owned())
            })
            .collect();
        let codes: BTreeSet<&str> = served.iter().map(|(_, c)| c.as_str()).collect();
        let doc = json();
        let mut named = 0;
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                for (status, res) in op["responses"].as_object().expect("responses") {
                    if !(status.starts_with('4') || status.starts_with('5')) {
                        continue;
                    }
                    let description = res["description"].as_str().unwrap_or_default();
                    for token in description.split('`').skip(1).step_by(2) {
                        let code_like = token.len() > 3
                            && token.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
                            && token.contains('_');
                        if !code_like {
                            continue;
                        }
                        assert!(
                            codes.contains(token),
                            "{method} {path} {status}: unknown code {token}"
                        );
                        assert!(
                            served.contains(&(status.clone(), token.to_owned())),
                            "{method} {path} {status}: {token} is served with another status"
                        );
                        named += 1;
                    }
                }
            }
        }
        assert!(named > 100, "only {named} codes named");
    }

    #[test]
    fn security_schemes_are_bearer_cookie_and_api_key() {
        let doc = json();
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes[BEARER]["type"], "http");
        assert_eq!(schemes[BEARER]["scheme"], "bearer");
        assert_eq!(schemes[SESSION]["type"], "apiKey");
        assert_eq!(schemes[SESSION]["in"], "cookie");
        assert_eq!(schemes[SESSION]["name"], "better-auth.session_token");
        assert_eq!(schemes[API_KEY]["in"], "header");
        assert_eq!(schemes[API_KEY]["name"], "x-api-key");
        let used: BTreeSet<String> = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .filter_map(|op| op["security"].as_array())
            .flatten()
            .flat_map(|req| req.as_object().unwrap().keys().cloned())
            .collect();
        assert_eq!(
            used,
            [API_KEY, BEARER, SESSION]
                .into_iter()
                .map(String::from)
                .collect()
        );
    }
}
