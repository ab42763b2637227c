//! Where a rule's literal may stand: the anchors every rule contributes,
//! and the one pass that finds them all.
//!
//! Each rule prefix gives an anchor of its first four bytes (or its four
//! most selective bytes, or the prefix widened by its next byte when it is
//! shorter than three), each keyword its first four bytes in every case,
//! and each plain anchor its base64 forms at the three alignments inside a
//! 3-byte group. The search turns every anchor into the exact 4-byte windows
//! it can start (a 3-byte anchor with each byte that can follow it in a
//! match), and tests each input position against all of them at once
//! ([`filter`]); a position that passes is looked up exactly. That keeps one
//! pass over the input whatever the number of rules. Anchors shorter than
//! three bytes, which only hand-written rules have, go through a small
//! aho-corasick automaton instead.

mod filter;

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, MatchKind};

use filter::Filter;
pub use filter::Kernel;

use super::base64;
use super::placeholder;
use super::rules::{Rule, RuleSet, Shape};
use super::{EngineError, URI_DELIMITERS};

/// Anchor bytes: three give the search a useful window; a fourth makes a
/// plain hit more selective before the prefix is compared.
const MIN_ANCHOR: usize = 3;
const WINDOW: usize = 4;
/// How many one-byte widenings a short prefix may get.
const MAX_WIDENING: usize = 16;

/// Which rule and prefix an anchor stands for.
#[derive(Debug, Clone, Copy)]
pub(super) struct Target {
    pub rule: usize,
    pub prefix: usize,
    /// Where the anchor stands in the prefix: the token starts this many
    /// bytes before the hit.
    pub offset: usize,
}

/// What an anchor stands for.
#[derive(Debug, Clone)]
pub(super) struct Pattern {
    pub targets: Vec<Target>,
    /// `None` for a plain prefix; `Some(align)` for its base64 form when
    /// the prefix starts at byte `align` of a 3-byte group.
    pub base64_align: Option<usize>,
}

impl Pattern {
    fn add_target(&mut self, target: Target) {
        if !self.targets.iter().any(|t| t.rule == target.rule && t.prefix == target.prefix) {
            self.targets.push(target);
        }
    }
}

/// Bytes as a 256-bit set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ByteSet([u64; 4]);

impl ByteSet {
    const ALL: ByteSet = ByteSet([u64::MAX; 4]);

    fn of(bytes: impl IntoIterator<Item = u8>) -> ByteSet {
        let mut set = ByteSet::default();
        bytes.into_iter().for_each(|b| set.0[usize::from(b >> 6)] |= 1 << (b & 63));
        set
    }

    fn union(self, other: ByteSet) -> ByteSet {
        ByteSet(std::array::from_fn(|i| self.0[i] | other.0[i]))
    }

    fn iter(self) -> impl Iterator<Item = u8> {
        (0..=255u8).filter(move |&b| self.0[usize::from(b >> 6)] >> (b & 63) & 1 != 0)
    }
}

/// One literal to search for.
#[derive(Debug, Clone)]
struct Anchor {
    literal: Vec<u8>,
    any_case: bool,
    /// For a 3-byte literal: the bytes that can follow it in a match, which
    /// make up the fourth byte of its windows.
    follow: ByteSet,
    pattern: Pattern,
}

impl Anchor {
    /// Every 4-byte window (read little-endian) at which this anchor can
    /// start a match.
    fn windows(&self) -> Vec<u32> {
        let head = &self.literal[..self.literal.len().min(WINDOW)];
        let mut windows = vec![Vec::new()];
        for &byte in head {
            let choices = if self.any_case && byte.is_ascii_alphabetic() {
                vec![byte.to_ascii_lowercase(), byte.to_ascii_uppercase()]
            } else {
                vec![byte]
            };
            windows = windows
                .iter()
                .flat_map(|w: &Vec<u8>| choices.iter().map(move |&c| [w.as_slice(), &[c]].concat()))
                .collect();
        }
        if head.len() < WINDOW {
            windows = windows
                .iter()
                .flat_map(|w| self.follow.iter().map(move |c| [w.as_slice(), &[c]].concat()))
                .collect();
        }
        windows.iter().map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect()
    }

