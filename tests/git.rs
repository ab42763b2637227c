//! Git scans and hooks on real repositories built in temp dirs with the
//! real git: history with attribution, staged lines, and hooks that stop a
//! commit or a push.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

#[path = "common/stdin.rs"]
mod stdin;
use stdin::with_stdin;

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
    let run = |input: String| repo.keyward_with_stdin(&["scan", "--pre-push", "--format", "json"], &input);
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

// Hostile repositories: what a crafted history, name or push must not do
// to the scanner and its hooks.

impl Repo {
    /// A bare repository in its own temp dir, added as `origin`, with
    /// `main` pushed to it; and the pre-push hook installed.
    fn with_remote_and_pre_push_hook(&self) -> tempfile::TempDir {
        let remote = tempfile::tempdir().unwrap();
        self.git(&["init", "-q", "--bare", remote.path().to_str().unwrap()]);
        self.git(&["remote", "add", "origin", remote.path().to_str().unwrap()]);
        self.git(&["push", "-q", "origin", "main"]);
        let install = self.keyward(&["hook", "install", "--pre-push"]);
        assert!(install.status.success(), "{}", text(&install));
        remote
    }

    /// Writes a raw object, as no git command would make it: a tree entry
    /// named `/abs.txt`, or a tree 24,000 levels deep.
    fn write_raw(&self, kind: gix::objs::Kind, bytes: &[u8]) -> gix::ObjectId {
        use gix::objs::Write;
        gix::open(self.path()).unwrap().objects.write_buf(kind, bytes).unwrap()
    }

    /// A tree of raw `(mode, name, id)` entries.
    fn raw_tree(&self, entries: &[(&str, &[u8], gix::ObjectId)]) -> gix::ObjectId {
        let mut bytes = Vec::new();
        for (mode, name, id) in entries {
            bytes.extend_from_slice(format!("{mode} ").as_bytes());
            bytes.extend_from_slice(name);
            bytes.push(0);
            bytes.extend_from_slice(id.as_bytes());
        }
        self.write_raw(gix::objs::Kind::Tree, &bytes)
    }

    /// A commit of `tree` on top of HEAD, on branch `name`.
    fn commit_tree(&self, name: &str, tree: gix::ObjectId) -> String {
        let out = self.git(&["commit-tree", &tree.to_string(), "-p", "HEAD", "-m", name]);
        let sha = String::from_utf8(out.stdout).unwrap().trim().to_string();
        self.git(&["update-ref", &format!("refs/heads/{name}"), &sha]);
        sha
    }

    fn keyward_with_stdin(&self, args: &[&str], input: &str) -> Output {
        with_stdin(self.command(env!("CARGO_BIN_EXE_keyward"), args), input)
    }
}

#[test]
fn a_key_pasted_into_a_merge_is_stopped_by_the_pre_push_hook_and_found_by_since() {
    let repo = Repo::new();
    let before = repo.commit("init", &[("README.md", "hello\n")]);
    let _remote = repo.with_remote_and_pre_push_hook();
    repo.git(&["checkout", "-q", "-b", "side"]);
    repo.commit("side", &[("side.txt", "side\n")]);
    repo.git(&["checkout", "-q", "main"]);
    repo.commit("main", &[("main.txt", "main\n")]);
    repo.git(&["merge", "-q", "--no-ff", "--no-commit", "side"]);
    let merge = repo.commit("merge", &[("config.env", &format!("GITHUB_TOKEN={GHP}\n"))]);

    let blocked = repo.git_fails(&["push", "origin", "main"]);
    let message = text(&blocked);
    assert!(message.contains("push blocked"), "{message}");
    assert!(message.contains(&format!("{}:config.env:1:14", &merge[..10])), "{message}");

    let since = repo.keyward(&["scan", "--git", "--since", &before, "--format", "json"]);
    assert_eq!(since.status.code(), Some(1), "{}", text(&since));
    let found = json(&since);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0]["path"].as_str(), found[0]["commit"].as_str()),
        (Some("config.env"), Some(merge.as_str()))
    );

    // A clean merge of a branch with nothing new goes through.
    repo.git(&["reset", "-q", "--hard", "HEAD~1"]);
    repo.git(&["merge", "-q", "--no-ff", "-m", "clean merge", "side"]);
    repo.git(&["push", "-q", "origin", "main"]);
}

