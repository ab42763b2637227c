//! `POST /webhooks/github` and `POST /webhooks/gitlab`: the signature or
//! token is checked over the raw body, then the push is recorded as a job
//! and answered with 202. The answer goes out only after the job is
//! committed, so a 2xx means the push will be read. A redelivery is
//! acknowledged with 200 `duplicate` and not queued again, whether it
//! carries the same delivery id or a new one: the delivery id is not
//! covered by GitHub's signature, so a push is also known by its content
//! (repository, before, after and the SHA-256 of the signed body) for a
//! replay window.
//!
//! GitHub does not retry a delivery that failed, so a signed push is never
//! turned away for its rate: the signature is checked first, and only a
//! delivery whose signature fails counts against the per-address limit.
//! What bounds a flood of validly signed pushes is the queue: past
//! [`DEFAULT_QUEUE_LIMIT`] push jobs waiting, a delivery is answered 503
//! with `Retry-After`, and `keyward_webhooks_shed_total` counts it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use super::{AppError, AppState};
use crate::service::ServiceError;
use crate::sources::github::{self, PushEvent};
use crate::sources::gitlab::{self, PushHook};
use crate::sources::pushes;
use crate::store::{now_ms, NewJob};

/// GitHub caps a delivery at 25 MB, but a push payload lists at most 20
/// commits and no diffs; 5 MiB is ample and bounds what one request holds.
pub const MAX_WEBHOOK_BODY: usize = 5 << 20;

/// How long a push body is remembered: longer than code hosts keep
/// deliveries for manual redelivery (GitHub: 3 days).
pub const REPLAY_WINDOW_MS: i64 = 7 * 86_400_000;

/// Push jobs that may wait before a new delivery is shed (503).
pub const DEFAULT_QUEUE_LIMIT: i64 = 10_000;
/// What a shed delivery is told to wait.
const SHED_RETRY_AFTER_SECS: u64 = 30;

/// The webhook secrets, the handle that wakes the push worker, and how
/// many push jobs may wait (`KEYWARD_WEBHOOK_QUEUE_LIMIT`).
#[derive(Clone, Default)]
pub struct Webhooks {
    pub github_secret: Option<String>,
    pub gitlab_secret: Option<String>,
    pub wake: Arc<Notify>,
    /// `None`: [`DEFAULT_QUEUE_LIMIT`].
    pub queue_limit: Option<i64>,
}

type Answer = (StatusCode, Json<Value>);

/// A GitHub push webhook, signed with `X-Hub-Signature-256`.
#[utoipa::path(post, path = "/webhooks/github",
    params(("X-Hub-Signature-256" = String, Header), ("X-GitHub-Event" = String, Header), ("X-GitHub-Delivery" = String, Header)),
    request_body(content = Object, description = "GitHub's push (or ping) event"),
    responses((status = 202, description = "queued (or an event type that is ignored)", body = Object),
        (status = 200, description = "pong, or a duplicate of a delivery already recorded", body = Object), super::error::Errors))]
pub async fn github(State(s): State<AppState>, extensions: Extensions, headers: HeaderMap, body: Bytes) -> Result<Answer, AppError> {
    let secret = s
        .webhooks
        .github_secret
        .as_deref()
        .ok_or_else(|| refused(&s, &extensions, not_configured()))?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signed = header(github::SIGNATURE_HEADER).is_some_and(|sig| github::verify_signature(secret.as_bytes(), &body, sig));
    if !signed {
        return Err(refused(
            &s,
            &extensions,
            bad_signature("X-Hub-Signature-256 is missing or does not match the body"),
        ));
    }
    let delivery = header(github::DELIVERY_HEADER).ok_or_else(|| AppError::malformed("X-GitHub-Delivery is missing"))?;
    match header(github::EVENT_HEADER).unwrap_or_default() {
        "ping" => Ok((StatusCode::OK, Json(json!({"status": "pong"})))),
        "push" => {
            let event: PushEvent = super::parse_json(&body)?;
            let content = content_key("github", &[&event.repository.full_name, &event.before, &event.after], &body);
            queue(&s, pushes::github_job(delivery, &event, now_ms()), &content).await
        }
        other => Ok(ignored(other)),
    }
}

