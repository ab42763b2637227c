//! Configuration: `keyward.toml`, overridden by environment variables, in
//! turn overridden by flags: the deployment token prefix, the scanner's
//! extra rules, and the server's data directory, database, listen address,
//! pepper and scope catalog.
//!
//! A `keyward.toml` found in the working directory may be part of the
//! checkout being scanned, written by whoever sent the pull request: the
//! rule files it names must lie inside that directory (after resolving
//! symlinks and `..`), and `--no-config` or `KEYWARD_NO_CONFIG=1` ignores it
//! altogether. A file given with `--config` is the user's own and trusted.
//! No error quotes a configuration or rule file's text.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::engine::{RuleError, RuleSet};

/// Read from the working directory when no `--config` is given.
pub const DEFAULT_CONFIG_FILE: &str = "keyward.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Where and what, never the file's text.
    #[error("{path}: invalid TOML at {at}: {message}")]
    Parse { path: PathBuf, at: String, message: String },
    #[error(
        "{config}: rule path {path} is outside {root}; a keyward.toml found in the working directory may only name rule files inside it (pass the file with --config to trust it, or --no-config to ignore it)"
    )]
    Untrusted { config: PathBuf, path: PathBuf, root: PathBuf },

    #[error(transparent)]
    Rules(#[from] RuleError),
    #[error("pepper: {0}")]
    Pepper(String),
    #[error("{0}")]
    Setting(String),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Deployment prefix of issued tokens (`kw` when unset).
    pub prefix: Option<String>,
    /// Where `serve` keeps its SQLite database and generated pepper.
    pub data_dir: Option<PathBuf>,
    /// `postgres://…` to use PostgreSQL instead of the embedded SQLite.
    pub database_url: Option<String>,
    /// Address `serve` listens on.
    pub listen: Option<String>,
    /// A file holding the pepper (hex). Default: `<data_dir>/pepper`.
    pub pepper_file: Option<PathBuf>,
    /// The scope catalog: product -> actions, e.g. `analytics = ["read"]`.
    #[serde(default)]
    pub scopes: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub scan: ScanConfig,
    #[serde(default)]
    pub partners: PartnerConfig,
    #[serde(default)]
    pub alerts: AlertConfig,
    #[serde(default)]
    pub sources: SourcesConfig,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub third_party: ThirdPartyConfig,
}

/// Tokens of other issuers that a source finds: revoke them at their
/// issuer, or only report them (the default), and where the issuers'
/// APIs are. `KEYWARD_THIRD_PARTY_POLICY`, `KEYWARD_THIRD_PARTY_POLICY_<ISSUER>`,
/// `KEYWARD_<ISSUER>_API_URL`, `KEYWARD_VAULT_ADDRS` (comma-separated) and
/// `KEYWARD_GITLAB_ADMIN_TOKEN` override it.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThirdPartyConfig {
    pub policy: Option<crate::response::third_party::Policy>,
    /// One issuer's own policy: `github = "revoke"`, `slack = "report"`.
    #[serde(default)]
    pub issuers: BTreeMap<String, crate::response::third_party::Policy>,
    /// The only Vault servers a leaked Vault token is sent to.
    #[serde(default)]
    pub vault_addrs: Vec<String>,
    pub slack_api_url: Option<String>,
    pub dropbox_api_url: Option<String>,
    pub google_oauth_url: Option<String>,
    pub buildkite_api_url: Option<String>,
    /// A self-managed GitLab administrator's token, for the token kinds
    /// that cannot revoke themselves.
    pub gitlab_admin_token: Option<String>,
}

impl std::fmt::Debug for ThirdPartyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThirdPartyConfig")
            .field("policy", &self.policy)
            .field("issuers", &self.issuers)
            .field("vault_addrs", &self.vault_addrs)
            .field("gitlab_admin_token", &self.gitlab_admin_token.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

/// The HTTP server's view of the network in front of it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Proxies (addresses or CIDR ranges) whose `X-Forwarded-For` names the
    /// client, e.g. `["10.0.0.0/8"]`. Empty: the socket peer is the client.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

/// The daemon's leak sources. Secrets and tokens are better given through
/// the environment (`KEYWARD_GITHUB_WEBHOOK_SECRET`, `KEYWARD_GITHUB_TOKEN`,
/// `KEYWARD_GITLAB_WEBHOOK_SECRET`, `KEYWARD_GITLAB_TOKEN`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcesConfig {
    #[serde(default)]
    pub github: CodeHostConfig,
    #[serde(default)]
    pub gitlab: CodeHostConfig,
    #[serde(default)]
    pub feed: FeedConfig,
    #[serde(default)]
    pub watch: WatchConfig,
    #[serde(default)]
    pub schedule: Vec<crate::sources::schedule::ScheduledRepo>,
}

