//! `ManagedService` over the testkit fakes: FILES_DB in memory, the in-memory object
//! store, a signer that echoes its request.

use async_trait::async_trait;
use bytes::Bytes;
use filegate_core::Error;
use filegate_core::domain::{BucketName, ContentType, FirewallMode, ObjectKey, Principal};
use filegate_core::error::Resource;
use filegate_core::managed::{
    CreateBucket, CreateObjectMultipart, ListObjects, ManagedPolicy, ManagedService, ObjectStatus,
    PresignUpload, ReadScope, UpdateBucket, Upload,
};
use filegate_core::policy::AccessPolicy;
use filegate_core::ports::{
    ByteRange, ByteStream, Clock, CompletedPart, GetObject, ListPage, ObjectMeta, ObjectStore,
    PendingUpload, PresignRequest, PresignedUrl, PutObject, StoredPart, UrlSigner,
};
use filegate_core::storage::Storage;
use filegate_testkit::files_db::InMemoryFilesDb;
use filegate_testkit::object_store::InMemoryObjectStore;
use futures::{StreamExt, TryStreamExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);
const MIB: u64 = 1024 * 1024;

/// `NOW`, moved forward by [`Env::advance`].
#[derive(Clone, Default)]
struct FixedClock(Arc<AtomicI64>);

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        NOW + time::Duration::seconds(self.0.load(Ordering::SeqCst))
    }
}

struct EchoSigner;

#[async_trait]
impl UrlSigner for EchoSigner {
    async fn presign(&self, r: &PresignRequest) -> Result<PresignedUrl, Error> {
        Ok(PresignedUrl {
            url: format!(
                "https://s3.test/{}/{}?method={}&expires={}",
                r.bucket,
                r.key,
                r.method.as_str(),
                r.expires_in.secs()
            ),
            headers: r.headers.clone(),
        })
    }
}

/// The in-memory store, whose PUTs can be made to fail after reading the body.
#[derive(Clone)]
struct FlakyStore {
    inner: InMemoryObjectStore,
    fail_puts: Arc<AtomicBool>,
}

#[async_trait]
impl ObjectStore for FlakyStore {
    async fn head(&self, b: &BucketName, k: &ObjectKey) -> Result<ObjectMeta, Error> {
        self.inner.head(b, k).await
    }
    async fn get(
        &self,
        b: &BucketName,
        k: &ObjectKey,
        r: Option<ByteRange>,
    ) -> Result<GetObject, Error> {
        self.inner.get(b, k, r).await
    }
    async fn put(&self, b: &BucketName, k: &ObjectKey, o: PutObject) -> Result<ObjectMeta, Error> {
        if self.fail_puts.load(Ordering::SeqCst) {
            let _ = o.body.collect::<Vec<_>>().await;
            return Err(Error::unavailable("storage went away mid-upload"));
        }
        self.inner.put(b, k, o).await
    }
    async fn delete(&self, b: &BucketName, k: &ObjectKey) -> Result<(), Error> {
        self.inner.delete(b, k).await
    }
    async fn list(
        &self,
        b: &BucketName,
        p: Option<String>,
        c: Option<String>,
        m: u32,
    ) -> Result<ListPage, Error> {
        self.inner.list(b, p, c, m).await
    }
    async fn create_multipart(
        &self,
        b: &BucketName,
        k: &ObjectKey,
        ct: Option<ContentType>,
    ) -> Result<String, Error> {
        self.inner.create_multipart(b, k, ct).await
    }
    async fn upload_part(
        &self,
        b: &BucketName,
        k: &ObjectKey,
        id: &str,
        n: u32,
        part: PutObject,
    ) -> Result<String, Error> {
        self.inner.upload_part(b, k, id, n, part).await
    }
    async fn list_parts(
        &self,
        b: &BucketName,
        k: &ObjectKey,
        id: &str,
    ) -> Result<Vec<StoredPart>, Error> {
        self.inner.list_parts(b, k, id).await
    }
    async fn complete_multipart(
        &self,
        b: &BucketName,
        k: &ObjectKey,
        id: &str,
        parts: &[CompletedPart],
    ) -> Result<(), Error> {
        self.inner.complete_multipart(b, k, id, parts).await
    }
    async fn abort_multipart(&self, b: &BucketName, k: &ObjectKey, id: &str) -> Result<(), Error> {
        self.inner.abort_multipart(b, k, id).await
    }
    async fn list_multipart_uploads(
        &self,
        b: &BucketName,
        before: OffsetDateTime,
    ) -> Result<Vec<PendingUpload>, Error> {
        self.inner.list_multipart_uploads(b, before).await
    }
}

struct Env {
    svc: ManagedService,
    db: Arc<InMemoryFilesDb>,
    store: FlakyStore,
    physical: BucketName,
    clock: FixedClock,
    etag_mismatches: Arc<AtomicUsize>,
}

impl Env {
    async fn with(policy: ManagedPolicy) -> Self {
        let physical = BucketName::parse("filegate-files").expect("bucket name");
        let store = FlakyStore {
            inner: InMemoryObjectStore::with_bucket(&physical),
            fail_puts: Arc::new(AtomicBool::new(false)),
        };
        let db = Arc::new(InMemoryFilesDb::new());
        let fixed = FixedClock::default();
        let clock: Arc<dyn Clock> = Arc::new(fixed.clone());
        let storage = Storage::new(Arc::new(EchoSigner), clock.clone(), physical.clone());
        let etag_mismatches = Arc::new(AtomicUsize::new(0));
        let counter = etag_mismatches.clone();
        let svc = ManagedService::new(
            storage,
            Arc::new(store.clone()),
            db.clone(),
            db.clone(),
            clock,
            policy,
        )
        .expect("valid policy")
        .with_etag_mismatch_hook(Arc::new(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        }));
        svc.seed_default_buckets().await.expect("seeding");
        Self {
            svc,
            db,
            store,
            physical,
            clock: fixed,
            etag_mismatches,
        }
    }

    fn advance(&self, secs: i64) {
        self.clock.0.fetch_add(secs, Ordering::SeqCst);
    }

    async fn new() -> Self {
        Self::with(ManagedPolicy::default()).await
    }

    async fn reveal() -> Self {
        Self::with(ManagedPolicy {
            shared: AccessPolicy {
                firewall: FirewallMode::Reveal,
                ..AccessPolicy::default()
            },
            ..ManagedPolicy::default()
        })
        .await
    }

    fn stored(&self, key: &str) -> Option<Bytes> {
        self.store.inner.object_bytes(&self.physical, key)
    }

    /// Puts bytes straight into storage, as a client with a presigned URL would.
    async fn client_put(&self, key: &str, data: &'static [u8], ct: &str) {
        self.store
            .inner
            .put(
                &self.physical,
                &ObjectKey::parse(key).expect("key"),
                PutObject {
                    content_length: data.len() as u64,
                    content_type: Some(ContentType::parse(ct).expect("content type")),
                    body: body(data),
                },
            )
            .await
            .expect("client put");
    }

    /// Creates an organization bucket as an admin of `org`.
    async fn org_bucket(&self, org: &str, name: &str, read: &str, write: &str) {
        self.svc
            .create_bucket(
                Some(&admin(org, "admin_1")),
                CreateBucket {
                    name: name.into(),
                    read_scope: Some(read.into()),
                    write_scope: Some(write.into()),
                    ..CreateBucket::default()
                },
            )
            .await
            .expect("creating an organization bucket");
    }
}

