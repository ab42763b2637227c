//! The leak response: a token seen where it must not be → fingerprint match
//! → incident → policy → revoke → alert.
//!
//! One transaction records the incident and its sighting, revokes the key
//! (unless the project only wants notice, or the key is publishable),
//! writes the audit events as `system:leak-response`, and queues the alerts
//! in the outbox. Whoever reported the leak gets its answer only after that
//! commit, so a crash loses nothing and restarts resume the alerts. Seeing
//! the same token again only updates its incident: no second revocation, and
//! no second alert within the alert window. A token of another issuer goes
//! to [`third_party`], which holds it sealed until its issuer revokes it.

pub mod alerts;
pub mod expiry;
pub mod issuers;
pub mod partners;
pub mod third_party;

use std::sync::Arc;

use serde_json::json;
use sha2::Digest;

use self::issuers::Issuers;
use self::third_party::{Reported, RevocationWorker, ThirdPartySettings};
use crate::engine::rules::Revoker;
use crate::engine::{Engine, EngineOptions, Rule, RuleSet};
use crate::keys::token::{self, Kind};
use crate::service::{new_id, Caller, KeyService, ServiceError};
use crate::store::{now_ms, ApiKey, Incident, Place, Project, RevokeReason, Tx};

/// One alert per incident and channel within this window.
pub const ALERT_WINDOW_MS: i64 = 24 * 3_600_000;

/// What the response did with a reported token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A live or test secret key, now revoked.
    Revoked,
    /// The project's policy is notify-only: alerted, not revoked.
    Notified,
    AlreadyRevoked,
    /// Publishable keys are meant to be public: recorded, never revoked.
    Publishable,
    /// A valid keyward token that matches no stored key.
    Unknown,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Revoked => "revoked",
            Action::Notified => "notified",
            Action::AlreadyRevoked => "already_revoked",
            Action::Publishable => "publishable",
            Action::Unknown => "unknown",
        }
    }
}

/// A token found to be keyward's, and what an incident shows of it.
struct Ours {
    key: Option<ApiKey>,
    fingerprint: String,
    display_prefix: String,
    last4: String,
}

/// The outcome of one report.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Not a keyward token, or a look-alike with a bad checksum.
    NotOurs,
    Handled {
        incident_id: String,
        action: Action,
        key: Option<Box<ApiKey>>,
        /// False when the incident already existed.
        new_incident: bool,
    },
    /// Another issuer's token, handled by the deployment's third-party policy.
    ThirdParty(Reported),
}

impl Outcome {
    /// A stored key of ours was leaked (GitHub's `true_positive`).
    pub fn is_true_positive(&self) -> bool {
        matches!(self, Outcome::Handled { key: Some(_), .. })
    }
}

pub struct LeakResponder {
    service: Arc<KeyService>,
    caller: Caller,
    /// Pokes the alert workers when new alerts are queued.
    wake: Arc<tokio::sync::Notify>,
    /// What a token is: the rules that name its family and issuer.
    engine: Arc<Engine>,
    third_party: ThirdPartySettings,
    issuers: Issuers,
    /// Pokes the revocation worker when a third-party token is queued.
    revocations: Arc<tokio::sync::Notify>,
}

