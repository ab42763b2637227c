//! Two real `keyward serve` processes on one PostgreSQL, as a deployment
//! runs them: 1,000 push jobs shared between them and each completed once,
//! one replica killed with SIGKILL mid-run and its claimed jobs taken over
//! when their lease ends, a key revoked through one replica refused by the
//! very next verify on the other, and the feed poller running on one
//! replica at a time and moving when its leader dies.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::hosts::{self, FileChange};
use keyward::sources::github::PushEvent;
use keyward::store::{now_ms, Store};
use serde_json::{json, Value};

const JOBS: usize = 1000;
const LEASE_SECONDS: u64 = 3;

struct Replica {
    child: Child,
    base: String,
    admin: Option<String>,
    _data: tempfile::TempDir,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Both replicas poll the (fake) public events feed every second: only the
/// one holding the advisory lock may.
const CONFIG: &str = "[sources.feed]\nenabled = true\nmin_interval = \"1s\"\n";

fn replica(database_url: &str, github_url: &str, bootstrap: bool) -> Replica {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("keyward.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(data.path())
        .env("DATABASE_URL", database_url)
        .env("KEYWARD_PEPPER", "07".repeat(32))
        .env("KEYWARD_JOB_LEASE_SECONDS", LEASE_SECONDS.to_string())
        .env("KEYWARD_GITHUB_API_URL", github_url)
        .env("KEYWARD_GITHUB_WEBHOOK_SECRET", "cluster-webhook-secret")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("keyward serve starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut base = String::new();
    let mut admin = None;
    // The first replica also prints the project and the bootstrap admin key.
    while let Some(Ok(line)) = lines.next() {
        if let Some(url) = line.strip_prefix("keyward listening on ") {
            base = url.to_string();
        } else if let Some(key) = line.strip_prefix("admin key (shown once, store it now): ") {
            admin = Some(key.to_string());
        }
        if !base.is_empty() && (admin.is_some() || !bootstrap) {
            break;
        }
    }
    // Keep reading, so the process never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    assert!(!base.is_empty(), "serve did not print its address");
    Replica {
        child,
        base,
        admin,
        _data: data,
    }
}

async fn verify(http: &reqwest::Client, base: &str, key: &str) -> String {
    let v: Value = http
        .post(format!("{base}/v1/keys/verify"))
        .json(&json!({"key": key}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["code"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_the_jobs_survive_a_kill_and_agree_on_revocations() {
    let Some(url) = common::postgres_database().await else { return };
    let github = hosts::github().await;
    github.state.lock().unwrap().poll_interval = 1;
    let a = replica(&url, &github.url, true);
    let admin = a.admin.clone().expect("the first replica bootstraps");
    let b = replica(&url, &github.url, false);
    let http = reqwest::Client::new();

    // One feed poller runs, A's (it started first and took the lock).
    let window = Instant::now();
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    let polls = |after: Instant| github.requests().iter().filter(|r| r.1 == "/events" && r.0 >= after).count();
    let polled = polls(window);
    assert!(
        (2..=4).contains(&polled),
        "{polled} polls in 3 s at one per second: one poller, not two"
    );

    // A revocation through A is refused by the very next verify on B.
    let projects: Value = http
        .get(format!("{}/v1/projects", a.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let project = projects["projects"][0]["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for round in 0..10 {
        let created: Value = http
            .post(format!("{}/v1/projects/{project}/keys", a.base))
            .bearer_auth(&admin)
            .json(&json!({"name": format!("k{round}"), "scopes": []}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let (id, secret) = (created["key"]["id"].as_str().unwrap(), created["secret"].as_str().unwrap());
        assert_eq!(verify(&http, &b.base, secret).await, "VALID");
        let revoked = http
            .post(format!("{}/v1/keys/{id}/revoke", a.base))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status(), 200);
        assert_eq!(
            verify(&http, &b.base, secret).await,
            "REVOKED",
            "round {round}: B served a key A had revoked"
        );
    }

    // 1,000 pushes to read, each a compare that takes 3 ms at the fake.
    github.state.lock().unwrap().compare_delay_ms = 3;
    let store = Store::open(&url).await.unwrap();
    let template: Value = serde_json::from_str(include_str!("../fixtures/github/push.json")).unwrap();
    for i in 0..JOBS {
        // Not zero: an all-zero `before` means a new branch, read differently.
        let (before, after) = (format!("{:040x}", i + 1), format!("{:040x}", i + 1_000_000));
        github.add_commit(&after, vec![FileChange::new("README.md", "@@ -1 +1,2 @@\n a\n+b")]);
        github.add_range(&before, &after, &[&after]);
        let mut payload = template.clone();
        payload["before"] = json!(before);
        payload["after"] = json!(after);
        payload["created"] = json!(false);
        payload["commits"][0]["id"] = json!(after);
        let event: PushEvent = serde_json::from_value(payload).unwrap();
        assert!(store
            .enqueue(&keyward::sources::pushes::github_job(&format!("d{i}"), &event, now_ms()), now_ms())
            .await
            .unwrap());
    }
    // Let both replicas work, then kill A in the middle of the run.
    let started = Instant::now();
    let done = |jobs: &[(String, String, i64)]| jobs.iter().filter(|j| j.1 == "done").count();
    loop {
        let jobs = store.jobs_of_kind("push.github").await.unwrap();
        // Kill when a quarter is done and both replicas hold claims, so the
        // killed one surely dies holding some (on a loaded machine one
        // replica can sit between batches at any given instant).
        let holders = common::sql_texts(
            &url,
            "SELECT DISTINCT locked_by FROM jobs WHERE state = 'running' AND locked_by IS NOT NULL",
        )
        .await;
        if done(&jobs) >= JOBS / 4 && holders.len() >= 2 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the replicas are not working");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut a = a;
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let killed_at = Instant::now();
    // B takes the feed poller's lock over.
    while polls(killed_at + Duration::from_millis(200)) == 0 {
        assert!(
            killed_at.elapsed() < Duration::from_secs(10),
            "no replica took the feed poller over"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("cluster: the feed poller moved to B {:?} after A died", killed_at.elapsed());
    let jobs = loop {
        let jobs = store.jobs_of_kind("push.github").await.unwrap();
        if done(&jobs) == JOBS {
            break jobs;
        }
        assert!(killed_at.elapsed() < Duration::from_secs(90), "{} of {JOBS} jobs done", done(&jobs));
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let retried: Vec<_> = jobs.iter().filter(|j| j.2 > 1).collect();
    let compares = github.hits("/compare/");
    eprintln!(
        "cluster: {JOBS} jobs done in {:?} ({:?} after the kill); {} taken over after the lease; {compares} compare calls",
        started.elapsed(),
        killed_at.elapsed(),
        retried.len()
    );
    assert!(jobs.iter().all(|j| j.1 == "done"), "a job ended dead or pending");
    assert!(!retried.is_empty(), "no job was held by the killed replica");
    assert!(
        retried.len() <= 16,
        "more jobs retried than one worker claims at a time: {}",
        retried.len()
    );
    // Each job's push was read once, but for those the dead replica held:
    // it may have read some of them before it died.
    assert!(
        compares >= JOBS && compares <= JOBS + retried.len(),
        "{compares} compare calls for {JOBS} jobs"
    );
    assert!(
        killed_at.elapsed() >= Duration::from_secs(LEASE_SECONDS),
        "jobs were taken before the lease ended"
    );
    drop(b);
}

/// Verifies of one key, spread over both replicas, `in_flight` at a time:
/// how many answered each code.
async fn verify_spread(bases: &[String], key: &str, total: usize, in_flight: usize) -> std::collections::BTreeMap<String, usize> {
    let http = reqwest::Client::new();
    let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(in_flight));
    let mut tasks = Vec::new();
    for i in 0..total {
        let (http, base, key, semaphore) = (http.clone(), bases[i % bases.len()].clone(), key.to_string(), semaphore.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = semaphore.acquire().await.unwrap();
            verify(&http, &base, &key).await
        }));
    }
    let mut codes = std::collections::BTreeMap::new();
    for t in tasks {
        *codes.entry(t.await.unwrap()).or_insert(0) += 1;
    }
    codes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_rate_limits_and_disable_hold_across_two_replicas() {
    let Some(url) = common::postgres_database().await else { return };
    let github = hosts::github().await;
    let a = replica(&url, &github.url, true);
    let admin = a.admin.clone().expect("the first replica bootstraps");
    let b = replica(&url, &github.url, false);
    let bases = [a.base.clone(), b.base.clone()];
    let http = reqwest::Client::new();
    let projects: Value = http
        .get(format!("{}/v1/projects", a.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let project = projects["projects"][0]["id"].as_str().unwrap().to_string();
    let create = |body: Value| {
        let (http, base, admin, project) = (http.clone(), a.base.clone(), admin.clone(), project.clone());
        async move {
            let created: Value = http
                .post(format!("{base}/v1/projects/{project}/keys"))
                .bearer_auth(&admin)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (
                created["key"]["id"].as_str().unwrap().to_string(),
                created["secret"].as_str().unwrap().to_string(),
            )
        }
    };

    // Credits: exact, however the verifies are spread.
    let (_, credited) = create(json!({"name": "hundred", "scopes": [], "credits": {"remaining": 100}})).await;
    let codes = verify_spread(&bases, &credited, 1000, 64).await;
    eprintln!("cluster: 1000 verifies of a key with 100 credits over 2 replicas: {codes:?}");
    assert_eq!(codes.get("VALID"), Some(&100), "{codes:?}");
    assert_eq!(codes.get("USAGE_EXCEEDED"), Some(&900), "{codes:?}");

    // Rate limits: never over the limit; early refusals bounded by one
    // block per other replica.
    let hour = 3_600_000;
    if hour - now_ms() % hour < 60_000 {
        tokio::time::sleep(Duration::from_millis((hour - now_ms() % hour + 1000) as u64)).await;
    }
    let (_, limited) =
        create(json!({"name": "limited", "scopes": [], "ratelimits": [{"name": "hourly", "limit": 200, "duration_ms": hour}]})).await;
    let codes = verify_spread(&bases, &limited, 1000, 64).await;
    let valid = *codes.get("VALID").unwrap_or(&0) as i64;
    eprintln!(
        "cluster: 1000 verifies of a key limited to 200 an hour over 2 replicas: {codes:?}; overshoot {}",
        valid - 200
    );
    assert!(valid <= 200, "the limit was over-admitted: {codes:?}");
    assert!(
        valid >= 200 - 200 / 8,
        "more refused early than one block of the other replica: {codes:?}"
    );

    // Disable through A: B refuses at once; enable: B accepts at once.
    let (id, secret) = create(json!({"name": "switch", "scopes": []})).await;
    assert_eq!(verify(&http, &b.base, &secret).await, "VALID");
    for (enabled, expected) in [(false, "DISABLED"), (true, "VALID")] {
        let patched = http
            .patch(format!("{}/v1/keys/{id}", a.base))
            .bearer_auth(&admin)
            .json(&json!({"enabled": enabled}))
            .send()
            .await
            .unwrap();
        assert_eq!(patched.status(), 200);
        assert_eq!(
            verify(&http, &b.base, &secret).await,
            expected,
            "the very next verify on the other replica"
        );
    }
}
