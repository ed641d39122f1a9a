//! Object keys and managed paths: never a panic; accepted values obey every rule.
#![no_main]

use filegate_core::domain::{ObjectKey, is_bidi_control};
use filegate_core::managed::ObjectPath;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    for accepted in [
        ObjectKey::parse(raw).map(|k| k.as_str().to_owned()),
        ObjectPath::parse(raw).map(|p| p.as_str().to_owned()),
    ]
    .into_iter()
    .flatten()
    {
        assert_eq!(accepted, raw, "nothing is rewritten");
        assert!(!raw.is_empty() && raw.len() <= 1024);
        assert!(!raw.starts_with('/'));
        assert!(!raw.chars().any(char::is_control));
        assert!(
            raw.split('/')
                .all(|s| !s.is_empty() && s != "." && s != "..")
        );
    }
    if let Ok(p) = ObjectPath::parse(raw) {
        assert!(!p.as_str().contains('\\'));
        assert!(!p.as_str().chars().any(is_bidi_control));
    }
});
