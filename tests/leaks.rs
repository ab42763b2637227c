//! The leak response end to end on loopback: signed partner reports from a
//! fake GitHub and GitLab, revocation, incidents, signed webhooks, Slack and
//! email alerts, idempotence, and every bad request refused.

mod common;

use std::time::Duration;

use common::fakes::{keys_endpoint, PartnerSigner, Receiver, SmtpSink};
use serde_json::{json, Value};

struct Leaks {
    s: common::Server,
    github: PartnerSigner,
    webhook: Receiver,
    slack: Receiver,
    smtp: SmtpSink,
}

const WEBHOOK_SECRET: &str = "whsec_test_0123456789abcdef";

async fn setup(backend: common::Backend) -> Option<Leaks> {
    let github = PartnerSigner::new(3, "github-key-1");
    let retired = PartnerSigner::new(4, "github-key-0");
    let gitlab = PartnerSigner::new(5, "gitlab-key-1");
    let github_keys_url = keys_endpoint(&[(&github, true), (&retired, false)]).await;
    let gitlab_keys_url = keys_endpoint(&[(&gitlab, true)]).await;
    let (smtp, smtp_url) = SmtpSink::start().await;
    let setup = common::Setup {
        github_keys_url: Some(github_keys_url),
        gitlab_keys_url: Some(gitlab_keys_url),
        smtp_url: Some(smtp_url),
        ..common::Setup::default()
    };
    let s = common::Server::start_with(backend, setup).await?;
    let (webhook, webhook_url) = Receiver::start().await;
    let (slack, slack_url) = Receiver::start().await;
    let (status, body) = s
        .admin(
            "PUT",
            &format!("/v1/projects/{}/alert-settings", s.project),
            Some(json!({"webhook_url": webhook_url, "webhook_secret": WEBHOOK_SECRET, "slack_webhook_url": slack_url, "email": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["webhook_secret_set"], true);
    assert!(!body.to_string().contains(WEBHOOK_SECRET));
    Some(Leaks {
        s,
        github,
        webhook,
        slack,
        smtp,
    })
}

impl Leaks {
    async fn report(&self, signer: &PartnerSigner, path: &str, body: &[u8], prefix: &str) -> (u16, Value) {
        let resp = self
            .s
            .http
            .post(format!("{}{path}", self.s.base))
            .header("content-type", "application/json")
            .header(format!("{prefix}-PUBLIC-KEY-IDENTIFIER"), &signer.key_id)
            .header(format!("{prefix}-PUBLIC-KEY-SIGNATURE"), signer.sign(body))
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn github_report(&self, tokens: &[&str]) -> (u16, Value) {
        let reports: Vec<Value> = tokens
            .iter()
            .map(|t| json!({"token": t, "type": "keyward_secret_key", "url": "https://github.com/octo/app/blob/5c2a9f1e/config/.env#L3", "source": "content"}))
            .collect();
        self.report(
            &self.github,
            "/partners/github/secret-scanning",
            json!(reports).to_string().as_bytes(),
            "GITHUB",
        )
        .await
    }

    async fn wait_for(&self, what: impl Fn() -> bool) {
        for _ in 0..100 {
            if what() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

both_backends_with!(github_report_revokes_alerts_once, setup, |l: Leaks| async move {
    let (id, token) =
        l.s.create_key(json!({"name": "leaky", "kind": "secret", "mode": "live", "scopes": ["analytics:read"]}))
            .await;
    let (status, labels) = l.github_report(&[&token]).await;
    assert_eq!(status, 200, "{labels}");
    assert_eq!(
        labels,
        json!([{"token_hash": sha256_hex(&token), "token_type": "keyward_secret_key", "label": "true_positive"}])
    );
    assert_eq!(l.s.code(&token, None, None).await, "REVOKED", "dead by the time the 200 arrived");

    let (_, incidents) = l.s.admin("GET", &format!("/v1/projects/{}/incidents", l.s.project), None).await;
    let incident = &incidents["incidents"][0];
    assert_eq!(incident["key_id"], id.as_str());
    assert_eq!(incident["action"], "revoked");
    assert_eq!(incident["url"], "https://github.com/octo/app/blob/5c2a9f1e/config/.env#L3");
    assert_eq!(
        (incident["found"]["repository"].as_str(), incident["found"]["commit"].as_str()),
        (Some("octo/app"), Some("5c2a9f1e"))
    );
    assert_eq!(
        (incident["found"]["path"].as_str(), incident["found"]["line"].as_i64()),
        (Some("config/.env"), Some(3))
    );
    assert!(!incidents.to_string().contains(&token));

    l.wait_for(|| l.webhook.count() >= 1 && l.slack.count() >= 1 && l.smtp.count() >= 1)
        .await;
    let (headers, body) = l.webhook.hits.lock().unwrap()[0].clone();
    let signature = headers["keyward-signature"].to_str().unwrap().to_string();
    let t: i64 = signature.split(',').next().unwrap().trim_start_matches("t=").parse().unwrap();
    assert_eq!(
        signature,
        keyward::response::alerts::signature_header(WEBHOOK_SECRET, t, &body),
        "the signature verifies"
    );
    let alert: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (alert["key_id"].as_str(), alert["key_last4"].as_str(), alert["action"].as_str()),
        (Some(id.as_str()), Some(&token[56..]), Some("revoked"))
    );
    let slack_text = String::from_utf8(l.slack.hits.lock().unwrap()[0].1.to_vec()).unwrap();
    let email = l.smtp.messages.lock().unwrap()[0].clone();
    for text in [String::from_utf8_lossy(&body).to_string(), slack_text, email.clone()] {
        assert!(
            !text.contains(&token) && !text.contains(&token[11..50]),
            "an alert carries the token"
        );
    }
    assert!(email.contains("owner@example.com") && email.contains("leaky"), "{email}");

    let (again, labels) = l.github_report(&[&token]).await;
    assert_eq!((again, labels[0]["label"].as_str()), (200, Some("true_positive")));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        (l.webhook.count(), l.slack.count(), l.smtp.count()),
        (1, 1, 1),
        "a repeated report alerts nobody again"
    );
    let (_, incidents) = l.s.admin("GET", &format!("/v1/projects/{}/incidents", l.s.project), None).await;
    assert_eq!(incidents["incidents"].as_array().unwrap().len(), 1);
    assert_eq!(incidents["incidents"][0]["seen_count"], 2);
    let places = incidents["incidents"][0]["places"].as_array().unwrap();
    assert_eq!(
        (places.len(), places[0]["seen_count"].as_i64()),
        (1, Some(2)),
        "one place, seen twice"
    );
    let (_, audit) =
        l.s.admin("GET", &format!("/v1/projects/{}/audit?action=api_key.revoked", l.s.project), None)
            .await;
    let revocations: Vec<&Value> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == id.as_str())
        .collect();
    assert_eq!(revocations.len(), 1, "revoked once");
    assert_eq!(revocations[0]["actor"], "system:leak-response");
    assert_eq!(revocations[0]["data"]["reason"], "leaked");
});

both_backends_with!(unknown_and_foreign_tokens_are_false_positives, setup, |l: Leaks| async move {
    let stranger =
        keyward::keys::token::Token::generate("kw", keyward::keys::token::Kind::Secret, keyward::keys::token::Mode::Live).unwrap();
    let (status, labels) = l.github_report(&[stranger.expose(), "ghp_notours", "kw_sk_live_badchecksum"]).await;
    assert_eq!(status, 200, "{labels}");
    let marks: Vec<&str> = labels.as_array().unwrap().iter().map(|x| x["label"].as_str().unwrap()).collect();
    assert_eq!(marks, vec!["false_positive"; 3]);
    let unknown = l.s.service.store().unknown_incidents().await.unwrap();
    assert_eq!(unknown.len(), 1, "a valid-checksum token matching no key is recorded as unknown");
    assert_eq!(unknown[0].action, "unknown");
});

both_backends_with!(
    publishable_keys_and_notify_only_projects_are_not_revoked,
    setup,
    |l: Leaks| async move {
        let (_, public) =
            l.s.create_key(json!({"name": "public_pk", "kind": "publishable", "mode": "live", "scopes": []}))
                .await;
        let (_, labels) = l.github_report(&[&public]).await;
        assert_eq!(labels[0]["label"], "true_positive");
        assert_eq!(l.s.code(&public, None, None).await, "VALID", "publishable keys are never revoked");

        l.s.admin(
            "PUT",
            &format!("/v1/projects/{}/alert-settings", l.s.project),
            Some(json!({"email": false, "leak_policy": "notify_only"})),
        )
        .await;
        let (_, test_key) =
            l.s.create_key(json!({"name": "test_sk", "kind": "secret", "mode": "test", "scopes": []}))
                .await;
        l.github_report(&[&test_key]).await;
        assert_eq!(l.s.code(&test_key, None, None).await, "VALID", "notify_only keeps the key working");
        let (_, incidents) = l.s.admin("GET", &format!("/v1/projects/{}/incidents", l.s.project), None).await;
        let actions: Vec<&str> = incidents["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["action"].as_str().unwrap())
            .collect();
        assert!(actions.contains(&"publishable") && actions.contains(&"notified"), "{actions:?}");
    }
);

both_backends_with!(gitlab_reports_use_gitlab_headers_and_keys, setup, |l: Leaks| async move {
    let (_, token) =
        l.s.create_key(json!({"name": "gl_leak", "kind": "secret", "mode": "test", "scopes": []}))
            .await;
    let gitlab = PartnerSigner::new(5, "gitlab-key-1");
    let body = json!([{"type": "keyward_secret_key", "token": token, "url": "https://gitlab.example.com/grp/repo/-/raw/abcdef/app.yml"}])
        .to_string();
    let (status, labels) = l
        .report(&gitlab, "/partners/gitlab/secret-detection", body.as_bytes(), "Gitlab")
        .await;
    assert_eq!(status, 200, "{labels}");
    assert_eq!(
        l.s.code(&token, None, None).await,
        "REVOKED",
        "test-mode secret keys are covered too"
    );
    let (wrong, _) = l
        .report(&l.github, "/partners/gitlab/secret-detection", body.as_bytes(), "Gitlab")
        .await;
    assert_eq!(wrong, 401, "GitHub's key does not sign for GitLab");
});

both_backends_with!(bad_partner_requests_change_nothing, setup, |l: Leaks| async move {
    let (_, token) =
        l.s.create_key(json!({"name": "safe", "kind": "secret", "mode": "live", "scopes": []}))
            .await;
    let body = json!([{"token": token, "type": "t", "url": "u"}]).to_string();
    let path = "/partners/github/secret-scanning";
    let send = |key_id: String, signature: String, body: Vec<u8>| {
        let req =
            l.s.http
                .post(format!("{}{path}", l.s.base))
                .header("GITHUB-PUBLIC-KEY-IDENTIFIER", key_id)
                .header("GITHUB-PUBLIC-KEY-SIGNATURE", signature);
        async move { req.body(body).send().await.unwrap().status().as_u16() }
    };
    let other = PartnerSigner::new(9, "github-key-1");
    assert_eq!(
        send(l.github.key_id.clone(), other.sign(body.as_bytes()), body.clone().into_bytes()).await,
        401,
        "wrong signature"
    );
    assert_eq!(
        send(l.github.key_id.clone(), l.github.sign(b"something else"), body.clone().into_bytes()).await,
        401,
        "signature of another body"
    );
    assert_eq!(
        send("no-such-key".into(), l.github.sign(body.as_bytes()), body.clone().into_bytes()).await,
        401,
        "unknown key id"
    );
    let retired = PartnerSigner::new(4, "github-key-0");
    assert_eq!(
        send(retired.key_id.clone(), retired.sign(body.as_bytes()), body.clone().into_bytes()).await,
        401,
        "key not current"
    );
    assert_eq!(
        send(l.github.key_id.clone(), "bm90IGRlcg==".into(), body.clone().into_bytes()).await,
        401,
        "not DER"
    );
    let no_headers =
        l.s.http
            .post(format!("{}{path}", l.s.base))
            .body(body.clone())
            .send()
            .await
            .unwrap();
    assert_eq!(no_headers.status(), 401);
    let (malformed, _) = l.report(&l.github, path, b"[{\"token\": ", "GITHUB").await;
    assert_eq!(malformed, 400);
    let (empty, _) = l.report(&l.github, path, b"[]", "GITHUB").await;
    assert_eq!(empty, 422);
    let (not_array, _) = l.report(&l.github, path, b"{\"token\": \"x\"}", "GITHUB").await;
    assert_eq!(not_array, 422);
    let signature = l.github.sign(b"irrelevant");
    let headers = [
        ("GITHUB-PUBLIC-KEY-IDENTIFIER", l.github.key_id.as_str()),
        ("GITHUB-PUBLIC-KEY-SIGNATURE", signature.as_str()),
    ];
    assert_eq!(
        common::post_declaring_length(&l.s.base, path, &headers, 10 << 20),
        413,
        "a 10 MB body"
    );
    assert_eq!(l.s.code(&token, None, None).await, "VALID", "no bad request changed anything");
    let (_, incidents) = l.s.admin("GET", &format!("/v1/projects/{}/incidents", l.s.project), None).await;
    assert_eq!(incidents["incidents"].as_array().unwrap().len(), 0);
    assert_eq!(l.webhook.count(), 0);
});

both_backends!(
    no_email_is_queued_or_accepted_without_an_smtp_server,
    |s: common::Server| async move {
        let settings = format!("/v1/projects/{}/alert-settings", s.project);
        let (status, body) = s.admin("PUT", &settings, Some(json!({"email": true}))).await;
        assert_eq!(status, 422, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("SMTP"), "{body}");
        let (_, shown) = s.admin("GET", &settings, None).await;
        assert_eq!(shown["email"], false, "email shows as off where it cannot go out");
        let (_, secret) = s.create_key(json!({"name": "leaky", "scopes": []})).await;
        let place = keyward::store::Place {
            source_kind: "test".into(),
            ..Default::default()
        };
        s.responder.report(&secret, &place).await.unwrap();
        let kinds = common::sql_texts(&s.database_url, "SELECT kind FROM jobs").await;
        assert!(!kinds.iter().any(|k| k == "alert.email"), "an email job without SMTP: {kinds:?}");
        assert_eq!(s.code(&secret, None, None).await, "REVOKED");
    }
);
