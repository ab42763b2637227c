//! `keyward scan --git | --staged | --pre-push`: git as the input, with a
//! progress display on a terminal and the message a blocking hook shows.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use super::output::Reported;
use super::scanning::{oversized_line, ScanArgs, Scanned};
use keyward::engine::Engine;
use keyward::sources::files::IGNORE_FILE;
use keyward::sources::git::{self as source, GitOptions, GitScan, Progress, PushedRef, MAX_BLOB_BYTES, MAX_TREE_DEPTH};

pub enum Mode {
    History,
    Staged,
    PrePush,
}

impl Mode {
    pub fn of(args: &ScanArgs) -> Option<Mode> {
        if args.git {
            Some(Mode::History)
        } else if args.staged {
            Some(Mode::Staged)
        } else if args.pre_push {
            Some(Mode::PrePush)
        } else {
            None
        }
    }
}

pub fn scan(engine: &Engine, args: &ScanArgs, mode: &Mode) -> Result<Scanned> {
    let paths = args.paths();
    let [repo] = &paths[..] else {
        bail!("a git scan takes one repository, not {} paths", paths.len());
    };
    let scan = match mode {
        Mode::History if args.since.is_some() => {
            let tips: Vec<String> = args.branch.iter().cloned().collect();
            let since: Vec<String> = args.since.iter().cloned().collect();
            source::scan_range(engine, repo, &tips, &since, args.binary)?
        }
        Mode::History => {
            let options = GitOptions {
                branch: args.branch.clone(),
                binary: args.binary,
                threads: args.threads.unwrap_or_else(|| GitOptions::default().threads),
            };
            with_progress(args.quiet, |progress| source::scan_history(engine, repo, &options, progress))?
        }
        Mode::Staged => source::scan_staged(engine, repo, args.binary)?,
        Mode::PrePush => pre_push(engine, repo, args)?,
    };
    let root = scan.workdir.clone().unwrap_or_else(|| repo.clone());
    Ok(scanned(scan, mode, root))
}

fn scanned(scan: GitScan, mode: &Mode, root: PathBuf) -> Scanned {
    let ignored = ignore_file(&root);
    let stats = scan.stats;
    let reported = scan
        .findings
        .into_iter()
        .filter(|f| !is_ignored(&ignored, &f.path))
        .map(|f| Reported {
            path: f.path,
            finding: f.finding,
            origin: f.origin,
        })
        .collect();
    let counted = match mode {
        Mode::Staged => format!("{} staged files", stats.blobs),
        Mode::History | Mode::PrePush => format!("{} commits, {} blobs", stats.commits, stats.blobs),
    };
    let oversized = stats
        .oversized
        .iter()
        .map(|(path, size)| oversized_line(path, *size, MAX_BLOB_BYTES));
    let deep = stats
        .deep_trees
        .iter()
        .map(|path| format!("{path}: a tree more than {MAX_TREE_DEPTH} levels deep, not entered"));
    Scanned {
        reported,
        errors: stats.errors,
        counted,
        bytes: stats.bytes,
        skipped: match stats.deep_trees.len() {
            0 => format!("{} binary and {} oversized skipped", stats.skipped_binary, stats.skipped_large),
            n => format!(
                "{} binary, {} oversized and {n} too-deep trees skipped",
                stats.skipped_binary, stats.skipped_large
            ),
        },
        unscanned: oversized.chain(deep).collect(),
        oversized: stats.oversized.len(),
        roots: vec![root],
    }
}

/// The repository's `.keywardignore`, matched against paths relative to
/// its root (the root itself is never needed, so none is stripped).
fn ignore_file(root: &Path) -> ignore::gitignore::Gitignore {
    let mut builder = ignore::gitignore::GitignoreBuilder::new(".");
    // A missing or unreadable ignore file ignores nothing.
    let _ = builder.add(root.join(IGNORE_FILE));
    builder.build().unwrap_or_else(|_| ignore::gitignore::Gitignore::empty())
}

