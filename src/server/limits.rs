//! Rate limits: token buckets in memory, per client address and per key on
//! verify, and per client address on the webhook endpoints. Over the limit
//! is 429 with `Retry-After`. Keys are limited by a keyed hash of the token
//! (SipHash with this process's random keys), never the token itself.
//! Buckets are keyed by plain values, so a hit allocates nothing.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One limit: `per_second` on average, bursts up to `burst`, per `K`.
pub struct Limiter<K = IpAddr> {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, (f64, Instant)>>,
}

/// Buckets idle this long are full again and can be forgotten.
const IDLE: Duration = Duration::from_secs(60);

impl<K: Hash + Eq + Copy> Limiter<K> {
    pub fn new(per_second: f64, burst: f64) -> Limiter<K> {
        Limiter {
            per_second: per_second.max(0.001),
            burst: burst.max(1.0),
            buckets: Mutex::default(),
        }
    }

    /// Takes one token for `key`; `Err(wait)` when there is none.
    pub fn check(&self, key: K) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 100_000 {
            buckets.retain(|_, (_, at)| now.duration_since(*at) < IDLE);
        }
        let (tokens, at) = buckets.entry(key).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.per_second))
        }
    }
}

/// The server's limits.
pub struct RateLimits {
    pub verify_per_ip: Limiter,
    pub verify_per_key: Limiter<u64>,
    pub webhooks_per_ip: Limiter,
    /// Hashes presented tokens for `verify_per_key`.
    token_hasher: std::collections::hash_map::RandomState,
}

impl Default for RateLimits {
    /// Generous: a busy backend verifies thousands of times a second from
    /// one address; these stop floods, not traffic.
    fn default() -> RateLimits {
        RateLimits::per_second(50_000.0, 20_000.0, 100.0)
    }
}

impl RateLimits {
    /// Each limit allows bursts of twice its rate.
    pub fn per_second(verify_per_ip: f64, verify_per_key: f64, webhooks_per_ip: f64) -> RateLimits {
        RateLimits {
            verify_per_ip: Limiter::new(verify_per_ip, 2.0 * verify_per_ip),
            verify_per_key: Limiter::new(verify_per_key, 2.0 * verify_per_key),
            webhooks_per_ip: Limiter::new(webhooks_per_ip, 2.0 * webhooks_per_ip),
            token_hasher: Default::default(),
        }
    }

    /// Limits made by hand (each with its own burst).
    pub fn with(verify_per_ip: Limiter, verify_per_key: Limiter<u64>, webhooks_per_ip: Limiter) -> RateLimits {
        RateLimits {
            verify_per_ip,
            verify_per_key,
            webhooks_per_ip,
            token_hasher: Default::default(),
        }
    }

    /// The per-key limiter's key for a presented token.
    pub fn token_key(&self, token: &str) -> u64 {
        self.token_hasher.hash_one(token)
    }

    /// The defaults, overridden by `KEYWARD_RATE_VERIFY_PER_IP`,
    /// `KEYWARD_RATE_VERIFY_PER_KEY` and `KEYWARD_RATE_WEBHOOKS_PER_IP`
    /// (requests per second).
    pub fn from_env() -> RateLimits {
        let rate = |name: &str, default: f64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| *v > 0.0)
                .unwrap_or(default)
        };
        RateLimits::per_second(
            rate("KEYWARD_RATE_VERIFY_PER_IP", 50_000.0),
            rate("KEYWARD_RATE_VERIFY_PER_KEY", 20_000.0),
            rate("KEYWARD_RATE_WEBHOOKS_PER_IP", 100.0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let limiter: Limiter<u8> = Limiter::new(10.0, 3.0);
        assert!((0..3).all(|_| limiter.check(b'a').is_ok()));
        let wait = limiter.check(b'a').unwrap_err();
        assert!(wait > Duration::from_millis(50) && wait <= Duration::from_millis(100), "{wait:?}");
        assert!(limiter.check(b'b').is_ok(), "another key has its own bucket");
        std::thread::sleep(Duration::from_millis(110));
        assert!(limiter.check(b'a').is_ok(), "a token came back after 1/rate");
    }
}
