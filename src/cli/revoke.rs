//! `keyward revoke -`: tokens found by hand, one per line on stdin, each
//! named (family and issuer) and revoked at its issuer straight away, no
//! server needed. The token itself is never printed: prefix and last four.

use std::io::BufRead;

use anyhow::{Context, Result};

use super::{RuleArgs, EXIT_CLEAN, EXIT_ERROR, EXIT_FINDINGS};
use keyward::config::{load_scan, Config, ServerSettings};
use keyward::engine::{Engine, EngineOptions};
use keyward::response::issuers::{Issuers, Verdict};
use keyward::response::third_party::shown_parts;

#[derive(clap::Args)]
pub struct RevokeArgs {
    /// `-`: read the tokens from stdin, one per line.
    #[arg(value_parser = ["-"])]
    input: String,
    #[command(flatten)]
    rules: RuleArgs,
}

/// How one token ended, worst last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ending {
    Revoked,
    /// Refused, no public way, or no known family.
    NotRevoked,
    Error,
}

pub fn run(args: RevokeArgs) -> Result<u8> {
    let config = Config::load(args.rules.config.as_deref())?;
    let settings = ServerSettings::resolve(&config, None, None);
    let issuers = Issuers::new(settings.third_party(&config.third_party)?.endpoints);
    let rules = load_scan(&args.rules.clone().into())?.rules;
    let engine = Engine::new(rules, EngineOptions::default()).context("building the scanner")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut worst = Ending::Revoked;
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading tokens from stdin")?;
        let token = line.trim();
        if token.is_empty() {
            continue;
        }
        let (shown, ending) = runtime.block_on(revoke_one(&engine, &issuers, token));
        println!("{shown}");
        worst = worst.max(ending);
    }
    Ok(match worst {
        Ending::Revoked => EXIT_CLEAN,
        Ending::NotRevoked => EXIT_FINDINGS,
        Ending::Error => EXIT_ERROR,
    })
}

async fn revoke_one(engine: &Engine, issuers: &Issuers, token: &str) -> (String, Ending) {
    let found = engine.scan_bytes(token.as_bytes());
    let whole = found
        .iter()
        .find(|f| f.start == 0 && f.end == token.len() as u64 && f.confidence.is_valid());
    let Some(finding) = whole else {
        let last4: String = token
            .chars()
            .rev()
            .take(4.min(token.len() / 4))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return (
            format!("…{last4}  no known family (or its checksum fails)  not revoked"),
            Ending::NotRevoked,
        );
    };
    let rule = engine.rule(finding.rule);
    let (prefix, last4) = shown_parts(rule, token);
    let named = format!("{prefix}…{last4}  {}", rule.family);
    let Some(revoker) = rule.revoke else {
        return (
            format!("{named}  -  not revoked: {} publishes no way to revoke it", rule.family),
            Ending::NotRevoked,
        );
    };
    if let Some(why) = issuers.unsupported(revoker, token) {
        return (format!("{named}  {}  not revoked: {why}", revoker.as_str()), Ending::NotRevoked);
    }
    let verdict = issuers.revoke(revoker, &[token]).await.remove(0);
    let (outcome, ending) = match verdict {
        Verdict::Revoked => ("revoked".to_string(), Ending::Revoked),
        Verdict::Refused(why) => (format!("refused: {why}"), Ending::NotRevoked),
        Verdict::Failed(why) => (format!("failed: {why}"), Ending::Error),
        Verdict::Retry { reason, .. } => (format!("failed: {reason}; try again later"), Ending::Error),
    };
    (format!("{named}  {}  {outcome}", revoker.as_str()), ending)
}
