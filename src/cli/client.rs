//! `keyward keys …` and `keyward projects …`: HTTP clients of a running
//! server, configured by `KEYWARD_URL` and `KEYWARD_TOKEN`.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::EXIT_CLEAN;

#[derive(clap::Args, Clone)]
pub struct Endpoint {
    /// Server URL.
    #[arg(long, env = "KEYWARD_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An admin key (Bearer token).
    #[arg(long, env = "KEYWARD_TOKEN", hide_env_values = true)]
    token: String,
    /// Print the server's JSON instead of a summary.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(clap::Subcommand)]
pub enum KeysCommand {
    /// Create a key; its secret is printed once.
    Create {
        #[command(flatten)]
        endpoint: Endpoint,
        /// The project's id (proj_…).
        #[arg(long)]
        project: String,
        /// Letters, digits and `_`; unique among the project's keys.
        #[arg(long)]
        name: String,
        /// What the key is for.
        #[arg(long, default_value = "")]
        description: String,
        /// `secret` (server-side) or `publishable` (meant to be public).
        #[arg(long, default_value = "secret", value_parser = ["secret", "publishable"])]
        kind: String,
        /// `live` or `test` traffic.
        #[arg(long, default_value = "live", value_parser = ["live", "test"])]
        mode: String,
        /// A scope such as `analytics:read` (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Expiry as RFC 3339, e.g. 2027-01-01T00:00:00Z.
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// List a project's keys (prefix and last four only).
    List {
        #[command(flatten)]
        endpoint: Endpoint,
        /// The project's id (proj_…).
        #[arg(long)]
        project: String,
    },
    /// Show one key: everything but its secret.
    Get {
        #[command(flatten)]
        endpoint: Endpoint,
        /// The key's id (key_…).
        key_id: String,
    },
    /// Revoke a key now; a revoked key never verifies again.
    Revoke {
        #[command(flatten)]
        endpoint: Endpoint,
        /// The key's id (key_…).
        key_id: String,
        /// Why, for the audit log.
        #[arg(long, default_value = "manual", value_parser = ["manual", "leaked", "expired", "rotated"])]
        reason: String,
    },
    /// Replace a key; the old one stops now or after --overlap seconds.
    Rotate {
        #[command(flatten)]
        endpoint: Endpoint,
        /// The key's id (key_…).
        key_id: String,
        /// Seconds the old key keeps working (at most 30 days).
        #[arg(long, default_value_t = 0)]
        overlap: u64,
    },
}

#[derive(clap::Subcommand)]
pub enum ProjectsCommand {
    /// Create a project; its default key's and its admin key's secrets are printed once.
    Create {
        #[command(flatten)]
        endpoint: Endpoint,
        /// The project's name.
        name: String,
    },
    /// List the projects the key can reach: its own.
    List {
        #[command(flatten)]
        endpoint: Endpoint,
    },
}

pub fn keys(command: KeysCommand) -> Result<u8> {
    let (endpoint, method, path, body) = match command {
        KeysCommand::Create {
            endpoint,
            project,
            name,
            description,
            kind,
            mode,
            scopes,
            expires_at,
        } => {
            let body =
                json!({"name": name, "description": description, "kind": kind, "mode": mode, "scopes": scopes, "expires_at": expires_at});
            (endpoint, "POST", format!("/v1/projects/{project}/keys"), Some(body))
        }
        KeysCommand::List { endpoint, project } => (endpoint, "GET", format!("/v1/projects/{project}/keys"), None),
        KeysCommand::Get { endpoint, key_id } => (endpoint, "GET", format!("/v1/keys/{key_id}"), None),
        KeysCommand::Revoke { endpoint, key_id, reason } => (
            endpoint,
            "POST",
            format!("/v1/keys/{key_id}/revoke"),
            Some(json!({"reason": reason})),
        ),
        KeysCommand::Rotate { endpoint, key_id, overlap } => (
            endpoint,
            "POST",
            format!("/v1/keys/{key_id}/rotate"),
            Some(json!({"overlap_seconds": overlap})),
        ),
    };
    let response = call(&endpoint, method, &path, body)?;
    print_response(&endpoint, &response);
    Ok(EXIT_CLEAN)
}

pub fn projects(command: ProjectsCommand) -> Result<u8> {
    let (endpoint, method, path, body) = match command {
        ProjectsCommand::Create { endpoint, name } => (endpoint, "POST", "/v1/projects".to_string(), Some(json!({"name": name}))),
        ProjectsCommand::List { endpoint } => (endpoint, "GET", "/v1/projects".to_string(), None),
    };
    let response = call(&endpoint, method, &path, body)?;
    print_response(&endpoint, &response);
    Ok(EXIT_CLEAN)
}

fn call(endpoint: &Endpoint, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let url = format!("{}{path}", endpoint.url.trim_end_matches('/'));
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut request = client.request(method, &url).bearer_auth(&endpoint.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| format!("calling {url}"))?;
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = value["error"]["message"].as_str().unwrap_or("no details");
            bail!("{status}: {message}");
        }
        Ok(value)
    })
}

fn print_response(endpoint: &Endpoint, value: &Value) {
    if endpoint.json {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
        return;
    }
    if let Some(project) = value.get("project") {
        println!(
            "project {} ({})",
            project["id"].as_str().unwrap_or(""),
            project["name"].as_str().unwrap_or("")
        );
    }
    for list in ["keys", "projects"] {
        for item in value[list].as_array().into_iter().flatten() {
            print_item(item);
        }
    }
    for single in ["key", "default_key", "rotated_key", "admin_key"] {
        if let Some(item) = value.get(single) {
            print_item(item);
        }
    }
    if value.get("id").is_some() {
        print_item(value);
    }
    if let Some(secret) = value["secret"].as_str() {
        println!("secret (shown once, store it now): {secret}");
    }
    if let Some(secret) = value["admin_secret"].as_str() {
        println!("the new project's admin key (shown once; use it to manage this project): {secret}");
    }
}

fn print_item(item: &Value) {
    let s = |field: &str| item[field].as_str().unwrap_or("").to_string();
    if item.get("last4").is_some() {
        let scopes: Vec<&str> = item["scopes"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        println!(
            "{}  {:<24} {}…{}  {:<4} {:<8} [{}]",
            s("id"),
            s("name"),
            s("prefix"),
            s("last4"),
            s("mode"),
            s("status"),
            scopes.join(", ")
        );
    } else {
        println!("{}  {}", s("id"), s("name"));
    }
}
