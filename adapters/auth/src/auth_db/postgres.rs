//! Better Auth's tables on PostgreSQL.
//!
//! The same layout detection ([`Columns`], [`Layout::build`]), row types and
//! [`evaluate`] as SQLite; only the driver differs. Better Auth's Kysely migrations
//! create quoted camelCase columns, `timestamptz` dates, `boolean` flags and `integer`
//! counters; Drizzle schemas use snake_case and often `timestamp` without time zone (read
//! and written as UTC). Values are read into the loose SQLite [`Value`] the row readers
//! already understand, so dates and flags are interpreted by one set of rules.

use super::api_key_rules::{KeyUpdate, KeyUse, evaluate};
use super::layout::{API_KEY_FIELDS, ApiKeySql, Columns, Dialect, Layout, quote};
use super::non_empty;
use super::rows::{ApiKeyRow, SessionRow, Stamp, UserFacts, UserRow};
use super::values::{DateFormat, format_iso, integer, truthy};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Pool, PoolError, Runtime};
use deadpool_sqlite::rusqlite::types::Value;
use filegate_core::Error;
use filegate_postgres::PgTarget;
use subtle::ConstantTimeEq;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{GenericClient, Row};

/// Size and timeouts of the auth database's pool (`FILEGATE_AUTH_DB_POOL_SIZE`,
/// `FILEGATE_AUTH_DB_TIMEOUT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgAuthPool {
    /// Most connections the pool opens.
    pub size: usize,
    /// Bounds opening a connection, waiting for a free one, and each lookup or key use
    /// (pool wait included), so a stuck database answers 503 rather than holding the
    /// request. Client-side: PgBouncer refuses startup `options`.
    pub timeout: Duration,
}

impl Default for PgAuthPool {
    fn default() -> Self {
        Self {
            size: 8,
            timeout: Duration::from_secs(5),
        }
    }
}

/// How long a key use waits for another request's row lock (SQLSTATE 55P03 after).
const LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '4s'";

/// The columns of a table as the search path resolves it (the same resolution the
/// queries get, which `information_schema` filtered by schema name would not give).
/// Types without their modifier: a lookup cast to `varchar(36)` would truncate its value.
const COLUMNS_SQL: &str = "SELECT a.attname::text, format_type(a.atttypid, NULL) \
     FROM pg_catalog.pg_attribute a \
     WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped";

#[derive(Clone)]
pub(super) struct PgAuthDb {
    pool: Pool,
    layout: Arc<Layout>,
    timeout: Duration,
}

impl PgAuthDb {
    pub(super) async fn open(url: &str, settings: PgAuthPool) -> Result<Self, Error> {
        let pool = Pool::builder(target(url)?.manager())
            .max_size(settings.size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(settings.timeout))
            .create_timeout(Some(settings.timeout))
            .recycle_timeout(Some(settings.timeout))
            .build()
            .map_err(|e| Error::internal(format!("auth database pool: {e}")))?;
        let layout = {
            let client = pool.get().await.map_err(pool_error)?;
            detect(&client).await?.map_err(Error::internal)?
        };
        if layout.api_key.is_none() {
            tracing::info!("auth database has no usable apikey table: API keys are refused");
        }
        Ok(Self {
            pool,
            layout: Arc::new(layout),
            timeout: settings.timeout,
        })
    }