/// A code host: its webhook secret and the API that reads pushes.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeHostConfig {
    pub webhook_secret: Option<String>,
    /// `https://api.github.com`, `https://ghe.example.com/api/v3`,
    /// `https://gitlab.com/api/v4`...
    pub api_url: Option<String>,
    pub token: Option<String>,
    /// GitHub only: read pushes as this GitHub App, with the private key
    /// (PEM) in `app_key_file`, instead of with `token`.
    pub app_id: Option<u64>,
    pub app_key_file: Option<PathBuf>,
}

/// GitHub's public events feed; off unless `enabled`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    #[serde(default)]
    pub enabled: bool,
    /// Read `GET /events`, every public event on GitHub (default true).
    pub public: Option<bool>,
    #[serde(default)]
    pub orgs: Vec<String>,
    #[serde(default)]
    pub users: Vec<String>,
    /// The shortest wait between polls, e.g. `"60s"` (GitHub may ask for more).
    pub min_interval: Option<String>,
}

/// Local directories rescanned as files in them change.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchConfig {
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// Files larger than this are skipped and logged (default 256 MiB).
    pub max_file_size: Option<ByteSize>,
}

/// Where GitHub's and GitLab's secret-scanning public keys are published.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerConfig {
    pub github_keys_url: Option<String>,
    pub gitlab_keys_url: Option<String>,
}

/// How alert email leaves: an SMTP URL and a sender address.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    pub smtp_url: Option<String>,
    pub from: Option<String>,
    /// Let alert webhooks and Slack URLs point at loopback, link-local or
    /// private addresses (on-premises receivers). Off by default.
    #[serde(default)]
    pub allow_private_targets: bool,
    /// Days before a key expires that its owner and the project's admins
    /// are told (default 7 and 1).
    pub expiry_notice_days: Option<Vec<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanConfig {
    /// More deployment prefixes to look for, e.g. a previous one.
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Extra rule files or directories.
    #[serde(default)]
    pub rules: Vec<PathBuf>,
    /// Files larger than this are skipped and reported: bytes, or a size
    /// such as `"64MiB"` (default 256 MiB).
    pub max_file_size: Option<ByteSize>,
}

/// A size in bytes, written as a number or as text with a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Bytes(u64),
            Text(String),
        }
        match Written::deserialize(d)? {
            Written::Bytes(n) => Ok(ByteSize(n)),
            Written::Text(text) => parse_size(&text).map(ByteSize).map_err(serde::de::Error::custom),
        }
    }
}

/// `1048576`, `"512K"`, `"64MiB"`, `"1G"`, `"2 GB"`: binary units (K, M, G,
/// T, with or without `iB` or `B`), case-insensitive.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let number: u64 = text[..digits]
        .parse()
        .map_err(|_| "a size is a number of bytes, or a number and K, M, G or T".to_string())?;
    let shift = match text[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err("the unit must be K, M, G or T (binary: 1K = 1024 bytes)".to_string()),
    };
    number.checked_mul(1u64 << shift).ok_or_else(|| "the size is too large".to_string())
}

impl Config {
    /// Loads `path`, or `./keyward.toml` when it exists, or the defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => PathBuf::from(DEFAULT_CONFIG_FILE),
            None => return Ok(Config::default()),
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        toml::from_str(&text).map_err(|err| {
            let offset = err.span().map_or(0, |span| span.start.min(text.len()));
            let before = &text.as_bytes()[..offset];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let column = offset - before.iter().rposition(|&b| b == b'\n').map_or(0, |nl| nl + 1) + 1;
            ConfigError::Parse {
                path,
                at: format!("line {line}, column {column}"),
                message: crate::engine::rules::toml_message_without_content(&err),
            }
        })
    }
}

/// Where the rule set comes from: flags first, then the config file.
#[derive(Debug, Default, Clone)]
pub struct RuleSources {
    pub prefixes: Vec<String>,
    pub rule_paths: Vec<PathBuf>,
    pub config: Option<PathBuf>,
    /// Do not read `./keyward.toml` (a file given as `config` still is).
    pub no_config: bool,
    /// Scan with the given rule files only, not the shipped ones.
    pub no_builtin: bool,
}

