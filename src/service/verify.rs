//! The verify path, embeddable in any Rust service as [`Verifier`].
//!
//! Order of checks: format and checksum (no lookup), fingerprint lookup
//! (cache, else store), revoked, expired, disabled, mode, scope,
//! entitlement, rate limits, credits. A refusal anywhere spends no credit,
//! and one refused by a rate limit counts against no other. A hot key with
//! no credits costs no database read. Revocation cannot leave a stale "yes"
//! in the cache: every change bumps an epoch and removes the entry, and a
//! lookup that raced with a change does not cache what it read.
//!
//! A token not in keyward's format may be one imported from another
//! system: it is looked up by a fingerprint of its SHA-256, but only while
//! the store holds imported keys at all, so garbage costs no lookup.
//!
//! The key cache holds at most [`MAX_CACHED_KEYS`] keys; at the bound, a
//! miss evicts an arbitrary eighth of them before caching, so a verify of
//! an uncached key costs one store read, whatever the cache holds. `serve`
//! preloads the most recently used keys at start.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use sha2::{Digest, Sha256};

use super::ratelimit::{LimitState, RateLimiter};
use crate::keys::fingerprint::{Fingerprint, FingerprintHash, Fingerprinter};
use crate::keys::scopes;
use crate::keys::token::{self, Mode};
pub use crate::keys::verdict::VerifyCode;
use crate::store::{now_ms, ApiKey, EntitlementState, Store, StoreError, UsageDelta, VerificationDelta};

/// Keys the verify cache holds at most.
pub const MAX_CACHED_KEYS: usize = 100_000;

/// What a verify asks beyond the token.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub scope: Option<&'a str>,
    pub mode: Option<Mode>,
    /// Spent of the credits and of every rate limit; 0 spends nothing.
    pub cost: i64,
    /// Counted in the key's usage analytics (a product's verify is; a
    /// management call authenticating with the key is not).
    pub metered: bool,
}

impl Default for Ask<'_> {
    fn default() -> Self {
        Ask {
            scope: None,
            mode: None,
            cost: 1,
            metered: true,
        }
    }
}

/// The string an imported key's fingerprint is made of: its token's
/// SHA-256 (hex), which is all keyward ever learns of it.
pub fn imported_secret(sha256_hex: &str) -> String {
    format!("imported:sha256:{}", sha256_hex.to_ascii_lowercase())
}

/// The answer to one verify. `key` is set whenever the token matched a
/// stored key, valid or not.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub code: VerifyCode,
    pub key: Option<Arc<ApiKey>>,
    /// The key's rate limits after this verify (empty when it has none, or
    /// when the verify was refused before them).
    pub ratelimits: Vec<LimitState>,
    /// Credits left, for a key with a credit limit that got that far.
    pub credits_remaining: Option<i64>,
}

impl Verdict {
    pub fn valid(&self) -> bool {
        self.code == VerifyCode::Valid
    }

    fn bare(code: VerifyCode) -> Verdict {
        Verdict {
            code,
            key: None,
            ratelimits: Vec::new(),
            credits_remaining: None,
        }
    }
}

/// What the verifies since the last flush did, per key id.
#[derive(Default)]
struct Usage {
    keys: HashMap<String, KeyUsage>,
}

#[derive(Default)]
struct KeyUsage {
    /// (day, valid verifies) — one or two days per flush.
    days: Vec<(i64, i64)>,
    last_used_at: i64,
    /// (hour, outcome, verifies)
    outcomes: Vec<(i64, VerifyCode, i64)>,
}

impl KeyUsage {
    fn add_day(&mut self, day: i64, count: i64) {
        match self.days.iter_mut().find(|(d, _)| *d == day) {
            Some((_, n)) => *n += count,
            None => self.days.push((day, count)),
        }
    }

    fn add_outcome(&mut self, hour: i64, code: VerifyCode, count: i64) {
        match self.outcomes.iter_mut().find(|(h, c, _)| *h == hour && *c == code) {
            Some((_, _, n)) => *n += count,
            None => self.outcomes.push((hour, code, count)),
        }
    }
}

impl Usage {
    fn of(&mut self, key_id: &str) -> &mut KeyUsage {
        super::per_key(&mut self.keys, key_id)
    }
}

