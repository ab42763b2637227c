//! Unified diffs as code hosts return them (GitHub's `patch`, GitLab's
//! `diff`): the added lines, with their line numbers in the new file, and
//! the findings on them.
//!
//! Only added lines are scanned, so a push that removes a key, or moves
//! lines around it, reports nothing new.

use crate::engine::{Engine, Finding, Stream};

/// One `+` line of a hunk and its 1-based line number in the new file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedLine<'a> {
    pub line: u64,
    pub text: &'a str,
}

/// The added lines of a patch. Text before the first hunk header (file
/// headers, if any) is skipped; hosts send hunks only.
pub fn added_lines(patch: &str) -> Vec<AddedLine<'_>> {
    let mut added = Vec::new();
    let mut next_line: Option<u64> = None;
    for raw in patch.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(header) = line.strip_prefix("@@") {
            next_line = new_start(header);
            continue;
        }
        let Some(at) = next_line.as_mut() else { continue };
        match line.as_bytes().first() {
            Some(b'+') => {
                added.push(AddedLine {
                    line: *at,
                    text: &line[1..],
                });
                *at = at.saturating_add(1);
            }
            Some(b'-') | Some(b'\\') => {}
            _ => *at = at.saturating_add(1),
        }
    }
    added
}

/// The `+c` of `@@ -a,b +c,d @@`. `+0,0` names an empty new file, which
/// has no added lines; a malformed hunk that adds lines to it anyway
/// numbers them from 1.
fn new_start(header: &str) -> Option<u64> {
    let plus = header.split_whitespace().find(|part| part.starts_with('+'))?;
    plus[1..].split(',').next()?.parse().ok().map(|start: u64| start.max(1))
}

/// Findings on the added lines of `patch`, with lines and columns of the
/// new file.
pub fn scan_added(engine: &Engine, patch: &str) -> Vec<Finding> {
    let added = added_lines(patch);
    if added.is_empty() {
        return Vec::new();
    }
    let text = added.iter().map(|a| a.text).collect::<Vec<_>>().join("\n");
    crate::metrics::Metrics::add(&crate::metrics::METRICS.bytes_scanned, text.len() as u64);
    let mut stream = Stream::new(engine);
    let mut findings = Vec::new();
    // Reading from memory cannot fail, and binary sniffing is off.
    let _ = super::files::scan_reader(text.as_bytes(), &mut stream, true, &mut findings);
    for finding in &mut findings {
        if let Some(a) = usize::try_from(finding.line).ok().and_then(|n| added.get(n.wrapping_sub(1))) {
            finding.line = a.line;
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{EngineOptions, RuleSet};

    macro_rules! t {
        ($name:ident, $patch:expr, $expected:expr) => {
            #[test]
            fn $name() {
                let lines: Vec<(u64, &str)> = added_lines($patch).into_iter().map(|a| (a.line, a.text)).collect();
                let expected: &[(u64, &str)] = &$expected;
                assert_eq!(lines, expected);
            }
        };
    }

    t!(empty, "", []);
    t!(new_file, "@@ -0,0 +1,2 @@\n+a\n+b", [(1, "a"), (2, "b")]);
    t!(context_counts, "@@ -3,3 +3,4 @@\n x\n+y\n z\n w", [(4, "y")]);
    t!(removed_lines_do_not_count, "@@ -1,3 +1,2 @@\n a\n-b\n+B\n c", [(2, "B")]);
    t!(only_removed, "@@ -1,2 +1,1 @@\n a\n-key", []);
    t!(
        two_hunks,
        "@@ -1,1 +1,2 @@\n a\n+b\n@@ -10,1 +11,2 @@ fn main() {\n c\n+d",
        [(2, "b"), (12, "d")]
    );
    t!(no_newline_marker, "@@ -1 +1 @@\n-a\n\\ No newline at end of file\n+b", [(1, "b")]);
    t!(crlf, "@@ -0,0 +1,1 @@\r\n+x\r\n", [(1, "x")]);
    t!(plus_plus_content_is_added, "@@ -0,0 +1 @@\n+++x", [(1, "++x")]);
    t!(lines_added_to_an_empty_new_file_start_at_one, "@@ -1,2 +0,0 @@\n+k", [(1, "k")]);
    t!(
        huge_start_saturates,
        "@@ -1 +18446744073709551615 @@\n+a\n+b",
        [(u64::MAX, "a"), (u64::MAX, "b")]
    );
    t!(garbage_before_hunk, "diff --git a/x b/x\n+++ b/x\n@@ -0,0 +5 @@\n+k", [(5, "k")]);

    #[test]
    fn findings_carry_new_file_lines() {
        let engine = Engine::new(RuleSet::builtin(), EngineOptions::default()).unwrap();
        let patch = "@@ -7,2 +7,3 @@\n a = 1\n-old = 2\n+token = \"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\"\n b = 3";
        let found = scan_added(&engine, patch);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].line, found[0].column), (8, 10));
        let removed = "@@ -7,2 +7,1 @@\n a = 1\n-token = \"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\"";
        assert!(scan_added(&engine, removed).is_empty());
    }
}
