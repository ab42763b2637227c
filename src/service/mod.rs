//! The key service: lifecycle operations that join pure key logic, the
//! store and the audit log. Every change is written in one transaction
//! together with its audit event, and the verify cache forgets a key before
//! the change is reported done.

mod access;
pub mod incidents;
pub mod outbound;
mod people;
mod ratelimit;
pub mod verify;

use std::sync::Arc;

use serde_json::json;

pub use access::{Action, Caller, Denied, DeploymentAction, KeyTarget, DEPLOYMENT_SCOPE, SIGHTINGS_SCOPE};
pub use people::{Invitation, NewSession, INVITATION_MS, SESSION_MS};
pub use verify::{Ask, Verdict, Verifier, VerifyCode};

use crate::keys::fingerprint::Fingerprinter;
use crate::keys::limits::{self, Credits, RateLimit};
use crate::keys::scopes::{Catalog, ScopeError};
use crate::keys::token::{self, Kind, Mode, Token};
use crate::keys::valid_name;
use crate::store::{
    now_ms, AlertSettings, ApiKey, AuditEvent, Entitlement, EntitlementState, Incident, KeyUpdate, Member, NewApiKey, NewAuditEvent, Place,
    Project, RevokeReason, Role, ServiceAccount, Store, StoreError, Tx,
};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Denied(#[from] Denied),
    /// A refusal with a message saying what, beyond the generic one.
    #[error("{1}")]
    Refused(Denied, String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        if e.is_unique_violation() {
            ServiceError::Conflict("a key with that name already exists in this project".into())
        } else if e.is_unstorable_text() {
            ServiceError::Invalid("text must not contain NUL characters".into())
        } else {
            ServiceError::Store(e)
        }
    }
}

impl From<limits::LimitError> for ServiceError {
    fn from(e: limits::LimitError) -> Self {
        ServiceError::Invalid(e.to_string())
    }
}

impl From<ScopeError> for ServiceError {
    fn from(e: ScopeError) -> Self {
        ServiceError::Invalid(e.to_string())
    }
}

/// What creating a key asks for.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub name: String,
    pub description: String,
    pub kind: Kind,
    pub mode: Mode,
    pub scopes: Vec<String>,
    pub expires_at: Option<i64>,
    /// Another member to own the key (admins and owners only); default:
    /// the caller.
    pub owner_user_id: Option<String>,
    /// A service account of the project to own the key (a team key).
    pub owner_service_account_id: Option<String>,
    pub limits: KeyLimits,
}

/// What a key may spend, and the customer's own fields on it.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyLimits {
    pub enabled: bool,
    /// A JSON object of at most 4 KiB.
    pub meta: serde_json::Value,
    pub external_id: Option<String>,
    pub ratelimits: Vec<RateLimit>,
    /// `None`: unlimited.
    pub credits: Option<Credits>,
}

impl Default for KeyLimits {
    fn default() -> KeyLimits {
        KeyLimits {
            enabled: true,
            meta: serde_json::Value::Object(Default::default()),
            external_id: None,
            ratelimits: Vec::new(),
            credits: None,
        }
    }
}

impl KeyLimits {
    fn validate(&self) -> Result<String, ServiceError> {
        let meta = limits::validate_meta(&self.meta)?;
        if let Some(id) = &self.external_id {
            limits::validate_external_id(id)?;
        }
        limits::validate_ratelimits(&self.ratelimits)?;
        if let Some(credits) = &self.credits {
            limits::validate_credits(credits)?;
        }
        Ok(meta)
    }
}

/// One key of another system to bring in: keyward learns only the SHA-256
/// of its token, and shows its prefix and last four characters.
#[derive(Debug, Clone)]
pub struct ImportedKey {
    pub sha256: String,
    pub prefix: String,
    pub last4: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub mode: Mode,
    pub expires_at: Option<i64>,
    pub meta: serde_json::Value,
    pub external_id: Option<String>,
}

/// Most keys one import takes.
pub const MAX_IMPORT: usize = 1000;

/// Verifications per bucket: (bucket start in ms, outcome code -> count).
pub type UsageSeries = Vec<(i64, std::collections::BTreeMap<String, i64>)>;

/// The latest expiry a key may have: before 9999-12-31T00:00:00Z, so every
/// stored time formats as a four-digit-year RFC 3339 date.
pub const MAX_EXPIRES_AT_MS: i64 = 253_402_214_400_000;

/// The product whose entitlement gates key management itself (plan gating).
pub const KEY_MANAGEMENT: &str = "key_management";

/// A key together with its plaintext, returned exactly once.
#[derive(Debug)]
pub struct Issued {
    pub key: ApiKey,
    pub secret: Token,
}

pub struct KeyService {
    store: Store,
    verifier: Arc<Verifier>,
    catalog: Catalog,
    prefix: String,
    outbound: outbound::OutboundPolicy,
    /// Whether an SMTP server is configured: email alerts are off without one.
    email_alerts: bool,
}

impl KeyService {
    pub fn new(store: Store, fingerprinter: Fingerprinter, catalog: Catalog, prefix: &str) -> Result<KeyService, ServiceError> {
        if !token::valid_prefix(prefix) {
            return Err(ServiceError::Invalid(format!(
                "token prefix {prefix:?} must be 2 to 16 characters of [a-z0-9]"
            )));
        }
        Ok(KeyService {
            verifier: Arc::new(Verifier::new(store.clone(), fingerprinter)),
            store,
            catalog,
            prefix: prefix.to_string(),
            outbound: outbound::OutboundPolicy::default(),
            email_alerts: false,
        })
    }

    /// The deployment's token prefix (`kw`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Email alerts are on: an SMTP server is configured.
    pub fn with_email_alerts(mut self, on: bool) -> KeyService {
        self.email_alerts = on;
        self
    }

    pub fn email_alerts(&self) -> bool {
        self.email_alerts
    }

    /// Where admin-set alert URLs may point (internal addresses refused by
    /// default).
    pub fn with_outbound(mut self, policy: outbound::OutboundPolicy) -> KeyService {
        self.outbound = policy;
        self
    }

