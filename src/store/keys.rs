//! API key rows. A key is looked up by id or by fingerprint; its token is
//! never stored.

use super::{get, Columns, Store, StoreError, Tx};
use crate::keys::limits::{Credits, RateLimit, Refill, RefillInterval};
use crate::keys::token::{Kind, Mode};

pub(super) const COLUMNS: &str = "id, project_id, name, description, kind, mode, scopes, owner_user_id, owner_service_account_id, \
    created_by, created_at, last_used_at, expires_at, revoked_at, revoke_reason, display_prefix, last4, fingerprint, \
    is_default, rotated_from, enabled, meta, external_id, ratelimits, credits_remaining, refill_interval, refill_amount, \
    refilled_at, imported";

/// Why a key stopped working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
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
    /// A disabled key answers DISABLED until it is enabled again.
    pub enabled: bool,
    /// The customer's JSON object about the key.
    pub meta: serde_json::Value,
    pub external_id: Option<String>,
    pub ratelimits: Vec<RateLimit>,
    /// `None`: unlimited. `remaining` is as read; the store spends it.
    pub credits: Option<Credits>,
    /// When the refill last set `remaining` back.
    pub refilled_at: Option<i64>,
    /// Brought from another system by the SHA-256 of its token.
    pub imported: bool,
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
    pub enabled: bool,
    /// JSON text of an object.
    pub meta: String,
    pub external_id: Option<String>,
    pub ratelimits: Vec<RateLimit>,
    pub credits: Option<Credits>,
    pub imported: bool,
}

/// Fields a PATCH may change; `None` leaves a field alone, and for the
/// optional ones `Some(None)` clears them.
#[derive(Debug, Clone, Default)]
pub struct KeyUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub expires_at: Option<Option<i64>>,
    pub enabled: Option<bool>,
    /// JSON text of an object.
    pub meta: Option<String>,
    pub external_id: Option<Option<String>>,
    pub ratelimits: Option<Vec<RateLimit>>,
    pub credits: Option<Option<Credits>>,
}

impl KeyUpdate {
    /// The names of the fields this update sets, for the audit event.
    pub fn changed_fields(&self) -> Vec<&'static str> {
        let set = [
            ("name", self.name.is_some()),
            ("description", self.description.is_some()),
            ("scopes", self.scopes.is_some()),
            ("expires_at", self.expires_at.is_some()),
            ("enabled", self.enabled.is_some()),
            ("meta", self.meta.is_some()),
            ("external_id", self.external_id.is_some()),
            ("ratelimits", self.ratelimits.is_some()),
            ("credits", self.credits.is_some()),
        ];
        set.iter().filter(|(_, on)| *on).map(|(name, _)| *name).collect()
    }
}

pub(super) fn from_row<R: Columns>(row: &R) -> Result<ApiKey, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(what.to_string());
    let scopes: String = row.column("scopes")?;
    let reason: Option<String> = row.column("revoke_reason")?;
    Ok(ApiKey {
        id: row.column("id")?,
        project_id: row.column("project_id")?,
        name: row.column("name")?,
        description: row.column("description")?,
        kind: Kind::parse(&row.column::<String>("kind")?).ok_or_else(|| corrupt("api_keys.kind"))?,
        mode: Mode::parse(&row.column::<String>("mode")?).ok_or_else(|| corrupt("api_keys.mode"))?,
        scopes: serde_json::from_str(&scopes).map_err(|_| corrupt("api_keys.scopes"))?,
        owner_user_id: row.column("owner_user_id")?,
        owner_service_account_id: row.column("owner_service_account_id")?,
        created_by: row.column("created_by")?,
        created_at: row.column("created_at")?,
        last_used_at: row.column("last_used_at")?,
        expires_at: row.column("expires_at")?,
        revoked_at: row.column("revoked_at")?,
        revoke_reason: reason
            .map(|r| RevokeReason::parse(&r).ok_or_else(|| corrupt("api_keys.revoke_reason")))
            .transpose()?,
        display_prefix: row.column("display_prefix")?,
        last4: row.column("last4")?,
        fingerprint: row.column("fingerprint")?,
        is_default: row.column::<i64>("is_default")? != 0,
        rotated_from: row.column("rotated_from")?,
        enabled: row.column::<i64>("enabled")? != 0,
        meta: serde_json::from_str(&row.column::<String>("meta")?).map_err(|_| corrupt("api_keys.meta"))?,
        external_id: row.column("external_id")?,
        ratelimits: serde_json::from_str(&row.column::<String>("ratelimits")?).map_err(|_| corrupt("api_keys.ratelimits"))?,
        credits: credits_from_row(row)?,
        refilled_at: row.column("refilled_at")?,
        imported: row.column::<i64>("imported")? != 0,
    })
}

