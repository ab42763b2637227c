//! Third-party tokens: their incidents (one per token), the places each was
//! seen, the sealed copy a pending revocation holds, and the deployment's
//! own alert channels.

use sqlx::any::AnyRow;

use super::incidents::{alert_settings_from_row, place_from_row, SightingTable};
use super::{get, AlertSettings, Place, Store, StoreError, Tx};
use crate::keys::sealed::HeldToken;

const COLUMNS: &str = "id, fingerprint, rule_id, family, issuer, display_prefix, last4, status, attempts, status_at, \
    next_attempt_at, reason, source_kind, repository, commit_sha, path, line, url, first_seen, last_seen, seen_count, alerted_at";

/// Where a third-party token's revocation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationStatus {
    Pending,
    Revoked,
    Refused,
    NotSupported,
    Failed,
}

impl RevocationStatus {
    pub const ALL: [RevocationStatus; 5] = [
        RevocationStatus::Pending,
        RevocationStatus::Revoked,
        RevocationStatus::Refused,
        RevocationStatus::NotSupported,
        RevocationStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RevocationStatus::Pending => "pending",
            RevocationStatus::Revoked => "revoked",
            RevocationStatus::Refused => "refused",
            RevocationStatus::NotSupported => "not_supported",
            RevocationStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<RevocationStatus> {
        RevocationStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// Where a revocation stands, as one update writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub status: RevocationStatus,
    pub attempts: i64,
    pub at: i64,
    /// When the next attempt is due, while one is.
    pub next_attempt_at: Option<i64>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThirdPartyIncident {
    pub id: String,
    pub fingerprint: String,
    pub rule_id: String,
    pub family: String,
    /// The issuer that can revoke it; empty when none publishes a way.
    pub issuer: String,
    pub display_prefix: String,
    pub last4: String,
    pub revocation: Revocation,
    pub first_place: Place,
    pub first_seen: i64,
    pub last_seen: i64,
    pub seen_count: i64,
    pub alerted_at: Option<i64>,
}

fn from_row(row: &AnyRow) -> Result<ThirdPartyIncident, StoreError> {
    let status: String = get(row, "status")?;
    Ok(ThirdPartyIncident {
        id: get(row, "id")?,
        fingerprint: get(row, "fingerprint")?,
        rule_id: get(row, "rule_id")?,
        family: get(row, "family")?,
        issuer: get(row, "issuer")?,
        display_prefix: get(row, "display_prefix")?,
        last4: get(row, "last4")?,
        revocation: Revocation {
            status: RevocationStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("revocation status {status:?}")))?,
            attempts: get(row, "attempts")?,
            at: get(row, "status_at")?,
            next_attempt_at: get(row, "next_attempt_at")?,
            reason: get(row, "reason")?,
        },
        first_place: place_from_row(row)?,
        first_seen: get(row, "first_seen")?,
        last_seen: get(row, "last_seen")?,
        seen_count: get(row, "seen_count")?,
        alerted_at: get(row, "alerted_at")?,
    })
}

impl Store {
    /// Third-party incidents, newest sighting first, optionally of one
    /// revocation status.
    pub async fn third_party_incidents(&self, status: Option<RevocationStatus>) -> Result<Vec<ThirdPartyIncident>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM third_party_incidents WHERE ($1 = '' OR status = $1) ORDER BY last_seen DESC, id");
        let rows = sqlx::query(&sql)
            .bind(status.map_or("", RevocationStatus::as_str))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn third_party_incident(&self, id: &str) -> Result<Option<ThirdPartyIncident>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM third_party_incidents WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Every place a third-party token was seen, oldest first.
    pub async fn third_party_sightings(&self, incident_id: &str) -> Result<Vec<(Place, i64)>, StoreError> {
        self.places_seen(SightingTable::ThirdParty, incident_id).await
    }

    pub async fn held_token(&self, incident_id: &str) -> Result<Option<HeldToken>, StoreError> {
        let row = sqlx::query("SELECT nonce, sealed FROM held_tokens WHERE incident_id = $1")
            .bind(incident_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(HeldToken {
                nonce: get(&r, "nonce")?,
                sealed: get(&r, "sealed")?,
            })
        })
        .transpose()
    }

