//! Detects which of Better Auth's layouts the database uses, and builds its SQL.

use super::api_key_rules::KeyUpdate;
use super::rows::{ApiKeyRow, Stamp};
use super::values::{DateFormat, integer, truthy};
use deadpool_sqlite::rusqlite::types::Value;
use deadpool_sqlite::rusqlite::{self, Connection, OptionalExtension, Row, params_from_iter};
use std::collections::HashMap;
use time::OffsetDateTime;

/// How the SQL marks its parameters: SQLite's `?1`, Postgres's `$1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    fn param(self, n: u8) -> String {
        match self {
            Self::Sqlite => format!("?{n}"),
            Self::Postgres => format!("${n}"),
        }
    }
}

/// The tables and columns found, as ready-made SQL with quoted identifiers.
#[derive(Debug)]
pub(super) struct Layout {
    pub(super) session: SessionSql,
    pub(super) user: UserSql,
    pub(super) member: MemberSql,
    pub(super) api_key: Option<ApiKeySql>,
}

#[derive(Debug)]
pub(super) struct SessionSql {
    pub(super) table: String,
    pub(super) by_token: String,
}

#[derive(Debug)]
pub(super) struct UserSql {
    pub(super) by_id: String,
}

#[derive(Debug)]
pub(super) struct MemberSql {
    pub(super) role: String,
}

/// Columns of one table: lower-cased name → (real name, declared type).
pub(super) struct Columns {
    pub(super) table: String,
    pub(super) cols: HashMap<String, (String, String)>,
}

impl Columns {
    /// The column for a camelCase field: as named, or in snake_case.
    pub(super) fn find(&self, field: &str) -> Option<&(String, String)> {
        self.cols
            .get(&field.to_ascii_lowercase())
            .or_else(|| self.cols.get(&snake_case(field)))
    }

    pub(super) fn quoted(&self, field: &str) -> Option<String> {
        self.find(field).map(|(name, _)| quote(name))
    }

    pub(super) fn require(&self, field: &str) -> Result<String, String> {
        self.quoted(field)
            .ok_or_else(|| format!("auth table {} has no {field} column", self.table))
    }

    /// A text field as selected: on Postgres cast to `text`, so `uuid` or integer ids
    /// (Better Auth's `generateId: "uuid"` or `"serial"`) read as strings.
    pub(super) fn text(&self, field: &str, dialect: Dialect) -> Option<String> {
        self.quoted(field).map(|col| match dialect {
            Dialect::Sqlite => col,
            Dialect::Postgres => format!("{col}::text"),
        })
    }

    pub(super) fn require_text(&self, field: &str, dialect: Dialect) -> Result<String, String> {
        self.text(field, dialect)
            .ok_or_else(|| format!("auth table {} has no {field} column", self.table))
    }

    /// `field = p`. On Postgres the parameter is sent as text and cast to the column's
    /// declared type, so the comparison stays indexable whatever the id type.
    pub(super) fn eq(&self, field: &str, p: &str, dialect: Dialect) -> Result<String, String> {
        let col = self.require(field)?;
        Ok(match dialect {
            Dialect::Sqlite => format!("{col} = {p}"),
            Dialect::Postgres => format!("{col} = CAST({p}::text AS {})", self.declared(field)),
        })
    }

    /// The declared type of `field`, `text` when unknown.
    pub(super) fn declared(&self, field: &str) -> &str {
        self.find(field)
            .map(|c| c.1.as_str())
            .filter(|t| !t.is_empty())
            .unwrap_or("text")
    }

    /// The column, or SQL `NULL` when this optional field is missing.
    pub(super) fn or_null(&self, field: &str) -> String {
        self.quoted(field).unwrap_or_else(|| "NULL".to_owned())
    }

    pub(super) fn table(&self) -> String {
        quote(&self.table)
    }
}

