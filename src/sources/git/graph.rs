//! Which commit first holds an object, and at what path, without walking
//! every tree of every commit.
//!
//! A history scan reads each blob once, in pack order, so it learns which
//! blobs hold a finding before it knows where they sit. This module answers
//! the second question for those few objects (the *leaves*: blobs with
//! findings, blobs too large to scan, objects that are missing). Every tree
//! is read once, in parallel, and only its subtree edges and its leaves are
//! kept. Then, commit by commit in parents-first order, the leaves under
//! the commit's root tree (computed bottom-up once per tree and shared) are
//! placed at that commit, with the path of their first occurrence in tree
//! order, found by descending from the root with a depth limit. Trees
//! nested deeper than [`MAX_TREE_DEPTH`] are reported and not entered, as
//! the walk does.

use gix::hashtable::HashMap;
use std::sync::Arc;

use gix::prelude::FindExt;
use gix::ObjectId;

use super::MAX_TREE_DEPTH;

/// What a tree holds that matters here, recorded while trees are read.
#[derive(Default)]
pub struct TreeEdges {
    /// (parent tree, subtree), as tree numbers.
    pub subtrees: Vec<(u32, u32)>,
    /// (tree, leaf) for each leaf a tree holds directly.
    pub leaves: Vec<(u32, ObjectId)>,
    /// Trees that could not be read.
    pub unreadable: Vec<ObjectId>,
    /// Missing objects recorded as leaves so far, and whether more were
    /// left unrecorded.
    pub missing_named: usize,
    pub more_missing: bool,
}

/// The tree graph of a repository, reduced to what leads to a leaf.
pub struct TreeGraph {
    numbers: HashMap<ObjectId, u32>,
    ids: Vec<ObjectId>,
    /// Children of tree `t`: `subtrees[subtree_at[t]..subtree_at[t + 1]]`.
    subtree_at: Vec<u32>,
    subtrees: Vec<u32>,
    leaf_at: Vec<u32>,
    leaves_of: Vec<u32>,
    leaf_ids: Vec<ObjectId>,
    reach: Vec<Option<Arc<[u32]>>>,
    height: Vec<u32>,
    /// Trees on the stack of a bottom-up pass: a cycle (impossible in a
    /// valid repository) is cut instead of followed.
    visiting: Vec<bool>,
    empty: Arc<[u32]>,
}

/// Where a leaf first appears.
pub struct Placed {
    pub leaf: ObjectId,
    /// Position of the commit in the order given to [`TreeGraph::place`].
    pub commit: usize,
    pub path: Vec<u8>,
}

impl TreeGraph {
    /// Numbers the trees by their position in `trees`: [`TreeEdges`] refer
    /// to them.
    pub fn numbering(trees: &[ObjectId]) -> HashMap<ObjectId, u32> {
        trees.iter().enumerate().map(|(i, id)| (*id, i as u32)).collect()
    }

    pub fn new(trees: Vec<ObjectId>, numbers: HashMap<ObjectId, u32>, edges: Vec<TreeEdges>) -> TreeGraph {
        let n = trees.len();
        let mut subtrees: Vec<(u32, u32)> = Vec::new();
        let mut leaves: Vec<(u32, ObjectId)> = Vec::new();
        for part in edges {
            subtrees.extend(part.subtrees);
            leaves.extend(part.leaves);
        }
        subtrees.sort_unstable();
        subtrees.dedup();
        leaves.sort_unstable();
        leaves.dedup();
        let mut leaf_ids: Vec<ObjectId> = leaves.iter().map(|(_, id)| *id).collect();
        leaf_ids.sort_unstable();
        leaf_ids.dedup();
        let leaf_number = |id: &ObjectId| leaf_ids.binary_search(id).expect("every leaf is numbered") as u32;
        let (subtree_at, subtrees) = compressed(n, subtrees.into_iter());
        let (leaf_at, leaves_of) = compressed(n, leaves.iter().map(|(t, id)| (*t, leaf_number(id))));
        TreeGraph {
            numbers,
            ids: trees,
            subtree_at,
            subtrees,
            leaf_at,
            leaves_of,
            leaf_ids,
            reach: vec![None; n],
            height: vec![0; n],
            visiting: vec![false; n],
            empty: Arc::from([]),
        }
    }

