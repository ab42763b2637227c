//! The third-party loop as a deployment runs it: the real `keyward serve`,
//! a signed GitHub push webhook whose diff adds a GitHub, a Slack and a
//! GitLab token, and fake GitHub, GitLab and Slack APIs on loopback that
//! both serve the push and receive the revocations. Then the same push
//! under the report policy, a kill -9 between the webhook's 202 and the
//! issuer call, and the command-line entries: `scan --report`, `ingest`
//! and `revoke -`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::hosts::{self, FakeHost, FileChange};
use common::issuers::{github_token, Behaviour, FakeIssuers};
use common::pushes::{push_payload, sign, BEFORE, C1, GITHUB_SECRET};
use serde_json::Value;

const SLACK: &str = "xoxb-502958134712-6831947205163-Qm7tXrB2pLk9VnZ4cHs8JdWe";
const GITLAB: &str = "glpat-Zq3Lm8Rt2Vx7Nc4Kb9Hw";

struct Fakes {
    github: FakeHost,
    gitlab: FakeHost,
    slack: FakeIssuers,
    slack_url: String,
    tokens: Vec<String>,
}

/// The code hosts and Slack, and a commit adding three tokens.
async fn fakes(seed: u64) -> Fakes {
    let github = hosts::github().await;
    let gitlab = hosts::gitlab().await;
    let (slack, slack_url) = FakeIssuers::start().await;
    let tokens = vec![github_token(seed), SLACK.to_string(), GITLAB.to_string()];
    let patch = format!(
        "@@ -1,1 +1,4 @@\n LOG_LEVEL=info\n+GITHUB_TOKEN={}\n+SLACK_BOT_TOKEN={}\n+GITLAB_TOKEN={}",
        tokens[0], tokens[1], tokens[2]
    );
    github.add_commit(C1, vec![FileChange::new("deploy/.env", &patch)]);
    github.add_range(BEFORE, C1, &[C1]);
    Fakes {
        github,
        gitlab,
        slack,
        slack_url: format!("{slack_url}/api"),
        tokens,
    }
}

struct Running {
    child: Child,
    url: String,
    admin: String,
}

fn serve(data: &Path, envs: &[(&str, String)], first_run: bool) -> Running {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyward"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir", data.to_str().unwrap()])
        .env_remove("DATABASE_URL")
        .env_remove("KEYWARD_PEPPER")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(data.with_extension("log"))
                .unwrap(),
        );
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut url, mut admin) = (String::new(), String::new());
    while url.is_empty() || (first_run && admin.is_empty()) {
        let line = lines.next().expect("serve prints its URL").unwrap();
        if let Some(u) = line.strip_prefix("keyward listening on ") {
            url = u.to_string();
        } else if let Some(k) = line.strip_prefix("admin key (shown once, store it now): ") {
            admin = k.to_string();
        }
    }
    Running { child, url, admin }
}

fn stop(mut running: Running) {
    Command::new("kill")
        .args(["-TERM", &running.child.id().to_string()])
        .status()
        .unwrap();
    running.child.wait().unwrap();
}

fn envs(f: &Fakes, policy: &str) -> Vec<(&'static str, String)> {
    vec![
        ("KEYWARD_GITHUB_API_URL", f.github.url.clone()),
        ("KEYWARD_GITHUB_WEBHOOK_SECRET", GITHUB_SECRET.to_string()),
        ("KEYWARD_GITLAB_API_URL", f.gitlab.url.clone()),
        ("KEYWARD_SLACK_API_URL", f.slack_url.clone()),
        ("KEYWARD_THIRD_PARTY_POLICY", policy.to_string()),
        ("KEYWARD_JOB_LEASE_SECONDS", "1".to_string()),
    ]
}

fn push(url: &str, delivery: &str) -> u16 {
    let body = push_payload(BEFORE, C1, &[C1], false, false);
    reqwest::blocking::Client::new()
        .post(format!("{url}/webhooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", sign(&body))
        .body(body)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

fn incidents(url: &str, admin: &str) -> Vec<Value> {
    let list: Value = reqwest::blocking::Client::new()
        .get(format!("{url}/v1/incidents?kind=third_party"))
        .bearer_auth(admin)
        .send()
        .unwrap()
        .json()
        .unwrap();
    list["incidents"].as_array().unwrap().clone()
}

/// The revocation calls the three fakes received, by issuer.
fn revoked(f: &Fakes) -> [Vec<String>; 3] {
    let tokens = |fake: &FakeIssuers, issuer: &str| fake.calls_to(issuer).into_iter().flat_map(|c| c.tokens).collect();
    [
        tokens(&f.github.issuers, "github"),
        tokens(&f.slack, "slack"),
        tokens(&f.gitlab.issuers, "gitlab"),
    ]
}

fn every_byte_under(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(every_byte_under(&path));
        } else {
            out.extend(std::fs::read(&path).unwrap_or_default());
        }
    }
    out
}

