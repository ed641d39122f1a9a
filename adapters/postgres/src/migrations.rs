//! Versioned schema migrations embedded in the binary and tracked in `filegate_migrations`.
//!
//! The media set and FILES_DB's set may share one database (and schema), so the tracking
//! table records which set each version belongs to. A run takes a transaction-scoped
//! advisory lock for the current schema first: nodes starting at once queue behind it,
//! and the one that follows finds the work done. Everything a run applies commits
//! together (Postgres DDL is transactional), so a failure leaves nothing half-applied.

use crate::error::Failure;
use crate::pool::PgPool;
use filegate_core::Error;
use std::collections::BTreeMap;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub(crate) struct Migration {
    pub(crate) version: u32,
    pub(crate) name: &'static str,
    pub(crate) sql: &'static str,
}

/// A set of migrations, named in the tracking table.
pub(crate) struct MigrationSet {
    pub(crate) name: &'static str,
    pub(crate) migrations: &'static [Migration],
}

/// The media table and the audit log. Append only; never edit a shipped one.
pub(crate) static MEDIA: MigrationSet = MigrationSet {
    name: "media",
    migrations: &[
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
            name: "media_multipart",
            sql: include_str!("../migrations/0003_media_multipart.sql"),
        },
    ],
};

/// FILES_DB's buckets and objects. Append only; never edit a shipped one.
pub(crate) static FILES: MigrationSet = MigrationSet {
    name: "files",
    migrations: &[
        Migration {
            version: 1,
            name: "files",
            sql: include_str!("../migrations/files/0001_files.sql"),
        },
        Migration {
            version: 2,
            name: "objects_multipart",
            sql: include_str!("../migrations/files/0002_objects_multipart.sql"),
        },
    ],
};

/// One known migration and when it was applied (`None`: pending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    pub version: u32,
    pub name: &'static str,
    /// RFC 3339, UTC.
    pub applied_at: Option<String>,
}

const CREATE_TRACKING_TABLE: &str = "CREATE TABLE IF NOT EXISTS filegate_migrations (
    set_name   TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    name       TEXT    NOT NULL,
    applied_at TEXT    NOT NULL,
    PRIMARY KEY (set_name, version)
)";

/// Per schema, so that databases shared by several deployments (or tests) do not queue.
const LOCK: &str = "SELECT pg_advisory_xact_lock(\
                    hashtext('filegate_migrations:' || coalesce(current_schema(), '')))";

/// Applies the media set's pending migrations and returns those it applied, oldest
/// first; empty when the database was up to date.
///
/// # Errors
/// [`Error::Internal`] when the database was migrated by a newer binary or a migration
/// fails; [`Error::Unavailable`] when the server cannot be reached.
pub async fn migrate(pool: &PgPool) -> Result<Vec<MigrationStatus>, Error> {
    apply_pending(pool, &MEDIA).await
}

/// FILES_DB's [`migrate`].
///
/// # Errors
/// As [`migrate`].
pub async fn migrate_files(pool: &PgPool) -> Result<Vec<MigrationStatus>, Error> {
    apply_pending(pool, &FILES).await
}

/// Every media migration with its `applied_at`, or `None` when pending. Applies nothing
/// and creates nothing.
///
/// # Errors
/// As [`migrate`].
pub async fn migration_status(pool: &PgPool) -> Result<Vec<MigrationStatus>, Error> {
    status(pool, &MEDIA).await
}

/// FILES_DB's [`migration_status`].
///
/// # Errors
/// As [`migrate`].
pub async fn files_migration_status(pool: &PgPool) -> Result<Vec<MigrationStatus>, Error> {
    status(pool, &FILES).await
}

/// version → (name, applied_at)
type Applied = BTreeMap<u32, (String, String)>;

fn db(e: tokio_postgres::Error) -> Error {
    Failure::Db(e).into()
}