/// What `keyward scan` takes from flags and configuration.
#[derive(Debug)]
pub struct ScanSettings {
    pub rules: RuleSet,
    pub max_file_bytes: u64,
}

/// The shipped rules, plus extra rule files and deployment prefixes from
/// flags and configuration.
pub fn load_rules(sources: &RuleSources) -> Result<RuleSet, ConfigError> {
    Ok(load_scan(sources)?.rules)
}

/// The rules and limits of a scan. Rule files named by a `keyward.toml`
/// that was found rather than given must lie inside its directory.
pub fn load_scan(sources: &RuleSources) -> Result<ScanSettings, ConfigError> {
    let (config, found) = match &sources.config {
        Some(path) => (Config::load(Some(path))?, None),
        None if sources.no_config => (Config::default(), None),
        None => {
            let found = Path::new(DEFAULT_CONFIG_FILE).is_file().then(|| PathBuf::from(DEFAULT_CONFIG_FILE));
            (Config::load(None)?, found)
        }
    };
    let mut rules = if sources.no_builtin {
        RuleSet::default()
    } else {
        RuleSet::builtin()
    };
    for path in &sources.rule_paths {
        add_rule_path(&mut rules, path, None)?;
    }
    let root = match &found {
        Some(file) => Some(confinement_root(file)?),
        None => None,
    };
    for path in &config.scan.rules {
        let within = found.as_deref().zip(root.as_deref());
        add_rule_path(&mut rules, path, within)?;
    }
    let prefixes = sources.prefixes.iter().chain(config.prefix.iter()).chain(&config.scan.prefixes);
    for prefix in prefixes {
        rules.add_deployment_prefix(prefix)?;
    }
    let max_file_bytes = config
        .scan
        .max_file_size
        .map_or(crate::sources::files::DEFAULT_MAX_FILE_BYTES, |size| size.0);
    Ok(ScanSettings { rules, max_file_bytes })
}

/// The directory a found config is confined to: its own, resolved.
fn confinement_root(config: &Path) -> Result<PathBuf, ConfigError> {
    let dir = config.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    dir.canonicalize().map_err(|source| ConfigError::Read {
        path: dir.to_path_buf(),
        source,
    })
}

/// Adds the rules of `path`, a file or a directory of `*.toml` files.
/// `within` is `(config, root)` when `path` came from an untrusted config:
/// then each file, symlinks resolved, must lie under `root`.
fn add_rule_path(rules: &mut RuleSet, path: &Path, within: Option<(&Path, &Path)>) -> Result<(), ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    if let Some((config, root)) = within {
        confine(config, root, path)?;
    }
    let files = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(read_error)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    for file in files {
        if let Some((config, root)) = within {
            confine(config, root, &file)?;
        }
        let text = read_rule_file(&file)?;
        rules.add_toml(&file.display().to_string(), &text)?;
    }
    Ok(())
}

/// Rule files are small text: a FIFO would block the scan and a sparse
/// file fill memory, so only regular files up to this size are read.
const MAX_RULE_FILE_BYTES: u64 = 4 << 20;

fn read_rule_file(file: &Path) -> Result<String, ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: file.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(file).map_err(read_error)?;
    if !meta.is_file() || meta.len() > MAX_RULE_FILE_BYTES {
        return Err(read_error(std::io::Error::other(format!(
            "not a regular file of at most {} MiB",
            MAX_RULE_FILE_BYTES >> 20
        ))));
    }
    std::fs::read_to_string(file).map_err(read_error)
}

/// Refuses `path` unless, resolved, it lies under `root`. A path that does
/// not resolve is left for the read to report.
fn confine(config: &Path, root: &Path, path: &Path) -> Result<(), ConfigError> {
    let untrusted = || ConfigError::Untrusted {
        config: config.to_path_buf(),
        path: path.to_path_buf(),
        root: root.to_path_buf(),
    };
    match path.canonicalize() {
        Ok(resolved) if resolved.starts_with(root) => Ok(()),
        Ok(_) => Err(untrusted()),
        Err(_) if path.is_absolute() || path.components().any(|c| c == std::path::Component::ParentDir) => Err(untrusted()),
        Err(_) => Ok(()),
    }
}

