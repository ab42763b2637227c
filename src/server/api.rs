//! REST handlers: parse, call the key service, shape the JSON. The
//! plaintext of a key appears only in the responses that create one.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sha2::{Digest, Sha256};

use super::dto::*;
use super::error::Errors;
use super::{AppError, AppState, Authed, JsonBody, Params};
use crate::service::NewKey;
use crate::store::{now_ms, KeyUpdate, RevokeReason};

/// Most audit events one listing returns.
const AUDIT_LIMIT: i64 = 10_000;

#[utoipa::path(security(("bearer" = [])), post, path = "/v1/projects", request_body = CreateProject,
    responses(Errors, (status = 201, body = ProjectCreated), (status = 403, description = "missing projects:admin")))]
pub async fn create_project(
    State(s): State<AppState>,
    Authed(caller): Authed,
    JsonBody(body): JsonBody<CreateProject>,
) -> Result<Response, AppError> {
    let created = s.service.create_project(&caller, &body.name).await?;
    let now = now_ms();
    let admin = created.admin_key;
    let created = ProjectCreated {
        project: ProjectView::from(&created.project),
        default_key: KeyView::new(&created.default_key.key, now),
        secret: created.default_key.secret.into_string(),
        admin_key: admin.as_ref().map(|a| KeyView::new(&a.key, now)),
        admin_secret: admin.map(|a| a.secret.into_string()),
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[utoipa::path(security(("bearer" = [])), get, path = "/v1/projects", responses(Errors, (status = 200, body = ProjectList)))]
pub async fn list_projects(State(s): State<AppState>, Authed(caller): Authed) -> Result<Json<ProjectList>, AppError> {
    let projects = s.service.projects(&caller).await?;
    Ok(Json(ProjectList {
        projects: projects.iter().map(ProjectView::from).collect(),
    }))
}

#[utoipa::path(security(("bearer" = [])), get, path = "/v1/projects/{project_id}", params(("project_id" = String, Path)), responses(Errors, (status = 200, body = ProjectView), (status = 404)))]
pub async fn get_project(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(project_id): Path<String>,
) -> Result<Json<ProjectView>, AppError> {
    Ok(Json(ProjectView::from(&s.service.project(&caller, &project_id).await?)))
}

#[utoipa::path(security(("bearer" = [])), post, path = "/v1/projects/{project_id}/keys", params(("project_id" = String, Path)), request_body = CreateKey,
    responses(Errors, (status = 201, body = KeyIssued), (status = 409, description = "name taken"), (status = 422, description = "invalid name, scope or expiry")))]
pub async fn create_key(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(project_id): Path<String>,
    JsonBody(body): JsonBody<CreateKey>,
) -> Result<Response, AppError> {
    let new = NewKey {
        name: body.name,
        description: body.description,
        kind: body.kind,
        mode: body.mode,
        scopes: body.scopes,
        expires_at: body.expires_at.map(|t| t.to_ms()).transpose().map_err(AppError::invalid)?,
        owner_user_id: body.owner_user_id,
        owner_service_account_id: body.owner_service_account_id,
        limits: crate::service::KeyLimits {
            enabled: body.enabled,
            meta: body.meta.unwrap_or_else(|| serde_json::json!({})),
            external_id: body.external_id,
            ratelimits: body.ratelimits,
            credits: body.credits,
        },
    };
    let issued = s.service.create_key(&caller, &project_id, new).await?;
    let body = KeyIssued {
        key: KeyView::new(&issued.key, now_ms()),
        secret: issued.secret.into_string(),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[utoipa::path(security(("bearer" = [])), get, path = "/v1/projects/{project_id}/keys", params(("project_id" = String, Path)), responses(Errors, (status = 200, body = KeyList)))]
pub async fn list_keys(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(project_id): Path<String>,
) -> Result<Json<KeyList>, AppError> {
    let keys = s.service.list_keys(&caller, &project_id).await?;
    let now = now_ms();
    Ok(Json(KeyList {
        keys: keys.iter().map(|k| KeyView::new(k, now)).collect(),
    }))
}

#[utoipa::path(security(("bearer" = [])), get, path = "/v1/keys/{key_id}", params(("key_id" = String, Path)), responses(Errors, (status = 200, body = KeyView), (status = 404)))]
pub async fn get_key(State(s): State<AppState>, Authed(caller): Authed, Path(key_id): Path<String>) -> Result<Json<KeyView>, AppError> {
    Ok(Json(KeyView::new(&s.service.get_key(&caller, &key_id).await?, now_ms())))
}

#[utoipa::path(security(("bearer" = [])), patch, path = "/v1/keys/{key_id}", params(("key_id" = String, Path)), request_body = UpdateKey, responses(Errors, (status = 200, body = KeyView)))]
pub async fn update_key(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(key_id): Path<String>,
    JsonBody(body): JsonBody<UpdateKey>,
) -> Result<Json<KeyView>, AppError> {
    let expires_at = match body.expires_at {
        None => None,
        Some(None) => Some(None),
        Some(Some(t)) => Some(Some(t.to_ms().map_err(AppError::invalid)?)),
    };
    let meta = body
        .meta
        .as_ref()
        .map(crate::keys::limits::validate_meta)
        .transpose()
        .map_err(|e| AppError::invalid(e.to_string()))?;
    let update = KeyUpdate {
        name: body.name,
        description: body.description,
        scopes: body.scopes,
        expires_at,
        enabled: body.enabled,
        meta,
        external_id: body.external_id,
        ratelimits: body.ratelimits,
        credits: body.credits,
    };
    Ok(Json(KeyView::new(&s.service.update_key(&caller, &key_id, update).await?, now_ms())))
}

#[utoipa::path(security(("bearer" = [])), post, path = "/v1/keys/{key_id}/revoke", params(("key_id" = String, Path)), request_body = RevokeKey,
    responses(Errors, (status = 200, body = KeyView), (status = 409, description = "the default key")))]
