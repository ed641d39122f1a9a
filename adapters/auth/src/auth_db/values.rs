//! Dates and booleans as Better Auth's writers store them.

use deadpool_sqlite::rusqlite::types::Value;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// Integers below this are Unix seconds (Drizzle's `timestamp` mode), above it milliseconds:
/// 1e11 ms is 1973, 1e11 s is the year 5138, so no real date is ambiguous.
pub(super) const SECONDS_LIMIT: i64 = 100_000_000_000;

/// How a row stores dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateFormat {
    /// `toISOString()`: `2025-06-01T12:00:00.000Z` (Better Auth's Kysely adapter).
    IsoText,
    /// Integer Unix milliseconds (Drizzle `timestamp_ms`, Prisma).
    Millis,
    /// Integer Unix seconds (Drizzle `timestamp`).
    Seconds,
}

impl DateFormat {
    pub(super) fn of(v: &Value, declared_type: &str) -> Self {
        match v {
            Value::Integer(n) if n.abs() < SECONDS_LIMIT => Self::Seconds,
            Value::Integer(_) | Value::Real(_) => Self::Millis,
            Value::Text(_) => Self::IsoText,
            // Nothing stored yet: go by the declared type, as the writer would.
            _ if declared_type.to_ascii_lowercase().contains("int") => Self::Millis,
            _ => Self::IsoText,
        }
    }

    pub(crate) fn encode(self, t: OffsetDateTime) -> Value {
        let t = t.to_offset(UtcOffset::UTC);
        match self {
            Self::IsoText => Value::Text(format_iso(t)),
            Self::Millis => {
                Value::Integer(i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
            }
            Self::Seconds => Value::Integer(t.unix_timestamp()),
        }
    }
}

/// JavaScript's `Date.prototype.toISOString()`.
pub(crate) fn format_iso(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .unwrap_or_default()
}

/// Reads a stored date: ISO-8601 / RFC 3339 text, SQLite's `YYYY-MM-DD HH:MM:SS[.fff]`
/// (taken as UTC), or a number of Unix milliseconds or seconds (see [`SECONDS_LIMIT`]).
pub(crate) fn parse_time(v: &Value) -> Option<OffsetDateTime> {
    match v {
        Value::Integer(n) => from_integer(*n),
        Value::Real(f) => from_real(*f),
        Value::Text(s) => {
            let s = s.trim();
            if let Ok(n) = s.parse::<i64>() {
                return from_integer(n);
            }
            if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
                return Some(t);
            }
            let naive = s
                .strip_suffix(['Z', 'z'])
                .unwrap_or(s)
                .replacen(' ', "T", 1);
            PrimitiveDateTime::parse(
                &naive,
                format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
                ),
            )
            .ok()
            .map(PrimitiveDateTime::assume_utc)
        }
        Value::Null | Value::Blob(_) => None,
    }
}

pub(super) fn from_integer(n: i64) -> Option<OffsetDateTime> {
    let millis = if n.abs() < SECONDS_LIMIT {
        i128::from(n) * 1000
    } else {
        i128::from(n)
    };
    OffsetDateTime::from_unix_timestamp_nanos(millis * 1_000_000).ok()
}

#[expect(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    reason = "the bounds are checked first; whole milliseconds are all a float date carries"
)]
pub(super) fn from_real(f: f64) -> Option<OffsetDateTime> {
    if !f.is_finite() || f.abs() >= i64::MAX as f64 / 1000.0 {
        return None;
    }
    // Whole milliseconds: f64 cannot carry nanoseconds at this magnitude anyway.
    let millis = if f.abs() < SECONDS_LIMIT as f64 {
        f * 1000.0
    } else {
        f
    };
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis.round() as i64) * 1_000_000).ok()
}

/// A stored boolean: 0/1 (Better Auth on SQLite), or `true`/`false` text.
pub(crate) fn truthy(v: &Value) -> Option<bool> {
    match v {
        Value::Integer(n) => Some(*n != 0),
        Value::Real(f) => Some(*f != 0.0),
        Value::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "t" | "yes" => Some(true),
            "0" | "false" | "f" | "no" => Some(false),
            _ => None,
        },
        Value::Null | Value::Blob(_) => None,
    }
}

#[expect(
    clippy::cast_possible_truncation,
    reason = "saturating on purpose: Better Auth writes no fractional counters"
)]
pub(super) fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Integer(n) => Some(*n),
        // Saturating: a fractional counter is not something Better Auth writes.
        Value::Real(f) if f.is_finite() => Some(*f as i64),
        Value::Text(s) => s.trim().parse().ok(),
        _ => None,
    }
}
