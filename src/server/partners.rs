//! `POST /partners/github/secret-scanning` and
//! `POST /partners/gitlab/secret-detection`: signature first, then the
//! batch, each report through the leak response. The answer goes out after
//! every report's incident, revocation and alerts are committed.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;

use super::{AppError, AppState};
use crate::response::partners::{token_hash, Label, PartnerKeys, Provider, Report, SignatureError};
use crate::store::Place;

/// Largest partner request body: GitHub batches, but never this much.
pub const MAX_PARTNER_BODY: usize = 1 << 20;
/// Most reports one request may carry.
const MAX_REPORTS: usize = 1000;

/// GitHub's secret-scanning partner protocol: a signed batch of reports.
#[utoipa::path(post, path = "/partners/github/secret-scanning",
    params(("GITHUB-PUBLIC-KEY-IDENTIFIER" = String, Header), ("GITHUB-PUBLIC-KEY-SIGNATURE" = String, Header)),
    request_body(content = Vec<Object>, description = "`[{token, type, url, source}]`"),
    responses((status = 200, description = "`[{token_hash, token_type, label}]`", body = Vec<Object>), super::error::Errors))]
pub async fn github(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Json<Vec<Label>>, AppError> {
    let keys = s.github_keys.clone();
    handle(&s, Provider::GitHub, keys.as_deref(), &headers, &body).await
}

/// GitLab's secret-detection partner protocol, the same shape as GitHub's.
#[utoipa::path(post, path = "/partners/gitlab/secret-detection",
    params(("Gitlab-Public-Key-Identifier" = String, Header), ("Gitlab-Public-Key-Signature" = String, Header)),
    request_body(content = Vec<Object>, description = "`[{token, type, url, source}]`"),
    responses((status = 200, description = "`[{token_hash, token_type, label}]`", body = Vec<Object>), super::error::Errors))]
pub async fn gitlab(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Json<Vec<Label>>, AppError> {
    let keys = s.gitlab_keys.clone();
    handle(&s, Provider::GitLab, keys.as_deref(), &headers, &body).await
}

async fn handle(
    s: &AppState,
    provider: Provider,
    keys: Option<&PartnerKeys>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Json<Vec<Label>>, AppError> {
    let keys = keys.ok_or_else(|| {
        AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_configured",
            "no public keys URL is configured for this provider",
        )
    })?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(key_id), Some(signature)) = (header(provider.key_id_header()), header(provider.signature_header())) else {
        return Err(signature_error(SignatureError::MissingHeaders));
    };
    keys.verify(key_id, signature, body).await.map_err(signature_error)?;
    let reports: Vec<Report> = super::parse_json(body)?;
    if reports.is_empty() {
        return Err(AppError::invalid("the report array is empty"));
    }
    if reports.len() > MAX_REPORTS {
        return Err(AppError::too_large());
    }
    let mut labels = Vec::with_capacity(reports.len());
    for report in &reports {
        let place = place_from_url(provider.source_kind(), &report.url, &report.source);
        let outcome = s.responder.report(&report.token, &place).await?;
        labels.push(Label {
            token_hash: token_hash(&report.token),
            token_type: report.token_type.clone(),
            label: if outcome.is_true_positive() {
                "true_positive"
            } else {
                "false_positive"
            },
        });
    }
    s.responder.wake_alerts();
    Ok(Json(labels))
}

fn signature_error(e: SignatureError) -> AppError {
    match e {
        SignatureError::KeysUnavailable(_) => {
            tracing::warn!(error = %e, "partner keys unavailable");
            AppError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the provider's public keys are unavailable; retry later",
            )
        }
        other => AppError::new(StatusCode::UNAUTHORIZED, "bad_signature", other.to_string()),
    }
}

/// Reads repository, commit, path and line out of a GitHub blob URL
/// (`…/owner/repo/blob/<sha>/path#L12`) or a GitLab one (`…/-/raw/<sha>/path`).
pub fn place_from_url(source_kind: &str, url: &str, source: &str) -> Place {
    let mut place = Place {
        source_kind: if source.is_empty() {
            source_kind.to_string()
        } else {
            format!("{source_kind}:{source}")
        },
        url: url.chars().take(2000).collect(),
        ..Place::default()
    };
    let (without_fragment, fragment) = url.split_once('#').unwrap_or((url, ""));
    place.line = fragment
        .strip_prefix('L')
        .and_then(|l| l.split('-').next())
        .and_then(|l| l.parse().ok());
    let Some(after_host) = without_fragment
        .split_once("://")
        .map(|(_, rest)| rest)
        .and_then(|r| r.split_once('/'))
        .map(|(_, path)| path)
    else {
        return place;
    };
    for marker in ["/-/raw/", "/-/blob/", "/blob/", "/raw/"] {
        if let Some((repository, rest)) = after_host.split_once(marker) {
            let (commit, path) = rest.split_once('/').unwrap_or((rest, ""));
            place.repository = repository.to_string();
            place.commit_sha = commit.to_string();
            place.path = path.to_string();
            break;
        }
    }
    place
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! t {
        ($name:ident, $url:expr, $expected:expr) => {
            #[test]
            fn $name() {
                let p = place_from_url("x", $url, "");
                assert_eq!(
                    (p.repository.as_str(), p.commit_sha.as_str(), p.path.as_str(), p.line),
                    $expected
                );
            }
        };
    }

    t!(
        github_blob,
        "https://github.com/octocat/Hello-World/blob/12345600b9cbe38a/foo/bar.txt",
        ("octocat/Hello-World", "12345600b9cbe38a", "foo/bar.txt", None)
    );
    t!(
        github_line,
        "https://github.com/o/r/blob/abc/a.env#L7",
        ("o/r", "abc", "a.env", Some(7))
    );
    t!(
        gitlab_raw,
        "https://gitlab.example.com/group/repo/-/raw/abcdef/src/x.java",
        ("group/repo", "abcdef", "src/x.java", None)
    );
    t!(not_a_blob, "https://gist.github.com/u/123", ("", "", "", None));
    t!(not_a_url, "nonsense", ("", "", "", None));
}
