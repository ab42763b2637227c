//! Watched local paths (notify): a file saved under a watched directory is
//! scanned again once its events settle, and new tokens in it go to the
//! leak response.
//!
//! Events are debounced (a save is often several writes and a rename), then
//! handled on one dedicated thread, never on the async runtime. A path that
//! no longer exists was deleted or renamed away and is forgotten; the new
//! name of a rename is a path like any other. A token already reported for a
//! file is not reported again when the file is saved with it unchanged.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::RecursiveMode;
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};

use super::files::{self, WalkOptions};
use super::pushes::report_all;
use super::{Sighting, SourceError};
use crate::engine::{Engine, Finding};
use crate::response::LeakResponder;
use crate::store::{now_ms, Place, SourceOutcome};

pub const SOURCE: &str = "watch";
/// Long enough to see an editor's write-and-rename as one save.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// Watching stops when this is dropped.
pub struct Watch {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
}

/// Starts watching `paths` (recursively). Findings are reported through
/// `runtime`, from the watch thread.
pub fn start(
    paths: &[PathBuf],
    engine: Arc<Engine>,
    responder: Arc<LeakResponder>,
    runtime: tokio::runtime::Handle,
) -> Result<Watch, SourceError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let mut debouncer = new_debouncer(DEBOUNCE, None, tx).map_err(|e| SourceError::Config(format!("file watcher: {e}")))?;
    for path in paths {
        debouncer
            .watch(path, RecursiveMode::Recursive)
            .map_err(|e| SourceError::Config(format!("watching {}: {e}", path.display())))?;
    }
    std::thread::Builder::new()
        .name("keyward-watch".into())
        .spawn(move || handle_events(&rx, &engine, &responder, &runtime))
        .map_err(|e| SourceError::Config(format!("watch thread: {e}")))?;
    Ok(Watch { _debouncer: debouncer })
}

/// Runs until the debouncer, and with it the sender, is dropped.
fn handle_events(rx: &Receiver<DebounceEventResult>, engine: &Engine, responder: &LeakResponder, runtime: &tokio::runtime::Handle) {
    let mut reported: HashMap<PathBuf, HashSet<String>> = HashMap::new();
    for result in rx {
        let outcome = match result {
            Ok(events) => {
                let oldest = events.iter().map(|e| e.time).min().unwrap_or_else(Instant::now);
                let paths: BTreeSet<PathBuf> = events
                    .iter()
                    .flat_map(|e| e.paths.iter().cloned())
                    .filter(|p| !p.components().any(|c| c.as_os_str() == ".git"))
                    .collect();
                if paths.is_empty() {
                    continue;
                }
                let sightings = rescan(engine, &paths, &mut reported);
                match runtime.block_on(report_all(responder, &sightings)) {
                    Ok(()) => SourceOutcome::Ok {
                        lag_ms: oldest.elapsed().as_millis() as i64,
                    },
                    Err(e) => SourceOutcome::Failed(e.to_string()),
                }
            }
            Err(errors) => SourceOutcome::Failed(errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")),
        };
        let store = responder.service().store();
        if let Err(e) = runtime.block_on(store.record_source_event(SOURCE, SOURCE, &outcome, now_ms())) {
            tracing::warn!(error = %e, "watch status not recorded");
        }
    }
}

/// Scans the changed paths; returns the tokens not reported before for
/// the file they are in.
fn rescan(engine: &Engine, paths: &BTreeSet<PathBuf>, reported: &mut HashMap<PathBuf, HashSet<String>>) -> Vec<Sighting> {
    let existing: Vec<PathBuf> = paths.iter().filter(|p| p.exists()).cloned().collect();
    for gone in paths.iter().filter(|p| !p.exists()) {
        reported.retain(|path, _| !path.starts_with(gone));
    }
    let (found, stats) = files::scan_paths(engine, &existing, &WalkOptions::default());
    crate::metrics::Metrics::add(&crate::metrics::METRICS.bytes_scanned, stats.bytes);
    for error in &stats.errors {
        tracing::warn!(path = %error.path.display(), error = %error.message, "watched file unreadable");
    }
    // A file saved without its token forgets it, so putting it back is news.
    let with_findings: HashSet<&Path> = found.iter().map(|f| f.path.as_path()).collect();
    for path in existing.iter().filter(|p| p.is_file() && !with_findings.contains(p.as_path())) {
        reported.remove(path);
    }
    let mut sightings = Vec::new();
    for file in found {
        let ids: HashSet<String> = file.findings.iter().map(|f| f.finding_id.clone()).collect();
        let before = reported.insert(file.path.clone(), ids).unwrap_or_default();
        let new = file.findings.into_iter().filter(|f| !f.allowed && !before.contains(&f.finding_id));
        sightings.extend(new.map(|finding| sighting(&file.path, finding)));
    }
    sightings
}

fn sighting(path: &Path, finding: Finding) -> Sighting {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
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
