//! Every unique blob of a history, scanned once and attributed to the
//! commit that introduced it.
//!
//! The whole object database is read in storage order rather than commit
//! by commit ([`objects`]): every blob is inflated once and scanned on
//! every core, whatever its delta chain. Only then is it known which few
//! blobs hold a finding (or are too large to scan, or missing), and only
//! those are placed in the history ([`graph`]): the commit that first holds
//! each one in parents-first order, and its path there. A blob that no ref
//! reaches is not reported. One branch's history ([`GitOptions::branch`])
//! is walked commit by commit instead ([`walk`]), and so is a repository
//! this path cannot read.

use gix::hashtable::HashMap;
use std::sync::atomic::Ordering;

use gix::objs::Kind;
use gix::ObjectId;

use super::graph::{TreeEdges, TreeGraph};
use super::objects::{Object, ObjectDb};
use super::{
    all_tips, attribute, first_sightings, open, resolve_commit, shown_path, topological, walk, Commit, GitError, GitOptions, GitScan,
    GitStats, Progress,
};
use crate::engine::{Engine, Finding, Stream};

/// Missing objects named per thread; past that a repository (a partial
/// clone) is summed up in one line instead of a line per object.
const MOST_MISSING_NAMED: usize = 1000;

/// Scans the history of `repo_path`: all refs, or `options.branch`.
pub fn scan_history(engine: &Engine, repo_path: &std::path::Path, options: &GitOptions, progress: &Progress) -> Result<GitScan, GitError> {
    let mut repo = open(repo_path)?;
    super::widen_delta_cache(&mut repo)?;
    let threads = options.threads.max(1);
    if let Some(branch) = &options.branch {
        let tip = resolve_commit(&repo, branch)?;
        return walk::walk_history(engine, &repo, vec![tip], threads, options.binary, progress);
    }
    let tips = all_tips(&repo)?;
    match scan_object_db(engine, &repo, tips.clone(), threads, options.binary, progress) {
        Ok(scan) => Ok(scan),
        Err(err) => {
            tracing::debug!("reading the object database whole failed ({err}); walking the history instead");
            progress.blobs.store(0, Ordering::Relaxed);
            progress.bytes.store(0, Ordering::Relaxed);
            walk::walk_history(engine, &repo, tips, threads, options.binary, progress)
        }
    }
}

