//! Buildkite: `DELETE {api}/v2/access-token` with the token as its own
//! bearer; 204 means revoked, 401 that it is not valid.

use super::{bearer_call, url, Verdict};

pub async fn revoke(client: &reqwest::Client, api: &str, token: &str) -> Verdict {
    bearer_call("Buildkite", client.delete(url(api, "v2/access-token")).bearer_auth(token)).await
}