    pub fn outbound(&self) -> outbound::OutboundPolicy {
        self.outbound
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn verifier(&self) -> &Arc<Verifier> {
        &self.verifier
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The caller behind a bearer token, or why it may not call at all.
    pub async fn authenticate(&self, bearer: &str) -> Result<Caller, Denied> {
        // Calling the management API spends none of the key's credits or
        // rate limits: those meter the product's own calls.
        let ask = verify::Ask {
            cost: 0,
            metered: false,
            ..Default::default()
        };
        let verdict = self.verifier.verify(bearer, ask).await.map_err(|_| Denied::Unavailable)?;
        match (verdict.code, verdict.key) {
            (VerifyCode::Valid, Some(key)) if key.kind == Kind::Secret => Ok(Caller::from_key(&key)),
            (VerifyCode::Valid, Some(_)) => Err(Denied::Publishable),
            (code, _) => Err(Denied::Unauthenticated(code)),
        }
    }

    /// First run: an owner, a first project and a bootstrap admin key.
    pub async fn bootstrap(&self, owner_email: &str, project_name: &str) -> Result<(Project, Issued, String), ServiceError> {
        let now = now_ms();
        let mut tx = self.store.begin().await?;
        let user_id = tx.ensure_user(&new_id("user"), owner_email, now).await?;
        tx.set_deployment_owner(&user_id).await?;
        let owner = Caller::system_for_user(&user_id);
        let (project, _) = self.insert_project(&mut tx, &owner, project_name, now).await?;
        let admin = NewKey {
            name: "bootstrap_admin".into(),
            description: "Created by keyward init: full access to the management API.".into(),
            kind: Kind::Secret,
            mode: Mode::Live,
            scopes: vec!["*".into()],
            expires_at: None,
            owner_user_id: Some(user_id.clone()),
            owner_service_account_id: None,
            limits: Default::default(),
        };
        let issued = self.insert_key(&mut tx, &owner, &project.id, admin, false, None, now).await?;
        tx.commit().await?;
        Ok((project, issued, user_id))
    }

    /// A new project with its default key. A key that creates a project
    /// also gets a management key in it, owned by the same person with the
    /// same scopes: a key reaches only its own project, so without it the
    /// new project could not be managed through the API.
    pub async fn create_project(&self, caller: &Caller, name: &str) -> Result<NewProject, ServiceError> {
        caller.authorize_deployment(&self.store, DeploymentAction::CreateProject).await?;
        let name = name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err(ServiceError::Invalid("project name must be 1 to 200 characters".into()));
        }
        let now = now_ms();
        let mut tx = self.store.begin().await?;
        let (project, default_key) = self.insert_project(&mut tx, caller, name, now).await?;
        let admin_key = match (&caller.key_id, &caller.user_id) {
            (Some(_), Some(owner)) => {
                let admin = NewKey {
                    name: "project_admin".into(),
                    description: "Made with the project, for the key that created it: manages the project through the API.".into(),
                    kind: Kind::Secret,
                    mode: Mode::Live,
                    scopes: caller.scopes.clone(),
                    expires_at: None,
                    owner_user_id: Some(owner.clone()),
                    owner_service_account_id: None,
                    limits: Default::default(),
                };
                Some(self.insert_key(&mut tx, caller, &project.id, admin, false, None, now).await?)
            }
            _ => None,
        };
        tx.commit().await?;
        Ok(NewProject {
            project,
            default_key,
            admin_key,
        })
    }

    async fn insert_project(&self, tx: &mut Tx<'_>, caller: &Caller, name: &str, now: i64) -> Result<(Project, Issued), ServiceError> {
        let project = Project {
            id: new_id("proj"),
            name: name.to_string(),
            leak_policy: "revoke".into(),
            created_at: now,
        };
        tx.insert_project(&project).await?;
        if let Some(user) = &caller.user_id {
            tx.set_membership(&project.id, user, Role::Owner, now).await?;
        }
        self.audit(
            tx,
            caller,
            Some(&project.id),
            "project.created",
            &project.id,
            json!({"name": project.name}),
            now,
        )
        .await?;
        let default = NewKey {
            name: default_key_name(&project.id),
            description: "The project's default key. It can be rotated, not revoked.".into(),
            kind: Kind::Secret,
            mode: Mode::Live,
            // The product's own scopes, not keyward's management API: a default
            // key is for calling the product, and may end up in a client.
            scopes: self
                .catalog
                .products()
                .keys()
                .filter(|p| !is_management_resource(p))
                .map(|p| format!("{p}:*"))
                .collect(),
            expires_at: None,
            owner_user_id: caller.user_id.clone(),
            owner_service_account_id: None,
            limits: Default::default(),
        };
        let issued = self.insert_key(tx, caller, &project.id, default, true, None, now).await?;
        Ok((project, issued))
    }

    pub async fn create_key(&self, caller: &Caller, project_id: &str, new: NewKey) -> Result<Issued, ServiceError> {
        self.require_project(project_id).await?;
        if new.owner_user_id.is_some() && new.owner_service_account_id.is_some() {
            return Err(ServiceError::Invalid(
                "give owner_user_id or owner_service_account_id, not both".into(),
            ));
        }
        let (owner_user_id, owner_service_account_id) = match (&new.owner_user_id, &new.owner_service_account_id) {
            (None, None) => (caller.user_id.clone(), caller.service_account_id.clone()),
            (user, account) => (user.clone(), account.clone()),
        };
        let target = KeyTarget {
            owner_user_id: owner_user_id.as_deref(),
            owner_service_account_id: owner_service_account_id.as_deref(),
            mode: new.mode,
        };
        let role = caller
            .authorize(&self.store, project_id, Action::CreateKey, Some(target))
            .await
            .map_err(|d| hidden(d, "project"))?;
        if !caller.owns(target) {
            self.require_owner_within(caller, role, project_id, target).await?;
        }
        self.validate_new_key(&new)?;
        self.require_grantable(caller, &new.scopes).await?;
        self.require_key_management(caller, project_id).await?;
        let now = now_ms();
        let mut tx = self.store.begin().await?;
        let issued = self
            .insert_key(
                &mut tx,
                caller,
                project_id,
                NewKey {
                    owner_user_id,
                    owner_service_account_id,
                    ..new
                },
                false,
                None,
                now,
            )
            .await?;
        tx.commit().await?;
        Ok(issued)
    }

    /// A key made for someone else: they belong to the project (a member,
    /// or one of its service accounts), and their role is not above the
    /// caller's, so nobody gains a role through a key they had made.
    async fn require_owner_within(
        &self,
        caller: &Caller,
        caller_role: Role,
        project_id: &str,
        owner: KeyTarget<'_>,
    ) -> Result<(), ServiceError> {
        if caller.is_system() {
            return Ok(());
        }
        let owner_role = match (owner.owner_user_id, owner.owner_service_account_id) {
            (Some(user), _) => self.store.role_of_user(project_id, user).await?,
            (None, Some(account)) => self.store.role_of_service_account(project_id, account).await?,
            (None, None) => return Err(ServiceError::Invalid("a key needs an owner".into())),
        };
        let Some(owner_role) = owner_role else {
            return Err(ServiceError::Invalid(
                "the key's owner must be a member or a service account of this project".into(),
            ));
        };
        if owner_role > caller_role {
            return Err(Denied::Role.into());
        }
        Ok(())
    }

    /// Scopes a caller may hand out: within a key's own scopes, and
    /// `deployment:admin` only from a deployment owner.
    async fn require_grantable(&self, caller: &Caller, scopes: &[String]) -> Result<(), ServiceError> {
        if !caller.covers_scopes(scopes) {
            return Err(ServiceError::Denied(Denied::Role).with_message("a key cannot grant scopes beyond its own"));
        }
        let names_deployment = scopes.iter().any(|s| s == DEPLOYMENT_SCOPE || s == "deployment:*");
        if names_deployment && !caller.is_deployment_owner(&self.store).await? {
            return Err(ServiceError::Denied(Denied::NotDeploymentOwner));
        }
        Ok(())
    }

    /// Plan gating: a project whose `key_management` entitlement requires
    /// an upgrade creates no keys, on any path.
    async fn require_key_management(&self, caller: &Caller, project_id: &str) -> Result<(), ServiceError> {
        if caller.is_system() {
            return Ok(());
        }
        let gated = self
            .store
            .entitlements(project_id)
            .await?
            .iter()
            .any(|e| e.product == KEY_MANAGEMENT && !e.state.grants_access());
        if gated {
            return Err(ServiceError::Denied(Denied::NotEntitled(KEY_MANAGEMENT)));
        }
        Ok(())
    }

    fn validate_new_key(&self, new: &NewKey) -> Result<(), ServiceError> {
        if !valid_name(&new.name) {
            return Err(ServiceError::Invalid("name must be 1 to 64 letters, digits or underscores".into()));
        }
        if new.description.chars().count() > 1000 {
            return Err(ServiceError::Invalid("description must be at most 1000 characters".into()));
        }
        if let Some(at) = new.expires_at {
            validate_expiry(at, now_ms())?;
        }
        self.catalog.validate(&new.scopes)?;
        new.limits.validate()?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert_key(
        &self,
        tx: &mut Tx<'_>,
        caller: &Caller,
        project_id: &str,
        new: NewKey,
        is_default: bool,
        rotated_from: Option<&str>,
        now: i64,
    ) -> Result<Issued, ServiceError> {
        let secret = Token::generate(&self.prefix, new.kind, new.mode).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        let parsed = token::parse(secret.expose()).expect("a generated token parses");
        let row = NewApiKey {
            id: new_id("key"),
            project_id: project_id.to_string(),
            name: new.name,
            description: new.description,
            kind: new.kind,
            mode: new.mode,
            scopes: new.scopes,
            owner_user_id: new.owner_user_id,
            owner_service_account_id: new.owner_service_account_id,
            created_by: caller.audit_name(),
            created_at: now,
            expires_at: new.expires_at,
            display_prefix: parsed.display_prefix.to_string(),
            last4: secret.last4().to_string(),
            fingerprint: self.verifier.fingerprinter().fingerprint(secret.expose()).to_hex(),
            pepper_id: self.verifier.fingerprinter().pepper_id().to_string(),
            is_default,
            rotated_from: rotated_from.map(str::to_string),
            enabled: new.limits.enabled,
            meta: new.limits.validate()?,
            external_id: new.limits.external_id,
            ratelimits: new.limits.ratelimits,
            credits: new.limits.credits,
            imported: false,
        };
        tx.insert_key(&row).await?;
        let data = json!({"name": row.name, "kind": row.kind.as_str(), "mode": row.mode.as_str(), "scopes": row.scopes, "expires_at": row.expires_at, "last4": row.last4});
        self.audit(tx, caller, Some(project_id), "api_key.created", &row.id, data, now)
            .await?;
        let key = tx.key(&row.id).await?.ok_or(ServiceError::NotFound("key"))?;
        Ok(Issued { key, secret })
    }

    pub async fn list_keys(&self, caller: &Caller, project_id: &str) -> Result<Vec<ApiKey>, ServiceError> {
        self.view_project(caller, project_id, Action::ViewKeys).await?;
        Ok(self.store.keys_of_project(project_id).await?)
    }

    pub async fn get_key(&self, caller: &Caller, key_id: &str) -> Result<ApiKey, ServiceError> {
        let key = self.store.key(key_id).await?.ok_or(ServiceError::NotFound("key"))?;
        caller
            .authorize(&self.store, &key.project_id, Action::ViewKeys, Some(KeyTarget::of(&key)))
            .await
            .map_err(|d| hidden(d, "key"))?;
        Ok(key)
    }

    pub async fn update_key(&self, caller: &Caller, key_id: &str, update: KeyUpdate) -> Result<ApiKey, ServiceError> {
        let key = self.key_for_change(caller, key_id, Action::UpdateKey).await?;
        if update.name.as_deref().is_some_and(|n| !valid_name(n)) {
            return Err(ServiceError::Invalid("name must be 1 to 64 letters, digits or underscores".into()));
        }
        if key.is_default && update.name.is_some() {
            return Err(ServiceError::Conflict("the default key's name cannot change".into()));
        }
        if let Some(scopes) = &update.scopes {
            self.catalog.validate(scopes)?;
            self.require_grantable(caller, scopes).await?;
        }
        if update.description.as_ref().is_some_and(|d| d.chars().count() > 1000) {
            return Err(ServiceError::Invalid("description must be at most 1000 characters".into()));
        }
        if let Some(Some(at)) = update.expires_at {
            validate_expiry(at, now_ms())?;
        }
        if let Some(Some(id)) = &update.external_id {
            limits::validate_external_id(id)?;
        }
        if let Some(ratelimits) = &update.ratelimits {
            limits::validate_ratelimits(ratelimits)?;
        }
        if let Some(Some(credits)) = &update.credits {
            limits::validate_credits(credits)?;
        }
        if update.changed_fields().is_empty() {
            return Err(ServiceError::Invalid("the update names no field to change".into()));
        }
        let now = now_ms();
        let mut tx = self.store.begin().await?;
        tx.update_key(key_id, &update).await?;
        let data = json!({
            "changed": update.changed_fields(),
            "name": update.name,
            "description_changed": update.description.is_some(),
            "scopes": update.scopes,
            "expires_at": update.expires_at,
            "enabled": update.enabled,
            "ratelimits": update.ratelimits,
            "credits": update.credits,
            "mode": key.mode.as_str(),
        });
        self.audit(&mut tx, caller, Some(&key.project_id), "api_key.updated", key_id, data, now)
            .await?;
        let updated = tx.key(key_id).await?.ok_or(ServiceError::NotFound("key"))?;
        tx.commit().await?;
        self.verifier.key_changed(&key.fingerprint).await;
        Ok(updated)
    }

    /// Revokes a key now. Revoking a revoked key changes nothing.
    pub async fn revoke_key(&self, caller: &Caller, key_id: &str, reason: RevokeReason) -> Result<ApiKey, ServiceError> {
        let key = self.key_for_change(caller, key_id, Action::RevokeKey).await?;
        if key.is_default && caller.is_person() {
            return Err(ServiceError::Conflict(
                "the default key cannot be revoked; rotate it instead".into(),
            ));
        }
        let now = now_ms();
        let mut tx = self.store.begin().await?;
        self.revoke_in(&mut tx, caller, &key, reason, now).await?;
        let revoked = tx.key(&key.id).await?.ok_or(ServiceError::NotFound("key"))?;
        tx.commit().await?;
        self.verifier.key_changed(&key.fingerprint).await;
        Ok(revoked)
    }

    /// Revokes `key` from `now` inside `tx` and, if that changed it, records
    /// `api_key.revoked`. The caller forgets the key in the verify cache
    /// after the commit.
    pub(crate) async fn revoke_in(
        &self,
        tx: &mut Tx<'_>,
        caller: &Caller,
        key: &ApiKey,
        reason: RevokeReason,
        now: i64,
    ) -> Result<bool, ServiceError> {
        let changed = tx.revoke_key(&key.id, now, reason).await?;
        if changed {
            crate::metrics::Metrics::add(&crate::metrics::METRICS.revocations, 1);
            let data = json!({"reason": reason.as_str(), "mode": key.mode.as_str(), "scopes": key.scopes});
            self.audit(tx, caller, Some(&key.project_id), "api_key.revoked", &key.id, data, now)
                .await?;
        }
        Ok(changed)
    }

    /// A successor with the same settings. The old key stops at once, or
    /// after `overlap_seconds` by itself.
    pub async fn rotate_key(&self, caller: &Caller, key_id: &str, overlap_seconds: u64) -> Result<Issued, ServiceError> {
        let old = self.key_for_change(caller, key_id, Action::RotateKey).await?;
        self.require_revealable(caller, &old).await?;
        let now = now_ms();
        if old.is_revoked_at(now) {
            return Err(ServiceError::Conflict("a revoked key cannot be rotated".into()));
        }
        if old.is_expired_at(now) && !old.is_default {
            return Err(ServiceError::Conflict("an expired key cannot be rotated; create a new one".into()));
        }
        if old.revoked_at.is_some() {
            return Err(ServiceError::Conflict("this key is already being rotated out".into()));
        }
        let overlap_ms = i64::try_from(overlap_seconds)
            .ok()
            .and_then(|s| s.checked_mul(1000))
            .filter(|ms| *ms <= 30 * 86_400_000);
        let overlap_ms = overlap_ms.ok_or_else(|| ServiceError::Invalid("overlap_seconds must be at most 30 days".into()))?;
        let mut tx = self.store.begin().await?;
        if overlap_ms == 0 {
            self.revoke_in(&mut tx, caller, &old, RevokeReason::Rotated, now).await?;
        } else {
            tx.revoke_key(&old.id, now + overlap_ms, RevokeReason::Rotated).await?;
        }
        let successor = NewKey {
            name: if old.is_default {
                default_key_name(&old.project_id)
            } else {
                old.name.clone()
            },
            description: old.description.clone(),
            kind: old.kind,
            mode: old.mode,
            scopes: old.scopes.clone(),
            // An expired default key rotates into a working one.
            expires_at: old.expires_at.filter(|t| *t > now),
            owner_user_id: old.owner_user_id.clone(),
            owner_service_account_id: old.owner_service_account_id.clone(),
            limits: self.successor_limits(&old, now).await?,
        };
        let issued = self
            .insert_key(&mut tx, caller, &old.project_id, successor, old.is_default, Some(&old.id), now)
            .await?;
        let data =
            json!({"new_key_id": issued.key.id, "overlap_seconds": overlap_seconds, "mode": old.mode.as_str(), "scopes": old.scopes});
        self.audit(&mut tx, caller, Some(&old.project_id), "api_key.rotated", &old.id, data, now)
            .await?;
        tx.commit().await?;
        self.verifier.key_changed(&old.fingerprint).await;
        Ok(issued)
    }

    async fn key_for_change(&self, caller: &Caller, key_id: &str, action: Action) -> Result<ApiKey, ServiceError> {
        let key = self.store.key(key_id).await?.ok_or(ServiceError::NotFound("key"))?;
        caller
            .authorize(&self.store, &key.project_id, action, Some(KeyTarget::of(&key)))
            .await
            .map_err(|d| hidden(d, "key"))?;
        Ok(key)
    }

    /// A successor keeps the old key's limits, with the credits it has left.
    async fn successor_limits(&self, old: &ApiKey, now: i64) -> Result<KeyLimits, ServiceError> {
        let credits = match old.credits {
            None => None,
            Some(credits) => {
                let boundary = credits.refill.map(|r| r.interval.last_boundary(now));
                let remaining = self.store.credits_left(&old.id, boundary).await?.unwrap_or(credits.remaining);
                Some(Credits { remaining, ..credits })
            }
        };
        Ok(KeyLimits {
            enabled: old.enabled,
            meta: old.meta.clone(),
            external_id: old.external_id.clone(),
            ratelimits: old.ratelimits.clone(),
            credits,
        })
    }

    /// Rotation hands the caller a new secret with the old key's powers:
    /// only a caller who already holds those powers may have it. A key
    /// must cover the scopes, and a key with management scopes may only
    /// be rotated by someone whose role is at least its owner's.
    async fn require_revealable(&self, caller: &Caller, key: &ApiKey) -> Result<(), ServiceError> {
        if caller.is_system() || caller.owns(KeyTarget::of(key)) {
            return Ok(());
        }
        if !caller.covers_scopes(&key.scopes) {
            return Err(ServiceError::Denied(Denied::Role).with_message("a key cannot rotate a key with scopes beyond its own"));
        }
        if !crate::keys::scopes::grants_management(&key.scopes) {
            return Ok(());
        }
        let caller_role = caller.role_in(&self.store, &key.project_id).await?;
        let owner_role = match (&key.owner_user_id, &key.owner_service_account_id) {
            (Some(user), _) => self.store.role_of_user(&key.project_id, user).await?,
            (None, Some(account)) => self.store.role_of_service_account(&key.project_id, account).await?,
            (None, None) => None,
        };
        if owner_role > caller_role {
            return Err(ServiceError::Denied(Denied::Role).with_message("rotating this key would hand over its owner's higher role"));
        }
        Ok(())
    }

    /// Reach, scope and role for a read of the project.
    async fn view_project(&self, caller: &Caller, project_id: &str, action: Action) -> Result<Role, ServiceError> {
        self.require_project(project_id).await?;
        caller
            .authorize(&self.store, project_id, action, None)
            .await
            .map_err(|d| hidden(d, "project"))
    }

    pub async fn set_entitlement(
        &self,
        caller: &Caller,
        project_id: &str,
        product: &str,
        state: EntitlementState,
    ) -> Result<Entitlement, ServiceError> {
        self.view_project(caller, project_id, Action::SetEntitlement).await?;
        // The billing system owns products: it may gate one before any scope names it.
        let well_formed = (1..=64).contains(&product.len()) && product.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
        if !well_formed {
            return Err(ServiceError::Invalid(format!(
                "product {product:?} must be 1 to 64 of [A-Za-z0-9_.-]"
            )));
        }
        let now = now_ms();
        let mut tx = self.store.begin().await?;
        tx.set_entitlement(project_id, product, state, now).await?;
        self.audit(
            &mut tx,
            caller,
            Some(project_id),
            "entitlement.updated",
            product,
            json!({"state": state.as_str()}),
            now,
        )
        .await?;
        tx.commit().await?;
        self.verifier.entitlements_changed(project_id).await;
        Ok(Entitlement {
            product: product.to_string(),
            state,
            updated_at: now,
        })
    }

    pub async fn entitlements(&self, caller: &Caller, project_id: &str) -> Result<Vec<Entitlement>, ServiceError> {
        self.view_project(caller, project_id, Action::ViewKeys).await?;
        Ok(self.store.entitlements(project_id).await?)
    }

    /// Adds a person to the project or changes their role. Nobody raises
    /// anyone above their own role, only an Owner changes an Owner's role,
    /// and the last Owner stays. A person's password is never touched: a
    /// new person gets an invitation to choose one.
    pub async fn add_member(&self, caller: &Caller, project_id: &str, email: &str, role: Role) -> Result<AddedMember, ServiceError> {
        let caller_role = self.view_project(caller, project_id, Action::ManageMembers).await?;
        let email = valid_email(email)?;
        if role > caller_role {
            return Err(ServiceError::Denied(Denied::Role).with_message("nobody can grant a role above their own"));
        }
        let now = now_ms();
        let mut tx = self.store.begin().await?;
        let user_id = tx.ensure_user(&new_id("user"), &email, now).await?;
        let previous = tx.role_of_user(project_id, &user_id).await?;
        if previous == Some(Role::Owner) && role != Role::Owner {
            if caller_role != Role::Owner {
                return Err(ServiceError::Denied(Denied::Role).with_message("only an owner can change an owner's role"));
            }
            if tx.owner_count(project_id).await? <= 1 {
                return Err(ServiceError::Conflict("the project's last owner cannot be demoted".into()));
            }
        }
        tx.set_membership(project_id, &user_id, role, now).await?;
        let (action, data) = match previous {
            None => ("member.added", json!({"role": role.as_str()})),
            Some(old) => ("member.role_changed", json!({"role": role.as_str(), "previous_role": old.as_str()})),
        };
        self.audit(&mut tx, caller, Some(project_id), action, &user_id, data, now).await?;
        let invitation = if tx.invitable(&user_id, project_id).await? {
            Some(self.invite_in(&mut tx, caller, &user_id, project_id, now).await?)
        } else {
            None
        };
        tx.commit().await?;
        Ok(AddedMember {
            member: Member { user_id, email, role },
            invitation,
        })
    }

    /// Removes a person from the project and revokes the personal keys
    /// they hold in it. Only an Owner removes an Owner; the last Owner stays.
    pub async fn remove_member(&self, caller: &Caller, project_id: &str, user_id: &str) -> Result<(), ServiceError> {
        let caller_role = self.view_project(caller, project_id, Action::ManageMembers).await?;
        let now = now_ms();
        let mut tx = self.store.begin().await?;
        let Some(role) = tx.role_of_user(project_id, user_id).await? else {
            return Err(ServiceError::NotFound("member"));
        };
        if role > caller_role {
            return Err(ServiceError::Denied(Denied::Role).with_message("nobody can remove a member above their own role"));
        }
        if role == Role::Owner && tx.owner_count(project_id).await? <= 1 {
            return Err(ServiceError::Conflict("the project's last owner cannot be removed".into()));
        }
        tx.remove_membership(project_id, user_id).await?;
        self.audit(
            &mut tx,
            caller,
            Some(project_id),
            "member.removed",
            user_id,
            json!({"role": role.as_str()}),
            now,
        )
        .await?;
        let mut revoked = Vec::new();
        for key in tx.personal_keys(project_id, user_id).await? {
            if self.revoke_in(&mut tx, caller, &key, RevokeReason::Manual, now).await? {
                revoked.push(key.fingerprint);
            }
        }
        tx.commit().await?;
        for fingerprint in revoked {
            self.verifier.key_changed(&fingerprint).await;
        }
        Ok(())
    }

    /// Brings in keys of another system by the SHA-256 of their tokens, all
    /// or none: a bad row refuses the batch, naming its index.
    pub async fn import_keys(&self, caller: &Caller, project_id: &str, rows: Vec<ImportedKey>) -> Result<Vec<ApiKey>, ServiceError> {
        let target = KeyTarget {
            owner_user_id: caller.user_id.as_deref(),
            owner_service_account_id: caller.service_account_id.as_deref(),
            mode: if rows.iter().all(|r| r.mode == Mode::Test) {
                Mode::Test
            } else {
                Mode::Live
            },
        };
        caller
            .authorize(&self.store, project_id, Action::CreateKey, Some(target))
            .await
            .map_err(|d| hidden(d, "project"))?;
        if rows.is_empty() || rows.len() > MAX_IMPORT {
            return Err(ServiceError::Invalid(format!("an import takes 1 to {MAX_IMPORT} keys")));
        }
        self.require_key_management(caller, project_id).await?;
        let now = now_ms();
        let mut prepared = Vec::with_capacity(rows.len());
        for (i, row) in rows.into_iter().enumerate() {
            let at = |e: ServiceError| ServiceError::Invalid(format!("keys[{i}]: {e}"));
            self.require_grantable(caller, &row.scopes).await?;
            prepared.push(self.imported_row(caller, project_id, row, now).map_err(at)?);
        }
        let mut tx = self.store.begin().await?;
        let mut keys = Vec::with_capacity(prepared.len());
        for (i, row) in prepared.iter().enumerate() {
            tx.insert_key(row).await.map_err(|e| match ServiceError::from(e) {
                ServiceError::Conflict(_) => ServiceError::Conflict(format!(
                    "keys[{i}]: the name {:?} or the token is already in this deployment",
                    row.name
                )),
                other => other,
            })?;
            let data = json!({"name": row.name, "kind": row.kind.as_str(), "mode": row.mode.as_str(), "scopes": row.scopes, "expires_at": row.expires_at, "last4": row.last4, "imported": true});
            self.audit(&mut tx, caller, Some(project_id), "api_key.created", &row.id, data, now)
                .await?;
            keys.push(tx.key(&row.id).await?.ok_or(ServiceError::NotFound("key"))?);
        }
        tx.commit().await?;
        self.verifier.set_imports_exist(true);
        Ok(keys)
    }

    fn imported_row(&self, caller: &Caller, project_id: &str, row: ImportedKey, now: i64) -> Result<NewApiKey, ServiceError> {
        let sha256 = row.sha256.to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ServiceError::Invalid("sha256 must be 64 hex characters".into()));
        }
        let printable = |t: &str| t.bytes().all(|b| b.is_ascii_graphic());
        if !(1..=32).contains(&row.prefix.len()) || !printable(&row.prefix) {
            return Err(ServiceError::Invalid("prefix must be 1 to 32 printable ASCII characters".into()));
        }
        if row.last4.len() != 4 || !printable(&row.last4) {
            return Err(ServiceError::Invalid("last4 must be 4 printable ASCII characters".into()));
        }
        let new = NewKey {
            name: row.name,
            description: String::new(),
            kind: Kind::Secret,
            mode: row.mode,
            scopes: row.scopes,
            expires_at: row.expires_at,
            owner_user_id: caller.user_id.clone(),
            owner_service_account_id: caller.service_account_id.clone(),
            limits: KeyLimits {
                meta: row.meta,
                external_id: row.external_id,
                ..KeyLimits::default()
            },
        };
        self.validate_new_key(&new)?;
        let fingerprinter = self.verifier.fingerprinter();
        Ok(NewApiKey {
            id: new_id("key"),
            project_id: project_id.to_string(),
            name: new.name,
            description: new.description,
            kind: new.kind,
            mode: new.mode,
            scopes: new.scopes,
            owner_user_id: new.owner_user_id,
            owner_service_account_id: new.owner_service_account_id,
            created_by: caller.audit_name(),
            created_at: now,
            expires_at: new.expires_at,
            display_prefix: row.prefix,
            last4: row.last4,
            fingerprint: fingerprinter.fingerprint(&verify::imported_secret(&sha256)).to_hex(),
            pepper_id: fingerprinter.pepper_id().to_string(),
            is_default: false,
            rotated_from: None,
            enabled: true,
            meta: new.limits.validate()?,
            external_id: new.limits.external_id,
            ratelimits: Vec::new(),
            credits: None,
            imported: true,
        })
    }

