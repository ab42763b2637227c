//! Every object of one kind in a repository's object database, read once,
//! on every core.
//!
//! Reading a history's blobs one by one resolves each delta chain again and
//! again: on git/git that was 21 s of inflating on one thread before a byte
//! was scanned. A pack is laid out for the opposite order. Its entries are
//! classified by kind from their headers (a delta has its base's kind), and
//! the entries of the wanted kind are handed to gix's delta-tree traversal,
//! which inflates each entry exactly once, applies each delta to its
//! freshly decoded base, and spreads the chains over threads. Loose objects,
//! objects whose base lives in another pack, and objects that could grow
//! past [`MAX_OBJECT_BYTES`] are read alone afterwards, the large ones only
//! by their header.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use gix::objs::Kind;
use gix::odb::pack::{self, cache::delta::Tree, index};
use gix::prelude::{FindExt, HeaderExt};
use gix::{oid, ObjectId};

use super::{read_error, GitError, MAX_BLOB_BYTES};

/// The largest object decoded; a larger one is reported by its size.
pub const MAX_OBJECT_BYTES: u64 = MAX_BLOB_BYTES;

/// One object as a visitor receives it.
pub enum Object<'a> {
    Data(&'a [u8]),
    /// Larger than [`MAX_OBJECT_BYTES`]: not read.
    TooLarge(u64),
    /// Could not be read; the reason.
    Unreadable(String),
}

/// A pack, with its entries classified by kind.
struct Pack {
    bundle: pack::Bundle,
    /// Entries the traversal decodes, by offset, with their kind.
    decodable: Vec<(index::Entry, Kind)>,
}

/// An object read on its own, and where from.
struct Alone {
    id: ObjectId,
    kind: Kind,
    /// The loose store that holds it, or `None` to look it up in the
    /// repository (a packed object the traversal leaves out).
    loose: Option<usize>,
}

/// A repository's object database, classified.
pub struct ObjectDb {
    packs: Vec<Pack>,
    loose: Vec<gix::odb::loose::Store>,
    alone: Vec<Alone>,
    hash: gix::hash::Kind,
}

impl ObjectDb {
    /// Classifies every object of the repository's object directory and
    /// of its alternates.
    pub fn open(repo: &gix::Repository) -> Result<ObjectDb, GitError> {
        let hash = repo.object_hash();
        let mut db = ObjectDb {
            packs: Vec::new(),
            loose: Vec::new(),
            alone: Vec::new(),
            hash,
        };
        for dir in object_dirs(repo.objects.store_ref().path()) {
            for idx in pack_indices(&dir)? {
                let bundle = pack::Bundle::at(&idx, hash).map_err(read_error)?;
                let (decodable, alone) = classify(&bundle)?;
                db.alone.extend(alone_in_repo(repo, alone));
                db.packs.push(Pack { bundle, decodable });
            }
            let store = gix::odb::loose::Store::at(&dir, hash);
            let at = db.loose.len();
            for id in store.iter() {
                let id = id.map_err(read_error)?;
                // A loose object that cannot be read is named when it is visited.
                let kind = store.try_header(&id).ok().flatten().map_or(Kind::Blob, |(_, kind)| kind);
                db.alone.push(Alone { id, kind, loose: Some(at) });
            }
            db.loose.push(store);
        }
        Ok(db)
    }

    /// The ids of every object of `kind` (an object in two packs, twice).
    pub fn ids(&self, kind: Kind) -> Vec<ObjectId> {
        let packed = self
            .packs
            .iter()
            .flat_map(|p| p.decodable.iter().filter(|(_, k)| *k == kind).map(|(e, _)| e.oid));
        let alone = self.alone.iter().filter(|a| a.kind == kind).map(|a| a.id);
        packed.chain(alone).collect()
    }

