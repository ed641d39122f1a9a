//! A Better Auth database on PostgreSQL for tests, in a fresh schema per fixture.
//!
//! The Postgres twin of `filegate_testkit::auth_db` (which stays free of a Postgres
//! client): the same two layouts, as Better Auth's Kysely migrations and a Drizzle
//! schema create them on Postgres, and the same helpers, async. Rows are written with
//! typed parameters (`timestamptz` / `timestamp`, `boolean`, `integer`), not through the
//! adapter's code. Helpers panic on database errors: this is test support.
//!
//! Gating: `FILEGATE_TEST_DATABASE_URL` names the server. Unset, [`database_url`] prints
//! one line saying the tests were skipped and returns `None`; set but unreachable, the
//! fixture panics, so CI cannot pass without Postgres.

use std::cell::Cell;
use std::io::Write as _;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

use filegate_testkit::auth_db::{Layout, SessionToken, api_key_hash};
use sha2::{Digest, Sha256};
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls};

pub(crate) const URL_VAR: &str = "FILEGATE_TEST_DATABASE_URL";

/// `create table` as `@better-auth/cli migrate` emits it for Postgres (Kysely): quoted
/// camelCase, `timestamptz`, `boolean`, `integer`; admin, organization and api-key plugins.
const BETTER_AUTH_DDL: &str = r#"
create table "user" ("id" text not null primary key, "name" text not null, "email" text not null unique, "emailVerified" boolean not null, "image" text, "createdAt" timestamptz default CURRENT_TIMESTAMP not null, "updatedAt" timestamptz default CURRENT_TIMESTAMP not null, "role" text, "banned" boolean, "banReason" text, "banExpires" timestamptz);
create table "session" ("id" text not null primary key, "expiresAt" timestamptz not null, "token" text not null unique, "createdAt" timestamptz default CURRENT_TIMESTAMP not null, "updatedAt" timestamptz not null, "ipAddress" text, "userAgent" text, "userId" text not null references "user" ("id") on delete cascade, "impersonatedBy" text, "activeOrganizationId" text);
create table "organization" ("id" text not null primary key, "name" text not null, "slug" text not null unique, "logo" text, "createdAt" timestamptz not null, "metadata" text);
create table "member" ("id" text not null primary key, "organizationId" text not null references "organization" ("id") on delete cascade, "userId" text not null references "user" ("id") on delete cascade, "role" text not null, "createdAt" timestamptz not null);
create table "apikey" ("id" text not null primary key, "name" text, "start" text, "prefix" text, "key" text not null, "userId" text not null references "user" ("id") on delete cascade, "refillInterval" integer, "refillAmount" integer, "lastRefillAt" timestamptz, "enabled" boolean, "rateLimitEnabled" boolean, "rateLimitTimeWindow" integer, "rateLimitMax" integer, "requestCount" integer, "remaining" integer, "lastRequest" timestamptz, "expiresAt" timestamptz, "createdAt" timestamptz not null, "updatedAt" timestamptz not null, "permissions" text, "metadata" text);
create index "session_userId_idx" on "session" ("userId");
"#;

