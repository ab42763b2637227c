//! Slack: `POST {api}/auth.revoke` with the token as its own bearer.
//! Slack answers HTTP 200 either way; the JSON says what happened:
//! `{"ok": true, "revoked": true}`, or `{"ok": false, "error": "…"}`.

use super::{answer, url, Verdict};

/// Errors that mean the token no longer works (or never did).
const DEAD: [&str; 6] = [
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "no_such_token",
];

pub async fn revoke(client: &reqwest::Client, api: &str, token: &str) -> Verdict {
    let request = client.post(url(api, "auth.revoke")).bearer_auth(token).form(&[("test", "false")]);
    let response = match answer("Slack", request).await {
        Ok(response) => response,
        Err(verdict) => return verdict,
    };
    let status = response.status();
    let Ok(answer) = response.json::<serde_json::Value>().await else {
        return Verdict::Failed(format!("Slack: an answer that is not JSON (HTTP {})", status.as_u16()));
    };
    match (answer["ok"].as_bool(), answer["revoked"].as_bool(), answer["error"].as_str()) {
        (Some(true), Some(true), _) => Verdict::Revoked,
        (Some(false), _, Some("ratelimited")) => Verdict::Retry {
            after_ms: None,
            reason: "Slack: rate limited".into(),
        },
        (Some(false), _, Some(error)) if DEAD.contains(&error) => Verdict::Refused(format!("Slack: {error}")),
        (Some(false), _, Some(error)) => Verdict::Failed(format!("Slack: {}", error.chars().take(100).collect::<String>())),
        _ => Verdict::Failed(format!("Slack: an answer without ok and revoked (HTTP {})", status.as_u16())),
    }
}
