//! Tokens keyward did not issue: found → incident → policy → sealed and
//! queued → revoked at the issuer's public endpoint → the security team
//! told.
//!
//! One transaction records the incident and its sighting and, when the
//! deployment's policy for the issuer is `revoke`, seals the token
//! ([`crate::keys::sealed`]) and queues its revocation job. Whoever reported
//! the token hears back only after that commit, so a crash loses nothing.
//! The [`RevocationWorker`] opens the token, calls the issuer
//! ([`super::issuers`]), and records the verdict, deleting the sealed token
//! in the same transaction once the job ends. A token revoked, or refused
//! as unknown, is never sent again: the incident stays, the job is done.
//! GitHub takes up to 1,000 tokens a call within 60 calls an hour, so its
//! jobs are gathered for a moment and sent together.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::alerts::{self, backoff_ms, work_forever, Alert, THIRD_PARTY_EVENT};
use super::issuers::{Endpoints, Issuers, Verdict};
use crate::engine::rules::Revoker;
use crate::engine::Rule;
use crate::service::{new_id, KeyService, ServiceError};
use crate::store::{now_ms, Job, NewJob, Place, Revocation, RevocationStatus, Store, StoreError, ThirdPartyIncident, Tx};

/// Jobs of issuers called one token at a time: `revoke.<issuer>`.
pub const JOB_PREFIX: &str = "revoke.";
/// GitHub's jobs, claimed a thousand at a time.
pub const GITHUB_JOB: &str = "revoke-batch.github";
const MAX_ATTEMPTS: i64 = 8;
const BATCH: i64 = 16;
const DEFAULT_LEASE_MS: i64 = 60_000;
/// GitHub's jobs are gathered into one call until none has arrived for
/// this long (or a thousand are ready, or the first has waited
/// [`MOST_GATHER_MS`]), so that a push full of tokens costs one of the
/// hour's 60 calls, not one each.
const QUIET_MS: i64 = 500;
const MOST_GATHER_MS: i64 = 5_000;
const GITHUB_CALLS_PER_HOUR: usize = 60;
const HOUR_MS: i64 = 3_600_000;

/// What the deployment does with another issuer's leaked token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Record the incident and tell the security team.
    Report,
    /// Also revoke it at its issuer, where the issuer publishes a way.
    Revoke,
}

impl Policy {
    pub fn parse(text: &str) -> Option<Policy> {
        match text.trim() {
            "report" => Some(Policy::Report),
            "revoke" => Some(Policy::Revoke),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Report => "report",
            Policy::Revoke => "revoke",
        }
    }
}

/// The deployment's third-party settings: its policy (with an override per
/// issuer) and where each issuer's API lives.
#[derive(Debug, Clone)]
pub struct ThirdPartySettings {
    pub policy: Policy,
    /// Issuer name (`github`, `slack`, …) to its own policy.
    pub overrides: BTreeMap<String, Policy>,
    pub endpoints: Endpoints,
}

impl Default for ThirdPartySettings {
    fn default() -> Self {
        ThirdPartySettings {
            policy: Policy::Report,
            overrides: BTreeMap::new(),
            endpoints: Endpoints::public("https://api.github.com", "https://gitlab.com/api/v4"),
        }
    }
}

impl ThirdPartySettings {
    pub fn policy_for(&self, revoker: Revoker) -> Policy {
        self.overrides.get(revoker.as_str()).copied().unwrap_or(self.policy)
    }
}

/// The job's payload: which incident's held token to revoke.
#[derive(Debug, Serialize, Deserialize)]
struct Queued {
    incident_id: String,
    issuer: String,
}

/// What a report of a third-party token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    pub incident_id: String,
    pub status: RevocationStatus,
    pub new_incident: bool,
}

/// The first characters shown of a token: the rule's prefix it starts
/// with, else its first four; and its last four.
pub fn shown_parts(rule: &Rule, token: &str) -> (String, String) {
    let prefix = rule
        .prefixes
        .iter()
        .filter(|p| token.starts_with(p.as_str()) && p.len() < token.len())
        .max_by_key(|p| p.len())
        .cloned()
        .unwrap_or_else(|| token.chars().take(4.min(token.chars().count() / 2)).collect());
    let last4: String = token
        .chars()
        .rev()
        .take(4.min(token.chars().count() / 4))
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    (prefix.chars().take(64).collect(), last4)
}

