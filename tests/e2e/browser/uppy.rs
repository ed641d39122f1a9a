//! Uppy's `@uppy/aws-s3` (5.x) wired to filegate's routes with the glue of docs/CLIENTS.md
//! (`tests/uppy/filegate-uppy.js`), bundled by esbuild into a static page on an origin of its
//! own, in headless Chromium: one file above the multipart threshold, one below.
//!
//! Needs Node.js and npm as well as Chromium: the test copies `tests/uppy` under `target/`,
//! runs `npm ci` there when its lockfile changed, and bundles with `npm run build`. Without
//! npm it prints SKIPPED and passes, unless `CI` is set (`NPM` overrides the path).

use super::{
    Browser, ONE_BROWSER, Step, ctx, from_env, in_ci, on_path, sample_file, target_dir,
    tools_or_skip, wait_for,
};
use fantoccini::Locator;
use filegate_e2e::TestApp;
use serde_json::json;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const MIB: usize = 1024 * 1024;
/// The npm project's files the page is built from (never its node_modules).
const SOURCES: [&str; 5] = [
    "package.json",
    "package-lock.json",
    "filegate-uppy.js",
    "page.js",
    "index.html",
];

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("uppy")
}

/// npm, or `None` after printing SKIPPED; in CI a missing npm is a failure.
fn npm_or_skip() -> Option<PathBuf> {
    if let Some(npm) = from_env("NPM").or_else(|| on_path("npm")) {
        return Some(npm);
    }
    let msg = "npm not found; the Uppy test needs Node.js and npm (it runs npm ci in a copy of tests/uppy)";
    assert!(!in_ci(), "{msg} (CI is set, so it is required)");
    let _ = writeln!(std::io::stderr(), "SKIPPED: {msg}");
    None
}

