use super::media_type::{MediaType, MediaTypeError};
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
    /// Validates a key; nothing is rewritten.
    ///
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

    /// The validated name.
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
    /// Validates a bucket name.
    ///
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

    /// The validated name.
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

/// A media type such as `application/pdf` or `text/plain; charset=utf-8`, parsed strictly
/// ([`MediaType`]) and kept in its normalised form: the form that is signed into presigned
/// PUTs, stored and served.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContentType(MediaType);

impl ContentType {
    /// Parses a media type and keeps its normalised form.
    ///
    /// # Errors
    /// [`Error::Validation`] on field `contentType` unless it is an RFC 9110 media type
    /// (`type/subtype` tokens, `; name=value` parameters with token or quoted-string
    /// values) without commas or empty parameters, ASCII, at most 255 bytes.
    pub fn parse(raw: impl AsRef<str>) -> Result<Self, Error> {
        MediaType::parse(raw.as_ref()).map(Self).map_err(|e| {
            Error::invalid(
                "contentType",
                match e {
                    MediaTypeError::Empty => "must not be empty",
                    MediaTypeError::TooLong => "must be at most 255 bytes",
                    MediaTypeError::Malformed => {
                        "must be one MIME type like 'application/pdf' (no lists, no empty parameters)"
                    }
                },
            )
        })
    }

    /// A type read back from storage or a database, which may predate strict parsing:
    /// anything that does not parse is served as opaque bytes.
    #[must_use]
    pub fn from_stored(raw: &str) -> Self {
        Self::parse(raw).unwrap_or_else(|_| Self::octet_stream())
    }

    /// `application/octet-stream`.
    #[must_use]
    pub fn octet_stream() -> Self {
        Self(MediaType::parse("application/octet-stream").unwrap_or_else(|_| unreachable!()))
    }

    /// The normalised media type, parameters included.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// `type/subtype` in lower case, without parameters.
    #[must_use]
    pub fn essence(&self) -> &str {
        self.0.essence()
    }
}

impl fmt::Display for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
    fn content_types_are_validated_and_normalised() {
        for good in [
            "application/pdf",
            "text/plain; charset=utf-8",
            "image/svg+xml",
        ] {
            assert_eq!(ContentType::parse(good).unwrap().as_str(), good);
        }
        assert_eq!(
            ContentType::parse("Application/PDF").unwrap().as_str(),
            "application/pdf"
        );
        assert_eq!(
            ContentType::from_stored("image/png;,text/html").as_str(),
            "application/octet-stream"
        );
        for bad in [
            "",
            "pdf",
            "text/",
            "/plain",
            "text/plain\r\nx: y",
            "a b/c",
            "text/plain;",
            "image/png;,text/html",
            "image/png; x=1, text/html",
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