/// Why a token of `rule` is not to be revoked, if it is not: its issuer
/// publishes no way, or this kind of token cannot be, or it is meant to be
/// public, or the deployment's policy says report.
fn not_revoked_because(rule: &Rule, token: &str, settings: &ThirdPartySettings, issuers: &Issuers) -> Option<String> {
    let Some(revoker) = rule.revoke else {
        return Some(format!("{} publishes no public way to revoke a leaked token", rule.family));
    };
    if rule.publishable {
        return Some("a publishable token, meant to be public".into());
    }
    if rule.is_test_mode(token) {
        return Some("a test-mode token".into());
    }
    if let Some(why) = issuers.unsupported(revoker, token) {
        return Some(why);
    }
    (settings.policy_for(revoker) == Policy::Report).then(|| format!("the deployment's policy for {} is report", revoker.as_str()))
}

/// Records a third-party token seen at `place` and, policy permitting,
/// queues its revocation: all in one transaction.
pub(super) async fn report(
    service: &KeyService,
    settings: &ThirdPartySettings,
    issuers: &Issuers,
    rule: &Rule,
    token: &str,
    place: &Place,
) -> Result<Reported, ServiceError> {
    let fingerprinter = service.verifier().fingerprinter();
    let fingerprint = fingerprinter.fingerprint(token).to_hex();
    let now = now_ms();
    let store = service.store();
    let mut tx = store.begin().await?;
    if let Some(existing) = tx.third_party_incident_by_fingerprint(&fingerprint).await? {
        tx.touch_third_party_incident(&existing.id, now).await?;
        tx.record_third_party_sighting(&existing.id, place, now).await?;
        tx.commit().await?;
        return Ok(Reported {
            incident_id: existing.id,
            status: existing.revocation.status,
            new_incident: false,
        });
    }
    let why_not = not_revoked_because(rule, token, settings, issuers);
    let (display_prefix, last4) = shown_parts(rule, token);
    let issuer = rule.revoke.map_or("", Revoker::as_str);
    let incident = ThirdPartyIncident {
        id: new_id("tpi"),
        fingerprint,
        rule_id: rule.id.clone(),
        family: rule.family.clone(),
        issuer: issuer.to_string(),
        display_prefix,
        last4,
        revocation: Revocation {
            status: if why_not.is_some() {
                RevocationStatus::NotSupported
            } else {
                RevocationStatus::Pending
            },
            attempts: 0,
            at: now,
            next_attempt_at: why_not.is_none().then_some(now),
            reason: why_not.clone().unwrap_or_default(),
        },
        first_place: place.clone(),
        first_seen: now,
        last_seen: now,
        seen_count: 1,
        alerted_at: None,
    };
    tx.insert_third_party_incident(&incident).await?;
    tx.record_third_party_sighting(&incident.id, place, now).await?;
    if why_not.is_none() {
        tx.hold_token(&incident.id, &fingerprinter.sealer().seal(token, &incident.id), now)
            .await?;
        tx.enqueue(&revocation_job(&incident, rule, now), now).await?;
    } else {
        alert_once(service, &mut tx, &incident, &rule.name, now).await?;
    }
    tx.commit().await?;
    Ok(Reported {
        incident_id: incident.id,
        status: incident.revocation.status,
        new_incident: true,
    })
}

fn revocation_job(incident: &ThirdPartyIncident, rule: &Rule, now: i64) -> NewJob {
    let kind = match rule.revoke {
        Some(Revoker::Github) => GITHUB_JOB.to_string(),
        _ => format!("{JOB_PREFIX}{}", incident.issuer),
    };
    NewJob {
        id: new_id("job"),
        kind,
        payload: serde_json::to_string(&Queued {
            incident_id: incident.id.clone(),
            issuer: incident.issuer.clone(),
        })
        .expect("the payload serialises"),
        dedupe_key: Some(format!("revoke:{}", incident.id)),
        max_attempts: MAX_ATTEMPTS,
        run_at: now,
    }
}

