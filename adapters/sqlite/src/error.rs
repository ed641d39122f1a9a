//! rusqlite and pool failures mapped to the `MediaStore` error contract.

use deadpool_sqlite::rusqlite::{self, ErrorCode, ffi};
use deadpool_sqlite::{InteractError, PoolError};
use filegate_core::Error;

/// UNIQUE / PRIMARY KEY → `Conflict`; busy, locked, unreachable or not a database →
/// `Unavailable`; anything else (bad SQL, type mismatch in a stored row, …) → `Internal`.
pub(crate) fn from_sqlite(e: rusqlite::Error) -> Error {
    if let rusqlite::Error::SqliteFailure(failure, _) = &e {
        match failure.code {
            ErrorCode::ConstraintViolation
                if matches!(
                    failure.extended_code,
                    ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                ) =>
            {
                return Error::Conflict { what: "media" };
            }
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::CannotOpen
            | ErrorCode::SystemIoFailure
            | ErrorCode::NotADatabase
            | ErrorCode::DiskFull => return Error::unavailable(e),
            _ => {}
        }
    }
    Error::internal(e)
}

pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

pub(crate) fn from_pool(e: PoolError) -> Error {
    Error::unavailable(e)
}

// The panic payload is not `Sync`, so only its description is kept.
#[expect(clippy::needless_pass_by_value, reason = "a `map_err` function")]
pub(crate) fn from_interact(e: InteractError) -> Error {
    Error::unavailable(format!("sqlite worker failed: {e}"))
}
