//! A durable job queue: enqueue in the same transaction as the work that
//! causes it, claim atomically under a lease, retry with backoff, and end
//! in `dead` after too many failures.

use sqlx::any::AnyRow;

use super::{get, Backend, Store, StoreError, Tx};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: String,
    pub kind: String,
    pub payload: String,
    /// Including the attempt this claim starts.
    pub attempts: i64,
    pub max_attempts: i64,
}

#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: String,
    pub kind: String,
    pub payload: String,
    /// Work already queued under this key is not queued again.
    pub dedupe_key: Option<String>,
    pub max_attempts: i64,
    pub run_at: i64,
}

/// Jobs of one kind that are ready to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyJobs {
    pub count: i64,
    /// When the longest-waiting became ready.
    pub first: i64,
    /// When the newest became ready.
    pub last: i64,
}

/// How many jobs wait, run and have given up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub pending: i64,
    pub running: i64,
    pub dead: i64,
}

/// `{lock}` becomes `FOR UPDATE SKIP LOCKED` on PostgreSQL, so replicas
/// never claim the same row; SQLite's single writer already serialises.
const CLAIM: &str = "UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_by = $1, locked_until = $2, updated_at = $3 \
    WHERE id IN (SELECT id FROM jobs WHERE ((state = 'pending' AND run_at <= $3) OR (state = 'running' AND locked_until < $3)) \
    AND kind LIKE $4 ORDER BY run_at, id LIMIT $5{lock}) \
    RETURNING id, kind, payload, attempts, max_attempts";

fn from_row(row: &AnyRow) -> Result<Job, StoreError> {
    Ok(Job {
        id: get(row, "id")?,
        kind: get(row, "kind")?,
        payload: get(row, "payload")?,
        attempts: get(row, "attempts")?,
        max_attempts: get(row, "max_attempts")?,
    })
}

