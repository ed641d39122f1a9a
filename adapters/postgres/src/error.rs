//! tokio-postgres and pool failures mapped to the ports' error contracts.

use deadpool_postgres::PoolError;
use filegate_core::Error;
use tokio_postgres::error::SqlState;

/// A failed statement, kept raw until the caller has looked for the constraint failures
/// its port maps to its own variants.
#[derive(Debug)]
pub(crate) enum Failure {
    Pool(PoolError),
    Db(tokio_postgres::Error),
}

impl Failure {
    pub(crate) fn is_unique_violation(&self) -> bool {
        self.code() == Some(&SqlState::UNIQUE_VIOLATION)
    }

    pub(crate) fn is_foreign_key_violation(&self) -> bool {
        self.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION)
    }

    /// The server or the network is at fault, not the statement (see [`is_unavailable`]).
    pub(crate) fn is_unavailable(&self) -> bool {
        match self {
            Self::Pool(_) => true,
            Self::Db(e) => is_unavailable(e),
        }
    }

    fn code(&self) -> Option<&SqlState> {
        match self {
            Self::Db(e) => e.code(),
            Self::Pool(_) => None,
        }
    }

    /// A transaction the server aborted to keep isolation; running it again may succeed.
    pub(crate) fn is_retryable(e: &tokio_postgres::Error) -> bool {
        matches!(
            e.code(),
            Some(&SqlState::T_R_SERIALIZATION_FAILURE | &SqlState::T_R_DEADLOCK_DETECTED)
        )
    }
}

/// Whether the server or the network, not the statement, is at fault: connection
/// classes (08), shutdowns and cancellations (57: statement timeout, admin shutdown,
/// cannot connect now), lack of resources (53), serialization failures still failing after
/// retries (40), or a broken connection (I/O, closed, timed out).
fn is_unavailable(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        // Not a server error: the connection failed (I/O, closed, timed out), or the
        // statement itself could not be encoded or decoded, which is our bug.
        None => {
            e.is_closed()
                || std::error::Error::source(e)
                    .is_some_and(<dyn std::error::Error + 'static>::is::<std::io::Error>)
                || e.to_string().starts_with("timeout")
        }
        Some(code) => {
            let class = &code.code()[..2];
            matches!(class, "08" | "53" | "57" | "40")
        }
    }
}

/// UNIQUE → `Conflict`; unreachable, overloaded, cancelled → `Unavailable`; anything
/// else (bad SQL, a type mismatch, a check constraint) → `Internal`.
impl From<Failure> for Error {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Pool(e) => Error::unavailable(e),
            Failure::Db(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                Error::Conflict { what: "media" }
            }
            Failure::Db(e) if is_unavailable(&e) => Error::unavailable(e),
            Failure::Db(e) => Error::internal(e),
        }
    }
}

/// A column that does not decode means the schema is not the one this binary migrated.
#[expect(clippy::needless_pass_by_value, reason = "a `map_err` function")]
pub(crate) fn column(e: tokio_postgres::Error) -> Error {
    Error::internal(format!("unexpected column type: {e}"))
}
