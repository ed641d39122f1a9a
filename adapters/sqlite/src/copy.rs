//! Raw rows of filegate's own tables in key order, for `filegate-admin copy-metadata`.
//!
//! The ports list what a request needs (one organization, one bucket); copying a whole
//! deployment needs every row of a table, untyped, so nothing is lost or reformatted on
//! the way. A cell is `None` for NULL, else its text: INTEGER columns as decimal digits.

use crate::pool::Pool;
use crate::pool::{self, Ownership};
use deadpool_sqlite::rusqlite::types::{Value, ValueRef};
use deadpool_sqlite::rusqlite::{self, params_from_iter};
use filegate_core::Error;
use std::path::Path;

/// One column's value: `None` is NULL.
pub type Cell = Option<String>;

/// A table to read: its name, its columns (the first is the key rows are ordered by), and
/// whether that key is an INTEGER column.
#[derive(Debug, Clone, Copy)]
pub struct TableRef<'a> {
    /// The table.
    pub name: &'a str,
    /// Its columns; the first is the ordering key (unique).
    pub columns: &'a [&'a str],
    /// Whether the key column holds integers (compared as numbers, not text).
    pub integer_key: bool,
}

/// A filegate SQLite database opened for reading its tables.
#[derive(Debug, Clone)]
pub struct Source {
    pool: Pool,
}

impl Source {
    /// Opens an existing database file; never creates one and applies no migration.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the file is missing or cannot be opened.
    pub async fn open(path: &Path) -> Result<Self, Error> {
        if !path.is_file() {
            return Err(Error::unavailable(format!(
                "no database at {}",
                path.display()
            )));
        }
        Ok(Self {
            pool: pool::open(path, Ownership::Owned).await?,
        })
    }

    /// How many rows `table` holds.
    ///
    /// # Errors
    /// An unknown table or a database failure.
    pub async fn count(&self, table: &str) -> Result<u64, Error> {
        let sql = format!("SELECT count(*) FROM {}", ident(table)?);
        let n: i64 =
            pool::interact(&self.pool, move |c| c.query_row(&sql, [], |r| r.get(0))).await?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    /// Up to `limit` rows of `table` whose key is greater than `after` (all when `None`),
    /// in ascending key order (byte order for text keys), as cells in column order.
    ///
    /// # Errors
    /// An unknown table or column, a REAL or BLOB cell, text that is not UTF-8, or a
    /// database failure.
    pub async fn rows_after(
        &self,
        table: TableRef<'_>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Vec<Cell>>, Error> {
        let columns = table
            .columns
            .iter()
            .copied()
            .map(ident)
            .collect::<Result<Vec<_>, _>>()?;
        let Some(key) = columns.first().copied() else {
            return Err(Error::internal("a table to copy needs columns"));
        };
        let name = ident(table.name)?;
        let mut params: Vec<Value> = Vec::new();
        let filter = match after {
            None => String::new(),
            Some(a) if table.integer_key => {
                let n: i64 = a
                    .parse()
                    .map_err(|_| Error::internal(format!("{name}: key {a:?} is not an integer")))?;
                params.push(Value::Integer(n));
                format!("WHERE {key} > ?1")
            }
            Some(a) => {
                params.push(Value::Text(a.to_owned()));
                format!("WHERE {key} > ?1")
            }
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        params.push(Value::Integer(limit));
        let sql = format!(
            "SELECT {} FROM {name} {filter} ORDER BY {key} LIMIT +?{}",
            columns.join(", "),
            params.len()
        );
        let width = columns.len();
        let table_name = name.to_owned();
        pool::interact(&self.pool, move |c| {
            let mut stmt = c.prepare(&sql)?;
            let mut rows = stmt.query(params_from_iter(params))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let mut cells = Vec::with_capacity(width);
                for i in 0..width {
                    cells.push(cell(row.get_ref(i)?, &table_name, i)?);
                }
                out.push(cells);
            }
            Ok(out)
        })
        .await
    }
}

/// A cell as text; REAL and BLOB never occur in filegate's tables (STRICT INTEGER/TEXT).
fn cell(v: ValueRef<'_>, table: &str, i: usize) -> rusqlite::Result<Cell> {
    match v {
        ValueRef::Null => Ok(None),
        ValueRef::Integer(n) => Ok(Some(n.to_string())),
        ValueRef::Text(t) => String::from_utf8(t.to_vec()).map(Some).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
        }),
        ValueRef::Real(_) | ValueRef::Blob(_) => Err(rusqlite::Error::InvalidColumnType(
            i,
            format!("{table} column {i}"),
            v.data_type(),
        )),
    }
}

/// Table and column names are spliced into SQL: only plain lower-case identifiers.
fn ident(s: &str) -> Result<&str, Error> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        Ok(s)
    } else {
        Err(Error::internal(format!("not a plain identifier: {s:?}")))
    }
}
