//! A Better Auth SQLite database for tests, built the way Better Auth builds one.
//!
//! Two layouts, as found in the wild:
//! - [`Layout::BetterAuth`]: what `npx @better-auth/cli migrate` creates with the Kysely
//!   SQLite adapter and the admin, organization and API-key plugins (better-auth 1.3/1.4):
//!   camelCase columns, dates as `toISOString()` text, booleans as 0/1.
//! - [`Layout::Drizzle`]: Quickback's Drizzle schema (Better Auth 1.5): snake_case
//!   columns, dates as integer milliseconds, `apikey.reference_id` and `config_id`.
//!
//! The cookie signing and API-key hashing here are written from Better Auth's
//! behaviour (see `docs/AUTH.md`), independently of `filegate-auth`, so tests check
//! the adapter against a second implementation. Helpers panic on SQLite errors: this is
//! test support.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use deadpool_sqlite::rusqlite::types::Value;
use deadpool_sqlite::rusqlite::{Connection, OptionalExtension, params_from_iter};
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// Which writer's conventions the database follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Better Auth's own migrations (Kysely): camelCase, ISO text dates.
    BetterAuth,
    /// Quickback's Drizzle schema: snake_case, integer-millisecond dates.
    Drizzle,
}

/// The DDL `@better-auth/cli migrate` produces for SQLite (core tables, then the admin,
/// organization and api-key plugins' columns and tables).
const BETTER_AUTH_DDL: &str = r#"
create table "user" ("id" text not null primary key, "name" text not null, "email" text not null unique, "emailVerified" integer not null, "image" text, "createdAt" date not null, "updatedAt" date not null, "role" text, "banned" integer, "banReason" text, "banExpires" date);
create table "session" ("id" text not null primary key, "expiresAt" date not null, "token" text not null unique, "createdAt" date not null, "updatedAt" date not null, "ipAddress" text, "userAgent" text, "userId" text not null references "user" ("id") on delete cascade, "impersonatedBy" text, "activeOrganizationId" text);
create table "account" ("id" text not null primary key, "accountId" text not null, "providerId" text not null, "userId" text not null references "user" ("id") on delete cascade, "accessToken" text, "refreshToken" text, "idToken" text, "accessTokenExpiresAt" date, "refreshTokenExpiresAt" date, "scope" text, "password" text, "createdAt" date not null, "updatedAt" date not null);
create table "verification" ("id" text not null primary key, "identifier" text not null, "value" text not null, "expiresAt" date not null, "createdAt" date, "updatedAt" date);
create table "organization" ("id" text not null primary key, "name" text not null, "slug" text not null unique, "logo" text, "createdAt" date not null, "metadata" text);
create table "member" ("id" text not null primary key, "organizationId" text not null references "organization" ("id") on delete cascade, "userId" text not null references "user" ("id") on delete cascade, "role" text not null, "createdAt" date not null);
create table "invitation" ("id" text not null primary key, "organizationId" text not null references "organization" ("id") on delete cascade, "email" text not null, "role" text, "status" text not null, "expiresAt" date not null, "inviterId" text not null references "user" ("id") on delete cascade);
create table "apikey" ("id" text not null primary key, "name" text, "start" text, "prefix" text, "key" text not null, "userId" text not null references "user" ("id") on delete cascade, "refillInterval" integer, "refillAmount" integer, "lastRefillAt" date, "enabled" integer, "rateLimitEnabled" integer, "rateLimitTimeWindow" integer, "rateLimitMax" integer, "requestCount" integer, "remaining" integer, "lastRequest" date, "expiresAt" date, "createdAt" date not null, "updatedAt" date not null, "permissions" text, "metadata" text);
create index "session_userId_idx" on "session" ("userId");
create index "account_userId_idx" on "account" ("userId");
create index "verification_identifier_idx" on "verification" ("identifier");
"#;

