//! Added lines only: the commits of a push, and the index before a commit.
//!
//! A changed blob is scanned whole; only when it holds a finding are its old
//! and new versions diffed line by line, and findings on lines that were
//! already there are dropped. Most blobs hold nothing, so most are never
//! diffed, which keeps a pre-commit hook within a few milliseconds.
//!
//! A merge adds what none of its parents has, as `git diff --cc` shows it:
//! a blob of the merge's tree that differs from every parent's blob at that
//! path, and of it only the lines that no parent's version holds. A key
//! pasted while resolving a conflict is such a line.
//!
//! Trees are compared with an explicit stack; one deeper than
//! [`MAX_TREE_DEPTH`] is reported in the stats and not entered.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::Path;
use std::time::{Duration, Instant};

use gix::prelude::FindExt;
use gix::ObjectId;

use super::{
    all_tips, attribute, first_sightings, open, parents_first, read_error, resolve_commit, scan_blob, shown_path, tree_of, GitError,
    GitFinding, GitScan, GitStats, MAX_TREE_DEPTH,
};
use crate::engine::{Engine, Finding, Stream};

/// A diff that takes longer than this falls back to a coarser one, which
/// can only call more lines added, never fewer.
const DIFF_DEADLINE: Duration = Duration::from_secs(2);

/// One line of git's pre-push input:
/// `<local ref> SP <local sha> SP <remote ref> SP <remote sha>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedRef {
    pub local_sha: String,
    pub remote_sha: String,
}

impl PushedRef {
    /// Parses one line; `None` for a blank or malformed line.
    pub fn parse(line: &str) -> Option<PushedRef> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, local_sha, _, remote_sha] = fields[..] else {
            return None;
        };
        Some(PushedRef {
            local_sha: local_sha.to_string(),
            remote_sha: remote_sha.to_string(),
        })
    }

    /// A push that deletes the remote ref sends no commits.
    pub fn is_delete(&self) -> bool {
        is_zero(&self.local_sha)
    }

    /// A new remote ref: nothing is known to be there yet.
    pub fn is_new(&self) -> bool {
        is_zero(&self.remote_sha)
    }
}

fn is_zero(sha: &str) -> bool {
    sha.bytes().all(|b| b == b'0')
}

/// A blob that a commit or the index adds or changes: `new` at `path`,
/// where the parents (or HEAD) held `old` (none for a new file).
struct Change {
    path: String,
    old: Vec<ObjectId>,
    new: ObjectId,
}

/// Scans the lines added by the commits reachable from `tips` (every ref
/// when empty) and from none of `exclude`, merges included.
pub fn scan_range(
    engine: &Engine,
    repo_path: &std::path::Path,
    tips: &[String],
    exclude: &[String],
    binary: bool,
) -> Result<GitScan, GitError> {
    let repo = open(repo_path)?;
    let tips = if tips.is_empty() {
        all_tips(&repo)?
    } else {
        resolve_all(&repo, tips)?
    };
    let hidden = resolve_all(&repo, exclude)?;
    added_in_range(engine, &repo, tips, hidden, binary)
}

/// Scans what a push sends: the commits of each pushed ref that the remote
/// does not have. A remote sha this clone lacks is passed over; the
/// remote-tracking refs of `remote` still bound the range. `remote` is what
/// git hands the hook: a remote's name, or the URL pushed to when it has
/// none; a URL bounds the range by the tracking refs of a remote configured
/// with that URL, if any, and otherwise by the remote shas alone.
pub fn scan_push(
    engine: &Engine,
    repo_path: &std::path::Path,
    pushed: &[PushedRef],
    remote: Option<&str>,
    binary: bool,
) -> Result<GitScan, GitError> {
    let repo = open(repo_path)?;
    let pushed: Vec<&PushedRef> = pushed.iter().filter(|p| !p.is_delete()).collect();
    if pushed.is_empty() {
        return Ok(GitScan {
            workdir: repo.workdir().map(Path::to_path_buf),
            ..GitScan::default()
        });
    }
    let tips = pushed
        .iter()
        .map(|p| resolve_commit(&repo, &p.local_sha))
        .collect::<Result<Vec<_>, _>>()?;
    let mut hidden: Vec<ObjectId> = pushed
        .iter()
        .filter(|p| !p.is_new())
        .filter_map(|p| resolve_commit(&repo, &p.remote_sha).ok())
        .collect();
    if let Some(remote) = remote {
        hidden.extend(remote_tips(&repo, remote));
    }
    added_in_range(engine, &repo, tips, hidden, binary)
}

