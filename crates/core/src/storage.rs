//! The signer facade, mirroring Quickback's `ctx.storage`: `sign_put_url` and
//! `sign_get_url` over whatever [`UrlSigner`] the app wired in.

use crate::domain::{
    BucketName, ContentType, Expiry, ObjectKey, content_disposition_attachment, validate_filename,
};
use crate::error::Error;
use crate::ports::{Clock, HttpMethod, PresignRequest, UrlSigner};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use time::OffsetDateTime;

/// Options of [`Storage::sign_put_url`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PutOptions {
    /// Signed as `Content-Type`; the client must send exactly this value.
    pub content_type: Option<ContentType>,
    /// How long the URL stays valid; the configured default when `None`.
    pub expires_in: Option<Expiry>,
    /// Defaults to the configured bucket.
    pub bucket: Option<BucketName>,
    /// Signed as `Content-Length`; storage rejects a body of any other size.
    pub content_length: Option<u64>,
    /// Signs `If-None-Match: *`: storage refuses the PUT (412) when the key exists, so
    /// the URL can create an object but never replace one.
    pub create_only: bool,
}

impl PutOptions {
    /// Signs this exact `Content-Type`.
    #[must_use]
    pub fn with_content_type(mut self, ct: ContentType) -> Self {
        self.content_type = Some(ct);
        self
    }
    /// Sets how long the URL stays valid.
    #[must_use]
    pub fn with_expires_in(mut self, e: Expiry) -> Self {
        self.expires_in = Some(e);
        self
    }
    /// Signs for `b` instead of the default bucket.
    #[must_use]
    pub fn with_bucket(mut self, b: BucketName) -> Self {
        self.bucket = Some(b);
        self
    }
    /// Signs this exact `Content-Length`.
    #[must_use]
    pub fn with_content_length(mut self, n: u64) -> Self {
        self.content_length = Some(n);
        self
    }
    /// Makes the URL create-only (see [`PutOptions::create_only`]).
    #[must_use]
    pub fn with_create_only(mut self) -> Self {
        self.create_only = true;
        self
    }
}

/// Options of [`Storage::sign_get_url`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GetOptions {
    /// How long the URL stays valid; the configured default when `None`.
    pub expires_in: Option<Expiry>,
    /// When set, storage answers with `Content-Disposition: attachment` and this name.
    pub download_filename: Option<String>,
    /// Defaults to the configured bucket.
    pub bucket: Option<BucketName>,
}

impl GetOptions {
    /// Sets how long the URL stays valid.
    #[must_use]
    pub fn with_expires_in(mut self, e: Expiry) -> Self {
        self.expires_in = Some(e);
        self
    }
    /// Asks storage to answer `Content-Disposition: attachment` with this name.
    #[must_use]
    pub fn with_download_filename(mut self, name: impl Into<String>) -> Self {
        self.download_filename = Some(name.into());
        self
    }
    /// Signs for `b` instead of the default bucket.
    #[must_use]
    pub fn with_bucket(mut self, b: BucketName) -> Self {
        self.bucket = Some(b);
        self
    }
}

/// A presigned upload: PUT `url` with exactly `headers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedPut {
    /// The presigned URL.
    pub url: String,
    /// Always `PUT`.
    pub method: &'static str,
    /// Headers the client must send exactly as given (they are signed).
    pub headers: BTreeMap<String, String>,
    /// The object key the URL writes.
    pub key: ObjectKey,
    /// When the URL stops working.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// One part of [`Storage::sign_part_url`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartToSign<'a> {
    /// Storage's upload id.
    pub upload_id: &'a str,
    /// 1..=10 000.
    pub part_number: u32,
    /// The part's exact size, signed as `Content-Length`.
    pub content_length: u64,
}

/// A presigned `UploadPart`: PUT the part's bytes to `url` with exactly `headers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPart {
    /// The part number the URL uploads.
    pub part_number: u32,
    /// The presigned URL.
    pub url: String,
    /// Headers the client must send exactly as given (`Content-Length`).
    pub headers: BTreeMap<String, String>,
    /// When the URL stops working.
    pub expires_at: OffsetDateTime,
}

