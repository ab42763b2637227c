//! Files, directories and readers: a parallel, gitignore-aware walk that
//! reads each file in chunks straight into an engine [`Stream`].
//!
//! One unreadable file is counted and reported, and the walk goes on; so is
//! a file over the size limit, which is skipped without being opened (a
//! sparse file can claim terabytes). A FIFO or character device is read
//! only when named as a root (`scan /dev/stdin`, `scan <(…)`), up to the
//! same limit; met inside a directory it could block the walk forever.
//! UTF-16 text is decoded before scanning ([`super::utf16`]). Scanning runs
//! on the walker's own threads, never on an async runtime.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use ignore::{WalkBuilder, WalkState};

use super::utf16;
use crate::engine::{Engine, Finding, Stream};

/// Ignore files honoured during the walk, besides `.gitignore` and `.ignore`.
pub const IGNORE_FILE: &str = ".keywardignore";

/// Files larger than this are skipped and reported unless told otherwise:
/// the same limit as for git blobs.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 256 << 20;

/// How many leading bytes decide whether a file is binary (as git does).
const BINARY_SNIFF: usize = 8192;

#[derive(Debug, Clone)]
pub struct WalkOptions {
    /// Scan files that look binary (a NUL byte near the start).
    pub binary: bool,
    pub threads: usize,
    /// Files larger than this are skipped and reported.
    pub max_file_bytes: u64,
}

