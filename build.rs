//! Records the git commit the binary is built from, for `keyward --version`,
//! and embeds every shipped rule file, so that a new `rules/*.toml` needs
//! no code change.

use std::process::Command;

fn main() {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown commit".into());
    println!("cargo:rustc-env=KEYWARD_GIT_COMMIT={commit}");
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={head}");
    }
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]).and_then(|r| git(&["rev-parse", "--git-path", &r])) {
        println!("cargo:rerun-if-changed={reference}");
    }
    println!("cargo:rerun-if-changed=build.rs");
    embed_rules();
}

fn embed_rules() {
    println!("cargo:rerun-if-changed=rules");
    let mut files: Vec<String> = std::fs::read_dir("rules")
        .expect("rules/ is next to Cargo.toml")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".toml"))
        .collect();
    // keyward's own rules first: on equal matches the first rule wins.
    files.sort_by_key(|name| (name != "keyward.toml", name.clone()));
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let entries: String = files
        .iter()
        .map(|name| format!("    ({name:?}, include_str!({:?})),\n", format!("{manifest}/rules/{name}")))
        .collect();
    let out = std::path::Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("builtin_rules.rs");
    std::fs::write(out, format!("&[\n{entries}]\n")).expect("OUT_DIR is writable");
}