pub async fn revoke_key(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(key_id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<KeyView>, AppError> {
    let body: RevokeKey = optional_json(&body)?;
    let key = s
        .service
        .revoke_key(&caller, &key_id, body.reason.unwrap_or(RevokeReason::Manual))
        .await?;
    Ok(Json(KeyView::new(&key, now_ms())))
}

#[utoipa::path(security(("bearer" = [])), post, path = "/v1/keys/{key_id}/rotate", params(("key_id" = String, Path)), request_body = RotateKey, responses(Errors, (status = 201, body = KeyRotated)))]
pub async fn rotate_key(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(key_id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let body: RotateKey = optional_json(&body)?;
    let issued = s.service.rotate_key(&caller, &key_id, body.overlap_seconds).await?;
    let now = now_ms();
    let old = s.service.get_key(&caller, &key_id).await?;
    let rotated = KeyRotated {
        key: KeyView::new(&issued.key, now),
        secret: issued.secret.into_string(),
        rotated_key: KeyView::new(&old, now),
    };
    Ok((StatusCode::CREATED, Json(rotated)).into_response())
}

/// Revoke and rotate take an optional body: empty means defaults.
fn optional_json<T: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, AppError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    super::parse_json(bytes)
}

#[utoipa::path(post, path = "/v1/keys/verify", request_body = VerifyRequest,
    responses(Errors, (status = 200, body = VerifyResponse, description = "always 200; `code` says why a key is not valid")))]
pub async fn verify(State(s): State<AppState>, request: axum::extract::Request) -> Result<Response, AppError> {
    // The request is taken whole, so the client's address is read where
    // it lies and the body parsed in place: no copy of either.
    if let Some(ip) = super::client::ClientIp::of(request.extensions()) {
        s.limits.verify_per_ip.check(ip).map_err(AppError::too_many)?;
    }
    let bytes = super::body_bytes(request).await?;
    let body: VerifyRequest = super::parse_json(&bytes)?;
    s.limits
        .verify_per_key
        .check(s.limits.token_key(&body.key))
        .map_err(AppError::too_many)?;
    if let Some(scope) = body.scope.as_deref() {
        if scope.is_empty() || scope.len() > 200 {
            return Err(AppError::invalid("scope must be 1 to 200 characters"));
        }
    }
    let cost = body.cost.unwrap_or(1);
    if cost < 0 {
        return Err(AppError::invalid("cost must not be negative"));
    }
    let ask = crate::service::Ask {
        scope: body.scope.as_deref(),
        mode: body.mode,
        cost,
        metered: true,
    };
    let verdict = s
        .service
        .verifier()
        .verify(&body.key, ask)
        .await
        .map_err(crate::service::ServiceError::Store)?;
    // Sized for a typical answer up front, where `Json` would grow its
    // buffer twice.
    let mut answer = Vec::with_capacity(512);
    serde_json::to_writer(&mut answer, &VerifyResponse::new(&verdict)).map_err(|_| AppError::internal())?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], answer).into_response())
}

