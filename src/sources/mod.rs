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
pub mod schedule;
pub mod watch;

use crate::engine::Finding;
use crate::store::Place;

/// A token found by a daemon source, and where.
#[derive(Debug)]
pub struct Sighting {
    pub place: Place,
    pub finding: Finding,
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