fn scan_object_db(
    engine: &Engine,
    repo: &gix::Repository,
    tips: Vec<ObjectId>,
    threads: usize,
    binary: bool,
    progress: &Progress,
) -> Result<GitScan, GitError> {
    let db = ObjectDb::open(repo)?;
    let shared = repo.clone().into_sync();
    let scanned = db.visit(
        &shared,
        Kind::Blob,
        threads,
        || BlobScan::new(engine),
        |scan, id, object| scan.see(id, object, binary, progress),
    )?;
    let blobs = Blobs::merge(scanned);
    let commits = db.visit(&shared, Kind::Commit, threads, Vec::new, |found, id, object| {
        if let Object::Data(data) = object {
            found.push((id.to_owned(), commit_links(data, id.kind())));
        }
    })?;
    let order = reachable_parents_first(repo, tips, commits.into_iter().flatten().collect())?;
    progress.commits.store(order.len() as u64, Ordering::Relaxed);

    let trees = db.ids(Kind::Tree);
    let numbers = TreeGraph::numbering(&trees);
    let edges = db.visit(&shared, Kind::Tree, threads, TreeEdges::default, |edges, id, object| {
        record_tree(edges, &numbers, &blobs.leaf, id, object)
    })?;
    let unreadable_trees: Vec<String> = edges
        .iter()
        .flat_map(|e| e.unreadable.iter().map(|id| format!("tree {id}: could not be read")))
        .collect();
    let more_missing = edges.iter().any(|e| e.more_missing);
    let mut graph = TreeGraph::new(trees, numbers, edges);
    let roots: Vec<Option<u32>> = order.iter().map(|(_, tree)| tree.and_then(|t| graph.number(&t))).collect();
    let (placed, deep_trees) = graph.place(repo, &roots);

    let mut stats = GitStats {
        commits: order.len() as u64,
        blobs: blobs.scanned,
        bytes: blobs.bytes,
        skipped_binary: blobs.binary,
        deep_trees: deep_trees.iter().map(|p| shown_path(p)).collect(),
        ..GitStats::default()
    };
    for (id, tree) in &order {
        if tree.is_none_or(|t| graph.number(&t).is_none()) {
            stats.errors.push(format!("commit {id}: its tree is missing"));
        }
    }
    let mut found = Vec::new();
    for place in placed {
        let path = String::from_utf8_lossy(&place.path).into_owned();
        if let Some(findings) = blobs.findings.get(&place.leaf) {
            found.extend(findings.iter().map(|f| (place.commit, path.clone(), f.clone())));
        } else if let Some(size) = blobs.oversized.get(&place.leaf) {
            stats.skipped_large += 1;
            stats.oversized.push((shown_path(&place.path), *size));
        } else {
            let reason = blobs.unreadable.get(&place.leaf).map_or("object not found", String::as_str);
            stats
                .errors
                .push(format!("{} (object {}): {reason}", shown_path(&place.path), place.leaf));
        }
    }
    stats.errors.extend(unreadable_trees);
    stats.errors.sort();
    if more_missing {
        stats.errors.push(format!(
            "more than {MOST_MISSING_NAMED} objects are missing (a partial clone?); not all are named"
        ));
    }
    let ids: Vec<ObjectId> = order.iter().map(|(id, _)| *id).collect();
    let findings = attribute(repo, &ids, first_sightings(found))?;
    Ok(GitScan {
        findings,
        stats,
        workdir: repo.workdir().map(std::path::Path::to_path_buf),
    })
}

/// A commit's tree and parents, from its raw data.
fn commit_links(data: &[u8], hash: gix::hash::Kind) -> (Option<ObjectId>, Vec<ObjectId>) {
    let mut commit = gix::objs::CommitRefIter::from_bytes(data, hash);
    let tree = commit.tree_id().ok();
    let parents = commit.parent_ids().collect();
    (tree, parents)
}

/// The commits the tips lead to, parents first, each with its tree: the
/// same order as [`super::parents_first`] (a breadth-first walk from the
/// sorted tips, then Kahn's algorithm), so both paths attribute a blob to
/// the same commit. The commits at a shallow clone's boundary count as
/// parentless, and a parent the repository lacks is left out.
fn reachable_parents_first(
    repo: &gix::Repository,
    tips: Vec<ObjectId>,
    links: HashMap<ObjectId, (Option<ObjectId>, Vec<ObjectId>)>,
) -> Result<Vec<(ObjectId, Option<ObjectId>)>, GitError> {
    let shallow = repo.shallow_commits().map_err(super::read_error)?;
    let is_shallow = |id: &ObjectId| shallow.as_ref().is_some_and(|s| s.iter().any(|c| c == id));
    let mut queue: std::collections::VecDeque<ObjectId> = tips.into_iter().filter(|t| links.contains_key(t)).collect();
    let mut seen: gix::hashtable::HashSet<ObjectId> = queue.iter().copied().collect();
    let mut commits = Vec::new();
    while let Some(id) = queue.pop_front() {
        let known: Vec<ObjectId> = links[&id].1.iter().filter(|p| links.contains_key(*p)).copied().collect();
        for parent in &known {
            if seen.insert(*parent) {
                queue.push_back(*parent);
            }
        }
        let parents = if is_shallow(&id) { Vec::new() } else { known };
        commits.push(Commit { id, parents });
    }
    Ok(topological(commits).into_iter().map(|c| (c.id, links[&c.id].0)).collect())
}