/// Queues the incident's alert on the deployment's channels, once.
async fn alert_once(service: &KeyService, tx: &mut Tx<'_>, incident: &ThirdPartyIncident, name: &str, now: i64) -> Result<(), StoreError> {
    if !tx.claim_third_party_alert(&incident.id, now).await? {
        return Ok(());
    }
    let message = Alert {
        event: THIRD_PARTY_EVENT.into(),
        incident_id: incident.id.clone(),
        key_id: String::new(),
        key_name: name.to_string(),
        key_prefix: incident.display_prefix.clone(),
        key_last4: incident.last4.clone(),
        key_mode: String::new(),
        project_id: String::new(),
        project_name: String::new(),
        found: incident.first_place.clone(),
        action: incident.revocation.status.as_str().into(),
        detected_at: crate::time::rfc3339(incident.first_seen),
        expires_at: None,
        issuer: (!incident.issuer.is_empty()).then(|| incident.issuer.clone()),
        rule_id: Some(incident.rule_id.clone()),
        reason: (!incident.revocation.reason.is_empty()).then(|| incident.revocation.reason.clone()),
    };
    let store = service.store();
    let settings = store.deployment_alert_settings().await?;
    let dedupe = |channel: &str| format!("alert:{}:{channel}", incident.id);
    alerts::queue(
        tx,
        settings,
        service.email_alerts(),
        store.deployment_owner_emails(),
        &message,
        dedupe,
        now,
    )
    .await
}

/// Calls the issuers for the queued revocations and records what they said.
pub struct RevocationWorker {
    service: Arc<KeyService>,
    issuers: Issuers,
    rules: Arc<Vec<Rule>>,
    wake: Arc<Notify>,
    alerts: Arc<Notify>,
    id: String,
    lease_ms: i64,
    /// When this replica last called GitHub's endpoint, for its hourly budget.
    github_calls: Mutex<VecDeque<i64>>,
}

