//! `keyward init`, `serve`, `keys`, `projects` and `audit verify` as a
//! user runs them: the real binary, real files, real HTTP.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::{json, Value};

mod common;

fn keyward(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyward"));
    cmd.args(args).env_remove("DATABASE_URL").env_remove("KEYWARD_PEPPER");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

struct Running {
    child: Child,
    url: String,
    admin: String,
    project: String,
}

/// `keyward serve` on a free port with trace logging; stderr goes to a file.
fn serve(data: &Path, log: &Path) -> Running {
    serve_with(data, log, &[], true)
}

/// `first_run`: wait for the bootstrap lines too.
fn serve_with(data: &Path, log: &Path, envs: &[(&str, &str)], first_run: bool) -> Running {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyward"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir", data.to_str().unwrap()])
        .env("RUST_LOG", "trace")
        .env_remove("DATABASE_URL")
        .env_remove("KEYWARD_PEPPER")
        .stdout(Stdio::piped())
        .stderr(std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut url, mut admin, mut project) = (String::new(), String::new(), String::new());
    while url.is_empty() || (first_run && admin.is_empty()) {
        let line = lines.next().expect("serve prints its URL and admin key").unwrap();
        if let Some(u) = line.strip_prefix("keyward listening on ") {
            url = u.to_string();
        } else if let Some(k) = line.strip_prefix("admin key (shown once, store it now): ") {
            admin = k.to_string();
        } else if let Some(p) = line.strip_prefix("project: ") {
            project = p.to_string();
        }
    }
    Running {
        child,
        url,
        admin,
        project,
    }
}

fn stop(mut running: Running) {
    terminate(running.child.id());
    let status = running.child.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

fn terminate(pid: u32) {
    Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
}

#[test]
fn serve_never_logs_a_secret_even_at_trace() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let running = serve(&dir.path().join("data"), &log);
    let client = reqwest::blocking::Client::new();
    let created: Value = client
        .post(format!("{}/v1/projects/{}/keys", running.url, running.project))
        .bearer_auth(&running.admin)
        .json(&json!({"name": "logged", "kind": "secret", "mode": "live", "scopes": ["analytics:read"]}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let secret = created["secret"].as_str().unwrap().to_string();
    let verified: Value = client
        .post(format!("{}/v1/keys/verify", running.url))
        .json(&json!({"key": secret}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(verified["code"], "VALID");
    let id = created["key"]["id"].as_str().unwrap();
    let revoked = client
        .post(format!("{}/v1/keys/{id}/revoke", running.url))
        .bearer_auth(&running.admin)
        .send()
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let admin = running.admin.clone();
    stop(running);

    let mut logged = String::new();
    std::fs::File::open(&log).unwrap().read_to_string(&mut logged).unwrap();
    assert!(logged.lines().count() > 20, "trace logging is on: {logged}");
    for token in [&secret, &admin] {
        assert!(!logged.contains(token.as_str()), "a token is in the log");
        assert!(!logged.contains(&token[11..50]), "a token's random part is in the log");
    }
    let pepper = std::fs::metadata(dir.path().join("data/pepper")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(pepper.permissions().mode() & 0o777, 0o600);
}

#[test]
fn init_prints_credentials_once_and_refuses_a_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let first = keyward(&["init", "--data-dir", data, "--json"], &[]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let printed: Value = serde_json::from_slice(&first.stdout).unwrap();
    assert!(printed["admin_key"].as_str().unwrap().starts_with("kw_sk_live_"));
    assert!(printed["project_id"].as_str().unwrap().starts_with("proj_"));
    assert!(printed["owner"].is_string());
    let second = keyward(&["init", "--data-dir", data, "--json"], &[]);
    assert_eq!(second.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&second.stderr).contains("already initialised"));
}

#[test]
fn audit_verify_finds_a_row_edited_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    assert!(keyward(&["init", "--data-dir", data, "--json"], &[]).status.success());
    let intact = keyward(&["audit", "verify", "--data-dir", data], &[]);
    assert_eq!(intact.status.code(), Some(0), "{}", String::from_utf8_lossy(&intact.stdout));
    assert!(String::from_utf8_lossy(&intact.stdout).contains("intact"));

    let db = dir.path().join("keyward.db");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query("UPDATE audit_events SET actor = 'user:someone_else' WHERE seq = 2")
            .execute(&mut conn)
            .await
            .unwrap();
    });
    let broken = keyward(&["audit", "verify", "--data-dir", data], &[]);
    let out = String::from_utf8_lossy(&broken.stdout);
    assert_eq!(broken.status.code(), Some(1), "{out}");
    assert!(out.contains("broken at event 2"), "{out}");
}

#[test]
fn keys_and_projects_commands_talk_to_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let running = serve(&dir.path().join("data"), &dir.path().join("serve.log"));
    let env = [("KEYWARD_URL", running.url.as_str()), ("KEYWARD_TOKEN", running.admin.as_str())];
    let created = keyward(&["projects", "create", "shop", "--json"], &env);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let project: Value = serde_json::from_slice(&created.stdout).unwrap();
    let project_id = project["project"]["id"].as_str().unwrap();
    // A key reaches only its own project: the new project's own admin key
    // manages it, and the bootstrap key is turned away there.
    let refused = keyward(&["keys", "list", "--project", project_id], &env);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("404"));
    let admin = project["admin_secret"]
        .as_str()
        .expect("the creating key gets an admin key for the project");
    let env = [("KEYWARD_URL", running.url.as_str()), ("KEYWARD_TOKEN", admin)];

    let key = keyward(
        &[
            "keys",
            "create",
            "--project",
            project_id,
            "--name",
            "cli_key",
            "--scope",
            "analytics:read",
            "--json",
        ],
        &env,
    );
    assert!(key.status.success(), "{}", String::from_utf8_lossy(&key.stderr));
    let key: Value = serde_json::from_slice(&key.stdout).unwrap();
    let key_id = key["key"]["id"].as_str().unwrap();
    let secret = key["secret"].as_str().unwrap();

    let listed = keyward(&["keys", "list", "--project", project_id], &env);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.contains("cli_key") && text.contains(&format!("kw_sk_live_…{}", &secret[56..])),
        "{text}"
    );
    assert!(!text.contains(secret));
    let revoked = keyward(&["keys", "revoke", key_id], &env);
    assert!(revoked.status.success());
    assert!(String::from_utf8_lossy(&revoked.stdout).contains("revoked"));
    let missing = keyward(&["keys", "get", "key_nope"], &env);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404"));
    let listed_projects = keyward(&["projects", "list"], &env);
    assert!(String::from_utf8_lossy(&listed_projects.stdout).contains("shop"));
    stop(running);
}

