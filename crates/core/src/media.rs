//! Presign-only media use cases (`/api/v1/media/*`): sign an upload into the caller's
//! organization, sign a download of one of its files, list its files.

use crate::domain::{
    ByteSize, ContentType, Expiry, MediaId, ObjectKey, Principal, RoleHierarchy, key_safe_filename,
    validate_filename,
};
use crate::error::{Error, FieldError, Resource};
use crate::ports::{Clock, Media, MediaCursor, MediaPage, MediaStore};
use crate::storage::{GetOptions, PutOptions, SignedGet, Storage};
use std::collections::BTreeMap;
use std::sync::Arc;
use time::OffsetDateTime;

/// Limits and rules of the media routes.
#[derive(Debug, Clone)]
pub struct MediaPolicy {
    /// Largest declared size a client may sign an upload for.
    pub max_upload_size: ByteSize,
    /// Lifetime of upload URLs.
    pub upload_expiry: Expiry,
    /// Lowest organization role allowed to use the media routes.
    pub min_role: String,
    pub roles: RoleHierarchy,
}

impl Default for MediaPolicy {
    fn default() -> Self {
        Self {
            max_upload_size: ByteSize::mib(100),
            upload_expiry: Expiry::DEFAULT,
            min_role: "member".to_owned(),
            roles: RoleHierarchy::default(),
        }
    }
}

/// Input of [`MediaService::sign_upload`], as the client sent it.
#[derive(Debug, Clone, Default)]
pub struct SignUpload {
    pub filename: String,
    pub content_type: String,
    pub size: Option<u64>,
}

/// Input of [`MediaService::sign_download`], as the client sent it.
#[derive(Debug, Clone, Default)]
pub struct SignDownload {
    pub expires_in: Option<u64>,
    pub download_filename: Option<String>,
}

/// Result of [`MediaService::sign_upload`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedUpload {
    pub id: MediaId,
    pub upload_url: String,
    pub key: ObjectKey,
    pub headers: BTreeMap<String, String>,
    pub expires_at: OffsetDateTime,
}

pub const DEFAULT_LIST_LIMIT: u32 = 50;
pub const MAX_LIST_LIMIT: u32 = 200;

pub struct MediaService {
    storage: Storage,
    media: Arc<dyn MediaStore>,
    clock: Arc<dyn Clock>,
    policy: MediaPolicy,
}

