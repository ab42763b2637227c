//! Report formats: human text, JSON, JSON Lines and SARIF 2.1.0.
//!
//! Every format shows the redacted form; the plaintext appears only when
//! the user asked for it with `--show-secrets`. Text written to a terminal
//! passes through [`terminal_safe`]: a path, an author or a matched context
//! comes from the scanned input, and must not move the cursor, set the
//! clipboard or forge a line.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write;

use serde_json::{json, Value};

use keyward::engine::{Engine, Finding, Rule};
use keyward::sources::git::Origin;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Jsonl,
    Sarif,
}

/// A finding and the path it was found in, as shown to the user; for git
/// history, also the commit that introduced it.
pub struct Reported {
    pub path: String,
    pub finding: Finding,
    pub origin: Option<std::sync::Arc<Origin>>,
}

/// Author time as RFC 3339 in UTC, to the second: any time a crafted
/// commit carries (a year past 9999, before 1970) prints, none panics.
fn date(origin: &Origin) -> String {
    keyward::time::rfc3339(origin.time.saturating_mul(1000)).replacen(".000Z", "Z", 1)
}

pub fn write(format: Format, out: &mut impl Write, found: &[Reported], engine: &Engine, secrets: bool, color: bool) -> std::io::Result<()> {
    match format {
        Format::Text => text(out, found, engine, secrets, color),
        Format::Json => {
            let rows: Vec<Value> = found.iter().map(|r| finding_json(r, engine, secrets)).collect();
            serde_json::to_writer_pretty(&mut *out, &rows)?;
            writeln!(out)
        }
        Format::Jsonl => {
            for r in found {
                serde_json::to_writer(&mut *out, &finding_json(r, engine, secrets))?;
                writeln!(out)?;
            }
            Ok(())
        }
        Format::Sarif => {
            serde_json::to_writer_pretty(&mut *out, &sarif(found, engine, secrets))?;
            writeln!(out)
        }
    }
}

fn text(out: &mut impl Write, found: &[Reported], engine: &Engine, secrets: bool, color: bool) -> std::io::Result<()> {
    let paint = |code: &str, s: &str| {
        let s = terminal_safe(s);
        if color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.into_owned()
        }
    };
    for r in found {
        let f = &r.finding;
        let rule = engine.rule(f.rule);
        if let Some(origin) = &r.origin {
            let short: String = origin.commit.chars().take(10).collect();
            write!(out, "{}:", paint("36", &short))?;
        }
        write!(
            out,
            "{}:{}:{}: {} {} ({}, {}{})",
            paint("35", &r.path),
            f.line,
            f.column,
            paint("1;31", &rule.name),
            paint("33", &f.redacted),
            f.confidence,
            rule.severity.as_str(),
            if f.encoding == keyward::engine::Encoding::Base64 {
                ", base64"
            } else {
                ""
            }
        )?;
        if secrets {
            write!(out, " {}", terminal_safe(f.secret.expose()))?;
        }
        write!(out, " id={}", f.finding_id)?;
        if let Some(origin) = &r.origin {
            write!(
                out,
                " by {} <{}> on {}",
                terminal_safe(&origin.author),
                terminal_safe(&origin.email),
                date(origin)
            )?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// `text` with every control character (C0, DEL, C1) and bidirectional
/// override shown as an escape: ESC as `\e`, newline as `\n`, others as
/// `\xNN` or `\u{NNNN}`. When anything is escaped, backslashes are doubled
/// too, so the escapes cannot be told apart from the name's own text.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut safe = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\\' => safe.push_str("\\\\"),
            '\x1b' => safe.push_str("\\e"),
            '\n' => safe.push_str("\\n"),
            '\r' => safe.push_str("\\r"),
            '\t' => safe.push_str("\\t"),
            c if needs_escape(c) && (c as u32) < 0x100 => {
                let _ = write!(safe, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(safe, "\\u{{{:04x}}}", c as u32);
            }
            c => safe.push(c),
        }
    }
    Cow::Owned(safe)
}

/// Control characters, and the invisible marks that reorder a line
/// (Trojan Source): LRM/RLM, ALM, the embeddings, overrides and isolates.
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn finding_json(r: &Reported, engine: &Engine, secrets: bool) -> Value {
    let f = &r.finding;
    let rule = engine.rule(f.rule);
    let mut v = json!({
        "rule_id": f.rule_id,
        "rule_name": rule.name,
        "severity": rule.severity.as_str(),
        "path": r.path,
        "line": f.line,
        "column": f.column,
        "start": f.start,
        "end": f.end,
        "redacted": f.redacted,
        "confidence": f.confidence.as_str(),
        "encoding": f.encoding.as_str(),
        "publishable": rule.publishable,
        "finding_id": f.finding_id,
    });
    if let Some(origin) = &r.origin {
        v["commit"] = json!(origin.commit);
        v["author"] = json!(origin.author);
        v["email"] = json!(origin.email);
        v["date"] = json!(date(origin));
    }
    if secrets {
        v["secret"] = Value::String(f.secret.expose().to_string());
    }
    v
}

fn sarif(found: &[Reported], engine: &Engine, secrets: bool) -> Value {
    let rules: Vec<Value> = engine.rules().rules().iter().map(sarif_rule).collect();
    let results: Vec<Value> = found.iter().map(|r| sarif_result(r, engine, secrets)).collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "keyward",
                "informationUri": INFORMATION_URI,
                "version": env!("CARGO_PKG_VERSION"),
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "columnKind": "unicodeCodePoints",
            "originalUriBaseIds": {SRCROOT: {"uri": working_directory_uri()}},
            "results": results,
        }]
    })
}

