//! The key service over real HTTP on loopback, on SQLite and PostgreSQL.

mod common;

use std::time::Duration;

use serde_json::{json, Value};

fn keys_path(s: &common::Server) -> String {
    format!("/v1/projects/{}/keys", s.project)
}

both_backends!(create_verify_revoke, |s: common::Server| async move {
    let (id, secret) = s
        .create_key(json!({"name": "backend", "kind": "secret", "mode": "live", "scopes": ["analytics:read"]}))
        .await;
    assert!(secret.starts_with("kw_sk_live_") && secret.len() == 60, "{secret}");
    let v = s.verify(json!({"key": secret, "scope": "analytics:read", "mode": "live"})).await;
    assert_eq!((v["valid"].as_bool(), v["code"].as_str()), (Some(true), Some("VALID")));
    assert_eq!(v["key_id"], id.as_str());
    assert_eq!(v["project_id"], s.project.as_str());
    assert_eq!(v["scopes"], json!(["analytics:read"]));

    let (status, got) = s.admin("GET", &format!("/v1/keys/{id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (got["prefix"].as_str(), got["last4"].as_str()),
        (Some("kw_sk_live_"), Some(&secret[56..]))
    );
    assert!(!got.to_string().contains(&secret));
    let (_, list) = s.admin("GET", &keys_path(&s), None).await;
    assert!(list["keys"].as_array().unwrap().iter().any(|k| k["id"] == id.as_str()));
    assert!(!list.to_string().contains(&secret));

    let (status, revoked) = s
        .admin("POST", &format!("/v1/keys/{id}/revoke"), Some(json!({"reason": "manual"})))
        .await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(s.code(&secret, None, None).await, "REVOKED");
    let (again, _) = s.admin("POST", &format!("/v1/keys/{id}/revoke"), None).await;
    assert_eq!(again, 200, "revocation is idempotent");
});

both_backends!(verify_codes, |s: common::Server| async move {
    let (_, live) = s
        .create_key(json!({"name": "reader", "kind": "secret", "mode": "live", "scopes": ["analytics:read"]}))
        .await;
    assert_eq!(s.code(&live, None, Some("test")).await, "WRONG_MODE");
    assert_eq!(s.code(&live, Some("analytics:write"), None).await, "INSUFFICIENT_SCOPE");
    assert_eq!(s.code(&live, Some("billing:read"), None).await, "INSUFFICIENT_SCOPE");
    assert_eq!(s.code("kw_sk_live_nope", None, None).await, "MALFORMED");
    let mut typo = live.clone().into_bytes();
    typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
    assert_eq!(s.code(&String::from_utf8(typo).unwrap(), None, None).await, "MALFORMED");
    let stranger =
        keyward::keys::token::Token::generate("kw", keyward::keys::token::Kind::Secret, keyward::keys::token::Mode::Live).unwrap();
    assert_eq!(s.code(stranger.expose(), None, None).await, "NOT_FOUND");

    let path = format!("/v1/projects/{}/entitlements/analytics", s.project);
    let (status, e) = s.admin("PUT", &path, Some(json!({"state": "requires_upgrade"}))).await;
    assert_eq!(status, 200, "{e}");
    assert_eq!(s.code(&live, Some("analytics:read"), None).await, "NOT_ENTITLED");
    s.admin("PUT", &path, Some(json!({"state": "trial"}))).await;
    assert_eq!(s.code(&live, Some("analytics:read"), None).await, "VALID");
    let (bad_state, _) = s.admin("PUT", &path, Some(json!({"state": "gold"}))).await;
    assert_eq!(bad_state, 422);

    let soon = (std::time::SystemTime::now() + Duration::from_millis(1500))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let expires_at = humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + soon).to_string();
    let (_, short) = s
        .create_key(json!({"name": "shortlived", "kind": "secret", "mode": "test", "scopes": [], "expires_at": expires_at}))
        .await;
    assert_eq!(s.code(&short, None, Some("test")).await, "VALID");
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert_eq!(s.code(&short, None, None).await, "EXPIRED");
});