/// kill -9 after the partner report got its 200 and before the alert went
/// out; after a restart the alert is delivered exactly once.
#[test]
fn alert_is_delivered_exactly_once_across_a_kill_9() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let signer = common::fakes::PartnerSigner::new(3, "crash-key");
    let keys_url = runtime.block_on(common::fakes::keys_endpoint(&[(&signer, true)]));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let hook = format!("http://127.0.0.1:{port}/hook");
    let dir = tempfile::tempdir().unwrap();
    let (data, log) = (dir.path().join("data"), dir.path().join("serve.log"));
    let envs = [
        ("KEYWARD_GITHUB_PARTNER_KEYS_URL", keys_url.as_str()),
        ("KEYWARD_JOB_LEASE_SECONDS", "1"),
        // the alert receiver is a fake on loopback
        ("KEYWARD_ALLOW_PRIVATE_TARGETS", "1"),
    ];
    let mut first = serve_with(&data, &log, &envs, true);
    let client = reqwest::blocking::Client::new();
    let settings = json!({"webhook_url": hook, "webhook_secret": "crash-test-secret-0123", "email": false});
    let put = client
        .put(format!("{}/v1/projects/{}/alert-settings", first.url, first.project))
        .bearer_auth(&first.admin)
        .json(&settings)
        .send()
        .unwrap();
    assert_eq!(put.status(), 200);
    let created: Value = client
        .post(format!("{}/v1/projects/{}/keys", first.url, first.project))
        .bearer_auth(&first.admin)
        .json(&json!({"name": "crashy", "kind": "secret", "mode": "live", "scopes": []}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let token = created["secret"].as_str().unwrap();
    let body = json!([{"token": token, "type": "keyward", "url": "https://github.com/o/r/blob/abc/x.env"}]).to_string();
    let reported = client
        .post(format!("{}/partners/github/secret-scanning", first.url))
        .header("GITHUB-PUBLIC-KEY-IDENTIFIER", &signer.key_id)
        .header("GITHUB-PUBLIC-KEY-SIGNATURE", signer.sign(body.as_bytes()))
        .body(body)
        .send()
        .unwrap();
    assert_eq!(reported.status(), 200);
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    let receiver = common::fakes::Receiver::default();
    runtime.block_on(common::fakes::Receiver::start_on(
        receiver.clone(),
        runtime.block_on(tokio::net::TcpListener::bind(("127.0.0.1", port))).unwrap(),
    ));
    let second = serve_with(&data, &log, &envs, false);
    for _ in 0..150 {
        if receiver.count() > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(receiver.count(), 1, "delivered exactly once after the restart");
    let verified: Value = client
        .post(format!("{}/v1/keys/verify", second.url))
        .json(&json!({"key": token}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(verified["code"], "REVOKED");
    stop(second);
}
