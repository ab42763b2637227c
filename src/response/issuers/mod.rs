//! Issuers' public revocation endpoints (TOKEN-FORMATS.md section 3), one
//! module each: what each one is called with and what its answers mean.
//!
//! A call ends in a [`Verdict`]. `Revoked` and `Refused` are final: a token
//! that was revoked, or that its issuer does not know, is never sent again.
//! A timeout, a connection failure, a 5xx or a 429 asks to be retried
//! (honouring `Retry-After`). An answer that makes no sense fails with its
//! reason rather than guessing. Base URLs come from the configuration, so
//! tests point them at fakes on loopback; every call times out after 10 s.
//! No call carries keyward's own credentials: each issuer is called as the
//! token itself, or (GitHub) unauthenticated, as its documentation asks.

mod buildkite;
mod dropbox;
mod github;
mod gitlab;
mod google;
mod slack;
mod vault;

use std::time::Duration;

use crate::engine::rules::Revoker;

/// Every issuer call gives up after this long.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What one issuer call says about one token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Revoked,
    /// The issuer does not know the token, or it was already revoked.
    Refused(String),
    /// Worth another try: after `after_ms` when the issuer said so.
    Retry {
        after_ms: Option<i64>,
        reason: String,
    },
    /// An answer that makes no sense, or a setting that is missing.
    Failed(String),
}

/// Where each issuer's API lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub github_api: String,
    pub gitlab_api: String,
    /// An administrator's token for a self-managed GitLab: revokes the
    /// token kinds that cannot revoke themselves (`DELETE /admin/token`).
    pub gitlab_admin_token: Option<String>,
    pub slack_api: String,
    pub dropbox_api: String,
    pub google_oauth: String,
    pub buildkite_api: String,
    /// The only Vault servers a Vault token is ever sent to.
    pub vault_addrs: Vec<String>,
}

impl Endpoints {
    /// The public endpoints, with GitHub's and GitLab's API where the
    /// deployment already reads pushes.
    pub fn public(github_api: &str, gitlab_api: &str) -> Endpoints {
        Endpoints {
            github_api: github_api.to_string(),
            gitlab_api: gitlab_api.to_string(),
            gitlab_admin_token: None,
            slack_api: "https://slack.com/api".to_string(),
            dropbox_api: "https://api.dropboxapi.com".to_string(),
            google_oauth: "https://oauth2.googleapis.com".to_string(),
            buildkite_api: "https://api.buildkite.com".to_string(),
            vault_addrs: Vec::new(),
        }
    }
}

/// The issuers this build can call, with one HTTP client for all.
#[derive(Debug, Clone)]
pub struct Issuers {
    endpoints: Endpoints,
    client: reqwest::Client,
}