impl LeakResponder {
    /// A responder with the shipped rules (for the service's token
    /// prefix) and the default third-party settings: report only.
    pub fn new(service: Arc<KeyService>) -> LeakResponder {
        let mut rules = RuleSet::builtin();
        rules
            .add_deployment_prefix(service.prefix())
            .expect("the service checked its token prefix");
        let engine = Engine::new(rules, EngineOptions::default()).expect("the shipped rules build an engine");
        let third_party = ThirdPartySettings::default();
        LeakResponder {
            service,
            caller: Caller::system("leak-response"),
            wake: Arc::new(tokio::sync::Notify::new()),
            engine: Arc::new(engine),
            issuers: Issuers::new(third_party.endpoints.clone()),
            third_party,
            revocations: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Names tokens with these rules (the deployment's, as its sources scan).
    pub fn with_engine(mut self, engine: Arc<Engine>) -> LeakResponder {
        self.engine = engine;
        self
    }

    pub fn with_third_party(mut self, settings: ThirdPartySettings) -> LeakResponder {
        self.issuers = Issuers::new(settings.endpoints.clone());
        self.third_party = settings;
        self
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub fn third_party(&self) -> &ThirdPartySettings {
        &self.third_party
    }

    /// The worker that calls the issuers for this responder's revocations.
    pub fn revocation_worker(&self) -> RevocationWorker {
        RevocationWorker::new(
            self.service.clone(),
            self.issuers.clone(),
            Arc::new(self.engine.rules().rules().to_vec()),
            self.revocations.clone(),
            self.wake.clone(),
        )
    }

    /// The rule a token alone matches with a valid checksum or structure:
    /// what a sighting of it is. `None` for a token of no known family.
    pub fn classify(&self, token: &str) -> Option<&Rule> {
        self.engine
            .scan_bytes(token.as_bytes())
            .into_iter()
            .find(|f| f.start == 0 && f.end == token.len() as u64 && f.confidence.is_valid())
            .map(|f| self.engine.rule(f.rule))
    }

    /// Handles a token a source found with `rule`: keyward's own by its
    /// project's policy, another issuer's by the deployment's.
    pub async fn report_found(&self, rule: &Rule, token: &str, place: &Place) -> Result<Outcome, ServiceError> {
        match self.report(token, place).await? {
            Outcome::NotOurs if rule.revoke != Some(Revoker::Keyward) && !rule.own_format => {
                let reported = third_party::report(&self.service, &self.third_party, &self.issuers, rule, token, place).await?;
                if reported.new_incident {
                    self.revocations.notify_one();
                    self.wake_alerts();
                }
                Ok(Outcome::ThirdParty(reported))
            }
            other => Ok(other),
        }
    }

    pub fn service(&self) -> &Arc<KeyService> {
        &self.service
    }

    /// The handle alert workers wait on.
    pub fn alert_signal(&self) -> Arc<tokio::sync::Notify> {
        self.wake.clone()
    }

    pub fn wake_alerts(&self) {
        self.wake.notify_waiters();
        self.wake.notify_one();
    }

    /// Handles one token seen at `place`.
    pub async fn report(&self, token: &str, place: &Place) -> Result<Outcome, ServiceError> {
        let Some(ours) = self.identify(token).await? else {
            return Ok(Outcome::NotOurs);
        };
        let (key, fingerprint) = (ours.key, ours.fingerprint);
        let project = match &key {
            Some(k) => self.service.store().project(&k.project_id).await?,
            None => None,
        };
        let now = now_ms();
        let store = self.service.store();
        let mut tx = store.begin().await?;
        let (incident, new_incident) = match tx.incident_by_fingerprint(&fingerprint).await? {
            Some(existing) => {
                tx.touch_incident(&existing.id, now).await?;
                (existing, false)
            }
            None => {
                let action = self.act(&mut tx, key.as_ref(), project.as_ref(), place, now).await?;
                let incident = Incident {
                    id: new_id("inc"),
                    key_id: key.as_ref().map(|k| k.id.clone()),
                    project_id: key.as_ref().map(|k| k.project_id.clone()),
                    fingerprint: fingerprint.clone(),
                    display_prefix: ours.display_prefix,
                    last4: ours.last4,
                    action: action.as_str().to_string(),
                    first_place: place.clone(),
                    first_seen: now,
                    last_seen: now,
                    seen_count: 1,
                    last_alerted_at: None,
                };
                tx.insert_incident(&incident).await?;
                (incident, true)
            }
        };
        tx.record_sighting(&incident.id, place, now).await?;
        let action = parse_action(&incident.action);
        if let Some(key) = &key {
            let alert_due = incident.last_alerted_at.is_none_or(|t| now - t >= ALERT_WINDOW_MS);
            if alert_due {
                self.queue_alerts(&mut tx, key, project.as_ref(), &incident, place, action, now)
                    .await?;
                tx.mark_alerted(&incident.id, now).await?;
            }
        }
        tx.commit().await?;
        if action == Action::Revoked {
            self.service.verifier().key_changed(&fingerprint).await;
        }
        Ok(Outcome::Handled {
            incident_id: incident.id,
            action,
            key: key.map(Box::new),
            new_incident,
        })
    }

    /// Whether a token is keyward's: one in keyward's format (matched or
    /// not to a stored key), or a token of another format that was
    /// imported by the SHA-256 of it.
    async fn identify(&self, token: &str) -> Result<Option<Ours>, ServiceError> {
        let verifier = self.service.verifier();
        if let Ok(parsed) = token::parse(token) {
            let key = verifier
                .lookup(token)
                .await?
                .filter(|k| k.last4 == parsed.last4)
                .map(|k| (*k).clone());
            return Ok(Some(Ours {
                key,
                fingerprint: verifier.fingerprinter().fingerprint(token).to_hex(),
                display_prefix: parsed.display_prefix.to_string(),
                last4: parsed.last4.to_string(),
            }));
        }
        let secret = crate::service::verify::imported_secret(&hex::encode(sha2::Sha256::digest(token.as_bytes())));
        let imported = verifier.lookup(&secret).await?.filter(|k| k.imported);
        Ok(imported.map(|key| Ours {
            fingerprint: verifier.fingerprinter().fingerprint(&secret).to_hex(),
            display_prefix: key.display_prefix.clone(),
            last4: key.last4.clone(),
            key: Some((*key).clone()),
        }))
    }

    /// Applies the project's policy to a first sighting.
    async fn act(
        &self,
        tx: &mut Tx<'_>,
        key: Option<&ApiKey>,
        project: Option<&Project>,
        place: &Place,
        now: i64,
    ) -> Result<Action, ServiceError> {
        let Some(key) = key else {
            return Ok(Action::Unknown);
        };
        let policy = project.map_or("revoke", |p| p.leak_policy.as_str());
        let action = if key.kind == Kind::Publishable {
            Action::Publishable
        } else if key.is_revoked_at(now) {
            Action::AlreadyRevoked
        } else if policy == "notify_only" {
            Action::Notified
        } else {
            Action::Revoked
        };
        let leak = json!({"source_kind": place.source_kind, "repository": place.repository, "commit": place.commit_sha,
            "path": place.path, "line": place.line, "url": place.url, "action": action.as_str(), "mode": key.mode.as_str()});
        self.service
            .audit(tx, &self.caller, Some(&key.project_id), "api_key.leak_detected", &key.id, leak, now)
            .await?;
        if action == Action::Revoked {
            self.service.revoke_in(tx, &self.caller, key, RevokeReason::Leaked, now).await?;
        }
        Ok(action)
    }

    #[allow(clippy::too_many_arguments)]
    async fn queue_alerts(
        &self,
        tx: &mut Tx<'_>,
        key: &ApiKey,
        project: Option<&Project>,
        incident: &Incident,
        place: &Place,
        action: Action,
        now: i64,
    ) -> Result<(), ServiceError> {
        let message = alerts::Alert {
            event: "api_key.leaked".into(),
            incident_id: incident.id.clone(),
            key_id: key.id.clone(),
            key_name: key.name.clone(),
            key_prefix: key.display_prefix.clone(),
            key_last4: key.last4.clone(),
            key_mode: key.mode.as_str().into(),
            project_id: key.project_id.clone(),
            project_name: project.map(|p| p.name.clone()).unwrap_or_default(),
            found: place.clone(),
            action: action.as_str().into(),
            detected_at: crate::time::rfc3339(now),
            expires_at: None,
            issuer: None,
            rule_id: None,
            reason: None,
        };
        let dedupe = format!("alert:{}", incident.id);
        queue_deliveries(&self.service, tx, key, &message, &dedupe, now / ALERT_WINDOW_MS, now).await
    }
}

/// Queues `message` on every channel the key's project has set up: its
/// webhook, its Slack URL, and email to the key's owner and the project's
/// owners and admins when the deployment has an SMTP server (a channel
/// that cannot deliver is not queued). Each delivery is a job deduplicated
/// per channel.
pub(crate) async fn queue_deliveries(
    service: &KeyService,
    tx: &mut Tx<'_>,
    key: &ApiKey,
    message: &alerts::Alert,
    dedupe: &str,
    round: i64,
    now: i64,
) -> Result<(), ServiceError> {
    let store = service.store();
    let settings = store.alert_settings(&key.project_id).await?;
    let recipients = store.alert_recipients(&key.project_id, key.owner_user_id.as_deref());
    let dedupe = |channel: &str| format!("{dedupe}:{channel}:{round}");
    alerts::queue(tx, settings, service.email_alerts(), recipients, message, dedupe, now).await?;
    Ok(())
}

fn parse_action(text: &str) -> Action {
    match text {
        "revoked" => Action::Revoked,
        "notified" => Action::Notified,
        "already_revoked" => Action::AlreadyRevoked,
        "publishable" => Action::Publishable,
        _ => Action::Unknown,
    }
}
