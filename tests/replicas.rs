//! Two replicas on one PostgreSQL, in one process but on separate runtimes:
//! each with its own key service, verify cache and HTTP listener. A change
//! made through one reaches the other's cache by LISTEN/NOTIFY: the change
//! is reported done only once every live replica has acknowledged it, so
//! the very next verify anywhere sees it, with no TTL.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use keyward::keys::fingerprint::Fingerprinter;
use keyward::keys::scopes::Catalog;
use keyward::server::{app, ServerParts};
use keyward::service::KeyService;
use keyward::store::Store;
use serde_json::{json, Value};

struct Replica {
    base: String,
    service: Arc<KeyService>,
}

/// A replica on its own runtime, as a separate process would be: its
/// listener never waits for the other replica's threads.
async fn replica(url: &str) -> Replica {
    let url = url.to_string();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let store = Store::open(&url).await.unwrap();
            let service = Arc::new(KeyService::new(store, Fingerprinter::new(&[7u8; 32]).unwrap(), Catalog::default(), "kw").unwrap());
            tokio::spawn(service.verifier().clone().follow_other_replicas());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let router = app(ServerParts {
                service: service.clone(),
                responder: Arc::new(keyward::response::LeakResponder::new(service.clone())),
                github_keys: None,
                gitlab_keys: None,
                webhooks: Default::default(),
                console: Default::default(),
                limits: Default::default(),
                trusted_proxies: Default::default(),
            });
            let _ = tx.send(Replica { base, service });
            axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
                .await
                .unwrap();
        });
    });
    rx.await.unwrap()
}

async fn call(http: &reqwest::Client, base: &str, token: Option<&str>, method: &str, path: &str, body: Value) -> (u16, Value) {
    let mut request = http.request(method.parse().unwrap(), format!("{base}{path}")).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_replica_is_refused_by_the_next_verify_on_the_other() {
    let Some(url) = common::postgres_database().await else { return };
    let a = replica(&url).await;
    let b = replica(&url).await;
    let (project, admin, _) = a.service.bootstrap("owner@example.com", "first").await.unwrap();
    let admin = admin.secret.expose().to_string();
    // Let both listeners subscribe before the first change.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let http = reqwest::Client::new();
    let (mut stale, mut delays) = (0, Vec::new());
    for round in 0..25 {
        let (status, created) = call(
            &http,
            &a.base,
            Some(&admin),
            "POST",
            &format!("/v1/projects/{}/keys", project.id),
            json!({"name": format!("k{round}"), "scopes": []}),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        let (key_id, secret) = (
            created["key"]["id"].as_str().unwrap().to_string(),
            created["secret"].as_str().unwrap().to_string(),
        );
        // B caches the key as valid first.
        for _ in 0..2 {
            let (_, v) = call(&http, &b.base, None, "POST", "/v1/keys/verify", json!({"key": secret})).await;
            assert_eq!(v["code"], "VALID");
        }
        let (status, _) = call(
            &http,
            &a.base,
            Some(&admin),
            "POST",
            &format!("/v1/keys/{key_id}/revoke"),
            json!({}),
        )
        .await;
        assert_eq!(status, 200);
        let revoked_at = Instant::now();
        loop {
            let (_, v) = call(&http, &b.base, None, "POST", "/v1/keys/verify", json!({"key": secret})).await;
            if v["code"] == "REVOKED" {
                break;
            }
            assert_eq!(v["code"], "VALID");
            stale += 1;
            assert!(
                revoked_at.elapsed() < Duration::from_millis(200),
                "round {round}: B served the revoked key for 200 ms"
            );
        }
        delays.push(revoked_at.elapsed());
    }
    delays.sort();
    eprintln!(
        "replicas: 25 revocations on A; B said REVOKED after a median {:?}, max {:?}; {stale} verifies in between still saw VALID",
        delays[12], delays[24]
    );
    assert_eq!(stale, 0, "the very next verify on B must say REVOKED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entitlement_change_on_one_replica_reaches_the_other() {
    let Some(url) = common::postgres_database().await else { return };
    let a = replica(&url).await;
    let b = replica(&url).await;
    let (project, admin, _) = a.service.bootstrap("owner@example.com", "first").await.unwrap();
    let admin = admin.secret.expose().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let http = reqwest::Client::new();
    let (_, created) = call(
        &http,
        &a.base,
        Some(&admin),
        "POST",
        &format!("/v1/projects/{}/keys", project.id),
        json!({"name": "k", "scopes": ["billing:read"]}),
    )
    .await;
    let secret = created["secret"].as_str().unwrap().to_string();
    let verify = json!({"key": secret, "scope": "billing:read"});
    assert_eq!(
        call(&http, &b.base, None, "POST", "/v1/keys/verify", verify.clone()).await.1["code"],
        "VALID"
    );
    let (status, _) = call(
        &http,
        &a.base,
        Some(&admin),
        "PUT",
        &format!("/v1/projects/{}/entitlements/billing", project.id),
        json!({"state": "requires_upgrade"}),
    )
    .await;
    assert_eq!(status, 200);
    let changed_at = Instant::now();
    while call(&http, &b.base, None, "POST", "/v1/keys/verify", verify.clone()).await.1["code"] != "NOT_ENTITLED" {
        assert!(
            changed_at.elapsed() < Duration::from_millis(200),
            "B kept the old entitlement for 200 ms"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn singleton_work_runs_on_one_replica_and_fails_over_when_its_leader_dies() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let Some(url) = common::postgres_database().await else { return };
    let running = Arc::new(AtomicUsize::new(0));
    let work = |replica: usize, running: Arc<AtomicUsize>| {
        move || {
            let running = running.clone();
            async move {
                running.store(replica, Ordering::SeqCst);
                std::future::pending::<()>().await
            }
        }
    };
    let store_a = Store::open(&url).await.unwrap();
    let store_b = Store::open(&url).await.unwrap();
    let a = tokio::spawn(keyward::sources::while_leader(store_a, "feed", work(1, running.clone())));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = tokio::spawn(keyward::sources::while_leader(store_b, "feed", work(2, running.clone())));
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(running.load(Ordering::SeqCst), 1, "the second replica ran the singleton too");

    // The leader dies: its lock connection goes with it.
    a.abort();
    let died = Instant::now();
    while running.load(Ordering::SeqCst) != 2 {
        assert!(died.elapsed() < Duration::from_secs(10), "no replica took the lead over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("replicas: the follower took the lead {:?} after the leader died", died.elapsed());
    b.abort();
}
