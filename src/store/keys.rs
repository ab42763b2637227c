//! API key rows. A key is looked up by id or by fingerprint; its token is
//! never stored.

use sqlx::any::AnyRow;

use super::{get, Store, StoreError, Tx};
use crate::keys::token::{Kind, Mode};

const COLUMNS: &str = "id, project_id, name, description, kind, mode, scopes, owner_user_id, owner_service_account_id, \
    created_by, created_at, last_used_at, expires_at, revoked_at, revoke_reason, display_prefix, last4, fingerprint, \
    is_default, rotated_from";

/// Why a key stopped working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RevokeReason {
    Manual,
    Leaked,
    Expired,
    Rotated,
}

impl RevokeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Manual => "manual",
            RevokeReason::Leaked => "leaked",
            RevokeReason::Expired => "expired",
            RevokeReason::Rotated => "rotated",
        }
    }

    pub fn parse(text: &str) -> Option<RevokeReason> {
        match text {
            "manual" => Some(RevokeReason::Manual),
            "leaked" => Some(RevokeReason::Leaked),
            "expired" => Some(RevokeReason::Expired),
            "rotated" => Some(RevokeReason::Rotated),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub kind: Kind,
    pub mode: Mode,
    pub scopes: Vec<String>,
    pub owner_user_id: Option<String>,
    pub owner_service_account_id: Option<String>,
    pub created_by: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub revoke_reason: Option<RevokeReason>,
    /// `kw_sk_live_`: shown with `last4`, never more.
    pub display_prefix: String,
    pub last4: String,
    /// Hex HMAC-SHA256 of the token under the server's pepper.
    pub fingerprint: String,
    pub is_default: bool,
    pub rotated_from: Option<String>,
}

impl ApiKey {
    /// Revoked now (a rotation overlap that has run out counts).
    pub fn is_revoked_at(&self, now: i64) -> bool {
        self.revoked_at.is_some_and(|t| t <= now)
    }

    pub fn is_expired_at(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

/// What a new key row needs; the store fills in nothing but defaults.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub kind: Kind,
    pub mode: Mode,
    pub scopes: Vec<String>,
    pub owner_user_id: Option<String>,
    pub owner_service_account_id: Option<String>,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub display_prefix: String,
    pub last4: String,
    pub fingerprint: String,
    /// Which pepper made `fingerprint` (see [`crate::keys::fingerprint`]).
    pub pepper_id: String,
    pub is_default: bool,
    pub rotated_from: Option<String>,
}

/// Fields a PATCH may change; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct KeyUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub scopes: Option<Vec<String>>,
    /// `Some(None)` removes the expiry.
    pub expires_at: Option<Option<i64>>,
}

fn from_row(row: &AnyRow) -> Result<ApiKey, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(what.to_string());
    let scopes: String = get(row, "scopes")?;
    let reason: Option<String> = get(row, "revoke_reason")?;
    Ok(ApiKey {
        id: get(row, "id")?,
        project_id: get(row, "project_id")?,
        name: get(row, "name")?,
        description: get(row, "description")?,
        kind: Kind::parse(&get::<String>(row, "kind")?).ok_or_else(|| corrupt("api_keys.kind"))?,
        mode: Mode::parse(&get::<String>(row, "mode")?).ok_or_else(|| corrupt("api_keys.mode"))?,
        scopes: serde_json::from_str(&scopes).map_err(|_| corrupt("api_keys.scopes"))?,
        owner_user_id: get(row, "owner_user_id")?,
        owner_service_account_id: get(row, "owner_service_account_id")?,
        created_by: get(row, "created_by")?,
        created_at: get(row, "created_at")?,
        last_used_at: get(row, "last_used_at")?,
        expires_at: get(row, "expires_at")?,
        revoked_at: get(row, "revoked_at")?,
        revoke_reason: reason
            .map(|r| RevokeReason::parse(&r).ok_or_else(|| corrupt("api_keys.revoke_reason")))
            .transpose()?,
        display_prefix: get(row, "display_prefix")?,
        last4: get(row, "last4")?,
        fingerprint: get(row, "fingerprint")?,
        is_default: get::<i64>(row, "is_default")? != 0,
        rotated_from: get(row, "rotated_from")?,
    })
}

fn scopes_json(scopes: &[String]) -> String {
    serde_json::to_string(scopes).expect("a list of strings serialises")
}

