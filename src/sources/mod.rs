//! Where bytes come from. Sources read and walk; the engine decides what a
//! secret is, and the leak response decides what to do about it.
//!
//! Local sources (`files`, `git`) feed `keyward scan`. The daemon's sources
//! (`github`, `gitlab` pushes through [`pushes`], the public event `feed`,
//! `watch`ed paths and `schedule`d repositories) hand each token they find
//! to the leak response as a [`Sighting`], and keep a status row each.

pub mod feed;
pub mod files;
pub mod git;
pub mod github;
pub mod gitlab;
pub mod patch;
pub mod pushes;
pub mod reports;
pub mod schedule;
pub mod utf16;
pub mod watch;

use crate::engine::Finding;
use crate::store::Place;

/// A token found by a daemon source, and where.
#[derive(Debug)]
pub struct Sighting {
    pub place: Place,
    pub finding: Finding,
}

/// Places the findings of one commit of a push: repository, commit, path,
/// line, and the link `url(path, line)` makes.
fn sightings_at(
    source_kind: &str,
    repository: &str,
    sha: &str,
    found: Vec<(String, Finding)>,
    url: impl Fn(&str, u64) -> String,
) -> Vec<Sighting> {
    found
        .into_iter()
        .map(|(path, finding)| Sighting {
            place: Place {
                source_kind: source_kind.to_string(),
                repository: repository.to_string(),
                commit_sha: sha.to_string(),
                url: url(&path, finding.line),
                line: i64::try_from(finding.line).ok(),
                path,
            },
            finding,
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("unexpected response: {0}")]
    Payload(String),
    #[error(transparent)]
    Git(#[from] git::GitError),
    #[error(transparent)]
    Service(#[from] crate::service::ServiceError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// How often a leader checks that it still holds its lock, and a follower
/// tries to take it.
const LEAD_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs `work` on one replica at a time: while this replica holds the lead
/// for `name`, and again after winning it back. Returns never.
pub async fn while_leader<F, Fut>(store: crate::store::Store, name: &'static str, work: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        match store.try_lead(name).await {
            Ok(Some(mut lead)) => {
                tracing::info!(work = name, "leading");
                let task = work();
                tokio::pin!(task);
                loop {
                    tokio::select! {
                        () = &mut task => return,
                        () = tokio::time::sleep(LEAD_CHECK) => {
                            if !lead.holds().await {
                                tracing::warn!(work = name, "lost the lead");
                                break;
                            }
                        }
                    }
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(work = name, error = %e, "cannot try for the lead"),
        }
        tokio::time::sleep(LEAD_CHECK).await;
    }
}