#[test]
fn a_push_with_three_tokens_is_revoked_at_three_issuers_and_leaves_no_plaintext() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let f = runtime.block_on(fakes(11));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let running = serve(&data, &envs(&f, "revoke"), true);
    let sent = Instant::now();
    assert_eq!(push(&running.url, "72d3162e-cc78-11e3-81ab-4c9367dc0958"), 202);
    while revoked(&f).iter().any(Vec::is_empty) {
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "not every issuer called within 5 s: {:?}",
            revoked(&f)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        revoked(&f),
        [vec![f.tokens[0].clone()], vec![f.tokens[1].clone()], vec![f.tokens[2].clone()]]
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let listed = loop {
        let listed = incidents(&running.url, &running.admin);
        if listed.len() == 3 && listed.iter().all(|i| i["revocation"]["status"] == "revoked") {
            break listed;
        }
        assert!(Instant::now() < deadline, "{listed:#?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    for incident in &listed {
        assert_eq!(incident["found"]["path"], "deploy/.env");
        assert_eq!(incident["found"]["commit"], C1);
    }
    stop(running);
    let bytes = every_byte_under(dir.path());
    for token in &f.tokens {
        assert!(
            memchr::memmem::find(&bytes, token.as_bytes()).is_none(),
            "plaintext at rest or in the log"
        );
    }
}

#[test]
fn under_the_report_policy_the_same_push_calls_no_issuer() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let f = runtime.block_on(fakes(12));
    let dir = tempfile::tempdir().unwrap();
    let running = serve(&dir.path().join("data"), &envs(&f, "report"), true);
    assert_eq!(push(&running.url, "a1b2c3d4-cc78-11e3-81ab-4c9367dc0958"), 202);
    let deadline = Instant::now() + Duration::from_secs(10);
    let listed = loop {
        let listed = incidents(&running.url, &running.admin);
        if listed.len() == 3 {
            break listed;
        }
        assert!(Instant::now() < deadline, "{listed:#?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    for incident in &listed {
        assert_eq!(incident["revocation"]["status"], "not_supported", "{incident}");
        assert!(incident["revocation"]["reason"].as_str().unwrap().contains("policy"));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert!(revoked(&f).iter().all(Vec::is_empty), "{:?}", revoked(&f));
    stop(running);
}

#[test]
fn a_kill_9_between_the_202_and_the_issuer_call_still_revokes_exactly_once() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let f = runtime.block_on(fakes(13));
    f.github.state.lock().unwrap().compare_delay_ms = 3_000;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut first = serve(&data, &envs(&f, "revoke"), true);
    let admin = first.admin.clone();
    assert_eq!(push(&first.url, "dead-beef-cc78-11e3-81ab-4c9367dc0958"), 202);
    std::thread::sleep(Duration::from_millis(800));
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    assert!(revoked(&f).iter().all(Vec::is_empty), "killed before any issuer call");
    f.github.state.lock().unwrap().compare_delay_ms = 0;
    let second = serve(&data, &envs(&f, "revoke"), false);
    let restarted = Instant::now();
    while revoked(&f).iter().any(Vec::is_empty) {
        assert!(restarted.elapsed() < Duration::from_secs(15), "{:?}", revoked(&f));
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        revoked(&f),
        [vec![f.tokens[0].clone()], vec![f.tokens[1].clone()], vec![f.tokens[2].clone()]],
        "exactly once each"
    );
    let listed = incidents(&second.url, &admin);
    assert_eq!(listed.len(), 3);
    stop(second);
}

/// A server (in this process) that revokes at `fake`, with the binary's
/// view of it: its URL and an admin key.
async fn revoking_server(fake_base: &str) -> common::Server {
    let mut endpoints = keyward::response::issuers::Endpoints::public(fake_base, &format!("{fake_base}/api/v4"));
    endpoints.slack_api = format!("{fake_base}/api");
    let setup = common::Setup {
        third_party: Some(keyward::response::third_party::ThirdPartySettings {
            policy: keyward::response::third_party::Policy::Revoke,
            overrides: Default::default(),
            endpoints,
        }),
        ..common::Setup::default()
    };
    common::Server::start_with(common::Backend::Sqlite, setup).await.unwrap()
}

fn binary(args: &[&str], envs: &[(&str, &str)], stdin: &str) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyward"));
    cmd.args(args)
        .env_remove("KEYWARD_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_report_sends_each_finding_as_a_sighting() {
    let (fake, base) = FakeIssuers::start().await;
    let server = revoking_server(&base).await;
    let tree = tempfile::tempdir().unwrap();
    let token = github_token(21);
    std::fs::write(tree.path().join("ci.env"), format!("A=1\nGITHUB_TOKEN={token}\nSLACK={SLACK}\n")).unwrap();
    let (base_url, admin) = (server.base.clone(), server.admin.clone());
    let path = tree.path().to_str().unwrap().to_string();
    let out = tokio::task::spawn_blocking(move || {
        binary(
            &["scan", &path, "--no-config", "--report", &base_url],
            &[("KEYWARD_TOKEN", &admin)],
            "",
        )
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("reported 2 sightings: 2 of other issuers (2 pending)"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains(&token));
    let start = Instant::now();
    while fake.tokens().len() < 2 {
        assert!(start.elapsed() < Duration::from_secs(10), "{:?}", fake.calls());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, list) = server.admin("GET", "/v1/incidents?kind=third_party", None).await;
    let list = list["incidents"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    assert!(list
        .iter()
        .all(|i| i["found"]["source_kind"] == "keyward-scan" && i["found"]["path"].as_str().unwrap().ends_with("ci.env")));
    let missing = binary(
        &[
            "scan",
            tree.path().to_str().unwrap(),
            "--no-config",
            "--report",
            "http://127.0.0.1:9",
        ],
        &[],
        "",
    );
    assert_eq!(missing.status.code(), Some(2), "--report without a token: {}", text(&missing));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_reads_each_tools_real_report() {
    let (fake, base) = FakeIssuers::start().await;
    let server = revoking_server(&base).await;
    let reports = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/reports");
    let planted: Value = serde_json::from_str(&std::fs::read_to_string(reports.join("tokens.json")).unwrap()).unwrap();
    let token_of = |kind: &str| {
        planted.as_array().unwrap().iter().find(|t| t["kind"] == kind).unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for (format, file) in [
        ("gitleaks", "gitleaks.json"),
        ("betterleaks", "betterleaks.json"),
        ("kingfisher", "kingfisher.jsonl"),
        ("trufflehog", "trufflehog-git.jsonl"),
    ] {
        let (url, admin) = (server.base.clone(), server.admin.clone());
        let path = reports.join(file).to_str().unwrap().to_string();
        let out = tokio::task::spawn_blocking(move || {
            binary(
                &["ingest", "--format", format, &path, "--report", &url],
                &[("KEYWARD_TOKEN", &admin)],
                "",
            )
        })
        .await
        .unwrap();
        assert_eq!(out.status.code(), Some(0), "{format}: {}", text(&out));
        assert!(text(&out).contains("reported"), "{}", text(&out));
    }
    let start = Instant::now();
    let wanted = [token_of("github-pat"), token_of("slack-bot"), token_of("gitlab-pat")];
    while !wanted.iter().all(|t| fake.tokens().contains(t)) {
        assert!(start.elapsed() < Duration::from_secs(10), "{:?}", fake.tokens());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Four reports of the same tokens: one incident each, one call each.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for token in &wanted {
        assert_eq!(fake.tokens().iter().filter(|t| *t == token).count(), 1, "{token} sent once");
    }
    let (_, list) = server.admin("GET", "/v1/incidents?kind=third_party", None).await;
    let list = list["incidents"].as_array().unwrap().clone();
    let github = list.iter().find(|i| i["issuer"] == "github").unwrap();
    assert!(github["places"].as_array().unwrap().len() >= 3, "{github}");

    let broken = tempfile::NamedTempFile::new().unwrap();
    let mut lines: Vec<String> = std::fs::read_to_string(reports.join("trufflehog.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    lines[1] = "{not json".into();
    std::fs::write(broken.path(), lines.join("\n")).unwrap();
    let before = fake.calls().len();
    let (url, admin) = (server.base.clone(), server.admin.clone());
    let path = broken.path().to_str().unwrap().to_string();
    let out = tokio::task::spawn_blocking(move || {
        binary(
            &["ingest", "--format", "trufflehog", &path, "--report", &url],
            &[("KEYWARD_TOKEN", &admin)],
            "",
        )
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("line 2"), "{}", text(&out));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(fake.calls().len(), before, "nothing imported from a broken report");
}

#[test]
fn revoke_from_stdin_names_each_token_and_never_echoes_it() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (fake, base) = runtime.block_on(FakeIssuers::start());
    fake.set("gitlab", Behaviour::Refuse);
    let envs = [
        ("KEYWARD_GITHUB_API_URL", base.clone()),
        ("KEYWARD_GITLAB_API_URL", format!("{base}/api/v4")),
        ("KEYWARD_SLACK_API_URL", format!("{base}/api")),
    ];
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let token = github_token(31);
    let out = binary(&["revoke", "-", "--no-config"], &envs, &format!("{token}\n{SLACK}\n"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = text(&out);
    assert!(shown.contains("github.token") && shown.contains("github  revoked"), "{shown}");
    assert!(shown.contains("slack  revoked"), "{shown}");
    assert!(!shown.contains(&token) && !shown.contains(SLACK), "{shown}");
    assert_eq!(fake.tokens(), vec![token.clone(), SLACK.to_string()]);

    let out = binary(&["revoke", "-", "--no-config"], &envs, &format!("{GITLAB}\nnot-a-token\n"));
    assert_eq!(out.status.code(), Some(1), "refused and unknown: {}", text(&out));
    assert!(text(&out).contains("refused"), "{}", text(&out));
    assert!(text(&out).contains("no known family"), "{}", text(&out));

    fake.set("slack", Behaviour::Garbage);
    let out = binary(&["revoke", "-", "--no-config"], &envs, &format!("{SLACK}\n"));
    assert_eq!(out.status.code(), Some(2), "an issuer that answers garbage: {}", text(&out));
}