    pub(super) fn layout(&self) -> &Layout {
        &self.layout
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, Error> {
        self.pool.get().await.map_err(pool_error)
    }

    pub(super) async fn session(&self, token: &str) -> Result<Option<SessionRow>, Error> {
        bounded(self.timeout, self.session_row(token)).await
    }

    pub(super) async fn user_facts(
        &self,
        user_id: &str,
        org_id: Option<&str>,
    ) -> Result<Option<UserFacts>, Error> {
        bounded(self.timeout, self.user_rows(user_id, org_id)).await
    }

    /// See [`super::AuthDb::use_api_key`]: the write lock is `SELECT … FOR UPDATE` in a
    /// READ COMMITTED transaction, so a waiting request re-reads the committed counters.
    pub(super) async fn use_api_key(
        &self,
        hash: &str,
        now: OffsetDateTime,
        rate_limit_enabled: bool,
    ) -> Result<Option<KeyUse>, Error> {
        bounded(self.timeout, self.spend_key(hash, now, rate_limit_enabled)).await
    }

    async fn session_row(&self, token: &str) -> Result<Option<SessionRow>, Error> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&self.layout.session.by_token)
            .await
            .map_err(db_error)?;
        let Some(r) = lookup(client.query_opt(&stmt, &[&token]).await)? else {
            return Ok(None);
        };
        Ok(Some(SessionRow {
            user_id: text(value_at(&r, 0)?, "session.userId")?,
            expires_at: Stamp::read(value_at(&r, 1)?),
            active_org_id: non_empty(optional_text(value_at(&r, 2)?)),
        }))
    }

    async fn user_rows(
        &self,
        user_id: &str,
        org_id: Option<&str>,
    ) -> Result<Option<UserFacts>, Error> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&self.layout.user.by_id)
            .await
            .map_err(db_error)?;
        let Some(r) = lookup(client.query_opt(&stmt, &[&user_id]).await)? else {
            return Ok(None);
        };
        let user = UserRow {
            role: non_empty(optional_text(value_at(&r, 0)?)),
            banned: truthy(&value_at(&r, 1)?).unwrap_or(false),
            ban_expires: Stamp::read(value_at(&r, 2)?),
        };
        let member_role = match org_id {
            Some(org) => {
                let stmt = client
                    .prepare_cached(&self.layout.member.role)
                    .await
                    .map_err(db_error)?;
                match lookup(client.query_opt(&stmt, &[&org, &user_id]).await)? {
                    Some(r) => Some(optional_text(value_at(&r, 0)?).unwrap_or_default()),
                    None => None,
                }
            }
            None => None,
        };
        Ok(Some(UserFacts { user, member_role }))
    }

    async fn spend_key(
        &self,
        hash: &str,
        now: OffsetDateTime,
        rate_limit_enabled: bool,
    ) -> Result<Option<KeyUse>, Error> {
        let Some(keys) = self.layout.api_key.as_ref() else {
            return Ok(None);
        };
        let mut client = self.client().await?;
        let stmt = client
            .prepare_cached(&keys.by_key)
            .await
            .map_err(db_error)?;
        let Some(r) = lookup(client.query_opt(&stmt, &[&hash]).await)? else {
            return Ok(None);
        };
        let row = key_row(keys, &r)?;
        // The SQL lookup already matched; this guards against collation surprises.
        if !bool::from(row.key_hash.as_bytes().ct_eq(hash.as_bytes())) {
            return Ok(None);
        }
        if let Err(refusal) = evaluate(&row, now, rate_limit_enabled) {
            return Ok(Some(KeyUse::Refused(refusal)));
        }
        let tx = client.transaction().await.map_err(db_error)?;
        tx.batch_execute(LOCK_TIMEOUT).await.map_err(db_error)?;
        let locked = format!("{} FOR UPDATE", keys.by_id);
        // Dropping `tx` on an early return rolls it back.
        let Some(r) = tx
            .query_opt(locked.as_str(), &[&row.id])
            .await
            .map_err(db_error)?
        else {
            return Ok(None);
        };
        let row = key_row(keys, &r)?;
        let outcome = match evaluate(&row, now, rate_limit_enabled) {
            Ok(update) => {
                write_key(&*tx, keys, &row, &update, now).await?;
                KeyUse::Accepted(Box::new(row))
            }
            Err(refusal) => KeyUse::Refused(refusal),
        };
        tx.commit().await.map_err(db_error)?;
        Ok(Some(outcome))
    }
}

/// Parses the URL as the metadata pool does (TLS by `sslmode`, with rustls); adds
/// `application_name` unless the URL sets it.
fn target(url: &str) -> Result<PgTarget, Error> {
    let mut target = PgTarget::parse(url, "FILEGATE_AUTH_DB")?;
    if target.config.get_application_name().is_none() {
        target.config.application_name("filegate");
    }
    Ok(target)
}

async fn bounded<T>(
    timeout: Duration,
    op: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(timeout, op).await.unwrap_or_else(|_| {
        Err(Error::unavailable(format!(
            "auth database: no answer within {timeout:?}"
        )))
    })
}

