//! A history walked commit by commit: each unique blob scanned once and
//! attributed to the commit that introduced it. [`super::history`] reads
//! whole object databases faster; this walk serves one branch's history,
//! and any repository that path cannot read.
//!
//! The walk runs on the calling thread: commits parents-first, and a tree is
//! entered only if it was not seen before, so each blob is met once, at its
//! first commit. New blobs go in batches through a bounded channel to
//! scanning threads. Memory holds the sets of seen ids and a few batches,
//! never the history's content. Trees are walked with an explicit stack,
//! and one deeper than [`MAX_TREE_DEPTH`] is reported and not entered.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;

use gix::hashtable::HashSet;
use gix::prelude::FindExt;
use gix::ObjectId;

use super::{
    attribute, first_sightings, parents_first, scan_blob, shown_path, tree_of, BlobOutcome, GitError, GitScan, GitStats, Progress,
    MAX_TREE_DEPTH,
};
use crate::engine::{Engine, Finding, Stream};

/// New blobs per channel message: enough to make the channel's cost vanish.
const BATCH: usize = 256;

/// A blob met for the first time, at the commit in position `commit`.
struct NewBlob {
    id: ObjectId,
    commit: usize,
    path: String,
}

#[derive(Default)]
struct Seen {
    trees: HashSet<ObjectId>,
    blobs: HashSet<ObjectId>,
}

type Sighting = (usize, String, Finding);

/// Scans the history of the commits `tips` lead to.
pub(super) fn walk_history(
    engine: &Engine,
    repo: &gix::Repository,
    tips: Vec<ObjectId>,
    threads: usize,
    binary: bool,
    progress: &Progress,
) -> Result<GitScan, GitError> {
    let commits = parents_first(repo, tips, Vec::new())?;
    let mut seen = Seen::default();
    let mut errors = Vec::new();
    let mut deep_trees = Vec::new();

    let ids: Vec<ObjectId> = commits.iter().map(|c| c.id).collect();
    let shared = repo.clone().into_sync();
    let threads = threads.max(1);
    let (tx, rx) = sync_channel::<Vec<NewBlob>>(threads * 4);
    let rx = Mutex::new(rx);
    let results: Vec<(Vec<Sighting>, GitStats)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| scope.spawn(|| scan_worker(&shared.to_thread_local(), engine, &rx, binary, progress)))
            .collect();
        let mut skipped = Skipped {
            errors: &mut errors,
            deep_trees: &mut deep_trees,
        };
        walk_commits(repo, &ids, &mut seen, tx, progress, &mut skipped);
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    });

    let mut stats = GitStats {
        commits: ids.len() as u64,
        errors,
        deep_trees,
        ..GitStats::default()
    };
    let mut found = Vec::new();
    for (sightings, worker_stats) in results {
        found.extend(sightings);
        stats.absorb(worker_stats);
    }
    let findings = attribute(repo, &ids, first_sightings(found))?;
    Ok(GitScan {
        findings,
        stats,
        workdir: repo.workdir().map(std::path::Path::to_path_buf),
    })
}

/// What a walk could not enter: unreadable objects and too-deep trees.
struct Skipped<'a> {
    errors: &'a mut Vec<String>,
    deep_trees: &'a mut Vec<String>,
}

fn walk_commits(
    repo: &gix::Repository,
    commits: &[ObjectId],
    seen: &mut Seen,
    tx: SyncSender<Vec<NewBlob>>,
    progress: &Progress,
    skipped: &mut Skipped<'_>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    for (at, id) in commits.iter().enumerate() {
        match tree_of(repo, *id) {
            Ok(tree) => walk_tree(repo, tree, seen, skipped, &mut |blob, path| {
                batch.push(NewBlob {
                    id: blob,
                    commit: at,
                    path: String::from_utf8_lossy(path).into_owned(),
                });
                if batch.len() == BATCH {
                    // A send fails only when every worker is gone, and then
                    // the scope re-raises the worker's panic.
                    let _ = tx.send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)));
                }
            }),
            Err(err) => skipped.errors.push(format!("commit {id}: {err}")),
        }
        progress.commits.fetch_add(1, Ordering::Relaxed);
    }
    if !batch.is_empty() {
        let _ = tx.send(batch);
    }
}

