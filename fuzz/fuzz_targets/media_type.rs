//! Media types: never a panic; what is accepted normalises to a fixed point that holds
//! nothing a browser could split or smuggle.
#![no_main]

use filegate_core::domain::{ContentType, MediaType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = MediaType::parse(raw) {
        let again = MediaType::parse(m.as_str()).expect("the normal form parses");
        assert_eq!(again.as_str(), m.as_str());
        assert!(!m.as_str().contains(','));
        assert!(m.as_str().is_ascii());
        assert!(http::HeaderValue::from_str(m.as_str()).is_ok());
        assert!(m.as_str().starts_with(m.essence()));
    }
    // Stored values are re-parsed when served: always a usable header value.
    let served = ContentType::from_stored(raw);
    assert!(http::HeaderValue::from_str(served.as_str()).is_ok());
});