pub struct Verifier {
    store: Store,
    fingerprinter: Fingerprinter,
    keys: RwLock<HashMap<Fingerprint, Arc<ApiKey>, FingerprintHash>>,
    entitlements: RwLock<HashMap<String, HashMap<String, EntitlementState>>>,
    /// Bumped on every change; a lookup caches only if it is unchanged.
    epoch: AtomicU64,
    usage: Mutex<Usage>,
    /// Set once this replica listens for changes (PostgreSQL).
    listening: std::sync::atomic::AtomicBool,
    /// This replica's name on the cache channel and in `replicas`.
    replica_id: String,
    /// Announcements waiting for the other replicas' acknowledgements.
    acks: Mutex<HashMap<String, AwaitedAcks>>,
    limiter: RateLimiter,
    /// Whether the store holds imported keys (refreshed at each flush).
    imports_exist: std::sync::atomic::AtomicBool,
}

/// The replicas that still have to acknowledge a change, and who to tell
/// when none is left.
type AwaitedAcks = (std::collections::HashSet<String>, tokio::sync::oneshot::Sender<()>);

/// A replica not seen for this long is not waited for.
const REPLICA_LIVE_MS: i64 = 10_000;

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier")
    }
}

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

impl Verifier {
    pub fn new(store: Store, fingerprinter: Fingerprinter) -> Verifier {
        Verifier {
            fingerprinter,
            keys: RwLock::default(),
            entitlements: RwLock::default(),
            epoch: AtomicU64::new(0),
            usage: Mutex::default(),
            listening: Default::default(),
            replica_id: crate::service::new_id("replica"),
            acks: Mutex::default(),
            limiter: RateLimiter::new(store.clone()),
            imports_exist: Default::default(),
            store,
        }
    }

    pub fn fingerprinter(&self) -> &Fingerprinter {
        &self.fingerprinter
    }

    /// Verifies a presented token for what `ask` wants.
    pub async fn verify(&self, token: &str, ask: Ask<'_>) -> Result<Verdict, StoreError> {
        let started = std::time::Instant::now();
        let now = now_ms();
        let verdict = self.judge(token, ask, now).await?;
        crate::metrics::METRICS.verified(verdict.code, started.elapsed());
        if let Some(key) = &verdict.key {
            self.record(&key.id, verdict.code, ask.metered, now);
        }
        Ok(verdict)
    }

    async fn judge(&self, token: &str, ask: Ask<'_>, now: i64) -> Result<Verdict, StoreError> {
        let key = match token::parse(token) {
            Ok(_) => self.lookup(token).await?,
            Err(_) if self.imports_exist.load(Ordering::Relaxed) => {
                let found = self
                    .lookup(&imported_secret(&hex::encode(Sha256::digest(token.as_bytes()))))
                    .await?;
                match found {
                    Some(key) if key.imported => Some(key),
                    _ => return Ok(Verdict::bare(VerifyCode::Malformed)),
                }
            }
            Err(_) => return Ok(Verdict::bare(VerifyCode::Malformed)),
        };
        let Some(key) = key else {
            return Ok(Verdict::bare(VerifyCode::NotFound));
        };
        let mut verdict = Verdict {
            code: self.standing(&key, ask, now).await?,
            key: Some(key.clone()),
            ratelimits: Vec::new(),
            credits_remaining: None,
        };
        if verdict.code != VerifyCode::Valid {
            return Ok(verdict);
        }
        let (admitted, limits) = self.limiter.admit(&key, ask.cost, now).await?;
        verdict.ratelimits = limits;
        if !admitted {
            verdict.code = VerifyCode::RateLimited;
            return Ok(verdict);
        }
        if let Some(credits) = &key.credits {
            let boundary = credits.refill.map(|r| r.interval.last_boundary(now));
            verdict.credits_remaining = if ask.cost == 0 {
                self.store.credits_left(&key.id, boundary).await?
            } else {
                self.store.spend_credits(&key.id, ask.cost, boundary, now).await?
            };
            if verdict.credits_remaining.is_none() {
                verdict.code = VerifyCode::UsageExceeded;
                verdict.credits_remaining = Some(self.store.credits_left(&key.id, boundary).await?.unwrap_or(0));
                return Ok(verdict);
            }
        }
        Ok(verdict)
    }

