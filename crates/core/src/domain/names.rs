use crate::error::Error;
use serde::{Serialize, Serializer};
use std::fmt;

/// S3 and R2 refuse keys longer than this.
pub const MAX_KEY_BYTES: usize = 1024;

/// An object key inside a bucket.
///
/// Rejected: empty, over 1024 bytes, a leading `/`, empty segments (`a//b`, trailing `/`),
/// `.` or `..` segments, and any control character (NUL included). Nothing is rewritten.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// # Errors
    /// [`Error::Validation`] on field `key` when the rules above are broken.
    pub fn parse(raw: impl Into<String>) -> Result<Self, Error> {
        let raw = raw.into();
        let reason = key_problem(&raw);
        match reason {
            Some(r) => Err(Error::invalid("key", r)),
            None => Ok(Self(raw)),
        }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why `raw` breaks the object-key rules, if it does. Shared with managed paths, which
/// live inside keys and so obey the same rules.
pub(crate) fn key_problem(raw: &str) -> Option<&'static str> {
    if raw.is_empty() {
        Some("must not be empty")
    } else if raw.len() > MAX_KEY_BYTES {
        Some("must be at most 1024 bytes")
    } else if raw.starts_with('/') {
        Some("must not start with '/'")
    } else if raw.chars().any(char::is_control) {
        Some("must not contain control characters")
    } else if raw.split('/').any(|s| s == ".." || s == ".") {
        Some("must not contain '.' or '..' segments")
    } else if raw.split('/').any(str::is_empty) {
        Some("must not contain empty segments")
    } else {
        None
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for ObjectKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A bucket name under R2's rules: 3 to 63 characters of `a-z`, `0-9` and `-`,
/// starting and ending with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BucketName(String);

impl BucketName {
    /// # Errors
    /// [`Error::Validation`] on field `bucket`.
    pub fn parse(raw: impl Into<String>) -> Result<Self, Error> {
        let raw = raw.into();
        let ok_chars = raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let ok_ends = raw.bytes().next().is_some_and(|b| b != b'-')
            && raw.bytes().last().is_some_and(|b| b != b'-');
        if (3..=63).contains(&raw.len()) && ok_chars && ok_ends {
            Ok(Self(raw))
        } else {
            Err(Error::invalid(
                "bucket",
                "must be 3-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit",
            ))
        }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BucketName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A MIME type such as `application/pdf` or `text/plain; charset=utf-8`, kept exactly
/// as given because a presigned PUT signs it byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContentType(String);

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl ContentType {
    /// # Errors
    /// [`Error::Validation`] on field `contentType` unless it is `type/subtype` made of
    /// RFC 9110 tokens, optionally followed by `; parameters` of visible ASCII, at most 255 bytes.
    pub fn parse(raw: impl Into<String>) -> Result<Self, Error> {
        let raw = raw.into();
        let (essence, params) = match raw.split_once(';') {
            Some((e, p)) => (e, Some(p)),
            None => (raw.as_str(), None),
        };
        let essence_ok = essence
            .split_once('/')
            .is_some_and(|(t, s)| is_token(t) && is_token(s));
        let params_ok = params.is_none_or(|p| {
            !p.trim().is_empty()
                && p.bytes()
                    .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
        });
        if raw.len() <= 255 && essence_ok && params_ok {
            Ok(Self(raw))
        } else {
            Err(Error::invalid(
                "contentType",
                "must be a MIME type like 'application/pdf'",
            ))
        }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `type/subtype` in lower case, without parameters.
    #[must_use]
    pub fn essence(&self) -> String {
        self.0
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    }
}

impl fmt::Display for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_with_path_tricks_are_rejected() {
        for bad in [
            "",
            "/abs",
            "a/../b",
            "..",
            "a/./b",
            "a//b",
            "a/",
            "nul\0byte",
            "line\nfeed",
            "del\u{7f}",
        ] {
            assert!(ObjectKey::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(ObjectKey::parse("a".repeat(1025)).is_err());
        assert!(ObjectKey::parse("a".repeat(1024)).is_ok());
    }

    #[test]
    fn ordinary_keys_are_kept_verbatim() {
        for good in ["org/o1/report.pdf", "a b/ü é/x..y", "...hidden", "a/b.c/d"] {
            assert_eq!(ObjectKey::parse(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn bucket_names_follow_r2_rules() {
        for good in ["abc", "filegate-media", "a1-2b", &"a".repeat(63)] {
            assert!(BucketName::parse(good).is_ok(), "{good}");
        }
        for bad in ["ab", "-abc", "abc-", "ABC", "a_b", "a.b", &"a".repeat(64)] {
            assert!(BucketName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn content_types_are_validated_not_rewritten() {
        for good in [
            "application/pdf",
            "text/plain; charset=utf-8",
            "image/svg+xml",
            "Application/PDF",
        ] {
            assert_eq!(ContentType::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "pdf",
            "text/",
            "/plain",
            "text/plain\r\nx: y",
            "a b/c",
            "text/plain;",
        ] {
            assert!(ContentType::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            ContentType::parse("Text/HTML; charset=x")
                .unwrap()
                .essence(),
            "text/html"
        );
    }

    proptest! {
        #[test]
        fn accepted_keys_satisfy_every_rule(raw in "\\PC{0,40}|[a-z./]{0,12}|.{0,8}") {
            if let Ok(key) = ObjectKey::parse(raw.clone()) {
                prop_assert_eq!(key.as_str(), raw.as_str());
                prop_assert!(!raw.is_empty() && raw.len() <= MAX_KEY_BYTES);
                prop_assert!(!raw.starts_with('/'));
                prop_assert!(!raw.chars().any(char::is_control));
                prop_assert!(raw.split('/').all(|s| !s.is_empty() && s != "." && s != ".."));
            }
        }

        #[test]
        fn keys_built_from_safe_segments_are_accepted(segs in prop::collection::vec("[a-zA-Z0-9_-][a-zA-Z0-9 ._-]{0,10}", 1..5)) {
            let raw = segs.join("/");
            prop_assume!(raw.split('/').all(|s| s != "." && s != ".."));
            prop_assert!(ObjectKey::parse(raw).is_ok());
        }
    }
}
