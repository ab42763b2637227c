//! The README's commands, run as a newcomer would run them: every fenced
//! `sh` block that is not marked `<!-- not run: why -->`, in order, in one
//! shell, against the binary under test. The README cannot drift from what
//! keyward does without this test going red.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const README: &str = include_str!("../README.md");

/// The line the tour uses to put a release build on PATH; the test puts the
/// binary it was built with there instead.
const BUILD_LINE: &str = "cargo build --release && export PATH=$PWD/target/release:$PATH";

/// Each `sh` block the README does not mark as not run.
fn runnable_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut lines = readme.lines();
    let mut previous = "";
    while let Some(line) = lines.next() {
        if line.trim() == "```sh" {
            let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            if !previous.trim_start().starts_with("<!-- not run:") {
                blocks.push(body.join("\n"));
            }
        }
        previous = line;
    }
    blocks
}

/// The script as run here: `/tmp/` paths moved into a private directory and
/// the build line replaced; the background server is stopped on exit.
fn script(blocks: &[String], scratch: &Path, bin_dir: &Path) -> String {
    // The build line first: the binary's own path may lie under /tmp.
    let body = blocks.join("\n").replace(BUILD_LINE, "export PATH=BIN_DIR:$PATH");
    let body = body.replace("/tmp/", &format!("{}/", scratch.display()));
    let body = body.replace("BIN_DIR", &bin_dir.display().to_string());
    format!("trap 'kill $(jobs -p) 2>/dev/null' EXIT\n{body}\n")
}

/// A repository like the reader's: a tagged commit, then a `.env` with a
/// token committed after the tag.
fn reader_repository(dir: &Path) {
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .args(["-c", "user.name=Reader", "-c", "user.email=reader@example.com"])
            .args(args)
            .current_dir(dir)
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("README"), "an app\n").unwrap();
    git(&["add", "README"]);
    git(&["commit", "-q", "-m", "first"]);
    git(&["tag", "v1.2.0"]);
    std::fs::write(dir.join(".env"), "GITHUB_TOKEN=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\n").unwrap();
    git(&["add", ".env"]);
    git(&["commit", "-q", "-m", "config"]);
}

/// stdout, stderr, and whether the deadline passed (the shell is then
/// killed, and what it printed so far is returned).
fn run_with_deadline(mut cmd: Command, deadline: Duration) -> (String, String, bool) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).unwrap();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).unwrap();
        s
    });
    let started = Instant::now();
    let mut late = false;
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > deadline {
            late = true;
            // The whole group: the shell and the server it started.
            let _ = Command::new("kill").args(["-9", "--", &format!("-{}", child.id())]).status();
            child.kill().ok();
            child.wait().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (out.join().unwrap(), err.join().unwrap(), late)
}

#[test]
fn the_blocks_marked_not_run_say_why_and_the_rest_are_found() {
    let blocks = runnable_blocks(README);
    assert!(blocks.len() >= 5, "runnable sh blocks: {}", blocks.len());
    assert!(blocks[0].contains(BUILD_LINE), "the tour starts by building keyward");
    for marker in README.lines().filter(|l| l.contains("<!-- not run")) {
        let reason = marker.trim().trim_start_matches("<!-- not run:").trim_end_matches("-->").trim();
        assert!(reason.len() > 10, "a block not run says why: {marker}");
    }
}

#[test]
fn every_command_in_the_readme_runs_and_prints_what_it_says() {
    let scratch = tempfile::tempdir().unwrap();
    let repo = scratch.path().join("app");
    std::fs::create_dir(&repo).unwrap();
    reader_repository(&repo);
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_keyward")).parent().unwrap();
    let script = script(&runnable_blocks(README), scratch.path(), bin_dir);

    let mut cmd = Command::new("bash");
    cmd.process_group(0)
        .arg("-c")
        .arg(&script)
        .current_dir(&repo)
        .env("KEYWARD_LISTEN", "127.0.0.1:0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", scratch.path())
        .env("GIT_AUTHOR_NAME", "Reader")
        .env("GIT_AUTHOR_EMAIL", "reader@example.com")
        .env("GIT_COMMITTER_NAME", "Reader")
        .env("GIT_COMMITTER_EMAIL", "reader@example.com");
    for var in [
        "DATABASE_URL",
        "KEYWARD_PEPPER",
        "KEYWARD_URL",
        "KEYWARD_TOKEN",
        "KEYWARD_DATA",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    let (out, err, late) = run_with_deadline(cmd, Duration::from_secs(180));
    let shown = format!("--- stdout\n{out}\n--- stderr\n{err}");
    assert!(!late, "the README's commands ran longer than 180 s\n{shown}");

    assert!(!err.contains("command not found"), "{shown}");
    assert!(!err.contains("No such file"), "{shown}");
    assert!(out.contains("keyward listening on http://127.0.0.1:"), "{shown}");
    let codes: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split("\"code\":\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert_eq!(
        codes,
        [
            "VALID",
            "INSUFFICIENT_SCOPE",
            "WRONG_MODE",
            "NOT_ENTITLED",
            "REVOKED",
            "REVOKED",
            "REVOKED"
        ],
        "the verify codes the tour's comments promise, in order\n{shown}"
    );
    assert!(out.contains("audit chain intact"), "{shown}");
    assert!(out.contains("\"source_kind\":\"watch\""), "the watched folder's incident\n{shown}");
    assert!(
        out.contains("\"source_kind\":\"schedule\""),
        "the scheduled repository's incident\n{shown}"
    );
    assert!(out.contains("/demo.env:1:14: GitHub token ghp_…ikMb"), "{shown}");
    assert!(out.contains(":.env:1:14: GitHub token ghp_…ikMb"), "the history finding\n{shown}");
    assert!(repo.join("k.sarif").metadata().unwrap().len() > 0, "{shown}");
    let token = "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";
    assert!(!out.contains(token) && !err.contains(token), "no output shows the token\n{shown}");
}
