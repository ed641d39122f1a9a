//! Read-mostly access to Better Auth's SQLite database.
//!
//! Better Auth owns this database; filegate only reads sessions, users, memberships and
//! API keys, and writes nothing but an API key's usage counters (see [`AuthDb`]).
//!
//! The layout is detected when the database is opened, because two layouts are common:
//! Better Auth's own migrations (Kysely: camelCase columns such as `expiresAt`, dates as
//! ISO-8601 text, booleans as 0/1) and Drizzle schemas such as Quickback's (snake_case
//! columns such as `expires_at`, dates as integer milliseconds). Table names may be
//! singular (the default) or plural (`usePlural`). The API-key owner column is `userId`
//! (better-auth ≤ 1.4) or `referenceId` (`@better-auth/api-key`, 1.5).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use deadpool_sqlite::rusqlite::types::Value;
use deadpool_sqlite::rusqlite::{
    self, Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior, params_from_iter,
};
use deadpool_sqlite::{Config, Hook, HookError, InteractError, Pool, PoolError, Runtime};
use filegate_core::Error;
use filegate_core::domain::{AuthMethod, Principal};
use subtle::ConstantTimeEq;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// Long enough to ride out Better Auth's own write transactions, short enough to fail a request.
const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

/// Integers below this are Unix seconds (Drizzle's `timestamp` mode), above it milliseconds:
/// 1e11 ms is 1973, 1e11 s is the year 5138, so no real date is ambiguous.
const SECONDS_LIMIT: i64 = 100_000_000_000;

/// A pool of connections to Better Auth's database plus the layout found in it.
///
/// Cheap to clone (the pool and the layout are shared).
#[derive(Clone)]
pub struct AuthDb {
    pool: Pool,
    layout: Arc<Layout>,
}

impl fmt::Debug for AuthDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthDb")
            .field("session_table", &self.layout.session.table)
            .field("api_keys", &self.layout.api_key.is_some())
            .finish_non_exhaustive()
    }
}

