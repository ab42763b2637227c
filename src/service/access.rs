//! The authorization model: who is calling, and what they may do.
//!
//! A caller is a key, a console session (a person), or keyward itself.
//! - A key's authority is the intersection of its scopes, the role of its
//!   owner (a member or a service account) in the key's own project, and
//!   that project. Another project's objects are invisible to it: they
//!   answer "not found", as a missing object does.
//! - A person's authority is their role in the project acted on; a project
//!   they do not belong to is invisible to them.
//! - A test-mode key may read, and may change test keys; it may change
//!   nothing that affects live traffic.
//! - Deployment-level actions (creating projects, the leak sources) need a
//!   deployment owner: a person who is one, or a live key with the
//!   `deployment:admin` scope whose owner is one.
//!
//! Roles: Owner and Admin may do everything in a project (Admins never
//! above their own role); Members view, and create, change and revoke
//! their own keys; Viewers view. SECURITY.md states the same model.

use super::verify::VerifyCode;
use crate::keys::scopes;
use crate::keys::token::Mode;
use crate::store::{Role, Store, StoreError};

/// Something done inside one project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ViewKeys,
    CreateKey,
    UpdateKey,
    RevokeKey,
    RotateKey,
    ViewAudit,
    ManageMembers,
    SetEntitlement,
    /// Alert channels and the leak policy.
    ConfigureProject,
}

impl Action {
    /// The scope a key needs for the action.
    pub fn scope(self) -> &'static str {
        match self {
            Action::ViewKeys => "keys:read",
            Action::CreateKey | Action::UpdateKey | Action::RevokeKey | Action::RotateKey => "keys:write",
            Action::ViewAudit => "audit:read",
            Action::ManageMembers => "members:write",
            Action::SetEntitlement | Action::ConfigureProject => "projects:admin",
        }
    }

    fn changes_a_key(self) -> bool {
        matches!(self, Action::CreateKey | Action::UpdateKey | Action::RevokeKey | Action::RotateKey)
    }

    fn is_read(self) -> bool {
        matches!(self, Action::ViewKeys | Action::ViewAudit)
    }

    /// Whether the action can change what live traffic sees: anything but
    /// a read, or a change to a test key.
    fn touches_live(self, key_mode: Option<Mode>) -> bool {
        let changes_a_test_key = self.changes_a_key() && key_mode == Some(Mode::Test);
        !(self.is_read() || changes_a_test_key)
    }
}

/// Something done to the deployment as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentAction {
    CreateProject,
    ViewSources,
    /// The deployment-wide incident list, third-party tokens included.
    ViewIncidents,
    /// The deployment's own alert channels.
    ConfigureAlerts,
}

/// The scope a key needs for any deployment-level action.
pub const DEPLOYMENT_SCOPE: &str = "deployment:admin";