/// Records a tree's subtrees and the leaves it holds: blobs with something
/// to report, and objects that are missing.
fn record_tree(edges: &mut TreeEdges, numbers: &HashMap<ObjectId, u32>, leaf: &HashMap<ObjectId, bool>, id: &gix::oid, object: Object<'_>) {
    let Some(&parent) = numbers.get(id) else { return };
    let Object::Data(data) = object else {
        edges.unreadable.push(id.to_owned());
        return;
    };
    for entry in gix::objs::TreeRefIter::from_bytes(data, id.kind()) {
        let Ok(entry) = entry else {
            edges.unreadable.push(id.to_owned());
            return;
        };
        let child = entry.oid.to_owned();
        let missing = if entry.mode.is_tree() {
            match numbers.get(&child) {
                Some(&number) => {
                    edges.subtrees.push((parent, number));
                    continue;
                }
                None => true,
            }
        } else if entry.mode.is_blob() {
            match leaf.get(&child) {
                Some(true) => {
                    edges.leaves.push((parent, child));
                    continue;
                }
                Some(false) => continue,
                None => true,
            }
        } else {
            continue;
        };
        if missing && edges.missing_named < MOST_MISSING_NAMED {
            edges.missing_named += 1;
            edges.leaves.push((parent, child));
        } else if missing {
            edges.more_missing = true;
        }
    }
}

/// One thread's share of the blob scan.
struct BlobScan<'e> {
    stream: Stream<'e>,
    findings: Vec<(ObjectId, Vec<Finding>)>,
    oversized: Vec<(ObjectId, u64)>,
    unreadable: Vec<(ObjectId, String)>,
    clean: Vec<ObjectId>,
    scanned: u64,
    bytes: u64,
    binary: u64,
}

impl<'e> BlobScan<'e> {
    fn new(engine: &'e Engine) -> Self {
        BlobScan {
            stream: Stream::new(engine),
            findings: Vec::new(),
            oversized: Vec::new(),
            unreadable: Vec::new(),
            clean: Vec::new(),
            scanned: 0,
            bytes: 0,
            binary: 0,
        }
    }

    fn see(&mut self, id: &gix::oid, object: Object<'_>, binary: bool, progress: &Progress) {
        let id = id.to_owned();
        match object {
            Object::Data(data) => {
                let mut out = Vec::new();
                match crate::sources::files::scan_reader(data, &mut self.stream, binary, &mut out) {
                    Ok(Some(bytes)) => {
                        self.scanned += 1;
                        self.bytes += bytes;
                        progress.blobs.fetch_add(1, Ordering::Relaxed);
                        progress.bytes.fetch_add(bytes, Ordering::Relaxed);
                    }
                    Ok(None) => self.binary += 1,
                    Err(err) => self.unreadable.push((id, err.to_string())),
                }
                if out.is_empty() {
                    self.clean.push(id);
                } else {
                    self.findings.push((id, out));
                }
            }
            Object::TooLarge(size) => self.oversized.push((id, size)),
            Object::Unreadable(reason) => self.unreadable.push((id, reason)),
        }
    }
}

/// Every thread's blob scan, merged.
#[derive(Default)]
struct Blobs {
    findings: HashMap<ObjectId, Vec<Finding>>,
    oversized: HashMap<ObjectId, u64>,
    unreadable: HashMap<ObjectId, String>,
    /// Every blob there is, and whether it is to be placed in the history.
    leaf: HashMap<ObjectId, bool>,
    scanned: u64,
    bytes: u64,
    binary: u64,
}

impl Blobs {
    fn merge(parts: Vec<BlobScan<'_>>) -> Blobs {
        let mut all = Blobs::default();
        for part in parts {
            all.scanned += part.scanned;
            all.bytes += part.bytes;
            all.binary += part.binary;
            all.leaf.extend(part.clean.into_iter().map(|id| (id, false)));
            for (id, findings) in part.findings {
                all.leaf.insert(id, true);
                all.findings.insert(id, findings);
            }
            for (id, size) in part.oversized {
                all.leaf.insert(id, true);
                all.oversized.insert(id, size);
            }
            for (id, reason) in part.unreadable {
                all.leaf.insert(id, true);
                all.unreadable.insert(id, reason);
            }
        }
        all
    }
}
