//! Verify counters: the verifier adds up uses in memory and a flusher
//! writes them here in one transaction per batch, never one per request.

use super::{get, Store, StoreError};

/// Uses of one key on one day since the last flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageDelta {
    pub key_id: String,
    /// Days since the Unix epoch, UTC.
    pub day: i64,
    pub count: i64,
    pub last_used_at: i64,
}

impl Store {
    pub async fn apply_usage(&self, batch: &[UsageDelta]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for d in batch {
            sqlx::query(
                "INSERT INTO key_usage (key_id, day, count) VALUES ($1, $2, $3) \
                 ON CONFLICT (key_id, day) DO UPDATE SET count = key_usage.count + excluded.count",
            )
            .bind(&d.key_id)
            .bind(d.day)
            .bind(d.count)
            .execute(&mut *tx.inner)
            .await?;
            sqlx::query("UPDATE api_keys SET last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < $1 THEN $1 ELSE last_used_at END WHERE id = $2")
                .bind(d.last_used_at)
                .bind(&d.key_id)
                .execute(&mut *tx.inner)
                .await?;
        }
        tx.commit().await
    }

    /// Per-day use counts of a key, oldest day first.
    pub async fn usage_of_key(&self, key_id: &str) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows = sqlx::query("SELECT day, count FROM key_usage WHERE key_id = $1 ORDER BY day")
            .bind(key_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((get(r, "day")?, get(r, "count")?))).collect()
    }
}
