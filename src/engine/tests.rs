//! Table-driven engine tests: each row is an input and the findings it must
//! produce, as `rule_id@line:column confidence`.

use super::*;

fn engine(all: bool) -> Engine {
    Engine::new(RuleSet::builtin(), EngineOptions { all_candidates: all }).unwrap()
}

fn describe(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .map(|f| format!("{}@{}:{} {}", f.rule_id, f.line, f.column, f.confidence))
        .collect()
}

const GHP: &str = "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";
const GHP_BAD: &str = "ghp_sdtbJElqcXBXQG2ZdGXTIQlstGDjxn1zJFsA";
const KW: &str = "kw_sk_live_7KWyWfty6uEvcdZQoaZrknnVmnbSF0d57Iq6S0qvhVh0giP4Y";

macro_rules! t {
    ($name:ident, $input:expr, $expected:expr) => {
        t!($name, $input, $expected, false);
    };
    ($name:ident, $input:expr, $expected:expr, $all:expr) => {
        #[test]
        fn $name() {
            let input: String = $input;
            let found = describe(&engine($all).scan_bytes(input.as_bytes()));
            let expected: Vec<&str> = $expected;
            assert_eq!(found, expected, "input: {input:?}");
        }
    };
}

t!(bare_token, GHP.to_string(), vec!["github.token@1:1 high"]);
t!(token_in_env_line, format!("A=1\nTOKEN={GHP}\n"), vec!["github.token@2:7 high"]);
t!(crlf_lines, format!("a\r\nb\r\nkey: {GHP}\r\n"), vec!["github.token@3:6 high"]);
t!(no_final_newline, format!("x\n{GHP}"), vec!["github.token@2:1 high"]);
t!(quoted_json, format!("{{\"t\":\"{GHP}\"}}"), vec!["github.token@1:7 high"]);
t!(
    url_query,
    format!("https://x.test/?access_token={GHP}&a=1"),
    vec!["github.token@1:30 high"]
);
t!(glued_left_is_not_a_token, format!("x{GHP}"), vec![]);
t!(glued_right_is_not_a_token, format!("{GHP}x"), vec![]);
t!(bad_checksum_hidden, GHP_BAD.to_string(), vec![]);
t!(
    bad_checksum_shown_with_all,
    GHP_BAD.to_string(),
    vec!["github.token@1:1 invalid-checksum"],
    true
);
t!(placeholder_hidden, format!("ghp_{}", "X".repeat(36)), vec![]);
t!(
    placeholder_slot_shown_with_all,
    "token: ghp_<your-token>".to_string(),
    vec!["github.token@1:8 placeholder"],
    true
);
// A keyward look-alike (bad checksum) base64-encoded in a Kubernetes
// Secret, at each alignment: `sk_live_` inside it is no Stripe key.
t!(
    base64_keyward_look_alike_is_no_stripe_key_0,
    "data:\n  token: a3dfc2tfbGl2ZV83S1d5V2Z0eTZ1RXZjZFpRb2FacmtublZtbmJTRjBkNTdJcTZTMHF2aFZoMGdpUDRaCg==\n".to_string(),
    vec![]
);
t!(
    base64_keyward_look_alike_is_no_stripe_key_1,
    "data:\n  token: dD1rd19za19saXZlXzdLV3lXZnR5NnVFdmNkWlFvYVpya25uVm1uYlNGMGQ1N0lxNlMwcXZoVmgwZ2lQNFoK\n".to_string(),
    vec![]
);
t!(
    base64_keyward_look_alike_is_no_stripe_key_2,
    "data:\n  token: a2V5PWt3X3NrX2xpdmVfN0tXeVdmdHk2dUV2Y2RaUW9hWnJrbm5WbW5iU0YwZDU3SXE2UzBxdmhWaDBnaVA0Wgo=\n".to_string(),
    vec![]
);
t!(
    base64_keyward_look_alike_is_no_stripe_key_3,
    "data:\n  token: dG9rZW49a3dfc2tfbGl2ZV83S1d5V2Z0eTZ1RXZjZFpRb2FacmtublZtbmJTRjBkNTdJcTZTMHF2aFZoMGdpUDRaCg==\n".to_string(),
    vec![]
);
t!(
    base64_keyward_look_alike_shown_as_such_with_all,
    "token: a3dfc2tfbGl2ZV83S1d5V2Z0eTZ1RXZjZFpRb2FacmtublZtbmJTRjBkNTdJcTZTMHF2aFZoMGdpUDRa".to_string(),
    vec!["keyward.secret-key@1:8 invalid-checksum"],
    true
);
// A routable GitLab token whose CRC fails is a look-alike, not a legacy PAT.
t!(
    gitlab_routable_bad_crc_is_no_legacy_token,
    "GITLAB_TOKEN=glpat-bzox79Of-KE9FD2LjoXXF4CvyxA.0r03gxo7t".to_string(),
    vec![]
);
t!(
    gitlab_routable_sample_found,
    "GITLAB_TOKEN=glpat-bzox79Of-KE9FD2LjoXXF4CvyxA.0r03gxo7s".to_string(),
    vec!["gitlab.routable-token@1:14 high"]
);
t!(
    aws_key_id_and_secret_are_one_finding,
    "aws_access_key_id = AKIAZ7QXRB4M2KD5NW6P\naws_secret_access_key = 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\n".to_string(),
    vec!["aws.secret-access-key@2:25 high"]
);
// A Kubernetes Secret holding an AWS credentials file, in any case.
t!(
    aws_secret_found_by_its_keyword_inside_base64,
    format!(
        "data:\n  credentials: {}\n  other: {}\n",
        ::base64::Engine::encode(
            &::base64::engine::general_purpose::STANDARD,
            "[default]\naws_secret_access_key = Xq3vR8tYb2Lm9Pz/Kw4Nc7Jd1Hs6Fg0Ua5Ee+WiT\n"
        ),
        ::base64::Engine::encode(
            &::base64::engine::general_purpose::STANDARD,
            "x AWS_SECRET_ACCESS_KEY=Xq3vR8tYb2Lm9Pz/Kw4Nc7Jd1Hs6Fg0Ua5Ee+WiT"
        )
    ),
    vec!["aws.secret-access-key@2:61 high", "aws.secret-access-key@3:42 high"]
);
t!(
    uri_password_found_and_variable_skipped,
    "a = postgres://app:Rk29vQx7LmTz@db:5432/x\nb = postgres://app:${DB_PASSWORD}@db/x\n".to_string(),
    vec!["uri.password@1:20 medium"]
);
t!(keyward_own_format, format!("KEY={KW}"), vec!["keyward.secret-key@1:5 high"]);
t!(
    stripe_prefix_inside_keyward_token_ignored,
    KW.to_string(),
    vec!["keyward.secret-key@1:1 high"]
);
t!(
    unicode_columns_count_characters,
    format!("é = \"{GHP}\""),
    vec!["github.token@1:6 high"]
);
t!(
    allow_marker_still_reported_as_allowed,
    format!("{GHP} # keyward:allow"),
    vec!["github.token@1:1 high"]
);
t!(
    two_tokens_one_line,
    format!("{GHP} {KW}"),
    vec!["github.token@1:1 high", "keyward.secret-key@1:42 high"]
);
t!(
    base64_aligned,
    format!("data: {}", b64(&format!("token={GHP}\n"))),
    vec!["github.token@1:15 high"]
);
t!(
    base64_offset_one,
    format!("data: {}", b64(&format!("key={GHP}"))),
    vec!["github.token@1:12 high"]
);
t!(
    base64_offset_two,
    format!("data: {}", b64(&format!("t={GHP}"))),
    vec!["github.token@1:9 high"]
);
t!(
    base64_bad_checksum_hidden,
    format!("data: {}", b64(&format!("token={GHP_BAD}"))),
    vec![]
);
t!(pem_block, format!("x\n{}\n", PEM), vec!["pem.private-key@2:1 high"]);
t!(
    pem_placeholder_hidden,
    "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----".to_string(),
    vec![]
);
t!(pem_in_base64, format!("tls.key: {}", b64(PEM)), vec!["pem.private-key@1:10 high"]);

