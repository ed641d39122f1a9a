//! Managed objects: paths, the key layout, and the `objects` row.

use super::ids::{BucketId, ObjectId};
use crate::domain::names::key_problem;
use crate::domain::{BucketName, ContentType, MAX_KEY_BYTES, ObjectKey};
use crate::error::Error;
use crate::ports::MultipartRef;
use std::fmt;
use time::OffsetDateTime;

/// A path inside a bucket, as the client names it (`<userId>/avatar-1.jpg`).
///
/// Rejected: empty, a leading `/`, empty segments (`a//b`, trailing `/`), `.` or `..`
/// segments, `\`, and control characters, so a path can never climb out of the
/// `<owner>/<bucket>/` prefix it is filed under. Nothing is rewritten.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectPath(String);

impl ObjectPath {
    /// Validates a path a client sent; nothing is rewritten.
    ///
    /// # Errors
    /// [`Error::Validation`] on field `path`.
    pub fn parse(raw: impl Into<String>) -> Result<Self, Error> {
        let raw = raw.into();
        let reason = Self::problem(&raw).or_else(|| {
            // So no listing shows a name that displays reordered.
            raw.chars()
                .any(crate::domain::is_bidi_control)
                .then_some("must not contain bidirectional control characters")
        });
        match reason {
            Some(r) => Err(Error::invalid("path", r)),
            None => Ok(Self(raw)),
        }
    }

    /// A path read back from a database: the rules of [`ObjectPath::parse`] that existed
    /// when any row could have been written, so older rows stay readable.
    ///
    /// # Errors
    /// [`Error::Validation`] on field `path`.
    pub fn parse_stored(raw: impl Into<String>) -> Result<Self, Error> {
        let raw = raw.into();
        match Self::problem(&raw) {
            Some(r) => Err(Error::invalid("path", r)),
            None => Ok(Self(raw)),
        }
    }

    fn problem(raw: &str) -> Option<&'static str> {
        key_problem(raw).or_else(|| raw.contains('\\').then_some("must not contain '\\'"))
    }

    /// The path as the client gave it.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whose segment a key is filed under: the first segment of `<owner>/<bucket>/<path>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner<'a> {
    /// Buckets with write scope `user`.
    User(&'a str),
    /// Every other bucket.
    Org(&'a str),
}

impl<'a> Owner<'a> {
    /// The id filed as the key's first segment.
    #[must_use]
    pub fn segment(self) -> &'a str {
        match self {
            Self::User(s) | Self::Org(s) => s,
        }
    }
}

/// `<owner>/<bucket>/<path>`.
///
/// # Errors
/// [`Error::Validation`] on `userId` / `orgId` when the id cannot be one key segment
/// (empty, `.`/`..`, a `/` or a control character), on `path` when the key would exceed
/// 1024 bytes.
pub fn object_key(
    owner: Owner<'_>,
    bucket: &BucketName,
    path: &ObjectPath,
) -> Result<ObjectKey, Error> {
    let seg = owner.segment();
    if seg.is_empty()
        || seg == "."
        || seg == ".."
        || seg.contains('/')
        || seg.chars().any(char::is_control)
    {
        let field = match owner {
            Owner::User(_) => "userId",
            Owner::Org(_) => "orgId",
        };
        return Err(Error::invalid(field, "cannot be used as a key segment"));
    }
    let raw = format!("{seg}/{bucket}/{path}");
    if raw.len() > MAX_KEY_BYTES {
        return Err(Error::invalid(
            "path",
            "is too long: the whole key must be at most 1024 bytes",
        ));
    }
    ObjectKey::parse(raw)
}

/// Whether a row's object may be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectStatus {
    /// Presigned or mid-upload: the object may or may not be in storage.
    Pending,
    /// The object is in storage with this row's size, etag and content type.
    Confirmed,
}

impl ObjectStatus {
    /// The status as FILES_DB stores it (`pending`, `confirmed`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
        }
    }

    /// Reads a status as FILES_DB stores it ([`ObjectStatus::as_str`]).
    ///
    /// # Errors
    /// [`Error::Validation`] on `status`.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        match raw {
            "pending" => Ok(Self::Pending),
            "confirmed" => Ok(Self::Confirmed),
            _ => Err(Error::invalid("status", "must be 'pending' or 'confirmed'")),
        }
    }
}

/// A row of the `objects` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRow {
    /// The row's id (`obj_…`).
    pub id: ObjectId,
    /// The managed bucket the object belongs to.
    pub bucket_id: BucketId,
    /// The uploader's active organization, if any.
    pub organization_id: Option<String>,
    /// The uploader's user id.
    pub owner_id: String,
    /// The key's first segment (user id or organization id); listing is per segment.
    pub segment: String,
    /// `<segment>/<bucket name>/<path>`; unique.
    pub key: ObjectKey,
    /// The path inside the bucket, as the client named it.
    pub path: ObjectPath,
    /// Declared while pending; once confirmed, the stored object's (storage's when it
    /// reports a valid one).
    pub content_type: ContentType,
    /// Declared while pending, real once confirmed.
    pub size: u64,
    /// The stored object's etag, set by confirmation (`None` while pending, or when storage
    /// reported none).
    pub etag: Option<String>,
    /// Pending until the object is checked in storage, then confirmed.
    pub status: ObjectStatus,
    /// When the row was inserted; a pending row's age counts from it.
    pub created_at: OffsetDateTime,
    /// When the row was inserted or last confirmed; fixes and purge compare it to skip a row
    /// that changed since it was read.
    pub updated_at: OffsetDateTime,
    /// Set while a delete is in progress; such rows are never served.
    pub deleted_at: Option<OffsetDateTime>,
    /// Set while the row is a multipart upload in progress (cleared by confirmation).
    pub multipart: Option<MultipartRef>,
}

