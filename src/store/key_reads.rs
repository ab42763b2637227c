//! The verify path's cache misses on SQLite, read without sqlx's threads.
//!
//! sqlx runs each SQLite connection on a thread of its own, so every query
//! is two hand-offs between threads. A key read by its fingerprint is an
//! indexed lookup in pages the OS has cached, a few microseconds; the
//! hand-offs around it were most of its cost, and a pass over 20,000
//! uncached keys spent its time in context switches. These reads run on
//! the caller's thread, on connections of their own that never write. WAL
//! lets them read while another connection writes, and each statement sees
//! every commit made before it started.

use std::path::PathBuf;
use std::sync::Mutex;

use rusqlite::{OpenFlags, OptionalExtension};

use super::keys::{from_row, COLUMNS};
use super::{ApiKey, Columns, StoreError, Value};

/// Idle connections kept for the next reads; a burst opens more.
const IDLE: usize = 4;

pub(crate) struct KeyReads {
    path: PathBuf,
    sql: String,
    /// The selected columns' names, in the statement's order.
    names: Vec<&'static str>,
    idle: Mutex<Vec<rusqlite::Connection>>,
}

impl KeyReads {
    /// Reads for the database file of a `sqlite://PATH?…` URL, once one
    /// connection opens; `None` for an in-memory database or a path that
    /// does not open, whose reads stay with sqlx.
    pub(crate) fn open(url: &str) -> Option<KeyReads> {
        let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
        let path = rest.split('?').next().filter(|p| !p.is_empty() && !p.contains(":memory:"))?;
        let reads = KeyReads {
            path: PathBuf::from(path),
            sql: format!("SELECT {COLUMNS} FROM api_keys WHERE fingerprint = ?1"),
            names: COLUMNS.split(',').map(str::trim).collect(),
            idle: Mutex::default(),
        };
        let first = reads.connect().ok()?;
        reads.give_back(first);
        Some(reads)
    }

    pub(crate) fn key_by_fingerprint(&self, fingerprint: &str) -> Result<Option<ApiKey>, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.connect()?,
        };
        let found = self.read(&conn, fingerprint);
        self.give_back(conn);
        found
    }

    fn read(&self, conn: &rusqlite::Connection, fingerprint: &str) -> Result<Option<ApiKey>, StoreError> {
        let mut statement = conn.prepare_cached(&self.sql)?;
        statement
            .query_row([fingerprint], |row| Ok(from_row(&SelectedRow { row, names: &self.names })))
            .optional()?
            .transpose()
    }

    fn connect(&self) -> Result<rusqlite::Connection, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = rusqlite::Connection::open_with_flags(&self.path, flags)?;
        conn.execute_batch("PRAGMA query_only = 1; PRAGMA busy_timeout = 5000; PRAGMA mmap_size = 268435456;")?;
        Ok(conn)
    }

    fn give_back(&self, conn: rusqlite::Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE {
            idle.push(conn);
        }
    }
}

/// A row of `SELECT {COLUMNS}`, its columns found by their place in that
/// list. rusqlite's lookup by name asks SQLite for the name of each column
/// up to the one wanted, on every read: for a key's 29 columns that was a
/// quarter of the store read's time on a cache miss.
struct SelectedRow<'a, 'r> {
    row: &'a rusqlite::Row<'r>,
    names: &'a [&'static str],
}

impl Columns for SelectedRow<'_, '_> {
    fn column<T: Value>(&self, name: &str) -> Result<T, StoreError> {
        let at = self
            .names
            .iter()
            .position(|n| *n == name)
            .ok_or_else(|| rusqlite::Error::InvalidColumnName(name.to_string()))?;
        Ok(self.row.get(at)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_column_names_follow_the_statements_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&format!("CREATE TABLE api_keys ({COLUMNS})")).unwrap();
        drop(conn);
        let reads = KeyReads::open(&format!("sqlite://{}", path.display())).unwrap();
        let conn = reads.connect().unwrap();
        let statement = conn.prepare(&reads.sql).unwrap();
        assert_eq!(statement.column_names(), reads.names);
        assert_eq!(reads.names.len(), 29);
    }
}
