//! `MediaService` through mockall mocks: each layer of the check order, and what confirm
//! leaves behind when it refuses an object.

use super::*;
use crate::domain::{AccessRule, FirewallMode};
use crate::ports::{
    MockAuditLog, MockClock, MockMediaStore, MockObjectStore, MockUrlSigner, PresignedUrl,
};
use time::macros::datetime;

pub(super) fn member(org: &str) -> Principal {
    Principal {
        user_id: "user_1".into(),
        active_org_id: Some(org.into()),
        roles: vec!["member".into()],
        platform_role: None,
        method: crate::domain::AuthMethod::default(),
    }
}

pub(super) fn signer() -> MockUrlSigner {
    let mut s = MockUrlSigner::new();
    s.expect_presign().returning(|r| {
        Ok(PresignedUrl {
            url: format!("https://s3.test/{}/{}?sig", r.bucket, r.key),
            headers: r.headers.clone(),
        })
    });
    s
}

/// An audit log that must not be written: no rule is PUBLIC.
pub(super) fn no_audit() -> MockAuditLog {
    let mut a = MockAuditLog::new();
    a.expect_record().never();
    a
}

fn service_with(
    signer: MockUrlSigner,
    media: MockMediaStore,
    audit: MockAuditLog,
    policy: MediaPolicy,
) -> MediaService {
    service_full(signer, MockObjectStore::new(), media, audit, policy)
}

pub(super) fn service_full(
    signer: MockUrlSigner,
    objects: MockObjectStore,
    media: MockMediaStore,
    audit: MockAuditLog,
    policy: MediaPolicy,
) -> MediaService {
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
    MediaService::new(
        storage,
        Arc::new(objects),
        Arc::new(media),
        Arc::new(audit),
        clock,
        policy,
    )
    .unwrap()
}

fn service(signer: MockUrlSigner, media: MockMediaStore) -> MediaService {
    service_with(signer, media, no_audit(), MediaPolicy::default())
}

pub(super) fn req() -> RequestInfo {
    RequestInfo::new("POST", "/api/v1/media/sign-upload").with_ip("192.0.2.1")
}

fn upload(filename: &str, ct: &str, size: Option<u64>) -> SignUpload {
    SignUpload {
        filename: filename.into(),
        content_type: ct.into(),
        size,
    }
}

fn policy(f: impl FnOnce(&mut MediaPolicy)) -> MediaPolicy {
    let mut p = MediaPolicy::default();
    f(&mut p);
    p
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
                && m.status == MediaStatus::Pending
                && m.size.is_none()
                && m.upload_expires_at == Some(datetime!(2026-03-01 12:10 UTC))
        })
        .times(1)
        .returning(|_| Ok(()));
    let svc = service(signer(), media);
    // Act
    let out = svc
        .sign_upload(
            Some(&member("org_a")),
            &req(),
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
        .sign_upload(Some(&p), &req(), upload("a.pdf", "application/pdf", None))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AccessNoOrg));
}

#[tokio::test]
async fn anonymous_callers_are_refused_first_and_nothing_is_touched() {
    let mut media = MockMediaStore::new();
    media.expect_insert().never();
    media.expect_find().never();
    media.expect_list().never();
    let mut s = MockUrlSigner::new();
    s.expect_presign().never();
    let svc = service(s, media);
    let up = svc
        .sign_upload(None, &req(), upload("../bad", "nope", Some(u64::MAX)))
        .await;
    let down = svc
        .sign_download(None, &req(), "garbage", SignDownload::default())
        .await;
    let list = svc.list(None, &req(), Some(0), None, None).await;
    assert!(matches!(up, Err(Error::AuthMissing)));
    assert!(matches!(down, Err(Error::AuthMissing)));
    assert!(matches!(list, Err(Error::AuthMissing)));
}

