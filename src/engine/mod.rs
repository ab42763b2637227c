//! Pure scanning: bytes in, findings out. No I/O, no async, no knowledge of
//! where the bytes came from.
//!
//! One pass finds every rule's anchors ([`anchors`]): prefixes, inner
//! literals, keywords, and the base64 forms of each prefix at its three
//! alignments, so tokens hidden one base64 level deep cost no second pass.
//! A hit is extended over the rule's
//! charset with a word boundary on both sides, then validated: pattern,
//! checksum, placeholder heuristics. [`Stream`] feeds the engine fixed-size
//! chunks so memory stays flat however large the input.

pub mod allowlist;
mod anchors;
mod base64;
pub mod charset;
mod finding;
mod placeholder;
mod reference;
pub mod rules;
mod stream;
pub mod verify;

pub use allowlist::Allowlist;
use anchors::each_prefix;
pub use anchors::Kernel;
use anchors::{AnchorIndex, Pattern, Target};
pub use finding::{finding_id, redact, Encoding, Finding, Secret};
pub use reference::comparable;
pub use rules::{ChecksumKind, Confidence, Rule, RuleError, RuleSet, Severity, Shape};
pub use stream::Stream;

use crate::keys::checksum;

use charset::is_word_byte;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no rules to scan with")]
    NoRules,
    #[error("building the short-anchor automaton: {0}")]
    Automaton(#[from] aho_corasick::BuildError),
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
    anchors: AnchorIndex,
    max_span: usize,
    options: EngineOptions,
}

impl Engine {
    pub fn new(rules: RuleSet, options: EngineOptions) -> Result<Engine, EngineError> {
        if rules.rules().is_empty() {
            return Err(EngineError::NoRules);
        }
        let anchors = AnchorIndex::new(&rules)?;
        let plain_span = rules.rules().iter().map(Rule::max_span).max().unwrap_or(0);
        // A base64 match covers 4/3 of its decoded length plus the group lead.
        let max_span = base64::encoded_len(plain_span + 2) + 4;
        Ok(Engine {
            rules,
            anchors,
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
        self.anchors.literals()
    }

    /// How the anchor search tests positions on this CPU.
    pub fn kernel(&self) -> Kernel {
        self.anchors.kernel()
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
        self.anchors.each_hit(hay, |start, pattern| match pattern.base64_align {
            None => {
                for t in &pattern.targets {
                    if let Some(token_start) = start.checked_sub(t.offset) {
                        self.push_plain(hay, token_start, *t, &mut found);
                    }
                }
            }
            Some(align) => self.push_base64(hay, start, align, pattern, &mut found),
        });
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
        let plain_only = rule.shape == Shape::UriPassword;
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

/// Bytes that end a URI's authority (or its userinfo, `@`).
const URI_DELIMITERS: &[u8] = b"@/?# \t\r\n\"'<>";

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
        .position(|b| URI_DELIMITERS.contains(b))
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
    // A slot holds something: `<your-key>`, `${KEY}`.
    if !placeholder::opens_template(next) || data.get(run_end + 1).is_none_or(|&b| placeholder::closes_template(b)) {
        return None;
    }
    let window = &data[run_end..data.len().min(run_end + 64)];
    let close = window.iter().position(|&b| placeholder::closes_template(b)).unwrap_or(window.len());
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
