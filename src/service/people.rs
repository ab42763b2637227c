//! People: passwords (argon2id), console sessions and invitations.
//!
//! A session token is 32 random bytes in a cookie; the store keeps only its
//! SHA-256, beside a CSRF token that every state-changing form must echo.
//! Password hashing is slow on purpose, so it runs on a blocking thread.
//! A person's password belongs to the person: an admin who adds a new
//! person gets a one-time invitation link for them, never a password field,
//! and any password change ends every session and invitation of the user
//! and is audited.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use sha2::{Digest, Sha256};

use serde_json::json;

use super::{new_id, valid_email, Caller, Denied, KeyService, ServiceError};
use crate::keys::token::random_base62;
use crate::store::{now_ms, SessionRow, Tx};

/// How long a console session lasts.
pub const SESSION_MS: i64 = 12 * 3_600_000;
/// How long an invitation link works.
pub const INVITATION_MS: i64 = 7 * 86_400_000;
const MIN_PASSWORD: usize = 12;

/// A one-time link for a new person to choose their password. The token is
/// shown once, to whoever added them; only its hash is stored.
#[derive(Debug, Clone)]
pub struct Invitation {
    pub token: String,
    pub expires_at: i64,
}

impl Invitation {
    /// The console path that accepts it.
    pub fn path(&self) -> String {
        format!("/console/invite/{}", self.token)
    }
}

/// What a successful sign-in hands to the browser.
pub struct NewSession {
    /// The cookie value; shown once, stored only as a hash.
    pub token: String,
    pub csrf: String,
}

impl Caller {
    /// A person signed in to the console: roles decide, not key scopes.
    pub fn person(user_id: &str) -> Caller {
        Caller {
            user_id: Some(user_id.to_string()),
            system: None,
            ..Caller::system("console")
        }
    }
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// argon2id on a blocking thread, after the length rule.
async fn hash_password(password: &str) -> Result<String, ServiceError> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(ServiceError::Invalid(format!(
            "a password needs at least {MIN_PASSWORD} characters"
        )));
    }
    let password = password.to_string();
    tokio::task::spawn_blocking(move || Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()))
        .await
        .map_err(|e| ServiceError::Invalid(format!("hashing: {e}")))?
        .map_err(|e| ServiceError::Invalid(format!("hashing: {e}")))
}

/// Hashed when the email is unknown, so a wrong email costs as long as a
/// wrong password and does not tell which one was wrong.
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$KuvOzuPd8OYqI0jPR1yUtl1n0k/5ByJbHfDbYv8AsZk";

impl KeyService {
    /// Creates the user if the email is new, and sets their password (the
    /// operator's `keyward users create`). Every session and invitation of
    /// the user ends, and `user.password_changed` is audited.
    pub async fn set_password(&self, caller: &Caller, email: &str, password: &str) -> Result<String, ServiceError> {
        let email = valid_email(email)?;
        let hash = hash_password(password).await?;
        let now = now_ms();
        let mut tx = self.store.begin().await?;
        let user_id = tx.ensure_user(&new_id("user"), &email, now).await?;
        self.change_password_in(&mut tx, caller, &user_id, &hash, "operator", now).await?;
        tx.commit().await?;
        Ok(user_id)
    }

