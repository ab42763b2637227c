//! Fake GitHub and GitLab REST APIs on 127.0.0.1 that answer with the real
//! response shapes: GitHub's compare, commit and events endpoints (with
//! ETag, 304 and X-Poll-Interval), GitLab's compare and commit-diff.
//! Every request is recorded so tests can count what was read.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

/// `X-Hub-Signature-256` as GitHub sends it: `sha256=` + hex HMAC-SHA256.
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// One changed file of a commit: its path and unified-diff hunks.
#[derive(Clone)]
pub struct FileChange {
    pub path: String,
    pub patch: String,
}

impl FileChange {
    pub fn new(path: &str, patch: &str) -> FileChange {
        FileChange {
            path: path.into(),
            patch: patch.into(),
        }
    }
}

#[derive(Default)]
pub struct HostState {
    pub commits: HashMap<String, Vec<FileChange>>,
    /// `base...head` → the commits between, oldest first.
    pub ranges: HashMap<String, Vec<String>>,
    pub events: Vec<Value>,
    pub etag: String,
    pub honour_etag: bool,
    pub poll_interval: u64,
    /// (when, path and query, If-None-Match)
    pub requests: Vec<(Instant, String, Option<String>)>,
    /// (path, Authorization) of every request
    pub authorizations: Vec<(String, String)>,
    /// Whole files by "sha:path", for the contents API.
    pub raw: HashMap<String, String>,
    /// How long each compare takes, to let a test kill a busy worker.
    pub compare_delay_ms: u64,
}

#[derive(Clone)]
pub struct FakeHost {
    pub url: String,
    pub state: Arc<Mutex<HostState>>,
    /// The host's token revocation endpoints.
    pub issuers: super::issuers::FakeIssuers,
}

impl FakeHost {
    pub fn add_commit(&self, sha: &str, files: Vec<FileChange>) {
        self.state.lock().unwrap().commits.insert(sha.into(), files);
    }

    pub fn add_range(&self, base: &str, head: &str, shas: &[&str]) {
        let shas = shas.iter().map(|s| s.to_string()).collect();
        self.state.lock().unwrap().ranges.insert(format!("{base}...{head}"), shas);
    }

    /// Requests whose path contains `part`.
    pub fn hits(&self, part: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|(_, p, _)| p.contains(part))
            .count()
    }

    pub fn requests(&self) -> Vec<(Instant, String, Option<String>)> {
        self.state.lock().unwrap().requests.clone()
    }
}

async fn start(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

fn record(state: &Mutex<HostState>, path: String, headers: &HeaderMap) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let mut state = state.lock().unwrap();
    state
        .authorizations
        .push((path.clone(), header("authorization").unwrap_or_default()));
    state.requests.push((Instant::now(), path, header("if-none-match")));
}

#[derive(serde::Deserialize)]
struct RefQuery {
    r#ref: String,
}

async fn gh_contents(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((owner, repo, path)): Path<(String, String, String)>,
    Query(q): Query<RefQuery>,
) -> Response {
    record(&state, format!("/repos/{owner}/{repo}/contents/{path}?ref={}", q.r#ref), &headers);
    let raw = headers.get("accept").and_then(|v| v.to_str().ok()) == Some("application/vnd.github.raw");
    match state.lock().unwrap().raw.get(&format!("{}:{path}", q.r#ref)) {
        Some(text) if raw => text.clone().into_response(),
        _ => not_found(),
    }
}

/// GitHub's answer to an App asking for an installation token.
async fn gh_access_token(State(state): State<Shared>, headers: HeaderMap, Path(id): Path<u64>) -> Response {
    record(&state, format!("/app/installations/{id}/access_tokens"), &headers);
    (
        StatusCode::CREATED,
        Json(json!({
            "token": format!("ghs_installation{id}token"),
            "expires_at": "2099-01-01T00:00:00Z",
            "permissions": {"contents": "read", "metadata": "read"},
            "repository_selection": "all",
        })),
    )
        .into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})),
    )
        .into_response()
}

/// A file whose patch is empty is served as GitHub serves a large diff:
/// without the `patch` field.
fn github_file(owner: &str, repo: &str, sha: &str, f: &FileChange) -> Value {
    let added = f.patch.lines().filter(|l| l.starts_with('+')).count();
    let removed = f.patch.lines().filter(|l| l.starts_with('-')).count();
    let mut file = json!({
        "sha": "bbcd538c8e72b8c175046e27cc8f907076331401",
        "filename": f.path,
        "status": "modified",
        "additions": added,
        "deletions": removed,
        "changes": added + removed,
        "blob_url": format!("https://github.com/{owner}/{repo}/blob/{sha}/{}", f.path),
        "raw_url": format!("https://github.com/{owner}/{repo}/raw/{sha}/{}", f.path),
        "contents_url": format!("https://api.github.com/repos/{owner}/{repo}/contents/{}?ref={sha}", f.path),
        "patch": f.patch,
    });
    if f.patch.is_empty() {
        file.as_object_mut().unwrap().remove("patch");
    }
    file
}