pub(super) fn snake_case(field: &str) -> String {
    let mut out = String::with_capacity(field.len() + 4);
    for c in field.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

pub(super) fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// The first of `names` that exists, with its columns.
pub(super) fn find_table(c: &Connection, names: &[&str]) -> rusqlite::Result<Option<Columns>> {
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
    pub(super) fn detect(c: &mut Connection) -> rusqlite::Result<Result<Self, String>> {
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
        Ok(Self::build(
            &session,
            &user,
            &member,
            api_key.as_ref(),
            Dialect::Sqlite,
        ))
    }

    pub(super) fn build(
        session: &Columns,
        user: &Columns,
        member: &Columns,
        api_key: Option<&Columns>,
        dialect: Dialect,
    ) -> Result<Self, String> {
        let (p1, p2) = (dialect.param(1), dialect.param(2));
        let session_sql = SessionSql {
            table: session.table.clone(),
            by_token: format!(
                "SELECT {}, {}, {} FROM {} WHERE {} LIMIT 1",
                session.require_text("userId", dialect)?,
                session.require("expiresAt")?,
                session
                    .text("activeOrganizationId", dialect)
                    .unwrap_or_else(|| "NULL".to_owned()),
                session.table(),
                session.eq("token", &p1, dialect)?,
            ),
        };
        let user_sql = UserSql {
            by_id: format!(
                "SELECT {}, {}, {} FROM {} WHERE {} LIMIT 1",
                user.text("role", dialect)
                    .unwrap_or_else(|| "NULL".to_owned()),
                user.or_null("banned"),
                user.or_null("banExpires"),
                user.table(),
                user.eq("id", &p1, dialect)?,
            ),
        };
        let member_sql = MemberSql {
            role: format!(
                "SELECT {} FROM {} WHERE {} AND {} LIMIT 1",
                member.require_text("role", dialect)?,
                member.table(),
                member.eq("organizationId", &p1, dialect)?,
                member.eq("userId", &p2, dialect)?,
            ),
        };
        let api_key = match api_key.map(|cols| ApiKeySql::build(cols, dialect)) {
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
pub(super) const API_KEY_FIELDS: [&str; 17] = [
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
pub(super) struct ApiKeySql {
    pub(super) by_key: String,
    pub(super) by_id: String,
    pub(super) table: String,
    pub(super) id: String,
    pub(super) id_type: String,
    pub(super) created_at_type: String,
    pub(super) last_request: String,
    pub(super) request_count: String,
    pub(super) remaining: String,
    pub(super) last_refill_at: String,
    pub(super) updated_at: String,
    /// Declared types of the date columns written, in `KeyUpdate` order (Postgres casts).
    pub(super) last_request_type: String,
    pub(super) last_refill_at_type: String,
    pub(super) updated_at_type: String,
}

impl ApiKeySql {
    pub(super) fn build(cols: &Columns, dialect: Dialect) -> Result<Self, String> {
        let p1 = dialect.param(1);
        let declared = |field: &str| cols.find(field).map(|c| c.1.clone()).unwrap_or_default();
        let owner = cols
            .text("userId", dialect)
            .or_else(|| cols.text("referenceId", dialect))
            .ok_or_else(|| format!("auth table {} has no userId column", cols.table))?;
        let mut select = Vec::with_capacity(API_KEY_FIELDS.len());
        for field in API_KEY_FIELDS {
            select.push(match field {
                "userId" => owner.clone(),
                "id" | "key" | "metadata" => cols.require_text(field, dialect)?,
                _ => cols.require(field)?,
            });
        }
        let select = select.join(", ");
        Ok(Self {
            by_key: format!(
                "SELECT {select} FROM {} WHERE {} LIMIT 1",
                cols.table(),
                cols.eq("key", &p1, dialect)?
            ),
            by_id: format!(
                "SELECT {select} FROM {} WHERE {} LIMIT 1",
                cols.table(),
                cols.eq("id", &p1, dialect)?
            ),
            table: cols.table(),
            id: cols.require("id")?,
            id_type: cols.declared("id").to_owned(),
            created_at_type: declared("createdAt"),
            last_request: cols.require("lastRequest")?,
            request_count: cols.require("requestCount")?,
            remaining: cols.require("remaining")?,
            last_refill_at: cols.require("lastRefillAt")?,
            updated_at: cols.require("updatedAt")?,
            last_request_type: declared("lastRequest"),
            last_refill_at_type: declared("lastRefillAt"),
            updated_at_type: declared("updatedAt"),
        })
    }

    pub(super) fn read(
        &self,
        c: &Connection,
        sql: &str,
        arg: &str,
    ) -> rusqlite::Result<Option<ApiKeyRow>> {
        c.prepare_cached(sql)?
            .query_row([arg], |r| self.row(r))
            .optional()
    }

    pub(super) fn row(&self, r: &Row<'_>) -> rusqlite::Result<ApiKeyRow> {
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
    pub(super) fn write(
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
