//! Dropbox: `POST {api}/2/auth/token/revoke` with the token as its own
//! bearer and no arguments; 200 means revoked, 401 that it is not valid.

use super::{bearer_call, url, Verdict};

pub async fn revoke(client: &reqwest::Client, api: &str, token: &str) -> Verdict {
    bearer_call("Dropbox", client.post(url(api, "2/auth/token/revoke")).bearer_auth(token)).await
}