/// The scope a key needs to report a token seen somewhere.
pub const SIGHTINGS_SCOPE: &str = "incidents:write";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("a valid keyward secret key is required ({})", .0.as_str())]
    Unauthenticated(VerifyCode),
    #[error("publishable keys cannot call the management API")]
    Publishable,
    /// The object lies outside what the caller can see; answered exactly
    /// as a missing object.
    #[error("{0} not found")]
    Invisible(&'static str),
    #[error("the key lacks the {0} scope")]
    Scope(&'static str),
    #[error("a test-mode key may read and change test keys, nothing that affects live traffic")]
    TestMode,
    #[error("the key's owner is no longer a member of its project")]
    OwnerGone,
    #[error("the caller's role does not allow this")]
    Role,
    #[error("this needs a deployment owner")]
    NotDeploymentOwner,
    #[error("the project's plan does not include {0}: it requires an upgrade")]
    NotEntitled(&'static str),
    #[error("the key store is unavailable")]
    Unavailable,
}

#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: Option<String>,
    /// The project a key belongs to: the only one it can reach.
    pub project_id: Option<String>,
    pub user_id: Option<String>,
    pub service_account_id: Option<String>,
    pub scopes: Vec<String>,
    pub mode: Option<Mode>,
    pub ip: String,
    /// `Some(component)` for keyward itself acting (leak response, init).
    pub system: Option<&'static str>,
}

impl Caller {
    pub fn from_key(key: &crate::store::ApiKey) -> Caller {
        Caller {
            key_id: Some(key.id.clone()),
            project_id: Some(key.project_id.clone()),
            user_id: key.owner_user_id.clone(),
            service_account_id: key.owner_service_account_id.clone(),
            scopes: key.scopes.clone(),
            mode: Some(key.mode),
            ip: String::new(),
            system: None,
        }
    }

    /// keyward itself, e.g. `system:leak-response`.
    pub fn system(component: &'static str) -> Caller {
        Caller {
            key_id: None,
            project_id: None,
            user_id: None,
            service_account_id: None,
            scopes: vec!["*".into()],
            mode: None,
            ip: String::new(),
            system: Some(component),
        }
    }

    /// A person acting without a key (first-run bootstrap).
    pub fn system_for_user(user_id: &str) -> Caller {
        Caller {
            user_id: Some(user_id.to_string()),
            ..Caller::system("init")
        }
    }

    pub fn with_ip(mut self, ip: String) -> Caller {
        self.ip = ip;
        self
    }

    /// keyward acting on its own authority, not a person's or a key's.
    pub fn is_system(&self) -> bool {
        self.system.is_some() && self.key_id.is_none()
    }

    /// A person or a key, as opposed to keyward itself.
    pub fn is_person(&self) -> bool {
        self.system.is_none()
    }

    pub fn is_key(&self) -> bool {
        self.key_id.is_some()
    }

    fn is_test_mode(&self) -> bool {
        self.mode == Some(Mode::Test)
    }

    /// How the audit log names the actor.
    pub fn audit_name(&self) -> String {
        match (&self.key_id, &self.user_id, self.system) {
            (Some(key), _, _) => format!("key:{key}"),
            (None, Some(user), _) => format!("user:{user}"),
            (None, None, Some(component)) => format!("system:{component}"),
            (None, None, None) => "anonymous".to_string(),
        }
    }

    /// Whether the caller's scopes allow `scope` (people and keyward hold `*`).
    pub fn has_scope(&self, scope: &str) -> bool {
        scopes::allows(&self.scopes, scope)
    }

    pub fn require_scope(&self, action: Action) -> Result<(), Denied> {
        if self.is_system() || self.has_scope(action.scope()) {
            Ok(())
        } else {
            Err(Denied::Scope(action.scope()))
        }
    }

    /// Whether every scope in `wanted` (exact, `resource:*` or `*`) is
    /// within this caller's own: a key cannot mint or reveal a key that
    /// can do more than it can.
    pub fn covers_scopes(&self, wanted: &[String]) -> bool {
        self.is_system() || !self.is_key() || wanted.iter().all(|w| scopes::covers(&self.scopes, w))
    }

    /// The caller's role in `project_id`; `None` when the project is out
    /// of the caller's reach (another project's key, not a member).
    pub async fn role_in(&self, store: &Store, project_id: &str) -> Result<Option<Role>, Denied> {
        if self.is_system() {
            return Ok(Some(Role::Owner));
        }
        if self.project_id.as_deref().is_some_and(|home| home != project_id) {
            return Ok(None);
        }
        let role = match (&self.user_id, &self.service_account_id) {
            (Some(user), _) => store.role_of_user(project_id, user).await,
            (None, Some(account)) => store.role_of_service_account(project_id, account).await,
            (None, None) => Ok(None),
        };
        role.map_err(|_: StoreError| Denied::Unavailable)
    }

    /// Reach, scope, mode and role checks for `action` in a project, in
    /// that order, so that what the caller cannot see answers "not found"
    /// before anything else is said about it. `target` is the key acted
    /// on (or being created), if any. Returns the caller's role.
    pub async fn authorize(&self, store: &Store, project_id: &str, action: Action, target: Option<KeyTarget<'_>>) -> Result<Role, Denied> {
        if self.is_system() {
            return Ok(Role::Owner);
        }
        let what = if target.is_some() { "key" } else { "project" };
        let Some(role) = self.role_in(store, project_id).await? else {
            return Err(if self.project_id.as_deref() == Some(project_id) {
                Denied::OwnerGone
            } else {
                Denied::Invisible(what)
            });
        };
        self.require_scope(action)?;
        if self.is_test_mode() && action.touches_live(target.map(|t| t.mode)) {
            return Err(Denied::TestMode);
        }
        let own_key = target.is_some_and(|t| self.owns(t));
        let allowed = match role {
            Role::Owner | Role::Admin => true,
            Role::Member => action.is_read() || (action.changes_a_key() && own_key),
            Role::Viewer => action.is_read(),
        };
        if allowed {
            Ok(role)
        } else {
            Err(Denied::Role)
        }
    }

    /// Whether the key is the caller's own: the same person, or the same
    /// service account.
    pub fn owns(&self, target: KeyTarget<'_>) -> bool {
        match (target.owner_user_id, target.owner_service_account_id) {
            (Some(user), _) => self.user_id.as_deref() == Some(user),
            (None, Some(account)) => self.service_account_id.as_deref() == Some(account),
            (None, None) => false,
        }
    }

    /// Deployment-level actions: a deployment owner in person, or a live
    /// key with `deployment:admin` whose owner is one. A test-mode key may
    /// read the sources, never create a project.
    pub async fn authorize_deployment(&self, store: &Store, action: DeploymentAction) -> Result<(), Denied> {
        if self.is_system() {
            return Ok(());
        }
        if self.is_key() && !self.has_scope(DEPLOYMENT_SCOPE) {
            return Err(Denied::Scope(DEPLOYMENT_SCOPE));
        }
        if self.is_test_mode() && matches!(action, DeploymentAction::CreateProject | DeploymentAction::ConfigureAlerts) {
            return Err(Denied::TestMode);
        }
        if self.is_deployment_owner(store).await? {
            Ok(())
        } else {
            Err(Denied::NotDeploymentOwner)
        }
    }

    /// Reporting a token seen somewhere (`POST /v1/sightings`): a live key
    /// with `incidents:write` from any project, since a leak is a leak
    /// wherever it is seen, or a deployment owner in person. A report can
    /// revoke a key, which a test-mode key may never cause.
    pub async fn authorize_sighting(&self, store: &Store) -> Result<(), Denied> {
        if self.is_system() {
            return Ok(());
        }
        if self.is_key() {
            if !self.has_scope(SIGHTINGS_SCOPE) {
                return Err(Denied::Scope(SIGHTINGS_SCOPE));
            }
            return if self.is_test_mode() { Err(Denied::TestMode) } else { Ok(()) };
        }
        if self.is_deployment_owner(store).await? {
            Ok(())
        } else {
            Err(Denied::NotDeploymentOwner)
        }
    }

    /// Whether the person behind the caller (a key's owning user) is a
    /// deployment owner. Service accounts never are.
    pub async fn is_deployment_owner(&self, store: &Store) -> Result<bool, Denied> {
        if self.is_system() {
            return Ok(true);
        }
        match &self.user_id {
            Some(user) => store.is_deployment_owner(user).await.map_err(|_| Denied::Unavailable),
            None => Ok(false),
        }
    }
}

/// The key an action is about: its owner and mode.
#[derive(Debug, Clone, Copy)]
pub struct KeyTarget<'a> {
    pub owner_user_id: Option<&'a str>,
    pub owner_service_account_id: Option<&'a str>,
    pub mode: Mode,
}

