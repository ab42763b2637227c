//! Singleton work across replicas (the feed poller, the scheduler): whoever
//! holds a PostgreSQL advisory lock does it. The lock lives on a connection
//! of its own, so a replica that dies, or loses its connection, drops it
//! and another replica takes over. On SQLite there is one process, and it
//! always leads.

use sqlx::{Connection, PgConnection};

use super::{Backend, Store, StoreError};

/// Held while this replica leads; dropping it gives the lead up.
pub struct Leadership(Option<PgConnection>);

impl Leadership {
    /// Whether the lock's connection still answers (and so still holds it).
    pub async fn holds(&mut self) -> bool {
        match &mut self.0 {
            Some(conn) => conn.ping().await.is_ok(),
            None => true,
        }
    }
}

/// A stable 64-bit lock key for a name.
fn lock_key(name: &str) -> i64 {
    let digest = <sha2::Sha256 as sha2::Digest>::digest(format!("keyward-leader:{name}").as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

impl Store {
    /// Takes the lead for `name` if nobody has it.
    pub async fn try_lead(&self, name: &str) -> Result<Option<Leadership>, StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(Some(Leadership(None)));
        }
        let mut conn = PgConnection::connect(&self.url).await?;
        let won: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(lock_key(name))
            .fetch_one(&mut conn)
            .await?;
        Ok(won.then_some(Leadership(Some(conn))))
    }
}
