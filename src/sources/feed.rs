//! GitHub's public events feed: a poller that reads `GET /events` (and any
//! org or user feeds), follows each PushEvent to the lines it added, and
//! hands the tokens there to the leak response.
//!
//! It polls as GitHub asks: conditional requests with the last ETag (a 304
//! costs no rate limit), never sooner than `X-Poll-Interval`, and not at all
//! until `X-RateLimit-Reset` once `X-RateLimit-Remaining` reaches 0. Its
//! cursor (each feed's ETag and newest handled event id) is saved after
//! every feed, so a restart neither misses nor rescans events.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderMap, HeaderName};
use serde::{Deserialize, Serialize};

use super::github::{self, GitHubApi, PushCommit, PushEvent, Repository};
use super::pushes::report_all;
use super::SourceError;
use crate::engine::Engine;
use crate::response::LeakResponder;
use crate::store::{now_ms, SourceOutcome};

pub const SOURCE: &str = "github-events";
/// GitHub's own floor for the events API.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct FeedOptions {
    /// API paths: `/events`, `/orgs/{org}/events`, `/users/{user}/events`.
    pub feeds: Vec<String>,
    /// The shortest wait between rounds, whatever the server says.
    pub min_interval: Duration,
    /// Where repositories are browsed, for finding URLs.
    pub web_url: String,
}

impl FeedOptions {
    pub fn new(orgs: &[String], users: &[String], public: bool) -> FeedOptions {
        let mut feeds: Vec<String> = Vec::new();
        if public {
            feeds.push("/events".into());
        }
        feeds.extend(orgs.iter().map(|o| format!("/orgs/{o}/events")));
        feeds.extend(users.iter().map(|u| format!("/users/{u}/events")));
        FeedOptions {
            feeds,
            min_interval: DEFAULT_INTERVAL,
            web_url: "https://github.com".into(),
        }
    }
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct FeedCursor {
    #[serde(default)]
    etag: String,
    /// The newest event id handled; ids grow over time.
    #[serde(default)]
    last_id: u64,
}

#[derive(Debug, Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    repo: EventRepo,
    #[serde(default)]
    payload: serde_json::Value,
    #[serde(default)]
    created_at: String,
}

#[derive(Debug, Deserialize)]
struct EventRepo {
    name: String,
}

/// A PushEvent's payload; newer feeds leave out `commits`, and then the
/// push is read with a compare like a webhook's.
#[derive(Debug, Deserialize)]
struct PushPayload {
    #[serde(rename = "ref", default)]
    git_ref: String,
    head: String,
    before: String,
    #[serde(default)]
    commits: Vec<FeedCommit>,
}

#[derive(Debug, Deserialize)]
struct FeedCommit {
    sha: String,
    #[serde(default = "yes")]
    distinct: bool,
}

fn yes() -> bool {
    true
}

pub struct FeedPoller {
    api: GitHubApi,
    responder: Arc<LeakResponder>,
    engine: Arc<Engine>,
    options: FeedOptions,
}

impl FeedPoller {
    pub fn new(api: GitHubApi, responder: Arc<LeakResponder>, engine: Arc<Engine>, options: FeedOptions) -> FeedPoller {
        FeedPoller {
            api,
            responder,
            engine,
            options,
        }
    }

    /// Polls until the task is dropped.
    pub async fn run(&self) {
        loop {
            let wait = self.poll_once().await;
            tokio::time::sleep(wait).await;
        }
    }