/// A GitLab push hook, authenticated with `X-Gitlab-Token`.
#[utoipa::path(post, path = "/webhooks/gitlab",
    params(("X-Gitlab-Token" = String, Header), ("X-Gitlab-Event" = String, Header)),
    request_body(content = Object, description = "GitLab's Push Hook"),
    responses((status = 202, description = "queued (or an event that is ignored)", body = Object),
        (status = 200, description = "a duplicate of a push already recorded", body = Object), super::error::Errors))]
pub async fn gitlab(State(s): State<AppState>, extensions: Extensions, headers: HeaderMap, body: Bytes) -> Result<Answer, AppError> {
    let secret = s
        .webhooks
        .gitlab_secret
        .as_deref()
        .ok_or_else(|| refused(&s, &extensions, not_configured()))?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if !header(gitlab::TOKEN_HEADER).is_some_and(|token| gitlab::verify_token(secret, token)) {
        return Err(refused(
            &s,
            &extensions,
            bad_signature("X-Gitlab-Token is missing or does not match"),
        ));
    }
    let event = header(gitlab::EVENT_HEADER).unwrap_or_default();
    if event != "Push Hook" {
        return Ok(ignored(event));
    }
    let hook: PushHook = super::parse_json(&body)?;
    if hook.object_kind != "push" {
        return Ok(ignored(&hook.object_kind));
    }
    // Older GitLab sends no delivery id; the push itself is then the key.
    let delivery = header(gitlab::IDEMPOTENCY_HEADER)
        .or_else(|| header(gitlab::UUID_HEADER))
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}:{}:{}..{}", hook.project_id, hook.git_ref, hook.before, hook.after));
    let content = content_key("gitlab", &[&hook.project_id.to_string(), &hook.before, &hook.after], &body);
    queue(&s, pushes::gitlab_job(&delivery, &hook, now_ms()), &content).await
}

/// `host:` + SHA-256 over the push's identity and its whole signed body.
fn content_key(host: &str, identity: &[&str], body: &[u8]) -> String {
    let mut digest = Sha256::new();
    for part in identity {
        digest.update(part.as_bytes());
        digest.update([0]);
    }
    digest.update(Sha256::digest(body));
    format!("{host}:{}", hex::encode(digest.finalize()))
}

/// Records the body's receipt and the job in one transaction: a 2xx means
/// both are durable, and a replay of either is a duplicate.
async fn queue(s: &AppState, job: NewJob, content_key: &str) -> Result<Answer, AppError> {
    let now = now_ms();
    let waiting = s
        .service
        .store()
        .waiting_jobs(pushes::JOB_PREFIX)
        .await
        .map_err(|e| AppError::from(ServiceError::from(e)))?;
    if waiting >= s.webhooks.queue_limit.unwrap_or(DEFAULT_QUEUE_LIMIT) {
        crate::metrics::Metrics::add(&crate::metrics::METRICS.webhooks_shed, 1);
        return Err(AppError {
            retry_after: Some(SHED_RETRY_AFTER_SECS),
            ..AppError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_full",
                "too many pushes wait to be read; deliver again after Retry-After",
            )
        });
    }
    let stored = async {
        let mut tx = s.service.store().begin().await?;
        let fresh = tx.record_receipt(content_key, now, now - REPLAY_WINDOW_MS).await?;
        let queued = fresh && tx.enqueue(&job, now).await?;
        tx.commit().await?;
        Ok::<bool, crate::store::StoreError>(queued)
    };
    let queued = stored.await.map_err(|e| AppError::from(ServiceError::from(e)))?;
    if !queued {
        return Ok((StatusCode::OK, Json(json!({"status": "duplicate"}))));
    }
    s.webhooks.wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(json!({"status": "queued", "job_id": job.id}))))
}

fn ignored(event: &str) -> Answer {
    let event: String = event.chars().take(64).collect();
    (StatusCode::ACCEPTED, Json(json!({"status": "ignored", "event": event})))
}

fn not_configured() -> AppError {
    AppError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not_configured",
        "no webhook secret is configured for this code host",
    )
}

/// A delivery that cannot be authenticated (its signature fails, or no
/// secret is set up to check it): `error`, or 429 once its address has
/// sent too many such.
fn refused(s: &AppState, extensions: &Extensions, error: AppError) -> AppError {
    if let Some(ip) = super::client::ClientIp::of(extensions) {
        if let Err(wait) = s.limits.webhooks_per_ip.check(ip) {
            return AppError::too_many(wait);
        }
    }
    error
}

fn bad_signature(message: &str) -> AppError {
    AppError::new(StatusCode::UNAUTHORIZED, "bad_signature", message)
}
