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
use super::verify::{self, MarkerPlace};

/// Rules shipped with keyward, embedded at build time.
const BUILTIN: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/builtin_rules.rs"));

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
    #[serde(alias = "crc32-base62")]
    Crc32Base62Random,
    /// keyward: the last 6 characters are the CRC of the whole token before them.
    Crc32Base62All,
    /// GitLab routable tokens: base36 CRC-32 over all before the last 7, and the payload length.
    Crc32Base36,
    /// Atlassian: 8 uppercase hex of CRC-32 over all before them.
    Crc32HexBe,
    /// Grafana `glsa_`: `_` and the CRC-32's little-endian bytes in hex.
    Crc32HexLe,
    /// Microsoft identifiable and CASK keys: Marvin32 with the rule's seed.
    Marvin32,
    /// age identities: the Bech32 checksum.
    Bech32,
    /// A JSON Web Token whose header names its `alg`.
    Jwt,
    /// base64 JSON naming the rule's `json_fields`.
    Base64Json,
    /// PyPI's macaroon header naming a PyPI host.
    Macaroon,
    /// The rule's fixed `marker`, at its `marker_place`.
    Marker,
}

impl ChecksumKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumKind::None => "none",
            ChecksumKind::Crc32Base62Random => "crc32-base62",
            ChecksumKind::Crc32Base62All => "crc32-base62-all",
            ChecksumKind::Crc32Base36 => "crc32-base36",
            ChecksumKind::Crc32HexBe => "crc32-hex-be",
            ChecksumKind::Crc32HexLe => "crc32-hex-le",
            ChecksumKind::Marvin32 => "marvin32",
            ChecksumKind::Bech32 => "bech32",
            ChecksumKind::Jwt => "jwt",
            ChecksumKind::Base64Json => "base64-json",
            ChecksumKind::Macaroon => "macaroon",
            ChecksumKind::Marker => "marker",
        }
    }

    /// A true checksum (a failed one marks a look-alike), rather than no
    /// check or a check of structure.
    pub fn is_checksum(self) -> bool {
        matches!(
            self,
            ChecksumKind::Crc32Base62Random
                | ChecksumKind::Crc32Base62All
                | ChecksumKind::Crc32Base36
                | ChecksumKind::Crc32HexBe
                | ChecksumKind::Crc32HexLe
                | ChecksumKind::Marvin32
                | ChecksumKind::Bech32
        )
    }
}

/// What surrounds the body: most tokens are a prefix and a run of
/// characters; a PEM block runs from its header to its END line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    #[default]
    Token,
    PemBlock,
    /// The password in `scheme://user:password@host`, anchored on `://`.
    UriPassword,
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

/// Issuers with a public way to revoke a leaked token (TOKEN-FORMATS.md
/// section 3), named in a rule's `revoke` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Revoker {
    Keyward,
    Github,
    Gitlab,
    Slack,
    Vault,
    Dropbox,
    GoogleOauth,
    Buildkite,
    Perplexity,
    Npm,
    Doppler,
    Digitalocean,
}