impl AuthDb {
    /// Opens an existing Better Auth database and detects its layout.
    ///
    /// The file is never created and no pragma that outlives the connection is set
    /// (the journal mode stays Better Auth's choice); only `busy_timeout` is.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the file is missing or cannot be opened;
    /// [`Error::Internal`] when it lacks the `user`, `session` or `member` table or one
    /// of their required columns.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        if tokio::fs::metadata(path).await.is_err() {
            return Err(Error::unavailable(format!(
                "auth database {} not found",
                path.display()
            )));
        }
        let builder = match Config::new(path).builder(Runtime::Tokio1) {
            Ok(b) => b,
            Err(never) => match never {},
        };
        let pool = builder
            .post_create(Hook::async_fn(|conn, _| {
                Box::pin(async move {
                    conn.interact(|c| c.busy_timeout(BUSY_TIMEOUT))
                        .await
                        .map_err(|e| HookError::message(format!("sqlite worker failed: {e}")))?
                        .map_err(HookError::Backend)
                })
            }))
            .build()
            .map_err(Error::internal)?;
        let layout = run(&pool, Layout::detect).await?.map_err(Error::internal)?;
        if layout.api_key.is_none() {
            tracing::info!("auth database has no usable apikey table: API keys are refused");
        }
        Ok(Self {
            pool,
            layout: Arc::new(layout),
        })
    }

    /// Whether the database has Better Auth's `apikey` table.
    #[must_use]
    pub fn has_api_keys(&self) -> bool {
        self.layout.api_key.is_some()
    }

    /// The session whose stored token is `token`.
    pub(crate) async fn session(&self, token: String) -> Result<Option<SessionRow>, Error> {
        let layout = Arc::clone(&self.layout);
        run(&self.pool, move |c| {
            c.prepare_cached(&layout.session.by_token)?
                .query_row([token], |r| {
                    Ok(SessionRow {
                        user_id: r.get(0)?,
                        expires_at: Stamp::read(r.get::<_, Value>(1)?),
                        active_org_id: non_empty(r.get::<_, Option<String>>(2)?),
                    })
                })
                .optional()
        })
        .await
    }

    /// The user `user_id` and, when `org_id` is given, their role there (`None` when
    /// they are not a member). `None` when the user does not exist.
    pub(crate) async fn user_facts(
        &self,
        user_id: String,
        org_id: Option<String>,
    ) -> Result<Option<UserFacts>, Error> {
        let layout = Arc::clone(&self.layout);
        run(&self.pool, move |c| {
            let user = c
                .prepare_cached(&layout.user.by_id)?
                .query_row([&user_id], |r| {
                    Ok(UserRow {
                        role: non_empty(r.get::<_, Option<String>>(0)?),
                        banned: truthy(&r.get::<_, Value>(1)?).unwrap_or(false),
                        ban_expires: Stamp::read(r.get::<_, Value>(2)?),
                    })
                })
                .optional()?;
            let Some(user) = user else { return Ok(None) };
            let member_role = match org_id {
                Some(org) => c
                    .prepare_cached(&layout.member.role)?
                    .query_row([&org, &user_id], |r| r.get::<_, Option<String>>(0))
                    .optional()?
                    .map(Option::unwrap_or_default),
                None => None,
            };
            Ok(Some(UserFacts { user, member_role }))
        })
        .await
    }

    /// Finds the API key whose stored hash is `hash`, applies Better Auth's checks
    /// (disabled, expired, usage and rate limits) and records the use.
    ///
    /// The key is read without a lock first, so unknown and refused keys never take the
    /// write lock; a key that passes is re-read and updated inside a `BEGIN IMMEDIATE`
    /// transaction, so concurrent requests (and Better Auth itself) cannot lose counts.
    pub(crate) async fn use_api_key(
        &self,
        hash: String,
        now: OffsetDateTime,
        rate_limit_enabled: bool,
    ) -> Result<Option<KeyUse>, Error> {
        let layout = Arc::clone(&self.layout);
        run(&self.pool, move |c| {
            let Some(keys) = layout.api_key.as_ref() else {
                return Ok(None);
            };
            let Some(row) = keys.read(c, &keys.by_key, &hash)? else {
                return Ok(None);
            };
            // The SQL lookup already matched; this guards against collation surprises.
            if !bool::from(row.key_hash.as_bytes().ct_eq(hash.as_bytes())) {
                return Ok(None);
            }
            if let Err(refusal) = evaluate(&row, now, rate_limit_enabled) {
                return Ok(Some(KeyUse::Refused(refusal)));
            }
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(row) = keys.read(&tx, &keys.by_id, &row.id)? else {
                return Ok(None);
            };
            let outcome = match evaluate(&row, now, rate_limit_enabled) {
                Ok(update) => {
                    keys.write(&tx, &row, &update, now)?;
                    KeyUse::Accepted(Box::new(row))
                }
                Err(refusal) => KeyUse::Refused(refusal),
            };
            tx.commit()?;
            Ok(Some(outcome))
        })
        .await
    }
}

/// Runs `f` on a pooled connection, on a blocking thread.
async fn run<T, F>(pool: &Pool, f: F) -> Result<T, Error>
where
    F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    T: Send + 'static,
{
    let conn = pool.get().await.map_err(from_pool)?;
    conn.interact(f)
        .await
        .map_err(from_interact)?
        .map_err(from_sqlite)
}

/// Busy, locked or unreachable → `Unavailable`; anything else (bad SQL, a schema that
/// changed under us) → `Internal`.
fn from_sqlite(e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::CannotOpen
            | ErrorCode::SystemIoFailure
            | ErrorCode::NotADatabase,
        ) => Error::unavailable(e),
        _ => Error::internal(e),
    }
}

fn from_pool(e: PoolError) -> Error {
    Error::unavailable(e)
}

