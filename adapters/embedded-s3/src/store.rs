//! s3s-fs behind a thin guard that makes it behave like R2 where filegate relies on it.

use filegate_core::key_locks::KeyLocks;
use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CompleteMultipartUploadInput,
    CompleteMultipartUploadOutput, CopyObjectInput, CopyObjectOutput, CreateBucketInput,
    CreateBucketOutput, CreateMultipartUploadInput, CreateMultipartUploadOutput, DeleteBucketInput,
    DeleteBucketOutput, DeleteObjectInput, DeleteObjectOutput, DeleteObjectsInput,
    DeleteObjectsOutput, GetBucketLocationInput, GetBucketLocationOutput, GetObjectInput,
    GetObjectOutput, HeadBucketInput, HeadBucketOutput, HeadObjectInput, HeadObjectOutput,
    ListBucketsInput, ListBucketsOutput, ListObjectsInput, ListObjectsOutput, ListObjectsV2Input,
    ListObjectsV2Output, ListPartsInput, ListPartsOutput, PutObjectInput, PutObjectOutput, Range,
    UploadPartCopyInput, UploadPartCopyOutput, UploadPartInput, UploadPartOutput,
};
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use std::path::{Component, Path, PathBuf};

/// Delegates to [`s3s_fs::FileSystem`], fixing what differs from S3:
/// - writes into a missing bucket fail with `NoSuchBucket` (s3s-fs creates the folder),
///   and so do reads (s3s-fs says `NoSuchKey`);
/// - a suffix range longer than the object returns the whole object (s3s-fs seeks before
///   the start and answers 500), and any suffix range on an empty object is
///   `InvalidRange` (s3s-fs underflows computing `Content-Range`);
/// - an `InvalidRange` answer carries `Content-Range: bytes */<size>`, as RFC 9110 asks, so
///   the client learns the size without another request;
/// - PUTs of one key run one at a time, so `If-None-Match: *` (which s3s-fs checks before
///   writing) is atomic: of two creates at once, one gets 412 `PreconditionFailed`.
pub(crate) struct GuardedFs {
    fs: s3s_fs::FileSystem,
    root: PathBuf,
    puts: KeyLocks,
}

impl GuardedFs {
    pub(crate) fn new(fs: s3s_fs::FileSystem, root: PathBuf) -> Self {
        Self {
            fs,
            root,
            puts: KeyLocks::default(),
        }
    }

    fn require_bucket(&self, bucket: &str) -> S3Result<()> {
        // s3s validated the bucket name (no `/`, no `..`) before any handler runs.
        if self.root.join(bucket).is_dir() {
            Ok(())
        } else {
            Err(s3_error!(NoSuchBucket))
        }
    }

    /// The stored size of an object, when its key maps plainly onto a file.
    async fn object_size(&self, bucket: &str, key: &str) -> Option<u64> {
        let plain = Path::new(key)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            return None;
        }
        let meta = tokio::fs::metadata(self.root.join(bucket).join(key))
            .await
            .ok()?;
        meta.is_file().then_some(meta.len())
    }
}

/// `InvalidRange`, with `Content-Range: bytes */<size>` when the size is known.
fn invalid_range(size: Option<u64>) -> S3Error {
    let mut err = s3_error!(InvalidRange);
    if let Some(value) =
        size.and_then(|n| http::HeaderValue::from_str(&format!("bytes */{n}")).ok())
    {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::CONTENT_RANGE, value);
        err.set_headers(headers);
    }
    err
}

#[async_trait::async_trait]
impl S3 for GuardedFs {
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        self.require_bucket(&req.input.bucket)?;
        let _key = self
            .puts
            .lock(&format!("{}/{}", req.input.bucket, req.input.key))
            .await;
        self.fs.put_object(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.require_bucket(&req.input.bucket)?;
        self.fs.create_multipart_upload(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.require_bucket(&req.input.bucket)?;
        let _key = self
            .puts
            .lock(&format!("{}/{}", req.input.bucket, req.input.key))
            .await;
        self.fs.complete_multipart_upload(req).await
    }

    async fn get_object(
        &self,
        mut req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.require_bucket(&req.input.bucket)?;
        if let Some(Range::Suffix { length }) = req.input.range
            && let Some(size) = self.object_size(&req.input.bucket, &req.input.key).await
        {
            if size == 0 {
                return Err(invalid_range(Some(0)));
            }
            if length > size {
                req.input.range = Some(Range::Int {
                    first: 0,
                    last: None,
                });
            }
        }
        let ranged = req.input.range.is_some();
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        match self.fs.get_object(req).await {
            Err(e) if ranged && *e.code() == S3ErrorCode::InvalidRange => {
                Err(invalid_range(self.object_size(&bucket, &key).await))
            }
            other => other,
        }
    }

    // Everything below is plain delegation.

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.fs.create_bucket(req).await
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        self.fs.copy_object(req).await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.fs.delete_bucket(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.fs.delete_object(req).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.fs.delete_objects(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.fs.get_bucket_location(req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.fs.head_bucket(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.fs.head_object(req).await
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.fs.list_buckets(req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.fs.list_objects(req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.fs.list_objects_v2(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.fs.upload_part(req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        self.fs.upload_part_copy(req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        self.fs.list_parts(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.fs.abort_multipart_upload(req).await
    }
}