/// Where the server's data lives, resolved from flags, environment, the
/// config file and defaults, in that order.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub listen: String,
    pub prefix: String,
    pub pepper_file: PathBuf,
    pub github_keys_url: Option<String>,
    pub gitlab_keys_url: Option<String>,
    pub smtp_url: Option<String>,
    pub smtp_from: String,
    /// How long a worker's claim on a job lasts, in milliseconds.
    pub job_lease_ms: i64,
    /// Push jobs that may wait before a signed delivery is shed
    /// (`KEYWARD_WEBHOOK_QUEUE_LIMIT`); `None` for the default.
    pub webhook_queue_limit: Option<i64>,
    pub github: CodeHostSettings,
    pub gitlab: CodeHostSettings,
    /// `None` when the feed is off.
    pub feed: Option<crate::sources::feed::FeedOptions>,
    pub watch_paths: Vec<PathBuf>,
    pub watch_max_file_bytes: u64,
    pub schedule: Vec<crate::sources::schedule::ScheduledRepo>,
    /// Console cookies are always `Secure` (set when TLS ends at a proxy
    /// that does not send `X-Forwarded-Proto`).
    pub secure_cookies: bool,
    /// `KEYWARD_TRUSTED_PROXIES` (comma-separated) or `[server] trusted_proxies`.
    pub trusted_proxies: Vec<String>,
    /// `KEYWARD_ALLOW_PRIVATE_TARGETS=1` or `[alerts] allow_private_targets`.
    pub allow_private_targets: bool,
    /// `KEYWARD_EXPIRY_NOTICE_DAYS=7,1` or `[alerts] expiry_notice_days`.
    pub expiry_notice_days: Vec<i64>,
}

/// A code host as `serve` uses it.
#[derive(Clone, Default)]
pub struct CodeHostSettings {
    pub webhook_secret: Option<String>,
    pub api_url: String,
    pub token: Option<String>,
    /// A GitHub App id and the path of its private key.
    pub app: Option<(u64, PathBuf)>,
}

/// Secrets print as `***`, so a settings dump in a log shows none.
fn debug_code_host(f: &mut std::fmt::Formatter<'_>, secret: bool, api_url: Option<&str>, token: bool) -> std::fmt::Result {
    let hidden = |set: bool| if set { "Some(***)" } else { "None" };
    f.debug_struct("CodeHost")
        .field("webhook_secret", &hidden(secret))
        .field("api_url", &api_url)
        .field("token", &hidden(token))
        .finish()
}

impl std::fmt::Debug for CodeHostSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        debug_code_host(f, self.webhook_secret.is_some(), Some(&self.api_url), self.token.is_some())
    }
}

impl std::fmt::Debug for CodeHostConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        debug_code_host(f, self.webhook_secret.is_some(), self.api_url.as_deref(), self.token.is_some())
    }
}

pub const GITHUB_API_URL: &str = "https://api.github.com";
pub const GITLAB_API_URL: &str = "https://gitlab.com/api/v4";

/// GitHub's published secret-scanning keys; GitLab gives its URL on request.
pub const GITHUB_PARTNER_KEYS_URL: &str = "https://api.github.com/meta/public_keys/secret_scanning";

pub const DEFAULT_DATA_DIR: &str = "keyward-data";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const PEPPER_FILE: &str = "pepper";
const DATABASE_FILE: &str = "keyward.db";

