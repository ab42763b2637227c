//! HTTP: the REST API, verify and the OpenAPI document, as one
//! `app(state) -> Router` that tests drive over a real listener.
//!
//! Handlers are thin: they parse, call the key service and shape JSON.
//! Request bodies are read as bytes under a size limit and parsed here, so
//! malformed JSON (400), wrong types (422) and oversized bodies (413) each
//! get a clear error and change nothing.

mod api;
pub mod console;
mod dto;
mod error;
pub mod limits;
mod openapi;
mod partners;
mod status;
mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::routing::{get, post, put};
use axum::Router;
use serde::de::DeserializeOwned;

pub use dto::rfc3339;
pub use error::AppError;
pub use partners::place_from_url;
pub use webhooks::{Webhooks, MAX_WEBHOOK_BODY};

use crate::response::partners::PartnerKeys;
use crate::response::LeakResponder;
use crate::service::{Caller, KeyService};

/// Largest request body the API reads: keys and projects are small.
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub service: Arc<KeyService>,
    pub responder: Arc<LeakResponder>,
    /// `None` when no keys URL is configured: the endpoint answers 503.
    pub github_keys: Option<Arc<PartnerKeys>>,
    pub gitlab_keys: Option<Arc<PartnerKeys>>,
    pub webhooks: Webhooks,
    pub console: Arc<console::Console>,
    pub limits: Arc<limits::RateLimits>,
}

pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/projects", post(api::create_project).get(api::list_projects))
        .route("/v1/projects/{project_id}", get(api::get_project))
        .route("/v1/projects/{project_id}/keys", post(api::create_key).get(api::list_keys))
        .route("/v1/projects/{project_id}/entitlements", get(api::list_entitlements))
        .route("/v1/projects/{project_id}/entitlements/{product}", put(api::set_entitlement))
        .route("/v1/projects/{project_id}/members", post(api::add_member).get(api::list_members))
        .route("/v1/projects/{project_id}/audit", get(api::audit))
        .route("/v1/projects/{project_id}/audit/export", get(api::audit_export))
        .route("/v1/projects/{project_id}/incidents", get(api::incidents))
        .route(
            "/v1/projects/{project_id}/alert-settings",
            put(api::set_alert_settings).get(api::alert_settings),
        )
        .route("/v1/keys/verify", post(api::verify))
        .route("/v1/keys/{key_id}", get(api::get_key).patch(api::update_key))
        .route("/v1/keys/{key_id}/revoke", post(api::revoke_key))
        .route("/v1/keys/{key_id}/rotate", post(api::rotate_key))
        .route("/v1/openapi.json", get(openapi::document))
        .merge(console::routes())
        .route("/v1/sources", get(status::sources))
        .route("/metrics", get(status::metrics))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .layer(axum::middleware::from_fn(refuse_declared_over::<MAX_BODY>))
        .layer(DefaultBodyLimit::max(MAX_BODY));
    let partner_reports = Router::new()
        .route("/partners/github/secret-scanning", post(partners::github))
        .route("/partners/gitlab/secret-detection", post(partners::gitlab))
        .layer(axum::middleware::from_fn(refuse_declared_over::<{ partners::MAX_PARTNER_BODY }>))
        .layer(DefaultBodyLimit::max(partners::MAX_PARTNER_BODY));
    let code_hosts = Router::new()
        .route("/webhooks/github", post(webhooks::github))
        .route("/webhooks/gitlab", post(webhooks::gitlab))
        .layer(axum::middleware::from_fn(refuse_declared_over::<MAX_WEBHOOK_BODY>))
        .layer(DefaultBodyLimit::max(MAX_WEBHOOK_BODY));
    api.merge(partner_reports)
        .merge(code_hosts)
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn(refuse_nul_in_url))
        .layer(axum::middleware::from_fn(request_id))
        .with_state(state)
}

/// A `%00` in the path or query would reach lookups and filters as a NUL
/// character; no id, name or filter holds one, so it is refused up front.
async fn refuse_nul_in_url(req: Request, next: axum::middleware::Next) -> axum::response::Response {
    let uri = req.uri().to_string();
    if memchr::memmem::find(uri.as_bytes(), b"%00").is_some() {
        return axum::response::IntoResponse::into_response(AppError::malformed("the URL must not contain NUL (%00)"));
    }
    next.run(req).await
}

/// Gives every request an id (the caller's `X-Request-Id` when it is short
/// and printable, else a new ULID), runs it inside a tracing span that
/// carries the id, returns the id in `X-Request-Id`, and logs the outcome.
/// Only the path is logged: no query string, no header, no body.
async fn request_id(req: Request, next: axum::middleware::Next) -> axum::response::Response {
    use tracing::Instrument;
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| ulid::Ulid::new().to_string(), str::to_string);
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    let started = std::time::Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            ms = started.elapsed().as_secs_f64() * 1e3,
            "request"
        );
    });
    if let Ok(value) = axum::http::HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// Answers 413 from the declared `Content-Length` alone, before a byte of
/// the body is read: an oversized upload costs neither memory nor time.
/// Bodies without a declared length are still cut off at the same limit
/// while they stream in.
async fn refuse_declared_over<const LIMIT: usize>(req: Request, next: axum::middleware::Next) -> axum::response::Response {
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > LIMIT as u64) {
        return axum::response::IntoResponse::into_response(AppError::too_large());
    }
    next.run(req).await
}

/// A JSON body parsed from raw bytes, whatever the content type says.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| AppError::too_large())?;
        parse_json(&bytes).map(JsonBody)
    }
}

pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    if bytes.is_empty() {
        return Err(AppError::malformed("a JSON body is required"));
    }
    if escapes_nul(bytes) {
        return Err(AppError::invalid("strings must not contain NUL characters"));
    }
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => AppError::invalid(e.to_string()),
        _ => AppError::malformed(format!("malformed JSON: {e}")),
    })
}

/// Whether the JSON text escapes U+0000 (`\u0000` after an odd run of
/// backslashes), which PostgreSQL text cannot store. Read from the bytes,
/// so no nesting depth hides one.
fn escapes_nul(bytes: &[u8]) -> bool {
    memchr::memmem::find_iter(bytes, b"u0000").any(|at| {
        let backslashes = bytes[..at].iter().rev().take_while(|&&b| b == b'\\').count();
        backslashes % 2 == 1
    })
}

/// The caller behind `Authorization: Bearer <key>`.
pub struct Authed(pub Caller);

impl FromRequestParts<AppState> for Authed {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let token = header
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or_else(|| AppError::unauthenticated("send Authorization: Bearer <keyward key>"))?;
        let caller = state.service.authenticate(token).await?;
        Ok(Authed(caller.with_ip(client_ip(parts))))
    }
}

/// The client's address as a limiter key; empty when unknown.
pub(crate) fn peer(extensions: &axum::http::Extensions) -> String {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
        .unwrap_or_default()
}

fn client_ip(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
        .unwrap_or_default()
}
