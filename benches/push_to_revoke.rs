//! Push to revoke: 500 signed GitHub push webhooks over loopback, each
//! adding a different live key in its own commit, timed from sending the
//! webhook until verify answers REVOKED. Between the two: the 202 after the
//! job's commit, the push worker's claim, the compare call to a fake GitHub
//! API on loopback (real response shape), the scan of the added lines, and
//! the leak response's transaction. Runs on SQLite, and on PostgreSQL when
//! DATABASE_URL is set.
//!
//!     cargo bench --bench push_to_revoke

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::hosts::{self, FileChange};
use keyward::engine::{Engine, EngineOptions, RuleSet};
use keyward::server::Webhooks;
use keyward::sources::github::GitHubApi;
use keyward::sources::pushes::{CodeHosts, PushWorker};
use serde_json::{json, Value};

const PUSHES: usize = 500;
const SECRET: &str = "bench-webhook-secret";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn sha(i: usize, salt: u8) -> String {
    format!("{salt:02x}{i:038x}")
}

async fn run(backend: common::Backend) {
    let github = hosts::github().await;
    let webhooks = Webhooks {
        github_secret: Some(SECRET.into()),
        ..Webhooks::default()
    };
    let setup = common::Setup {
        webhooks: webhooks.clone(),
        ..common::Setup::default()
    };
    let Some(s) = common::Server::start_with(backend, setup).await else {
        return;
    };
    let engine = Arc::new(Engine::new(RuleSet::builtin(), EngineOptions::default()).unwrap());
    let code_hosts = CodeHosts {
        github: Some(GitHubApi::new(&github.url, None).unwrap()),
        gitlab: None,
    };
    tokio::spawn(PushWorker::new(s.responder.clone(), engine, code_hosts, webhooks.wake.clone()).run());
    let template: Value = serde_json::from_str(include_str!("../fixtures/github/push.json")).unwrap();
    let mut latencies = Vec::with_capacity(PUSHES);
    for i in 0..PUSHES {
        let (_, token) = s.create_key(json!({"name": format!("k{i}"), "scopes": []})).await;
        let (before, after) = (sha(i, 1), sha(i, 2));
        github.add_commit(
            &after,
            vec![FileChange::new("config/app.env", &format!("@@ -1 +1,2 @@\n A=1\n+KEY={token}"))],
        );
        github.add_range(&before, &after, &[&after]);
        let mut payload = template.clone();
        payload["before"] = json!(before);
        payload["after"] = json!(after);
        payload["created"] = json!(false);
        payload["commits"][0]["id"] = json!(after);
        let body = serde_json::to_vec(&payload).unwrap();
        let signature = hosts::github_signature(SECRET, &body);
        let started = Instant::now();
        let response = s
            .http
            .post(format!("{}/webhooks/github", s.base))
            .header("x-github-event", "push")
            .header("x-github-delivery", format!("delivery-{i}"))
            .header("x-hub-signature-256", signature)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        while s.code(&token, None, None).await != "REVOKED" {
            assert!(started.elapsed() < Duration::from_secs(30), "push {i} never revoked its key");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        latencies.push(started.elapsed());
    }
    latencies.sort();
    println!(
        "push_to_revoke/{backend:?}: {PUSHES} pushes, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3
    );
}

fn main() {
    // Only under `cargo bench`, not `cargo test --all-targets`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(run(common::Backend::Sqlite));
    runtime.block_on(run(common::Backend::Postgres));
}
