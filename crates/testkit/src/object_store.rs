//! [`InMemoryObjectStore`], a fake [`ObjectStore`], and [`object_store_contract`], the suite
//! every `ObjectStore` adapter (and the fake) must pass.

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use filegate_core::Error;
use filegate_core::domain::{BucketName, ContentType, ObjectKey};
use filegate_core::error::Resource;
use filegate_core::ports::{
    ByteRange, ByteStream, CompletedPart, GetObject, ListPage, ObjectMeta, ObjectStore,
    ObjectSummary, PendingUpload, PutObject, StoredPart,
};
use futures::{StreamExt, TryStreamExt};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use time::OffsetDateTime;

/// Body chunks handed out by the fake's GETs, so consumers see more than one chunk.
const CHUNK: usize = 4;

#[derive(Debug, Clone)]
struct Stored {
    bytes: Bytes,
    meta: ObjectMeta,
}

type Buckets = HashMap<String, BTreeMap<String, Stored>>;

/// An unfinished multipart upload of the fake.
#[derive(Debug, Clone)]
struct Upload {
    bucket: String,
    key: String,
    content_type: Option<String>,
    initiated: OffsetDateTime,
    parts: BTreeMap<u32, Stored>,
}

/// An in-memory [`ObjectStore`] with S3's semantics: ranged GETs clamp like S3, keys list
/// in byte order, a PUT whose stream length differs from its declared length stores
/// nothing. ETags are a hex FNV-1a hash of the content (stable, not MD5). Clones share
/// the same storage.
#[derive(Debug, Clone, Default)]
pub struct InMemoryObjectStore {
    buckets: Arc<Mutex<Buckets>>,
    uploads: Arc<Mutex<BTreeMap<String, Upload>>>,
}

impl InMemoryObjectStore {
    /// A store with no buckets.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding one empty bucket.
    #[must_use]
    pub fn with_bucket(bucket: &BucketName) -> Self {
        let store = Self::new();
        store.create_bucket(bucket);
        store
    }

    /// Adds an empty bucket (no-op when it exists).
    pub fn create_bucket(&self, bucket: &BucketName) {
        self.lock().entry(bucket.as_str().to_owned()).or_default();
    }

    /// The stored bytes of an object, for assertions.
    #[must_use]
    pub fn object_bytes(&self, bucket: &BucketName, key: &str) -> Option<Bytes> {
        self.lock()
            .get(bucket.as_str())
            .and_then(|objects| objects.get(key))
            .map(|o| o.bytes.clone())
    }

    /// Makes an unfinished upload look created at `at` (for the purge of old uploads).
    pub fn set_upload_initiated(&self, upload_id: &str, at: OffsetDateTime) {
        if let Some(u) = self.uploads().get_mut(upload_id) {
            u.initiated = at;
        }
    }

    fn uploads(&self) -> MutexGuard<'_, BTreeMap<String, Upload>> {
        self.uploads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The upload, when it is `bucket`/`key`'s.
    fn upload(&self, bucket: &BucketName, key: &ObjectKey, id: &str) -> Result<Upload, Error> {
        self.uploads()
            .get(id)
            .filter(|u| u.bucket == bucket.as_str() && u.key == key.as_str())
            .cloned()
            .ok_or(Error::NotFound(Resource::Upload))
    }

    fn lock(&self) -> MutexGuard<'_, Buckets> {
        self.buckets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn object(&self, bucket: &BucketName, key: &ObjectKey) -> Result<Stored, Error> {
        self.lock()
            .get(bucket.as_str())
            .ok_or(Error::NotFound(Resource::Bucket))?
            .get(key.as_str())
            .cloned()
            .ok_or(Error::NotFound(Resource::Object))
    }

    fn require_bucket(&self, bucket: &BucketName) -> Result<(), Error> {
        if self.lock().contains_key(bucket.as_str()) {
            Ok(())
        } else {
            Err(Error::NotFound(Resource::Bucket))
        }
    }
}

