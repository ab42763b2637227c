//! Pure scanning: bytes in, findings out. No I/O, no async, no knowledge of
//! where the bytes came from.
//!
//! One aho-corasick automaton holds every rule prefix, plus the base64
//! forms of each prefix at its three alignments, so tokens hidden one
//! base64 level deep cost no second pass. A hit is extended over the rule's
//! charset with a word boundary on both sides, then validated: pattern,
//! checksum, placeholder heuristics. [`Stream`] feeds the engine fixed-size
//! chunks so memory stays flat however large the input.

pub mod allowlist;
mod base64;
pub mod charset;
mod finding;
mod placeholder;
mod reference;
pub mod rules;
mod stream;

use aho_corasick::{AhoCorasick, MatchKind};

pub use allowlist::Allowlist;
pub use finding::{finding_id, redact, Encoding, Finding, Secret};
pub use reference::comparable;
pub use rules::{ChecksumKind, Confidence, Rule, RuleError, RuleSet, Severity, Shape};
pub use stream::Stream;

use crate::keys::checksum;

/// Anchor bytes: three give the SIMD prefilter its best fingerprint; a
/// fourth makes a plain hit more selective before the prefix is compared.
const MIN_ANCHOR: usize = 3;
const PLAIN_ANCHOR: usize = 4;
/// Base64 anchors are four characters where the prefix allows; three-
/// character ones are kept in their own automaton (mixed into a full group
/// they cut its throughput from 4.5 to 0.5 GB/s).
const BASE64_ANCHOR: usize = 4;
/// How many one-byte widenings a short prefix may get.
const MAX_WIDENING: usize = 16;
/// aho-corasick uses its SIMD (Teddy) prefilter only for up to 64 literals;
/// past that it walks a DFA byte by byte at a tenth of the speed, so
/// anchors are grouped into automata of at most this many.
const SIMD_LIMIT: usize = 64;
use charset::is_word_byte;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no rules to scan with")]
    NoRules,
    #[error("building the prefix automaton: {0}")]
    Automaton(#[from] aho_corasick::BuildError),
}

/// Which rule and prefix an automaton pattern stands for.
#[derive(Debug, Clone, Copy)]
struct Target {
    rule: usize,
    prefix: usize,
}

#[derive(Debug, Clone)]
struct Pattern {
    targets: Vec<Target>,
    /// `None` for a plain prefix; `Some(align)` for its base64 form when
    /// the prefix starts at byte `align` of a 3-byte group.
    base64_align: Option<usize>,
}

/// A match inside a buffer, before line numbers are known.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub rule: usize,
    pub start: usize,
    pub end: usize,
    pub token: Vec<u8>,
    pub redacted: String,
    pub confidence: Confidence,
    pub encoding: Encoding,
}

impl Candidate {
    /// The finding this candidate is, `base` bytes into the input, at the
    /// given line and column.
    fn into_finding(self, engine: &Engine, base: u64, line: u64, column: u64, allowed: bool) -> Finding {
        let rule_id = engine.rule(self.rule).id.clone();
        Finding {
            rule: self.rule,
            finding_id: finding_id(&rule_id, &self.token),
            rule_id,
            start: base + self.start as u64,
            end: base + self.end as u64,
            line,
            column,
            allowed,
            secret: Secret::new(&self.token),
            redacted: self.redacted,
            confidence: self.confidence,
            encoding: self.encoding,
        }
    }
}

