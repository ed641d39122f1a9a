//! Security matrix: every kind of caller × operation × resource × firewall mode × rule
//! configuration × input, run through `MediaService` over the testkit fakes; and the read
//! by id of `FileAccess`, the same callers answered alike in both modes.
//!
//! The expected outcome comes from `expected` below, written from the spec (§6.3–6.5 and
//! the layer order documented in `filegate_core::media`), with role sets spelled out by
//! hand rather than resolved by the code under test.

use filegate_core::Error;
use filegate_core::domain::{
    AccessRules, BucketName, ByteSize, ContentType, FirewallMode, MediaId, ObjectKey, Principal,
    RoleHierarchy,
};
use filegate_core::files::{FileAccess, ReadableFile};
use filegate_core::managed::{CreateBucket, ManagedPolicy, ManagedService, Upload};
use filegate_core::media::{MediaPolicy, MediaService, RequestInfo, SignDownload, SignUpload};
use filegate_core::policy::AccessPolicy;
use filegate_core::ports::{
    Clock, Media, MediaStatus, MediaStore, ObjectStore, PresignRequest, PresignedUrl, PutObject,
    UrlSigner,
};
use filegate_core::storage::Storage;
use filegate_testkit::audit::InMemoryAuditLog;
use filegate_testkit::files_db::InMemoryFilesDb;
use filegate_testkit::media_store::InMemoryMediaStore;
use filegate_testkit::object_store::InMemoryObjectStore;
use futures::executor::block_on;
use futures::{StreamExt, TryStreamExt};
use proptest::prelude::*;
use std::sync::Arc;
use time::OffsetDateTime;
use time::macros::datetime;

// ---------------------------------------------------------------------------------------
// The case space
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Org {
    A,
    B,
}

