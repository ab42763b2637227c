//! Watched local paths (notify): a file saved under a watched directory is
//! scanned again once its events settle, and new tokens in it go to the
//! leak response.
//!
//! Events are debounced (a save is often several writes and a rename), then
//! handed to a small pool of scanning threads, never the async runtime: a
//! large file holds up one thread, not the paths behind it. A path is
//! scanned by one thread at a time; saved again meanwhile, it is scanned
//! once more when that scan ends. A path that no longer exists was deleted or renamed away and is
//! forgotten; the new name of a rename is a path like any other. A token
//! already reported for a file is not reported again when the file is saved
//! with it unchanged.
//!
//! Anyone who can write to a watched directory must not be able to make the
//! daemon read, and revoke keys from, files outside it: symlinks are never
//! followed (not by the watcher, not by the walk, not when a file is
//! opened), a path is scanned only if it resolves inside a watched root, and
//! only regular files and directories are read. Files over the size limit
//! are skipped and logged.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use notify::RecursiveMode;
use notify_debouncer_full::{new_debouncer_opt, DebounceEventResult, Debouncer, RecommendedCache};

use super::files::{self, WalkOptions, DEFAULT_MAX_FILE_BYTES};
use super::pushes::report_all;
use super::{Sighting, SourceError};
use crate::engine::{Engine, Finding, Stream};
use crate::response::LeakResponder;
use crate::store::{now_ms, Place, SourceOutcome};

pub const SOURCE: &str = "watch";
/// Long enough to see an editor's write-and-rename as one save.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// How watched paths are scanned.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Files larger than this are skipped and logged.
    pub max_file_bytes: u64,
    /// Scanning threads.
    pub threads: usize,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 4),
        }
    }
}

/// Watching stops when this is dropped.
pub struct Watch {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
}

/// Starts watching `paths` (recursively) with the default options.
/// Findings are reported through `runtime`, from the scanning threads.
pub fn start(
    paths: &[PathBuf],
    engine: Arc<Engine>,
    responder: Arc<LeakResponder>,
    runtime: tokio::runtime::Handle,
) -> Result<Watch, SourceError> {
    start_with(paths, WatchOptions::default(), engine, responder, runtime)
}

