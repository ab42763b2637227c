//! The verify path, embeddable in any Rust service as [`Verifier`].
//!
//! Order of checks: format and checksum (no lookup), fingerprint lookup
//! (cache, else store), revoked, expired, mode, scope, entitlement. A hot
//! key costs no database read. Revocation cannot leave a stale "yes" in the
//! cache: every change bumps an epoch and removes the entry, and a lookup
//! that raced with a change does not cache what it read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::keys::fingerprint::{Fingerprint, Fingerprinter};
use crate::keys::scopes;
use crate::keys::token::{self, Mode};
use crate::store::{now_ms, ApiKey, EntitlementState, Store, StoreError, UsageDelta};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VerifyCode {
    Valid,
    Malformed,
    NotFound,
    Revoked,
    Expired,
    WrongMode,
    InsufficientScope,
    NotEntitled,
}

impl VerifyCode {
    /// Every code, in declaration order (`code as usize` indexes it).
    pub const ALL: [VerifyCode; 8] = [
        VerifyCode::Valid,
        VerifyCode::Malformed,
        VerifyCode::NotFound,
        VerifyCode::Revoked,
        VerifyCode::Expired,
        VerifyCode::WrongMode,
        VerifyCode::InsufficientScope,
        VerifyCode::NotEntitled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VerifyCode::Valid => "VALID",
            VerifyCode::Malformed => "MALFORMED",
            VerifyCode::NotFound => "NOT_FOUND",
            VerifyCode::Revoked => "REVOKED",
            VerifyCode::Expired => "EXPIRED",
            VerifyCode::WrongMode => "WRONG_MODE",
            VerifyCode::InsufficientScope => "INSUFFICIENT_SCOPE",
            VerifyCode::NotEntitled => "NOT_ENTITLED",
        }
    }
}

/// The answer to one verify. `key` is set whenever the token matched a
/// stored key, valid or not.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub code: VerifyCode,
    pub key: Option<Arc<ApiKey>>,
}

impl Verdict {
    pub fn valid(&self) -> bool {
        self.code == VerifyCode::Valid
    }

    fn bare(code: VerifyCode) -> Verdict {
        Verdict { code, key: None }
    }
}

#[derive(Default)]
struct Usage {
    /// (key id, day) -> (count, last used at)
    counts: HashMap<(String, i64), (i64, i64)>,
}

pub struct Verifier {
    store: Store,
    fingerprinter: Fingerprinter,
    keys: RwLock<HashMap<Fingerprint, Arc<ApiKey>>>,
    entitlements: RwLock<HashMap<String, Arc<HashMap<String, EntitlementState>>>>,
    /// Bumped on every change; a lookup caches only if it is unchanged.
    epoch: AtomicU64,
    usage: Mutex<Usage>,
    /// Set once this replica listens for changes (PostgreSQL).
    listening: std::sync::atomic::AtomicBool,
    /// This replica's name on the cache channel and in `replicas`.
    replica_id: String,
    /// Announcements waiting for the other replicas' acknowledgements.
    acks: Mutex<HashMap<String, AwaitedAcks>>,
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

impl Verifier {
    pub fn new(store: Store, fingerprinter: Fingerprinter) -> Verifier {
        Verifier {
            store,
            fingerprinter,
            keys: RwLock::default(),
            entitlements: RwLock::default(),
            epoch: AtomicU64::new(0),
            usage: Mutex::default(),
            listening: Default::default(),
            replica_id: crate::service::new_id("replica"),
            acks: Mutex::default(),
        }
    }

    pub fn fingerprinter(&self) -> &Fingerprinter {
        &self.fingerprinter
    }

    /// Verifies a presented token, optionally for a scope and a mode.
    pub async fn verify(&self, token: &str, scope: Option<&str>, mode: Option<Mode>) -> Result<Verdict, StoreError> {
        let started = std::time::Instant::now();
        let verdict = self.judge(token, scope, mode).await?;
        crate::metrics::METRICS.verified(verdict.code, started.elapsed());
        Ok(verdict)
    }

    async fn judge(&self, token: &str, scope: Option<&str>, mode: Option<Mode>) -> Result<Verdict, StoreError> {
        if token::parse(token).is_err() {
            return Ok(Verdict::bare(VerifyCode::Malformed));
        }
        let Some(key) = self.lookup(token).await? else {
            return Ok(Verdict::bare(VerifyCode::NotFound));
        };
        let now = now_ms();
        let code = if key.is_revoked_at(now) {
            VerifyCode::Revoked
        } else if key.is_expired_at(now) {
            VerifyCode::Expired
        } else if mode.is_some_and(|m| m != key.mode) {
            VerifyCode::WrongMode
        } else if scope.is_some_and(|s| !scopes::allows(&key.scopes, s)) {
            VerifyCode::InsufficientScope
        } else if let Some(s) = scope.filter(|s| !s.is_empty()) {
            if self.entitled(&key.project_id, scopes::product_of(s)).await? {
                VerifyCode::Valid
            } else {
                VerifyCode::NotEntitled
            }
        } else {
            VerifyCode::Valid
        };
        if code == VerifyCode::Valid {
            self.count_use(&key.id, now);
        }
        Ok(Verdict { code, key: Some(key) })
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
            cache.insert(fingerprint, key.clone());
        }
        Ok(Some(key))
    }

    async fn entitled(&self, project_id: &str, product: &str) -> Result<bool, StoreError> {
        let cached = self.entitlements.read().unwrap_or_else(|e| e.into_inner()).get(project_id).cloned();
        let states = match cached {
            Some(states) => states,
            None => {
                let epoch = self.epoch.load(Ordering::Acquire);
                let loaded: HashMap<String, EntitlementState> = self
                    .store
                    .entitlements(project_id)
                    .await?
                    .into_iter()
                    .map(|e| (e.product, e.state))
                    .collect();
                let loaded = Arc::new(loaded);
                let mut cache = self.entitlements.write().unwrap_or_else(|e| e.into_inner());
                if self.epoch.load(Ordering::Acquire) == epoch {
                    cache.insert(project_id.to_string(), loaded.clone());
                }
                loaded
            }
        };
        // No row: the billing system has not restricted the product.
        Ok(states.get(product).is_none_or(|s| s.grants_access()))
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

    fn count_use(&self, key_id: &str, now: i64) {
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        let entry = usage.counts.entry((key_id.to_string(), now / DAY_MS)).or_insert((0, now));
        entry.0 += 1;
        entry.1 = entry.1.max(now);
    }

    /// Writes the counted uses to the store in one batch.
    pub async fn flush_usage(&self) -> Result<usize, StoreError> {
        let taken = std::mem::take(&mut self.usage.lock().unwrap_or_else(|e| e.into_inner()).counts);
        let batch: Vec<UsageDelta> = taken
            .into_iter()
            .map(|((key_id, day), (count, last_used_at))| UsageDelta {
                key_id,
                day,
                count,
                last_used_at,
            })
            .collect();
        self.store.apply_usage(&batch).await?;
        Ok(batch.len())
    }
}
