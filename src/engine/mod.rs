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
pub mod verify;

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
/// Each group is a pass over the input. Measured (BENCHMARKS.md, "rule
/// count"), a Teddy pass costs about a seventh of a DFA pass on source
/// text, so up to seven groups beat one DFA over every anchor; past that
/// the DFA wins and stays flat as anchors grow.
const MAX_SIMD_GROUPS: usize = 7;

/// The group limit, which `KEYWARD_SIMD_GROUPS` overrides so that
/// `bench/scaling.sh` can measure both designs with one binary.
fn max_simd_groups() -> usize {
    std::env::var("KEYWARD_SIMD_GROUPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(MAX_SIMD_GROUPS)
}
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
    /// Where the anchor stands in the prefix: the token starts this many
    /// bytes before the hit.
    offset: usize,
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
    start: usize,
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
        let mut searchers = anchors(&rules, false).build(false)?;
        searchers.extend(anchors(&rules, true).build(true)?);
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
    /// Every literal the automata search for (prefixes, inner signatures,
    /// keywords, and their base64 forms): what `rg -F` is given to compare
    /// the engine's speed against a plain literal search.
    pub fn anchor_literals(&self) -> Vec<Vec<u8>> {
        let mut all: Vec<Vec<u8>> = self.searchers.iter().flat_map(|s| s.literals.iter().cloned()).collect();
        all.sort();
        all.dedup();
        all
    }

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
                    None => {
                        for t in &pattern.targets {
                            if let Some(token_start) = start.checked_sub(t.offset) {
                                self.push_plain(hay, token_start, *t, &mut found);
                            }
                        }
                    }
                    Some(align) => self.push_base64(hay, start, align, pattern, &mut found),
                }
            }
        }
        self.settle(hay, found)
    }

    /// Raw candidates to findings: overlaps resolved, pairs merged, and
    /// look-alikes dropped unless all candidates were asked for.
    fn settle(&self, hay: &[u8], found: Vec<Candidate>) -> Vec<Candidate> {
        let mut kept = resolve_overlaps(found);
        self.pair(hay, &mut kept);
        kept.retain(|c| c.confidence.is_valid() || self.options.all_candidates);
        kept
    }

    /// Merges each finding of a rule that `pairs_with` another (an AWS
    /// secret key) with that rule's finding within its line window (the
    /// key id): one finding, the secret's, naming both.
    fn pair(&self, hay: &[u8], found: &mut Vec<Candidate>) {
        let mut absorbed = Vec::new();
        for i in 0..found.len() {
            let Some((partner, lines)) = &self.rule(found[i].rule).pairs_with else {
                continue;
            };
            let near = |c: &Candidate| {
                let (lo, hi) = if c.start < found[i].start {
                    (c.end, found[i].start)
                } else {
                    (found[i].end, c.start)
                };
                lo <= hi && memchr::memchr_iter(b'\n', &hay[lo..hi]).count() <= *lines
            };
            if let Some(j) = (0..found.len())
                .find(|&j| j != i && self.rule(found[j].rule).id == *partner && found[j].confidence.is_valid() && near(&found[j]))
            {
                found[i].redacted = format!("{} {}", found[j].redacted, found[i].redacted);
                found[i].confidence = found[i].confidence.max(found[j].confidence);
                absorbed.push(j);
            }
        }
        let mut index = 0;
        found.retain(|_| {
            index += 1;
            !absorbed.contains(&(index - 1))
        });
    }

    fn push_plain(&self, hay: &[u8], start: usize, target: Target, out: &mut Vec<Candidate>) {
        let rule = self.rule(target.rule);
        let prefix = rule.prefixes[target.prefix].as_bytes();
        if !starts_with(rule, &hay[start..], prefix) {
            return;
        }
        let body = start + prefix.len();
        if let Some(hit) = self.match_at(rule, hay, start, body) {
            out.push(Candidate {
                rule: target.rule,
                start: hit.start,
                end: hit.end,
                token: hay[hit.start..hit.end].to_vec(),
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

    /// Decodes from the 4-character group at `group`, and from as many
    /// whole groups before it as the rule needs to see (the byte that
    /// bounds the token, or an inner anchor's lead), and matches the
    /// target's literal at byte `align` of the group.
    fn push_base64_at(&self, hay: &[u8], group: usize, align: usize, t: Target, out: &mut Vec<Candidate>) {
        let rule = self.rule(t.rule);
        let prefix = rule.prefixes[t.prefix].as_bytes();
        let plain_only = rule.keyword_gap.is_some() || rule.shape == Shape::UriPassword;
        if plain_only || hay.len() - group < base64::encoded_len(align + prefix.len()) {
            return;
        }
        let wanted_groups = rule.lookbehind().div_ceil(3);
        let groups_back = (1..=wanted_groups)
            .take_while(|k| group >= 4 * k && hay[group - 4 * k..group - 4 * (k - 1)].iter().all(|&b| base64::is_alphabet(b)))
            .count();
        let from = group - 4 * groups_back;
        let literal = 3 * groups_back + align;
        let want = literal + rule.max_span();
        let decoded = base64::decode_prefix(&hay[from..hay.len().min(from + base64::encoded_len(want) + 4)], want);
        if !decoded.get(literal..).is_some_and(|d| starts_with(rule, d, prefix)) {
            return;
        }
        if let Some(m) = self.match_at(rule, &decoded, literal, literal + prefix.len()) {
            out.push(Candidate {
                rule: t.rule,
                start: from + base64::encoded_offset(m.start),
                end: from + base64::encoded_len(m.end),
                token: decoded[m.start..m.end].to_vec(),
                redacted: redact(&m.display_prefix, &decoded[m.tail]),
                confidence: m.confidence,
                encoding: Encoding::Base64,
            });
        }
    }

    /// Matches `rule` whose literal stands at `start` in `data` and ends
    /// at `body`. Candidates of every confidence come back: a look-alike
    /// still hides the shorter tokens inside it.
    fn match_at(&self, rule: &Rule, data: &[u8], start: usize, body: usize) -> Option<Hit> {
        if rule.is_inner_anchored() {
            return match_inner(rule, data, start, body);
        }
        if rule.keyword_gap.is_none() && rule.shape != Shape::UriPassword && start > 0 && is_word_byte(data[start - 1]) {
            return None;
        }
        match rule.shape {
            Shape::Token => match rule.keyword_gap {
                Some(gap) => match_after_keyword(rule, data, body, gap),
                None => match_token(rule, data, start, body),
            },
            Shape::PemBlock => match_pem(rule, data, start, body),
            Shape::UriPassword => match_uri_password(rule, data, start, body),
        }
    }
}

/// A literal prefix, or a keyword in any case.
fn starts_with(rule: &Rule, data: &[u8], prefix: &[u8]) -> bool {
    match rule.keyword_gap {
        Some(_) => data.len() >= prefix.len() && data[..prefix.len()].eq_ignore_ascii_case(prefix),
        None => data.starts_with(prefix),
    }
}

/// A token whose literal stands inside it: the start is as many charset
/// characters before the literal as one of the rule's offsets says, the
/// end where the charset stops, within the rule's lengths.
fn match_inner(rule: &Rule, data: &[u8], literal: usize, after: usize) -> Option<Hit> {
    let most = *rule.anchor_offsets.iter().max()?;
    // Padding only ends a token, so `AccountKey=` bounds the walk back.
    let back = data[literal.saturating_sub(most + 1)..literal]
        .iter()
        .rev()
        .take_while(|&&b| b != b'=' && rule.charset.contains(b))
        .count();
    if !rule.anchor_offsets.contains(&back) {
        return None;
    }
    let start = literal - back;
    if start > 0 && is_word_byte(data[start - 1]) {
        return None;
    }
    let end = run_end(rule, data, after.min(start + rule.max_len + 1), start + rule.max_len + 1);
    whole_token_hit(rule, data, start, end)
}

/// Where the run of the rule's charset from `from` stops, looking no
/// further than `limit` (one past the longest body, so an overlong run shows).
fn run_end(rule: &Rule, data: &[u8], from: usize, limit: usize) -> usize {
    let limit = data.len().min(limit);
    from + data[from..limit].iter().take_while(|&&b| rule.charset.contains(b)).count()
}

/// `data[start..end]` as a token with no prefix to show (an inner anchor's
/// token, a keyword's secret), if its length, bounds and pattern fit.
fn whole_token_hit(rule: &Rule, data: &[u8], start: usize, end: usize) -> Option<Hit> {
    let len = end - start;
    if !(rule.min_len..=rule.max_len).contains(&len) || data.get(end).is_some_and(|&b| is_word_byte(b)) {
        return None;
    }
    let token = &data[start..end];
    if rule.pattern.as_ref().is_some_and(|p| !p.is_match(token)) {
        return None;
    }
    Some(Hit {
        start,
        end,
        confidence: judge(rule, token, 0, token),
        display_prefix: String::new(),
        tail: start..end,
    })
}

/// A secret named by a keyword: after at most `gap` separator bytes
/// (`=`, `:`, quotes, spaces), a run of the charset within the lengths.
fn match_after_keyword(rule: &Rule, data: &[u8], keyword_end: usize, gap: usize) -> Option<Hit> {
    let window = &data[keyword_end..data.len().min(keyword_end + gap + 1)];
    let skipped = window.iter().take_while(|b| b" \t\"'`:=>,".contains(b)).count();
    if skipped == 0 || skipped > gap {
        return None;
    }
    let body = keyword_end + skipped;
    whole_token_hit(rule, data, body, run_end(rule, data, body, body + rule.max_len + 1))
}

/// `scheme://user:password@host`: the password, unless it is a
/// placeholder or a variable (`${DB_PASSWORD}`, `<password>`, `$PASS`).
fn match_uri_password(rule: &Rule, data: &[u8], sep: usize, after: usize) -> Option<Hit> {
    let scheme = data[..sep]
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_alphanumeric() || b"+.-".contains(b))
        .count();
    if scheme == 0 || !data[sep - scheme].is_ascii_alphabetic() {
        return None;
    }
    let authority = &data[after..data.len().min(after + rule.max_span())];
    let at = authority
        .iter()
        .position(|b| b"@/?# \t\r\n\"'<>".contains(b))
        .filter(|&p| authority[p] == b'@')?;
    let colon = authority[..at].iter().position(|&b| b == b':')?;
    let password = &authority[colon + 1..at];
    let host = authority.get(at + 1).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'[');
    if !host || password.len() < rule.min_len || password.len() > rule.max_len || !password.iter().all(|&b| rule.charset.contains(b)) {
        return None;
    }
    let (start, end) = (after + colon + 1, after + at);
    let variable = matches!(password.first(), Some(b'$' | b'%' | b'{' | b'<'));
    let confidence = if variable || placeholder::looks_like_placeholder(password) || placeholder::is_placeholder_word(password) {
        Confidence::Placeholder
    } else {
        rule.confidence
    };
    Some(Hit {
        start,
        end,
        confidence,
        display_prefix: String::from_utf8_lossy(&data[sep - scheme..start]).into_owned(),
        tail: start..end,
    })
}

/// How sure a well-shaped match is: a failed checksum or structure marks a
/// look-alike, a placeholder body a placeholder.
fn judge(rule: &Rule, token: &[u8], prefix_len: usize, body: &[u8]) -> Confidence {
    if !checksum_holds(rule, token, prefix_len, body) {
        Confidence::InvalidChecksum
    } else if placeholder::looks_like_placeholder(body) {
        Confidence::Placeholder
    } else {
        rule.confidence
    }
}

fn match_token(rule: &Rule, data: &[u8], start: usize, body: usize) -> Option<Hit> {
    let mut end = run_end(rule, data, body, body + rule.max_len + 1);
    // A full stop that ends the run ends the sentence, not the token.
    if end > body && data[end - 1] == b'.' && !data.get(end).is_some_and(|&b| rule.charset.contains(b)) {
        end -= 1;
    }
    let len = end - body;
    let display_prefix = String::from_utf8_lossy(&data[start..body]).into_owned();
    if len > rule.max_len {
        return None;
    }
    if len < rule.min_len {
        return template_slot(data, body, end).map(|end| Hit {
            start,
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
    Some(Hit {
        start,
        end,
        confidence: judge(rule, &data[start..end], body - start, body_bytes),
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

fn checksum_holds(rule: &Rule, token: &[u8], prefix_len: usize, body: &[u8]) -> bool {
    let n = checksum::CHECKSUM_LEN;
    match rule.checksum {
        ChecksumKind::None => true,
        ChecksumKind::Crc32Base62Random => verify::crc32_base62_tail(body),
        ChecksumKind::Crc32Base62All => checksum::verify(&token[..token.len() - n], &token[token.len() - n..]),
        ChecksumKind::Crc32Base36 => verify::gitlab_routable(token, prefix_len),
        ChecksumKind::Crc32HexBe => verify::crc32_hex_be(token),
        ChecksumKind::Crc32HexLe => verify::crc32_hex_le(token),
        ChecksumKind::Marvin32 => verify::marvin32_key(token, rule.seed),
        ChecksumKind::Bech32 => verify::bech32(token),
        ChecksumKind::Jwt => verify::jwt(token),
        ChecksumKind::Base64Json => verify::base64_json(token, &rule.json_fields),
        ChecksumKind::Macaroon => verify::pypi_macaroon(token),
        ChecksumKind::Marker => verify::marker(token, prefix_len, &rule.marker, rule.marker_place),
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
        start,
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
    fn build(mut self, any_case: bool) -> Result<Vec<Searcher>, EngineError> {
        if self.literals.is_empty() {
            return Ok(Vec::new());
        }
        self.inherit_shorter_targets();
        let mut by_length: Vec<(Vec<u8>, Pattern)> = self.literals.into_iter().zip(self.patterns).collect();
        by_length.sort_by_key(|(literal, _)| std::cmp::Reverse(literal.len()));
        let group = if by_length.len() <= SIMD_LIMIT * max_simd_groups() {
            SIMD_LIMIT
        } else {
            by_length.len()
        };
        let kind = (group > SIMD_LIMIT).then_some(aho_corasick::AhoCorasickKind::DFA);
        by_length
            .chunks(group)
            .map(|group| {
                let literals: Vec<&[u8]> = group.iter().map(|(l, _)| l.as_slice()).collect();
                Ok(Searcher {
                    automaton: AhoCorasick::builder()
                        .match_kind(MatchKind::LeftmostLongest)
                        .ascii_case_insensitive(any_case)
                        .kind(kind)
                        .build(literals)?,
                    patterns: group.iter().map(|(_, p)| p.clone()).collect(),
                    literals: group.iter().map(|(l, _)| l.clone()).collect(),
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
    literals: Vec<Vec<u8>>,
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

/// The four bytes of a long prefix that ordinary text holds least often:
/// the window with the most bytes other than lowercase letters and spaces
/// (`k-1/` of `configcat-sdk-1/`, not `conf`). `None` keeps the start.
fn selective_window(prefix: &[u8]) -> Option<usize> {
    let common = |b: &u8| b.is_ascii_lowercase() || *b == b' ';
    let rare = |w: &[u8]| w.iter().filter(|b| !common(b)).count();
    let (best, offset) = prefix
        .windows(PLAIN_ANCHOR)
        .enumerate()
        .map(|(i, w)| (rare(w), std::cmp::Reverse(i)))
        .max()?;
    (offset.0 > 0 && best > rare(&prefix[..PLAIN_ANCHOR])).then_some(offset.0)
}

fn each_prefix(rules: &RuleSet) -> impl Iterator<Item = (&Rule, &str, Target)> {
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

/// Every anchor of the literal rules (the first bytes of each prefix, and
/// their base64 forms), or of the keyword rules, which match in any case
/// and only in plain text.
fn anchors(rules: &RuleSet, keywords: bool) -> AnchorSet {
    let mut set = if keywords { AnchorSet::default() } else { base64_anchors(rules) };
    for (rule, prefix, target) in each_prefix(rules).filter(|(r, _, _)| r.keyword_gap.is_some() == keywords) {
        if keywords {
            set.add(prefix.as_bytes().to_ascii_lowercase(), None, target);
            continue;
        }
        match selective_window(prefix.as_bytes()) {
            Some(offset) => set.add(
                prefix.as_bytes()[offset..offset + PLAIN_ANCHOR].to_vec(),
                None,
                Target { offset, ..target },
            ),
            None => anchor_keys(rule, prefix).into_iter().for_each(|key| set.add(key, None, target)),
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
    for (rule, prefix, target) in each_prefix(rules).filter(|(r, _, _)| r.keyword_gap.is_none() && r.shape != Shape::UriPassword) {
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

/// Orders candidates by start and drops any that lies inside another (one
/// token hit through two prefixes), keeping the surest of equal spans.
fn resolve_overlaps(mut found: Vec<Candidate>) -> Vec<Candidate> {
    found.sort_by(|a, b| {
        a.start
            .cmp(&b.start)
            .then(b.end.cmp(&a.end))
            .then(b.confidence.cmp(&a.confidence))
            .then(a.rule.cmp(&b.rule))
            // The longest prefix names the match (`sl.u.…`, not `sl.…`).
            .then(b.redacted.len().cmp(&a.redacted.len()))
            .then(a.redacted.cmp(&b.redacted))
    });
    let mut kept: Vec<Candidate> = Vec::with_capacity(found.len());
    for c in found {
        match kept.last_mut() {
            // A token inside a longer one is part of it, whatever either's
            // confidence: `sk_live_…` inside a look-alike `kw_sk_live_…`,
            // a legacy `glpat-` inside a routable token whose CRC fails.
            Some(last) if c.start >= last.start && c.end <= last.end => {
                if (c.start, c.end) == (last.start, last.end) && c.confidence > last.confidence {
                    *last = c;
                }
            }
            _ => kept.push(c),
        }
    }
    kept
}

#[cfg(test)]
mod tests;
