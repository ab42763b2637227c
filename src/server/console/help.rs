//! Page help and the Integrate page: static text, no JavaScript. Each
//! help panel answers only from its own page (questions and answers a
//! person on that page asks), and says so for anything else, as the page
//! help of the seeds does. The Integrate page gives copy-ready snippets
//! that verify a key against this server, in five languages.

use super::escape::esc;

/// A page's questions and their answers.
pub type Questions = &'static [(&'static str, &'static str)];

pub const KEYS: Questions = &[
    (
        "Why can't I see a key's secret?",
        "A secret is shown once, when the key is made. keyward keeps only a keyed hash of it and its last four characters, so nobody, operators included, can show it again. Lost it? Rotate the key.",
    ),
    (
        "What do Live and Test mean?",
        "Live keys reach real data; test keys reach test data only, and a test key may never change anything live. Verify reports the mode and can require one.",
    ),
    (
        "What is the difference between revoke, rotate and disable?",
        "Revoke stops a key for good. Rotate makes a replacement and stops the old key now or after an overlap you choose. Disable (on the API) stops a key until it is enabled again.",
    ),
    (
        "Why was a key revoked on its own?",
        "keyward found it where it must never be (a push, a public feed, a watched folder, a partner report) and the project's leak policy is to revoke. Its status links to the incident that says where.",
    ),
    (
        "What are personal and team keys?",
        "A personal key belongs to the person who made it and stops working for them if they leave. A team key belongs to a service account, acts with its role, and outlives its maker.",
    ),
];

pub const NEW_KEY: Questions = &[
    (
        "What key type should I choose?",
        "The project default key for simple server-side setup; a product-scoped key when a worker needs one product; read-only analytics for dashboards; a backend secret for trusted servers; the service role only for tightly controlled administration (it can do everything).",
    ),
    (
        "What does expiration mean?",
        "After its expiry the key answers EXPIRED and stops working by itself, with no job to run. Shorter keys limit what a leak can do; the owner and the project's admins are told 7 and 1 days ahead.",
    ),
    (
        "What are safety confirmations?",
        "Statements you confirm before the key is made: backend keys stay on servers, a service role key is dangerous, the secret is shown once, and a product your plan does not include stays blocked whatever the scopes.",
    ),
    (
        "Why is the secret shown once?",
        "keyward stores only a keyed hash of it, so it cannot show it again. Copy it into your secret store before you leave the page.",
    ),
    (
        "What are scopes?",
        "What the key may do, as resource:action (analytics:read). A call needs the scope and its product's entitlement; a key never gets a scope outside the deployment's catalog.",
    ),
];

pub const INCIDENTS: Questions = &[
    (
        "What is an incident?",
        "One leaked key, however often it was seen: where it was first found, every place since, and what keyward did.",
    ),
    (
        "What do the actions mean?",
        "revoked: keyward revoked the key when it was found; notified: the project's policy is notify-only, so it still works; already_revoked; publishable: meant to be public, never revoked; unknown: a keyward-format token that matches no key here.",
    ),
    (
        "What should I do now?",
        "Issue a replacement, deploy it, and look at the place the key was found: remove it from the file, and from the history if it is in a repository.",
    ),
];

pub const AUDIT: Questions = &[
    (
        "What is recorded?",
        "Every change to keys (created, updated, revoked, rotated, leak detected, expiring), members and settings: who, when, and what, never a secret.",
    ),
    (
        "How do I know nobody edited it?",
        "Each event holds the SHA-256 of the one before: `keyward audit verify` names the first event whose link or content does not match. The export carries its own SHA-256 in a header.",
    ),
    (
        "What do the actors mean?",
        "user: a person in the console, key: a key calling the API, system: keyward itself (the leak response, expiry notices).",
    ),
];

