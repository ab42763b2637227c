//! GitHub: `POST {api}/credentials/revoke` with `{"credentials": [...]}`,
//! up to 1000 tokens a call, sent without credentials (github.com answers
//! an authenticated call with 403) within a budget of 60 calls an hour.
//! 202 means GitHub took the list and will notify the owners; it says
//! nothing per token. The endpoint takes classic and fine-grained personal
//! access tokens, OAuth tokens, and GitHub App user and refresh tokens; not
//! installation tokens (`ghs_`), which expire within the hour anyway.

use super::{answer, unexpected, url, Verdict};

pub const MAX_PER_CALL: usize = 1000;
const ACCEPTED: [&str; 5] = ["ghp_", "github_pat_", "gho_", "ghu_", "ghr_"];

pub fn unsupported(token: &str) -> Option<String> {
    (!ACCEPTED.iter().any(|p| token.starts_with(p)))
        .then(|| "GitHub's revocation endpoint does not take this kind of token (installation tokens expire within the hour)".into())
}

pub async fn revoke(client: &reqwest::Client, api: &str, tokens: &[&str]) -> Verdict {
    let request = client
        .post(url(api, "credentials/revoke"))
        .header(reqwest::header::ACCEPT, "application/vnd.github+json")
        .header("X-GitHub-Api-Version", "2022-11-28")
        .json(&serde_json::json!({ "credentials": tokens }));
    let response = match answer("GitHub", request).await {
        Ok(response) => response,
        Err(verdict) => return verdict,
    };
    let status = response.status();
    if status.is_success() {
        return Verdict::Revoked;
    }
    match status.as_u16() {
        // A spent budget: retry when it resets.
        403 if response.headers().get("x-ratelimit-remaining").is_some_and(|v| v == "0") => Verdict::Retry {
            after_ms: reset_in_ms(&response),
            reason: "GitHub: the hourly budget of revocation calls is spent (HTTP 403)".into(),
        },
        // "Validation failed, or the endpoint has been spammed."
        422 => Verdict::Retry {
            after_ms: None,
            reason: "GitHub: validation failed, or the endpoint is being spammed (HTTP 422)".into(),
        },
        _ => unexpected("GitHub", status),
    }
}

/// Milliseconds until `X-RateLimit-Reset` (Unix seconds).
fn reset_in_ms(response: &reqwest::Response) -> Option<i64> {
    let reset: i64 = response.headers().get("x-ratelimit-reset")?.to_str().ok()?.parse().ok()?;
    Some((reset * 1000 - crate::store::now_ms()).clamp(0, 3_600_000))
}
