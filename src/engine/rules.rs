//! Token formats as data: the TOML rule files and their validation.
//!
//! A rule says what a token looks like (literal prefixes, body charset and
//! length, an optional anchored pattern, a checksum kind) and carries the
//! examples it must match and the negatives it must not. The shipped rules
//! in `rules/*.toml` are compiled into the binary so a scan never depends on
//! files next to it; more can be loaded at run time.

use std::fmt;

use regex::bytes::Regex;
use serde::Deserialize;

use super::charset::Charset;

/// Rules shipped with keyward, embedded at build time.
const BUILTIN: &[(&str, &str)] = &[
    ("keyward.toml", include_str!("../../rules/keyward.toml")),
    ("github.toml", include_str!("../../rules/github.toml")),
    ("gitlab.toml", include_str!("../../rules/gitlab.toml")),
    ("npm.toml", include_str!("../../rules/npm.toml")),
    ("slack.toml", include_str!("../../rules/slack.toml")),
    ("stripe.toml", include_str!("../../rules/stripe.toml")),
    ("aws.toml", include_str!("../../rules/aws.toml")),
    ("pypi.toml", include_str!("../../rules/pypi.toml")),
    ("openai.toml", include_str!("../../rules/openai.toml")),
    ("anthropic.toml", include_str!("../../rules/anthropic.toml")),
    ("google.toml", include_str!("../../rules/google.toml")),
    ("sendgrid.toml", include_str!("../../rules/sendgrid.toml")),
    ("twilio.toml", include_str!("../../rules/twilio.toml")),
    ("pem.toml", include_str!("../../rules/pem.toml")),
];

/// The deployment prefix the shipped keyward rules are written with.
pub const DEFAULT_DEPLOYMENT_PREFIX: &str = "kw";

#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// Where and what, never the file's text (so not toml's own error).
    #[error("{file}: invalid TOML{message}")]
    Toml { file: String, message: String },
    #[error("rule {id}: {problem}")]
    Invalid { id: String, problem: String },
    #[error("rule id {0} is defined twice")]
    Duplicate(String),
    #[error("deployment prefix {0:?} must be 2 to 16 characters of [a-z0-9]")]
    BadDeploymentPrefix(String),
}

fn toml_error_without_content(err: &toml::de::Error) -> String {
    match err.span() {
        Some(span) => format!(" at byte {}: {}", span.start, toml_message_without_content(err)),
        None => format!(": {}", toml_message_without_content(err)),
    }
}

/// What a TOML error is, with nothing of the file's text: toml's own
/// message quotes the offending line, and the file may not be what it
/// claims to be (`rules = ["/proc/self/environ"]`). The message is cut where
/// it starts quoting a key or a value.
pub fn toml_message_without_content(err: &toml::de::Error) -> String {
    let message = err.message();
    let cut = message.find(['"', '`', '\'']).unwrap_or(message.len());
    let kept: String = message[..cut].chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let kept = kept.trim_end();
    match (cut < message.len(), kept.is_empty()) {
        (false, _) => kept.to_string(),
        (true, true) => "…".to_string(),
        (true, false) => format!("{kept} …"),
    }
}

/// How a token's checksum is computed, if it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChecksumKind {
    None,
    /// GitHub and npm: the last 6 body characters are the CRC of the others.
    Crc32Base62Random,
    /// keyward: the last 6 characters are the CRC of the whole token before them.
    Crc32Base62All,
}

/// What surrounds the body: most tokens are a prefix and a run of
/// characters; a PEM block runs from its header to its END line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    #[default]
    Token,
    PemBlock,
}

/// How sure a finding is. The first three are real findings; the last two
/// are candidates shown only with `--all-candidates`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Confidence {
    Placeholder,
    InvalidChecksum,
    Low,
    Medium,
    High,
}

impl Confidence {
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Placeholder => "placeholder",
            Confidence::InvalidChecksum => "invalid-checksum",
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }

    /// Real findings, as opposed to candidates that failed validation.
    pub fn is_valid(self) -> bool {
        self >= Confidence::Low
    }
}

