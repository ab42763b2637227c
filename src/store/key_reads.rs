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
use super::{ApiKey, StoreError};

/// Idle connections kept for the next reads; a burst opens more.
const IDLE: usize = 4;

pub(crate) struct KeyReads {
    path: PathBuf,
    sql: String,
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
        statement.query_row([fingerprint], |row| Ok(from_row(row))).optional()?.transpose()
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
