//! Revocation under load: verify runs flat out over real HTTP for 60 s
//! (`KEYWARD_LOAD_SECS` to change) while keys are revoked one by one. A
//! verify sent after a revocation's answer came back, which is after its
//! commit, must never say VALID. Prints what the server held.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

const KEYS: usize = 100;
const CLIENTS: usize = 8;

fn load_duration() -> Duration {
    let secs = std::env::var("KEYWARD_LOAD_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    Duration::from_secs(secs)
}

/// One verify: when it was sent, which key, what came back, how long it took.
struct Sample {
    sent: Instant,
    key: usize,
    valid: bool,
    latency: Duration,
}

both_backends!(
    no_revoked_key_verifies_after_its_revocation_commits,
    |s: common::Server| async move {
        let mut keys = Vec::with_capacity(KEYS);
        for i in 0..KEYS {
            keys.push(s.create_key(json!({"name": format!("load_{i}"), "scopes": []})).await);
        }
        let keys = Arc::new(keys);
        let revoked_at: Arc<Mutex<HashMap<usize, Instant>>> = Arc::default();
        let started = Instant::now();
        let deadline = started + load_duration();

        let mut clients = Vec::new();
        for client in 0..CLIENTS {
            let (keys, http, base) = (keys.clone(), s.http.clone(), s.base.clone());
            clients.push(tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut errors = 0u64;
                let mut i = client;
                while Instant::now() < deadline {
                    i = (i * 7919 + 13) % KEYS;
                    let sent = Instant::now();
                    let response = http
                        .post(format!("{base}/v1/keys/verify"))
                        .json(&json!({"key": keys[i].1}))
                        .send()
                        .await;
                    let Ok(response) = response else {
                        errors += 1;
                        continue;
                    };
                    let latency = sent.elapsed();
                    match response.json::<serde_json::Value>().await {
                        Ok(v) => samples.push(Sample {
                            sent,
                            key: i,
                            valid: v["valid"] == true,
                            latency,
                        }),
                        Err(_) => errors += 1,
                    }
                }
                (samples, errors)
            }));
        }

        // Revoke a key every 500 ms; its answer marks the moment after commit.
        let revoker = {
            let (keys, revoked_at) = (keys.clone(), revoked_at.clone());
            let (http, base, admin) = (s.http.clone(), s.base.clone(), s.admin.clone());
            tokio::spawn(async move {
                let mut next = 0;
                while Instant::now() + Duration::from_millis(500) < deadline && next < KEYS {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let response = http
                        .post(format!("{base}/v1/keys/{}/revoke", keys[next].0))
                        .bearer_auth(&admin)
                        .json(&json!({"reason": "manual"}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 200);
                    revoked_at.lock().unwrap().insert(next, Instant::now());
                    next += 1;
                }
            })
        };

        let mut samples = Vec::new();
        let mut errors = 0;
        for client in clients {
            let (mut s, e) = client.await.unwrap();
            samples.append(&mut s);
            errors += e;
        }
        revoker.await.unwrap();
        let elapsed = started.elapsed();
        let revoked_at = revoked_at.lock().unwrap().clone();

        let violations: Vec<String> = samples
            .iter()
            .filter(|x| x.valid && revoked_at.get(&x.key).is_some_and(|at| x.sent > *at))
            .map(|x| {
                format!(
                    "key {} verified VALID {:?} after its revocation",
                    x.key,
                    x.sent - revoked_at[&x.key]
                )
            })
            .collect();
        let after_revocation = samples
            .iter()
            .filter(|x| revoked_at.get(&x.key).is_some_and(|at| x.sent > *at))
            .count();
        let mut latencies: Vec<Duration> = samples.iter().map(|x| x.latency).collect();
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        eprintln!(
            "{} verifies in {:.1} s ({:.0}/s) from {CLIENTS} clients, p50 {:?}, p99 {:?}, max {:?}; {} keys revoked; \
         {after_revocation} verifies of revoked keys after commit, {} VALID; {errors} transport errors",
            samples.len(),
            elapsed.as_secs_f64(),
            samples.len() as f64 / elapsed.as_secs_f64(),
            at(0.5),
            at(0.99),
            latencies.last().unwrap(),
            revoked_at.len(),
            violations.len(),
        );
        assert!(violations.is_empty(), "{violations:?}");
        assert_eq!(errors, 0);
        assert!(
            revoked_at.len() >= (load_duration().as_secs() as usize).min(KEYS),
            "keys were revoked throughout"
        );
        assert!(after_revocation > 1000, "revoked keys were verified under load: {after_revocation}");
    }
);
