//! Hardening of the listeners and of authentication, through the real server: cookie
//! tossing, CSRF on cookie-authenticated writes, ids that would escape their key
//! prefix, malformed requests and slow clients.

use filegate_e2e::{TestApp, assert_envelope};
use filegate_testkit::auth_db::AuthDbFixture;
use serde_json::json;
use time::{Duration, OffsetDateTime};

const SECRET: &str = "better-auth-secret-for-the-e2e-tests-0123456789";
const TRUSTED: &str = "https://app.example.com";

struct World {
    app: TestApp,
    db: AuthDbFixture,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("auth.db");
    let db = AuthDbFixture::create(&path);
    db.add_user("victim", "victim@example.com", None);
    db.add_user("attacker", "attacker@example.com", None);
    db.add_org("org_v", "v");
    db.add_org("org_x", "x");
    db.add_member("org_v", "victim", "member");
    db.add_member("org_x", "attacker", "member");
    let app = TestApp::spawn_with(move |c| {
        c.auth_db = Some(path.into());
        c.auth_secret = Some(secrecy::SecretString::from(SECRET));
        c.cors_origins = vec![TRUSTED.to_owned()];
    })
    .await;
    World { app, db, _dir: dir }
}

fn in_an_hour() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::hours(1)
}

/// The user a `set-auth-token` JWT was minted for.
async fn user_of(jwt: &str) -> String {
    use filegate_core::ports::{Authenticator, Credentials};
    let auth = filegate_auth::JwtAuthenticator::new(filegate_auth::JwtConfig::new(
        secrecy::SecretString::from(SECRET),
    ));
    auth.authenticate(&Credentials {
        bearer: Some(jwt.to_owned()),
        ..Credentials::default()
    })
    .await
    .expect("the minted JWT verifies")
    .user_id
}

#[tokio::test]
async fn the_secure_session_cookie_wins_over_a_tossed_plain_one() {
    let w = world().await;
    let victim = w.db.add_session("victim", Some("org_v"), in_an_hour());
    let attacker = w.db.add_session("attacker", Some("org_x"), in_an_hour());
    let url = format!("{}/api/v1/media", w.app.api);
    let get = |cookie: String| w.app.send(w.app.http.get(&url).header("cookie", cookie));

    // A sibling subdomain planted its own session under the plain name, first in line.
    let both = format!(
        "better-auth.session_token={}; __Secure-better-auth.session_token={}",
        attacker.cookie_value(SECRET),
        victim.cookie_value(SECRET)
    );
    let res = get(both).await;
    assert_eq!(res.status, 200, "{res:?}");
    let jwt = res.headers["set-auth-token"].to_str().expect("ascii");
    assert_eq!(user_of(jwt).await, "victim");

    // A secure cookie that fails is not replaced by the plain one beside it.
    w.db.sign_out(&victim);
    let res = get(format!(
        "better-auth.session_token={}; __Secure-better-auth.session_token={}",
        attacker.cookie_value(SECRET),
        victim.cookie_value(SECRET)
    ))
    .await;
    assert_envelope(&res, 401, "AUTH_INVALID_TOKEN");

    // The plain cookie alone still works (development over plain HTTP).
    let res = get(attacker.cookie_header(SECRET)).await;
    assert_eq!(res.status, 200, "{res:?}");
    w.app.shutdown().await;
}

