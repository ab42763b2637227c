//! The sources' rows: a cursor each (so a restart resumes where it
//! stopped) and their health (events, errors, lag) for the status API and
//! `/metrics`.

use sqlx::any::AnyRow;

use super::{get, Store, StoreError};

/// How a source is doing, as the status API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SourceStatus {
    pub name: String,
    pub kind: String,
    pub events: i64,
    pub errors: i64,
    pub last_event_at: Option<i64>,
    pub last_ok_at: Option<i64>,
    pub lag_ms: Option<i64>,
    pub last_error: String,
}

/// What one round of a source's work came to.
#[derive(Debug, Clone)]
pub enum SourceOutcome {
    /// Read cleanly; `lag_ms` from the event's arrival to its handling.
    Ok {
        lag_ms: i64,
    },
    Failed(String),
}

fn from_row(row: &AnyRow) -> Result<SourceStatus, StoreError> {
    Ok(SourceStatus {
        name: get(row, "name")?,
        kind: get(row, "kind")?,
        events: get(row, "events")?,
        errors: get(row, "errors")?,
        last_event_at: get(row, "last_event_at")?,
        last_ok_at: get(row, "last_ok_at")?,
        lag_ms: get(row, "lag_ms")?,
        last_error: get(row, "last_error")?,
    })
}

impl Store {
    /// The cursor a source saved last, or `None` for a new source.
    pub async fn source_cursor(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT cursor FROM source_state WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| get(&r, "cursor")).transpose()
    }

    pub async fn save_source_cursor(&self, name: &str, kind: &str, cursor: &str, now: i64) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO source_state (name, kind, cursor, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(kind)
        .bind(cursor)
        .bind(now)
        .execute(&mut *tx.inner)
        .await?;
        tx.commit().await
    }

    /// Counts one event of a source and how it went.
    pub async fn record_source_event(&self, name: &str, kind: &str, outcome: &SourceOutcome, now: i64) -> Result<(), StoreError> {
        let (ok, lag, error) = match outcome {
            SourceOutcome::Ok { lag_ms } => (1i64, Some((*lag_ms).max(0)), String::new()),
            SourceOutcome::Failed(e) => (0, None, e.chars().take(1000).collect()),
        };
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO source_state (name, kind, events, errors, last_event_at, last_ok_at, lag_ms, last_error, updated_at) \
             VALUES ($1, $2, 1, 1 - $3, $4, CASE WHEN $3 = 1 THEN $4 ELSE NULL END, $5, $6, $4) \
             ON CONFLICT (name) DO UPDATE SET events = source_state.events + 1, \
             errors = source_state.errors + 1 - $3, last_event_at = $4, \
             last_ok_at = CASE WHEN $3 = 1 THEN $4 ELSE source_state.last_ok_at END, \
             lag_ms = COALESCE($5, source_state.lag_ms), \
             last_error = CASE WHEN $3 = 1 THEN source_state.last_error ELSE $6 END, updated_at = $4",
        )
        .bind(name)
        .bind(kind)
        .bind(ok)
        .bind(now)
        .bind(lag)
        .bind(error)
        .execute(&mut *tx.inner)
        .await?;
        tx.commit().await
    }

    pub async fn source_statuses(&self) -> Result<Vec<SourceStatus>, StoreError> {
        let rows =
            sqlx::query("SELECT name, kind, events, errors, last_event_at, last_ok_at, lag_ms, last_error FROM source_state ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(from_row).collect()
    }
}