    /// The checks that spend nothing: revoked, expired, disabled, mode,
    /// scope, entitlement.
    async fn standing(&self, key: &ApiKey, ask: Ask<'_>, now: i64) -> Result<VerifyCode, StoreError> {
        Ok(if key.is_revoked_at(now) {
            VerifyCode::Revoked
        } else if key.is_expired_at(now) {
            VerifyCode::Expired
        } else if !key.enabled {
            VerifyCode::Disabled
        } else if ask.mode.is_some_and(|m| m != key.mode) {
            VerifyCode::WrongMode
        } else if ask.scope.is_some_and(|s| !scopes::allows(&key.scopes, s)) {
            VerifyCode::InsufficientScope
        } else if let Some(s) = ask.scope.filter(|s| !s.is_empty()) {
            if self.entitled(&key.project_id, scopes::product_of(s)).await? {
                VerifyCode::Valid
            } else {
                VerifyCode::NotEntitled
            }
        } else {
            VerifyCode::Valid
        })
    }

    /// Fills the cache with the most recently used keys, up to its bound,
    /// so a restart does not send every first verify to the store. A change
    /// made meanwhile wins: nothing read before it is cached.
    pub async fn preload(&self) -> Result<usize, StoreError> {
        let epoch = self.epoch.load(Ordering::Acquire);
        let keys = self.store.recently_used_keys(now_ms(), MAX_CACHED_KEYS as i64).await?;
        let mut cache = self.keys.write().unwrap_or_else(|e| e.into_inner());
        if self.epoch.load(Ordering::Acquire) != epoch {
            return Ok(0);
        }
        let mut loaded = 0;
        for key in keys {
            if let Some(fp) = Fingerprint::from_hex(&key.fingerprint) {
                cache.entry(fp).or_insert_with(|| Arc::new(key));
                loaded += 1;
            }
        }
        Ok(loaded)
    }

    /// Tells the verifier whether imported keys exist, at once (an import
    /// on this replica) rather than at the next flush.
    pub fn set_imports_exist(&self, exist: bool) {
        self.imports_exist.store(exist, Ordering::Relaxed);
    }

    /// The stored key a token belongs to, from the cache when hot. During a
    /// pepper rotation a key still stored under the previous pepper is
    /// found by that fingerprint and moved to the current one.
    pub async fn lookup(&self, token: &str) -> Result<Option<Arc<ApiKey>>, StoreError> {
        let current = self.fingerprinter.fingerprint(token);
        if let Some(key) = self.lookup_fingerprint(current).await? {
            return Ok(Some(key));
        }
        let Some(previous) = self.fingerprinter.previous() else {
            return Ok(None);
        };
        let old = previous.fingerprint(token).to_hex();
        let Some(key) = self.store.key_by_fingerprint(&old).await? else {
            return Ok(None);
        };
        self.store
            .refingerprint(&key.id, &old, &current.to_hex(), self.fingerprinter.pepper_id())
            .await?;
        tracing::info!(key_id = %key.id, "moved a key to the current pepper");
        self.lookup_fingerprint(current).await
    }

    /// The stored key with this fingerprint, for callers that already hold it.
    pub async fn lookup_fingerprint(&self, fingerprint: Fingerprint) -> Result<Option<Arc<ApiKey>>, StoreError> {
        if let Some(key) = self.keys.read().unwrap_or_else(|e| e.into_inner()).get(&fingerprint) {
            return Ok(Some(key.clone()));
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let Some(key) = self.store.key_by_fingerprint(&fingerprint.to_hex()).await? else {
            return Ok(None);
        };
        let key = Arc::new(key);
        let mut cache = self.keys.write().unwrap_or_else(|e| e.into_inner());
        if self.epoch.load(Ordering::Acquire) == epoch {
            if cache.len() >= MAX_CACHED_KEYS {
                let evict: Vec<Fingerprint> = cache.keys().take(MAX_CACHED_KEYS / 8).copied().collect();
                for fp in evict {
                    cache.remove(&fp);
                }
            }
            cache.insert(fingerprint, key.clone());
        }
        Ok(Some(key))
    }

    async fn entitled(&self, project_id: &str, product: &str) -> Result<bool, StoreError> {
        // No row: the billing system has not restricted the product.
        let grants = |states: &HashMap<String, EntitlementState>| states.get(product).is_none_or(|s| s.grants_access());
        if let Some(states) = self.entitlements.read().unwrap_or_else(|e| e.into_inner()).get(project_id) {
            return Ok(grants(states));
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let states: HashMap<String, EntitlementState> = self
            .store
            .entitlements(project_id)
            .await?
            .into_iter()
            .map(|e| (e.product, e.state))
            .collect();
        let granted = grants(&states);
        let mut cache = self.entitlements.write().unwrap_or_else(|e| e.into_inner());
        if self.epoch.load(Ordering::Acquire) == epoch {
            cache.insert(project_id.to_string(), states);
        }
        Ok(granted)
    }

    /// Forgets a key after a change, before the change is reported done.
    pub fn invalidate_key(&self, fingerprint_hex: &str) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Some(fp) = Fingerprint::from_hex(fingerprint_hex) {
            self.keys.write().unwrap_or_else(|e| e.into_inner()).remove(&fp);
        }
    }

    pub fn invalidate_entitlements(&self, project_id: &str) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.entitlements.write().unwrap_or_else(|e| e.into_inner()).remove(project_id);
    }

