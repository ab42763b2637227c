//! The verify path's cache misses on SQLite, read without sqlx's threads.
//!
//! sqlx runs each SQLite connection on a thread of its own, so every query
//! is two hand-offs between threads. A key read by its fingerprint is an
//! indexed lookup in pages the OS has cached, a few microseconds; the
//! hand-offs around it were most of its cost, and a pass over 20,000
//! uncached keys spent its time in context switches. These reads run on
//! the caller's thread, on connections of their own that never write. WAL
//! lets them read while another connection writes.
//!
//! Misses that arrive together share one read transaction. Beginning and
//! ending one takes SQLite's shared-memory lock (a mutex the two worker
//! threads fought over, and two `fcntl` calls), which was a third of a
//! miss. The first miss leads: it lets the scheduler run the requests
//! already waiting, takes every miss they queued meanwhile, and reads them
//! all in one transaction begun after each of them was asked, so each sees
//! every commit made before its verify started.

use std::path::PathBuf;
use std::sync::Mutex;

use rusqlite::{OpenFlags, OptionalExtension};
use tokio::sync::oneshot;

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
    queue: Mutex<Queue>,
}

type Answer = Result<Option<ApiKey>, StoreError>;

/// The misses waiting for the next read, and whether one of them leads it.
#[derive(Default)]
struct Queue {
    waiting: Vec<(String, oneshot::Sender<Answer>)>,
    led: bool,
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
            queue: Mutex::default(),
        };
        let first = reads.connect().ok()?;
        reads.give_back(first);
        Some(reads)
    }

    pub(crate) async fn key_by_fingerprint(&self, fingerprint: &str) -> Answer {
        let (answer, answered) = oneshot::channel();
        let leads = {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.waiting.push((fingerprint.to_string(), answer));
            !std::mem::replace(&mut queue.led, true)
        };
        if leads {
            // The batch is read when the guard drops, also when this
            // request is cancelled while it yields: the others never wait
            // on a leader that is gone.
            let batch = Leader(self);
            tokio::task::yield_now().await;
            drop(batch);
        }
        answered
            .await
            .unwrap_or_else(|_| Err(failed("the batch holding this read ended without it")))
    }

    /// Reads every queued miss in one transaction, and frees the lead: a
    /// miss queued after this takes lead of the next batch.
    fn read_queued(&self) {
        let waiting = {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.led = false;
            std::mem::take(&mut queue.waiting)
        };
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle.map_or_else(|| self.connect(), Ok) {
            Ok(conn) => conn,
            Err(e) => {
                let why = e.to_string();
                for (_, answer) in waiting {
                    let _ = answer.send(Err(failed(&why)));
                }
                return;
            }
        };
        // Without the transaction each read still stands alone, and still
        // answers for itself.
        let in_transaction = waiting.len() > 1 && conn.execute_batch("BEGIN").is_ok();
        for (fingerprint, answer) in waiting {
            let _ = answer.send(self.read(&conn, &fingerprint));
        }
        if in_transaction && conn.execute_batch("COMMIT").is_err() {
            return;
        }
        self.give_back(conn);
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

/// One failure told to every read of a batch (rusqlite's errors do not
/// clone).
fn failed(why: &str) -> StoreError {
    let code = rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR);
    StoreError::SqliteRead(rusqlite::Error::SqliteFailure(code, Some(why.to_string())))
}

/// The lead of a batch of misses; reads them when dropped.
struct Leader<'a>(&'a KeyReads);

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.0.read_queued();
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

    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    /// A database with keys `key_a`, `key_b`, … stored under fingerprints
    /// `fp_a`, `fp_b`, …
    fn reads_with_keys(dir: &tempfile::TempDir, names: &[&str]) -> KeyReads {
        let path = dir.path().join("keys.db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&format!("PRAGMA journal_mode = WAL; CREATE TABLE api_keys ({COLUMNS})"))
            .unwrap();
        for name in names {
            conn.execute(
                &format!(
                    "INSERT INTO api_keys ({COLUMNS}) VALUES (?1, 'proj', ?1, '', 'secret', 'live', '[]', NULL, NULL, \
                     'user', 0, NULL, NULL, NULL, NULL, 'kw_sk_live', 'abcd', ?2, 0, NULL, 1, '{{}}', NULL, '[]', \
                     NULL, NULL, NULL, NULL, 0)"
                ),
                [format!("key_{name}"), format!("fp_{name}")],
            )
            .unwrap();
        }
        KeyReads::open(&format!("sqlite://{}", path.display())).unwrap()
    }

    fn poll<F: Future + ?Sized>(future: Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }

    fn found_id(answer: Poll<Answer>) -> Option<String> {
        match answer {
            Poll::Ready(found) => found.unwrap().map(|key| key.id),
            Poll::Pending => panic!("the read is still waiting"),
        }
    }

    #[tokio::test]
    async fn misses_asked_together_are_answered_by_one_read_of_them_all() {
        let dir = tempfile::tempdir().unwrap();
        let reads = reads_with_keys(&dir, &["a", "b"]);
        let mut lead = Box::pin(reads.key_by_fingerprint("fp_a"));
        let mut second = Box::pin(reads.key_by_fingerprint("fp_b"));
        let mut unknown = Box::pin(reads.key_by_fingerprint("fp_z"));
        assert!(poll(lead.as_mut()).is_pending(), "the first miss yields before it reads");
        assert!(poll(second.as_mut()).is_pending());
        assert!(poll(unknown.as_mut()).is_pending());
        assert_eq!(found_id(poll(lead.as_mut())), Some("key_a".into()));
        assert_eq!(found_id(poll(second.as_mut())), Some("key_b".into()), "read in the lead's batch");
        assert_eq!(found_id(poll(unknown.as_mut())), None);
    }

    #[tokio::test]
    async fn a_cancelled_lead_still_answers_the_misses_it_led() {
        let dir = tempfile::tempdir().unwrap();
        let reads = reads_with_keys(&dir, &["a", "b"]);
        let mut lead = Box::pin(reads.key_by_fingerprint("fp_a"));
        let mut second = Box::pin(reads.key_by_fingerprint("fp_b"));
        assert!(poll(lead.as_mut()).is_pending());
        assert!(poll(second.as_mut()).is_pending());
        drop(lead);
        assert_eq!(found_id(poll(second.as_mut())), Some("key_b".into()));
        let mut next = Box::pin(reads.key_by_fingerprint("fp_a"));
        assert!(poll(next.as_mut()).is_pending(), "a later miss leads a batch of its own");
        assert_eq!(found_id(poll(next.as_mut())), Some("key_a".into()));
    }

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