impl RevocationWorker {
    pub fn new(service: Arc<KeyService>, issuers: Issuers, rules: Arc<Vec<Rule>>, wake: Arc<Notify>, alerts: Arc<Notify>) -> Self {
        RevocationWorker {
            service,
            issuers,
            rules,
            wake,
            alerts,
            id: new_id("worker"),
            lease_ms: DEFAULT_LEASE_MS,
            github_calls: Mutex::new(VecDeque::new()),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn with_lease_ms(mut self, lease_ms: i64) -> Self {
        self.lease_ms = lease_ms.max(100);
        self
    }

    fn store(&self) -> &Store {
        self.service.store()
    }

    pub async fn run(self) {
        work_forever("revoke", &self.wake.clone(), || self.run_once()).await
    }

    /// One round: a GitHub batch when one is due, then the other issuers'
    /// jobs, called side by side. Returns how many jobs it handled.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let mut handled = self.github_round().await?;
        let jobs = self
            .store()
            .claim_jobs(&self.id, JOB_PREFIX, BATCH, self.lease_ms, now_ms())
            .await?;
        let calls = jobs.iter().map(|job| self.handle_one(job));
        for result in futures_util::future::join_all(calls).await {
            result?;
        }
        handled += jobs.len();
        if handled > 0 {
            self.alerts.notify_one();
        }
        Ok(handled)
    }

    async fn handle_one(&self, job: &Job) -> Result<(), StoreError> {
        let Some((incident_id, revoker, token)) = self.open(job).await? else {
            return Ok(());
        };
        let verdict = self.issuers.revoke(revoker, &[token.as_str()]).await.remove(0);
        self.record(job, &incident_id, verdict).await
    }

    /// Sends the ready GitHub jobs (up to 1,000) in one call, once they
    /// have stopped arriving and the hour's budget allows.
    async fn github_round(&self) -> Result<usize, StoreError> {
        let now = now_ms();
        let Some(ready) = self.store().ready_jobs(GITHUB_JOB, now).await? else {
            return Ok(0);
        };
        let per_call = Issuers::batch_size(Revoker::Github);
        let gathering = (ready.count as usize) < per_call && now - ready.last < QUIET_MS && now - ready.first < MOST_GATHER_MS;
        if gathering {
            return Ok(0);
        }
        if !self.github_budget_allows(now) {
            return Ok(0);
        }
        let jobs = self
            .store()
            .claim_jobs(&self.id, GITHUB_JOB, per_call as i64, self.lease_ms, now)
            .await?;
        let mut opened = Vec::with_capacity(jobs.len());
        for job in &jobs {
            if let Some((incident_id, _, token)) = self.open(job).await? {
                opened.push((job, incident_id, token));
            }
        }
        if opened.is_empty() {
            return Ok(jobs.len());
        }
        self.github_calls.lock().unwrap_or_else(|e| e.into_inner()).push_back(now);
        let tokens: Vec<&str> = opened.iter().map(|(_, _, t)| t.as_str()).collect();
        let verdicts = self.issuers.revoke(Revoker::Github, &tokens).await;
        for ((job, incident_id, _), verdict) in opened.iter().zip(verdicts) {
            self.record(job, incident_id, verdict).await?;
        }
        Ok(jobs.len())
    }

    fn github_budget_allows(&self, now: i64) -> bool {
        let mut calls = self.github_calls.lock().unwrap_or_else(|e| e.into_inner());
        while calls.front().is_some_and(|&t| now - t >= HOUR_MS) {
            calls.pop_front();
        }
        calls.len() < GITHUB_CALLS_PER_HOUR
    }

    /// The job's incident, issuer and token. A job that cannot be read, or
    /// whose token is no longer held, ends here as failed.
    async fn open(&self, job: &Job) -> Result<Option<(String, Revoker, String)>, StoreError> {
        let queued: Queued = match serde_json::from_str(&job.payload) {
            Ok(q) => q,
            Err(e) => {
                self.store()
                    .fail_job(&job.id, &self.id, &format!("unreadable payload: {e}"), None, now_ms())
                    .await?;
                return Ok(None);
            }
        };
        let revoker = Revoker::parse(&queued.issuer);
        let held = self.store().held_token(&queued.incident_id).await?;
        let token = held.map(|h| self.service.verifier().fingerprinter().open_sealed(&h, &queued.incident_id));
        match (revoker, token) {
            (Some(revoker), Some(Ok(token))) => Ok(Some((queued.incident_id, revoker, token))),
            (_, Some(Err(e))) => {
                self.record(
                    job,
                    &queued.incident_id,
                    Verdict::Failed(format!("the held token cannot be opened: {e}")),
                )
                .await?;
                Ok(None)
            }
            (None, _) => {
                self.record(
                    job,
                    &queued.incident_id,
                    Verdict::Failed(format!("unknown issuer {:?}", queued.issuer)),
                )
                .await?;
                Ok(None)
            }
            (_, None) => {
                self.record(job, &queued.incident_id, Verdict::Failed("the token is no longer held".into()))
                    .await?;
                Ok(None)
            }
        }
    }

    /// Writes the verdict: a final one ends the job, drops the held token
    /// and alerts the security team, in one transaction; a retry waits.
    async fn record(&self, job: &Job, incident_id: &str, verdict: Verdict) -> Result<(), StoreError> {
        let now = now_ms();
        let gave_up = job.attempts >= job.max_attempts;
        let (status, reason, retry_at) = match verdict {
            Verdict::Revoked => (RevocationStatus::Revoked, String::new(), None),
            Verdict::Refused(reason) => (RevocationStatus::Refused, reason, None),
            Verdict::Failed(reason) => (RevocationStatus::Failed, reason, None),
            Verdict::Retry { reason, .. } if gave_up => (
                RevocationStatus::Failed,
                format!("{reason}; gave up after {} attempts", job.attempts),
                None,
            ),
            Verdict::Retry {
                after_ms: Some(after),
                reason,
            } => (RevocationStatus::Pending, reason, Some(now + after.max(0))),
            Verdict::Retry { after_ms: None, reason } => (RevocationStatus::Failed, reason, Some(now + backoff_ms(job.attempts))),
        };
        let revocation = Revocation {
            status,
            attempts: job.attempts,
            at: now,
            next_attempt_at: retry_at,
            reason: reason.clone(),
        };
        let mut tx = self.store().begin().await?;
        tx.set_revocation(incident_id, &revocation).await?;
        match retry_at {
            Some(at) => tx.fail_job(&job.id, &self.id, &reason, Some(at), now).await?,
            None => {
                tx.drop_held_token(incident_id).await?;
                if status == RevocationStatus::Failed {
                    tx.fail_job(&job.id, &self.id, &reason, None, now).await?;
                } else {
                    tx.complete_job(&job.id, &self.id, now).await?;
                }
                if let Some(incident) = self.store().third_party_incident(incident_id).await? {
                    let incident = ThirdPartyIncident { revocation, ..incident };
                    let name = self
                        .rules
                        .iter()
                        .find(|r| r.id == incident.rule_id)
                        .map_or(&incident.family, |r| &r.name)
                        .clone();
                    alert_once(&self.service, &mut tx, &incident, &name, now).await?;
                }
            }
        }
        tx.commit().await?;
        if status == RevocationStatus::Revoked {
            crate::metrics::Metrics::add(&crate::metrics::METRICS.third_party_revoked, 1);
        }
        tracing::info!(
            incident = incident_id,
            job = %job.id,
            attempt = job.attempts,
            status = status.as_str(),
            retrying = retry_at.is_some(),
            %reason,
            "third-party revocation"
        );
        Ok(())
    }
}