    /// One round over every feed; returns how long to wait before the next.
    pub async fn poll_once(&self) -> Duration {
        let store = self.responder.service().store();
        let mut cursors: BTreeMap<String, FeedCursor> = match store.source_cursor(SOURCE).await {
            Ok(text) => text.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, "event feed cursor unavailable");
                return self.options.min_interval;
            }
        };
        let mut wait = self.options.min_interval;
        for feed in &self.options.feeds {
            let cursor = cursors.entry(feed.clone()).or_default();
            let outcome = match self.poll_feed(feed, cursor).await {
                Ok((asked, lag_ms)) => {
                    wait = wait.max(asked);
                    lag_ms.map(|lag_ms| SourceOutcome::Ok { lag_ms })
                }
                Err(e) => {
                    tracing::warn!(feed = %feed, error = %e, "event feed poll failed");
                    Some(SourceOutcome::Failed(format!("{feed}: {e}")))
                }
            };
            let now = now_ms();
            let saved = serde_json::to_string(&cursors).unwrap_or_default();
            let recorded = async {
                store.save_source_cursor(SOURCE, SOURCE, &saved, now).await?;
                match &outcome {
                    Some(outcome) => store.record_source_event(SOURCE, SOURCE, outcome, now).await,
                    None => Ok(()),
                }
            };
            if let Err(e) = recorded.await {
                tracing::warn!(error = %e, "event feed cursor not saved");
            }
        }
        wait
    }

    /// Reads one feed and handles its new push events. Returns the wait the
    /// server asked for and, when there were new events, the lag of the
    /// newest one.
    async fn poll_feed(&self, feed: &str, cursor: &mut FeedCursor) -> Result<(Duration, Option<i64>), SourceError> {
        let mut headers = Vec::new();
        if !cursor.etag.is_empty() {
            headers.push((http::header::IF_NONE_MATCH, cursor.etag.clone()));
        }
        let answer = self.api.get(&format!("{feed}?per_page=100"), &headers).await?;
        let wait = asked_wait(&answer.headers, std::time::SystemTime::now());
        match answer.status.as_u16() {
            304 => return Ok((wait, None)),
            200 => {}
            status => {
                return Err(SourceError::Status {
                    url: feed.to_string(),
                    status,
                })
            }
        }
        let mut events: Vec<Event> = serde_json::from_str(&answer.body).map_err(|e| SourceError::Payload(format!("{feed}: {e}")))?;
        events.retain(|e| e.id.parse::<u64>().is_ok_and(|id| id > cursor.last_id));
        events.sort_by_key(|e| e.id.parse::<u64>().unwrap_or_default());
        let mut newest = None;
        for event in &events {
            if event.kind == "PushEvent" {
                self.follow(event).await?;
            }
            cursor.last_id = event.id.parse().unwrap_or(cursor.last_id);
            newest = Some(event);
        }
        if let Some(etag) = answer.headers.get(http::header::ETAG).and_then(|v| v.to_str().ok()) {
            cursor.etag = etag.to_string();
        }
        let lag = newest.map(|e| lag_ms(&e.created_at));
        Ok((wait, lag))
    }

    async fn follow(&self, event: &Event) -> Result<(), SourceError> {
        let Ok(payload) = serde_json::from_value::<PushPayload>(event.payload.clone()) else {
            return Ok(());
        };
        let push = PushEvent {
            git_ref: payload.git_ref,
            created: payload.before.bytes().all(|b| b == b'0'),
            before: payload.before,
            after: payload.head,
            deleted: false,
            forced: false,
            repository: Repository {
                full_name: event.repo.name.clone(),
                html_url: format!("{}/{}", self.options.web_url.trim_end_matches('/'), event.repo.name),
            },
            commits: payload
                .commits
                .into_iter()
                .map(|c| PushCommit {
                    id: c.sha,
                    distinct: c.distinct,
                })
                .collect(),
            installation: None,
        };
        let mut sightings = github::push_sightings(&self.api, &self.engine, &push).await?;
        for sighting in &mut sightings {
            sighting.place.source_kind = SOURCE.to_string();
        }
        report_all(&self.responder, &sightings).await
    }
}

fn lag_ms(created_at: &str) -> i64 {
    humantime::parse_rfc3339_weak(created_at)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |since| now_ms() - since.as_millis() as i64)
        .max(0)
}

/// The longer of `X-Poll-Interval` and, when the rate limit is spent, the
/// time until `X-RateLimit-Reset`.
fn asked_wait(headers: &HeaderMap, now: std::time::SystemTime) -> Duration {
    let number = |name: &'static str| {
        headers
            .get(HeaderName::from_static(name))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let poll = Duration::from_secs(number("x-poll-interval").unwrap_or(0));
    let limited = if number("x-ratelimit-remaining") == Some(0) {
        let now = now.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
        Duration::from_secs(number("x-ratelimit-reset").unwrap_or(now).saturating_sub(now))
    } else {
        Duration::ZERO
    };
    poll.max(limited)
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! t {
        ($name:ident, $headers:expr, $expected:expr) => {
            #[test]
            fn $name() {
                let mut map = HeaderMap::new();
                for (k, v) in $headers {
                    map.insert(HeaderName::from_static(k), v.parse().unwrap());
                }
                let now = std::time::UNIX_EPOCH + Duration::from_secs(1_000);
                assert_eq!(asked_wait(&map, now), Duration::from_secs($expected));
            }
        };
    }

    t!(nothing_asked, Vec::<(&str, &str)>::new(), 0);
    t!(poll_interval, [("x-poll-interval", "60")], 60);
    t!(
        rate_limit_left,
        [
            ("x-poll-interval", "60"),
            ("x-ratelimit-remaining", "10"),
            ("x-ratelimit-reset", "5000")
        ],
        60
    );
    t!(
        rate_limit_spent,
        [
            ("x-poll-interval", "60"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1300")
        ],
        300
    );
    t!(reset_in_the_past, [("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "900")], 0);
    t!(garbage, [("x-poll-interval", "soon")], 0);
}