impl Org {
    fn id(self) -> &'static str {
        match self {
            Self::A => "org_a",
            Self::B => "org_b",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Caller {
    /// No principal: no credentials, or credentials the authenticator refused.
    Anonymous,
    Principal {
        org: Option<Org>,
        roles: Vec<&'static str>,
        platform_role: Option<&'static str>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    InA,
    InB,
    Missing,
    Malformed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Upload,
    Download(Target),
    List,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    Valid,
    /// A field fails validation.
    Invalid,
    /// Valid fields, over the upload size guard (only uploads have one).
    Oversized,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Config {
    /// Default hierarchy, every rule `member+`.
    Defaults,
    /// `sign_download = "admin+"`.
    AdminPlusDownload,
    /// `list = "PUBLIC"`.
    PublicList,
    /// Hierarchy guest < member < admin < owner; upload `owner`, download
    /// `authenticated`, list `guest+`.
    Custom,
    /// Upload `admin,member` (exact roles: no owner), download `PUBLIC`, list `owner`.
    Mixed,
}

#[derive(Debug, Clone)]
struct Case {
    caller: Caller,
    op: Op,
    input: Input,
    mode: FirewallMode,
    config: Config,
}

// Roles a principal may hold: the built-ins, a custom one, and a case variant.
const ROLE_POOL: [&str; 5] = ["member", "admin", "owner", "guest", "Admin"];
const PLATFORM_ROLES: [Option<&str>; 3] = [None, Some("admin"), Some("user")];
const ORGS: [Option<Org>; 3] = [None, Some(Org::A), Some(Org::B)];
const OPS: [Op; 6] = [
    Op::Upload,
    Op::Download(Target::InA),
    Op::Download(Target::InB),
    Op::Download(Target::Missing),
    Op::Download(Target::Malformed),
    Op::List,
];
const INPUTS: [Input; 3] = [Input::Valid, Input::Invalid, Input::Oversized];
const MODES: [FirewallMode; 2] = [FirewallMode::Hide, FirewallMode::Reveal];
const CONFIGS: [Config; 5] = [
    Config::Defaults,
    Config::AdminPlusDownload,
    Config::PublicList,
    Config::Custom,
    Config::Mixed,
];

const USER: &str = "user-1";
const MAX_UPLOAD: u64 = 1000;

// ---------------------------------------------------------------------------------------
// The oracle, from the spec
// ---------------------------------------------------------------------------------------

/// A rule as the oracle understands it: `role+` already expanded by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Public,
    Authenticated,
    AnyOf(&'static [&'static str]),
}

const MEMBER_UP: Want = Want::AnyOf(&["member", "admin", "owner"]);

/// (hierarchy, upload, download, list) as configuration text, and the oracle's reading.
fn table(config: Config) -> (&'static str, [Want; 3]) {
    match config {
        Config::Defaults => ("{}", [MEMBER_UP, MEMBER_UP, MEMBER_UP]),
        Config::AdminPlusDownload => (
            r#"{"sign_download": "admin+"}"#,
            [MEMBER_UP, Want::AnyOf(&["admin", "owner"]), MEMBER_UP],
        ),
        Config::PublicList => (
            r#"{"list": "PUBLIC"}"#,
            [MEMBER_UP, MEMBER_UP, Want::Public],
        ),
        Config::Custom => (
            r#"{"sign_upload": "owner", "sign_download": "authenticated", "list": "guest+"}"#,
            [
                Want::AnyOf(&["owner"]),
                Want::Authenticated,
                Want::AnyOf(&["guest", "member", "admin", "owner"]),
            ],
        ),
        Config::Mixed => (
            r#"{"sign_upload": " admin , member ", "sign_download": "PUBLIC", "list": "owner"}"#,
            [
                Want::AnyOf(&["admin", "member"]),
                Want::Public,
                Want::AnyOf(&["owner"]),
            ],
        ),
    }
}

fn hierarchy(config: Config) -> &'static str {
    match config {
        Config::Custom => r#"["guest", "member", "admin", "owner"]"#,
        _ => r#"["member", "admin", "owner"]"#,
    }
}

fn want(config: Config, op: Op) -> Want {
    let (_, [up, down, list]) = table(config);
    match op {
        Op::Upload => up,
        Op::Download(_) => down,
        Op::List => list,
    }
}

/// `Ok(())` when the call must succeed, else the error code it must fail with.
fn expected(case: &Case) -> Result<(), &'static str> {
    let rule = want(case.config, case.op);
    // 1. Authentication: only PUBLIC lets an anonymous caller through.
    let (org, roles, platform_admin) = match &case.caller {
        Caller::Anonymous if rule != Want::Public => return Err("AUTH_MISSING"),
        Caller::Anonymous => (None, &[][..], false),
        Caller::Principal {
            org,
            roles,
            platform_role,
        } => (*org, &roles[..], *platform_role == Some("admin")),
    };
    // 2. Every media operation is scoped to the caller's organization.
    let Some(org) = org else {
        return Err("ACCESS_NO_ORG");
    };
    // 3. Firewall: the target must exist in the caller's organization.
    if let Op::Download(target) = case.op {
        let target_org = match target {
            Target::InA => Org::A,
            Target::InB => Org::B,
            Target::Missing | Target::Malformed => return Err("FIREWALL_NOT_FOUND"),
        };
        if target_org != org {
            return Err(match case.mode {
                FirewallMode::Hide => "FIREWALL_NOT_FOUND",
                FirewallMode::Reveal => "FIREWALL_ORG_ISOLATION",
            });
        }
    }
    // 4. Access: platform admins pass every role rule.
    let allowed = match rule {
        Want::Public | Want::Authenticated => true,
        Want::AnyOf(set) => platform_admin || roles.iter().any(|r| set.contains(r)),
    };
    if !allowed {
        return Err("ACCESS_ROLE_REQUIRED");
    }
    // 5. Validation, 6. guards.
    match (case.input, case.op) {
        (Input::Invalid, _) => Err("VALIDATION_FAILED"),
        (Input::Oversized, Op::Upload) => Err("STORAGE_FILE_TOO_LARGE"),
        _ => Ok(()),
    }
}

fn layer_of(code: &str) -> &'static str {
    match code.split('_').next() {
        Some("AUTH") => "authentication",
        Some("FIREWALL") => "firewall",
        Some("ACCESS") => "access",
        Some("VALIDATION") => "validation",
        _ if code == "STORAGE_FILE_TOO_LARGE" => "guards",
        _ => "unexpected",
    }
}

// ---------------------------------------------------------------------------------------
// Running one case
// ---------------------------------------------------------------------------------------

struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        datetime!(2026-03-01 12:00 UTC)
    }
}

struct EchoSigner;

#[async_trait::async_trait]
impl UrlSigner for EchoSigner {
    async fn presign(&self, r: &PresignRequest) -> Result<PresignedUrl, Error> {
        Ok(PresignedUrl {
            url: format!("https://s3.test/{}/{}?sig", r.bucket, r.key),
            headers: r.headers.clone(),
        })
    }
}