fn resolve_all(repo: &gix::Repository, specs: &[String]) -> Result<Vec<ObjectId>, GitError> {
    specs.iter().map(|spec| resolve_commit(repo, spec)).collect()
}

fn added_in_range(
    engine: &Engine,
    repo: &gix::Repository,
    tips: Vec<ObjectId>,
    hidden: Vec<ObjectId>,
    binary: bool,
) -> Result<GitScan, GitError> {
    let commits = parents_first(repo, tips, hidden)?;
    let mut stream = Stream::new(engine);
    let mut stats = GitStats {
        commits: commits.len() as u64,
        ..GitStats::default()
    };
    let mut found = Vec::new();
    for (at, commit) in commits.iter().enumerate() {
        let tree = tree_of(repo, commit.id)?;
        let changes = match &commit.parents[..] {
            [] => diff_trees(repo, None, tree, &mut stats)?,
            [parent] => diff_trees(repo, Some(tree_of(repo, *parent)?), tree, &mut stats)?,
            parents => merge_changes(repo, parents, tree, &mut stats)?,
        };
        for change in changes {
            for finding in added_findings(repo, &change, &mut stream, binary, &mut stats) {
                found.push((at, change.path.clone(), finding));
            }
        }
    }
    let ids: Vec<ObjectId> = commits.iter().map(|c| c.id).collect();
    let findings = attribute(repo, &ids, first_sightings(found))?;
    Ok(GitScan {
        findings,
        stats,
        workdir: repo.workdir().map(Path::to_path_buf),
    })
}

/// What a merge brings that none of its parents has: the paths whose blob
/// differs from every parent's, each with the blobs the parents held there.
/// A subtree equal to any parent's is never entered.
fn merge_changes(repo: &gix::Repository, parents: &[ObjectId], tree: ObjectId, stats: &mut GitStats) -> Result<Vec<Change>, GitError> {
    let mut deep = GitStats::default();
    let mut common: Option<HashMap<String, Change>> = None;
    for parent in parents {
        let against = diff_trees(repo, Some(tree_of(repo, *parent)?), tree, &mut deep)?;
        let mut against: HashMap<String, Change> = against.into_iter().map(|c| (c.path.clone(), c)).collect();
        common = Some(match common {
            None => against,
            Some(mut so_far) => {
                so_far.retain(|path, change| match against.remove(path) {
                    Some(other) => {
                        change.old.extend(other.old);
                        true
                    }
                    None => false,
                });
                so_far
            }
        });
    }
    deep.deep_trees.sort();
    deep.deep_trees.dedup();
    stats.deep_trees.extend(deep.deep_trees);
    let mut changes: Vec<Change> = common.unwrap_or_default().into_values().collect();
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(changes)
}

/// The tips of `remote`'s tracking refs. `remote` may be a URL, or any text
/// git passed: a name that cannot be a remote's bounds nothing.
fn remote_tips(repo: &gix::Repository, remote: &str) -> Vec<ObjectId> {
    let name = if repo.find_remote(remote).is_ok() {
        Some(remote.to_string())
    } else {
        remote_named_by_url(repo, remote)
    };
    let Some(name) = name else { return Vec::new() };
    let Ok(platform) = repo.references() else { return Vec::new() };
    let prefix = format!("refs/remotes/{name}/");
    let Ok(refs) = platform.prefixed(prefix.as_str()) else {
        return Vec::new();
    };
    // Refs to trees or blobs, and broken refs, bound nothing.
    refs.filter_map(Result::ok)
        .filter_map(|mut r| r.peel_to_commit().ok())
        .map(|commit| commit.id)
        .collect()
}

