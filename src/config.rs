//! Configuration: `keyward.toml`, overridden by environment variables, in
//! turn overridden by flags: the deployment token prefix, the scanner's
//! extra rules, and the server's data directory, database, listen address,
//! pepper and scope catalog.

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
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error(transparent)]
    Rules(#[from] RuleError),
    #[error("pepper: {0}")]
    Pepper(String),
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
        toml::from_str(&text).map_err(|source| ConfigError::Parse { path, source })
    }
}

/// Where the rule set comes from: flags first, then the config file.
#[derive(Debug, Default, Clone)]
pub struct RuleSources {
    pub prefixes: Vec<String>,
    pub rule_paths: Vec<PathBuf>,
    pub config: Option<PathBuf>,
}

/// The shipped rules, plus extra rule files and deployment prefixes from
/// flags and configuration.
pub fn load_rules(sources: &RuleSources) -> Result<RuleSet, ConfigError> {
    let config = Config::load(sources.config.as_deref())?;
    let mut rules = RuleSet::builtin();
    for path in sources.rule_paths.iter().chain(&config.scan.rules) {
        add_rule_path(&mut rules, path)?;
    }
    let prefixes = sources.prefixes.iter().chain(config.prefix.iter()).chain(&config.scan.prefixes);
    for prefix in prefixes {
        rules.add_deployment_prefix(prefix)?;
    }
    Ok(rules)
}

fn add_rule_path(rules: &mut RuleSet, path: &Path) -> Result<(), ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
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
        let text = std::fs::read_to_string(&file).map_err(|source| ConfigError::Read {
            path: file.clone(),
            source,
        })?;
        rules.add_toml(&file.display().to_string(), &text)?;
    }
    Ok(())
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
}

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
            data_dir,
            database_url,
        }
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

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}