/// A rule's match within one slice of bytes (plain or decoded).
struct Hit {
    end: usize,
    confidence: Confidence,
    display_prefix: String,
    /// Where the last four characters shown in the redacted form come from.
    tail: std::ops::Range<usize>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct EngineOptions {
    /// Also report placeholders and look-alikes with bad checksums.
    pub all_candidates: bool,
}

#[derive(Debug)]
pub struct Engine {
    rules: RuleSet,
    searchers: Vec<Searcher>,
    max_span: usize,
    options: EngineOptions,
}

impl Engine {
    pub fn new(rules: RuleSet, options: EngineOptions) -> Result<Engine, EngineError> {
        if rules.rules().is_empty() {
            return Err(EngineError::NoRules);
        }
        let searchers = anchors(&rules).build()?;
        let plain_span = rules.rules().iter().map(Rule::max_span).max().unwrap_or(0);
        // A base64 match covers 4/3 of its decoded length plus the group lead.
        let max_span = base64::encoded_len(plain_span + 2) + 4;
        Ok(Engine {
            rules,
            searchers,
            max_span,
            options,
        })
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    pub fn rule(&self, index: usize) -> &Rule {
        &self.rules.rules()[index]
    }

    /// The longest stretch of input a single finding can cover. Streams keep
    /// this much overlap between chunks.
    pub fn max_span(&self) -> usize {
        self.max_span
    }

    /// Scans one in-memory input and returns its findings, with lines.
    pub fn scan_bytes(&self, input: &[u8]) -> Vec<Finding> {
        let mut stream = Stream::with_chunk_size(self, input.len().max(1));
        let mut findings = Vec::new();
        let spare = stream.spare();
        spare[..input.len()].copy_from_slice(input);
        stream.advance(input.len(), &mut findings);
        stream.finish(&mut findings);
        findings
    }

    /// Every candidate in `hay`, ordered by start, overlaps resolved.
    pub(crate) fn candidates(&self, hay: &[u8]) -> Vec<Candidate> {
        let mut found = Vec::new();
        for searcher in &self.searchers {
            for (start, pattern) in searcher.hits(hay) {
                match pattern.base64_align {
                    None => pattern.targets.iter().for_each(|t| self.push_plain(hay, start, *t, &mut found)),
                    Some(align) => self.push_base64(hay, start, align, pattern, &mut found),
                }
            }
        }
        resolve_overlaps(found)
    }

    fn push_plain(&self, hay: &[u8], start: usize, target: Target, out: &mut Vec<Candidate>) {
        let rule = self.rule(target.rule);
        let prefix = rule.prefixes[target.prefix].as_bytes();
        if !hay[start..].starts_with(prefix) {
            return;
        }
        let body = start + prefix.len();
        if let Some(hit) = self.match_at(rule, hay, start, body) {
            out.push(Candidate {
                rule: target.rule,
                start,
                end: hit.end,
                token: hay[start..hit.end].to_vec(),
                redacted: redact(&hit.display_prefix, &hay[hit.tail]),
                confidence: hit.confidence,
                encoding: Encoding::Plain,
            });
        }
    }

    fn push_base64(&self, hay: &[u8], hit: usize, align: usize, pattern: &Pattern, out: &mut Vec<Candidate>) {
        let Some(group) = hit.checked_sub(base64::lead_chars(align)) else {
            return;
        };
        for t in &pattern.targets {
            self.push_base64_at(hay, group, align, *t, out);
        }
    }

    /// Decodes from the 4-character group at `group` and matches the
    /// target's prefix at byte `align` of the decoded bytes.
    fn push_base64_at(&self, hay: &[u8], group: usize, align: usize, t: Target, out: &mut Vec<Candidate>) {
        let rule = self.rule(t.rule);
        let prefix = rule.prefixes[t.prefix].as_bytes();
        let want = align + rule.max_span();
        if hay.len() - group < base64::encoded_len(align + prefix.len()) {
            return;
        }
        let decoded = base64::decode_prefix(&hay[group..hay.len().min(group + base64::encoded_len(want) + 4)], want);
        if !decoded.get(align..).is_some_and(|d| d.starts_with(prefix)) {
            return;
        }
        if let Some(m) = self.match_at(rule, &decoded, align, align + prefix.len()) {
            out.push(Candidate {
                rule: t.rule,
                start: group + base64::encoded_offset(align),
                end: group + base64::encoded_len(m.end),
                token: decoded[align..m.end].to_vec(),
                redacted: redact(&m.display_prefix, &decoded[m.tail]),
                confidence: m.confidence,
                encoding: Encoding::Base64,
            });
        }
    }

    /// Matches `rule` at `start` in `data`, whose body begins at `body`.
    fn match_at(&self, rule: &Rule, data: &[u8], start: usize, body: usize) -> Option<Hit> {
        if start > 0 && is_word_byte(data[start - 1]) {
            return None;
        }
        let hit = match rule.shape {
            Shape::Token => match_token(rule, data, start, body),
            Shape::PemBlock => match_pem(rule, data, start, body),
        }?;
        (hit.confidence.is_valid() || self.options.all_candidates).then_some(hit)
    }
}

fn match_token(rule: &Rule, data: &[u8], start: usize, body: usize) -> Option<Hit> {
    let limit = data.len().min(body + rule.max_len + 1);
    let end = body + data[body..limit].iter().take_while(|&&b| rule.charset.contains(b)).count();
    let len = end - body;
    let display_prefix = String::from_utf8_lossy(&data[start..body]).into_owned();
    if len > rule.max_len {
        return None;
    }
    if len < rule.min_len {
        return template_slot(data, body, end).map(|end| Hit {
            end,
            confidence: Confidence::Placeholder,
            display_prefix,
            tail: body..end,
        });
    }
    if data.get(end).is_some_and(|&b| is_word_byte(b)) {
        return None;
    }
    let body_bytes = &data[body..end];
    if rule.pattern.as_ref().is_some_and(|p| !p.is_match(body_bytes)) {
        return None;
    }
    let confidence = if !checksum_holds(rule, &data[start..end], body_bytes) {
        Confidence::InvalidChecksum
    } else if placeholder::looks_like_placeholder(body_bytes) {
        Confidence::Placeholder
    } else {
        rule.confidence
    };
    Some(Hit {
        end,
        confidence,
        display_prefix,
        tail: body..end,
    })
}

/// `ghp_<your-token>` or `sk_live_${KEY}`: a prefix followed by a template
/// slot. Returns where the slot ends.
fn template_slot(data: &[u8], body: usize, run_end: usize) -> Option<usize> {
    let next = *data.get(run_end)?;
    if !placeholder::opens_template(next) {
        return None;
    }
    let window = &data[run_end..data.len().min(run_end + 64)];
    let close = window.iter().position(|b| b" \t\r\n\"'`>}]".contains(b)).unwrap_or(window.len());
    let end = run_end + close + usize::from(window.get(close).is_some_and(|b| b">}]".contains(b)));
    (end > body).then_some(end)
}

fn checksum_holds(rule: &Rule, token: &[u8], body: &[u8]) -> bool {
    let n = checksum::CHECKSUM_LEN;
    match rule.checksum {
        ChecksumKind::None => true,
        ChecksumKind::Crc32Base62Random => checksum::verify(&body[..body.len() - n], &body[body.len() - n..]),
        ChecksumKind::Crc32Base62All => checksum::verify(&token[..token.len() - n], &token[token.len() - n..]),
    }
}

/// `-----BEGIN <label>-----` … `-----END <label>-----`, where the label
/// must satisfy the rule's pattern and the body must hold at least
/// `min_len` characters of the rule's charset.
fn match_pem(rule: &Rule, data: &[u8], start: usize, label_start: usize) -> Option<Hit> {
    const DASHES: &[u8] = b"-----";
    let head = &data[label_start..data.len().min(label_start + 64)];
    let label_len = memchr::memmem::find(head, DASHES)?;
    let label = &head[..label_len];
    if rule.pattern.as_ref().is_some_and(|p| !p.is_match(label)) {
        return None;
    }
    let body = label_start + label_len + DASHES.len();
    let window = &data[body..data.len().min(body + rule.max_len)];
    let body_end = body + memchr::memmem::find(window, b"-----END ")?;
    let after_end = body_end + b"-----END ".len();
    let close = memchr::memmem::find(&data[after_end..data.len().min(after_end + 64)], DASHES)?;
    let end = after_end + close + DASHES.len();
    let body_bytes = &data[body..body_end];
    let significant: Vec<u8> = body_bytes.iter().copied().filter(|&b| rule.charset.contains(b)).collect();
    let confidence = if significant.len() < rule.min_len
        || memchr::memmem::find(body_bytes, b"...").is_some()
        || placeholder::looks_like_placeholder(&significant)
    {
        Confidence::Placeholder
    } else {
        rule.confidence
    };
    let tail = pem_tail(rule, body_bytes);
    Some(Hit {
        end,
        confidence,
        display_prefix: String::from_utf8_lossy(&data[start..body]).into_owned(),
        tail: body + tail.start..body + tail.end,
    })
}

/// The last four characters of the body's last long base64 run, so that
/// comment markers (`/// `, `# `) around an embedded key never show up in
/// the redacted form.
fn pem_tail(rule: &Rule, body: &[u8]) -> std::ops::Range<usize> {
    const LONG_RUN: usize = 16;
    let in_run = |b: u8| rule.charset.contains(b) && b != b'=';
    let mut end = body.len();
    while end > 0 {
        while end > 0 && !in_run(body[end - 1]) {
            end -= 1;
        }
        let start = body[..end].iter().rposition(|&b| !in_run(b)).map_or(0, |p| p + 1);
        if end - start >= LONG_RUN {
            return end - 4..end;
        }
        end = start;
    }
    0..0
}

impl Pattern {
    fn add_target(&mut self, target: Target) {
        if !self.targets.iter().any(|t| t.rule == target.rule && t.prefix == target.prefix) {
            self.targets.push(target);
        }
    }
}

/// Literals to search for and the rule prefixes each one stands for.
#[derive(Default)]
struct AnchorSet {
    literals: Vec<Vec<u8>>,
    patterns: Vec<Pattern>,
}

impl AnchorSet {
    fn add(&mut self, literal: Vec<u8>, base64_align: Option<usize>, target: Target) {
        match self.literals.iter().position(|l| *l == literal) {
            Some(i) if self.patterns[i].base64_align == base64_align => {
                self.patterns[i].add_target(target);
            }
            _ => {
                self.literals.push(literal);
                self.patterns.push(Pattern {
                    targets: vec![target],
                    base64_align,
                });
            }
        }
    }