/// The configured remote whose URL is exactly `url`.
fn remote_named_by_url(repo: &gix::Repository, url: &str) -> Option<String> {
    let config = repo.config_snapshot();
    repo.remote_names().into_iter().find_map(|name| {
        let configured = config.string(format!("remote.{name}.url").as_str())?;
        (AsRef::<[u8]>::as_ref(&*configured) == url.as_bytes()).then(|| name.to_string())
    })
}

/// Scans the lines the index adds to HEAD: what `git commit` is about to
/// record. Line numbers refer to the staged version of each file.
pub fn scan_staged(engine: &Engine, repo_path: &std::path::Path, binary: bool) -> Result<GitScan, GitError> {
    let mut repo = open(repo_path)?;
    super::widen_delta_cache(&mut repo)?;
    let index = repo.index_or_empty().map_err(read_error)?;
    let mut stream = Stream::new(engine);
    let mut stats = GitStats::default();
    let mut findings = Vec::new();
    for change in staged_changes(&repo, &index)? {
        findings.extend(
            added_findings(&repo, &change, &mut stream, binary, &mut stats)
                .into_iter()
                .map(|finding| GitFinding {
                    origin: None,
                    path: change.path.clone(),
                    finding,
                }),
        );
    }
    Ok(GitScan {
        findings,
        stats,
        workdir: repo.workdir().map(Path::to_path_buf),
    })
}

/// The index's files whose blob differs from HEAD's at the same path.
///
/// Like `git diff --cached`, this trusts the index's cache-tree: a directory
/// whose cached tree id equals HEAD's is unchanged, and its entries are not
/// looked at. Everything else is looked up in HEAD one tree at a time, so a
/// commit of a few files reads a few trees, not the whole of HEAD.
fn staged_changes(repo: &gix::Repository, index: &gix::index::State) -> Result<Vec<Change>, GitError> {
    use gix::index::entry::{Flags, Mode, Stage};
    let head_tree = match repo.head_id() {
        Ok(id) => Some(tree_of(repo, id.detach())?),
        Err(_) => None,
    };
    let mut unchanged = HashSet::new();
    if let (Some(cache), Some(root)) = (index.tree(), head_tree) {
        unchanged_dirs(repo, cache, root, &mut unchanged)?;
    }
    let mut head = HeadTree {
        repo,
        root: head_tree,
        trees: HashMap::new(),
    };
    let mut changes = Vec::new();
    for entry in index.entries() {
        let is_file = entry.mode == Mode::FILE || entry.mode == Mode::FILE_EXECUTABLE;
        if !is_file || entry.stage() != Stage::Unconflicted || entry.flags.contains(Flags::INTENT_TO_ADD) {
            continue;
        }
        let path: &[u8] = entry.path(index);
        if dirs_of(path).any(|dir| unchanged.contains(dir)) {
            continue;
        }
        let old = head.blob(path)?;
        if old != Some(entry.id) {
            changes.push(Change {
                path: String::from_utf8_lossy(path).into_owned(),
                old: old.into_iter().collect(),
                new: entry.id,
            });
        }
    }
    Ok(changes)
}

/// `""`, `"a/"`, `"a/b/"` for `a/b/c`: the directories holding a path.
fn dirs_of(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::once(&path[..0]).chain(path.iter().enumerate().filter(|(_, &b)| b == b'/').map(move |(i, _)| &path[..=i]))
}