fn principal(user: &str, org: Option<&str>, roles: &[&str]) -> Principal {
    Principal {
        user_id: user.into(),
        active_org_id: org.map(str::to_owned),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        platform_role: None,
        method: filegate_core::domain::AuthMethod::default(),
    }
}

fn member(org: &str, user: &str) -> Principal {
    principal(user, Some(org), &["member"])
}

fn admin(org: &str, user: &str) -> Principal {
    principal(user, Some(org), &["admin"])
}

fn no_org(user: &str) -> Principal {
    principal(user, None, &[])
}

fn platform_admin() -> Principal {
    let mut p = principal("root", None, &[]);
    p.platform_role = Some("admin".into());
    p
}

fn body(data: &'static [u8]) -> ByteStream {
    futures::stream::iter(data.chunks(3).map(|c| Ok(Bytes::from_static(c)))).boxed()
}

/// A body that fails the test if anything reads it.
fn untouchable() -> ByteStream {
    futures::stream::poll_fn(|_| -> std::task::Poll<Option<Result<Bytes, Error>>> {
        panic!("the body must not be read")
    })
    .boxed()
}

fn upload(ct: &str, data: &'static [u8]) -> Upload {
    Upload {
        content_type: ct.into(),
        content_length: data.len() as u64,
        body: body(data),
        upsert: false,
    }
}

fn upsert(ct: &str, data: &'static [u8]) -> Upload {
    Upload {
        upsert: true,
        ..upload(ct, data)
    }
}

fn declared(ct: &str, content_length: u64) -> Upload {
    Upload {
        content_type: ct.into(),
        content_length,
        body: untouchable(),
        upsert: false,
    }
}

fn presign(ct: &str, size: u64) -> PresignUpload {
    PresignUpload {
        content_type: ct.into(),
        size,
    }
}

async fn read_all(g: GetObject) -> Vec<u8> {
    g.body
        .try_fold(Vec::new(), |mut acc, c| async move {
            acc.extend_from_slice(&c);
            Ok(acc)
        })
        .await
        .expect("reading the body")
}

fn field_of(err: &Error) -> Vec<String> {
    match err {
        Error::Validation(f) => f.iter().map(|f| f.field.clone()).collect(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Default buckets and the Account UI flows
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn default_buckets_are_seeded_idempotently_and_never_reset() {
    let env = Env::new().await;
    let first = env.db.buckets();
    assert_eq!(first.len(), 2);
    let avatars = first.iter().find(|b| b.name.as_str() == "avatars").unwrap();
    assert!(avatars.is_project_wide() && avatars.is_public());
    assert_eq!(avatars.write_scope.to_string(), "user");
    assert_eq!(avatars.file_size_limit.unwrap().bytes(), 5 * MIB);
    assert_eq!(avatars.allowed_mime_strings(), ["image/*"]);
    let logos = first
        .iter()
        .find(|b| b.name.as_str() == "org-logos")
        .unwrap();
    assert_eq!(logos.write_scope.to_string(), "admin+");
    assert_eq!(logos.read_scope, ReadScope::Public);

    // A platform admin tightens a default bucket; seeding again keeps that.
    env.svc
        .update_bucket(
            Some(&platform_admin()),
            "avatars",
            UpdateBucket {
                file_size_limit: Some(Some(MIB)),
                ..UpdateBucket::default()
            },
        )
        .await
        .unwrap();
    let again = env.svc.seed_default_buckets().await.unwrap();
    assert_eq!(env.db.buckets().len(), 2);
    assert_eq!(
        again.iter().map(|b| b.id.clone()).collect::<Vec<_>>(),
        first.iter().map(|b| b.id.clone()).collect::<Vec<_>>()
    );
    assert_eq!(again[0].file_size_limit.unwrap().bytes(), MIB);
}

#[tokio::test]
async fn avatar_upload_of_a_user_without_org_gets_a_public_url() {
    let env = Env::new().await;
    let me = no_org("user_1");
    let out = env
        .svc
        .upload(
            Some(&me),
            "avatars",
            "user_1/avatar-1700000000000.jpg",
            upload("image/jpeg", b"\xff\xd8jpeg-bytes"),
        )
        .await
        .unwrap();
    assert_eq!(
        out.key.as_str(),
        "user_1/avatars/user_1/avatar-1700000000000.jpg"
    );
    assert_eq!(out.bucket, "avatars");
    assert_eq!(out.path.as_str(), "user_1/avatar-1700000000000.jpg");
    assert_eq!(out.size, 12);
    assert_eq!(out.content_type, "image/jpeg");
    assert!(out.etag.is_some());
    assert_eq!(
        env.stored(out.key.as_str()).unwrap(),
        &b"\xff\xd8jpeg-bytes"[..]
    );
    let row = env.db.objects().pop().unwrap();
    assert_eq!(row.status, ObjectStatus::Confirmed);
    assert_eq!(row.organization_id, None);
    assert_eq!(row.segment, "user_1");

    // POST /storage/v1/url, as the Account UI does next; also works without credentials.
    let want = "http://127.0.0.1:8789/public/user_1/avatars/user_1/avatar-1700000000000.jpg";
    for caller in [Some(&me), None] {
        let url = env.svc.url(caller, out.key.as_str()).await.unwrap();
        assert_eq!(url.url, want);
        assert_eq!(url.expires_at, None);
    }
    // The files listener serves it to anyone; the user reads it back by path without an org.
    let public = env
        .svc
        .download_key(None, out.key.as_str(), None)
        .await
        .unwrap();
    assert!(public.public);
    assert_eq!(read_all(public.body).await, b"\xff\xd8jpeg-bytes");
    let own = env
        .svc
        .download(
            Some(&me),
            "avatars",
            "user_1/avatar-1700000000000.jpg",
            None,
        )
        .await
        .unwrap();
    assert_eq!(own.object.id, out.id);
}

#[tokio::test]
async fn org_logos_need_an_admin_of_the_org() {
    let env = Env::new().await;
    let out = env
        .svc
        .upload(
            Some(&admin("org_a", "u_admin")),
            "org-logos",
            "org_a/logo-1.jpg",
            upload("image/jpeg", b"logo"),
        )
        .await
        .unwrap();
    assert_eq!(out.key.as_str(), "org_a/org-logos/org_a/logo-1.jpg");
    let url = env.svc.url(None, out.key.as_str()).await.unwrap();
    assert_eq!(
        url.url,
        "http://127.0.0.1:8789/public/org_a/org-logos/org_a/logo-1.jpg"
    );

    let err = env
        .svc
        .upload(
            Some(&member("org_a", "u_member")),
            "org-logos",
            "org_a/logo-2.jpg",
            declared("image/jpeg", 4),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AccessRoleRequired { ref required, .. } if required == "admin+"));
    let err = env
        .svc
        .upload(
            Some(&no_org("u")),
            "org-logos",
            "x/logo.jpg",
            declared("image/jpeg", 4),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AccessNoOrg));
}

#[tokio::test]
async fn in_a_user_bucket_everyone_writes_under_their_own_id_only() {
    let env = Env::new().await;
    let alice = no_org("alice");
    let mallory = member("org_m", "mallory");
    let a = env
        .svc
        .upload(
            Some(&alice),
            "avatars",
            "alice/a.png",
            upload("image/png", b"alice"),
        )
        .await
        .unwrap();
    // Mallory names Alice's path: it lands under Mallory's own id.
    let m = env
        .svc
        .upload(
            Some(&mallory),
            "avatars",
            "alice/a.png",
            upload("image/png", b"evil"),
        )
        .await
        .unwrap();
    assert_eq!(m.key.as_str(), "mallory/avatars/alice/a.png");
    assert_eq!(env.stored(a.key.as_str()).unwrap(), &b"alice"[..]);
    // Deleting "Alice's" path deletes Mallory's copy only.
    env.svc
        .delete(Some(&mallory), "avatars", "alice/a.png")
        .await
        .unwrap();
    assert!(env.stored(m.key.as_str()).is_none());
    assert_eq!(env.stored(a.key.as_str()).unwrap(), &b"alice"[..]);
    // And Mallory's listing never shows Alice's objects.
    let page = env
        .svc
        .list(Some(&mallory), "avatars", ListObjects::default())
        .await
        .unwrap();
    assert!(page.items.is_empty());
}

// ---------------------------------------------------------------------------------------
// Upload: limits, conflicts, validation, order of checks
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn size_limit_is_checked_from_content_length_before_any_byte() {
    let env = Env::new().await;
    let err = env
        .svc
        .upload(
            Some(&no_org("u")),
            "avatars",
            "u/big.jpg",
            declared("image/jpeg", 5 * MIB + 1),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { size, max } if size == 5 * MIB + 1 && max == 5 * MIB));
    assert_eq!(err.code(), "STORAGE_FILE_TOO_LARGE");
    assert!(env.db.objects().is_empty());

    // A bucket without its own limit gets the service-wide ceiling.
    let env = Env::with(ManagedPolicy {
        shared: AccessPolicy {
            max_upload_size: filegate_core::domain::ByteSize(10),
            ..AccessPolicy::default()
        },
        ..ManagedPolicy::default()
    })
    .await;
    env.org_bucket("org_a", "docs", "org", "org").await;
    let err = env
        .svc
        .upload(
            Some(&member("org_a", "u")),
            "docs",
            "a.bin",
            declared("application/pdf", 11),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { max: 10, .. }));
}