impl Tx<'_> {
    /// Queues a job; returns false when its dedupe key is already queued.
    pub async fn enqueue(&mut self, job: &NewJob, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO jobs (id, kind, payload, state, max_attempts, run_at, dedupe_key, created_at, updated_at) \
             VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, $7) ON CONFLICT (dedupe_key) DO NOTHING",
        )
        .bind(&job.id)
        .bind(&job.kind)
        .bind(&job.payload)
        .bind(job.max_attempts)
        .bind(job.run_at)
        .bind(job.dedupe_key.as_deref())
        .bind(now)
        .execute(&mut *self.inner)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl Tx<'_> {
    /// Marks a claimed job done, in the transaction of the work it did;
    /// false if the claim was lost meanwhile.
    pub async fn complete_job(&mut self, id: &str, worker: &str, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET state = 'done', locked_until = NULL, last_error = '', updated_at = $1 \
             WHERE id = $2 AND locked_by = $3 AND state = 'running'",
        )
        .bind(now)
        .bind(id)
        .bind(worker)
        .execute(&mut *self.inner)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a failed attempt: back to `pending` at `retry_at`, or `dead`.
    pub async fn fail_job(&mut self, id: &str, worker: &str, error: &str, retry_at: Option<i64>, now: i64) -> Result<(), StoreError> {
        let error: String = error.chars().take(1000).collect();
        sqlx::query(
            "UPDATE jobs SET state = CASE WHEN $1 < 0 THEN 'dead' ELSE 'pending' END, \
             run_at = CASE WHEN $1 < 0 THEN run_at ELSE $1 END, locked_until = NULL, last_error = $2, updated_at = $3 \
             WHERE id = $4 AND locked_by = $5 AND state = 'running'",
        )
        .bind(retry_at.unwrap_or(-1))
        .bind(error)
        .bind(now)
        .bind(id)
        .bind(worker)
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    /// Records a webhook body by its content key; false when the same
    /// content was already received after `window_start`. An older receipt
    /// is refreshed, so the table holds one replay window at most.
    pub async fn record_receipt(&mut self, content_key: &str, now: i64, window_start: i64) -> Result<bool, StoreError> {
        sqlx::query("DELETE FROM webhook_receipts WHERE received_at < $1")
            .bind(window_start)
            .execute(&mut *self.inner)
            .await?;
        let done =
            sqlx::query("INSERT INTO webhook_receipts (content_key, received_at) VALUES ($1, $2) ON CONFLICT (content_key) DO NOTHING")
                .bind(content_key)
                .bind(now)
                .execute(&mut *self.inner)
                .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl Store {
    pub async fn enqueue(&self, job: &NewJob, now: i64) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let queued = tx.enqueue(job, now).await?;
        tx.commit().await?;
        Ok(queued)
    }

    /// Claims up to `limit` ready jobs whose kind starts with `kind_prefix`
    /// for `lease_ms`; a job whose lease ran out is claimable again.
    pub async fn claim_jobs(&self, worker: &str, kind_prefix: &str, limit: i64, lease_ms: i64, now: i64) -> Result<Vec<Job>, StoreError> {
        let lock = if self.backend == Backend::Postgres {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let sql = CLAIM.replace("{lock}", lock);
        let mut tx = self.begin().await?;
        let rows = sqlx::query(&sql)
            .bind(worker)
            .bind(now + lease_ms)
            .bind(now)
            .bind(format!("{kind_prefix}%"))
            .bind(limit)
            .fetch_all(&mut *tx.inner)
            .await?;
        tx.commit().await?;
        rows.iter().map(from_row).collect()
    }

    /// Marks a claimed job done; false if the claim was lost meanwhile.
    pub async fn complete_job(&self, id: &str, worker: &str, now: i64) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let done = tx.complete_job(id, worker, now).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Records a failed attempt: back to `pending` at `retry_at`, or `dead`.
    pub async fn fail_job(&self, id: &str, worker: &str, error: &str, retry_at: Option<i64>, now: i64) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        tx.fail_job(id, worker, error, retry_at, now).await?;
        tx.commit().await
    }

    /// The jobs of `kind` ready at `now`: how many, and when the first and
    /// the last of them became ready; `None` when none is.
    pub async fn ready_jobs(&self, kind: &str, now: i64) -> Result<Option<ReadyJobs>, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(run_at) AS first, MAX(run_at) AS last FROM jobs \
             WHERE kind = $1 AND state = 'pending' AND run_at <= $2",
        )
        .bind(kind)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        let count: i64 = get(&row, "n")?;
        let first: Option<i64> = get(&row, "first")?;
        let last: Option<i64> = get(&row, "last")?;
        Ok(first
            .zip(last)
            .filter(|_| count > 0)
            .map(|(first, last)| ReadyJobs { count, first, last }))
    }

    /// Hands back every job `worker` still holds, so another worker takes
    /// them at once instead of after the lease: a clean shutdown.
    pub async fn release_jobs(&self, worker: &str, now: i64) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let released = sqlx::query(
            "UPDATE jobs SET state = 'pending', attempts = attempts - 1, locked_by = NULL, locked_until = NULL, run_at = $1, updated_at = $1 \
             WHERE locked_by = $2 AND state = 'running'",
        )
        .bind(now)
        .bind(worker)
        .execute(&mut *tx.inner)
        .await?;
        tx.commit().await?;
        Ok(released.rows_affected())
    }

    /// Jobs whose kind starts with `kind_prefix` that wait or run.
    pub async fn waiting_jobs(&self, kind_prefix: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE kind LIKE $1 AND state IN ('pending', 'running')")
                .bind(format!("{kind_prefix}%"))
                .fetch_one(&self.pool)
                .await?,
        )
    }

    pub async fn queue_depth(&self) -> Result<QueueDepth, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        let mut depth = QueueDepth::default();
        for row in &rows {
            let n: i64 = get(row, "n")?;
            match get::<String>(row, "state")?.as_str() {
                "pending" => depth.pending = n,
                "running" => depth.running = n,
                "dead" => depth.dead = n,
                _ => {}
            }
        }
        Ok(depth)
    }

    /// States and attempts of the jobs of one kind, for status pages and tests.
    pub async fn jobs_of_kind(&self, kind: &str) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT id, state, attempts FROM jobs WHERE kind = $1 ORDER BY created_at, id")
            .bind(kind)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((get(r, "id")?, get(r, "state")?, get(r, "attempts")?)))
            .collect()
    }
}