impl<'a> KeyTarget<'a> {
    pub fn of(key: &'a crate::store::ApiKey) -> KeyTarget<'a> {
        KeyTarget {
            owner_user_id: key.owner_user_id.as_deref(),
            owner_service_account_id: key.owner_service_account_id.as_deref(),
            mode: key.mode,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_caller(scopes: &[&str]) -> Caller {
        Caller {
            key_id: Some("key_x".into()),
            project_id: Some("proj_a".into()),
            user_id: Some("user_a".into()),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            mode: Some(Mode::Live),
            system: None,
            ..Caller::system("t")
        }
    }

    macro_rules! t {
        ($name:ident, $scopes:expr, $action:expr, $expected:expr) => {
            #[test]
            fn $name() {
                assert_eq!(key_caller(&$scopes).require_scope($action).is_ok(), $expected);
            }
        };
    }

    t!(read_scope_views, ["keys:read"], Action::ViewKeys, true);
    t!(read_scope_cannot_create, ["keys:read"], Action::CreateKey, false);
    t!(write_scope_revokes, ["keys:write"], Action::RevokeKey, true);
    t!(wildcard_resource, ["keys:*"], Action::RotateKey, true);
    t!(audit_needs_audit_scope, ["keys:*"], Action::ViewAudit, false);
    t!(star_does_everything, ["*"], Action::SetEntitlement, true);

    macro_rules! live {
        ($name:ident, $action:expr, $mode:expr, $expected:expr) => {
            #[test]
            fn $name() {
                assert_eq!($action.touches_live($mode), $expected);
            }
        };
    }

    live!(reading_never_touches_live, Action::ViewAudit, None, false);
    live!(changing_a_test_key_does_not, Action::RevokeKey, Some(Mode::Test), false);
    live!(changing_a_live_key_does, Action::UpdateKey, Some(Mode::Live), true);
    live!(creating_a_live_key_does, Action::CreateKey, Some(Mode::Live), true);
    live!(entitlements_do, Action::SetEntitlement, None, true);
    live!(alert_settings_do, Action::ConfigureProject, None, true);
    live!(members_do, Action::ManageMembers, None, true);

    #[test]
    fn a_key_covers_only_scopes_within_its_own() {
        let narrow = key_caller(&["keys:write", "analytics:*"]);
        let wants = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(narrow.covers_scopes(&wants(&["keys:write", "analytics:read", "analytics:*"])));
        assert!(!narrow.covers_scopes(&wants(&["keys:read"])));
        assert!(!narrow.covers_scopes(&wants(&["*"])));
        assert!(!narrow.covers_scopes(&wants(&["keys:*"])));
        assert!(key_caller(&["*"]).covers_scopes(&wants(&["*", "deployment:admin"])));
    }

    #[test]
    fn keyward_itself_is_no_person_and_a_key_is_not_keyward() {
        assert!(Caller::system("leak-response").is_system());
        assert!(!Caller::system("leak-response").is_person());
        let key = key_caller(&["*"]);
        assert!(key.is_person() && !key.is_system());
    }
}
