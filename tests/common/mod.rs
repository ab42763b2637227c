//! A real server on a loopback port, on SQLite in a temp dir or on a fresh
//! PostgreSQL database, with a bootstrap admin key.

#![allow(dead_code)]

pub mod fakes;
pub mod hosts;
pub mod issuers;
pub mod pushes;

use std::sync::Arc;

use keyward::keys::fingerprint::Fingerprinter;
use keyward::keys::scopes::Catalog;
use keyward::server::{app, ServerParts};
use keyward::service::KeyService;
use keyward::store::Store;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Optional outside services the server talks to.
#[derive(Default, Clone)]
pub struct Setup {
    pub github_keys_url: Option<String>,
    pub gitlab_keys_url: Option<String>,
    pub smtp_url: Option<String>,
    pub webhooks: keyward::server::Webhooks,
    pub limits: Option<Arc<keyward::server::limits::RateLimits>>,
    /// Refuse internal alert targets, as a deployment does by default;
    /// tests leave them allowed so that fakes on loopback receive alerts.
    pub deny_private_targets: bool,
    pub trusted_proxies: Vec<String>,
    /// Other issuers' tokens: policy and where the issuers are. A
    /// revocation worker runs when set.
    pub third_party: Option<keyward::response::third_party::ThirdPartySettings>,
}

pub struct Server {
    pub responder: Arc<keyward::response::LeakResponder>,
    pub base: String,
    pub admin: String,
    pub project: String,
    pub service: Arc<KeyService>,
    pub http: reqwest::Client,
    pub sqlite_dir: Option<tempfile::TempDir>,
    pub database_url: String,
}

/// A fresh, empty PostgreSQL database, or `None` (with a note) when
/// `DATABASE_URL` is not set.
pub async fn postgres_database() -> Option<String> {
    let Ok(admin_url) = std::env::var("DATABASE_URL") else {
        eprintln!("skipped: DATABASE_URL is not set, PostgreSQL not tested");
        return None;
    };
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&admin_url).await.expect("DATABASE_URL answers");
    let name = format!("kwtest_{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(b, _)| b).to_string();
    Some(format!("{base}/{name}"))
}

impl Server {
    /// `None` when the backend is PostgreSQL and none is configured.
    pub async fn start(backend: Backend) -> Option<Server> {
        Server::start_with(backend, Setup::default()).await
    }

    /// With partner key endpoints, SMTP and a running alert worker.
    pub async fn start_with(backend: Backend, setup: Setup) -> Option<Server> {
        let (url, dir) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                (format!("sqlite://{}", dir.path().join("keyward.db").display()), Some(dir))
            }
            Backend::Postgres => (postgres_database().await?, None),
        };
        let store = Store::open(&url).await.expect("store opens");
        let outbound = keyward::service::outbound::OutboundPolicy::from_setting(!setup.deny_private_targets);
        let service = Arc::new(
            KeyService::new(store, Fingerprinter::new(&[7u8; 32]).unwrap(), Catalog::default(), "kw")
                .unwrap()
                .with_outbound(outbound)
                .with_email_alerts(setup.smtp_url.is_some()),
        );
        let (project, issued, _) = service.bootstrap("owner@example.com", "first").await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut responder = keyward::response::LeakResponder::new(service.clone());
        if let Some(settings) = setup.third_party.clone() {
            responder = responder.with_third_party(settings);
        }
        let responder = Arc::new(responder);
        if setup.third_party.is_some() {
            tokio::spawn(responder.revocation_worker().run());
        }
        let email = keyward::response::alerts::EmailSettings {
            smtp_url: setup.smtp_url.clone(),
            from: "keyward@example.com".into(),
        };
        let worker =
            keyward::response::alerts::AlertWorker::new(service.store().clone(), email, responder.alert_signal()).with_outbound(outbound);
        tokio::spawn(worker.run());
        let keys = |url: &Option<String>| url.clone().map(|u| Arc::new(keyward::response::partners::PartnerKeys::new(u)));
        let router = app(ServerParts {
            service: service.clone(),
            responder: responder.clone(),
            github_keys: keys(&setup.github_keys_url),
            gitlab_keys: keys(&setup.gitlab_keys_url),
            webhooks: setup.webhooks.clone(),
            console: Default::default(),
            limits: setup.limits.clone().unwrap_or_default(),
            trusted_proxies: Arc::new(keyward::server::client::TrustedProxies::parse(&setup.trusted_proxies).unwrap()),
        });
        tokio::spawn(async move {
            axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
                .await
                .unwrap();
        });
        Some(Server {
            responder,
            base: format!("http://{addr}"),
            admin: issued.secret.expose().to_string(),
            project: project.id,
            service,
            http: reqwest::Client::new(),
            sqlite_dir: dir,
            database_url: url,
        })
    }

    /// A request with `token` as Bearer; returns status and JSON body.
    pub async fn call(&self, token: Option<&str>, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", self.base),
        );
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(Some(&self.admin), method, path, body).await
    }

    /// Creates a key in the first project; returns (id, secret).
    pub async fn create_key(&self, body: Value) -> (String, String) {
        let (status, created) = self.admin("POST", &format!("/v1/projects/{}/keys", self.project), Some(body)).await;
        assert_eq!(status, 201, "{created}");
        (
            created["key"]["id"].as_str().unwrap().to_string(),
            created["secret"].as_str().unwrap().to_string(),
        )
    }

    pub async fn verify(&self, body: Value) -> Value {
        let (status, v) = self.call(None, "POST", "/v1/keys/verify", Some(body)).await;
        assert_eq!(status, 200, "{v}");
        v
    }

    pub async fn code(&self, key: &str, scope: Option<&str>, mode: Option<&str>) -> String {
        let v = self.verify(json!({"key": key, "scope": scope, "mode": mode})).await;
        v["code"].as_str().unwrap().to_string()
    }
}

/// Runs one statement straight against a test server's database, for
/// states the API refuses to make (rows written before a rule existed).
pub async fn sql(url: &str, statement: &str) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::raw_sql(statement).execute(&mut conn).await.unwrap();
}

/// The first column of every row a query returns, as text.
pub async fn sql_texts(url: &str, query: &str) -> Vec<String> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::query_scalar(query).fetch_all(&mut conn).await.unwrap()
}

/// POSTs headers that declare a `length`-byte body, sends none of it, and
/// returns the status: proves the server refuses by the declared size
/// without reading (or buffering) the body.
pub fn post_declaring_length(base: &str, path: &str, headers: &[(&str, &str)], length: usize) -> u16 {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let mut request = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = [0u8; 64];
    let n = stream.read(&mut response).unwrap();
    status_of(&response[..n])
}

/// The status code of a raw HTTP/1.1 response, or 0 if there is none.
pub fn status_of(response: &[u8]) -> u16 {
    String::from_utf8_lossy(response)
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// Runs an async test body on both backends as two tests.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let server = common::Server::start(common::Backend::Sqlite).await.unwrap();
                ($body)(server).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(server) = common::Server::start(common::Backend::Postgres).await {
                    ($body)(server).await;
                }
            }
        }
    };
}

/// Like `both_backends!`, with a setup function returning the fixture.
#[macro_export]
macro_rules! both_backends_with {
    ($name:ident, $setup:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let fixture = $setup(common::Backend::Sqlite).await.unwrap();
                ($body)(fixture).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(fixture) = $setup(common::Backend::Postgres).await {
                    ($body)(fixture).await;
                }
            }
        }
    };
}