    /// Forgets a changed key here and tells the other replicas. Called
    /// after the change commits and before it is reported done.
    pub async fn key_changed(&self, fingerprint_hex: &str) {
        self.invalidate_key(fingerprint_hex);
        self.announce(&format!("key:{fingerprint_hex}")).await;
    }

    pub async fn entitlements_changed(&self, project_id: &str) {
        self.invalidate_entitlements(project_id);
        self.announce(&format!("entitlements:{project_id}")).await;
    }

    /// Sends the change and, when this replica listens too, waits (at most
    /// a second) until every other live replica has acknowledged dropping
    /// it from its cache: the change is reported done one notification
    /// round trip after its commit, and the very next verify on any replica
    /// sees it.
    async fn announce(&self, what: &str) {
        let nonce = crate::keys::token::random_base62(16);
        let mut acked = None;
        if self.listening.load(Ordering::Acquire) {
            let since = now_ms() - REPLICA_LIVE_MS;
            let others: std::collections::HashSet<String> = match self.store.live_replicas(since).await {
                Ok(ids) => ids.into_iter().filter(|id| *id != self.replica_id).collect(),
                Err(_) => Default::default(),
            };
            if !others.is_empty() {
                let (tx, rx) = tokio::sync::oneshot::channel();
                self.acks
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(nonce.clone(), (others, tx));
                acked = Some(rx);
            }
        }
        let message = format!("change|{what}|{nonce}|{}", self.replica_id);
        if let Err(e) = self.store.announce_cache_change(&message).await {
            // The other replicas' caches may now be stale until their
            // listener reconnects and drops everything.
            tracing::error!(error = %e, "could not tell the other replicas about a change");
        }
        if let Some(acked) = acked {
            if tokio::time::timeout(std::time::Duration::from_secs(1), acked).await.is_err() {
                tracing::warn!("not every replica acknowledged a change within a second");
            }
            self.acks.lock().unwrap_or_else(|e| e.into_inner()).remove(&nonce);
        }
    }

    /// Keeps this replica in the `replicas` table while it listens.
    async fn heartbeat(self: std::sync::Arc<Self>) {
        loop {
            if let Err(e) = self.store.replica_heartbeat(&self.replica_id, now_ms()).await {
                tracing::warn!(error = %e, "replica heartbeat failed");
            }
            tokio::time::sleep(std::time::Duration::from_millis(REPLICA_LIVE_MS as u64 / 4)).await;
        }
    }

