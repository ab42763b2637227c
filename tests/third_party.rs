//! Third-party tokens end to end over loopback: a sighting (or a push) of
//! another issuer's token → incident → sealed and queued → the issuer's
//! fake receives its documented revocation call → the incident says how it
//! ended, and no plaintext is left at rest.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::issuers::{github_token, Behaviour, FakeIssuers};
use keyward::engine::{Engine, EngineOptions, RuleSet};
use keyward::response::issuers::Endpoints;
use keyward::response::third_party::{Policy, ThirdPartySettings};
use serde_json::{json, Value};

const GITLAB_ADMIN: &str = "glpat-AdminOfTheSelfManagedOne1";

/// A token of `rule_id`, taken from the rule's first example.
fn example(rule_id: &str) -> String {
    let rules = RuleSet::builtin();
    let rule = rules.get(rule_id).unwrap_or_else(|| panic!("no rule {rule_id}"));
    let engine = Engine::new(rules.clone(), EngineOptions::default()).unwrap();
    let found = engine.scan_bytes(rule.examples[0].as_bytes());
    found
        .iter()
        .find(|f| f.rule_id == rule_id)
        .unwrap_or_else(|| panic!("{rule_id}'s first example is found"))
        .secret
        .expose()
        .to_string()
}

fn settings(policy: Policy, base: &str) -> ThirdPartySettings {
    let mut endpoints = Endpoints::public(base, &format!("{base}/api/v4"));
    endpoints.slack_api = format!("{base}/api");
    endpoints.dropbox_api = base.to_string();
    endpoints.google_oauth = base.to_string();
    endpoints.buildkite_api = base.to_string();
    endpoints.vault_addrs = vec![base.to_string()];
    endpoints.gitlab_admin_token = Some(GITLAB_ADMIN.to_string());
    ThirdPartySettings {
        policy,
        overrides: BTreeMap::new(),
        endpoints,
    }
}

async fn server_with(backend: common::Backend, policy: Policy) -> Option<(common::Server, FakeIssuers)> {
    let (fake, base) = FakeIssuers::start().await;
    let setup = common::Setup {
        third_party: Some(settings(policy, &base)),
        ..common::Setup::default()
    };
    Some((common::Server::start_with(backend, setup).await?, fake))
}

async fn revoking(backend: common::Backend) -> Option<(common::Server, FakeIssuers)> {
    server_with(backend, Policy::Revoke).await
}

async fn sight(server: &common::Server, token: &str, path: &str) -> (u16, Value) {
    server
        .admin(
            "POST",
            "/v1/sightings",
            Some(json!({"token": token, "place": {"repository": "acme/app", "path": path, "line": 3}})),
        )
        .await
}

async fn third_party_incidents(server: &common::Server) -> Vec<Value> {
    let (status, list) = server.admin("GET", "/v1/incidents?kind=third_party", None).await;
    assert_eq!(status, 200, "{list}");
    list["incidents"].as_array().unwrap().clone()
}

/// Waits until every third-party incident's revocation satisfies `done`.
async fn wait_until(server: &common::Server, wanted: usize, within: Duration, done: impl Fn(&Value) -> bool) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let incidents = third_party_incidents(server).await;
        if incidents.len() >= wanted && incidents.iter().all(&done) {
            return incidents;
        }
        assert!(start.elapsed() < within, "not settled within {within:?}: {incidents:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn status_of(incident: &Value) -> &str {
    incident["revocation"]["status"].as_str().unwrap()
}

/// The issuers, each with a token of its own and where its fake found it.
fn one_token_per_issuer() -> Vec<(&'static str, String)> {
    vec![
        ("github", github_token(1)),
        ("gitlab", example("gitlab.personal-access-token")),
        ("gitlab-admin", example("gitlab.pipeline-trigger-token")),
        ("slack", example("slack.token")),
        ("vault", example("vault.service-token")),
        ("dropbox", example("dropbox.short-lived-token")),
        ("google-oauth", example("google.oauth-access-token")),
        ("buildkite", example("buildkite.api-access-token")),
    ]
}