/// Quickback's generated Drizzle migration for the auth database (SQLite / D1).
const DRIZZLE_DDL: &str = r"
CREATE TABLE `user` (`id` text PRIMARY KEY NOT NULL, `name` text NOT NULL, `email` text NOT NULL, `email_verified` integer DEFAULT false NOT NULL, `image` text, `created_at` integer DEFAULT (cast(unixepoch('subsecond') * 1000 as integer)) NOT NULL, `updated_at` integer DEFAULT (cast(unixepoch('subsecond') * 1000 as integer)) NOT NULL, `role` text, `banned` integer DEFAULT false, `ban_reason` text, `ban_expires` integer);
CREATE UNIQUE INDEX `user_email_unique` ON `user` (`email`);
CREATE TABLE `session` (`id` text PRIMARY KEY NOT NULL, `expires_at` integer NOT NULL, `token` text NOT NULL, `created_at` integer DEFAULT (cast(unixepoch('subsecond') * 1000 as integer)) NOT NULL, `updated_at` integer NOT NULL, `ip_address` text, `user_agent` text, `user_id` text NOT NULL, `active_organization_id` text, `impersonated_by` text, FOREIGN KEY (`user_id`) REFERENCES `user`(`id`) ON UPDATE no action ON DELETE cascade);
CREATE UNIQUE INDEX `session_token_unique` ON `session` (`token`);
CREATE INDEX `session_userId_idx` ON `session` (`user_id`);
CREATE TABLE `organization` (`id` text PRIMARY KEY NOT NULL, `name` text NOT NULL, `slug` text NOT NULL, `logo` text, `created_at` integer NOT NULL, `metadata` text);
CREATE UNIQUE INDEX `organization_slug_unique` ON `organization` (`slug`);
CREATE TABLE `member` (`id` text PRIMARY KEY NOT NULL, `organization_id` text NOT NULL, `user_id` text NOT NULL, `role` text DEFAULT 'member' NOT NULL, `created_at` integer NOT NULL, FOREIGN KEY (`organization_id`) REFERENCES `organization`(`id`) ON UPDATE no action ON DELETE cascade, FOREIGN KEY (`user_id`) REFERENCES `user`(`id`) ON UPDATE no action ON DELETE cascade);
CREATE INDEX `member_organizationId_idx` ON `member` (`organization_id`);
CREATE INDEX `member_userId_idx` ON `member` (`user_id`);
CREATE TABLE `apikey` (`id` text PRIMARY KEY NOT NULL, `config_id` text DEFAULT 'default' NOT NULL, `name` text, `start` text, `reference_id` text NOT NULL, `prefix` text, `key` text NOT NULL, `refill_interval` integer, `refill_amount` integer, `last_refill_at` integer, `enabled` integer DEFAULT true, `rate_limit_enabled` integer DEFAULT true, `rate_limit_time_window` integer DEFAULT 60, `rate_limit_max` integer DEFAULT 100, `request_count` integer DEFAULT 0, `remaining` integer, `last_request` integer, `expires_at` integer, `created_at` integer NOT NULL, `updated_at` integer NOT NULL, `permissions` text, `metadata` text);
CREATE INDEX `apikey_referenceId_idx` ON `apikey` (`reference_id`);
CREATE INDEX `apikey_key_idx` ON `apikey` (`key`);
";

/// encodeURIComponent leaves `A-Z a-z 0-9 - _ . ! ~ * ' ( )` as they are.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// A session token as Better Auth hands it to the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionToken {
    token: String,
}

impl SessionToken {
    /// A token stored by another fixture (the Postgres one beside `filegate-auth`'s tests).
    #[must_use]
    pub fn new(token: impl Into<String>) -> Self {
        Self {
            token: token.into(),
        }
    }

    /// The raw token (the bearer plugin accepts it as is).
    #[must_use]
    pub fn token(&self) -> &str {
        &self.token
    }

    /// `token.base64(HMAC-SHA256(secret, token))`, not URL-encoded.
    #[must_use]
    pub fn signed_value(&self, secret: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
        mac.update(self.token.as_bytes());
        format!(
            "{}.{}",
            self.token,
            STANDARD.encode(mac.finalize().into_bytes())
        )
    }

    /// The cookie value Better Auth sets: the signed value, `encodeURIComponent`-ed.
    #[must_use]
    pub fn cookie_value(&self, secret: &str) -> String {
        utf8_percent_encode(&self.signed_value(secret), URI_COMPONENT).to_string()
    }

    /// A `Cookie` header carrying `better-auth.session_token`.
    #[must_use]
    pub fn cookie_header(&self, secret: &str) -> String {
        format!("better-auth.session_token={}", self.cookie_value(secret))
    }
}

