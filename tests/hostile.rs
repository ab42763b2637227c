//! The hostile-input table, one test per row, against a real server on
//! loopback. Every row asserts the clear error a client gets and that
//! nothing changed: no key, job, incident or file appeared that should not.
//!
//! | Area     | Rows |
//! | -------- | ---- |
//! | Bodies   | malformed and truncated JSON; a 1 GB body; deeply nested JSON |
//! | Bytes    | invalid UTF-8; NUL bytes; a single 100 MB line |
//! | Strings  | path traversal; SQL metacharacters in every string field; header injection |
//! | Webhooks | replayed and reordered deliveries; clock skew on signatures |
//! | Enums    | unknown enum values |

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::fakes::{keys_endpoint, PartnerSigner, SmtpSink};
use common::hosts::FileChange;
use common::pushes::*;
use serde_json::{json, Value};

const SQL_METACHARACTERS: &[&str] = &[
    "'; DROP TABLE api_keys; --",
    "\" OR \"1\"=\"1",
    "' OR '1'='1",
    "x'); DELETE FROM projects; --",
    "%_\\' $1 ?; /* */",
    "Robert'); DROP TABLE audit_events;--",
];

async fn sqlite() -> common::Server {
    common::Server::start(common::Backend::Sqlite).await.unwrap()
}

async fn key_count(s: &common::Server) -> usize {
    let (status, list) = s.admin("GET", &format!("/v1/projects/{}/keys", s.project), None).await;
    assert_eq!(status, 200, "{list}");
    list["keys"].as_array().unwrap().len()
}

