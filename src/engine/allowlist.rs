//! Findings the user has already judged: finding ids from `.keywardignore`
//! files and from a baseline report, plus the `keyward:allow` line marker.
//!
//! Ids rather than paths or line numbers, so an allowlisted test fixture
//! stays allowed when the file moves or lines shift.

use std::collections::HashSet;

use super::Finding;

#[derive(Debug, thiserror::Error)]
pub enum AllowlistError {
    #[error("baseline is not a keyward JSON report: {0}")]
    Baseline(#[from] serde_json::Error),
}

#[derive(Debug, Default, Clone)]
pub struct Allowlist {
    ids: HashSet<String>,
}

impl Allowlist {
    /// Takes the finding ids out of an ignore file; other lines are path
    /// patterns, which the file walker applies.
    pub fn add_ignore_file(&mut self, text: &str) {
        self.ids
            .extend(text.lines().map(str::trim).filter(|l| is_finding_id(l)).map(str::to_string));
    }

    /// Takes every finding id of a previous `--format json` report: a bare
    /// array of findings, or an object with a `findings` array.
    pub fn add_baseline(&mut self, json: &str) -> Result<usize, AllowlistError> {
        #[derive(serde::Deserialize)]
        struct Entry {
            finding_id: String,
        }
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Report {
            Array(Vec<Entry>),
            Object { findings: Vec<Entry> },
        }
        let entries = match serde_json::from_str::<Report>(json)? {
            Report::Array(e) | Report::Object { findings: e } => e,
        };
        let n = entries.len();
        self.ids.extend(entries.into_iter().map(|e| e.finding_id));
        Ok(n)
    }

    pub fn allows(&self, finding: &Finding) -> bool {
        finding.allowed || self.ids.contains(&finding.finding_id)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// `kwf_` and 24 lowercase hex digits.
pub fn is_finding_id(text: &str) -> bool {
    text.len() == 28 && text.starts_with("kwf_") && text[4..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! t {
        ($name:ident, $text:expr, $expected:expr) => {
            #[test]
            fn $name() {
                assert_eq!(is_finding_id($text), $expected);
            }
        };
    }

    t!(valid_id, "kwf_0123456789abcdef01234567", true);
    t!(upper_hex_is_not_an_id, "kwf_0123456789ABCDEF01234567", false);
    t!(path_pattern_is_not_an_id, "fixtures/**", false);
    t!(short_id, "kwf_0123", false);

    #[test]
    fn ignore_file_keeps_only_ids() {
        let mut a = Allowlist::default();
        a.add_ignore_file("# comment\nfixtures/\n kwf_0123456789abcdef01234567 \n");
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn baseline_accepts_array_and_object() {
        let mut a = Allowlist::default();
        assert_eq!(
            a.add_baseline(r#"[{"finding_id":"kwf_0123456789abcdef01234567","line":3}]"#)
                .unwrap(),
            1
        );
        assert_eq!(
            a.add_baseline(r#"{"findings":[{"finding_id":"kwf_1123456789abcdef01234567"}]}"#)
                .unwrap(),
            1
        );
        assert_eq!(a.len(), 2);
        assert!(a.add_baseline("not json").is_err());
    }
}