    /// Verifications of the project's keys (or one of them) per hour or
    /// day and outcome, every bucket from `from` to `to` present.
    pub async fn usage(
        &self,
        caller: &Caller,
        project_id: &str,
        key_id: Option<&str>,
        bucket_hours: i64,
        from: i64,
        to: i64,
    ) -> Result<UsageSeries, ServiceError> {
        self.view_project(caller, project_id, Action::ViewKeys).await?;
        if let Some(id) = key_id {
            let key = self.store.key(id).await?.filter(|k| k.project_id == project_id);
            key.ok_or(ServiceError::NotFound("key"))?;
        }
        const HOUR: i64 = 3_600_000;
        let bucket = bucket_hours * HOUR;
        let first = from.div_euclid(bucket) * bucket;
        let last = to.div_euclid(bucket) * bucket;
        if last < first {
            return Err(ServiceError::Invalid("from must not be after to".into()));
        }
        if (last - first) / bucket >= 1000 {
            return Err(ServiceError::Invalid(
                "a usage series has at most 1000 buckets: narrow from and to, or use granularity=day".into(),
            ));
        }
        // The verifies this replica counted since its last flush are part
        // of the answer: a caller reads its own verifies at once, not a
        // second later. Counts a failed flush kept are stored next time.
        if let Err(e) = self.verifier.flush_usage().await {
            tracing::warn!(error = %e, "could not store the counted verifies before reading usage");
        }
        let rows = self
            .store
            .verifications(project_id, key_id, first / HOUR, (last + bucket) / HOUR - 1, bucket_hours)
            .await?;
        let mut series: UsageSeries = (0..=(last - first) / bucket)
            .map(|i| (first + i * bucket, Default::default()))
            .collect();
        for (start, code, count) in rows {
            if let Some((_, counts)) = series.iter_mut().find(|(s, _)| *s == start) {
                *counts.entry(code).or_insert(0) += count;
            }
        }
        Ok(series)
    }