/// A Drizzle `pg-core` schema in Quickback's shape: snake_case, `timestamp` without time
/// zone, `apikey.reference_id` and `config_id`.
const DRIZZLE_DDL: &str = r#"
CREATE TABLE "user" ("id" text PRIMARY KEY NOT NULL, "name" text NOT NULL, "email" text NOT NULL UNIQUE, "email_verified" boolean DEFAULT false NOT NULL, "image" text, "created_at" timestamp DEFAULT now() NOT NULL, "updated_at" timestamp DEFAULT now() NOT NULL, "role" text, "banned" boolean DEFAULT false, "ban_reason" text, "ban_expires" timestamp);
CREATE TABLE "session" ("id" text PRIMARY KEY NOT NULL, "expires_at" timestamp NOT NULL, "token" text NOT NULL UNIQUE, "created_at" timestamp DEFAULT now() NOT NULL, "updated_at" timestamp NOT NULL, "ip_address" text, "user_agent" text, "user_id" text NOT NULL REFERENCES "user"("id") ON DELETE cascade, "active_organization_id" text, "impersonated_by" text);
CREATE TABLE "organization" ("id" text PRIMARY KEY NOT NULL, "name" text NOT NULL, "slug" text NOT NULL UNIQUE, "logo" text, "created_at" timestamp NOT NULL, "metadata" text);
CREATE TABLE "member" ("id" text PRIMARY KEY NOT NULL, "organization_id" text NOT NULL REFERENCES "organization"("id") ON DELETE cascade, "user_id" text NOT NULL REFERENCES "user"("id") ON DELETE cascade, "role" text DEFAULT 'member' NOT NULL, "created_at" timestamp NOT NULL);
CREATE TABLE "apikey" ("id" text PRIMARY KEY NOT NULL, "config_id" text DEFAULT 'default' NOT NULL, "name" text, "start" text, "reference_id" text NOT NULL, "prefix" text, "key" text NOT NULL, "refill_interval" integer, "refill_amount" integer, "last_refill_at" timestamp, "enabled" boolean DEFAULT true, "rate_limit_enabled" boolean DEFAULT true, "rate_limit_time_window" integer DEFAULT 60, "rate_limit_max" integer DEFAULT 100, "request_count" integer DEFAULT 0, "remaining" integer, "last_request" timestamp, "expires_at" timestamp, "created_at" timestamp NOT NULL, "updated_at" timestamp NOT NULL, "permissions" text, "metadata" text);
CREATE INDEX "apikey_key_idx" ON "apikey" ("key");
"#;

/// The server URL, or `None` (after saying so once) when the tests are not enabled.
pub(crate) fn database_url() -> Option<String> {
    static SKIPPED: Once = Once::new();
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_owned()),
        _ => {
            SKIPPED.call_once(|| {
                // Straight to stderr: the test harness captures `eprintln!`.
                let _ = writeln!(
                    std::io::stderr(),
                    "Better Auth on PostgreSQL tests skipped: set {URL_VAR}=postgres://… to run them"
                );
            });
            None
        }
    }
}

