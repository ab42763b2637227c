//! A server with both push webhooks configured, a push worker reading fake
//! GitHub and GitLab APIs, an alert receiver and one key to leak: shared by
//! the source tests and the hostile-input tests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keyward::engine::{Engine, EngineOptions, RuleSet};
use keyward::server::Webhooks;
use keyward::sources::github::GitHubApi;
use keyward::sources::gitlab::GitLabApi;
use keyward::sources::pushes::{CodeHosts, PushWorker};
use serde_json::{json, Value};

use super::fakes::Receiver;
use super::hosts::{self, FakeHost};

pub const GITHUB_SECRET: &str = "It's a Secret to Everybody";
pub const GITLAB_TOKEN: &str = "gitlab-hook-token-3f9a";
pub const BEFORE: &str = "9049f1265b7d61be4a8904a9a27120d2064dab3b";
pub const C1: &str = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";
pub const C2: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";
pub const C3: &str = "7638417db6d59f3c431d3e1f261cc637155684cd";

pub struct Env {
    pub s: super::Server,
    pub github: FakeHost,
    pub gitlab: FakeHost,
    pub alerts: Receiver,
    pub key_id: String,
    pub secret: String,
}

pub fn engine() -> Arc<Engine> {
    Arc::new(Engine::new(RuleSet::builtin(), EngineOptions::default()).unwrap())
}

pub async fn env(backend: super::Backend) -> Option<Env> {
    env_reading_github_with(backend, |url| GitHubApi::new(url, Some("ghs_test_installation_token")).unwrap()).await
}

/// An environment whose push worker reads GitHub with `reader(api_url)`.
pub async fn env_reading_github_with(backend: super::Backend, reader: impl FnOnce(&str) -> GitHubApi) -> Option<Env> {
    let github = hosts::github().await;
    let gitlab = hosts::gitlab().await;
    let webhooks = Webhooks {
        github_secret: Some(GITHUB_SECRET.into()),
        gitlab_secret: Some(GITLAB_TOKEN.into()),
        ..Webhooks::default()
    };
    let setup = super::Setup {
        webhooks: webhooks.clone(),
        ..super::Setup::default()
    };
    let s = super::Server::start_with(backend, setup).await?;
    let code_hosts = CodeHosts {
        github: Some(reader(&github.url)),
        gitlab: Some(GitLabApi::new(&gitlab.url, Some("glpat-test")).unwrap()),
    };
    let worker = PushWorker::new(s.responder.clone(), engine(), code_hosts, webhooks.wake.clone()).with_lease_ms(2_000);
    tokio::spawn(worker.run());
    let (alerts, alerts_url) = Receiver::start().await;
    let (status, body) = s
        .admin(
            "PUT",
            &format!("/v1/projects/{}/alert-settings", s.project),
            Some(json!({"webhook_url": alerts_url, "webhook_secret": "alert-signing-secret-0123"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (key_id, secret) = s
        .create_key(json!({"name": "payments_backend", "scopes": ["analytics:read"]}))
        .await;
    Some(Env {
        s,
        github,
        gitlab,
        alerts,
        key_id,
        secret,
    })
}

pub fn sign(body: &[u8]) -> String {
    hosts::github_signature(GITHUB_SECRET, body)
}

/// GitHub's published push example, pointed at our commits.
pub fn push_payload(before: &str, after: &str, commits: &[&str], created: bool, forced: bool) -> Vec<u8> {
    let mut payload: Value = serde_json::from_str(include_str!("../../fixtures/github/push.json")).unwrap();
    let template = payload["commits"][0].clone();
    payload["before"] = json!(before);
    payload["after"] = json!(after);
    payload["created"] = json!(created);
    payload["forced"] = json!(forced);
    payload["ref"] = json!("refs/heads/main");
    payload["commits"] = Value::Array(
        commits
            .iter()
            .map(|sha| {
                let mut c = template.clone();
                c["id"] = json!(sha);
                c
            })
            .collect(),
    );
    serde_json::to_vec(&payload).unwrap()
}

impl Env {
    pub async fn deliver(&self, delivery: &str, event: &str, body: &[u8], signature: Option<String>) -> (u16, Value) {
        let mut request = self
            .s
            .http
            .post(format!("{}/webhooks/github", self.s.base))
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .header("x-github-delivery", delivery)
            .header("user-agent", "GitHub-Hookshot/044aadd")
            .body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header("x-hub-signature-256", signature);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn push(&self, delivery: &str, body: Vec<u8>) -> (u16, Value) {
        let signature = sign(&body);
        self.deliver(delivery, "push", &body, Some(signature)).await
    }

    pub async fn code(&self) -> String {
        self.s.code(&self.secret, None, None).await
    }

    pub async fn wait_for_code(&self, wanted: &str) -> Duration {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if self.code().await == wanted {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the key never became {wanted}");
    }

    /// Waits until every push job has finished, one way or the other.
    pub async fn wait_for_jobs(&self, kind: &str, count: usize) -> Vec<(String, String, i64)> {
        let started = Instant::now();
        loop {
            let jobs = self.s.service.store().jobs_of_kind(kind).await.unwrap();
            if jobs.len() >= count && jobs.iter().all(|(_, state, _)| state == "done" || state == "dead") {
                return jobs;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "jobs never finished: {jobs:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn incidents(&self) -> Vec<Value> {
        let (status, body) = self
            .s
            .admin("GET", &format!("/v1/projects/{}/incidents", self.s.project), None)
            .await;
        assert_eq!(status, 200, "{body}");
        body["incidents"].as_array().unwrap().clone()
    }

    pub async fn wait_for_alert(&self) -> String {
        let started = Instant::now();
        while self.alerts.count() == 0 {
            assert!(started.elapsed() < Duration::from_secs(10), "no alert was delivered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        String::from_utf8_lossy(&self.alerts.hits.lock().unwrap()[0].1).into_owned()
    }

    pub fn leak_patch(&self) -> String {
        format!(
            "@@ -1,2 +1,3 @@\n DATABASE_URL=postgres://db/app\n LOG_LEVEL=info\n+PAYMENTS_API_KEY={}",
            self.secret
        )
    }
}