/// Whether a path from a tree is ignored. Tree entries are crafted at
/// will (`/abs.txt`, `a//b`, `./x`): empty and `.` components are dropped,
/// so the path is relative, and `..` is matched as the name it is.
fn is_ignored(ignored: &ignore::gitignore::Gitignore, path: &str) -> bool {
    let relative: Vec<&str> = path.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    !relative.is_empty() && ignored.matched_path_or_any_parents(relative.join("/"), false).is_ignore()
}

/// Reads git's pre-push input from stdin. Under the pre-commit framework,
/// which passes no stdin, the range comes from its environment instead.
fn pre_push(engine: &Engine, repo: &Path, args: &ScanArgs) -> Result<GitScan> {
    let mut pushed = Vec::new();
    if !std::io::stdin().is_terminal() {
        for line in std::io::stdin().lock().lines() {
            pushed.extend(PushedRef::parse(&line.context("reading the pre-push input")?));
        }
    }
    if pushed.is_empty() {
        if let Ok(to) = std::env::var("PRE_COMMIT_TO_REF") {
            pushed.push(PushedRef {
                local_sha: to,
                remote_sha: std::env::var("PRE_COMMIT_FROM_REF").unwrap_or_default(),
            });
        }
    }
    let remote = args.remote.clone().or_else(|| std::env::var("PRE_COMMIT_REMOTE_NAME").ok());
    Ok(source::scan_push(engine, repo, &pushed, remote.as_deref(), args.binary)?)
}

/// Runs `scan` while a spinner on stderr shows commits, blobs/s and MiB/s.
/// Nothing is drawn when stderr is not a terminal or `--quiet` was given.
fn with_progress<T>(quiet: bool, scan: impl FnOnce(&Progress) -> T) -> T {
    let progress = Progress::default();
    if quiet || !std::io::stderr().is_terminal() {
        return scan(&progress);
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {elapsed} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()));
    let done = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|threads| {
        threads.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                bar.set_message(progress_line(&progress, started.elapsed()));
                bar.tick();
                std::thread::sleep(Duration::from_millis(100));
            }
            bar.finish_and_clear();
        });
        let result = scan(&progress);
        done.store(true, Ordering::Relaxed);
        result
    })
}

fn progress_line(progress: &Progress, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let blobs = progress.blobs.load(Ordering::Relaxed);
    let mib = progress.bytes.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0);
    format!(
        "{} commits · {} blobs ({:.0}/s) · {:.1} MiB ({:.0} MiB/s)",
        progress.commits.load(Ordering::Relaxed),
        blobs,
        blobs as f64 / secs,
        mib,
        mib / secs
    )
}

/// A hook stops a commit or push that holds a file too large to scan;
/// returns whether it did.
pub fn refuse_oversized(mode: &Mode, oversized: usize) -> bool {
    let action = match mode {
        Mode::History => return false,
        Mode::Staged => "commit",
        Mode::PrePush => "push",
    };
    if oversized == 0 {
        return false;
    }
    let noun = if oversized == 1 { "file is" } else { "files are" };
    eprintln!();
    eprintln!(
        "keyward: {action} blocked: {oversized} {noun} over the {} MiB limit and could not be scanned (listed above).",
        MAX_BLOB_BYTES >> 20
    );
    eprintln!("  Remove it from the change, or let it through unscanned once:");
    eprintln!("    KEYWARD_ALLOW_OVERSIZED=1 git {action} ...   (or keyward scan --allow-oversized)");
    true
}

/// After a hook's report: why the commit or push stopped, and the ways on.
pub fn explain_block(mode: &Mode, reported: &[Reported]) {
    let action = match mode {
        Mode::History => return,
        Mode::Staged => "commit",
        Mode::PrePush => "push",
    };
    if reported.is_empty() {
        return;
    }
    let noun = if reported.len() == 1 { "secret" } else { "secrets" };
    eprintln!();
    eprintln!(
        "keyward: {action} blocked: {} {noun} found (listed above: path:line:column, the redacted key, and its id).",
        reported.len()
    );
    eprintln!("  If the key is real: revoke it, remove it from the change, and try again.");
    eprintln!("  If it is a false positive: put `keyward:allow` in a comment on its line,");
    eprintln!("    or add its id (id=kwf_...) on a line of {IGNORE_FILE} at the repository root.");
    eprintln!("  To skip this check once: git {action} --no-verify");
}