#[tokio::test]
async fn mime_allow_lists_match_exact_types_and_wildcards() {
    let env = Env::new().await;
    let u = no_org("u");
    let err = env
        .svc
        .upload(Some(&u), "avatars", "u/x.html", declared("text/html", 4))
        .await
        .unwrap_err();
    let Error::MimeNotAllowed {
        content_type,
        allowed,
    } = &err
    else {
        panic!("expected MimeNotAllowed, got {err:?}");
    };
    assert_eq!(content_type, "text/html");
    assert_eq!(allowed, &["image/*"]);
    assert_eq!(err.code(), "STORAGE_MIME_NOT_ALLOWED");
    for ok in ["image/png", "IMAGE/WebP", "image/jpeg; q=0.9"] {
        env.svc
            .upload(Some(&u), "avatars", "u/ok", upsert(ok, b"img"))
            .await
            .unwrap_or_else(|e| panic!("{ok}: {e:?}"));
    }
    let err = env
        .svc
        .upload(Some(&u), "avatars", "u/y", declared("imagex/png", 4))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::MimeNotAllowed { .. }));

    // An exact list.
    env.svc
        .create_bucket(
            Some(&admin("org_a", "a")),
            CreateBucket {
                name: "pdfs".into(),
                allowed_mime_types: vec!["application/pdf".into()],
                ..CreateBucket::default()
            },
        )
        .await
        .unwrap();
    let m = member("org_a", "m");
    env.svc
        .upload(
            Some(&m),
            "pdfs",
            "a.pdf",
            upload("Application/PDF; v=1", b"%PDF"),
        )
        .await
        .unwrap();
    let err = env
        .svc
        .upload(Some(&m), "pdfs", "b.pdf", declared("application/pdfx", 4))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::MimeNotAllowed { .. }));
}

#[tokio::test]
async fn a_missing_bucket_is_bucket_not_found() {
    let env = Env::new().await;
    for name in [
        "nope",
        "Not_A_Name",
        "x",
        "bkt_0123456789abcdef0123456789abcdef",
    ] {
        let err = env
            .svc
            .upload(Some(&no_org("u")), name, "a.jpg", declared("image/jpeg", 1))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::NotFound(Resource::Bucket)),
            "{name}: {err:?}"
        );
        assert_eq!(err.public_message(), "Bucket not found");
        assert_eq!(err.code(), "STORAGE_BUCKET_NOT_FOUND");
    }
}

#[tokio::test]
async fn an_existing_path_is_a_conflict_unless_upsert_replaces_it() {
    let env = Env::new().await;
    let u = no_org("u");
    let first = env
        .svc
        .upload(Some(&u), "avatars", "u/a.png", upload("image/png", b"one"))
        .await
        .unwrap();
    let err = env
        .svc
        .upload(Some(&u), "avatars", "u/a.png", declared("image/png", 3))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ObjectExists));
    assert_eq!(err.code(), "STORAGE_OBJECT_EXISTS");

    let second = env
        .svc
        .upload(
            Some(&u),
            "avatars",
            "u/a.png",
            upsert("image/webp", b"second"),
        )
        .await
        .unwrap();
    assert_eq!(second.id, first.id, "upsert keeps the row");
    assert_eq!(second.size, 6);
    assert_eq!(second.content_type, "image/webp");
    assert_ne!(second.etag, first.etag);
    assert_eq!(env.stored(first.key.as_str()).unwrap(), &b"second"[..]);
    assert_eq!(env.db.objects().len(), 1);
}

#[tokio::test]
async fn bad_fields_are_reported_together_and_paths_cannot_climb_out() {
    let env = Env::new().await;
    let u = no_org("u");
    let err = env
        .svc
        .upload(
            Some(&u),
            "avatars",
            "../other/a.png",
            declared("not a type", 1),
        )
        .await
        .unwrap_err();
    assert_eq!(field_of(&err), ["path", "contentType"]);
    for bad in ["a/../../b", "/abs", "a//b", "a/./b", "a\\..\\b", ""] {
        let err = env
            .svc
            .upload(Some(&u), "avatars", bad, declared("image/png", 1))
            .await
            .unwrap_err();
        assert_eq!(field_of(&err), ["path"], "{bad:?}");
    }
}

#[tokio::test]
async fn checks_run_in_order_auth_bucket_org_access_validation_guards() {
    let env = Env::new().await;
    // Anonymous: 401 before the bucket is even looked up.
    let err = env
        .svc
        .upload(None, "nope", "../x", declared("bad", u64::MAX))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AuthMissing));
    // Bucket before org context.
    let err = env
        .svc
        .upload(
            Some(&no_org("u")),
            "nope",
            "../x",
            declared("bad", u64::MAX),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(Resource::Bucket)));
    // Org context before access.
    let err = env
        .svc
        .upload(
            Some(&no_org("u")),
            "org-logos",
            "../x",
            declared("bad", u64::MAX),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AccessNoOrg));
    // Access before validation.
    let err = env
        .svc
        .upload(
            Some(&member("o", "u")),
            "org-logos",
            "../x",
            declared("bad", u64::MAX),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AccessRoleRequired { .. }));
    // Validation before guards.
    let err = env
        .svc
        .upload(
            Some(&admin("o", "u")),
            "org-logos",
            "../x",
            declared("text/html", u64::MAX),
        )
        .await
        .unwrap_err();
    assert_eq!(field_of(&err), ["path"]);
    // Size before MIME.
    let err = env
        .svc
        .upload(
            Some(&admin("o", "u")),
            "org-logos",
            "x",
            declared("text/html", u64::MAX),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }));
    assert!(env.db.objects().is_empty());
}

