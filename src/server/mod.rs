//! HTTP: the REST API, verify and the OpenAPI document, as one
//! `app(state) -> Router` that tests drive over a real listener.
//!
//! Handlers are thin: they parse, call the key service and shape JSON.
//! Request bodies are read as bytes under a size limit and parsed here, so
//! malformed JSON (400), wrong types (422) and oversized bodies (413) each
//! get a clear error and change nothing.

mod api;
pub mod client;
pub mod console;
mod dto;
mod error;
mod leaks;
pub mod limits;
mod openapi;
mod partners;
mod status;
mod webhooks;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
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

/// What every handler reaches. axum clones the state for each request and
/// again for each extractor, so it is one shared pointer: a clone is one
/// reference count, whatever the server is made of.
#[derive(Clone)]
pub struct AppState(Arc<ServerParts>);

impl std::ops::Deref for AppState {
    type Target = ServerParts;

    fn deref(&self) -> &ServerParts {
        &self.0
    }
}

/// The parts a server is made of, handed to [`app`].
pub struct ServerParts {
    pub service: Arc<KeyService>,
    pub responder: Arc<LeakResponder>,
    /// `None` when no keys URL is configured: the endpoint answers 503.
    pub github_keys: Option<Arc<PartnerKeys>>,
    pub gitlab_keys: Option<Arc<PartnerKeys>>,
    pub webhooks: Webhooks,
    pub console: Arc<console::Console>,
    pub limits: Arc<limits::RateLimits>,
    /// Peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Arc<client::TrustedProxies>,
}

/// Builds a router from `method "path" => handler` lines and lists the same
/// routes in a constant, so that no route exists which the authorization
/// table test does not know of.
macro_rules! routes {
    ($list:ident, $router:ident, [$($method:ident $path:literal => $handler:expr),* $(,)?]) => {
        /// Every (method, path) this part of the server answers.
        pub const $list: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        pub(crate) fn $router() -> axum::Router<$crate::server::AppState> {
            axum::Router::new()$(.route($path, axum::routing::$method($handler)))*
        }
    };
}
pub(crate) use routes;

routes!(API_ROUTES, api_routes, [
    get "/" => api::index,
    post "/v1/projects" => api::create_project,
    get "/v1/projects" => api::list_projects,
    get "/v1/projects/{project_id}" => api::get_project,
    post "/v1/projects/{project_id}/keys" => api::create_key,
    get "/v1/projects/{project_id}/keys" => api::list_keys,
    get "/v1/projects/{project_id}/usage" => api::usage,
    post "/v1/projects/{project_id}/service-accounts" => api::create_service_account,
    get "/v1/projects/{project_id}/service-accounts" => api::list_service_accounts,
    delete "/v1/projects/{project_id}/service-accounts/{account_id}" => api::delete_service_account,
    get "/v1/projects/{project_id}/entitlements" => api::list_entitlements,
    put "/v1/projects/{project_id}/entitlements/{product}" => api::set_entitlement,
    post "/v1/projects/{project_id}/members" => api::add_member,
    get "/v1/projects/{project_id}/members" => api::list_members,
    delete "/v1/projects/{project_id}/members/{user_id}" => api::remove_member,
    get "/v1/projects/{project_id}/audit" => api::audit,
    get "/v1/projects/{project_id}/audit/export" => api::audit_export,
    get "/v1/projects/{project_id}/incidents" => api::incidents,
    put "/v1/projects/{project_id}/alert-settings" => api::set_alert_settings,
    get "/v1/projects/{project_id}/alert-settings" => api::alert_settings,
    post "/v1/keys/verify" => api::verify,
    get "/v1/keys/{key_id}" => api::get_key,
    patch "/v1/keys/{key_id}" => api::update_key,
    post "/v1/keys/{key_id}/revoke" => api::revoke_key,
    post "/v1/keys/{key_id}/rotate" => api::rotate_key,
    get "/v1/openapi.json" => openapi::document,
    get "/v1/sources" => status::sources,
    post "/v1/sightings" => leaks::report,
    get "/v1/incidents" => leaks::incidents,
    put "/v1/alert-settings" => leaks::set_alert_settings,
    get "/v1/alert-settings" => leaks::alert_settings,
    get "/metrics" => status::metrics,
    get "/healthz" => api::healthz,
    get "/readyz" => api::readyz,
]);