const PEM: &str = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBvZq3Tz9yq0cXJ1m5Qx7p3c8JfW2kL4nR6sT1uV0wXyoAoGCCqGSM49\nAwEHoUQDQgAE4pQk2m7sVx9r1yT3uW5vX7zY9aB1cD3eF5gH7iJ9kL1mN3oP5qR7\n-----END EC PRIVATE KEY-----";

fn b64(text: &str) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let mut n = [0u8; 3];
        n[..chunk.len()].copy_from_slice(chunk);
        let v = u32::from(n[0]) << 16 | u32::from(n[1]) << 8 | u32::from(n[2]);
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                A[((v >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

#[test]
fn allow_marker_sets_allowed() {
    let found = engine(false).scan_bytes(format!("{GHP} // keyward:allow\n{GHP}\n").as_bytes());
    assert_eq!(found.iter().map(|f| f.allowed).collect::<Vec<_>>(), vec![true, false]);
}

#[test]
fn finding_carries_range_redaction_and_secret() {
    let input = format!("ab {GHP} cd");
    let found = engine(false).scan_bytes(input.as_bytes());
    let f = &found[0];
    assert_eq!((f.start, f.end), (3, 3 + GHP.len() as u64));
    assert_eq!(f.secret.expose(), GHP);
    assert_eq!(f.redacted, "ghp_…ikMb");
    assert!(!f.finding_id.contains(&GHP[4..]));
}

#[test]
fn base64_finding_decodes_the_token() {
    let found = engine(false).scan_bytes(format!("v: {}", b64(&format!("token={KW}"))).as_bytes());
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].secret.expose(), KW);
    assert_eq!(found[0].encoding, Encoding::Base64);
}

#[test]
fn chunk_boundaries_never_lose_or_duplicate_a_token() {
    let e = engine(false);
    let mut text = String::new();
    for i in 0..200 {
        text.push_str(&"filler text ".repeat(i % 7));
        text.push_str(if i % 2 == 0 { GHP } else { KW });
        text.push('\n');
    }
    let expected = describe(&e.scan_bytes(text.as_bytes()));
    assert_eq!(expected.len(), 200);
    for chunk in [1usize, 7, 64, 1000, 4096] {
        let out = e.scan_in_reads(text.as_bytes(), chunk, 13);
        assert_eq!(describe(&out), expected, "chunk {chunk}");
    }
}

#[test]
fn deployment_prefix_finds_other_prefix() {
    let mut rules = RuleSet::builtin();
    rules.add_deployment_prefix("acme").unwrap();
    let e = Engine::new(rules, EngineOptions::default()).unwrap();
    let head = "acme_sk_live_7KWyWfty6uEvcdZQoaZrknnVmnbSF0d57Iq6S0qvhVh";
    let token = format!(
        "{head}{}",
        std::str::from_utf8(&crate::keys::checksum::crc32_base62(head.as_bytes())).unwrap()
    );
    assert_eq!(describe(&e.scan_bytes(token.as_bytes())), vec!["keyward.secret-key@1:1 high"]);
}

#[test]
fn pem_in_a_doc_comment_redacts_to_base64() {
    let commented: String = PEM.lines().map(|l| format!("/// {l}\n")).collect();
    let found = engine(false).scan_bytes(commented.as_bytes());
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].redacted, "-----BEGIN EC PRIVATE KEY-----…5qR7");
}