both_backends!(overlap_rotation, |s: common::Server| async move {
    let (id, old) = s
        .create_key(json!({"name": "rotating", "kind": "secret", "mode": "live", "scopes": ["storage:*"]}))
        .await;
    let (status, rotated) = s
        .admin("POST", &format!("/v1/keys/{id}/rotate"), Some(json!({"overlap_seconds": 2})))
        .await;
    assert_eq!(status, 201, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_string();
    assert_eq!(rotated["key"]["name"], "rotating");
    assert_eq!(rotated["key"]["rotated_from"], id.as_str());
    assert_eq!(s.code(&old, Some("storage:read"), None).await, "VALID", "inside the overlap window");
    assert_eq!(s.code(&new, Some("storage:read"), None).await, "VALID");
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(s.code(&old, None, None).await, "REVOKED", "after the window, by itself");
    assert_eq!(s.code(&new, None, None).await, "VALID");

    let new_id = rotated["key"]["id"].as_str().unwrap();
    let (_, immediate) = s.admin("POST", &format!("/v1/keys/{new_id}/rotate"), None).await;
    assert_eq!(s.code(&new, None, None).await, "REVOKED", "immediate rotation");
    assert_eq!(s.code(immediate["secret"].as_str().unwrap(), None, None).await, "VALID");
});

both_backends!(default_key_rotates_but_never_revokes, |s: common::Server| async move {
    let (status, created) = s.admin("POST", "/v1/projects", Some(json!({"name": "shop"}))).await;
    assert_eq!(status, 201, "{created}");
    let project = created["project"]["id"].as_str().unwrap();
    let default = &created["default_key"];
    let name = default["name"].as_str().unwrap();
    assert!(name.starts_with(&format!("{project}_default_")), "{name}");
    assert_eq!(default["is_default"], true);
    let scopes: Vec<&str> = default["scopes"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(
        scopes.contains(&"analytics:*") && !scopes.iter().any(|s| s.starts_with("keys:") || s.starts_with("projects:")),
        "{scopes:?}"
    );
    let secret = created["secret"].as_str().unwrap();
    assert_eq!(s.code(secret, None, None).await, "VALID");
    // The creating key reaches only its own project; the new project's
    // admin key, made with it, manages this one.
    let admin = created["admin_secret"].as_str().unwrap();
    let id = default["id"].as_str().unwrap();
    let (elsewhere, _) = s.admin("POST", &format!("/v1/keys/{id}/revoke"), None).await;
    assert_eq!(elsewhere, 404);
    let (refused, body) = s.call(Some(admin), "POST", &format!("/v1/keys/{id}/revoke"), None).await;
    assert_eq!(refused, 409, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    assert_eq!(s.code(secret, None, None).await, "VALID");
    let (rotated, new) = s.call(Some(admin), "POST", &format!("/v1/keys/{id}/rotate"), None).await;
    assert_eq!(rotated, 201, "{new}");
    assert_eq!(new["key"]["is_default"], true);
    assert_eq!(s.code(new["secret"].as_str().unwrap(), None, None).await, "VALID");
    assert_eq!(s.code(secret, None, None).await, "REVOKED");
});

both_backends!(names_scopes_and_bad_input, |s: common::Server| async move {
    let path = keys_path(&s);
    for bad in ["has-dash", "has space", "", "ünïcode", &"x".repeat(65)] {
        let (status, body) = s
            .admin(
                "POST",
                &path,
                Some(json!({"name": bad, "kind": "secret", "mode": "live", "scopes": []})),
            )
            .await;
        assert_eq!(status, 422, "{bad:?}: {body}");
    }
    s.create_key(json!({"name": "unique_name", "kind": "secret", "mode": "live", "scopes": []}))
        .await;
    let (dup, body) = s
        .admin(
            "POST",
            &path,
            Some(json!({"name": "unique_name", "kind": "secret", "mode": "live", "scopes": []})),
        )
        .await;
    assert_eq!(dup, 409, "{body}");
    let (unknown, body) = s
        .admin(
            "POST",
            &path,
            Some(json!({"name": "x1", "kind": "secret", "mode": "live", "scopes": ["bogus:scope"]})),
        )
        .await;
    assert_eq!(unknown, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid");
    let (bad_enum, _) = s
        .admin(
            "POST",
            &path,
            Some(json!({"name": "x2", "kind": "secret", "mode": "staging", "scopes": []})),
        )
        .await;
    assert_eq!(bad_enum, 422);

    let raw = |body: &'static [u8]| {
        s.http
            .post(format!("{}{path}", s.base))
            .bearer_auth(&s.admin)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let malformed = raw(b"{\"name\": ").await.unwrap();
    assert_eq!(malformed.status(), 400);
    let error: Value = malformed.json().await.unwrap();
    assert_eq!(error["error"]["code"], "malformed");
    assert_eq!(raw(b"\xff\xfe not utf8").await.unwrap().status(), 400);
    let bearer = format!("Bearer {}", s.admin);
    assert_eq!(
        common::post_declaring_length(&s.base, &path, &[("Authorization", bearer.as_str())], 2 << 20),
        413
    );
    let (_, list) = s.admin("GET", &path, None).await;
    assert_eq!(
        list["keys"].as_array().unwrap().len(),
        3,
        "bootstrap admin, default key, unique_name: bad input changed nothing"
    );

    let (no_auth, body) = s.call(None, "GET", &path, None).await;
    assert_eq!((no_auth, body["error"]["code"].as_str()), (401, Some("unauthenticated")));
    let (garbage, _) = s.call(Some("kw_sk_live_garbage"), "GET", &path, None).await;
    assert_eq!(garbage, 401);
    let (missing, _) = s.admin("GET", "/v1/keys/key_doesnotexist", None).await;
    assert_eq!(missing, 404);
});

both_backends!(roles_limit_what_keys_can_do, |s: common::Server| async move {
    let members = format!("/v1/projects/{}/members", s.project);
    let mut ids = Vec::new();
    for (email, role) in [
        ("viewer@example.com", "viewer"),
        ("alice@example.com", "member"),
        ("bob@example.com", "member"),
    ] {
        let (status, body) = s.admin("POST", &members, Some(json!({"email": email, "role": role}))).await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["member"]["user_id"].as_str().unwrap().to_string());
    }
    let key_for = |owner: &str, name: &str| json!({"name": name, "kind": "secret", "mode": "live", "scopes": ["keys:read", "keys:write"], "owner_user_id": owner});
    let (_, viewer) = s.create_key(key_for(&ids[0], "viewer_key")).await;
    let (_, alice) = s.create_key(key_for(&ids[1], "alice_key")).await;
    let (_, bob) = s.create_key(key_for(&ids[2], "bob_key")).await;
    let path = keys_path(&s);

    let (status, body) = s
        .call(
            Some(&viewer),
            "POST",
            &path,
            Some(json!({"name": "v_new", "kind": "secret", "mode": "live", "scopes": []})),
        )
        .await;
    assert_eq!(status, 403, "a viewer cannot create: {body}");
    let (status, _) = s.call(Some(&viewer), "GET", &path, None).await;
    assert_eq!(status, 200, "a viewer can view");

    let (status, own) = s
        .call(
            Some(&alice),
            "POST",
            &path,
            Some(json!({"name": "alice_own", "kind": "secret", "mode": "live", "scopes": []})),
        )
        .await;
    assert_eq!(status, 201, "a member creates their own key: {own}");
    let own_id = own["key"]["id"].as_str().unwrap();
    let (status, _) = s.call(Some(&bob), "POST", &format!("/v1/keys/{own_id}/revoke"), None).await;
    assert_eq!(status, 403, "a member cannot revoke another member's key");
    assert_eq!(s.code(own["secret"].as_str().unwrap(), None, None).await, "VALID");
    let (status, _) = s.call(Some(&alice), "POST", &format!("/v1/keys/{own_id}/revoke"), None).await;
    assert_eq!(status, 200, "a member revokes their own key");

    let (status, _) = s
        .call(
            Some(&viewer),
            "PUT",
            &format!("/v1/projects/{}/entitlements/analytics", s.project),
            Some(json!({"state": "enabled"})),
        )
        .await;
    assert_eq!(status, 403);
    let (_, narrow) = s
        .create_key(json!({"name": "read_only", "kind": "secret", "mode": "live", "scopes": ["keys:read"]}))
        .await;
    let (status, body) = s
        .call(Some(&narrow), "POST", &path, Some(json!({"name": "nope", "scopes": []})))
        .await;
    assert_eq!(status, 403, "missing keys:write scope: {body}");
});

both_backends!(audit_records_changes_and_exports, |s: common::Server| async move {
    let (id, secret) = s
        .create_key(json!({"name": "audited", "kind": "secret", "mode": "test", "scopes": ["billing:read"]}))
        .await;
    s.admin(
        "PATCH",
        &format!("/v1/keys/{id}"),
        Some(json!({"description": "now described", "scopes": ["billing:*"]})),
    )
    .await;
    s.admin("POST", &format!("/v1/keys/{id}/revoke"), None).await;
    let (status, audit) = s.admin("GET", &format!("/v1/projects/{}/audit", s.project), None).await;
    assert_eq!(status, 200);
    let events = audit["events"].as_array().unwrap();
    let created = events
        .iter()
        .find(|e| e["action"] == "api_key.created" && e["target"] == id.as_str())
        .expect("api_key.created");
    assert_eq!(created["data"]["mode"], "test");
    assert_eq!(created["data"]["scopes"], json!(["billing:read"]));
    assert!(events.iter().any(|e| e["action"] == "api_key.updated"));
    let revoked = events.iter().find(|e| e["action"] == "api_key.revoked").expect("api_key.revoked");
    assert_eq!(revoked["data"]["reason"], "manual");
    assert!(!audit.to_string().contains(&secret));
    assert!(created["actor"].as_str().unwrap().starts_with("key:"));

    let resp = s
        .http
        .get(format!("{}/v1/projects/{}/audit/export", s.base, s.project))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let digest = resp.headers()["x-content-sha256"].to_str().unwrap().to_string();
    let body = resp.text().await.unwrap();
    use sha2::Digest;
    assert_eq!(digest, hex::encode(sha2::Sha256::digest(body.as_bytes())));
    assert_eq!(body.lines().count(), events.len());
    assert!(!body.contains(&secret));
    let (checked, broken) = s.service.store().verify_audit_chain().await.unwrap();
    assert!(checked >= events.len() as u64 && broken.is_none());
});

both_backends!(usage_is_counted_without_a_write_per_verify, |s: common::Server| async move {
    let (id, secret) = s
        .create_key(json!({"name": "used", "kind": "secret", "mode": "live", "scopes": []}))
        .await;
    for _ in 0..5 {
        assert_eq!(s.code(&secret, None, None).await, "VALID");
    }
    let (_, before) = s.admin("GET", &format!("/v1/keys/{id}"), None).await;
    assert_eq!(before["last_used_at"], Value::Null, "nothing written until the flush");
    s.service.verifier().flush_usage().await.unwrap();
    let (_, after) = s.admin("GET", &format!("/v1/keys/{id}"), None).await;
    assert!(after["last_used_at"].is_string(), "{after}");
    let usage = s.service.store().usage_of_key(&id).await.unwrap();
    assert_eq!(usage.iter().map(|(_, n)| n).sum::<i64>(), 5);
});

both_backends!(plaintext_never_stored, |s: common::Server| async move {
    let (_, secret) = s
        .create_key(json!({"name": "stored", "kind": "secret", "mode": "live", "scopes": ["messages:read"]}))
        .await;
    s.code(&secret, None, None).await;
    s.service.verifier().flush_usage().await.unwrap();
    let haystack = match &s.sqlite_dir {
        Some(dir) => std::fs::read_dir(dir.path())
            .unwrap()
            .flat_map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect::<Vec<u8>>(),
        None => postgres_dump(&s.database_url).await.into_bytes(),
    };
    assert!(haystack.len() > 1000, "read the database");
    assert!(
        memchr::memmem::find(&haystack, secret.as_bytes()).is_none(),
        "the plaintext is in the database"
    );
    assert!(
        memchr::memmem::find(&haystack, &secret.as_bytes()[11..50]).is_none(),
        "the random part is in the database"
    );
});

async fn postgres_dump(url: &str) -> String {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let mut all = String::new();
    for table in [
        "projects",
        "users",
        "memberships",
        "service_accounts",
        "api_keys",
        "entitlements",
        "audit_events",
        "audit_head",
        "key_usage",
    ] {
        let rows: Vec<String> = sqlx::query_scalar(&format!("SELECT CAST(row_to_json(t) AS TEXT) FROM {table} t"))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        all.push_str(&rows.join("\n"));
    }
    all
}

both_backends!(openapi_document_lists_the_contract, |s: common::Server| async move {
    let (status, doc) = s.call(None, "GET", "/v1/openapi.json", None).await;
    assert_eq!(status, 200);
    for path in [
        "/v1/projects",
        "/v1/projects/{project_id}/keys",
        "/v1/keys/verify",
        "/v1/keys/{key_id}/rotate",
        "/v1/projects/{project_id}/audit/export",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_a_request_id() {
    let s = common::Server::start(common::Backend::Sqlite).await.unwrap();
    let fresh = s.http.get(format!("{}/healthz", s.base)).send().await.unwrap();
    let id = fresh
        .headers()
        .get("x-request-id")
        .expect("a request id")
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 26, "a ULID: {id}");
    let echoed = s
        .http
        .get(format!("{}/healthz", s.base))
        .header("x-request-id", "trace-7f3a")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-7f3a");
    let unprintable = s
        .http
        .get(format!("{}/healthz", s.base))
        .header("x-request-id", "a b")
        .send()
        .await
        .unwrap();
    assert_ne!(unprintable.headers()["x-request-id"], "a b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_a_route_does_not_take_gets_405_in_json_with_allow() {
    let s = common::Server::start(common::Backend::Sqlite).await.unwrap();
    let keys = format!("/v1/projects/{}/keys", s.project);
    let rows = [
        (reqwest::Method::DELETE, "/v1/keys/verify".to_string(), "POST"),
        (reqwest::Method::PUT, "/healthz".to_string(), "GET"),
        (reqwest::Method::DELETE, keys.clone(), "GET"),
        (reqwest::Method::GET, format!("{keys}/import"), "POST"),
        (reqwest::Method::GET, "/webhooks/github".to_string(), "POST"),
        // A project that does not exist answers the same: the 405 reveals
        // nothing of what the path names.
        (reqwest::Method::DELETE, "/v1/projects/proj_nope/keys".to_string(), "GET"),
    ];
    // The owner and a caller with no credentials get the same answer: no
    // handler runs, so no one's reach is tested or shown.
    for ((method, path, allowed), bearer) in rows.iter().flat_map(|row| [(row, Some(&s.admin)), (row, None)]) {
        let mut request = s.http.request(method.clone(), format!("{}{path}", s.base));
        if let Some(key) = bearer {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        let allow = response.headers()["allow"].to_str().unwrap().to_string();
        assert!(allow.contains(allowed), "{method} {path}: Allow {allow}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "method_not_allowed", "{method} {path}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_webhooks_are_rate_limited_with_retry_after() {
    use keyward::server::limits::{Limiter, RateLimits};
    let limits = RateLimits::with(Limiter::new(0.5, 6.0), Limiter::new(0.5, 3.0), Limiter::new(0.5, 2.0));
    let setup = common::Setup {
        limits: Some(std::sync::Arc::new(limits)),
        ..common::Setup::default()
    };
    let s = common::Server::start_with(common::Backend::Sqlite, setup).await.unwrap();
    let verify = |key: &str| s.http.post(format!("{}/v1/keys/verify", s.base)).json(&json!({"key": key})).send();
    // Per key: three verifies of one key, then 429; another key still passes.
    for _ in 0..3 {
        assert_eq!(verify(&s.admin).await.unwrap().status(), 200);
    }
    let limited = verify(&s.admin).await.unwrap();
    assert_eq!(limited.status(), 429);
    let wait: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "Retry-After: {wait}");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(!body.to_string().contains(&s.admin));
    // Per address: six verifies in all from 127.0.0.1 (four so far), then 429.
    assert_eq!(verify("kw_sk_live_guess1").await.unwrap().status(), 200);
    assert_eq!(verify("kw_sk_live_guess2").await.unwrap().status(), 200);
    assert_eq!(verify("kw_sk_live_guess3").await.unwrap().status(), 429);
    // Webhooks: two deliveries no secret can authenticate, then 429.
    let hook = || s.http.post(format!("{}/webhooks/github", s.base)).body("{}").send();
    assert_eq!(hook().await.unwrap().status(), 503);
    assert_eq!(hook().await.unwrap().status(), 503);
    let limited = hook().await.unwrap();
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
}

both_backends!(pepper_rotation_locks_nobody_out, |s: common::Server| async move {
    use keyward::keys::fingerprint::Fingerprinter;
    use keyward::keys::scopes::Catalog;
    use keyward::service::{KeyService, VerifyCode};
    let old_pepper = [7u8; 32];
    let new_pepper = [9u8; 32];
    let mut keys = Vec::new();
    for name in ["used_soon", "used_later", "never_used"] {
        keys.push(s.create_key(json!({"name": name, "scopes": []})).await.1);
    }
    let old = Fingerprinter::new(&old_pepper).unwrap();
    s.service.store().label_unlabelled_keys(old.pepper_id()).await.unwrap();

    // Step 1: the new pepper, with the old one as previous.
    let rotating = Fingerprinter::new(&new_pepper).unwrap().with_previous(&old_pepper).unwrap();
    let new_id = rotating.pepper_id().to_string();
    assert_ne!(new_id, old.pepper_id());
    let store = keyward::store::Store::open(&s.database_url).await.unwrap();
    let service = KeyService::new(store.clone(), rotating, Catalog::default(), "kw").unwrap();
    let active = store.keys_on_other_peppers(&new_id).await.unwrap();
    assert!(active >= 3, "every active key is on the old pepper: {active}");
    for key in &keys[..2] {
        let verdict = service.verifier().verify(key, Default::default()).await.unwrap();
        assert_eq!(verdict.code, VerifyCode::Valid, "a key made under the old pepper still verifies");
    }
    assert_eq!(
        store.keys_on_other_peppers(&new_id).await.unwrap(),
        active - 2,
        "verified keys moved to the new pepper"
    );
    let moved = Fingerprinter::new(&new_pepper).unwrap().fingerprint(&keys[0]).to_hex();
    assert!(store.key_by_fingerprint(&moved).await.unwrap().is_some());

    // Step 2: once the gauge reads 0 the previous pepper can go. Here one
    // key was never used, which is what the gauge is for: without the old
    // pepper it would no longer be found.
    let new_only = KeyService::new(store.clone(), Fingerprinter::new(&new_pepper).unwrap(), Catalog::default(), "kw").unwrap();
    assert_eq!(
        new_only.verifier().verify(&keys[1], Default::default()).await.unwrap().code,
        VerifyCode::Valid
    );
    assert_eq!(
        new_only.verifier().verify(&keys[2], Default::default()).await.unwrap().code,
        VerifyCode::NotFound
    );
    assert_eq!(
        service.verifier().verify(&keys[2], Default::default()).await.unwrap().code,
        VerifyCode::Valid
    );
    assert_eq!(
        new_only.verifier().verify(&keys[2], Default::default()).await.unwrap().code,
        VerifyCode::Valid
    );
});