both_backends_with!(every_issuer_revokes_with_its_documented_call, revoking, |(server, fake): (
    common::Server,
    FakeIssuers
)| async move {
    let tokens = one_token_per_issuer();
    for (issuer, token) in &tokens {
        let (status, recorded) = sight(&server, token, &format!("{issuer}.env")).await;
        assert_eq!(status, 200, "{issuer}: {recorded}");
        assert_eq!(recorded["kind"], "third_party");
        assert_eq!(recorded["status"], "pending", "{issuer}: {recorded}");
    }
    let incidents = wait_until(&server, tokens.len(), Duration::from_secs(15), |i| status_of(i) == "revoked").await;
    for incident in &incidents {
        assert_eq!(incident["revocation"]["attempts"], 1, "{incident}");
        assert!(!incident.to_string().contains("glpat-bzox"), "no token in the answer");
    }
    for (issuer, token) in &tokens {
        let calls = fake.calls_to(issuer);
        assert_eq!(calls.len(), 1, "{issuer}: {calls:?}");
        assert_eq!(calls[0].tokens, vec![token.clone()], "{issuer}");
        let credential = calls[0].credential.clone();
        match *issuer {
            "github" | "google-oauth" => assert_eq!(credential, None, "{issuer} is called without credentials"),
            "gitlab" | "vault" => assert_eq!(credential.as_deref(), Some(token.as_str()), "{issuer}"),
            "gitlab-admin" => assert_eq!(credential.as_deref(), Some(GITLAB_ADMIN)),
            _ => assert_eq!(credential, Some(token.clone()), "{issuer} takes the token as its bearer"),
        }
    }
    // Revoked means never sent again: a second sighting changes nothing.
    let (_, again) = sight(&server, &tokens[3].1, "elsewhere.env").await;
    assert_eq!(
        (again["new_incident"].as_bool(), again["status"].as_str()),
        (Some(false), Some("revoked"))
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(fake.calls().len(), tokens.len());
    let (_, listed) = server.admin("GET", "/v1/incidents?kind=third_party&status=revoked", None).await;
    assert_eq!(listed["incidents"].as_array().unwrap().len(), tokens.len());
    let now = third_party_incidents(&server).await;
    let slack = now.iter().find(|i| i["issuer"] == "slack").unwrap();
    assert_eq!(slack["places"].as_array().unwrap().len(), 2, "{slack}");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_garbage_and_hanging_issuers_end_with_their_reason() {
    let (server, fake) = revoking(common::Backend::Sqlite).await.unwrap();
    fake.set("slack", Behaviour::Refuse);
    fake.set("dropbox", Behaviour::Garbage);
    fake.set("google-oauth", Behaviour::Hang);
    fake.set("gitlab", Behaviour::Refuse);
    for (rule, path) in [
        ("slack.token", "slack.env"),
        ("dropbox.short-lived-token", "dropbox.env"),
        ("google.oauth-access-token", "google.env"),
        ("gitlab.personal-access-token", "gitlab.env"),
    ] {
        assert_eq!(sight(&server, &example(rule), path).await.0, 200);
    }
    let settled = |i: &Value| status_of(i) != "pending" && i["revocation"]["attempts"].as_i64() >= Some(1);
    let incidents = wait_until(&server, 4, Duration::from_secs(20), settled).await;
    let by_issuer = |issuer: &str| incidents.iter().find(|i| i["issuer"] == issuer).unwrap().clone();
    let slack = by_issuer("slack");
    assert_eq!(status_of(&slack), "refused");
    assert!(slack["revocation"]["reason"].as_str().unwrap().contains("invalid_auth"), "{slack}");
    let gitlab = by_issuer("gitlab");
    assert_eq!(status_of(&gitlab), "refused", "{gitlab}");
    let dropbox = by_issuer("dropbox");
    assert_eq!(status_of(&dropbox), "failed");
    assert!(
        dropbox["revocation"]["reason"]
            .as_str()
            .unwrap()
            .contains("unexpected answer (HTTP 418)"),
        "{dropbox}"
    );
    assert!(
        dropbox["revocation"].get("next_attempt_at").is_none(),
        "garbage is not retried: {dropbox}"
    );
    let google = by_issuer("google-oauth");
    assert_eq!(status_of(&google), "failed");
    assert!(
        google["revocation"]["reason"].as_str().unwrap().contains("no answer within 10 s"),
        "{google}"
    );
    assert!(
        google["revocation"]["next_attempt_at"].is_string(),
        "a timeout is retried: {google}"
    );
    // Nothing final is held any longer; the retried one still is.
    assert_eq!(server.service.store().held_token_count().await.unwrap(), 1);
}

both_backends_with!(report_policy_calls_no_issuer, reporting, |(server, fake): (
    common::Server,
    FakeIssuers
)| async move {
    for (issuer, token) in one_token_per_issuer() {
        assert_eq!(sight(&server, &token, &format!("{issuer}.env")).await.0, 200);
    }
    let incidents = third_party_incidents(&server).await;
    assert_eq!(incidents.len(), 8);
    for incident in &incidents {
        assert_eq!(status_of(incident), "not_supported", "{incident}");
        assert!(incident["revocation"]["reason"].as_str().unwrap().contains("policy"), "{incident}");
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
    assert_eq!(server.service.store().held_token_count().await.unwrap(), 0);
});

async fn reporting(backend: common::Backend) -> Option<(common::Server, FakeIssuers)> {
    server_with(backend, Policy::Report).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_github_is_tried_again_after_retry_after() {
    let (server, fake) = revoking(common::Backend::Sqlite).await.unwrap();
    fake.set("github", Behaviour::RateLimit { times: 1, retry_after: 2 });
    let started = Instant::now();
    assert_eq!(sight(&server, &github_token(7), "ci.env").await.0, 200);
    let incidents = wait_until(&server, 1, Duration::from_secs(15), |i| status_of(i) == "revoked").await;
    let calls = fake.calls_to("github");
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(started.elapsed() >= Duration::from_secs(2), "retried only after Retry-After");
    assert_eq!(incidents[0]["revocation"]["attempts"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifteen_hundred_github_tokens_go_out_in_two_calls() {
    let (server, fake) = revoking(common::Backend::Sqlite).await.unwrap();
    let tokens: Vec<String> = (0..1500).map(github_token).collect();
    let rules = RuleSet::builtin();
    let rule = rules.get("github.token").unwrap();
    let place = keyward::store::Place {
        source_kind: "watch".into(),
        path: "dump.txt".into(),
        ..Default::default()
    };
    for token in &tokens {
        server.responder.report_found(rule, token, &place).await.unwrap();
    }
    wait_until(&server, 1500, Duration::from_secs(30), |i| status_of(i) == "revoked").await;
    let calls = fake.calls_to("github");
    assert_eq!(calls.iter().map(|c| c.tokens.len()).sum::<usize>(), 1500);
    assert_eq!(calls.len(), 2, "{:?}", calls.iter().map(|c| c.tokens.len()).collect::<Vec<_>>());
    assert!(calls.iter().all(|c| c.tokens.len() <= 1000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_plaintext_is_left_at_rest_once_revoked() {
    let (server, fake) = revoking(common::Backend::Sqlite).await.unwrap();
    fake.set("slack", Behaviour::RateLimit { times: 1, retry_after: 2 });
    let tokens = one_token_per_issuer();
    for (issuer, token) in &tokens {
        assert_eq!(sight(&server, token, &format!("{issuer}.env")).await.0, 200);
    }
    let dir = server.sqlite_dir.as_ref().unwrap().path().to_path_buf();
    let on_disk = || -> Vec<u8> {
        std::fs::read_dir(&dir)
            .unwrap()
            .flat_map(|e| std::fs::read(e.unwrap().path()).unwrap_or_default())
            .collect()
    };
    let held = server.service.store().held_token_count().await.unwrap();
    assert!(held >= 1, "the rate-limited token is held while it waits");
    let waiting = on_disk();
    for (_, token) in &tokens {
        assert!(
            memchr::memmem::find(&waiting, token.as_bytes()).is_none(),
            "a held token is sealed, never plain"
        );
    }
    wait_until(&server, tokens.len(), Duration::from_secs(20), |i| status_of(i) == "revoked").await;
    assert_eq!(server.service.store().held_token_count().await.unwrap(), 0);
    let after = on_disk();
    for (_, token) in &tokens {
        assert!(memchr::memmem::find(&after, token.as_bytes()).is_none());
        let last4 = &token[token.len() - 4..];
        assert!(
            memchr::memmem::find(&after, last4.as_bytes()).is_some(),
            "last four kept for people"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighting_of_no_known_family_or_a_bad_body_changes_nothing() {
    let (server, fake) = revoking(common::Backend::Sqlite).await.unwrap();
    let bad_checksum = {
        let mut t = github_token(3);
        t.pop();
        t.push('x');
        t
    };
    for token in ["not-a-token-at-all", bad_checksum.as_str(), ""] {
        let (status, body) = sight(&server, token, "x").await;
        assert_eq!(status, 422, "{token}: {body}");
    }
    let (status, _) = server
        .admin(
            "POST",
            "/v1/sightings",
            Some(json!({"token": github_token(4), "place": {"line": -1}})),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = server.admin("GET", "/v1/incidents?kind=sideways", None).await;
    assert_eq!(status, 422);
    assert!(third_party_incidents(&server).await.is_empty());
    assert!(fake.calls().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyward_key_sighted_is_handled_by_its_project() {
    let (server, fake) = revoking(common::Backend::Sqlite).await.unwrap();
    let (_, secret) = server.create_key(json!({"name": "leaky", "scopes": ["analytics:read"]})).await;
    let (status, recorded) = sight(&server, &secret, "app.env").await;
    assert_eq!(status, 200, "{recorded}");
    assert_eq!(
        (recorded["kind"].as_str(), recorded["status"].as_str()),
        (Some("own"), Some("revoked"))
    );
    assert_eq!(server.code(&secret, None, None).await, "REVOKED");
    let (_, own) = server.admin("GET", "/v1/incidents?kind=own", None).await;
    assert_eq!(own["incidents"].as_array().unwrap().len(), 1, "{own}");
    assert!(fake.calls().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_security_team_hears_once_per_incident() {
    let (receiver, url) = common::fakes::Receiver::start().await;
    let (server, _fake) = revoking(common::Backend::Sqlite).await.unwrap();
    let (status, body) = server
        .admin(
            "PUT",
            "/v1/alert-settings",
            Some(json!({"webhook_url": url, "webhook_secret": "0123456789abcdef0123", "email": false})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let token = example("slack.token");
    sight(&server, &token, "a.env").await;
    sight(&server, &token, "b.env").await;
    wait_until(&server, 1, Duration::from_secs(15), |i| status_of(i) == "revoked").await;
    let start = Instant::now();
    while receiver.count() < 1 && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.count(), 1);
    let body = receiver.hits.lock().unwrap()[0].1.clone();
    let alert: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(alert["event"], "third_party_token.leaked");
    assert_eq!(alert["action"], "revoked");
    assert_eq!(alert["issuer"], "slack");
    assert!(!String::from_utf8_lossy(&body).contains(&token));
}

/// A signed push is never turned away for its rate; a badly signed one
/// is, after a burst; a full queue sheds with 503 and Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_delivery_is_never_turned_away_but_a_forged_one_is() {
    let webhooks = keyward::server::Webhooks {
        github_secret: Some(common::pushes::GITHUB_SECRET.into()),
        queue_limit: Some(1_200),
        ..Default::default()
    };
    let setup = common::Setup {
        webhooks,
        ..common::Setup::default()
    };
    let server = common::Server::start_with(common::Backend::Sqlite, setup).await.unwrap();
    let deliver = |n: u32, signed: bool| {
        let after = format!("{:040x}", u128::from(n) + 1);
        let body = common::pushes::push_payload(common::pushes::BEFORE, &after, &[&after], false, false);
        let signature = if signed {
            common::pushes::sign(&body)
        } else {
            "sha256=0000".to_string()
        };
        let request = server
            .http
            .post(format!("{}/webhooks/github", server.base))
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-github-delivery", format!("delivery-{n}"))
            .header("x-hub-signature-256", signature)
            .body(body);
        async move { request.send().await.unwrap() }
    };
    let mut accepted = 0;
    for n in 0..1000 {
        let response = deliver(n, true).await;
        assert_eq!(response.status(), 202, "delivery {n}");
        accepted += 1;
    }
    assert_eq!(accepted, 1000);
    let mut forged = Vec::new();
    for n in 0..1000 {
        forged.push(deliver(5000 + n, false).await.status().as_u16());
    }
    assert_eq!(forged[0], 401);
    assert!(forged.iter().all(|s| *s == 401 || *s == 429), "{forged:?}");
    let first_429 = forged.iter().position(|s| *s == 429).expect("forged deliveries meet 429");
    assert!(first_429 >= 100, "a burst of failures first: {first_429}");
    // 1,000 pushes wait; past 1,200 the queue sheds.
    let mut shed = None;
    for n in 1000..1300 {
        let response = deliver(n, true).await;
        if response.status() == 503 {
            shed = Some((n, response.headers().get("retry-after").cloned()));
            break;
        }
        assert_eq!(response.status(), 202);
    }
    let (n, retry_after) = shed.expect("a full queue sheds");
    assert_eq!(n, 1200, "the bound is the documented one");
    assert!(retry_after.is_some());
    let metrics = server
        .http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("keyward_webhooks_shed_total 1"), "{metrics}");
}