#[tokio::test]
async fn a_storage_failure_mid_upload_leaves_no_row() {
    let env = Env::new().await;
    let u = no_org("u");
    env.store.fail_puts.store(true, Ordering::SeqCst);
    let err = env
        .svc
        .upload(Some(&u), "avatars", "u/a.png", upload("image/png", b"data"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }));
    assert!(env.db.objects().is_empty());
    env.store.fail_puts.store(false, Ordering::SeqCst);

    // A body shorter than its Content-Length: storage refuses it, no row either.
    let short = Upload {
        content_length: 10,
        ..upload("image/png", b"short")
    };
    let err = env
        .svc
        .upload(Some(&u), "avatars", "u/a.png", short)
        .await
        .unwrap_err();
    assert_eq!(field_of(&err), ["body"]);
    assert!(env.db.objects().is_empty());
    assert!(env.stored("u/avatars/u/a.png").is_none());
    // The path is free again.
    env.svc
        .upload(Some(&u), "avatars", "u/a.png", upload("image/png", b"data"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_failed_upsert_keeps_the_previous_object_and_row() {
    let env = Env::new().await;
    let u = no_org("u");
    let first = env
        .svc
        .upload(Some(&u), "avatars", "u/a.png", upload("image/png", b"one"))
        .await
        .unwrap();
    env.store.fail_puts.store(true, Ordering::SeqCst);
    env.svc
        .upload(Some(&u), "avatars", "u/a.png", upsert("image/png", b"two"))
        .await
        .unwrap_err();
    let head = env.svc.head(Some(&u), "avatars", "u/a.png").await.unwrap();
    assert_eq!(head, first);
    assert_eq!(env.stored(first.key.as_str()).unwrap(), &b"one"[..]);
}

// ---------------------------------------------------------------------------------------
// Reads, read scopes and the firewall
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn download_streams_ranges_and_head_reads_the_row() {
    let env = Env::new().await;
    env.org_bucket("org_a", "docs", "org", "org").await;
    let writer = member("org_a", "w");
    env.svc
        .upload(
            Some(&writer),
            "docs",
            "r/report.txt",
            upload("text/plain", b"0123456789"),
        )
        .await
        .unwrap();
    // Another member of the organization reads it by path.
    let reader = member("org_a", "r");
    let d = env
        .svc
        .download(
            Some(&reader),
            "docs",
            "r/report.txt",
            Some(ByteRange::FromTo(2, 4)),
        )
        .await
        .unwrap();
    assert!(!d.public);
    assert_eq!(d.body.range, Some((2, 4)));
    assert_eq!(read_all(d.body).await, b"234");
    let head = env
        .svc
        .head(Some(&reader), "docs", "r/report.txt")
        .await
        .unwrap();
    assert_eq!(head.size, 10);
    let err = env
        .svc
        .head(Some(&reader), "docs", "r/missing.txt")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(Resource::Object)));
    assert_eq!(err.code(), "STORAGE_OBJECT_NOT_FOUND");
}

#[tokio::test]
async fn another_orgs_objects_and_buckets_are_hidden_or_revealed() {
    for (env, object_code, bucket_code) in [
        (
            Env::new().await,
            "STORAGE_OBJECT_NOT_FOUND",
            "STORAGE_BUCKET_NOT_FOUND",
        ),
        (
            Env::reveal().await,
            "FIREWALL_ORG_ISOLATION",
            "FIREWALL_ORG_ISOLATION",
        ),
    ] {
        env.org_bucket("org_a", "docs", "org", "org").await;
        let a = member("org_a", "alice");
        let out = env
            .svc
            .upload(
                Some(&a),
                "docs",
                "secret.pdf",
                upload("application/pdf", b"%PDF"),
            )
            .await
            .unwrap();
        let bob = member("org_b", "bob");
        let err = env.svc.url(Some(&bob), out.key.as_str()).await.unwrap_err();
        assert_eq!(err.code(), object_code);
        let err = env
            .svc
            .download_key(Some(&bob), out.key.as_str(), None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), object_code);
        // Platform admins do not cross the firewall either.
        let mut root = member("org_b", "root");
        root.platform_role = Some("admin".into());
        let err = env
            .svc
            .url(Some(&root), out.key.as_str())
            .await
            .unwrap_err();
        assert_eq!(err.code(), object_code);

        let bucket_id = env.svc.get_bucket(Some(&a), "docs").await.unwrap().id;
        let err = env
            .svc
            .get_bucket(Some(&bob), bucket_id.as_str())
            .await
            .unwrap_err();
        assert_eq!(err.code(), bucket_code);
        let err = env
            .svc
            .upload(
                Some(&bob),
                bucket_id.as_str(),
                "x.pdf",
                declared("application/pdf", 1),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), bucket_code);
        // By name, org B has no "docs": names resolve in the caller's organization.
        let err = env
            .svc
            .download(Some(&bob), "docs", "secret.pdf", None)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound(Resource::Bucket)));
        // Without credentials: hide mode answers as for a missing key (no existence
        // oracle), reveal mode asks for authentication.
        let err = env.svc.url(None, out.key.as_str()).await.unwrap_err();
        if object_code == "STORAGE_OBJECT_NOT_FOUND" {
            assert!(matches!(err, Error::NotFound(Resource::Object)), "{err:?}");
        } else {
            assert!(matches!(err, Error::AuthMissing), "{err:?}");
        }
    }
}