async fn status(pool: &PgPool, set: &MigrationSet) -> Result<Vec<MigrationStatus>, Error> {
    let tracked: bool = pool
        .query("SELECT to_regclass('filegate_migrations') IS NOT NULL", &[])
        .await?
        .first()
        .map_or(Ok(false), |r| r.try_get(0))
        .map_err(crate::error::column)?;
    let applied = if tracked {
        let rows = pool
            .query(
                "SELECT version, name, applied_at FROM filegate_migrations WHERE set_name = $1",
                &[&set.name],
            )
            .await?;
        applied_of(&rows)?
    } else {
        Applied::new()
    };
    check(&applied, set)?;
    Ok(set
        .migrations
        .iter()
        .map(|m| MigrationStatus {
            version: m.version,
            name: m.name,
            applied_at: applied.get(&m.version).map(|(_, at)| at.clone()),
        })
        .collect())
}

fn applied_of(rows: &[tokio_postgres::Row]) -> Result<Applied, Error> {
    let mut applied = Applied::new();
    for r in rows {
        let version: i32 = r.try_get(0).map_err(crate::error::column)?;
        let version = u32::try_from(version).map_err(|_| {
            Error::internal(format!(
                "filegate_migrations holds invalid version {version}"
            ))
        })?;
        applied.insert(
            version,
            (
                r.try_get(1).map_err(crate::error::column)?,
                r.try_get(2).map_err(crate::error::column)?,
            ),
        );
    }
    Ok(applied)
}

/// A version applied under another name, or beyond what this binary knows.
fn check(applied: &Applied, set: &MigrationSet) -> Result<(), Error> {
    for m in set.migrations {
        if let Some((name, _)) = applied.get(&m.version)
            && name != m.name
        {
            return Err(Error::internal(format!(
                "{} migration {} is '{name}' in the database but '{}' in this binary",
                set.name, m.version, m.name
            )));
        }
    }
    let latest_known = set.migrations.last().map_or(0, |m| m.version);
    match applied.keys().next_back() {
        Some(&v) if v > latest_known => Err(Error::internal(format!(
            "the {} schema is at version {v} but this binary only knows migrations up to \
             {latest_known}; it was migrated by a newer filegate, run that version instead",
            set.name
        ))),
        _ => Ok(()),
    }
}

pub(crate) async fn apply_pending(
    pool: &PgPool,
    set: &'static MigrationSet,
) -> Result<Vec<MigrationStatus>, Error> {
    let mut client = pool.client().await?;
    let tx = client.transaction().await.map_err(db)?;
    tx.execute(LOCK, &[]).await.map_err(db)?;
    tx.batch_execute(CREATE_TRACKING_TABLE).await.map_err(db)?;
    let rows = tx
        .query(
            "SELECT version, name, applied_at FROM filegate_migrations WHERE set_name = $1",
            &[&set.name],
        )
        .await
        .map_err(db)?;
    let applied = applied_of(&rows)?;
    check(&applied, set)?;
    let now = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .map_err(Error::internal)?;
    let mut done = Vec::new();
    for m in set
        .migrations
        .iter()
        .filter(|m| !applied.contains_key(&m.version))
    {
        let failed = |e: tokio_postgres::Error| match db(e) {
            Error::Internal { source } => Error::internal(format!(
                "{} migration {:04}_{} failed: {source}",
                set.name, m.version, m.name
            )),
            other => other,
        };
        tx.batch_execute(m.sql).await.map_err(failed)?;
        let version = i32::try_from(m.version).map_err(Error::internal)?;
        tx.execute(
            "INSERT INTO filegate_migrations (set_name, version, name, applied_at) \
             VALUES ($1, $2, $3, $4)",
            &[&set.name, &version, &m.name, &now],
        )
        .await
        .map_err(failed)?;
        done.push(MigrationStatus {
            version: m.version,
            name: m.name,
            applied_at: Some(now.clone()),
        });
    }
    tx.commit().await.map_err(db)?;
    Ok(done)
}