    /// Whether the literal's bytes past the window stand at `at`.
    fn rest_matches(&self, hay: &[u8], at: usize) -> bool {
        let Some(rest) = self.literal.get(WINDOW..) else { return true };
        let Some(there) = hay.get(at + WINDOW..at + self.literal.len()) else {
            return false;
        };
        if self.any_case {
            there.eq_ignore_ascii_case(rest)
        } else {
            there == rest
        }
    }
}

/// The literals to search for and what each stands for, while being built.
#[derive(Default)]
struct AnchorSet {
    anchors: Vec<Anchor>,
}

impl AnchorSet {
    fn add(&mut self, literal: Vec<u8>, any_case: bool, base64_align: Option<usize>, follow: ByteSet, target: Target) {
        let same = |a: &&mut Anchor| a.literal == literal && a.pattern.base64_align == base64_align && a.any_case == any_case;
        match self.anchors.iter_mut().find(same) {
            Some(anchor) => {
                anchor.pattern.add_target(target);
                anchor.follow = anchor.follow.union(follow);
            }
            None => self.anchors.push(Anchor {
                literal,
                any_case,
                follow,
                pattern: Pattern {
                    targets: vec![target],
                    base64_align,
                },
            }),
        }
    }
}

/// Every anchor of a rule set, searchable in one pass.
pub(super) struct AnchorIndex {
    anchors: Vec<Anchor>,
    filter: Filter,
    exact: ExactTable,
    /// Anchors of fewer than three bytes, and their indices in `anchors`.
    short: Option<(AhoCorasick, Vec<usize>)>,
}

impl std::fmt::Debug for AnchorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnchorIndex")
            .field("anchors", &self.anchors.len())
            .field("filter", &self.filter)
            .field("short", &self.short.as_ref().map(|(_, ids)| ids.len()))
            .finish()
    }
}

impl AnchorIndex {
    pub fn new(rules: &RuleSet) -> Result<AnchorIndex, EngineError> {
        AnchorIndex::with_kernel(rules, Kernel::detect())
    }

    pub fn with_kernel(rules: &RuleSet, kernel: Kernel) -> Result<AnchorIndex, EngineError> {
        let anchors = all_anchors(rules).anchors;
        let mut windows: HashMap<u32, Vec<u32>> = HashMap::new();
        let mut short = Vec::new();
        for (i, anchor) in anchors.iter().enumerate() {
            if anchor.literal.len() < MIN_ANCHOR {
                short.push(i);
                continue;
            }
            for window in anchor.windows() {
                windows.entry(window).or_default().push(i as u32);
            }
        }
        let filter = Filter::new(windows.keys().copied(), kernel);
        let short = if short.is_empty() {
            None
        } else {
            let automaton = AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .build(short.iter().map(|&i| &anchors[i].literal))?;
            Some((automaton, short))
        };
        Ok(AnchorIndex {
            exact: ExactTable::new(windows),
            anchors,
            filter,
            short,
        })
    }

    pub fn kernel(&self) -> Kernel {
        self.filter.kernel()
    }

    /// Every literal searched for, sorted: what `rg -F` is given when its
    /// speed is compared with the engine's.
    pub fn literals(&self) -> Vec<Vec<u8>> {
        let mut all: Vec<Vec<u8>> = self.anchors.iter().map(|a| a.literal.clone()).collect();
        all.sort();
        all.dedup();
        all
    }

