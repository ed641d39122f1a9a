//! Writing raw rows into filegate's tables, for `filegate-admin copy-metadata`.
//!
//! Rows arrive untyped from another database (a cell is `None` for NULL, else its text;
//! BIGINT as decimal digits) and are cast back to each column's type here, so ids,
//! nanosecond instants and statuses land exactly as they were. Inserting skips rows
//! whose key (or any other unique value) is already there, so a copy can be rerun.

use crate::PgPool;
use filegate_core::Error;

/// One column's value: `None` is NULL.
pub type Cell = Option<String>;

/// A table to write: its name and its columns with their SQL types; the first column is
/// the key rows are identified by.
#[derive(Debug, Clone, Copy)]
pub struct TableRef<'a> {
    /// The table.
    pub name: &'a str,
    /// `(column, type)`, e.g. `("created_at", "bigint")`; the first is the key.
    pub columns: &'a [(&'a str, &'a str)],
}

/// How many rows `table` holds.
///
/// # Errors
/// An unknown table or a database failure.
pub async fn count(pool: &PgPool, table: &str) -> Result<u64, Error> {
    let sql = format!("SELECT count(*) FROM {}", ident(table)?);
    let rows = pool.query(&sql, &[]).await?;
    let n: i64 = rows
        .first()
        .ok_or_else(|| Error::internal("count(*) returned no row"))?
        .try_get(0)
        .map_err(crate::error::column)?;
    Ok(u64::try_from(n).unwrap_or_default())
}

/// Inserts `rows` (cells in `table.columns` order) in one statement, skipping those that
/// conflict with a row already there; returns how many were inserted. Identity columns
/// take the given values.
///
/// # Errors
/// A cell that does not cast to its column's type, a violated constraint other than a
/// unique one (e.g. an object whose bucket is missing), or a database failure.
pub async fn insert(pool: &PgPool, table: TableRef<'_>, rows: &[Vec<Cell>]) -> Result<u64, Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let name = ident(table.name)?;
    let mut names = Vec::new();
    let mut casts = Vec::new();
    let mut arrays = Vec::new();
    for (i, (column, ty)) in table.columns.iter().enumerate() {
        names.push(ident(column)?);
        casts.push(format!("c{i}::{}", ident_type(ty)?));
        arrays.push(format!("${}::text[]", i + 1));
    }
    let aliases = (0..names.len())
        .map(|i| format!("c{i}"))
        .collect::<Vec<_>>();
    let sql = format!(
        "INSERT INTO {name} ({}) OVERRIDING SYSTEM VALUE \
         SELECT {} FROM unnest({}) AS u({}) ON CONFLICT DO NOTHING",
        names.join(", "),
        casts.join(", "),
        arrays.join(", "),
        aliases.join(", ")
    );
    let columns = transpose(rows, names.len())?;
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = columns
        .iter()
        .map(|c| c as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    Ok(pool.execute(&sql, &params).await?)
}

/// The rows of `table` whose key is one of `keys`, as cells in `table.columns` order (each
/// as its text), in no particular order.
///
/// # Errors
/// A key that does not cast to the key column's type, or a database failure.
pub async fn rows_by_key(
    pool: &PgPool,
    table: TableRef<'_>,
    keys: &[String],
) -> Result<Vec<Vec<Cell>>, Error> {
    let name = ident(table.name)?;
    let Some((key, key_type)) = table.columns.first() else {
        return Err(Error::internal("a table to copy needs columns"));
    };
    let selected = table
        .columns
        .iter()
        .map(|(c, _)| ident(c).map(|c| format!("{c}::text")))
        .collect::<Result<Vec<_>, _>>()?;
    let sql = format!(
        "SELECT {} FROM {name} WHERE {} = ANY($1::text[]::{}[])",
        selected.join(", "),
        ident(key)?,
        ident_type(key_type)?
    );
    let rows = pool.query(&sql, &[&keys]).await?;
    rows.iter()
        .map(|r| {
            (0..selected.len())
                .map(|i| r.try_get::<_, Cell>(i).map_err(crate::error::column))
                .collect::<Result<Vec<Cell>, Error>>()
        })
        .collect()
}

/// Moves the identity sequence of `table.column` past the largest value copied in, so
/// the next row the server appends gets a fresh number.
///
/// # Errors
/// No identity on that column, or a database failure.
pub async fn restart_identity(pool: &PgPool, table: &str, column: &str) -> Result<(), Error> {
    let (table, column) = (ident(table)?, ident(column)?);
    let sql = format!(
        "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), \
         COALESCE((SELECT max({column}) FROM {table}), 0) + 1, false)"
    );
    pool.query(&sql, &[]).await?;
    Ok(())
}

/// Rows to columns, for `unnest`.
fn transpose(rows: &[Vec<Cell>], width: usize) -> Result<Vec<Vec<Cell>>, Error> {
    let mut columns = vec![Vec::with_capacity(rows.len()); width];
    for row in rows {
        if row.len() != width {
            return Err(Error::internal(format!(
                "a row of {} cells for {width} columns",
                row.len()
            )));
        }
        for (column, cell) in columns.iter_mut().zip(row) {
            column.push(cell.clone());
        }
    }
    Ok(columns)
}

/// Names are spliced into SQL: only plain lower-case identifiers.
fn ident(s: &str) -> Result<&str, Error> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        Ok(s)
    } else {
        Err(Error::internal(format!("not a plain identifier: {s:?}")))
    }
}

/// Column types are spliced into SQL too: `text` or `bigint`.
fn ident_type(s: &str) -> Result<&str, Error> {
    match s {
        "text" | "bigint" => Ok(s),
        _ => Err(Error::internal(format!("unsupported column type: {s:?}"))),
    }
}