    /// Calls `visit` with every object of `kind`, on `threads` threads, each
    /// with its own state from `make`; returns the states.
    pub fn visit<S, M, V>(
        &self,
        repo: &gix::ThreadSafeRepository,
        kind: Kind,
        threads: usize,
        make: M,
        visit: V,
    ) -> Result<Vec<S>, GitError>
    where
        S: Send,
        M: Fn() -> S + Sync,
        V: Fn(&mut S, &oid, Object<'_>) + Sync,
    {
        let sink = Mutex::new(Vec::new());
        for pack in &self.packs {
            self.traverse(pack, kind, threads, Local::new(&make, &sink), &visit)?;
        }
        let alone: Vec<&Alone> = self.alone.iter().filter(|a| a.kind == kind).collect();
        let per_thread = alone.len().div_ceil(threads.max(1)).max(1);
        std::thread::scope(|scope| {
            for share in alone.chunks(per_thread) {
                let (make, visit, sink) = (&make, &visit, &sink);
                scope.spawn(move || {
                    let repo = repo.to_thread_local();
                    let mut local = Local::new(make, sink);
                    let mut buf = Vec::new();
                    for object in share {
                        let read = self.read_alone(&repo, object, &mut buf);
                        visit(local.state(), &object.id, read);
                    }
                });
            }
        });
        Ok(sink.into_inner().unwrap_or_else(|e| e.into_inner()))
    }

    fn traverse<S, M, V>(&self, pack: &Pack, kind: Kind, threads: usize, mut local: Local<'_, S, M>, visit: &V) -> Result<(), GitError>
    where
        S: Send,
        M: Fn() -> S + Sync,
        V: Fn(&mut S, &oid, Object<'_>) + Sync,
    {
        // gix reads the first entry's header where the pack's first entry
        // stands, so that entry leads the list, wanted or not.
        let first = pack.decodable.first().filter(|(_, k)| *k != kind).map(|(e, _)| (e.clone(), false));
        let wanted = pack.decodable.iter().filter(|(_, k)| *k == kind).map(|(e, _)| (e.clone(), true));
        let index = &pack.bundle.index;
        let interrupt = AtomicBool::new(false);
        let tree = Tree::from_offsets_in_pack(
            pack.bundle.pack.path(),
            first.into_iter().chain(wanted),
            &|(e, _): &(index::Entry, bool)| e.pack_offset,
            &|id| index.lookup(id).map(|i| index.pack_offset_at_index(i)),
            &mut gix::features::progress::Discard,
            &interrupt,
            self.hash,
        )
        .map_err(read_error)?;
        tree.traverse(
            |range, data: &pack::data::File| data.entry_slice(range),
            &pack.bundle.pack,
            pack.bundle.pack.pack_end() as u64,
            move |(entry, wanted): &mut (index::Entry, bool),
                  _: &dyn gix::features::progress::Progress,
                  context: pack::cache::delta::traverse::Context<'_>| {
                if *wanted {
                    visit(local.state(), &entry.oid, Object::Data(context.decompressed));
                }
                Ok::<(), Infallible>(())
            },
            pack::cache::delta::traverse::Options {
                object_progress: Box::new(gix::features::progress::Discard),
                size_progress: &mut gix::features::progress::Discard,
                thread_limit: Some(threads.max(1)),
                should_interrupt: &interrupt,
                object_hash: self.hash,
                alloc_limit_bytes: None,
            },
        )
        .map_err(read_error)?;
        Ok(())
    }

    fn read_alone<'b>(&self, repo: &gix::Repository, object: &Alone, buf: &'b mut Vec<u8>) -> Object<'b> {
        let header = match object.loose {
            Some(store) => self.loose[store]
                .try_header(&object.id)
                .map_err(read_error)
                .and_then(|h| h.map(|(size, _)| size).ok_or_else(|| GitError::Read("object not found".into()))),
            None => repo.objects.header(object.id).map(|h| h.size()).map_err(read_error),
        };
        match header {
            Ok(size) if size > MAX_OBJECT_BYTES => return Object::TooLarge(size),
            Ok(_) => {}
            Err(err) => return Object::Unreadable(err.to_string()),
        }
        let data = match object.loose {
            Some(store) => self.loose[store]
                .try_find(&object.id, buf)
                .map_err(read_error)
                .and_then(|d| d.map(|d| d.data).ok_or_else(|| GitError::Read("object not found".into()))),
            None => repo.objects.find(&object.id, buf).map(|d| d.data).map_err(read_error),
        };
        match data {
            Ok(data) => Object::Data(data),
            Err(err) => Object::Unreadable(err.to_string()),
        }
    }
}

/// A traversal thread's state: made when the thread's copy of the visitor
/// is, and handed back when the copy is dropped.
struct Local<'a, S, M: Fn() -> S> {
    state: Option<S>,
    make: &'a M,
    sink: &'a Mutex<Vec<S>>,
}

impl<'a, S, M: Fn() -> S> Local<'a, S, M> {
    fn new(make: &'a M, sink: &'a Mutex<Vec<S>>) -> Self {
        Local {
            state: Some(make()),
            make,
            sink,
        }
    }

    fn state(&mut self) -> &mut S {
        self.state.get_or_insert_with(self.make)
    }
}

impl<S, M: Fn() -> S> Clone for Local<'_, S, M> {
    fn clone(&self) -> Self {
        Local::new(self.make, self.sink)
    }
}

impl<S, M: Fn() -> S> Drop for Local<'_, S, M> {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            self.sink.lock().unwrap_or_else(|e| e.into_inner()).push(state);
        }
    }
}

/// The object directory and those of its alternates (one level, as
/// `objects/info/alternates` lists them).
fn object_dirs(objects: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![objects.to_path_buf()];
    if let Ok(list) = std::fs::read_to_string(objects.join("info").join("alternates")) {
        for line in list.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let dir = objects.join(line);
            if dir.is_dir() && !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    }
    dirs
}