#[tokio::test]
async fn user_read_scope_keeps_rows_private_to_their_uploader() {
    for (env, code) in [
        (Env::new().await, "STORAGE_OBJECT_NOT_FOUND"),
        (Env::reveal().await, "FIREWALL_USER_ISOLATION"),
    ] {
        env.org_bucket("org_a", "inbox", "user", "org").await;
        let alice = member("org_a", "alice");
        let bob = member("org_a", "bob");
        env.svc
            .upload(
                Some(&alice),
                "inbox",
                "note.txt",
                upload("text/plain", b"hi"),
            )
            .await
            .unwrap();
        assert!(
            env.svc
                .head(Some(&alice), "inbox", "note.txt")
                .await
                .is_ok()
        );
        let err = env
            .svc
            .head(Some(&bob), "inbox", "note.txt")
            .await
            .unwrap_err();
        assert_eq!(err.code(), code);
        // Hide mode: deleting what one cannot see is deleting a missing path (200, no
        // effect); reveal mode says why.
        let deleted = env.svc.delete(Some(&bob), "inbox", "note.txt").await;
        match code {
            "STORAGE_OBJECT_NOT_FOUND" => assert!(deleted.is_ok(), "{deleted:?}"),
            _ => assert_eq!(deleted.unwrap_err().code(), code),
        }
        assert!(env.stored("org_a/inbox/note.txt").is_some(), "not deleted");
        // Writing over it: a taken path is 409 with or without upsert (hide mode never
        // answers the 404 a read gives); reveal mode says why for upsert.
        let err = env
            .svc
            .upload(Some(&bob), "inbox", "note.txt", upload("text/plain", b"x"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "STORAGE_OBJECT_EXISTS");
        let err = env
            .svc
            .upload(Some(&bob), "inbox", "note.txt", upsert("text/plain", b"x"))
            .await
            .unwrap_err();
        let upsert_code = match code {
            "STORAGE_OBJECT_NOT_FOUND" => "STORAGE_OBJECT_EXISTS",
            other => other,
        };
        assert_eq!(err.code(), upsert_code);
        let bobs = env
            .svc
            .list(Some(&bob), "inbox", ListObjects::default())
            .await
            .unwrap();
        assert!(bobs.items.is_empty());
        let alices = env
            .svc
            .list(Some(&alice), "inbox", ListObjects::default())
            .await
            .unwrap();
        assert_eq!(alices.items.len(), 1);
    }
}

#[tokio::test]
async fn authenticated_read_scope_admits_any_caller_but_not_anonymous() {
    let env = Env::new().await;
    env.org_bucket("org_a", "shared", "authenticated", "org")
        .await;
    let out = env
        .svc
        .upload(
            Some(&member("org_a", "a")),
            "shared",
            "f.txt",
            upload("text/plain", b"x"),
        )
        .await
        .unwrap();
    let url = env
        .svc
        .url(Some(&no_org("stranger")), out.key.as_str())
        .await
        .unwrap();
    assert!(
        url.url
            .starts_with("https://s3.test/filegate-files/org_a/shared/f.txt")
    );
    // Hide mode (the default): an anonymous caller cannot tell it from a missing key.
    assert!(matches!(
        env.svc.url(None, out.key.as_str()).await,
        Err(Error::NotFound(Resource::Object))
    ));
}

#[tokio::test]
async fn url_of_a_private_object_is_a_short_lived_signed_get() {
    let env = Env::with(ManagedPolicy {
        url_expiry: filegate_core::domain::Expiry::from_secs(60).unwrap(),
        files_url: "https://files.example.com/".into(),
        ..ManagedPolicy::default()
    })
    .await;
    env.org_bucket("org_a", "docs", "org", "org").await;
    let a = member("org_a", "a");
    let out = env
        .svc
        .upload(
            Some(&a),
            "docs",
            "q1 report.pdf",
            upload("application/pdf", b"%PDF"),
        )
        .await
        .unwrap();
    let url = env.svc.url(Some(&a), out.key.as_str()).await.unwrap();
    assert_eq!(
        url.url,
        "https://s3.test/filegate-files/org_a/docs/q1 report.pdf?method=GET&expires=60"
    );
    assert_eq!(url.expires_at, Some(datetime!(2026-03-01 12:01 UTC)));
    // Public URLs escape each key segment and drop the base URL's trailing '/'.
    let public = env
        .svc
        .upload(
            Some(&no_org("u")),
            "avatars",
            "u/my pic é.png",
            upload("image/png", b"p"),
        )
        .await
        .unwrap();
    assert_eq!(
        env.svc.url(None, public.key.as_str()).await.unwrap().url,
        "https://files.example.com/public/u/avatars/u/my%20pic%20%C3%A9.png"
    );
    // Unknown and malformed keys are not found.
    for key in ["org_a/docs/none.pdf", "../etc", ""] {
        assert!(matches!(
            env.svc.url(Some(&a), key).await,
            Err(Error::NotFound(Resource::Object))
        ));
    }
}

// ---------------------------------------------------------------------------------------
// Delete and list
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn delete_removes_object_and_row_and_is_idempotent() {
    let env = Env::new().await;
    let u = no_org("u");
    let out = env
        .svc
        .upload(Some(&u), "avatars", "u/a.png", upload("image/png", b"x"))
        .await
        .unwrap();
    for _ in 0..2 {
        env.svc
            .delete(Some(&u), "avatars", "u/a.png")
            .await
            .unwrap();
    }
    env.svc
        .delete(Some(&u), "avatars", "u/never.png")
        .await
        .unwrap();
    assert!(env.stored(out.key.as_str()).is_none());
    assert!(env.db.objects().is_empty());
    assert!(matches!(
        env.svc.url(None, out.key.as_str()).await,
        Err(Error::NotFound(Resource::Object))
    ));
    // Deleting needs write access like uploading.
    assert!(matches!(
        env.svc
            .delete(Some(&member("o", "m")), "org-logos", "a.png")
            .await,
        Err(Error::AccessRoleRequired { .. })
    ));
}

#[tokio::test]
async fn list_pages_by_path_with_a_stable_cursor() {
    let env = Env::new().await;
    env.org_bucket("org_a", "docs", "org", "org").await;
    let m = member("org_a", "m");
    for p in ["b/2.txt", "a/1.txt", "b/1.txt", "c.txt", "a/2.txt"] {
        env.svc
            .upload(Some(&m), "docs", p, upload("text/plain", b"x"))
            .await
            .unwrap();
    }
    // A pending upload and another organization's objects are not listed.
    env.svc
        .presign(Some(&m), "docs", "a/pending.txt", presign("text/plain", 1))
        .await
        .unwrap();
    env.org_bucket("org_b", "docs", "org", "org").await;
    env.svc
        .upload(
            Some(&member("org_b", "x")),
            "docs",
            "a/0.txt",
            upload("text/plain", b"x"),
        )
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = env
            .svc
            .list(
                Some(&m),
                "docs",
                ListObjects {
                    limit: Some(2),
                    cursor: cursor.clone(),
                    ..ListObjects::default()
                },
            )
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|o| o.path.to_string()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, ["a/1.txt", "a/2.txt", "b/1.txt", "b/2.txt", "c.txt"]);

    let b = env
        .svc
        .list(
            Some(&m),
            "docs",
            ListObjects {
                prefix: Some("b/".into()),
                ..ListObjects::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        b.items.iter().map(|o| o.path.as_str()).collect::<Vec<_>>(),
        ["b/1.txt", "b/2.txt"]
    );
    assert_eq!(b.next_cursor, None);
    for limit in [0, 1001] {
        let err = env
            .svc
            .list(
                Some(&m),
                "docs",
                ListObjects {
                    limit: Some(limit),
                    ..ListObjects::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(field_of(&err), ["limit"]);
    }
}

// ---------------------------------------------------------------------------------------
// Presign and confirm
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn presign_checks_limits_signs_the_size_and_writes_a_pending_row() {
    let env = Env::new().await;
    let u = no_org("u");
    let p = env
        .svc
        .presign(Some(&u), "avatars", "u/a.png", presign("image/png", 1234))
        .await
        .unwrap();
    assert_eq!(p.key.as_str(), "u/avatars/u/a.png");
    assert_eq!(p.headers.get("Content-Length").unwrap(), "1234");
    assert_eq!(p.headers.get("Content-Type").unwrap(), "image/png");
    assert_eq!(
        p.upload_url,
        "https://s3.test/filegate-files/u/avatars/u/a.png?method=PUT&expires=600"
    );
    assert_eq!(p.expires_at, datetime!(2026-03-01 12:10 UTC));
    let rows = env.db.objects();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, p.id);
    assert_eq!(rows[0].status, ObjectStatus::Pending);
    assert_eq!(rows[0].size, 1234);
    // Pending objects are not served.
    assert!(matches!(
        env.svc.url(None, p.key.as_str()).await,
        Err(Error::NotFound(Resource::Object))
    ));

    for (input, code) in [
        (presign("image/png", 5 * MIB + 1), "STORAGE_FILE_TOO_LARGE"),
        (presign("application/zip", 1), "STORAGE_MIME_NOT_ALLOWED"),
    ] {
        let err = env
            .svc
            .presign(Some(&u), "avatars", "u/b.png", input)
            .await
            .unwrap_err();
        assert_eq!(err.code(), code);
    }
    assert_eq!(env.db.objects().len(), 1, "refused presigns write nothing");
}

#[tokio::test]
async fn confirm_copies_the_real_metadata_and_is_idempotent() {
    let env = Env::new().await;
    let u = no_org("u");
    let p = env
        .svc
        .presign(Some(&u), "avatars", "u/a.png", presign("image/png", 5))
        .await
        .unwrap();
    // Not uploaded yet: 409, and the row stays pending for a later confirm.
    let err = env
        .svc
        .confirm(Some(&u), "avatars", "u/a.png")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotUploaded));
    assert_eq!(err.code(), "STORAGE_NOT_UPLOADED");
    assert_eq!(env.db.objects()[0].status, ObjectStatus::Pending);

    env.client_put(p.key.as_str(), b"pngxx", "image/png").await;
    let done = env
        .svc
        .confirm(Some(&u), "avatars", "u/a.png")
        .await
        .unwrap();
    assert_eq!(done.id, p.id);
    assert_eq!(done.size, 5);
    assert!(done.etag.is_some());
    assert_eq!(env.db.objects()[0].status, ObjectStatus::Confirmed);
    let again = env
        .svc
        .confirm(Some(&u), "avatars", "u/a.png")
        .await
        .unwrap();
    assert_eq!(again, done);
    // Now it is a normal object: a presign over it is a conflict.
    assert!(matches!(
        env.svc
            .presign(Some(&u), "avatars", "u/a.png", presign("image/png", 1))
            .await,
        Err(Error::ObjectExists)
    ));
    assert!(matches!(
        env.svc.confirm(Some(&u), "avatars", "u/none.png").await,
        Err(Error::NotFound(Resource::Object))
    ));
}