/// A PUT's body, refused unless it is exactly its declared length.
async fn read_exact(object: PutObject) -> Result<Bytes, Error> {
    let mut body = object.body;
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.try_next().await? {
        buf.extend_from_slice(&chunk);
        if buf.len() as u64 > object.content_length {
            return Err(Error::invalid(
                "body",
                "stream is longer than the declared content length",
            ));
        }
    }
    if (buf.len() as u64) != object.content_length {
        return Err(Error::invalid(
            "body",
            "stream is shorter than the declared content length",
        ));
    }
    Ok(buf.freeze())
}

fn fnv1a_hex(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// S3's rules: the last byte is clamped to the end, a suffix longer than the object
/// means all of it, anything starting at or past the end (or on an empty object) fails.
fn resolve_range(range: ByteRange, size: u64) -> Result<(u64, u64), Error> {
    let unsatisfiable = || Error::RangeNotSatisfiable { size };
    if size == 0 {
        return Err(unsatisfiable());
    }
    match range {
        ByteRange::FromTo(first, last) if first <= last && first < size => {
            Ok((first, last.min(size - 1)))
        }
        ByteRange::From(first) if first < size => Ok((first, size - 1)),
        ByteRange::Suffix(n) if n > 0 => Ok((size - n.min(size), size - 1)),
        _ => Err(unsatisfiable()),
    }
}

#[expect(clippy::needless_pass_by_value, reason = "`Bytes` is a cheap handle")]
fn chunked(bytes: Bytes) -> ByteStream {
    let chunks: Vec<Result<Bytes, Error>> = bytes
        .chunks(CHUNK)
        .map(|c| Ok(bytes.slice_ref(c)))
        .collect();
    futures::stream::iter(chunks).boxed()
}

#[async_trait]
impl ObjectStore for InMemoryObjectStore {
    async fn head(&self, bucket: &BucketName, key: &ObjectKey) -> Result<ObjectMeta, Error> {
        Ok(self.object(bucket, key)?.meta)
    }

    async fn get(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        range: Option<ByteRange>,
    ) -> Result<GetObject, Error> {
        let stored = self.object(bucket, key)?;
        let (body, range) = match range {
            None => (stored.bytes, None),
            Some(r) => {
                let (first, last) = resolve_range(r, stored.meta.size)?;
                // In range of a Bytes we hold, so these fit usize.
                let (a, b) = (
                    usize::try_from(first).unwrap_or(usize::MAX),
                    usize::try_from(last).unwrap_or(usize::MAX),
                );
                (stored.bytes.slice(a..=b), Some((first, last)))
            }
        };
        Ok(GetObject {
            meta: stored.meta,
            range,
            body: chunked(body),
        })
    }

    async fn put(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        object: PutObject,
    ) -> Result<ObjectMeta, Error> {
        self.require_bucket(bucket)?;
        let content_type = object.content_type.clone();
        let bytes = read_exact(object).await?;
        let meta = ObjectMeta {
            size: bytes.len() as u64,
            etag: Some(fnv1a_hex(&bytes)),
            content_type: content_type.map(|c| c.as_str().to_owned()),
            last_modified: Some(OffsetDateTime::now_utc()),
        };
        self.lock()
            .get_mut(bucket.as_str())
            .ok_or(Error::NotFound(Resource::Bucket))?
            .insert(
                key.as_str().to_owned(),
                Stored {
                    bytes,
                    meta: meta.clone(),
                },
            );
        Ok(meta)
    }

    async fn delete(&self, bucket: &BucketName, key: &ObjectKey) -> Result<(), Error> {
        self.lock()
            .get_mut(bucket.as_str())
            .ok_or(Error::NotFound(Resource::Bucket))?
            .remove(key.as_str());
        Ok(())
    }

    async fn list(
        &self,
        bucket: &BucketName,
        prefix: Option<String>,
        continuation: Option<String>,
        max_keys: u32,
    ) -> Result<ListPage, Error> {
        let max = usize::try_from(max_keys.clamp(1, 1000)).unwrap_or(1000);
        let buckets = self.lock();
        let objects = buckets
            .get(bucket.as_str())
            .ok_or(Error::NotFound(Resource::Bucket))?;
        let prefix = prefix.unwrap_or_default();
        let mut matching = objects
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| continuation.as_ref().is_none_or(|after| *k > after));
        let page: Vec<ObjectSummary> = matching
            .by_ref()
            .take(max)
            .map(|(k, o)| ObjectSummary {
                key: k.clone(),
                size: o.meta.size,
                etag: o.meta.etag.clone(),
                last_modified: o.meta.last_modified,
            })
            .collect();
        let next = if matching.next().is_some() {
            page.last().map(|o| o.key.clone())
        } else {
            None
        };
        Ok(ListPage {
            objects: page,
            next,
        })
    }

    async fn create_multipart(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        content_type: Option<ContentType>,
    ) -> Result<String, Error> {
        self.require_bucket(bucket)?;
        let id = format!(
            "upload-{}",
            fnv1a_hex(
                &OffsetDateTime::now_utc()
                    .unix_timestamp_nanos()
                    .to_be_bytes()
            )
        );
        let id = format!("{id}-{}", self.uploads().len());
        self.uploads().insert(
            id.clone(),
            Upload {
                bucket: bucket.as_str().to_owned(),
                key: key.as_str().to_owned(),
                content_type: content_type.map(|c| c.as_str().to_owned()),
                initiated: OffsetDateTime::now_utc(),
                parts: BTreeMap::new(),
            },
        );
        Ok(id)
    }

    async fn upload_part(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        part: PutObject,
    ) -> Result<String, Error> {
        self.upload(bucket, key, upload_id)?;
        let bytes = read_exact(part).await?;
        let etag = fnv1a_hex(&bytes);
        let stored = Stored {
            meta: ObjectMeta {
                size: bytes.len() as u64,
                etag: Some(etag.clone()),
                content_type: None,
                last_modified: None,
            },
            bytes,
        };
        self.uploads()
            .get_mut(upload_id)
            .ok_or(Error::NotFound(Resource::Upload))?
            .parts
            .insert(part_number, stored);
        Ok(etag)
    }

    async fn list_parts(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        upload_id: &str,
    ) -> Result<Vec<StoredPart>, Error> {
        Ok(self
            .upload(bucket, key, upload_id)?
            .parts
            .iter()
            .map(|(n, p)| StoredPart {
                part_number: *n,
                size: p.meta.size,
                etag: p.meta.etag.clone().unwrap_or_default(),
            })
            .collect())
    }

    async fn complete_multipart(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<(), Error> {
        let upload = self.upload(bucket, key, upload_id)?;
        let mut buf = BytesMut::new();
        for p in parts {
            match upload.parts.get(&p.part_number) {
                Some(held) if held.meta.etag.as_deref() == Some(p.etag.trim_matches('"')) => {
                    buf.extend_from_slice(&held.bytes);
                }
                _ => {
                    return Err(Error::invalid(
                        "parts",
                        "names a part storage does not hold",
                    ));
                }
            }
        }
        let bytes = buf.freeze();
        let meta = ObjectMeta {
            size: bytes.len() as u64,
            etag: Some(format!("{}-{}", fnv1a_hex(&bytes), parts.len())),
            content_type: upload.content_type.clone(),
            last_modified: Some(OffsetDateTime::now_utc()),
        };
        self.uploads().remove(upload_id);
        self.lock()
            .get_mut(bucket.as_str())
            .ok_or(Error::NotFound(Resource::Bucket))?
            .insert(key.as_str().to_owned(), Stored { bytes, meta });
        Ok(())
    }

    async fn abort_multipart(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        upload_id: &str,
    ) -> Result<(), Error> {
        self.require_bucket(bucket)?;
        if self.upload(bucket, key, upload_id).is_ok() {
            self.uploads().remove(upload_id);
        }
        Ok(())
    }

    async fn list_multipart_uploads(
        &self,
        bucket: &BucketName,
        initiated_before: OffsetDateTime,
    ) -> Result<Vec<PendingUpload>, Error> {
        self.require_bucket(bucket)?;
        let mut out: Vec<PendingUpload> = self
            .uploads()
            .iter()
            .filter(|(_, u)| u.bucket == bucket.as_str() && u.initiated < initiated_before)
            .map(|(id, u)| PendingUpload {
                key: u.key.clone(),
                upload_id: id.clone(),
                initiated: Some(u.initiated),
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------
// The contract
// ---------------------------------------------------------------------------------------

fn key(raw: &str) -> ObjectKey {
    ObjectKey::parse(raw).unwrap_or_else(|e| panic!("contract: bad test key {raw:?}: {e:?}"))
}

fn stream_of(parts: &[&[u8]]) -> ByteStream {
    let chunks: Vec<Result<Bytes, Error>> = parts
        .iter()
        .map(|p| Ok(Bytes::copy_from_slice(p)))
        .collect();
    futures::stream::iter(chunks).boxed()
}

fn put_of(parts: &[&[u8]], content_type: Option<&str>) -> PutObject {
    PutObject {
        content_length: parts.iter().map(|p| p.len() as u64).sum(),
        content_type: content_type.map(|c| {
            ContentType::parse(c).unwrap_or_else(|e| panic!("contract: bad content type: {e:?}"))
        }),
        body: stream_of(parts),
    }
}

async fn read_all(body: ByteStream) -> Vec<u8> {
    body.try_fold(Vec::new(), |mut acc, chunk| async move {
        acc.extend_from_slice(&chunk);
        Ok(acc)
    })
    .await
    .unwrap_or_else(|e| panic!("contract: reading a GET body failed: {e:?}"))
}

fn is_validation_on(err: &Error, field: &str) -> bool {
    matches!(err, Error::Validation(fields) if fields.iter().any(|f| f.field == field))
}

async fn put_ok(store: &dyn ObjectStore, bucket: &BucketName, k: &ObjectKey, parts: &[&[u8]]) {
    store
        .put(bucket, k, put_of(parts, None))
        .await
        .unwrap_or_else(|e| panic!("contract: put {k} failed: {e:?}"));
}

async fn assert_absent(store: &dyn ObjectStore, bucket: &BucketName, k: &ObjectKey, why: &str) {
    match store.head(bucket, k).await {
        Err(Error::NotFound(Resource::Object)) => {}
        other => panic!("contract: {why}: expected {k} to be absent, head gave {other:?}"),
    }
}

/// Runs every rule of the [`ObjectStore`] port against `store`, using keys under a fresh
/// prefix of `bucket` (which must exist) and deleting them at the end. Panics with a
/// message naming the broken rule.
pub async fn object_store_contract(store: &dyn ObjectStore, bucket: &BucketName) {
    let run = OffsetDateTime::now_utc().unix_timestamp_nanos();
    let p = format!("contract-{run}/");
    let mut created: Vec<ObjectKey> = Vec::new();

    // put, head, full get
    let hello = key(&format!("{p}hello.txt"));
    let text = "text/plain; charset=utf-8";
    let put = store
        .put(
            bucket,
            &hello,
            put_of(&[b"hello, ", b"file", b"gate!"], Some(text)),
        )
        .await
        .unwrap_or_else(|e| panic!("contract: put failed: {e:?}"));
    created.push(hello.clone());
    assert_eq!(put.size, 16, "contract: put must report the stored size");
    let head = store
        .head(bucket, &hello)
        .await
        .unwrap_or_else(|e| panic!("contract: head after put failed: {e:?}"));
    assert_eq!(head.size, 16, "contract: head size");
    assert_eq!(
        head.content_type.as_deref(),
        Some(text),
        "contract: content type must round-trip"
    );
    let etag = head.etag.clone().unwrap_or_default();
    assert!(!etag.is_empty(), "contract: head must give an etag");
    assert!(
        !etag.contains('"'),
        "contract: etags come without quotes, got {etag:?}"
    );
    if let Some(put_etag) = &put.etag {
        assert_eq!(
            put_etag, &etag,
            "contract: put and head must agree on the etag"
        );
    }
    let got = store
        .get(bucket, &hello, None)
        .await
        .unwrap_or_else(|e| panic!("contract: get failed: {e:?}"));
    assert_eq!(got.range, None, "contract: a full get has no range");
    assert_eq!(got.meta.size, 16, "contract: get meta size");
    assert_eq!(
        got.meta.etag.as_deref(),
        Some(etag.as_str()),
        "contract: get etag"
    );
    assert_eq!(
        read_all(got.body).await,
        b"hello, filegate!",
        "contract: get bytes"
    );

    // overwrite replaces
    put_ok(store, bucket, &hello, &[b"replaced"]).await;
    let got = store
        .get(bucket, &hello, None)
        .await
        .unwrap_or_else(|e| panic!("contract: get after overwrite failed: {e:?}"));
    assert_eq!(
        read_all(got.body).await,
        b"replaced",
        "contract: put must replace"
    );

    // ranged gets
    let digits = key(&format!("{p}range.bin"));
    let data: &[u8] = b"0123456789abcdefghij";
    put_ok(store, bucket, &digits, &[data]).await;
    created.push(digits.clone());
    let cases: [(ByteRange, (u64, u64)); 6] = [
        (ByteRange::FromTo(2, 5), (2, 5)),
        (ByteRange::FromTo(0, 0), (0, 0)),
        (ByteRange::FromTo(15, 100), (15, 19)),
        (ByteRange::From(17), (17, 19)),
        (ByteRange::Suffix(4), (16, 19)),
        (ByteRange::Suffix(100), (0, 19)),
    ];
    for (range, (first, last)) in cases {
        let got = store
            .get(bucket, &digits, Some(range))
            .await
            .unwrap_or_else(|e| panic!("contract: get {range:?} failed: {e:?}"));
        assert_eq!(
            got.range,
            Some((first, last)),
            "contract: range of {range:?}"
        );
        assert_eq!(
            got.meta.size, 20,
            "contract: {range:?}: meta.size is the whole object"
        );
        let want = &data[usize::try_from(first).unwrap_or(0)..=usize::try_from(last).unwrap_or(0)];
        assert_eq!(
            read_all(got.body).await,
            want,
            "contract: bytes of {range:?}"
        );
    }
    for range in [
        ByteRange::From(20),
        ByteRange::FromTo(25, 30),
        ByteRange::FromTo(5, 4),
        ByteRange::Suffix(0),
    ] {
        match store.get(bucket, &digits, Some(range)).await {
            // The size rides on the error: the 416 says `bytes */20` without a second call.
            Err(Error::RangeNotSatisfiable { size: 20 }) => {}
            other => {
                panic!(
                    "contract: {range:?} must be RangeNotSatisfiable {{ size: 20 }}, got {other:?}"
                )
            }
        }
    }

    // empty object
    let empty = key(&format!("{p}empty"));
    put_ok(store, bucket, &empty, &[]).await;
    created.push(empty.clone());
    let head = store
        .head(bucket, &empty)
        .await
        .unwrap_or_else(|e| panic!("contract: head of empty object failed: {e:?}"));
    assert_eq!(head.size, 0, "contract: empty object size");
    let got = store
        .get(bucket, &empty, None)
        .await
        .unwrap_or_else(|e| panic!("contract: get of empty object failed: {e:?}"));
    assert!(
        read_all(got.body).await.is_empty(),
        "contract: empty object bytes"
    );

    // missing key
    let missing = key(&format!("{p}missing"));
    assert_absent(store, bucket, &missing, "missing key").await;
    match store.get(bucket, &missing, None).await {
        Err(Error::NotFound(Resource::Object)) => {}
        other => panic!("contract: get of a missing key must be NotFound(Object), got {other:?}"),
    }

    // missing bucket
    let nobucket = BucketName::parse(format!("fg-missing-{}", run.rem_euclid(1_000_000_000_000)))
        .unwrap_or_else(|e| panic!("contract: bad bucket name: {e:?}"));
    let expect_no_bucket = |op: &str, r: Result<(), Error>| match r {
        Err(Error::NotFound(Resource::Bucket)) => {}
        other => {
            panic!("contract: {op} on a missing bucket must be NotFound(Bucket), got {other:?}")
        }
    };
    expect_no_bucket("head", store.head(&nobucket, &hello).await.map(|_| ()));
    expect_no_bucket("get", store.get(&nobucket, &hello, None).await.map(|_| ()));
    expect_no_bucket(
        "put",
        store
            .put(&nobucket, &hello, put_of(&[b"x"], None))
            .await
            .map(|_| ()),
    );
    expect_no_bucket("delete", store.delete(&nobucket, &hello).await);
    expect_no_bucket(
        "list",
        store.list(&nobucket, None, None, 10).await.map(|_| ()),
    );

    // delete is idempotent
    let doomed = key(&format!("{p}doomed"));
    put_ok(store, bucket, &doomed, &[b"bye"]).await;
    store
        .delete(bucket, &doomed)
        .await
        .unwrap_or_else(|e| panic!("contract: delete failed: {e:?}"));
    assert_absent(store, bucket, &doomed, "after delete").await;
    store
        .delete(bucket, &doomed)
        .await
        .unwrap_or_else(|e| panic!("contract: deleting a missing key must succeed: {e:?}"));

    // list with prefix and paging
    let list_prefix = format!("{p}list/");
    let mut expected = Vec::new();
    for name in ["d", "b", "e", "a", "c/nested"] {
        let k = key(&format!("{list_prefix}{name}"));
        put_ok(store, bucket, &k, &[name.as_bytes()]).await;
        expected.push(k.as_str().to_owned());
        created.push(k);
    }
    let outside = key(&format!("{p}listx"));
    put_ok(store, bucket, &outside, &[b"x"]).await;
    created.push(outside);
    expected.sort();
    let mut seen = Vec::new();
    let mut token = None;
    for page_no in 0.. {
        assert!(page_no < 10, "contract: listing never ended (tokens loop?)");
        let page = store
            .list(bucket, Some(list_prefix.clone()), token.take(), 2)
            .await
            .unwrap_or_else(|e| panic!("contract: list failed: {e:?}"));
        assert!(
            page.objects.len() <= 2,
            "contract: list returned more than max_keys"
        );
        for o in &page.objects {
            // Each body is the key's name below the prefix.
            let name_len = o.key.strip_prefix(&list_prefix).map_or(0, str::len);
            assert_eq!(
                o.size, name_len as u64,
                "contract: listed size of {}",
                o.key
            );
        }
        seen.extend(page.objects.into_iter().map(|o| o.key));
        match page.next {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(
        seen, expected,
        "contract: paged listing must give every key once, ascending"
    );
    let one = store
        .list(bucket, Some(list_prefix.clone()), None, 0)
        .await
        .unwrap_or_else(|e| panic!("contract: list with max_keys 0 failed: {e:?}"));
    assert_eq!(one.objects.len(), 1, "contract: max_keys 0 is clamped to 1");
    assert!(
        one.next.is_some(),
        "contract: a truncated page must give a next token"
    );

    // wrong stream lengths store nothing
    let short = key(&format!("{p}short"));
    let r = store
        .put(
            bucket,
            &short,
            PutObject {
                content_length: 10,
                content_type: None,
                body: stream_of(&[b"12345"]),
            },
        )
        .await;
    assert!(
        matches!(&r, Err(e) if is_validation_on(e, "body")),
        "contract: a stream shorter than content_length must be a Validation error on 'body', got {r:?}"
    );
    assert_absent(store, bucket, &short, "short stream").await;
    // Overflow inside a chunk, and an extra chunk after exactly the declared bytes.
    for (i, parts) in [&[&b"12"[..], b"345"][..], &[&b"123"[..], b"45"][..]]
        .into_iter()
        .enumerate()
    {
        let long = key(&format!("{p}long-{i}"));
        let r = store
            .put(
                bucket,
                &long,
                PutObject {
                    content_length: 3,
                    content_type: None,
                    body: stream_of(parts),
                },
            )
            .await;
        assert!(
            matches!(&r, Err(e) if is_validation_on(e, "body")),
            "contract: a stream longer than content_length must be a Validation error on 'body', got {r:?}"
        );
        assert_absent(store, bucket, &long, "long stream").await;
    }
    let broken = key(&format!("{p}broken"));
    let failing: ByteStream = futures::stream::iter(vec![
        Ok(Bytes::from_static(b"part")),
        Err(Error::unavailable(std::io::Error::other(
            "client went away",
        ))),
    ])
    .boxed();
    let r = store
        .put(
            bucket,
            &broken,
            PutObject {
                content_length: 8,
                content_type: None,
                body: failing,
            },
        )
        .await;
    assert!(
        r.is_err(),
        "contract: a failing stream must fail the put, got {r:?}"
    );
    assert_absent(store, bucket, &broken, "failing stream").await;

    // awkward keys round-trip
    let odd_prefix = format!("{p}odd/");
    let mut odd_keys: Vec<String> = [
        "with space.txt",
        "ünïcødé/文件 名.pdf",
        "emoji-🚀.bin",
        "plus+and&amp=eq.txt",
        "percent%20literal.txt",
        "tilde~(paren)!'.txt",
    ]
    .iter()
    .map(|n| format!("{odd_prefix}{n}"))
    .collect();
    for raw in &odd_keys {
        let k = key(raw);
        put_ok(store, bucket, &k, &[raw.as_bytes()]).await;
        let got = store
            .get(bucket, &k, None)
            .await
            .unwrap_or_else(|e| panic!("contract: get of {raw:?} failed: {e:?}"));
        assert_eq!(
            read_all(got.body).await,
            raw.as_bytes(),
            "contract: bytes of {raw:?}"
        );
        created.push(k);
    }
    let listed = store
        .list(bucket, Some(odd_prefix.clone()), None, 1000)
        .await
        .unwrap_or_else(|e| panic!("contract: list of odd keys failed: {e:?}"));
    odd_keys.sort();
    let listed: Vec<String> = listed.objects.into_iter().map(|o| o.key).collect();
    assert_eq!(
        listed, odd_keys,
        "contract: odd keys must list back exactly"
    );

    let completed = multipart_contract(store, bucket, &p).await;
    created.push(completed);

    for k in &created {
        store
            .delete(bucket, k)
            .await
            .unwrap_or_else(|e| panic!("contract: cleanup delete of {k} failed: {e:?}"));
    }
}

/// The multipart rules: create, parts, list, complete, abort, the unknown-upload errors
/// and the listing of old uploads. Returns the completed object's key.
async fn multipart_contract(store: &dyn ObjectStore, bucket: &BucketName, p: &str) -> ObjectKey {
    const PART: usize = 5 * 1024 * 1024;
    let k = key(&format!("{p}multi.bin"));
    let ct = ContentType::parse("application/octet-stream")
        .unwrap_or_else(|e| panic!("contract: bad content type: {e:?}"));
    let before_create = OffsetDateTime::now_utc() - time::Duration::seconds(5);
    let id = store
        .create_multipart(bucket, &k, Some(ct))
        .await
        .unwrap_or_else(|e| panic!("contract: create_multipart failed: {e:?}"));
    let first = vec![7u8; PART];
    let last = b"tail".to_vec();
    // Out of order on purpose: storage lists by part number.
    let e2 = store
        .upload_part(bucket, &k, &id, 2, put_of(&[last.as_slice()], None))
        .await
        .unwrap_or_else(|e| panic!("contract: upload_part 2 failed: {e:?}"));
    let e1 = store
        .upload_part(bucket, &k, &id, 1, put_of(&[first.as_slice()], None))
        .await
        .unwrap_or_else(|e| panic!("contract: upload_part 1 failed: {e:?}"));
    let parts = store
        .list_parts(bucket, &k, &id)
        .await
        .unwrap_or_else(|e| panic!("contract: list_parts failed: {e:?}"));
    let listed: Vec<(u32, u64, &str)> = parts
        .iter()
        .map(|x| (x.part_number, x.size, x.etag.as_str()))
        .collect();
    assert_eq!(
        listed,
        vec![(1, PART as u64, e1.as_str()), (2, 4, e2.as_str())],
        "contract: list_parts gives every part by number, with its size and unquoted etag"
    );
    assert_absent(store, bucket, &k, "an unfinished upload is no object").await;
    let old = store
        .list_multipart_uploads(
            bucket,
            OffsetDateTime::now_utc() + time::Duration::seconds(5),
        )
        .await
        .unwrap_or_else(|e| panic!("contract: list_multipart_uploads failed: {e:?}"));
    assert!(
        old.iter().any(|u| u.upload_id == id && u.key == k.as_str()),
        "contract: an upload created before the cut-off is listed"
    );
    let young = store
        .list_multipart_uploads(bucket, before_create)
        .await
        .unwrap_or_else(|e| panic!("contract: list_multipart_uploads failed: {e:?}"));
    assert!(
        !young.iter().any(|u| u.upload_id == id),
        "contract: an upload created after the cut-off is not listed"
    );
    let wrong = [
        CompletedPart {
            part_number: 1,
            etag: e1.clone(),
        },
        CompletedPart {
            part_number: 2,
            etag: "0123456789abcdef0123456789abcdef".into(),
        },
    ];
    let err = store
        .complete_multipart(bucket, &k, &id, &wrong)
        .await
        .expect_err("contract: completing with a wrong etag must fail");
    assert!(
        is_validation_on(&err, "parts"),
        "contract: a wrong etag is Validation on parts, got {err:?}"
    );
    let good = [
        CompletedPart {
            part_number: 1,
            etag: e1,
        },
        CompletedPart {
            part_number: 2,
            etag: format!("\"{e2}\""),
        },
    ];
    store
        .complete_multipart(bucket, &k, &id, &good)
        .await
        .unwrap_or_else(|e| panic!("contract: complete_multipart failed: {e:?}"));
    let head = store
        .head(bucket, &k)
        .await
        .unwrap_or_else(|e| panic!("contract: head after complete failed: {e:?}"));
    assert_eq!(head.size, PART as u64 + 4, "contract: completed size");
    assert_eq!(
        head.content_type.as_deref(),
        Some("application/octet-stream"),
        "contract: the content type given at create is the object's"
    );
    let got = read_all(
        store
            .get(bucket, &k, Some(ByteRange::From(PART as u64 - 1)))
            .await
            .unwrap_or_else(|e| panic!("contract: get after complete failed: {e:?}"))
            .body,
    )
    .await;
    assert_eq!(got, b"\x07tail", "contract: the parts are joined in order");
    match store.list_parts(bucket, &k, &id).await {
        Err(Error::NotFound(Resource::Upload)) => {}
        other => panic!("contract: a completed upload is NotFound(Upload), got {other:?}"),
    }

    // abort drops the upload; aborting again, or an unknown id, succeeds
    let k2 = key(&format!("{p}aborted.bin"));
    let id2 = store
        .create_multipart(bucket, &k2, None)
        .await
        .unwrap_or_else(|e| panic!("contract: create_multipart failed: {e:?}"));
    store
        .upload_part(bucket, &k2, &id2, 1, put_of(&[b"x"], None))
        .await
        .unwrap_or_else(|e| panic!("contract: upload_part failed: {e:?}"));
    for _ in 0..2 {
        store
            .abort_multipart(bucket, &k2, &id2)
            .await
            .unwrap_or_else(|e| panic!("contract: abort_multipart failed: {e:?}"));
    }
    match store.list_parts(bucket, &k2, &id2).await {
        Err(Error::NotFound(Resource::Upload)) => {}
        other => panic!("contract: an aborted upload is NotFound(Upload), got {other:?}"),
    }
    match store
        .upload_part(bucket, &k2, &id2, 1, put_of(&[b"x"], None))
        .await
    {
        Err(Error::NotFound(Resource::Upload)) => {}
        other => panic!("contract: a part of an aborted upload is NotFound(Upload), got {other:?}"),
    }
    match store.complete_multipart(bucket, &k2, &id2, &good).await {
        Err(Error::NotFound(Resource::Upload)) => {}
        other => {
            panic!("contract: completing an aborted upload is NotFound(Upload), got {other:?}")
        }
    }
    assert_absent(store, bucket, &k2, "an aborted upload leaves no object").await;
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn in_memory_store_passes_the_contract() {
        let bucket = BucketName::parse("contract-bucket").expect("valid bucket");
        let store = InMemoryObjectStore::with_bucket(&bucket);
        object_store_contract(&store, &bucket).await;
        assert!(
            store
                .list(&bucket, None, None, 1000)
                .await
                .expect("list")
                .objects
                .is_empty(),
            "the contract cleans up after itself"
        );
    }

    #[test]
    fn ranges_follow_s3() {
        assert_eq!(
            resolve_range(ByteRange::FromTo(3, 99), 10).ok(),
            Some((3, 9))
        );
        assert_eq!(resolve_range(ByteRange::Suffix(99), 10).ok(), Some((0, 9)));
        assert!(resolve_range(ByteRange::From(10), 10).is_err());
        assert!(resolve_range(ByteRange::Suffix(1), 0).is_err());
    }
}
