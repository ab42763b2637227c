//! People: passwords (argon2id) and console sessions.
//!
//! A session token is 32 random bytes in a cookie; the store keeps only its
//! SHA-256, beside a CSRF token that every state-changing form must echo.
//! Password hashing is slow on purpose, so it runs on a blocking thread.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use sha2::{Digest, Sha256};

use super::{new_id, Caller, Denied, KeyService, ServiceError};
use crate::keys::token::random_base62;
use crate::store::{now_ms, SessionRow};

/// How long a console session lasts.
pub const SESSION_MS: i64 = 12 * 3_600_000;
const MIN_PASSWORD: usize = 12;

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

/// Hashed when the email is unknown, so a wrong email costs as long as a
/// wrong password and does not tell which one was wrong.
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$KuvOzuPd8OYqI0jPR1yUtl1n0k/5ByJbHfDbYv8AsZk";

impl KeyService {
    /// Creates the user if the email is new, and sets their password.
    pub async fn set_password(&self, email: &str, password: &str) -> Result<String, ServiceError> {
        let email = email.trim().to_ascii_lowercase();
        if !email.contains('@') || email.len() > 320 || email.chars().any(char::is_control) {
            return Err(ServiceError::Invalid("email is not valid".into()));
        }
        if password.chars().count() < MIN_PASSWORD {
            return Err(ServiceError::Invalid(format!(
                "a password needs at least {MIN_PASSWORD} characters"
            )));
        }
        let password = password.to_string();
        let hash = tokio::task::spawn_blocking(move || Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()))
            .await
            .map_err(|e| ServiceError::Invalid(format!("hashing: {e}")))?
            .map_err(|e| ServiceError::Invalid(format!("hashing: {e}")))?;
        let mut tx = self.store.begin().await?;
        let user_id = tx.ensure_user(&new_id("user"), &email, now_ms()).await?;
        tx.commit().await?;
        self.store.set_password_hash(&user_id, &hash).await?;
        Ok(user_id)
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
