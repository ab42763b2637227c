//! `keyward scan` and `keyward rules` driven as a user would: the real
//! binary on real files in temp directories.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

#[path = "common/stdin.rs"]
mod stdin;
use stdin::with_stdin;

const GHP: &str = "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";
const KW: &str = "kw_sk_live_7KWyWfty6uEvcdZQoaZrknnVmnbSF0d57Iq6S0qvhVh0giP4Y";
const NPM: &str = "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";

fn keyward(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(args)
        .current_dir(dir)
        .env_remove("KEYWARD_PREFIX")
        .output()
        .expect("keyward runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &Output) -> Vec<Value> {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

fn tree(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, content) in files {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    }
    dir
}

#[test]
fn rules_check_passes_for_every_shipped_rule() {
    let dir = tempfile::tempdir().unwrap();
    let out = keyward(dir.path(), &["rules", "check"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
    let checked: usize = text.lines().last().unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert!(checked >= 18, "{text}");
}

#[test]
fn rules_check_fails_on_a_rule_whose_example_does_not_match() {
    let dir = tree(&[(
        "bad.toml",
        b"[[rule]]\nid = \"test.bad\"\nname = \"bad\"\nprefixes = [\"zz_\"]\ncharset = \"a-z\"\nlength = 8\nconfidence = \"high\"\nseverity = \"low\"\nexamples = [\"zz_TOOSHORT\"]\nnegatives = [\"zz_\"]\n",
    )]);
    let out = keyward(dir.path(), &["rules", "check", "--rules", "bad.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("FAIL  test.bad"));
}

#[test]
fn rules_list_names_every_rule() {
    let dir = tempfile::tempdir().unwrap();
    let out = keyward(dir.path(), &["rules", "list", "--json"]);
    let rules = json(&out);
    let ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
    for id in [
        "keyward.secret-key",
        "github.token",
        "npm.access-token",
        "pem.private-key",
        "aws.access-key-id",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
}

/// The corpus generator is a second implementation of every checksummed
/// format (Python's zlib, base64 and its own Marvin32 and Bech32), and
/// plants every other shipped family's first example, in the same eleven
/// contexts, base64 included; look-alikes and placeholders must stay out.
#[test]
fn generated_corpus_every_planted_token_found_and_no_decoy_reported() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    let manifest = dir.path().join("planted.jsonl");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/corpus.py");
    let gen = Command::new("python3")
        .arg(&script)
        .args([
            "--out",
            corpus.to_str().unwrap(),
            "--size",
            "2M",
            "--sets",
            "2",
            "--seed",
            "11",
            "--families",
        ])
        .args(["--manifest", manifest.to_str().unwrap()])
        .output()
        .expect("python3 runs the corpus generator");
    assert!(gen.status.success(), "{}", String::from_utf8_lossy(&gen.stderr));

    let out = keyward(dir.path(), &["scan", "corpus", "--format", "json", "--show-secrets"]);
    assert_eq!(out.status.code(), Some(1));
    let found = json(&out);
    let reported = |token: &str, path: &str| {
        let token = token.replace("\r\n", "\n");
        found.iter().any(|f| {
            let secret = f["secret"].as_str().unwrap().replace("\r\n", "\n");
            f["path"].as_str().unwrap().ends_with(path) && (secret == token || (secret.len() >= 20 && token.ends_with(&secret)))
        })
    };
    let mut missed = Vec::new();
    let mut planted = 0;
    for line in std::fs::read_to_string(&manifest).unwrap().lines() {
        let entry: Value = serde_json::from_str(line).unwrap();
        let (token, path) = (entry["token"].as_str().unwrap(), entry["path"].as_str().unwrap());
        let expect_found = entry["expect"] == "found";
        planted += usize::from(expect_found);
        if expect_found != reported(token, path) {
            missed.push(format!(
                "{} {} {} expect={}",
                entry["format"], entry["context"], path, entry["expect"]
            ));
        }
    }
    assert!(planted >= 400, "only {planted} planted");
    assert!(missed.is_empty(), "{} wrong of {planted}:\n{}", missed.len(), missed.join("\n"));
    let formats: std::collections::HashSet<&str> = found.iter().map(|f| f["rule_id"].as_str().unwrap()).collect();
    assert!(formats.len() >= 150, "{} rules seen: {formats:?}", formats.len());
}

#[test]
fn sarif_output_validates_against_the_sarif_2_1_0_schema() {
    let dir = tree(&[
        ("src/app.py", format!("TOKEN = '{GHP}'\nKEY = '{KW}'\n").as_bytes()),
        ("dir with space/x.env", format!("N={NPM}").as_bytes()),
    ]);
    let out = keyward(dir.path(), &["scan", ".", "--format", "sarif"]);
    assert_eq!(out.status.code(), Some(1));
    let sarif: Value = serde_json::from_slice(&out.stdout).unwrap();
    let schema_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sarif/sarif-2.1.0-rtm.5.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(schema_path).unwrap()).unwrap();
    let validator = jsonschema::draft4::new(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&sarif)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");

    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    let uris: Vec<&str> = results
        .iter()
        .map(|r| r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].as_str().unwrap())
        .collect();
    assert!(
        uris.contains(&"src/app.py") && uris.contains(&"dir%20with%20space/x.env"),
        "{uris:?}"
    );
    assert!(!stdout(&out).contains(&GHP[4..]), "SARIF must not carry the secret");
}

#[test]
fn json_report_carries_the_documented_fields() {
    let dir = tree(&[("config/.env", format!("A=1\nGITHUB_TOKEN={GHP}\n").as_bytes())]);
    let out = keyward(dir.path(), &["scan", "--format", "json"]);
    let found = json(&out);
    assert_eq!(found.len(), 1);
    let f = &found[0];
    assert_eq!(f["rule_id"], "github.token");
    assert_eq!(f["path"], "config/.env");
    assert_eq!(f["line"], 2);
    assert_eq!(f["column"], 14);
    assert_eq!(f["redacted"], "ghp_…ikMb");
    assert_eq!(f["confidence"], "high");
    assert!(f["finding_id"].as_str().unwrap().starts_with("kwf_"));
    assert!(f.get("secret").is_none());
}

#[test]
fn exit_codes_are_zero_clean_one_findings_two_error() {
    let clean = tree(&[("a.txt", b"nothing to see")]);
    let out = keyward(clean.path(), &["scan", "."]);
    assert_eq!(out.status.code(), Some(0));
    let dirty = tree(&[("a.txt", GHP.as_bytes())]);
    assert_eq!(keyward(dirty.path(), &["scan", "."]).status.code(), Some(1));
    let missing = keyward(clean.path(), &["scan", "no-such-dir"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no-such-dir"));
    let bad_baseline = keyward(dirty.path(), &["scan", ".", "--baseline", "a.txt"]);
    assert_eq!(bad_baseline.status.code(), Some(2));
}

#[test]
fn plaintext_appears_only_with_show_secrets() {
    let dir = tree(&[("a.env", format!("K={KW}\n").as_bytes())]);
    for format in ["text", "json", "jsonl", "sarif"] {
        let out = keyward(dir.path(), &["scan", ".", "--format", format]);
        let all = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
        assert!(!all.contains(KW), "{format} leaked the token");
        assert!(all.contains("kw_sk_live_…iP4Y"), "{format}: {all}");
        let shown = keyward(dir.path(), &["scan", ".", "--format", format, "--show-secrets"]);
        assert!(stdout(&shown).contains(KW), "{format} --show-secrets");
    }
}

#[test]
fn allow_marker_ignore_file_and_baseline_suppress_findings() {
    let dir = tree(&[
        ("inline.py", format!("TOKEN = '{GHP}'  # keyward:allow\n").as_bytes()),
        ("fixtures/sample.env", format!("K={KW}\n").as_bytes()),
        ("docs/npm.md", format!("`{NPM}`\n").as_bytes()),
    ]);
    let first = json(&keyward(dir.path(), &["scan", ".", "--format", "json"]));
    assert_eq!(first.len(), 2, "the allow marker hides inline.py: {first:?}");
    let npm_id = first.iter().find(|f| f["rule_id"] == "npm.access-token").unwrap()["finding_id"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(dir.path().join(".keywardignore"), format!("fixtures/\n{npm_id}\n")).unwrap();
    let out = keyward(dir.path(), &["scan", ".", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    std::fs::remove_file(dir.path().join(".keywardignore")).unwrap();
    std::fs::write(
        dir.path().join("baseline.json"),
        &keyward(dir.path(), &["scan", ".", "--format", "json"]).stdout,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("new.txt"),
        format!("{}\n", "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"),
    )
    .unwrap();
    let after = keyward(dir.path(), &["scan", ".", "--format", "json", "--baseline", "baseline.json"]);
    let left = json(&after);
    assert_eq!(left.len(), 1, "only the new token: {left:?}");
    assert_eq!(left[0]["path"], "new.txt");
}

#[test]
fn stdin_is_scanned_with_a_dash() {
    let dir = tempfile::tempdir().unwrap();
    let out = keyward_with_stdin(dir.path(), &["scan", "-", "--format", "json"], &format!("line\nexport T={NPM}\n"));
    let found = json(&out);
    assert_eq!((found[0]["path"].as_str(), found[0]["line"].as_u64()), (Some("-"), Some(2)));
}

fn keyward_with_stdin(dir: &Path, args: &[&str], input: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keyward"));
    command.args(args).current_dir(dir).env_remove("KEYWARD_PREFIX");
    with_stdin(command, input)
}

#[test]
fn binary_files_are_skipped_unless_asked() {
    let mut blob = vec![0u8, 1, 2, 0, 255];
    blob.extend_from_slice(GHP.as_bytes());
    let dir = tree(&[("image.bin", &blob)]);
    assert_eq!(keyward(dir.path(), &["scan", "."]).status.code(), Some(0));
    assert_eq!(keyward(dir.path(), &["scan", ".", "--binary"]).status.code(), Some(1));
}

#[test]
fn huge_line_invalid_utf8_and_crlf_are_handled() {
    let mut big = vec![b'a'; 20 << 20];
    big[1000] = 0xff;
    big[2000] = 0xc3;
    let middle = 10 << 20;
    big[middle..middle + 1].copy_from_slice(b" ");
    big.splice(middle + 1..middle + 1, GHP.bytes().chain(*b" "));
    big.extend_from_slice(b"\r\nsecond\r\n");
    big.extend_from_slice(KW.as_bytes());
    let dir = tree(&[("huge.min.js", &big)]);
    let found = json(&keyward(dir.path(), &["scan", ".", "--format", "json"]));
    let lines: Vec<(u64, &str)> = found
        .iter()
        .map(|f| (f["line"].as_u64().unwrap(), f["rule_id"].as_str().unwrap()))
        .collect();
    assert_eq!(lines, vec![(1, "github.token"), (3, "keyward.secret-key")]);
    assert_eq!(found[0]["start"].as_u64(), Some(middle as u64 + 1));
}

#[test]
fn deployment_prefix_from_flag_and_config() {
    let head = "acme_sk_test_7KWyWfty6uEvcdZQoaZrknnVmnbSF0d57Iq6S0qvhVh";
    let sum = keyward::keys::checksum::crc32_base62(head.as_bytes());
    let token = format!("{head}{}", std::str::from_utf8(&sum).unwrap());
    let dir = tree(&[("a.env", format!("K={token}\n").as_bytes())]);
    assert_eq!(keyward(dir.path(), &["scan", "a.env"]).status.code(), Some(0));
    assert_eq!(keyward(dir.path(), &["scan", "a.env", "--prefix", "acme"]).status.code(), Some(1));
    std::fs::write(dir.path().join("keyward.toml"), "prefix = \"acme\"\n").unwrap();
    assert_eq!(keyward(dir.path(), &["scan", "a.env"]).status.code(), Some(1));
}

#[test]
fn all_candidates_shows_look_alikes_marked() {
    let dir = tree(&[("a.env", b"A=ghp_sdtbJElqcXBXQG2ZdGXTIQlstGDjxn1zJFsA\nB=ghp_<your-token>\n")]);
    assert_eq!(keyward(dir.path(), &["scan", "."]).status.code(), Some(0));
    let found = json(&keyward(dir.path(), &["scan", ".", "--all-candidates", "--format", "json"]));
    let marks: Vec<&str> = found.iter().map(|f| f["confidence"].as_str().unwrap()).collect();
    assert_eq!(marks, vec!["invalid-checksum", "placeholder"]);
}

#[test]
fn jsonl_is_one_finding_per_line() {
    let dir = tree(&[("a", format!("{GHP}\n{NPM}\n").as_bytes())]);
    let out = stdout(&keyward(dir.path(), &["scan", ".", "--format", "jsonl"]));
    let rows: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 2);
}

#[test]
fn text_report_snapshot() {
    let dir = tree(&[
        (
            "src/settings.py",
            format!("# config\nGITHUB = \"{GHP}\"\nKEY = \"{KW}\"\n").as_bytes(),
        ),
        ("README.md", b"nothing here\n"),
    ]);
    let out = keyward(dir.path(), &["scan", "."]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    insta::with_settings!({filters => vec![(r"in [0-9.]+s \([0-9]+ MiB/s\)", "in [time]")]}, {
        insta::assert_snapshot!(format!("{}---\n{}", stdout(&out), stderr));
    });
}

// Hostile files and configs: what a checkout under scan must not be able to do.

fn all_output(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_said(o: &Output, wanted: &str) {
    assert!(stderr(o).contains(wanted), "{wanted:?} not on stderr: {}", all_output(o));
}

#[test]
fn a_config_in_the_scanned_tree_cannot_read_files_outside_it() {
    const CANARY: &str = "KW_CI_SECRET_canary_7f3a9";
    let outside = tree(&[("creds.toml", format!("token = \"{CANARY}\"\n").as_bytes())]);
    let creds = outside.path().join("creds.toml");
    let dir = tree(&[("app.env", format!("T={GHP}\n").as_bytes())]);
    std::os::unix::fs::symlink(&creds, dir.path().join("rules.toml")).unwrap();
    let attempts = [
        "[scan]\nrules = [\"/proc/self/environ\"]\n".to_string(),
        format!("[scan]\nrules = [{:?}]\n", creds.display().to_string()),
        "[scan]\nrules = [\"rules.toml\"]\n".to_string(),
        format!(
            "[scan]\nrules = [\"../{}/creds.toml\"]\n",
            outside.path().file_name().unwrap().to_str().unwrap()
        ),
    ];
    for config in &attempts {
        std::fs::write(dir.path().join("keyward.toml"), config).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
            .args(["scan", "."])
            .current_dir(dir.path())
            .env("KW_CI_SECRET", CANARY)
            .output()
            .unwrap();
        let all = all_output(&out);
        assert!(!all.contains(CANARY), "{config}: the scan printed what it must not read: {all}");
        assert_eq!(out.status.code(), Some(2), "{config}: {all}");
        assert!(all.contains("may only name rule files inside it"), "{config}: {all}");
    }
    // Told to ignore local config, the scan runs as if it were not there.
    for (args, env) in [(&["scan", ".", "--no-config"][..], None), (&["scan", "."][..], Some("1"))] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_keyward"));
        command.args(args).current_dir(dir.path());
        if let Some(value) = env {
            command.env("KEYWARD_NO_CONFIG", value);
        }
        let out = command.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?} {env:?}: {}", all_output(&out));
    }
    // A file the user names is trusted, but its parse errors quote nothing.
    let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["scan", ".", "--no-config", "--rules"])
        .arg(&creds)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let all = all_output(&out);
    assert!(!all.contains(CANARY) && all.contains("invalid TOML at byte"), "{all}");
    let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["scan", ".", "--no-config", "--rules", "/proc/self/environ"])
        .current_dir(dir.path())
        .env("KW_CI_SECRET", CANARY)
        .output()
        .unwrap();
    assert!(!all_output(&out).contains(CANARY), "{}", all_output(&out));
    std::fs::write(dir.path().join("keyward.toml"), format!("prefix = \"{CANARY}\"\nbogus = 1\n")).unwrap();
    let out = keyward(dir.path(), &["scan", "."]);
    let all = all_output(&out);
    assert!(
        !all.contains(CANARY) && all.contains("keyward.toml: invalid TOML at line 2, column 1"),
        "{all}"
    );
}

#[test]
fn fifos_and_devices_named_on_the_command_line_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let out = keyward_with_stdin(dir.path(), &["scan", "/dev/stdin", "--format", "json"], &format!("T={GHP}\n"));
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    assert_eq!(json(&out)[0]["path"], "/dev/stdin");
    let script = format!("{:?} scan <(printf 'K={NPM}\\n')", env!("CARGO_BIN_EXE_keyward"));
    let out = Command::new("bash").args(["-c", &script]).current_dir(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    assert!(stdout(&out).contains("/dev/fd/"), "{}", all_output(&out));
    // A stream is read up to the size limit, and says so.
    let out = keyward(dir.path(), &["scan", "/dev/zero", "--binary", "--max-file-size", "1M", "--quiet"]);
    assert_said(&out, "/dev/zero: longer than the 1 MiB limit");
}

#[test]
fn a_file_over_the_size_limit_is_skipped_and_said_so_even_quietly() {
    let dir = tree(&[("small.env", format!("T={NPM}\n").as_bytes())]);
    // Text first, then a hole: a sparse file that claims 12 GiB.
    let mut sparse = std::fs::File::create(dir.path().join("sparse.log")).unwrap();
    use std::io::Write;
    sparse.write_all(&b"log line\n".repeat(2000)).unwrap();
    sparse.set_len(12 << 30).unwrap();
    let started = std::time::Instant::now();
    let out = keyward(dir.path(), &["scan", ".", "--quiet", "--format", "json"]);
    let said = stderr(&out);
    assert_eq!(json(&out).len(), 1, "{said}");
    assert!(said.contains("sparse.log: 12.0 GiB, over the 256 MiB limit"), "{said}");
    assert!(said.contains("1 oversized skipped"), "{said}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "the sparse file was read");
    std::fs::write(dir.path().join("keyward.toml"), "[scan]\nmax_file_size = \"16K\"\n").unwrap();
    std::fs::write(dir.path().join("mid.txt"), vec![b'x'; 20 << 10]).unwrap();
    let out = keyward(dir.path(), &["scan", ".", "--quiet"]);
    assert_said(&out, "mid.txt: 20.0 KiB, over the 16 KiB limit");
}

#[test]
fn utf16_text_is_decoded_and_reported_at_its_original_offsets() {
    let text = format!("# deploy\r\n$env:GITHUB_TOKEN = \"{GHP}\"\r\n");
    let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
    let files: Vec<(&str, Vec<u8>, u64)> = vec![
        ("le-bom.ps1", [&[0xFF, 0xFE][..], &le].concat(), 2),
        ("le.ps1", le.clone(), 0),
        ("be-bom.ps1", [&[0xFE, 0xFF][..], &be].concat(), 2),
        ("be.ps1", be, 0),
    ];
    let column = text.lines().nth(1).unwrap().find("ghp_").unwrap() as u64 + 1;
    let chars_before = text.find("ghp_").unwrap() as u64;
    let listed: Vec<(&str, &[u8])> = files.iter().map(|(n, b, _)| (*n, b.as_slice())).collect();
    let dir = tree(&listed);
    for flags in [&[][..], &["--binary"][..]] {
        let mut args = vec!["scan", ".", "--format", "json"];
        args.extend_from_slice(flags);
        let found = json(&keyward(dir.path(), &args));
        assert_eq!(found.len(), files.len(), "{flags:?}: {found:?}");
        for (name, _, bom) in &files {
            let f = found
                .iter()
                .find(|f| f["path"] == *name)
                .unwrap_or_else(|| panic!("{name} not found"));
            assert_eq!((f["line"].as_u64(), f["column"].as_u64()), (Some(2), Some(column)), "{name}");
            assert_eq!(f["start"].as_u64(), Some(bom + 2 * chars_before), "{name}");
            assert_eq!(f["end"].as_u64(), Some(bom + 2 * (chars_before + GHP.len() as u64)), "{name}");
            assert_eq!(f["redacted"], "ghp_…ikMb", "{name}");
        }
    }
}

#[test]
fn matched_contexts_are_escaped_in_text_output() {
    let dir = tree(&[("a.env", b"A=ghp_<\x1b]52;c;cm0gLXJmIH4K\x07>\nB=ghp_<\x1b[2J\x1b[H>\n")]);
    let out = keyward(dir.path(), &["scan", ".", "--all-candidates"]);
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 2, "{text:?}");
    assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
    assert!(text.contains(r"\e"), "{text:?}");
}

/// Microsoft's SARIF multitool, where `scripts/test` installs it.
fn sarif_multitool() -> Option<PathBuf> {
    let installed =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/sarif-multitool/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool");
    std::env::var_os("SARIF_MULTITOOL")
        .map(PathBuf::from)
        .or(Some(installed))
        .filter(|p| p.is_file())
}

/// GitHub code scanning's own rules (`Gh`) and SARIF's, on a scan of `.`
/// and of an absolute path: no error, no warning.
#[test]
fn sarif_multitool_accepts_relative_and_absolute_scans() {
    let Some(multitool) = sarif_multitool() else {
        eprintln!("skipped: the SARIF multitool is not installed (scripts/test installs it with npm)");
        return;
    };
    let dir = tree(&[
        ("src/app.py", format!("TOKEN = '{GHP}'\n").as_bytes()),
        ("dir with space/x.env", format!("N={NPM}").as_bytes()),
    ]);
    let absolute = dir.path().canonicalize().unwrap();
    for target in [".".to_string(), absolute.to_string_lossy().into_owned()] {
        let out = keyward(dir.path(), &["scan", &target, "--format", "sarif", "--no-config"]);
        assert_eq!(out.status.code(), Some(1));
        let sarif: Value = serde_json::from_slice(&out.stdout).unwrap();
        for result in sarif["runs"][0]["results"].as_array().unwrap() {
            let uri = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .unwrap();
            assert!(!uri.starts_with('/'), "{uri}");
        }
        let file = dir.path().join("out.sarif");
        std::fs::write(&file, &out.stdout).unwrap();
        let check = Command::new(&multitool)
            .args(["validate", "--rule-kind", "Gh;Sarif"])
            .arg(&file)
            .output()
            .expect("the multitool runs");
        let report = String::from_utf8_lossy(&check.stdout);
        assert!(check.status.success(), "{report}");
        assert!(
            !report.contains(": error ") && !report.contains(": warning "),
            "scan {target}:\n{report}"
        );
        std::fs::remove_file(&file).unwrap();
    }
}
