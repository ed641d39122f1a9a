//! Test harness: [`TestApp::spawn`] starts the real server (embedded S3 endpoint, SQLite
//! file, both on port 0 under a fresh temp dir) and offers typed helpers.

#![expect(
    clippy::missing_panics_doc,
    reason = "test helpers panic on purpose: a failed set-up step is a failed test"
)]

use filegate_auth::{JwtConfig, mint_token};
use filegate_server::app::{Running, start};
use filegate_server::config::Config;
use serde_json::{Value, json};
use std::time::Duration;

mod tcp_proxy;
pub use tcp_proxy::TcpProxy;

pub struct TestApp {
    pub running: Running,
    pub api: String,
    pub http: reqwest::Client,
    dir: tempfile::TempDir,
}

/// A response's status and parsed JSON body (`Value::Null` when not JSON).
#[derive(Debug)]
pub struct JsonResponse {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::ephemeral(dir.path());
        tweak(&mut config);
        let running = start(config).await.expect("server starts");
        let api = format!("http://{}", running.api_addr);
        Self {
            running,
            api,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            dir,
        }
    }

    /// As [`TestApp::spawn_with`], with the API on a port picked before start: `tweak` also
    /// gets the API's origin (`http://127.0.0.1:<port>`), e.g. to allow pages the API serves
    /// in `cors_origins`. If the port was taken meanwhile, another one is tried.
    pub async fn spawn_with_origin(tweak: impl Fn(&mut Config, &str)) -> Self {
        let mut failures = Vec::new();
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let dir = tempfile::tempdir().expect("temp dir");
            let mut config = Config::ephemeral(dir.path());
            config.listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            tweak(&mut config, &format!("http://127.0.0.1:{port}"));
            match start(config).await {
                Ok(running) => {
                    let api = format!("http://{}", running.api_addr);
                    return Self {
                        running,
                        api,
                        http: reqwest::Client::builder()
                            .timeout(Duration::from_secs(30))
                            .build()
                            .expect("http client"),
                        dir,
                    };
                }
                Err(e) => failures.push(format!("{e:#}")),
            }
        }
        panic!("server starts: {failures:?}");
    }

    /// The server's data folder (databases, objects, secrets).
    #[must_use]
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    fn jwt_config(&self) -> JwtConfig {
        jwt_config(self.running.auth_secret.clone())
    }

    /// A token for `user` in `org` with `role`, valid for an hour.
    #[must_use]
    pub fn token(&self, user: &str, org: Option<&str>, role: Option<&str>) -> String {
        self.token_at(
            user,
            org,
            role,
            time::OffsetDateTime::now_utc(),
            Duration::from_hours(1),
        )
    }

    #[must_use]
    pub fn token_at(
        &self,
        user: &str,
        org: Option<&str>,
        role: Option<&str>,
        iat: time::OffsetDateTime,
        ttl: Duration,
    ) -> String {
        mint_token(&self.jwt_config(), user, org, role, None, ttl, iat).expect("mint token")
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> JsonResponse {
        send(req).await
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> JsonResponse {
        let mut req = self.http.post(format!("{}{path}", self.api)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> JsonResponse {
        let mut req = self.http.get(format!("{}{path}", self.api));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }

    pub async fn sign_upload(
        &self,
        token: &str,
        filename: &str,
        content_type: &str,
        size: Option<usize>,
    ) -> JsonResponse {
        let mut body = json!({ "filename": filename, "contentType": content_type });
        if let Some(size) = size {
            body["size"] = json!(size);
        }
        self.post_json("/api/v1/media/sign-upload", Some(token), &body)
            .await
    }

    pub async fn sign_download(&self, token: &str, id: &str, body: &Value) -> JsonResponse {
        self.post_json(
            &format!("/api/v1/media/{id}/sign-download"),
            Some(token),
            body,
        )
        .await
    }

    /// PUTs `bytes` to a presigned URL with the given headers, as a browser or curl would.
    pub async fn put_presigned(
        &self,
        url: &str,
        headers: &Value,
        bytes: Vec<u8>,
    ) -> reqwest::Response {
        let mut req = self.http.put(url);
        if let Some(map) = headers.as_object() {
            for (k, v) in map {
                // The HTTP client sets Content-Length from the body itself.
                if !k.eq_ignore_ascii_case("content-length") {
                    req = req.header(k, v.as_str().unwrap_or_default());
                }
            }
        }
        req.body(bytes).send().await.expect("PUT sent")
    }

    /// Managed mode: presigns `bucket_path` (`<bucket>/<path>`) as `token` for `bytes` of
    /// `content_type`, then PUTs them straight to storage; panics unless both succeed.
    pub async fn presign_and_put(
        &self,
        token: &str,
        bucket_path: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) {
        let signed = self
            .post_json(
                &format!("/storage/v1/presign/{bucket_path}"),
                Some(token),
                &json!({ "contentType": content_type, "size": bytes.len() }),
            )
            .await;
        assert_eq!(signed.status, 200, "{signed:?}");
        let put = self
            .put_presigned(
                signed.body["uploadUrl"].as_str().expect("uploadUrl"),
                &signed.body["headers"],
                bytes,
            )
            .await;
        assert_eq!(
            put.status(),
            200,
            "PUT to the presigned URL of {bucket_path}"
        );
    }

    pub async fn shutdown(self) {
        self.running.shutdown().await;
    }
}

/// Asserts `res` is the error envelope with this status and code.
pub fn assert_envelope(res: &JsonResponse, status: u16, code: &str) {
    assert_eq!(res.status, status, "status of {res:?}");
    assert_eq!(res.body["code"], code, "code of {res:?}");
    assert!(
        res.body["error"].as_str().is_some_and(|s| !s.is_empty()),
        "error message in {res:?}"
    );
    assert!(res.body["layer"].is_string(), "layer in {res:?}");
    assert!(res.body["requestId"].is_string(), "requestId in {res:?}");
}

/// How a server signing with `secret` verifies tokens (no issuer, audience or leeway).
#[must_use]
pub fn jwt_config(secret: secrecy::SecretString) -> JwtConfig {
    JwtConfig {
        secret,
        issuer: None,
        audience: None,
        leeway_secs: 0,
    }
}

/// Sends `req` and reads the answer; a body that is not JSON reads as `null`.
pub async fn send(req: reqwest::RequestBuilder) -> JsonResponse {
    let res = req.send().await.expect("request sent");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.expect("body read");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    JsonResponse {
        status,
        body,
        headers,
    }
}
