//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::dto::*;
use super::error::{ErrorBody, ErrorDetail, Errors};
use super::{api, leaks, partners, status, webhooks};
use crate::service::VerifyCode;

/// `Authorization: Bearer <keyward secret key>` on the management API.
struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("keyward secret key")
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "keyward",
        description = "API keys that hunt for their own leaks. Authenticate with `Authorization: Bearer <keyward key>`."
    ),
    modifiers(&BearerKey),
    paths(
        api::create_project,
        api::list_projects,
        api::get_project,
        api::create_key,
        api::list_keys,
        api::get_key,
        api::update_key,
        api::revoke_key,
        api::rotate_key,
        api::verify,
        api::set_entitlement,
        api::list_entitlements,
        api::add_member,
        api::list_members,
        api::remove_member,
        api::audit,
        api::audit_export,
        api::incidents,
        api::set_alert_settings,
        api::alert_settings,
        api::create_service_account,
        api::list_service_accounts,
        api::delete_service_account,
        api::import_keys,
        api::usage,
        api::index,
        api::healthz,
        api::readyz,
        status::sources,
        status::metrics,
        leaks::report,
        leaks::incidents,
        leaks::set_alert_settings,
        leaks::alert_settings,
        partners::github,
        partners::gitlab,
        webhooks::github,
        webhooks::gitlab,
        document,
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        api::Index,
        KeyView,
        ProjectView,
        CreateProject,
        ProjectCreated,
        ProjectList,
        CreateKey,
        KeyIssued,
        KeyRotated,
        KeyList,
        UpdateKey,
        RevokeKey,
        RotateKey,
        VerifyRequest,
        VerifyResponse,
        VerifyCode,
        SetEntitlement,
        EntitlementView,
        EntitlementList,
        AddMember,
        MemberView,
        MemberAdded,
        InvitationView,
        MemberList,
        IncidentView,
        IncidentList,
        PlaceView,
        SightingView,
        SetAlertSettings,
        AlertSettingsView,
        CreateServiceAccount,
        ServiceAccountView,
        ServiceAccountCreated,
        ServiceAccountList,
        UsageView,
        UsageBucket,
        ImportKeys,
        ImportKey,
        ImportedKeys,
        ServiceAccountRole,
        LeakPolicy,
        CreditsLeft,
        RateLimitView,
        AuditView,
        AuditList,
        TimeInput,
        ThirdPartyIncidentView,
        RevocationView,
        RevocationStatusName,
        DeploymentIncidentView,
        DeploymentIncidentList,
        NewSighting,
        SightingPlace,
        SightingRecorded,
        SetDeploymentAlertSettings,
    ))
)]
struct ApiDoc;

#[utoipa::path(get, path = "/v1/openapi.json", responses((status = 200, description = "this document", content_type = "application/json"), Errors))]
pub async fn document(axum::extract::State(s): axum::extract::State<super::AppState>) -> Json<serde_json::Value> {
    Json(with_catalog(ApiDoc::openapi(), s.service.catalog()))
}

/// The document with this deployment's scope catalog as the `enum` of
/// every scope a key may be given: a scope outside it is refused (422).
fn with_catalog(doc: utoipa::openapi::OpenApi, catalog: &crate::keys::scopes::Catalog) -> serde_json::Value {
    let mut scopes = vec!["*".to_string()];
    for (product, actions) in catalog.products() {
        scopes.push(format!("{product}:*"));
        scopes.extend(actions.iter().map(|a| format!("{product}:{a}")));
    }
    let mut value = serde_json::to_value(doc).expect("the OpenAPI document serialises");
    for schema in ["CreateKey", "UpdateKey", "ImportKey"] {
        if let Some(items) = value.pointer_mut(&format!("/components/schemas/{schema}/properties/scopes/items")) {
            *items = serde_json::json!({"type": "string", "enum": scopes});
        }
    }
    value
}