    /// Leftmost-longest search reports only the longest anchor at a
    /// position, so an anchor also carries the targets of every shorter
    /// anchor that begins it.
    fn inherit_shorter_targets(&mut self) {
        for i in 0..self.literals.len() {
            for j in 0..self.literals.len() {
                let shorter = self.literals[j].len() < self.literals[i].len();
                if shorter
                    && self.literals[i].starts_with(&self.literals[j])
                    && self.patterns[i].base64_align == self.patterns[j].base64_align
                {
                    let inherited = self.patterns[j].targets.clone();
                    for t in inherited {
                        self.patterns[i].add_target(t);
                    }
                }
            }
        }
    }

    /// As few automata as possible of at most [`SIMD_LIMIT`] anchors each,
    /// longest anchors first so that short ones share a group only with
    /// each other and the long ones keep a selective SIMD fingerprint.
    fn build(mut self) -> Result<Vec<Searcher>, EngineError> {
        self.inherit_shorter_targets();
        let mut by_length: Vec<(Vec<u8>, Pattern)> = self.literals.into_iter().zip(self.patterns).collect();
        by_length.sort_by_key(|(literal, _)| std::cmp::Reverse(literal.len()));
        by_length
            .chunks(SIMD_LIMIT)
            .map(|group| {
                let literals: Vec<&[u8]> = group.iter().map(|(l, _)| l.as_slice()).collect();
                Ok(Searcher {
                    automaton: AhoCorasick::builder().match_kind(MatchKind::LeftmostLongest).build(literals)?,
                    patterns: group.iter().map(|(_, p)| p.clone()).collect(),
                })
            })
            .collect()
    }
}

/// An automaton and what each of its patterns stands for.
#[derive(Debug)]
struct Searcher {
    automaton: AhoCorasick,
    patterns: Vec<Pattern>,
}

impl Searcher {
    /// Every position where an anchor starts. The search restarts one byte
    /// after each hit, so anchors that overlap are all seen.
    fn hits<'a>(&'a self, hay: &'a [u8]) -> impl Iterator<Item = (usize, &'a Pattern)> + 'a {
        let mut at = 0;
        std::iter::from_fn(move || {
            let m = self.automaton.find(aho_corasick::Input::new(hay).range(at..))?;
            at = m.start() + 1;
            Some((m.start(), &self.patterns[m.pattern().as_usize()]))
        })
    }
}