/// One tree being walked: its entries still to visit, and the length of
/// its path in the shared path buffer.
struct Frame {
    entries: std::vec::IntoIter<(bool, ObjectId, Vec<u8>)>,
    path_len: usize,
}

/// Walks `root` unless seen, and calls `emit` for each blob not seen
/// before, with its full path. Symlinks and submodules are not content.
fn walk_tree(repo: &gix::Repository, root: ObjectId, seen: &mut Seen, skipped: &mut Skipped<'_>, emit: &mut dyn FnMut(ObjectId, &[u8])) {
    let mut path = Vec::new();
    let mut stack: Vec<Frame> = enter(repo, root, &path, seen, skipped)
        .map(|entries| Frame { entries, path_len: 0 })
        .into_iter()
        .collect();
    while let Some(frame) = stack.last_mut() {
        let Some((is_tree, id, name)) = frame.entries.next() else {
            stack.pop();
            continue;
        };
        path.truncate(frame.path_len);
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(&name);
        if !is_tree {
            if seen.blobs.insert(id) {
                emit(id, &path);
            }
        } else if stack.len() >= MAX_TREE_DEPTH {
            skipped.deep_trees.push(shown_path(&path));
        } else if let Some(entries) = enter(repo, id, &path, seen, skipped) {
            stack.push(Frame {
                entries,
                path_len: path.len(),
            });
        }
    }
}

/// The entries of `tree` still worth visiting, or `None` when it was seen
/// before or cannot be read.
fn enter(
    repo: &gix::Repository,
    tree: ObjectId,
    path: &[u8],
    seen: &mut Seen,
    skipped: &mut Skipped<'_>,
) -> Option<std::vec::IntoIter<(bool, ObjectId, Vec<u8>)>> {
    if !seen.trees.insert(tree) {
        return None;
    }
    let mut buf = Vec::new();
    match repo.objects.find_tree(&tree, &mut buf) {
        Ok(decoded) => Some(
            decoded
                .entries
                .iter()
                .filter(|e| match (e.mode.is_tree(), e.mode.is_blob()) {
                    (true, _) => !seen.trees.contains(e.oid),
                    (false, true) => !seen.blobs.contains(e.oid),
                    (false, false) => false,
                })
                .map(|e| (e.mode.is_tree(), e.oid.to_owned(), e.filename.to_vec()))
                .collect::<Vec<_>>()
                .into_iter(),
        ),
        Err(err) => {
            skipped.errors.push(format!("tree {tree} at {}: {err}", shown_path(path)));
            None
        }
    }
}

fn scan_worker(
    repo: &gix::Repository,
    engine: &Engine,
    rx: &Mutex<Receiver<Vec<NewBlob>>>,
    binary: bool,
    progress: &Progress,
) -> (Vec<Sighting>, GitStats) {
    let mut stream = Stream::new(engine);
    let mut buf = Vec::new();
    let mut found = Vec::new();
    let mut stats = GitStats::default();
    loop {
        let received = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(batch) = received else { break };
        for blob in batch {
            let mut findings = Vec::new();
            match scan_blob(repo, &blob.id, &mut stream, binary, &mut buf, &mut findings) {
                Ok(outcome) => {
                    if let BlobOutcome::Scanned(bytes) = outcome {
                        progress.blobs.fetch_add(1, Ordering::Relaxed);
                        progress.bytes.fetch_add(bytes, Ordering::Relaxed);
                    }
                    stats.count(&outcome, &blob.path);
                }
                Err(err) => stats.errors.push(format!("{} (blob {}): {err}", blob.path, blob.id)),
            }
            found.extend(findings.into_iter().map(|f| (blob.commit, blob.path.clone(), f)));
            // One huge blob must not pin its buffer for the rest of the scan.
            if buf.capacity() > 64 << 20 {
                buf = Vec::new();
            }
        }
    }
    (found, stats)
}