#[tokio::test]
async fn access_is_checked_before_validation() {
    let mut media = MockMediaStore::new();
    media.expect_insert().never();
    let svc = service_with(
        signer(),
        media,
        no_audit(),
        policy(|p| p.rules.sign_upload = AccessRule::at_least("admin")),
    );
    let err = svc
        .sign_upload(Some(&member("o")), &req(), upload("../x", "bad", None))
        .await
        .unwrap_err();
    let Error::AccessRoleRequired { required, current } = err else {
        panic!("expected AccessRoleRequired, got {err:?}");
    };
    assert_eq!(required, "admin+");
    assert_eq!(current, ["member"]);
}

#[tokio::test]
async fn sign_upload_reports_every_bad_field_at_once() {
    let mut media = MockMediaStore::new();
    media.expect_insert().never();
    let svc = service(signer(), media);
    let err = svc
        .sign_upload(
            Some(&member("o")),
            &req(),
            upload("../../etc/passwd", "not a type", None),
        )
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
            Some(&member("o")),
            &req(),
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
        .sign_upload(
            Some(&member("o")),
            &req(),
            upload("a.txt", "text/plain", None),
        )
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
        status: MediaStatus::Confirmed,
        size: Some(3),
        etag: None,
        upload_expires_at: None,
        multipart: None,
    }
}

fn finding(r: Media) -> MockMediaStore {
    let mut media = MockMediaStore::new();
    let id = r.id.clone();
    media
        .expect_find()
        .withf(move |i| *i == id)
        .returning(move |_| Ok(Some(r.clone())));
    media
}

#[tokio::test]
async fn require_size_refuses_an_upload_without_one() {
    let mut media = MockMediaStore::new();
    media.expect_insert().never();
    let mut s = MockUrlSigner::new();
    s.expect_presign().never();
    let svc = service_with(s, media, no_audit(), policy(|p| p.require_size = true));
    let err = svc
        .sign_upload(
            Some(&member("o")),
            &req(),
            upload("a.txt", "text/plain", None),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Validation(ref f) if f[0].field == "size"),
        "{err:?}"
    );
    let mut media = MockMediaStore::new();
    media.expect_insert().times(1).returning(|_| Ok(()));
    let svc = service_with(
        signer(),
        media,
        no_audit(),
        policy(|p| p.require_size = true),
    );
    svc.sign_upload(
        Some(&member("o")),
        &req(),
        upload("a.txt", "text/plain", Some(2)),
    )
    .await
    .unwrap();
}

fn pending(org: &str, declared: Option<u64>) -> Media {
    Media {
        status: MediaStatus::Pending,
        size: None,
        declared_size: declared,
        ..row(org)
    }
}

fn meta(size: u64, ct: &str) -> ObjectMeta {
    ObjectMeta {
        size,
        etag: Some("\"e1\"".into()),
        content_type: Some(ct.into()),
        last_modified: None,
    }
}

fn storage_holding(m: Option<ObjectMeta>) -> MockObjectStore {
    let mut objects = MockObjectStore::new();
    objects
        .expect_head()
        .times(1)
        .returning(move |_, _| m.clone().ok_or(Error::NotFound(Resource::Object)));
    objects
}

#[tokio::test]
async fn confirm_records_the_objects_real_metadata() {
    let r = pending("o", None);
    let id = r.id.to_string();
    let mut media = finding(r.clone());
    media
        .expect_confirm()
        .withf(|_, c| c.size == 3 && c.etag.as_deref() == Some("\"e1\""))
        .times(1)
        .returning(move |_, c| {
            Ok(Media {
                status: MediaStatus::Confirmed,
                size: Some(c.size),
                etag: c.etag.clone(),
                ..r.clone()
            })
        });
    media.expect_delete().never();
    let objects = storage_holding(Some(meta(3, "application/pdf")));
    let svc = service_full(signer(), objects, media, no_audit(), MediaPolicy::default());
    let got = svc.confirm(Some(&member("o")), &req(), &id).await.unwrap();
    assert_eq!(got.status, MediaStatus::Confirmed);
    assert_eq!(got.size, Some(3));
}