#[utoipa::path(security(("bearer" = [])), put, path = "/v1/projects/{project_id}/entitlements/{product}", params(("project_id" = String, Path), ("product" = String, Path, pattern = "^[A-Za-z0-9_.-]{1,64}$")), request_body = SetEntitlement, responses(Errors, (status = 200, body = EntitlementView)))]
pub async fn set_entitlement(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path((project_id, product)): Path<(String, String)>,
    JsonBody(body): JsonBody<SetEntitlement>,
) -> Result<Json<EntitlementView>, AppError> {
    let e = s.service.set_entitlement(&caller, &project_id, &product, body.state).await?;
    Ok(Json(EntitlementView::from(&e)))
}

#[utoipa::path(security(("bearer" = [])), get, path = "/v1/projects/{project_id}/entitlements", params(("project_id" = String, Path)), responses(Errors, (status = 200, body = EntitlementList)))]
pub async fn list_entitlements(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(project_id): Path<String>,
) -> Result<Json<EntitlementList>, AppError> {
    let list = s.service.entitlements(&caller, &project_id).await?;
    Ok(Json(EntitlementList {
        entitlements: list.iter().map(EntitlementView::from).collect(),
    }))
}

#[utoipa::path(security(("bearer" = [])), post, path = "/v1/projects/{project_id}/members", params(("project_id" = String, Path)), request_body = AddMember,
    responses(Errors, (status = 201, body = MemberAdded, description = "added or role changed; a new person comes with an invitation link"),
        (status = 403, description = "a role above the caller's, or an owner's role changed by a non-owner"),
        (status = 409, description = "the last owner")))]