fn seeded(org: Org) -> Media {
    let id = MediaId::generate();
    Media {
        key: ObjectKey::parse(format!("org/{}/{id}-f.txt", org.id())).expect("key"),
        id,
        bucket: BucketName::parse("matrix").expect("bucket"),
        organization_id: org.id().to_owned(),
        uploader_id: "someone".to_owned(),
        filename: "f.txt".to_owned(),
        content_type: ContentType::parse("text/plain").expect("content type"),
        declared_size: None,
        created_at: datetime!(2026-01-01 0:00 UTC),
        status: MediaStatus::Confirmed,
        size: Some(1),
        etag: None,
        upload_expires_at: None,
        multipart: None,
    }
}

fn principal(caller: &Caller) -> Option<Principal> {
    match caller {
        Caller::Anonymous => None,
        Caller::Principal {
            org,
            roles,
            platform_role,
        } => Some(Principal {
            user_id: USER.to_owned(),
            active_org_id: org.map(|o| o.id().to_owned()),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            platform_role: platform_role.map(str::to_owned),
            method: filegate_core::domain::AuthMethod::default(),
        }),
    }
}

/// Runs the case and returns a description of every way it differs from the oracle.
#[expect(clippy::similar_names, reason = "the spec's words: rules and roles")]
fn run(case: &Case) -> Result<(), String> {
    let (rules_json, _) = table(case.config);
    let rules: AccessRules = serde_json::from_str(rules_json).expect("rules");
    let roles: RoleHierarchy = serde_json::from_str(hierarchy(case.config)).expect("roles");
    let policy = MediaPolicy {
        shared: AccessPolicy {
            max_upload_size: ByteSize(MAX_UPLOAD),
            roles,
            firewall: case.mode,
            ..AccessPolicy::default()
        },
        rules,
        ..MediaPolicy::default()
    };
    let store = Arc::new(InMemoryMediaStore::new());
    let audit = Arc::new(InMemoryAuditLog::new());
    let (in_a, in_b) = (seeded(Org::A), seeded(Org::B));
    block_on(async {
        store.insert(&in_a).await?;
        store.insert(&in_b).await
    })
    .expect("seeding");
    let clock: Arc<dyn Clock> = Arc::new(FixedClock);
    let storage = Storage::new(
        Arc::new(EchoSigner),
        clock.clone(),
        BucketName::parse("matrix").expect("bucket"),
    );
    let svc = MediaService::new(
        storage,
        Arc::new(InMemoryObjectStore::new()),
        store.clone(),
        audit.clone(),
        clock,
        policy,
    )
    .expect("service");
    let who = principal(&case.caller);
    let caller = who.as_ref();
    let request = RequestInfo::new("POST", "/matrix").with_ip("192.0.2.1");
    let valid = case.input != Input::Invalid;

    let mut problems = Vec::new();
    let mut resource = None;
    let got: Result<(), Error> = match case.op {
        Op::Upload => {
            let input = SignUpload {
                filename: if valid { "a.txt" } else { "../a.txt" }.to_owned(),
                content_type: "text/plain".to_owned(),
                size: Some(if case.input == Input::Oversized {
                    MAX_UPLOAD + 1
                } else {
                    MAX_UPLOAD
                }),
            };
            block_on(svc.sign_upload(caller, &request, input)).map(|out| {
                let rows = store.rows();
                let org = caller.and_then(|p| p.active_org_id.clone());
                let ok = rows.len() == 3
                    && rows.last().is_some_and(|r| {
                        Some(&r.organization_id) == org.as_ref()
                            && r.id == out.id
                            && r.uploader_id == USER
                            && r.key
                                .as_str()
                                .starts_with(&format!("org/{}/", r.organization_id))
                    });
                if !ok {
                    problems.push(format!("upload wrote the wrong rows: {rows:?}"));
                }
            })
        }
        Op::Download(target) => {
            let id = match target {
                Target::InA => in_a.id.to_string(),
                Target::InB => in_b.id.to_string(),
                Target::Missing => MediaId::generate().to_string(),
                Target::Malformed => "not-an-id".to_owned(),
            };
            resource = Some(id.clone());
            let input = SignDownload {
                expires_in: Some(if valid { 60 } else { 0 }),
                download_filename: None,
            };
            block_on(svc.sign_download(caller, &request, &id, input)).map(|signed| {
                let row = if target == Target::InA { &in_a } else { &in_b };
                if signed.key != row.key {
                    problems.push(format!("signed {} instead of {}", signed.key, row.key));
                }
            })
        }
        Op::List => {
            let limit = Some(if valid { 10 } else { 0 });
            block_on(svc.list(caller, &request, limit, None, None)).map(|page| {
                let org = caller.and_then(|p| p.active_org_id.clone());
                if page.items.len() != 1
                    || page
                        .items
                        .iter()
                        .any(|m| Some(&m.organization_id) != org.as_ref())
                {
                    problems.push(format!("listed the wrong rows: {:?}", page.items));
                }
            })
        }
    };

    let outcome = expected(case);
    match (&outcome, &got) {
        (Ok(()), Ok(())) => {}
        (Err(code), Err(e)) if e.code() == *code => {
            if e.layer().as_str() != layer_of(code) {
                problems.push(format!("{code} reported by layer {:?}", e.layer()));
            }
        }
        _ => problems.push(format!(
            "expected {outcome:?}, got {:?}",
            got.as_ref().map_err(Error::code)
        )),
    }
    if got.is_err() && store.rows().len() != 2 {
        problems.push("a refused call wrote a row".to_owned());
    }

    let entries = audit.entries();
    if want(case.config, case.op) == Want::Public {
        let ok = entries.len() == 1
            && entries.iter().all(|e| {
                e.user_id.as_deref() == caller.map(|p| p.user_id.as_str())
                    && e.route == "/matrix"
                    && e.method == "POST"
                    && e.ip.as_deref() == Some("192.0.2.1")
                    && e.resource == resource
            });
        if !ok {
            problems.push(format!("a PUBLIC call must be audited once: {entries:?}"));
        }
    } else if !entries.is_empty() {
        problems.push(format!("a non-PUBLIC call was audited: {entries:?}"));
    }

    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

// ---------------------------------------------------------------------------------------
// Drivers
// ---------------------------------------------------------------------------------------

fn caller_strategy() -> impl Strategy<Value = Caller> {
    let principal = (
        proptest::sample::select(&ORGS[..]),
        proptest::collection::vec(proptest::sample::select(&ROLE_POOL[..]), 0..4),
        proptest::sample::select(&PLATFORM_ROLES[..]),
    )
        .prop_map(|(org, roles, platform_role)| Caller::Principal {
            org,
            roles,
            platform_role,
        });
    prop_oneof![1 => Just(Caller::Anonymous), 5 => principal]
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        caller_strategy(),
        proptest::sample::select(&OPS[..]),
        proptest::sample::select(&INPUTS[..]),
        proptest::sample::select(&MODES[..]),
        proptest::sample::select(&CONFIGS[..]),
    )
        .prop_map(|(caller, op, input, mode, config)| Case {
            caller,
            op,
            input,
            mode,
            config,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn random_cases_match_the_spec(case in case_strategy()) {
        if let Err(problem) = run(&case) {
            prop_assert!(false, "{case:?}: {problem}");
        }
    }
}

/// Every combination once: principals with each subset of the role pool (in pool order),
/// each organization and platform role, plus the anonymous caller.
#[test]
fn every_combination_matches_the_spec() {
    let mut callers = vec![Caller::Anonymous];
    for org in ORGS {
        for platform_role in PLATFORM_ROLES {
            for mask in 0..(1u32 << ROLE_POOL.len()) {
                let roles = ROLE_POOL
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, r)| *r)
                    .collect();
                callers.push(Caller::Principal {
                    org,
                    roles,
                    platform_role,
                });
            }
        }
    }
    let mut cases = 0usize;
    let mut mismatches = Vec::new();
    for caller in &callers {
        for op in OPS {
            for input in INPUTS {
                for mode in MODES {
                    for config in CONFIGS {
                        let case = Case {
                            caller: caller.clone(),
                            op,
                            input,
                            mode,
                            config,
                        };
                        cases += 1;
                        if let Err(p) = run(&case) {
                            mismatches.push(format!("{case:?}: {p}"));
                        }
                    }
                }
            }
        }
    }
    assert_eq!(cases, 289 * 6 * 3 * 2 * 5);
    assert!(
        mismatches.is_empty(),
        "{} of {cases} cases differ from the spec, first: {:#?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(5)]
    );
}

