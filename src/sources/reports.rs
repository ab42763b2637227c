//! Other scanners' JSON reports: every secret a gitleaks, betterleaks,
//! kingfisher or trufflehog report holds, unredacted, with where it was
//! seen, so that `keyward ingest` can hand each one to a keyward server as
//! a sighting.
//!
//! The shapes are the tools' own (fixtures/reports/README.md): gitleaks
//! writes one JSON array; betterleaks and kingfisher one object with a
//! `findings` array, or JSON lines; trufflehog JSON lines. A secret that
//! rides along with another (an AWS secret key in betterleaks' component
//! sets, kingfisher's dependent captures, trufflehog's secret parts) is a
//! secret too. A report is read whole before anything is sent: a line that
//! does not parse, or does not have the tool's shape, is an error that names
//! it, and nothing is imported.

use serde_json::Value;

/// Which tool wrote the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Gitleaks,
    Betterleaks,
    Kingfisher,
    Trufflehog,
}

/// One secret of a report and where the tool saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedSecret {
    pub secret: String,
    pub path: Option<String>,
    pub line: Option<i64>,
    pub commit: Option<String>,
    pub repository: Option<String>,
    /// The tool's rule or detector name.
    pub rule: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReportError {
    #[error("line {line}, column {column}: not JSON: {message}")]
    Json { line: usize, column: usize, message: String },
    #[error("line {line}: {message}")]
    Shape { line: usize, message: String },
}

/// What a report holds. Secrets a tool redacted (`REDACTED`) cannot be
/// reported; they are counted in the second value.
pub fn parse(format: ReportFormat, text: &str) -> Result<(Vec<ReportedSecret>, usize), ReportError> {
    let mut found = Vec::new();
    for (line, document) in documents(text)? {
        let findings = match (format, &document) {
            (ReportFormat::Gitleaks, Value::Array(items)) => items.iter().collect(),
            (ReportFormat::Gitleaks, _) => return Err(shape(line, "a gitleaks report is a JSON array of findings")),
            (_, Value::Object(o)) if o.contains_key("findings") => match &o["findings"] {
                Value::Array(items) => items.iter().collect(),
                Value::Null => Vec::new(),
                _ => return Err(shape(line, "`findings` is not an array")),
            },
            (ReportFormat::Betterleaks, Value::Object(o)) if o.contains_key("finding") => vec![&o["finding"]],
            (ReportFormat::Kingfisher, Value::Object(o)) if o.contains_key("finding") => vec![&document],
            (ReportFormat::Trufflehog, Value::Object(o)) if o.contains_key("SourceMetadata") || o.contains_key("Raw") => vec![&document],
            // Summary lines: betterleaks' `scan`, kingfisher's `audit`.
            (ReportFormat::Betterleaks | ReportFormat::Kingfisher, Value::Object(o))
                if o.contains_key("scan") || o.contains_key("audit") || o.contains_key("metadata") =>
            {
                Vec::new()
            }
            _ => return Err(shape(line, &format!("not a {} finding", name(format)))),
        };
        for finding in findings {
            let read = match format {
                ReportFormat::Gitleaks => gitleaks(finding),
                ReportFormat::Betterleaks => betterleaks(finding),
                ReportFormat::Kingfisher => kingfisher(finding),
                ReportFormat::Trufflehog => trufflehog(finding),
            };
            found.extend(read.map_err(|message| shape(line, &message))?);
        }
    }
    let redacted = found.iter().filter(|s| is_redacted(&s.secret)).count();
    found.retain(|s| !is_redacted(&s.secret));
    found.dedup();
    Ok((found, redacted))
}

fn name(format: ReportFormat) -> &'static str {
    match format {
        ReportFormat::Gitleaks => "gitleaks",
        ReportFormat::Betterleaks => "betterleaks",
        ReportFormat::Kingfisher => "kingfisher",
        ReportFormat::Trufflehog => "trufflehog",
    }
}

fn shape(line: usize, message: &str) -> ReportError {
    ReportError::Shape {
        line,
        message: message.to_string(),
    }
}

