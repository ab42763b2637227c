//! Push to revoke: 500 signed GitHub push webhooks over loopback, each
//! adding a different live key in its own commit, timed from sending the
//! webhook until verify answers REVOKED. Between the two: the 202 after the
//! job's commit, the push worker's claim, the compare call to a fake GitHub
//! API on loopback (real response shape), the scan of the added lines, and
//! the leak response's transaction. Runs on SQLite, and on PostgreSQL when
//! DATABASE_URL is set.
//!
//! Then the same for third-party tokens under the `revoke` policy, timed
//! from sending the webhook until the fake issuer receives its revocation
//! call: 500 pushes of a Slack token each (one call per token), and 50 of
//! a GitHub token each (GitHub's calls are gathered until the tokens stop
//! arriving for 500 ms, so that a push of many costs one of the hour's 60).
//!
//!     cargo bench --bench push_to_revoke

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::hosts::{self, FakeHost, FileChange};
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

/// The push worker, reading pushes from the fake GitHub.
fn start_push_worker(s: &common::Server, github: &FakeHost, webhooks: &Webhooks) {
    let engine = Arc::new(Engine::new(RuleSet::builtin(), EngineOptions::default()).unwrap());
    let code_hosts = CodeHosts {
        github: Some(GitHubApi::new(&github.url, None).unwrap()),
        gitlab: None,
    };
    tokio::spawn(PushWorker::new(s.responder.clone(), engine, code_hosts, webhooks.wake.clone()).run());
}

/// Makes the fake GitHub hold push number `i` (its commits named from
/// `salt` and `salt + 1`), adding `line` to config/app.env, and sends its
/// signed webhook; returns when it was sent, once answered 202.
async fn push_line(s: &common::Server, github: &FakeHost, (i, salt): (usize, u8), line: &str, delivery: &str) -> Instant {
    let template: Value = serde_json::from_str(include_str!("../fixtures/github/push.json")).unwrap();
    let (before, after) = (sha(i, salt), sha(i, salt + 1));
    github.add_commit(
        &after,
        vec![FileChange::new("config/app.env", &format!("@@ -1 +1,2 @@\n A=1\n+{line}"))],
    );
    github.add_range(&before, &after, &[&after]);
    let mut payload = template;
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
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    started
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
    start_push_worker(&s, &github, &webhooks);
    let mut latencies = Vec::with_capacity(PUSHES);
    for i in 0..PUSHES {
        let (_, token) = s.create_key(json!({"name": format!("k{i}"), "scopes": []})).await;
        let started = push_line(&s, &github, (i, 1), &format!("KEY={token}"), &format!("delivery-{i}")).await;
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

/// A Slack bot token of random digits and letters.
fn slack_token(rng: &mut impl rand::Rng) -> String {
    const ALNUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let digits =
        |rng: &mut dyn rand::RngCore, n: usize| -> String { (0..n).map(|_| char::from(b'0' + (rng.next_u32() % 10) as u8)).collect() };
    let tail: String = (0..24).map(|_| ALNUM[rng.gen_range(0..62)] as char).collect();
    format!("xoxb-{}-{}-{tail}", digits(rng, 12), digits(rng, 13))
}

async fn run_third_party(backend: common::Backend, issuer: &str, pushes: usize) {
    use rand::SeedableRng;
    let github = hosts::github().await;
    let (fake, fake_url) = common::issuers::FakeIssuers::start().await;
    let webhooks = Webhooks {
        github_secret: Some(SECRET.into()),
        ..Webhooks::default()
    };
    let mut endpoints = keyward::response::issuers::Endpoints::public(&fake_url, &format!("{fake_url}/api/v4"));
    endpoints.slack_api = format!("{fake_url}/api");
    let setup = common::Setup {
        webhooks: webhooks.clone(),
        third_party: Some(keyward::response::third_party::ThirdPartySettings {
            policy: keyward::response::third_party::Policy::Revoke,
            overrides: Default::default(),
            endpoints,
        }),
        ..common::Setup::default()
    };
    let Some(s) = common::Server::start_with(backend, setup).await else {
        return;
    };
    start_push_worker(&s, &github, &webhooks);
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let mut latencies = Vec::with_capacity(pushes);
    for i in 0..pushes {
        let token = if issuer == "slack" {
            slack_token(&mut rng)
        } else {
            common::issuers::github_token(i as u64)
        };
        let started = push_line(&s, &github, (i, 3), &format!("TOKEN={token}"), &format!("third-party-{i}")).await;
        let arrived = loop {
            if let Some(call) = fake.calls().into_iter().find(|c| c.tokens.contains(&token)) {
                break call.at;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "push {i}'s token never reached {issuer}"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        latencies.push(arrived.duration_since(started));
    }
    latencies.sort();
    println!(
        "push_to_issuer/{issuer}/{backend:?}: {pushes} pushes, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
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
    let only_third_party = std::env::var_os("KEYWARD_BENCH_THIRD_PARTY_ONLY").is_some();
    for backend in [common::Backend::Sqlite, common::Backend::Postgres] {
        if !only_third_party {
            runtime.block_on(run(backend));
        }
        runtime.block_on(run_third_party(backend, "slack", PUSHES));
        // GitHub allows 60 calls an hour, and each push here is its own call.
        runtime.block_on(run_third_party(backend, "github", 50));
    }
}