// Found by fuzzing against the reference: the base64 form of a URL prefix
// that contains another prefix of its rule started at the inner one.
t!(
    base64_match_starts_at_the_longest_prefix,
    "eD1odHRwczovL2hvb2tzLnNsYWNrLmNvbS9zZXJ2aWNlcy9UODlaUUpPQkJSOC9CNDBRVUlGTDlDNi9xR0xlWG1sSzNncjBlRlUzRWhXdDl4bHY=".to_string(),
    vec!["slack.webhook-url@1:3 high"]
);

// Found by fuzzing: a two-byte prefix widened only by its charset missed
// its template slots.
t!(
    short_prefix_template_slot_shown_with_all,
    "TWILIO=SK<your-key>".to_string(),
    vec!["twilio.api-key@1:8 placeholder"],
    true
);

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// A token planted anywhere in random printable text is found exactly
    /// once, at its offset and line, whatever the chunk size and however
    /// the reads are cut.
    #[test]
    fn a_planted_token_is_found_at_any_offset_across_chunk_boundaries(
        before in "[ -~\n]{0,400}",
        after in "[ -~\n]{0,400}",
        chunk in 1usize..300,
        read in 1usize..64,
    ) {
        let e = engine(false);
        let text = format!("{before} {GHP} {after}");
        let out = e.scan_in_reads(text.as_bytes(), chunk, read);
        let planted: Vec<&Finding> = out.iter().filter(|f| f.secret.expose() == GHP).collect();
        proptest::prop_assert_eq!(planted.len(), 1, "found {:?}", describe(&out));
        let start = before.len() as u64 + 1;
        proptest::prop_assert_eq!(planted[0].start, start);
        proptest::prop_assert_eq!(planted[0].line, before.matches('\n').count() as u64 + 1);
        for f in &out {
            proptest::prop_assert!(f.end as usize <= text.len(), "a finding ends outside the input");
        }
    }
}

/// Pieces that make near-misses likely: every prefix, valid tokens, their
/// base64 forms, word bytes, separators and template openers.
fn piece() -> impl proptest::strategy::Strategy<Value = String> {
    use ::base64::Engine as _;
    use proptest::prelude::*;
    let mut fixed: Vec<String> = RuleSet::builtin().rules().iter().flat_map(|r| r.prefixes.clone()).collect();
    fixed.extend([GHP, GHP_BAD, KW].map(str::to_string));
    fixed.extend([GHP, KW].map(|t| ::base64::engine::general_purpose::STANDARD.encode(t)));
    fixed.extend(
        [
            "-----BEGIN RSA PRIVATE KEY-----",
            "-----END RSA PRIVATE KEY-----",
            "keyward:allow",
            "${",
            "<",
        ]
        .map(str::to_string),
    );
    prop_oneof![proptest::sample::select(fixed), "[A-Za-z0-9+/=_\\-]{1,40}", "[ \n\"'=:]{1,3}",]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// The streamed engine and the brute-force reference agree on text
    /// dense with prefixes, tokens and their base64 forms.
    #[test]
    fn the_engine_agrees_with_the_reference_matcher(
        pieces in proptest::collection::vec(piece(), 0..40),
        chunk in 1usize..400,
        read in 1usize..97,
        all in proptest::bool::ANY,
    ) {
        let e = engine(all);
        let text = pieces.concat();
        let fast = comparable(&e.scan_in_reads(text.as_bytes(), chunk, read));
        let slow = comparable(&e.reference_scan(text.as_bytes()));
        proptest::prop_assert_eq!(fast, slow, "input: {:?}", text);
    }
}