/// Better Auth's stored form of an API key: base64url(SHA-256(key)), no padding.
#[must_use]
pub fn api_key_hash(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(key.as_bytes()))
}

/// The usage counters of one API key, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyCounters {
    pub request_count: Option<i64>,
    pub remaining: Option<i64>,
    pub last_request: Value,
    pub updated_at: Value,
}

/// A Better Auth database in a SQLite file.
pub struct AuthDbFixture {
    conn: Connection,
    path: PathBuf,
    layout: Layout,
    store_token_hash: bool,
    seq: Cell<u64>,
}

impl std::fmt::Debug for AuthDbFixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthDbFixture")
            .field("path", &self.path)
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl AuthDbFixture {
    /// Creates the file with Better Auth's own layout.
    #[must_use]
    pub fn create(path: impl AsRef<Path>) -> Self {
        Self::create_with(path, Layout::BetterAuth)
    }

    /// Creates the file with `layout`.
    #[must_use]
    pub fn create_with(path: impl AsRef<Path>, layout: Layout) -> Self {
        let path = path.as_ref().to_path_buf();
        let conn = Connection::open(&path).expect("open auth db");
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .expect("busy_timeout");
        conn.execute_batch(match layout {
            Layout::BetterAuth => BETTER_AUTH_DDL,
            Layout::Drizzle => DRIZZLE_DDL,
        })
        .expect("create Better Auth tables");
        Self {
            conn,
            path,
            layout,
            store_token_hash: false,
            seq: Cell::new(0),
        }
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    #[must_use]
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The fixture's own connection, for rows the helpers do not cover.
    #[must_use]
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// From now on, store sessions as Better Auth's `session.storeTokenHash` does.
    pub fn store_token_hashes(&mut self, on: bool) {
        self.store_token_hash = on;
    }

    pub fn add_user(&self, id: &str, email: &str, role: Option<&str>) {
        let now = self.date(OffsetDateTime::now_utc());
        self.insert(
            "user",
            &[
                ("id", text(id)),
                ("name", text(email)),
                ("email", text(email)),
                ("emailVerified", Value::Integer(1)),
                ("createdAt", now.clone()),
                ("updatedAt", now),
                ("role", role.map_or(Value::Null, text)),
                ("banned", Value::Integer(0)),
            ],
        );
    }

    /// The admin plugin's ban: `banned = 1`, `banExpires` = `until`.
    pub fn ban_user(&self, id: &str, until: Option<OffsetDateTime>) {
        let expires = until.map_or(Value::Null, |t| self.date(t));
        self.update(
            "user",
            &[("banned", Value::Integer(1)), ("banExpires", expires)],
            "id",
            id,
        );
    }

    pub fn add_org(&self, id: &str, slug: &str) {
        self.insert(
            "organization",
            &[
                ("id", text(id)),
                ("name", text(slug)),
                ("slug", text(slug)),
                ("createdAt", self.date(OffsetDateTime::now_utc())),
            ],
        );
    }

    /// `role` may be several comma-separated roles, as the organization plugin stores them.
    pub fn add_member(&self, org: &str, user: &str, role: &str) {
        let id = self.next_id("member");
        self.insert(
            "member",
            &[
                ("id", id.into()),
                ("organizationId", text(org)),
                ("userId", text(user)),
                ("role", text(role)),
                ("createdAt", self.date(OffsetDateTime::now_utc())),
            ],
        );
    }

    /// A session as `createSession` stores it: a 32-char alphanumeric token.
    pub fn add_session(
        &self,
        user: &str,
        active_org: Option<&str>,
        expires_at: OffsetDateTime,
    ) -> SessionToken {
        let token = self.random_string(32, true);
        let now = self.date(OffsetDateTime::now_utc());
        let id = self.next_id("session");
        self.insert(
            "session",
            &[
                ("id", id.into()),
                ("expiresAt", self.date(expires_at)),
                ("token", self.stored_token(&token).into()),
                ("createdAt", now.clone()),
                ("updatedAt", now),
                ("userId", text(user)),
                ("activeOrganizationId", active_org.map_or(Value::Null, text)),
            ],
        );
        SessionToken { token }
    }

    /// Signs out as Better Auth's `deleteSession` does: the session row is deleted.
    pub fn sign_out(&self, token: &SessionToken) {
        let sql = format!(
            "DELETE FROM {} WHERE {} = ?1",
            quote("session"),
            self.col("token")
        );
        self.conn
            .execute(&sql, [self.stored_token(&token.token)])
            .expect("delete session");
    }

    /// An API key as the api-key plugin creates it: 64 random letters, stored as their
    /// hash, with `metadata = {"organizationId": …}` when `org_in_metadata` is given.
    /// `rate_limit`: `Some((window_ms, max))`, or `None` for `rateLimitEnabled: false`.
    /// Returns the raw key.
    pub fn add_api_key(
        &self,
        user: &str,
        org_in_metadata: Option<&str>,
        expires_at: Option<OffsetDateTime>,
        rate_limit: Option<(i64, i64)>,
    ) -> String {
        let key = self.random_string(64, false);
        let now = self.date(OffsetDateTime::now_utc());
        let metadata = org_in_metadata.map_or(Value::Null, |org| {
            serde_json::json!({ "organizationId": org })
                .to_string()
                .into()
        });
        // Better Auth's defaults (1 day, 10 requests) when the key has no limit of its own.
        let (enabled, window, max) = match rate_limit {
            Some((window, max)) => (1, window, max),
            None => (0, 86_400_000, 10),
        };
        let id = self.next_id("apikey");
        let owner = match self.layout {
            Layout::BetterAuth => "userId",
            Layout::Drizzle => "referenceId",
        };
        self.insert(
            "apikey",
            &[
                ("id", id.into()),
                ("start", key[..6].to_owned().into()),
                ("key", api_key_hash(&key).into()),
                (owner, text(user)),
                ("enabled", Value::Integer(1)),
                ("rateLimitEnabled", Value::Integer(enabled)),
                ("rateLimitTimeWindow", Value::Integer(window)),
                ("rateLimitMax", Value::Integer(max)),
                ("requestCount", Value::Integer(0)),
                (
                    "expiresAt",
                    expires_at.map_or(Value::Null, |t| self.date(t)),
                ),
                ("createdAt", now.clone()),
                ("updatedAt", now),
                ("metadata", metadata),
            ],
        );
        key
    }

    /// `enabled = false`, as `updateApiKey({ enabled: false })` stores it.
    pub fn disable_key(&self, key: &str) {
        self.update(
            "apikey",
            &[("enabled", Value::Integer(0))],
            "key",
            &api_key_hash(key),
        );
    }

    /// Sets the key's usage allowance (`remaining`) and refill.
    pub fn set_key_remaining(&self, key: &str, remaining: Option<i64>, refill: Option<(i64, i64)>) {
        let (interval, amount) = refill.map_or((Value::Null, Value::Null), |(i, a)| {
            (Value::Integer(i), Value::Integer(a))
        });
        self.update(
            "apikey",
            &[
                ("remaining", remaining.map_or(Value::Null, Value::Integer)),
                ("refillInterval", interval),
                ("refillAmount", amount),
            ],
            "key",
            &api_key_hash(key),
        );
    }

    /// The key's counters, to check what an authenticator wrote.
    #[must_use]
    pub fn api_key_counters(&self, key: &str) -> Option<ApiKeyCounters> {
        let sql = format!(
            "SELECT {}, {}, {}, {} FROM {} WHERE {} = ?1",
            self.col("requestCount"),
            self.col("remaining"),
            self.col("lastRequest"),
            self.col("updatedAt"),
            quote("apikey"),
            self.col("key"),
        );
        self.conn
            .query_row(&sql, [api_key_hash(key)], |r| {
                Ok(ApiKeyCounters {
                    request_count: r.get(0)?,
                    remaining: r.get(1)?,
                    last_request: r.get(2)?,
                    updated_at: r.get(3)?,
                })
            })
            .optional()
            .expect("read apikey")
    }

    /// A date as this layout stores it.
    #[must_use]
    pub fn date(&self, t: OffsetDateTime) -> Value {
        let t = t.to_offset(UtcOffset::UTC);
        match self.layout {
            Layout::BetterAuth => Value::Text(
                t.format(format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
                ))
                .expect("format date"),
            ),
            Layout::Drizzle => Value::Integer(
                i64::try_from(t.unix_timestamp_nanos() / 1_000_000).expect("date in range"),
            ),
        }
    }

    /// The column name of a camelCase field in this layout, quoted.
    #[must_use]
    pub fn col(&self, field: &str) -> String {
        match self.layout {
            Layout::BetterAuth => quote(field),
            Layout::Drizzle => {
                let mut snake = String::new();
                for c in field.chars() {
                    if c.is_ascii_uppercase() {
                        snake.push('_');
                    }
                    snake.push(c.to_ascii_lowercase());
                }
                quote(&snake)
            }
        }
    }

    fn stored_token(&self, token: &str) -> String {
        if self.store_token_hash {
            api_key_hash(token)
        } else {
            token.to_owned()
        }
    }

    fn insert(&self, table: &str, values: &[(&str, Value)]) {
        let cols: Vec<String> = values.iter().map(|(c, _)| self.col(c)).collect();
        let marks = vec!["?"; values.len()].join(", ");
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({marks})",
            quote(table),
            cols.join(", ")
        );
        self.conn
            .execute(&sql, params_from_iter(values.iter().map(|(_, v)| v)))
            .unwrap_or_else(|e| panic!("insert into {table}: {e}"));
    }

    fn update(&self, table: &str, values: &[(&str, Value)], key_col: &str, key: &str) {
        let sets: Vec<String> = values
            .iter()
            .map(|(c, _)| format!("{} = ?", self.col(c)))
            .collect();
        let sql = format!(
            "UPDATE {} SET {} WHERE {} = ?",
            quote(table),
            sets.join(", "),
            self.col(key_col)
        );
        let args = values
            .iter()
            .map(|(_, v)| v.clone())
            .chain(std::iter::once(Value::from(key.to_owned())));
        let changed = self
            .conn
            .execute(&sql, params_from_iter(args))
            .unwrap_or_else(|e| panic!("update {table}: {e}"));
        assert_eq!(changed, 1, "update {table}: no row with {key_col} = {key}");
    }

    fn next_id(&self, what: &str) -> String {
        let n = self.seq.get() + 1;
        self.seq.set(n);
        format!("{what}-{n}")
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
                self.path.display(),
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

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use deadpool_sqlite::rusqlite::params;

    #[test]
    fn signs_like_better_call() {
        // Computed independently: HMAC-SHA256("secret", "tok") in standard base64.
        let token = SessionToken {
            token: "tok".into(),
        };
        let signed = token.signed_value("secret");
        let (value, signature) = signed.rsplit_once('.').expect("dot");
        assert_eq!(value, "tok");
        assert_eq!(signature.len(), 44);
        assert!(signature.ends_with('='));
        let encoded = token.cookie_value("secret");
        assert!(!encoded.contains('='), "{encoded}");
        assert!(encoded.ends_with("%3D"), "{encoded}");
    }

    #[test]
    fn hashes_api_keys_like_better_auth() {
        assert_eq!(
            api_key_hash("abc"),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
    }

    #[test]
    fn builds_both_layouts() {
        let dir = std::env::temp_dir().join(format!(
            "filegate-testkit-auth-{}",
            OffsetDateTime::now_utc().unix_timestamp_nanos()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        for layout in [Layout::BetterAuth, Layout::Drizzle] {
            let db = AuthDbFixture::create_with(dir.join(format!("{layout:?}.db")), layout);
            db.add_user("u1", "u1@example.com", Some("admin"));
            db.add_org("o1", "acme");
            db.add_member("o1", "u1", "owner");
            let session = db.add_session("u1", Some("o1"), OffsetDateTime::now_utc());
            assert_eq!(session.token().len(), 32);
            let key = db.add_api_key("u1", Some("o1"), None, Some((1000, 3)));
            assert_eq!(key.len(), 64);
            assert!(key.chars().all(|c| c.is_ascii_alphabetic()));
            db.disable_key(&key);
            let counters = db.api_key_counters(&key).expect("key row");
            assert_eq!(counters.request_count, Some(0));
            db.sign_out(&session);
            let left: i64 = db
                .connection()
                .query_row("SELECT count(*) FROM session", params![], |r| r.get(0))
                .expect("count");
            assert_eq!(left, 0);
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