fn is_redacted(secret: &str) -> bool {
    secret.is_empty() || secret.eq_ignore_ascii_case("redacted") || secret.chars().all(|c| c == '*')
}

/// The report as JSON documents with the line each starts on: one
/// document (an array or an object spread over lines), or JSON lines.
fn documents(text: &str) -> Result<Vec<(usize, Value)>, ReportError> {
    let json_error = |e: serde_json::Error, first_line: usize| ReportError::Json {
        line: first_line + e.line().saturating_sub(1),
        column: e.column(),
        message: e.to_string().split(" at line").next().unwrap_or_default().to_string(),
    };
    let trimmed = text.trim_start();
    let first_line = 1 + text[..text.len() - trimmed.len()].matches('\n').count();
    if trimmed.starts_with('[') {
        return serde_json::from_str(text)
            .map(|v| vec![(first_line, v)])
            .map_err(|e| json_error(e, 1));
    }
    // One object over several lines, or one object per line.
    if let Ok(whole) = serde_json::from_str::<Value>(text) {
        return Ok(vec![(first_line, whole)]);
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        out.push((i + 1, serde_json::from_str(line).map_err(|e| json_error(e, i + 1))?));
    }
    Ok(out)
}

fn text(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

fn number(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

fn secret(v: &Value, field: &str) -> Result<String, String> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("a finding without a `{field}` string"))
}

fn gitleaks(f: &Value) -> Result<Vec<ReportedSecret>, String> {
    Ok(vec![ReportedSecret {
        secret: secret(&f["Secret"], "Secret")?,
        path: text(&f["File"]),
        line: number(&f["StartLine"]),
        commit: text(&f["Commit"]),
        repository: None,
        rule: text(&f["RuleID"]).unwrap_or_default(),
    }])
}

fn betterleaks(f: &Value) -> Result<Vec<ReportedSecret>, String> {
    let at = |item: &Value, value: String| ReportedSecret {
        secret: value,
        path: text(&item["location"]["path"]).or_else(|| text(&f["location"]["path"])),
        line: number(&item["location"]["start_line"]).or_else(|| number(&f["location"]["start_line"])),
        commit: text(&f["attributes"]["git.sha"]),
        repository: None,
        rule: text(&item["rule_id"]).or_else(|| text(&f["rule_id"])).unwrap_or_default(),
    };
    let mut out = vec![at(f, secret(&f["match"]["value"], "match.value")?)];
    for set in f["component_sets"].as_array().into_iter().flatten() {
        for component in set["components"].as_array().into_iter().flatten() {
            if let Some(value) = text(&component["match"]["value"]) {
                out.push(at(component, value));
            }
        }
    }
    Ok(out)
}

fn kingfisher(item: &Value) -> Result<Vec<ReportedSecret>, String> {
    let f = &item["finding"];
    let place = |value: String| ReportedSecret {
        secret: value,
        path: text(&f["git_metadata"]["file"]["path"]).or_else(|| text(&f["path"])),
        line: number(&f["line"]),
        commit: text(&f["git_metadata"]["commit"]["id"]),
        repository: text(&f["git_metadata"]["repository_url"]),
        rule: text(&item["rule"]["id"]).unwrap_or_default(),
    };
    let mut out = vec![place(secret(&f["snippet"], "finding.snippet")?)];
    if let Some(captures) = f["dependent_captures"].as_object() {
        out.extend(captures.values().filter_map(text).map(place));
    }
    Ok(out)
}