#[tokio::test]
async fn confirm_of_an_object_other_than_the_declared_one_deletes_it() {
    let env = Env::with(ManagedPolicy::default()).await;
    env.svc
        .create_bucket(
            Some(&admin("org_a", "a")),
            CreateBucket {
                name: "tiny".into(),
                file_size_limit: Some(4),
                allowed_mime_types: vec!["image/*".into()],
                ..CreateBucket::default()
            },
        )
        .await
        .unwrap();
    let m = member("org_a", "m");
    for (path, data, ct, field) in [
        ("big.png", &b"too big"[..], "image/png", "size"),
        ("page.png", &b"<h1>"[..], "text/html", "contentType"),
    ] {
        let p = env
            .svc
            .presign(Some(&m), "tiny", path, presign("image/png", 4))
            .await
            .unwrap();
        // A client that ignored the signed headers (or a store that does not enforce them).
        env.client_put(p.key.as_str(), data, ct).await;
        let err = env.svc.confirm(Some(&m), "tiny", path).await.unwrap_err();
        let Error::Validation(fields) = &err else {
            panic!("expected validation, got {err:?}");
        };
        assert_eq!(fields[0].field, field);
        assert!(
            fields[0].message.contains("declared"),
            "{}",
            fields[0].message
        );
        assert!(env.stored(p.key.as_str()).is_none(), "object deleted");
        assert!(env.db.objects().is_empty(), "row deleted");
    }
}

#[tokio::test]
async fn a_pending_upload_keeps_its_path_until_deleted_even_from_its_uploader() {
    let env = Env::new().await;
    let u = no_org("u");
    env.svc
        .presign(Some(&u), "avatars", "u/a.png", presign("image/png", 9))
        .await
        .unwrap();
    // Replacing it would let the presign's confirm report this upload's bytes as its own.
    let err = env
        .svc
        .upload(
            Some(&u),
            "avatars",
            "u/a.png",
            upload("image/png", b"direct"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "STORAGE_OBJECT_EXISTS");
    env.svc
        .delete(Some(&u), "avatars", "u/a.png")
        .await
        .unwrap();
    let out = env
        .svc
        .upload(
            Some(&u),
            "avatars",
            "u/a.png",
            upload("image/png", b"direct"),
        )
        .await
        .unwrap();
    let rows = env.db.objects();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, out.id);
    assert_eq!(rows[0].status, ObjectStatus::Confirmed);
}

#[tokio::test]
async fn a_presign_over_another_members_pending_upload_is_409_and_only_its_uploader_confirms() {
    let env = Env::new().await;
    env.org_bucket("org_a", "inbox", "user", "org").await;
    let alice = member("org_a", "alice");
    let bob = member("org_a", "bob");
    let p = env
        .svc
        .presign(Some(&alice), "inbox", "doc.txt", presign("text/plain", 6))
        .await
        .unwrap();
    // Bob can neither take the path over nor upload there while Alice's URL is live.
    let err = env
        .svc
        .presign(Some(&bob), "inbox", "doc.txt", presign("text/plain", 6))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "STORAGE_OBJECT_EXISTS");
    for input in [
        upload("text/plain", b"bob's!"),
        upsert("text/plain", b"bob's!"),
    ] {
        let err = env
            .svc
            .upload(Some(&bob), "inbox", "doc.txt", input)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "STORAGE_OBJECT_EXISTS");
    }
    env.client_put(p.key.as_str(), b"alice!", "text/plain")
        .await;
    // Bob cannot confirm (and so read) Alice's upload.
    let err = env
        .svc
        .confirm(Some(&bob), "inbox", "doc.txt")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "STORAGE_OBJECT_NOT_FOUND");
    assert_eq!(env.db.objects()[0].status, ObjectStatus::Pending);
    let done = env
        .svc
        .confirm(Some(&alice), "inbox", "doc.txt")
        .await
        .unwrap();
    assert_eq!(done.id, p.id);
    assert_eq!(
        env.svc
            .head(Some(&bob), "inbox", "doc.txt")
            .await
            .unwrap_err()
            .code(),
        "STORAGE_OBJECT_NOT_FOUND"
    );
}

#[tokio::test]
async fn a_pending_row_is_abandoned_only_after_its_url_expiry_and_a_grace() {
    let env = Env::new().await;
    env.org_bucket("org_a", "docs", "org", "org").await;
    let alice = member("org_a", "alice");
    let bob = member("org_a", "bob");
    let p = env
        .svc
        .presign(Some(&alice), "docs", "a.txt", presign("text/plain", 3))
        .await
        .unwrap();
    // Past the URL's 10 minutes but within the grace: a PUT may still be streaming.
    env.advance(11 * 60);
    let err = env
        .svc
        .upload(Some(&bob), "docs", "a.txt", upload("text/plain", b"bob"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "STORAGE_OBJECT_EXISTS");
    // Past the grace: the key is anyone's again, and the abandoned row is gone.
    env.advance(3600);
    let out = env
        .svc
        .upload(Some(&bob), "docs", "a.txt", upload("text/plain", b"bob"))
        .await
        .unwrap();
    assert_ne!(out.id, p.id);
    assert_eq!(env.db.objects().len(), 1);
}

#[tokio::test]
async fn a_read_of_bytes_that_are_not_the_rows_is_refused_and_reported() {
    let env = Env::new().await;
    let u = no_org("u");
    let out = env
        .svc
        .upload(Some(&u), "avatars", "u/a.png", upload("image/png", b"one"))
        .await
        .unwrap();
    // Storage changed behind the row (a writer that bypassed it).
    env.client_put(out.key.as_str(), b"two", "image/png").await;
    let err = env
        .svc
        .download(Some(&u), "avatars", "u/a.png", None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ObjectChanged), "{err:?}");
    assert_eq!(err.code(), "STORAGE_OBJECT_CHANGED");
    let err = env
        .svc
        .download_key(None, out.key.as_str(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ObjectChanged), "{err:?}");
    assert_eq!(env.etag_mismatches.load(Ordering::SeqCst), 2);
    // An upsert writes row and bytes together again.
    env.svc
        .upload(
            Some(&u),
            "avatars",
            "u/a.png",
            upsert("image/png", b"three"),
        )
        .await
        .unwrap();
    let got = env
        .svc
        .download(Some(&u), "avatars", "u/a.png", None)
        .await
        .unwrap();
    assert_eq!(read_all(got.body).await, b"three");
}

