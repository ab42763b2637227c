//! `keyward scan`: files, directories and stdin here; git history,
//! staged lines and pushes in `git`; both take and give `scanning`'s types.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use super::git;
use super::output::{self, terminal_safe, Reported};
use super::report::{self, Sighting};
use super::scanning::{oversized_line, ScanArgs, Scanned};
use super::{EXIT_CLEAN, EXIT_ERROR, EXIT_FINDINGS};
use keyward::config::load_scan;
use keyward::engine::{Allowlist, Engine, EngineOptions, Stream};
use keyward::sources::files::{self, WalkOptions, WalkStats, IGNORE_FILE};

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
    let report_to = args.report.target()?;
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
    if let Some(target) = report_to {
        let sightings = sightings_of(&scanned.reported);
        let tally = report::send(&target, &sightings)?;
        eprintln!("keyward: {}", tally.summary(sightings.len()));
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

/// What `--report` sends: each finding's token and where it was found.
fn sightings_of(reported: &[Reported]) -> Vec<Sighting> {
    reported
        .iter()
        .map(|r| Sighting {
            token: r.finding.secret.expose().to_string(),
            place: serde_json::json!({
                "path": r.path,
                "line": r.finding.line,
                "commit": r.origin.as_ref().map(|o| o.commit.clone()),
                "source": "keyward-scan",
            }),
        })
        .collect()
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
