//! HashiCorp Vault: `POST {addr}/v1/auth/token/revoke-self` with the token
//! as `X-Vault-Token`. A Vault token does not say which server issued it,
//! so it is offered to each address the deployment lists, and to no other:
//! a token sent to an unknown server would leak a second time.

use super::{answer, unexpected, url, Verdict};

pub async fn revoke(client: &reqwest::Client, addrs: &[String], token: &str) -> Verdict {
    let mut retry = None;
    for addr in addrs {
        match revoke_at(client, addr, token).await {
            Verdict::Revoked => return Verdict::Revoked,
            Verdict::Refused(_) => {}
            failed @ Verdict::Failed(_) => return failed,
            wait @ Verdict::Retry { .. } => retry = Some(wait),
        }
    }
    retry.unwrap_or_else(|| Verdict::Refused("no configured Vault server knows the token".into()))
}

async fn revoke_at(client: &reqwest::Client, addr: &str, token: &str) -> Verdict {
    let request = client.post(url(addr, "v1/auth/token/revoke-self")).header("X-Vault-Token", token);
    let response = match answer("Vault", request).await {
        Ok(response) => response,
        Err(verdict) => return verdict,
    };
    let status = response.status();
    match status.as_u16() {
        200..=299 => Verdict::Revoked,
        401 | 403 => Verdict::Refused(format!("Vault: permission denied (HTTP {})", status.as_u16())),
        _ => unexpected("Vault", status),
    }
}
