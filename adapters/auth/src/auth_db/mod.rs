//! Read-mostly access to Better Auth's database, SQLite or PostgreSQL.
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
//!
//! On PostgreSQL ([`AuthDb::open_postgres`], module `postgres`) the same detection runs
//! on the catalog, the same SQL is built with `$n` parameters, rows are read into the same
//! row types and API keys go through the same [`api_key_rules`].

mod api_key_rules;
mod layout;
mod postgres;
mod rows;
#[cfg(test)]
mod tests;
mod values;

pub(crate) use api_key_rules::{KeyUse, Refusal};
pub(crate) use rows::{Stamp, split_roles};

use api_key_rules::evaluate;
use layout::Layout;
use postgres::PgAuthDb;
pub use postgres::PgAuthPool;
use rows::{SessionRow, UserFacts, UserRow};
use values::truthy;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use deadpool_sqlite::rusqlite::types::Value;
use deadpool_sqlite::rusqlite::{OptionalExtension, TransactionBehavior};
use filegate_core::Error;
use filegate_sqlite::pool::Pool;
use filegate_sqlite::pool::{self, Ownership};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

/// A pool of connections to Better Auth's database plus the layout found in it.
///
/// Cheap to clone (the pool and the layout are shared).
#[derive(Clone)]
pub struct AuthDb {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sqlite(SqliteAuthDb),
    Postgres(PgAuthDb),
}

#[derive(Clone)]
struct SqliteAuthDb {
    pool: Pool,
    layout: Arc<Layout>,
}

impl fmt::Debug for AuthDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (backend, layout) = match &self.backend {
            Backend::Sqlite(db) => ("sqlite", &*db.layout),
            Backend::Postgres(db) => ("postgres", db.layout()),
        };
        f.debug_struct("AuthDb")
            .field("backend", &backend)
            .field("session_table", &layout.session.table)
            .field("api_keys", &layout.api_key.is_some())
            .finish_non_exhaustive()
    }
}

/// Whether `FILEGATE_AUTH_DB` names a PostgreSQL database rather than a SQLite file.
#[must_use]
pub fn is_postgres_url(location: &str) -> bool {
    let lower = location.trim_start().to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

impl AuthDb {
    /// Opens Better Auth's database on PostgreSQL (a `postgres://` or `postgresql://`
    /// URL, libpq style: `options=-csearch_path%3Dauth` picks a schema) and detects its
    /// layout. Connections are made lazily by the pool, but one is made here to read the
    /// catalog, so a wrong URL fails at start.
    ///
    /// TLS follows the URL's `sslmode` (and `sslrootcert`) as for the metadata
    /// database: rustls, `require` encrypts, `verify-full` also checks the certificate.
    /// The pool has [`PgAuthPool::default`]'s size and timeout.
    ///
    /// # Errors
    /// [`Error::Validation`] (field `FILEGATE_AUTH_DB`) when the URL does not parse or
    /// its TLS settings are unusable; [`Error::Unavailable`] when the server cannot be
    /// reached (or refuses TLS that `sslmode` requires); [`Error::Internal`] when the
    /// `user`, `session` or `member` table or one of their required columns is missing.
    pub async fn open_postgres(url: &str) -> Result<Self, Error> {
        Self::open_postgres_with(url, PgAuthPool::default()).await
    }

    /// [`Self::open_postgres`] with this pool size and timeout.
    ///
    /// # Errors
    /// As [`Self::open_postgres`].
    pub async fn open_postgres_with(url: &str, pool: PgAuthPool) -> Result<Self, Error> {
        let db = PgAuthDb::open(url, pool).await?;
        Ok(Self {
            backend: Backend::Postgres(db),
        })
    }

    /// Whether the database has Better Auth's `apikey` table.
    #[must_use]
    pub fn has_api_keys(&self) -> bool {
        match &self.backend {
            Backend::Sqlite(db) => db.layout.api_key.is_some(),
            Backend::Postgres(db) => db.layout().api_key.is_some(),
        }
    }

    /// The session whose stored token is `token`.
    pub(crate) async fn session(&self, token: String) -> Result<Option<SessionRow>, Error> {
        match &self.backend {
            Backend::Sqlite(db) => db.session(token).await,
            Backend::Postgres(db) => db.session(&token).await,
        }
    }

    /// The user `user_id` and, when `org_id` is given, their role there (`None` when
    /// they are not a member). `None` when the user does not exist.
    pub(crate) async fn user_facts(
        &self,
        user_id: String,
        org_id: Option<String>,
    ) -> Result<Option<UserFacts>, Error> {
        match &self.backend {
            Backend::Sqlite(db) => db.user_facts(user_id, org_id).await,
            Backend::Postgres(db) => db.user_facts(&user_id, org_id.as_deref()).await,
        }
    }

    /// Finds the API key whose stored hash is `hash`, applies Better Auth's checks
    /// (disabled, expired, usage and rate limits) and records the use.
    ///
    /// Unknown and refused keys take no lock; a key that passes is re-read and updated
    /// under a write lock (SQLite `BEGIN IMMEDIATE`, Postgres `SELECT … FOR UPDATE`), so
    /// concurrent requests (and Better Auth itself) cannot lose counts.
    pub(crate) async fn use_api_key(
        &self,
        hash: String,
        now: OffsetDateTime,
        rate_limit_enabled: bool,
    ) -> Result<Option<KeyUse>, Error> {
        match &self.backend {
            Backend::Sqlite(db) => db.use_api_key(hash, now, rate_limit_enabled).await,
            Backend::Postgres(db) => db.use_api_key(&hash, now, rate_limit_enabled).await,
        }
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
        let pool = pool::open(path, Ownership::Foreign).await?;
        let layout = pool::interact(&pool, Layout::detect)
            .await?
            .map_err(Error::internal)?;
        if layout.api_key.is_none() {
            tracing::info!("auth database has no usable apikey table: API keys are refused");
        }
        Ok(Self {
            backend: Backend::Sqlite(SqliteAuthDb {
                pool,
                layout: Arc::new(layout),
            }),
        })
    }
}

impl SqliteAuthDb {
    async fn session(&self, token: String) -> Result<Option<SessionRow>, Error> {
        let layout = Arc::clone(&self.layout);
        pool::interact(&self.pool, move |c| {
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

    async fn user_facts(
        &self,
        user_id: String,
        org_id: Option<String>,
    ) -> Result<Option<UserFacts>, Error> {
        let layout = Arc::clone(&self.layout);
        pool::interact(&self.pool, move |c| {
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

    /// See [`AuthDb::use_api_key`]: the write lock is `BEGIN IMMEDIATE`.
    async fn use_api_key(
        &self,
        hash: String,
        now: OffsetDateTime,
        rate_limit_enabled: bool,
    ) -> Result<Option<KeyUse>, Error> {
        let layout = Arc::clone(&self.layout);
        pool::interact(&self.pool, move |c| {
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

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}