    /// Calls `hit` with every position where an anchor starts and what the
    /// anchor stands for, positions ascending for the 4-byte windows.
    pub fn each_hit<'a>(&'a self, hay: &[u8], mut hit: impl FnMut(usize, &'a Pattern)) {
        let mut positions = Vec::with_capacity(hay.len() / 256);
        self.filter.positions(hay, &mut positions);
        for at in positions {
            let window = u32::from_le_bytes([hay[at], hay[at + 1], hay[at + 2], hay[at + 3]]);
            for &i in self.exact.get(window) {
                let anchor = &self.anchors[i as usize];
                if anchor.rest_matches(hay, at) {
                    hit(at, &anchor.pattern);
                }
            }
        }
        if let Some((automaton, ids)) = &self.short {
            for m in automaton.find_overlapping_iter(hay) {
                hit(m.start(), &self.anchors[ids[m.pattern().as_usize()]].pattern);
            }
        }
    }
}

/// An open-addressing map from a 4-byte window to the anchors that start
/// with it: the exact check behind the filter.
struct ExactTable {
    /// `(window, first id, id count)`; a count of zero marks a free slot.
    slots: Box<[(u32, u32, u32)]>,
    ids: Vec<u32>,
}

impl ExactTable {
    fn new(windows: HashMap<u32, Vec<u32>>) -> ExactTable {
        let size = (windows.len() * 2).next_power_of_two().max(16);
        let mut slots = vec![(0, 0, 0); size].into_boxed_slice();
        let mut ids = Vec::new();
        let mut sorted: Vec<(u32, Vec<u32>)> = windows.into_iter().collect();
        sorted.sort();
        for (window, anchors) in sorted {
            let mut slot = Self::home(window, size);
            while slots[slot].2 != 0 {
                slot = (slot + 1) & (size - 1);
            }
            slots[slot] = (window, ids.len() as u32, anchors.len() as u32);
            ids.extend(anchors);
        }
        ExactTable { slots, ids }
    }

    fn home(window: u32, size: usize) -> usize {
        (window.wrapping_mul(0x85EB_CA6B).rotate_left(13) as usize) & (size - 1)
    }

    #[inline]
    fn get(&self, window: u32) -> &[u32] {
        let mask = self.slots.len() - 1;
        let mut slot = Self::home(window, self.slots.len());
        loop {
            let (key, first, count) = self.slots[slot];
            if count == 0 {
                return &[];
            }
            if key == window {
                return &self.ids[first as usize..(first + count) as usize];
            }
            slot = (slot + 1) & mask;
        }
    }
}

/// Every (rule, prefix) pair, as the target an anchor of it stands for.
pub(super) fn each_prefix(rules: &RuleSet) -> impl Iterator<Item = (&Rule, &str, Target)> {
    rules.rules().iter().enumerate().flat_map(|(r, rule)| {
        rule.prefixes.iter().enumerate().map(move |(p, prefix)| {
            let target = Target {
                rule: r,
                prefix: p,
                offset: 0,
            };
            (rule, prefix.as_str(), target)
        })
    })
}

/// Every anchor: plain and base64 forms of the literal rules' prefixes,
/// and of the keywords in any case.
fn all_anchors(rules: &RuleSet) -> AnchorSet {
    let mut set = AnchorSet::default();
    for (rule, prefix, target) in each_prefix(rules) {
        let bytes = prefix.as_bytes();
        if rule.keyword_gap.is_some() {
            set.add(bytes.to_ascii_lowercase(), true, None, ByteSet::ALL, target);
            add_base64_keyword_anchors(&mut set, bytes, target);
            continue;
        }
        match selective_window(bytes) {
            Some(offset) => set.add(
                bytes[offset..offset + WINDOW].to_vec(),
                false,
                None,
                ByteSet::ALL,
                Target { offset, ..target },
            ),
            None => {
                for (key, follow) in anchor_keys(rule, prefix) {
                    set.add(key, false, None, follow, target);
                }
            }
        }
        if rule.shape != Shape::UriPassword {
            add_base64_anchors(&mut set, rule, prefix, target);
        }
    }
    set
}