/// Outer error: Postgres failed; inner: the database is not a Better Auth one.
async fn detect(client: &tokio_postgres::Client) -> Result<Result<Layout, String>, Error> {
    let missing = |t: &str| format!("auth database has no {t} table");
    let Some(session) = find_table(client, &["session", "sessions"]).await? else {
        return Ok(Err(missing("session")));
    };
    let Some(user) = find_table(client, &["user", "users"]).await? else {
        return Ok(Err(missing("user")));
    };
    let Some(member) = find_table(client, &["member", "members"]).await? else {
        return Ok(Err(missing("member (organization plugin)")));
    };
    let api_key = find_table(client, &["apikey", "apikeys", "api_key", "api_keys"]).await?;
    Ok(Layout::build(
        &session,
        &user,
        &member,
        api_key.as_ref(),
        Dialect::Postgres,
    ))
}

/// The first of `names` the search path resolves, with its columns.
async fn find_table(
    client: &tokio_postgres::Client,
    names: &[&str],
) -> Result<Option<Columns>, Error> {
    for name in names {
        let rows = client
            .query(COLUMNS_SQL, &[&quote(name)])
            .await
            .map_err(db_error)?;
        let mut cols = HashMap::with_capacity(rows.len());
        for r in &rows {
            let col: String = r.try_get(0).map_err(conversion)?;
            let ty: String = r.try_get(1).map_err(conversion)?;
            cols.insert(col.to_ascii_lowercase(), (col, ty));
        }
        if !cols.is_empty() {
            return Ok(Some(Columns {
                table: (*name).to_owned(),
                cols,
            }));
        }
    }
    Ok(None)
}

/// One `apikey` row, selected in [`API_KEY_FIELDS`] order.
fn key_row(keys: &ApiKeySql, r: &Row) -> Result<ApiKeyRow, Error> {
    let v = (0..API_KEY_FIELDS.len())
        .map(|i| value_at(r, i))
        .collect::<Result<Vec<_>, _>>()?;
    let created_at = v[14].clone();
    Ok(ApiKeyRow {
        id: text(v[0].clone(), "apikey.id")?,
        key_hash: text(v[1].clone(), "apikey.key")?,
        owner_id: text(v[2].clone(), "apikey.userId")?,
        enabled: truthy(&v[3]),
        expires_at: Stamp::read(v[4].clone()),
        remaining: integer(&v[5]),
        refill_interval: integer(&v[6]),
        refill_amount: integer(&v[7]),
        last_refill_at: Stamp::read(v[8].clone()),
        rate_limit_enabled: truthy(&v[9]),
        rate_limit_time_window: integer(&v[10]),
        rate_limit_max: integer(&v[11]),
        request_count: integer(&v[12]),
        last_request: Stamp::read(v[13].clone()),
        date_format: DateFormat::of(&created_at, &keys.created_at_type),
        created_at: Stamp::read(created_at),
        metadata: optional_text(v[15].clone()),
    })
}

type Arg = Box<dyn ToSql + Sync + Send>;

/// Writes the changed counters and `updatedAt`, as Better Auth's update does. Each
/// value is sent as text or bigint and cast in SQL to the column's declared type.
async fn write_key(
    c: &impl GenericClient,
    keys: &ApiKeySql,
    row: &ApiKeyRow,
    update: &KeyUpdate,
    now: OffsetDateTime,
) -> Result<(), Error> {
    let mut sets = Vec::new();
    let mut args: Vec<Arg> = Vec::new();
    let mut date = |column: &str, declared: &str, t: OffsetDateTime| {
        let (expr, arg) = date_arg(args.len() + 1, declared, row.date_format, t);
        sets.push(format!("{column} = {expr}"));
        args.push(arg);
    };
    date(&keys.updated_at, &keys.updated_at_type, now);
    if let Some(t) = update.last_request {
        date(&keys.last_request, &keys.last_request_type, t);
    }
    if let Some(t) = update.last_refill_at {
        date(&keys.last_refill_at, &keys.last_refill_at_type, t);
    }
    for (column, n) in [
        (&keys.request_count, update.request_count),
        (&keys.remaining, update.remaining),
    ] {
        if let Some(n) = n {
            sets.push(format!("{column} = ${}::bigint", args.len() + 1));
            args.push(Box::new(n));
        }
    }
    args.push(Box::new(row.id.clone()));
    let sql = format!(
        "UPDATE {} SET {} WHERE {} = CAST(${}::text AS {})",
        keys.table,
        sets.join(", "),
        keys.id,
        args.len(),
        keys.id_type
    );
    let params: Vec<&(dyn ToSql + Sync)> = args
        .iter()
        .map(|a| a.as_ref() as &(dyn ToSql + Sync))
        .collect();
    c.execute(sql.as_str(), &params).await.map_err(db_error)?;
    Ok(())
}

