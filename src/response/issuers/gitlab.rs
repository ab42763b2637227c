//! GitLab: a personal access token revokes itself with
//! `DELETE {api}/personal_access_tokens/self`, sent as its own
//! `PRIVATE-TOKEN` (GitLab 15.0 and later). Other kinds (deploy, runner,
//! trigger, feed tokens …) can only be revoked by an administrator of a
//! self-managed instance: `DELETE {api}/admin/token` with `{"token": …}`,
//! when such a token is configured.

use super::{answer, unexpected, url, Endpoints, Verdict};

fn revokes_itself(token: &str) -> bool {
    token.starts_with("glpat-")
}

pub fn unsupported(endpoints: &Endpoints, token: &str) -> Option<String> {
    (!revokes_itself(token) && endpoints.gitlab_admin_token.is_none())
        .then(|| "GitLab revokes this kind of token only with an administrator's token ([third_party] gitlab_admin_token)".into())
}

pub async fn revoke(client: &reqwest::Client, endpoints: &Endpoints, token: &str) -> Verdict {
    let request = match (&endpoints.gitlab_admin_token, revokes_itself(token)) {
        (_, true) => client
            .delete(url(&endpoints.gitlab_api, "personal_access_tokens/self"))
            .header("PRIVATE-TOKEN", token),
        (Some(admin), false) => client
            .delete(url(&endpoints.gitlab_api, "admin/token"))
            .header("PRIVATE-TOKEN", admin)
            .json(&serde_json::json!({ "token": token })),
        (None, false) => return Verdict::Failed("no GitLab administrator token is configured".into()),
    };
    let response = match answer("GitLab", request).await {
        Ok(response) => response,
        Err(verdict) => return verdict,
    };
    let status = response.status();
    if status.is_success() {
        return Verdict::Revoked;
    }
    match (status.as_u16(), revokes_itself(token)) {
        (401 | 403, true) => Verdict::Refused(format!("GitLab: the token is not valid (HTTP {})", status.as_u16())),
        (404 | 422, false) => Verdict::Refused(format!("GitLab does not know the token (HTTP {})", status.as_u16())),
        (401 | 403, false) => Verdict::Failed(format!("GitLab refused the administrator token (HTTP {})", status.as_u16())),
        _ => unexpected("GitLab", status),
    }
}