/// The first bytes of a prefix worth searching for, each with the bytes
/// that can follow it in a match. A prefix shorter than three bytes is
/// widened by each byte its body may start with, when there are few
/// enough (Twilio's `SK` + hex), and by each byte that opens a template
/// slot (`SK<your-key>`), which `--all-candidates` reports.
fn anchor_keys(rule: &Rule, prefix: &str) -> Vec<(Vec<u8>, ByteSet)> {
    let bytes = prefix.as_bytes();
    if bytes.len() >= MIN_ANCHOR {
        return vec![(bytes[..bytes.len().min(WINDOW)].to_vec(), follow(rule, bytes.len(), 0))];
    }
    let next: Vec<u8> = (0..=255u8).filter(|&b| rule.charset.contains(b)).collect();
    if next.len() > MAX_WIDENING {
        return vec![(bytes.to_vec(), ByteSet::ALL)];
    }
    let body = next.into_iter().map(|b| ([bytes, &[b]].concat(), follow(rule, bytes.len(), 1)));
    // A template slot holds something: `SK<your-key>`, `SK${KEY}`.
    let in_slot = ByteSet::of((0..=255u8).filter(|&b| !placeholder::closes_template(b)));
    let openers = (0..=255u8)
        .filter(|&b| placeholder::opens_template(b) && !rule.charset.contains(b))
        .map(|b| ([bytes, &[b]].concat(), in_slot));
    body.chain(openers).collect()
}

/// The bytes that can follow a literal of `literal_len` bytes and the first
/// `seen` bytes of the body in a match:
/// - a plain token's body byte, or a template slot's opener while the body
///   is still too short to be whole;
/// - an inner literal's next token byte, where the literal never ends the
///   token;
/// - a URI's userinfo byte after `://`: not a delimiter;
/// - anything, where the match may already be whole or reads further
///   (PEM blocks, keywords).
fn follow(rule: &Rule, literal_len: usize, seen: usize) -> ByteSet {
    let charset = (0..=255u8).filter(|&b| rule.charset.contains(b));
    if rule.shape == Shape::UriPassword {
        return ByteSet::of((0..=255u8).filter(|b| !URI_DELIMITERS.contains(b)));
    }
    if rule.shape != Shape::Token || rule.keyword_gap.is_some() {
        return ByteSet::ALL;
    }
    if rule.is_inner_anchored() {
        let may_end = seen > 0 || rule.anchor_offsets.iter().any(|o| o + literal_len >= rule.min_len);
        return if may_end { ByteSet::ALL } else { ByteSet::of(charset) };
    }
    if seen >= rule.min_len {
        return ByteSet::ALL;
    }
    ByteSet::of(charset.chain((0..=255u8).filter(|&b| placeholder::opens_template(b))))
}

/// The four bytes of a long prefix that ordinary text holds least often:
/// the window with the most bytes other than lowercase letters and spaces
/// (`k-1/` of `configcat-sdk-1/`, not `conf`). `None` keeps the start.
fn selective_window(prefix: &[u8]) -> Option<usize> {
    let common = |b: &u8| b.is_ascii_lowercase() || *b == b' ';
    let rare = |w: &[u8]| w.iter().filter(|b| !common(b)).count();
    let (best, offset) = prefix
        .windows(WINDOW)
        .enumerate()
        .map(|(i, w)| (rare(w), std::cmp::Reverse(i)))
        .max()?;
    (offset.0 > 0 && best > rare(&prefix[..WINDOW])).then_some(offset.0)
}

/// Base64 anchors: the characters that encode the start of a prefix at
/// each of the three alignments inside a 3-byte group (four of them where
/// the prefix is long enough, else three, with the characters that can
/// follow). A prefix that contains another of its rule keeps its own
/// anchors, so an encoded match starts where the plain one would
/// (`https://hooks…`, not `hooks…`).
fn add_base64_anchors(set: &mut AnchorSet, rule: &Rule, prefix: &str, target: Target) {
    for (key, _) in anchor_keys(rule, prefix) {
        for align in 0..3 {
            let fragment = base64::fragment(&key, align);
            if fragment.len() >= MIN_ANCHOR {
                let literal = fragment[..fragment.len().min(WINDOW)].to_vec();
                let follow = ByteSet::of(base64::chars_after_fragment(&key, align));
                set.add(literal, false, Some(align), follow, target);
            }
        }
    }
}