/// A body that yields to the runtime between chunks, so concurrent uploads interleave.
fn slow_body(data: &'static [u8]) -> ByteStream {
    futures::stream::iter(data.chunks(2))
        .then(|c| async move {
            tokio::task::yield_now().await;
            Ok(Bytes::from_static(c))
        })
        .boxed()
}

#[tokio::test]
#[expect(
    clippy::many_single_char_names,
    reason = "writers a, b, c and their uploads"
)]
async fn concurrent_writers_of_one_path_leave_the_row_and_the_bytes_of_the_same_upload() {
    let env = Env::new().await;
    let u = no_org("u");
    let a = Upload {
        body: slow_body(b"aaaaaaaaaa"),
        ..upload("image/png", b"aaaaaaaaaa")
    };
    let b = Upload {
        body: slow_body(b"bbbbbbbbbbbb"),
        ..upload("image/png", b"bbbbbbbbbbbb")
    };
    let (ra, rb) = tokio::join!(
        env.svc.upload(Some(&u), "avatars", "u/x.png", a),
        env.svc.upload(Some(&u), "avatars", "u/x.png", b),
    );
    let (won, lost, bytes) = match (&ra, &rb) {
        (Ok(w), Err(l)) => (w, l, &b"aaaaaaaaaa"[..]),
        (Err(l), Ok(w)) => (w, l, &b"bbbbbbbbbbbb"[..]),
        other => panic!("expected one winner and one 409, got {other:?}"),
    };
    assert_eq!(lost.code(), "STORAGE_OBJECT_EXISTS");
    assert_eq!(env.stored(won.key.as_str()).unwrap(), bytes);
    assert_eq!(won.size, bytes.len() as u64);

    // Upserts: last writer wins for row and bytes alike.
    let a = Upload {
        body: slow_body(b"cccccccc"),
        ..upsert("image/png", b"cccccccc")
    };
    let b = Upload {
        body: slow_body(b"dddddd"),
        ..upsert("image/png", b"dddddd")
    };
    let (ra, rb) = tokio::join!(
        env.svc.upload(Some(&u), "avatars", "u/x.png", a),
        env.svc.upload(Some(&u), "avatars", "u/x.png", b),
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let row = env.db.objects().into_iter().next().unwrap();
    let served = env.stored(row.key.as_str()).unwrap();
    assert_eq!(row.size, served.len() as u64);
    assert!(row.etag == ra.etag || row.etag == rb.etag);
    let got = env
        .svc
        .download(Some(&u), "avatars", "u/x.png", None)
        .await
        .unwrap();
    assert_eq!(read_all(got.body).await, served.to_vec());
}

#[tokio::test]
async fn a_presign_clears_an_object_left_without_a_row_so_its_create_only_put_can_land() {
    let env = Env::new().await;
    let u = no_org("u");
    // A replayed URL after a delete left bytes without a row.
    env.client_put("u/avatars/u/a.png", b"old", "image/png")
        .await;
    let p = env
        .svc
        .presign(Some(&u), "avatars", "u/a.png", presign("image/png", 3))
        .await
        .unwrap();
    assert_eq!(
        p.headers.get("If-None-Match").map(String::as_str),
        Some("*")
    );
    assert!(env.stored(p.key.as_str()).is_none());
}

// ---------------------------------------------------------------------------------------
// Bucket management
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn buckets_are_managed_by_org_admins_and_project_wide_ones_by_platform_admins() {
    let env = Env::new().await;
    let a = admin("org_a", "a");
    let b = env
        .svc
        .create_bucket(
            Some(&a),
            CreateBucket {
                name: "docs".into(),
                read_scope: Some("public".into()),
                write_scope: Some("member+".into()),
                file_size_limit: Some(1000),
                allowed_mime_types: vec![
                    "image/*".into(),
                    "application/pdf".into(),
                    "image/*".into(),
                ],
                ..CreateBucket::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(b.organization_id.as_deref(), Some("org_a"));
    assert_eq!(b.allowed_mime_strings(), ["image/*", "application/pdf"]);
    assert!(b.id.as_str().starts_with("bkt_"));
    // The wire form (`readScope`, `public`) is the server's `BucketView`, tested there.
    assert_eq!(b.read_scope.as_str(), "public");
    assert!(b.is_public());

    let create = |name: &str| CreateBucket {
        name: name.into(),
        ..CreateBucket::default()
    };
    assert!(matches!(
        env.svc.create_bucket(Some(&a), create("docs")).await,
        Err(Error::BucketExists)
    ));
    // Same name elsewhere is fine.
    env.svc
        .create_bucket(Some(&admin("org_b", "b")), create("docs"))
        .await
        .unwrap();
    assert!(matches!(
        env.svc
            .create_bucket(Some(&member("org_a", "m")), create("x-docs"))
            .await,
        Err(Error::AccessRoleRequired { .. })
    ));
    assert!(matches!(
        env.svc
            .create_bucket(Some(&no_org("u")), create("x-docs"))
            .await,
        Err(Error::AccessNoOrg)
    ));
    assert!(matches!(
        env.svc.create_bucket(None, create("x-docs")).await,
        Err(Error::AuthMissing)
    ));
    let project = CreateBucket {
        project_wide: true,
        ..create("shared")
    };
    let err = env
        .svc
        .create_bucket(Some(&a), project.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AccessAdminRequired));
    assert_eq!(err.code(), "ACCESS_ADMIN_REQUIRED");
    let shared = env
        .svc
        .create_bucket(Some(&platform_admin()), project)
        .await
        .unwrap();
    assert!(shared.is_project_wide());
    assert!(matches!(
        env.svc
            .update_bucket(Some(&a), "shared", UpdateBucket::default())
            .await,
        Err(Error::AccessAdminRequired)
    ));

    let names: Vec<(String, Option<String>)> = env
        .svc
        .list_buckets(Some(&member("org_a", "m")))
        .await
        .unwrap()
        .into_iter()
        .map(|b| (b.name.to_string(), b.organization_id))
        .collect();
    assert_eq!(
        names,
        [
            ("avatars".into(), None),
            ("docs".into(), Some("org_a".into())),
            ("org-logos".into(), None),
            ("shared".into(), None),
        ]
    );
}

#[tokio::test]
async fn an_org_bucket_shadows_a_project_wide_one_of_the_same_name() {
    let env = Env::new().await;
    env.org_bucket("org_a", "avatars", "org", "org").await;
    let a = member("org_a", "m");
    let resolved = env.svc.get_bucket(Some(&a), "avatars").await.unwrap();
    assert_eq!(resolved.organization_id.as_deref(), Some("org_a"));
    let other = env
        .svc
        .get_bucket(Some(&member("org_b", "x")), "avatars")
        .await
        .unwrap();
    assert!(other.is_project_wide());
}

#[tokio::test]
async fn bucket_fields_are_validated_together() {
    let env = Env::new().await;
    let err = env
        .svc
        .create_bucket(
            Some(&admin("org_a", "a")),
            CreateBucket {
                name: "Bad Name".into(),
                read_scope: Some("everyone".into()),
                write_scope: Some("PUBLIC".into()),
                file_size_limit: Some(0),
                allowed_mime_types: vec!["image".into()],
                ..CreateBucket::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        field_of(&err),
        [
            "name",
            "readScope",
            "writeScope",
            "fileSizeLimit",
            "allowedMimeTypes"
        ]
    );
    let err = env
        .svc
        .create_bucket(
            Some(&admin("org_a", "a")),
            CreateBucket {
                name: "ok-name".into(),
                write_scope: Some("editor+".into()),
                file_size_limit: Some(101 * MIB),
                ..CreateBucket::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(field_of(&err), ["writeScope", "fileSizeLimit"]);
}

#[tokio::test]
async fn update_changes_limits_and_scopes_but_not_the_key_layout_of_a_used_bucket() {
    let env = Env::new().await;
    env.org_bucket("org_a", "docs", "org", "org").await;
    let a = admin("org_a", "a");
    let updated = env
        .svc
        .update_bucket(
            Some(&a),
            "docs",
            UpdateBucket {
                read_scope: Some("public".into()),
                write_scope: Some("admin+".into()),
                file_size_limit: Some(Some(3)),
                allowed_mime_types: Some(vec!["text/*".into()]),
            },
        )
        .await
        .unwrap();
    assert!(updated.is_public());
    assert_eq!(updated.write_scope.to_string(), "admin+");
    assert_eq!(env.svc.get_bucket(Some(&a), "docs").await.unwrap(), updated);
    let err = env
        .svc
        .upload(Some(&a), "docs", "f.txt", declared("text/plain", 4))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { max: 3, .. }));
    env.svc
        .upload(Some(&a), "docs", "f.txt", upload("text/plain", b"abc"))
        .await
        .unwrap();
    let err = env
        .svc
        .update_bucket(
            Some(&a),
            "docs",
            UpdateBucket {
                write_scope: Some("user".into()),
                ..UpdateBucket::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(field_of(&err), ["writeScope"]);
    assert!(matches!(
        env.svc
            .update_bucket(Some(&member("org_a", "m")), "docs", UpdateBucket::default())
            .await,
        Err(Error::AccessRoleRequired { .. })
    ));
}

#[tokio::test]
async fn deleting_a_non_empty_bucket_needs_empty() {
    let env = Env::new().await;
    env.org_bucket("org_a", "docs", "org", "org").await;
    let a = admin("org_a", "a");
    let mut keys = Vec::new();
    for p in ["a.txt", "b.txt", "c/d.txt"] {
        keys.push(
            env.svc
                .upload(Some(&a), "docs", p, upload("text/plain", b"x"))
                .await
                .unwrap()
                .key,
        );
    }
    env.svc
        .presign(Some(&a), "docs", "pending.txt", presign("text/plain", 1))
        .await
        .unwrap();
    let err = env
        .svc
        .delete_bucket(Some(&a), "docs", false)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BucketNotEmpty));
    assert_eq!(err.code(), "STORAGE_BUCKET_NOT_EMPTY");
    assert!(keys.iter().all(|k| env.stored(k.as_str()).is_some()));

    env.svc.delete_bucket(Some(&a), "docs", true).await.unwrap();
    assert!(keys.iter().all(|k| env.stored(k.as_str()).is_none()));
    assert!(env.db.objects().is_empty());
    assert!(matches!(
        env.svc.get_bucket(Some(&a), "docs").await,
        Err(Error::NotFound(Resource::Bucket))
    ));
    // An empty bucket needs no flag.
    env.org_bucket("org_a", "empty", "org", "org").await;
    env.svc
        .delete_bucket(Some(&a), "empty", false)
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------
// Multipart uploads
// ---------------------------------------------------------------------------------------

/// Uploads part `n` of `len` bytes straight to storage, as a client with its URL would.
async fn client_part(env: &Env, key: &str, upload_id: &str, n: u32, len: u64) -> String {
    let data: Vec<u8> = vec![u8::try_from(n).unwrap_or(0); usize::try_from(len).expect("usize")];
    env.store
        .inner
        .upload_part(
            &env.physical,
            &ObjectKey::parse(key).expect("key"),
            upload_id,
            n,
            PutObject {
                content_length: len,
                content_type: None,
                body: futures::stream::once(async move { Ok(Bytes::from(data)) }).boxed(),
            },
        )
        .await
        .expect("client part")
}

#[tokio::test]
async fn a_managed_multipart_upload_holds_its_path_and_completes_into_a_confirmed_object() {
    let env = Env::new().await;
    env.org_bucket("org_a", "videos", "org", "org").await;
    let owner = member("org_a", "user_1");
    let started = env
        .svc
        .create_multipart(
            Some(&owner),
            "videos",
            "a.mp4",
            CreateObjectMultipart {
                content_type: "video/mp4".into(),
                size: 11 * MIB,
                part_size: Some(5 * MIB),
            },
        )
        .await
        .expect("create");
    assert_eq!(started.part_count, 3);
    let key = started.key.as_str().to_owned();
    // The path is taken while the upload runs.
    let taken = env
        .svc
        .presign(
            Some(&owner),
            "videos",
            "a.mp4",
            PresignUpload {
                content_type: "video/mp4".into(),
                size: 3,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(taken, Error::ObjectExists), "{taken:?}");

    let mut parts = Vec::new();
    for (n, len) in [(1, 5 * MIB), (2, 5 * MIB), (3, MIB)] {
        let etag = client_part(&env, &key, &started.upload_id, n, len).await;
        parts.push(CompletedPart {
            part_number: n,
            etag,
        });
    }
    // Another member of the organization, and another organization, see no upload.
    for stranger in [member("org_a", "user_2"), member("org_b", "user_3")] {
        let err = env
            .svc
            .complete_multipart(Some(&stranger), &started.id, &parts)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound(Resource::Object)), "{err:?}");
    }
    let held = env.svc.list_parts(Some(&owner), &started.id).await.unwrap();
    assert_eq!(held.len(), 3);
    let object = env
        .svc
        .complete_multipart(Some(&owner), &started.id, &parts)
        .await
        .expect("complete");
    assert_eq!(object.size, 11 * MIB);
    assert_eq!(object.content_type, "video/mp4");
    let row = env
        .db
        .objects()
        .into_iter()
        .find(|r| r.key.as_str() == key)
        .unwrap();
    assert_eq!(row.status, ObjectStatus::Confirmed);
    assert_eq!(row.multipart, None);
    // The upload is finished: its routes answer Upload not found.
    let err = env
        .svc
        .list_parts(Some(&owner), &started.id)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(Resource::Upload)), "{err:?}");
}

#[tokio::test]
async fn a_wrong_part_list_confirms_nothing_and_abort_leaves_nothing() {
    let env = Env::new().await;
    env.org_bucket("org_a", "videos", "org", "org").await;
    let owner = member("org_a", "user_1");
    let started = env
        .svc
        .create_multipart(
            Some(&owner),
            "videos",
            "b.mp4",
            CreateObjectMultipart {
                content_type: "video/mp4".into(),
                size: 6 * MIB,
                part_size: Some(5 * MIB),
            },
        )
        .await
        .expect("create");
    let key = started.key.as_str().to_owned();
    let e1 = client_part(&env, &key, &started.upload_id, 1, 5 * MIB).await;
    // Part 2 one byte short of the plan (a URL would have refused it; storage is lenient).
    let e2 = client_part(&env, &key, &started.upload_id, 2, MIB - 1).await;
    let list = vec![
        CompletedPart {
            part_number: 1,
            etag: e1,
        },
        CompletedPart {
            part_number: 2,
            etag: e2,
        },
    ];
    let err = env
        .svc
        .complete_multipart(Some(&owner), &started.id, &list)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Validation(ref f) if f[0].field == "size"),
        "{err:?}"
    );
    assert!(env.stored(&key).is_none(), "nothing completed");

    env.svc
        .abort_multipart(Some(&owner), &started.id)
        .await
        .expect("abort");
    assert!(env.db.objects().iter().all(|r| r.key.as_str() != key));
    let left = env
        .store
        .inner
        .list_multipart_uploads(
            &env.physical,
            OffsetDateTime::now_utc() + time::Duration::hours(1),
        )
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}
