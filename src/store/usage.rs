//! Verify counters: the verifier adds up uses in memory and a flusher
//! writes them here in one transaction per batch, never one per request:
//! uses per key and day (with the last use), and verifications per key,
//! hour and outcome for the usage charts.

use super::{get, Backend, Store, StoreError};

/// Verifications of one key, in one hour, with one outcome, since the
/// last flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationDelta {
    pub key_id: String,
    /// Hours since the Unix epoch, UTC.
    pub hour: i64,
    pub code: &'static str,
    pub count: i64,
}

/// Rows per multi-row statement: well under SQLite's 32,766 parameters.
const ROWS_PER_STATEMENT: usize = 400;

/// `($1, $2), ($3, $4), …` for `rows` rows of `columns` values; with a
/// cast type, every value but the first of a row is cast to it (a VALUES
/// list gives PostgreSQL no column to infer the type from). SQLite gets
/// anonymous `?` instead: binding a numbered parameter looks its name up
/// in a list, which made a 1,600-parameter flush quadratic and cost a
/// third of the server's time under verify load over many keys.
fn placeholders(backend: Backend, rows: usize, columns: usize, cast: &str) -> String {
    let mut out = String::new();
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..columns {
            if c > 0 {
                out.push_str(", ");
            }
            let value = match backend {
                Backend::Sqlite => "?".to_string(),
                Backend::Postgres => format!("${}", r * columns + c + 1),
            };
            if c > 0 && !cast.is_empty() {
                out.push_str(&format!("CAST({value} AS {cast})"));
            } else {
                out.push_str(&value);
            }
        }
        out.push(')');
    }
    out
}

/// One row of the usage series: (hour or day start in ms, code, count).
pub type UsageRow = (i64, String, i64);

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
    /// Adds a batch of uses and moves each key's last use forward, a few
    /// hundred rows per statement: a flush after a busy second over many
    /// keys stays a handful of statements, not thousands.
    ///
    /// Rows go in key order. Key ids grow with time, as the tables' rows
    /// and index entries do, so each page is changed once, in order; in
    /// the counters' hash order each statement touched pages all over a
    /// table larger than SQLite's page cache, and a flush after a pass
    /// over 19,000 new keys cost 2.6 times as much. On PostgreSQL the
    /// upserts of every replica's flush also take their row locks in one
    /// order (the `UPDATE … FROM` join's order is the planner's).
    pub async fn apply_usage(&self, batch: &[UsageDelta]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut rows: Vec<&UsageDelta> = batch.iter().collect();
        rows.sort_unstable_by(|a, b| (&a.key_id, a.day).cmp(&(&b.key_id, b.day)));
        let mut tx = self.begin().await?;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO key_usage (key_id, day, count) VALUES {} \
                 ON CONFLICT (key_id, day) DO UPDATE SET count = key_usage.count + excluded.count",
                placeholders(self.backend(), chunk.len(), 3, "")
            );
            let mut query = sqlx::query(&sql);
            for d in chunk {
                query = query.bind(&d.key_id).bind(d.day).bind(d.count);
            }
            query.execute(&mut *tx.inner).await?;
            let sql = format!(
                "WITH v (id, t) AS (VALUES {}) UPDATE api_keys SET last_used_at = \
                 CASE WHEN last_used_at IS NULL OR last_used_at < v.t THEN v.t ELSE last_used_at END \
                 FROM v WHERE api_keys.id = v.id",
                placeholders(self.backend(), chunk.len(), 2, "BIGINT")
            );
            let mut query = sqlx::query(&sql);
            for d in chunk {
                query = query.bind(&d.key_id).bind(d.last_used_at);
            }
            query.execute(&mut *tx.inner).await?;
        }
        tx.commit().await
    }

    pub async fn apply_verifications(&self, batch: &[VerificationDelta]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut rows: Vec<&VerificationDelta> = batch.iter().collect();
        rows.sort_unstable_by(|a, b| (&a.key_id, a.hour, a.code).cmp(&(&b.key_id, b.hour, b.code)));
        let mut tx = self.begin().await?;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO key_verifications (key_id, hour, code, count) VALUES {} \
                 ON CONFLICT (key_id, hour, code) DO UPDATE SET count = key_verifications.count + excluded.count",
                placeholders(self.backend(), chunk.len(), 4, "")
            );
            let mut query = sqlx::query(&sql);
            for d in chunk {
                query = query.bind(&d.key_id).bind(d.hour).bind(d.code).bind(d.count);
            }
            query.execute(&mut *tx.inner).await?;
        }
        tx.commit().await
    }

    /// Verifications of a project's keys (or one key) from `from_hour` to
    /// `to_hour` inclusive, summed per `bucket_hours` and outcome, oldest
    /// first; bucket starts are in milliseconds.
    pub async fn verifications(
        &self,
        project_id: &str,
        key_id: Option<&str>,
        from_hour: i64,
        to_hour: i64,
        bucket_hours: i64,
    ) -> Result<Vec<UsageRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT (v.hour / $4) * $4 AS bucket, v.code, CAST(SUM(v.count) AS BIGINT) AS n FROM key_verifications v \
             JOIN api_keys k ON k.id = v.key_id \
             WHERE k.project_id = $1 AND ($2 = '' OR v.key_id = $2) AND v.hour >= $3 AND v.hour <= $5 \
             GROUP BY (v.hour / $4) * $4, v.code ORDER BY bucket, v.code",
        )
        .bind(project_id)
        .bind(key_id.unwrap_or(""))
        .bind(from_hour)
        .bind(bucket_hours)
        .bind(to_hour)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let bucket: i64 = get(r, "bucket")?;
                let n: i64 = get(r, "n")?;
                Ok((bucket * 3_600_000, get(r, "code")?, n))
            })
            .collect()
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