impl Store {
    pub async fn key(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn key_by_fingerprint(&self, fingerprint: &str) -> Result<Option<ApiKey>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE fingerprint = $1");
        let row = sqlx::query(&sql).bind(fingerprint).fetch_optional(&self.pool).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Moves a key found by its previous-pepper fingerprint to the current
    /// pepper. Only the row still holding `old` changes, so two replicas
    /// migrating the same key at once both end with the same value.
    pub async fn refingerprint(&self, id: &str, old: &str, new: &str, pepper_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET fingerprint = $1, pepper_id = $2 WHERE id = $3 AND fingerprint = $4")
            .bind(new)
            .bind(pepper_id)
            .bind(id)
            .bind(old)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Labels rows written before pepper ids existed with the pepper in use;
    /// only sound while no rotation is under way.
    pub async fn label_unlabelled_keys(&self, pepper_id: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("UPDATE api_keys SET pepper_id = $1 WHERE pepper_id = ''")
            .bind(pepper_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Keys not revoked whose fingerprint another pepper made: dropping the
    /// previous pepper would lock these out.
    pub async fn keys_on_other_peppers(&self, pepper_id: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM api_keys WHERE pepper_id <> $1 AND revoked_at IS NULL")
            .bind(pepper_id)
            .fetch_one(&self.pool)
            .await?;
        get(&row, "n")
    }

    pub async fn keys_of_project(&self, project_id: &str) -> Result<Vec<ApiKey>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE project_id = $1 ORDER BY created_at, id");
        let rows = sqlx::query(&sql).bind(project_id).fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }
}

impl Tx<'_> {
    pub async fn key(&mut self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&mut *self.inner).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The keys a person owns in a project that still work or may (not
    /// revoked, or inside a rotation overlap), but the project's default
    /// key, which only rotates.
    pub async fn personal_keys(&mut self, project_id: &str, user_id: &str) -> Result<Vec<ApiKey>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM api_keys WHERE project_id = $1 AND owner_user_id = $2 AND is_default = 0 AND (revoked_at IS NULL OR revoked_at > $3)"
        );
        let rows = sqlx::query(&sql)
            .bind(project_id)
            .bind(user_id)
            .bind(super::now_ms())
            .fetch_all(&mut *self.inner)
            .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn insert_key(&mut self, key: &NewApiKey) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (id, project_id, name, description, kind, mode, scopes, owner_user_id, \
             owner_service_account_id, created_by, created_at, expires_at, display_prefix, last4, fingerprint, \
             is_default, rotated_from, pepper_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
        )
        .bind(&key.id)
        .bind(&key.project_id)
        .bind(&key.name)
        .bind(&key.description)
        .bind(key.kind.as_str())
        .bind(key.mode.as_str())
        .bind(scopes_json(&key.scopes))
        .bind(key.owner_user_id.as_deref())
        .bind(key.owner_service_account_id.as_deref())
        .bind(&key.created_by)
        .bind(key.created_at)
        .bind(key.expires_at)
        .bind(&key.display_prefix)
        .bind(&key.last4)
        .bind(&key.fingerprint)
        .bind(i64::from(key.is_default))
        .bind(key.rotated_from.as_deref())
        .bind(&key.pepper_id)
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    pub async fn update_key(&mut self, id: &str, update: &KeyUpdate) -> Result<(), StoreError> {
        if let Some(name) = &update.name {
            sqlx::query("UPDATE api_keys SET name = $1 WHERE id = $2")
                .bind(name)
                .bind(id)
                .execute(&mut *self.inner)
                .await?;
        }
        if let Some(description) = &update.description {
            sqlx::query("UPDATE api_keys SET description = $1 WHERE id = $2")
                .bind(description)
                .bind(id)
                .execute(&mut *self.inner)
                .await?;
        }
        if let Some(scopes) = &update.scopes {
            sqlx::query("UPDATE api_keys SET scopes = $1 WHERE id = $2")
                .bind(scopes_json(scopes))
                .bind(id)
                .execute(&mut *self.inner)
                .await?;
        }
        if let Some(expires_at) = update.expires_at {
            sqlx::query("UPDATE api_keys SET expires_at = $1 WHERE id = $2")
                .bind(expires_at)
                .bind(id)
                .execute(&mut *self.inner)
                .await?;
        }
        Ok(())
    }

    /// Revokes from `at` (now, or the end of a rotation overlap). A key
    /// already revoked by then is left as it is; returns whether it changed.
    pub async fn revoke_key(&mut self, id: &str, at: i64, reason: RevokeReason) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1, revoke_reason = $2 WHERE id = $3 AND (revoked_at IS NULL OR revoked_at > $1)",
        )
        .bind(at)
        .bind(reason.as_str())
        .bind(id)
        .execute(&mut *self.inner)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
