//! The OpenAPI document against the running server, as a tool reads it:
//! schemathesis (`pip install schemathesis`, which `scripts/test` does)
//! generates requests from the document, sends them to a real `keyward
//! serve` with every endpoint configured, and runs all of its checks on
//! the answers.
//!
//! Two checks are left out, each for a reason no schema can fix:
//! - `positive_data_acceptance`: some rules are not expressible in OpenAPI.
//!   An `expires_at` must lie in the future at the moment of the request, a
//!   key name is unique in its project, an alert URL must resolve outside
//!   the deployment, and a webhook URL needs a signing secret beside it.
//!   Valid-looking data breaking those rules is rightly refused (409, 422).
//! - `ensure_resource_availability`: a key reaches only its own project, by
//!   design (SECURITY.md). A project created with the deployment key is
//!   not visible to that key; it is managed with the admin key the creation
//!   returns.
//!
//! Revoke and rotate run against a server of their own: schemathesis's
//! stateful phase would otherwise revoke the very key it authenticates with.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const EXCLUDED_CHECKS: &str = "positive_data_acceptance,ensure_resource_availability";

struct Serve {
    child: Child,
    url: String,
    admin: String,
    _data: tempfile::TempDir,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(keys_url: &str) -> Serve {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env_remove("DATABASE_URL")
        .env("KEYWARD_GITHUB_WEBHOOK_SECRET", "schemathesis-github-secret")
        .env("KEYWARD_GITLAB_WEBHOOK_SECRET", "schemathesis-gitlab-token")
        .env("KEYWARD_GITHUB_PARTNER_KEYS_URL", keys_url)
        .env("KEYWARD_GITLAB_PARTNER_KEYS_URL", keys_url)
        .env("KEYWARD_RATE_WEBHOOKS_PER_IP", "100000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("keyward serve starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut url, mut admin) = (String::new(), String::new());
    while url.is_empty() || admin.is_empty() {
        let line = lines.next().expect("serve prints its URL and admin key").unwrap();
        if let Some(u) = line.strip_prefix("keyward listening on ") {
            url = u.to_string();
        } else if let Some(k) = line.strip_prefix("admin key (shown once, store it now): ") {
            admin = k.to_string();
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    Serve {
        child,
        url,
        admin,
        _data: data,
    }
}

/// schemathesis's command, or `None` when it is not installed.
fn schemathesis() -> Option<String> {
    let candidate = std::env::var("KEYWARD_SCHEMATHESIS").unwrap_or_else(|_| "st".into());
    let found = Command::new(&candidate).arg("--version").output().is_ok_and(|o| o.status.success());
    found.then_some(candidate)
}

fn run(st: &str, server: &Serve, selection: &[&str]) -> (bool, String) {
    let output = Command::new(st)
        .args(["run", &format!("{}/v1/openapi.json", server.url)])
        .args(["-H", &format!("Authorization: Bearer {}", server.admin)])
        .args(["--checks", "all", "--exclude-checks", EXCLUDED_CHECKS])
        .args(["--max-examples", "25", "--workers", "2", "--seed", "1"])
        .args(selection)
        .env("NO_COLOR", "1")
        .output()
        .expect("schemathesis runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_wrong_with_any_route() {
    let Some(st) = schemathesis() else {
        eprintln!("skipped: schemathesis is not installed (scripts/test installs it with pip)");
        return;
    };
    let signer = common::fakes::PartnerSigner::new(9, "schemathesis-key");
    let keys_url = common::fakes::keys_endpoint(&[(&signer, true)]).await;
    let main = serve(&keys_url);
    let changes = serve(&keys_url);
    let st_main = st.clone();
    let (ok, report) = tokio::task::spawn_blocking(move || {
        let outcome = run(&st_main, &main, &["--exclude-path-regex", "/(revoke|rotate)$"]);
        drop(main);
        outcome
    })
    .await
    .unwrap();
    let summary = |text: &str| text.lines().skip_while(|l| !l.contains("SUMMARY")).collect::<Vec<_>>().join("\n");
    eprintln!("schemathesis, every route but revoke and rotate:\n{}", summary(&report));
    assert!(ok, "schemathesis found problems:\n{report}");
    let (ok, report) = tokio::task::spawn_blocking(move || {
        let outcome = run(&st, &changes, &["--include-path-regex", "/(revoke|rotate)$"]);
        drop(changes);
        outcome
    })
    .await
    .unwrap();
    eprintln!("schemathesis, revoke and rotate:\n{}", summary(&report));
    assert!(ok, "schemathesis found problems:\n{report}");
}
