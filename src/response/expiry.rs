//! Expiry notices: a key's owner and its project's admins hear, through
//! the project's alert channels, that a key stops working soon, at each
//! lead time (7 days and 1 day before, by default), once each.
//!
//! "Once" is a row in `expiry_notices`, written in the transaction that
//! queues the alerts and the `api_key.expiring` audit event, so replicas
//! running the same pass at once and restarts send nothing twice. A key
//! made with less time left than several lead times gets one notice, for
//! the nearest.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::alerts::Alert;
use crate::service::{Caller, KeyService, ServiceError};
use crate::store::{now_ms, ApiKey, Place};

/// Lead times, in days, when unset.
pub const DEFAULT_LEAD_DAYS: [i64; 2] = [7, 1];
const DAY_MS: i64 = 86_400_000;
const PASS_EVERY: Duration = Duration::from_secs(60);

pub struct ExpiryNotices {
    service: Arc<KeyService>,
    /// Longest first.
    lead_days: Vec<i64>,
    wake: Arc<tokio::sync::Notify>,
}

impl ExpiryNotices {
    /// `lead_days`: how long before expiry to tell (any order, each ≥ 1).
    pub fn new(service: Arc<KeyService>, lead_days: &[i64], wake: Arc<tokio::sync::Notify>) -> ExpiryNotices {
        let mut lead_days: Vec<i64> = lead_days.iter().copied().filter(|d| *d >= 1).collect();
        lead_days.sort_unstable_by(|a, b| b.cmp(a));
        lead_days.dedup();
        ExpiryNotices { service, lead_days, wake }
    }

    /// A pass a minute until the task is dropped.
    pub async fn run(self) {
        loop {
            match self.run_once(now_ms()).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(notices = n, "expiry notices queued");
                    self.wake.notify_one();
                }
                Err(e) => tracing::warn!(error = %e, "expiry notices failed; the next pass tries again"),
            }
            tokio::time::sleep(PASS_EVERY).await;
        }
    }

    /// Queues the notices due at `now`; returns how many keys got one.
    pub async fn run_once(&self, now: i64) -> Result<usize, ServiceError> {
        let Some(&longest) = self.lead_days.first() else {
            return Ok(0);
        };
        let store = self.service.store();
        let mut sent = 0;
        for key in store.keys_expiring_before(now, now + longest * DAY_MS).await? {
            let Some(expires_at) = key.expires_at else { continue };
            let due: Vec<i64> = self.lead_days.iter().copied().filter(|d| expires_at - now <= d * DAY_MS).collect();
            if self.notify(&key, expires_at, &due, now).await? {
                sent += 1;
            }
        }
        Ok(sent)
    }

    /// Records every lead time now passed; notifies for the nearest one
    /// not yet sent. False when there was nothing new to say.
    async fn notify(&self, key: &ApiKey, expires_at: i64, due: &[i64], now: i64) -> Result<bool, ServiceError> {
        let store = self.service.store();
        let mut tx = store.begin().await?;
        let mut fresh = Vec::new();
        for days in due {
            if tx.record_expiry_notice(&key.id, *days, now).await? {
                fresh.push(*days);
            }
        }
        let Some(&nearest) = fresh.last() else {
            return Ok(false);
        };
        let project = store.project(&key.project_id).await?;
        let message = Alert {
            event: "api_key.expiring".into(),
            incident_id: String::new(),
            key_id: key.id.clone(),
            key_name: key.name.clone(),
            key_prefix: key.display_prefix.clone(),
            key_last4: key.last4.clone(),
            key_mode: key.mode.as_str().into(),
            project_id: key.project_id.clone(),
            project_name: project.map(|p| p.name).unwrap_or_default(),
            found: Place {
                source_kind: "expiry".into(),
                ..Place::default()
            },
            action: format!("expires_in_{nearest}d"),
            detected_at: crate::time::rfc3339(now),
            expires_at: Some(crate::time::rfc3339(expires_at)),
            issuer: None,
            rule_id: None,
            reason: None,
        };
        let dedupe = format!("expiring:{}:{nearest}d", key.id);
        super::queue_deliveries(&self.service, &mut tx, key, &message, &dedupe, 0, now).await?;
        let data = json!({"expires_at": crate::time::rfc3339(expires_at), "days_before": nearest, "mode": key.mode.as_str()});
        self.service
            .audit(
                &mut tx,
                &Caller::system("expiry-notices"),
                Some(&key.project_id),
                "api_key.expiring",
                &key.id,
                data,
                now,
            )
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}
