use crate::error::Error;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Longest file-name part of a generated key.
const MAX_KEY_NAME_BYTES: usize = 120;

/// RFC 8187 `attr-char` minus alphanumerics: everything else is percent-encoded.
const ATTR_CHAR_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// Whether `c` reorders the text around it (embeddings, overrides, isolates and marks):
/// `invoice\u{202E}fdp.exe` displays as `invoiceexe.pdf`.
#[must_use]
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// Checks a user-supplied file name: 1 to 255 bytes, no path separators, no control or
/// bidirectional control characters, not `.` or `..`, not blank.
///
/// # Errors
/// [`Error::Validation`] on `field`.
pub fn validate_filename(field: &str, raw: &str) -> Result<(), Error> {
    let reason = if raw.trim().is_empty() {
        Some("must not be empty")
    } else if raw.len() > 255 {
        Some("must be at most 255 bytes")
    } else if raw.contains(['/', '\\']) {
        Some("must be a file name, not a path")
    } else if raw.chars().any(char::is_control) {
        Some("must not contain control characters")
    } else if raw.chars().any(is_bidi_control) {
        Some("must not contain bidirectional control characters")
    } else if raw == "." || raw == ".." {
        Some("must be a file name, not a path")
    } else {
        None
    };
    reason.map_or(Ok(()), |r| Err(Error::invalid(field, r)))
}

/// The file name as it appears in an object key: letters, digits, `.`, `_` and `-`,
/// other runs replaced by one `-`, no leading dots, at most 120 bytes.
#[must_use]
pub fn key_safe_filename(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_alphanumeric() || matches!(c, '.' | '_' | '-') {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let mut trimmed = out.trim_start_matches(['.', '-']).to_owned();
    // Bytes, not chars: the key has a byte limit and a char can be 4 bytes.
    let mut cut = trimmed.len().min(MAX_KEY_NAME_BYTES);
    while !trimmed.is_char_boundary(cut) {
        cut -= 1;
    }
    trimmed.truncate(cut);
    if trimmed.is_empty() || trimmed.chars().all(|c| c == '.') {
        "file".to_owned()
    } else {
        trimmed
    }
}

/// `attachment; filename="<ASCII fallback>"; filename*=UTF-8''<percent-encoded>`
/// (RFC 6266 with RFC 8187). The fallback never contains a quote, backslash, `%`,
/// control character or non-ASCII character; the extended form round-trips exactly.
#[must_use]
pub fn content_disposition_attachment(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() && !matches!(c, '"' | '\\' | '%') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = utf8_percent_encode(name, ATTR_CHAR_ESCAPES);
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn path_tricks_are_not_file_names() {
        for bad in [
            "",
            "  ",
            "../etc/passwd",
            "a/b",
            "a\\b",
            "..",
            ".",
            "a\nb",
            "a\0b",
            "invoice\u{202E}fdp.exe",
            "a\u{2067}b",
            "a\u{200F}b",
            &"x".repeat(256),
        ] {
            assert!(validate_filename("filename", bad).is_err(), "{bad:?}");
        }
        for good in [
            "report.pdf",
            "Résumé 2026.docx",
            ".env",
            "a..b",
            &"x".repeat(255),
        ] {
            assert!(validate_filename("filename", good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn key_safe_names_keep_letters_and_collapse_the_rest() {
        assert_eq!(key_safe_filename("report.pdf"), "report.pdf");
        assert_eq!(
            key_safe_filename("my  \"quoted\" file?.txt"),
            "my-quoted-file-.txt"
        );
        assert_eq!(key_safe_filename("...hidden"), "hidden");
        assert_eq!(key_safe_filename("Über.pdf"), "Über.pdf");
        assert_eq!(key_safe_filename("???"), "file");
    }

    #[test]
    fn disposition_has_ascii_fallback_and_utf8_form() {
        assert_eq!(
            content_disposition_attachment("naïve \"q\".pdf"),
            "attachment; filename=\"na_ve _q_.pdf\"; filename*=UTF-8''na%C3%AFve%20%22q%22.pdf"
        );
    }

    fn decode_ext(header: &str) -> String {
        let ext = header.split("filename*=UTF-8''").nth(1).unwrap();
        percent_encoding::percent_decode_str(ext)
            .decode_utf8()
            .unwrap()
            .into_owned()
    }

    proptest! {
        #[test]
        fn disposition_never_breaks_the_header_and_round_trips(name in "\\PC{0,30}|.{0,10}|[\"\\\\%\r\n;]{0,6}") {
            let h = content_disposition_attachment(&name);
            prop_assert!(!h.contains(['\r', '\n', '\0']));
            prop_assert!(h.is_ascii());
            let fallback = h.split("filename=\"").nth(1).unwrap().split("\"; filename*=").next().unwrap();
            prop_assert!(!fallback.contains(['"', '\\', '%']));
            prop_assert_eq!(fallback.chars().count(), name.chars().count());
            let ext = h.split("filename*=UTF-8''").nth(1).unwrap();
            prop_assert!(!ext.contains([' ', '"', ';', '\'']));
            prop_assert_eq!(decode_ext(&h), name);
        }

        #[test]
        fn key_safe_names_are_always_safe(name in "\\PC{0,200}") {
            let s = key_safe_filename(&name);
            prop_assert!(!s.is_empty() && s.len() <= 120);
            prop_assert!(!s.starts_with('.'));
            prop_assert!(s.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-')));
            prop_assert!(validate_filename("f", &s).is_ok());
        }
    }
}
