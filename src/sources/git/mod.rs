//! Git as a source: the whole history of a repository, the lines a range of
//! commits adds, and the lines staged in the index.
//!
//! Objects are read with gix, never by running git. History scans meet each
//! blob once ([`history`]); range and staged scans look only at added lines
//! ([`changes`]), so a key that was already there before is not news.
//! Scanning runs on plain threads, each with its own repository handle.

mod changes;
mod graph;
mod history;
mod objects;
mod walk;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use gix::prelude::FindExt;
use gix::ObjectId;

use crate::engine::{Finding, Stream};

pub use changes::{scan_push, scan_range, scan_staged, PushedRef};
pub use history::scan_history;

/// Blobs larger than this are counted and skipped: gix inflates a blob whole,
/// and no key hides in a quarter gigabyte of generated data.
pub const MAX_BLOB_BYTES: u64 = super::files::DEFAULT_MAX_FILE_BYTES;

/// Trees nested deeper than this are not entered, and are reported as
/// skipped: git's own `core.maxTreeDepth` default. Walks keep their own
/// stack, so a crafted tree 24,000 levels deep costs memory, not the stack.
pub const MAX_TREE_DEPTH: usize = 2048;

/// Longest path kept when naming a skipped tree or blob: a path 2,000
/// levels deep is named by its start.
const SHOWN_PATH: usize = 160;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{path}: not a git repository: {message}")]
    Open { path: PathBuf, message: String },
    #[error("unknown revision {spec:?}: {message}")]
    Revision { spec: String, message: String },
    #[error("reading the repository: {0}")]
    Read(String),
}

fn read_error(err: impl std::fmt::Display) -> GitError {
    GitError::Read(err.to_string())
}

/// What to scan and how.
#[derive(Debug, Clone)]
pub struct GitOptions {
    /// Only the history of this branch (or any revision); all refs when unset.
    pub branch: Option<String>,
    /// Scan blobs that look binary instead of skipping them.
    pub binary: bool,
    pub threads: usize,
}