#[test]
fn merges_report_what_no_parent_has_octopus_and_renamed_paths_included() {
    let repo = Repo::new();
    let base = repo.commit("base", &[("app.env", "A=1\n"), ("keep.txt", "k\n")]);
    // A key that arrives on a branch is that branch's commit's, not the merge's.
    repo.git(&["checkout", "-q", "-b", "one"]);
    let on_branch = repo.commit("one", &[("one.env", &format!("NPM_TOKEN={NPM}\n"))]);
    repo.git(&["checkout", "-q", "-b", "two", &base]);
    repo.commit("two", &[("two.txt", "2\n")]);
    repo.git(&["checkout", "-q", "-b", "renamed", &base]);
    repo.git(&["mv", "app.env", "moved.env"]);
    repo.commit("rename", &[]);
    repo.git(&["checkout", "-q", "main"]);
    repo.git(&["merge", "-q", "--no-ff", "--no-commit", "one", "two", "renamed"]);
    // Resolving the octopus, a key is pasted into the renamed file.
    let octopus = repo.commit("octopus", &[("moved.env", &format!("A=1\nGITHUB_TOKEN={GHP}\n"))]);
    let parents = repo.git(&["rev-list", "--parents", "-n", "1", "HEAD"]);
    assert_eq!(
        String::from_utf8_lossy(&parents.stdout).split_whitespace().count(),
        5,
        "an octopus of four parents"
    );

    let out = repo.keyward(&["scan", "--git", "--since", &base, "--format", "json"]);
    let found = json(&out);
    let mut seen: Vec<(String, String, u64)> = found
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["commit"].as_str().unwrap().to_string(),
                f["line"].as_u64().unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![("moved.env".to_string(), octopus.clone(), 2), ("one.env".to_string(), on_branch, 1)],
        "{}",
        text(&out)
    );
}

#[test]
fn control_characters_from_the_repository_are_escaped_in_text_and_hook_output() {
    let repo = Repo::new();
    repo.git(&["config", "user.name", "Eve \x1b]52;c;cm0gLXJmIH4K\x1b\\ \x1b[2J"]);
    repo.git(&["config", "user.email", "eve\x1b[8m@example.com"]);
    let forged = "a\x1b[31m.env\nfake.txt:1:1: nothing to see";
    repo.commit("evil", &[(forged, &format!("T={GHP}\n"))]);
    for args in [&["scan", "--git"][..], &["scan", "."][..]] {
        let out = repo.keyward(args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!stdout.contains('\x1b'), "{args:?}: an escape reached the terminal: {stdout:?}");
        assert_eq!(stdout.lines().count(), 1, "{args:?}: a name forged a line: {stdout:?}");
        assert!(stdout.contains(r"a\e[31m.env\nfake.txt"), "{stdout:?}");
    }
    let history = String::from_utf8_lossy(&repo.keyward(&["scan", "--git"]).stdout).into_owned();
    assert!(
        history.contains(r"by Eve \e]52;c;cm0gLXJmIH4K\e\\ \e[2J <eve\e[8m@example.com>"),
        "{history:?}"
    );

    // The pre-commit hook's report is the same text.
    assert!(repo.keyward(&["hook", "install"]).status.success());
    repo.write("x\x1b]0;owned\x07.env", &format!("K={NPM}\n"));
    repo.git(&["add", "-A"]);
    let blocked = repo.git_fails(&["commit", "-q", "-m", "x"]);
    let all = text(&blocked);
    assert!(
        all.contains("commit blocked") && !all.contains('\x1b') && !all.contains('\x07'),
        "{all:?}"
    );
    assert!(all.contains(r"x\e]0;owned\x07.env"), "{all:?}");
}

