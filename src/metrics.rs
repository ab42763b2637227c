//! Process-wide counters behind `GET /metrics`: plain atomics, cheap enough
//! for the verify path. `server::status` renders them in Prometheus' text
//! format, beside what the store knows (queue depth, source lag).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::keys::verdict::VerifyCode;

/// Upper bounds of the verify latency histogram, in seconds.
pub const VERIFY_BUCKETS: [f64; 9] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25];

pub static METRICS: Metrics = Metrics::new();

pub struct Metrics {
    verify: [Histogram; VerifyCode::ALL.len()],
    pub bytes_scanned: AtomicU64,
    pub findings: AtomicU64,
    pub revocations: AtomicU64,
    pub alerts_delivered: AtomicU64,
    pub alerts_failed: AtomicU64,
    pub http_panics: AtomicU64,
    /// Signed webhook deliveries answered 503 because the push queue is full.
    pub webhooks_shed: AtomicU64,
    /// Third-party tokens revoked at their issuers.
    pub third_party_revoked: AtomicU64,
}

/// A latency histogram: cumulative bucket counts, count and sum.
pub struct Histogram {
    buckets: [AtomicU64; VERIFY_BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    const fn new() -> Histogram {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; VERIFY_BUCKETS.len()],
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// One increment of the bucket the time falls in (not of every bucket
    /// above it: the hot path pays three atomics, the scrape adds up).
    fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        if let Some(bucket) = VERIFY_BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[bucket].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(took.as_nanos() as u64, Relaxed);
    }

    /// (cumulative counts per bucket, count, sum in seconds)
    pub fn snapshot(&self) -> (Vec<u64>, u64, f64) {
        let mut running = 0;
        let buckets = self
            .buckets
            .iter()
            .map(|b| {
                running += b.load(Relaxed);
                running
            })
            .collect();
        (buckets, self.count.load(Relaxed), self.sum_nanos.load(Relaxed) as f64 / 1e9)
    }
}

impl Metrics {
    const fn new() -> Metrics {
        Metrics {
            verify: [const { Histogram::new() }; VerifyCode::ALL.len()],
            bytes_scanned: AtomicU64::new(0),
            findings: AtomicU64::new(0),
            revocations: AtomicU64::new(0),
            alerts_delivered: AtomicU64::new(0),
            alerts_failed: AtomicU64::new(0),
            http_panics: AtomicU64::new(0),
            webhooks_shed: AtomicU64::new(0),
            third_party_revoked: AtomicU64::new(0),
        }
    }

    pub fn verified(&self, code: VerifyCode, took: Duration) {
        self.verify[code as usize].observe(took);
    }

    pub fn verify_histogram(&self, code: VerifyCode) -> &Histogram {
        &self.verify[code as usize]
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }
}
