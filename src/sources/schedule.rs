//! Scheduled repository scans: each configured repository, a local path or
//! a clone URL, is scanned again on an interval. The first scan reads the
//! whole history, each unique blob once; later ones read only the lines
//! added by commits that arrived since, bounded by the tips saved as the
//! source's cursor.
//!
//! A URL is kept as a bare mirror under the data directory and fetched with
//! git before each scan; it reaches git after `--`, so it can never be read
//! as an option. A local path is opened as exactly that repository: if it
//! is not one (its `.git` was removed), the run fails rather than scan the
//! repository around it. Scans run on a blocking thread.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::git::{self, GitOptions, Progress};
use super::pushes::report_all;
use super::{Sighting, SourceError};
use crate::engine::Engine;
use crate::response::LeakResponder;
use crate::store::{now_ms, Place, SourceOutcome};

pub const SOURCE_KIND: &str = "schedule";

/// One `[[schedule]]` entry of `keyward.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ScheduledRepo {
    /// A local path, or a URL git can clone.
    pub repo: String,
    /// How often, e.g. `"15m"` or `"6h"`.
    #[serde(with = "humantime_serde_compat")]
    pub every: Duration,
}

/// `every` as a humantime string.
mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

impl ScheduledRepo {
    pub fn source_name(&self) -> String {
        format!("{SOURCE_KIND}:{}", self.shown())
    }

    /// The repository without any `user:token@` in its URL: names, logs and
    /// incidents must not carry credentials.
    pub fn shown(&self) -> String {
        match self.repo.split_once("://") {
            Some((scheme, rest)) => match rest.split_once('/') {
                Some((authority, path)) => {
                    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
                    format!("{scheme}://{host}/{path}")
                }
                None => format!("{scheme}://{}", rest.rsplit_once('@').map_or(rest, |(_, host)| host)),
            },
            None => self.repo.clone(),
        }
    }
}

pub struct Scheduler {
    repos: Vec<ScheduledRepo>,
    engine: Arc<Engine>,
    responder: Arc<LeakResponder>,
    mirrors: PathBuf,
}

impl Scheduler {
    /// `mirrors` holds the bare clones of repositories given by URL.
    pub fn new(repos: Vec<ScheduledRepo>, engine: Arc<Engine>, responder: Arc<LeakResponder>, mirrors: PathBuf) -> Scheduler {
        Scheduler {
            repos,
            engine,
            responder,
            mirrors,
        }
    }

    /// Scans each repository when it is due, until the task is dropped.
    pub async fn run(&self) {
        let mut due: Vec<Instant> = vec![Instant::now(); self.repos.len()];
        loop {
            for (repo, at) in self.repos.iter().zip(due.iter_mut()) {
                if *at <= Instant::now() {
                    if let Err(e) = self.scan_once(repo).await {
                        tracing::warn!(repo = %repo.shown(), error = %e, "scheduled scan failed");
                    }
                    *at = Instant::now() + repo.every;
                }
            }
            let next = due
                .iter()
                .min()
                .copied()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::time::sleep_until(next.into()).await;
        }
    }

    /// One scan of `repo`; returns how many tokens it reported.
    pub async fn scan_once(&self, repo: &ScheduledRepo) -> Result<usize, SourceError> {
        let started = Instant::now();
        let name = repo.source_name();
        let store = self.responder.service().store();
        let previous: Vec<String> = store
            .source_cursor(&name)
            .await?
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        let (engine, mirrors, scheduled) = (self.engine.clone(), self.mirrors.clone(), repo.clone());
        let scanned = tokio::task::spawn_blocking(move || scan_repo(&engine, &mirrors, &scheduled, &previous))
            .await
            .map_err(|e| SourceError::Unavailable(format!("scan thread: {e}")));
        let result = match scanned {
            Ok(Ok((sightings, tips))) => report_all(&self.responder, &sightings).await.map(|()| (sightings.len(), tips)),
            Ok(Err(e)) | Err(e) => Err(e),
        };
        let now = now_ms();
        match result {
            Ok((reported, tips)) => {
                let cursor = serde_json::to_string(&tips).unwrap_or_default();
                store.save_source_cursor(&name, SOURCE_KIND, &cursor, now).await?;
                let outcome = SourceOutcome::Ok {
                    lag_ms: started.elapsed().as_millis() as i64,
                };
                store.record_source_event(&name, SOURCE_KIND, &outcome, now).await?;
                Ok(reported)
            }
            Err(e) => {
                store
                    .record_source_event(&name, SOURCE_KIND, &SourceOutcome::Failed(e.to_string()), now)
                    .await?;
                Err(e)
            }
        }
    }
}

/// Scans what is new since `previous` (everything on the first run);
/// returns the sightings and the tips to remember.
fn scan_repo(
    engine: &Engine,
    mirrors: &Path,
    repo: &ScheduledRepo,
    previous: &[String],
) -> Result<(Vec<Sighting>, Vec<String>), SourceError> {
    let path = local_copy(mirrors, &repo.repo)?;
    let tips = git::tips(&path)?;
    let scan = if previous.is_empty() {
        git::scan_history(engine, &path, &GitOptions::default(), &Progress::default())?
    } else if tips.iter().all(|t| previous.contains(t)) {
        git::GitScan::default()
    } else {
        // Tips that a force-push or gc removed can no longer bound the range.
        let known = git::known_commits(&path, previous);
        git::scan_range(engine, &path, &[], &known, false)?
    };
    crate::metrics::Metrics::add(&crate::metrics::METRICS.bytes_scanned, scan.stats.bytes);
    for error in &scan.stats.errors {
        tracing::warn!(repo = %repo.shown(), %error, "object unreadable in scheduled scan");
    }
    let sightings = scan
        .findings
        .into_iter()
        .map(|f| Sighting {
            place: Place {
                source_kind: SOURCE_KIND.into(),
                repository: repo.shown(),
                commit_sha: f.origin.as_ref().map(|o| o.commit.clone()).unwrap_or_default(),
                path: f.path,
                line: i64::try_from(f.finding.line).ok(),
                url: String::new(),
            },
            finding: f.finding,
        })
        .collect();
    Ok((sightings, tips))
}

fn is_url(repo: &str) -> bool {
    repo.contains("://") || (repo.contains('@') && repo.contains(':'))
}

/// The repository to read: a local path as it is, a URL as a bare mirror
/// cloned on first use and fetched afterwards.
fn local_copy(mirrors: &Path, repo: &str) -> Result<PathBuf, SourceError> {
    if !is_url(repo) {
        return Ok(git::open_exact(Path::new(repo))?);
    }
    let dir = mirrors.join(&hex::encode(Sha256::digest(repo.as_bytes()))[..16]);
    let mut git = Command::new("git");
    git.env("GIT_TERMINAL_PROMPT", "0").args(["-c", "protocol.ext.allow=never"]);
    if dir.join("HEAD").exists() {
        git.arg("--git-dir").arg(&dir).args(["remote", "update", "--prune"]);
    } else {
        std::fs::create_dir_all(mirrors).map_err(|e| SourceError::Config(format!("creating {}: {e}", mirrors.display())))?;
        git.args(["clone", "--mirror", "--quiet", "--", repo]).arg(&dir);
    }
    let output = git.output().map_err(|e| SourceError::Unavailable(format!("running git: {e}")))?;
    if !output.status.success() {
        return Err(SourceError::Unavailable(format!(
            "git could not fetch the repository (exit {})",
            output.status.code().unwrap_or(-1)
        )));
    }
    Ok(dir)
}