/// An import carries up to 1,000 keys: more than the API's usual limit.
pub const MAX_IMPORT_BODY: usize = 1 << 20;

routes!(IMPORT_ROUTES, import_routes, [
    post "/v1/projects/{project_id}/keys/import" => api::import_keys,
]);

routes!(PARTNER_ROUTES, partner_routes, [
    post "/partners/github/secret-scanning" => partners::github,
    post "/partners/gitlab/secret-detection" => partners::gitlab,
]);

routes!(CODE_HOST_ROUTES, code_host_routes, [
    post "/webhooks/github" => webhooks::github,
    post "/webhooks/gitlab" => webhooks::gitlab,
]);

/// Every route of the server, as (lowercase method, path template).
pub fn all_routes() -> Vec<(&'static str, &'static str)> {
    [API_ROUTES, IMPORT_ROUTES, PARTNER_ROUTES, CODE_HOST_ROUTES, console::CONSOLE_ROUTES].concat()
}

pub fn app(parts: ServerParts) -> Router {
    let state = AppState(Arc::new(parts));
    let api = api_routes()
        .merge(console::routes())
        .layer(axum::middleware::from_fn(refuse_declared_over::<MAX_BODY>))
        .layer(DefaultBodyLimit::max(MAX_BODY));
    let imports = import_routes()
        .layer(axum::middleware::from_fn(refuse_declared_over::<MAX_IMPORT_BODY>))
        .layer(DefaultBodyLimit::max(MAX_IMPORT_BODY));
    let partner_reports = partner_routes()
        .layer(axum::middleware::from_fn(refuse_declared_over::<{ partners::MAX_PARTNER_BODY }>))
        .layer(DefaultBodyLimit::max(partners::MAX_PARTNER_BODY));
    let code_hosts = code_host_routes()
        .layer(axum::middleware::from_fn(refuse_declared_over::<MAX_WEBHOOK_BODY>))
        .layer(DefaultBodyLimit::max(MAX_WEBHOOK_BODY));
    api.merge(imports)
        .merge(partner_reports)
        .merge(code_hosts)
        .fallback(api::not_found)
        // After every merge: it reaches only the routes already added.
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(axum::middleware::from_fn(refuse_nul_in_url))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_to_500))
        .layer(axum::middleware::from_fn_with_state(state.trusted_proxies.clone(), client::resolve))
        .layer(axum::middleware::from_fn(request_id))
        .with_state(state)
}

/// A handler that panics gets a 500 JSON error, never a dropped
/// connection; the panic is counted in `/metrics`. Its message is not sent.
fn panic_to_500(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    crate::metrics::Metrics::add(&crate::metrics::METRICS.http_panics, 1);
    tracing::error!("a request handler panicked");
    axum::response::IntoResponse::into_response(AppError::internal())
}

/// A `%00` in the path or query would reach lookups and filters as a NUL
/// character; no id, name or filter holds one, so it is refused up front.
async fn refuse_nul_in_url(req: Request, next: axum::middleware::Next) -> axum::response::Response {
    let path_and_query = req.uri().path_and_query().map_or("", |pq| pq.as_str());
    if memchr::memmem::find(path_and_query.as_bytes(), b"%00").is_some() {
        return axum::response::IntoResponse::into_response(AppError::malformed("the URL must not contain NUL (%00)"));
    }
    next.run(req).await
}