/// The SQL expression and argument that store `t` in a column declared as `declared`.
fn date_arg(n: usize, declared: &str, format: DateFormat, t: OffsetDateTime) -> (String, Arg) {
    let declared = declared.to_ascii_lowercase();
    if declared.starts_with("timestamp with time zone") {
        (format!("${n}::text::timestamptz"), Box::new(format_iso(t)))
    } else if declared.starts_with("timestamp") {
        // A zone-less column holds UTC, whatever the session's TimeZone.
        (
            format!("(${n}::text::timestamptz AT TIME ZONE 'UTC')"),
            Box::new(format_iso(t)),
        )
    } else if declared.contains("int") || declared.starts_with("numeric") {
        let v = match format {
            DateFormat::Seconds => t.unix_timestamp(),
            // Milliseconds, also when the row gave no hint (an integer date column).
            DateFormat::Millis | DateFormat::IsoText => {
                i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
            }
        };
        (format!("${n}::bigint"), Box::new(v))
    } else {
        (format!("${n}::text"), Box::new(format_iso(t)))
    }
}

/// Column `i` as the loose value the row readers take; a type filegate does not read is
/// an error.
fn value_at(r: &Row, i: usize) -> Result<Value, Error> {
    let ty = r.columns()[i].type_();
    let v = if *ty == Type::BOOL {
        r.try_get::<_, Option<bool>>(i)
            .map(|v| v.map(|b| Value::Integer(i64::from(b))))
    } else if *ty == Type::INT2 {
        r.try_get::<_, Option<i16>>(i)
            .map(|v| v.map(|n| Value::Integer(n.into())))
    } else if *ty == Type::INT4 {
        r.try_get::<_, Option<i32>>(i)
            .map(|v| v.map(|n| Value::Integer(n.into())))
    } else if *ty == Type::INT8 {
        r.try_get::<_, Option<i64>>(i)
            .map(|v| v.map(Value::Integer))
    } else if *ty == Type::FLOAT4 {
        r.try_get::<_, Option<f32>>(i)
            .map(|v| v.map(|f| Value::Real(f.into())))
    } else if *ty == Type::FLOAT8 {
        r.try_get::<_, Option<f64>>(i).map(|v| v.map(Value::Real))
    } else if *ty == Type::TIMESTAMPTZ {
        r.try_get::<_, Option<OffsetDateTime>>(i)
            .map(|v| v.map(rfc3339))
    } else if *ty == Type::TIMESTAMP {
        r.try_get::<_, Option<PrimitiveDateTime>>(i)
            .map(|v| v.map(|t| rfc3339(t.assume_utc())))
    } else if *ty == Type::JSON || *ty == Type::JSONB {
        r.try_get::<_, Option<serde_json::Value>>(i)
            .map(|v| v.map(|j| Value::Text(j.to_string())))
    } else if *ty == Type::TEXT || *ty == Type::VARCHAR || *ty == Type::BPCHAR || *ty == Type::NAME
    {
        r.try_get::<_, Option<String>>(i)
            .map(|v| v.map(Value::Text))
    } else {
        // Fail closed and say why: a `numeric` counter read as "no limit" would not.
        let column = r.columns()[i].name();
        return Err(Error::internal(format!(
            "auth database: column {column} has type {ty}, which filegate does not read"
        )));
    };
    Ok(v.map_err(conversion)?.unwrap_or(Value::Null))
}

fn rfc3339(t: OffsetDateTime) -> Value {
    t.format(&Rfc3339)
        .map_or(Value::Blob(Vec::new()), Value::Text)
}

fn text(v: Value, what: &str) -> Result<String, Error> {
    match v {
        Value::Text(s) => Ok(s),
        Value::Integer(n) => Ok(n.to_string()),
        _ => Err(Error::internal(format!(
            "auth database: {what} is not text"
        ))),
    }
}