    /// Drops every cached key and entitlement.
    pub fn forget_everything(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.keys.write().unwrap_or_else(|e| e.into_inner()).clear();
        self.entitlements.write().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Applies a message of the cache channel: another replica's change
    /// (`change|key:<fp>|<nonce>|<replica>`, then acknowledged), or an
    /// acknowledgement of ours (`ack|<nonce>|<replica>`).
    pub async fn apply_remote_change(&self, message: &str) {
        let parts: Vec<&str> = message.split('|').collect();
        match parts[..] {
            ["change", what, nonce, from] => {
                self.apply_change(what);
                if from != self.replica_id {
                    let ack = format!("ack|{nonce}|{}", self.replica_id);
                    if let Err(e) = self.store.announce_cache_change(&ack).await {
                        tracing::warn!(error = %e, "could not acknowledge a change");
                    }
                }
            }
            ["ack", nonce, from] => {
                let mut acks = self.acks.lock().unwrap_or_else(|e| e.into_inner());
                let done = acks.get_mut(nonce).is_some_and(|(waiting, _)| {
                    waiting.remove(from);
                    waiting.is_empty()
                });
                if done {
                    if let Some((_, tx)) = acks.remove(nonce) {
                        let _ = tx.send(());
                    }
                }
            }
            _ => self.forget_everything(),
        }
    }

    fn apply_change(&self, what: &str) {
        match what.split_once(':') {
            Some(("key", fp)) => self.invalidate_key(fp),
            Some(("entitlements", project)) => self.invalidate_entitlements(project),
            _ => self.forget_everything(),
        }
    }

    /// Follows the other replicas' changes until the task is dropped. A
    /// lost connection drops the whole cache, since changes may have been
    /// missed while it was down. Returns at once on SQLite.
    pub async fn follow_other_replicas(self: std::sync::Arc<Self>) {
        let mut listener = loop {
            match self.store.cache_listener().await {
                Ok(Some(listener)) => {
                    self.listening.store(true, Ordering::Release);
                    tokio::spawn(self.clone().heartbeat());
                    break listener;
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for other replicas' changes; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        };
        loop {
            match listener.next().await {
                Ok(Some(message)) => self.apply_remote_change(&message).await,
                Ok(None) => self.forget_everything(),
                Err(e) => {
                    tracing::warn!(error = %e, "listening for other replicas' changes failed; cache dropped");
                    self.forget_everything();
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Counts one verify under one lock: a valid one as a use (the key's
    /// last use moves on), and its outcome for the usage charts when it
    /// is metered.
    fn record(&self, key_id: &str, code: VerifyCode, metered: bool, now: i64) {
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        let cell = usage.of(key_id);
        if code == VerifyCode::Valid {
            cell.add_day(now / DAY_MS, 1);
            cell.last_used_at = cell.last_used_at.max(now);
        }
        if metered {
            cell.add_outcome(now / HOUR_MS, code, 1);
        }
    }

    /// Keys with verifies counted since the last flush.
    pub fn keys_counted(&self) -> usize {
        self.usage.lock().unwrap_or_else(|e| e.into_inner()).keys.len()
    }

    /// Writes the counted uses and outcomes to the store in one batch
    /// each, and learns whether imported keys exist. Counts a failed write
    /// did not store are put back for the next flush.
    pub async fn flush_usage(&self) -> Result<usize, StoreError> {
        let mut taken = std::mem::take(&mut self.usage.lock().unwrap_or_else(|e| e.into_inner()).keys);
        let mut batch = Vec::new();
        let mut verifications = Vec::new();
        for (key_id, cell) in &taken {
            for &(hour, code, count) in &cell.outcomes {
                verifications.push(VerificationDelta {
                    key_id: key_id.clone(),
                    hour,
                    code: code.as_str(),
                    count,
                });
            }
            for &(day, count) in &cell.days {
                batch.push(UsageDelta {
                    key_id: key_id.clone(),
                    day,
                    count,
                    last_used_at: cell.last_used_at,
                });
            }
        }
        if let Err(e) = self.store.apply_verifications(&verifications).await {
            self.put_back(taken);
            return Err(e);
        }
        if let Err(e) = self.store.apply_usage(&batch).await {
            taken.values_mut().for_each(|cell| cell.outcomes.clear());
            self.put_back(taken);
            return Err(e);
        }
        self.set_imports_exist(self.store.has_imported_keys().await?);
        Ok(batch.len())
    }

    /// Adds counts that were not stored back to those counted since.
    fn put_back(&self, taken: HashMap<String, KeyUsage>) {
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        for (key_id, old) in taken {
            let cell = usage.of(&key_id);
            for (day, count) in old.days {
                cell.add_day(day, count);
            }
            for (hour, code, count) in old.outcomes {
                cell.add_outcome(hour, code, count);
            }
            cell.last_used_at = cell.last_used_at.max(old.last_used_at);
        }
    }
}
