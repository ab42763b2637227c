//! `keyward scan`: files, directories and stdin.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use super::git;
use super::output::{self, terminal_safe, Format, Reported};
use super::{RuleArgs, EXIT_CLEAN, EXIT_ERROR, EXIT_FINDINGS};
use keyward::config::{load_scan, parse_size};
use keyward::engine::{Allowlist, Engine, EngineOptions, Stream};
use keyward::sources::files::{self, WalkOptions, WalkStats, IGNORE_FILE};

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
}

pub fn run(args: ScanArgs) -> Result<u8> {
    let started = Instant::now();
    let settings = load_scan(&args.rules.clone().into())?;
    let engine = Engine::new(
        settings.rules,
        EngineOptions {
            all_candidates: args.all_candidates,
        },
    )
    .context("building the scanner")?;
    let max_file_bytes = args.max_file_size.unwrap_or(settings.max_file_bytes);
    let mode = git::Mode::of(&args);
    let mut scanned = match &mode {
        Some(mode) => git::scan(&engine, &args, mode)?,
        None => scan_files(&engine, &args, max_file_bytes)?,
    };
    let allowlist = allowlist(&args, &scanned.roots)?;
    let before = scanned.reported.len();
    scanned.reported.retain(|r| !allowlist.allows(&r.finding));
    let suppressed = before - scanned.reported.len();

    let stdout = std::io::stdout();
    let color = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut out = stdout.lock();
    output::write(args.format, &mut out, &scanned.reported, &engine, args.show_secrets, color)?;
    out.flush()?;

    for err in &scanned.errors {
        eprintln!("keyward: {}", terminal_safe(err));
    }
    for skipped in &scanned.unscanned {
        eprintln!("keyward: not scanned: {}", terminal_safe(skipped));
    }
    if !args.quiet || !scanned.unscanned.is_empty() {
        summary(&scanned, suppressed, started);
    }
    let refused = match &mode {
        Some(mode) => {
            git::explain_block(mode, &scanned.reported);
            !args.allow_oversized && git::refuse_oversized(mode, scanned.oversized)
        }
        None => false,
    };
    Ok(if !scanned.reported.is_empty() || refused {
        EXIT_FINDINGS
    } else if !scanned.errors.is_empty() {
        EXIT_ERROR
    } else {
        EXIT_CLEAN
    })
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

fn scan_files(engine: &Engine, args: &ScanArgs, max_file_bytes: u64) -> Result<Scanned> {
    let paths = args.paths();
    let walk = WalkOptions {
        binary: args.binary,
        threads: args.threads.unwrap_or_else(|| WalkOptions::default().threads),
        max_file_bytes,
    };
    let (on_disk, stdin): (Vec<PathBuf>, Vec<PathBuf>) = paths.iter().cloned().partition(|p| p.as_os_str() != "-");
    let (found, mut stats) = files::scan_paths(engine, &on_disk, &walk);
    let mut reported: Vec<Reported> = found
        .into_iter()
        .flat_map(|file| {
            let path = display_path(&file.path);
            file.findings.into_iter().map(move |finding| Reported {
                path: path.clone(),
                finding,
                origin: None,
            })
        })
        .collect();
    if !stdin.is_empty() {
        reported.extend(scan_stdin(engine, args.binary, &mut stats)?);
    }
    Ok(Scanned {
        reported,
        errors: stats
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.path.display(), e.message))
            .collect(),
        counted: format!("{} files", stats.files),
        bytes: stats.bytes,
        skipped: match stats.oversized.len() {
            0 => format!("{} binary skipped", stats.skipped_binary),
            n => format!("{} binary and {n} oversized skipped", stats.skipped_binary),
        },
        unscanned: stats
            .oversized
            .iter()
            .map(|(path, size)| oversized_line(&display_path(path), *size, max_file_bytes))
            .collect(),
        oversized: stats.oversized.len(),
        roots: scan_roots(&on_disk),
    })
}

/// The root of each scanned path: itself for a directory, else its parent.
fn scan_roots(paths: &[PathBuf]) -> Vec<PathBuf> {
    paths
        .iter()
        .map(|p| {
            if p.is_dir() {
                p.clone()
            } else {
                p.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
            }
        })
        .collect()
}

fn scan_stdin(engine: &Engine, binary: bool, stats: &mut WalkStats) -> Result<Vec<Reported>> {
    let mut stream = Stream::new(engine);
    let mut findings = Vec::new();
    match files::scan_reader(std::io::stdin().lock(), &mut stream, binary, &mut findings).context("reading stdin")? {
        Some(bytes) => {
            stats.files += 1;
            stats.bytes += bytes;
        }
        None => stats.skipped_binary += 1,
    }
    Ok(findings
        .into_iter()
        .map(|finding| Reported {
            path: "-".to_string(),
            finding,
            origin: None,
        })
        .collect())
}

/// Finding ids from `--baseline` and from `.keywardignore` in the working
/// directory and at each root of the scan.
fn allowlist(args: &ScanArgs, roots: &[PathBuf]) -> Result<Allowlist> {
    let mut allowlist = Allowlist::default();
    if let Some(baseline) = &args.baseline {
        let text = std::fs::read_to_string(baseline).with_context(|| format!("reading baseline {}", baseline.display()))?;
        allowlist
            .add_baseline(&text)
            .with_context(|| format!("baseline {}", baseline.display()))?;
    }
    let mut roots: Vec<PathBuf> = roots.to_vec();
    roots.push(PathBuf::from("."));
    roots.sort();
    roots.dedup();
    for root in roots {
        if let Ok(text) = std::fs::read_to_string(root.join(IGNORE_FILE)) {
            allowlist.add_ignore_file(&text);
        }
    }
    Ok(allowlist)
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

/// Paths as the user would type them: no leading `./`.
fn display_path(path: &Path) -> String {
    let shown = path.strip_prefix(".").unwrap_or(path);
    let text = shown.to_string_lossy();
    if text.is_empty() {
        path.to_string_lossy().into_owned()
    } else {
        text.into_owned()
    }
}

fn summary(scanned: &Scanned, suppressed: usize, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    let mib = scanned.bytes as f64 / (1024.0 * 1024.0);
    eprintln!(
        "keyward: {}, {:.1} MiB in {:.2}s ({:.0} MiB/s): {} findings, {} allowed, {}, {} errors",
        scanned.counted,
        mib,
        secs,
        mib / secs.max(1e-9),
        scanned.reported.len(),
        suppressed,
        scanned.skipped,
        scanned.errors.len()
    );
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