#[tokio::test]
async fn confirm_without_an_object_is_not_uploaded_and_keeps_the_row() {
    let r = pending("o", None);
    let id = r.id.to_string();
    let mut media = finding(r);
    media.expect_confirm().never();
    media.expect_delete().never();
    let mut objects = storage_holding(None);
    objects.expect_delete().never();
    let svc = service_full(signer(), objects, media, no_audit(), MediaPolicy::default());
    let err = svc
        .confirm(Some(&member("o")), &req(), &id)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotUploaded), "{err:?}");
}

/// A refused object is deleted, then its row, and the caller gets `check`'s error.
async fn refused(r: Media, stored: ObjectMeta, check: impl Fn(&Error) -> bool) {
    let id = r.id.to_string();
    let mut seq = mockall::Sequence::new();
    let mut objects = storage_holding(Some(stored));
    let key = r.key.clone();
    objects
        .expect_delete()
        .withf(move |_, k| *k == key)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(()));
    let mut media = finding(r.clone());
    media.expect_confirm().never();
    let rid = r.id.clone();
    media
        .expect_delete()
        .withf(move |i| *i == rid)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    let small = policy(|p| p.shared.max_upload_size = ByteSize(10));
    let svc = service_full(signer(), objects, media, no_audit(), small);
    let err = svc
        .confirm(Some(&member("o")), &req(), &id)
        .await
        .unwrap_err();
    assert!(check(&err), "{err:?}");
}

#[tokio::test]
async fn confirm_deletes_an_object_over_the_limit_of_another_type_or_size() {
    refused(pending("o", None), meta(11, "application/pdf"), |e| {
        matches!(e, Error::TooLarge { size: 11, max: 10 })
    })
    .await;
    refused(
        pending("o", None),
        meta(3, "text/html"),
        |e| matches!(e, Error::Validation(f) if f[0].field == "contentType"),
    )
    .await;
    refused(
        pending("o", Some(4)),
        meta(3, "application/pdf"),
        |e| matches!(e, Error::Validation(f) if f[0].field == "size"),
    )
    .await;
}

#[tokio::test]
async fn sign_download_confirms_a_pending_row_first_and_refuses_a_missing_object() {
    let r = pending("o", None);
    let id = r.id.to_string();
    let mut s = MockUrlSigner::new();
    s.expect_presign().never();
    let svc = service_full(
        s,
        storage_holding(None),
        finding(r),
        no_audit(),
        MediaPolicy::default(),
    );
    let err = svc
        .sign_download(Some(&member("o")), &req(), &id, SignDownload::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotUploaded), "{err:?}");

    let r = pending("o", Some(3));
    let id = r.id.to_string();
    let mut media = finding(r.clone());
    media.expect_confirm().times(1).returning(move |_, c| {
        Ok(Media {
            status: MediaStatus::Confirmed,
            size: Some(c.size),
            ..r.clone()
        })
    });
    let objects = storage_holding(Some(meta(3, "application/pdf")));
    let svc = service_full(signer(), objects, media, no_audit(), MediaPolicy::default());
    svc.sign_download(Some(&member("o")), &req(), &id, SignDownload::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn list_filters_by_status_confirmed_by_default() {
    for (given, want) in [
        (None, Some(MediaStatus::Confirmed)),
        (Some("pending"), Some(MediaStatus::Pending)),
        (Some("all"), None),
    ] {
        let mut media = MockMediaStore::new();
        media
            .expect_list()
            .withf(move |_, s, _, _| *s == want)
            .times(1)
            .returning(|_, _, _, _| Ok(MediaPage::default()));
        let svc = service(signer(), media);
        svc.list(Some(&member("o")), &req(), None, None, given)
            .await
            .unwrap();
    }
    let mut media = MockMediaStore::new();
    media.expect_list().never();
    let svc = service(signer(), media);
    let err = svc
        .list(Some(&member("o")), &req(), None, None, Some("done"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Validation(ref f) if f[0].field == "status"));
}

#[tokio::test]
async fn sign_download_signs_a_row_of_the_callers_org() {
    let r = row("org_a");
    let id = r.id.clone();
    let svc = service(signer(), finding(r));
    let got = svc
        .sign_download(
            Some(&member("org_a")),
            &req(),
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
async fn open_download_returns_the_row_after_the_firewall_and_the_access_rule() {
    let r = row("org_a");
    let id = r.id.to_string();
    let mut s = MockUrlSigner::new();
    s.expect_presign().never();
    let svc = service(s, finding(r.clone()));
    let got = svc
        .open_download(Some(&member("org_a")), &req(), &id)
        .await
        .unwrap();
    assert_eq!(got, r);
    let err = svc
        .open_download(Some(&member("org_b")), &req(), &id)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(Resource::Media)));
    let err = svc.open_download(None, &req(), &id).await.unwrap_err();
    assert!(matches!(err, Error::AuthMissing));

    let mut s = MockUrlSigner::new();
    s.expect_presign().never();
    let strict = policy(|p| p.rules.sign_download = AccessRule::at_least("owner"));
    let svc = service_with(s, finding(r), no_audit(), strict);
    let err = svc
        .open_download(Some(&member("org_a")), &req(), &id)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AccessRoleRequired { .. }));
}