pub async fn add_member(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(project_id): Path<String>,
    JsonBody(body): JsonBody<AddMember>,
) -> Result<Response, AppError> {
    let added = s.service.add_member(&caller, &project_id, &body.email, body.role).await?;
    let body = MemberAdded {
        member: MemberView::from(&added.member),
        invitation: added.invitation.as_ref().map(InvitationView::from),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[utoipa::path(security(("bearer" = [])), delete, path = "/v1/projects/{project_id}/members/{user_id}", params(("project_id" = String, Path), ("user_id" = String, Path)),
    responses(Errors, (status = 204, description = "removed; their personal keys in the project are revoked"), (status = 404), (status = 409, description = "the last owner")))]
pub async fn remove_member(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path((project_id, user_id)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    s.service.remove_member(&caller, &project_id, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(security(("bearer" = [])), get, path = "/v1/projects/{project_id}/members", params(("project_id" = String, Path)), responses(Errors, (status = 200, body = MemberList)))]
pub async fn list_members(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(project_id): Path<String>,
) -> Result<Json<MemberList>, AppError> {
    let members = s.service.members(&caller, &project_id).await?;
    Ok(Json(MemberList {
        members: members.iter().map(MemberView::from).collect(),
    }))
}

#[utoipa::path(security(("bearer" = [])), get, path = "/v1/projects/{project_id}/audit", params(("project_id" = String, Path), AuditQuery), responses(Errors, (status = 200, body = AuditList)))]
pub async fn audit(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(project_id): Path<String>,
    Params(q): Params<AuditQuery>,
) -> Result<Json<AuditList>, AppError> {
    let limit = q.limit.unwrap_or(AUDIT_LIMIT);
    if !(1..=AUDIT_LIMIT).contains(&limit) {
        return Err(AppError::invalid(format!("limit must be 1 to {AUDIT_LIMIT}")));
    }
    let events = s.service.audit_events(&caller, &project_id, q.action.as_deref(), limit).await?;
    Ok(Json(AuditList {
        events: events.iter().map(AuditView::from).collect(),
    }))
}

#[utoipa::path(security(("bearer" = [])), get, path = "/v1/projects/{project_id}/audit/export", params(("project_id" = String, Path)),
    responses(Errors, (status = 200, description = "JSON Lines, one event per line; X-Content-SHA256 is the hex SHA-256 of the body", content_type = "application/x-ndjson")))]
pub async fn audit_export(State(s): State<AppState>, Authed(caller): Authed, Path(project_id): Path<String>) -> Result<Response, AppError> {
    let events = s.service.audit_events(&caller, &project_id, None, i64::MAX).await?;
    Ok(audit_jsonl(&project_id, &events))
}

/// Audit events as a JSON Lines download, with the body's SHA-256 in
/// `X-Content-SHA256`; the API and the console export the same bytes.
pub(crate) fn audit_jsonl(project_id: &str, events: &[crate::store::AuditEvent]) -> Response {
    let mut body = String::new();
    for e in events {
        body.push_str(&serde_json::to_string(&AuditView::from(e)).expect("audit events serialise"));
        body.push('\n');
    }
    let digest = hex::encode(Sha256::digest(body.as_bytes()));
    let disposition = format!("attachment; filename=\"audit-{project_id}.jsonl\"");
    (
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_string()),
            (header::HeaderName::from_static("x-content-sha256"), digest),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

#[utoipa::path(security(("bearer" = [])), get, path = "/v1/projects/{project_id}/incidents", params(("project_id" = String, Path)), responses(Errors, (status = 200, body = IncidentList)))]
pub async fn incidents(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(project_id): Path<String>,
) -> Result<Json<IncidentList>, AppError> {
    let list = s.service.incidents(&caller, &project_id).await?;
    Ok(Json(IncidentList {
        incidents: list.iter().map(|(incident, places)| IncidentView::new(incident, places)).collect(),
    }))
}

#[utoipa::path(security(("bearer" = [])), put, path = "/v1/projects/{project_id}/alert-settings", params(("project_id" = String, Path)), request_body = SetAlertSettings, responses(Errors, (status = 200, body = AlertSettingsView)))]
pub async fn set_alert_settings(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(project_id): Path<String>,
    JsonBody(body): JsonBody<SetAlertSettings>,
) -> Result<Json<AlertSettingsView>, AppError> {
    let settings = crate::store::AlertSettings {
        webhook_url: body.webhook_url,
        webhook_secret: body.webhook_secret,
        slack_webhook_url: body.slack_webhook_url,
        email: body.email.unwrap_or(s.service.email_alerts()),
    };
    let saved = s
        .service
        .set_alert_settings(&caller, &project_id, settings, body.leak_policy.as_deref())
        .await?;
    Ok(Json(AlertSettingsView::new(&saved, true)))
}

#[utoipa::path(security(("bearer" = [])), get, path = "/v1/projects/{project_id}/alert-settings", params(("project_id" = String, Path)), responses(Errors, (status = 200, body = AlertSettingsView)))]
pub async fn alert_settings(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(project_id): Path<String>,
) -> Result<Json<AlertSettingsView>, AppError> {
    let (settings, show_targets) = s.service.alert_settings(&caller, &project_id).await?;
    Ok(Json(AlertSettingsView::new(&settings, show_targets)))
}

#[utoipa::path(security(("bearer" = [])), post, path = "/v1/projects/{project_id}/service-accounts", params(("project_id" = String, Path)), request_body = CreateServiceAccount,
    responses(Errors, (status = 201, body = ServiceAccountCreated), (status = 409, description = "name taken")))]
pub async fn create_service_account(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(project_id): Path<String>,
    JsonBody(body): JsonBody<CreateServiceAccount>,
) -> Result<Response, AppError> {
    let account = s
        .service
        .create_service_account(&caller, &project_id, &body.name, body.role)
        .await?;
    let body = ServiceAccountCreated {
        service_account: ServiceAccountView::from(&account),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[utoipa::path(security(("bearer" = [])), get, path = "/v1/projects/{project_id}/service-accounts", params(("project_id" = String, Path)),
    responses(Errors, (status = 200, body = ServiceAccountList)))]
pub async fn list_service_accounts(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(project_id): Path<String>,
) -> Result<Json<ServiceAccountList>, AppError> {
    let accounts = s.service.service_accounts(&caller, &project_id).await?;
    Ok(Json(ServiceAccountList {
        service_accounts: accounts.iter().map(ServiceAccountView::from).collect(),
    }))
}

#[utoipa::path(security(("bearer" = [])), delete, path = "/v1/projects/{project_id}/service-accounts/{account_id}",
    params(("project_id" = String, Path), ("account_id" = String, Path)),
    responses(Errors, (status = 204, description = "deleted; its keys are revoked"), (status = 404)))]
pub async fn delete_service_account(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path((project_id, account_id)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    s.service.delete_service_account(&caller, &project_id, &account_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(security(("bearer" = [])), post, path = "/v1/projects/{project_id}/keys/import", params(("project_id" = String, Path)), request_body = ImportKeys,
    responses(Errors, (status = 201, body = ImportedKeys), (status = 409, description = "a name or token already present"), (status = 422, description = "a bad row, by index")))]
pub async fn import_keys(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(project_id): Path<String>,
    JsonBody(body): JsonBody<ImportKeys>,
) -> Result<Response, AppError> {
    let mut rows = Vec::with_capacity(body.keys.len());
    for (i, k) in body.keys.into_iter().enumerate() {
        let expires_at = k
            .expires_at
            .map(|t| t.to_ms())
            .transpose()
            .map_err(|e| AppError::invalid(format!("keys[{i}]: {e}")))?;
        rows.push(crate::service::ImportedKey {
            sha256: k.sha256,
            prefix: k.prefix,
            last4: k.last4,
            name: k.name,
            scopes: k.scopes,
            mode: k.mode,
            expires_at,
            meta: k.meta.unwrap_or_else(|| serde_json::json!({})),
            external_id: k.external_id,
        });
    }
    let keys = s.service.import_keys(&caller, &project_id, rows).await?;
    let now = now_ms();
    let body = ImportedKeys {
        keys: keys.iter().map(|k| KeyView::new(k, now)).collect(),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[utoipa::path(security(("bearer" = [])), get, path = "/v1/projects/{project_id}/usage", params(("project_id" = String, Path), UsageQuery),
    responses(Errors, (status = 200, body = UsageView)))]
pub async fn usage(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(project_id): Path<String>,
    Params(q): Params<UsageQuery>,
) -> Result<Json<UsageView>, AppError> {
    let (granularity, hours, span) = match q.granularity.as_deref().unwrap_or("day") {
        "hour" => ("hour", 1, 48 * 3_600_000),
        "day" => ("day", 24, 30 * 86_400_000),
        other => return Err(AppError::invalid(format!("granularity {other:?}: use hour or day"))),
    };
    let to = q.to.as_deref().map(time_param).transpose()?.unwrap_or_else(now_ms);
    let from = q.from.as_deref().map(time_param).transpose()?.unwrap_or(to - span);
    let series = s.service.usage(&caller, &project_id, q.key_id.as_deref(), hours, from, to).await?;
    Ok(Json(UsageView {
        granularity: granularity.to_string(),
        buckets: series
            .into_iter()
            .map(|(start, counts)| UsageBucket {
                start: rfc3339(start),
                counts,
            })
            .collect(),
    }))
}

/// A time in a query string: RFC 3339, or Unix seconds.
fn time_param(text: &str) -> Result<i64, AppError> {
    let input = match text.parse::<i64>() {
        Ok(seconds) => TimeInput::UnixSeconds(seconds),
        Err(_) => TimeInput::Text(text.to_string()),
    };
    input.to_ms().map_err(AppError::invalid)
}

/// What `GET /` answers an API client: where things are.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Index {
    pub name: &'static str,
    pub version: &'static str,
    pub console: &'static str,
    pub openapi: &'static str,
    pub healthz: &'static str,
    pub metrics: &'static str,
}

/// A browser asking for `/` goes to the console; an API client gets an
/// index of where things are.
#[utoipa::path(get, path = "/", responses((status = 200, body = Index), (status = 303, description = "to /console, for a browser"), Errors))]
pub async fn index(headers: axum::http::HeaderMap) -> Response {
    let browser = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if browser {
        return axum::response::Redirect::to("/console").into_response();
    }
    Json(Index {
        name: "keyward",
        version: env!("CARGO_PKG_VERSION"),
        console: "/console",
        openapi: "/v1/openapi.json",
        healthz: "/healthz",
        metrics: "/metrics",
    })
    .into_response()
}

#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "the process answers", body = String, content_type = "text/plain"), Errors))]
pub async fn healthz() -> &'static str {
    "ok"
}

#[utoipa::path(get, path = "/readyz", responses((status = 200, description = "the database answers", body = String, content_type = "text/plain"), Errors))]
pub async fn readyz(State(s): State<AppState>) -> Result<&'static str, AppError> {
    s.service
        .store()
        .ping()
        .await
        .map_err(|_| AppError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the database does not answer"))?;
    Ok("ready")
}

pub async fn not_found() -> AppError {
    AppError::not_found("route")
}

/// A known path asked with a method it does not take: the JSON error
/// every other refusal gets (axum still adds `Allow`).
pub async fn method_not_allowed(method: axum::http::Method) -> AppError {
    AppError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this route does not take {method}; the Allow header lists what it takes"),
    )
}
