//! Key service depth over real HTTP, on SQLite and PostgreSQL: team keys,
//! per-key fields, verify with a cost and its new codes, rate limits,
//! credits with refill, disable, usage analytics, expiry notices and key
//! import, and the bad input each of them refuses.

mod common;

use std::time::Duration;

use keyward::service::Caller;
use keyward::store::Role;
use serde_json::{json, Value};
use sha2::Digest;

fn keys_path(s: &common::Server) -> String {
    format!("/v1/projects/{}/keys", s.project)
}

async fn verify(s: &common::Server, body: Value) -> Value {
    s.verify(body).await
}

/// A member with a `*` key of their own.
async fn member_key(s: &common::Server, email: &str, role: Role) -> (String, String) {
    let system = Caller::system("limits-test");
    let added = s.service.add_member(&system, &s.project, email, role).await.unwrap();
    let (_, secret) = s
        .create_key(json!({"name": format!("k{}", &added.member.user_id[5..15]), "scopes": ["*"], "owner_user_id": added.member.user_id}))
        .await;
    (added.member.user_id, secret)
}

both_backends!(
    team_keys_act_with_the_accounts_role_and_outlive_their_maker,
    |s: common::Server| async move {
        let sa_path = format!("/v1/projects/{}/service-accounts", s.project);
        let (status, ci) = s.admin("POST", &sa_path, Some(json!({"name": "ci", "role": "viewer"}))).await;
        assert_eq!(status, 201, "{ci}");
        let ci_id = ci["service_account"]["id"].as_str().unwrap().to_string();
        let (status, deploy) = s.admin("POST", &sa_path, Some(json!({"name": "deploy", "role": "admin"}))).await;
        assert_eq!(status, 201);
        let deploy_id = deploy["service_account"]["id"].as_str().unwrap().to_string();
        let (dup, _) = s.admin("POST", &sa_path, Some(json!({"name": "ci", "role": "member"}))).await;
        assert_eq!(dup, 409);
        let (bad, _) = s.admin("POST", &sa_path, Some(json!({"name": "root", "role": "owner"}))).await;
        assert_eq!(bad, 422);
        let (_, listed) = s.admin("GET", &sa_path, None).await;
        assert_eq!(listed["service_accounts"].as_array().unwrap().len(), 2);

        // An admin person makes the team keys, then leaves.
        let (admin_id, admin_key) = member_key(&s, "maker@example.com", Role::Admin).await;
        let (status, viewer_team) = s
            .call(
                Some(&admin_key),
                "POST",
                &keys_path(&s),
                Some(json!({"name": "ci_key", "scopes": ["*"], "owner_service_account_id": ci_id})),
            )
            .await;
        assert_eq!(status, 201, "{viewer_team}");
        assert_eq!(viewer_team["key"]["owner_service_account_id"], ci_id.as_str());
        let (status, admin_team) = s
            .call(
                Some(&admin_key),
                "POST",
                &keys_path(&s),
                Some(json!({"name": "deploy_key", "scopes": ["*"], "owner_service_account_id": deploy_id})),
            )
            .await;
        assert_eq!(status, 201, "{admin_team}");
        let viewer_team = viewer_team["secret"].as_str().unwrap().to_string();
        let admin_team = admin_team["secret"].as_str().unwrap().to_string();
        let (status, _) = s
            .call(
                Some(&viewer_team),
                "POST",
                &keys_path(&s),
                Some(json!({"name": "nope", "scopes": []})),
            )
            .await;
        assert_eq!(status, 403, "a viewer account's key acts as a viewer");
        let (status, _) = s
            .call(
                Some(&admin_team),
                "POST",
                &keys_path(&s),
                Some(json!({"name": "made_by_team", "scopes": []})),
            )
            .await;
        assert_eq!(status, 201, "an admin account's key acts as an admin");

        let (status, _) = s
            .admin("DELETE", &format!("/v1/projects/{}/members/{admin_id}", s.project), None)
            .await;
        assert_eq!(status, 204);
        assert_eq!(
            s.code(&admin_key, None, None).await,
            "REVOKED",
            "the person's own key goes with them"
        );
        assert_eq!(s.code(&admin_team, None, None).await, "VALID", "the team key stays");

        // Deleting an account revokes its keys, each audited.
        let (status, _) = s.admin("DELETE", &format!("{sa_path}/{deploy_id}"), None).await;
        assert_eq!(status, 204);
        assert_eq!(s.code(&admin_team, None, None).await, "REVOKED");
        let (_, audit) = s
            .admin("GET", &format!("/v1/projects/{}/audit?action=api_key.revoked", s.project), None)
            .await;
        assert!(audit["events"].as_array().unwrap().iter().any(|e| e["data"]["reason"] == "manual"));
        let (_, listed) = s.admin("GET", &sa_path, None).await;
        assert_eq!(listed["service_accounts"].as_array().unwrap().len(), 1);
        let (status, _) = s.admin("POST", &sa_path, Some(json!({"name": "deploy", "role": "member"}))).await;
        assert_eq!(status, 201, "a deleted account's name is free again");
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaked_team_key_alerts_the_projects_admins() {
    let (smtp, smtp_url) = common::fakes::SmtpSink::start().await;
    let setup = common::Setup {
        smtp_url: Some(smtp_url),
        ..Default::default()
    };
    let s = common::Server::start_with(common::Backend::Sqlite, setup).await.unwrap();
    let system = Caller::system("limits-test");
    s.service
        .add_member(&system, &s.project, "admin@example.com", Role::Admin)
        .await
        .unwrap();
    s.service
        .add_member(&system, &s.project, "member@example.com", Role::Member)
        .await
        .unwrap();
    let account = s
        .service
        .create_service_account(&system, &s.project, "ci", Role::Member)
        .await
        .unwrap();
    let (_, secret) = s
        .create_key(json!({"name": "team", "scopes": [], "owner_service_account_id": account.id}))
        .await;
    let place = keyward::store::Place {
        source_kind: "test".into(),
        repository: "octo/app".into(),
        ..Default::default()
    };
    s.responder.report(&secret, &place).await.unwrap();
    s.responder.wake_alerts();
    let started = std::time::Instant::now();
    while smtp.count() == 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "no email");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let message = smtp.messages.lock().unwrap()[0].to_ascii_lowercase();
    assert!(
        message.contains("admin@example.com") && message.contains("owner@example.com"),
        "{message}"
    );
    assert!(!message.contains("member@example.com"), "members are not told: {message}");
    assert_eq!(s.code(&secret, None, None).await, "REVOKED");
}

both_backends!(key_fields_round_trip_and_are_audited, |s: common::Server| async move {
    let body = json!({
        "name": "metered", "scopes": ["analytics:read"], "enabled": true,
        "meta": {"plan": "pro", "seats": 3}, "external_id": "cus_123",
        "ratelimits": [{"name": "burst", "limit": 5, "duration_ms": 1000}, {"name": "daily", "limit": 1000, "duration_ms": 86400000}],
        "credits": {"remaining": 50, "refill": {"interval": "daily", "amount": 50}},
    });
    let (status, created) = s.admin("POST", &keys_path(&s), Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["key"]["id"].as_str().unwrap();
    let (_, got) = s.admin("GET", &format!("/v1/keys/{id}"), None).await;
    assert_eq!(got["meta"], json!({"plan": "pro", "seats": 3}));
    assert_eq!(got["external_id"], "cus_123");
    assert_eq!(got["ratelimits"].as_array().unwrap().len(), 2);
    assert_eq!(got["credits"]["remaining"], 50);
    assert_eq!(got["credits"]["refill"]["interval"], "daily");
    let (_, list) = s.admin("GET", &keys_path(&s), None).await;
    assert!(list["keys"].as_array().unwrap().iter().any(|k| k["external_id"] == "cus_123"));

    let patch = json!({"enabled": false, "meta": {"plan": "team"}, "external_id": null, "credits": null, "ratelimits": []});
    let (status, updated) = s.admin("PATCH", &format!("/v1/keys/{id}"), Some(patch)).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(
        (
            updated["enabled"].as_bool(),
            updated["external_id"].is_null(),
            updated["credits"].is_null()
        ),
        (Some(false), true, true)
    );
    assert_eq!(updated["meta"], json!({"plan": "team"}));
    let (_, audit) = s
        .admin("GET", &format!("/v1/projects/{}/audit?action=api_key.updated", s.project), None)
        .await;
    let changed = &audit["events"].as_array().unwrap().last().unwrap()["data"]["changed"];
    for field in ["enabled", "meta", "external_id", "credits", "ratelimits"] {
        assert!(changed.as_array().unwrap().iter().any(|f| f == field), "{field} in {changed}");
    }
});

both_backends!(
    verify_spends_a_cost_and_answers_the_new_codes_in_order,
    |s: common::Server| async move {
        let (id, secret) = s
            .create_key(
                json!({"name": "metered", "scopes": ["analytics:read"], "meta": {"tier": "gold"}, "external_id": "cus_9",
            "credits": {"remaining": 10}, "ratelimits": [{"name": "minute", "limit": 100, "duration_ms": 60000}]}),
            )
            .await;
        let (_, plain) = s.create_key(json!({"name": "plain", "scopes": []})).await;
        let v = verify(&s, json!({"key": plain})).await;
        assert_eq!(
            (v.get("ratelimits"), v.get("external_id"), v.get("credits")),
            (Some(&json!([])), Some(&Value::Null), None),
            "a key without limits still says so: {v}"
        );
        let v = verify(&s, json!({"key": secret, "cost": 4})).await;
        assert_eq!(v["code"], "VALID", "{v}");
        assert_eq!(
            (v["name"].as_str(), v["enabled"].as_bool(), v["external_id"].as_str()),
            (Some("metered"), Some(true), Some("cus_9"))
        );
        assert_eq!(v["meta"], json!({"tier": "gold"}));
        assert_eq!(v["credits"]["remaining"], 6);
        assert_eq!(v["ratelimits"][0]["name"], "minute");
        assert_eq!(v["ratelimits"][0]["remaining"], 96);
        assert!(v["ratelimits"][0]["reset_at"].is_string());
        // Refused before credits: spends none.
        let v = verify(&s, json!({"key": secret, "scope": "billing:read", "cost": 3})).await;
        assert_eq!(v["code"], "INSUFFICIENT_SCOPE");
        let v = verify(&s, json!({"key": secret, "cost": 0})).await;
        assert_eq!((v["code"].as_str(), v["credits"]["remaining"].as_i64()), (Some("VALID"), Some(6)));
        let v = verify(&s, json!({"key": secret, "cost": 7})).await;
        assert_eq!(
            (v["code"].as_str(), v["credits"]["remaining"].as_i64()),
            (Some("USAGE_EXCEEDED"), Some(6))
        );
        let v = verify(&s, json!({"key": secret, "cost": 6})).await;
        assert_eq!((v["code"].as_str(), v["credits"]["remaining"].as_i64()), (Some("VALID"), Some(0)));
        assert_eq!(s.code(&secret, None, None).await, "USAGE_EXCEEDED");
        // Disabled comes before mode and scope; enabling again works at once.
        let (status, _) = s.admin("PATCH", &format!("/v1/keys/{id}"), Some(json!({"enabled": false}))).await;
        assert_eq!(status, 200);
        assert_eq!(s.code(&secret, Some("billing:read"), Some("test")).await, "DISABLED");
        s.admin(
            "PATCH",
            &format!("/v1/keys/{id}"),
            Some(json!({"enabled": true, "credits": {"remaining": 1}})),
        )
        .await;
        assert_eq!(s.code(&secret, None, None).await, "VALID");
        let (status, body) = s
            .call(None, "POST", "/v1/keys/verify", Some(json!({"key": secret, "cost": -1})))
            .await;
        assert_eq!(status, 422, "{body}");
        let v = verify(&s, json!({"key": secret, "cost": 0, "unknown": "fields are fine here"})).await;
        assert_eq!(v["code"], "VALID", "verify stays lenient");
    }
);

both_backends!(
    rate_limits_are_exact_on_one_replica_and_a_refusal_spends_nothing,
    |s: common::Server| async move {
        let (_, secret) = s
            .create_key(json!({"name": "limited", "scopes": [], "credits": {"remaining": 100},
            "ratelimits": [{"name": "small", "limit": 3, "duration_ms": 60000}, {"name": "big", "limit": 10, "duration_ms": 60000}]}))
            .await;
        let mut codes = Vec::new();
        for _ in 0..6 {
            codes.push(verify(&s, json!({"key": secret})).await);
        }
        let names: Vec<&str> = codes.iter().map(|v| v["code"].as_str().unwrap()).collect();
        assert_eq!(names, ["VALID", "VALID", "VALID", "RATE_LIMITED", "RATE_LIMITED", "RATE_LIMITED"]);
        let last = codes.last().unwrap();
        let big = last["ratelimits"].as_array().unwrap().iter().find(|l| l["name"] == "big").unwrap();
        assert_eq!(
            big["remaining"], 7,
            "refused by `small`, the call counted against `big` not at all: {last}"
        );
        let v = verify(&s, json!({"key": secret, "cost": 0})).await;
        assert_eq!(v["credits"]["remaining"], 97, "rate-limited calls spent no credit: {v}");
        // A window passes: the limit opens again.
        let (_, short) = s
            .create_key(json!({"name": "short", "scopes": [], "ratelimits": [{"name": "s", "limit": 1, "duration_ms": 500}]}))
            .await;
        assert_eq!(s.code(&short, None, None).await, "VALID");
        assert_eq!(s.code(&short, None, None).await, "RATE_LIMITED");
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(s.code(&short, None, None).await, "VALID");
    }
);

both_backends!(credits_refill_by_themselves_at_the_interval, |s: common::Server| async move {
    let (id, secret) = s
        .create_key(json!({"name": "refilled", "scopes": [], "credits": {"remaining": 1, "refill": {"interval": "daily", "amount": 5}}}))
        .await;
    assert_eq!(s.code(&secret, None, None).await, "VALID");
    assert_eq!(s.code(&secret, None, None).await, "USAGE_EXCEEDED");
    // The last refill was yesterday: the next verify refills, no job needed.
    let yesterday = keyward::store::now_ms() - 86_400_000;
    common::sql(
        &s.database_url,
        &format!("UPDATE api_keys SET refilled_at = {yesterday} WHERE id = '{id}'"),
    )
    .await;
    let v = verify(&s, json!({"key": secret})).await;
    assert_eq!((v["code"].as_str(), v["credits"]["remaining"].as_i64()), (Some("VALID"), Some(4)));
});

both_backends!(concurrent_verifies_never_overspend_credits, |s: common::Server| async move {
    let (_, secret) = s
        .create_key(json!({"name": "hundred", "scopes": [], "credits": {"remaining": 100}}))
        .await;
    let s = std::sync::Arc::new(s);
    let mut tasks = Vec::new();
    for _ in 0..300 {
        let (s, secret) = (s.clone(), secret.clone());
        tasks.push(tokio::spawn(async move { s.code(&secret, None, None).await }));
    }
    let mut valid = 0;
    for t in tasks {
        if t.await.unwrap() == "VALID" {
            valid += 1;
        }
    }
    assert_eq!(valid, 100);
});

both_backends!(a_failed_usage_flush_keeps_its_counts_for_the_next, |s: common::Server| async move {
    let (id, secret) = s.create_key(json!({"name": "kept", "scopes": ["analytics:read"]})).await;
    for _ in 0..4 {
        assert_eq!(s.code(&secret, None, None).await, "VALID");
    }
    common::sql(&s.database_url, "ALTER TABLE key_verifications RENAME TO key_verifications_away").await;
    assert!(s.service.verifier().flush_usage().await.is_err(), "the table is gone");
    common::sql(&s.database_url, "ALTER TABLE key_verifications_away RENAME TO key_verifications").await;
    assert_eq!(s.code(&secret, None, None).await, "VALID");
    s.service.verifier().flush_usage().await.unwrap();
    let path = format!("/v1/projects/{}/usage?key_id={id}&granularity=hour", s.project);
    let (status, usage) = s.admin("GET", &path, None).await;
    assert_eq!(status, 200, "{usage}");
    let now = usage["buckets"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        now["counts"]["VALID"], 5,
        "the four counted before the failure and one after: {now}"
    );
});

both_backends!(usage_is_counted_per_hour_and_outcome, |s: common::Server| async move {
    let (id, secret) = s
        .create_key(
            json!({"name": "charted", "scopes": ["analytics:read"], "ratelimits": [{"name": "m", "limit": 3, "duration_ms": 60000}]}),
        )
        .await;
    for _ in 0..5 {
        s.code(&secret, None, None).await;
    }
    s.code(&secret, Some("billing:read"), None).await;
    // No flush here: reading usage stores what this replica counted.
    let path = format!("/v1/projects/{}/usage?key_id={id}&granularity=hour", s.project);
    let (status, usage) = s.admin("GET", &path, None).await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["granularity"], "hour");
    let buckets = usage["buckets"].as_array().unwrap();
    assert!(buckets.len() >= 48, "every hour of the range is there");
    let now = buckets.last().unwrap();
    assert_eq!(now["counts"]["VALID"], 3, "{now}");
    assert_eq!(now["counts"]["RATE_LIMITED"], 2);
    assert_eq!(now["counts"]["INSUFFICIENT_SCOPE"], 1);
    let (_, daily) = s.admin("GET", &format!("/v1/projects/{}/usage", s.project), None).await;
    assert_eq!(daily["granularity"], "day");
    assert_eq!(
        daily["buckets"].as_array().unwrap().last().unwrap()["counts"]["VALID"],
        3,
        "{daily}"
    );
    let (status, _) = s
        .admin("GET", &format!("/v1/projects/{}/usage?granularity=week", s.project), None)
        .await;
    assert_eq!(status, 422);
    let (status, _) = s
        .admin("GET", &format!("/v1/projects/{}/usage?key_id=key_nope", s.project), None)
        .await;
    assert_eq!(status, 404);
    let backwards = "from=2026-12-07T00:00:00Z&to=2026-12-01T00:00:00Z";
    let (status, answer) = s.admin("GET", &format!("/v1/projects/{}/usage?{backwards}", s.project), None).await;
    assert_eq!(status, 422);
    assert_eq!(answer["error"]["message"], "from must not be after to", "{answer}");
    let too_long = "granularity=hour&from=2026-01-01T00:00:00Z&to=2026-12-01T00:00:00Z";
    let (status, answer) = s.admin("GET", &format!("/v1/projects/{}/usage?{too_long}", s.project), None).await;
    assert_eq!(status, 422);
    assert!(
        answer["error"]["message"].as_str().unwrap().contains("at most 1000 buckets"),
        "{answer}"
    );
});

both_backends!(expiry_notices_go_out_once_at_each_lead_time, |s: common::Server| async move {
    let (receiver, url) = common::fakes::Receiver::start().await;
    let (status, _) = s
        .admin(
            "PUT",
            &format!("/v1/projects/{}/alert-settings", s.project),
            Some(json!({"webhook_url": url, "webhook_secret": "alert-signing-secret-0123", "email": false})),
        )
        .await;
    assert_eq!(status, 200);
    let now = keyward::store::now_ms();
    let in_six_days = (now + 6 * 86_400_000) / 1000;
    let (id, _) = s.create_key(json!({"name": "soon", "scopes": [], "expires_at": in_six_days})).await;
    let notices = keyward::response::expiry::ExpiryNotices::new(s.service.clone(), &[7, 1], s.responder.alert_signal());
    assert_eq!(notices.run_once(now).await.unwrap(), 1);
    assert_eq!(notices.run_once(now + 60_000).await.unwrap(), 0, "once");
    s.responder.wake_alerts();
    let started = std::time::Instant::now();
    while receiver.count() == 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "no notice delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let alert: Value = serde_json::from_slice(&receiver.hits.lock().unwrap()[0].1).unwrap();
    assert_eq!(
        (alert["event"].as_str(), alert["key_id"].as_str()),
        (Some("api_key.expiring"), Some(id.as_str()))
    );
    assert_eq!(alert["action"], "expires_in_7d");
    // A day before, the second notice.
    assert_eq!(notices.run_once(now + 5 * 86_400_000 + 1000).await.unwrap(), 1);
    assert_eq!(notices.run_once(now + 5 * 86_400_000 + 2000).await.unwrap(), 0);
    let (_, audit) = s
        .admin("GET", &format!("/v1/projects/{}/audit?action=api_key.expiring", s.project), None)
        .await;
    assert_eq!(audit["events"].as_array().unwrap().len(), 2);
});

both_backends!(
    imported_keys_verify_by_their_old_token_and_rotate_to_ours,
    |s: common::Server| async move {
        let old_token = "legacy_live_7f3a9c1e5b2d4a6f8e0c1b3d5f7a9c2e";
        let sha = hex::encode(sha2::Sha256::digest(old_token.as_bytes()));
        let body = json!({"keys": [
            {"sha256": sha, "prefix": "legacy_live_", "last4": "9c2e", "name": "from_legacy", "scopes": ["analytics:read"], "mode": "live",
             "meta": {"source": "legacy"}, "external_id": "cus_legacy"},
            {"sha256": hex::encode(sha2::Sha256::digest(b"another")), "prefix": "legacy_live_", "last4": "ther", "name": "second", "scopes": []},
        ]});
        let (status, imported) = s.admin("POST", &format!("{}/import", keys_path(&s)), Some(body)).await;
        assert_eq!(status, 201, "{imported}");
        let id = imported["keys"][0]["id"].as_str().unwrap().to_string();
        assert_eq!(imported["keys"][0]["imported"], true);
        assert_eq!(
            (imported["keys"][0]["prefix"].as_str(), imported["keys"][0]["last4"].as_str()),
            (Some("legacy_live_"), Some("9c2e"))
        );
        assert_eq!(s.code(old_token, Some("analytics:read"), None).await, "VALID");
        assert_eq!(s.code(old_token, Some("billing:read"), None).await, "INSUFFICIENT_SCOPE");
        assert_eq!(s.code("legacy_live_notimportedatall000000000000000", None, None).await, "MALFORMED");
        let (status, _) = s
            .admin(
                "PATCH",
                &format!("/v1/keys/{id}"),
                Some(json!({"ratelimits": [{"name": "one", "limit": 1, "duration_ms": 60000}]})),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(s.code(old_token, None, None).await, "VALID");
        assert_eq!(s.code(old_token, None, None).await, "RATE_LIMITED");
        let (status, rotated) = s.admin("POST", &format!("/v1/keys/{id}/rotate"), None).await;
        assert_eq!(status, 201, "{rotated}");
        let native = rotated["secret"].as_str().unwrap();
        assert!(native.starts_with("kw_sk_live_"));
        assert_eq!(rotated["key"]["imported"], false);
        assert_eq!(s.code(old_token, None, None).await, "REVOKED");
        assert_eq!(s.code(native, Some("analytics:read"), None).await, "VALID");
        // The second imported key is found when its old token leaks.
        let place = keyward::store::Place {
            source_kind: "test".into(),
            ..Default::default()
        };
        let outcome = s.responder.report("another", &place).await.unwrap();
        assert!(outcome.is_true_positive(), "{outcome:?}");
        assert_eq!(s.code("another", None, None).await, "REVOKED");
    }
);

both_backends!(an_import_is_all_or_nothing, |s: common::Server| async move {
    let (_, before) = s.admin("GET", &keys_path(&s), None).await;
    let good = |n: u8| json!({"sha256": hex::encode(sha2::Sha256::digest([n])), "prefix": "old_", "last4": "abcd", "name": format!("k{n}"), "scopes": []});
    let mut rows: Vec<Value> = (0..5).map(good).collect();
    rows[3]["sha256"] = json!("not-hex");
    let (status, body) = s
        .admin("POST", &format!("{}/import", keys_path(&s)), Some(json!({"keys": rows})))
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("keys[3]"), "{body}");
    let (_, after) = s.admin("GET", &keys_path(&s), None).await;
    assert_eq!(
        before["keys"].as_array().unwrap().len(),
        after["keys"].as_array().unwrap().len(),
        "nothing imported"
    );
    let too_many: Vec<Value> = (0..1001u32).map(|n| json!({"sha256": hex::encode(sha2::Sha256::digest(n.to_le_bytes())), "prefix": "p", "last4": "abcd", "name": format!("n{n}")})).collect();
    let (status, _) = s
        .admin("POST", &format!("{}/import", keys_path(&s)), Some(json!({"keys": too_many})))
        .await;
    assert!(status == 413 || status == 422, "{status}");
});

both_backends!(bad_limits_are_refused_and_change_nothing, |s: common::Server| async move {
    let path = keys_path(&s);
    let (_, before) = s.admin("GET", &path, None).await;
    let big_meta = json!({"blob": "x".repeat(5000)});
    for (what, body) in [
        (
            "negative limit",
            json!({"name": "a1", "ratelimits": [{"name": "r", "limit": -1, "duration_ms": 1000}]}),
        ),
        (
            "zero duration",
            json!({"name": "a2", "ratelimits": [{"name": "r", "limit": 1, "duration_ms": 0}]}),
        ),
        ("negative remaining", json!({"name": "a3", "credits": {"remaining": -5}})),
        (
            "unknown interval",
            json!({"name": "a4", "credits": {"remaining": 5, "refill": {"interval": "weekly", "amount": 1}}}),
        ),
        ("meta not an object", json!({"name": "a5", "meta": [1, 2]})),
        ("meta too big", json!({"name": "a6", "meta": big_meta})),
        ("external id too long", json!({"name": "a7", "external_id": "x".repeat(256)})),
        ("a typo", json!({"name": "a8", "expire_at": 123})),
    ] {
        let (status, body) = s.admin("POST", &path, Some(body)).await;
        assert!(status == 422 || status == 413, "{what}: {status} {body}");
        if what == "a typo" {
            assert!(body["error"]["message"].as_str().unwrap().contains("expire_at"), "{body}");
        }
    }
    let (_, after) = s.admin("GET", &path, None).await;
    assert_eq!(before["keys"].as_array().unwrap().len(), after["keys"].as_array().unwrap().len());
    let (id, _) = s.create_key(json!({"name": "patched", "scopes": []})).await;
    let (status, body) = s.admin("PATCH", &format!("/v1/keys/{id}"), Some(json!({"enabeld": false}))).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("enabeld"), "{body}");
    let (_, key) = s.admin("GET", &format!("/v1/keys/{id}"), None).await;
    assert_eq!(key["enabled"], true);
});

