//! The database restarts under load. Webhooks and verifies keep coming
//! while PostgreSQL is stopped for 3 s and started again with
//! `pg_ctlcluster`. The service must recover by itself, and every webhook
//! it acknowledged with a 2xx must end up read. Alone in its binary so no
//! other test sees the restart.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::hosts::FileChange;
use common::pushes::*;

/// The local cluster serving `127.0.0.1:5432`, as `(version, name)`.
fn local_cluster() -> Option<(String, String)> {
    let out = std::process::Command::new("pg_lsclusters").arg("-h").output().ok()?;
    String::from_utf8_lossy(&out.stdout).lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.len() >= 4 && fields[2] == "5432").then(|| (fields[0].to_string(), fields[1].to_string()))
    })
}

/// Stops the cluster, keeps it down for `down`, starts it again.
fn restart(cluster: &(String, String), down: Duration) -> Duration {
    let started = Instant::now();
    let pg_ctl = |action: &str, mode: &[&str]| {
        let status = std::process::Command::new("pg_ctlcluster")
            .args([cluster.0.as_str(), cluster.1.as_str(), action])
            .args(mode)
            .status()
            .expect("pg_ctlcluster runs");
        assert!(status.success(), "pg_ctlcluster {action} failed");
    };
    pg_ctl("stop", &["--mode", "fast"]);
    std::thread::sleep(down);
    pg_ctl("start", &[]);
    started.elapsed()
}

/// Every push job as (delivery id, state), read straight from the database.
async fn jobs_by_delivery(url: &str) -> Vec<(String, String)> {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query("SELECT dedupe_key, state FROM jobs WHERE kind = 'push.github'")
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|row| {
            let key: String = row.get("dedupe_key");
            (key.trim_start_matches("github:").to_string(), row.get("state"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_under_load_loses_no_accepted_webhook() {
    let Some(e) = env(common::Backend::Postgres).await else { return };
    let cluster = local_cluster().expect("a PostgreSQL cluster on port 5432 (pg_lsclusters)");
    e.github
        .add_commit(C1, vec![FileChange::new("README.md", "@@ -1 +1,2 @@\n hello\n+world")]);
    e.github.add_range(BEFORE, C1, &[C1]);
    let body = push_payload(BEFORE, C1, &[C1], false, false);

    let accepted: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let refused = Arc::new(Mutex::new(0u32));
    let slowest = Arc::new(Mutex::new(Duration::ZERO));
    let verifies = Arc::new(Mutex::new((0u32, 0u32)));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let running = |stop: &Arc<std::sync::atomic::AtomicBool>| !stop.load(std::sync::atomic::Ordering::Relaxed);
    let e = Arc::new(e);

    let sender = {
        let (e, accepted, refused, stop, body) = (e.clone(), accepted.clone(), refused.clone(), stop.clone(), body.clone());
        let slowest = slowest.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while running(&stop) {
                n += 1;
                let delivery = format!("restart-{n}");
                // Each delivery is its own push event (a replayed body
                // would be answered `duplicate`): it carries its own hook id.
                let mut event: serde_json::Value = serde_json::from_slice(&body).unwrap();
                event["hook_id"] = serde_json::json!(n);
                let body = serde_json::to_vec(&event).unwrap();
                let request =
                    e.s.http
                        .post(format!("{}/webhooks/github", e.s.base))
                        .header("x-github-event", "push")
                        .header("x-github-delivery", &delivery)
                        .header("x-hub-signature-256", common::hosts::github_signature(GITHUB_SECRET, &body))
                        .timeout(Duration::from_secs(10))
                        .body(body.clone());
                let sent = Instant::now();
                let answer = request.send().await;
                {
                    let mut slowest = slowest.lock().unwrap();
                    *slowest = (*slowest).max(sent.elapsed());
                }
                match answer {
                    Ok(r) if r.status().is_success() => {
                        accepted.lock().unwrap().insert(delivery);
                    }
                    _ => *refused.lock().unwrap() += 1,
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };
    let verifier = {
        let (e, verifies, stop) = (e.clone(), verifies.clone(), stop.clone());
        tokio::spawn(async move {
            while running(&stop) {
                let answer =
                    e.s.http
                        .post(format!("{}/v1/keys/verify", e.s.base))
                        .json(&serde_json::json!({"key": e.secret}))
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await;
                let mut v = verifies.lock().unwrap();
                match answer {
                    Ok(r) if r.status() == 200 => v.0 += 1,
                    _ => v.1 += 1,
                }
            }
        })
    };

    tokio::time::sleep(Duration::from_secs(3)).await;
    let before_restart = accepted.lock().unwrap().len();
    let took = tokio::task::spawn_blocking(move || restart(&cluster, Duration::from_secs(3)))
        .await
        .unwrap();
    let restarted = Instant::now();
    // The service must take webhooks again by itself.
    let recovered = loop {
        let len = accepted.lock().unwrap().len();
        tokio::time::sleep(Duration::from_millis(50)).await;
        if accepted.lock().unwrap().len() > len {
            break restarted.elapsed();
        }
        assert!(restarted.elapsed() < Duration::from_secs(30), "webhooks were never accepted again");
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sender.await.unwrap();
    verifier.await.unwrap();

    let accepted = accepted.lock().unwrap().clone();
    let started = Instant::now();
    let (done, missing) = loop {
        let jobs = jobs_by_delivery(&e.s.database_url).await;
        let missing: Vec<&String> = accepted.iter().filter(|d| !jobs.iter().any(|(key, _)| key == *d)).collect();
        let done = accepted
            .iter()
            .filter(|d| jobs.iter().any(|(key, state)| key == *d && state == "done"))
            .count();
        if done == accepted.len() || started.elapsed() > Duration::from_secs(60) {
            break (done, missing.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (ok, failed) = *verifies.lock().unwrap();
    eprintln!(
        "restart took {took:?}; webhooks: {} accepted ({before_restart} before the restart), {} refused, slowest answer {:?}, \
         accepting again {recovered:?} after the restart; {done} read, {missing} lost; verifies: {ok} answered, {failed} failed",
        accepted.len(),
        refused.lock().unwrap(),
        slowest.lock().unwrap(),
    );
    assert_eq!(missing, 0, "an accepted webhook has no job");
    assert_eq!(done, accepted.len(), "every accepted webhook was read");
    assert_eq!(e.s.code(&e.secret, None, None).await, "VALID", "verify works after the restart");
}
