//! Files, directories and readers: a parallel, gitignore-aware walk that
//! reads each file in chunks straight into an engine [`Stream`].
//!
//! One unreadable file is counted and reported, and the walk goes on.
//! Scanning runs on the walker's own threads, never on an async runtime.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use ignore::{WalkBuilder, WalkState};

use crate::engine::{Engine, Finding, Stream};

/// Ignore files honoured during the walk, besides `.gitignore` and `.ignore`.
pub const IGNORE_FILE: &str = ".keywardignore";

/// How many leading bytes decide whether a file is binary (as git does).
const BINARY_SNIFF: usize = 8192;

#[derive(Debug, Clone)]
pub struct WalkOptions {
    /// Scan files that look binary (a NUL byte near the start).
    pub binary: bool,
    pub threads: usize,
}

impl Default for WalkOptions {
    fn default() -> Self {
        WalkOptions {
            binary: false,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// One input that could not be read.
#[derive(Debug)]
pub struct ReadError {
    pub path: PathBuf,
    pub message: String,
}

/// What a walk did, beside its findings.
#[derive(Debug, Default)]
pub struct WalkStats {
    pub files: u64,
    pub bytes: u64,
    pub skipped_binary: u64,
    pub errors: Vec<ReadError>,
}

/// The findings of one file.
#[derive(Debug)]
pub struct FileFindings {
    pub path: PathBuf,
    pub findings: Vec<Finding>,
}

enum FileOutcome {
    Scanned(u64),
    Binary,
}

#[derive(Default)]
struct Shared {
    files: AtomicU64,
    bytes: AtomicU64,
    binary: AtomicU64,
    errors: Mutex<Vec<ReadError>>,
    found: Mutex<Vec<FileFindings>>,
}

/// Walks `paths` (files or directories) and scans every file. Results are
/// sorted by path so output is the same from run to run.
pub fn scan_paths(engine: &Engine, paths: &[PathBuf], options: &WalkOptions) -> (Vec<FileFindings>, WalkStats) {
    let shared = Shared::default();
    if let Some(walker) = walker(paths, options) {
        walker.build_parallel().run(|| {
            let mut stream = Stream::new(engine);
            let shared = &shared;
            Box::new(move |entry| {
                visit(entry, &mut stream, options, shared);
                WalkState::Continue
            })
        });
    }
    let mut found = shared.found.into_inner().unwrap_or_else(|e| e.into_inner());
    found.sort_by(|a, b| a.path.cmp(&b.path));
    let mut errors = shared.errors.into_inner().unwrap_or_else(|e| e.into_inner());
    errors.sort_by(|a, b| a.path.cmp(&b.path));
    let stats = WalkStats {
        files: shared.files.into_inner(),
        bytes: shared.bytes.into_inner(),
        skipped_binary: shared.binary.into_inner(),
        errors,
    };
    (found, stats)
}

fn walker(paths: &[PathBuf], options: &WalkOptions) -> Option<WalkBuilder> {
    let (first, rest) = paths.split_first()?;
    let mut builder = WalkBuilder::new(first);
    for path in rest {
        builder.add(path);
    }
    builder
        .hidden(false)
        .git_ignore(true)
        .git_exclude(true)
        .git_global(false)
        .require_git(false)
        .parents(true)
        .follow_links(false)
        .add_custom_ignore_filename(IGNORE_FILE)
        .filter_entry(|entry| entry.file_name() != ".git")
        .threads(options.threads.max(1));
    Some(builder)
}

fn visit(entry: Result<ignore::DirEntry, ignore::Error>, stream: &mut Stream, options: &WalkOptions, shared: &Shared) {
    let entry = match entry {
        Ok(entry) => entry,
        Err(err) => return record_error(shared, error_path(&err), err.to_string()),
    };
    if !entry.file_type().is_some_and(|t| t.is_file()) {
        return;
    }
    let mut findings = Vec::new();
    match scan_file(entry.path(), stream, options.binary, &mut findings) {
        Ok(FileOutcome::Scanned(bytes)) => {
            shared.files.fetch_add(1, Ordering::Relaxed);
            shared.bytes.fetch_add(bytes, Ordering::Relaxed);
            if !findings.is_empty() {
                let mut found = shared.found.lock().unwrap_or_else(|e| e.into_inner());
                found.push(FileFindings {
                    path: entry.path().to_path_buf(),
                    findings,
                });
            }
        }
        Ok(FileOutcome::Binary) => {
            shared.binary.fetch_add(1, Ordering::Relaxed);
        }
        Err(err) => record_error(shared, entry.path().to_path_buf(), err.to_string()),
    }
}

fn record_error(shared: &Shared, path: PathBuf, message: String) {
    shared
        .errors
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(ReadError { path, message });
}

fn error_path(err: &ignore::Error) -> PathBuf {
    match err {
        ignore::Error::WithPath { path, .. } => path.clone(),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => error_path(err),
        _ => PathBuf::new(),
    }
}

fn scan_file(path: &Path, stream: &mut Stream, binary: bool, out: &mut Vec<Finding>) -> io::Result<FileOutcome> {
    let file = File::open(path)?;
    match scan_reader(file, stream, binary, out)? {
        Some(bytes) => Ok(FileOutcome::Scanned(bytes)),
        None => Ok(FileOutcome::Binary),
    }
}

/// Scans everything `reader` yields. Returns the byte count, or `None` when
/// the input looks binary and `binary` is off.
pub fn scan_reader(mut reader: impl Read, stream: &mut Stream, binary: bool, out: &mut Vec<Finding>) -> io::Result<Option<u64>> {
    let mut sniffing = !binary;
    loop {
        let spare = stream.spare();
        let n = match reader.read(spare) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => {
                stream.reset();
                return Err(err);
            }
        };
        if sniffing {
            if memchr::memchr(0, &spare[..n.min(BINARY_SNIFF)]).is_some() {
                stream.reset();
                return Ok(None);
            }
            sniffing = stream.position() + (n as u64) < BINARY_SNIFF as u64;
        }
        stream.advance(n, out);
    }
    let bytes = stream.position();
    stream.finish(out);
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{EngineOptions, RuleSet};

    const GHP: &str = "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";

    fn engine() -> Engine {
        Engine::new(RuleSet::builtin(), EngineOptions::default()).unwrap()
    }

    #[test]
    fn walk_respects_gitignore_and_scans_dotfiles() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".gitignore"), "ignored.txt\n").unwrap();
        std::fs::write(dir.path().join("ignored.txt"), GHP).unwrap();
        std::fs::write(dir.path().join(".env"), GHP).unwrap();
        std::fs::write(dir.path().join("bin.dat"), [b"\0\0".as_slice(), GHP.as_bytes()].concat()).unwrap();
        let (found, stats) = scan_paths(&engine(), &[dir.path().to_path_buf()], &WalkOptions::default());
        let names: Vec<_> = found.iter().map(|f| f.path.file_name().unwrap().to_str().unwrap()).collect();
        assert_eq!(names, vec![".env"]);
        assert_eq!(stats.skipped_binary, 1);
    }

    #[test]
    fn binary_flag_scans_binary_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bin.dat"), [b"\0\0 ".as_slice(), GHP.as_bytes()].concat()).unwrap();
        let options = WalkOptions {
            binary: true,
            ..WalkOptions::default()
        };
        let (found, _) = scan_paths(&engine(), &[dir.path().to_path_buf()], &options);
        assert_eq!(found.len(), 1);
    }

    #[test]
    fn missing_path_is_an_error_not_a_panic() {
        let (found, stats) = scan_paths(&engine(), &[PathBuf::from("/nonexistent/keyward")], &WalkOptions::default());
        assert!(found.is_empty());
        assert_eq!(stats.errors.len(), 1);
    }
}
