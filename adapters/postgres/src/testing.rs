//! A throw-away Postgres schema per test, so suites run in parallel on one database.
//!
//! Tests read [`TestSchema::VAR`]. Unset: [`TestSchema::create`] returns `None` and says
//! once, on stderr, that the Postgres tests were skipped and how to run them. Set: an
//! unreachable server is a failure, never a silent pass.

use crate::{PgPool, PgSettings};
use std::io::Write as _;
use std::sync::Once;
use tokio_postgres::NoTls;

/// A schema `fg_test_<random>` in the test database, dropped (with everything in it) when
/// this value is.
#[derive(Debug)]
pub struct TestSchema {
    base_url: String,
    name: String,
}

static SKIPPED: Once = Once::new();

impl TestSchema {
    /// The variable naming the test database.
    pub const VAR: &'static str = "FILEGATE_TEST_DATABASE_URL";

    /// Creates a fresh schema, or returns `None` when [`Self::VAR`] is unset.
    ///
    /// # Panics
    /// When the variable is set but the server cannot be reached or refuses the schema.
    pub async fn create() -> Option<Self> {
        let Some(base_url) = std::env::var(Self::VAR).ok().filter(|v| !v.is_empty()) else {
            SKIPPED.call_once(|| {
                // Straight to stderr: libtest captures `eprintln!` of passing tests.
                let _ = writeln!(
                    std::io::stderr(),
                    "postgres tests skipped: set {}=postgres://postgres@127.0.0.1:5432/test \
                     to run them",
                    Self::VAR
                );
            });
            return None;
        };
        let name = format!("fg_test_{:016x}", rand::random::<u64>());
        let (client, conn) = tokio_postgres::connect(&base_url, NoTls)
            .await
            .unwrap_or_else(|e| panic!("{} is set but Postgres is unreachable: {e}", Self::VAR));
        let driver = tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .unwrap_or_else(|e| panic!("cannot create test schema {name}: {e}"));
        drop(client);
        let _ = driver.await;
        Some(Self { base_url, name })
    }

    /// The schema's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The test database's URL with this schema first on every connection's
    /// `search_path`, as `FILEGATE_DATABASE_URL` would carry it.
    #[must_use]
    pub fn url(&self) -> String {
        let sep = if self.base_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!(
            "{}{sep}options=-csearch_path%3D{}",
            self.base_url, self.name
        )
    }

    /// A pool of 4 connections on this schema.
    ///
    /// # Panics
    /// When the server cannot be reached.
    pub async fn pool(&self) -> PgPool {
        let mut settings = PgSettings::new(self.url());
        settings.pool_size = 4;
        PgPool::connect(&settings)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to test schema {}: {e:?}", self.name))
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let (url, name) = (self.base_url.clone(), self.name.clone());
        // Drop cannot await, and may run inside a runtime: a thread with its own runtime.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async move {
                let (client, conn) = tokio_postgres::connect(&url, NoTls).await.ok()?;
                let driver = tokio::spawn(conn);
                let done = client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .await;
                drop(client);
                let _ = driver.await;
                done.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            let _ = writeln!(
                std::io::stderr(),
                "could not drop test schema {}",
                self.name
            );
        }
    }
}
