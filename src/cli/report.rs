//! Sending what was found to a keyward server as sightings
//! (`POST /v1/sightings`): `keyward scan --report URL` for keyward's own
//! findings, and `keyward ingest` for another scanner's report. The server
//! decides what each token is: a keyward key goes to its project's leak
//! policy, another issuer's token to the deployment's third-party policy.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::EXIT_CLEAN;
use keyward::sources::reports::{self, ReportFormat};

/// A server to report to.
pub struct Target<'a> {
    pub url: &'a str,
    pub token: &'a str,
}

/// One token and where it was seen, as `/v1/sightings` takes it.
pub struct Sighting {
    pub token: String,
    pub place: Value,
}

/// What the server made of the sightings.
#[derive(Debug, Default)]
pub struct Tally {
    own: BTreeMap<String, usize>,
    third_party: BTreeMap<String, usize>,
    unknown: usize,
}

impl Tally {
    pub fn summary(&self, sent: usize) -> String {
        let list = |counts: &BTreeMap<String, usize>| counts.iter().map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", ");
        let mut parts = Vec::new();
        if !self.third_party.is_empty() {
            let n: usize = self.third_party.values().sum();
            parts.push(format!("{n} of other issuers ({})", list(&self.third_party)));
        }
        if !self.own.is_empty() {
            let n: usize = self.own.values().sum();
            parts.push(format!("{n} keyward keys ({})", list(&self.own)));
        }
        if self.unknown > 0 {
            parts.push(format!("{} of no family keyward knows", self.unknown));
        }
        format!(
            "reported {sent} sightings: {}",
            if parts.is_empty() { "none".into() } else { parts.join("; ") }
        )
    }
}

/// Posts each sighting; stops at the first answer that is neither a
/// recorded sighting nor a token of no known family.
pub fn send(target: &Target<'_>, sightings: &[Sighting]) -> Result<Tally> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build()?;
        let url = format!("{}/v1/sightings", target.url.trim_end_matches('/'));
        let mut tally = Tally::default();
        for sighting in sightings {
            let response = client
                .post(&url)
                .bearer_auth(target.token)
                .json(&json!({"token": sighting.token, "place": sighting.place}))
                .send()
                .await
                .with_context(|| format!("reporting to {url}"))?;
            let status = response.status();
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            let message = answer["error"]["message"].as_str().unwrap_or("no details");
            match status.as_u16() {
                200 => {
                    let counts = if answer["kind"] == "own" {
                        &mut tally.own
                    } else {
                        &mut tally.third_party
                    };
                    *counts
                        .entry(answer["status"].as_str().unwrap_or("recorded").to_string())
                        .or_default() += 1;
                }
                422 if message.contains("no known family") => tally.unknown += 1,
                _ => bail!("{url} answered {status}: {message}"),
            }
        }
        Ok(tally)
    })
}

/// Where `scan --report` and `ingest` send to, and as whom.
#[derive(clap::Args, Clone)]
pub struct ReportTo {
    /// The keyward server to send each finding to as a sighting.
    #[arg(long, value_name = "URL")]
    pub report: Option<String>,
    /// A key with the `incidents:write` scope, for --report.
    #[arg(long = "report-token", env = "KEYWARD_TOKEN", hide_env_values = true)]
    pub report_token: Option<String>,
}

impl ReportTo {
    /// The target, when --report was given; an error without a token.
    pub fn target(&self) -> Result<Option<Target<'_>>> {
        let Some(url) = &self.report else { return Ok(None) };
        let Some(token) = &self.report_token else {
            bail!("--report needs a key with incidents:write: set KEYWARD_TOKEN (or --report-token)");
        };
        Ok(Some(Target { url, token }))
    }
}

#[derive(clap::Args)]
pub struct IngestArgs {
    /// The tool that wrote the report.
    #[arg(long, value_enum)]
    format: Format,
    /// Its JSON (or JSON lines) report; `-` reads stdin.
    file: PathBuf,
    /// The repository the report is of, when the report does not say.
    #[arg(long)]
    repository: Option<String>,
    #[command(flatten)]
    to: ReportTo,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Gitleaks,
    Betterleaks,
    Kingfisher,
    Trufflehog,
}

impl From<Format> for ReportFormat {
    fn from(f: Format) -> ReportFormat {
        match f {
            Format::Gitleaks => ReportFormat::Gitleaks,
            Format::Betterleaks => ReportFormat::Betterleaks,
            Format::Kingfisher => ReportFormat::Kingfisher,
            Format::Trufflehog => ReportFormat::Trufflehog,
        }
    }
}

/// `keyward ingest`: reads the whole report first, so a malformed one
/// sends nothing, then reports each secret.
pub fn ingest(args: IngestArgs) -> Result<u8> {
    let Some(target) = args.to.target()? else {
        bail!("ingest sends what it reads to a server: give --report URL");
    };
    let text = if args.file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading the report from stdin")?
    } else {
        std::fs::read_to_string(&args.file).with_context(|| format!("reading {}", args.file.display()))?
    };
    let (secrets, redacted) =
        reports::parse(args.format.into(), &text).with_context(|| format!("{} is not such a report", args.file.display()))?;
    if redacted > 0 {
        eprintln!("keyward: {redacted} secrets in the report are redacted and cannot be reported (run the tool without --redact)");
    }
    let source = match args.format {
        Format::Gitleaks => "gitleaks",
        Format::Betterleaks => "betterleaks",
        Format::Kingfisher => "kingfisher",
        Format::Trufflehog => "trufflehog",
    };
    let sightings: Vec<Sighting> = secrets
        .into_iter()
        .map(|s| Sighting {
            token: s.secret,
            place: json!({
                "repository": s.repository.or_else(|| args.repository.clone()),
                "commit": s.commit,
                "path": s.path,
                "line": s.line,
                "source": source,
            }),
        })
        .collect();
    let tally = send(&target, &sightings)?;
    eprintln!("keyward: {}", tally.summary(sightings.len()));
    Ok(EXIT_CLEAN)
}