    pub fn number(&self, tree: &ObjectId) -> Option<u32> {
        self.numbers.get(tree).copied()
    }

    fn children(&self, tree: u32) -> &[u32] {
        &self.subtrees[self.subtree_at[tree as usize] as usize..self.subtree_at[tree as usize + 1] as usize]
    }

    fn own_leaves(&self, tree: u32) -> &[u32] {
        &self.leaves_of[self.leaf_at[tree as usize] as usize..self.leaf_at[tree as usize + 1] as usize]
    }

    /// Places every leaf under the commits' root trees (`None`: a commit
    /// whose tree is missing) at the first commit that holds it within the
    /// depth limit. Returns the placed leaves and the paths of trees too
    /// deep to enter.
    pub fn place(&mut self, repo: &gix::Repository, roots: &[Option<u32>]) -> (Vec<Placed>, Vec<Vec<u8>>) {
        const MOST_DEEP_TREES_REPORTED: usize = 100;
        let mut placed = vec![false; self.leaf_ids.len()];
        let mut remaining = self.leaf_ids.len();
        let mut out = Vec::new();
        let mut deep: Vec<Vec<u8>> = Vec::new();
        let mut reader = TreeReader::new(repo);
        for (at, root) in roots.iter().enumerate() {
            let Some(root) = *root else { continue };
            if deep.len() < MOST_DEEP_TREES_REPORTED && self.height_of(root) as usize > MAX_TREE_DEPTH {
                if let Some(path) = self.deepest_path(&mut reader, root) {
                    if !deep.contains(&path) {
                        deep.push(path);
                    }
                }
            }
            if remaining == 0 {
                continue;
            }
            let under = self.reach_of(root);
            for &leaf in under.iter() {
                if placed[leaf as usize] {
                    continue;
                }
                if let Some(path) = self.descend(&mut reader, root, leaf) {
                    placed[leaf as usize] = true;
                    remaining -= 1;
                    out.push(Placed {
                        leaf: self.leaf_ids[leaf as usize],
                        commit: at,
                        path,
                    });
                }
            }
        }
        (out, deep)
    }

    /// The leaves under `tree`, sorted; computed once per tree, and shared
    /// with the one child that holds them all where there is one.
    fn reach_of(&mut self, tree: u32) -> Arc<[u32]> {
        let mut stack = vec![(tree, 0usize)];
        self.visiting[tree as usize] = true;
        while let Some(&(t, next)) = stack.last() {
            if self.reach[t as usize].is_some() {
                self.visiting[t as usize] = false;
                stack.pop();
                continue;
            }
            if let Some(&child) = self.children(t).get(next) {
                stack.last_mut().expect("not empty").1 += 1;
                if self.reach[child as usize].is_none() && !self.visiting[child as usize] {
                    self.visiting[child as usize] = true;
                    stack.push((child, 0));
                }
                continue;
            }
            let merged = self.merge_reach(t);
            self.reach[t as usize] = Some(merged);
            self.visiting[t as usize] = false;
            stack.pop();
        }
        self.reach[tree as usize].clone().expect("computed above")
    }

    fn merge_reach(&self, tree: u32) -> Arc<[u32]> {
        let parts: Vec<Arc<[u32]>> = self
            .children(tree)
            .iter()
            .filter_map(|c| self.reach[*c as usize].clone())
            .filter(|r| !r.is_empty())
            .collect();
        let own = self.own_leaves(tree);
        match (own.is_empty(), parts.len()) {
            (true, 0) => return self.empty.clone(),
            (true, 1) => return parts[0].clone(),
            _ => {}
        }
        let mut all: Vec<u32> = own.iter().copied().chain(parts.iter().flat_map(|p| p.iter().copied())).collect();
        all.sort_unstable();
        all.dedup();
        all.into()
    }