fn credits_from_row<R: Columns>(row: &R) -> Result<Option<Credits>, StoreError> {
    let Some(remaining) = row.column::<Option<i64>>("credits_remaining")? else {
        return Ok(None);
    };
    let interval: Option<String> = row.column("refill_interval")?;
    let amount: Option<i64> = row.column("refill_amount")?;
    let refill = match (interval, amount) {
        (Some(interval), Some(amount)) => Some(Refill {
            interval: RefillInterval::parse(&interval).ok_or_else(|| StoreError::Corrupt("api_keys.refill_interval".into()))?,
            amount,
        }),
        _ => None,
    };
    Ok(Some(Credits { remaining, refill }))
}

fn scopes_json(scopes: &[String]) -> String {
    serde_json::to_string(scopes).expect("a list of strings serialises")
}

fn ratelimits_json(limits: &[RateLimit]) -> String {
    serde_json::to_string(limits).expect("rate limits serialise")
}

/// The credit columns for a setting: remaining, refill interval and amount.
fn credit_columns(credits: Option<&Credits>) -> (Option<i64>, Option<&'static str>, Option<i64>) {
    match credits {
        None => (None, None, None),
        Some(c) => (Some(c.remaining), c.refill.map(|r| r.interval.as_str()), c.refill.map(|r| r.amount)),
    }
}

impl Store {
    pub async fn key(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn key_by_fingerprint(&self, fingerprint: &str) -> Result<Option<ApiKey>, StoreError> {
        if let Some(reads) = &self.key_reads {
            return reads.key_by_fingerprint(fingerprint).await;
        }
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

impl Store {
    /// Spends `cost` credits of a key atomically, refilling first when a
    /// refill boundary has passed since the last one: the new remaining
    /// count, or `None` (nothing spent) when there are not enough. One
    /// statement, so concurrent verifies on any number of replicas never
    /// spend more than there is.
    pub async fn spend_credits(&self, key_id: &str, cost: i64, boundary: Option<i64>, now: i64) -> Result<Option<i64>, StoreError> {
        // $2: the refill boundary (or a time before every refill), $3: cost.
        let boundary = boundary.unwrap_or(i64::MIN);
        let available =
            "CASE WHEN refill_interval IS NOT NULL AND COALESCE(refilled_at, 0) < $2 THEN refill_amount ELSE credits_remaining END";
        let sql = format!(
            "UPDATE api_keys SET credits_remaining = {available} - $3, \
             refilled_at = CASE WHEN refill_interval IS NOT NULL AND COALESCE(refilled_at, 0) < $2 THEN $4 ELSE refilled_at END \
             WHERE id = $1 AND credits_remaining IS NOT NULL AND {available} >= $3 RETURNING credits_remaining"
        );
        let remaining: Option<i64> = match self.backend {
            super::Backend::Sqlite => {
                let mut tx = self.begin().await?;
                let left = sqlx::query_scalar(&sql)
                    .bind(key_id)
                    .bind(boundary)
                    .bind(cost)
                    .bind(now)
                    .fetch_optional(&mut *tx.inner)
                    .await?;
                tx.commit().await?;
                left
            }
            super::Backend::Postgres => {
                sqlx::query_scalar(&sql)
                    .bind(key_id)
                    .bind(boundary)
                    .bind(cost)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?
            }
        };
        Ok(remaining)
    }

    /// Keys that still work and expire after `now` and by `until`.
    pub async fn keys_expiring_before(&self, now: i64, until: i64) -> Result<Vec<ApiKey>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM api_keys WHERE expires_at > $1 AND expires_at <= $2 AND (revoked_at IS NULL OR revoked_at > expires_at) \
             ORDER BY expires_at"
        );
        let rows = sqlx::query(&sql).bind(now).bind(until).fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }

    /// Keys that work or may, most recently used first: what a verifier
    /// loads into its cache at start.
    pub async fn recently_used_keys(&self, now: i64, limit: i64) -> Result<Vec<ApiKey>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM api_keys WHERE revoked_at IS NULL OR revoked_at > $1 \
             ORDER BY last_used_at DESC NULLS LAST, created_at DESC LIMIT $2"
        );
        let rows = sqlx::query(&sql).bind(now).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }

    /// Whether any key came in through an import: only then does verify
    /// look up tokens that are not in keyward's format.
    pub async fn has_imported_keys(&self) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM api_keys WHERE imported = 1 LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    /// What a key has left now, counting a refill due since the last one.
    pub async fn credits_left(&self, key_id: &str, boundary: Option<i64>) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT CASE WHEN refill_interval IS NOT NULL AND COALESCE(refilled_at, 0) < $2 THEN refill_amount ELSE credits_remaining END \
             FROM api_keys WHERE id = $1 AND credits_remaining IS NOT NULL",
        )
        .bind(key_id)
        .bind(boundary.unwrap_or(i64::MIN))
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Hands a replica up to `want` uses of a rate limit's window: what
    /// the window has left, at most. A new window starts from nothing.
    /// Returns (uses granted now, uses handed out in the window in all).
    pub async fn lease_ratelimit(
        &self,
        key_id: &str,
        name: &str,
        window_start: i64,
        want: i64,
        limit: i64,
    ) -> Result<(i64, i64), StoreError> {
        let mut tx = self.begin().await?;
        // The row exists before it is locked, so two replicas leasing the
        // first block of a window at once queue on it instead of both
        // reading "nothing leased".
        sqlx::query(
            "INSERT INTO ratelimit_leases (key_id, name, window_start, leased) VALUES ($1, $2, $3, 0) ON CONFLICT (key_id, name) DO NOTHING",
        )
        .bind(key_id)
        .bind(name)
        .bind(window_start)
        .execute(&mut *tx.inner)
        .await?;
        let lock = if self.backend == super::Backend::Postgres {
            " FOR UPDATE"
        } else {
            ""
        };
        let row: Option<(i64, i64)> = sqlx::query_as(&format!(
            "SELECT window_start, leased FROM ratelimit_leases WHERE key_id = $1 AND name = $2{lock}"
        ))
        .bind(key_id)
        .bind(name)
        .fetch_optional(&mut *tx.inner)
        .await?;
        let leased = match row {
            Some((start, leased)) if start == window_start => leased,
            Some((start, _)) if start > window_start => limit,
            _ => 0,
        };
        let granted = want.min(limit - leased).max(0);
        sqlx::query("UPDATE ratelimit_leases SET window_start = $3, leased = $4 WHERE key_id = $1 AND name = $2 AND window_start <= $3")
            .bind(key_id)
            .bind(name)
            .bind(window_start)
            .bind(leased + granted)
            .execute(&mut *tx.inner)
            .await?;
        tx.commit().await?;
        Ok((granted, leased + granted))
    }
}