fn trufflehog(f: &Value) -> Result<Vec<ReportedSecret>, String> {
    let data = &f["SourceMetadata"]["Data"];
    let source = data.as_object().and_then(|o| o.values().next()).cloned().unwrap_or(Value::Null);
    let raw = secret(&f["Raw"], "Raw")?;
    let place = |value: String| ReportedSecret {
        secret: value,
        path: text(&source["file"]),
        line: number(&source["line"]),
        commit: text(&source["commit"]),
        repository: text(&source["repository"]),
        rule: text(&f["DetectorName"]).unwrap_or_default(),
    };
    let mut out = vec![place(raw.clone())];
    if let Some(parts) = f["SecretParts"].as_object() {
        out.extend(parts.values().filter_map(text).filter(|p| *p != raw).map(place));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{}/fixtures/reports/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    /// (kind, token, path, line) of every planted token.
    fn planted() -> Vec<(String, String, String, i64)> {
        let tokens: Value = serde_json::from_str(&fixture("tokens.json")).unwrap();
        tokens
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let field = |name: &str| t[name].as_str().unwrap().to_string();
                (field("kind"), field("token"), field("path"), t["line"].as_i64().unwrap())
            })
            .collect()
    }

    macro_rules! t {
        ($name:ident, $format:expr, $file:literal, $with_commit:expr) => {
            #[test]
            fn $name() {
                let (found, redacted) = parse($format, &fixture($file)).unwrap();
                assert_eq!(redacted, 0);
                for (kind, token, path, line) in planted() {
                    let hit = found
                        .iter()
                        .find(|s| s.secret == token)
                        .unwrap_or_else(|| panic!("{} misses {kind} at {path}:{line}", $file));
                    assert!(hit.path.as_deref().is_some_and(|p| p.ends_with(&path)), "{hit:?}");
                    // A paired AWS secret may sit at its key id's line.
                    if kind != "aws-secret" {
                        assert_eq!(hit.line, Some(line), "{kind}: {hit:?}");
                    }
                    if $with_commit {
                        assert!(
                            found
                                .iter()
                                .any(|s| s.secret == token && s.commit.as_deref().is_some_and(|c| c.len() == 40)),
                            "{hit:?}"
                        );
                    }
                }
            }
        };
    }

    t!(gitleaks_directory, ReportFormat::Gitleaks, "gitleaks.json", false);
    t!(gitleaks_history, ReportFormat::Gitleaks, "gitleaks-git.json", true);
    t!(betterleaks_json, ReportFormat::Betterleaks, "betterleaks.json", false);
    t!(betterleaks_lines, ReportFormat::Betterleaks, "betterleaks.jsonl", false);
    t!(betterleaks_history, ReportFormat::Betterleaks, "betterleaks-git.json", true);
    t!(kingfisher_json, ReportFormat::Kingfisher, "kingfisher.json", false);
    t!(kingfisher_lines, ReportFormat::Kingfisher, "kingfisher.jsonl", false);
    t!(kingfisher_history, ReportFormat::Kingfisher, "kingfisher-git.json", true);
    t!(trufflehog_files, ReportFormat::Trufflehog, "trufflehog.jsonl", false);
    t!(trufflehog_history, ReportFormat::Trufflehog, "trufflehog-git.jsonl", true);

    #[test]
    fn a_broken_line_is_named_and_nothing_is_read() {
        let mut lines: Vec<String> = fixture("trufflehog.jsonl").lines().map(str::to_string).collect();
        lines[2] = "{\"Raw\": \"ghp_".into();
        let err = parse(ReportFormat::Trufflehog, &lines.join("\n")).unwrap_err();
        assert!(matches!(err, ReportError::Json { line: 3, .. }), "{err}");
        let err = parse(ReportFormat::Gitleaks, "[\n  {\"Secret\": \"x\"},\n  {\"File\": \"a\"\n]").unwrap_err();
        assert!(matches!(err, ReportError::Json { line: 4, .. }), "{err}");
    }

    #[test]
    fn another_tools_report_is_refused() {
        let err = parse(ReportFormat::Gitleaks, &fixture("kingfisher.json")).unwrap_err();
        assert!(matches!(err, ReportError::Shape { line: 1, .. }), "{err}");
        let err = parse(ReportFormat::Trufflehog, "{\"neither\": 1}\n").unwrap_err();
        assert!(err.to_string().contains("not a trufflehog finding"), "{err}");
    }

    #[test]
    fn redacted_secrets_are_counted_not_read() {
        let (found, redacted) = parse(
            ReportFormat::Gitleaks,
            r#"[{"Secret": "REDACTED", "File": "a", "StartLine": 1, "RuleID": "x"}]"#,
        )
        .unwrap();
        assert!(found.is_empty());
        assert_eq!(redacted, 1);
    }
}