fn optional_text(v: Value) -> Option<String> {
    match v {
        Value::Text(s) => Some(s),
        _ => None,
    }
}

/// A keyed lookup: a value the column's type cannot hold (an organization id from API-key
/// metadata against a `uuid` column, say) matches no row rather than failing.
fn lookup(result: Result<Option<Row>, tokio_postgres::Error>) -> Result<Option<Row>, Error> {
    match result {
        Err(e)
            if e.as_db_error()
                .is_some_and(|db| matches!(db.code().code(), "22P02" | "22003")) =>
        {
            Ok(None)
        }
        other => other.map_err(db_error),
    }
}

/// SQLSTATEs that mean "try again later" rather than "this database is wrong":
/// connection exceptions (08…), shutdowns, too many connections, statement timeout,
/// serialization failure and deadlock.
fn is_transient(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "53300" | "57014" | "40001" | "40P01" | "55P03"
        )
}

#[expect(clippy::needless_pass_by_value, reason = "shaped for `map_err`")]
fn db_error(e: tokio_postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) if is_transient(db.code().code()) => Error::unavailable(format!(
            "auth database: {} ({})",
            db.message(),
            db.code().code()
        )),
        Some(db) => Error::internal(format!(
            "auth database: {} ({})",
            db.message(),
            db.code().code()
        )),
        // No SQLSTATE: the connection broke, timed out or never came up.
        None => Error::unavailable(format!("auth database unreachable: {e}")),
    }
}

fn pool_error(e: PoolError) -> Error {
    match e {
        PoolError::Backend(e) => db_error(e),
        other => Error::unavailable(format!("auth database unreachable: {other}")),
    }
}

#[expect(clippy::needless_pass_by_value, reason = "shaped for `map_err`")]
fn conversion(e: tokio_postgres::Error) -> Error {
    Error::internal(format!("auth database: unexpected column type: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_get_filegate_bounds() {
        let c = target("postgresql://u@db.internal:5433/auth")
            .unwrap()
            .config;
        assert_eq!(
            c.get_connect_timeout(),
            Some(&filegate_postgres::CONNECT_TIMEOUT)
        );
        assert_eq!(c.get_application_name(), Some("filegate"));
        // No startup options of ours (PgBouncer refuses them); the URL's own pass through.
        assert_eq!(c.get_options(), None);
        let c = target("postgres://u@h/auth?options=-c%20search_path%3Dba&connect_timeout=2")
            .unwrap()
            .config;
        assert_eq!(c.get_options(), Some("-c search_path=ba"));
        assert_eq!(c.get_connect_timeout(), Some(&Duration::from_secs(2)));
    }

    #[test]
    fn tls_follows_sslmode_and_bad_urls_are_validation_errors() {
        for url in [
            "postgres://h/db?sslmode=require",
            "postgres://h/db?sslmode=verify-full",
            "postgres://h/db?sslmode=disable",
        ] {
            assert!(target(url).is_ok(), "{url}");
        }
        for url in [
            "postgres://h/db?nope=1",
            "postgres://h/db?sslmode=sometimes",
            "postgres://h/db?sslmode=verify-full&sslrootcert=%2Fnonexistent%2Fca.pem",
        ] {
            let Err(Error::Validation(fields)) = target(url) else {
                panic!("{url} must be refused");
            };
            assert_eq!(fields[0].field, "FILEGATE_AUTH_DB", "{url}: {fields:?}");
        }
    }

    #[test]
    fn dates_are_cast_to_the_declared_column_type() {
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let sql = |declared: &str, f| date_arg(3, declared, f, t).0;
        assert_eq!(
            sql("timestamp with time zone", DateFormat::IsoText),
            "$3::text::timestamptz"
        );
        assert_eq!(
            sql("timestamp(3) without time zone", DateFormat::IsoText),
            "($3::text::timestamptz AT TIME ZONE 'UTC')"
        );
        assert_eq!(sql("bigint", DateFormat::Millis), "$3::bigint");
        assert_eq!(sql("text", DateFormat::IsoText), "$3::text");
    }

    #[test]
    fn transient_states_are_unavailable() {
        for code in ["08006", "57P01", "57014", "40001"] {
            assert!(is_transient(code), "{code}");
        }
        for code in ["42P01", "42703", "28P01"] {
            assert!(!is_transient(code), "{code}");
        }
    }
}
