//! [`AuditLog`] over the `audit_log` table of the media database.

use crate::pool::PgPool;
use async_trait::async_trait;
use filegate_core::Error;
use filegate_core::ports::{AuditEntry, AuditLog};

/// The security audit table, in the same database (and pool) as the media table. Get one
/// from [`PostgresMediaStore::audit_log`](crate::PostgresMediaStore::audit_log); cheap to
/// clone.
#[derive(Clone, Debug)]
pub struct PostgresAuditLog {
    pool: PgPool,
}

impl PostgresAuditLog {
    pub(crate) fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl AuditLog for PostgresAuditLog {
    async fn record(&self, e: &AuditEntry) -> Result<(), Error> {
        let at = crate::nanos(e.at, "audit time")?;
        self.pool
            .execute(
                "INSERT INTO audit_log (at, route, method, ip, user_id, resource) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&at, &e.route, &e.method, &e.ip, &e.user_id, &e.resource],
            )
            .await?;
        Ok(())
    }
}
