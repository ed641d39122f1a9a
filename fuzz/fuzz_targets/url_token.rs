//! The files listener's `?token=`: never a panic, and no input verifies for an object it
//! was not minted for.
#![no_main]

use filegate_server::files::{FileTokens, TokenSubject};
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use std::sync::OnceLock;

fn tokens() -> &'static FileTokens {
    static T: OnceLock<FileTokens> = OnceLock::new();
    T.get_or_init(|| FileTokens::new(&SecretString::from("fuzz-secret-0123456789abcdef0123")))
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let now = time::OffsetDateTime::UNIX_EPOCH;
    let subject = TokenSubject {
        key: "org/docs/a.pdf",
        id: "obj_1",
        etag: Some("\"e\""),
    };
    let _ = FileTokens::precheck(raw, now);
    assert!(
        tokens().verify(raw, &subject, now).is_err(),
        "forged token {raw:?}"
    );
});
