//! The upload page (`GET /`) in real headless Chromium, driven over WebDriver (fantoccini
//! and a chromedriver the test starts). The page comes from the API's origin and storage
//! (the embedded S3 endpoint) is another origin, so each PUT is a real cross-origin request
//! with a CORS preflight.
//!
//! Needs Chromium and its driver: Debian's `chromium` and `chromium-driver`, found as
//! `/usr/bin/chromium` or `chromium` on PATH and `chromedriver` on PATH (`CHROME_BIN` and
//! `CHROMEDRIVER` override both). Without them a case prints SKIPPED and passes, unless the
//! `CI` variable is set: then it fails. A failing case saves a screenshot as
//! `target/browser-test-<case>.png`; with `FILEGATE_BROWSER_SCREENSHOTS=1` passing cases do too.

use fantoccini::{Client, ClientBuilder, Locator};
use filegate_e2e::TestApp;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod uppy;

/// One browser at a time: each case starts its own Chromium, and CI machines are small.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long the page may take for any one step (load, upload, list, download).
const STEP: Duration = Duration::from_secs(30);

type Step<T = ()> = Result<T, String>;

fn ctx<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> String {
    move |e| format!("{what}: {e}")
}

// ------------------------------------------------------------------ finding the browser

struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn from_env(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn find_tools() -> Option<Tools> {
    let chromium = from_env("CHROME_BIN")
        .or_else(|| Some(PathBuf::from("/usr/bin/chromium")).filter(|p| p.is_file()))
        .or_else(|| on_path("chromium"))?;
    let chromedriver = from_env("CHROMEDRIVER")
        .or_else(|| on_path("chromedriver"))
        .or_else(|| Some(PathBuf::from("/usr/bin/chromedriver")).filter(|p| p.is_file()))?;
    Some(Tools {
        chromium,
        chromedriver,
    })
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// The tools, or `None` after printing SKIPPED (straight to stderr, past the test
/// harness's capture, so it shows). In CI a missing browser is a failure.
fn tools_or_skip() -> Option<Tools> {
    if let Some(tools) = find_tools() {
        return Some(tools);
    }
    let msg = "chromium/chromedriver not found; install Debian's chromium and chromium-driver";
    assert!(
        !in_ci(),
        "{msg} (CI is set, so the browser tests are required)"
    );
    let _ = writeln!(std::io::stderr(), "SKIPPED: {msg}");
    None
}

fn target_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).to_path_buf()
}

// ------------------------------------------------------------------ driver and browser

/// A chromedriver process of ours; killed (by its pid) when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Asks chromedriver to quit (it then ends and reaps its browser); `Drop` kills it if
    /// it is still there after a few seconds.
    async fn stop(mut self) {
        let _ = reqwest::Client::new()
            .get(format!("{}/shutdown", self.url))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn start(path: &Path, log: &Path) -> Step<Self> {
        let http = reqwest::Client::new();
        let mut failures = Vec::new();
        // The port is picked before chromedriver binds it: retry if someone took it meanwhile.
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(ctx("picking a port for chromedriver"))?
                .port();
            let child = Command::new(path)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("starting {}: {e}", path.display()))?;
            let mut driver = Self {
                child,
                url: format!("http://127.0.0.1:{port}"),
            };
            let deadline = Instant::now() + STEP;
            while Instant::now() < deadline {
                if let Ok(Some(status)) = driver.child.try_wait() {
                    failures.push(format!("chromedriver exited with {status}"));
                    break;
                }
                let ready = http
                    .get(format!("{}/status", driver.url))
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status().is_success());
                if let Some(res) = ready
                    && res
                        .json::<Value>()
                        .await
                        .is_ok_and(|v| v["value"]["ready"] == true)
                {
                    return Ok(driver);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Err(format!(
            "chromedriver did not start: {failures:?}; see {}",
            log.display()
        ))
    }
}

/// A WebDriver session in a fresh headless Chromium profile.
struct Browser {
    client: Client,
    case: &'static str,
    profile: tempfile::TempDir,
    driver: Driver,
}

