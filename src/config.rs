//! Configuration: `keyward.toml`, overridden by environment variables, in
//! turn overridden by flags. Only what the scanner needs so far: the
//! deployment token prefix and extra rule files.

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
}

#[derive(Debug, Default, Deserialize)]
pub struct Config {
    /// Deployment prefix of issued tokens (`kw` when unset).
    pub prefix: Option<String>,
    #[serde(default)]
    pub scan: ScanConfig,
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
    let prefixes = sources
        .prefixes
        .iter()
        .chain(config.prefix.iter())
        .chain(&config.scan.prefixes);
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
