//! What the engine reports: a finding, its redacted form and its stable id.
//!
//! The plaintext travels inside [`Secret`], whose `Debug` prints nothing, so
//! a stray `{:?}` in a log line cannot leak it. The finding id is derived
//! from a hash of the rule and token, so ignore files and baselines can name
//! a finding without holding the secret.

use sha2::{Digest, Sha256};

use super::rules::Confidence;

/// A matched token, kept in memory only.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(bytes: &[u8]) -> Secret {
        Secret(String::from_utf8_lossy(bytes).into_owned())
    }

    /// The plaintext. Callers decide whether it may leave the process.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// How the token appeared in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Plain,
    /// Inside a base64 string, one decoding level deep.
    Base64,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Plain => "plain",
            Encoding::Base64 => "base64",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Finding {
    /// Index of the rule in the engine's rule set.
    pub rule: usize,
    pub rule_id: String,
    /// Byte range in the input, end exclusive.
    pub start: u64,
    pub end: u64,
    /// 1-based line and column (the column counts characters).
    pub line: u64,
    pub column: u64,
    pub secret: Secret,
    pub redacted: String,
    pub confidence: Confidence,
    pub encoding: Encoding,
    pub finding_id: String,
    /// The line carries a `keyward:allow` marker.
    pub allowed: bool,
}

/// `prefix…last4`: enough to recognise a key, useless to an attacker.
pub fn redact(display_prefix: &str, tail_source: &[u8]) -> String {
    let tail = &tail_source[tail_source.len().saturating_sub(4)..];
    format!("{display_prefix}…{}", String::from_utf8_lossy(tail))
}

/// `kwf_` + 24 hex digits of SHA-256 over a domain tag, the rule id and the
/// token. Stable across runs and paths, so one allowlist entry covers a
/// test fixture wherever it is copied.
pub fn finding_id(rule_id: &str, token: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(b"keyward/finding/v1\0");
    hash.update(rule_id.as_bytes());
    hash.update(b"\0");
    hash.update(token);
    let digest = hash.finalize();
    format!("kwf_{}", hex::encode(&digest[..12]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finding_id_is_stable_and_secret_free() {
        let id = finding_id("github.pat", b"ghp_secretsecret");
        assert_eq!(id, finding_id("github.pat", b"ghp_secretsecret"));
        assert_ne!(id, finding_id("github.pat", b"ghp_secretsecreu"));
        assert!(!id.contains("secret"));
        assert_eq!(id.len(), 4 + 24);
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(format!("{:?}", Secret::new(b"kw_sk_live_abc")), "Secret([redacted])");
    }

    #[test]
    fn redact_keeps_prefix_and_last_four() {
        assert_eq!(redact("ghp_", b"abcdefgh1234"), "ghp_…1234");
    }
}