impl fmt::Display for Confidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// A rule as written in TOML.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    id: String,
    name: String,
    #[serde(default)]
    description: String,
    prefixes: Vec<String>,
    charset: String,
    length: Option<usize>,
    min_length: Option<usize>,
    max_length: Option<usize>,
    pattern: Option<String>,
    #[serde(default = "no_checksum")]
    checksum: ChecksumKind,
    #[serde(default)]
    shape: Shape,
    confidence: Confidence,
    severity: Severity,
    #[serde(default)]
    publishable: bool,
    #[serde(default)]
    deployment_prefix: bool,
    #[serde(default)]
    examples: Vec<String>,
    #[serde(default)]
    negatives: Vec<String>,
}

fn no_checksum() -> ChecksumKind {
    ChecksumKind::None
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    rule: Vec<RuleSpec>,
}

/// A validated rule, ready for the engine.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub name: String,
    pub description: String,
    pub prefixes: Vec<String>,
    pub charset: Charset,
    pub min_len: usize,
    pub max_len: usize,
    pub pattern: Option<Regex>,
    pub checksum: ChecksumKind,
    pub shape: Shape,
    pub confidence: Confidence,
    pub severity: Severity,
    /// Meant to be public (publishable keys): reported, never revoked.
    pub publishable: bool,
    /// keyward's own format, whose prefixes follow the deployment prefix.
    pub own_format: bool,
    pub examples: Vec<String>,
    pub negatives: Vec<String>,
}

impl Rule {
    fn from_spec(spec: RuleSpec) -> Result<Rule, RuleError> {
        let invalid = |problem: String| RuleError::Invalid {
            id: spec.id.clone(),
            problem,
        };
        if spec.id.is_empty() || !spec.id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
            return Err(invalid("id must be non-empty [A-Za-z0-9._-]".into()));
        }
        if spec.prefixes.is_empty() || spec.prefixes.iter().any(|p| p.len() < 2) {
            return Err(invalid("needs at least one prefix of 2 or more bytes".into()));
        }
        let charset = Charset::parse(&spec.charset).map_err(|e| invalid(e.to_string()))?;
        let (min_len, max_len) = match (spec.length, spec.min_length, spec.max_length) {
            (Some(n), None, None) => (n, n),
            (None, Some(lo), Some(hi)) if lo <= hi => (lo, hi),
            _ => return Err(invalid("give either length, or min_length <= max_length".into())),
        };
        if min_len == 0 || max_len > 64 * 1024 {
            return Err(invalid("lengths must be within 1..=65536".into()));
        }
        if spec.checksum != ChecksumKind::None && (min_len != max_len || min_len <= 6) {
            return Err(invalid("a checksummed body has one fixed length over 6".into()));
        }
        let pattern = spec
            .pattern
            .as_deref()
            .map(|p| Regex::new(&format!("^(?:{p})$")))
            .transpose()
            .map_err(|e| invalid(format!("pattern: {e}")))?;
        if spec.deployment_prefix
            && !spec
                .prefixes
                .iter()
                .all(|p| p.starts_with(DEFAULT_DEPLOYMENT_PREFIX) && p[DEFAULT_DEPLOYMENT_PREFIX.len()..].starts_with('_'))
        {
            return Err(invalid(format!(
                "deployment-prefix rules are written with prefix {DEFAULT_DEPLOYMENT_PREFIX}_"
            )));
        }
        Ok(Rule {
            id: spec.id,
            name: spec.name,
            description: spec.description,
            prefixes: spec.prefixes,
            charset,
            min_len,
            max_len,
            pattern,
            checksum: spec.checksum,
            shape: spec.shape,
            confidence: spec.confidence,
            severity: spec.severity,
            publishable: spec.publishable,
            own_format: spec.deployment_prefix,
            examples: spec.examples,
            negatives: spec.negatives,
        })
    }

    /// The longest stretch of input one match of this rule can cover.
    pub fn max_span(&self) -> usize {
        let prefix = self.prefixes.iter().map(String::len).max().unwrap_or(0);
        // A PEM header line and END line wrap the body.
        let frame = if self.shape == Shape::PemBlock { 256 } else { 0 };
        prefix + self.max_len + frame + 2
    }

    /// The same rule for another deployment prefix. Examples are dropped:
    /// their checksums cover the original prefix.
    fn for_deployment_prefix(&self, prefix: &str) -> Rule {
        let mut rule = self.clone();
        rule.prefixes = self
            .prefixes
            .iter()
            .map(|p| format!("{prefix}{}", &p[DEFAULT_DEPLOYMENT_PREFIX.len()..]))
            .collect();
        rule.examples.clear();
        rule.negatives.clear();
        rule
    }
}

