//! GitHub as a source: push webhook signatures and payloads, and the REST
//! calls (through octocrab) that turn a push into the lines it added.
//!
//! An ordinary push is read with one compare call (`before...after`). A new
//! branch or a forced push is read commit by commit, because `before` is
//! zeros or no longer an ancestor. Findings are attributed to the commit
//! that added them: a compare spanning several commits is narrowed down by
//! reading those commits only when something was found.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::patch::scan_added;
use super::{Sighting, SourceError};
use crate::engine::Engine;

pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";
pub const EVENT_HEADER: &str = "x-github-event";
pub const DELIVERY_HEADER: &str = "x-github-delivery";
pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// Checks `X-Hub-Signature-256: sha256=<hex>` against HMAC-SHA256 of the
/// raw body, in constant time.
pub fn verify_signature(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_digest) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_digest) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// The fields of a `push` event that say what to read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PushEvent {
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub before: String,
    pub after: String,
    #[serde(default)]
    pub created: bool,
    #[serde(default)]
    pub deleted: bool,
    #[serde(default)]
    pub forced: bool,
    pub repository: Repository,
    #[serde(default)]
    pub commits: Vec<PushCommit>,
    #[serde(default)]
    pub installation: Option<Installation>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Repository {
    pub full_name: String,
    pub html_url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PushCommit {
    pub id: String,
    #[serde(default = "yes")]
    pub distinct: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Installation {
    pub id: u64,
}

#[derive(Debug, Deserialize)]
struct Compare {
    #[serde(default)]
    commits: Vec<CommitSha>,
    #[serde(default)]
    files: Vec<ChangedFile>,
}

#[derive(Debug, Deserialize)]
struct CommitSha {
    sha: String,
}

#[derive(Debug, Deserialize)]
struct CommitDetail {
    sha: String,
    #[serde(default)]
    files: Vec<ChangedFile>,
}

#[derive(Debug, Deserialize)]
struct ChangedFile {
    filename: String,
    #[serde(default)]
    status: String,
    /// Absent for binary files and for diffs too large for the API.
    #[serde(default)]
    patch: Option<String>,
}

/// Largest file read whole when GitHub leaves its patch out.
const MAX_WHOLE_FILE: usize = 10 << 20;

/// One HTTP answer: status, headers and body text.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

/// The GitHub REST API, at `api.github.com` or a GitHub Enterprise base URL,
/// as a token's owner or as a GitHub App's installations.
#[derive(Clone)]
pub struct GitHubApi {
    client: octocrab::Octocrab,
    /// Set when authenticated as an App: one client per installation, each
    /// minting and refreshing its own installation token.
    installations: Option<Arc<Mutex<HashMap<u64, octocrab::Octocrab>>>>,
}

impl GitHubApi {
    /// With a personal access token (or a ready installation token), or none.
    pub fn new(api_url: &str, token: Option<&str>) -> Result<GitHubApi, SourceError> {
        let mut builder = builder(api_url)?;
        if let Some(token) = token {
            builder = builder.personal_token(token.to_string());
        }
        let client = builder.build().map_err(|e| SourceError::Config(format!("GitHub client: {e}")))?;
        Ok(GitHubApi {
            client,
            installations: None,
        })
    }

    /// As a GitHub App: pushes are read with an installation token minted
    /// for the installation named in each delivery.
    pub fn app(api_url: &str, app_id: u64, private_key_pem: &[u8]) -> Result<GitHubApi, SourceError> {
        let client = builder(api_url)?
            .app_from_rsa_pem(app_id.into(), private_key_pem)
            .map_err(|e| SourceError::Config(format!("GitHub App private key: {e}")))?
            .build()
            .map_err(|e| SourceError::Config(format!("GitHub client: {e}")))?;
        Ok(GitHubApi {
            client,
            installations: Some(Arc::default()),
        })
    }

    /// The client to read a delivery of `installation` with: the App's
    /// installation client, or this one when not an App.
    pub fn for_installation(&self, installation: Option<u64>) -> Result<GitHubApi, SourceError> {
        let (Some(cache), Some(id)) = (&self.installations, installation) else {
            return Ok(self.clone());
        };
        let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
        let client = match cache.get(&id) {
            Some(client) => client.clone(),
            None => {
                let client = self
                    .client
                    .installation(id.into())
                    .map_err(|e| SourceError::Config(format!("GitHub App installation {id}: {e}")))?;
                cache.insert(id, client.clone());
                client
            }
        };
        Ok(GitHubApi {
            client,
            installations: None,
        })
    }

    /// GET `path` (with its query) under the API base; any status is an answer.
    pub async fn get(&self, path: &str, headers: &[(HeaderName, String)]) -> Result<Answer, SourceError> {
        let mut map = HeaderMap::new();
        map.insert(http::header::ACCEPT, HeaderValue::from_static("application/vnd.github+json"));
        for (name, value) in headers {
            let value = HeaderValue::from_str(value).map_err(|e| SourceError::Config(e.to_string()))?;
            map.insert(name.clone(), value);
        }
        let response = self
            .client
            ._get_with_headers(path, Some(map))
            .await
            .map_err(|e| SourceError::Unavailable(format!("GET {path}: {e}")))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = self
            .client
            .body_to_string(response)
            .await
            .map_err(|e| SourceError::Unavailable(format!("GET {path}: reading the body: {e}")))?;
        Ok(Answer { status, headers, body })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, SourceError> {
        let answer = self.get(path, &[]).await?;
        if !answer.status.is_success() {
            return Err(SourceError::Status {
                url: path.to_string(),
                status: answer.status.as_u16(),
            });
        }
        serde_json::from_str(&answer.body).map_err(|e| SourceError::Payload(format!("GET {path}: {e}")))
    }

    async fn compare(&self, repo: &str, base: &str, head: &str) -> Result<Compare, SourceError> {
        self.get_json(&format!("/repos/{repo}/compare/{base}...{head}")).await
    }

    async fn commit(&self, repo: &str, sha: &str) -> Result<CommitDetail, SourceError> {
        self.get_json(&format!("/repos/{repo}/commits/{sha}")).await
    }
}

type Builder =
    octocrab::OctocrabBuilder<octocrab::NoSvc, octocrab::DefaultOctocrabBuilderConfig, octocrab::NoAuth, octocrab::NotLayerReady>;

fn builder(api_url: &str) -> Result<Builder, SourceError> {
    Ok(octocrab::Octocrab::builder()
        .base_uri(api_url)
        .map_err(|e| SourceError::Config(format!("GitHub API URL {api_url:?}: {e}")))?
        .set_connect_timeout(Some(Duration::from_secs(10)))
        .set_read_timeout(Some(Duration::from_secs(30))))
}

fn is_zero(sha: &str) -> bool {
    !sha.is_empty() && sha.bytes().all(|b| b == b'0')
}

/// Every keyward-relevant token the push added, each at its commit, path,
/// line and blob URL. Scanning runs on a blocking thread.
pub async fn push_sightings(api: &GitHubApi, engine: &std::sync::Arc<Engine>, event: &PushEvent) -> Result<Vec<Sighting>, SourceError> {
    if event.deleted || is_zero(&event.after) {
        return Ok(Vec::new());
    }
    let api = &api.for_installation(event.installation.as_ref().map(|i| i.id))?;
    let repo = &event.repository.full_name;
    if event.created || event.forced || is_zero(&event.before) {
        return by_commit(api, engine, event).await;
    }
    let mut compare = match api.compare(repo, &event.before, &event.after).await {
        Ok(compare) => compare,
        // `before` was rewritten away or garbage-collected: read the commits.
        Err(SourceError::Status { status: 404, .. }) => return by_commit(api, engine, event).await,
        Err(e) => return Err(e),
    };
    fill_missing_patches(api, repo, &event.after, &mut compare.files).await;
    let found = scan_files(engine, compare.files).await?;
    if found.is_empty() {
        return Ok(Vec::new());
    }
    if let [only] = &compare.commits[..] {
        return Ok(place_all(event, &only.sha, found));
    }
    // Several commits: read each only now that something was found, to name
    // the commit that added it.
    let mut sightings = by_shas(api, engine, event, compare.commits.iter().map(|c| c.sha.clone()).collect()).await?;
    if sightings.is_empty() {
        sightings = place_all(event, &event.after, found);
    }
    Ok(sightings)
}

async fn by_commit(api: &GitHubApi, engine: &std::sync::Arc<Engine>, event: &PushEvent) -> Result<Vec<Sighting>, SourceError> {
    let shas = event.commits.iter().filter(|c| c.distinct).map(|c| c.id.clone()).collect();
    by_shas(api, engine, event, shas).await
}

async fn by_shas(
    api: &GitHubApi,
    engine: &std::sync::Arc<Engine>,
    event: &PushEvent,
    shas: Vec<String>,
) -> Result<Vec<Sighting>, SourceError> {
    let mut sightings = Vec::new();
    for sha in shas {
        let mut detail = api.commit(&event.repository.full_name, &sha).await?;
        fill_missing_patches(api, &event.repository.full_name, &detail.sha, &mut detail.files).await;
        let found = scan_files(engine, detail.files).await?;
        sightings.extend(place_all(event, &detail.sha, found));
    }
    Ok(sightings)
}

/// GitHub leaves `patch` out of large diffs. Such a file is read whole at
/// `sha` and every line of it counts as added: a finding too many rather
/// than a key missed. Binary content (not UTF-8) and files over 10 MiB are
/// passed over with a warning.
async fn fill_missing_patches(api: &GitHubApi, repo: &str, sha: &str, files: &mut [ChangedFile]) {
    for file in files.iter_mut().filter(|f| f.patch.is_none() && f.status != "removed") {
        let path = format!("/repos/{repo}/contents/{}?ref={sha}", escape_path(&file.filename));
        let raw = (http::header::ACCEPT, "application/vnd.github.raw".to_string());
        match api.get(&path, &[raw]).await {
            Ok(answer) if answer.status.is_success() && answer.body.len() <= MAX_WHOLE_FILE => {
                file.patch = Some(whole_file_patch(&answer.body));
            }
            Ok(answer) => {
                tracing::warn!(file = %file.filename, status = %answer.status, size = answer.body.len(), "file without a patch not read")
            }
            Err(e) => tracing::warn!(file = %file.filename, error = %e, "file without a patch not read"),
        }
    }
}

/// A patch that adds every line of `text` to an empty file.
fn whole_file_patch(text: &str) -> String {
    let mut patch = String::with_capacity(text.len() + text.len() / 20 + 16);
    patch.push_str("@@ -0,0 +1 @@\n");
    for line in text.lines() {
        patch.push('+');
        patch.push_str(line);
        patch.push('\n');
    }
    patch
}

/// A repository path as a URL path: `/` kept, everything but unreserved
/// bytes percent-encoded.
fn escape_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// (path, finding) for every finding on an added line of `files`.
async fn scan_files(
    engine: &std::sync::Arc<Engine>,
    files: Vec<ChangedFile>,
) -> Result<Vec<(String, crate::engine::Finding)>, SourceError> {
    let engine = engine.clone();
    tokio::task::spawn_blocking(move || {
        files
            .into_iter()
            .flat_map(|file| {
                let findings = file.patch.as_deref().map(|p| scan_added(&engine, p)).unwrap_or_default();
                findings.into_iter().map(move |f| (file.filename.clone(), f))
            })
            .collect()
    })
    .await
    .map_err(|e| SourceError::Unavailable(format!("scanning thread: {e}")))
}

fn place_all(event: &PushEvent, sha: &str, found: Vec<(String, crate::engine::Finding)>) -> Vec<Sighting> {
    let base = event.repository.html_url.trim_end_matches('/');
    super::sightings_at("github_push", &event.repository.full_name, sha, found, |path, line| {
        format!("{base}/blob/{sha}/{path}#L{line}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    macro_rules! t {
        ($name:ident, $header:expr, $expected:expr) => {
            #[test]
            fn $name() {
                let header: String = $header;
                assert_eq!(
                    verify_signature(b"It's a Secret to Everybody", b"Hello, World!", &header),
                    $expected
                );
            }
        };
    }

    // GitHub's documented test vector for X-Hub-Signature-256.
    t!(
        github_documented_vector,
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17".into(),
        true
    );
    t!(computed, sign(b"It's a Secret to Everybody", b"Hello, World!"), true);
    t!(other_secret, sign(b"another", b"Hello, World!"), false);
    t!(
        no_prefix,
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17".into(),
        false
    );
    t!(sha1_prefix, "sha1=757107ea0eb2509fc211221cce984b8a37570b6d".into(), false);
    t!(not_hex, "sha256=zz".into(), false);
    t!(truncated, "sha256=757107ea0eb2509fc211221cce984b8a".into(), false);
    t!(empty, String::new(), false);
}