    /// Levels of trees from `tree` down its longest chain of subtrees.
    fn height_of(&mut self, tree: u32) -> u32 {
        let mut stack = vec![(tree, 0usize)];
        self.visiting[tree as usize] = true;
        while let Some(&(t, next)) = stack.last() {
            if self.height[t as usize] != 0 {
                self.visiting[t as usize] = false;
                stack.pop();
                continue;
            }
            if let Some(&child) = self.children(t).get(next) {
                stack.last_mut().expect("not empty").1 += 1;
                if self.height[child as usize] == 0 && !self.visiting[child as usize] {
                    self.visiting[child as usize] = true;
                    stack.push((child, 0));
                }
                continue;
            }
            let below = self.children(t).iter().map(|c| self.height[*c as usize]).max().unwrap_or(0);
            self.height[t as usize] = below + 1;
            self.visiting[t as usize] = false;
            stack.pop();
        }
        self.height[tree as usize]
    }

    /// The path of the first tree below `root` that lies deeper than the
    /// limit, following the longest chain.
    fn deepest_path(&mut self, reader: &mut TreeReader<'_>, root: u32) -> Option<Vec<u8>> {
        let mut path = Vec::new();
        let mut tree = root;
        for _ in 0..MAX_TREE_DEPTH {
            let tallest = self.children(tree).iter().copied().max_by_key(|c| self.height[*c as usize])?;
            let id = self.tree_id(tallest)?;
            let (name, _) = reader.entries(self.tree_id(tree)?)?.into_iter().find(|(_, oid)| *oid == id)?;
            push_component(&mut path, &name);
            tree = tallest;
        }
        Some(path)
    }

    fn tree_id(&self, number: u32) -> Option<ObjectId> {
        self.ids.get(number as usize).copied()
    }

    /// The first path, in tree order, from `root` to `leaf` that stays
    /// within the depth limit.
    fn descend(&mut self, reader: &mut TreeReader<'_>, root: u32, leaf: u32) -> Option<Vec<u8>> {
        let target = self.leaf_ids[leaf as usize];
        let root_id = self.tree_id(root)?;
        struct Frame {
            entries: std::vec::IntoIter<(Vec<u8>, ObjectId)>,
            path_len: usize,
        }
        let mut path = Vec::new();
        let mut stack = vec![Frame {
            entries: reader.entries(root_id)?.into_iter(),
            path_len: 0,
        }];
        while let Some(frame) = stack.last_mut() {
            let Some((name, id)) = frame.entries.next() else {
                stack.pop();
                continue;
            };
            path.truncate(frame.path_len);
            push_component(&mut path, &name);
            if id == target {
                return Some(path);
            }
            let Some(sub) = self.number(&id) else { continue };
            if stack.len() >= MAX_TREE_DEPTH || self.reach_of(sub).binary_search(&leaf).is_err() {
                continue;
            }
            if let Some(entries) = reader.entries(id) {
                stack.push(Frame {
                    entries: entries.into_iter(),
                    path_len: path.len(),
                });
            }
        }
        None
    }
}

fn push_component(path: &mut Vec<u8>, name: &[u8]) {
    if !path.is_empty() {
        path.push(b'/');
    }
    path.extend_from_slice(name);
}

/// Groups `(from, to)` pairs sorted by `from` into offsets and targets.
fn compressed(n: usize, pairs: impl Iterator<Item = (u32, u32)>) -> (Vec<u32>, Vec<u32>) {
    let mut at = vec![0u32; n + 1];
    let mut targets = Vec::new();
    for (from, to) in pairs {
        at[from as usize + 1] += 1;
        targets.push(to);
    }
    for i in 0..n {
        at[i + 1] += at[i];
    }
    (at, targets)
}

/// Reads trees by id for the few descents a placement needs; symlinks
/// and submodules are left out, as they are not content.
struct TreeReader<'r> {
    repo: &'r gix::Repository,
    buf: Vec<u8>,
}

impl<'r> TreeReader<'r> {
    fn new(repo: &'r gix::Repository) -> Self {
        TreeReader { repo, buf: Vec::new() }
    }

    fn entries(&mut self, tree: ObjectId) -> Option<Vec<(Vec<u8>, ObjectId)>> {
        let decoded = self.repo.objects.find_tree(&tree, &mut self.buf).ok()?;
        Some(
            decoded
                .entries
                .iter()
                .filter(|e| e.mode.is_tree() || e.mode.is_blob())
                .map(|e| (e.filename.to_vec(), e.oid.to_owned()))
                .collect(),
        )
    }
}