/// The panel: each question opens on its answer; anything else is not
/// this page's to answer.
pub fn panel(questions: Questions) -> String {
    let mut out =
        String::from(r#"<details class="card help"><summary>Page help</summary><p class="muted">Answers about this page only.</p>"#);
    for (question, answer) in questions {
        out.push_str(&format!(
            r#"<details class="question"><summary>{}</summary><p>{}</p></details>"#,
            esc(question),
            esc(answer)
        ));
    }
    out.push_str(r#"<p class="fallback">Anything else? I can help with this page only. I don't see that information here.</p></details>"#);
    out
}

/// Snippets that verify `$KEYWARD_KEY` against the server at `url`, each
/// printing the verify code (`VALID`, `REVOKED`, …).
pub fn snippets(url: &str) -> Vec<(&'static str, &'static str, String)> {
    let verify = format!("{}/v1/keys/verify", url.trim_end_matches('/'));
    vec![
        (
            "curl",
            "sh",
            format!(
                "curl -s {verify} -H 'Content-Type: application/json' \\\n  -d \"{{\\\"key\\\": \\\"$KEYWARD_KEY\\\", \\\"scope\\\": \\\"analytics:read\\\"}}\""
            ),
        ),
        (
            "Python",
            "python",
            format!(
                "import json, os, urllib.request\n\nbody = json.dumps({{\"key\": os.environ[\"KEYWARD_KEY\"], \"scope\": \"analytics:read\"}}).encode()\nrequest = urllib.request.Request(\"{verify}\", data=body, headers={{\"Content-Type\": \"application/json\"}})\nwith urllib.request.urlopen(request) as response:\n    print(json.load(response)[\"code\"])"
            ),
        ),
        (
            "Node.js",
            "javascript",
            format!(
                "const response = await fetch(\"{verify}\", {{\n  method: \"POST\",\n  headers: {{ \"Content-Type\": \"application/json\" }},\n  body: JSON.stringify({{ key: process.env.KEYWARD_KEY, scope: \"analytics:read\" }}),\n}});\nconsole.log((await response.json()).code);"
            ),
        ),
        (
            "Go",
            "go",
            format!(
                "package main\n\nimport (\n\t\"bytes\"\n\t\"encoding/json\"\n\t\"fmt\"\n\t\"net/http\"\n\t\"os\"\n)\n\nfunc main() {{\n\tbody, _ := json.Marshal(map[string]string{{\"key\": os.Getenv(\"KEYWARD_KEY\"), \"scope\": \"analytics:read\"}})\n\tresp, err := http.Post(\"{verify}\", \"application/json\", bytes.NewReader(body))\n\tif err != nil {{\n\t\tpanic(err)\n\t}}\n\tdefer resp.Body.Close()\n\tvar answer struct{{ Code string `json:\"code\"` }}\n\tjson.NewDecoder(resp.Body).Decode(&answer)\n\tfmt.Println(answer.Code)\n}}"
            ),
        ),
        (
            "Rust",
            "rust",
            format!(
                "// Cargo.toml: reqwest = {{ version = \"0.12\", features = [\"blocking\", \"json\"] }}, serde_json = \"1\"\nfn main() -> Result<(), Box<dyn std::error::Error>> {{\n    let answer: serde_json::Value = reqwest::blocking::Client::new()\n        .post(\"{verify}\")\n        .json(&serde_json::json!({{\"key\": std::env::var(\"KEYWARD_KEY\")?, \"scope\": \"analytics:read\"}}))\n        .send()?\n        .json()?;\n    println!(\"{{}}\", answer[\"code\"]);\n    Ok(())\n}}"
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_panel_ends_with_its_fallback_and_escapes() {
        for questions in [KEYS, NEW_KEY, INCIDENTS, AUDIT] {
            let html = panel(questions);
            assert!(html.contains("I can help with this page only."));
            assert_eq!(html.matches("<details class=\"question\">").count(), questions.len());
        }
    }

    #[test]
    fn snippets_name_this_server() {
        for (_, _, code) in snippets("https://keys.example.com/") {
            assert!(code.contains("https://keys.example.com/v1/keys/verify"), "{code}");
            assert!(code.contains("KEYWARD_KEY"));
        }
    }
}