impl ServerSettings {
    /// `data_dir` and `listen` come from flags (already merged with their
    /// environment variables by the caller) or the config file.
    pub fn resolve(config: &Config, data_dir: Option<PathBuf>, listen: Option<String>) -> ServerSettings {
        let data_dir = data_dir
            .or_else(|| config.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let database_url = env_nonempty("DATABASE_URL")
            .or_else(|| config.database_url.clone())
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join(DATABASE_FILE).display()));
        ServerSettings {
            pepper_file: config.pepper_file.clone().unwrap_or_else(|| data_dir.join(PEPPER_FILE)),
            listen: listen
                .or_else(|| config.listen.clone())
                .unwrap_or_else(|| DEFAULT_LISTEN.to_string()),
            prefix: env_nonempty("KEYWARD_PREFIX")
                .or_else(|| config.prefix.clone())
                .unwrap_or_else(|| crate::keys::token::DEFAULT_PREFIX.to_string()),
            github_keys_url: Some(
                env_nonempty("KEYWARD_GITHUB_PARTNER_KEYS_URL")
                    .or_else(|| config.partners.github_keys_url.clone())
                    .unwrap_or_else(|| GITHUB_PARTNER_KEYS_URL.to_string()),
            ),
            gitlab_keys_url: env_nonempty("KEYWARD_GITLAB_PARTNER_KEYS_URL").or_else(|| config.partners.gitlab_keys_url.clone()),
            smtp_url: env_nonempty("KEYWARD_SMTP_URL").or_else(|| config.alerts.smtp_url.clone()),
            smtp_from: env_nonempty("KEYWARD_SMTP_FROM")
                .or_else(|| config.alerts.from.clone())
                .unwrap_or_else(|| "keyward@localhost".to_string()),
            job_lease_ms: env_nonempty("KEYWARD_JOB_LEASE_SECONDS")
                .and_then(|s| s.parse::<i64>().ok())
                .map_or(60_000, |s| s.saturating_mul(1000)),
            webhook_queue_limit: env_nonempty("KEYWARD_WEBHOOK_QUEUE_LIMIT").and_then(|v| v.trim().parse().ok()),
            github: code_host(&config.sources.github, "GITHUB", GITHUB_API_URL),
            gitlab: code_host(&config.sources.gitlab, "GITLAB", GITLAB_API_URL),
            feed: feed_options(&config.sources.feed),
            watch_paths: config.sources.watch.paths.clone(),
            watch_max_file_bytes: config
                .sources
                .watch
                .max_file_size
                .map_or(crate::sources::files::DEFAULT_MAX_FILE_BYTES, |size| size.0),
            schedule: config.sources.schedule.clone(),
            secure_cookies: env_flag("KEYWARD_SECURE_COOKIES"),
            trusted_proxies: env_nonempty("KEYWARD_TRUSTED_PROXIES").map_or_else(
                || config.server.trusted_proxies.clone(),
                |list| list.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
            ),
            allow_private_targets: env_flag("KEYWARD_ALLOW_PRIVATE_TARGETS") || config.alerts.allow_private_targets,
            expiry_notice_days: env_nonempty("KEYWARD_EXPIRY_NOTICE_DAYS")
                .map(|list| list.split(',').filter_map(|d| d.trim().parse().ok()).collect())
                .or_else(|| config.alerts.expiry_notice_days.clone())
                .unwrap_or_else(|| crate::response::expiry::DEFAULT_LEAD_DAYS.to_vec()),
            data_dir,
            database_url,
        }
    }

    /// What to do with other issuers' tokens, from the configuration and
    /// the environment; an unknown policy in the environment is an error.
    pub fn third_party(&self, config: &ThirdPartyConfig) -> Result<crate::response::third_party::ThirdPartySettings, ConfigError> {
        use crate::response::third_party::Policy;
        let policy_from = |name: &str| -> Result<Option<Policy>, ConfigError> {
            env_nonempty(name)
                .map(|v| Policy::parse(&v).ok_or_else(|| ConfigError::Setting(format!("{name} must be report or revoke"))))
                .transpose()
        };
        let mut overrides = config.issuers.clone();
        for revoker in crate::engine::rules::Revoker::ALL {
            let name = format!(
                "KEYWARD_THIRD_PARTY_POLICY_{}",
                revoker.as_str().to_ascii_uppercase().replace('-', "_")
            );
            if let Some(policy) = policy_from(&name)? {
                overrides.insert(revoker.as_str().to_string(), policy);
            }
        }
        if let Some(unknown) = overrides.keys().find(|k| crate::engine::rules::Revoker::parse(k).is_none()) {
            return Err(ConfigError::Setting(format!(
                "[third_party.issuers] names an unknown issuer {unknown:?}"
            )));
        }
        let mut endpoints = crate::response::issuers::Endpoints::public(&self.github.api_url, &self.gitlab.api_url);
        let url = |env: &str, configured: &Option<String>, default: &mut String| {
            if let Some(value) = env_nonempty(env).or_else(|| configured.clone()) {
                *default = value;
            }
        };
        url("KEYWARD_SLACK_API_URL", &config.slack_api_url, &mut endpoints.slack_api);
        url("KEYWARD_DROPBOX_API_URL", &config.dropbox_api_url, &mut endpoints.dropbox_api);
        url("KEYWARD_GOOGLE_OAUTH_URL", &config.google_oauth_url, &mut endpoints.google_oauth);
        url("KEYWARD_BUILDKITE_API_URL", &config.buildkite_api_url, &mut endpoints.buildkite_api);
        endpoints.gitlab_admin_token = env_nonempty("KEYWARD_GITLAB_ADMIN_TOKEN").or_else(|| config.gitlab_admin_token.clone());
        endpoints.vault_addrs = env_nonempty("KEYWARD_VAULT_ADDRS").map_or_else(
            || config.vault_addrs.clone(),
            |list| list.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
        );
        Ok(crate::response::third_party::ThirdPartySettings {
            policy: policy_from("KEYWARD_THIRD_PARTY_POLICY")?
                .or(config.policy)
                .unwrap_or(Policy::Report),
            overrides,
            endpoints,
        })
    }

    /// The database URL without any password, for logs and messages.
    pub fn database_url_for_display(&self) -> String {
        match (self.database_url.find("://"), self.database_url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                let credentials = &self.database_url[scheme + 3..at];
                let user = credentials.split(':').next().unwrap_or("");
                format!("{}{user}:***{}", &self.database_url[..scheme + 3], &self.database_url[at..])
            }
            _ => self.database_url.clone(),
        }
    }

    /// The pepper: `KEYWARD_PEPPER` (hex), else the pepper file, else a new
    /// random one written to the pepper file with mode 0600.
    pub fn pepper(&self) -> Result<Vec<u8>, ConfigError> {
        if let Some(hex_text) = env_nonempty("KEYWARD_PEPPER") {
            return decode_pepper(&hex_text);
        }
        match std::fs::read_to_string(&self.pepper_file) {
            Ok(text) => decode_pepper(text.trim()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.create_pepper(),
            Err(source) => Err(ConfigError::Read {
                path: self.pepper_file.clone(),
                source,
            }),
        }
    }

    /// The pepper being rotated away from: `KEYWARD_PEPPER_PREVIOUS` (hex).
    /// Keys still fingerprinted with it keep verifying, and move to the
    /// current pepper on first use.
    pub fn previous_pepper(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        env_nonempty("KEYWARD_PEPPER_PREVIOUS")
            .map(|hex_text| decode_pepper(&hex_text))
            .transpose()
    }

    fn create_pepper(&self) -> Result<Vec<u8>, ConfigError> {
        let write_error = |source| ConfigError::Write {
            path: self.pepper_file.clone(),
            source,
        };
        if let Some(parent) = self.pepper_file.parent() {
            std::fs::create_dir_all(parent).map_err(write_error)?;
        }
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&self.pepper_file).map_err(write_error)?;
        file.write_all(hex::encode(bytes).as_bytes()).map_err(write_error)?;
        file.sync_all().map_err(write_error)?;
        Ok(bytes.to_vec())
    }
}