/// A presigned download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedGet {
    /// The presigned URL.
    pub url: String,
    /// Always `GET`.
    pub method: &'static str,
    /// The object key the URL reads.
    pub key: ObjectKey,
    /// When the URL stops working.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// `ctx.storage`: signs URLs for one default bucket.
#[derive(Clone)]
pub struct Storage {
    signer: Arc<dyn UrlSigner>,
    clock: Arc<dyn Clock>,
    default_bucket: BucketName,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("default_bucket", &self.default_bucket)
            .finish_non_exhaustive()
    }
}

impl Storage {
    /// A signer facade over `signer`, reading time from `clock`, for `default_bucket`.
    pub fn new(
        signer: Arc<dyn UrlSigner>,
        clock: Arc<dyn Clock>,
        default_bucket: BucketName,
    ) -> Self {
        Self {
            signer,
            clock,
            default_bucket,
        }
    }

    /// The bucket used when a call names none.
    #[must_use]
    pub fn default_bucket(&self) -> &BucketName {
        &self.default_bucket
    }

    /// SigV4 dates have whole seconds; expiry counts from the truncated instant.
    fn signing_time(&self) -> OffsetDateTime {
        let now = self.clock.now();
        now.replace_nanosecond(0).unwrap_or(now)
    }

    /// Presigns a PUT of `key`.
    ///
    /// # Errors
    /// Whatever the signer reports ([`Error::Validation`], [`Error::Internal`]).
    pub async fn sign_put_url(
        &self,
        key: &ObjectKey,
        opts: PutOptions,
    ) -> Result<SignedPut, Error> {
        let mut headers = BTreeMap::new();
        if let Some(ct) = &opts.content_type {
            headers.insert("Content-Type".to_owned(), ct.as_str().to_owned());
        }
        if let Some(n) = opts.content_length {
            headers.insert("Content-Length".to_owned(), n.to_string());
        }
        if opts.create_only {
            headers.insert("If-None-Match".to_owned(), "*".to_owned());
        }
        let expires_in = opts.expires_in.unwrap_or_default();
        let signed_at = self.signing_time();
        let request = PresignRequest {
            method: HttpMethod::Put,
            bucket: opts.bucket.unwrap_or_else(|| self.default_bucket.clone()),
            key: key.clone(),
            expires_in,
            signed_at,
            headers,
            query: BTreeMap::new(),
        };
        let signed = self.signer.presign(&request).await?;
        Ok(SignedPut {
            url: signed.url,
            method: "PUT",
            headers: signed.headers,
            key: request.key,
            expires_at: signed_at + expires_in.duration(),
        })
    }

    /// Presigns one `UploadPart` of a multipart upload: `PUT <key>?partNumber=N&uploadId=…`
    /// with its exact `Content-Length` signed, so storage refuses a part of another size.
    ///
    /// # Errors
    /// Whatever the signer reports ([`Error::Validation`], [`Error::Internal`]).
    pub async fn sign_part_url(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        part: &PartToSign<'_>,
        expires_in: Expiry,
    ) -> Result<SignedPart, Error> {
        let mut headers = BTreeMap::new();
        headers.insert("Content-Length".to_owned(), part.content_length.to_string());
        let mut query = BTreeMap::new();
        query.insert("partNumber".to_owned(), part.part_number.to_string());
        query.insert("uploadId".to_owned(), part.upload_id.to_owned());
        let signed_at = self.signing_time();
        let request = PresignRequest {
            method: HttpMethod::Put,
            bucket: bucket.clone(),
            key: key.clone(),
            expires_in,
            signed_at,
            headers,
            query,
        };
        let signed = self.signer.presign(&request).await?;
        Ok(SignedPart {
            part_number: part.part_number,
            url: signed.url,
            headers: signed.headers,
            expires_at: signed_at + expires_in.duration(),
        })
    }