/// A console session for a person, straight into the store.
async fn session(s: &common::Server, user_id: &str) -> String {
    let token = format!("session{}", ulid::Ulid::new());
    let hash = hex::encode(sha2::Sha256::digest(token.as_bytes()));
    let now = keyward::store::now_ms();
    s.service
        .store()
        .insert_session(
            &hash,
            user_id,
            &format!("csrf{}{}", ulid::Ulid::new(), ulid::Ulid::new()),
            now,
            now + 3_600_000,
        )
        .await
        .unwrap();
    format!("kw_session={token}")
}

async fn page(s: &common::Server, cookie: &str, path: &str) -> (u16, String) {
    let response = s
        .http
        .get(format!("{}{path}", s.base))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

both_backends!(
    the_console_shows_personal_and_team_keys_with_their_owners,
    |s: common::Server| async move {
        let system = Caller::system("limits-test");
        let admin = s
            .service
            .add_member(&system, &s.project, "ada@example.com", Role::Admin)
            .await
            .unwrap()
            .member;
        let member = s
            .service
            .add_member(&system, &s.project, "max@example.com", Role::Member)
            .await
            .unwrap()
            .member;
        let account = s
            .service
            .create_service_account(&system, &s.project, "ci_bot", Role::Member)
            .await
            .unwrap();
        // Exactly 60 days: the page, shown moments later, must still say 60.
        let in_sixty_days = (keyward::store::now_ms() + 60 * 86_400_000) / 1000;
        let (_, maxs) = s
            .create_key(json!({"name": "max_key", "scopes": [], "owner_user_id": member.user_id, "expires_at": in_sixty_days}))
            .await;
        s.create_key(json!({"name": "ada_key", "scopes": [], "owner_user_id": admin.user_id}))
            .await;
        s.create_key(json!({"name": "team_key", "scopes": [], "owner_service_account_id": account.id}))
            .await;
        s.code(&maxs, None, None).await;
        s.service.verifier().flush_usage().await.unwrap();
        let keys = format!("/console/projects/{}/keys", s.project);

        let max = session(&s, &member.user_id).await;
        let (status, personal) = page(&s, &max, &keys).await;
        assert_eq!(status, 200);
        assert!(
            personal.contains("max_key") && !personal.contains("ada_key") && !personal.contains("team_key"),
            "a member sees their own"
        );
        assert!(
            personal.contains("last used 0 seconds ago") || personal.contains("seconds ago"),
            "{personal}"
        );
        assert!(personal.contains("expires in 60 days"), "relative expiry");
        assert!(!personal.contains("Team keys"), "no team tab for a member");
        assert!(personal.contains("usage-chart"), "the project's chart");

        let ada = session(&s, &admin.user_id).await;
        let (_, everyone) = page(&s, &ada, &keys).await;
        assert!(everyone.contains("max_key") && everyone.contains("ada_key") && !everyone.contains("team_key"));
        assert!(
            everyone.contains("max@example.com") && everyone.contains("ada@example.com"),
            "owners named"
        );
        let (_, team) = page(&s, &ada, &format!("{keys}?tab=team")).await;
        assert!(
            team.contains("team_key") && team.contains("team: ci_bot") && !team.contains("max_key"),
            "{team}"
        );
        let (_, new_key) = page(&s, &ada, &format!("{keys}/new")).await;
        assert!(
            new_key.contains(&format!("value=\"sa:{}\"", account.id)),
            "an admin may make a team key"
        );
    }
);

both_backends!(
    a_restart_preloads_the_verify_cache_with_working_keys,
    |s: common::Server| async move {
        let (_, kept) = s.create_key(json!({"name": "kept", "scopes": []})).await;
        let (gone, _) = s.create_key(json!({"name": "gone", "scopes": []})).await;
        s.admin("POST", &format!("/v1/keys/{gone}/revoke"), None).await;
        // Another process on the same database, as after a restart.
        let store = keyward::store::Store::open(&s.database_url).await.unwrap();
        let fingerprinter = keyward::keys::fingerprint::Fingerprinter::new(&[7u8; 32]).unwrap();
        let restarted = keyward::service::KeyService::new(store, fingerprinter, keyward::keys::scopes::Catalog::default(), "kw").unwrap();
        let (_, all) = s.admin("GET", &keys_path(&s), None).await;
        let working = all["keys"].as_array().unwrap().iter().filter(|k| k["status"] == "active").count();
        assert_eq!(
            restarted.verifier().preload().await.unwrap(),
            working,
            "every working key, and only those"
        );
        let verdict = restarted.verifier().verify(&kept, Default::default()).await.unwrap();
        assert_eq!(verdict.code, keyward::service::VerifyCode::Valid);
    }
);
