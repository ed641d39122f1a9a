//! `Range`, `If-None-Match` / `If-Modified-Since` and HTTP dates: never a panic; ranges
//! stay within what storage can parse; dates round-trip.
#![no_main]

use filegate_core::ports::ByteRange;
use filegate_server::serve::{http_date, not_modified, parse_http_date, parse_range};
use libfuzzer_sys::fuzz_target;

const MAX: u64 = i64::MAX as u64;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    match parse_range(raw) {
        Some(ByteRange::FromTo(a, b)) => assert!(a <= b && b < MAX),
        Some(ByteRange::From(a) | ByteRange::Suffix(a)) => assert!(a <= MAX),
        None => {}
    }
    if let Some(t) = parse_http_date(raw) {
        assert_eq!(parse_http_date(&http_date(t)), Some(t));
    }
    if let Ok(v) = http::HeaderValue::from_bytes(data) {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::IF_NONE_MATCH, v.clone());
        let _ = not_modified(&h, Some("\"abc\""), time::OffsetDateTime::UNIX_EPOCH);
        h.clear();
        h.insert(http::header::IF_MODIFIED_SINCE, v);
        let _ = not_modified(&h, None, time::OffsetDateTime::UNIX_EPOCH);
    }
});