fn github_commit(owner: &str, repo: &str, sha: &str, files: &[FileChange]) -> Value {
    json!({
        "url": format!("https://api.github.com/repos/{owner}/{repo}/commits/{sha}"),
        "sha": sha,
        "node_id": "MDY6Q29tbWl0NmRjYjA5YjViNTc4NzVmMzM0ZjYxYWViZWQ2OTVlMmU0MTkzZGI1ZQ==",
        "html_url": format!("https://github.com/{owner}/{repo}/commit/{sha}"),
        "commit": {
            "author": {"name": "Monalisa Octocat", "email": "support@github.com", "date": "2011-04-14T16:00:49Z"},
            "committer": {"name": "Monalisa Octocat", "email": "support@github.com", "date": "2011-04-14T16:00:49Z"},
            "message": "Fix all the bugs",
            "tree": {"url": "https://api.github.com/repos/octocat/Hello-World/tree/6dcb09b5b57875f334f61aebed695e2e4193db5e", "sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e"},
            "comment_count": 0,
        },
        "parents": [],
        "stats": {"additions": 1, "deletions": 0, "total": 1},
        "files": files.iter().map(|f| github_file(owner, repo, sha, f)).collect::<Vec<_>>(),
    })
}

type Shared = Arc<Mutex<HostState>>;

async fn gh_commit(State(state): State<Shared>, headers: HeaderMap, Path((owner, repo, sha)): Path<(String, String, String)>) -> Response {
    record(&state, format!("/repos/{owner}/{repo}/commits/{sha}"), &headers);
    let files = state.lock().unwrap().commits.get(&sha).cloned();
    match files {
        Some(files) => Json(github_commit(&owner, &repo, &sha, &files)).into_response(),
        None => not_found(),
    }
}

async fn gh_compare(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((owner, repo, range)): Path<(String, String, String)>,
) -> Response {
    record(&state, format!("/repos/{owner}/{repo}/compare/{range}"), &headers);
    let delay = state.lock().unwrap().compare_delay_ms;
    tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    let (shas, commits) = {
        let s = state.lock().unwrap();
        let Some(shas) = s.ranges.get(&range).cloned() else {
            return not_found();
        };
        let commits: Vec<(String, Vec<FileChange>)> = shas
            .iter()
            .map(|sha| (sha.clone(), s.commits.get(sha).cloned().unwrap_or_default()))
            .collect();
        (shas, commits)
    };
    let files: Vec<Value> = commits
        .iter()
        .flat_map(|(sha, files)| files.iter().map(|f| github_file(&owner, &repo, sha, f)).collect::<Vec<_>>())
        .collect();
    Json(json!({
        "url": format!("https://api.github.com/repos/{owner}/{repo}/compare/{range}"),
        "html_url": format!("https://github.com/{owner}/{repo}/compare/{range}"),
        "status": "ahead",
        "ahead_by": shas.len(),
        "behind_by": 0,
        "total_commits": shas.len(),
        "commits": commits.iter().map(|(sha, files)| github_commit(&owner, &repo, sha, files)).collect::<Vec<_>>(),
        "files": files,
    }))
    .into_response()
}

async fn gh_events(State(state): State<Shared>, headers: HeaderMap) -> Response {
    record(&state, "/events".into(), &headers);
    let s = state.lock().unwrap();
    let asked = headers.get("if-none-match").and_then(|v| v.to_str().ok());
    let mut response = if s.honour_etag && asked == Some(s.etag.as_str()) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Json(Value::Array(s.events.clone())).into_response()
    };
    let h = response.headers_mut();
    h.insert("etag", s.etag.parse().unwrap());
    h.insert("x-poll-interval", s.poll_interval.to_string().parse().unwrap());
    h.insert("x-ratelimit-limit", "5000".parse().unwrap());
    h.insert("x-ratelimit-remaining", "4999".parse().unwrap());
    response
}