    /// A team identity for the project. Its role is admin, member or
    /// viewer, never above the caller's.
    pub async fn create_service_account(
        &self,
        caller: &Caller,
        project_id: &str,
        name: &str,
        role: Role,
    ) -> Result<ServiceAccount, ServiceError> {
        let caller_role = self.view_project(caller, project_id, Action::ManageMembers).await?;
        let name = name.trim();
        let named = (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
        if !named || name.starts_with("deleted_") {
            return Err(ServiceError::Invalid(
                "a service account's name must be 1 to 64 of [A-Za-z0-9_-]".into(),
            ));
        }
        if role == Role::Owner {
            return Err(ServiceError::Invalid("a service account's role is admin, member or viewer".into()));
        }
        if role > caller_role {
            return Err(ServiceError::Denied(Denied::Role).with_message("nobody can grant a role above their own"));
        }
        let now = now_ms();
        let account = ServiceAccount {
            id: new_id("sa"),
            project_id: project_id.to_string(),
            name: name.to_string(),
            role,
            created_at: now,
        };
        let mut tx = self.store.begin().await?;
        tx.insert_service_account(&account).await.map_err(|e| {
            if e.is_unique_violation() {
                ServiceError::Conflict("a service account with that name already exists in this project".into())
            } else {
                e.into()
            }
        })?;
        let data = json!({"name": account.name, "role": role.as_str()});
        self.audit(&mut tx, caller, Some(project_id), "service_account.created", &account.id, data, now)
            .await?;
        tx.commit().await?;
        Ok(account)
    }

    pub async fn service_accounts(&self, caller: &Caller, project_id: &str) -> Result<Vec<ServiceAccount>, ServiceError> {
        self.view_project(caller, project_id, Action::ViewKeys).await?;
        Ok(self.store.service_accounts(project_id).await?)
    }

    /// Deletes a service account and revokes its keys, each revocation
    /// audited.
    pub async fn delete_service_account(&self, caller: &Caller, project_id: &str, account_id: &str) -> Result<(), ServiceError> {
        let caller_role = self.view_project(caller, project_id, Action::ManageMembers).await?;
        let Some(role) = self.store.role_of_service_account(project_id, account_id).await? else {
            return Err(ServiceError::NotFound("service account"));
        };
        if role > caller_role {
            return Err(ServiceError::Denied(Denied::Role).with_message("nobody can remove an account above their own role"));
        }
        let now = now_ms();
        let mut tx = self.store.begin().await?;
        let mut revoked = Vec::new();
        for key in tx.team_keys(account_id).await? {
            if self.revoke_in(&mut tx, caller, &key, RevokeReason::Manual, now).await? {
                revoked.push(key.fingerprint);
            }
        }
        if !tx.delete_service_account(project_id, account_id, now).await? {
            return Err(ServiceError::NotFound("service account"));
        }
        self.audit(
            &mut tx,
            caller,
            Some(project_id),
            "service_account.deleted",
            account_id,
            json!({"revoked_keys": revoked.len()}),
            now,
        )
        .await?;
        tx.commit().await?;
        for fingerprint in revoked {
            self.verifier.key_changed(&fingerprint).await;
        }
        Ok(())
    }

    pub async fn members(&self, caller: &Caller, project_id: &str) -> Result<Vec<Member>, ServiceError> {
        self.view_project(caller, project_id, Action::ViewKeys).await?;
        Ok(self.store.members(project_id).await?)
    }

    /// The projects the caller can reach: a key's own, or a person's.
    pub async fn projects(&self, caller: &Caller) -> Result<Vec<Project>, ServiceError> {
        if let Some(home) = &caller.project_id {
            return Ok(self.store.project(home).await?.into_iter().collect());
        }
        match &caller.user_id {
            Some(user) => Ok(self.store.projects_of_user(user).await?),
            None => Ok(Vec::new()),
        }
    }

    pub async fn project(&self, caller: &Caller, project_id: &str) -> Result<Project, ServiceError> {
        let project = self.require_project(project_id).await?;
        caller
            .authorize(&self.store, project_id, Action::ViewKeys, None)
            .await
            .map_err(|d| hidden(d, "project"))?;
        Ok(project)
    }

    pub async fn audit_events(
        &self,
        caller: &Caller,
        project_id: &str,
        action: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, ServiceError> {
        self.view_project(caller, project_id, Action::ViewAudit).await?;
        Ok(self.store.audit_events(project_id, action, limit).await?)
    }

    /// Where leak alerts go, and whether leaks revoke or only notify.
    pub async fn set_alert_settings(
        &self,
        caller: &Caller,
        project_id: &str,
        settings: AlertSettings,
        leak_policy: Option<&str>,
    ) -> Result<AlertSettings, ServiceError> {
        self.view_project(caller, project_id, Action::ConfigureProject).await?;
        self.check_alert_settings(&settings).await?;
        if leak_policy.is_some_and(|p| p != "revoke" && p != "notify_only") {
            return Err(ServiceError::Invalid("leak_policy must be revoke or notify_only".into()));
        }
        let now = now_ms();
        let mut tx = self.store.begin().await?;
        tx.set_alert_settings(project_id, &settings, now).await?;
        if let Some(policy) = leak_policy {
            tx.set_leak_policy(project_id, policy).await?;
        }
        let data = json!({"webhook": !settings.webhook_url.is_empty(), "slack": !settings.slack_webhook_url.is_empty(), "email": settings.email, "leak_policy": leak_policy});
        self.audit(&mut tx, caller, Some(project_id), "project.alerts_updated", project_id, data, now)
            .await?;
        tx.commit().await?;
        Ok(settings)
    }

    /// The project's alert settings, and whether the caller may see where
    /// the channels point (Owners and Admins) or only whether they are set.
    pub async fn alert_settings(&self, caller: &Caller, project_id: &str) -> Result<(AlertSettings, bool), ServiceError> {
        let role = self.view_project(caller, project_id, Action::ViewKeys).await?;
        let mut settings = self.store.alert_settings(project_id).await?;
        // Email is on only where it can go out.
        settings.email &= self.email_alerts;
        Ok((settings, role >= Role::Admin))
    }

    /// A project's incidents, newest first, each with every place it was seen.
    pub async fn incidents(&self, caller: &Caller, project_id: &str) -> Result<Vec<(Incident, Vec<(Place, i64)>)>, ServiceError> {
        self.view_project(caller, project_id, Action::ViewKeys).await?;
        let mut out = Vec::new();
        for incident in self.store.incidents_of_project(project_id).await? {
            let places = self.store.sightings(&incident.id).await?;
            out.push((incident, places));
        }
        Ok(out)
    }

    /// Every leak source's health. Sources serve the whole deployment, so
    /// this is for deployment owners.
    pub async fn source_statuses(&self, caller: &Caller) -> Result<Vec<crate::store::SourceStatus>, ServiceError> {
        caller.authorize_deployment(&self.store, DeploymentAction::ViewSources).await?;
        Ok(self.store.source_statuses().await?)
    }

    async fn require_project(&self, project_id: &str) -> Result<Project, ServiceError> {
        self.store.project(project_id).await?.ok_or(ServiceError::NotFound("project"))
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn audit(
        &self,
        tx: &mut Tx<'_>,
        caller: &Caller,
        project_id: Option<&str>,
        action: &str,
        target: &str,
        data: serde_json::Value,
        now: i64,
    ) -> Result<(), ServiceError> {
        tx.append_audit(NewAuditEvent {
            id: new_id("evt"),
            project_id: project_id.map(str::to_string),
            actor: caller.audit_name(),
            action: action.to_string(),
            target: target.to_string(),
            ip: caller.ip.clone(),
            data,
            created_at: now,
        })
        .await?;
        Ok(())
    }
}

/// A project just created, with the keys made for it (each secret shown once).
#[derive(Debug)]
pub struct NewProject {
    pub project: Project,
    pub default_key: Issued,
    /// For a key that created the project: a management key in it.
    pub admin_key: Option<Issued>,
}

/// A project member who was just added, with the invitation that lets a
/// new person choose their own password.
#[derive(Debug)]
pub struct AddedMember {
    pub member: Member,
    pub invitation: Option<Invitation>,
}

impl ServiceError {
    /// The same refusal, with a message that says what was refused.
    fn with_message(self, message: &str) -> ServiceError {
        match self {
            ServiceError::Denied(d) => ServiceError::Refused(d, message.to_string()),
            other => other,
        }
    }
}

/// A refusal about an object the caller cannot reach reads exactly like
/// "not found"; every other refusal is passed on.
fn hidden(denied: Denied, what: &'static str) -> ServiceError {
    match denied {
        Denied::Invisible(_) => ServiceError::NotFound(what),
        other => ServiceError::Denied(other),
    }
}

/// An expiry must lie in the future and before 9999-12-31.
fn validate_expiry(at: i64, now: i64) -> Result<(), ServiceError> {
    if at <= now {
        return Err(ServiceError::Invalid("expires_at must be in the future".into()));
    }
    if at >= MAX_EXPIRES_AT_MS {
        return Err(ServiceError::Invalid("expires_at must be before 9999-12-31".into()));
    }
    Ok(())
}

pub(crate) fn valid_email(email: &str) -> Result<String, ServiceError> {
    let email = email.trim().to_ascii_lowercase();
    if !email.contains('@') || email.len() > 320 || email.chars().any(char::is_control) {
        return Err(ServiceError::Invalid("email is not valid".into()));
    }
    Ok(email)
}

fn is_management_resource(resource: &str) -> bool {
    crate::keys::scopes::ADMIN_SCOPES
        .iter()
        .any(|s| crate::keys::scopes::product_of(s) == resource)
}

/// `{projectId}_default_{suffix}`: a fresh suffix at each rotation keeps
/// the successor's name free while the old key overlaps.
fn default_key_name(project_id: &str) -> String {
    format!("{project_id}_default_{}", token::random_base62(6).to_ascii_lowercase())
}

/// The value kept for a key id, made on its first use: the verify path's
/// per-key maps copy the id once, on insertion, never on a hit.
pub(crate) fn per_key<'a, V: Default>(map: &'a mut std::collections::HashMap<String, V>, key_id: &str) -> &'a mut V {
    if !map.contains_key(key_id) {
        map.insert(key_id.to_string(), V::default());
    }
    map.get_mut(key_id).expect("just inserted")
}

/// `prefix_` + ULID: sortable by creation time, safe in names and URLs.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", ulid::Ulid::new().to_string().to_ascii_lowercase())
}