/// Base64 anchors of a keyword: its first four bytes in each of their
/// case forms (`aws_`, `AWS_`, `Aws_` …), at each alignment. Base64 keeps
/// no case-folding, so each form has its own encoding.
fn add_base64_keyword_anchors(set: &mut AnchorSet, keyword: &[u8], target: Target) {
    let head = &keyword[..keyword.len().min(WINDOW)];
    let mut forms = vec![Vec::new()];
    for &byte in head {
        let cases = [byte.to_ascii_lowercase(), byte.to_ascii_uppercase()];
        let choices = if cases[0] == cases[1] { &cases[..1] } else { &cases[..] };
        forms = forms
            .iter()
            .flat_map(|f| choices.iter().map(move |&c| [f.as_slice(), &[c]].concat()))
            .collect();
    }
    for form in forms {
        for align in 0..3 {
            let fragment = base64::fragment(&form, align);
            if fragment.len() >= MIN_ANCHOR {
                let literal = fragment[..fragment.len().min(WINDOW)].to_vec();
                let follow = ByteSet::of(base64::chars_after_fragment(&form, align));
                set.add(literal, false, Some(align), follow, target);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_rule(prefix: &str, charset: &str) -> RuleSet {
        let mut set = RuleSet::default();
        let toml = format!(
            "[[rule]]\nid = \"t\"\nname = \"t\"\nprefixes = [\"{prefix}\"]\ncharset = \"{charset}\"\nlength = 8\nconfidence = \"high\"\nseverity = \"high\"\n"
        );
        set.add_toml("t.toml", &toml).unwrap();
        set
    }

    #[test]
    fn shipped_rules_need_no_short_anchor_automaton() {
        let index = AnchorIndex::new(&RuleSet::builtin()).unwrap();
        assert!(index.short.is_none(), "{index:?}");
        assert!(index.anchors.len() > 1000, "{index:?}");
    }

    #[test]
    fn a_three_byte_anchor_is_searched_with_each_byte_that_can_follow() {
        let set = one_rule("ab_", "0-9");
        let index = AnchorIndex::new(&set).unwrap();
        let hits = |text: &str| {
            let mut at = Vec::new();
            index.each_hit(text.as_bytes(), |p, pattern| {
                if pattern.base64_align.is_none() {
                    at.push(p)
                }
            });
            at
        };
        assert_eq!(hits("x ab_1 ab_< ab_x"), vec![2, 7]);
    }

    #[test]
    fn keywords_are_found_in_any_case_and_whole() {
        let rules = RuleSet::builtin();
        let index = AnchorIndex::new(&rules).unwrap();
        let keyword_hits = |text: &[u8]| {
            let mut at = Vec::new();
            index.each_hit(text, |p, pattern| {
                if pattern.targets.iter().any(|t| rules.rules()[t.rule].keyword_gap.is_some()) {
                    at.push(p);
                }
            });
            at.dedup();
            at
        };
        assert_eq!(keyword_hits(b"AWS_Secret_Access_Key = x"), vec![0, 4]);
        assert_eq!(keyword_hits(b"aws_secret_acce"), Vec::<usize>::new());
    }

    #[test]
    fn short_anchors_fall_back_to_an_automaton() {
        let set = one_rule("Q9", "0-9A-Za-z");
        let index = AnchorIndex::new(&set).unwrap();
        let mut at = Vec::new();
        index.each_hit(b"xx Q9abcdefgh", |p, pattern| {
            if pattern.base64_align.is_none() {
                at.push(p)
            }
        });
        assert_eq!(at, vec![3]);
    }
}