    /// How many tokens wait, sealed, for their issuer.
    pub async fn held_token_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM held_tokens").fetch_one(&self.pool).await?)
    }

    /// The deployment's alert channels; nothing is set up at first.
    pub async fn deployment_alert_settings(&self) -> Result<AlertSettings, StoreError> {
        let row = sqlx::query("SELECT webhook_url, webhook_secret, slack_webhook_url, email FROM deployment_alert_settings WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map_or(Ok(AlertSettings::default()), alert_settings_from_row)
    }

    /// The emails of the deployment's owners.
    pub async fn deployment_owner_emails(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT email FROM users WHERE deployment_owner = 1 ORDER BY email")
                .fetch_all(&self.pool)
                .await?,
        )
    }
}

impl Tx<'_> {
    pub async fn third_party_incident_by_fingerprint(&mut self, fingerprint: &str) -> Result<Option<ThirdPartyIncident>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM third_party_incidents WHERE fingerprint = $1");
        let row = sqlx::query(&sql).bind(fingerprint).fetch_optional(&mut *self.inner).await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn insert_third_party_incident(&mut self, incident: &ThirdPartyIncident) -> Result<(), StoreError> {
        let p = &incident.first_place;
        let r = &incident.revocation;
        sqlx::query(
            "INSERT INTO third_party_incidents (id, fingerprint, rule_id, family, issuer, display_prefix, last4, status, attempts, \
             status_at, next_attempt_at, reason, source_kind, repository, commit_sha, path, line, url, first_seen, last_seen, \
             seen_count, alerted_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)",
        )
        .bind(&incident.id)
        .bind(&incident.fingerprint)
        .bind(&incident.rule_id)
        .bind(&incident.family)
        .bind(&incident.issuer)
        .bind(&incident.display_prefix)
        .bind(&incident.last4)
        .bind(r.status.as_str())
        .bind(r.attempts)
        .bind(r.at)
        .bind(r.next_attempt_at)
        .bind(&r.reason)
        .bind(&p.source_kind)
        .bind(&p.repository)
        .bind(&p.commit_sha)
        .bind(&p.path)
        .bind(p.line)
        .bind(&p.url)
        .bind(incident.first_seen)
        .bind(incident.last_seen)
        .bind(incident.seen_count)
        .bind(incident.alerted_at)
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    /// Another sighting of a known third-party token.
    pub async fn touch_third_party_incident(&mut self, id: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE third_party_incidents SET last_seen = $1, seen_count = seen_count + 1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    pub async fn record_third_party_sighting(&mut self, incident_id: &str, place: &Place, now: i64) -> Result<(), StoreError> {
        self.record_place(SightingTable::ThirdParty, incident_id, place, now).await
    }

    pub async fn hold_token(&mut self, incident_id: &str, held: &HeldToken, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO held_tokens (incident_id, nonce, sealed, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (incident_id) DO NOTHING",
        )
        .bind(incident_id)
        .bind(&held.nonce)
        .bind(&held.sealed)
        .bind(now)
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    pub async fn drop_held_token(&mut self, incident_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM held_tokens WHERE incident_id = $1")
            .bind(incident_id)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    pub async fn set_revocation(&mut self, incident_id: &str, revocation: &Revocation) -> Result<(), StoreError> {
        let reason: String = revocation.reason.chars().take(1000).collect();
        sqlx::query(
            "UPDATE third_party_incidents SET status = $1, attempts = $2, status_at = $3, next_attempt_at = $4, reason = $5 \
             WHERE id = $6",
        )
        .bind(revocation.status.as_str())
        .bind(revocation.attempts)
        .bind(revocation.at)
        .bind(revocation.next_attempt_at)
        .bind(reason)
        .bind(incident_id)
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    /// Marks the incident's alert as queued; false when it already was, so
    /// the security team hears of each incident once.
    pub async fn claim_third_party_alert(&mut self, incident_id: &str, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE third_party_incidents SET alerted_at = $1 WHERE id = $2 AND alerted_at IS NULL")
            .bind(now)
            .bind(incident_id)
            .execute(&mut *self.inner)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn set_deployment_alert_settings(&mut self, settings: &AlertSettings, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO deployment_alert_settings (id, webhook_url, webhook_secret, slack_webhook_url, email, updated_at) \
             VALUES (1, $1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET webhook_url = excluded.webhook_url, \
             webhook_secret = excluded.webhook_secret, slack_webhook_url = excluded.slack_webhook_url, email = excluded.email, \
             updated_at = excluded.updated_at",
        )
        .bind(&settings.webhook_url)
        .bind(&settings.webhook_secret)
        .bind(&settings.slack_webhook_url)
        .bind(i64::from(settings.email))
        .bind(now)
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }
}