impl Default for GitOptions {
    fn default() -> Self {
        GitOptions {
            branch: None,
            binary: false,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// Counters a progress display may read while a scan runs.
#[derive(Debug, Default)]
pub struct Progress {
    pub commits: AtomicU64,
    pub blobs: AtomicU64,
    pub bytes: AtomicU64,
}

/// The commit that introduced a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub commit: String,
    pub author: String,
    pub email: String,
    /// Author time, seconds since the epoch.
    pub time: i64,
}

/// A finding and where it lives: the path inside the repository and, for
/// history and range scans, the commit that introduced it.
#[derive(Debug)]
pub struct GitFinding {
    pub origin: Option<Arc<Origin>>,
    pub path: String,
    pub finding: Finding,
}

#[derive(Debug, Default)]
pub struct GitStats {
    pub commits: u64,
    pub blobs: u64,
    pub bytes: u64,
    pub skipped_binary: u64,
    pub skipped_large: u64,
    /// The blobs over [`MAX_BLOB_BYTES`], by path, with their size: a key
    /// in one of them was not looked for.
    pub oversized: Vec<(String, u64)>,
    /// Trees deeper than [`MAX_TREE_DEPTH`], by path: not entered.
    pub deep_trees: Vec<String>,
    /// Objects that could not be read; the scan went on without them.
    pub errors: Vec<String>,
}

#[derive(Debug, Default)]
pub struct GitScan {
    pub findings: Vec<GitFinding>,
    pub stats: GitStats,
    /// The scanned repository's work tree (none when bare), where its
    /// `.keywardignore` lives.
    pub workdir: Option<PathBuf>,
}

/// Opens the repository that holds `path`, as git would find it.
pub fn open(path: &Path) -> Result<gix::Repository, GitError> {
    let repo = gix::discover(path).map_err(|err| GitError::Open {
        path: path.to_path_buf(),
        message: err.to_string(),
    })?;
    Ok(with_cache(repo))
}

/// Opens the repository at exactly `path` (its work tree or its git
/// directory), never one that encloses it. Returns its git directory, a
/// path that [`open`] and every scan here resolve to that same repository.
pub fn open_exact(path: &Path) -> Result<PathBuf, GitError> {
    let repo = gix::open_opts(path, gix::open::Options::isolated()).map_err(|err| GitError::Open {
        path: path.to_path_buf(),
        message: err.to_string(),
    })?;
    Ok(repo.git_dir().to_path_buf())
}

fn with_cache(mut repo: gix::Repository) -> gix::Repository {
    repo.object_cache_size_if_unset(16 << 20);
    repo
}

/// The commit a revision names (a branch, a tag, a sha, `HEAD~2`...).
pub fn resolve_commit(repo: &gix::Repository, spec: &str) -> Result<ObjectId, GitError> {
    let revision = |message: String| GitError::Revision {
        spec: spec.to_string(),
        message,
    };
    let id = repo.rev_parse_single(spec).map_err(|e| revision(e.to_string()))?;
    let commit = id
        .object()
        .map_err(read_error)?
        .peel_to_commit()
        .map_err(|e| revision(e.to_string()))?;
    Ok(commit.id)
}

/// Each blob of a history is a delta on a base that the next blobs share;
/// gix's small default base cache re-inflates those bases over and over.
/// 64 MiB per thread measured 1.7x faster on a 150k-blob history (see
/// BENCHMARKS.md). A `core.deltaBaseCacheLimit` the user set is kept.
pub(super) fn widen_delta_cache(repo: &mut gix::Repository) -> Result<(), GitError> {
    use gix::config::tree::Core;
    if repo.config_snapshot().integer("core.deltaBaseCacheLimit").is_some() {
        return Ok(());
    }
    let mut config = repo.config_snapshot_mut();
    config.set_value(&Core::DELTA_BASE_CACHE_LIMIT, "64m").map_err(read_error)?;
    config.commit().map_err(read_error)?;
    Ok(())
}

/// The commits every ref and HEAD point at, as hex: a cursor for "what
/// was there at the last scan".
pub fn tips(repo_path: &Path) -> Result<Vec<String>, GitError> {
    Ok(all_tips(&open(repo_path)?)?.iter().map(ToString::to_string).collect())
}

/// Those of `specs` that name a commit this repository still has.
pub fn known_commits(repo_path: &Path, specs: &[String]) -> Vec<String> {
    let Ok(repo) = open(repo_path) else { return Vec::new() };
    specs.iter().filter(|s| resolve_commit(&repo, s).is_ok()).cloned().collect()
}

/// The tip of every ref that leads to a commit, and HEAD.
fn all_tips(repo: &gix::Repository) -> Result<Vec<ObjectId>, GitError> {
    let mut tips = Vec::new();
    let platform = repo.references().map_err(read_error)?;
    for reference in platform.all().map_err(read_error)? {
        // Refs to trees or blobs, and broken refs, hold no commits to scan.
        if let Ok(commit) = reference
            .map_err(read_error)
            .and_then(|mut r| r.peel_to_commit().map_err(read_error))
        {
            tips.push(commit.id);
        }
    }
    if let Ok(head) = repo.head_id() {
        tips.push(head.detach());
    }
    tips.sort();
    tips.dedup();
    Ok(tips)
}

/// Commits reachable from `tips` but not from `hidden`, parents before
/// children, so the first commit to hold a blob is met first.
fn parents_first(repo: &gix::Repository, tips: Vec<ObjectId>, hidden: Vec<ObjectId>) -> Result<Vec<Commit>, GitError> {
    if tips.is_empty() {
        return Ok(Vec::new());
    }
    let walk = repo.rev_walk(tips).with_hidden(hidden).all().map_err(read_error)?;
    // The commits at a shallow clone's boundary have parents the clone
    // lacks: like git, treat them as having none.
    let shallow = repo.shallow_commits().map_err(read_error)?;
    let is_shallow = |id: &ObjectId| shallow.as_ref().is_some_and(|s| s.iter().any(|c| c == id));
    let mut commits = Vec::new();
    for info in walk {
        let info = info.map_err(read_error)?;
        let parents = if is_shallow(&info.id) {
            Vec::new()
        } else {
            info.parent_ids.to_vec()
        };
        commits.push(Commit { id: info.id, parents });
    }
    Ok(topological(commits))
}

struct Commit {
    id: ObjectId,
    parents: Vec<ObjectId>,
}

/// Kahn's algorithm over the walked commits; parents outside the set (the
/// excluded side) count as already done.
fn topological(commits: Vec<Commit>) -> Vec<Commit> {
    let index: std::collections::HashMap<ObjectId, usize> = commits.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
    let mut waiting = vec![0usize; commits.len()];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); commits.len()];
    for (i, commit) in commits.iter().enumerate() {
        for parent in &commit.parents {
            if let Some(&p) = index.get(parent) {
                waiting[i] += 1;
                children[p].push(i);
            }
        }
    }
    let mut ready: Vec<usize> = (0..commits.len()).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(commits.len());
    while let Some(i) = ready.pop() {
        order.push(i);
        for &child in children[i].iter().rev() {
            waiting[child] -= 1;
            if waiting[child] == 0 {
                ready.push(child);
            }
        }
    }
    let mut slots: Vec<Option<Commit>> = commits.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// Author and time of a commit, for attribution.
fn origin_of(repo: &gix::Repository, id: ObjectId) -> Result<Origin, GitError> {
    let mut buf = Vec::new();
    let commit = repo.objects.find_commit(&id, &mut buf).map_err(read_error)?;
    let author = commit.author().map_err(read_error)?;
    Ok(Origin {
        commit: id.to_string(),
        author: author.name.to_string(),
        email: author.email.to_string(),
        time: author.time().map(|t| t.seconds).unwrap_or_default(),
    })
}

fn tree_of(repo: &gix::Repository, commit: ObjectId) -> Result<ObjectId, GitError> {
    let mut buf = Vec::new();
    let tree = repo.objects.find_commit(&commit, &mut buf).map_err(read_error)?.tree();
    Ok(tree)
}

/// What scanning one blob gave.
enum BlobOutcome {
    Scanned(u64),
    Binary,
    Large(u64),
}

/// Reads one blob and scans it whole.
fn scan_blob(
    repo: &gix::Repository,
    id: &ObjectId,
    stream: &mut Stream,
    binary: bool,
    buf: &mut Vec<u8>,
    out: &mut Vec<Finding>,
) -> Result<BlobOutcome, GitError> {
    use gix::prelude::HeaderExt;
    let size = repo.objects.header(id).map_err(read_error)?.size();
    if size > MAX_BLOB_BYTES {
        return Ok(BlobOutcome::Large(size));
    }
    let blob = repo.objects.find_blob(id, buf).map_err(read_error)?;
    match super::files::scan_reader(blob.data, stream, binary, out).map_err(read_error)? {
        Some(bytes) => Ok(BlobOutcome::Scanned(bytes)),
        None => Ok(BlobOutcome::Binary),
    }
}

impl GitStats {
    /// Counts the outcome of the blob at `path`.
    fn count(&mut self, outcome: &BlobOutcome, path: &str) {
        match outcome {
            BlobOutcome::Scanned(bytes) => {
                self.blobs += 1;
                self.bytes += bytes;
            }
            BlobOutcome::Binary => self.skipped_binary += 1,
            BlobOutcome::Large(size) => {
                self.skipped_large += 1;
                self.oversized.push((shown_path(path.as_bytes()), *size));
            }
        }
    }