/// The oracle itself, on cases checked by hand, so a wrong oracle cannot hide a bug.
#[test]
fn the_oracle_agrees_with_hand_checked_cases() {
    let p = |org, roles: &[&'static str], platform_role| Caller::Principal {
        org,
        roles: roles.to_vec(),
        platform_role,
    };
    let case = |caller, op, mode, config| Case {
        caller,
        op,
        input: Input::Valid,
        mode,
        config,
    };
    let (hide, reveal) = (FirewallMode::Hide, FirewallMode::Reveal);
    let a = Some(Org::A);
    let checks = [
        (
            case(Caller::Anonymous, Op::List, hide, Config::Defaults),
            Err("AUTH_MISSING"),
        ),
        (
            case(Caller::Anonymous, Op::List, hide, Config::PublicList),
            Err("ACCESS_NO_ORG"),
        ),
        (
            case(p(a, &["guest"], None), Op::List, hide, Config::PublicList),
            Ok(()),
        ),
        (
            case(p(a, &["guest"], None), Op::List, hide, Config::Defaults),
            Err("ACCESS_ROLE_REQUIRED"),
        ),
        (
            case(p(a, &["guest"], None), Op::List, hide, Config::Custom),
            Ok(()),
        ),
        (
            case(
                p(a, &["member"], None),
                Op::Download(Target::InB),
                hide,
                Config::Defaults,
            ),
            Err("FIREWALL_NOT_FOUND"),
        ),
        (
            case(
                p(a, &["member"], None),
                Op::Download(Target::InB),
                reveal,
                Config::Defaults,
            ),
            Err("FIREWALL_ORG_ISOLATION"),
        ),
        (
            case(
                p(a, &["member"], None),
                Op::Download(Target::Missing),
                reveal,
                Config::Defaults,
            ),
            Err("FIREWALL_NOT_FOUND"),
        ),
        (
            case(
                p(a, &["member"], None),
                Op::Download(Target::InA),
                reveal,
                Config::AdminPlusDownload,
            ),
            Err("ACCESS_ROLE_REQUIRED"),
        ),
        (
            case(
                p(a, &["owner"], None),
                Op::Download(Target::InA),
                reveal,
                Config::AdminPlusDownload,
            ),
            Ok(()),
        ),
        (
            case(
                p(a, &[], Some("admin")),
                Op::Download(Target::InB),
                reveal,
                Config::AdminPlusDownload,
            ),
            Err("FIREWALL_ORG_ISOLATION"),
        ),
        (
            case(
                p(None, &[], Some("admin")),
                Op::List,
                hide,
                Config::Defaults,
            ),
            Err("ACCESS_NO_ORG"),
        ),
        (
            case(p(a, &["owner"], None), Op::Upload, hide, Config::Mixed),
            Err("ACCESS_ROLE_REQUIRED"),
        ),
        (
            case(
                p(a, &["Admin"], Some("user")),
                Op::Upload,
                hide,
                Config::Defaults,
            ),
            Err("ACCESS_ROLE_REQUIRED"),
        ),
    ];
    for (c, want) in checks {
        assert_eq!(expected(&c), want, "{c:?}");
    }
}