impl Tx<'_> {
    pub async fn key(&mut self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&mut *self.inner).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Marks a notice as sent; false when it already was.
    pub async fn record_expiry_notice(&mut self, key_id: &str, days: i64, now: i64) -> Result<bool, StoreError> {
        let done =
            sqlx::query("INSERT INTO expiry_notices (key_id, days, sent_at) VALUES ($1, $2, $3) ON CONFLICT (key_id, days) DO NOTHING")
                .bind(key_id)
                .bind(days)
                .bind(now)
                .execute(&mut *self.inner)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The keys a service account owns that still work or may.
    pub async fn team_keys(&mut self, account_id: &str) -> Result<Vec<ApiKey>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE owner_service_account_id = $1 AND (revoked_at IS NULL OR revoked_at > $2)");
        let rows = sqlx::query(&sql)
            .bind(account_id)
            .bind(super::now_ms())
            .fetch_all(&mut *self.inner)
            .await?;
        rows.iter().map(from_row).collect()
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
             is_default, rotated_from, pepper_id, enabled, meta, external_id, ratelimits, credits_remaining, \
             refill_interval, refill_amount, refilled_at, imported) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, \
             $23, $24, $25, $11, $26)",
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
        .bind(i64::from(key.enabled))
        .bind(&key.meta)
        .bind(key.external_id.as_deref())
        .bind(ratelimits_json(&key.ratelimits))
        .bind(credit_columns(key.credits.as_ref()).0)
        .bind(credit_columns(key.credits.as_ref()).1)
        .bind(credit_columns(key.credits.as_ref()).2)
        .bind(i64::from(key.imported))
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
            // A new expiry deserves its own notices.
            sqlx::query("DELETE FROM expiry_notices WHERE key_id = $1")
                .bind(id)
                .execute(&mut *self.inner)
                .await?;
        }
        if let Some(enabled) = update.enabled {
            self.set_column(id, "enabled", i64::from(enabled)).await?;
        }
        if let Some(meta) = &update.meta {
            self.set_column(id, "meta", meta.clone()).await?;
        }
        if let Some(external_id) = &update.external_id {
            self.set_column(id, "external_id", external_id.clone()).await?;
        }
        if let Some(limits) = &update.ratelimits {
            self.set_column(id, "ratelimits", ratelimits_json(limits)).await?;
        }
        if let Some(credits) = &update.credits {
            let (remaining, interval, amount) = credit_columns(credits.as_ref());
            sqlx::query(
                "UPDATE api_keys SET credits_remaining = $1, refill_interval = $2, refill_amount = $3, refilled_at = $4 WHERE id = $5",
            )
            .bind(remaining)
            .bind(interval)
            .bind(amount)
            .bind(super::now_ms())
            .bind(id)
            .execute(&mut *self.inner)
            .await?;
        }
        Ok(())
    }

    /// One column of a key; `column` is always a literal of this module.
    async fn set_column<T>(&mut self, id: &str, column: &'static str, value: T) -> Result<(), StoreError>
    where
        T: for<'q> sqlx::Encode<'q, sqlx::Any> + sqlx::Type<sqlx::Any> + Send,
    {
        sqlx::query(&format!("UPDATE api_keys SET {column} = $1 WHERE id = $2"))
            .bind(value)
            .bind(id)
            .execute(&mut *self.inner)
            .await?;
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