/// Connects or panics: with the variable set, an unreachable server fails the test.
pub(crate) async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("{URL_VAR} is set but PostgreSQL is unreachable: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// `url` with `search_path` set to `schema` (libpq's `options`).
pub(crate) fn url_with_schema(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

/// The usage counters of one API key, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Counters {
    pub(crate) request_count: Option<i32>,
    pub(crate) remaining: Option<i32>,
    pub(crate) last_request: Option<OffsetDateTime>,
}

/// A value to store; dates are bound as the layout's column type.
enum V {
    Text(String),
    Int(i32),
    Bool(bool),
    Date(OffsetDateTime),
    Null,
}

fn text(s: &str) -> V {
    V::Text(s.to_owned())
}

/// A Better Auth database in its own schema, dropped with the fixture.
pub(crate) struct PgAuthFixture {
    client: Client,
    base_url: String,
    schema: String,
    layout: Layout,
    uuid_ids: bool,
    seq: Cell<u64>,
}

impl PgAuthFixture {
    /// Creates a fresh schema with `layout`'s tables; `None` when the tests are off.
    pub(crate) async fn create(layout: Layout) -> Option<Self> {
        Self::create_with(layout, false).await
    }

    /// With `uuid_ids`, ids and the columns referencing them are `uuid`, as Better Auth's
    /// migrations make them with `advanced.database.generateId: "uuid"` (Better Auth
    /// layout only); callers then pass uuid strings as ids.
    pub(crate) async fn create_with(layout: Layout, uuid_ids: bool) -> Option<Self> {
        static N: AtomicU64 = AtomicU64::new(0);
        let base_url = database_url()?;
        let client = connect(&base_url).await;
        let schema = format!(
            "fg_auth_{}_{}_{}",
            std::process::id(),
            OffsetDateTime::now_utc().unix_timestamp_nanos(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut ddl = match layout {
            Layout::BetterAuth => BETTER_AUTH_DDL.to_owned(),
            Layout::Drizzle => DRIZZLE_DDL.to_owned(),
        };
        if uuid_ids {
            assert_eq!(
                layout,
                Layout::BetterAuth,
                "uuid ids: Better Auth layout only"
            );
            ddl = ddl
                .replace(
                    r#""id" text not null primary key"#,
                    r#""id" uuid default gen_random_uuid() not null primary key"#,
                )
                .replace(
                    r#""userId" text not null references"#,
                    r#""userId" uuid not null references"#,
                )
                .replace(
                    r#""organizationId" text not null references"#,
                    r#""organizationId" uuid not null references"#,
                );
        }
        client
            .batch_execute(&format!(
                "CREATE SCHEMA {schema}; SET search_path TO {schema}; {ddl}"
            ))
            .await
            .expect("create Better Auth tables");
        Some(Self {
            client,
            base_url,
            schema,
            layout,
            uuid_ids,
            seq: Cell::new(0),
        })
    }

    /// The fixture's own connection (search path on its schema), for what the helpers
    /// do not cover.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// The URL `AuthDb::open_postgres` gets: the server, with this schema on the path.
    pub(crate) fn url(&self) -> String {
        url_with_schema(&self.base_url, &self.schema)
    }

    pub(crate) async fn add_user(&self, id: &str, email: &str, role: Option<&str>) {
        let now = OffsetDateTime::now_utc();
        self.insert(
            "user",
            vec![
                ("id", text(id)),
                ("name", text(email)),
                ("email", text(email)),
                ("emailVerified", V::Bool(true)),
                ("createdAt", V::Date(now)),
                ("updatedAt", V::Date(now)),
                ("role", role.map_or(V::Null, text)),
                ("banned", V::Bool(false)),
            ],
        )
        .await;
    }

    pub(crate) async fn ban_user(&self, id: &str, until: Option<OffsetDateTime>) {
        let expires = until.map_or(V::Null, V::Date);
        self.update(
            "user",
            vec![("banned", V::Bool(true)), ("banExpires", expires)],
            "id",
            id,
        )
        .await;
    }

    pub(crate) async fn add_org(&self, id: &str, slug: &str) {
        self.insert(
            "organization",
            vec![
                ("id", text(id)),
                ("name", text(slug)),
                ("slug", text(slug)),
                ("createdAt", V::Date(OffsetDateTime::now_utc())),
            ],
        )
        .await;
    }

    pub(crate) async fn add_member(&self, org: &str, user: &str, role: &str) {
        let id = self.next_id("member");
        self.insert(
            "member",
            vec![
                ("id", V::Text(id)),
                ("organizationId", text(org)),
                ("userId", text(user)),
                ("role", text(role)),
                ("createdAt", V::Date(OffsetDateTime::now_utc())),
            ],
        )
        .await;
    }

    pub(crate) async fn add_session(
        &self,
        user: &str,
        active_org: Option<&str>,
        expires_at: OffsetDateTime,
    ) -> SessionToken {
        let token = self.random_string(32, true);
        let now = OffsetDateTime::now_utc();
        let id = self.next_id("session");
        self.insert(
            "session",
            vec![
                ("id", V::Text(id)),
                ("expiresAt", V::Date(expires_at)),
                ("token", V::Text(token.clone())),
                ("createdAt", V::Date(now)),
                ("updatedAt", V::Date(now)),
                ("userId", text(user)),
                ("activeOrganizationId", active_org.map_or(V::Null, text)),
            ],
        )
        .await;
        SessionToken::new(token)
    }

    /// Better Auth's sign-out: the session row is deleted.
    pub(crate) async fn sign_out(&self, token: &SessionToken) {
        let sql = format!("DELETE FROM \"session\" WHERE {} = $1", self.col("token"));
        let n = self
            .client
            .execute(&sql, &[&token.token()])
            .await
            .expect("delete session");
        assert_eq!(n, 1);
    }

    /// As the api-key plugin creates one; `rate_limit`: `Some((window_ms, max))`, or
    /// `None` for `rateLimitEnabled: false`. Returns the raw key.
    pub(crate) async fn add_api_key(
        &self,
        user: &str,
        org_in_metadata: Option<&str>,
        expires_at: Option<OffsetDateTime>,
        rate_limit: Option<(i32, i32)>,
    ) -> String {
        let key = self.random_string(64, false);
        let now = OffsetDateTime::now_utc();
        let metadata = org_in_metadata.map_or(V::Null, |org| {
            V::Text(serde_json::json!({ "organizationId": org }).to_string())
        });
        let (enabled, window, max) = match rate_limit {
            Some((window, max)) => (true, window, max),
            None => (false, 86_400_000, 10),
        };
        let owner = match self.layout {
            Layout::BetterAuth => "userId",
            Layout::Drizzle => "referenceId",
        };
        let id = self.next_id("apikey");
        self.insert(
            "apikey",
            vec![
                ("id", V::Text(id)),
                ("start", V::Text(key[..6].to_owned())),
                ("key", V::Text(api_key_hash(&key))),
                (owner, text(user)),
                ("enabled", V::Bool(true)),
                ("rateLimitEnabled", V::Bool(enabled)),
                ("rateLimitTimeWindow", V::Int(window)),
                ("rateLimitMax", V::Int(max)),
                ("requestCount", V::Int(0)),
                ("expiresAt", expires_at.map_or(V::Null, V::Date)),
                ("createdAt", V::Date(now)),
                ("updatedAt", V::Date(now)),
                ("metadata", metadata),
            ],
        )
        .await;
        key
    }

    pub(crate) async fn disable_key(&self, key: &str) {
        self.update(
            "apikey",
            vec![("enabled", V::Bool(false))],
            "key",
            &api_key_hash(key),
        )
        .await;
    }

    pub(crate) async fn set_key_remaining(
        &self,
        key: &str,
        remaining: Option<i32>,
        refill: Option<(i32, i32)>,
    ) {
        let (interval, amount) = refill.map_or((V::Null, V::Null), |(i, a)| (V::Int(i), V::Int(a)));
        self.update(
            "apikey",
            vec![
                ("remaining", remaining.map_or(V::Null, V::Int)),
                ("refillInterval", interval),
                ("refillAmount", amount),
            ],
            "key",
            &api_key_hash(key),
        )
        .await;
    }

    pub(crate) async fn api_key_counters(&self, key: &str) -> Option<Counters> {
        let sql = format!(
            "SELECT {}, {}, {} FROM \"apikey\" WHERE {} = $1",
            self.col("requestCount"),
            self.col("remaining"),
            self.col("lastRequest"),
            self.col("key"),
        );
        let row = self
            .client
            .query_opt(&sql, &[&api_key_hash(key)])
            .await
            .expect("read apikey")?;
        let last_request = match self.layout {
            Layout::BetterAuth => row.get::<_, Option<OffsetDateTime>>(2),
            Layout::Drizzle => row
                .get::<_, Option<PrimitiveDateTime>>(2)
                .map(PrimitiveDateTime::assume_utc),
        };
        Some(Counters {
            request_count: row.get(0),
            remaining: row.get(1),
            last_request,
        })
    }

    /// The column name of a camelCase field in this layout, quoted.
    pub(crate) fn col(&self, field: &str) -> String {
        let name = match self.layout {
            Layout::BetterAuth => field.to_owned(),
            Layout::Drizzle => {
                let mut snake = String::new();
                for c in field.chars() {
                    if c.is_ascii_uppercase() {
                        snake.push('_');
                    }
                    snake.push(c.to_ascii_lowercase());
                }
                snake
            }
        };
        format!("\"{name}\"")
    }

    /// `v` as a parameter (or `None` for an SQL NULL written inline).
    fn param(&self, v: V) -> Option<Box<dyn ToSql + Sync + Send>> {
        Some(match v {
            V::Text(s) => Box::new(s),
            V::Int(n) => Box::new(n),
            V::Bool(b) => Box::new(b),
            V::Date(t) => {
                let t = t.to_offset(UtcOffset::UTC);
                match self.layout {
                    Layout::BetterAuth => Box::new(t),
                    Layout::Drizzle => Box::new(PrimitiveDateTime::new(t.date(), t.time())),
                }
            }
            V::Null => return None,
        })
    }

    async fn insert(&self, table: &str, values: Vec<(&str, V)>) {
        let mut cols = Vec::new();
        let mut marks = Vec::new();
        let mut args = Vec::new();
        for (col, v) in values {
            cols.push(self.col(col));
            let cast = self.cast(col);
            match self.param(v) {
                Some(arg) => {
                    args.push(arg);
                    marks.push(format!("${}{cast}", args.len()));
                }
                None => marks.push("NULL".to_owned()),
            }
        }
        let sql = format!(
            "INSERT INTO \"{table}\" ({}) VALUES ({})",
            cols.join(", "),
            marks.join(", ")
        );
        self.execute(&sql, &args)
            .await
            .unwrap_or_else(|e| panic!("insert into {table}: {e}"));
    }

    async fn update(&self, table: &str, values: Vec<(&str, V)>, key_col: &str, key: &str) {
        let mut sets = Vec::new();
        let mut args = Vec::new();
        for (col, v) in values {
            match self.param(v) {
                Some(arg) => {
                    args.push(arg);
                    sets.push(format!(
                        "{} = ${}{}",
                        self.col(col),
                        args.len(),
                        self.cast(col)
                    ));
                }
                None => sets.push(format!("{} = NULL", self.col(col))),
            }
        }
        args.push(Box::new(key.to_owned()));
        let sql = format!(
            "UPDATE \"{table}\" SET {} WHERE {} = ${}{}",
            sets.join(", "),
            self.col(key_col),
            args.len(),
            self.cast(key_col)
        );
        let changed = self
            .execute(&sql, &args)
            .await
            .unwrap_or_else(|e| panic!("update {table}: {e}"));
        assert_eq!(changed, 1, "update {table}: no row with {key_col} = {key}");
    }

    async fn execute(
        &self,
        sql: &str,
        args: &[Box<dyn ToSql + Sync + Send>],
    ) -> Result<u64, tokio_postgres::Error> {
        let params: Vec<&(dyn ToSql + Sync)> = args
            .iter()
            .map(|a| a.as_ref() as &(dyn ToSql + Sync))
            .collect();
        self.client.execute(sql, &params).await
    }

    /// The cast a text parameter needs for `col` (uuid ids are not assignable from text).
    fn cast(&self, col: &str) -> &'static str {
        if self.uuid_ids && matches!(col, "id" | "userId" | "organizationId") {
            "::text::uuid"
        } else {
            ""
        }
    }

    fn next_id(&self, what: &str) -> String {
        let n = self.seq.get() + 1;
        self.seq.set(n);
        if self.uuid_ids && what != "rand" {
            format!("00000000-0000-4000-8000-{n:012x}")
        } else {
            format!("{what}-{n}")
        }
    }

    /// Unpredictable enough for tests; not for production secrets.
    fn random_string(&self, len: usize, digits: bool) -> String {
        const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let alphabet = if digits { LETTERS } else { &LETTERS[..52] };
        let mut out = String::with_capacity(len);
        let mut block = 0u64;
        while out.len() < len {
            let seed = format!(
                "{}:{}:{}:{block}",
                self.schema,
                self.next_id("rand"),
                OffsetDateTime::now_utc().unix_timestamp_nanos()
            );
            for byte in Sha256::digest(seed.as_bytes()) {
                if out.len() == len {
                    break;
                }
                out.push(char::from(alphabet[usize::from(byte) % alphabet.len()]));
            }
            block += 1;
        }
        out
    }
}

impl Drop for PgAuthFixture {
    /// Drops the schema on a thread of its own: `Drop` cannot await, and the test's
    /// runtime may be single-threaded.
    fn drop(&mut self) {
        let url = self.base_url.clone();
        let schema = self.schema.clone();
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok((client, connection)) = tokio_postgres::connect(&url, NoTls).await {
                    tokio::spawn(connection);
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                        .await;
                }
            });
        });
        let _ = cleanup.join();
    }
}