/// The first bytes of a prefix worth searching for. A prefix shorter than
/// three bytes is widened by each byte its body may start with, when there
/// are few enough (Twilio's `SK` + hex), and by each byte that opens a
/// template slot (`SK<your-key>`), which `--all` reports.
fn anchor_keys(rule: &Rule, prefix: &str) -> Vec<Vec<u8>> {
    let bytes = prefix.as_bytes();
    if bytes.len() >= MIN_ANCHOR {
        return vec![bytes[..bytes.len().min(PLAIN_ANCHOR)].to_vec()];
    }
    let next: Vec<u8> = (0..=255u8).filter(|&b| rule.charset.contains(b)).collect();
    if next.len() > MAX_WIDENING {
        return vec![bytes.to_vec()];
    }
    let openers = (0..=255u8).filter(|&b| placeholder::opens_template(b) && !rule.charset.contains(b));
    next.into_iter().chain(openers).map(|b| [bytes, &[b]].concat()).collect()
}

fn each_prefix(rules: &RuleSet) -> impl Iterator<Item = (&Rule, &str, Target)> {
    rules.rules().iter().enumerate().flat_map(|(r, rule)| {
        rule.prefixes
            .iter()
            .enumerate()
            .map(move |(p, prefix)| (rule, prefix.as_str(), Target { rule: r, prefix: p }))
    })
}

