//! Per-key rate limits on the verify path: fixed windows counted in this
//! replica's memory.
//!
//! On SQLite there is one replica, which owns every window whole: exact,
//! and no store round trip. On PostgreSQL several replicas share a window
//! through `ratelimit_leases`: a replica is handed a block of the window
//! (an eighth of the limit, or what the call needs) and serves from it in
//! memory, asking for another block when it runs out. A window is never
//! over-admitted; what a replica was handed and did not use is lost to the
//! others until the window ends, so across N replicas a window may refuse
//! early by at most (N - 1) blocks. On one replica it is exact.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::keys::limits::RateLimit;
use crate::store::{ApiKey, Store, StoreError};

/// A rate limit as one verify left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitState {
    pub name: String,
    pub limit: i64,
    pub remaining: i64,
    pub reset_at: i64,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: i64,
    /// The limit the window was opened under: a changed limit starts afresh.
    limit: i64,
    /// Uses this replica may admit in the window.
    granted: i64,
    used: i64,
    /// Uses handed out to every replica, as last heard from the store.
    leased: i64,
}

/// Bounds the keys whose windows are kept in memory; the oldest windows
/// go first.
const MAX_KEYS: usize = 100_000;

/// One key's windows, by limit name: a key has a handful of limits, so a
/// scan beats a map, and a verify finds them with no string copied.
type KeyWindows = Vec<(String, Window)>;

pub struct RateLimiter {
    store: Store,
    /// Several replicas may share windows (PostgreSQL).
    shared: bool,
    windows: Mutex<HashMap<String, KeyWindows>>,
    /// One lease at a time per replica, so a burst of calls takes one
    /// block, not one each: a replica never holds more than a block unused.
    leasing: tokio::sync::Mutex<()>,
}

impl RateLimiter {
    pub fn new(store: Store) -> RateLimiter {
        let shared = store.backend() == crate::store::Backend::Postgres;
        RateLimiter {
            store,
            shared,
            windows: Mutex::default(),
            leasing: tokio::sync::Mutex::new(()),
        }
    }

    /// Admits `cost` uses of every limit of the key, or none: a call one
    /// limit refuses counts against no other. Returns whether it was
    /// admitted, and every limit's state after.
    pub async fn admit(&self, key: &ApiKey, cost: i64, now: i64) -> Result<(bool, Vec<LimitState>), StoreError> {
        if key.ratelimits.is_empty() {
            return Ok((true, Vec::new()));
        }
        for _ in 0..4 {
            let (shortfalls, states) = self.try_admit(key, cost, now);
            if shortfalls.is_empty() || !self.shared {
                return Ok((shortfalls.is_empty(), states));
            }
            let _one_lease_at_a_time = self.leasing.lock().await;
            // A lease made while this call waited may already cover it.
            let (shortfalls, states) = self.try_admit(key, cost, now);
            if shortfalls.is_empty() {
                return Ok((true, states));
            }
            let mut any_granted = false;
            for (limit, start, need) in shortfalls {
                let block = need.max(limit.limit / 8).max(1);
                let (granted, leased) = self.store.lease_ratelimit(&key.id, &limit.name, start, block, limit.limit).await?;
                any_granted |= granted > 0;
                self.add_grant(&key.id, &limit, start, granted, leased);
            }
            if !any_granted {
                break;
            }
        }
        let (shortfalls, states) = self.try_admit(key, cost, now);
        Ok((shortfalls.is_empty(), states))
    }

    /// Counts the uses if every limit has room; else the limits short of
    /// room, with their window start and how many more uses they need.
    /// Also returns every limit's state after, read under the same lock.
    fn try_admit(&self, key: &ApiKey, cost: i64, now: i64) -> (Vec<(RateLimit, i64, i64)>, Vec<LimitState>) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() > MAX_KEYS {
            let oldest = windows.values().flatten().map(|(_, w)| w.start).min().unwrap_or(now);
            windows.retain(|_, of_key| {
                of_key.retain(|(_, w)| w.start > oldest);
                !of_key.is_empty()
            });
        }
        let of_key = super::per_key(&mut windows, &key.id);
        let mut short = Vec::new();
        for limit in &key.ratelimits {
            let w = self.window(of_key, limit, now);
            if w.used + cost > w.granted {
                short.push((limit.clone(), w.start, w.used + cost - w.granted));
            }
        }
        if short.is_empty() {
            for limit in &key.ratelimits {
                self.window(of_key, limit, now).used += cost;
            }
        }
        let states = key
            .ratelimits
            .iter()
            .map(|limit| self.state(*self.window(of_key, limit, now), limit))
            .collect();
        (short, states)
    }

    /// The key's window for `limit` at `now`, started afresh when the
    /// previous one has ended. A replica alone owns the whole window.
    fn window<'a>(&self, of_key: &'a mut KeyWindows, limit: &RateLimit, now: i64) -> &'a mut Window {
        let start = limit.window_start(now);
        let fresh = Window {
            start,
            limit: limit.limit,
            granted: if self.shared { 0 } else { limit.limit },
            used: 0,
            leased: 0,
        };
        let at = match of_key.iter().position(|(name, _)| *name == limit.name) {
            Some(at) => at,
            None => {
                of_key.push((limit.name.clone(), fresh));
                of_key.len() - 1
            }
        };
        let w = &mut of_key[at].1;
        if w.start != start || w.limit != limit.limit {
            *w = fresh;
        }
        w
    }

    fn add_grant(&self, key_id: &str, limit: &RateLimit, start: i64, granted: i64, leased: i64) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let w = self.window(super::per_key(&mut windows, key_id), limit, start);
        if w.start == start {
            w.granted += granted;
            w.leased = w.leased.max(leased);
        }
    }

    fn state(&self, w: Window, limit: &RateLimit) -> LimitState {
        // Not yet handed to any replica, plus what this one holds.
        let remaining = if self.shared {
            (limit.limit - w.leased) + (w.granted - w.used)
        } else {
            limit.limit - w.used
        };
        LimitState {
            name: limit.name.clone(),
            limit: limit.limit,
            remaining: remaining.clamp(0, limit.limit),
            reset_at: w.start + limit.duration_ms,
        }
    }
}