/// Gives every request an id (the caller's `X-Request-Id` when it is short
/// and printable, else a new ULID), runs it inside a tracing span that
/// carries the id, returns the id in `X-Request-Id`, and logs the outcome
/// (at debug for verify and the probes).
/// Only the path is logged: no query string, no header, no body.
async fn request_id(req: Request, next: axum::middleware::Next) -> axum::response::Response {
    use tracing::Instrument;
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| ulid::Ulid::new().to_string(), str::to_string);
    // Verify is the hot path, and probes are many: metrics count them, and
    // no line is written per call at the default level. Every other
    // request is logged at info.
    let hot = matches!(req.uri().path(), "/v1/keys/verify" | "/healthz" | "/readyz" | "/metrics");
    let span = if hot {
        tracing::debug_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
    } else {
        tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
    };
    let started = std::time::Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    span.in_scope(|| {
        let status = response.status().as_u16();
        let ms = started.elapsed().as_secs_f64() * 1e3;
        if hot {
            tracing::debug!(status, ms, "request");
        } else {
            tracing::info!(status, ms, "request");
        }
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

    async fn from_request(req: Request, _: &S) -> Result<Self, AppError> {
        parse_json(&body_bytes(req).await?).map(JsonBody)
    }
}

/// The whole body, under the route's size limit. A small body arrives as
/// one frame and is taken as it is: collecting it took a tenth of the
/// verify handler's time.
pub(crate) async fn body_bytes(req: Request) -> Result<axum::body::Bytes, AppError> {
    use axum::body::HttpBody;
    use axum::RequestExt;
    use http_body_util::BodyExt;
    let mut body = req.into_limited_body();
    let first = match body.frame().await {
        None => return Ok(axum::body::Bytes::new()),
        Some(frame) => frame.map_err(|_| AppError::too_large())?.into_data().unwrap_or_default(),
    };
    if body.is_end_stream() {
        return Ok(first);
    }
    let rest = body.collect().await.map_err(|_| AppError::too_large())?.to_bytes();
    Ok([first, rest].concat().into())
}

pub(crate) fn parse_json<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, AppError> {
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
    // Built once: making a searcher costs more than searching a verify body.
    static ESCAPED_NUL: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"u0000"));
    ESCAPED_NUL.find_iter(bytes).any(|at| {
        let backslashes = bytes[..at].iter().rev().take_while(|&&b| b == b'\\').count();
        backslashes % 2 == 1
    })
}

/// A query string parsed into `T`; a bad one gets the JSON error every
/// other bad input gets (422), not axum's plain-text rejection.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Params(value))
            .map_err(|e| AppError::invalid(e.body_text()))
    }
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
        Ok(Authed(caller.with_ip(peer(&parts.extensions))))
    }
}

/// The client's address (see [`client`]) as a limiter key and for the
/// audit log; empty when unknown.
pub(crate) fn peer(extensions: &axum::http::Extensions) -> String {
    client::ClientIp::of(extensions).map(|ip| ip.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_is_counted() {
        async fn boom() -> &'static str {
            panic!("a handler bug")
        }
        let router: Router = Router::new()
            .route("/boom", axum::routing::get(boom))
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_to_500));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let before = crate::metrics::Metrics::get(&crate::metrics::METRICS.http_panics);
        for _ in 0..2 {
            let response = reqwest::get(format!("http://{addr}/boom")).await.expect("the connection stays up");
            assert_eq!(response.status(), 500);
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "internal");
            assert!(!body.to_string().contains("handler bug"), "the panic message is not sent");
        }
        assert!(crate::metrics::Metrics::get(&crate::metrics::METRICS.http_panics) >= before + 2);
    }

    #[tokio::test]
    async fn a_body_is_read_whole_in_one_frame_or_several() {
        let frames = ["{\"key\":", "\"kw_sk", "\"}"].map(|f| Ok::<_, std::io::Error>(axum::body::Bytes::from_static(f.as_bytes())));
        let streamed = Request::new(axum::body::Body::from_stream(futures_util::stream::iter(frames)));
        assert_eq!(body_bytes(streamed).await.unwrap(), "{\"key\":\"kw_sk\"}");
        let whole = Request::new(axum::body::Body::from("{}"));
        assert_eq!(body_bytes(whole).await.unwrap(), "{}");
        let empty = Request::new(axum::body::Body::empty());
        assert!(body_bytes(empty).await.unwrap().is_empty());
    }
}