impl std::fmt::Debug for MediaService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaService")
            .field("storage", &self.storage)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl MediaService {
    pub fn new(
        storage: Storage,
        media: Arc<dyn MediaStore>,
        clock: Arc<dyn Clock>,
        policy: MediaPolicy,
    ) -> Self {
        Self {
            storage,
            media,
            clock,
            policy,
        }
    }

    #[must_use]
    pub fn policy(&self) -> &MediaPolicy {
        &self.policy
    }

    /// The organization the caller acts in, once the access rule passed.
    fn org<'p>(&self, principal: &'p Principal) -> Result<&'p str, Error> {
        self.policy
            .roles
            .require_org_role(principal, &self.policy.min_role)?;
        principal.active_org_id.as_deref().ok_or(Error::AccessNoOrg)
    }

    /// Signs a PUT into `org/<org>/<uuid>-<filename>` and records the row.
    ///
    /// # Errors
    /// Access errors first, then [`Error::Validation`] for bad fields, [`Error::TooLarge`]
    /// when `size` is over the limit, then signer and store errors.
    pub async fn sign_upload(
        &self,
        principal: &Principal,
        input: SignUpload,
    ) -> Result<SignedUpload, Error> {
        let org = self.org(principal)?;
        let mut fields = Vec::new();
        if let Err(Error::Validation(mut f)) = validate_filename("filename", &input.filename) {
            fields.append(&mut f);
        }
        let content_type = match ContentType::parse(input.content_type) {
            Ok(ct) => Some(ct),
            Err(Error::Validation(mut f)) => {
                fields.append(&mut f);
                None
            }
            Err(e) => return Err(e),
        };
        let (Some(content_type), true) = (content_type, fields.is_empty()) else {
            return Err(Error::Validation(fields));
        };
        let max = self.policy.max_upload_size.bytes();
        if let Some(size) = input.size
            && size > max
        {
            return Err(Error::TooLarge { size, max });
        }

        let id = MediaId::generate();
        let raw_key = format!(
            "org/{org}/{}-{}",
            uuid::Uuid::new_v4(),
            key_safe_filename(&input.filename)
        );
        let key = ObjectKey::parse(raw_key).map_err(|_| {
            Error::Validation(vec![FieldError::new(
                "orgId",
                "the active organization id cannot be used in an object key",
            )])
        })?;
        let mut opts = PutOptions::default()
            .with_content_type(content_type.clone())
            .with_expires_in(self.policy.upload_expiry);
        if let Some(size) = input.size {
            opts = opts.with_content_length(size);
        }
        let signed = self.storage.sign_put_url(&key, opts).await?;
        let row = Media {
            id: id.clone(),
            bucket: self.storage.default_bucket().clone(),
            key: key.clone(),
            organization_id: org.to_owned(),
            uploader_id: principal.user_id.clone(),
            filename: input.filename,
            content_type,
            declared_size: input.size,
            created_at: self.clock.now(),
        };
        self.media.insert(&row).await?;
        Ok(SignedUpload {
            id,
            upload_url: signed.url,
            key,
            headers: signed.headers,
            expires_at: signed.expires_at,
        })
    }

    /// Signs a GET of one of the caller organization's files.
    ///
    /// # Errors
    /// Access errors; [`Error::NotFound`]`(Media)` for an unknown id or another
    /// organization's; [`Error::Validation`] for `expiresIn` or `downloadFilename`.
    pub async fn sign_download(
        &self,
        principal: &Principal,
        id: &str,
        input: SignDownload,
    ) -> Result<SignedGet, Error> {
        let org = self.org(principal)?;
        let id = MediaId::parse(id).map_err(|_| Error::NotFound(Resource::Media))?;
        let row = self
            .media
            .get(org, &id)
            .await?
            .ok_or(Error::NotFound(Resource::Media))?;
        let mut opts = GetOptions::default().with_bucket(row.bucket.clone());
        if let Some(secs) = input.expires_in {
            opts = opts.with_expires_in(Expiry::from_secs(secs)?);
        }
        if let Some(name) = input.download_filename {
            opts = opts.with_download_filename(name);
        }
        self.storage.sign_get_url(&row.key, opts).await
    }

    /// The caller organization's rows, newest first.
    ///
    /// # Errors
    /// Access errors; [`Error::Validation`] for `limit` outside 1..=200 or a foreign cursor.
    pub async fn list(
        &self,
        principal: &Principal,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<MediaPage, Error> {
        let org = self.org(principal)?;
        let limit = limit.unwrap_or(DEFAULT_LIST_LIMIT);
        if !(1..=MAX_LIST_LIMIT).contains(&limit) {
            return Err(Error::invalid("limit", "must be between 1 and 200"));
        }
        let after = cursor.map(MediaCursor::decode).transpose()?;
        self.media.list(org, limit, after).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::BucketName;
    use crate::ports::{MockClock, MockMediaStore, MockUrlSigner, PresignedUrl};
    use time::macros::datetime;

    fn member(org: &str) -> Principal {
        Principal {
            user_id: "user_1".into(),
            active_org_id: Some(org.into()),
            roles: vec!["member".into()],
            platform_role: None,
            method: Default::default(),
        }
    }

    fn signer() -> MockUrlSigner {
        let mut s = MockUrlSigner::new();
        s.expect_presign().returning(|r| {
            Ok(PresignedUrl {
                url: format!("https://s3.test/{}/{}?sig", r.bucket, r.key),
                headers: r.headers.clone(),
            })
        });
        s
    }

    fn service(signer: MockUrlSigner, media: MockMediaStore) -> MediaService {
        let mut clock = MockClock::new();
        clock
            .expect_now()
            .return_const(datetime!(2026-03-01 12:00 UTC));
        let clock = Arc::new(clock);
        let storage = Storage::new(
            Arc::new(signer),
            clock.clone(),
            BucketName::parse("filegate-media").unwrap(),
        );
        MediaService::new(storage, Arc::new(media), clock, MediaPolicy::default())
    }

    fn upload(filename: &str, ct: &str, size: Option<u64>) -> SignUpload {
        SignUpload {
            filename: filename.into(),
            content_type: ct.into(),
            size,
        }
    }

    #[tokio::test]
    async fn sign_upload_scopes_the_key_to_the_org_and_records_the_row() {
        // Arrange
        let mut media = MockMediaStore::new();
        media
            .expect_insert()
            .withf(|m| {
                m.organization_id == "org_a"
                    && m.uploader_id == "user_1"
                    && m.filename == "my report.pdf"
                    && m.key.as_str().starts_with("org/org_a/")
                    && m.key.as_str().ends_with("-my-report.pdf")
                    && m.declared_size == Some(1234)
                    && m.bucket.as_str() == "filegate-media"
            })
            .times(1)
            .returning(|_| Ok(()));
        let svc = service(signer(), media);
        // Act
        let out = svc
            .sign_upload(
                &member("org_a"),
                upload("my report.pdf", "application/pdf", Some(1234)),
            )
            .await
            .unwrap();
        // Assert
        assert!(
            out.upload_url
                .starts_with("https://s3.test/filegate-media/org/org_a/")
        );
        assert_eq!(out.headers.get("Content-Type").unwrap(), "application/pdf");
        assert_eq!(out.headers.get("Content-Length").unwrap(), "1234");
        assert_eq!(out.expires_at, datetime!(2026-03-01 12:10 UTC));
    }

    #[tokio::test]
    async fn sign_upload_without_org_is_refused_before_anything_is_written() {
        let mut media = MockMediaStore::new();
        media.expect_insert().never();
        let mut s = MockUrlSigner::new();
        s.expect_presign().never();
        let svc = service(s, media);
        let mut p = member("x");
        p.active_org_id = None;
        let err = svc
            .sign_upload(&p, upload("a.pdf", "application/pdf", None))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::AccessNoOrg));
    }

    #[tokio::test]
    async fn sign_upload_reports_every_bad_field_at_once() {
        let mut media = MockMediaStore::new();
        media.expect_insert().never();
        let svc = service(signer(), media);
        let err = svc
            .sign_upload(&member("o"), upload("../../etc/passwd", "not a type", None))
            .await
            .unwrap_err();
        let Error::Validation(fields) = err else {
            panic!("expected validation error")
        };
        let names: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(names, ["filename", "contentType"]);
    }

    #[tokio::test]
    async fn sign_upload_over_the_size_limit_is_too_large() {
        let mut media = MockMediaStore::new();
        media.expect_insert().never();
        let svc = service(signer(), media);
        let err = svc
            .sign_upload(
                &member("o"),
                upload(
                    "a.bin",
                    "application/octet-stream",
                    Some(100 * 1024 * 1024 + 1),
                ),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::TooLarge { max, .. } if max == 100 * 1024 * 1024));
    }

    #[tokio::test]
    async fn sign_upload_propagates_a_store_conflict() {
        let mut media = MockMediaStore::new();
        media
            .expect_insert()
            .returning(|_| Err(Error::Conflict { what: "media" }));
        let svc = service(signer(), media);
        let err = svc
            .sign_upload(&member("o"), upload("a.txt", "text/plain", None))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }));
    }

    fn row(org: &str) -> Media {
        Media {
            id: MediaId::generate(),
            bucket: BucketName::parse("filegate-media").unwrap(),
            key: ObjectKey::parse(format!("org/{org}/u-a.pdf")).unwrap(),
            organization_id: org.into(),
            uploader_id: "user_1".into(),
            filename: "a.pdf".into(),
            content_type: ContentType::parse("application/pdf").unwrap(),
            declared_size: None,
            created_at: datetime!(2026-03-01 11:00 UTC),
        }
    }

    #[tokio::test]
    async fn sign_download_looks_up_the_row_inside_the_callers_org() {
        let r = row("org_a");
        let id = r.id.clone();
        let mut media = MockMediaStore::new();
        let id2 = id.clone();
        media
            .expect_get()
            .withf(move |org, i| org == "org_a" && *i == id2)
            .times(1)
            .returning(move |_, _| Ok(Some(r.clone())));
        let svc = service(signer(), media);
        let got = svc
            .sign_download(
                &member("org_a"),
                id.as_str(),
                SignDownload {
                    expires_in: Some(30),
                    download_filename: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(got.key.as_str(), "org/org_a/u-a.pdf");
        assert_eq!(got.expires_at, datetime!(2026-03-01 12:00:30 UTC));
    }

    #[tokio::test]
    async fn sign_download_of_a_foreign_or_malformed_id_is_not_found() {
        let mut media = MockMediaStore::new();
        media.expect_get().returning(|_, _| Ok(None));
        let svc = service(signer(), media);
        for id in [MediaId::generate().to_string(), "garbage".to_owned()] {
            let err = svc
                .sign_download(&member("org_b"), &id, SignDownload::default())
                .await
                .unwrap_err();
            assert!(matches!(err, Error::NotFound(Resource::Media)));
        }
    }

    #[tokio::test]
    async fn sign_download_rejects_out_of_range_expiry() {
        let r = row("o");
        let id = r.id.to_string();
        let mut media = MockMediaStore::new();
        media
            .expect_get()
            .returning(move |_, _| Ok(Some(r.clone())));
        let svc = service(signer(), media);
        for secs in [0, 604_801] {
            let err = svc
                .sign_download(
                    &member("o"),
                    &id,
                    SignDownload {
                        expires_in: Some(secs),
                        download_filename: None,
                    },
                )
                .await
                .unwrap_err();
            assert!(matches!(err, Error::Validation(ref f) if f[0].field == "expiresIn"));
        }
    }

    #[tokio::test]
    async fn list_validates_limit_and_passes_the_cursor() {
        let mut media = MockMediaStore::new();
        media
            .expect_list()
            .withf(|org, limit, after| org == "o" && *limit == 10 && after.is_some())
            .times(1)
            .returning(|_, _, _| Ok(MediaPage::default()));
        let svc = service(signer(), media);
        let cursor = MediaCursor {
            created_at: datetime!(2026-01-01 0:00 UTC),
            id: MediaId::generate(),
        }
        .encode();
        svc.list(&member("o"), Some(10), Some(&cursor))
            .await
            .unwrap();
        assert!(matches!(
            svc.list(&member("o"), Some(0), None).await,
            Err(Error::Validation(_))
        ));
        assert!(matches!(
            svc.list(&member("o"), Some(201), None).await,
            Err(Error::Validation(_))
        ));
    }
}
