//! Fake token issuers on 127.0.0.1, answering their revocation calls in
//! the shapes their documentation gives: GitHub's credentials API, GitLab's
//! self and admin token revocation, Slack's `auth.revoke`, Vault's
//! `revoke-self`, Dropbox's, Google's and Buildkite's endpoints. Each can be
//! told to refuse, to answer garbage, to hang, or to rate-limit first, and
//! every call is recorded with the token it carried.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::Router;
use serde_json::{json, Value};

/// How an issuer answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Revoke,
    /// It does not know the token.
    Refuse,
    /// An answer its documentation does not describe.
    Garbage,
    /// No answer for a minute.
    Hang,
    /// 429 with `Retry-After: secs` for the first `times` calls, then revoke.
    RateLimit {
        times: u32,
        retry_after: u32,
    },
}

/// One call an issuer received.
#[derive(Debug, Clone)]
pub struct Call {
    pub issuer: &'static str,
    pub method: String,
    pub path: String,
    /// The tokens it asked to revoke.
    pub tokens: Vec<String>,
    /// Authorization, PRIVATE-TOKEN or X-Vault-Token, as sent.
    pub credential: Option<String>,
    pub at: std::time::Instant,
}

#[derive(Default)]
pub struct IssuerState {
    behaviours: HashMap<&'static str, Behaviour>,
    rate_limited: HashMap<&'static str, u32>,
    pub calls: Vec<Call>,
}

#[derive(Clone, Default)]
pub struct FakeIssuers {
    pub state: Arc<Mutex<IssuerState>>,
}

type Shared = Arc<Mutex<IssuerState>>;

impl FakeIssuers {
    /// Every issuer on one loopback server; returns the fake and its URL.
    pub async fn start() -> (FakeIssuers, String) {
        let fake = FakeIssuers::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = fake.router();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        (fake, format!("http://{addr}"))
    }

    /// The issuers' routes, to serve alone or inside a fake code host.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/credentials/revoke", post(github))
            .route("/api/v4/personal_access_tokens/self", delete(gitlab_self))
            .route("/api/v4/admin/token", delete(gitlab_admin))
            .route("/api/auth.revoke", post(slack))
            .route("/v1/auth/token/revoke-self", post(vault))
            .route("/2/auth/token/revoke", post(dropbox))
            .route("/revoke", post(google))
            .route("/v2/access-token", delete(buildkite))
            .with_state(self.state.clone())
    }

    pub fn set(&self, issuer: &'static str, behaviour: Behaviour) {
        self.state.lock().unwrap().behaviours.insert(issuer, behaviour);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn calls_to(&self, issuer: &str) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.issuer == issuer).collect()
    }

    /// Every token any issuer was asked to revoke.
    pub fn tokens(&self) -> Vec<String> {
        self.calls().into_iter().flat_map(|c| c.tokens).collect()
    }
}

/// Records the call and says how to answer it.
fn arrive(state: &Shared, issuer: &'static str, method: &str, path: &str, tokens: Vec<String>, credential: Option<String>) -> Behaviour {
    let mut s = state.lock().unwrap();
    s.calls.push(Call {
        issuer,
        method: method.into(),
        path: path.into(),
        tokens,
        credential,
        at: std::time::Instant::now(),
    });
    let behaviour = s.behaviours.get(issuer).copied().unwrap_or(Behaviour::Revoke);
    if let Behaviour::RateLimit { times, retry_after } = behaviour {
        let seen = s.rate_limited.entry(issuer).or_insert(0);
        if *seen < times {
            *seen += 1;
            return Behaviour::RateLimit { times, retry_after };
        }
        return Behaviour::Revoke;
    }
    behaviour
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    header(headers, "authorization").and_then(|v| v.strip_prefix("Bearer ").map(str::to_string))
}

/// The shared part of every answer: hang, rate limit, or garbage.
async fn unless_odd(behaviour: Behaviour) -> Option<Response> {
    match behaviour {
        Behaviour::Hang => {
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            Some(StatusCode::GATEWAY_TIMEOUT.into_response())
        }
        Behaviour::RateLimit { retry_after, .. } => Some(
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", retry_after.to_string())],
                json!({"message": "API rate limit exceeded"}).to_string(),
            )
                .into_response(),
        ),
        Behaviour::Garbage => Some((StatusCode::IM_A_TEAPOT, [("content-type", "text/html")], "<html>oops</html>").into_response()),
        _ => None,
    }
}

async fn github(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let tokens = body["credentials"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let behaviour = arrive(
        &state,
        "github",
        "POST",
        "/credentials/revoke",
        tokens,
        header(&headers, "authorization"),
    );
    if header(&headers, "authorization").is_some() {
        // github.com refuses authenticated calls to this endpoint.
        return (StatusCode::FORBIDDEN, json!({"message": "Must not be authenticated"}).to_string()).into_response();
    }
    if let Some(odd) = unless_odd(behaviour).await {
        return odd;
    }
    match behaviour {
        Behaviour::Refuse => (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"message": "Validation Failed", "documentation_url": "https://docs.github.com/rest/credentials/revoke"}).to_string(),
        )
            .into_response(),
        _ => (StatusCode::ACCEPTED, "{}").into_response(),
    }
}