/// Starts watching `paths` (recursively).
pub fn start_with(
    paths: &[PathBuf],
    options: WatchOptions,
    engine: Arc<Engine>,
    responder: Arc<LeakResponder>,
    runtime: tokio::runtime::Handle,
) -> Result<Watch, SourceError> {
    let roots = paths
        .iter()
        .map(|p| {
            p.canonicalize()
                .map_err(|e| SourceError::Config(format!("watching {}: {e}", p.display())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (tx, rx) = std::sync::mpsc::channel();
    let config = notify::Config::default().with_follow_symlinks(false);
    let mut debouncer = new_debouncer_opt(DEBOUNCE, None, tx, RecommendedCache::new(), config)
        .map_err(|e| SourceError::Config(format!("file watcher: {e}")))?;
    for path in paths {
        debouncer
            .watch(path, RecursiveMode::Recursive)
            .map_err(|e| SourceError::Config(format!("watching {}: {e}", path.display())))?;
    }
    let shared = Arc::new(Shared {
        engine,
        responder,
        runtime,
        roots,
        max_file_bytes: options.max_file_bytes,
        reported: Mutex::new(HashMap::new()),
        busy: Mutex::new(Busy::default()),
    });
    let (job_tx, job_rx) = std::sync::mpsc::channel::<Job>();
    let job_rx = Arc::new(Mutex::new(job_rx));
    for n in 0..options.threads.max(1) {
        let (shared, job_rx) = (shared.clone(), job_rx.clone());
        std::thread::Builder::new()
            .name(format!("keyward-watch-{n}"))
            .spawn(move || scan_jobs(&job_rx, &shared))
            .map_err(|e| SourceError::Config(format!("watch thread: {e}")))?;
    }
    std::thread::Builder::new()
        .name("keyward-watch".into())
        .spawn(move || dispatch(&rx, &job_tx, &shared))
        .map_err(|e| SourceError::Config(format!("watch thread: {e}")))?;
    Ok(Watch { _debouncer: debouncer })
}

/// What the scanning threads share.
struct Shared {
    engine: Arc<Engine>,
    responder: Arc<LeakResponder>,
    runtime: tokio::runtime::Handle,
    /// The watched directories, resolved.
    roots: Vec<PathBuf>,
    max_file_bytes: u64,
    /// The tokens already reported, by file.
    reported: Mutex<HashMap<PathBuf, HashSet<String>>>,
    busy: Mutex<Busy>,
}

/// The paths being scanned, and those saved again meanwhile.
#[derive(Default)]
struct Busy {
    scanning: HashSet<PathBuf>,
    again: HashMap<PathBuf, Instant>,
}

/// One changed path, and when its oldest event happened.
struct Job {
    path: PathBuf,
    since: Instant,
}

/// Runs until the debouncer, and with it the sender, is dropped: queues
/// each changed path for the scanning threads.
fn dispatch(rx: &Receiver<DebounceEventResult>, jobs: &Sender<Job>, shared: &Shared) {
    for result in rx {
        match result {
            Ok(events) => {
                let since = events.iter().map(|e| e.time).min().unwrap_or_else(Instant::now);
                let paths: BTreeSet<PathBuf> = events
                    .iter()
                    .flat_map(|e| e.paths.iter().cloned())
                    .filter(|p| !p.components().any(|c| c.as_os_str() == ".git"))
                    .collect();
                for path in paths {
                    // A send fails only when every scanning thread is gone.
                    let _ = jobs.send(Job { path, since });
                }
            }
            Err(errors) => {
                let message = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
                shared.record(&SourceOutcome::Failed(message));
            }
        }
    }
}

fn scan_jobs(rx: &Mutex<Receiver<Job>>, shared: &Shared) {
    let mut stream = Stream::new(&shared.engine);
    loop {
        let received = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(mut job) = received else { return };
        if !shared.claim(&job) {
            continue;
        }
        loop {
            let sightings = shared.rescan(&job.path, &mut stream);
            let outcome = match shared.runtime.block_on(report_all(&shared.responder, &sightings)) {
                Ok(()) => SourceOutcome::Ok {
                    lag_ms: job.since.elapsed().as_millis() as i64,
                },
                Err(e) => SourceOutcome::Failed(e.to_string()),
            };
            shared.record(&outcome);
            match shared.release(&job.path) {
                Some(since) => job.since = since,
                None => break,
            }
        }
    }
}

impl Shared {
    /// Takes `job`'s path for this thread; false when another thread is
    /// scanning it, which will then scan it once more.
    fn claim(&self, job: &Job) -> bool {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        if busy.scanning.insert(job.path.clone()) {
            return true;
        }
        busy.again.entry(job.path.clone()).or_insert(job.since);
        false
    }

    /// Ends a scan of `path`; returns when it was saved again meanwhile,
    /// keeping it claimed for one more scan.
    fn release(&self, path: &Path) -> Option<Instant> {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        let again = busy.again.remove(path);
        if again.is_none() {
            busy.scanning.remove(path);
        }
        again
    }

    fn record(&self, outcome: &SourceOutcome) {
        let store = self.responder.service().store();
        if let Err(e) = self.runtime.block_on(store.record_source_event(SOURCE, SOURCE, outcome, now_ms())) {
            tracing::warn!(error = %e, "watch status not recorded");
        }
    }

    /// Scans one changed path; returns the tokens not reported before for
    /// the file they are in.
    fn rescan(&self, path: &Path, stream: &mut Stream) -> Vec<Sighting> {
        if std::fs::symlink_metadata(path).is_err() {
            let gone = resolved_parent(path);
            self.lock().retain(|known, _| !known.starts_with(&gone));
            return Vec::new();
        }
        let Some(target) = self.contained(path) else {
            return Vec::new();
        };
        let found = match target {
            Target::File(path) => self.scan_file(&path, stream).into_iter().collect(),
            Target::Dir(path) => self.scan_dir(&path),
        };
        self.news(found)
    }

    /// What `path` is, when it may be read: a regular file or a directory
    /// that is no symlink and lies inside a watched root once resolved.
    fn contained(&self, path: &Path) -> Option<Target> {
        let meta = std::fs::symlink_metadata(path).ok()?;
        let resolved = path.canonicalize().ok()?;
        if !self.roots.iter().any(|root| resolved.starts_with(root)) {
            tracing::warn!(path = %path.display(), "watched path resolves outside the watched directories; not read");
            return None;
        }
        if meta.file_type().is_file() {
            Some(Target::File(resolved))
        } else if meta.file_type().is_dir() {
            Some(Target::Dir(resolved))
        } else {
            None
        }
    }

    /// Scans one file, opened without following a symlink swapped in since
    /// it was checked.
    fn scan_file(&self, path: &Path, stream: &mut Stream) -> Option<(PathBuf, Vec<Finding>)> {
        let file = match open_no_follow(path) {
            Ok(file) => file,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "watched file unreadable");
                return None;
            }
        };
        let size = file.metadata().ok().filter(|m| m.is_file())?.len();
        if size > self.max_file_bytes {
            tracing::warn!(path = %path.display(), size, limit = self.max_file_bytes, "watched file over the size limit; not scanned");
            return Some((path.to_path_buf(), Vec::new()));
        }
        let mut findings = Vec::new();
        let limited = std::io::Read::take(file, self.max_file_bytes);
        match files::scan_reader(limited, stream, false, &mut findings) {
            Ok(bytes) => {
                crate::metrics::Metrics::add(&crate::metrics::METRICS.bytes_scanned, bytes.unwrap_or(0));
                Some((path.to_path_buf(), findings))
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "watched file unreadable");
                None
            }
        }
    }

    /// Scans a directory that appeared or moved in; the walk follows no
    /// symlink. Every regular file in it is listed, with or without findings.
    fn scan_dir(&self, dir: &Path) -> Vec<(PathBuf, Vec<Finding>)> {
        let options = WalkOptions {
            binary: false,
            threads: 1,
            max_file_bytes: self.max_file_bytes,
        };
        let (found, stats) = files::scan_paths(&self.engine, &[dir.to_path_buf()], &options);
        crate::metrics::Metrics::add(&crate::metrics::METRICS.bytes_scanned, stats.bytes);
        for error in &stats.errors {
            tracing::warn!(path = %error.path.display(), error = %error.message, "watched file unreadable");
        }
        for (path, size) in &stats.oversized {
            tracing::warn!(path = %path.display(), size, limit = self.max_file_bytes, "watched file over the size limit; not scanned");
        }
        let mut seen: Vec<(PathBuf, Vec<Finding>)> = found.into_iter().map(|f| (f.path, f.findings)).collect();
        let with_findings: HashSet<PathBuf> = seen.iter().map(|(p, _)| p.clone()).collect();
        let known: Vec<PathBuf> = self.lock().keys().filter(|k| k.starts_with(dir)).cloned().collect();
        seen.extend(known.into_iter().filter(|k| !with_findings.contains(k)).map(|k| (k, Vec::new())));
        seen
    }

    /// The findings not reported before for their file. A file scanned
    /// without its token forgets it, so putting it back is news.
    fn news(&self, scanned: Vec<(PathBuf, Vec<Finding>)>) -> Vec<Sighting> {
        let mut reported = self.lock();
        let mut sightings = Vec::new();
        for (path, findings) in scanned {
            if findings.is_empty() {
                reported.remove(&path);
                continue;
            }
            let ids: HashSet<String> = findings.iter().map(|f| f.finding_id.clone()).collect();
            let before = reported.insert(path.clone(), ids).unwrap_or_default();
            let new = findings.into_iter().filter(|f| !f.allowed && !before.contains(&f.finding_id));
            sightings.extend(new.map(|finding| sighting(&path, finding)));
        }
        sightings
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, HashSet<String>>> {
        self.reported.lock().unwrap_or_else(|e| e.into_inner())
    }
}

enum Target {
    File(PathBuf),
    Dir(PathBuf),
}

/// Opens `path` for reading, failing if it is a symlink, and without
/// blocking if it turned into a FIFO.
fn open_no_follow(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NOFOLLOW | libc::O_NONBLOCK);
    options.open(path)
}

/// A path that no longer exists, as it was known: its parent resolved.
fn resolved_parent(path: &Path) -> PathBuf {
    match (path.parent().and_then(|p| p.canonicalize().ok()), path.file_name()) {
        (Some(parent), Some(name)) => parent.join(name),
        _ => path.to_path_buf(),
    }
}

fn sighting(path: &Path, finding: Finding) -> Sighting {
    Sighting {
        place: Place {
            source_kind: SOURCE.into(),
            path: path.display().to_string(),
            line: i64::try_from(finding.line).ok(),
            url: format!("file://{}#L{}", path.display(), finding.line),
            ..Place::default()
        },
        finding,
    }
}