fn run(npm: &Path, dir: &Path, args: &[&str]) -> Step {
    let out = Command::new(npm)
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("running npm {args:?}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "npm {args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// Copies the npm project under target/, installs its lockfile (once per lockfile) and
/// bundles the page; returns the folder holding `index.html` and `dist/page.js`.
fn build_page(npm: &Path) -> Step<PathBuf> {
    let dir = target_dir().join("uppy-e2e");
    std::fs::create_dir_all(&dir).map_err(ctx("creating the build folder"))?;
    for name in SOURCES {
        std::fs::copy(source_dir().join(name), dir.join(name))
            .map_err(|e| format!("copying tests/uppy/{name}: {e}"))?;
    }
    let lock = std::fs::read(dir.join("package-lock.json")).map_err(ctx("reading the lockfile"))?;
    let marker = dir.join("node_modules/.filegate-installed-lock");
    if std::fs::read(&marker).ok().as_deref() != Some(lock.as_slice()) {
        run(
            npm,
            &dir,
            &["ci", "--no-audit", "--no-fund", "--prefer-offline"],
        )?;
        std::fs::write(&marker, &lock).map_err(ctx("marking the install"))?;
    }
    run(npm, &dir, &["run", "--silent", "build"])?;
    Ok(dir)
}

/// Serves the built page on `127.0.0.1:0`, an origin other than the API's and storage's.
async fn serve_page(dir: &Path) -> Step<(String, tokio::task::JoinHandle<()>)> {
    use axum::http::header::CONTENT_TYPE;
    let html = std::fs::read_to_string(dir.join("index.html")).map_err(ctx("index.html"))?;
    let script = std::fs::read_to_string(dir.join("dist/page.js")).map_err(ctx("page.js"))?;
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(move || async move {
                ([(CONTENT_TYPE, "text/html; charset=utf-8")], html)
            }),
        )
        .route(
            "/page.js",
            axum::routing::get(move || async move {
                ([(CONTENT_TYPE, "text/javascript; charset=utf-8")], script)
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(ctx("binding the page server"))?;
    let addr = listener.local_addr().map_err(ctx("page server address"))?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}"), task))
}

#[test]
fn clients_md_shows_the_glue_the_uppy_test_runs() {
    let glue = std::fs::read_to_string(source_dir().join("filegate-uppy.js")).expect("glue");
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/CLIENTS.md"))
            .expect("docs/CLIENTS.md");
    assert!(
        doc.contains(&format!("```js\n{glue}```")),
        "docs/CLIENTS.md must show tests/uppy/filegate-uppy.js verbatim in a ```js block"
    );
}

#[tokio::test]
async fn uppy_aws_s3_uploads_through_filegate_in_parts_and_in_one_put() {
    let Some(tools) = tools_or_skip() else {
        return;
    };
    let Some(npm) = npm_or_skip() else {
        return;
    };
    let _one = ONE_BROWSER.lock().await;
    let dir = tokio::task::spawn_blocking(move || build_page(&npm))
        .await
        .expect("build task")
        .unwrap_or_else(|e| panic!("{e}"));
    let (origin, page_server) = serve_page(&dir).await.unwrap_or_else(|e| panic!("{e}"));
    // The page is on an origin of its own: the API and storage both allow exactly that one.
    let app = TestApp::spawn_with(|c| c.cors_origins = vec![origin.clone()]).await;
    let token = app.token("u1", Some("org1"), Some("member"));
    let files = tempfile::tempdir().expect("temp dir");
    let downloads = tempfile::tempdir().expect("temp dir");
    // Three parts of 5 MiB (threshold 6 MiB), and one small file in a single PUT.
    let big = sample_file(files.path(), "lecture.bin", 11 * MIB + 4321);
    let small = sample_file(files.path(), "notes.bin", 200 * 1024);

    let browser = Browser::start(&tools, "uppy", downloads.path())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let query = format!(
        "api={}&token={token}&multipartThreshold={}&partSize={}",
        app.api,
        6 * MIB,
        5 * MIB
    );
    let outcome = uppy_upload(
        &browser.client,
        &app,
        &token,
        &format!("{origin}/?{query}"),
        &[big, small],
    )
    .await;
    browser.finish(outcome).await;
    page_server.abort();
    app.shutdown().await;
}

async fn uppy_upload(
    c: &fantoccini::Client,
    app: &TestApp,
    token: &str,
    url: &str,
    files: &[(PathBuf, Vec<u8>)],
) -> Step {
    c.goto(url).await.map_err(ctx("opening the Uppy page"))?;
    wait_for(
        c,
        "the Uppy page",
        "return document.body.dataset.state === 'ready';",
    )
    .await?;
    let paths: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();
    c.find(Locator::Id("files"))
        .await
        .map_err(ctx("file input"))?
        .send_keys(&paths.join("\n"))
        .await
        .map_err(ctx("choosing the files"))?;
    let state = wait_for(
        c,
        "Uppy to finish",
        "const s = document.body.dataset.state; return s === 'done' || s === 'failed' ? s : null;",
    )
    .await?;
    let results = c
        .execute(
            "return { results: window.filegateResults ?? null, error: document.body.dataset.error ?? null };",
            vec![],
        )
        .await
        .map_err(ctx("reading the results"))?;
    if state != "done" {
        return Err(format!("Uppy's upload failed: {results}"));
    }
    let expected = [("lecture.bin", true), ("notes.bin", false)];
    for ((path, bytes), (name, multipart)) in files.iter().zip(expected) {
        let got = results["results"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["name"] == name))
            .ok_or(format!("no result for {name}: {results}"))?;
        if got["multipart"] != multipart
            || got["status"] != "confirmed"
            || got["size"] != bytes.len()
        {
            return Err(format!(
                "{} should be confirmed, multipart {multipart}: {got}",
                path.display()
            ));
        }
        let id = got["id"].as_str().unwrap_or_default();
        let dl = app.sign_download(token, id, &json!({})).await;
        let url = dl.body["url"].as_str().ok_or(format!("no URL: {dl:?}"))?;
        let downloaded = app
            .http
            .get(url)
            .send()
            .await
            .map_err(ctx("downloading"))?
            .bytes()
            .await
            .map_err(ctx("reading the download"))?;
        if downloaded.as_ref() != bytes.as_slice() {
            return Err(format!(
                "{name}: downloaded {} bytes differ from the {} uploaded",
                downloaded.len(),
                bytes.len()
            ));
        }
    }
    let listed = app.get("/api/v1/media", Some(token)).await;
    if listed.body["items"].as_array().map(Vec::len) != Some(2) {
        return Err(format!("expected two confirmed rows: {listed:?}"));
    }
    Ok(())
}
