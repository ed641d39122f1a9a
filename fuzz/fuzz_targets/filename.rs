//! File names and Content-Disposition: never a panic; an accepted name always yields a
//! header value, and the key-safe form is always a valid file name.
#![no_main]

use filegate_core::domain::{
    content_disposition_attachment, is_bidi_control, key_safe_filename, validate_filename,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if validate_filename("f", raw).is_ok() {
        assert!(!raw.contains(['/', '\\']));
        assert!(!raw.chars().any(|c| c.is_control() || is_bidi_control(c)));
        let header = content_disposition_attachment(raw);
        assert!(http::HeaderValue::from_str(&header).is_ok(), "{header:?}");
    }
    let safe = key_safe_filename(raw);
    assert!(validate_filename("f", &safe).is_ok(), "{safe:?}");
});