impl Browser {
    async fn start(tools: &Tools, case: &'static str, downloads: &Path) -> Step<Self> {
        let log = target_dir().join(format!("browser-test-{case}-chromedriver.log"));
        let driver = Driver::start(&tools.chromedriver, &log).await?;
        let profile = tempfile::tempdir().map_err(ctx("profile dir"))?;
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": tools.chromium,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    "--window-size=1100,1200",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                "prefs": {
                    "download.default_directory": downloads,
                    "download.prompt_for_download": false,
                },
            },
            "timeouts": { "script": 30_000, "pageLoad": 30_000 },
        });
        let Value::Object(caps) = caps else {
            unreachable!("a JSON object")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .map_err(|e| format!("WebDriver session: {e}; see {}", log.display()))?;
        Ok(Self {
            client,
            case,
            profile,
            driver,
        })
    }

    /// Saves a screenshot when the case failed (or when asked to), closes the browser, then
    /// panics with the failure.
    async fn finish(self, outcome: Step) {
        let wanted = std::env::var_os("FILEGATE_BROWSER_SCREENSHOTS").is_some();
        let mut note = String::new();
        if outcome.is_err() || wanted {
            let path = target_dir().join(format!("browser-test-{}.png", self.case));
            note = match self.client.screenshot().await {
                Ok(png) => match std::fs::write(&path, png) {
                    Ok(()) => format!("screenshot: {}", path.display()),
                    Err(e) => format!("could not save the screenshot: {e}"),
                },
                Err(e) => format!("could not take a screenshot: {e}"),
            };
        }
        // Session first: stopping chromedriver with the session open would orphan Chromium.
        let _ = self.client.close().await;
        self.driver.stop().await;
        drop(self.profile);
        if let Err(msg) = outcome {
            panic!("{msg}\n{note}");
        }
    }
}

// ------------------------------------------------------------------ page helpers

