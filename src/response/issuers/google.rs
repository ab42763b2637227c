//! Google OAuth: `POST {oauth}/revoke` with the form `token=<token>` (an
//! access token `ya29.…` or a refresh token `1//…`) and no credentials.
//! 200 means revoked; 400 `{"error": "invalid_token"}` that Google does not
//! know it (or it expired).

use super::{answer, unexpected, url, Verdict};

pub async fn revoke(client: &reqwest::Client, oauth: &str, token: &str) -> Verdict {
    let request = client.post(url(oauth, "revoke")).form(&[("token", token)]);
    let response = match answer("Google", request).await {
        Ok(response) => response,
        Err(verdict) => return verdict,
    };
    let status = response.status();
    if status.is_success() {
        return Verdict::Revoked;
    }
    if status == reqwest::StatusCode::BAD_REQUEST {
        let error = response
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string));
        return match error.as_deref() {
            Some("invalid_token") => Verdict::Refused("Google: invalid_token".into()),
            Some(other) => Verdict::Failed(format!("Google: {}", other.chars().take(100).collect::<String>())),
            None => unexpected("Google", status),
        };
    }
    unexpected("Google", status)
}