/// The `.idx` files of a directory's packs whose `.pack` is there.
fn pack_indices(objects: &Path) -> Result<Vec<PathBuf>, GitError> {
    let dir = objects.join("pack");
    let Ok(listing) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut found: Vec<PathBuf> = listing
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "idx") && p.with_extension("pack").is_file())
        .collect();
    found.sort();
    Ok(found)
}

/// A pack's entries the traversal decodes, with their kinds, and the ids
/// of those it leaves out.
type Classified = (Vec<(index::Entry, Kind)>, Vec<ObjectId>);

/// What a pack's entries are. Returns the entries the traversal can
/// decode, with their kinds, and the ids it must leave out: a delta whose
/// base is in another pack (its kind unknown here), and every object that
/// could grow past [`MAX_OBJECT_BYTES`], with its deltas.
fn classify(bundle: &pack::Bundle) -> Result<Classified, GitError> {
    use pack::data::entry::Header;
    let mut entries: Vec<index::Entry> = bundle.index.iter().collect();
    entries.sort_by_key(|e| e.pack_offset);
    let position = |offset: u64| entries.binary_search_by_key(&offset, |e| e.pack_offset).ok();
    let n = entries.len();
    let mut kind: Vec<Option<Kind>> = vec![None; n];
    let mut base: Vec<Option<usize>> = vec![None; n];
    // An upper bound of each object's size: a delta's result is at most
    // its base plus the delta's own data.
    let mut bound = vec![0u64; n];
    let mut own = vec![0u64; n];
    for (i, e) in entries.iter().enumerate() {
        let entry = bundle.pack.entry(e.pack_offset).map_err(read_error)?;
        own[i] = entry.decompressed_size;
        match entry.header {
            Header::Commit => kind[i] = Some(Kind::Commit),
            Header::Tree => kind[i] = Some(Kind::Tree),
            Header::Blob => kind[i] = Some(Kind::Blob),
            Header::Tag => kind[i] = Some(Kind::Tag),
            Header::OfsDelta { base_distance } => base[i] = e.pack_offset.checked_sub(base_distance).and_then(position),
            Header::RefDelta { base_id } => {
                base[i] = bundle
                    .index
                    .lookup(base_id)
                    .map(|at| bundle.index.pack_offset_at_index(at))
                    .and_then(position)
            }
        }
        if kind[i].is_some() {
            bound[i] = own[i];
        }
    }
    // Bases before their deltas settle in one pass; a ref-delta to a later
    // entry needs another.
    let mut changed = true;
    while changed {
        changed = false;
        for i in 0..n {
            if let (None, Some(b)) = (kind[i], base[i]) {
                if let Some(k) = kind[b] {
                    kind[i] = Some(k);
                    bound[i] = bound[b].saturating_add(own[i]);
                    changed = true;
                }
            }
        }
    }
    // A delta on a base left out is left out too; so is an entry no base
    // chain reaches (a ref-delta cycle in a corrupt pack).
    let mut left_out = vec![true; n];
    let mut decodable = Vec::with_capacity(n);
    for i in order_bases_first(&base) {
        left_out[i] = kind[i].is_none() || bound[i] > MAX_OBJECT_BYTES || base[i].is_some_and(|b| left_out[b]);
        if let (false, Some(k)) = (left_out[i], kind[i]) {
            decodable.push((entries[i].clone(), k));
        }
    }
    if left_out.first() == Some(&true) {
        // gix's traversal starts reading at the pack's first entry, so
        // without it the whole pack is read object by object.
        return Ok((Vec::new(), entries.into_iter().map(|e| e.oid).collect()));
    }
    let alone = (0..n).filter(|&i| left_out[i]).map(|i| entries[i].oid).collect();
    decodable.sort_by_key(|(e, _)| e.pack_offset);
    Ok((decodable, alone))
}

/// Positions ordered so that each base comes before its deltas.
fn order_bases_first(base: &[Option<usize>]) -> Vec<usize> {
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); base.len()];
    let mut roots = Vec::new();
    for (i, b) in base.iter().enumerate() {
        match b {
            Some(b) => children[*b].push(i),
            None => roots.push(i),
        }
    }
    let mut order = Vec::with_capacity(base.len());
    let mut stack = roots;
    stack.reverse();
    while let Some(i) = stack.pop() {
        order.push(i);
        stack.extend(children[i].iter().rev());
    }
    order
}

/// The left-out objects with their kinds, as the repository reads them.
fn alone_in_repo(repo: &gix::Repository, ids: Vec<ObjectId>) -> Vec<Alone> {
    ids.into_iter()
        .map(|id| Alone {
            kind: repo.objects.header(id).map_or(Kind::Blob, |h| h.kind()),
            id,
            loose: None,
        })
        .collect()
}