// The panic payload is not `Sync`, so only its description is kept.
fn from_interact(e: InteractError) -> Error {
    Error::unavailable(format!("sqlite worker failed: {e}"))
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

// ---------------------------------------------------------------------------------------
// Rows

#[derive(Debug, Clone)]
pub(crate) struct SessionRow {
    pub user_id: String,
    pub expires_at: Stamp,
    pub active_org_id: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct UserRow {
    /// The admin plugin's platform role.
    pub role: Option<String>,
    pub banned: bool,
    pub ban_expires: Stamp,
}

impl UserRow {
    /// Banned now: the admin plugin's `banned` with no `banExpires`, or one still ahead.
    pub(crate) fn is_banned(&self, now: OffsetDateTime) -> bool {
        self.banned
            && match self.ban_expires {
                Stamp::Absent | Stamp::Unreadable => true,
                Stamp::At(t) => t > now,
            }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct UserFacts {
    pub user: UserRow,
    /// The `member.role` in the organization asked about; `None` when not a member.
    pub member_role: Option<String>,
}

impl UserFacts {
    /// The principal: `org_id` becomes the active organization only with a membership.
    pub(crate) fn principal(
        &self,
        user_id: String,
        org_id: Option<String>,
        method: AuthMethod,
    ) -> Principal {
        let (active_org_id, roles) = match (&self.member_role, org_id) {
            (Some(role), Some(org)) => (Some(org), split_roles(role)),
            _ => (None, Vec::new()),
        };
        Principal {
            user_id,
            active_org_id,
            roles,
            platform_role: self.user.role.clone(),
            method,
        }
    }
}

/// `member.role` may hold several comma-separated roles (the organization plugin's
/// multi-role form).
pub(crate) fn split_roles(role: &str) -> Vec<String> {
    role.split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A stored date: absent (NULL), readable, or present but unreadable (fail closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stamp {
    Absent,
    At(OffsetDateTime),
    Unreadable,
}

impl Stamp {
    fn read(v: Value) -> Self {
        match v {
            Value::Null => Self::Absent,
            other => parse_time(&other).map_or(Self::Unreadable, Self::At),
        }
    }

    fn at(self) -> Option<OffsetDateTime> {
        match self {
            Self::At(t) => Some(t),
            Self::Absent | Self::Unreadable => None,
        }
    }
}

/// An API key row, with the columns Better Auth's verification reads.
#[derive(Debug, Clone)]
pub(crate) struct ApiKeyRow {
    pub id: String,
    pub key_hash: String,
    /// `userId`, or `referenceId` in `@better-auth/api-key`.
    pub owner_id: String,
    pub enabled: Option<bool>,
    pub expires_at: Stamp,
    pub remaining: Option<i64>,
    pub refill_interval: Option<i64>,
    pub refill_amount: Option<i64>,
    pub last_refill_at: Stamp,
    pub rate_limit_enabled: Option<bool>,
    pub rate_limit_time_window: Option<i64>,
    pub rate_limit_max: Option<i64>,
    pub request_count: Option<i64>,
    pub last_request: Stamp,
    pub created_at: Stamp,
    /// How this row stores dates, so what filegate writes reads back the same way.
    pub date_format: DateFormat,
    pub metadata: Option<String>,
}

/// Why a key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Disabled,
    Expired,
    UnreadableExpiry,
    UsageExceeded,
    RateLimited,
}

#[derive(Debug, Clone)]
pub(crate) enum KeyUse {
    Accepted(Box<ApiKeyRow>),
    Refused(Refusal),
}

/// The counters an accepted request changes; `None` fields are left as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyUpdate {
    pub last_request: Option<OffsetDateTime>,
    pub request_count: Option<i64>,
    pub remaining: Option<i64>,
    pub last_refill_at: Option<OffsetDateTime>,
}

/// Better Auth's `validateApiKey` (checks and counter updates) as a pure function.
///
/// Order and rules follow better-auth's `verify-api-key.ts` and `rate-limit.ts`:
/// `enabled === false` → disabled; `now > expiresAt` → expired; `remaining === 0` with
/// no refill → usage exceeded; a refill when `refillInterval` ms have passed since
/// `lastRefillAt ?? createdAt`; `remaining === 0` → usage exceeded, else decremented;
/// then the rate limit: off when disabled by the plugin or the key (`lastRequest` still
/// stamped) or when the window or max is NULL (nothing written), first request or more
/// than `rateLimitTimeWindow` ms since `lastRequest` → count 1, `requestCount >=
/// rateLimitMax` → limited, else count + 1. A limited request changes nothing
/// (as in `@better-auth/api-key` 1.5).
pub(crate) fn evaluate(
    row: &ApiKeyRow,
    now: OffsetDateTime,
    plugin_rate_limit: bool,
) -> Result<KeyUpdate, Refusal> {
    if row.enabled == Some(false) {
        return Err(Refusal::Disabled);
    }
    match row.expires_at {
        Stamp::At(t) if now > t => return Err(Refusal::Expired),
        Stamp::Unreadable => return Err(Refusal::UnreadableExpiry),
        _ => {}
    }

    let mut update = KeyUpdate::default();
    if let Some(mut remaining) = row.remaining {
        let interval = row.refill_interval.filter(|i| *i != 0);
        let amount = row.refill_amount.filter(|a| *a != 0);
        if remaining == 0 && row.refill_amount.is_none() {
            return Err(Refusal::UsageExceeded);
        }
        if let (Some(interval), Some(amount)) = (interval, amount) {
            // With neither date readable JavaScript compares NaN: no refill.
            let since = row.last_refill_at.at().or(row.created_at.at());
            if since.is_some_and(|t| (now - t).whole_milliseconds() > i128::from(interval)) {
                remaining = amount;
                update.last_refill_at = Some(now);
            }
        }
        if remaining <= 0 {
            return Err(Refusal::UsageExceeded);
        }
        update.remaining = Some(remaining - 1);
    }

    if !plugin_rate_limit || row.rate_limit_enabled == Some(false) {
        update.last_request = Some(now);
        return Ok(update);
    }
    let (Some(window), Some(max)) = (row.rate_limit_time_window, row.rate_limit_max) else {
        return Ok(update);
    };
    let count = match row.last_request.at() {
        None => 1,
        Some(last) if (now - last).whole_milliseconds() > i128::from(window) => 1,
        Some(_) => {
            let count = row.request_count.unwrap_or(0);
            if count >= max {
                return Err(Refusal::RateLimited);
            }
            count.saturating_add(1)
        }
    };
    update.last_request = Some(now);
    update.request_count = Some(count);
    Ok(update)
}

// ---------------------------------------------------------------------------------------
// Dates and booleans

/// How a row stores dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateFormat {
    /// `toISOString()`: `2025-06-01T12:00:00.000Z` (Better Auth's Kysely adapter).
    IsoText,
    /// Integer Unix milliseconds (Drizzle `timestamp_ms`, Prisma).
    Millis,
    /// Integer Unix seconds (Drizzle `timestamp`).
    Seconds,
}

impl DateFormat {
    fn of(v: &Value, declared_type: &str) -> Self {
        match v {
            Value::Integer(n) if n.abs() < SECONDS_LIMIT => Self::Seconds,
            Value::Integer(_) | Value::Real(_) => Self::Millis,
            Value::Text(_) => Self::IsoText,
            // Nothing stored yet: go by the declared type, as the writer would.
            _ if declared_type.to_ascii_lowercase().contains("int") => Self::Millis,
            _ => Self::IsoText,
        }
    }

    pub(crate) fn encode(self, t: OffsetDateTime) -> Value {
        let t = t.to_offset(UtcOffset::UTC);
        match self {
            Self::IsoText => Value::Text(format_iso(t)),
            Self::Millis => {
                Value::Integer(i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
            }
            Self::Seconds => Value::Integer(t.unix_timestamp()),
        }
    }
}

/// JavaScript's `Date.prototype.toISOString()`.
pub(crate) fn format_iso(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .unwrap_or_default()
}

/// Reads a stored date: ISO-8601 / RFC 3339 text, SQLite's `YYYY-MM-DD HH:MM:SS[.fff]`
/// (taken as UTC), or a number of Unix milliseconds or seconds (see [`SECONDS_LIMIT`]).
pub(crate) fn parse_time(v: &Value) -> Option<OffsetDateTime> {
    match v {
        Value::Integer(n) => from_integer(*n),
        Value::Real(f) => from_real(*f),
        Value::Text(s) => {
            let s = s.trim();
            if let Ok(n) = s.parse::<i64>() {
                return from_integer(n);
            }
            if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
                return Some(t);
            }
            let naive = s
                .strip_suffix(['Z', 'z'])
                .unwrap_or(s)
                .replacen(' ', "T", 1);
            PrimitiveDateTime::parse(
                &naive,
                format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
                ),
            )
            .ok()
            .map(PrimitiveDateTime::assume_utc)
        }
        Value::Null | Value::Blob(_) => None,
    }
}

fn from_integer(n: i64) -> Option<OffsetDateTime> {
    let millis = if n.abs() < SECONDS_LIMIT {
        i128::from(n) * 1000
    } else {
        i128::from(n)
    };
    OffsetDateTime::from_unix_timestamp_nanos(millis * 1_000_000).ok()
}

fn from_real(f: f64) -> Option<OffsetDateTime> {
    if !f.is_finite() || f.abs() >= i64::MAX as f64 / 1000.0 {
        return None;
    }
    // Whole milliseconds: f64 cannot carry nanoseconds at this magnitude anyway.
    let millis = if f.abs() < SECONDS_LIMIT as f64 {
        f * 1000.0
    } else {
        f
    };
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis.round() as i64) * 1_000_000).ok()
}