// ---------------------------------------------------------------------------------------
// One access sequence: a read by id answers alike in both modes
// ---------------------------------------------------------------------------------------

/// Both modes over one physical bucket: a media row and a managed object (an `org`-read
/// bucket), each of organization A and uploaded by someone else, with their bytes.
async fn both_modes(mode: FirewallMode) -> (FileAccess, String, String) {
    let physical = BucketName::parse("matrix").expect("bucket");
    let objects = Arc::new(InMemoryObjectStore::with_bucket(&physical));
    let clock: Arc<dyn Clock> = Arc::new(FixedClock);
    let storage = Storage::new(Arc::new(EchoSigner), clock.clone(), physical.clone());
    let shared = AccessPolicy {
        firewall: mode,
        ..AccessPolicy::default()
    };

    let store = Arc::new(InMemoryMediaStore::new());
    let row = seeded(Org::A);
    store.insert(&row).await.expect("media row");
    let put = |data: &'static [u8]| PutObject {
        content_length: data.len() as u64,
        content_type: Some(ContentType::parse("text/plain").expect("type")),
        body: futures::stream::once(async move { Ok(bytes::Bytes::from_static(data)) }).boxed(),
    };
    objects
        .put(&physical, &row.key, put(b"media"))
        .await
        .expect("media bytes");
    let media = MediaService::new(
        storage.clone(),
        objects.clone(),
        store,
        Arc::new(InMemoryAuditLog::new()),
        clock.clone(),
        MediaPolicy {
            shared: shared.clone(),
            ..MediaPolicy::default()
        },
    )
    .expect("media service");

    let db = Arc::new(InMemoryFilesDb::new());
    let managed = ManagedService::new(
        storage,
        objects,
        db.clone(),
        db,
        clock,
        ManagedPolicy {
            shared,
            ..ManagedPolicy::default()
        },
    )
    .expect("managed service");
    let uploader = Principal {
        user_id: "someone".to_owned(),
        active_org_id: Some(Org::A.id().to_owned()),
        roles: vec!["owner".to_owned()],
        platform_role: None,
        method: filegate_core::domain::AuthMethod::default(),
    };
    managed
        .create_bucket(
            Some(&uploader),
            CreateBucket {
                name: "docs".into(),
                ..CreateBucket::default()
            },
        )
        .await
        .expect("bucket");
    let object = managed
        .upload(
            Some(&uploader),
            "docs",
            "f.txt",
            Upload {
                content_type: "text/plain".into(),
                content_length: 7,
                body: put(b"managed").body,
                upsert: false,
            },
        )
        .await
        .expect("object");
    let files = FileAccess::new(Arc::new(media), Some(Arc::new(managed)));
    (files, row.id.to_string(), object.id.to_string())
}

