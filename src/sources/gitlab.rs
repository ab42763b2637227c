//! GitLab as a source: the `X-Gitlab-Token` check, Push Hook payloads, and
//! the compare and commit-diff API calls that turn a push into added lines.
//!
//! As for GitHub, an ordinary push is one compare call and a new branch is
//! read commit by commit; the flow after that is the same.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::patch::scan_added;
use super::{Sighting, SourceError};
use crate::engine::{Engine, Finding};

pub const TOKEN_HEADER: &str = "x-gitlab-token";
pub const EVENT_HEADER: &str = "x-gitlab-event";
/// GitLab's delivery id; `Idempotency-Key` on newer versions carries the same.
pub const UUID_HEADER: &str = "x-gitlab-event-uuid";
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Compares the configured secret with the header, in constant time.
pub fn verify_token(secret: &str, header: &str) -> bool {
    !secret.is_empty() && bool::from(secret.as_bytes().ct_eq(header.as_bytes()))
}

/// The fields of a Push Hook that say what to read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PushHook {
    pub object_kind: String,
    pub before: String,
    pub after: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub project_id: u64,
    pub project: Project,
    #[serde(default)]
    pub commits: Vec<HookCommit>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Project {
    pub web_url: String,
    pub path_with_namespace: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HookCommit {
    pub id: String,
}

#[derive(Debug, Deserialize)]
struct Compare {
    #[serde(default)]
    commits: Vec<HookCommit>,
    #[serde(default)]
    diffs: Vec<Diff>,
}

#[derive(Debug, Deserialize)]
struct Diff {
    new_path: String,
    #[serde(default)]
    diff: String,
    #[serde(default)]
    deleted_file: bool,
}

/// The GitLab REST API (v4) at a base such as `https://gitlab.com/api/v4`.
#[derive(Clone)]
pub struct GitLabApi {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl GitLabApi {
    pub fn new(api_url: &str, token: Option<&str>) -> Result<GitLabApi, SourceError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| SourceError::Config(format!("GitLab client: {e}")))?;
        Ok(GitLabApi {
            http,
            base: api_url.trim_end_matches('/').to_string(),
            token: token.map(str::to_string),
        })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, SourceError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.get(&url);
        if let Some(token) = &self.token {
            request = request.header("PRIVATE-TOKEN", token);
        }
        let response = request
            .send()
            .await
            .map_err(|e| SourceError::Unavailable(format!("GET {path}: {e}")))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(SourceError::Status {
                url: path.to_string(),
                status,
            });
        }
        response.json().await.map_err(|e| SourceError::Payload(format!("GET {path}: {e}")))
    }
}

fn is_zero(sha: &str) -> bool {
    !sha.is_empty() && sha.bytes().all(|b| b == b'0')
}

/// Every token the push added, each at its commit, path, line and URL.
pub async fn push_sightings(api: &GitLabApi, engine: &Arc<Engine>, hook: &PushHook) -> Result<Vec<Sighting>, SourceError> {
    if is_zero(&hook.after) {
        return Ok(Vec::new());
    }
    let project = hook.project_id;
    if is_zero(&hook.before) {
        let shas = hook.commits.iter().map(|c| c.id.clone()).collect();
        return by_shas(api, engine, hook, shas).await;
    }
    let compare: Compare = api
        .get_json(&format!(
            "/projects/{project}/repository/compare?from={}&to={}",
            hook.before, hook.after
        ))
        .await?;
    let found = scan_diffs(engine, compare.diffs).await?;
    if found.is_empty() {
        return Ok(Vec::new());
    }
    if let [only] = &compare.commits[..] {
        return Ok(place_all(hook, &only.id, found));
    }
    let mut sightings = by_shas(api, engine, hook, compare.commits.iter().map(|c| c.id.clone()).collect()).await?;
    if sightings.is_empty() {
        sightings = place_all(hook, &hook.after, found);
    }
    Ok(sightings)
}

async fn by_shas(api: &GitLabApi, engine: &Arc<Engine>, hook: &PushHook, shas: Vec<String>) -> Result<Vec<Sighting>, SourceError> {
    let mut sightings = Vec::new();
    for sha in shas {
        let diffs: Vec<Diff> = api
            .get_json(&format!("/projects/{}/repository/commits/{sha}/diff", hook.project_id))
            .await?;
        let found = scan_diffs(engine, diffs).await?;
        sightings.extend(place_all(hook, &sha, found));
    }
    Ok(sightings)
}

async fn scan_diffs(engine: &Arc<Engine>, diffs: Vec<Diff>) -> Result<Vec<(String, Finding)>, SourceError> {
    let engine = engine.clone();
    tokio::task::spawn_blocking(move || {
        diffs
            .into_iter()
            .filter(|d| !d.deleted_file)
            .flat_map(|d| {
                let findings = scan_added(&engine, &d.diff);
                findings.into_iter().map(move |f| (d.new_path.clone(), f))
            })
            .collect()
    })
    .await
    .map_err(|e| SourceError::Unavailable(format!("scanning thread: {e}")))
}

fn place_all(hook: &PushHook, sha: &str, found: Vec<(String, Finding)>) -> Vec<Sighting> {
    let base = hook.project.web_url.trim_end_matches('/');
    super::sightings_at("gitlab_push", &hook.project.path_with_namespace, sha, found, |path, line| {
        format!("{base}/-/blob/{sha}/{path}#L{line}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! t {
        ($name:ident, $secret:expr, $header:expr, $expected:expr) => {
            #[test]
            fn $name() {
                assert_eq!(verify_token($secret, $header), $expected);
            }
        };
    }

    t!(same, "s3cret", "s3cret", true);
    t!(different, "s3cret", "s3creT", false);
    t!(prefix, "s3cret", "s3c", false);
    t!(longer, "s3cret", "s3cret!", false);
    t!(no_secret_configured_never_matches, "", "", false);
}
