//! Persistence: SQLite (embedded default, WAL) or PostgreSQL, through sqlx's
//! `Any` driver with runtime-checked queries, so `cargo build` needs no
//! database. This module is the only place with SQL. One read is the
//! exception to sqlx: on SQLite the verify path's key lookups run on the
//! caller's thread (`key_reads`), for speed.
//!
//! Every query is written once in the dialect both backends share (`$n`
//! placeholders, BIGINT times in Unix milliseconds). SQLite allows one
//! writer at a time and fails a deferred transaction that tries to upgrade
//! while another writes, so on SQLite every write transaction first takes
//! an in-process lock; PostgreSQL needs none.

mod audit;
mod incidents;
mod jobs;
mod key_reads;
mod keys;
mod leader;
mod migrate;
mod notify;
mod projects;
mod sessions;
mod sources;
mod third_party;
mod usage;

use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Executor, Transaction};
use tokio::sync::{Mutex, MutexGuard};

pub use crate::keys::sealed::HeldToken;
pub use audit::{AuditEvent, ChainBreak, NewAuditEvent, GENESIS_HASH};
pub use incidents::{AlertSettings, Incident, Place};
pub use jobs::{Job, NewJob, QueueDepth, ReadyJobs};
pub use keys::{ApiKey, KeyUpdate, NewApiKey, RevokeReason};
pub use leader::Leadership;
pub use notify::{CacheListener, CHANNEL as CACHE_CHANNEL};
pub use projects::{Entitlement, EntitlementState, Member, Project, Role, ServiceAccount};
pub use sessions::SessionRow;
pub use sources::{SourceOutcome, SourceStatus};
pub use third_party::{Revocation, RevocationStatus, ThirdPartyIncident};
pub use usage::{UsageDelta, UsageRow, VerificationDelta};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL (expected sqlite:// or postgres://)")]
    UnsupportedUrl,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration {version} failed: {source}")]
    Migration {
        version: i64,
        #[source]
        source: sqlx::Error,
    },
    #[error("a stored value is invalid: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    SqliteRead(#[from] rusqlite::Error),
}

impl StoreError {
    /// A UNIQUE constraint refused the write (name taken, duplicate id).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e)) if e.is_unique_violation())
    }

    /// PostgreSQL refused text it cannot hold (a NUL character, SQLSTATE
    /// 22021). SQLite stores such text, so the service refuses it for both.
    pub fn is_unstorable_text(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e)) if e.code().as_deref() == Some("22021"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// For connections outside the pool (LISTEN).
    url: String,
    sqlite_writer: Arc<Mutex<()>>,
    /// SQLite only: key reads by fingerprint on the caller's thread.
    key_reads: Option<Arc<key_reads::KeyReads>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({:?})", self.backend)
    }
}

/// A write transaction; on SQLite it also holds the single-writer lock.
pub struct Tx<'s> {
    inner: Transaction<'static, Any>,
    _writer: Option<MutexGuard<'s, ()>>,
}

impl Tx<'_> {
    pub async fn commit(self) -> Result<(), StoreError> {
        self.inner.commit().await?;
        Ok(())
    }
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `url`.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // mmap: a read of a page the OS has cached costs no
                        // read(2); a cold verify pass over 20,000 keys spent
                        // its time in those calls and the wakeups around them.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; PRAGMA mmap_size = 268435456;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(&with_create_mode(url, backend))
            .await?;
        let store = Store {
            pool,
            backend,
            url: url.to_string(),
            sqlite_writer: Arc::new(Mutex::new(())),
            key_reads: None,
        };
        migrate::run(&store).await?;
        let key_reads = match backend {
            Backend::Sqlite => key_reads::KeyReads::open(url).map(Arc::new),
            Backend::Postgres => None,
        };
        Ok(Store { key_reads, ..store })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx<'_>, StoreError> {
        let writer = match self.backend {
            Backend::Sqlite => Some(self.sqlite_writer.lock().await),
            Backend::Postgres => None,
        };
        Ok(Tx {
            inner: self.pool.begin().await?,
            _writer: writer,
        })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").fetch_one(&self.pool).await?;
        Ok(())
    }
}

/// SQLite creates the file only when asked to (`mode=rwc`).
fn with_create_mode(url: &str, backend: Backend) -> String {
    if backend == Backend::Sqlite && !url.contains("mode=") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}mode=rwc")
    } else {
        url.to_string()
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn get<T>(row: &AnyRow, column: &str) -> Result<T, StoreError>
where
    T: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    use sqlx::Row;
    row.try_get(column).map_err(StoreError::from)
}

/// A column value both sqlx's rows and rusqlite's decode.
trait Value: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any> + rusqlite::types::FromSql {}

impl<T> Value for T where T: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any> + rusqlite::types::FromSql {}

/// A row of either driver, read by column name.
trait Columns {
    fn column<T: Value>(&self, name: &str) -> Result<T, StoreError>;
}

impl Columns for AnyRow {
    fn column<T: Value>(&self, name: &str) -> Result<T, StoreError> {
        get(self, name)
    }
}
