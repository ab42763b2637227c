//! Projects, users, memberships with their roles, and entitlements.

use sqlx::any::AnyRow;

use super::{get, Store, StoreError, Tx};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub leak_policy: String,
    pub created_at: i64,
}

/// What a person (or service account) may do in a project. Ordered from
/// least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Member,
    Admin,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "viewer" => Some(Role::Viewer),
            "member" => Some(Role::Member),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Member {
    pub user_id: String,
    pub email: String,
    pub role: Role,
}

/// A team's identity in a project: keys it owns act with its role and
/// outlive the person who made them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServiceAccount {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub role: Role,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntitlementState {
    Enabled,
    Trial,
    RequiresUpgrade,
}

impl EntitlementState {
    pub fn as_str(self) -> &'static str {
        match self {
            EntitlementState::Enabled => "enabled",
            EntitlementState::Trial => "trial",
            EntitlementState::RequiresUpgrade => "requires_upgrade",
        }
    }

    pub fn parse(text: &str) -> Option<EntitlementState> {
        match text {
            "enabled" => Some(EntitlementState::Enabled),
            "trial" => Some(EntitlementState::Trial),
            "requires_upgrade" => Some(EntitlementState::RequiresUpgrade),
            _ => None,
        }
    }

    /// Whether calls to the product go through.
    pub fn grants_access(self) -> bool {
        self != EntitlementState::RequiresUpgrade
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Entitlement {
    pub product: String,
    pub state: EntitlementState,
    pub updated_at: i64,
}

fn project_from_row(row: &AnyRow) -> Result<Project, StoreError> {
    Ok(Project {
        id: get(row, "id")?,
        name: get(row, "name")?,
        leak_policy: get(row, "leak_policy")?,
        created_at: get(row, "created_at")?,
    })
}

fn role_from_text(text: &str) -> Result<Role, StoreError> {
    Role::parse(text).ok_or_else(|| StoreError::Corrupt(format!("role {text:?}")))
}

impl Store {
    pub async fn project(&self, id: &str) -> Result<Option<Project>, StoreError> {
        let row = sqlx::query("SELECT id, name, leak_policy, created_at FROM projects WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(project_from_row).transpose()
    }

    /// Projects a user belongs to, oldest first.
    pub async fn projects_of_user(&self, user_id: &str) -> Result<Vec<Project>, StoreError> {
        let rows = sqlx::query(
            "SELECT p.id, p.name, p.leak_policy, p.created_at FROM projects p \
             JOIN memberships m ON m.project_id = p.id WHERE m.user_id = $1 ORDER BY p.created_at, p.id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(project_from_row).collect()
    }

    pub async fn user_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&self.pool).await?)
    }

    pub async fn user_id_by_email(&self, email: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn role_of_user(&self, project_id: &str, user_id: &str) -> Result<Option<Role>, StoreError> {
        let role: Option<String> = sqlx::query_scalar("SELECT role FROM memberships WHERE project_id = $1 AND user_id = $2")
            .bind(project_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        role.as_deref().map(role_from_text).transpose()
    }

    pub async fn role_of_service_account(&self, project_id: &str, account_id: &str) -> Result<Option<Role>, StoreError> {
        let role: Option<String> =
            sqlx::query_scalar("SELECT role FROM service_accounts WHERE project_id = $1 AND id = $2 AND deleted_at IS NULL")
                .bind(project_id)
                .bind(account_id)
                .fetch_optional(&self.pool)
                .await?;
        role.as_deref().map(role_from_text).transpose()
    }

    /// Whether the user may act at deployment level (create projects, read
    /// the leak sources).
    pub async fn is_deployment_owner(&self, user_id: &str) -> Result<bool, StoreError> {
        let flag: Option<i64> = sqlx::query_scalar("SELECT deployment_owner FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(flag == Some(1))
    }

    pub async fn members(&self, project_id: &str) -> Result<Vec<Member>, StoreError> {
        let rows = sqlx::query(
            "SELECT u.id, u.email, m.role FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.project_id = $1 ORDER BY m.created_at, u.id",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Member {
                    user_id: get(row, "id")?,
                    email: get(row, "email")?,
                    role: role_from_text(&get::<String>(row, "role")?)?,
                })
            })
            .collect()
    }

    /// The project's service accounts that are not deleted, oldest first.
    pub async fn service_accounts(&self, project_id: &str) -> Result<Vec<ServiceAccount>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, project_id, name, role, created_at FROM service_accounts \
             WHERE project_id = $1 AND deleted_at IS NULL ORDER BY created_at, id",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ServiceAccount {
                    id: get(row, "id")?,
                    project_id: get(row, "project_id")?,
                    name: get(row, "name")?,
                    role: role_from_text(&get::<String>(row, "role")?)?,
                    created_at: get(row, "created_at")?,
                })
            })
            .collect()
    }

    pub async fn entitlements(&self, project_id: &str) -> Result<Vec<Entitlement>, StoreError> {
        let rows = sqlx::query("SELECT product, state, updated_at FROM entitlements WHERE project_id = $1 ORDER BY product")
            .bind(project_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let state: String = get(row, "state")?;
                Ok(Entitlement {
                    product: get(row, "product")?,
                    state: EntitlementState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("entitlement {state:?}")))?,
                    updated_at: get(row, "updated_at")?,
                })
            })
            .collect()
    }
}

