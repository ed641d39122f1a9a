//! `Cookie` headers and bearer JWTs: never a panic; no arbitrary input verifies as a JWT.
#![no_main]

use filegate_auth::{JwtAuthenticator, JwtConfig, cookie_values, looks_like_jwt};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn jwt() -> &'static JwtAuthenticator {
    static J: OnceLock<JwtAuthenticator> = OnceLock::new();
    J.get_or_init(|| JwtAuthenticator::new(JwtConfig::new("fuzz-secret-0123456789abcdef0123")))
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let names = [
        "__Secure-better-auth.session_token".to_owned(),
        "better-auth.session_token".to_owned(),
    ];
    let found = cookie_values(raw, &names);
    assert!(found.len() <= names.len());
    let _ = looks_like_jwt(raw);
    assert!(jwt().verify(raw).is_err(), "forged JWT {raw:?}");
});