/// A managed world with an org bucket `docs` (text allowed) in the victim's org.
async fn managed_world() -> World {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("auth.db");
    let db = AuthDbFixture::create(&path);
    db.add_user("victim", "victim@example.com", None);
    db.add_org("org_v", "v");
    db.add_member("org_v", "victim", "owner");
    let app = TestApp::spawn_with(move |c| {
        c.managed = true;
        c.auth_db = Some(path.into());
        c.auth_secret = Some(secrecy::SecretString::from(SECRET));
        c.cors_origins = vec![TRUSTED.to_owned()];
    })
    .await;
    let owner = app.token("victim", Some("org_v"), Some("owner"));
    let created = app
        .post_json(
            "/storage/v1/bucket",
            Some(&owner),
            &json!({ "name": "docs", "writeScope": "org", "allowedMimeTypes": ["text/*"] }),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    World { app, db, _dir: dir }
}

#[tokio::test]
async fn a_cookie_authenticated_write_needs_a_trusted_origin() {
    let w = managed_world().await;
    let session = w.db.add_session("victim", Some("org_v"), in_an_hour());
    let cookie = session.cookie_header(SECRET);
    let object = |name: &str| format!("{}/storage/v1/object/docs/{name}", w.app.api);
    // What an evil page's `fetch(url, {method: "POST", credentials: "include",
    // mode: "no-cors", body: "…"})` sends: a simple content type, the victim's cookie.
    let post = |name: &str, headers: &[(&'static str, &str)]| {
        let mut req = w
            .app
            .http
            .post(object(name))
            .header("cookie", &cookie)
            .header("content-type", "text/plain")
            .body("planted");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        w.app.send(req)
    };

    for headers in [
        &[("origin", "http://evil.example")][..],
        &[("origin", "null")],
        &[
            ("origin", "http://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ],
        &[("sec-fetch-site", "cross-site")],
        &[("sec-fetch-site", "same-site")],
        &[("referer", "http://evil.example/attack.html")],
    ] {
        let res = post("a.txt", headers).await;
        assert_envelope(&res, 403, "CSRF_ORIGIN_UNTRUSTED");
        assert_eq!(res.body["layer"], "access", "{res:?}");
        assert!(res.headers.get("x-request-id").is_some());
    }
    // Nothing was written: the same path is still free for a trusted page.
    let res = post("a.txt", &[("origin", TRUSTED)]).await;
    assert_eq!(res.status, 200, "{res:?}");
    let res = post("b.txt", &[("sec-fetch-site", "same-origin")]).await;
    assert_eq!(res.status, 200, "{res:?}");
    let res = post("c.txt", &[("referer", &format!("{TRUSTED}/upload"))]).await;
    assert_eq!(res.status, 200, "{res:?}");

    // Deletes are writes too.
    let delete = |origin: &str| {
        w.app.send(
            w.app
                .http
                .delete(object("a.txt"))
                .header("cookie", &cookie)
                .header("origin", origin),
        )
    };
    assert_envelope(
        &delete("http://evil.example").await,
        403,
        "CSRF_ORIGIN_UNTRUSTED",
    );
    assert_eq!(delete(TRUSTED).await.status, 200);

    // Reads with the cookie are not writes.
    let list = w
        .app
        .send(
            w.app
                .http
                .get(format!("{}/api/v1/media", w.app.api))
                .header("cookie", &cookie)
                .header("origin", "http://evil.example"),
        )
        .await;
    assert_eq!(list.status, 200, "{list:?}");

    // A bearer credential is not sent by the browser on its own: no origin rule.
    let jwt = w.app.token("victim", Some("org_v"), Some("owner"));
    let res = w
        .app
        .send(
            w.app
                .http
                .post(object("d.txt"))
                .bearer_auth(&jwt)
                .header("origin", "http://evil.example")
                .header("content-type", "text/plain")
                .body("by bearer"),
        )
        .await;
    assert_eq!(res.status, 200, "{res:?}");
    let res = w
        .app
        .send(
            w.app
                .http
                .post(object("e.txt"))
                .bearer_auth(session.cookie_value(SECRET))
                .header("origin", "http://evil.example")
                .header("content-type", "text/plain")
                .body("by session bearer"),
        )
        .await;
    assert_eq!(res.status, 200, "{res:?}");
    w.app.shutdown().await;
}

#[tokio::test]
async fn ids_that_would_leave_their_key_prefix_fail_authentication() {
    let w = world().await;
    for (user, org) in [
        ("a/b", Some("org_v")),
        ("..\\x", Some("org_v")),
        ("u\u{0}", Some("org_v")),
        ("victim", Some("org_v/../org_x")),
        ("victim", Some("org\nx")),
    ] {
        let token = w.app.token(user, org, Some("owner"));
        let res = w.app.get("/api/v1/media", Some(&token)).await;
        assert_envelope(&res, 401, "AUTH_INVALID_TOKEN");
        let res = w
            .app
            .post_json(
                "/api/v1/media/sign-upload",
                Some(&token),
                &json!({ "filename": "a.txt", "contentType": "text/plain" }),
            )
            .await;
        assert_envelope(&res, 401, "AUTH_INVALID_TOKEN");
    }
    // The same from Better Auth's database: a session of a user whose id has a slash,
    // and of an organization whose id has one.
    w.db.add_user("ev/il", "evil@example.com", None);
    w.db.add_member("org_v", "ev/il", "member");
    let session = w.db.add_session("ev/il", Some("org_v"), in_an_hour());
    let res = w
        .app
        .send(
            w.app
                .http
                .get(format!("{}/api/v1/media", w.app.api))
                .header("cookie", session.cookie_header(SECRET)),
        )
        .await;
    assert_envelope(&res, 401, "AUTH_INVALID_TOKEN");
    w.db.add_org("org/x", "slash");
    w.db.add_member("org/x", "victim", "member");
    let session = w.db.add_session("victim", Some("org/x"), in_an_hour());
    let res = w
        .app
        .send(
            w.app
                .http
                .get(format!("{}/api/v1/media", w.app.api))
                .header("cookie", session.cookie_header(SECRET)),
        )
        .await;
    assert_envelope(&res, 401, "AUTH_INVALID_TOKEN");
    // Ordinary ids still work.
    let token = w.app.token("victim", Some("org_v"), Some("member"));
    assert_eq!(w.app.get("/api/v1/media", Some(&token)).await.status, 200);
    w.app.shutdown().await;
}

/// Sends `request` on a fresh connection and reads until the server closes it.
async fn raw(addr: std::net::SocketAddr, request: String) -> String {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_mins(1)))
            .expect("read timeout");
        s.write_all(request.as_bytes()).expect("write");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .expect("request task")
}

/// The responses in `raw` output, as (status line, lower-cased headers, body).
fn responses(raw: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some((head, after)) = rest.split_once("\r\n\r\n") {
        let status = head.lines().next().unwrap_or_default().to_owned();
        let headers = head.to_ascii_lowercase();
        let len = headers
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(after.len());
        let (body, next) = after.split_at(len.min(after.len()));
        out.push((status, headers, body.to_owned()));
        rest = next;
    }
    out
}

fn assert_malformed_envelope(status: &str, headers: &str, body: &str) {
    assert!(status.starts_with("HTTP/1.1 400"), "{status}");
    let id = headers
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id:"))
        .map_or_else(|| panic!("no x-request-id in {headers}"), str::trim);
    assert!(
        headers.contains("content-type: application/json"),
        "{headers}"
    );
    let body: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
    assert_eq!(body["code"], "VALIDATION_FAILED", "{body}");
    assert_eq!(body["layer"], "validation", "{body}");
    assert!(body["error"].is_string(), "{body}");
    assert_eq!(body["requestId"], id, "{body}");
}

#[tokio::test]
async fn a_malformed_content_length_gets_the_envelope_on_both_listeners() {
    let app = TestApp::spawn_with(|c| c.managed = true).await;
    let api = app.running.api_addr;
    let files = app.running.files_addr.expect("files listener");
    for (addr, request) in [
        (
            api,
            "POST /api/v1/media/sign-upload HTTP/1.1\r\nHost: t\r\nContent-Length: Aq\r\n\r\n",
        ),
        (
            api,
            "GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: Aq\r\n\r\n",
        ),
        (
            api,
            "POST /storage/v1/object/avatars/u/a.png HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ),
        (
            api,
            "GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
        ),
        (
            files,
            "GET /public/avatars/a.png HTTP/1.1\r\nHost: t\r\nContent-Length: Aq\r\n\r\n",
        ),
        (
            files,
            "GET /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 5\r\n\r\n",
        ),
    ] {
        let out = raw(addr, request.to_owned()).await;
        let all = responses(&out);
        assert_eq!(all.len(), 1, "one response to {request:?}: {out}");
        let (status, headers, body) = &all[0];
        assert_malformed_envelope(status, headers, body);
        let body: serde_json::Value = serde_json::from_str(body).expect("JSON");
        assert!(
            body["details"]["fields"]["Content-Length"].is_string(),
            "{body}"
        );
    }
    // Any other head hyper refuses gets the envelope too.
    let out = raw(
        api,
        "GET /healthz HTTP/1.1\r\nBad Header: x\r\n\r\n".to_owned(),
    )
    .await;
    let all = responses(&out);
    assert_eq!(all.len(), 1, "{out}");
    assert_malformed_envelope(&all[0].0, &all[0].1, &all[0].2);

    // On a kept-alive connection, the requests before it are answered as usual, in
    // order (the first one's body framed by its Content-Length), and nothing after it.
    let token = app.token("u1", Some("org1"), Some("member"));
    let json = r#"{"filename":"a.txt","contentType":"text/plain"}"#;
    let out = raw(
        api,
        format!(
            "POST /api/v1/media/sign-upload HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: Aq\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
            json.len()
        ),
    )
    .await;
    let all = responses(&out);
    assert_eq!(all.len(), 3, "{out}");
    assert!(all[0].0.starts_with("HTTP/1.1 200"), "{out}");
    assert!(all[1].0.starts_with("HTTP/1.1 200"), "{out}");
    assert_malformed_envelope(&all[2].0, &all[2].1, &all[2].2);
    app.shutdown().await;
}

/// Holds a connection open, sending one header byte at a time, until the server closes
/// it; returns whether it did within `limit`.
async fn trickle_until_closed(addr: std::net::SocketAddr, limit: std::time::Duration) -> bool {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let start = std::time::Instant::now();
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .expect("read timeout");
        let header = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ";
        if s.write_all(header).is_err() {
            return true;
        }
        let mut buf = [0u8; 512];
        while start.elapsed() < limit {
            if s.write_all(b"a").is_err() {
                return true;
            }
            match s.read(&mut buf) {
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                // An answer or a reset: the connection is over either way.
                Ok(_) | Err(_) => return true,
            }
        }
        false
    })
    .await
    .expect("trickle task")
}

#[tokio::test]
async fn slow_headers_are_cut_off_after_the_header_read_timeout_on_both_listeners() {
    let app = TestApp::spawn_with(|c| {
        c.managed = true;
        c.listener.header_read_timeout = std::time::Duration::from_secs(1);
    })
    .await;
    // One second configured; a minute of margin before calling it a failure.
    let margin = std::time::Duration::from_mins(1);
    assert!(
        trickle_until_closed(app.running.api_addr, margin).await,
        "the API listener kept a trickling client"
    );
    let files = app.running.files_addr.expect("files listener");
    assert!(
        trickle_until_closed(files, margin).await,
        "the files listener kept a trickling client"
    );
    // Normal requests are unaffected.
    assert_eq!(app.get("/healthz", None).await.status, 200);
    app.shutdown().await;
}

#[tokio::test]
async fn a_stalled_body_is_cut_off_after_the_idle_timeout() {
    let app = TestApp::spawn_with(|c| {
        c.listener.idle_timeout = std::time::Duration::from_secs(1);
    })
    .await;
    let token = app.token("u1", Some("org1"), Some("member"));
    let addr = app.running.api_addr;
    let closed = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        // Announces 100 bytes, sends 10, then nothing.
        let head = format!(
            "POST /api/v1/media/sign-upload HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"filename\""
        );
        s.write_all(head.as_bytes()).expect("write");
        // Generous margin over the configured second; the server must end it first.
        s.set_read_timeout(Some(std::time::Duration::from_mins(1)))
            .expect("read timeout");
        let mut out = Vec::new();
        match s.read_to_end(&mut out) {
            Ok(_) => true,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    })
    .await
    .expect("task");
    assert!(closed, "the server kept a connection whose body stalled");
    app.shutdown().await;
}

#[tokio::test]
async fn connections_over_the_cap_wait_for_a_free_slot() {
    let app = TestApp::spawn_with(|c| {
        c.listener.max_connections = 1;
    })
    .await;
    let addr = app.running.api_addr;
    let result = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        // The only slot, held by a connection that sends nothing yet.
        let holder = std::net::TcpStream::connect(addr).expect("connect");
        let mut waiting = std::net::TcpStream::connect(addr).expect("connect (backlog)");
        waiting
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .expect("write");
        waiting
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .expect("read timeout");
        let mut buf = [0u8; 256];
        let early = match waiting.read(&mut buf) {
            Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => None,
        };
        // Freeing the slot lets the waiting connection in.
        drop(holder);
        waiting
            .set_read_timeout(Some(std::time::Duration::from_mins(1)))
            .expect("read timeout");
        let mut out = Vec::new();
        let _ = waiting.read_to_end(&mut out);
        (early, String::from_utf8_lossy(&out).into_owned())
    })
    .await
    .expect("task");
    let (early, late) = result;
    assert_eq!(early, None, "answered while over the cap");
    assert!(late.starts_with("HTTP/1.1 200"), "{late}");
    app.shutdown().await;
}