fn decode_pepper(hex_text: &str) -> Result<Vec<u8>, ConfigError> {
    let bytes = hex::decode(hex_text).map_err(|_| ConfigError::Pepper("must be hex".into()))?;
    if bytes.len() < crate::keys::fingerprint::MIN_PEPPER_LEN {
        return Err(ConfigError::Pepper(format!(
            "must be at least {} bytes",
            crate::keys::fingerprint::MIN_PEPPER_LEN
        )));
    }
    Ok(bytes)
}

/// `KEYWARD_<HOST>_WEBHOOK_SECRET`, `_API_URL` and `_TOKEN` over the file.
fn code_host(config: &CodeHostConfig, host: &str, default_api: &str) -> CodeHostSettings {
    CodeHostSettings {
        webhook_secret: env_nonempty(&format!("KEYWARD_{host}_WEBHOOK_SECRET")).or_else(|| config.webhook_secret.clone()),
        api_url: env_nonempty(&format!("KEYWARD_{host}_API_URL"))
            .or_else(|| config.api_url.clone())
            .unwrap_or_else(|| default_api.to_string()),
        token: env_nonempty(&format!("KEYWARD_{host}_TOKEN")).or_else(|| config.token.clone()),
        app: env_nonempty(&format!("KEYWARD_{host}_APP_ID"))
            .and_then(|id| id.trim().parse().ok())
            .or(config.app_id)
            .zip(
                env_nonempty(&format!("KEYWARD_{host}_APP_KEY_FILE"))
                    .map(PathBuf::from)
                    .or_else(|| config.app_key_file.clone()),
            ),
    }
}

fn feed_options(config: &FeedConfig) -> Option<crate::sources::feed::FeedOptions> {
    if !config.enabled {
        return None;
    }
    let mut options = crate::sources::feed::FeedOptions::new(&config.orgs, &config.users, config.public.unwrap_or(true));
    if let Some(interval) = config.min_interval.as_deref().and_then(|t| humantime::parse_duration(t).ok()) {
        options.min_interval = interval;
    }
    Some(options)
}

fn env_flag(name: &str) -> bool {
    env_nonempty(name).is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}