#[test]
fn a_tree_deeper_than_the_limit_is_reported_and_the_scan_goes_on() {
    let repo = Repo::new();
    repo.commit("init", &[("README.md", "hello\n")]);
    let remote = repo.with_remote_and_pre_push_hook();
    let key = repo.write_raw(gix::objs::Kind::Blob, format!("GITHUB_TOKEN={GHP}\n").as_bytes());
    let mut tree = repo.raw_tree(&[("100644", b"deep.env", key)]);
    for _ in 0..24_000 {
        tree = repo.raw_tree(&[("40000", b"d", tree)]);
    }
    let shallow_key = repo.write_raw(gix::objs::Kind::Blob, format!("NPM_TOKEN={NPM}\n").as_bytes());
    let root = repo.raw_tree(&[("40000", b"d", tree), ("100644", b"top.env", shallow_key)]);
    let deep = repo.commit_tree("deep", root);

    let history = repo.keyward(&["scan", "--git", "--branch", "deep", "--format", "json"]);
    assert_eq!(history.status.code(), Some(1), "{}", text(&history));
    let found = json(&history);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["path"], "top.env");
    let stderr = String::from_utf8_lossy(&history.stderr);
    assert!(stderr.contains("more than 2048 levels deep, not entered"), "{stderr}");

    let zero = "0".repeat(40);
    let pushed = repo.keyward_with_stdin(
        &["scan", "--pre-push", "--quiet"],
        &format!("refs/heads/deep {deep} refs/heads/deep {zero}\n"),
    );
    assert_eq!(pushed.status.code(), Some(1), "{}", text(&pushed));
    assert!(text(&pushed).contains("not entered"), "{}", text(&pushed));

    // Through the installed hook, with the key removed: the hook passes, and
    // git itself then refuses the tree (core.maxTreeDepth).
    let clean = repo.raw_tree(&[("40000", b"d", tree)]);
    repo.git(&["checkout", "-q", "main"]);
    repo.commit_tree("deep-clean", clean);
    let out = repo.command("git", &["push", "origin", "deep-clean"]).output().unwrap();
    let all = text(&out);
    assert!(all.contains("not entered"), "{all}");
    assert!(!all.contains("overflow") && !all.contains("push blocked"), "{all}");
    drop(remote);
}

/// Two commits pushed to a bare remote, the pre-push hook installed, and
/// the remote's `file://` URL.
fn pushed_twice() -> (Repo, tempfile::TempDir, String) {
    let repo = Repo::new();
    repo.commit("one", &[("a.txt", "a\n")]);
    repo.commit("two", &[("b.txt", "b\n")]);
    let remote = repo.with_remote_and_pre_push_hook();
    let url = format!("file://{}", remote.path().display());
    (repo, remote, url)
}

#[test]
fn pre_push_hook_works_for_a_url_with_no_remote_name() {
    let (repo, remote, url) = pushed_twice();
    let path = remote.path().to_str().unwrap().to_string();

    repo.commit("clean", &[("c.txt", "c\n")]);
    let out = repo.command("git", &["push", &url, "main"]).output().unwrap();
    assert!(out.status.success(), "a clean push to a URL: {}", text(&out));
    repo.commit("more", &[("d.txt", "d\n")]);
    let out = repo.command("git", &["push", &path, "main"]).output().unwrap();
    assert!(out.status.success(), "a clean push to a path: {}", text(&out));
    let leak = repo.commit("leak", &[("ci.env", &format!("NPM_TOKEN={NPM}\n"))]);
    let blocked = repo.git_fails(&["push", &url, "main"]);
    let message = text(&blocked);
    assert!(message.contains(&format!("{}:ci.env:1:11", &leak[..10])), "{message}");
    assert!(!message.contains("Windows paths"), "{message}");
}

