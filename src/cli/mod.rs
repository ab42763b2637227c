//! Command-line interface: clap definitions and the dispatch to each
//! command. Exit codes follow scanners' convention: 0 clean, 1 findings,
//! 2 error.

mod client;
mod git;
mod hook;
mod output;
mod report;
mod revoke;
mod rules;
mod scan;
mod scanning;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `0.1.0 (5286d4e1a2b3)`: the version and the commit it was built from.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("KEYWARD_GIT_COMMIT"), ")");

#[derive(Parser)]
#[command(name = "keyward", version = VERSION, about = "API keys that hunt for their own leaks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Scan files, directories or stdin (`-`) for secrets.
    Scan(scanning::ScanArgs),
    /// Install or remove the git hooks that stop a key before it is committed or pushed.
    Hook {
        #[command(subcommand)]
        command: hook::HookCommand,
    },
    /// List the token rules or check them against their examples.
    Rules {
        #[command(subcommand)]
        command: rules::RulesCommand,
    },
    /// Run the key service: REST API, verify, leak response.
    Serve(serve::ServeArgs),
    /// Create the store, an owner, a first project and a bootstrap admin key.
    Init(serve::InitArgs),
    /// Manage keys through a running server.
    Keys {
        #[command(subcommand)]
        command: client::KeysCommand,
    },
    /// Manage projects through a running server.
    Projects {
        #[command(subcommand)]
        command: client::ProjectsCommand,
    },
    /// Manage console users.
    Users {
        #[command(subcommand)]
        command: serve::UsersCommand,
    },
    /// Check the audit log.
    Audit {
        #[command(subcommand)]
        command: serve::AuditCommand,
    },
    /// Send every secret of another scanner's report (gitleaks,
    /// betterleaks, kingfisher, trufflehog) to a server as sightings.
    Ingest(report::IngestArgs),
    /// Revoke tokens at their issuers now, one per line on stdin.
    Revoke(revoke::RevokeArgs),
}

/// Options that pick the rule set, shared by `scan` and `rules`.
#[derive(clap::Args, Clone, Default)]
pub struct RuleArgs {
    /// Deployment prefix of keyward tokens to look for besides `kw` (repeatable).
    #[arg(long = "prefix", env = "KEYWARD_PREFIX", value_delimiter = ',')]
    pub prefixes: Vec<String>,
    /// Extra rule files, or directories of `*.toml` rule files (repeatable).
    #[arg(long = "rules", value_name = "PATH")]
    pub rule_paths: Vec<PathBuf>,
    /// Configuration file (default: ./keyward.toml when present, whose
    /// rule files must then lie inside the working directory).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Ignore ./keyward.toml: for scans of checkouts you do not trust
    /// (a pull request in CI). A file given with --config is still read.
    #[arg(long, env = "KEYWARD_NO_CONFIG", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_config: bool,
    /// Use only the rule files given with --rules, none of the shipped ones.
    #[arg(long)]
    pub no_builtin_rules: bool,
}

pub const EXIT_CLEAN: u8 = 0;
pub const EXIT_FINDINGS: u8 = 1;
pub const EXIT_ERROR: u8 = 2;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Scan(args) => scan::run(args),
        Command::Hook { command } => hook::run(command),
        Command::Rules { command } => rules::run(command),
        Command::Serve(args) => serve::serve(args),
        Command::Init(args) => serve::init(args),
        Command::Keys { command } => client::keys(command),
        Command::Projects { command } => client::projects(command),
        Command::Audit { command } => serve::audit(command),
        Command::Users { command } => serve::users(command),
        Command::Ingest(args) => report::ingest(args),
        Command::Revoke(args) => revoke::run(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("keyward: error: {}", output::terminal_safe(&format!("{err:#}")));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

impl From<RuleArgs> for keyward::config::RuleSources {
    fn from(args: RuleArgs) -> Self {
        keyward::config::RuleSources {
            prefixes: args.prefixes,
            rule_paths: args.rule_paths,
            config: args.config,
            no_config: args.no_config,
            no_builtin: args.no_builtin_rules,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every command and every flag says what it is for.
    fn undocumented(command: &clap::Command, path: &str, out: &mut Vec<String>) {
        let here = format!("{path} {}", command.get_name()).trim().to_string();
        if command.get_about().is_none() && command.get_long_about().is_none() {
            out.push(format!("{here}: no help line"));
        }
        for arg in command.get_arguments() {
            let builtin = matches!(arg.get_id().as_str(), "help" | "version");
            if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                out.push(format!("{here} --{}: no help", arg.get_id()));
            }
        }
        for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
            undocumented(sub, &here, out);
        }
    }

    #[test]
    fn every_command_and_flag_has_help() {
        let mut missing = Vec::new();
        undocumented(&super::Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }

    #[test]
    fn the_version_names_the_commit() {
        assert!(super::VERSION.starts_with(env!("CARGO_PKG_VERSION")));
        assert!(super::VERSION.contains('('), "{}", super::VERSION);
    }
}