/// Runs `script` (a function body) until it returns something other than null/false.
async fn wait_for(c: &Client, what: &str, script: &str) -> Step<Value> {
    let deadline = Instant::now() + STEP;
    loop {
        let v = c
            .execute(script, vec![])
            .await
            .map_err(|e| format!("waiting for {what}: {e}"))?;
        if !(v.is_null() || v == Value::Bool(false)) {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "timed out waiting for {what}; {}",
                page_state(c).await
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the page shows: status, error box and progress, for failure messages.
async fn page_state(c: &Client) -> String {
    let script = r"
        const t = (id) => document.getElementById(id);
        return {
            status: t('status').textContent,
            state: t('status').dataset.state || '',
            error: t('error').hidden ? null : t('error').textContent,
            progress: t('upload-progress').value,
        };";
    match c.execute(script, vec![]).await {
        Ok(v) => format!("page: {v}"),
        Err(e) => format!("page state unavailable: {e}"),
    }
}

async fn text_of(c: &Client, id: &str) -> Step<String> {
    c.find(Locator::Id(id))
        .await
        .map_err(|e| format!("#{id}: {e}"))?
        .text()
        .await
        .map_err(|e| format!("text of #{id}: {e}"))
}

/// Opens the page, checks that it shows the API's 401 envelope while no token is set, then
/// pastes `token` and waits until the file list loaded without error.
async fn open_and_sign_in(c: &Client, app: &TestApp, token: &str) -> Step {
    c.goto(&format!("{}/", app.api))
        .await
        .map_err(ctx("opening the page"))?;
    wait_for(
        c,
        "the 401 error without a token",
        "return !document.getElementById('error').hidden",
    )
    .await?;
    let error = text_of(c, "error").await?;
    if !error.contains("AUTH_MISSING") || !error.contains("401") {
        return Err(format!("the API's error envelope is not shown: {error:?}"));
    }
    c.find(Locator::Id("token"))
        .await
        .map_err(ctx("token box"))?
        .send_keys(token)
        .await
        .map_err(ctx("typing the token"))?;
    c.find(Locator::Id("token-save"))
        .await
        .map_err(ctx("save button"))?
        .click()
        .await
        .map_err(ctx("saving the token"))?;
    wait_for(
        c,
        "the file list",
        "const t = (id) => document.getElementById(id);
         return t('files').dataset.loaded === 'true' && t('error').hidden;",
    )
    .await?;
    Ok(())
}

/// Chooses `file` in the page's file input, which starts the upload; returns the final
/// `data-state` of the status line (`done` or `failed`).
async fn choose_file(c: &Client, file: &Path) -> Step<String> {
    c.find(Locator::Id("file-input"))
        .await
        .map_err(ctx("file input"))?
        .send_keys(&file.display().to_string())
        .await
        .map_err(ctx("choosing the file"))?;
    let state = wait_for(
        c,
        "the upload to end",
        "const s = document.getElementById('status').dataset.state;
         return s === 'done' || s === 'failed' ? s : null;",
    )
    .await?;
    Ok(state.as_str().unwrap_or_default().to_owned())
}

fn sample_file(dir: &Path, name: &str, len: usize) -> (PathBuf, Vec<u8>) {
    // Known, non-repeating-looking bytes: a small LCG.
    let mut x: u32 = 0x2545_f491;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            x.to_be_bytes()[0]
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, &bytes).expect("sample file written");
    (path, bytes)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The one media row the API lists for `token`'s organization.
async fn only_item(app: &TestApp, token: &str) -> Step<Value> {
    let list = app.get("/api/v1/media", Some(token)).await;
    match list.body["items"].as_array().map(Vec::as_slice) {
        Some([item]) => Ok(item.clone()),
        _ => Err(format!("expected one media row, got {list:?}")),
    }
}

// ------------------------------------------------------------------ the cases

#[tokio::test]
async fn the_api_serves_the_page_at_its_root_through_its_http_layers() {
    let app = TestApp::spawn().await;
    for path in ["/", "/app"] {
        let res = app
            .http
            .get(format!("{}{path}", app.api))
            .send()
            .await
            .expect("GET");
        assert_eq!(res.status(), 200, "{path}");
        let ty = res.headers()["content-type"].to_str().expect("ascii");
        assert!(ty.starts_with("text/html"), "{path}: {ty}");
        assert!(res.headers().contains_key("x-request-id"), "{path}");
        assert!(
            res.headers().contains_key("content-security-policy"),
            "{path}"
        );
        let body = res.text().await.expect("body");
        assert!(body.contains("<title>filegate"), "{path}");
    }
    let script = app
        .http
        .get(format!("{}/ui/upload.js", app.api))
        .send()
        .await
        .expect("GET");
    assert_eq!(script.status(), 200);
    app.shutdown().await;
}

#[tokio::test]
async fn the_page_uploads_cross_origin_with_progress_and_downloads_the_same_bytes() {
    let Some(tools) = tools_or_skip() else {
        return;
    };
    let _one = ONE_BROWSER.lock().await;
    // The page's origin is the API's own; storage (another port) allows exactly that.
    let app =
        TestApp::spawn_with_origin(|c, origin| c.cors_origins = vec![origin.to_owned()]).await;
    let token = app.token("u1", Some("org1"), Some("member"));
    let files = tempfile::tempdir().expect("temp dir");
    let downloads = tempfile::tempdir().expect("temp dir");
    let (path, bytes) = sample_file(files.path(), "quarterly-report.bin", 300 * 1024);

    let browser = Browser::start(&tools, "upload", downloads.path())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let outcome = upload_and_download(
        &browser.client,
        &app,
        &token,
        &path,
        &bytes,
        downloads.path(),
    )
    .await;
    browser.finish(outcome).await;
    app.shutdown().await;
}

async fn upload_and_download(
    c: &Client,
    app: &TestApp,
    token: &str,
    path: &Path,
    bytes: &[u8],
    downloads: &Path,
) -> Step {
    let s3 = app
        .running
        .s3_endpoint
        .clone()
        .ok_or("no embedded endpoint")?;
    if s3 == app.api {
        return Err("storage must be another origin than the page".to_owned());
    }
    open_and_sign_in(c, app, token).await?;

    // Upload: a cross-origin PUT with its preflight, progress from xhr.upload.
    let state = choose_file(c, path).await?;
    if state != "done" {
        return Err(format!(
            "the upload did not finish: {}",
            page_state(c).await
        ));
    }
    let shown = c
        .execute(
            "const t = (id) => document.getElementById(id);
                 return {
                     value: t('upload-progress').value,
                     events: Number(t('upload-progress').dataset.events || 0),
                     label: t('progress-label').textContent,
                     status: t('status').textContent,
                     etag: t('status').dataset.etag || '',
                 };",
            vec![],
        )
        .await
        .map_err(ctx("reading the progress"))?;
    let etag = shown["etag"].as_str().unwrap_or_default();
    let etag_ok = etag.len() == 34
        && etag.starts_with('"')
        && etag.ends_with('"')
        && etag[1..33].bytes().all(|b| b.is_ascii_hexdigit());
    if shown["value"].as_f64() != Some(100.0)
        || shown["events"].as_u64().unwrap_or(0) < 1
        || shown["label"] != "100 %"
        || !shown["status"]
            .as_str()
            .is_some_and(|s| s.contains("Upload complete: quarterly-report.bin"))
        || !etag_ok
    {
        return Err(format!(
            "the page does not report a finished upload (ETag exposed by CORS, progress events from xhr.upload): {shown}"
        ));
    }

    // The list shows the file; the API agrees.
    let item = only_item(app, token).await?;
    let id = item["id"].as_str().unwrap_or_default().to_owned();
    if item["size"] != bytes.len() || item["filename"] != "quarterly-report.bin" {
        return Err(format!("unexpected media row {item}"));
    }
    let row = wait_for(
        c,
        "the file in the list",
        &format!(
            "const tr = document.querySelector('#file-rows tr[data-id=\"{id}\"]');
                 return tr ? [...tr.cells].map((td) => td.textContent) : null;"
        ),
    )
    .await?;
    if row[0] != "quarterly-report.bin" || row[1] != "300 KiB" || row[4] != "Download" {
        return Err(format!("unexpected row {row}"));
    }

    // Download: the link signs a URL and the browser saves the file.
    c.find(Locator::Css(&format!("button.download[data-id=\"{id}\"]")))
        .await
        .map_err(ctx("download link"))?
        .click()
        .await
        .map_err(ctx("clicking download"))?;
    let url = wait_for(
            c,
            "the signed download URL",
            &format!(
                "return document.querySelector('button.download[data-id=\"{id}\"]').dataset.url || null;"
            ),
        )
        .await?;
    let url = url.as_str().unwrap_or_default().to_owned();
    if !url.starts_with(&s3) {
        return Err(format!("download URL {url} is not on storage {s3}"));
    }
    let saved = downloads.join("quarterly-report.bin");
    let deadline = Instant::now() + STEP;
    let got = loop {
        let partial = std::fs::read_dir(downloads)
            .map_err(ctx("reading the downloads"))?
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().ends_with(".crdownload"));
        if !partial && let Ok(got) = std::fs::read(&saved) {
            break got;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no download at {}; {}",
                saved.display(),
                page_state(c).await
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if got != bytes {
        return Err(format!(
            "downloaded {} bytes differ from the {} uploaded",
            got.len(),
            bytes.len()
        ));
    }

    // And the page itself can read the object cross-origin (GET allowed by CORS).
    let digest = c
            .execute_async(
                "const [url, done] = arguments;
                 fetch(url)
                   .then((r) => (r.ok ? r.arrayBuffer() : Promise.reject(new Error('HTTP ' + r.status))))
                   .then((b) => crypto.subtle.digest('SHA-256', b))
                   .then((d) => done([...new Uint8Array(d)].map((x) => x.toString(16).padStart(2, '0')).join('')))
                   .catch((e) => done('error: ' + e.message));",
                vec![json!(url)],
            )
            .await
            .map_err(ctx("fetching in the page"))?;
    if digest != sha256_hex(bytes) {
        return Err(format!(
            "SHA-256 in the page {digest} differs from the file's"
        ));
    }
    Ok(())
}

#[tokio::test]
async fn an_origin_storage_refuses_fails_the_upload_visibly_and_stores_nothing() {
    let Some(tools) = tools_or_skip() else {
        return;
    };
    let _one = ONE_BROWSER.lock().await;
    // Storage allows another origin only: the page's PUT preflight is refused.
    let app =
        TestApp::spawn_with(|c| c.cors_origins = vec!["http://app.example.test".to_owned()]).await;
    let token = app.token("u1", Some("org1"), Some("member"));
    let files = tempfile::tempdir().expect("temp dir");
    let downloads = tempfile::tempdir().expect("temp dir");
    let (path, _) = sample_file(files.path(), "refused.bin", 64 * 1024);

    let browser = Browser::start(&tools, "refused-origin", downloads.path())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let outcome = upload_refused(&browser.client, &app, &token, &path).await;
    browser.finish(outcome).await;
    app.shutdown().await;
}

async fn upload_refused(c: &Client, app: &TestApp, token: &str, path: &Path) -> Step {
    open_and_sign_in(c, app, token).await?;
    let state = choose_file(c, path).await?;
    if state != "failed" {
        return Err(format!("the upload should fail: {}", page_state(c).await));
    }
    let error = text_of(c, "error").await?;
    let page_origin = app.api.as_str();
    if !error.contains("Upload to storage failed")
        || !error.contains("CORS")
        || !error.contains(page_origin)
    {
        return Err(format!("unclear error message: {error:?}"));
    }
    let status = text_of(c, "status").await?;
    if !status.contains("Upload failed") {
        return Err(format!("unclear status: {status:?}"));
    }

    // The row was signed, but storage holds no object for it: it stays pending, hidden
    // from the default listing, and a download is refused instead of signed.
    let listed = app.get("/api/v1/media", Some(token)).await;
    if listed.body["items"] != json!([]) {
        return Err(format!("a pending upload is listed: {listed:?}"));
    }
    let pending = app.get("/api/v1/media?status=pending", Some(token)).await;
    let item = match pending.body["items"].as_array().map(Vec::as_slice) {
        Some([one]) if one["status"] == "pending" => one.clone(),
        _ => return Err(format!("expected one pending row, got {pending:?}")),
    };
    let id = item["id"].as_str().unwrap_or_default();
    let dl = app.sign_download(token, id, &json!({})).await;
    if dl.status != 409 || dl.body["code"] != "STORAGE_NOT_UPLOADED" {
        return Err(format!(
            "a download of the refused upload was not refused: {dl:?}"
        ));
    }
    let key = item["key"].as_str().unwrap_or_default();
    let objects = app.running.data_dir.join("objects");
    if let Some(on_disk) =
        filegate_embedded_s3::stored_object_path(&objects, &app.running.bucket, key)
    {
        return Err(format!("{} exists", on_disk.display()));
    }
    Ok(())
}

// ------------------------------------------------------------------ multipart on the page

/// Chooses `file` and waits until the status line's `data-state` is one of `states`.
async fn choose_file_until(c: &Client, file: &Path, states: &[&str]) -> Step<String> {
    c.find(Locator::Id("file-input"))
        .await
        .map_err(ctx("file input"))?
        .send_keys(&file.display().to_string())
        .await
        .map_err(ctx("choosing the file"))?;
    let wanted = json!(states).to_string();
    let state = wait_for(
        c,
        "the upload to stop",
        &format!(
            "const s = document.getElementById('status').dataset.state;
             return {wanted}.includes(s) ? s : null;"
        ),
    )
    .await?;
    Ok(state.as_str().unwrap_or_default().to_owned())
}

/// Opens `path_and_query` on the API's origin and waits until the file list loaded.
async fn open_page(c: &Client, app: &TestApp, path_and_query: &str) -> Step {
    c.goto(&format!("{}{path_and_query}", app.api))
        .await
        .map_err(ctx("opening the page"))?;
    wait_for(
        c,
        "the file list",
        "const t = (id) => document.getElementById(id);
         return t('files').dataset.loaded === 'true' && t('error').hidden;",
    )
    .await?;
    Ok(())
}

/// `data-<name>` of the status line.
async fn status_data(c: &Client, name: &str) -> Step<String> {
    let v = c
        .execute(
            "return document.getElementById('status').dataset[arguments[0]] ?? null;",
            vec![json!(name)],
        )
        .await
        .map_err(ctx("reading the status line"))?;
    Ok(v.as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn the_page_uploads_a_large_file_in_parallel_parts_and_resumes_it_after_a_reload() {
    let Some(tools) = tools_or_skip() else {
        return;
    };
    let _one = ONE_BROWSER.lock().await;
    let app =
        TestApp::spawn_with_origin(|c, origin| c.cors_origins = vec![origin.to_owned()]).await;
    let token = app.token("u1", Some("org1"), Some("member"));
    let files = tempfile::tempdir().expect("temp dir");
    let downloads = tempfile::tempdir().expect("temp dir");
    // Four parts of 5 MiB (the smallest S3 allows), the last one short.
    let (path, bytes) = sample_file(files.path(), "site-backup.bin", 15 * MIB + 777);

    let browser = Browser::start(&tools, "multipart-resume", downloads.path())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let outcome = multipart_with_reload(&browser.client, &app, &token, &path, &bytes).await;
    browser.finish(outcome).await;
    app.shutdown().await;
}

const MIB: usize = 1024 * 1024;

async fn multipart_with_reload(
    c: &Client,
    app: &TestApp,
    token: &str,
    path: &Path,
    bytes: &[u8],
) -> Step {
    // A threshold of 1 MiB instead of 64 MiB, 5 MiB parts; the hook stops after two parts,
    // as if the tab had been closed mid-upload.
    let settings = format!("multipartThreshold={MIB}&partSize={}", 5 * MIB);
    open_and_sign_in(c, app, token).await?;
    open_page(c, app, &format!("/?{settings}&pauseAfterParts=2")).await?;
    let state = choose_file_until(c, path, &["paused", "done", "failed"]).await?;
    if state != "paused" {
        return Err(format!("expected a pause: {}", page_state(c).await));
    }
    let id = status_data(c, "uploadId").await?;
    if status_data(c, "uploadedParts").await? != "1,2" {
        return Err(format!(
            "the first session should send parts 1 and 2: {:?}",
            status_data(c, "uploadedParts").await?
        ));
    }
    let held = app
        .get(&format!("/api/v1/media/{id}/parts"), Some(token))
        .await;
    let numbers: Vec<_> = held.body["parts"]
        .as_array()
        .map(|a| a.iter().map(|p| p["partNumber"].clone()).collect())
        .unwrap_or_default();
    if numbers != [json!(1), json!(2)] {
        return Err(format!("storage should hold parts 1 and 2: {held:?}"));
    }

    // Reload (no hook this time): the page lists the unfinished upload from localStorage.
    open_page(c, app, &format!("/?{settings}")).await?;
    wait_for(
        c,
        "the unfinished upload",
        &format!(
            "const box = document.getElementById('unfinished');
             return !box.hidden && !!box.querySelector('li[data-id=\"{id}\"]');"
        ),
    )
    .await?;

    // The same file again: only the missing parts are sent, four at a time at most.
    let state = choose_file_until(c, path, &["done", "failed"]).await?;
    if state != "done" {
        return Err(format!(
            "the resumed upload failed: {}",
            page_state(c).await
        ));
    }
    let resumed = status_data(c, "resumedParts").await?;
    let uploaded = status_data(c, "uploadedParts").await?;
    if resumed != "1,2" || uploaded != "3,4" || status_data(c, "uploadId").await? != id {
        return Err(format!(
            "the resume should keep parts 1,2 and send 3,4: resumed {resumed:?}, sent {uploaded:?}"
        ));
    }
    let after = c
        .execute(
            "return {
                 stored: localStorage.getItem('filegate.multipart'),
                 unfinishedHidden: document.getElementById('unfinished').hidden,
                 progress: document.getElementById('upload-progress').value,
             };",
            vec![],
        )
        .await
        .map_err(ctx("reading the page"))?;
    if after != json!({ "stored": null, "unfinishedHidden": true, "progress": 100 }) {
        return Err(format!(
            "a completed upload must leave nothing to resume: {after}"
        ));
    }

    // One confirmed row with the file's size; storage serves the same bytes.
    let item = only_item(app, token).await?;
    if item["id"] != id.as_str() || item["status"] != "confirmed" || item["size"] != bytes.len() {
        return Err(format!("unexpected media row {item}"));
    }
    let dl = app.sign_download(token, &id, &json!({})).await;
    let url = dl.body["url"].as_str().ok_or(format!("no URL: {dl:?}"))?;
    let got = app
        .http
        .get(url)
        .send()
        .await
        .map_err(ctx("downloading"))?
        .bytes()
        .await
        .map_err(ctx("reading the download"))?;
    if got.as_ref() != bytes {
        return Err(format!(
            "downloaded {} bytes differ from the {} uploaded",
            got.len(),
            bytes.len()
        ));
    }
    Ok(())
}
