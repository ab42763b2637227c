//! The key service: lifecycle operations that join pure key logic, the
//! store and the audit log. Every change is written in one transaction
//! together with its audit event, and the verify cache forgets a key before
//! the change is reported done.

mod access;
mod people;
pub mod verify;

use std::sync::Arc;

use serde_json::json;

pub use access::{Action, Caller, Denied};
pub use people::{NewSession, SESSION_MS};
pub use verify::{Verdict, Verifier, VerifyCode};

use crate::keys::fingerprint::Fingerprinter;
use crate::keys::scopes::{Catalog, ScopeError};
use crate::keys::token::{self, Kind, Mode, Token};
use crate::keys::valid_name;
use crate::store::{
    now_ms, AlertSettings, ApiKey, AuditEvent, Entitlement, EntitlementState, Incident, KeyUpdate, Member, NewApiKey, NewAuditEvent, Place,
    Project, RevokeReason, Role, Store, StoreError, Tx,
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
    /// Another member to own the key (admins only); default: the caller.
    pub owner_user_id: Option<String>,
}

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
        })
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
        let verdict = self.verifier.verify(bearer, None, None).await.map_err(|_| Denied::Unavailable)?;
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
        };
        let issued = self.insert_key(&mut tx, &owner, &project.id, admin, false, None, now).await?;
        tx.commit().await?;
        Ok((project, issued, user_id))
    }

    pub async fn create_project(&self, caller: &Caller, name: &str) -> Result<(Project, Issued), ServiceError> {
        caller.require_scope(Action::CreateProject)?;
        let name = name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err(ServiceError::Invalid("project name must be 1 to 200 characters".into()));
        }
        let now = now_ms();
        let mut tx = self.store.begin().await?;
        let result = self.insert_project(&mut tx, caller, name, now).await?;
        tx.commit().await?;
        Ok(result)
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
        };
        let issued = self.insert_key(tx, caller, &project.id, default, true, None, now).await?;
        Ok((project, issued))
    }

    pub async fn create_key(&self, caller: &Caller, project_id: &str, new: NewKey) -> Result<Issued, ServiceError> {
        self.require_project(project_id).await?;
        let owner = new.owner_user_id.clone().or_else(|| caller.user_id.clone());
        caller
            .authorize(&self.store, project_id, Action::CreateKey, owner.as_deref(), Some(new.mode))
            .await?;
        self.validate_new_key(&new)?;
        let now = now_ms();
        let mut tx = self.store.begin().await?;
        let issued = self
            .insert_key(
                &mut tx,
                caller,
                project_id,
                NewKey {
                    owner_user_id: owner,
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

    fn validate_new_key(&self, new: &NewKey) -> Result<(), ServiceError> {
        if !valid_name(&new.name) {
            return Err(ServiceError::Invalid("name must be 1 to 64 letters, digits or underscores".into()));
        }
        if new.description.len() > 1000 {
            return Err(ServiceError::Invalid("description must be at most 1000 bytes".into()));
        }
        if new.expires_at.is_some_and(|t| t <= now_ms()) {
            return Err(ServiceError::Invalid("expires_at must be in the future".into()));
        }
        self.catalog.validate(&new.scopes)?;
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
            owner_service_account_id: None,
            created_by: caller.audit_name(),
            created_at: now,
            expires_at: new.expires_at,
            display_prefix: parsed.display_prefix.to_string(),
            last4: secret.last4().to_string(),
            fingerprint: self.verifier.fingerprinter().fingerprint(secret.expose()).to_hex(),
            pepper_id: self.verifier.fingerprinter().pepper_id().to_string(),
            is_default,
            rotated_from: rotated_from.map(str::to_string),
        };
        tx.insert_key(&row).await?;
        let data = json!({"name": row.name, "kind": row.kind.as_str(), "mode": row.mode.as_str(), "scopes": row.scopes, "expires_at": row.expires_at, "last4": row.last4});
        self.audit(tx, caller, Some(project_id), "api_key.created", &row.id, data, now)
            .await?;
        let key = tx.key(&row.id).await?.ok_or(ServiceError::NotFound("key"))?;
        Ok(Issued { key, secret })
    }

    pub async fn list_keys(&self, caller: &Caller, project_id: &str) -> Result<Vec<ApiKey>, ServiceError> {
        self.require_project(project_id).await?;
        caller.authorize(&self.store, project_id, Action::ViewKeys, None, None).await?;
        Ok(self.store.keys_of_project(project_id).await?)
    }

    pub async fn get_key(&self, caller: &Caller, key_id: &str) -> Result<ApiKey, ServiceError> {
        let key = self.store.key(key_id).await?.ok_or(ServiceError::NotFound("key"))?;
        caller.authorize(&self.store, &key.project_id, Action::ViewKeys, None, None).await?;
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
        }
        if update.description.as_ref().is_some_and(|d| d.len() > 1000) {
            return Err(ServiceError::Invalid("description must be at most 1000 bytes".into()));
        }
        let now = now_ms();
        let mut tx = self.store.begin().await?;
        tx.update_key(key_id, &update).await?;
        let data = json!({"name": update.name, "description_changed": update.description.is_some(), "scopes": update.scopes, "expires_at": update.expires_at, "mode": key.mode.as_str()});
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
        let now = now_ms();
        if old.is_revoked_at(now) {
            return Err(ServiceError::Conflict("a revoked key cannot be rotated".into()));
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
            expires_at: old.expires_at,
            owner_user_id: old.owner_user_id.clone(),
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
            .authorize(&self.store, &key.project_id, action, key.owner_user_id.as_deref(), Some(key.mode))
            .await?;
        Ok(key)
    }

    pub async fn set_entitlement(
        &self,
        caller: &Caller,
        project_id: &str,
        product: &str,
        state: EntitlementState,
    ) -> Result<Entitlement, ServiceError> {
        self.require_project(project_id).await?;
        caller
            .authorize(&self.store, project_id, Action::SetEntitlement, None, None)
            .await?;
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
        self.require_project(project_id).await?;
        caller.authorize(&self.store, project_id, Action::ViewKeys, None, None).await?;
        Ok(self.store.entitlements(project_id).await?)
    }

    pub async fn add_member(&self, caller: &Caller, project_id: &str, email: &str, role: Role) -> Result<Member, ServiceError> {
        self.require_project(project_id).await?;
        caller.authorize(&self.store, project_id, Action::ManageMembers, None, None).await?;
        let email = email.trim().to_ascii_lowercase();
        if !email.contains('@') || email.len() > 320 || email.chars().any(char::is_control) {
            return Err(ServiceError::Invalid("email is not valid".into()));
        }
        if role == Role::Owner && caller.role_in(&self.store, project_id).await? != Some(Role::Owner) {
            return Err(Denied::Role.into());
        }
        let now = now_ms();
        let mut tx = self.store.begin().await?;
        let user_id = tx.ensure_user(&new_id("user"), &email, now).await?;
        tx.set_membership(project_id, &user_id, role, now).await?;
        self.audit(
            &mut tx,
            caller,
            Some(project_id),
            "member.added",
            &user_id,
            json!({"role": role.as_str()}),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Member { user_id, email, role })
    }

    pub async fn members(&self, caller: &Caller, project_id: &str) -> Result<Vec<Member>, ServiceError> {
        self.require_project(project_id).await?;
        caller.authorize(&self.store, project_id, Action::ViewKeys, None, None).await?;
        Ok(self.store.members(project_id).await?)
    }

    pub async fn projects(&self, caller: &Caller) -> Result<Vec<Project>, ServiceError> {
        match &caller.user_id {
            Some(user) => Ok(self.store.projects_of_user(user).await?),
            None => Ok(Vec::new()),
        }
    }

    pub async fn project(&self, caller: &Caller, project_id: &str) -> Result<Project, ServiceError> {
        let project = self.require_project(project_id).await?;
        caller.authorize(&self.store, project_id, Action::ViewKeys, None, None).await?;
        Ok(project)
    }

    pub async fn audit_events(
        &self,
        caller: &Caller,
        project_id: &str,
        action: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, ServiceError> {
        self.require_project(project_id).await?;
        caller.authorize(&self.store, project_id, Action::ViewAudit, None, None).await?;
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
        self.require_project(project_id).await?;
        caller
            .authorize(&self.store, project_id, Action::ConfigureProject, None, None)
            .await?;
        for url in [&settings.webhook_url, &settings.slack_webhook_url] {
            let http_or_unset = url.is_empty() || url.starts_with("https://") || url.starts_with("http://");
            if !http_or_unset || url.len() > 2000 {
                return Err(ServiceError::Invalid(format!("{url:?} is not an http(s) URL")));
            }
        }
        if !settings.webhook_url.is_empty() && settings.webhook_secret.len() < 16 {
            return Err(ServiceError::Invalid("webhook_secret must be at least 16 characters".into()));
        }
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

    pub async fn alert_settings(&self, caller: &Caller, project_id: &str) -> Result<AlertSettings, ServiceError> {
        self.require_project(project_id).await?;
        caller.authorize(&self.store, project_id, Action::ViewKeys, None, None).await?;
        Ok(self.store.alert_settings(project_id).await?)
    }

    /// A project's incidents, newest first, each with every place it was seen.
    pub async fn incidents(&self, caller: &Caller, project_id: &str) -> Result<Vec<(Incident, Vec<(Place, i64)>)>, ServiceError> {
        self.require_project(project_id).await?;
        caller.authorize(&self.store, project_id, Action::ViewKeys, None, None).await?;
        let mut out = Vec::new();
        for incident in self.store.incidents_of_project(project_id).await? {
            let places = self.store.sightings(&incident.id).await?;
            out.push((incident, places));
        }
        Ok(out)
    }

    /// Every leak source's health. Sources serve the whole deployment, so
    /// this takes the deployment-wide `projects:admin` scope.
    pub async fn source_statuses(&self, caller: &Caller) -> Result<Vec<crate::store::SourceStatus>, ServiceError> {
        caller.require_scope(Action::ConfigureProject)?;
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

/// `prefix_` + ULID: sortable by creation time, safe in names and URLs.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", ulid::Ulid::new().to_string().to_ascii_lowercase())
}