impl ObjectRow {
    /// Confirmed and not being deleted.
    #[must_use]
    pub fn is_live(&self) -> bool {
        self.status == ObjectStatus::Confirmed && self.deleted_at.is_none()
    }
}

/// An object as the use cases return it: its row's public fields and its bucket's name
/// (the server's `ObjectView` is its wire form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The row's id (`obj_…`).
    pub id: ObjectId,
    /// The object's key in the physical bucket (`<segment>/<bucket name>/<path>`).
    pub key: ObjectKey,
    /// The bucket's name.
    pub bucket: String,
    /// The path inside the bucket.
    pub path: ObjectPath,
    /// Size in bytes, as the row records it.
    pub size: u64,
    /// The stored object's etag, when storage reported one.
    pub etag: Option<String>,
    /// The recorded content type.
    pub content_type: String,
    /// When the row was created.
    pub created_at: OffsetDateTime,
    /// When the object was last written or confirmed.
    pub updated_at: OffsetDateTime,
}

impl ObjectInfo {
    /// The view of `row`, in the bucket named `bucket`.
    #[must_use]
    pub fn new(row: &ObjectRow, bucket: &BucketName) -> Self {
        Self {
            id: row.id.clone(),
            key: row.key.clone(),
            bucket: bucket.as_str().to_owned(),
            path: row.path.clone(),
            size: row.size,
            etag: row.etag.clone(),
            content_type: row.content_type.as_str().to_owned(),
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bucket(s: &str) -> BucketName {
        BucketName::parse(s).unwrap()
    }

    #[test]
    fn paths_with_traversal_tricks_are_rejected() {
        for bad in [
            "",
            "/abs",
            "..",
            ".",
            "../x",
            "a/../b",
            "a/./b",
            "a//b",
            "a/",
            "a\\..\\b",
            "nul\0",
            "tab\tx",
            "x/..",
            "a\u{202E}gpj.exe",
        ] {
            let err = ObjectPath::parse(bad).unwrap_err();
            assert!(
                matches!(err, Error::Validation(ref f) if f[0].field == "path"),
                "{bad:?}"
            );
        }
        assert!(ObjectPath::parse("a".repeat(1025)).is_err());
        for good in ["u1/avatar-1.jpg", "a b/ü é/x..y", "...", ".hidden/a"] {
            assert_eq!(ObjectPath::parse(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn keys_are_owner_bucket_path() {
        let key = object_key(
            Owner::User("user_1"),
            &bucket("avatars"),
            &ObjectPath::parse("user_1/avatar-1.jpg").unwrap(),
        )
        .unwrap();
        assert_eq!(key.as_str(), "user_1/avatars/user_1/avatar-1.jpg");
        for seg in ["", ".", "..", "a/b", "a\nb"] {
            let err = object_key(
                Owner::Org(seg),
                &bucket("docs"),
                &ObjectPath::parse("x").unwrap(),
            )
            .unwrap_err();
            assert!(
                matches!(err, Error::Validation(ref f) if f[0].field == "orgId"),
                "{seg:?}"
            );
        }
        let long = ObjectPath::parse("p".repeat(1020)).unwrap();
        let err = object_key(Owner::Org("o"), &bucket("docs"), &long).unwrap_err();
        assert!(matches!(err, Error::Validation(ref f) if f[0].field == "path"));
    }

    proptest! {
        #[test]
        fn valid_inputs_always_make_a_key_under_the_owner_and_bucket(
            seg in "[a-zA-Z0-9_-][a-zA-Z0-9_.-]{0,30}",
            name in "[a-z0-9][a-z0-9-]{1,20}[a-z0-9]",
            parts in prop::collection::vec("[^/\\\\\\p{Cc}]{1,12}", 1..6),
        ) {
            prop_assume!(seg != "." && seg != "..");
            let raw = parts.join("/");
            let Ok(path) = ObjectPath::parse(raw.clone()) else {
                // Only '.' / '..' segments or bidirectional controls can make it invalid.
                prop_assert!(
                    parts.iter().any(|p| p == "." || p == "..")
                        || raw.chars().any(crate::domain::is_bidi_control)
                );
                return Ok(());
            };
            let b = bucket(&name);
            let key = object_key(Owner::Org(&seg), &b, &path).unwrap();
            // What ObjectKey::parse accepts, and nothing rewritten.
            prop_assert_eq!(ObjectKey::parse(key.as_str()).unwrap(), key.clone());
            let mut segments = key.as_str().split('/');
            prop_assert_eq!(segments.next(), Some(seg.as_str()));
            prop_assert_eq!(segments.next(), Some(name.as_str()));
            prop_assert_eq!(segments.collect::<Vec<_>>().join("/"), raw);
        }

        #[test]
        fn accepted_paths_can_never_climb_out(raw in "\\PC{0,30}|[a./\\\\]{0,12}|.{0,8}") {
            if let Ok(path) = ObjectPath::parse(raw.clone()) {
                prop_assert_eq!(path.as_str(), raw.as_str());
                prop_assert!(!raw.starts_with('/') && !raw.contains('\\'));
                prop_assert!(raw.split('/').all(|s| !s.is_empty() && s != "." && s != ".."));
                let key = object_key(Owner::User("u"), &bucket("abc"), &path).unwrap();
                prop_assert!(key.as_str().starts_with("u/abc/"));
                prop_assert!(ObjectKey::parse(key.as_str()).is_ok());
            }
        }
    }
}