impl Issuers {
    pub fn new(endpoints: Endpoints) -> Issuers {
        let client = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .connect_timeout(CALL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("keyward/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a TLS client with default settings builds");
        Issuers { endpoints, client }
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// Why `revoker` cannot revoke `token`, if it cannot: no public path
    /// for the issuer or for this kind of its tokens, or a setting it needs.
    pub fn unsupported(&self, revoker: Revoker, token: &str) -> Option<String> {
        match revoker {
            Revoker::Github => github::unsupported(token),
            Revoker::Gitlab => gitlab::unsupported(&self.endpoints, token),
            Revoker::Vault if self.endpoints.vault_addrs.is_empty() => {
                Some("no Vault address is configured ([third_party] vault_addrs)".into())
            }
            Revoker::Slack | Revoker::Vault | Revoker::Dropbox | Revoker::GoogleOauth | Revoker::Buildkite => None,
            Revoker::Keyward => Some("keyward's own keys follow their project's leak policy".into()),
            Revoker::Perplexity | Revoker::Npm | Revoker::Doppler | Revoker::Digitalocean => Some(format!(
                "{} publishes no revocation endpoint that accepts the token alone",
                revoker.as_str()
            )),
        }
    }

    /// How many tokens one call to `revoker` takes.
    pub fn batch_size(revoker: Revoker) -> usize {
        match revoker {
            Revoker::Github => github::MAX_PER_CALL,
            _ => 1,
        }
    }

    /// Revokes `tokens` (at most [`Issuers::batch_size`]) at `revoker`:
    /// one verdict per token, in order.
    pub async fn revoke(&self, revoker: Revoker, tokens: &[&str]) -> Vec<Verdict> {
        if revoker == Revoker::Github {
            let verdict = github::revoke(&self.client, &self.endpoints.github_api, tokens).await;
            return vec![verdict; tokens.len()];
        }
        let mut verdicts = Vec::with_capacity(tokens.len());
        for token in tokens {
            verdicts.push(match self.unsupported(revoker, token) {
                Some(why) => Verdict::Failed(why),
                None => self.revoke_one(revoker, token).await,
            });
        }
        verdicts
    }

    async fn revoke_one(&self, revoker: Revoker, token: &str) -> Verdict {
        let (client, e) = (&self.client, &self.endpoints);
        match revoker {
            Revoker::Gitlab => gitlab::revoke(client, e, token).await,
            Revoker::Slack => slack::revoke(client, &e.slack_api, token).await,
            Revoker::Vault => vault::revoke(client, &e.vault_addrs, token).await,
            Revoker::Dropbox => dropbox::revoke(client, &e.dropbox_api, token).await,
            Revoker::GoogleOauth => google::revoke(client, &e.google_oauth, token).await,
            Revoker::Buildkite => buildkite::revoke(client, &e.buildkite_api, token).await,
            other => Verdict::Failed(format!("{} cannot be called", other.as_str())),
        }
    }
}

/// `{base}{path}` with exactly one slash between them.
fn url(base: &str, path: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'))
}

/// Sends a call and reads what every issuer means the same by: no answer,
/// a rate limit (429, with `Retry-After` in seconds) or a server error is
/// worth a retry. Any other answer is the issuer's to read.
async fn answer(issuer: &str, request: reqwest::RequestBuilder) -> Result<reqwest::Response, Verdict> {
    let response = request.send().await.map_err(|e| unreachable(issuer, &e))?;
    match common(issuer, &response) {
        Some(verdict) => Err(verdict),
        None => Ok(response),
    }
}

/// What a call's failure to get an answer means: always worth a retry.
fn unreachable(issuer: &str, error: &reqwest::Error) -> Verdict {
    let what = if error.is_timeout() {
        format!("no answer within {} s", CALL_TIMEOUT.as_secs())
    } else if error.is_connect() {
        "could not connect".to_string()
    } else {
        "the connection failed".to_string()
    };
    Verdict::Retry {
        after_ms: None,
        reason: format!("{issuer}: {what}"),
    }
}

/// Rate limits and server errors; `None` for the rest.
fn common(issuer: &str, response: &reqwest::Response) -> Option<Verdict> {
    let status = response.status();
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Some(Verdict::Retry {
            after_ms: retry_after_ms(response),
            reason: format!("{issuer}: rate limited (HTTP 429)"),
        });
    }
    status.is_server_error().then(|| Verdict::Retry {
        after_ms: retry_after_ms(response),
        reason: format!("{issuer}: HTTP {}", status.as_u16()),
    })
}

/// `Retry-After: <seconds>`, capped at a day.
fn retry_after_ms(response: &reqwest::Response) -> Option<i64> {
    let seconds: i64 = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(seconds.clamp(0, 86_400) * 1000)
}

/// An answer the issuer's documentation does not describe.
fn unexpected(issuer: &str, status: reqwest::StatusCode) -> Verdict {
    Verdict::Failed(format!("{issuer}: unexpected answer (HTTP {})", status.as_u16()))
}

/// The usual shape of a call that sends the token as a bearer credential:
/// 2xx revoked, 401 refused.
async fn bearer_call(issuer: &str, request: reqwest::RequestBuilder) -> Verdict {
    let response = match answer(issuer, request).await {
        Ok(response) => response,
        Err(verdict) => return verdict,
    };
    let status = response.status();
    if status.is_success() {
        Verdict::Revoked
    } else if status == reqwest::StatusCode::UNAUTHORIZED {
        Verdict::Refused(format!("{issuer}: the token is not valid (HTTP {})", status.as_u16()))
    } else {
        unexpected(issuer, status)
    }
}
