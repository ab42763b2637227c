//! The audit log, hash-chained: each event's hash covers the previous
//! event's hash and the event's own canonical JSON, so editing, deleting or
//! reordering a row breaks every link after it.

use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;

use super::{get, Store, StoreError, Tx};

pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const COLUMNS: &str = "seq, id, project_id, actor, action, target, ip, data, created_at, prev_hash, hash";

/// Rows read per round trip while walking the whole chain.
const PAGE: i64 = 1000;

#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    pub id: String,
    pub project_id: Option<String>,
    /// `key:<id>`, `user:<id>` or `system:<component>`.
    pub actor: String,
    /// `api_key.created`, `api_key.revoked`, …
    pub action: String,
    pub target: String,
    pub ip: String,
    /// Mode, scopes, reason: never a secret.
    pub data: serde_json::Value,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditEvent {
    pub seq: i64,
    pub id: String,
    pub project_id: Option<String>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub ip: String,
    pub data: serde_json::Value,
    pub created_at: i64,
    pub prev_hash: String,
    pub hash: String,
}

/// The first place the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub seq: i64,
    pub problem: String,
}

impl AuditEvent {
    /// The event without its hashes, as canonical JSON (keys sorted).
    fn canonical(&self) -> String {
        serde_json::json!({
            "seq": self.seq,
            "id": self.id,
            "project_id": self.project_id,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "ip": self.ip,
            "data": self.data,
            "created_at": self.created_at,
        })
        .to_string()
    }

    pub fn expected_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.prev_hash.as_bytes());
        h.update(b"\n");
        h.update(self.canonical().as_bytes());
        hex::encode(h.finalize())
    }
}

fn from_row(row: &AnyRow) -> Result<AuditEvent, StoreError> {
    let data: String = get(row, "data")?;
    Ok(AuditEvent {
        seq: get(row, "seq")?,
        id: get(row, "id")?,
        project_id: get(row, "project_id")?,
        actor: get(row, "actor")?,
        action: get(row, "action")?,
        target: get(row, "target")?,
        ip: get(row, "ip")?,
        data: serde_json::from_str(&data).map_err(|_| StoreError::Corrupt(format!("audit data of {data:?}")))?,
        created_at: get(row, "created_at")?,
        prev_hash: get(row, "prev_hash")?,
        hash: get(row, "hash")?,
    })
}

impl Tx<'_> {
    /// Appends to the chain. Bumping the head row first serialises
    /// appenders, so two transactions never chain onto the same event.
    pub async fn append_audit(&mut self, event: NewAuditEvent) -> Result<AuditEvent, StoreError> {
        let head = sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
            .fetch_one(&mut *self.inner)
            .await?;
        let mut stored = AuditEvent {
            seq: get(&head, "seq")?,
            id: event.id,
            project_id: event.project_id,
            actor: event.actor,
            action: event.action,
            target: event.target,
            ip: event.ip,
            data: event.data,
            created_at: event.created_at,
            prev_hash: get(&head, "hash")?,
            hash: String::new(),
        };
        stored.hash = stored.expected_hash();
        sqlx::query(
            "INSERT INTO audit_events (seq, id, project_id, actor, action, target, ip, data, created_at, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(stored.seq)
        .bind(&stored.id)
        .bind(stored.project_id.as_deref())
        .bind(&stored.actor)
        .bind(&stored.action)
        .bind(&stored.target)
        .bind(&stored.ip)
        .bind(stored.data.to_string())
        .bind(stored.created_at)
        .bind(&stored.prev_hash)
        .bind(&stored.hash)
        .execute(&mut *self.inner)
        .await?;
        sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
            .bind(&stored.hash)
            .execute(&mut *self.inner)
            .await?;
        Ok(stored)
    }
}

impl Store {
    /// A project's events, oldest first, optionally only one action.
    pub async fn audit_events(&self, project_id: &str, action: Option<&str>, limit: i64) -> Result<Vec<AuditEvent>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM audit_events WHERE project_id = $1 AND ($2 = '' OR action = $2) ORDER BY seq LIMIT $3");
        let rows = sqlx::query(&sql)
            .bind(project_id)
            .bind(action.unwrap_or(""))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// How many events the chain holds: every change writes one, so a
    /// request that changed nothing leaves it where it was.
    pub async fn audit_length(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT seq FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Walks the whole chain and returns the first broken link, if any.
    pub async fn verify_audit_chain(&self) -> Result<(u64, Option<ChainBreak>), StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2");
        let (mut last_seq, mut last_hash, mut checked) = (0i64, GENESIS_HASH.to_string(), 0u64);
        loop {
            let rows = sqlx::query(&sql).bind(last_seq).bind(PAGE).fetch_all(&self.pool).await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let event = from_row(row)?;
                if let Some(problem) = link_problem(&event, last_seq, &last_hash) {
                    return Ok((checked, Some(ChainBreak { seq: event.seq, problem })));
                }
                (last_seq, last_hash) = (event.seq, event.hash);
                checked += 1;
            }
        }
        let head: String = sqlx::query_scalar("SELECT hash FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        if head != last_hash {
            let problem = "the chain ends before the recorded head: events were removed from the end".to_string();
            return Ok((
                checked,
                Some(ChainBreak {
                    seq: last_seq + 1,
                    problem,
                }),
            ));
        }
        Ok((checked, None))
    }
}

fn link_problem(event: &AuditEvent, last_seq: i64, last_hash: &str) -> Option<String> {
    if event.seq != last_seq + 1 {
        return Some(format!("sequence jumps from {last_seq} to {}: events were removed", event.seq));
    }
    if event.prev_hash != last_hash {
        return Some("prev_hash does not match the previous event's hash".to_string());
    }
    if event.hash != event.expected_hash() {
        return Some("the event's content does not match its hash: the row was edited".to_string());
    }
    None
}