/// A fake `api.github.com`.
pub async fn github() -> FakeHost {
    let state: Shared = Arc::new(Mutex::new(HostState {
        etag: "W/\"a18c3bded88eb5dbb5c849a489412bf3\"".into(),
        honour_etag: true,
        poll_interval: 60,
        ..HostState::default()
    }));
    let router = Router::new()
        .route("/repos/{owner}/{repo}/commits/{sha}", get(gh_commit))
        .route("/repos/{owner}/{repo}/compare/{range}", get(gh_compare))
        .route("/repos/{owner}/{repo}/contents/{*path}", get(gh_contents))
        .route("/events", get(gh_events))
        .route("/app/installations/{id}/access_tokens", axum::routing::post(gh_access_token))
        .with_state(state.clone());
    let issuers = super::issuers::FakeIssuers::default();
    FakeHost {
        url: start(router.merge(issuers.router())).await,
        state,
        issuers,
    }
}

/// A PushEvent as `GET /events` lists it.
pub fn push_event(id: u64, repo: &str, before: &str, head: &str, shas: &[&str]) -> Value {
    json!({
        "id": id.to_string(),
        "type": "PushEvent",
        "actor": {"id": 583231, "login": "octocat", "display_login": "octocat", "url": "https://api.github.com/users/octocat"},
        "repo": {"id": 1296269, "name": repo, "url": format!("https://api.github.com/repos/{repo}")},
        "payload": {
            "repository_id": 1296269,
            "push_id": id * 10,
            "size": shas.len(),
            "distinct_size": shas.len(),
            "ref": "refs/heads/main",
            "head": head,
            "before": before,
            "commits": shas.iter().map(|sha| json!({
                "sha": sha,
                "author": {"email": "octocat@github.com", "name": "The Octocat"},
                "message": "Update config",
                "distinct": true,
                "url": format!("https://api.github.com/repos/{repo}/commits/{sha}"),
            })).collect::<Vec<_>>(),
        },
        "public": true,
        "created_at": "2026-11-24T03:00:00Z",
    })
}

fn gitlab_diff(f: &FileChange) -> Value {
    json!({
        "old_path": f.path, "new_path": f.path, "a_mode": "100644", "b_mode": "100644",
        "new_file": false, "renamed_file": false, "deleted_file": false, "diff": f.patch,
    })
}

#[derive(serde::Deserialize)]
struct CompareQuery {
    from: String,
    to: String,
}

async fn gl_compare(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    Query(q): Query<CompareQuery>,
) -> Response {
    record(
        &state,
        format!("/projects/{project}/repository/compare?from={}&to={}", q.from, q.to),
        &headers,
    );
    let s = state.lock().unwrap();
    let Some(shas) = s.ranges.get(&format!("{}...{}", q.from, q.to)).cloned() else {
        return (StatusCode::NOT_FOUND, Json(json!({"message": "404 Not found"}))).into_response();
    };
    let diffs: Vec<Value> = shas
        .iter()
        .flat_map(|sha| s.commits.get(sha).cloned().unwrap_or_default())
        .map(|f| gitlab_diff(&f))
        .collect();
    Json(json!({
        "commit": {"id": q.to, "short_id": &q.to[..8.min(q.to.len())], "title": "fixed readme"},
        "commits": shas.iter().map(|sha| json!({"id": sha, "short_id": &sha[..8.min(sha.len())], "title": "change"})).collect::<Vec<_>>(),
        "diffs": diffs,
        "compare_timeout": false,
        "compare_same_ref": false,
        "web_url": format!("http://example.com/mike/diaspora/-/compare/{}...{}", q.from, q.to),
    }))
    .into_response()
}

async fn gl_commit_diff(State(state): State<Shared>, headers: HeaderMap, Path((project, sha)): Path<(String, String)>) -> Response {
    record(&state, format!("/projects/{project}/repository/commits/{sha}/diff"), &headers);
    let files = state.lock().unwrap().commits.get(&sha).cloned();
    match files {
        Some(files) => Json(files.iter().map(gitlab_diff).collect::<Vec<_>>()).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({"message": "404 Commit Not Found"}))).into_response(),
    }
}

/// A fake GitLab; its API base is `url` + `/api/v4`.
pub async fn gitlab() -> FakeHost {
    let state: Shared = Arc::new(Mutex::new(HostState::default()));
    let router = Router::new()
        .route("/api/v4/projects/{project}/repository/compare", get(gl_compare))
        .route("/api/v4/projects/{project}/repository/commits/{sha}/diff", get(gl_commit_diff))
        .with_state(state.clone());
    let issuers = super::issuers::FakeIssuers::default();
    FakeHost {
        url: start(router.merge(issuers.router())).await + "/api/v4",
        state,
        issuers,
    }
}