/// Every anchor: the first bytes of each prefix, and their base64 forms.
fn anchors(rules: &RuleSet) -> AnchorSet {
    let mut set = base64_anchors(rules);
    for (rule, prefix, target) in each_prefix(rules) {
        for key in anchor_keys(rule, prefix) {
            set.add(key, None, target);
        }
    }
    set
}

/// Base64 anchors: the characters that encode the start of a prefix at
/// each of the three alignments inside a 3-byte group (four of them where
/// the prefix is long enough, else three). A prefix that contains another
/// of its rule keeps its own anchors, so an encoded match starts where the
/// plain one would (`https://hooks…`, not `hooks…`).
fn base64_anchors(rules: &RuleSet) -> AnchorSet {
    let mut set = AnchorSet::default();
    for (rule, prefix, target) in each_prefix(rules) {
        for key in anchor_keys(rule, prefix) {
            for align in 0..3 {
                let fragment = base64::fragment(&key, align);
                if fragment.len() >= MIN_ANCHOR {
                    set.add(fragment[..fragment.len().min(BASE64_ANCHOR)].to_vec(), Some(align), target);
                }
            }
        }
    }
    set
}

/// Orders candidates by start and drops any that lies inside another of
/// at least equal confidence (one token hit through two prefixes).
fn resolve_overlaps(mut found: Vec<Candidate>) -> Vec<Candidate> {
    found.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)).then(b.confidence.cmp(&a.confidence)));
    let mut kept: Vec<Candidate> = Vec::with_capacity(found.len());
    for c in found {
        match kept.last_mut() {
            Some(last) if c.start >= last.start && c.end <= last.end => {
                if c.confidence <= last.confidence {
                    continue;
                }
                if (c.start, c.end) == (last.start, last.end) {
                    *last = c;
                } else {
                    kept.push(c);
                }
            }
            _ => kept.push(c),
        }
    }
    kept
}

#[cfg(test)]
mod tests;