    fn absorb(&mut self, other: GitStats) {
        self.blobs += other.blobs;
        self.bytes += other.bytes;
        self.skipped_binary += other.skipped_binary;
        self.skipped_large += other.skipped_large;
        self.oversized.extend(other.oversized);
        self.deep_trees.extend(other.deep_trees);
        self.errors.extend(other.errors);
    }
}

/// A path as reports name it: lossy UTF-8, and only its start when long.
fn shown_path(path: &[u8]) -> String {
    let text = String::from_utf8_lossy(path);
    match text.char_indices().nth(SHOWN_PATH) {
        Some((cut, _)) => format!("{}… ({} bytes)", &text[..cut], path.len()),
        None => text.into_owned(),
    }
}

/// Keeps the first sighting of each secret in each path: findings arrive
/// tagged with the position of their commit in parents-first order, and a
/// later version of the file that still holds the key is not a new leak.
fn first_sightings(mut found: Vec<(usize, String, Finding)>) -> Vec<(usize, String, Finding)> {
    found.sort_by(|a, b| (a.0, &a.1, a.2.start).cmp(&(b.0, &b.1, b.2.start)));
    let mut first: std::collections::HashMap<(String, String), usize> = std::collections::HashMap::new();
    found.retain(|(at, path, f)| *first.entry((path.clone(), f.finding_id.clone())).or_insert(*at) == *at);
    found
}

/// Attaches each commit's author and date to its findings, reading each
/// commit once, and orders the result by path and position.
fn attribute(repo: &gix::Repository, commits: &[ObjectId], found: Vec<(usize, String, Finding)>) -> Result<Vec<GitFinding>, GitError> {
    let mut origins: std::collections::HashMap<usize, Arc<Origin>> = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(found.len());
    for (at, path, finding) in found {
        let origin = match origins.get(&at) {
            Some(origin) => origin.clone(),
            None => {
                let origin = Arc::new(origin_of(repo, commits[at])?);
                origins.insert(at, origin.clone());
                origin
            }
        };
        out.push(GitFinding {
            origin: Some(origin),
            path,
            finding,
        });
    }
    out.sort_by(|a, b| (&a.path, a.finding.start).cmp(&(&b.path, b.finding.start)));
    Ok(out)
}