    /// Presigns a GET of `key`.
    ///
    /// # Errors
    /// [`Error::Validation`] on `downloadFilename` when it is not a plain file name;
    /// otherwise whatever the signer reports.
    pub async fn sign_get_url(
        &self,
        key: &ObjectKey,
        opts: GetOptions,
    ) -> Result<SignedGet, Error> {
        let mut query = BTreeMap::new();
        if let Some(name) = &opts.download_filename {
            validate_filename("downloadFilename", name)?;
            query.insert(
                "response-content-disposition".to_owned(),
                content_disposition_attachment(name),
            );
        }
        let expires_in = opts.expires_in.unwrap_or_default();
        let signed_at = self.signing_time();
        let request = PresignRequest {
            method: HttpMethod::Get,
            bucket: opts.bucket.unwrap_or_else(|| self.default_bucket.clone()),
            key: key.clone(),
            expires_in,
            signed_at,
            headers: BTreeMap::new(),
            query,
        };
        let signed = self.signer.presign(&request).await?;
        Ok(SignedGet {
            url: signed.url,
            method: "GET",
            key: request.key,
            expires_at: signed_at + expires_in.duration(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{MockClock, MockUrlSigner, PresignedUrl};
    use time::macros::datetime;

    fn clock_at(t: OffsetDateTime) -> Arc<MockClock> {
        let mut c = MockClock::new();
        c.expect_now().return_const(t);
        Arc::new(c)
    }

    fn echo_signer() -> MockUrlSigner {
        let mut s = MockUrlSigner::new();
        s.expect_presign().returning(|r| {
            Ok(PresignedUrl {
                url: format!("https://s3.test/{}/{}", r.bucket, r.key),
                headers: r.headers.clone(),
            })
        });
        s
    }

    fn key(k: &str) -> ObjectKey {
        ObjectKey::parse(k).unwrap()
    }

    #[tokio::test]
    async fn put_signs_content_type_and_length_and_returns_them_to_replay() {
        // Arrange
        let mut signer = MockUrlSigner::new();
        signer
            .expect_presign()
            .withf(|r| {
                r.method == HttpMethod::Put
                    && r.bucket.as_str() == "media-bucket"
                    && r.expires_in.secs() == 600
                    && r.headers.get("Content-Type").map(String::as_str) == Some("application/pdf")
                    && r.headers.get("Content-Length").map(String::as_str) == Some("42")
                    && r.query.is_empty()
            })
            .times(1)
            .returning(|r| {
                Ok(PresignedUrl {
                    url: "https://signed".into(),
                    headers: r.headers.clone(),
                })
            });
        let storage = Storage::new(
            Arc::new(signer),
            clock_at(datetime!(2026-01-02 03:04:05.678 UTC)),
            BucketName::parse("media-bucket").unwrap(),
        );
        // Act
        let put = storage
            .sign_put_url(
                &key("org/o/a.pdf"),
                PutOptions::default()
                    .with_content_type(ContentType::parse("application/pdf").unwrap())
                    .with_content_length(42),
            )
            .await
            .unwrap();
        // Assert
        assert_eq!(put.method, "PUT");
        assert_eq!(put.url, "https://signed");
        assert_eq!(put.headers.len(), 2);
        assert_eq!(put.expires_at, datetime!(2026-01-02 03:14:05 UTC));
        let json = serde_json::to_value(&put).unwrap();
        assert_eq!(json["expiresAt"], "2026-01-02T03:14:05Z");
        assert_eq!(json["key"], "org/o/a.pdf");
    }

    #[tokio::test]
    async fn get_with_download_filename_signs_a_content_disposition_override() {
        let mut signer = MockUrlSigner::new();
        signer
            .expect_presign()
            .withf(|r| {
                r.method == HttpMethod::Get
                    && r.bucket.as_str() == "other-bucket"
                    && r.expires_in.secs() == 60
                    && r.query.get("response-content-disposition").map(String::as_str)
                        == Some("attachment; filename=\"r_sum_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf")
            })
            .times(1)
            .returning(|_| Ok(PresignedUrl { url: "https://g".into(), headers: BTreeMap::new() }));
        let storage = Storage::new(
            Arc::new(signer),
            clock_at(datetime!(2026-01-01 0:00 UTC)),
            BucketName::parse("media-bucket").unwrap(),
        );
        let get = storage
            .sign_get_url(
                &key("k"),
                GetOptions::default()
                    .with_expires_in(Expiry::from_secs(60).unwrap())
                    .with_download_filename("résumé.pdf")
                    .with_bucket(BucketName::parse("other-bucket").unwrap()),
            )
            .await
            .unwrap();
        assert_eq!(get.method, "GET");
        assert_eq!(get.expires_at, datetime!(2026-01-01 0:01 UTC));
    }

    #[tokio::test]
    async fn get_rejects_a_path_as_download_filename_without_signing() {
        let mut signer = MockUrlSigner::new();
        signer.expect_presign().never();
        let storage = Storage::new(
            Arc::new(signer),
            clock_at(datetime!(2026-01-01 0:00 UTC)),
            BucketName::parse("bkt").unwrap(),
        );
        let err = storage
            .sign_get_url(
                &key("k"),
                GetOptions::default().with_download_filename("../x"),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Validation(f) if f[0].field == "downloadFilename"));
    }

    #[tokio::test]
    async fn a_create_only_put_signs_if_none_match_and_returns_it_to_replay() {
        let mut signer = MockUrlSigner::new();
        signer
            .expect_presign()
            .withf(|r| r.headers.get("If-None-Match").map(String::as_str) == Some("*"))
            .times(1)
            .returning(|r| {
                Ok(PresignedUrl {
                    url: "https://signed".into(),
                    headers: r.headers.clone(),
                })
            });
        let storage = Storage::new(
            Arc::new(signer),
            clock_at(datetime!(2026-01-01 0:00 UTC)),
            BucketName::parse("bkt").unwrap(),
        );
        let put = storage
            .sign_put_url(&key("a/b"), PutOptions::default().with_create_only())
            .await
            .unwrap();
        assert_eq!(
            put.headers.get("If-None-Match").map(String::as_str),
            Some("*")
        );
    }

    #[tokio::test]
    async fn a_part_signs_its_number_upload_id_and_exact_length() {
        let mut signer = MockUrlSigner::new();
        signer
            .expect_presign()
            .withf(|r| {
                r.method == HttpMethod::Put
                    && r.bucket.as_str() == "bkt"
                    && r.headers.get("Content-Length").map(String::as_str) == Some("5242880")
                    && r.headers.len() == 1
                    && r.query.get("partNumber").map(String::as_str) == Some("3")
                    && r.query.get("uploadId").map(String::as_str) == Some("up-1")
            })
            .times(1)
            .returning(|r| {
                Ok(PresignedUrl {
                    url: "https://part".into(),
                    headers: r.headers.clone(),
                })
            });
        let storage = Storage::new(
            Arc::new(signer),
            clock_at(datetime!(2026-01-01 0:00 UTC)),
            BucketName::parse("other").unwrap(),
        );
        let part = storage
            .sign_part_url(
                &BucketName::parse("bkt").unwrap(),
                &key("a/b"),
                &PartToSign {
                    upload_id: "up-1",
                    part_number: 3,
                    content_length: 5_242_880,
                },
                Expiry::from_secs(60).unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(part.part_number, 3);
        assert_eq!(part.url, "https://part");
        assert_eq!(part.expires_at, datetime!(2026-01-01 0:01 UTC));
    }

    #[tokio::test]
    async fn put_without_options_uses_the_default_bucket_and_expiry() {
        let storage = Storage::new(
            Arc::new(echo_signer()),
            clock_at(datetime!(2026-01-01 0:00 UTC)),
            BucketName::parse("dflt").unwrap(),
        );
        let put = storage
            .sign_put_url(&key("a/b"), PutOptions::default())
            .await
            .unwrap();
        assert_eq!(put.url, "https://s3.test/dflt/a/b");
        assert!(put.headers.is_empty());
        assert_eq!(put.expires_at, datetime!(2026-01-01 0:10 UTC));
    }
}