/// An ordered, validated set of rules with unique ids.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

impl RuleSet {
    /// The rules shipped in `rules/*.toml`.
    pub fn builtin() -> RuleSet {
        let mut set = RuleSet::default();
        for (file, text) in BUILTIN {
            set.add_toml(file, text).expect("shipped rules are valid (checked by tests)");
        }
        set
    }

    /// Parses one rule file and adds its rules.
    pub fn add_toml(&mut self, file: &str, text: &str) -> Result<(), RuleError> {
        let parsed: RuleFile = toml::from_str(text).map_err(|source| RuleError::Toml {
            file: file.to_string(),
            message: toml_error_without_content(&source),
        })?;
        for spec in parsed.rule {
            let rule = Rule::from_spec(spec)?;
            if self.rules.iter().any(|r| r.id == rule.id) {
                return Err(RuleError::Duplicate(rule.id));
            }
            self.rules.push(rule);
        }
        Ok(())
    }

    /// Adds keyward-format rules for another deployment prefix, so a
    /// deployment configured with `acme` finds `acme_sk_live_…` tokens.
    pub fn add_deployment_prefix(&mut self, prefix: &str) -> Result<(), RuleError> {
        let well_formed = (2..=16).contains(&prefix.len()) && prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !well_formed {
            return Err(RuleError::BadDeploymentPrefix(prefix.to_string()));
        }
        if prefix == DEFAULT_DEPLOYMENT_PREFIX {
            return Ok(());
        }
        let extra: Vec<Rule> = self
            .rules
            .iter()
            .filter(|r| r.own_format && r.prefixes[0].starts_with(DEFAULT_DEPLOYMENT_PREFIX))
            .map(|r| r.for_deployment_prefix(prefix))
            .filter(|r| !self.rules.iter().any(|known| known.prefixes == r.prefixes))
            .collect();
        self.rules.extend(extra);
        Ok(())
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_rules_load() {
        let set = RuleSet::builtin();
        assert!(set.rules().len() >= 15);
    }

    macro_rules! t {
        ($name:ident, $toml:expr, $expected_err:expr) => {
            #[test]
            fn $name() {
                let mut set = RuleSet::default();
                let err = set.add_toml("t.toml", $toml).unwrap_err().to_string();
                assert!(err.contains($expected_err), "{err}");
            }
        };
    }

    const BASE: &str = "id = \"x\"\nname = \"x\"\nprefixes = [\"ab_\"]\nconfidence = \"high\"\nseverity = \"high\"\n";

    t!(
        unknown_field_rejected,
        &format!("[[rule]]\n{BASE}charset = \"a-z\"\nlength = 4\nbogus = 1\n"),
        "unknown field"
    );
    t!(
        missing_length_rejected,
        &format!("[[rule]]\n{BASE}charset = \"a-z\"\n"),
        "give either length"
    );
    t!(
        bad_charset_rejected,
        &format!("[[rule]]\n{BASE}charset = \"z-a\"\nlength = 4\n"),
        "charset"
    );
    t!(
        checksum_needs_fixed_length,
        &format!("[[rule]]\n{BASE}charset = \"a-z\"\nmin_length = 8\nmax_length = 9\nchecksum = \"crc32-base62-random\"\n"),
        "fixed length"
    );
    t!(
        duplicate_id_rejected,
        &format!("[[rule]]\n{BASE}charset = \"a-z\"\nlength = 4\n[[rule]]\n{BASE}charset = \"a-z\"\nlength = 4\n"),
        "twice"
    );
    t!(
        bad_pattern_rejected,
        &format!("[[rule]]\n{BASE}charset = \"a-z\"\nlength = 4\npattern = \"(\"\n"),
        "pattern"
    );

    #[test]
    fn deployment_prefix_adds_rules() {
        let mut set = RuleSet::builtin();
        let before = set.rules().len();
        set.add_deployment_prefix("acme").unwrap();
        assert!(set.rules().len() > before);
        assert!(set.rules().iter().any(|r| r.prefixes.iter().any(|p| p == "acme_sk_live_")));
        assert!(set.add_deployment_prefix("Bad!").is_err());
    }
}
