//! [`AuditLog`] over the `audit_log` table of the media database.

use crate::pool;
use crate::pool::Pool;
use async_trait::async_trait;
use deadpool_sqlite::rusqlite::params;
use filegate_core::Error;
use filegate_core::ports::{AuditEntry, AuditLog};

/// The security audit table, in the same database file (and pool) as the media table.
/// Get one from [`SqliteMediaStore::audit_log`](crate::SqliteMediaStore::audit_log);
/// cheap to clone.
#[derive(Clone, Debug)]
pub struct SqliteAuditLog {
    pool: Pool,
}

impl SqliteAuditLog {
    pub(crate) fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl AuditLog for SqliteAuditLog {
    async fn record(&self, entry: &AuditEntry) -> Result<(), Error> {
        // The clock sets `at`: out of range is our bug, not the client's.
        let at = i64::try_from(entry.at.unix_timestamp_nanos()).map_err(|_| {
            Error::internal(format!(
                "audit time {} is outside the storable range (1677-2262)",
                entry.at
            ))
        })?;
        let e = entry.clone();
        pool::interact(&self.pool, move |c| {
            c.prepare_cached(
                "INSERT INTO audit_log (at, route, method, ip, user_id, resource) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![at, e.route, e.method, e.ip, e.user_id, e.resource])
        })
        .await
        .map(drop)
    }
}
