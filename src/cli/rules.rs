//! `keyward rules list` and `keyward rules check`.

use anyhow::{Context, Result};
use clap::Subcommand;

use super::{RuleArgs, EXIT_CLEAN, EXIT_FINDINGS};
use keyward::config::load_rules;
use keyward::engine::{Engine, EngineOptions, Rule, RuleSet};

#[derive(Subcommand)]
pub enum RulesCommand {
    /// Print every rule: id, family, severity, checksum, revoker, prefixes.
    List {
        #[command(flatten)]
        rules: RuleArgs,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: ListFormat,
        /// Same as --format json.
        #[arg(long)]
        json: bool,
    },
    /// Run every rule against its examples (must match) and negatives (must not).
    Check {
        #[command(flatten)]
        rules: RuleArgs,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
    /// Every literal the scan searches for, one per line (for `rg -F -f`).
    Anchors,
}

pub fn run(command: RulesCommand) -> Result<u8> {
    match command {
        RulesCommand::List { rules, format, json } => {
            let rules = load_rules(&rules.into())?;
            match (format, json) {
                (ListFormat::Anchors, false) => anchors(rules),
                (ListFormat::Table, false) => list(&rules, false),
                _ => list(&rules, true),
            }
        }
        RulesCommand::Check { rules } => check(load_rules(&rules.into())?),
    }
}

fn anchors(rules: RuleSet) -> Result<u8> {
    let engine = Engine::new(rules, EngineOptions::default()).context("building the engine")?;
    for literal in engine.anchor_literals() {
        println!("{}", printable(&String::from_utf8_lossy(&literal)));
    }
    Ok(EXIT_CLEAN)
}

fn list(rules: &RuleSet, json: bool) -> Result<u8> {
    if json {
        let rows: Vec<_> = rules.rules().iter().map(rule_json).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(EXIT_CLEAN);
    }
    println!(
        "{:<34} {:<30} {:<9} {:<13} {:<13} PREFIXES",
        "ID", "FAMILY", "SEVERITY", "CHECKSUM", "REVOKE"
    );
    for r in rules.rules() {
        println!(
            "{:<34} {:<30} {:<9} {:<13} {:<13} {}",
            printable(&r.id),
            printable(&r.family),
            r.severity.as_str(),
            r.checksum.as_str(),
            r.revoke.map_or("-", |v| v.as_str()),
            printable(&r.prefixes.join(" "))
        );
    }
    println!("{} rules, {} families", rules.rules().len(), rules.families().len());
    Ok(EXIT_CLEAN)
}

/// A rule file given with --rules may hold anything: terminal control
/// characters are shown escaped.
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

fn rule_json(r: &Rule) -> serde_json::Value {
    serde_json::json!({
        "id": r.id,
        "family": r.family,
        "name": r.name,
        "description": r.description,
        "prefixes": r.prefixes,
        "charset": r.charset.spec(),
        "min_length": r.min_len,
        "max_length": r.max_len,
        "pattern": r.pattern.as_ref().map(|p| p.as_str().to_string()),
        "checksum": r.checksum.as_str(),
        "revoke": r.revoke.map(|v| v.as_str()),
        "confidence": r.confidence.as_str(),
        "severity": r.severity.as_str(),
        "publishable": r.publishable,
        "examples": r.examples.len(),
        "negatives": r.negatives.len(),
    })
}

fn check(rules: RuleSet) -> Result<u8> {
    let engine = Engine::new(rules.clone(), EngineOptions::default()).context("building the engine")?;
    let mut failures = 0;
    for rule in rules
        .rules()
        .iter()
        .filter(|r| !r.examples.is_empty() || !r.negatives.is_empty() || !r.own_format)
    {
        let problems = check_rule(&engine, rule);
        if problems.is_empty() {
            println!(
                "ok    {:<30} {} examples, {} negatives",
                rule.id,
                rule.examples.len(),
                rule.negatives.len()
            );
        } else {
            failures += 1;
            println!("FAIL  {}", rule.id);
            for p in problems {
                println!("      {p}");
            }
        }
    }
    println!("{} rules checked, {failures} failed", rules.rules().len());
    Ok(if failures == 0 { EXIT_CLEAN } else { EXIT_FINDINGS })
}

fn check_rule(engine: &Engine, rule: &Rule) -> Vec<String> {
    let matches = |text: &str| {
        engine
            .scan_bytes(text.as_bytes())
            .iter()
            .any(|f| f.rule_id == rule.id && f.confidence.is_valid())
    };
    let mut problems = Vec::new();
    if rule.examples.is_empty() || rule.negatives.is_empty() {
        problems.push("a rule needs at least one example and one negative".to_string());
    }
    for (i, example) in rule.examples.iter().enumerate() {
        if !matches(example) {
            problems.push(format!("example {} does not match: {example:?}", i + 1));
        }
    }
    for (i, negative) in rule.negatives.iter().enumerate() {
        if matches(negative) {
            problems.push(format!("negative {} matches: {negative:?}", i + 1));
        }
    }
    problems
}
