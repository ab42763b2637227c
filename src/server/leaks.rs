//! The deployment's view of leaks: tokens other scanners report
//! (`POST /v1/sightings`), the incident list across projects and
//! third-party tokens, and the security team's alert channels.

use axum::extract::State;
use axum::Json;

use super::dto::*;
use super::error::Errors;
use super::{AppError, AppState, Authed, JsonBody, Params};
use crate::response::Outcome;
use crate::service::incidents::{IncidentFilter, IncidentKind};
use crate::store::Place;

/// What `status=` may name: an own incident's action, or a third-party
/// revocation's status.
const STATUSES: [&str; 9] = [
    "revoked",
    "notified",
    "already_revoked",
    "publishable",
    "unknown",
    "pending",
    "refused",
    "not_supported",
    "failed",
];

/// The longest token a sighting may carry.
const MAX_TOKEN: usize = 4096;
/// The longest repository, commit, path or URL a sighting may name.
const MAX_PLACE_FIELD: usize = 2048;

#[utoipa::path(security(("bearer" = [])), post, path = "/v1/sightings", request_body = NewSighting,
    responses(Errors, (status = 200, body = SightingRecorded), (status = 422, description = "a token of no known family, or a malformed place")))]
pub async fn report(
    State(s): State<AppState>,
    Authed(caller): Authed,
    JsonBody(body): JsonBody<NewSighting>,
) -> Result<Json<SightingRecorded>, AppError> {
    caller
        .authorize_sighting(s.service.store())
        .await
        .map_err(crate::service::ServiceError::from)?;
    let token = body.token.trim();
    if token.is_empty() || token.len() > MAX_TOKEN {
        return Err(AppError::invalid(format!("token must be 1 to {MAX_TOKEN} bytes")));
    }
    let place = place_of(&body.place)?;
    let Some(rule) = s.responder.classify(token) else {
        return Err(AppError::invalid(
            "the token is of no known family (or its checksum fails): nothing to record".to_string(),
        ));
    };
    let outcome = s.responder.report_found(rule, token, &place).await?;
    let recorded = match outcome {
        Outcome::ThirdParty(reported) => SightingRecorded {
            kind: "third_party",
            incident_id: reported.incident_id,
            status: reported.status.as_str().to_string(),
            new_incident: reported.new_incident,
            rule_id: rule.id.clone(),
            family: rule.family.clone(),
        },
        Outcome::Handled {
            incident_id,
            action,
            new_incident,
            ..
        } => SightingRecorded {
            kind: "own",
            incident_id,
            status: action.as_str().to_string(),
            new_incident,
            rule_id: rule.id.clone(),
            family: rule.family.clone(),
        },
        Outcome::NotOurs => return Err(AppError::invalid("the token is keyward's format but no token".to_string())),
    };
    Ok(Json(recorded))
}

fn place_of(place: &SightingPlace) -> Result<Place, AppError> {
    let fields = [&place.repository, &place.commit, &place.path, &place.url, &place.source];
    if fields
        .iter()
        .any(|f| f.as_ref().is_some_and(|v| v.len() > MAX_PLACE_FIELD || v.contains('\0')))
    {
        return Err(AppError::invalid(format!(
            "place fields are at most {MAX_PLACE_FIELD} bytes, without NUL"
        )));
    }
    if place.line.is_some_and(|l| l < 0) {
        return Err(AppError::invalid("place.line must not be negative".to_string()));
    }
    Ok(Place {
        source_kind: place.source.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| "sighting".into()),
        repository: place.repository.clone().unwrap_or_default(),
        commit_sha: place.commit.clone().unwrap_or_default(),
        path: place.path.clone().unwrap_or_default(),
        line: place.line,
        url: place.url.clone().unwrap_or_default(),
    })
}

#[utoipa::path(security(("bearer" = [])), get, path = "/v1/incidents", params(IncidentQuery),
    responses(Errors, (status = 200, body = DeploymentIncidentList)))]
pub async fn incidents(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Params(q): Params<IncidentQuery>,
) -> Result<Json<DeploymentIncidentList>, AppError> {
    let kind = match q.kind.as_deref() {
        None | Some("") => None,
        Some("own") => Some(IncidentKind::Own),
        Some("third_party") => Some(IncidentKind::ThirdParty),
        Some(_) => return Err(AppError::invalid("kind must be own or third_party".to_string())),
    };
    let status = q.status.filter(|s| !s.is_empty());
    if status.as_deref().is_some_and(|s| !STATUSES.contains(&s)) {
        return Err(AppError::invalid(format!("status must be one of {}", STATUSES.join(", "))));
    }
    let filter = IncidentFilter { kind, status };
    let found = s.service.deployment_incidents(&caller, &filter).await?;
    let mut incidents: Vec<(i64, DeploymentIncidentView)> = found
        .own
        .iter()
        .map(|(i, places)| (i.last_seen, DeploymentIncidentView::Own(IncidentView::new(i, places))))
        .chain(found.third_party.iter().map(|(i, places)| {
            (
                i.last_seen,
                DeploymentIncidentView::ThirdParty(ThirdPartyIncidentView::new(i, places)),
            )
        }))
        .collect();
    incidents.sort_by_key(|(seen, _)| std::cmp::Reverse(*seen));
    Ok(Json(DeploymentIncidentList {
        incidents: incidents.into_iter().map(|(_, view)| view).collect(),
    }))
}

#[utoipa::path(security(("bearer" = [])), put, path = "/v1/alert-settings", request_body = SetDeploymentAlertSettings,
    responses(Errors, (status = 200, body = AlertSettingsView)))]
pub async fn set_alert_settings(
    State(s): State<AppState>,
    Authed(caller): Authed,
    JsonBody(body): JsonBody<SetDeploymentAlertSettings>,
) -> Result<Json<AlertSettingsView>, AppError> {
    let settings = crate::store::AlertSettings {
        webhook_url: body.webhook_url,
        webhook_secret: body.webhook_secret,
        slack_webhook_url: body.slack_webhook_url,
        email: body.email.unwrap_or(s.service.email_alerts()),
    };
    let saved = s.service.set_deployment_alert_settings(&caller, settings).await?;
    Ok(Json(AlertSettingsView::new(&saved, true)))
}

#[utoipa::path(security(("bearer" = [])), get, path = "/v1/alert-settings", responses(Errors, (status = 200, body = AlertSettingsView)))]
pub async fn alert_settings(State(s): State<AppState>, Authed(caller): Authed) -> Result<Json<AlertSettingsView>, AppError> {
    let settings = s.service.deployment_alert_settings(&caller).await?;
    Ok(Json(AlertSettingsView::new(&settings, true)))
}
