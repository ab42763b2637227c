//! The push worker: claims the `push.github` and `push.gitlab` jobs that the
//! webhooks recorded, reads the pushed lines from the code host, and hands
//! every token found to the leak response.
//!
//! The webhook answered 2xx only after its job was committed, so a crash
//! here loses nothing: the claim's lease runs out and the job is taken
//! again. A code host that is down means a retry with backoff, not a loss.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::github::{self, GitHubApi, PushEvent};
use super::gitlab::{self, GitLabApi, PushHook};
use super::{Sighting, SourceError};
use crate::engine::Engine;
use crate::response::alerts::{backoff_ms, work_forever};
use crate::response::LeakResponder;
use crate::store::{now_ms, Job, NewJob, SourceOutcome, Store, StoreError};

pub const JOB_PREFIX: &str = "push.";
pub const GITHUB_JOB: &str = "push.github";
pub const GITLAB_JOB: &str = "push.gitlab";
pub const GITHUB_SOURCE: &str = "github-webhook";
pub const GITLAB_SOURCE: &str = "gitlab-webhook";
const MAX_ATTEMPTS: i64 = 10;
const BATCH: i64 = 16;
const DEFAULT_LEASE_MS: i64 = 60_000;

/// A job's payload: the push and when its webhook arrived.
#[derive(Debug, Serialize, Deserialize)]
struct Queued<E> {
    received_at: i64,
    event: E,
}

/// The job for one GitHub delivery; the delivery id makes redeliveries
/// collapse into it.
pub fn github_job(delivery: &str, event: &PushEvent, now: i64) -> NewJob {
    job(GITHUB_JOB, format!("github:{delivery}"), &Queued { received_at: now, event }, now)
}

pub fn gitlab_job(delivery: &str, hook: &PushHook, now: i64) -> NewJob {
    job(
        GITLAB_JOB,
        format!("gitlab:{delivery}"),
        &Queued {
            received_at: now,
            event: hook,
        },
        now,
    )
}

fn job<E: Serialize>(kind: &str, dedupe_key: String, queued: &Queued<E>, now: i64) -> NewJob {
    NewJob {
        id: crate::service::new_id("job"),
        kind: kind.to_string(),
        payload: serde_json::to_string(queued).unwrap_or_default(),
        dedupe_key: Some(dedupe_key.chars().take(300).collect()),
        max_attempts: MAX_ATTEMPTS,
        run_at: now,
    }
}

/// The code hosts the worker may call; a push from a host that is not
/// configured fails its job with a clear error.
#[derive(Clone, Default)]
pub struct CodeHosts {
    pub github: Option<GitHubApi>,
    pub gitlab: Option<GitLabApi>,
}

pub struct PushWorker {
    store: Store,
    responder: Arc<LeakResponder>,
    engine: Arc<Engine>,
    hosts: CodeHosts,
    wake: Arc<Notify>,
    id: String,
    lease_ms: i64,
}

impl PushWorker {
    pub fn new(responder: Arc<LeakResponder>, engine: Arc<Engine>, hosts: CodeHosts, wake: Arc<Notify>) -> PushWorker {
        PushWorker {
            store: responder.service().store().clone(),
            responder,
            engine,
            hosts,
            wake,
            id: crate::service::new_id("worker"),
            lease_ms: DEFAULT_LEASE_MS,
        }
    }

    /// The name its claims are recorded under.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn with_lease_ms(mut self, lease_ms: i64) -> PushWorker {
        self.lease_ms = lease_ms.max(100);
        self
    }

    /// Works until the task is dropped; a webhook's poke wakes it at once.
    pub async fn run(self) {
        work_forever("push", &self.wake, || self.run_once()).await
    }

    /// Claims and handles one batch; returns how many jobs it handled.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let jobs = self.store.claim_jobs(&self.id, JOB_PREFIX, BATCH, self.lease_ms, now_ms()).await?;
        for job in &jobs {
            self.handle(job).await?;
        }
        Ok(jobs.len())
    }

    async fn handle(&self, job: &Job) -> Result<(), StoreError> {
        let source = if job.kind == GITLAB_JOB { GITLAB_SOURCE } else { GITHUB_SOURCE };
        let result = self.process(job).await;
        let now = now_ms();
        match result {
            Ok(received_at) => {
                self.store.complete_job(&job.id, &self.id, now).await?;
                let outcome = SourceOutcome::Ok { lag_ms: now - received_at };
                self.store.record_source_event(source, source, &outcome, now).await
            }
            Err(error) => {
                let error = error.to_string();
                let retry_at = (job.attempts < job.max_attempts).then(|| now + backoff_ms(job.attempts));
                tracing::warn!(job = %job.id, attempt = job.attempts, dead = retry_at.is_none(), %error, "push scan failed");
                self.store.fail_job(&job.id, &self.id, &error, retry_at, now).await?;
                self.store
                    .record_source_event(source, source, &SourceOutcome::Failed(error), now)
                    .await
            }
        }
    }

    /// Reads and scans the push, reports what it found; returns when the
    /// webhook arrived.
    async fn process(&self, job: &Job) -> Result<i64, SourceError> {
        let bad_payload = |e: serde_json::Error| SourceError::Payload(format!("job {}: {e}", job.id));
        let (received_at, sightings) = match job.kind.as_str() {
            GITHUB_JOB => {
                let queued: Queued<PushEvent> = serde_json::from_str(&job.payload).map_err(bad_payload)?;
                let api = self.hosts.github.as_ref().ok_or_else(|| not_configured("GitHub"))?;
                (queued.received_at, github::push_sightings(api, &self.engine, &queued.event).await?)
            }
            GITLAB_JOB => {
                let queued: Queued<PushHook> = serde_json::from_str(&job.payload).map_err(bad_payload)?;
                let api = self.hosts.gitlab.as_ref().ok_or_else(|| not_configured("GitLab"))?;
                (queued.received_at, gitlab::push_sightings(api, &self.engine, &queued.event).await?)
            }
            other => return Err(SourceError::Payload(format!("unknown job kind {other}"))),
        };
        report_all(&self.responder, &sightings).await?;
        Ok(received_at)
    }
}

fn not_configured(host: &str) -> SourceError {
    SourceError::Config(format!("no {host} API is configured to read the push"))
}

/// Hands every sighting to the leak response, then pokes the alert workers.
pub async fn report_all(responder: &LeakResponder, sightings: &[Sighting]) -> Result<(), SourceError> {
    crate::metrics::Metrics::add(&crate::metrics::METRICS.findings, sightings.len() as u64);
    for sighting in sightings {
        let rule = responder.engine().rule(sighting.finding.rule);
        responder
            .report_found(rule, sighting.finding.secret.expose(), &sighting.place)
            .await?;
    }
    if !sightings.is_empty() {
        responder.wake_alerts();
    }
    Ok(())
}