    /// Makes the user a deployment owner (`keyward users create --deployment-owner`).
    pub async fn make_deployment_owner(&self, caller: &Caller, user_id: &str) -> Result<(), ServiceError> {
        if !caller.is_system() {
            return Err(Denied::NotDeploymentOwner.into());
        }
        let now = now_ms();
        let mut tx = self.store.begin().await?;
        tx.set_deployment_owner(user_id).await?;
        self.audit(&mut tx, caller, None, "user.deployment_owner_granted", user_id, json!({}), now)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A new invitation for `user_id` inside `tx`, replacing older ones.
    pub(crate) async fn invite_in(
        &self,
        tx: &mut Tx<'_>,
        caller: &Caller,
        user_id: &str,
        project_id: &str,
        now: i64,
    ) -> Result<Invitation, ServiceError> {
        let invitation = Invitation {
            token: random_base62(43),
            expires_at: now + INVITATION_MS,
        };
        tx.insert_invitation(
            &token_hash(&invitation.token),
            user_id,
            project_id,
            &caller.audit_name(),
            now,
            invitation.expires_at,
        )
        .await?;
        self.audit(
            tx,
            caller,
            Some(project_id),
            "user.invited",
            user_id,
            json!({"expires_at": invitation.expires_at}),
            now,
        )
        .await?;
        Ok(invitation)
    }

    /// The email an invitation is for, if the link is live.
    pub async fn invitation_email(&self, token: &str) -> Result<Option<String>, ServiceError> {
        Ok(self
            .store
            .invitation(&token_hash(token), now_ms())
            .await?
            .map(|(_, email, _)| email))
    }

    /// Sets the invited person's first password; the link is used up. A
    /// user who meanwhile has a password keeps it: a link never resets one.
    pub async fn accept_invitation(&self, token: &str, password: &str, ip: &str) -> Result<String, ServiceError> {
        let gone = || ServiceError::NotFound("invitation");
        let (user_id, email, project_id) = self.store.invitation(&token_hash(token), now_ms()).await?.ok_or_else(gone)?;
        let hash = hash_password(password).await?;
        let now = now_ms();
        let mut tx = self.store.begin().await?;
        if tx.has_password(&user_id).await? {
            return Err(gone());
        }
        let caller = Caller::person(&user_id).with_ip(ip.to_string());
        self.change_password_in(&mut tx, &caller, &user_id, &hash, "invitation", now)
            .await?;
        self.audit(
            &mut tx,
            &caller,
            Some(&project_id),
            "user.invitation_accepted",
            &user_id,
            json!({}),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(email)
    }

    async fn change_password_in(
        &self,
        tx: &mut Tx<'_>,
        caller: &Caller,
        user_id: &str,
        hash: &str,
        via: &str,
        now: i64,
    ) -> Result<(), ServiceError> {
        tx.set_password_hash(user_id, hash).await?;
        self.audit(tx, caller, None, "user.password_changed", user_id, json!({"via": via}), now)
            .await
    }

    /// Checks the password and opens a session.
    pub async fn sign_in(&self, email: &str, password: &str) -> Result<NewSession, ServiceError> {
        let email = email.trim().to_ascii_lowercase();
        let found = self.store.password_of(&email).await?;
        let (user_id, hash) = match found {
            Some((id, Some(hash))) => (Some(id), hash),
            _ => (None, DECOY_HASH.to_string()),
        };
        let password = password.to_string();
        let matches = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
        })
        .await
        .unwrap_or(false);
        let user_id = user_id
            .filter(|_| matches)
            .ok_or(Denied::Unauthenticated(super::verify::VerifyCode::NotFound))?;
        let session = NewSession {
            token: random_base62(43),
            csrf: random_base62(43),
        };
        let now = now_ms();
        self.store
            .insert_session(&token_hash(&session.token), &user_id, &session.csrf, now, now + SESSION_MS)
            .await?;
        Ok(session)
    }

    /// The session behind a cookie token, if it is live.
    pub async fn session(&self, token: &str) -> Result<Option<SessionRow>, ServiceError> {
        Ok(self.store.session(&token_hash(token), now_ms()).await?)
    }

    pub async fn sign_out(&self, token: &str) -> Result<(), ServiceError> {
        Ok(self.store.delete_session(&token_hash(token)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decoy_hash_parses_so_unknown_emails_cost_a_full_verify() {
        let parsed = PasswordHash::new(DECOY_HASH).unwrap();
        assert!(Argon2::default().verify_password(b"anything at all", &parsed).is_err());
    }
}
