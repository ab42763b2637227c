//! Leak to revoke: 1,000 signed GitHub partner reports over loopback, each
//! for a different live key, timed from sending the report to the 200 that
//! follows the commit of the revocation; each key is then checked to verify
//! as REVOKED. Runs on SQLite, and on PostgreSQL when DATABASE_URL is set.
//!
//!     cargo bench --bench leak_response

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::fakes::{keys_endpoint, PartnerSigner};
use serde_json::json;

const REPORTS: usize = 1000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

async fn run(backend: common::Backend) {
    let signer = PartnerSigner::new(3, "bench-key");
    let setup = common::Setup {
        github_keys_url: Some(keys_endpoint(&[(&signer, true)]).await),
        ..common::Setup::default()
    };
    let Some(s) = common::Server::start_with(backend, setup).await else {
        return;
    };
    let mut tokens = Vec::with_capacity(REPORTS);
    for i in 0..REPORTS {
        tokens.push(
            s.create_key(json!({"name": format!("k{i}"), "kind": "secret", "mode": "live", "scopes": []}))
                .await
                .1,
        );
    }
    let mut latencies = Vec::with_capacity(REPORTS);
    for token in &tokens {
        let body = json!([{"token": token, "type": "keyward", "url": "https://github.com/o/r/blob/abc/x.env#L1"}]).to_string();
        let started = Instant::now();
        let response = s
            .http
            .post(format!("{}/partners/github/secret-scanning", s.base))
            .header("GITHUB-PUBLIC-KEY-IDENTIFIER", &signer.key_id)
            .header("GITHUB-PUBLIC-KEY-SIGNATURE", signer.sign(body.as_bytes()))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        latencies.push(started.elapsed());
        assert_eq!(s.code(token, None, None).await, "REVOKED");
    }
    latencies.sort();
    println!(
        "leak_to_revoke/{backend:?}: {REPORTS} reports, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` does not, and
    // should not spend a minute replaying 2,000 reports in a debug build.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(run(common::Backend::Sqlite));
    runtime.block_on(run(common::Backend::Postgres));
}