async fn gitlab_self(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let token = header(&headers, "private-token");
    let behaviour = arrive(
        &state,
        "gitlab",
        "DELETE",
        "/personal_access_tokens/self",
        token.clone().into_iter().collect(),
        token,
    );
    if let Some(odd) = unless_odd(behaviour).await {
        return odd;
    }
    match behaviour {
        Behaviour::Refuse => (StatusCode::UNAUTHORIZED, json!({"message": "401 Unauthorized"}).to_string()).into_response(),
        _ => StatusCode::NO_CONTENT.into_response(),
    }
}

async fn gitlab_admin(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let token = body["token"].as_str().map(str::to_string);
    let behaviour = arrive(
        &state,
        "gitlab-admin",
        "DELETE",
        "/admin/token",
        token.into_iter().collect(),
        header(&headers, "private-token"),
    );
    if let Some(odd) = unless_odd(behaviour).await {
        return odd;
    }
    match behaviour {
        Behaviour::Refuse => (StatusCode::NOT_FOUND, json!({"message": "404 Not Found"}).to_string()).into_response(),
        _ => StatusCode::NO_CONTENT.into_response(),
    }
}

async fn slack(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let token = bearer(&headers);
    let behaviour = arrive(&state, "slack", "POST", "/auth.revoke", token.clone().into_iter().collect(), token);
    if behaviour == Behaviour::Garbage {
        return (
            StatusCode::OK,
            [("content-type", "text/html")],
            "<html>Slack is down for maintenance</html>",
        )
            .into_response();
    }
    if let Some(odd) = unless_odd(behaviour).await {
        return odd;
    }
    let answer = match behaviour {
        Behaviour::Refuse => json!({"ok": false, "error": "invalid_auth"}),
        _ => json!({"ok": true, "revoked": true}),
    };
    ([("content-type", "application/json")], answer.to_string()).into_response()
}

async fn vault(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let token = header(&headers, "x-vault-token");
    let behaviour = arrive(
        &state,
        "vault",
        "POST",
        "/v1/auth/token/revoke-self",
        token.clone().into_iter().collect(),
        token,
    );
    if let Some(odd) = unless_odd(behaviour).await {
        return odd;
    }
    match behaviour {
        Behaviour::Refuse => (StatusCode::FORBIDDEN, json!({"errors": ["permission denied"]}).to_string()).into_response(),
        _ => StatusCode::NO_CONTENT.into_response(),
    }
}

async fn dropbox(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let token = bearer(&headers);
    let behaviour = arrive(
        &state,
        "dropbox",
        "POST",
        "/2/auth/token/revoke",
        token.clone().into_iter().collect(),
        token,
    );
    if let Some(odd) = unless_odd(behaviour).await {
        return odd;
    }
    match behaviour {
        Behaviour::Refuse => (
            StatusCode::UNAUTHORIZED,
            json!({"error_summary": "invalid_access_token/..", "error": {".tag": "invalid_access_token"}}).to_string(),
        )
            .into_response(),
        _ => ([("content-type", "application/json")], "null").into_response(),
    }
}

async fn google(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let token = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned());
    let behaviour = arrive(
        &state,
        "google-oauth",
        "POST",
        "/revoke",
        token.into_iter().collect(),
        header(&headers, "authorization"),
    );
    if let Some(odd) = unless_odd(behaviour).await {
        return odd;
    }
    match behaviour {
        Behaviour::Refuse => (
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_token", "error_description": "Token expired or revoked"}).to_string(),
        )
            .into_response(),
        _ => ([("content-type", "application/json")], "{}").into_response(),
    }
}

async fn buildkite(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let token = bearer(&headers);
    let behaviour = arrive(
        &state,
        "buildkite",
        "DELETE",
        "/v2/access-token",
        token.clone().into_iter().collect(),
        token,
    );
    if let Some(odd) = unless_odd(behaviour).await {
        return odd;
    }
    match behaviour {
        Behaviour::Refuse => (StatusCode::UNAUTHORIZED, json!({"message": "Authentication required"}).to_string()).into_response(),
        _ => StatusCode::NO_CONTENT.into_response(),
    }
}

/// A fresh classic GitHub token: 30 random characters and their CRC-32.
pub fn github_token(seed: u64) -> String {
    use rand::{Rng, SeedableRng};
    const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let body: String = (0..30).map(|_| BASE62[rng.gen_range(0..62)] as char).collect();
    let check = keyward::keys::checksum::crc32_base62(body.as_bytes());
    format!("ghp_{body}{}", std::str::from_utf8(&check).unwrap())
}
