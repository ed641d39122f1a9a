//! Managed buckets: who may read and write them, and what they accept.

use super::ids::BucketId;
use crate::domain::{AccessRule, BucketName, ByteSize, ContentType};
use crate::error::Error;
use std::fmt;
use time::OffsetDateTime;

/// Who may read a bucket's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadScope {
    /// Anyone, without credentials (served under `<files_url>/public/<key>`).
    Public,
    /// Any authenticated caller.
    Authenticated,
    /// Members of the object's organization (and its uploader).
    Org,
    /// Only the uploader.
    User,
}

impl ReadScope {
    /// The scope as the API and FILES_DB write it (`public`, `authenticated`, `org`, `user`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Authenticated => "authenticated",
            Self::Org => "org",
            Self::User => "user",
        }
    }

    /// Reads a scope as the API writes it ([`ReadScope::as_str`]).
    ///
    /// # Errors
    /// [`Error::Validation`] on field `readScope`.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        match raw {
            "public" => Ok(Self::Public),
            "authenticated" => Ok(Self::Authenticated),
            "org" => Ok(Self::Org),
            "user" => Ok(Self::User),
            _ => Err(Error::invalid(
                "readScope",
                "must be one of 'public', 'authenticated', 'org', 'user'",
            )),
        }
    }
}

impl fmt::Display for ReadScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may write (upload, confirm, delete) a bucket's objects, and so whose segment the
/// keys live under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteScope {
    /// Any member of the organization; keys under the organization id.
    Org,
    /// Any authenticated user, each under their own user id; no organization needed.
    User,
    /// Organization members satisfying the rule (`admin+`, `admin,owner`, `authenticated`);
    /// keys under the organization id.
    Rule(AccessRule),
}

impl WriteScope {
    /// `org`, `user`, or an access rule. `org` and `user` are keywords here: a role of
    /// that name is written `user+` or inside a list.
    ///
    /// # Errors
    /// [`Error::Validation`] on field `writeScope` for anything else, and for `PUBLIC`
    /// (anonymous writes have no owner to file them under).
    pub fn parse(raw: &str) -> Result<Self, Error> {
        match raw.trim() {
            "org" => Ok(Self::Org),
            "user" => Ok(Self::User),
            other => match other.parse::<AccessRule>() {
                Ok(AccessRule::Public) => Err(Error::invalid(
                    "writeScope",
                    "PUBLIC is not allowed for writes",
                )),
                Ok(rule) => Ok(Self::Rule(rule)),
                Err(e) => Err(Error::invalid(
                    "writeScope",
                    format!("must be 'org', 'user' or an access rule: {}", e.reason),
                )),
            },
        }
    }

    /// Whether keys are filed under the uploader's user id rather than the organization's.
    #[must_use]
    pub fn is_per_user(&self) -> bool {
        matches!(self, Self::User)
    }
}

impl fmt::Display for WriteScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Org => f.write_str("org"),
            Self::User => f.write_str("user"),
            Self::Rule(rule) => write!(f, "{rule}"),
        }
    }
}

/// One entry of a MIME allow-list: `type/subtype`, `type/*` or `*/*`, in lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MimePattern {
    /// `*/*`: any type.
    Any,
    /// `image/*`: every subtype of this type.
    Type(String),
    /// `image/png`.
    Exact(String),
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'+-.^_`|~".contains(&b))
}

impl MimePattern {
    /// Case-insensitive; stored lower-cased. Parameters are not allowed in a pattern.
    ///
    /// # Errors
    /// [`Error::Validation`] on field `allowedMimeTypes`.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let lower = raw.trim().to_ascii_lowercase();
        let bad = || {
            Error::invalid(
                "allowedMimeTypes",
                format!("'{raw}' is not a MIME type or pattern like 'image/png' or 'image/*'"),
            )
        };
        let (t, s) = lower.split_once('/').ok_or_else(bad)?;
        match (t, s) {
            ("*", "*") => Ok(Self::Any),
            (t, "*") if is_token(t) => Ok(Self::Type(t.to_owned())),
            (t, s) if is_token(t) && is_token(s) => Ok(Self::Exact(lower.clone())),
            _ => Err(bad()),
        }
    }

    /// Whether `content_type` (any case, parameters ignored) matches.
    #[must_use]
    pub fn matches(&self, content_type: &ContentType) -> bool {
        let essence = content_type.essence();
        match self {
            Self::Any => true,
            Self::Type(t) => essence.split_once('/').is_some_and(|(ct, _)| ct == t),
            Self::Exact(e) => essence == e.as_str(),
        }
    }
}