#[test]
fn pre_push_hook_works_from_a_shallow_clone() {
    let (_repo, _remote, url) = pushed_twice();
    // Its boundary commit's parent is not there.
    let clone = Repo {
        dir: tempfile::tempdir().unwrap(),
    };
    clone.git(&["clone", "-q", "--depth", "1", "--branch", "main", &url, "."]);
    assert!(clone.path().join(".git/shallow").is_file(), "the clone is shallow");
    clone.git(&["config", "user.name", "Bob"]);
    clone.git(&["config", "user.email", "bob@example.com"]);
    assert!(clone.keyward(&["hook", "install", "--pre-push"]).status.success());
    clone.git(&["checkout", "-q", "-b", "topic"]);
    clone.commit("topic", &[("t.txt", "t\n")]);
    let out = clone.command("git", &["push", "origin", "topic"]).output().unwrap();
    assert!(out.status.success(), "a shallow clone's push: {}", text(&out));
    // With no tracking refs at all the walk reaches the boundary.
    let tracking = clone.git(&["for-each-ref", "--format=%(refname)", "refs/remotes"]);
    for name in String::from_utf8_lossy(&tracking.stdout).lines() {
        clone.git(&["update-ref", "-d", name]);
    }
    clone.git(&["checkout", "-q", "-b", "other"]);
    clone.commit("other", &[("o.txt", "o\n")]);
    let out = clone.command("git", &["push", "origin", "other"]).output().unwrap();
    assert!(out.status.success(), "a shallow clone's push: {}", text(&out));
    clone.commit("shallow leak", &[("s.env", &format!("GITHUB_TOKEN={GHP}\n"))]);
    let blocked = clone.git_fails(&["push", "origin", "other"]);
    assert!(text(&blocked).contains("s.env:1:14"), "{}", text(&blocked));
}

#[test]
fn hooks_refuse_a_file_too_large_to_scan_unless_allowed() {
    let repo = Repo::new();
    repo.commit("init", &[("README.md", "hello\n")]);
    assert!(repo.keyward(&["hook", "install"]).status.success());
    let big = std::fs::File::create(repo.path().join("dump.sql")).unwrap();
    big.set_len((256 << 20) + 1).unwrap();
    repo.git(&["add", "dump.sql"]);
    let blocked = repo.git_fails(&["commit", "-q", "-m", "big"]);
    let message = text(&blocked);
    assert!(message.contains("commit blocked"), "{message}");
    assert!(message.contains("dump.sql: 256.0 MiB, over the 256 MiB limit"), "{message}");
    let direct = repo.keyward(&["scan", "--staged", "--quiet"]);
    assert_eq!(direct.status.code(), Some(1), "{}", text(&direct));
    let allowed = repo
        .command("git", &["commit", "-q", "-m", "big"])
        .env("KEYWARD_ALLOW_OVERSIZED", "1")
        .output()
        .unwrap();
    assert!(allowed.status.success(), "{}", text(&allowed));

    // The pre-push hook refuses the same commit.
    let _remote = repo.with_remote_and_pre_push_hook();
    repo.git(&["reset", "-q", "--soft", "HEAD~1"]);
    repo.git(&["commit", "-q", "--no-verify", "-m", "big"]);
    let blocked = repo.git_fails(&["push", "origin", "main:refs/heads/big"]);
    let message = text(&blocked);
    assert!(
        message.contains("push blocked") && message.contains("dump.sql: 256.0 MiB"),
        "{message}"
    );
}

