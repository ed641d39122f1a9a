//! Versioned schema migrations embedded in the binary and tracked in `schema_migrations`.
//!
//! Each migration runs in its own transaction together with its `schema_migrations` row,
//! so a failure leaves nothing half-applied. Migration files must therefore not contain
//! `BEGIN`/`COMMIT`, nor pragmas that cannot run inside a transaction.

use crate::error::{from_interact, from_sqlite, is_busy};
use crate::pool;
use crate::pool::Pool;
use deadpool_sqlite::rusqlite::{self, Connection, OpenFlags, TransactionBehavior, params};
use filegate_core::Error;
use std::collections::BTreeMap;
use std::path::Path;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub(crate) struct Migration {
    pub(crate) version: u32,
    pub(crate) name: &'static str,
    pub(crate) sql: &'static str,
}

/// Every migration this binary knows, in order. Append only; never edit a shipped one.
pub(crate) static MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "media",
        sql: include_str!("../migrations/0001_media.sql"),
    },
    Migration {
        version: 2,
        name: "audit",
        sql: include_str!("../migrations/0002_audit.sql"),
    },
    Migration {
        version: 3,
        name: "media_lifecycle",
        sql: include_str!("../migrations/0003_media_lifecycle.sql"),
    },
    Migration {
        version: 4,
        name: "media_multipart",
        sql: include_str!("../migrations/0004_media_multipart.sql"),
    },
];

/// One known migration and when it was applied (`None`: pending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    pub version: u32,
    pub name: &'static str,
    /// RFC 3339, UTC.
    pub applied_at: Option<String>,
}

const CREATE_TRACKING_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)";

/// Applies the pending migrations to the database at `path` (created if missing) and
/// returns those it applied, oldest first; empty when the database was up to date.
///
/// # Errors
/// [`Error::Internal`] when the database was migrated by a newer binary or a migration
/// fails; [`Error::Unavailable`] when the database is busy or cannot be opened.
pub async fn migrate(path: &Path) -> Result<Vec<MigrationStatus>, Error> {
    migrate_set(path, MIGRATIONS).await
}

/// [`migrate`] for any migration set (each database file has its own).
pub(crate) async fn migrate_set(
    path: &Path,
    known: &'static [Migration],
) -> Result<Vec<MigrationStatus>, Error> {
    let pool = pool::open(path, pool::Ownership::Owned).await?;
    let applied = apply_pending(&pool, known).await;
    pool.close();
    applied
}

/// Every known migration with its `applied_at`, or `None` when pending. Applies nothing
/// and opens the database read-only; a missing file means all pending (and is not created).
///
/// # Errors
/// As [`migrate`].
pub async fn migration_status(path: &Path) -> Result<Vec<MigrationStatus>, Error> {
    migration_status_set(path, MIGRATIONS).await
}

/// [`migration_status`] for any migration set.
pub(crate) async fn migration_status_set(
    path: &Path,
    known: &'static [Migration],
) -> Result<Vec<MigrationStatus>, Error> {
    let path = path.to_path_buf();
    let applied = tokio::task::spawn_blocking(move || read_applied(&path))
        .await
        .map_err(Error::unavailable)??;
    check_same_schema(&applied, known)?;
    check_not_newer(&applied, known)?;
    Ok(known
        .iter()
        .map(|m| MigrationStatus {
            version: m.version,
            name: m.name,
            applied_at: applied.get(&m.version).map(|(_, at)| at.clone()),
        })
        .collect())
}

/// version → (name, applied_at)
type Applied = BTreeMap<u32, (String, String)>;

fn read_applied(path: &Path) -> Result<Applied, Error> {
    if !path.try_exists().map_err(Error::unavailable)? {
        return Ok(Applied::new());
    }
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(from_sqlite)?;
    c.busy_timeout(pool::BUSY_TIMEOUT).map_err(from_sqlite)?;
    let tracked: bool = c
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema
                            WHERE type = 'table' AND name = 'schema_migrations')",
            [],
            |r| r.get(0),
        )
        .map_err(from_sqlite)?;
    if tracked {
        load_applied(&c)
    } else {
        Ok(Applied::new())
    }
}

fn load_applied(c: &Connection) -> Result<Applied, Error> {
    let mut stmt = c
        .prepare("SELECT version, name, applied_at FROM schema_migrations")
        .map_err(from_sqlite)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?)))
        .map_err(from_sqlite)?;
    let mut applied = Applied::new();
    for row in rows {
        let (version, name, at) = row.map_err(from_sqlite)?;
        let version = u32::try_from(version).map_err(|_| {
            Error::internal(format!("schema_migrations holds invalid version {version}"))
        })?;
        applied.insert(version, (name, at));
    }
    Ok(applied)
}

/// The media database and FILES_DB are separate files with separate migration sets; a
/// version applied under another name means the wrong file was given.
fn check_same_schema(applied: &Applied, known: &[Migration]) -> Result<(), Error> {
    for m in known {
        if let Some((name, _)) = applied.get(&m.version)
            && name != m.name
        {
            return Err(Error::internal(format!(
                "database migration {} is '{name}' but this schema expects '{}': is this \
                 the right database file?",
                m.version, m.name
            )));
        }
    }
    Ok(())
}

fn check_not_newer(applied: &Applied, known: &[Migration]) -> Result<(), Error> {
    let latest_known = known.last().map_or(0, |m| m.version);
    match applied.keys().next_back() {
        Some(&v) if v > latest_known => Err(Error::internal(format!(
            "database schema is at version {v} but this binary only knows migrations up to \
             {latest_known}; it was migrated by a newer filegate, run that version instead"
        ))),
        _ => Ok(()),
    }
}

pub(crate) async fn apply_pending(
    pool: &Pool,
    known: &'static [Migration],
) -> Result<Vec<MigrationStatus>, Error> {
    let conn = pool.get().await.map_err(crate::error::from_pool)?;
    conn.interact(move |c| apply_pending_sync(c, known))
        .await
        .map_err(from_interact)?
}

fn apply_pending_sync(
    c: &mut Connection,
    known: &[Migration],
) -> Result<Vec<MigrationStatus>, Error> {
    c.execute_batch(CREATE_TRACKING_TABLE)
        .map_err(from_sqlite)?;
    let applied = load_applied(c)?;
    check_same_schema(&applied, known)?;
    check_not_newer(&applied, known)?;
    let mut done = Vec::new();
    for m in known.iter().filter(|m| !applied.contains_key(&m.version)) {
        let failed = |e: rusqlite::Error| {
            if is_busy(&e) {
                Error::unavailable(e)
            } else {
                Error::internal(format!("migration {:04}_{} failed: {e}", m.version, m.name))
            }
        };
        // IMMEDIATE takes the write lock up front; re-checking under it means two
        // processes migrating at once do not both apply the same version.
        let tx = c
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(failed)?;
        let already: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)",
                [m.version],
                |r| r.get(0),
            )
            .map_err(failed)?;
        if already {
            continue; // dropping `tx` rolls back the empty transaction
        }
        tx.execute_batch(m.sql).map_err(failed)?;
        let now = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .map_err(Error::internal)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            params![m.version, m.name, now],
        )
        .map_err(failed)?;
        tx.commit().map_err(failed)?;
        done.push(MigrationStatus {
            version: m.version,
            name: m.name,
            applied_at: Some(now),
        });
    }
    Ok(done)
}