impl Tx<'_> {
    pub async fn insert_project(&mut self, project: &Project) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO projects (id, name, leak_policy, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&project.id)
            .bind(&project.name)
            .bind(&project.leak_policy)
            .bind(project.created_at)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    /// Returns the user's id, creating the user if the email is new.
    pub async fn ensure_user(&mut self, new_id: &str, email: &str, at: i64) -> Result<String, StoreError> {
        let existing: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional(&mut *self.inner)
            .await?;
        if let Some(id) = existing {
            return Ok(id);
        }
        sqlx::query("INSERT INTO users (id, email, created_at) VALUES ($1, $2, $3)")
            .bind(new_id)
            .bind(email)
            .bind(at)
            .execute(&mut *self.inner)
            .await?;
        Ok(new_id.to_string())
    }

    pub async fn set_deployment_owner(&mut self, user_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET deployment_owner = 1 WHERE id = $1")
            .bind(user_id)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    /// The user's role in the project, read inside the transaction that is
    /// about to change it.
    pub async fn role_of_user(&mut self, project_id: &str, user_id: &str) -> Result<Option<Role>, StoreError> {
        let role: Option<String> = sqlx::query_scalar("SELECT role FROM memberships WHERE project_id = $1 AND user_id = $2")
            .bind(project_id)
            .bind(user_id)
            .fetch_optional(&mut *self.inner)
            .await?;
        role.as_deref().map(role_from_text).transpose()
    }

    pub async fn owner_count(&mut self, project_id: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM memberships WHERE project_id = $1 AND role = 'owner'")
                .bind(project_id)
                .fetch_one(&mut *self.inner)
                .await?,
        )
    }

    /// Whether an invitation may set this user's first password on behalf
    /// of `project_id`: the user has no password yet, is no deployment
    /// owner, and belongs to no other project, so an admin of one project
    /// can never take over someone who also acts elsewhere.
    pub async fn invitable(&mut self, user_id: &str, project_id: &str) -> Result<bool, StoreError> {
        let ok: Option<i64> = sqlx::query_scalar(
            "SELECT CASE WHEN u.password_hash IS NULL AND u.deployment_owner = 0 AND \
             NOT EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = u.id AND m.project_id <> $2) THEN 1 ELSE 0 END \
             FROM users u WHERE u.id = $1",
        )
        .bind(user_id)
        .bind(project_id)
        .fetch_optional(&mut *self.inner)
        .await?;
        Ok(ok == Some(1))
    }

    pub async fn insert_service_account(&mut self, account: &ServiceAccount) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO service_accounts (id, project_id, name, role, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&account.id)
            .bind(&account.project_id)
            .bind(&account.name)
            .bind(account.role.as_str())
            .bind(account.created_at)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    /// Marks the account deleted and frees its name; false when there was
    /// no such live account.
    pub async fn delete_service_account(&mut self, project_id: &str, id: &str, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE service_accounts SET deleted_at = $1, name = 'deleted_' || id WHERE project_id = $2 AND id = $3 AND deleted_at IS NULL",
        )
        .bind(now)
        .bind(project_id)
        .bind(id)
        .execute(&mut *self.inner)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn remove_membership(&mut self, project_id: &str, user_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM memberships WHERE project_id = $1 AND user_id = $2")
            .bind(project_id)
            .bind(user_id)
            .execute(&mut *self.inner)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn set_membership(&mut self, project_id: &str, user_id: &str, role: Role, at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO memberships (project_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(role.as_str())
        .bind(at)
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    pub async fn set_entitlement(&mut self, project_id: &str, product: &str, state: EntitlementState, at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO entitlements (project_id, product, state, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (project_id, product) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
        )
        .bind(project_id)
        .bind(product)
        .bind(state.as_str())
        .bind(at)
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }
}