impl fmt::Display for MimePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*/*"),
            Self::Type(t) => write!(f, "{t}/*"),
            Self::Exact(e) => f.write_str(e),
        }
    }
}

/// Whether `content_type` passes an allow-list; an empty list allows any type.
#[must_use]
pub fn mime_allowed(allowed: &[MimePattern], content_type: &ContentType) -> bool {
    allowed.is_empty() || allowed.iter().any(|p| p.matches(content_type))
}

/// A row of the `buckets` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// The bucket's id (`bkt_…`).
    pub id: BucketId,
    /// Unique within its organization, or among project-wide buckets.
    pub name: BucketName,
    /// `None`: a project-wide bucket, visible from every organization.
    pub organization_id: Option<String>,
    /// Who may read its objects.
    pub read_scope: ReadScope,
    /// Who may write its objects, and whose segment their keys are filed under.
    pub write_scope: WriteScope,
    /// `None`: the service-wide maximum.
    pub file_size_limit: Option<ByteSize>,
    /// Empty: any type.
    pub allowed_mime_types: Vec<MimePattern>,
    /// When the bucket was created.
    pub created_at: OffsetDateTime,
    /// When its settings last changed.
    pub updated_at: OffsetDateTime,
}

impl Bucket {
    /// Whether the bucket belongs to no organization (it is visible from every one).
    #[must_use]
    pub fn is_project_wide(&self) -> bool {
        self.organization_id.is_none()
    }

    /// Whether anyone may read its objects without credentials ([`ReadScope::Public`]).
    #[must_use]
    pub fn is_public(&self) -> bool {
        self.read_scope == ReadScope::Public
    }

    /// The size limit in force: the bucket's own, capped by the service-wide `ceiling`.
    #[must_use]
    pub fn effective_size_limit(&self, ceiling: ByteSize) -> ByteSize {
        self.file_size_limit.map_or(ceiling, |l| l.min(ceiling))
    }

    /// The allow-list as written in the API (`image/*`, …).
    #[must_use]
    pub fn allowed_mime_strings(&self) -> Vec<String> {
        self.allowed_mime_types
            .iter()
            .map(ToString::to_string)
            .collect()
    }
}

/// A project-wide bucket created when managed mode starts (Quickback's Account UI uploads
/// avatars and organization logos into these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultBucket {
    /// The bucket's name.
    pub name: &'static str,
    /// Who may read its objects.
    pub read_scope: ReadScope,
    /// Its write scope, as [`WriteScope::parse`] reads it (`user`, `admin+`).
    pub write_scope: &'static str,
    /// Its own size limit.
    pub file_size_limit: ByteSize,
    /// Its MIME allow-list, as [`MimePattern::parse`] reads each entry.
    pub allowed_mime_types: &'static [&'static str],
}

/// `avatars` (public read, per-user write) and `org-logos` (public read, `admin+` write),
/// both 5 MiB of `image/*`.
pub const DEFAULT_BUCKETS: &[DefaultBucket] = &[
    DefaultBucket {
        name: "avatars",
        read_scope: ReadScope::Public,
        write_scope: "user",
        file_size_limit: ByteSize(5 * ByteSize::MIB),
        allowed_mime_types: &["image/*"],
    },
    DefaultBucket {
        name: "org-logos",
        read_scope: ReadScope::Public,
        write_scope: "admin+",
        file_size_limit: ByteSize(5 * ByteSize::MIB),
        allowed_mime_types: &["image/*"],
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ct(s: &str) -> ContentType {
        ContentType::parse(s).unwrap()
    }

    #[test]
    fn scopes_round_trip_their_text() {
        for s in ["public", "authenticated", "org", "user"] {
            assert_eq!(ReadScope::parse(s).unwrap().as_str(), s);
        }
        assert!(ReadScope::parse("Public").is_err());
        for s in ["org", "user", "admin+", "admin,owner", "authenticated"] {
            assert_eq!(WriteScope::parse(s).unwrap().to_string(), s);
        }
        assert!(WriteScope::parse("user").unwrap().is_per_user());
        assert!(!WriteScope::parse("admin+").unwrap().is_per_user());
        for bad in ["PUBLIC", "*", "", "admin++"] {
            let err = WriteScope::parse(bad).unwrap_err();
            assert!(
                matches!(err, Error::Validation(ref f) if f[0].field == "writeScope"),
                "{bad}"
            );
        }
    }

    #[test]
    fn patterns_parse_case_insensitively_and_reject_parameters() {
        assert_eq!(
            MimePattern::parse("Image/*").unwrap(),
            MimePattern::Type("image".into())
        );
        assert_eq!(MimePattern::parse("*/*").unwrap(), MimePattern::Any);
        assert_eq!(
            MimePattern::parse("Application/PDF").unwrap().to_string(),
            "application/pdf"
        );
        for bad in [
            "image",
            "*/png",
            "image/",
            "text/plain; charset=utf-8",
            "a b/c",
            "",
        ] {
            assert!(MimePattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn empty_allow_list_allows_anything() {
        assert!(mime_allowed(&[], &ct("application/x-anything")));
        let images = [MimePattern::parse("image/*").unwrap()];
        assert!(mime_allowed(&images, &ct("image/jpeg")));
        assert!(!mime_allowed(&images, &ct("text/html")));
    }

    #[test]
    fn effective_limit_is_capped_by_the_ceiling() {
        let mut b = Bucket {
            id: BucketId::generate(),
            name: BucketName::parse("docs").unwrap(),
            organization_id: None,
            read_scope: ReadScope::Org,
            write_scope: WriteScope::Org,
            file_size_limit: None,
            allowed_mime_types: vec![],
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        };
        assert_eq!(b.effective_size_limit(ByteSize(100)), ByteSize(100));
        b.file_size_limit = Some(ByteSize(10));
        assert_eq!(b.effective_size_limit(ByteSize(100)), ByteSize(10));
        b.file_size_limit = Some(ByteSize(1000));
        assert_eq!(b.effective_size_limit(ByteSize(100)), ByteSize(100));
    }

    #[test]
    fn default_buckets_parse() {
        for d in DEFAULT_BUCKETS {
            BucketName::parse(d.name).unwrap();
            WriteScope::parse(d.write_scope).unwrap();
            for m in d.allowed_mime_types {
                MimePattern::parse(m).unwrap();
            }
        }
    }

    const TOKEN: &str = "[a-zA-Z0-9][a-zA-Z0-9+.-]{0,10}";

    proptest! {
        #[test]
        fn type_wildcard_matches_exactly_its_type(
            t in TOKEN, sub in TOKEN, other in TOKEN, params in "(; [a-z]{1,5}=[a-z0-9]{1,5}){0,2}",
        ) {
            let pattern = MimePattern::parse(&format!("{t}/*")).unwrap();
            // Any case, with or without parameters.
            let upper = ct(&format!("{}/{}{}", t.to_ascii_uppercase(), sub, params));
            let plain = ct(&format!("{t}/{sub}{params}"));
            // A longer or different type never matches (`image/*` vs `imagex/png`).
            let longer = ct(&format!("{t}x/{sub}"));
            let foreign = ct(&format!("{other}/{sub}"));
            prop_assert!(pattern.matches(&upper));
            prop_assert!(pattern.matches(&plain));
            prop_assert!(!pattern.matches(&longer));
            prop_assert_eq!(pattern.matches(&foreign), other.eq_ignore_ascii_case(&t));
        }

        #[test]
        fn exact_patterns_match_the_essence_only(
            t in TOKEN, sub in TOKEN, other in TOKEN, params in "(; [a-z]{1,5}=[a-z0-9]{1,5}){0,2}",
        ) {
            let pattern = MimePattern::parse(&format!("{t}/{sub}")).unwrap();
            let upper = ct(&format!("{}/{}{}", t.to_ascii_uppercase(), sub.to_ascii_uppercase(), params));
            let longer = ct(&format!("{t}/{sub}x"));
            let foreign = ct(&format!("{t}/{other}"));
            prop_assert!(pattern.matches(&upper));
            prop_assert!(!pattern.matches(&longer));
            prop_assert_eq!(pattern.matches(&foreign), other.eq_ignore_ascii_case(&sub));
        }
    }
}
