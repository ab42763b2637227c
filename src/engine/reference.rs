//! A deliberately slow matcher that defines what the engine must find.
//!
//! It tries every rule prefix at every byte offset, and decodes base64 at
//! every offset and every alignment, with no automaton, no anchors and no
//! chunking. Validation (charset, length, pattern, checksum, placeholders)
//! is shared with the engine, so a disagreement can only come from the
//! search itself: a missed anchor, a widening, a chunk boundary. The fuzz
//! target `engine_vs_reference` and the engine's tests compare the two.

use super::{base64, each_prefix, starts_with, stream, Candidate, Engine, Finding};

impl Engine {
    /// Every finding in `input`, by brute force. Quadratic; for tests only.
    pub fn reference_scan(&self, input: &[u8]) -> Vec<Finding> {
        let mut found = Vec::new();
        let longest = self.rules.rules().iter().map(|r| r.max_span()).max().unwrap_or(0);
        for start in 0..input.len() {
            // Decoding once per offset only saves time: each target below
            // still decodes and matches on its own.
            let decoded = base64::decode_prefix(&input[start..], longest + 3);
            for (_, prefix, target) in each_prefix(&self.rules) {
                self.push_plain(input, start, target, &mut found);
                let prefix = prefix.as_bytes();
                for align in 0..3 {
                    if decoded.get(align..).is_some_and(|d| starts_with(self.rule(target.rule), d, prefix)) {
                        self.push_base64_at(input, start, align, target, &mut found);
                    }
                }
            }
        }
        self.settle(input, found)
            .into_iter()
            .map(|c| reference_finding(self, c, input))
            .collect()
    }

    /// Scans `input` through a [`super::Stream`] of `chunk`-byte rounds fed
    /// `read` bytes at a time, as a reader with short reads would: what the
    /// reference is compared against.
    pub fn scan_in_reads(&self, input: &[u8], chunk: usize, read: usize) -> Vec<Finding> {
        let mut stream = super::Stream::with_chunk_size(self, chunk);
        let mut out = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let spare = stream.spare();
            let n = spare.len().min(rest.len()).min(read.max(1));
            spare[..n].copy_from_slice(&rest[..n]);
            stream.advance(n, &mut out);
            rest = &rest[n..];
        }
        stream.finish(&mut out);
        out
    }
}

fn reference_finding(engine: &Engine, c: Candidate, input: &[u8]) -> Finding {
    let line_start = input[..c.start].iter().rposition(|&b| b == b'\n').map_or(0, |nl| nl + 1);
    let line = 1 + input[..c.start].iter().filter(|&&b| b == b'\n').count() as u64;
    let column = 1 + stream::chars(&input[line_start..c.start]);
    let allowed = stream::line_has_marker(input, c.start, c.end);
    c.into_finding(engine, 0, line, column, allowed)
}

/// Everything a caller can see of each finding, one line each, so two
/// scans can be compared with `assert_eq!`.
pub fn comparable(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .map(|f| {
            format!(
                "{} {}..{} {}:{} {} {} {} allowed={}",
                f.rule_id,
                f.start,
                f.end,
                f.line,
                f.column,
                f.confidence,
                f.encoding.as_str(),
                f.redacted,
                f.allowed
            )
        })
        .collect()
}
