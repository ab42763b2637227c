//! What the deployment as a whole has seen leak: every project's incidents
//! and the third-party tokens, for its owners, and the deployment's own
//! alert channels.

use serde_json::json;

use super::{Caller, DeploymentAction, KeyService, ServiceError};
use crate::store::{now_ms, AlertSettings, Incident, Place, RevocationStatus, ThirdPartyIncident};

/// Which incidents a deployment-wide list holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncidentKind {
    /// Tokens keyward issued.
    Own,
    ThirdParty,
}

/// A filter on the list: the kind, and a status (an own incident's action,
/// a third-party incident's revocation status).
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    pub kind: Option<IncidentKind>,
    pub status: Option<String>,
}

/// The deployment-wide list, each incident with every place it was seen.
#[derive(Debug, Default)]
pub struct DeploymentIncidents {
    pub own: Vec<(Incident, Vec<(Place, i64)>)>,
    pub third_party: Vec<(ThirdPartyIncident, Vec<(Place, i64)>)>,
}

impl KeyService {
    pub async fn deployment_incidents(&self, caller: &Caller, filter: &IncidentFilter) -> Result<DeploymentIncidents, ServiceError> {
        caller.authorize_deployment(&self.store, DeploymentAction::ViewIncidents).await?;
        let mut out = DeploymentIncidents::default();
        if filter.kind != Some(IncidentKind::ThirdParty) {
            for incident in self.store.all_incidents().await? {
                if filter.status.as_deref().is_none_or(|s| s == incident.action) {
                    let places = self.store.sightings(&incident.id).await?;
                    out.own.push((incident, places));
                }
            }
        }
        if filter.kind != Some(IncidentKind::Own) {
            let status = match filter.status.as_deref() {
                Some(text) => match RevocationStatus::parse(text) {
                    Some(status) => Some(status),
                    // A status no third-party incident can have.
                    None => return Ok(out),
                },
                None => None,
            };
            for incident in self.store.third_party_incidents(status).await? {
                let places = self.store.third_party_sightings(&incident.id).await?;
                out.third_party.push((incident, places));
            }
        }
        Ok(out)
    }

    pub async fn deployment_alert_settings(&self, caller: &Caller) -> Result<AlertSettings, ServiceError> {
        caller.authorize_deployment(&self.store, DeploymentAction::ViewIncidents).await?;
        let mut settings = self.store.deployment_alert_settings().await?;
        settings.email &= self.email_alerts;
        Ok(settings)
    }

    /// Sets where the security team hears of third-party tokens.
    pub async fn set_deployment_alert_settings(&self, caller: &Caller, settings: AlertSettings) -> Result<AlertSettings, ServiceError> {
        caller.authorize_deployment(&self.store, DeploymentAction::ConfigureAlerts).await?;
        self.check_alert_settings(&settings).await?;
        let now = now_ms();
        let mut tx = self.store.begin().await?;
        tx.set_deployment_alert_settings(&settings, now).await?;
        let data =
            json!({"webhook": !settings.webhook_url.is_empty(), "slack": !settings.slack_webhook_url.is_empty(), "email": settings.email});
        self.audit(&mut tx, caller, None, "deployment.alerts_updated", "deployment", data, now)
            .await?;
        tx.commit().await?;
        Ok(settings)
    }

    /// What alert settings must be, wherever they are set: URLs a receiver
    /// may be reached at, a signing secret with a webhook, and email only
    /// where an SMTP server can send it.
    pub(super) async fn check_alert_settings(&self, settings: &AlertSettings) -> Result<(), ServiceError> {
        for url in [&settings.webhook_url, &settings.slack_webhook_url] {
            if url.len() > 2000 {
                return Err(ServiceError::Invalid("a URL must be at most 2000 characters".into()));
            }
            if !url.is_empty() {
                self.outbound
                    .check_url(url)
                    .await
                    .map_err(|e| ServiceError::Invalid(e.to_string()))?;
            }
        }
        if settings.email && !self.email_alerts {
            return Err(ServiceError::Invalid(
                "email alerts need an SMTP server: set KEYWARD_SMTP_URL (or [alerts] smtp_url) first".into(),
            ));
        }
        if !settings.webhook_url.is_empty() && settings.webhook_secret.len() < 16 {
            return Err(ServiceError::Invalid("webhook_secret must be at least 16 characters".into()));
        }
        Ok(())
    }
}
