//! The daemon's leak sources end to end: GitHub and GitLab push webhooks
//! read through fake code-host APIs on loopback, the public events feed,
//! watched paths and scheduled repository scans. Each leak must end with
//! the key revoked, its owner alerted and the incident naming where.

mod common;

use std::time::{Duration, Instant};

use common::hosts::{self, FileChange};
use common::pushes::*;
use keyward::sources::feed::{FeedOptions, FeedPoller};
use keyward::sources::github::GitHubApi;
use serde_json::{json, Value};

both_backends_with!(
    github_push_adding_a_live_key_revokes_it_and_alerts_the_owner,
    env,
    |e: Env| async move {
        e.github.add_commit(C1, vec![FileChange::new("config/prod.env", &e.leak_patch())]);
        e.github.add_range(BEFORE, C1, &[C1]);
        let (status, body) = e
            .push(
                "72d3162e-cc78-11e3-81ab-4c9367dc0958",
                push_payload(BEFORE, C1, &[C1], false, false),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["status"], "queued");
        e.wait_for_code("REVOKED").await;

        let incidents = e.incidents().await;
        assert_eq!(incidents.len(), 1);
        let found = &incidents[0]["found"];
        assert_eq!(incidents[0]["key_id"], e.key_id.as_str());
        assert_eq!(incidents[0]["action"], "revoked");
        assert_eq!(found["source_kind"], "github_push");
        assert_eq!(found["repository"], "Codertocat/Hello-World");
        assert_eq!(found["commit"], C1);
        assert_eq!(found["path"], "config/prod.env");
        assert_eq!(found["line"], 3);
        assert_eq!(
            found["url"],
            format!("https://github.com/Codertocat/Hello-World/blob/{C1}/config/prod.env#L3")
        );
        let alert = e.wait_for_alert().await;
        assert!(alert.contains(&e.key_id), "{alert}");
        assert!(!alert.contains(&e.secret), "the alert carries the plaintext");

        let (status, sources) = e.s.admin("GET", "/v1/sources", None).await;
        assert_eq!(status, 200, "{sources}");
        let webhook = sources["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "github-webhook")
            .unwrap()
            .clone();
        assert_eq!(
            (webhook["events"].as_i64(), webhook["errors"].as_i64()),
            (Some(1), Some(0)),
            "{webhook}"
        );
        assert!(
            webhook["lag_ms"].as_i64().is_some() && webhook["last_event_at"].is_string(),
            "{webhook}"
        );
        let metrics =
            e.s.http
                .get(format!("{}/metrics", e.s.base))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
        assert!(
            metrics.contains("keyward_source_events_total{source=\"github-webhook\",kind=\"github-webhook\"} 1"),
            "{metrics}"
        );
        assert!(
            metrics.contains("keyward_source_lag_seconds{source=\"github-webhook\""),
            "{metrics}"
        );
        let value = |name: &str| -> f64 {
            let line = metrics
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("{name} missing: {metrics}"));
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        // Counters are per process and tests share one: at least this test's.
        assert!(value("keyward_revocations_total") >= 1.0);
        assert!(value("keyward_findings_total") >= 1.0);
        assert!(value("keyward_scanned_bytes_total") > 0.0);
        assert!(value("keyward_alerts_delivered_total") >= 1.0);
        assert!(value("keyward_verify_seconds_count{code=\"REVOKED\"}") >= 1.0);
        assert!(value("keyward_verify_seconds_bucket{code=\"VALID\",le=\"+Inf\"}") >= 1.0);
    }
);

both_backends_with!(a_push_that_only_removes_a_key_is_not_a_leak, env, |e: Env| async move {
    let removal = format!(
        "@@ -1,3 +1,2 @@\n DATABASE_URL=postgres://db/app\n LOG_LEVEL=info\n-PAYMENTS_API_KEY={}",
        e.secret
    );
    e.github.add_commit(C1, vec![FileChange::new("config/prod.env", &removal)]);
    e.github.add_range(BEFORE, C1, &[C1]);
    let (status, _) = e.push("removal-1", push_payload(BEFORE, C1, &[C1], false, false)).await;
    assert_eq!(status, 202);
    let jobs = e.wait_for_jobs("push.github", 1).await;
    assert_eq!(jobs[0].1, "done");
    assert_eq!(e.github.hits("/compare/"), 1);
    assert_eq!(e.code().await, "VALID");
    assert!(e.incidents().await.is_empty());
});

both_backends_with!(bad_signatures_are_refused_and_nothing_is_recorded, env, |e: Env| async move {
    let body = push_payload(BEFORE, C1, &[C1], false, false);
    let (status, error) = e.deliver("d-1", "push", &body, Some(sign(b"another body"))).await;
    assert_eq!((status, error["error"]["code"].as_str()), (401, Some("bad_signature")));
    let (status, _) = e.deliver("d-2", "push", &body, None).await;
    assert_eq!(status, 401);
    let (status, _) = e.deliver("d-3", "push", &body, Some("sha256=".to_string() + &"0".repeat(64))).await;
    assert_eq!(status, 401);
    let tampered = [body.clone(), b" ".to_vec()].concat();
    let (status, _) = e.deliver("d-4", "push", &tampered, Some(sign(&body))).await;
    assert_eq!(status, 401);
    assert!(e.s.service.store().jobs_of_kind("push.github").await.unwrap().is_empty());
    assert_eq!(e.github.requests().len(), 0);
});

both_backends_with!(a_redelivery_is_processed_once, env, |e: Env| async move {
    e.github.add_commit(C1, vec![FileChange::new("a.env", &e.leak_patch())]);
    e.github.add_range(BEFORE, C1, &[C1]);
    let body = push_payload(BEFORE, C1, &[C1], false, false);
    let (first, _) = e.push("same-delivery", body.clone()).await;
    let (second, answer) = e.push("same-delivery", body).await;
    assert_eq!((first, second), (202, 200));
    assert_eq!(answer["status"], "duplicate");
    e.wait_for_jobs("push.github", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(e.s.service.store().jobs_of_kind("push.github").await.unwrap().len(), 1);
    assert_eq!(e.github.hits("/compare/"), 1);
    assert_eq!(e.incidents().await[0]["seen_count"], 1);
});

both_backends_with!(oversized_malformed_and_other_events, env, |e: Env| async move {
    let status = common::post_declaring_length(
        &e.s.base,
        "/webhooks/github",
        &[
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", "big"),
            ("X-Hub-Signature-256", "sha256=00"),
        ],
        25 * 1024 * 1024,
    );
    assert_eq!(status, 413);
    let (status, _) = e.deliver("m-1", "push", b"{not json", Some(sign(b"{not json"))).await;
    assert_eq!(status, 400);
    let (status, _) = e.deliver("m-2", "push", b"{\"ref\": 1}", Some(sign(b"{\"ref\": 1}"))).await;
    assert_eq!(status, 422);
    let (status, pong) = e
        .deliver(
            "p-1",
            "ping",
            b"{\"zen\": \"Design for failure.\"}",
            Some(sign(b"{\"zen\": \"Design for failure.\"}")),
        )
        .await;
    assert_eq!((status, pong["status"].as_str()), (200, Some("pong")));
    let (status, ignored) = e.deliver("i-1", "star", b"{}", Some(sign(b"{}"))).await;
    assert_eq!((status, ignored["status"].as_str()), (202, Some("ignored")));
    assert!(e.s.service.store().jobs_of_kind("push.github").await.unwrap().is_empty());
});

both_backends_with!(new_branches_and_forced_pushes_are_read_commit_by_commit, env, |e: Env| async move {
    e.github
        .add_commit(C1, vec![FileChange::new("README.md", "@@ -0,0 +1 @@\n+# Hello")]);
    e.github.add_commit(
        C2,
        vec![FileChange::new(
            "deploy/values.yaml",
            &format!("@@ -0,0 +1,2 @@\n+image: app\n+apiKey: {}", e.secret),
        )],
    );
    let zero = "0".repeat(40);
    let (status, _) = e.push("new-branch", push_payload(&zero, C2, &[C1, C2], true, false)).await;
    assert_eq!(status, 202);
    e.wait_for_code("REVOKED").await;
    assert_eq!(e.github.hits("/compare/"), 0);
    assert_eq!(
        (e.github.hits(&format!("/commits/{C1}")), e.github.hits(&format!("/commits/{C2}"))),
        (1, 1)
    );
    let incident = &e.incidents().await[0];
    assert_eq!(
        (incident["found"]["commit"].as_str(), incident["found"]["line"].as_i64()),
        (Some(C2), Some(2))
    );

    // A forced push whose `before` is gone: read by commit too.
    let (_, second) = e.s.create_key(json!({"name": "second_key", "scopes": ["analytics:read"]})).await;
    e.github
        .add_commit(C3, vec![FileChange::new("x.env", &format!("@@ -0,0 +1 @@\n+K={second}"))]);
    let (status, _) = e.push("forced", push_payload(BEFORE, C3, &[C3], false, true)).await;
    assert_eq!(status, 202);
    let started = Instant::now();
    while e.s.code(&second, None, None).await != "REVOKED" {
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(e.github.hits("/compare/"), 0);
});

both_backends_with!(
    a_compare_over_several_commits_names_the_one_that_added_the_key,
    env,
    |e: Env| async move {
        e.github.add_commit(C1, vec![FileChange::new("a.txt", "@@ -1 +1,2 @@\n a\n+b")]);
        e.github
            .add_commit(C2, vec![FileChange::new("b.env", &format!("@@ -0,0 +1 @@\n+TOKEN={}", e.secret))]);
        e.github.add_commit(C3, vec![FileChange::new("c.txt", "@@ -0,0 +1 @@\n+c")]);
        e.github.add_range(BEFORE, C3, &[C1, C2, C3]);
        let (status, _) = e.push("multi", push_payload(BEFORE, C3, &[C1, C2, C3], false, false)).await;
        assert_eq!(status, 202);
        e.wait_for_code("REVOKED").await;
        assert_eq!(e.incidents().await[0]["found"]["commit"], C2);
    }
);

both_backends_with!(a_large_diff_without_a_patch_is_read_whole, env, |e: Env| async move {
    e.github.add_commit(C1, vec![FileChange::new("data/fixtures large.json", "")]);
    e.github.add_range(BEFORE, C1, &[C1]);
    let whole = format!("{{\n  \"rows\": [],\n  \"api_key\": \"{}\"\n}}\n", e.secret);
    e.github
        .state
        .lock()
        .unwrap()
        .raw
        .insert(format!("{C1}:data/fixtures large.json"), whole);
    let (status, _) = e.push("large", push_payload(BEFORE, C1, &[C1], false, false)).await;
    assert_eq!(status, 202);
    e.wait_for_code("REVOKED").await;
    assert_eq!(e.github.hits("/contents/data/fixtures large.json?ref="), 1);
    assert_eq!(e.incidents().await[0]["found"]["line"], 3);
});

both_backends_with!(a_code_host_that_is_down_is_retried_not_lost, env, |e: Env| async move {
    // The compare answers 404 until the range exists, then the commit is
    // read; before that the job waits with backoff instead of vanishing.
    let (status, _) = e.push("retry", push_payload(BEFORE, C1, &[C1], false, false)).await;
    assert_eq!(status, 202);
    let started = Instant::now();
    while e.github.hits(&format!("/commits/{C1}")) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the worker never fell back to the commit"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let jobs = e.s.service.store().jobs_of_kind("push.github").await.unwrap();
    assert!(jobs.iter().all(|(_, state, _)| state != "done"), "{jobs:?}");
    // Once the host can answer, the retry (after a 2 s backoff) finds the key.
    e.github.add_commit(C1, vec![FileChange::new("late.env", &e.leak_patch())]);
    e.wait_for_code("REVOKED").await;
    let jobs = e.wait_for_jobs("push.github", 1).await;
    assert_eq!((jobs[0].1.as_str(), jobs[0].2), ("done", 2));
});

both_backends_with!(gitlab_push_hook_revokes_a_pushed_key, env, |e: Env| async move {
    let hook: Value = serde_json::from_str(include_str!("../fixtures/gitlab/push-hook.json")).unwrap();
    let (before, after) = (
        hook["before"].as_str().unwrap().to_string(),
        hook["after"].as_str().unwrap().to_string(),
    );
    let first = hook["commits"][0]["id"].as_str().unwrap().to_string();
    e.gitlab
        .add_commit(&first, vec![FileChange::new("CHANGELOG", "@@ -1 +1,2 @@\n v1\n+v2")]);
    e.gitlab.add_commit(
        &after,
        vec![FileChange::new(
            "config/secrets.yml",
            &format!("@@ -3,1 +3,2 @@\n prod:\n+  api_key: {}", e.secret),
        )],
    );
    e.gitlab.add_range(&before, &after, &[&first, &after]);
    let body = serde_json::to_vec(&hook).unwrap();
    let send = |token: &'static str, uuid: &'static str| {
        e.s.http
            .post(format!("{}/webhooks/gitlab", e.s.base))
            .header("x-gitlab-event", "Push Hook")
            .header("x-gitlab-token", token)
            .header("x-gitlab-event-uuid", uuid)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
    };
    assert_eq!(send("wrong-token", "u-0").await.unwrap().status().as_u16(), 401);
    assert_eq!(send(GITLAB_TOKEN, "u-1").await.unwrap().status().as_u16(), 202);
    assert_eq!(send(GITLAB_TOKEN, "u-1").await.unwrap().status().as_u16(), 200);
    e.wait_for_code("REVOKED").await;
    let found = e.incidents().await[0]["found"].clone();
    assert_eq!(found["source_kind"], "gitlab_push");
    assert_eq!(found["repository"], "mike/diaspora");
    assert_eq!(
        (found["commit"].as_str(), found["path"].as_str(), found["line"].as_i64()),
        (Some(after.as_str()), Some("config/secrets.yml"), Some(4))
    );
    assert_eq!(
        found["url"],
        format!("http://example.com/mike/diaspora/-/blob/{after}/config/secrets.yml#L4")
    );
    assert_eq!(e.gitlab.hits("/repository/compare"), 1);
});

async fn feed_poller(e: &Env, min_interval: Duration) -> FeedPoller {
    let api = GitHubApi::new(&e.github.url, None).unwrap();
    let options = FeedOptions {
        min_interval,
        ..FeedOptions::new(&[], &[], true)
    };
    FeedPoller::new(api, e.s.responder.clone(), engine(), options)
}

both_backends_with!(
    feed_follows_push_events_honours_etag_and_resumes_after_restart,
    env,
    |e: Env| async move {
        e.github.add_commit(C1, vec![FileChange::new("public.env", &e.leak_patch())]);
        e.github.state.lock().unwrap().events = vec![
            json!({"id": "40000000001", "type": "WatchEvent", "repo": {"id": 1, "name": "a/b", "url": ""}, "payload": {"action": "started"}, "created_at": "2026-11-24T03:00:00Z"}),
            hosts::push_event(40000000002, "octo/public", BEFORE, C1, &[C1]),
        ];
        let poller = feed_poller(&e, Duration::from_millis(10)).await;
        let wait = poller.poll_once().await;
        assert_eq!(wait, Duration::from_secs(60), "X-Poll-Interval is the wait");
        assert_eq!(e.code().await, "REVOKED");
        let found = e.incidents().await[0]["found"].clone();
        assert_eq!(
            (found["source_kind"].as_str(), found["repository"].as_str()),
            (Some("github-events"), Some("octo/public"))
        );
        assert_eq!(found["url"], format!("https://github.com/octo/public/blob/{C1}/public.env#L3"));

        // The next poll sends the ETag and gets 304: nothing is read again.
        poller.poll_once().await;
        let requests = e.github.requests();
        let events: Vec<_> = requests.iter().filter(|(_, p, _)| p == "/events").collect();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].2.as_deref(), Some("W/\"a18c3bded88eb5dbb5c849a489412bf3\""));
        assert_eq!(e.github.hits(&format!("/commits/{C1}")), 1);

        // A new poller (a restart) on the same store, against a feed that
        // ignores ETags and lists the old event beside a new one.
        let (_, second) = e.s.create_key(json!({"name": "second_key", "scopes": ["analytics:read"]})).await;
        e.github
            .add_commit(C2, vec![FileChange::new("more.env", &format!("@@ -0,0 +1 @@\n+T={second}"))]);
        {
            let mut state = e.github.state.lock().unwrap();
            state.honour_etag = false;
            state.events.push(hosts::push_event(40000000003, "octo/public", C1, C2, &[C2]));
        }
        let restarted = feed_poller(&e, Duration::from_millis(10)).await;
        restarted.poll_once().await;
        assert_eq!(e.s.code(&second, None, None).await, "REVOKED");
        assert_eq!(e.github.hits(&format!("/commits/{C1}")), 1, "an old event was scanned again");
        assert_eq!(e.github.hits(&format!("/commits/{C2}")), 1);
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_waits_the_interval_the_server_asks_for() {
    let e = env(common::Backend::Sqlite).await.unwrap();
    e.github.state.lock().unwrap().poll_interval = 1;
    let poller = feed_poller(&e, Duration::from_millis(50)).await;
    let task = tokio::spawn(async move { poller.run().await });
    tokio::time::sleep(Duration::from_millis(2_600)).await;
    task.abort();
    let times: Vec<Instant> = e.github.requests().iter().filter(|(_, p, _)| p == "/events").map(|r| r.0).collect();
    assert!(
        (2..=3).contains(&times.len()),
        "{} polls in 2.6 s with X-Poll-Interval: 1",
        times.len()
    );
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(990),
            "polled after {:?}",
            pair[1] - pair[0]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_file_saved_with_a_key_is_caught_within_two_seconds() {
    let e = env(common::Backend::Sqlite).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "nothing here\n").unwrap();
    let _watch = keyward::sources::watch::start(
        &[dir.path().to_path_buf()],
        engine(),
        e.s.responder.clone(),
        tokio::runtime::Handle::current(),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let saved = Instant::now();
    std::fs::write(dir.path().join(".env"), format!("# local\nAPI_KEY={}\n", e.secret)).unwrap();
    let elapsed = e.wait_for_code("REVOKED").await;
    assert!(saved.elapsed() < Duration::from_secs(2), "detected after {elapsed:?}");
    let found = e.incidents().await[0]["found"].clone();
    assert_eq!((found["source_kind"].as_str(), found["line"].as_i64()), (Some("watch"), Some(2)));
    assert!(found["path"].as_str().unwrap().ends_with("/.env"));

    // Renamed, then deleted: no errors, and the status keeps counting.
    std::fs::rename(dir.path().join(".env"), dir.path().join("moved.env")).unwrap();
    std::fs::remove_file(dir.path().join("moved.env")).unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let statuses = e.s.service.store().source_statuses().await.unwrap();
    let watch = statuses.iter().find(|s| s.name == "watch").unwrap();
    assert!(watch.events >= 2 && watch.errors == 0, "{watch:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_scans_read_only_new_commits() {
    use keyward::sources::schedule::{ScheduledRepo, Scheduler};
    let e = env(common::Backend::Sqlite).await.unwrap();
    let repo = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(repo.path())
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["config", "user.email", "ci@example.com"]);
    git(&["config", "user.name", "CI"]);
    std::fs::write(repo.path().join("app.env"), format!("KEY={}\n", e.secret)).unwrap();
    git(&["add", "."]);
    git(&["commit", "-qm", "leak"]);
    std::fs::write(repo.path().join("app.env"), "KEY=\n").unwrap();
    git(&["commit", "-qam", "remove it"]);

    let scheduled = ScheduledRepo {
        repo: repo.path().display().to_string(),
        every: Duration::from_secs(3600),
    };
    let mirrors = tempfile::tempdir().unwrap();
    let scheduler = Scheduler::new(
        vec![scheduled.clone()],
        engine(),
        e.s.responder.clone(),
        mirrors.path().to_path_buf(),
    );
    assert_eq!(scheduler.scan_once(&scheduled).await.unwrap(), 1);
    assert_eq!(e.code().await, "REVOKED");
    assert_eq!(e.incidents().await[0]["found"]["path"], "app.env");

    // Nothing new: nothing reported. A new commit: only its lines are read.
    assert_eq!(scheduler.scan_once(&scheduled).await.unwrap(), 0);
    let (_, second) = e.s.create_key(json!({"name": "second_key", "scopes": ["analytics:read"]})).await;
    std::fs::write(repo.path().join("other.env"), format!("# new\nK={second}\n")).unwrap();
    git(&["add", "."]);
    git(&["commit", "-qm", "another"]);
    assert_eq!(scheduler.scan_once(&scheduled).await.unwrap(), 1);
    assert_eq!(e.s.code(&second, None, None).await, "REVOKED");

    // A clone URL is mirrored under the data directory and fetched.
    let by_url = ScheduledRepo {
        repo: format!("file://{}", repo.path().display()),
        every: Duration::from_secs(3600),
    };
    assert_eq!(scheduler.scan_once(&by_url).await.unwrap(), 2);
    assert_eq!(std::fs::read_dir(mirrors.path()).unwrap().count(), 1);
    let statuses = e.s.service.store().source_statuses().await.unwrap();
    let local = statuses.iter().find(|s| s.name == scheduled.source_name()).unwrap();
    assert_eq!((local.events, local.errors), (3, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_app_reads_pushes_with_an_installation_token() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("app.pem");
    let made = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
        .arg(&key)
        .output()
        .expect("openssl makes the App's test key");
    assert!(made.status.success());
    let pem = std::fs::read(&key).unwrap();
    let e = env_reading_github_with(common::Backend::Sqlite, |url| GitHubApi::app(url, 123456, &pem).unwrap())
        .await
        .unwrap();
    e.github.add_commit(C1, vec![FileChange::new("app.env", &e.leak_patch())]);
    e.github.add_range(BEFORE, C1, &[C1]);
    let mut payload: Value = serde_json::from_slice(&push_payload(BEFORE, C1, &[C1], false, false)).unwrap();
    payload["installation"]["id"] = json!(42);
    let (status, _) = e.push("app-delivery", serde_json::to_vec(&payload).unwrap()).await;
    assert_eq!(status, 202);
    e.wait_for_code("REVOKED").await;
    let auth = e.github.state.lock().unwrap().authorizations.clone();
    let minted = auth
        .iter()
        .find(|(p, _)| p == "/app/installations/42/access_tokens")
        .expect("an installation token was minted");
    assert!(
        minted.1.starts_with("Bearer ") && minted.1.matches('.').count() == 2,
        "the App authenticates with a JWT: {}",
        minted.1
    );
    let read = auth.iter().find(|(p, _)| p.contains("/compare/")).unwrap();
    assert!(
        read.1.ends_with("ghs_installation42token"),
        "the push was read with the installation token: {}",
        read.1
    );
}

/// Watches `dir` for the test's lifetime.
fn watch(e: &Env, dir: &std::path::Path) -> keyward::sources::watch::Watch {
    keyward::sources::watch::start(
        &[dir.to_path_buf()],
        engine(),
        e.s.responder.clone(),
        tokio::runtime::Handle::current(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_folder_never_follows_a_symlink_out() {
    let e = env(common::Backend::Sqlite).await.unwrap();
    let outside = tempfile::tempdir().unwrap();
    let secret_file = outside.path().join("credentials.env");
    std::fs::write(&secret_file, format!("KEY={}\n", e.secret)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _watch = watch(&e, dir.path());
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A link to the file, a chain of links, a linked directory with a file
    // saved through it, and a link swapped in for a watched file.
    std::os::unix::fs::symlink(&secret_file, dir.path().join("direct.env")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("direct.env"), dir.path().join("chain.env")).unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("linked-dir")).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::os::unix::fs::symlink(&secret_file, dir.path().join("sub/deep.env")).unwrap();
    std::fs::write(dir.path().join("swap.env"), "nothing\n").unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    std::fs::remove_file(dir.path().join("swap.env")).unwrap();
    std::os::unix::fs::symlink(&secret_file, dir.path().join("swap.env")).unwrap();
    std::fs::write(outside.path().join("credentials.env"), format!("KEY={}\n# touched\n", e.secret)).unwrap();

    // A real file with another key shows the watcher did see the folder.
    let (_, second) = e.s.create_key(json!({"name": "second_key", "scopes": ["analytics:read"]})).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    std::fs::write(dir.path().join("real.env"), format!("K={second}\n")).unwrap();
    let started = Instant::now();
    while e.s.code(&second, None, None).await != "REVOKED" {
        assert!(started.elapsed() < Duration::from_secs(10), "the real file was never scanned");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(e.code().await, "VALID", "a key outside the watched folder was revoked");
    let incidents = e.incidents().await;
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert!(incidents[0]["found"]["path"].as_str().unwrap().ends_with("/real.env"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_sparse_file_in_a_watched_folder_does_not_delay_a_leak() {
    let e = env(common::Backend::Sqlite).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _watch = watch(&e, dir.path());
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Text first, so it is not skipped as binary, then a 12 GiB hole.
    let mut sparse = std::fs::File::create(dir.path().join("huge.log")).unwrap();
    use std::io::Write;
    sparse.write_all(&b"a log line\n".repeat(1000)).unwrap();
    sparse.set_len(12 << 30).unwrap();
    drop(sparse);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let saved = Instant::now();
    std::fs::write(dir.path().join("leak.env"), format!("API_KEY={}\n", e.secret)).unwrap();
    e.wait_for_code("REVOKED").await;
    assert!(saved.elapsed() < Duration::from_secs(3), "detected after {:?}", saved.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_repository_is_exactly_the_one_configured() {
    use keyward::sources::schedule::{ScheduledRepo, Scheduler};
    let e = env(common::Backend::Sqlite).await.unwrap();
    let outer = tempfile::tempdir().unwrap();
    let git = |dir: &std::path::Path, args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "CI")
            .env("GIT_AUTHOR_EMAIL", "ci@example.com")
            .env("GIT_COMMITTER_NAME", "CI")
            .env("GIT_COMMITTER_EMAIL", "ci@example.com")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    // The enclosing repository holds a key; the configured one lost its .git.
    git(outer.path(), &["init", "-q", "-b", "main"]);
    std::fs::write(outer.path().join("app.env"), format!("KEY={}\n", e.secret)).unwrap();
    let inner = outer.path().join("services/billing");
    std::fs::create_dir_all(&inner).unwrap();
    git(&inner, &["init", "-q", "-b", "main"]);
    std::fs::write(inner.join("README"), "billing\n").unwrap();
    git(&inner, &["add", "."]);
    git(&inner, &["commit", "-qm", "billing"]);
    std::fs::remove_dir_all(inner.join(".git")).unwrap();
    git(outer.path(), &["add", "."]);
    git(outer.path(), &["commit", "-qm", "everything"]);

    let mirrors = tempfile::tempdir().unwrap();
    let scheduled = ScheduledRepo {
        repo: inner.display().to_string(),
        every: Duration::from_secs(3600),
    };
    // A URL that would be an option if git read it as one.
    let option_like = ScheduledRepo {
        repo: "--upload-pack=touch /tmp/keyward-pwned://host/repo".into(),
        every: Duration::from_secs(3600),
    };
    let scheduler = Scheduler::new(
        vec![scheduled.clone(), option_like.clone()],
        engine(),
        e.s.responder.clone(),
        mirrors.path().to_path_buf(),
    );
    let failed = scheduler.scan_once(&scheduled).await;
    assert!(failed.is_err(), "{failed:?}");
    assert!(failed.unwrap_err().to_string().contains("not a git repository"));
    assert_eq!(e.code().await, "VALID", "the enclosing repository was scanned");
    let statuses = e.s.service.store().source_statuses().await.unwrap();
    let status = statuses.iter().find(|s| s.name == scheduled.source_name()).unwrap();
    assert_eq!((status.events, status.errors, status.last_ok_at), (1, 1, None), "{status:?}");

    let refused = scheduler.scan_once(&option_like).await.unwrap_err().to_string();
    // git read it as a repository (exit 128), not as an option (129).
    assert!(refused.contains("exit 128"), "{refused}");
}
