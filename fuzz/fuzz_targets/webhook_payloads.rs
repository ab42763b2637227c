//! Everything keyward reads out of a code host's or partner's body:
//! GitHub push events, GitLab push hooks, partner report batches, report
//! URLs, signature headers and compare-API patches. None may panic; what
//! parses must turn into a job or a place without panicking either.
#![no_main]

use std::sync::OnceLock;

use keyward::engine::{Engine, EngineOptions, RuleSet};
use keyward::response::partners::Report;
use keyward::sources::github::{self, PushEvent};
use keyward::sources::gitlab::{self, PushHook};
use keyward::sources::{patch, pushes};
use libfuzzer_sys::fuzz_target;

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new(RuleSet::builtin(), EngineOptions::default()).expect("built-in rules build"))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = serde_json::from_slice::<PushEvent>(data) {
        let job = pushes::github_job("delivery", &event, 0);
        assert!(job.dedupe_key.is_some_and(|k| k.starts_with("github:")));
    }
    if let Ok(hook) = serde_json::from_slice::<PushHook>(data) {
        pushes::gitlab_job("delivery", &hook, 0);
    }
    if let Ok(reports) = serde_json::from_slice::<Vec<Report>>(data) {
        for report in &reports {
            let place = keyward::server::place_from_url("github_partner", &report.url, &report.source);
            assert!(place.url.chars().count() <= 2000);
        }
    }
    let text = String::from_utf8_lossy(data);
    github::verify_signature(b"secret", data, &text);
    gitlab::verify_token("secret", &text);
    for line in patch::added_lines(&text) {
        assert!(line.line >= 1);
    }
    for finding in patch::scan_added(engine(), &text) {
        assert!(finding.line >= 1);
    }
});