impl Default for WalkOptions {
    fn default() -> Self {
        WalkOptions {
            binary: false,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
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
    /// Files over [`WalkOptions::max_file_bytes`] and their size, skipped;
    /// for a FIFO or device, read only up to the limit (size unknown: 0).
    pub oversized: Vec<(PathBuf, u64)>,
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
    /// Over the limit: not read, or for a stream, read only up to it.
    Oversized(u64),
}

#[derive(Default)]
struct Shared {
    files: AtomicU64,
    bytes: AtomicU64,
    binary: AtomicU64,
    oversized: Mutex<Vec<(PathBuf, u64)>>,
    errors: Mutex<Vec<ReadError>>,
    found: Mutex<Vec<FileFindings>>,
}

/// Walks `paths` (files or directories) and scans every file. Results are
/// sorted by path so output is the same from run to run.
pub fn scan_paths(engine: &Engine, paths: &[PathBuf], options: &WalkOptions) -> (Vec<FileFindings>, WalkStats) {
    let shared = Shared::default();
    let (streams, paths): (Vec<PathBuf>, Vec<PathBuf>) = paths.iter().cloned().partition(|p| is_stream(p));
    if !streams.is_empty() {
        let mut stream = Stream::new(engine);
        for path in &streams {
            let scanned = scan_named_stream(path, &mut stream, options);
            record(&shared, path, scanned);
        }
    }
    if let Some(walker) = walker(&paths, options) {
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
    let mut oversized = shared.oversized.into_inner().unwrap_or_else(|e| e.into_inner());
    oversized.sort();
    let stats = WalkStats {
        files: shared.files.into_inner(),
        bytes: shared.bytes.into_inner(),
        skipped_binary: shared.binary.into_inner(),
        oversized,
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
    let scanned = match entry.metadata() {
        Ok(meta) if meta.len() > options.max_file_bytes => Ok((FileOutcome::Oversized(meta.len()), Vec::new())),
        Ok(_) => scan_file(entry.path(), stream, options),
        Err(err) => Err(io::Error::other(err)),
    };
    record(shared, entry.path(), scanned);
}

fn record(shared: &Shared, path: &Path, scanned: io::Result<(FileOutcome, Vec<Finding>)>) {
    match scanned {
        Ok((outcome, findings)) => {
            match outcome {
                FileOutcome::Scanned(bytes) => {
                    shared.files.fetch_add(1, Ordering::Relaxed);
                    shared.bytes.fetch_add(bytes, Ordering::Relaxed);
                }
                FileOutcome::Binary => {
                    shared.binary.fetch_add(1, Ordering::Relaxed);
                }
                FileOutcome::Oversized(size) => {
                    shared
                        .oversized
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((path.to_path_buf(), size));
                }
            }
            if !findings.is_empty() {
                let mut found = shared.found.lock().unwrap_or_else(|e| e.into_inner());
                found.push(FileFindings {
                    path: path.to_path_buf(),
                    findings,
                });
            }
        }
        Err(err) => record_error(shared, path.to_path_buf(), err.to_string()),
    }
}

/// A FIFO or character device, following symlinks (`/dev/stdin`).
fn is_stream(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo() || m.file_type().is_char_device())
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

/// Reads a stream named on the command line up to the size limit; more
/// than that makes it oversized, with what was read still scanned.
fn scan_named_stream(path: &Path, stream: &mut Stream, options: &WalkOptions) -> io::Result<(FileOutcome, Vec<Finding>)> {
    let mut limited = File::open(path)?.take(options.max_file_bytes);
    let mut findings = Vec::new();
    let outcome = match scan_reader(&mut limited, stream, options.binary, &mut findings)? {
        None => return Ok((FileOutcome::Binary, findings)),
        Some(bytes) => {
            let mut more = [0u8; 1];
            if limited.into_inner().read(&mut more)? > 0 {
                FileOutcome::Oversized(0)
            } else {
                FileOutcome::Scanned(bytes)
            }
        }
    };
    Ok((outcome, findings))
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

fn scan_file(path: &Path, stream: &mut Stream, options: &WalkOptions) -> io::Result<(FileOutcome, Vec<Finding>)> {
    // A file that grows while it is read stops at the limit.
    let file = File::open(path)?.take(options.max_file_bytes);
    let mut findings = Vec::new();
    let outcome = match scan_reader(file, stream, options.binary, &mut findings)? {
        Some(bytes) => FileOutcome::Scanned(bytes),
        None => FileOutcome::Binary,
    };
    Ok((outcome, findings))
}

/// Scans everything `reader` yields. Returns the byte count, or `None` when
/// the input looks binary and `binary` is off. UTF-16 text (a byte order
/// mark, or NULs beside ASCII) is decoded and scanned, binary or not, with
/// offsets in the original bytes.
pub fn scan_reader(mut reader: impl Read, stream: &mut Stream, binary: bool, out: &mut Vec<Finding>) -> io::Result<Option<u64>> {
    let mut head = Vec::with_capacity(BINARY_SNIFF);
    let eof = match fill(&mut reader, &mut head) {
        Ok(eof) => eof,
        Err(err) => {
            stream.reset();
            return Err(err);
        }
    };
    if let Some(encoding) = utf16::detect(&head) {
        return utf16::scan(encoding, &head, reader, stream, out).map(Some);
    }
    if !binary && memchr::memchr(0, &head).is_some() {
        stream.reset();
        return Ok(None);
    }
    let mut sniffed = &head[..];
    while !sniffed.is_empty() {
        let spare = stream.spare();
        let n = spare.len().min(sniffed.len());
        spare[..n].copy_from_slice(&sniffed[..n]);
        stream.advance(n, out);
        sniffed = &sniffed[n..];
    }
    if !eof {
        if let Err(err) = read_all(&mut reader, stream, out) {
            stream.reset();
            return Err(err);
        }
    }
    let bytes = stream.position();
    stream.finish(out);
    Ok(Some(bytes))
}

/// Feeds the rest of `reader` to the stream.
fn read_all(reader: &mut impl Read, stream: &mut Stream, out: &mut Vec<Finding>) -> io::Result<()> {
    loop {
        let n = match reader.read(stream.spare()) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        stream.advance(n, out);
    }
}

/// Reads up to [`BINARY_SNIFF`] bytes into `head`; true when the input
/// ended before that.
fn fill(reader: &mut impl Read, head: &mut Vec<u8>) -> io::Result<bool> {
    let mut buf = [0u8; BINARY_SNIFF];
    let mut filled = 0;
    while filled < BINARY_SNIFF {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => {
                head.extend_from_slice(&buf[..filled]);
                return Ok(true);
            }
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    head.extend_from_slice(&buf);
    Ok(false)
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
