//! Who is calling and what they may do: the caller's key scopes first,
//! then their role in the project (Owner and Admin: everything; Member:
//! view, and create, change and revoke their own keys; Viewer: view).

use super::verify::VerifyCode;
use crate::keys::scopes;
use crate::keys::token::Mode;
use crate::store::{ApiKey, Role, Store, StoreError};

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
    CreateProject,
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
            Action::SetEntitlement | Action::CreateProject | Action::ConfigureProject => "projects:admin",
        }
    }

    fn changes_a_key(self) -> bool {
        matches!(self, Action::CreateKey | Action::UpdateKey | Action::RevokeKey | Action::RotateKey)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("a valid keyward secret key is required ({})", .0.as_str())]
    Unauthenticated(VerifyCode),
    #[error("publishable keys cannot call the management API")]
    Publishable,
    #[error("the key lacks the {0} scope")]
    Scope(&'static str),
    #[error("a test-mode key cannot act on live-mode keys")]
    WrongMode,
    #[error("the caller is not a member of this project")]
    NotMember,
    #[error("the caller's role does not allow this")]
    Role,
    #[error("the key store is unavailable")]
    Unavailable,
}

#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: Option<String>,
    pub user_id: Option<String>,
    pub service_account_id: Option<String>,
    pub scopes: Vec<String>,
    pub mode: Option<Mode>,
    pub ip: String,
    /// `Some(component)` for keyward itself acting (leak response, init).
    pub system: Option<&'static str>,
}

impl Caller {
    pub fn from_key(key: &ApiKey) -> Caller {
        Caller {
            key_id: Some(key.id.clone()),
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

    pub fn is_person(&self) -> bool {
        self.system.is_none()
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

    pub fn require_scope(&self, action: Action) -> Result<(), Denied> {
        if self.system.is_some() || scopes::allows(&self.scopes, action.scope()) {
            Ok(())
        } else {
            Err(Denied::Scope(action.scope()))
        }
    }

    pub async fn role_in(&self, store: &Store, project_id: &str) -> Result<Option<Role>, Denied> {
        let role = match (&self.user_id, &self.service_account_id) {
            (Some(user), _) => store.role_of_user(project_id, user).await,
            (None, Some(account)) => store.role_of_service_account(project_id, account).await,
            (None, None) => Ok(None),
        };
        role.map_err(|_: StoreError| Denied::Unavailable)
    }

    /// Scope, mode and role checks for `action` in a project. `key_owner`
    /// and `key_mode` describe the key acted on, if any.
    pub async fn authorize(
        &self,
        store: &Store,
        project_id: &str,
        action: Action,
        key_owner: Option<&str>,
        key_mode: Option<Mode>,
    ) -> Result<(), Denied> {
        if self.system.is_some() && self.key_id.is_none() {
            return Ok(());
        }
        self.require_scope(action)?;
        if self.mode == Some(Mode::Test) && key_mode == Some(Mode::Live) && action.changes_a_key() {
            return Err(Denied::WrongMode);
        }
        let role = self.role_in(store, project_id).await?.ok_or(Denied::NotMember)?;
        let own_key = key_owner.is_some() && key_owner == self.user_id.as_deref();
        let allowed = match role {
            Role::Owner | Role::Admin => true,
            Role::Member => matches!(action, Action::ViewKeys | Action::ViewAudit) || (action.changes_a_key() && own_key),
            Role::Viewer => matches!(action, Action::ViewKeys | Action::ViewAudit),
        };
        if allowed {
            Ok(())
        } else {
            Err(Denied::Role)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! t {
        ($name:ident, $scopes:expr, $action:expr, $expected:expr) => {
            #[test]
            fn $name() {
                let caller = Caller {
                    scopes: $scopes.iter().map(|s: &&str| s.to_string()).collect(),
                    ..Caller::system("t")
                };
                let caller = Caller {
                    system: None,
                    key_id: Some("key_x".into()),
                    ..caller
                };
                assert_eq!(caller.require_scope($action).is_ok(), $expected);
            }
        };
    }

    t!(read_scope_views, ["keys:read"], Action::ViewKeys, true);
    t!(read_scope_cannot_create, ["keys:read"], Action::CreateKey, false);
    t!(write_scope_revokes, ["keys:write"], Action::RevokeKey, true);
    t!(wildcard_resource, ["keys:*"], Action::RotateKey, true);
    t!(audit_needs_audit_scope, ["keys:*"], Action::ViewAudit, false);
    t!(star_does_everything, ["*"], Action::CreateProject, true);
}