#[test]
fn crafted_tree_names_are_matched_or_skipped_never_fatal() {
    let repo = Repo::new();
    repo.commit("init", &[(".keywardignore", "vendor/\n")]);
    // Each name its own blob: every unique blob is read once, at one path.
    let blob = |text: String| repo.write_raw(gix::objs::Kind::Blob, text.as_bytes());
    let ignore = blob("vendor/\n/abs.txt\n".to_string());
    let vendor = repo.raw_tree(&[("100644", b"x.env", blob(format!("V={NPM}\n")))]);
    let root = repo.raw_tree(&[
        ("100644", b"..", blob(format!("UP={NPM}\n"))),
        ("100644", b".keywardignore", ignore),
        ("100644", b"/abs.txt", blob(format!("ABS={GHP}\n"))),
        ("40000", b"vendor", vendor),
        ("100644", b"a//b", blob(format!("AB={GHP}\n"))),
    ]);
    repo.commit_tree("crafted", root);
    for args in [
        &["scan", "--git", "--format", "json"][..],
        &["scan", "--git", "--branch", "crafted", "--format", "json"][..],
    ] {
        let out = repo.keyward(args);
        let all = text(&out);
        assert!(!all.contains("panicked"), "{args:?}: {all}");
        assert!(matches!(out.status.code(), Some(0..=2)), "{args:?}: {all}");
    }
    // The work tree's .keywardignore names neither: both names are reported.
    let out = repo.keyward(&["scan", "--git", "--branch", "crafted", "--format", "json"]);
    let paths: Vec<String> = json(&out).iter().map(|f| f["path"].as_str().unwrap().to_string()).collect();
    assert!(
        paths.contains(&"/abs.txt".to_string()) && paths.contains(&"..".to_string()),
        "{paths:?}"
    );
    assert!(!paths.iter().any(|p| p.starts_with("vendor/")), "{paths:?}");
    // Listed there, `/abs.txt` is matched as the relative path it stands for.
    repo.write(".keywardignore", "vendor/\n/abs.txt\na/b\n");
    let out = repo.keyward(&["scan", "--git", "--branch", "crafted", "--format", "json"]);
    let paths: Vec<String> = json(&out).iter().map(|f| f["path"].as_str().unwrap().to_string()).collect();
    assert_eq!(paths, [".."], "{}", text(&out));
}

#[test]
fn a_commit_dated_past_the_year_9999_prints_and_never_panics() {
    let repo = Repo::new();
    repo.commit("first", &[("README.md", "hello\n")]);
    repo.write("config.env", &format!("TOKEN={GHP}\n"));
    repo.git(&["add", "config.env"]);
    let tree = String::from_utf8(repo.git(&["write-tree"]).stdout).unwrap();
    let parent = String::from_utf8(repo.git(&["rev-parse", "HEAD"]).stdout).unwrap();
    // A crafted author time far beyond what a date formatter may assume.
    let commit = format!(
        "tree {}\nparent {}\nauthor Mallory <m@example.com> 99999999999999 +0000\ncommitter Mallory <m@example.com> 99999999999999 +0000\n\nfrom the future\n",
        tree.trim(),
        parent.trim()
    );
    let file = repo.path().join("commit.txt");
    std::fs::write(&file, commit).unwrap();
    let sha = String::from_utf8(
        repo.git(&["hash-object", "--literally", "-t", "commit", "-w", file.to_str().unwrap()])
            .stdout,
    )
    .unwrap();
    repo.git(&["update-ref", "refs/heads/main", sha.trim()]);
    for format in ["text", "json", "sarif"] {
        let out = repo.keyward(&["scan", "--git", ".", "--format", format]);
        assert_eq!(out.status.code(), Some(1), "{format}: {}", text(&out));
        assert!(
            text(&out).contains("+3170843-"),
            "{format}: the year is written out: {}",
            text(&out)
        );
    }
}

/// A history with a key added on a branch, moved, edited, merged and
/// removed, plus clean files shared between commits: enough for blobs to be
/// stored as deltas once packed.
fn busy_history() -> Repo {
    let repo = Repo::new();
    let filler: String = (0..200).map(|i| format!("line {i} of a file that changes little\n")).collect();
    repo.commit("base", &[("README.md", &filler), ("src/lib.rs", "fn main() {}\n")]);
    repo.git(&["checkout", "-q", "-b", "topic"]);
    repo.commit("topic", &[("deploy/.env", &format!("GITHUB_TOKEN={GHP}\n"))]);
    repo.git(&["mv", "deploy/.env", "deploy/prod.env"]);
    repo.commit("move", &[("README.md", &format!("{filler}one more\n"))]);
    repo.git(&["checkout", "-q", "main"]);
    repo.commit("main", &[("src/lib.rs", "fn main() { println!(); }\n")]);
    repo.git(&["merge", "-q", "--no-ff", "-m", "merge", "topic"]);
    repo.commit("npm", &[("ci/.npmrc", &format!("//registry.npmjs.org/:_authToken={NPM}\n"))]);
    repo.commit("edit", &[("ci/.npmrc", &format!("# ci\n//registry.npmjs.org/:_authToken={NPM}\n"))]);
    repo.git(&["rm", "-q", "ci/.npmrc"]);
    repo.commit("clean", &[]);
    repo
}

