//! People's passwords, console sessions and invitations. Sessions and
//! invitations are found by the SHA-256 of their token; the token itself
//! is never stored.

use super::{get, Store, StoreError, Tx};

/// A live session: whose it is and the CSRF token its forms carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub user_id: String,
    pub email: String,
    pub csrf: String,
}

impl Store {
    /// The user's id and password hash (`None` until one is set).
    pub async fn password_of(&self, email: &str) -> Result<Option<(String, Option<String>)>, StoreError> {
        let row = sqlx::query("SELECT id, password_hash FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((get(&r, "id")?, get(&r, "password_hash")?))).transpose()
    }

    pub async fn insert_session(&self, token_hash: &str, user_id: &str, csrf: &str, now: i64, expires_at: i64) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *tx.inner)
            .await?;
        sqlx::query("INSERT INTO sessions (token_hash, user_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(token_hash)
            .bind(user_id)
            .bind(csrf)
            .bind(now)
            .bind(expires_at)
            .execute(&mut *tx.inner)
            .await?;
        tx.commit().await
    }

    pub async fn session(&self, token_hash: &str, now: i64) -> Result<Option<SessionRow>, StoreError> {
        let row = sqlx::query(
            "SELECT s.user_id, u.email, s.csrf FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(SessionRow {
                user_id: get(&r, "user_id")?,
                email: get(&r, "email")?,
                csrf: get(&r, "csrf")?,
            })
        })
        .transpose()
    }

    /// The live invitation behind a token hash: (user id, email, project id).
    pub async fn invitation(&self, token_hash: &str, now: i64) -> Result<Option<(String, String, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT i.user_id, u.email, i.project_id FROM invitations i JOIN users u ON u.id = i.user_id \
             WHERE i.token_hash = $1 AND i.expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((get(&r, "user_id")?, get(&r, "email")?, get(&r, "project_id")?)))
            .transpose()
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&mut *tx.inner)
            .await?;
        tx.commit().await
    }
}

impl Tx<'_> {
    /// Sets a password and ends every session and invitation of the user:
    /// whoever held the old password, or a link, holds nothing now.
    pub async fn set_password_hash(&mut self, user_id: &str, hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(user_id)
            .execute(&mut *self.inner)
            .await?;
        for table in ["sessions", "invitations"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
                .bind(user_id)
                .execute(&mut *self.inner)
                .await?;
        }
        Ok(())
    }

    /// Replaces the user's pending invitations with this one.
    pub async fn insert_invitation(
        &mut self,
        token_hash: &str,
        user_id: &str,
        project_id: &str,
        created_by: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM invitations WHERE user_id = $1 OR expires_at <= $2")
            .bind(user_id)
            .bind(now)
            .execute(&mut *self.inner)
            .await?;
        sqlx::query(
            "INSERT INTO invitations (token_hash, user_id, project_id, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(project_id)
        .bind(created_by)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    /// Whether the user has a password (read where it is about to change).
    pub async fn has_password(&mut self, user_id: &str) -> Result<bool, StoreError> {
        let set: Option<i64> = sqlx::query_scalar("SELECT CASE WHEN password_hash IS NULL THEN 0 ELSE 1 END FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&mut *self.inner)
            .await?;
        Ok(set == Some(1))
    }
}
