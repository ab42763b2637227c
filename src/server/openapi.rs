//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use axum::Json;
use utoipa::OpenApi;

use super::api;
use super::dto::*;
use crate::service::VerifyCode;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "keyward",
        description = "API keys that hunt for their own leaks. Authenticate with `Authorization: Bearer <keyward key>`."
    ),
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
    ),
    components(schemas(
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
        CreditsLeft,
        RateLimitView,
        AuditView,
        AuditList,
        TimeInput,
    ))
)]
struct ApiDoc;

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