/// A stored boolean: 0/1 (Better Auth on SQLite), or `true`/`false` text.
pub(crate) fn truthy(v: &Value) -> Option<bool> {
    match v {
        Value::Integer(n) => Some(*n != 0),
        Value::Real(f) => Some(*f != 0.0),
        Value::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "t" | "yes" => Some(true),
            "0" | "false" | "f" | "no" => Some(false),
            _ => None,
        },
        Value::Null | Value::Blob(_) => None,
    }
}

fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Integer(n) => Some(*n),
        // Saturating: a fractional counter is not something Better Auth writes.
        Value::Real(f) if f.is_finite() => Some(*f as i64),
        Value::Text(s) => s.trim().parse().ok(),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Layout detection

/// The tables and columns found, as ready-made SQL with quoted identifiers.
#[derive(Debug)]
struct Layout {
    session: SessionSql,
    user: UserSql,
    member: MemberSql,
    api_key: Option<ApiKeySql>,
}

#[derive(Debug)]
struct SessionSql {
    table: String,
    by_token: String,
}

#[derive(Debug)]
struct UserSql {
    by_id: String,
}

#[derive(Debug)]
struct MemberSql {
    role: String,
}

/// Columns of one table: lower-cased name → (real name, declared type).
struct Columns {
    table: String,
    cols: HashMap<String, (String, String)>,
}