/// Collects the directories (as `"dir/"`, the root as `""`) whose valid
/// cache-tree entry matches HEAD's tree. A directory past
/// [`MAX_TREE_DEPTH`] is simply not known to be unchanged: its entries are
/// looked up one by one.
fn unchanged_dirs(
    repo: &gix::Repository,
    cache: &gix::index::extension::Tree,
    head: ObjectId,
    out: &mut HashSet<Vec<u8>>,
) -> Result<(), GitError> {
    let mut stack = vec![(cache, head, Vec::new())];
    while let Some((cache, head, prefix)) = stack.pop() {
        if cache.num_entries.is_some() && cache.id == head {
            out.insert(prefix);
            continue;
        }
        if cache.children.is_empty() || prefix.iter().filter(|&&b| b == b'/').count() >= MAX_TREE_DEPTH {
            continue;
        }
        let entries = entries(repo, head)?;
        for child in &cache.children {
            let Some((_, _, id)) = entries
                .iter()
                .find(|(name, kind, _)| *kind == Kind::Tree && name[..] == child.name[..])
            else {
                continue;
            };
            let mut path = prefix.clone();
            path.extend_from_slice(&child.name);
            path.push(b'/');
            stack.push((child, *id, path));
        }
    }
    Ok(())
}

/// HEAD's tree, decoded one directory at a time as paths are looked up.
struct HeadTree<'r> {
    repo: &'r gix::Repository,
    root: Option<ObjectId>,
    trees: HashMap<ObjectId, HashMap<Vec<u8>, (Kind, ObjectId)>>,
}

impl HeadTree<'_> {
    /// HEAD's blob at `path`, if it has one there.
    fn blob(&mut self, path: &[u8]) -> Result<Option<ObjectId>, GitError> {
        let Some(mut tree) = self.root else { return Ok(None) };
        let mut parts = path.split(|&b| b == b'/').peekable();
        while let Some(part) = parts.next() {
            if !self.trees.contains_key(&tree) {
                let decoded = entries(self.repo, tree)?
                    .into_iter()
                    .map(|(name, kind, id)| (name, (kind, id)))
                    .collect();
                self.trees.insert(tree, decoded);
            }
            let last = parts.peek().is_none();
            match self.trees[&tree].get(part) {
                Some((Kind::Tree, id)) if !last => tree = *id,
                Some((Kind::Blob, id)) if last => return Ok(Some(*id)),
                _ => return Ok(None),
            }
        }
        Ok(None)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tree,
    Blob,
    Other,
}

fn entries(repo: &gix::Repository, tree: ObjectId) -> Result<Vec<(Vec<u8>, Kind, ObjectId)>, GitError> {
    let mut buf = Vec::new();
    let decoded = repo.objects.find_tree(&tree, &mut buf).map_err(read_error)?;
    Ok(decoded
        .entries
        .iter()
        .map(|e| {
            let kind = match (e.mode.is_tree(), e.mode.is_blob()) {
                (true, _) => Kind::Tree,
                (false, true) => Kind::Blob,
                (false, false) => Kind::Other,
            };
            (e.filename.to_vec(), kind, e.oid.to_owned())
        })
        .collect())
}

/// The blobs `new` adds or changes against `old`, entering only subtrees
/// whose ids differ.
fn diff_trees(repo: &gix::Repository, old: Option<ObjectId>, new: ObjectId, stats: &mut GitStats) -> Result<Vec<Change>, GitError> {
    let mut out = Vec::new();
    let mut stack = vec![(old, new, Vec::new(), 1usize)];
    while let Some((old, new, dir, depth)) = stack.pop() {
        let before = match old {
            Some(tree) => entries(repo, tree)?,
            None => Vec::new(),
        };
        let before: HashMap<&[u8], (Kind, ObjectId)> = before.iter().map(|(name, kind, id)| (name.as_slice(), (*kind, *id))).collect();
        for (name, kind, id) in entries(repo, new)? {
            let previous = before.get(name.as_slice()).copied();
            if previous == Some((kind, id)) || kind == Kind::Other {
                continue;
            }
            let previous_of = |wanted: Kind| previous.filter(|(k, _)| *k == wanted).map(|(_, id)| id);
            let mut path = dir.clone();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(&name);
            if kind == Kind::Blob {
                out.push(Change {
                    path: String::from_utf8_lossy(&path).into_owned(),
                    old: previous_of(Kind::Blob).into_iter().collect(),
                    new: id,
                });
            } else if depth >= MAX_TREE_DEPTH {
                stats.deep_trees.push(shown_path(&path));
            } else {
                stack.push((previous_of(Kind::Tree), id, path, depth + 1));
            }
        }
    }
    Ok(out)
}

