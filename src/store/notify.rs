//! Cache coherence across replicas. After a change to a key or to a
//! project's entitlements commits, the replica that made it sends a NOTIFY
//! on `keyward_cache`; every replica LISTENs and drops what it cached. On
//! SQLite there is one process, and both ends do nothing.

use sqlx::postgres::PgListener;

use super::{get, Backend, Store, StoreError};

pub const CHANNEL: &str = "keyward_cache";

/// A replica's subscription to the other replicas' changes.
pub struct CacheListener(PgListener);

impl CacheListener {
    /// The next change, or `None` when the connection was lost: changes may
    /// have been missed, so the caller should drop everything it cached.
    /// The next call reconnects.
    pub async fn next(&mut self) -> Result<Option<String>, StoreError> {
        Ok(self.0.try_recv().await?.map(|n| n.payload().to_string()))
    }
}

impl Store {
    /// Tells the other replicas that `what` (`key:<fingerprint>` or
    /// `entitlements:<project>`) changed.
    pub async fn announce_cache_change(&self, what: &str) -> Result<(), StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(what)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Listens for other replicas' changes; `None` on SQLite.
    pub async fn cache_listener(&self) -> Result<Option<CacheListener>, StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let mut listener = PgListener::connect(&self.url).await?;
        listener.listen(CHANNEL).await?;
        Ok(Some(CacheListener(listener)))
    }
}

impl Store {
    /// Records that replica `id` is alive.
    pub async fn replica_heartbeat(&self, id: &str, now: i64) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO replicas (id, seen_at) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at")
            .bind(id)
            .bind(now)
            .execute(&mut *tx.inner)
            .await?;
        sqlx::query("DELETE FROM replicas WHERE seen_at < $1")
            .bind(now - 3_600_000)
            .execute(&mut *tx.inner)
            .await?;
        tx.commit().await
    }

    /// Replicas seen since `since`.
    pub async fn live_replicas(&self, since: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT id FROM replicas WHERE seen_at >= $1")
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| get(r, "id")).collect()
    }
}