impl Revoker {
    pub const ALL: [Revoker; 12] = [
        Revoker::Keyward,
        Revoker::Github,
        Revoker::Gitlab,
        Revoker::Slack,
        Revoker::Vault,
        Revoker::Dropbox,
        Revoker::GoogleOauth,
        Revoker::Buildkite,
        Revoker::Perplexity,
        Revoker::Npm,
        Revoker::Doppler,
        Revoker::Digitalocean,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Revoker::Keyward => "keyward",
            Revoker::Github => "github",
            Revoker::Gitlab => "gitlab",
            Revoker::Slack => "slack",
            Revoker::Vault => "vault",
            Revoker::Dropbox => "dropbox",
            Revoker::GoogleOauth => "google-oauth",
            Revoker::Buildkite => "buildkite",
            Revoker::Perplexity => "perplexity",
            Revoker::Npm => "npm",
            Revoker::Doppler => "doppler",
            Revoker::Digitalocean => "digitalocean",
        }
    }

    pub fn parse(name: &str) -> Option<Revoker> {
        Revoker::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

/// A rule as written in TOML.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    id: String,
    family: Option<String>,
    name: String,
    #[serde(default)]
    description: String,
    revoke: Option<String>,
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
    /// Marvin32 seed: an 8-character kind name such as `Default0`.
    seed: Option<String>,
    #[serde(default)]
    json_fields: Vec<String>,
    marker: Option<String>,
    #[serde(default)]
    marker_place: MarkerPlace,
    /// Where the literal stands inside the token, when it is not a prefix:
    /// the count of charset characters before it (Azure's `+ASt` at 76).
    /// Lengths then count the whole token.
    #[serde(default)]
    anchor_offsets: Vec<usize>,
    /// A context rule: the literals are keywords (any case), and the
    /// secret follows within this many separator bytes (`= "`, `: '`).
    keyword_gap: Option<usize>,
    /// Another rule whose finding within `pair_lines` lines merges into
    /// this one (an AWS key id and its secret).
    pairs_with: Option<String>,
    pair_lines: Option<usize>,
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
    /// The credential family the rule finds (several rules may share one,
    /// e.g. a token and its legacy layout); the id when the file names none.
    pub family: String,
    pub name: String,
    pub description: String,
    /// The issuer that can revoke a leaked token of this family, if any.
    pub revoke: Option<Revoker>,
    pub prefixes: Vec<String>,
    pub charset: Charset,
    pub min_len: usize,
    pub max_len: usize,
    pub pattern: Option<Regex>,
    pub checksum: ChecksumKind,
    pub shape: Shape,
    pub seed: u64,
    pub json_fields: Vec<String>,
    pub marker: Vec<u8>,
    pub marker_place: MarkerPlace,
    pub anchor_offsets: Vec<usize>,
    pub keyword_gap: Option<usize>,
    pub pairs_with: Option<(String, usize)>,
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
        let fixed_length = matches!(spec.checksum, ChecksumKind::Crc32Base62Random | ChecksumKind::Crc32Base62All);
        if fixed_length && (min_len != max_len || min_len <= 6) {
            return Err(invalid("a checksummed body has one fixed length over 6".into()));
        }
        let seed = match (spec.checksum, spec.seed.as_deref()) {
            (ChecksumKind::Marvin32, Some(name)) => {
                verify::marvin_seed(name).ok_or_else(|| invalid("seed must be 8 ASCII characters".into()))?
            }
            (ChecksumKind::Marvin32, None) => return Err(invalid("marvin32 needs a seed".into())),
            _ => 0,
        };
        if spec.checksum == ChecksumKind::Marker && spec.marker.as_deref().unwrap_or("").is_empty() {
            return Err(invalid("checksum = marker needs a marker".into()));
        }
        if spec.checksum == ChecksumKind::Base64Json && spec.json_fields.is_empty() {
            return Err(invalid("base64-json needs json_fields".into()));
        }
        if !spec.anchor_offsets.is_empty() && (spec.keyword_gap.is_some() || spec.anchor_offsets.iter().any(|&o| o >= max_len)) {
            return Err(invalid("anchor_offsets lie inside the token and exclude keyword_gap".into()));
        }
        if spec.keyword_gap.is_some_and(|g| g > 32) {
            return Err(invalid("keyword_gap is at most 32".into()));
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
        let revoke = spec
            .revoke
            .as_deref()
            .map(|name| Revoker::parse(name).ok_or_else(|| invalid(format!("unknown revoker {name:?}"))))
            .transpose()?;
        Ok(Rule {
            family: spec.family.unwrap_or_else(|| spec.id.clone()),
            id: spec.id,
            name: spec.name,
            description: spec.description,
            revoke,
            prefixes: spec.prefixes,
            charset,
            min_len,
            max_len,
            pattern,
            checksum: spec.checksum,
            shape: spec.shape,
            seed,
            json_fields: spec.json_fields,
            marker: spec.marker.unwrap_or_default().into_bytes(),
            marker_place: spec.marker_place,
            anchor_offsets: spec.anchor_offsets,
            keyword_gap: spec.keyword_gap,
            pairs_with: spec.pairs_with.map(|id| (id, spec.pair_lines.unwrap_or(5))),
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
        let frame = match self.shape {
            Shape::PemBlock => 256,
            Shape::UriPassword => 128,
            Shape::Token => self.keyword_gap.unwrap_or(0),
        };
        prefix + self.max_len + frame + 2
    }

    /// Whether `token` is a test-mode token of this rule: one whose prefix
    /// names the mode (`sk_test_`, `kw_sk_test_`, `rk_test_`). Such a token
    /// reaches no live data, and is never revoked as leaked.
    pub fn is_test_mode(&self, token: &str) -> bool {
        self.prefixes
            .iter()
            .filter(|p| token.starts_with(p.as_str()))
            .any(|p| p.to_ascii_lowercase().split(['_', '-']).any(|part| part == "test"))
    }

    /// A literal that is not the token's start: Azure's inner signature.
    pub fn is_inner_anchored(&self) -> bool {
        !self.anchor_offsets.is_empty()
    }

    /// Bytes before the literal that a match may need to see: the start
    /// of an inner-anchored token, or the byte that bounds a prefix.
    pub fn lookbehind(&self) -> usize {
        self.anchor_offsets.iter().max().map_or(1, |o| o + 1)
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

    /// The distinct credential families, in rule order.
    pub fn families(&self) -> Vec<&str> {
        let mut seen = std::collections::HashSet::new();
        self.rules.iter().map(|r| r.family.as_str()).filter(|f| seen.insert(*f)).collect()
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
