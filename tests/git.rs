//! Git scans and hooks on real repositories built in temp dirs with the
//! real git: history with attribution, staged lines, and hooks that stop a
//! commit or a push.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const GHP: &str = "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";
const NPM: &str = "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";

/// A repository in a temp dir, with git isolated from the machine's config.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Repo {
        let repo = Repo {
            dir: tempfile::tempdir().unwrap(),
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.name", "Alice Example"]);
        repo.git(&["config", "user.email", "alice@example.com"]);
        repo
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(self.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("HOME", self.path())
            .env_remove("KEYWARD_PREFIX")
            .env_remove("PRE_COMMIT_TO_REF");
        command
    }

    fn git(&self, args: &[&str]) -> Output {
        let out = self.command("git", args).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", text(&out));
        out
    }

    /// git, expected to be refused (by a hook).
    fn git_fails(&self, args: &[&str]) -> Output {
        let out = self.command("git", args).output().unwrap();
        assert!(!out.status.success(), "git {args:?} should have failed: {}", text(&out));
        out
    }

    fn keyward(&self, args: &[&str]) -> Output {
        self.command(env!("CARGO_BIN_EXE_keyward"), args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn write(&self, path: &str, content: &str) {
        let full = self.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    }

    /// Writes the files, stages everything and commits; returns the sha.
    fn commit(&self, message: &str, files: &[(&str, &str)]) -> String {
        for (path, content) in files {
            self.write(path, content);
        }
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--no-verify", "-m", message]);
        self.head()
    }

    fn head(&self) -> String {
        String::from_utf8(self.git(&["rev-parse", "HEAD"]).stdout)
            .unwrap()
            .trim()
            .to_string()
    }

    fn hooks_dir(&self) -> PathBuf {
        self.path().join(".git/hooks")
    }
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn json(out: &Output) -> Vec<Value> {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
}

fn write_hook(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Five commits: the key arrives in commit 3, its file is edited in 4 and
/// deleted in 5.
fn key_added_in_three_removed_in_five() -> (Repo, Vec<String>) {
    let repo = Repo::new();
    let shas = vec![
        repo.commit("one", &[("README.md", "hello\n")]),
        repo.commit("two", &[("src/app.py", "print('hi')\n")]),
        repo.commit("three", &[("config/.env", &format!("DEBUG=1\nGITHUB_TOKEN={GHP}\n"))]),
        repo.commit("four", &[("config/.env", &format!("DEBUG=0\nGITHUB_TOKEN={GHP}\n"))]),
        {
            repo.git(&["rm", "-q", "config/.env"]);
            repo.commit("five", &[])
        },
    ];
    (repo, shas)
}

#[test]
fn history_finds_a_removed_key_at_the_commit_that_added_it() {
    let (repo, shas) = key_added_in_three_removed_in_five();
    let out = repo.keyward(&["scan", "--git", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let found = json(&out);
    assert_eq!(found.len(), 1, "{found:#?}");
    let f = &found[0];
    assert_eq!(f["commit"], shas[2].as_str());
    assert_eq!(f["path"], "config/.env");
    assert_eq!(f["line"], 2);
    assert_eq!(f["column"], 14);
    assert_eq!(f["author"], "Alice Example");
    assert_eq!(f["email"], "alice@example.com");
    assert_eq!(f["rule_id"], "github.token");
    assert!(f["date"].as_str().unwrap().ends_with('Z'));
    assert!(!text(&out).contains(GHP), "the plaintext leaked into the report");
}

#[test]
fn history_reads_each_unique_blob_once() {
    let repo = Repo::new();
    repo.commit("a", &[("a.txt", "same\n"), ("b.txt", "same\n")]);
    repo.commit("b", &[("c.txt", "same\n"), ("d.txt", "other\n")]);
    repo.git(&["checkout", "-q", "-b", "side"]);
    repo.commit("c", &[("e.txt", "other\n")]);
    let out = repo.keyward(&["scan", "--git"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("3 commits, 2 blobs"), "{}", text(&out));
}

#[test]
fn history_covers_every_ref_unless_a_branch_is_named() {
    let repo = Repo::new();
    repo.commit("base", &[("a.txt", "a\n")]);
    repo.git(&["checkout", "-q", "-b", "feature"]);
    let side = repo.commit(
        "leak on a side branch",
        &[("npmrc", &format!("//registry.npmjs.org/:_authToken={NPM}\n"))],
    );
    repo.git(&["checkout", "-q", "main"]);
    repo.git(&["tag", "-a", "v1", "-m", "release"]);

    let all = json(&repo.keyward(&["scan", "--git", "--format", "json"]));
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["commit"], side.as_str());
    let main_only = repo.keyward(&["scan", "--git", "--branch", "main", "--format", "json"]);
    assert_eq!(main_only.status.code(), Some(0), "{}", text(&main_only));
    assert!(json(&main_only).is_empty());
    let feature = json(&repo.keyward(&["scan", "--git", "--branch", "feature", "--format", "json"]));
    assert_eq!(feature.len(), 1);
}

#[test]
fn since_reports_only_lines_added_after_the_revision() {
    let (repo, shas) = key_added_in_three_removed_in_five();
    let after_leak = repo.keyward(&["scan", "--git", "--since", &shas[2], "--format", "json"]);
    assert_eq!(
        after_leak.status.code(),
        Some(0),
        "editing another line of the file is not a new leak: {}",
        text(&after_leak)
    );
    let before_leak = json(&repo.keyward(&["scan", "--git", "--since", &shas[1], "--format", "json"]));
    assert_eq!(before_leak.len(), 1);
    assert_eq!(before_leak[0]["commit"], shas[2].as_str());
    let bad = repo.keyward(&["scan", "--git", "--since", "no-such-rev"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).contains("unknown revision"), "{}", text(&bad));
}

#[test]
fn history_sarif_carries_the_commit() {
    let (repo, shas) = key_added_in_three_removed_in_five();
    let out = repo.keyward(&["scan", "--git", "--format", "sarif"]);
    let sarif: Value = serde_json::from_slice(&out.stdout).unwrap();
    let result = &sarif["runs"][0]["results"][0];
    assert_eq!(result["properties"]["commitSha"], shas[2].as_str());
    assert_eq!(result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"], "config/.env");
}

#[test]
fn not_a_repository_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["scan", "--git", "."])
        .current_dir(dir.path())
        .env("GIT_CEILING_DIRECTORIES", dir.path().parent().unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("not a git repository"), "{}", text(&out));
}

#[test]
fn ignore_file_paths_and_ids_apply_to_history() {
    let (repo, _) = key_added_in_three_removed_in_five();
    repo.write(".keywardignore", "config/\n");
    let out = repo.keyward(&["scan", "--git"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn staged_reports_only_added_lines_of_the_index() {
    let repo = Repo::new();
    repo.commit(
        "old key already committed",
        &[("settings.py", &format!("A = 1\nTOKEN = '{GHP}'\nB = 2\n"))],
    );
    // A changed line elsewhere in the file: the old key's line is unchanged.
    repo.write("settings.py", &format!("A = 10\nTOKEN = '{GHP}'\nB = 2\n"));
    repo.git(&["add", "settings.py"]);
    let unchanged_line = repo.keyward(&["scan", "--staged"]);
    assert_eq!(unchanged_line.status.code(), Some(0), "{}", text(&unchanged_line));

    // A key staged on a new line, and a key only in the working tree.
    repo.write("deploy/npmrc", &format!("# registry\n\n//registry.npmjs.org/:_authToken={NPM}\n"));
    repo.git(&["add", "deploy/npmrc"]);
    repo.write("unstaged.env", &format!("T={GHP}\n"));
    repo.write("README.md", &format!("see {GHP}\n"));
    let out = repo.keyward(&["scan", "--staged", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let found = json(&out);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0]["path"], "deploy/npmrc");
    assert_eq!(found[0]["line"], 3, "line numbers are those of the staged file");
    assert_eq!(found[0]["rule_id"], "npm.access-token");
}

#[test]
fn staged_line_numbers_follow_the_index_not_the_working_tree() {
    let repo = Repo::new();
    repo.commit("init", &[("a.txt", "x\n")]);
    repo.write("a.txt", &format!("x\n{GHP}\n"));
    repo.git(&["add", "a.txt"]);
    // The working tree moves the key down; the index still has it on line 2.
    repo.write("a.txt", &format!("x\nnew\nnew\n{GHP}\n"));
    let found = json(&repo.keyward(&["scan", "--staged", "--format", "json"]));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["line"], 2);
}

#[test]
fn staged_works_before_the_first_commit() {
    let repo = Repo::new();
    repo.write("k.env", &format!("{GHP}\n"));
    repo.git(&["add", "k.env"]);
    let out = repo.keyward(&["scan", "--staged"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

#[test]
fn pre_commit_hook_blocks_a_staged_key_with_a_useful_message() {
    let repo = Repo::new();
    repo.commit("init", &[("a.txt", "a\n")]);
    let install = repo.keyward(&["hook", "install"]);
    assert!(install.status.success(), "{}", text(&install));

    repo.write("config.yml", &format!("github:\n  token: {GHP}\n"));
    repo.git(&["add", "config.yml"]);
    let blocked = repo.git_fails(&["commit", "-m", "add config"]);
    let message = text(&blocked);
    assert!(message.contains("commit blocked"), "{message}");
    assert!(message.contains("config.yml:2:10"), "where: {message}");
    assert!(message.contains("ghp_…ikMb"), "what, redacted: {message}");
    assert!(!message.contains(GHP), "the plaintext must not be shown: {message}");
    assert!(
        message.contains("keyward:allow") && message.contains(".keywardignore"),
        "how to allowlist: {message}"
    );
    assert!(message.contains("--no-verify"), "{message}");
    assert_eq!(repo.git(&["rev-list", "--count", "HEAD"]).stdout, b"1\n");

    // git's own bypass goes through, then the commit is undone.
    repo.git(&["commit", "-q", "--no-verify", "-m", "bypassed"]);
    assert_eq!(repo.git(&["rev-list", "--count", "HEAD"]).stdout, b"2\n");
    repo.git(&["reset", "-q", "--soft", "HEAD~1"]);

    // The allowlist marker lets a false positive through; a clean commit passes.
    repo.write("config.yml", &format!("github:\n  token: {GHP} # keyward:allow\n"));
    repo.git(&["add", "config.yml"]);
    repo.git(&["commit", "-q", "-m", "allowed fixture"]);
    repo.write("b.txt", "b\n");
    repo.git(&["add", "b.txt"]);
    repo.git(&["commit", "-q", "-m", "clean"]);
    assert_eq!(repo.git(&["rev-list", "--count", "HEAD"]).stdout, b"3\n");
}

#[test]
fn existing_hook_is_chained_and_restored() {
    let repo = Repo::new();
    repo.commit("init", &[("a.txt", "a\n")]);
    let existing = repo.hooks_dir().join("pre-commit");
    write_hook(&existing, "echo ran >> \"$(git rev-parse --git-dir)/old-hook-ran\"");
    assert!(repo.keyward(&["hook", "install"]).status.success());

    repo.write("b.txt", "b\n");
    repo.git(&["add", "b.txt"]);
    repo.git(&["commit", "-q", "-m", "clean"]);
    assert!(repo.path().join(".git/old-hook-ran").exists(), "the existing hook did not run");

    // A failing existing hook still stops the commit.
    write_hook(&repo.hooks_dir().join("pre-commit.keyward-chained"), "exit 3");
    repo.write("c.txt", "c\n");
    repo.git(&["add", "c.txt"]);
    repo.git_fails(&["commit", "-q", "-m", "stopped by the old hook"]);

    write_hook(&repo.hooks_dir().join("pre-commit.keyward-chained"), "echo original");
    assert!(repo.keyward(&["hook", "uninstall"]).status.success());
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "#!/bin/sh\necho original\n");
    assert!(!repo.hooks_dir().join("pre-commit.keyward-chained").exists());
}

#[test]
fn hooks_path_is_respected() {
    let repo = Repo::new();
    repo.git(&["config", "core.hooksPath", "tools/hooks"]);
    assert!(repo.keyward(&["hook", "install"]).status.success());
    assert!(repo.path().join("tools/hooks/pre-commit").exists());
    assert!(!repo.hooks_dir().join("pre-commit").exists());
    repo.write("k.env", &format!("{GHP}\n"));
    repo.git(&["add", "k.env"]);
    repo.git_fails(&["commit", "-m", "leak"]);
}

#[test]
fn pre_push_hook_blocks_a_commit_with_a_key_to_a_bare_remote() {
    let remote = tempfile::tempdir().unwrap();
    let repo = Repo::new();
    repo.git(&["init", "-q", "--bare", remote.path().to_str().unwrap()]);
    repo.git(&["remote", "add", "origin", remote.path().to_str().unwrap()]);
    repo.commit("init", &[("a.txt", "a\n")]);
    repo.git(&["push", "-q", "origin", "main"]);
    let install = repo.keyward(&["hook", "install", "--pre-push"]);
    assert!(install.status.success(), "{}", text(&install));

    let leak = repo.commit("leak", &[("ci/secrets.env", &format!("NPM_TOKEN={NPM}\n"))]);
    repo.commit("later", &[("b.txt", "b\n")]);
    let blocked = repo.git_fails(&["push", "origin", "main"]);
    let message = text(&blocked);
    assert!(message.contains("push blocked"), "{message}");
    assert!(message.contains(&format!("{}:ci/secrets.env:1:11", &leak[..10])), "{message}");
    let remote_head = Command::new("git")
        .args(["--git-dir", remote.path().to_str().unwrap(), "rev-parse", "main"])
        .output()
        .unwrap();
    assert_ne!(
        String::from_utf8_lossy(&remote_head.stdout).trim(),
        repo.head(),
        "the push went through"
    );

    // Without the key the push goes through; a new branch is checked too.
    repo.git(&["reset", "-q", "--hard", "HEAD~2"]);
    repo.commit("clean", &[("c.txt", "c\n")]);
    repo.git(&["push", "-q", "origin", "main"]);
    repo.git(&["checkout", "-q", "-b", "topic"]);
    repo.commit("leak on a new branch", &[("k.env", &format!("{GHP}\n"))]);
    repo.git_fails(&["push", "origin", "topic"]);
}

#[test]
fn pre_push_reads_git_stdin_protocol() {
    let repo = Repo::new();
    let base = repo.commit("init", &[("a.txt", "a\n")]);
    let leak = repo.commit("leak", &[("k.env", &format!("{GHP}\n"))]);
    let run = |input: String| {
        let mut child = repo
            .command(env!("CARGO_BIN_EXE_keyward"), &["scan", "--pre-push", "--format", "json"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let zero = "0".repeat(40);
    let pushed = run(format!("refs/heads/main {leak} refs/heads/main {base}\n"));
    assert_eq!(json(&pushed)[0]["commit"], leak.as_str());
    let already_there = run(format!("refs/heads/main {leak} refs/heads/main {leak}\n"));
    assert_eq!(already_there.status.code(), Some(0), "{}", text(&already_there));
    let delete = run(format!("(delete) {zero} refs/heads/main {leak}\n"));
    assert_eq!(delete.status.code(), Some(0), "{}", text(&delete));
}

#[test]
fn pre_commit_framework_manifest_runs_keyward() {
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".pre-commit-hooks.yaml")).unwrap();
    assert!(manifest.contains("- id: keyward\n"));
    assert!(manifest.contains("entry: keyward scan --staged"));
    assert!(manifest.contains("entry: keyward scan --pre-push"));
    assert!(manifest.contains("language: rust"));
}