async fn raw_post(s: &common::Server, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let response = s
        .http
        .post(format!("{}{path}", s.base))
        .bearer_auth(&s.admin)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn no_push_jobs(s: &common::Server) -> bool {
    let store = s.service.store();
    store.jobs_of_kind("push.github").await.unwrap().is_empty() && store.jobs_of_kind("push.gitlab").await.unwrap().is_empty()
}

fn keys_path(s: &common::Server) -> String {
    format!("/v1/projects/{}/keys", s.project)
}

// Bodies ------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_json_at_every_byte_is_refused_and_changes_nothing() {
    let s = sqlite().await;
    let before = key_count(&s).await;
    let whole = br#"{"name": "truncated", "kind": "secret", "mode": "live", "scopes": ["analytics:read"]}"#;
    for cut in 0..whole.len() {
        let (status, body) = raw_post(&s, &keys_path(&s), "application/json", whole[..cut].to_vec()).await;
        assert_eq!(status, 400, "cut at {cut}: {body}");
        assert_eq!(body["error"]["code"], "malformed", "cut at {cut}: {body}");
    }
    for (bad, code) in [
        (&br#"{"name": }"#[..], 400),
        (br#"{"name": "t", "kind": "secret", "mode": "live", "scopes": []} trailing"#, 400),
        (b"\xef\xbb\xbf{}", 400),
        (b"[]", 422),
        (b"null", 422),
        (b"\"a string\"", 422),
        (
            br#"{"name": "dup", "name": "dup2", "kind": "secret", "mode": "live", "scopes": []}"#,
            422,
        ),
        (
            br#"{"name": "x", "kind": "secret", "mode": "live", "scopes": "analytics:read"}"#,
            422,
        ),
    ] {
        let (status, body) = raw_post(&s, &keys_path(&s), "application/json", bad.to_vec()).await;
        assert_eq!(status, code, "{:?}: {body}", String::from_utf8_lossy(bad));
    }
    assert_eq!(key_count(&s).await, before, "no key was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gigabyte_body_is_refused_before_it_is_read() {
    let e = env(common::Backend::Sqlite).await.unwrap();
    let bearer = format!("Bearer {}", e.s.admin);
    let gigabyte = 1 << 30;
    for (path, headers) in [
        ("/v1/keys/verify", vec![]),
        (keys_path(&e.s).as_str(), vec![("Authorization", bearer.as_str())]),
        ("/webhooks/github", vec![("X-GitHub-Event", "push"), ("X-GitHub-Delivery", "big")]),
        (
            "/webhooks/gitlab",
            vec![("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", GITLAB_TOKEN)],
        ),
        ("/partners/github/secret-scanning", vec![]),
        ("/console/login", vec![]),
    ] {
        let started = Instant::now();
        let status = common::post_declaring_length(&e.s.base, path, &headers, gigabyte);
        eprintln!("{path}: {status} after {:?} with 0 of 1 GiB sent", started.elapsed());
        assert_eq!(
            status, 413,
            "{path}: answered from the declared length, with no byte of the body sent"
        );
    }

    // Without a declared length the body streams in and is cut off at the
    // limit: the server answers long before 1 GiB has been sent.
    let (status, sent) = post_chunked_until_answered(&e.s.base, "/webhooks/github", gigabyte);
    eprintln!("chunked: {status} after {sent} bytes sent");
    assert_eq!(status, 413);
    assert!(sent < 64 << 20, "the server read {sent} bytes of a body it must refuse");
    assert!(no_push_jobs(&e.s).await);
}

/// Streams up to `limit` bytes of a chunked body from one thread while
/// another waits for the answer; returns the status and the bytes sent.
fn post_chunked_until_answered(base: &str, path: &str, limit: usize) -> (u16, usize) {
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\n\
         X-GitHub-Delivery: chunked\r\nX-Hub-Signature-256: sha256=00\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let chunk = vec![b'['; 64 << 10];
        let framed = [format!("{:x}\r\n", chunk.len()).into_bytes(), chunk, b"\r\n".to_vec()].concat();
        let mut sent = 0;
        while sent < limit && writer.write_all(&framed).is_ok() {
            sent += framed.len();
        }
        sent
    });
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut answer = [0u8; 64];
    let n = stream.read(&mut answer).unwrap_or(0);
    let status = common::status_of(&answer[..n]);
    let _ = stream.shutdown(std::net::Shutdown::Both);
    (status, sender.join().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_json_is_refused_without_overflowing_the_stack() {
    let e = env(common::Backend::Sqlite).await.unwrap();
    let before = key_count(&e.s).await;
    for depth in [200, 10_000, 30_000] {
        let nest = || format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        // Where a field is read, nesting is a type error at its first level.
        let key = format!(r#"{{"name": "deep", "kind": "secret", "mode": "live", "scopes": {}}}"#, nest());
        let (status, body) = raw_post(&e.s, &keys_path(&e.s), "application/json", key.into_bytes()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("invalid")),
            "depth {depth}: {body}"
        );
        let push = format!(
            r#"{{"ref": "refs/heads/main", "before": "{BEFORE}", "after": "{C1}", "commits": {}}}"#,
            nest()
        );
        let (status, body) = e.push(&format!("nested-{depth}"), push.into_bytes()).await;
        assert_eq!(status, 422, "webhook, depth {depth}: {body}");
        // An unknown field is skipped without recursion, however deep.
        let verify = format!(r#"{{"key": "kw_x", "extra": {}}}"#, nest());
        let (status, body) = raw_post(&e.s, "/v1/keys/verify", "application/json", verify.into_bytes()).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (200, Some("MALFORMED")),
            "verify, depth {depth}: {body}"
        );
        // A document parsed whole stops at serde_json's depth limit of 128.
        let nul = format!(r#"{{"key": "\u0000", "extra": {}}}"#, nest());
        let (status, body) = raw_post(&e.s, "/v1/keys/verify", "application/json", nul.into_bytes()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("invalid")),
            "depth {depth}: {body}"
        );
    }
    assert_eq!(key_count(&e.s).await, before);
    assert!(no_push_jobs(&e.s).await);
    assert_eq!(e.s.code(&e.secret, None, None).await, "VALID", "the server is still up");
}

// Bytes -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_is_refused_everywhere() {
    let e = env(common::Backend::Sqlite).await.unwrap();
    let before = key_count(&e.s).await;
    let invalid = b"{\"name\": \"caf\xe9\", \"kind\": \"secret\", \"mode\": \"live\", \"scopes\": []}".to_vec();
    let (status, body) = raw_post(&e.s, &keys_path(&e.s), "application/json", invalid).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("malformed")), "{body}");
    let (status, _) = raw_post(&e.s, "/v1/keys/verify", "application/json", b"{\"key\": \"kw_\xff\xfe\"}".to_vec()).await;
    assert_eq!(status, 400);
    let mut push = push_payload(BEFORE, C1, &[C1], false, false);
    let at = push.windows(15).position(|w| w == b"refs/heads/main").unwrap();
    push[at + 12] = 0xff;
    let (status, body) = e.push("utf8", push).await;
    assert_eq!(status, 400, "a signed webhook with invalid UTF-8: {body}");
    let (status, _) = e.deliver("utf8-unsigned", "push", b"\xff\xff", None).await;
    assert_eq!(status, 401);
    assert_eq!(key_count(&e.s).await, before);
    assert!(no_push_jobs(&e.s).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_bytes_are_refused_on_both_backends() {
    for backend in [common::Backend::Sqlite, common::Backend::Postgres] {
        let Some(s) = common::Server::start(backend).await else { continue };
        let before = key_count(&s).await;
        let rows = [
            (
                "POST",
                keys_path(&s),
                json!({"name": "nul\u{0}name", "kind": "secret", "mode": "live", "scopes": []}),
            ),
            (
                "POST",
                keys_path(&s),
                json!({"name": "nul_desc", "description": "a\u{0}b", "scopes": []}),
            ),
            ("POST", "/v1/projects".to_string(), json!({"name": "shop\u{0}"})),
            (
                "POST",
                format!("/v1/projects/{}/members", s.project),
                json!({"email": "a\u{0}@example.com", "role": "member"}),
            ),
            ("POST", "/v1/keys/verify".to_string(), json!({"key": "kw_sk_live_\u{0}"})),
            ("POST", keys_path(&s), json!({"name\u{0}": "x", "scopes": []})),
        ];
        for (method, path, body) in rows {
            let (status, answer) = s.admin(method, &path, Some(body.clone())).await;
            assert_eq!(status, 422, "{backend:?} {path} {body}: {answer}");
            assert!(answer["error"]["message"].as_str().unwrap().contains("NUL"), "{answer}");
        }
        for path in ["/v1/keys/key_%00", "/v1/projects/%00/keys", "/v1/projects/x/audit?action=%00"] {
            let (status, answer) = s.admin("GET", path, None).await;
            assert_eq!(status, 400, "{backend:?} {path}: {answer}");
        }
        assert_eq!(key_count(&s).await, before, "{backend:?}");
        let (status, kept) = s
            .admin(
                "POST",
                &keys_path(&s),
                Some(json!({"name": "escaped_text", "description": "\\u0000 is text", "scopes": []})),
            )
            .await;
        assert_eq!(status, 201, "an escaped backslash is no NUL: {kept}");
        assert_eq!(kept["key"]["description"], "\\u0000 is text");
        let before = before + 1;
        assert_eq!(key_count(&s).await, before, "{backend:?}");
        let (_, projects) = s.admin("GET", "/v1/projects", None).await;
        assert_eq!(projects["projects"].as_array().unwrap().len(), 1, "{backend:?}: {projects}");
    }
}

#[test]
fn a_single_line_of_100_mb_is_scanned_whole() {
    const GHP: &str = "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";
    let dir = tempfile::tempdir().unwrap();
    let mut line = vec![b'x'; 100 << 20];
    let offsets = [0usize, 50 << 20, (100 << 20) - GHP.len()];
    for &at in &offsets {
        line[at.saturating_sub(1)] = b' ';
        line[at..at + GHP.len()].copy_from_slice(GHP.as_bytes());
        if at + GHP.len() < line.len() {
            line[at + GHP.len()] = b' ';
        }
    }
    line[0] = b'g';
    std::fs::write(dir.path().join("bundle.min.js"), &line).unwrap();
    drop(line);
    let started = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["scan", ".", "--format", "jsonl"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    eprintln!("100 MB line scanned in {:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let found: Vec<(u64, u64)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|f| (f["line"].as_u64().unwrap(), f["start"].as_u64().unwrap()))
        .collect();
    assert_eq!(found, offsets.iter().map(|&o| (1, o as u64)).collect::<Vec<_>>());
}

// Strings -----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_traversal_in_names_and_paths_goes_nowhere() {
    let s = sqlite().await;
    let before = key_count(&s).await;
    for name in ["../../etc/passwd", "..\\..\\boot.ini", "a/../../b", "%2e%2e%2f"] {
        let (status, body) = s
            .admin(
                "POST",
                &keys_path(&s),
                Some(json!({"name": name, "kind": "secret", "mode": "live", "scopes": []})),
            )
            .await;
        assert_eq!(status, 422, "{name}: {body}");
    }
    for path in [
        "/v1/keys/..%2F..%2F..%2Fetc%2Fpasswd",
        "/v1/projects/..%2F..%2Fetc/keys",
        "/console/..%2F..%2Fetc%2Fpasswd",
    ] {
        let (status, body) = s.admin("GET", path, None).await;
        assert!(status == 404 || status == 401 || status == 303, "{path}: {status} {body}");
        assert!(!body.to_string().contains("root:"), "{path}: {body}");
    }
    for raw_path in ["/../../../../etc/passwd", "/v1/../../etc/passwd", "/console/../../../etc/passwd"] {
        let answer = raw_get(&s.base, raw_path);
        assert!(!answer.contains("root:x:0:0"), "{raw_path}: {answer}");
        assert!(
            answer.starts_with("HTTP/1.1 4") || answer.starts_with("HTTP/1.1 3"),
            "{raw_path}: {answer}"
        );
    }
    let (status, project) = s.admin("POST", "/v1/projects", Some(json!({"name": "../../../tmp/evil"}))).await;
    assert_eq!(status, 201, "a project name is free text: {project}");
    assert_eq!(
        project["project"]["name"], "../../../tmp/evil",
        "and is kept verbatim, never used as a path"
    );
    let dir = s.sqlite_dir.as_ref().unwrap().path();
    let files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(files.iter().all(|f| f.starts_with("keyward.db")), "{files:?}");
    assert_eq!(key_count(&s).await, before);
}

fn raw_get(base: &str, path: &str) -> String {
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

both_backends!(sql_metacharacters_are_data_in_every_string_field, |s: common::Server| async move {
    let mut project_ids = Vec::new();
    for (i, text) in SQL_METACHARACTERS.iter().enumerate() {
        let (status, project) = s.admin("POST", "/v1/projects", Some(json!({"name": text}))).await;
        assert_eq!(status, 201, "{text}: {project}");
        assert_eq!(project["project"]["name"], *text);
        project_ids.push(project["project"]["id"].as_str().unwrap().to_string());

        let (id, secret) = s
            .create_key(json!({"name": format!("k{i}"), "description": text, "scopes": []}))
            .await;
        let (_, got) = s.admin("GET", &format!("/v1/keys/{id}"), None).await;
        assert_eq!(got["description"], *text, "round trip");
        let (status, patched) = s
            .admin(
                "PATCH",
                &format!("/v1/keys/{id}"),
                Some(json!({"description": format!("{text}{text}")})),
            )
            .await;
        assert_eq!(status, 200, "{patched}");
        assert_eq!(s.code(&secret, None, None).await, "VALID");

        for (method, path, body) in [
            ("POST", keys_path(&s), json!({"name": text, "scopes": []})),
            ("POST", keys_path(&s), json!({"name": "ok_name", "scopes": [text]})),
            (
                "POST",
                format!("/v1/projects/{}/members", s.project),
                json!({"email": text, "role": "member"}),
            ),
            (
                "POST",
                format!("/v1/projects/{}/members", s.project),
                json!({"email": "a@example.com", "role": text}),
            ),
            (
                "PUT",
                format!("/v1/projects/{}/alert-settings", s.project),
                json!({"webhook_url": text}),
            ),
            ("POST", format!("/v1/keys/{id}/revoke"), json!({"reason": text})),
        ] {
            let (status, answer) = s.admin(method, &path, Some(body.clone())).await;
            assert!(status == 422 || status == 200, "{method} {path} {body}: {status} {answer}");
        }
        let encoded: String = url_encode(text);
        let (status, audit) = s
            .admin("GET", &format!("/v1/projects/{}/audit?action={encoded}", s.project), None)
            .await;
        assert_eq!(status, 200, "{audit}");
        assert_eq!(
            audit["events"].as_array().unwrap().len(),
            0,
            "a filter that matches nothing returns nothing: {text}"
        );
        let (status, _) = s.admin("GET", &format!("/v1/keys/{encoded}"), None).await;
        assert_eq!(status, 404);
        assert_eq!(s.code(text, None, None).await, "MALFORMED");
    }
    let owner = s.service.store().user_id_by_email("owner@example.com").await.unwrap().unwrap();
    let projects = s.service.projects(&keyward::service::Caller::person(&owner)).await.unwrap();
    assert_eq!(projects.len(), 1 + SQL_METACHARACTERS.len(), "{projects:?}");
    for text in SQL_METACHARACTERS {
        assert!(projects.iter().any(|p| p.name == text.trim()), "{text} stored verbatim");
    }
    let (_, audit) = s.admin("GET", &format!("/v1/projects/{}/audit", s.project), None).await;
    assert!(audit["events"].as_array().unwrap().len() > SQL_METACHARACTERS.len());
    let (checked, broken) = s.service.store().verify_audit_chain().await.unwrap();
    assert!(checked > 0 && broken.is_none(), "the audit chain is intact");
});

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_injection_goes_nowhere() {
    let github = PartnerSigner::new(3, "github-key-1");
    let (smtp, smtp_url) = SmtpSink::start().await;
    let setup = common::Setup {
        github_keys_url: Some(keys_endpoint(&[(&github, true)]).await),
        smtp_url: Some(smtp_url),
        ..common::Setup::default()
    };
    let s = common::Server::start_with(common::Backend::Sqlite, setup).await.unwrap();
    let (status, body) = s
        .admin(
            "PUT",
            &format!("/v1/projects/{}/alert-settings", s.project),
            Some(json!({"email": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // A request id that is not short and printable is replaced, not echoed.
    for hostile in ["a b", "x\tSet-Cookie: y=1", &"z".repeat(500)] {
        let response = s
            .http
            .get(format!("{}/healthz", s.base))
            .header("x-request-id", hostile)
            .send()
            .await
            .unwrap();
        let echoed = response.headers()["x-request-id"].to_str().unwrap().to_string();
        assert_ne!(echoed, hostile);
        assert_eq!(echoed.len(), 26, "a fresh ULID: {echoed}");
        assert!(response.headers().get("set-cookie").is_none());
    }

    // A leak whose place carries CRLF, an SMTP end-of-data and headers must
    // reach the owner as one plain email with no extra header or recipient.
    let (_, secret) = s.create_key(json!({"name": "smtp_target", "scopes": []})).await;
    let injected = "https://github.com/o/r/blob/abc/x.env\r\nBcc: thief@example.com\r\n\r\n.\r\nMAIL FROM:<thief@example.com>\r\n#L1";
    let body =
        serde_json::to_vec(&json!([{"token": secret, "type": "keyward_secret_key", "url": injected, "source": "content\r\nX-Evil: 1"}]))
            .unwrap();
    let response = s
        .http
        .post(format!("{}/partners/github/secret-scanning", s.base))
        .header("content-type", "application/json")
        .header("GITHUB-PUBLIC-KEY-IDENTIFIER", &github.key_id)
        .header("GITHUB-PUBLIC-KEY-SIGNATURE", github.sign(&body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let started = Instant::now();
    while smtp.count() == 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "no email was sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let messages = smtp.messages.lock().unwrap().clone();
    assert_eq!(messages.len(), 1, "one message, none smuggled: {messages:?}");
    let headers = messages[0].split("\n\n").next().unwrap().to_ascii_lowercase();
    assert!(!headers.contains("bcc:") && !headers.contains("x-evil"), "{headers}");
    assert!(!headers.contains("thief"), "{headers}");
    assert!(!messages[0].contains(&secret));
}

// Webhooks ----------------------------------------------------------------

both_backends_with!(replayed_and_reordered_webhooks_are_each_read_once, env, |e: Env| async move {
    let (second_id, second_secret) = e.s.create_key(json!({"name": "second_key", "scopes": []})).await;
    e.github.add_commit(C1, vec![FileChange::new("a.env", &e.leak_patch())]);
    e.github
        .add_commit(C2, vec![FileChange::new("b.env", &format!("@@ -0,0 +1 @@\n+KEY={second_secret}"))]);
    e.github.add_range(BEFORE, C1, &[C1]);
    e.github.add_range(C1, C2, &[C2]);

    // The later push arrives first.
    let (status, _) = e.push("delivery-2", push_payload(C1, C2, &[C2], false, false)).await;
    assert_eq!(status, 202);
    let (status, _) = e.push("delivery-1", push_payload(BEFORE, C1, &[C1], false, false)).await;
    assert_eq!(status, 202);
    e.wait_for_jobs("push.github", 2).await;
    assert_eq!(e.code().await, "REVOKED");
    assert_eq!(e.s.code(&second_secret, None, None).await, "REVOKED", "{second_id}");

    // Redeliveries of either, before or after processing, are not queued.
    for delivery in ["delivery-1", "delivery-2"] {
        let (status, body) = e.push(delivery, push_payload(BEFORE, C1, &[C1], false, false)).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("duplicate")), "{body}");
    }
    // A captured payload replayed under a fresh delivery id (which the
    // signature does not cover) is known by its content: not queued again.
    let alerts_before = e.alerts.count();
    let (status, body) = e.push("delivery-replayed", push_payload(BEFORE, C1, &[C1], false, false)).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("duplicate")), "{body}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(e.wait_for_jobs("push.github", 2).await.len(), 2, "no third job");
    let incidents = e.incidents().await;
    assert_eq!(incidents.len(), 2, "{incidents:?}");
    assert_eq!(e.alerts.count(), alerts_before, "no second alert");
    assert_eq!(e.github.hits(&format!("/compare/{BEFORE}...{C1}")), 1, "the replay was not read");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_skew_cannot_break_or_bypass_signatures() {
    use keyward::response::alerts::{verify_signature_header, SignatureRejected, SIGNATURE_TOLERANCE_SECS};
    let e = env(common::Backend::Sqlite).await.unwrap();
    // GitHub signs only the body: a delivery dated far in the past or the
    // future verifies, and its replay protection is the delivery id.
    let body = push_payload(BEFORE, C1, &[C1], false, false);
    for (delivery, date) in [
        ("past", "Mon, 01 Jan 2001 00:00:00 GMT"),
        ("future", "Fri, 01 Jan 2100 00:00:00 GMT"),
    ] {
        let response =
            e.s.http
                .post(format!("{}/webhooks/github", e.s.base))
                .header("x-github-event", "ping")
                .header("x-github-delivery", delivery)
                .header("date", date)
                .header("x-hub-signature-256", hosts_signature(&body))
                .body(body.clone())
                .send()
                .await
                .unwrap();
        assert_eq!(response.status(), 200, "{delivery}");
    }

    // keyward's own alert signature carries its time: a receiver whose
    // clock is off by up to the tolerance accepts it, beyond it refuses.
    e.github.add_commit(C1, vec![FileChange::new("a.env", &e.leak_patch())]);
    e.github.add_range(BEFORE, C1, &[C1]);
    e.push("skew", body).await;
    e.wait_for_alert().await;
    let (headers, alert) = e.alerts.hits.lock().unwrap()[0].clone();
    let header = headers["keyward-signature"].to_str().unwrap().to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let secret = "alert-signing-secret-0123";
    for skew in [-290, -60, 0, 60, 290] {
        assert_eq!(
            verify_signature_header(secret, &header, &alert, now + skew, SIGNATURE_TOLERANCE_SECS),
            Ok(()),
            "{skew}"
        );
    }
    for skew in [-3600, -400, 400, 86_400] {
        assert!(
            matches!(
                verify_signature_header(secret, &header, &alert, now + skew, SIGNATURE_TOLERANCE_SECS),
                Err(SignatureRejected::Skewed(_))
            ),
            "{skew}"
        );
    }
}

fn hosts_signature(body: &[u8]) -> String {
    common::hosts::github_signature(GITHUB_SECRET, body)
}

// Enums -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_enum_values_are_refused_and_change_nothing() {
    let e = env(common::Backend::Sqlite).await.unwrap();
    let s = &e.s;
    let before = key_count(s).await;
    let rows = [
        (
            "POST",
            keys_path(s),
            json!({"name": "e1", "kind": "admin", "mode": "live", "scopes": []}),
        ),
        (
            "POST",
            keys_path(s),
            json!({"name": "e2", "kind": "secret", "mode": "staging", "scopes": []}),
        ),
        (
            "POST",
            keys_path(s),
            json!({"name": "e3", "kind": "SECRET", "mode": "live", "scopes": []}),
        ),
        ("POST", keys_path(s), json!({"name": "e4", "kind": 1, "mode": "live", "scopes": []})),
        (
            "PUT",
            format!("/v1/projects/{}/entitlements/analytics", s.project),
            json!({"state": "gold"}),
        ),
        (
            "POST",
            format!("/v1/projects/{}/members", s.project),
            json!({"email": "m@example.com", "role": "superuser"}),
        ),
        (
            "POST",
            "/v1/keys/verify".to_string(),
            json!({"key": "kw_sk_live_x", "mode": "prod"}),
        ),
        (
            "PUT",
            format!("/v1/projects/{}/alert-settings", s.project),
            json!({"leak_policy": "ignore"}),
        ),
    ];
    for (method, path, body) in rows {
        let (status, answer) = s.admin(method, &path, Some(body.clone())).await;
        assert!([400, 404, 422].contains(&status), "{method} {path} {body}: {status} {answer}");
        assert!(answer["error"]["message"].is_string(), "a clear error: {answer}");
    }
    assert_eq!(key_count(s).await, before);
    let (_, entitlements) = s.admin("GET", &format!("/v1/projects/{}/entitlements", s.project), None).await;
    assert!(!entitlements.to_string().contains("gold"), "{entitlements}");

    // Code hosts send many event kinds; an unknown one is acknowledged and ignored.
    let (status, body) = e.deliver("enum-1", "sponsorship", b"{}", Some(hosts_signature(b"{}"))).await;
    assert_eq!((status, body["status"].as_str()), (202, Some("ignored")), "{body}");
    let gitlab = s
        .http
        .post(format!("{}/webhooks/gitlab", s.base))
        .header("x-gitlab-event", "Push Hook")
        .header("x-gitlab-token", GITLAB_TOKEN)
        .body(r#"{"object_kind": "teleport"}"#)
        .send()
        .await
        .unwrap();
    assert!(gitlab.status() == 202 || gitlab.status() == 422, "{}", gitlab.status());
    assert!(no_push_jobs(s).await);

    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["scan", ".", "--format", "xml"])
        .output()
        .unwrap();
    assert_eq!(cli.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&cli.stderr).contains("xml"));
}