fn sarif_rule(rule: &Rule) -> Value {
    let description = if rule.description.is_empty() {
        &rule.name
    } else {
        &rule.description
    };
    json!({
        "id": rule.id,
        "name": rule.name.split(|c: char| !c.is_ascii_alphanumeric()).map(capitalise).collect::<String>(),
        "shortDescription": {"text": rule.name},
        "fullDescription": {"text": description},
        "help": {"text": format!("{description} Revoke or rotate the credential, then remove it from the file and its history. Allowlist a false positive with a `keyward:allow` comment or its finding id in .keywardignore.")},
        "defaultConfiguration": {"level": sarif_level(rule)},
        "properties": {
            "tags": ["security", "secret"],
            "security-severity": security_severity(rule),
            "precision": match rule.confidence { keyward::engine::Confidence::High => "very-high", keyward::engine::Confidence::Medium => "high", _ => "medium" },
        },
    })
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

fn sarif_level(rule: &Rule) -> &'static str {
    use keyward::engine::Severity::*;
    match rule.severity {
        Critical | High => "error",
        Medium => "warning",
        Low | Info => "note",
    }
}

/// GitHub code scanning reads this as a CVSS-like score.
fn security_severity(rule: &Rule) -> &'static str {
    use keyward::engine::Severity::*;
    match rule.severity {
        Critical => "9.5",
        High => "8.0",
        Medium => "5.5",
        Low => "3.0",
        Info => "1.0",
    }
}

fn sarif_result(r: &Reported, engine: &Engine, secrets: bool) -> Value {
    let f = &r.finding;
    let rule = engine.rule(f.rule);
    let mut message = format!("{} {} found ({} confidence).", rule.name, f.redacted, f.confidence);
    if secrets {
        message.push_str(&format!(" Value: {}", f.secret.expose()));
    }
    let mut result = json!({
        "ruleId": f.rule_id,
        "ruleIndex": f.rule,
        "level": sarif_level(rule),
        "message": {"text": message},
        "locations": [{"physicalLocation": {
            "artifactLocation": artifact_location(&r.path),
            "region": {"startLine": f.line, "startColumn": f.column, "byteOffset": f.start, "byteLength": f.end - f.start},
        }}],
        "partialFingerprints": {"keywardFindingId/v1": f.finding_id},
    });
    if let Some(origin) = &r.origin {
        result["properties"] = json!({
            "commitSha": origin.commit,
            "author": origin.author,
            "email": origin.email,
            "date": date(origin),
        });
    }
    result
}

/// Where the tool is documented, for code scanning's rule help.
const INFORMATION_URI: &str = match option_env!("CARGO_PKG_HOMEPAGE") {
    Some(uri) if !uri.is_empty() => uri,
    _ => "https://github.com/keyward/keyward",
};

/// The base a relative path is read against: the directory the scan ran in.
const SRCROOT: &str = "SRCROOT";

fn working_directory_uri() -> String {
    let dir = std::env::current_dir()
        .map(|d| d.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "/".into());
    let dir = if dir.ends_with('/') { dir } else { format!("{dir}/") };
    format!("file://{}", sarif_uri(&dir))
}

/// An absolute path as a `file://` URI; a relative one against `SRCROOT`,
/// as code scanning wants (a bare `/srv/app/x` is SARIF1004).
fn artifact_location(path: &str) -> Value {
    let path = path.replace('\\', "/");
    match path.strip_prefix('/') {
        Some(_) => json!({"uri": format!("file://{}", sarif_uri(&path))}),
        None => json!({"uri": sarif_uri(path.strip_prefix("./").unwrap_or(&path)), "uriBaseId": SRCROOT}),
    }
}

/// A URI path with `/` separators and reserved bytes escaped.
fn sarif_uri(path: &str) -> String {
    let mut uri = String::with_capacity(path.len());
    for b in path.replace('\\', "/").bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri
}

#[cfg(test)]
mod tests {
    use super::terminal_safe;

    macro_rules! t {
        ($name:ident, $input:expr, $expected:expr) => {
            #[test]
            fn $name() {
                assert_eq!(terminal_safe($input), $expected);
            }
        };
    }

    t!(plain_text_is_untouched, "src/app.py", "src/app.py");
    t!(a_lone_backslash_is_untouched, r"C:\dir\file", r"C:\dir\file");
    t!(escape_is_shown_as_e, "a\x1b[2Jb", r"a\e[2Jb");
    t!(osc_52_clipboard_write, "\x1b]52;c;cm0gLXJmIH4=\x07", r"\e]52;c;cm0gLXJmIH4=\x07");
    t!(newline_cannot_forge_a_line, "x\nfake.txt:1:1: ok", r"x\nfake.txt:1:1: ok");
    t!(carriage_return_and_tab, "a\rb\tc", r"a\rb\tc");
    t!(backslashes_doubled_once_escaping, "a\\b\x07", r"a\\b\x07");
    t!(nul_and_del, "\0\x7f", r"\x00\x7f");
    t!(c1_csi, "\u{9b}31m", r"\x9b31m");
    t!(bidi_override, "evil\u{202e}txt.exe", r"evil\u{202e}txt.exe");
    t!(unicode_letters_stay, "Zoë 日本", "Zoë 日本");
}
