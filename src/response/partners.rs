//! Secret-scanning partner reports from GitHub and GitLab: the signature
//! check, the provider's public keys, and the report format.
//!
//! Both providers sign the raw request body with ECDSA P-256 / SHA-256 and
//! send the base64 DER signature and the signing key's identifier in
//! headers (`GITHUB-PUBLIC-KEY-{IDENTIFIER,SIGNATURE}`,
//! `Gitlab-Public-Key-{Identifier,Signature}`). Their keys endpoints answer
//! `{"public_keys": [{"key_identifier", "key" (PEM), "is_current"}]}`.
//! Keys are cached and fetched again when an unknown identifier arrives; a
//! key no longer current is refused.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, RwLock};

/// At most one refetch per identifier miss in this interval, so unknown
/// identifiers cannot make us hammer the provider.
const REFETCH_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    GitHub,
    GitLab,
}

impl Provider {
    pub fn key_id_header(self) -> &'static str {
        match self {
            Provider::GitHub => "github-public-key-identifier",
            Provider::GitLab => "gitlab-public-key-identifier",
        }
    }

    pub fn signature_header(self) -> &'static str {
        match self {
            Provider::GitHub => "github-public-key-signature",
            Provider::GitLab => "gitlab-public-key-signature",
        }
    }

    /// The `source_kind` incidents record.
    pub fn source_kind(self) -> &'static str {
        match self {
            Provider::GitHub => "github_secret_scanning",
            Provider::GitLab => "gitlab_secret_detection",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("the signature or key identifier header is missing")]
    MissingHeaders,
    #[error("unknown public key identifier")]
    UnknownKey,
    #[error("the signing key is no longer current")]
    NotCurrent,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the provider's public keys could not be fetched: {0}")]
    KeysUnavailable(String),
}

/// One report in a partner request body.
#[derive(Debug, Clone, Deserialize)]
pub struct Report {
    pub token: String,
    #[serde(rename = "type", default)]
    pub token_type: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub source: String,
}

/// GitHub's expected answer, one per report.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Label {
    /// SHA-256 hex of the raw token, so the answer does not repeat it.
    pub token_hash: String,
    pub token_type: String,
    /// `true_positive` or `false_positive`.
    pub label: &'static str,
}

#[derive(Deserialize)]
struct KeysDocument {
    public_keys: Vec<PublishedKey>,
}

#[derive(Deserialize)]
struct PublishedKey {
    key_identifier: String,
    key: String,
    #[serde(default = "current_by_default")]
    is_current: bool,
}

fn current_by_default() -> bool {
    true
}

struct CachedKey {
    key: VerifyingKey,
    is_current: bool,
}

/// A provider's public keys, fetched from its keys endpoint on demand.
pub struct PartnerKeys {
    url: String,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, CachedKey>>,
    last_fetch: Mutex<Option<Instant>>,
}

impl PartnerKeys {
    pub fn new(url: String) -> PartnerKeys {
        PartnerKeys {
            url,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client builds"),
            keys: RwLock::default(),
            last_fetch: Mutex::new(None),
        }
    }

    /// Checks `signature_b64` (base64 DER) over `body` with key `key_id`.
    pub async fn verify(&self, key_id: &str, signature_b64: &str, body: &[u8]) -> Result<(), SignatureError> {
        if !self.keys.read().await.contains_key(key_id) {
            self.refetch().await?;
        }
        let keys = self.keys.read().await;
        let cached = keys.get(key_id).ok_or(SignatureError::UnknownKey)?;
        if !cached.is_current {
            return Err(SignatureError::NotCurrent);
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(signature_b64.trim())
            .map_err(|_| SignatureError::BadSignature)?;
        let signature = Signature::from_der(&der).map_err(|_| SignatureError::BadSignature)?;
        cached.key.verify(body, &signature).map_err(|_| SignatureError::BadSignature)
    }

    async fn refetch(&self) -> Result<(), SignatureError> {
        let mut last = self.last_fetch.lock().await;
        if last.is_some_and(|t| t.elapsed() < REFETCH_INTERVAL) {
            return Ok(());
        }
        *last = Some(Instant::now());
        let unavailable = |e: String| SignatureError::KeysUnavailable(e);
        let response = self
            .http
            .get(&self.url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("the keys endpoint answered {}", response.status())));
        }
        let document: KeysDocument = response.json().await.map_err(|e| unavailable(e.to_string()))?;
        let mut fresh = HashMap::new();
        for published in document.public_keys {
            match VerifyingKey::from_public_key_pem(&published.key) {
                Ok(key) => {
                    fresh.insert(
                        published.key_identifier,
                        CachedKey {
                            key,
                            is_current: published.is_current,
                        },
                    );
                }
                Err(e) => tracing::warn!(key = %published.key_identifier, error = %e, "skipping an unreadable partner key"),
            }
        }
        *self.keys.write().await = fresh;
        Ok(())
    }
}

/// SHA-256 hex of a token, as GitHub expects in `token_hash`.
pub fn token_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}
