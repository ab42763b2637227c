//! `keyward scan`: files, directories and stdin.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use super::output::{self, Format, Reported};
use super::{RuleArgs, EXIT_CLEAN, EXIT_ERROR, EXIT_FINDINGS};
use keyward::config::load_rules;
use keyward::engine::{Allowlist, Engine, EngineOptions, Stream};
use keyward::sources::files::{self, WalkOptions, WalkStats, IGNORE_FILE};

#[derive(clap::Args)]
pub struct ScanArgs {
    /// Files or directories to scan; `-` reads stdin. Default: `.`.
    paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Print the matched plaintext. Off by default: reports are shared.
    #[arg(long)]
    show_secrets: bool,
    /// Also report placeholders and look-alikes with bad checksums.
    #[arg(long)]
    all_candidates: bool,
    /// Scan files that look binary instead of skipping them.
    #[arg(long)]
    binary: bool,
    /// A previous `--format json` report whose findings are not reported again.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Scanning threads (default: one per core).
    #[arg(long, short = 'j')]
    threads: Option<usize>,
    /// No summary line on stderr.
    #[arg(long, short = 'q')]
    quiet: bool,
    #[command(flatten)]
    rules: RuleArgs,
}

pub fn run(args: ScanArgs) -> Result<u8> {
    let started = Instant::now();
    let rules = load_rules(&args.rules.clone().into())?;
    let engine = Engine::new(
        rules,
        EngineOptions {
            all_candidates: args.all_candidates,
        },
    )
    .context("building the scanner")?;
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    let allowlist = allowlist(&args, &paths)?;
    let walk = WalkOptions {
        binary: args.binary,
        threads: args.threads.unwrap_or_else(|| WalkOptions::default().threads),
    };
    let (on_disk, stdin): (Vec<PathBuf>, Vec<PathBuf>) = paths.into_iter().partition(|p| p.as_os_str() != "-");
    let (found, mut stats) = files::scan_paths(&engine, &on_disk, &walk);
    let mut reported: Vec<Reported> = found
        .into_iter()
        .flat_map(|file| {
            let path = display_path(&file.path);
            file.findings.into_iter().map(move |finding| Reported {
                path: path.clone(),
                finding,
            })
        })
        .collect();
    if !stdin.is_empty() {
        reported.extend(scan_stdin(&engine, args.binary, &mut stats)?);
    }
    let before = reported.len();
    reported.retain(|r| !allowlist.allows(&r.finding));
    let suppressed = before - reported.len();

    let stdout = std::io::stdout();
    let color = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut out = stdout.lock();
    output::write(args.format, &mut out, &reported, &engine, args.show_secrets, color)?;
    out.flush()?;

    for err in &stats.errors {
        eprintln!("keyward: {}: {}", err.path.display(), err.message);
    }
    if !args.quiet {
        summary(&stats, reported.len(), suppressed, started);
    }
    Ok(if !reported.is_empty() {
        EXIT_FINDINGS
    } else if !stats.errors.is_empty() {
        EXIT_ERROR
    } else {
        EXIT_CLEAN
    })
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
        })
        .collect())
}

/// Finding ids from `--baseline` and from `.keywardignore` in the working
/// directory and at the root of each scanned path.
fn allowlist(args: &ScanArgs, paths: &[PathBuf]) -> Result<Allowlist> {
    let mut allowlist = Allowlist::default();
    if let Some(baseline) = &args.baseline {
        let text = std::fs::read_to_string(baseline).with_context(|| format!("reading baseline {}", baseline.display()))?;
        allowlist
            .add_baseline(&text)
            .with_context(|| format!("baseline {}", baseline.display()))?;
    }
    let mut roots: Vec<PathBuf> = vec![PathBuf::from(".")];
    for p in paths.iter().filter(|p| p.as_os_str() != "-") {
        roots.push(if p.is_dir() {
            p.clone()
        } else {
            p.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
        });
    }
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

fn summary(stats: &WalkStats, findings: usize, suppressed: usize, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    let mib = stats.bytes as f64 / (1024.0 * 1024.0);
    eprintln!(
        "keyward: {} files, {:.1} MiB in {:.2}s ({:.0} MiB/s): {} findings, {} allowed, {} binary skipped, {} errors",
        stats.files,
        mib,
        secs,
        mib / secs.max(1e-9),
        findings,
        suppressed,
        stats.skipped_binary,
        stats.errors.len()
    );
}