#[tokio::test]
async fn sign_download_of_a_missing_or_malformed_id_is_not_found() {
    let mut media = MockMediaStore::new();
    media.expect_find().times(1).returning(|_| Ok(None));
    let svc = service(signer(), media);
    for id in [MediaId::generate().to_string(), "garbage".to_owned()] {
        let err = svc
            .sign_download(Some(&member("org_b")), &req(), &id, SignDownload::default())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound(Resource::Media)));
    }
}

#[tokio::test]
async fn another_orgs_file_is_hidden_or_revealed_by_the_firewall_mode() {
    for (mode, code) in [
        (FirewallMode::Hide, "FIREWALL_NOT_FOUND"),
        (FirewallMode::Reveal, "FIREWALL_ORG_ISOLATION"),
    ] {
        let r = row("org_a");
        let id = r.id.to_string();
        let mut s = MockUrlSigner::new();
        s.expect_presign().never();
        let svc = service_with(
            s,
            finding(r),
            no_audit(),
            policy(|p| p.shared.firewall = mode),
        );
        let err = svc
            .sign_download(Some(&member("org_b")), &req(), &id, SignDownload::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{mode:?}");
    }
}

#[tokio::test]
async fn the_firewall_comes_before_access_and_platform_admins_do_not_cross_it() {
    let strict = || {
        policy(|p| {
            p.rules.sign_download = AccessRule::at_least("owner");
            p.shared.firewall = FirewallMode::Reveal;
        })
    };
    // A member below the rule: foreign row → firewall error, own row → access error.
    let foreign = row("org_a");
    let id = foreign.id.to_string();
    let svc = service_with(signer(), finding(foreign), no_audit(), strict());
    let err = svc
        .sign_download(Some(&member("org_b")), &req(), &id, SignDownload::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::FirewallOrgIsolation));
    let mut admin = member("org_b");
    admin.roles.clear();
    admin.platform_role = Some("admin".into());
    let err = svc
        .sign_download(Some(&admin), &req(), &id, SignDownload::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::FirewallOrgIsolation));

    let own = row("org_b");
    let id = own.id.to_string();
    let svc = service_with(signer(), finding(own), no_audit(), strict());
    let err = svc
        .sign_download(Some(&member("org_b")), &req(), &id, SignDownload::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AccessRoleRequired { .. }));
    svc.sign_download(Some(&admin), &req(), &id, SignDownload::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn sign_download_rejects_out_of_range_expiry() {
    let r = row("o");
    let id = r.id.to_string();
    let svc = service(signer(), finding(r));
    for secs in [0, 604_801] {
        let err = svc
            .sign_download(
                Some(&member("o")),
                &req(),
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
        .withf(|org, status, limit, after| {
            org == "o" && *status == Some(MediaStatus::Confirmed) && *limit == 10 && after.is_some()
        })
        .times(1)
        .returning(|_, _, _, _| Ok(MediaPage::default()));
    let svc = service(signer(), media);
    let cursor = MediaCursor {
        created_at: datetime!(2026-01-01 0:00 UTC),
        id: MediaId::generate(),
    }
    .encode();
    let me = member("o");
    svc.list(Some(&me), &req(), Some(10), Some(&cursor), None)
        .await
        .unwrap();
    assert!(matches!(
        svc.list(Some(&me), &req(), Some(0), None, None).await,
        Err(Error::Validation(_))
    ));
    assert!(matches!(
        svc.list(Some(&me), &req(), Some(201), None, None).await,
        Err(Error::Validation(_))
    ));
}

fn public_list() -> MediaPolicy {
    policy(|p| p.rules.list = AccessRule::Public)
}

#[tokio::test]
async fn public_calls_are_audited_with_the_request_and_skip_roles() {
    let mut audit = MockAuditLog::new();
    audit
        .expect_record()
        .withf(|e| {
            e.route == "/api/v1/media"
                && e.method == "GET"
                && e.ip.as_deref() == Some("192.0.2.7")
                && e.user_id.as_deref() == Some("user_1")
                && e.resource.is_none()
                && e.at == datetime!(2026-03-01 12:00 UTC)
        })
        .times(1)
        .returning(|_| Ok(()));
    let mut media = MockMediaStore::new();
    media
        .expect_list()
        .withf(|org, _, _, _| org == "o")
        .times(1)
        .returning(|_, _, _, _| Ok(MediaPage::default()));
    let svc = service_with(signer(), media, audit, public_list());
    let mut guest = member("o");
    guest.roles = vec!["guest".into()];
    let request = RequestInfo::new("GET", "/api/v1/media").with_ip("192.0.2.7");
    svc.list(Some(&guest), &request, None, None, None)
        .await
        .unwrap();
}

#[tokio::test]
async fn anonymous_public_calls_are_audited_then_need_an_org() {
    let mut audit = MockAuditLog::new();
    audit
        .expect_record()
        .withf(|e| e.user_id.is_none())
        .times(1)
        .returning(|_| Ok(()));
    let mut media = MockMediaStore::new();
    media.expect_list().never();
    let svc = service_with(signer(), media, audit, public_list());
    let err = svc.list(None, &req(), None, None, None).await.unwrap_err();
    assert!(matches!(err, Error::AccessNoOrg));
}

#[tokio::test]
async fn a_public_call_that_cannot_be_audited_fails() {
    let mut audit = MockAuditLog::new();
    audit
        .expect_record()
        .returning(|_| Err(Error::unavailable("audit db down")));
    let mut media = MockMediaStore::new();
    media.expect_list().never();
    let svc = service_with(signer(), media, audit, public_list());
    let err = svc
        .list(Some(&member("o")), &req(), None, None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }));
}

#[tokio::test]
async fn the_audited_resource_is_the_requested_id_capped_in_length() {
    let mut audit = MockAuditLog::new();
    audit
        .expect_record()
        .withf(|e| e.resource.as_deref().is_some_and(|r| r.len() == 128))
        .times(1)
        .returning(|_| Ok(()));
    let svc = service_with(
        signer(),
        MockMediaStore::new(),
        audit,
        policy(|p| p.rules.sign_download = AccessRule::Public),
    );
    let long = "x".repeat(5000);
    let err = svc
        .sign_download(Some(&member("o")), &req(), &long, SignDownload::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(Resource::Media)));
}

#[test]
fn a_shorthand_rule_outside_the_hierarchy_is_refused_at_construction() {
    let clock = Arc::new(MockClock::new());
    let storage = Storage::new(
        Arc::new(MockUrlSigner::new()),
        clock.clone(),
        BucketName::parse("filegate-media").unwrap(),
    );
    let bad = policy(|p| p.rules.sign_upload = AccessRule::at_least("editor"));
    let err = MediaService::new(
        storage,
        Arc::new(MockObjectStore::new()),
        Arc::new(MockMediaStore::new()),
        Arc::new(MockAuditLog::new()),
        clock,
        bad,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Validation(ref f) if f[0].field == "access.sign_upload"));
}