/// Findings of the new blob that sit on lines the change added: lines that
/// no old version holds. A blob that cannot be read is counted in `stats`
/// and yields nothing.
fn added_findings(repo: &gix::Repository, change: &Change, stream: &mut Stream, binary: bool, stats: &mut GitStats) -> Vec<Finding> {
    let mut buf = Vec::new();
    let mut findings = Vec::new();
    match scan_blob(repo, &change.new, stream, binary, &mut buf, &mut findings) {
        Ok(outcome) => stats.count(&outcome, &change.path),
        Err(err) => {
            stats.errors.push(format!("{} (blob {}): {err}", change.path, change.new));
            return Vec::new();
        }
    }
    let mut old_buf = Vec::new();
    for old in &change.old {
        if findings.is_empty() {
            break;
        }
        let old_data = match repo.objects.find_blob(old, &mut old_buf) {
            Ok(blob) => blob.data,
            // Without the old version every line counts as added.
            Err(_) => &[],
        };
        let added = added_lines(old_data, &buf);
        findings.retain(|f| added.iter().any(|lines| lines.contains(&f.line)));
    }
    findings
}

/// The 1-based line numbers of `new` that are not in `old`.
fn added_lines(old: &[u8], new: &[u8]) -> Vec<Range<u64>> {
    let old_lines: Vec<&[u8]> = old.split(|&b| b == b'\n').collect();
    let new_lines: Vec<&[u8]> = new.split(|&b| b == b'\n').collect();
    let deadline = Some(Instant::now() + DIFF_DEADLINE);
    similar::capture_diff_slices_deadline(similar::Algorithm::Myers, &old_lines, &new_lines, deadline)
        .into_iter()
        .filter_map(|op| match op {
            similar::DiffOp::Insert { new_index, new_len, .. } | similar::DiffOp::Replace { new_index, new_len, .. } => {
                Some(new_index as u64 + 1..(new_index + new_len) as u64 + 1)
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! t {
        ($name:ident, $old:expr, $new:expr, $expected:expr) => {
            #[test]
            fn $name() {
                let lines: Vec<u64> = added_lines($old.as_bytes(), $new.as_bytes()).into_iter().flatten().collect();
                let expected: &[u64] = &$expected;
                assert_eq!(lines, expected);
            }
        };
    }

    t!(nothing_added, "a\nb\n", "a\nb\n", []);
    t!(appended_line, "a\nb\n", "a\nb\nc\n", [3]);
    t!(inserted_in_the_middle, "a\nc\n", "a\nb\nc\n", [2]);
    t!(changed_line, "a\nb\nc\n", "a\nB\nc\n", [2]);
    t!(removed_line_adds_nothing, "a\nb\nc\n", "a\nc\n", []);
    t!(new_file_is_all_added, "", "x\ny", [1, 2]);
    t!(moved_down_by_an_insert, "k\n", "new\nk\n", [1]);

    macro_rules! pushed {
        ($name:ident, $line:expr, $expected:expr) => {
            #[test]
            fn $name() {
                assert_eq!(PushedRef::parse($line), $expected);
            }
        };
    }

    const ZERO: &str = "0000000000000000000000000000000000000000";
    pushed!(blank_line, "", None);
    pushed!(three_fields, "refs/heads/main abc refs/heads/main", None);
    pushed!(
        update,
        "refs/heads/main 1111 refs/heads/main 2222",
        Some(PushedRef {
            local_sha: "1111".into(),
            remote_sha: "2222".into()
        })
    );

    #[test]
    fn zero_shas_mean_new_and_delete() {
        let new = PushedRef::parse(&format!("refs/heads/x 1111 refs/heads/x {ZERO}")).unwrap();
        assert!(new.is_new() && !new.is_delete());
        let delete = PushedRef::parse(&format!("(delete) {ZERO} refs/heads/x 2222")).unwrap();
        assert!(delete.is_delete() && !delete.is_new());
    }
}
