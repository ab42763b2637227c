//! The deployment files are checked in CI: `deploy/check.py` parses and
//! cross-checks the Kubernetes manifests and the compose file and runs
//! `systemd-analyze verify` on the unit; the example configuration must load
//! (unknown keys are refused, so it cannot drift from the code).

use std::path::Path;
use std::process::Command;

#[test]
fn kubernetes_compose_and_systemd_files_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(root.join("deploy/check.py"))
        .arg(env!("CARGO_BIN_EXE_keyward"))
        .output()
        .expect("python3 runs deploy/check.py");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("are valid"), "{text}");
}

#[test]
fn the_example_configuration_documents_settings_that_exist() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/keyward.example.toml");
    let config = keyward::config::Config::load(Some(&path)).expect("the example configuration loads");
    assert_eq!(config.prefix.as_deref(), Some("kw"));
    assert!(!config.sources.feed.enabled);
}