impl Columns {
    /// The column for a camelCase field: as named, or in snake_case.
    fn find(&self, field: &str) -> Option<&(String, String)> {
        self.cols
            .get(&field.to_ascii_lowercase())
            .or_else(|| self.cols.get(&snake_case(field)))
    }

    fn quoted(&self, field: &str) -> Option<String> {
        self.find(field).map(|(name, _)| quote(name))
    }

    fn require(&self, field: &str) -> Result<String, String> {
        self.quoted(field)
            .ok_or_else(|| format!("auth table {} has no {field} column", self.table))
    }

    /// The column, or SQL `NULL` when this optional field is missing.
    fn or_null(&self, field: &str) -> String {
        self.quoted(field).unwrap_or_else(|| "NULL".to_owned())
    }

    fn table(&self) -> String {
        quote(&self.table)
    }
}

fn snake_case(field: &str) -> String {
    let mut out = String::with_capacity(field.len() + 4);
    for c in field.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// The first of `names` that exists, with its columns.
fn find_table(c: &Connection, names: &[&str]) -> rusqlite::Result<Option<Columns>> {
    for name in names {
        let mut stmt = c.prepare(&format!("PRAGMA table_info({})", quote(name)))?;
        let cols = stmt
            .query_map([], |r| {
                let col: String = r.get(1)?;
                let ty: Option<String> = r.get(2)?;
                Ok((col.to_ascii_lowercase(), (col, ty.unwrap_or_default())))
            })?
            .collect::<rusqlite::Result<HashMap<_, _>>>()?;
        if !cols.is_empty() {
            return Ok(Some(Columns {
                table: (*name).to_owned(),
                cols,
            }));
        }
    }
    Ok(None)
}

impl Layout {
    /// Outer error: SQLite failed; inner: the database is not a Better Auth one.
    fn detect(c: &mut Connection) -> rusqlite::Result<Result<Self, String>> {
        let missing = |t: &str| format!("auth database has no {t} table");
        let Some(session) = find_table(c, &["session", "sessions"])? else {
            return Ok(Err(missing("session")));
        };
        let Some(user) = find_table(c, &["user", "users"])? else {
            return Ok(Err(missing("user")));
        };
        let Some(member) = find_table(c, &["member", "members"])? else {
            return Ok(Err(missing("member (organization plugin)")));
        };
        let api_key = find_table(c, &["apikey", "apikeys", "api_key", "api_keys"])?;
        Ok(Self::build(&session, &user, &member, api_key.as_ref()))
    }

    fn build(
        session: &Columns,
        user: &Columns,
        member: &Columns,
        api_key: Option<&Columns>,
    ) -> Result<Self, String> {
        let session_sql = SessionSql {
            table: session.table.clone(),
            by_token: format!(
                "SELECT {}, {}, {} FROM {} WHERE {} = ?1 LIMIT 1",
                session.require("userId")?,
                session.require("expiresAt")?,
                session.or_null("activeOrganizationId"),
                session.table(),
                session.require("token")?,
            ),
        };
        let user_sql = UserSql {
            by_id: format!(
                "SELECT {}, {}, {} FROM {} WHERE {} = ?1 LIMIT 1",
                user.or_null("role"),
                user.or_null("banned"),
                user.or_null("banExpires"),
                user.table(),
                user.require("id")?,
            ),
        };
        let member_sql = MemberSql {
            role: format!(
                "SELECT {} FROM {} WHERE {} = ?1 AND {} = ?2 LIMIT 1",
                member.require("role")?,
                member.table(),
                member.require("organizationId")?,
                member.require("userId")?,
            ),
        };
        let api_key = match api_key.map(ApiKeySql::build) {
            Some(Ok(sql)) => Some(sql),
            Some(Err(why)) => {
                tracing::warn!(reason = %why, "apikey table not usable");
                None
            }
            None => None,
        };
        Ok(Self {
            session: session_sql,
            user: user_sql,
            member: member_sql,
            api_key,
        })
    }
}

/// The `apikey` columns read, in SELECT order.
const API_KEY_FIELDS: [&str; 17] = [
    "id",
    "key",
    "userId", // or referenceId, see `build`
    "enabled",
    "expiresAt",
    "remaining",
    "refillInterval",
    "refillAmount",
    "lastRefillAt",
    "rateLimitEnabled",
    "rateLimitTimeWindow",
    "rateLimitMax",
    "requestCount",
    "lastRequest",
    "createdAt",
    "metadata",
    "updatedAt",
];

#[derive(Debug)]
struct ApiKeySql {
    by_key: String,
    by_id: String,
    table: String,
    id: String,
    created_at_type: String,
    last_request: String,
    request_count: String,
    remaining: String,
    last_refill_at: String,
    updated_at: String,
}

impl ApiKeySql {
    fn build(cols: &Columns) -> Result<Self, String> {
        let owner = cols
            .quoted("userId")
            .or_else(|| cols.quoted("referenceId"))
            .ok_or_else(|| format!("auth table {} has no userId column", cols.table))?;
        let mut select = Vec::with_capacity(API_KEY_FIELDS.len());
        for field in API_KEY_FIELDS {
            select.push(if field == "userId" {
                owner.clone()
            } else {
                cols.require(field)?
            });
        }
        let select = select.join(", ");
        Ok(Self {
            by_key: format!(
                "SELECT {select} FROM {} WHERE {} = ?1 LIMIT 1",
                cols.table(),
                cols.require("key")?
            ),
            by_id: format!(
                "SELECT {select} FROM {} WHERE {} = ?1 LIMIT 1",
                cols.table(),
                cols.require("id")?
            ),
            table: cols.table(),
            id: cols.require("id")?,
            created_at_type: cols
                .find("createdAt")
                .map(|c| c.1.clone())
                .unwrap_or_default(),
            last_request: cols.require("lastRequest")?,
            request_count: cols.require("requestCount")?,
            remaining: cols.require("remaining")?,
            last_refill_at: cols.require("lastRefillAt")?,
            updated_at: cols.require("updatedAt")?,
        })
    }

    fn read(&self, c: &Connection, sql: &str, arg: &str) -> rusqlite::Result<Option<ApiKeyRow>> {
        c.prepare_cached(sql)?
            .query_row([arg], |r| self.row(r))
            .optional()
    }

    fn row(&self, r: &Row<'_>) -> rusqlite::Result<ApiKeyRow> {
        let v = |i: usize| r.get::<_, Value>(i);
        let created_at = v(14)?;
        Ok(ApiKeyRow {
            id: r.get(0)?,
            key_hash: r.get(1)?,
            owner_id: r.get(2)?,
            enabled: truthy(&v(3)?),
            expires_at: Stamp::read(v(4)?),
            remaining: integer(&v(5)?),
            refill_interval: integer(&v(6)?),
            refill_amount: integer(&v(7)?),
            last_refill_at: Stamp::read(v(8)?),
            rate_limit_enabled: truthy(&v(9)?),
            rate_limit_time_window: integer(&v(10)?),
            rate_limit_max: integer(&v(11)?),
            request_count: integer(&v(12)?),
            last_request: Stamp::read(v(13)?),
            date_format: DateFormat::of(&created_at, &self.created_at_type),
            created_at: Stamp::read(created_at),
            metadata: r.get::<_, Option<String>>(15)?,
        })
    }

    /// Writes the changed counters and `updatedAt`, as Better Auth's update does.
    fn write(
        &self,
        c: &Connection,
        row: &ApiKeyRow,
        update: &KeyUpdate,
        now: OffsetDateTime,
    ) -> rusqlite::Result<()> {
        let fmt = row.date_format;
        let mut sets = vec![format!("{} = ?", self.updated_at)];
        let mut args = vec![fmt.encode(now)];
        if let Some(t) = update.last_request {
            sets.push(format!("{} = ?", self.last_request));
            args.push(fmt.encode(t));
        }
        if let Some(n) = update.request_count {
            sets.push(format!("{} = ?", self.request_count));
            args.push(Value::Integer(n));
        }
        if let Some(n) = update.remaining {
            sets.push(format!("{} = ?", self.remaining));
            args.push(Value::Integer(n));
        }
        if let Some(t) = update.last_refill_at {
            sets.push(format!("{} = ?", self.last_refill_at));
            args.push(fmt.encode(t));
        }
        args.push(Value::Text(row.id.clone()));
        let sql = format!(
            "UPDATE {} SET {} WHERE {} = ?",
            self.table,
            sets.join(", "),
            self.id
        );
        c.execute(&sql, params_from_iter(args))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2025-06-01 12:00 UTC);

    fn key() -> ApiKeyRow {
        ApiKeyRow {
            id: "k1".into(),
            key_hash: "h".into(),
            owner_id: "u1".into(),
            enabled: Some(true),
            expires_at: Stamp::Absent,
            remaining: None,
            refill_interval: None,
            refill_amount: None,
            last_refill_at: Stamp::Absent,
            rate_limit_enabled: Some(true),
            rate_limit_time_window: Some(1000),
            rate_limit_max: Some(2),
            request_count: Some(0),
            last_request: Stamp::Absent,
            created_at: Stamp::At(NOW - time::Duration::days(1)),
            date_format: DateFormat::IsoText,
            metadata: None,
        }
    }

    #[test]
    fn parses_every_date_form_better_auth_writers_use() {
        let expected = datetime!(2025-06-01 12:00:00.123 UTC);
        for v in [
            Value::Text("2025-06-01T12:00:00.123Z".into()),
            Value::Text("2025-06-01T14:00:00.123+02:00".into()),
            Value::Text("2025-06-01 12:00:00.123".into()),
            Value::Integer(1_748_779_200_123),
            Value::Real(1_748_779_200_123.0),
            Value::Text("1748779200123".into()),
        ] {
            assert_eq!(parse_time(&v), Some(expected), "{v:?}");
        }
        assert_eq!(
            parse_time(&Value::Integer(1_748_779_200)),
            Some(datetime!(2025-06-01 12:00 UTC))
        );
        assert_eq!(
            parse_time(&Value::Text("2025-06-01 12:00:00".into())),
            Some(datetime!(2025-06-01 12:00 UTC))
        );
        for bad in [
            Value::Text("yesterday".into()),
            Value::Real(f64::NAN),
            Value::Blob(vec![1]),
            Value::Null,
        ] {
            assert_eq!(parse_time(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn writes_dates_the_way_the_row_stores_them() {
        let t = datetime!(2025-06-01 12:00:00.5 UTC);
        assert_eq!(
            DateFormat::IsoText.encode(t),
            Value::Text("2025-06-01T12:00:00.500Z".into())
        );
        assert_eq!(
            DateFormat::Millis.encode(t),
            Value::Integer(1_748_779_200_500)
        );
        assert_eq!(DateFormat::Seconds.encode(t), Value::Integer(1_748_779_200));
        assert_eq!(
            DateFormat::of(&Value::Integer(1_748_779_200_500), ""),
            DateFormat::Millis
        );
        assert_eq!(
            DateFormat::of(&Value::Integer(1_748_779_200), ""),
            DateFormat::Seconds
        );
        assert_eq!(
            DateFormat::of(&Value::Text("x".into()), ""),
            DateFormat::IsoText
        );
        assert_eq!(DateFormat::of(&Value::Null, "integer"), DateFormat::Millis);
        assert_eq!(DateFormat::of(&Value::Null, "date"), DateFormat::IsoText);
    }

    #[test]
    fn booleans_read_as_better_auth_writes_them() {
        assert_eq!(truthy(&Value::Integer(0)), Some(false));
        assert_eq!(truthy(&Value::Integer(1)), Some(true));
        assert_eq!(truthy(&Value::Text("false".into())), Some(false));
        assert_eq!(truthy(&Value::Null), None);
    }

    #[test]
    fn snake_case_matches_drizzle_names() {
        assert_eq!(snake_case("activeOrganizationId"), "active_organization_id");
        assert_eq!(snake_case("rateLimitTimeWindow"), "rate_limit_time_window");
        assert_eq!(snake_case("id"), "id");
        assert_eq!(quote("we\"ird"), "\"we\"\"ird\"");
    }

    #[test]
    fn rate_limit_counts_then_refuses_then_resets() {
        let mut row = key();
        let first = evaluate(&row, NOW, true).unwrap();
        assert_eq!(first.request_count, Some(1));
        assert_eq!(first.last_request, Some(NOW));

        row.last_request = Stamp::At(NOW);
        row.request_count = Some(1);
        assert_eq!(evaluate(&row, NOW, true).unwrap().request_count, Some(2));

        row.request_count = Some(2);
        assert_eq!(evaluate(&row, NOW, true), Err(Refusal::RateLimited));
        // Exactly the window is still inside it (Better Auth: `> window` resets).
        let edge = NOW + time::Duration::milliseconds(1000);
        assert_eq!(evaluate(&row, edge, true), Err(Refusal::RateLimited));
        let after = NOW + time::Duration::milliseconds(1001);
        assert_eq!(evaluate(&row, after, true).unwrap().request_count, Some(1));
    }

    #[test]
    fn rate_limit_off_only_stamps_last_request() {
        let mut row = key();
        row.request_count = Some(99);
        row.last_request = Stamp::At(NOW);
        for (plugin, key_flag) in [(false, Some(true)), (true, Some(false))] {
            row.rate_limit_enabled = key_flag;
            let update = evaluate(&row, NOW, plugin).unwrap();
            assert_eq!(update.request_count, None);
            assert_eq!(update.last_request, Some(NOW));
        }
        row.rate_limit_enabled = None; // NULL is not `false`: still limited
        assert_eq!(evaluate(&row, NOW, true), Err(Refusal::RateLimited));
        row.rate_limit_max = None;
        assert_eq!(evaluate(&row, NOW, true), Ok(KeyUpdate::default()));
    }

    #[test]
    fn remaining_is_used_up_and_refilled() {
        let mut row = key();
        row.rate_limit_enabled = Some(false);
        row.remaining = Some(1);
        assert_eq!(evaluate(&row, NOW, true).unwrap().remaining, Some(0));

        row.remaining = Some(0);
        assert_eq!(evaluate(&row, NOW, true), Err(Refusal::UsageExceeded));

        row.refill_interval = Some(60_000);
        row.refill_amount = Some(5);
        row.last_refill_at = Stamp::At(NOW - time::Duration::seconds(30));
        assert_eq!(evaluate(&row, NOW, true), Err(Refusal::UsageExceeded));
        row.last_refill_at = Stamp::At(NOW - time::Duration::seconds(61));
        let update = evaluate(&row, NOW, true).unwrap();
        assert_eq!(update.remaining, Some(4));
        assert_eq!(update.last_refill_at, Some(NOW));
    }

    #[test]
    fn disabled_and_expired_keys_are_refused_first() {
        let mut row = key();
        row.expires_at = Stamp::At(NOW - time::Duration::seconds(1));
        assert_eq!(evaluate(&row, NOW, true), Err(Refusal::Expired));
        row.expires_at = Stamp::At(NOW);
        assert!(
            evaluate(&row, NOW, true).is_ok(),
            "now == expiresAt is not expired"
        );
        row.expires_at = Stamp::Unreadable;
        assert_eq!(evaluate(&row, NOW, true), Err(Refusal::UnreadableExpiry));
        row.enabled = Some(false);
        assert_eq!(evaluate(&row, NOW, true), Err(Refusal::Disabled));
    }

    #[test]
    fn bans_end_at_ban_expires() {
        let mut user = UserRow {
            role: None,
            banned: true,
            ban_expires: Stamp::Absent,
        };
        assert!(user.is_banned(NOW));
        user.ban_expires = Stamp::At(NOW + time::Duration::hours(1));
        assert!(user.is_banned(NOW));
        user.ban_expires = Stamp::At(NOW - time::Duration::hours(1));
        assert!(!user.is_banned(NOW));
        user.banned = false;
        user.ban_expires = Stamp::Absent;
        assert!(!user.is_banned(NOW));
    }
}