/// The answer without the resource a not-found names (`FIREWALL_NOT_FOUND` for media,
/// `STORAGE_OBJECT_NOT_FOUND` for objects: the same hide-mode 404).
fn answer(r: &Result<ReadableFile, Error>) -> String {
    match r {
        Ok(_) => "ok".to_owned(),
        Err(Error::NotFound(_)) => "not found".to_owned(),
        Err(e) => e.code().to_owned(),
    }
}

#[tokio::test]
async fn a_read_by_id_runs_one_access_sequence_in_both_modes() {
    let member = |org: Option<Org>, roles: &[&'static str], platform: Option<&'static str>| {
        Caller::Principal {
            org,
            roles: roles.to_vec(),
            platform_role: platform,
        }
    };
    // Callers that pass the default `member+` download rule, or are refused before it.
    let callers = [
        (Caller::Anonymous, "AUTH_MISSING", "AUTH_MISSING"),
        (
            member(None, &["member"], None),
            "ACCESS_NO_ORG",
            "ACCESS_NO_ORG",
        ),
        (member(Some(Org::A), &["member"], None), "ok", "ok"),
        (member(Some(Org::A), &["owner"], None), "ok", "ok"),
        (
            member(Some(Org::B), &["member"], None),
            "not found",
            "FIREWALL_ORG_ISOLATION",
        ),
        (
            member(Some(Org::B), &["member"], Some("admin")),
            "not found",
            "FIREWALL_ORG_ISOLATION",
        ),
    ];
    let request = RequestInfo::new("GET", "/api/v1/files/{id}/download");
    for mode in MODES {
        let (files, media_id, object_id) = both_modes(mode).await;
        for (caller, hide, reveal) in &callers {
            let want = if mode == FirewallMode::Hide {
                hide
            } else {
                reveal
            };
            let who = principal(caller);
            let media = files
                .authorize_read(who.as_ref(), &request, &media_id)
                .await;
            let object = files
                .authorize_read(who.as_ref(), &request, &object_id)
                .await;
            assert_eq!(answer(&media), *want, "media, {mode:?}, {caller:?}");
            assert_eq!(answer(&object), *want, "object, {mode:?}, {caller:?}");
            // Where the bytes are comes from core, read through the same port.
            for (file, data) in [(media, &b"media"[..]), (object, &b"managed"[..])] {
                let Ok(file) = file else { continue };
                let got = files.open(&file, None).await.expect("open");
                let bytes: Vec<u8> = got
                    .body
                    .try_fold(Vec::new(), |mut v, b| async move {
                        v.extend_from_slice(&b);
                        Ok(v)
                    })
                    .await
                    .expect("body");
                assert_eq!(bytes, data, "{mode:?}, {caller:?}");
            }
        }
        // Malformed and missing ids are not found after the same checks, in both modes.
        let me = principal(&member(Some(Org::A), &["member"], None));
        for id in [
            "med_nope",
            "obj_nope",
            "nope",
            &MediaId::generate().to_string(),
        ] {
            let got = files.authorize_read(me.as_ref(), &request, id).await;
            assert_eq!(answer(&got), "not found", "{id}");
            let got = files.authorize_read(None, &request, id).await;
            assert_eq!(answer(&got), "AUTH_MISSING", "{id}");
        }
    }
}