fn history_json(repo: &Repo) -> Vec<Value> {
    let out = repo.keyward(&["scan", "--git", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    json(&out)
}

#[test]
fn history_reads_the_same_from_loose_objects_and_from_packs() {
    let repo = busy_history();
    let loose = history_json(&repo);
    let mut seen: Vec<(String, u64)> = loose
        .iter()
        .map(|f| (f["path"].as_str().unwrap().to_string(), f["line"].as_u64().unwrap()))
        .collect();
    seen.sort();
    assert_eq!(seen, vec![("ci/.npmrc".into(), 1), ("deploy/.env".into(), 1)], "{loose:#?}");

    // Deltas, then a pack plus newer loose objects: the same findings, at
    // the same commits and paths.
    repo.git(&["repack", "-a", "-d", "-f", "--depth=50", "--window=50", "-q"]);
    assert_eq!(history_json(&repo), loose);
    repo.commit("later", &[("notes.txt", "nothing secret\n")]);
    let later = history_json(&repo);
    assert_eq!(later, loose);
    let scan = repo.keyward(&["scan", "--git"]);
    assert!(text(&scan).contains("9 commits"), "{}", text(&scan));
}

#[test]
fn a_key_in_a_blob_no_ref_reaches_is_not_reported() {
    let repo = Repo::new();
    repo.commit("init", &[("README.md", "hello\n")]);
    repo.commit("oops", &[("app.env", &format!("GITHUB_TOKEN={GHP}\n"))]);
    repo.write("app.env", "GITHUB_TOKEN=\n");
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-q", "--amend", "--no-verify", "-m", "fixed"]);
    repo.git(&["reflog", "expire", "--expire=now", "--all"]);
    let out = repo.keyward(&["scan", "--git", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    repo.git(&["repack", "-a", "-d", "-q"]);
    let out = repo.keyward(&["scan", "--git", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_missing_blob_is_named_by_its_path_and_the_scan_goes_on() {
    let repo = Repo::new();
    repo.commit("one", &[("gone.txt", "will be lost\n"), ("ci.env", &format!("NPM_TOKEN={NPM}\n"))]);
    let blob = String::from_utf8(repo.git(&["rev-parse", "HEAD:gone.txt"]).stdout).unwrap();
    let blob = blob.trim();
    std::fs::remove_file(repo.path().join(".git/objects").join(&blob[..2]).join(&blob[2..])).unwrap();
    let out = repo.keyward(&["scan", "--git", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(json(&out).len(), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("gone.txt (object {blob})")), "{stderr}");
}

#[test]
fn a_tree_deeper_than_the_limit_is_reported_in_a_whole_history_scan_too() {
    let repo = Repo::new();
    repo.commit("init", &[("README.md", "hello\n")]);
    let key = repo.write_raw(gix::objs::Kind::Blob, format!("GITHUB_TOKEN={GHP}\n").as_bytes());
    let mut tree = repo.raw_tree(&[("100644", b"deep.env", key)]);
    for _ in 0..3_000 {
        tree = repo.raw_tree(&[("40000", b"d", tree)]);
    }
    let shallow_key = repo.write_raw(gix::objs::Kind::Blob, format!("NPM_TOKEN={NPM}\n").as_bytes());
    let root = repo.raw_tree(&[("40000", b"d", tree), ("100644", b"top.env", shallow_key)]);
    repo.commit_tree("deep", root);
    let history = repo.keyward(&["scan", "--git", "--format", "json"]);
    assert_eq!(history.status.code(), Some(1), "{}", text(&history));
    let found = json(&history);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0]["path"], "top.env");
    let stderr = String::from_utf8_lossy(&history.stderr);
    assert!(stderr.contains("more than 2048 levels deep, not entered"), "{stderr}");
}
