//! The JSON shapes of the API, kept apart from the store's rows so the
//! wire contract changes only on purpose. Times are RFC 3339 (UTC).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::keys::limits::{Credits, RateLimit};
use crate::keys::token::{Kind, Mode};
use crate::service::VerifyCode;
use crate::store::{
    AlertSettings, ApiKey, AuditEvent, Entitlement, EntitlementState, Incident, Member, Place, Project, RevokeReason, Role,
};

/// Keys this close to expiry show as `expiring`.
const EXPIRING_WITHIN_MS: i64 = 7 * 86_400_000;

pub use crate::time::rfc3339;

fn opt_rfc3339(ms: Option<i64>) -> Option<String> {
    ms.map(rfc3339)
}

/// A time given as RFC 3339 text or as Unix seconds.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TimeInput {
    Text(String),
    UnixSeconds(i64),
}

impl TimeInput {
    pub fn to_ms(&self) -> Result<i64, String> {
        match self {
            TimeInput::UnixSeconds(s) => s.checked_mul(1000).ok_or_else(|| "time out of range".to_string()),
            TimeInput::Text(t) => crate::time::parse_rfc3339(t).ok_or_else(|| format!("{t:?} is not an RFC 3339 time")),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    /// `kw_sk_live_`: with last4, all that is ever shown of a token.
    pub prefix: String,
    pub last4: String,
    pub kind: Kind,
    pub mode: Mode,
    pub scopes: Vec<String>,
    /// active, revoked, expired or expiring
    pub status: &'static str,
    /// Publishable keys are meant to be public and are never revoked as leaked.
    pub public: bool,
    pub is_default: bool,
    pub created_at: String,
    pub created_by: String,
    pub owner_user_id: Option<String>,
    pub owner_service_account_id: Option<String>,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    pub revoke_reason: Option<RevokeReason>,
    pub rotated_from: Option<String>,
    /// A disabled key answers DISABLED until enabled again.
    pub enabled: bool,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
    pub external_id: Option<String>,
    pub ratelimits: Vec<RateLimit>,
    /// `null`: unlimited. `remaining` as last read.
    pub credits: Option<Credits>,
    /// Brought in by `POST /v1/projects/{id}/keys/import`.
    pub imported: bool,
}

impl KeyView {
    pub fn new(key: &ApiKey, now: i64) -> KeyView {
        let status = if key.is_revoked_at(now) {
            "revoked"
        } else if key.is_expired_at(now) {
            "expired"
        } else if key.revoked_at.is_some() || key.expires_at.is_some_and(|t| t - now < EXPIRING_WITHIN_MS) {
            "expiring"
        } else {
            "active"
        };
        KeyView {
            id: key.id.clone(),
            project_id: key.project_id.clone(),
            name: key.name.clone(),
            description: key.description.clone(),
            prefix: key.display_prefix.clone(),
            last4: key.last4.clone(),
            kind: key.kind,
            mode: key.mode,
            scopes: key.scopes.clone(),
            status,
            public: key.kind == Kind::Publishable,
            is_default: key.is_default,
            created_at: rfc3339(key.created_at),
            created_by: key.created_by.clone(),
            owner_user_id: key.owner_user_id.clone(),
            owner_service_account_id: key.owner_service_account_id.clone(),
            expires_at: opt_rfc3339(key.expires_at),
            last_used_at: opt_rfc3339(key.last_used_at),
            revoked_at: opt_rfc3339(key.revoked_at),
            revoke_reason: key.revoke_reason,
            rotated_from: key.rotated_from.clone(),
            enabled: key.enabled,
            meta: key.meta.clone(),
            external_id: key.external_id.clone(),
            ratelimits: key.ratelimits.clone(),
            credits: key.credits,
            imported: key.imported,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectView {
    pub id: String,
    pub name: String,
    pub leak_policy: String,
    pub created_at: String,
}

impl From<&Project> for ProjectView {
    fn from(p: &Project) -> ProjectView {
        ProjectView {
            id: p.id.clone(),
            name: p.name.clone(),
            leak_policy: p.leak_policy.clone(),
            created_at: rfc3339(p.created_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateProject {
    #[schema(min_length = 1, max_length = 200, pattern = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$")]
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectCreated {
    pub project: ProjectView,
    pub default_key: KeyView,
    /// The default key's token: shown in this response only.
    pub secret: String,
    /// A management key in the new project for the key that created it
    /// (a key reaches only its own project).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_key: Option<KeyView>,
    /// Its token: shown in this response only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectList {
    pub projects: Vec<ProjectView>,
}

/// Unknown fields are refused (422 naming the field), so a typo such as
/// `expire_at` is never silently dropped.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    #[schema(pattern = "^[A-Za-z0-9_]{1,64}$")]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 1000, pattern = "^[^\\u0000]*$")]
    pub description: String,
    #[serde(default = "default_kind")]
    pub kind: Kind,
    #[serde(default = "default_mode")]
    pub mode: Mode,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub expires_at: Option<TimeInput>,
    /// Another member to own the key; owners and admins only, and never
    /// someone whose role is above the caller's.
    pub owner_user_id: Option<String>,
    /// A service account of the project to own the key (a team key).
    pub owner_service_account_id: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A JSON object of at most 4 KiB.
    #[schema(value_type = Option<Object>)]
    pub meta: Option<serde_json::Value>,
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\u0000-\\u001f\\u007f]+$")]
    pub external_id: Option<String>,
    #[serde(default)]
    pub ratelimits: Vec<RateLimit>,
    /// Absent or `null`: unlimited.
    pub credits: Option<Credits>,
}

fn yes() -> bool {
    true
}

fn default_kind() -> Kind {
    Kind::Secret
}

fn default_mode() -> Mode {
    Mode::Live
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyIssued {
    pub key: KeyView,
    /// The plaintext token: shown in this response only, never again.
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyRotated {
    pub key: KeyView,
    /// The new key's plaintext token, shown once.
    pub secret: String,
    /// The key being replaced, with when it stops working.
    pub rotated_key: KeyView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyView>,
}

/// Absent fields are left alone; `expires_at`, `external_id` and
/// `credits` set to `null` remove the expiry, the id and the credit limit.
/// Unknown fields are refused (422 naming the field).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKey {
    #[schema(pattern = "^[A-Za-z0-9_]{1,64}$")]
    pub name: Option<String>,
    #[schema(max_length = 1000, pattern = "^[^\\u0000]*$")]
    pub description: Option<String>,
    pub scopes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Option<TimeInput>>,
    pub enabled: Option<bool>,
    #[schema(value_type = Option<Object>)]
    pub meta: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 255, pattern = "^[^\\u0000-\\u001f\\u007f]+$")]
    pub external_id: Option<Option<String>>,
    pub ratelimits: Option<Vec<RateLimit>>,
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(value_type = Option<Credits>)]
    pub credits: Option<Option<Credits>>,
}

/// A field that is present, even as `null`, is `Some`.
fn present_or_null<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RevokeKey {
    pub reason: Option<RevokeReason>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RotateKey {
    /// How long the old key keeps working; 0 or absent revokes it at once.
    #[serde(default)]
    #[schema(maximum = 2592000)]
    pub overlap_seconds: u64,
}

/// Borrowed from the request body where the JSON has no escapes: the hot
/// path copies no string to read it.
#[derive(Debug, Deserialize, ToSchema)]
pub struct VerifyRequest<'a> {
    #[serde(borrow)]
    #[schema(value_type = String, pattern = "^[^\\u0000]*$")]
    pub key: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 200, pattern = "^[^\\u0000]+$")]
    pub scope: Option<std::borrow::Cow<'a, str>>,
    pub mode: Option<Mode>,
    /// What this call spends of the key's credits and of each of its rate
    /// limits (default 1; 0 spends nothing).
    #[schema(minimum = 0)]
    pub cost: Option<i64>,
}

/// The answer to a verify, borrowed from the verdict: the hot path copies
/// no string to write it.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyResponse<'a> {
    pub valid: bool,
    pub code: VerifyCode,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub key_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub project_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    pub scopes: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub meta: Option<&'a serde_json::Value>,
    /// Null for a key without one; absent when no key matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, nullable)]
    pub external_id: Option<Option<&'a str>>,
    /// Present when the key has a credit limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits: Option<CreditsLeft>,
    /// The key's rate limits as this verify left them: empty for a key
    /// without any, or when the verify was refused before them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratelimits: Option<Vec<RateLimitView<'a>>>,
}

impl<'a> VerifyResponse<'a> {
    pub fn new(verdict: &'a crate::service::Verdict) -> VerifyResponse<'a> {
        let key = verdict.key.as_deref();
        VerifyResponse {
            valid: verdict.valid(),
            code: verdict.code,
            key_id: key.map(|k| k.id.as_str()),
            project_id: key.map(|k| k.project_id.as_str()),
            mode: key.map(|k| k.mode),
            scopes: key.map(|k| k.scopes.as_slice()),
            expires_at: key.and_then(|k| k.expires_at).map(rfc3339),
            name: key.map(|k| k.name.as_str()),
            enabled: key.map(|k| k.enabled),
            meta: key.map(|k| &k.meta),
            external_id: key.map(|k| k.external_id.as_deref()),
            credits: verdict.credits_remaining.map(|remaining| CreditsLeft { remaining }),
            ratelimits: key.map(|_| {
                verdict
                    .ratelimits
                    .iter()
                    .map(|l| RateLimitView {
                        name: &l.name,
                        limit: l.limit,
                        remaining: l.remaining,
                        reset_at: rfc3339(l.reset_at),
                    })
                    .collect()
            }),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreditsLeft {
    pub remaining: i64,
}

/// A rate limit as this verify left it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RateLimitView<'a> {
    #[schema(value_type = String)]
    pub name: &'a str,
    pub limit: i64,
    pub remaining: i64,
    pub reset_at: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SetEntitlement {
    pub state: EntitlementState,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EntitlementView {
    pub product: String,
    pub state: EntitlementState,
    pub updated_at: String,
}

impl From<&Entitlement> for EntitlementView {
    fn from(e: &Entitlement) -> EntitlementView {
        EntitlementView {
            product: e.product.clone(),
            state: e.state,
            updated_at: rfc3339(e.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EntitlementList {
    pub entitlements: Vec<EntitlementView>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AddMember {
    #[schema(max_length = 320, pattern = "^[^@\\s\\u0000]+@[^@\\s\\u0000]+$")]
    pub email: String,
    pub role: Role,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    pub user_id: String,
    pub email: String,
    pub role: Role,
}

impl From<&Member> for MemberView {
    fn from(m: &Member) -> MemberView {
        MemberView {
            user_id: m.user_id.clone(),
            email: m.email.clone(),
            role: m.role,
        }
    }
}

/// A member just added; a new person comes with a one-time invitation
/// link to choose their own password (hand it to them).
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberAdded {
    pub member: MemberView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invitation: Option<InvitationView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationView {
    /// The console path, shown once: `/console/invite/<token>`.
    pub path: String,
    pub expires_at: String,
}

impl From<&crate::service::Invitation> for InvitationView {
    fn from(i: &crate::service::Invitation) -> InvitationView {
        InvitationView {
            path: i.path(),
            expires_at: rfc3339(i.expires_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberList {
    pub members: Vec<MemberView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    pub seq: i64,
    pub id: String,
    pub project_id: Option<String>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub ip: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub created_at: String,
    pub prev_hash: String,
    pub hash: String,
}

impl From<&AuditEvent> for AuditView {
    fn from(e: &AuditEvent) -> AuditView {
        AuditView {
            seq: e.seq,
            id: e.id.clone(),
            project_id: e.project_id.clone(),
            actor: e.actor.clone(),
            action: e.action.clone(),
            target: e.target.clone(),
            ip: e.ip.clone(),
            data: e.data.clone(),
            created_at: rfc3339(e.created_at),
            prev_hash: e.prev_hash.clone(),
            hash: e.hash.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    pub events: Vec<AuditView>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only events of this action, e.g. `api_key.revoked`.
    #[param(pattern = "^[^\\u0000]{0,200}$")]
    pub action: Option<String>,
    /// At most this many events (1 to 10,000; default 10,000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlaceView {
    pub source_kind: String,
    pub repository: String,
    pub commit: String,
    pub path: String,
    pub line: Option<i64>,
    pub url: String,
}

impl From<&Place> for PlaceView {
    fn from(p: &Place) -> PlaceView {
        PlaceView {
            source_kind: p.source_kind.clone(),
            repository: p.repository.clone(),
            commit: p.commit_sha.clone(),
            path: p.path.clone(),
            line: p.line,
            url: p.url.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentView {
    /// `own`: a token keyward issued.
    #[schema(value_type = String, example = "own")]
    pub kind: &'static str,
    pub id: String,
    pub key_id: Option<String>,
    pub project_id: Option<String>,
    /// The leaked token as prefix + last four; never the token.
    pub prefix: String,
    pub last4: String,
    /// revoked, notified, already_revoked, publishable or unknown
    pub action: String,
    pub found: PlaceView,
    pub url: String,
    pub first_seen: String,
    pub last_seen: String,
    pub seen_count: i64,
    /// Every place the token was seen, with how often.
    pub places: Vec<SightingView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SightingView {
    #[serde(flatten)]
    pub place: PlaceView,
    pub seen_count: i64,
}

impl SightingView {
    fn list(places: &[(Place, i64)]) -> Vec<SightingView> {
        places
            .iter()
            .map(|(place, seen_count)| SightingView {
                place: PlaceView::from(place),
                seen_count: *seen_count,
            })
            .collect()
    }
}

impl IncidentView {
    pub fn new(i: &Incident, places: &[(Place, i64)]) -> IncidentView {
        IncidentView {
            kind: "own",
            id: i.id.clone(),
            key_id: i.key_id.clone(),
            project_id: i.project_id.clone(),
            prefix: i.display_prefix.clone(),
            last4: i.last4.clone(),
            action: i.action.clone(),
            found: PlaceView::from(&i.first_place),
            url: i.first_place.url.clone(),
            first_seen: rfc3339(i.first_seen),
            last_seen: rfc3339(i.last_seen),
            seen_count: i.seen_count,
            places: SightingView::list(places),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentList {
    pub incidents: Vec<IncidentView>,
}

/// A token of another issuer, and where its revocation stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct ThirdPartyIncidentView {
    /// `third_party`: a token keyward did not issue.
    #[schema(value_type = String, example = "third_party")]
    pub kind: &'static str,
    pub id: String,
    /// The rule that found it, e.g. `github.token`.
    pub rule_id: String,
    pub family: String,
    /// Who can revoke it (`github`, `slack`, …); empty when nobody publishes a way.
    pub issuer: String,
    /// The token as prefix + last four; never the token.
    pub prefix: String,
    pub last4: String,
    pub revocation: RevocationView,
    pub found: PlaceView,
    pub url: String,
    pub first_seen: String,
    pub last_seen: String,
    pub seen_count: i64,
    pub places: Vec<SightingView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RevocationView {
    #[schema(value_type = RevocationStatusName)]
    pub status: String,
    /// Calls made to the issuer so far.
    pub attempts: i64,
    /// When the status was last set.
    pub at: String,
    /// When the next attempt is due, while one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    /// Why it is not revoked (yet): the issuer's answer, or the policy.
    pub reason: String,
}

/// pending: queued; revoked: the issuer confirmed; refused: the issuer does
/// not know the token; not_supported: no revocation will be tried (no
/// public endpoint, policy `report`, a publishable or test token); failed:
/// the last attempt failed (retried while `next_attempt_at` is set).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum RevocationStatusName {
    Pending,
    Revoked,
    Refused,
    NotSupported,
    Failed,
}

impl ThirdPartyIncidentView {
    pub fn new(i: &crate::store::ThirdPartyIncident, places: &[(Place, i64)]) -> ThirdPartyIncidentView {
        let r = &i.revocation;
        ThirdPartyIncidentView {
            kind: "third_party",
            id: i.id.clone(),
            rule_id: i.rule_id.clone(),
            family: i.family.clone(),
            issuer: i.issuer.clone(),
            prefix: i.display_prefix.clone(),
            last4: i.last4.clone(),
            revocation: RevocationView {
                status: r.status.as_str().to_string(),
                attempts: r.attempts,
                at: rfc3339(r.at),
                next_attempt_at: r.next_attempt_at.map(rfc3339),
                reason: r.reason.clone(),
            },
            found: PlaceView::from(&i.first_place),
            url: i.first_place.url.clone(),
            first_seen: rfc3339(i.first_seen),
            last_seen: rfc3339(i.last_seen),
            seen_count: i.seen_count,
            places: SightingView::list(places),
        }
    }
}

/// One incident of the deployment-wide list.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum DeploymentIncidentView {
    Own(IncidentView),
    ThirdParty(ThirdPartyIncidentView),
}

/// Every incident, newest sighting first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentIncidentList {
    pub incidents: Vec<DeploymentIncidentView>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IncidentQuery {
    /// `own` (keyward's tokens) or `third_party`; both when absent.
    #[param(pattern = "^(own|third_party)?$")]
    pub kind: Option<String>,
    /// An own incident's action (revoked, notified, …) or a third-party
    /// incident's revocation status (pending, revoked, refused,
    /// not_supported, failed).
    #[param(pattern = "^(revoked|notified|already_revoked|publishable|unknown|pending|refused|not_supported|failed)?$")]
    pub status: Option<String>,
}

/// A token another scanner saw, and where.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewSighting {
    /// The token itself; it is matched, fingerprinted, and kept only
    /// sealed while its issuer revokes it.
    #[schema(min_length = 1, max_length = 4096, pattern = "^[^\\u0000]+$")]
    pub token: String,
    #[serde(default)]
    pub place: SightingPlace,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct SightingPlace {
    #[schema(max_length = 2048, pattern = "^[^\\u0000]*$")]
    pub repository: Option<String>,
    #[schema(max_length = 2048, pattern = "^[^\\u0000]*$")]
    pub commit: Option<String>,
    #[schema(max_length = 2048, pattern = "^[^\\u0000]*$")]
    pub path: Option<String>,
    #[schema(minimum = 0)]
    pub line: Option<i64>,
    #[schema(max_length = 2048, pattern = "^[^\\u0000]*$")]
    pub url: Option<String>,
    /// What saw it (`gitleaks`, `keyward-scan`, …); `sighting` when absent.
    #[schema(max_length = 64, pattern = "^[^\\u0000]*$")]
    pub source: Option<String>,
}

/// What a sighting did.
#[derive(Debug, Serialize, ToSchema)]
pub struct SightingRecorded {
    /// `own` or `third_party`.
    #[schema(value_type = String)]
    pub kind: &'static str,
    pub incident_id: String,
    /// An own incident's action, or a third-party revocation's status.
    pub status: String,
    pub new_incident: bool,
    pub rule_id: String,
    pub family: String,
}

/// Where the security team hears of third-party tokens.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SetDeploymentAlertSettings {
    #[serde(default)]
    #[schema(max_length = 2000, pattern = "^$|^https?://[^\\u0000]+$")]
    pub webhook_url: String,
    #[serde(default)]
    #[schema(pattern = "^[^\\u0000]*$")]
    pub webhook_secret: String,
    #[serde(default)]
    #[schema(max_length = 2000, pattern = "^$|^https?://[^\\u0000]+$")]
    pub slack_webhook_url: String,
    /// Email the deployment's owners. Default: on when the deployment has
    /// an SMTP server; `true` without one is refused.
    pub email: Option<bool>,
}

/// Where leak alerts go. The webhook secret signs `Keyward-Signature`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SetAlertSettings {
    #[serde(default)]
    #[schema(max_length = 2000, pattern = "^$|^https?://[^\\u0000]+$")]
    pub webhook_url: String,
    #[serde(default)]
    #[schema(pattern = "^[^\\u0000]*$")]
    pub webhook_secret: String,
    #[serde(default)]
    #[schema(max_length = 2000, pattern = "^$|^https?://[^\\u0000]+$")]
    pub slack_webhook_url: String,
    /// Email the key's owner and the project's admins. Default: on when the
    /// deployment has an SMTP server; `true` without one is refused.
    pub email: Option<bool>,
    /// `revoke` (default) or `notify_only`.
    #[schema(value_type = Option<LeakPolicy>)]
    pub leak_policy: Option<String>,
}

/// Where alerts go, as far as the caller may see: delivery credentials
/// (the Slack URL, a webhook URL's userinfo, the signing secret) are only
/// ever shown as set or not set, and Viewers and Members see only which
/// channels are configured, not where they point.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertSettingsView {
    pub webhook_url_set: bool,
    /// For Owners and Admins: the webhook URL with any `user:password@`
    /// replaced by `***@`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// Whether a signing secret is set; the secret itself is never shown.
    pub webhook_secret_set: bool,
    pub slack_webhook_url_set: bool,
    pub email: bool,
}

impl AlertSettingsView {
    pub fn new(a: &AlertSettings, show_targets: bool) -> AlertSettingsView {
        AlertSettingsView {
            webhook_url_set: !a.webhook_url.is_empty(),
            webhook_url: (show_targets && !a.webhook_url.is_empty()).then(|| without_userinfo(&a.webhook_url)),
            webhook_secret_set: !a.webhook_secret.is_empty(),
            slack_webhook_url_set: !a.slack_webhook_url.is_empty(),
            email: a.email,
        }
    }
}

/// `https://user:pass@host/x` as `https://***@host/x`; a stored value that
/// does not parse as a URL is not shown at all.
fn without_userinfo(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            if !parsed.username().is_empty() || parsed.password().is_some() {
                let _ = parsed.set_password(None);
                let _ = parsed.set_username("***");
            }
            parsed.to_string()
        }
        Err(_) => "(not a URL)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! t {
        ($name:ident, $url:expr, $expected:expr) => {
            #[test]
            fn $name() {
                assert_eq!(without_userinfo($url), $expected);
            }
        };
    }

    t!(
        userinfo_masked,
        "https://bob:hunter2@hooks.example.com/k",
        "https://***@hooks.example.com/k"
    );
    t!(
        user_only_masked,
        "https://token@hooks.example.com/",
        "https://***@hooks.example.com/"
    );
    t!(plain_kept, "https://hooks.example.com/keyward", "https://hooks.example.com/keyward");
    t!(unparsable_hidden, "not a url at all", "(not a URL)");

    #[test]
    fn viewers_see_only_whether_channels_are_set() {
        let settings = AlertSettings {
            webhook_url: "https://u:p@hooks.example.com/x".into(),
            webhook_secret: "a-long-signing-secret".into(),
            slack_webhook_url: "https://hooks.slack.com/services/T0/B0/secret".into(),
            email: true,
        };
        let viewer = serde_json::to_string(&AlertSettingsView::new(&settings, false)).unwrap();
        let admin = serde_json::to_string(&AlertSettingsView::new(&settings, true)).unwrap();
        for shown in [&viewer, &admin] {
            assert!(
                !shown.contains("hooks.slack.com") && !shown.contains("u:p") && !shown.contains("signing"),
                "{shown}"
            );
        }
        assert!(!viewer.contains("hooks.example.com"), "{viewer}");
        assert!(admin.contains("https://***@hooks.example.com/x"), "{admin}");
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServiceAccount {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub name: String,
    #[schema(value_type = ServiceAccountRole)]
    pub role: Role,
}

/// A service account's role: never owner.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum ServiceAccountRole {
    Admin,
    Member,
    Viewer,
}

/// What a leak of one of the project's secret keys does.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum LeakPolicy {
    Revoke,
    NotifyOnly,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceAccountView {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub role: Role,
    pub created_at: String,
}

impl From<&crate::store::ServiceAccount> for ServiceAccountView {
    fn from(a: &crate::store::ServiceAccount) -> ServiceAccountView {
        ServiceAccountView {
            id: a.id.clone(),
            project_id: a.project_id.clone(),
            name: a.name.clone(),
            role: a.role,
            created_at: rfc3339(a.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceAccountCreated {
    pub service_account: ServiceAccountView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceAccountList {
    pub service_accounts: Vec<ServiceAccountView>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// One key of the project; all of them when absent.
    pub key_id: Option<String>,
    /// `hour` or `day` (default `day`).
    #[param(pattern = "^(hour|day)$")]
    pub granularity: Option<String>,
    /// RFC 3339 or Unix seconds; default: 30 days (day) or 48 hours (hour) before `to`.
    #[param(
        pattern = "^(-?[0-9]{1,12}|[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2}))$"
    )]
    pub from: Option<String>,
    /// RFC 3339 or Unix seconds; default: now.
    #[param(
        pattern = "^(-?[0-9]{1,12}|[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2}))$"
    )]
    pub to: Option<String>,
}

/// Verifications per bucket and outcome (every verify code that occurred).
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageView {
    pub granularity: String,
    pub buckets: Vec<UsageBucket>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageBucket {
    pub start: String,
    #[schema(value_type = Object)]
    pub counts: std::collections::BTreeMap<String, i64>,
}

/// Keys brought from another system, known to keyward only by the SHA-256
/// of their token. At most 1,000 per call; one bad row refuses the batch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportKeys {
    #[schema(min_items = 1, max_items = 1000)]
    pub keys: Vec<ImportKey>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportKey {
    /// Hex SHA-256 of the token in its old format.
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub sha256: String,
    /// The token's prefix, shown with `last4`.
    #[schema(pattern = "^[!-~]{1,32}$")]
    pub prefix: String,
    #[schema(pattern = "^[!-~]{4}$")]
    pub last4: String,
    #[schema(pattern = "^[A-Za-z0-9_]{1,64}$")]
    pub name: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default = "default_mode")]
    pub mode: Mode,
    pub expires_at: Option<TimeInput>,
    #[schema(value_type = Option<Object>)]
    pub meta: Option<serde_json::Value>,
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\u0000-\\u001f\\u007f]+$")]
    pub external_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportedKeys {
    pub keys: Vec<KeyView>,
}
