//! What every kind of `keyward scan` takes (its flags) and gives (what it
//! found and passed over). The file scan and the git scans both stand on
//! this, and neither on the other.

use std::path::PathBuf;

use super::output::{Format, Reported};
use super::RuleArgs;
use keyward::config::parse_size;

#[derive(clap::Args)]
pub struct ScanArgs {
    /// Files or directories to scan; `-` reads stdin. Default: `.`.
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Print the matched plaintext. Off by default: reports are shared.
    #[arg(long)]
    pub show_secrets: bool,
    /// Also report placeholders and look-alikes with bad checksums.
    #[arg(long)]
    pub all_candidates: bool,
    /// Scan files that look binary instead of skipping them.
    #[arg(long)]
    pub binary: bool,
    /// A previous `--format json` report whose findings are not reported again.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Scan the whole git history of the repository at PATH (default `.`):
    /// every unique blob of every commit on every ref, once.
    #[arg(long, conflicts_with_all = ["staged", "pre_push"])]
    pub git: bool,
    /// With --git: only the history of this branch (or any revision).
    #[arg(long, requires = "git", value_name = "NAME")]
    pub branch: Option<String>,
    /// With --git: only the lines that commits after REV added.
    #[arg(long, requires = "git", value_name = "REV")]
    pub since: Option<String>,
    /// Only the lines added in the index: what `git commit` is about to record.
    #[arg(long, conflicts_with = "pre_push")]
    pub staged: bool,
    /// Only the lines added by the commits a push sends, read from git's
    /// pre-push input on stdin.
    #[arg(long)]
    pub pre_push: bool,
    /// With --pre-push: the remote's name; what its remote-tracking refs
    /// reach is already there.
    #[arg(long, requires = "pre_push", value_name = "NAME")]
    pub remote: Option<String>,
    /// Scanning threads (default: one per core).
    #[arg(long, short = 'j')]
    pub threads: Option<usize>,
    /// Skip and report files larger than this (bytes, or 512K, 64M, 1G...;
    /// default 256M, or `[scan] max_file_size`). Git blobs: 256M.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_file_size: Option<u64>,
    /// With --staged or --pre-push: let a file over the size limit through
    /// unscanned, instead of stopping the commit or push.
    #[arg(long, env = "KEYWARD_ALLOW_OVERSIZED", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_oversized: bool,
    /// No summary line on stderr, unless something that could hold a
    /// secret went unscanned.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    #[command(flatten)]
    pub rules: RuleArgs,
    #[command(flatten)]
    pub report: super::report::ReportTo,
}

/// What any kind of scan hands to reporting.
pub struct Scanned {
    pub reported: Vec<Reported>,
    pub errors: Vec<String>,
    /// What was read, for the summary: "12 files" or "40 commits, 120 blobs".
    pub counted: String,
    pub bytes: u64,
    /// What was passed over, for the summary: "3 binary skipped".
    pub skipped: String,
    /// What went unscanned and could hold a secret, one line each: shown
    /// on stderr even with --quiet.
    pub unscanned: Vec<String>,
    /// How many files or blobs were over the size limit.
    pub oversized: usize,
    /// Directories whose `.keywardignore` applies.
    pub roots: Vec<PathBuf>,
}

/// Why a file was not scanned, with its size (0: a stream of unknown size,
/// read up to the limit).
pub fn oversized_line(path: &str, size: u64, limit: u64) -> String {
    if size == 0 {
        format!("{path}: longer than the {} limit; only its start was scanned", limit_text(limit))
    } else {
        format!("{path}: {}, over the {} limit", size_text(size), limit_text(limit))
    }
}

const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];

/// `12.0 GiB`, `256.0 MiB`, `20.0 KiB`, `512 bytes`.
fn size_text(bytes: u64) -> String {
    match UNITS.iter().find(|(unit, _)| bytes >= *unit) {
        Some((unit, name)) => format!("{:.1} {name}", bytes as f64 / *unit as f64),
        None => format!("{bytes} bytes"),
    }
}

/// A limit as it was likely written: `256 MiB`, `16 KiB`, or bytes.
fn limit_text(bytes: u64) -> String {
    match UNITS.iter().find(|(unit, _)| bytes >= *unit && bytes % unit == 0) {
        Some((unit, name)) => format!("{} {name}", bytes / unit),
        None => format!("{bytes} bytes"),
    }
}

impl ScanArgs {
    /// The paths to scan; `.` when none were given.
    pub fn paths(&self) -> Vec<PathBuf> {
        if self.paths.is_empty() {
            vec![PathBuf::from(".")]
        } else {
            self.paths.clone()
        }
    }
}
