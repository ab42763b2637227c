//! The web console: a person's whole journey in headless Chromium, driven
//! through chromedriver (fantoccini) against a real server on loopback, and
//! the rules a browser cannot show (CSRF, roles, rate limits, cookies)
//! checked over plain HTTP.
//!
//! `scripts/test` installs Debian's chromium and chromium-driver and sets
//! `KEYWARD_CHROMEDRIVER`. With `KEYWARD_SCREENSHOTS=docs` the browser test
//! also saves the screenshots the README shows.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const OWNER: &str = "owner@example.com";
const PASSWORD: &str = "correct horse battery staple";

struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Chromium through chromedriver, or `None` (with a note) when the test
/// script could not install them.
async fn browser() -> Option<Browser> {
    let Some(driver_path) = std::env::var("KEYWARD_CHROMEDRIVER").ok().or_else(|| which("chromedriver")) else {
        eprintln!("skipped: chromedriver not found; scripts/test installs chromium-driver");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let driver = Command::new(driver_path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    let mut chrome = json!({"args": [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--window-size=1600,1000", format!("--user-data-dir={}", profile.path().display()),
    ]});
    if let Some(binary) = which("chromium") {
        chrome["binary"] = json!(binary);
    }
    caps.insert("goog:chromeOptions".into(), chrome);
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let client = loop {
        // chromedriver speaks plain HTTP on loopback: no TLS stack needed.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector).capabilities(caps.clone()).connect(&url).await {
            Ok(client) => break client,
            Err(e) if started.elapsed() > Duration::from_secs(20) => panic!("chromedriver did not start a session: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    Some(Browser {
        client,
        driver,
        _profile: profile,
    })
}

fn which(program: &str) -> Option<String> {
    let out = Command::new("sh").args(["-c", &format!("command -v {program}")]).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

async fn screenshot(b: &Browser, name: &str) {
    if let Ok(dir) = std::env::var("KEYWARD_SCREENSHOTS") {
        let png = b.client.screenshot().await.unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), png).unwrap();
    }
}

/// The element, waiting for it: a click that navigates returns before the
/// next page has loaded.
async fn css(b: &Browser, selector: &str) -> fantoccini::elements::Element {
    b.client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(selector))
        .await
        .unwrap_or_else(|e| panic!("{selector}: {e}"))
}

/// Waits until the page title starts with `title`.
async fn wait_title(b: &Browser, title: &str) {
    let started = Instant::now();
    loop {
        let now = b.client.title().await.unwrap_or_default();
        if now.starts_with(title) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the page is {now:?}, not {title:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sign_in(b: &Browser, base: &str, email: &str) {
    b.client.goto(&format!("{base}/console")).await.unwrap();
    assert!(b.client.current_url().await.unwrap().path().ends_with("/console/login"));
    css(b, "#email").await.send_keys(email).await.unwrap();
    css(b, "#password").await.send_keys(PASSWORD).await.unwrap();
    css(b, "button[type=submit]").await.click().await.unwrap();
}

async fn server_with_people() -> common::Server {
    let s = common::Server::start(common::Backend::Sqlite).await.unwrap();
    let operator = keyward::service::Caller::system("test");
    s.service.set_password(&operator, OWNER, PASSWORD).await.unwrap();
    s.service.set_password(&operator, "viewer@example.com", PASSWORD).await.unwrap();
    let system = keyward::service::Caller::system("test");
    s.service
        .add_member(&system, &s.project, "viewer@example.com", keyward::store::Role::Viewer)
        .await
        .unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_create_reveal_reload_revoke_and_audit_in_a_browser() {
    let Some(b) = browser().await else { return };
    let s = server_with_people().await;
    sign_in(&b, &s.base, OWNER).await;
    wait_title(&b, "API keys").await;

    css(&b, "a.button.primary").await.click().await.unwrap();
    wait_title(&b, "New API key").await;
    css(&b, "input[name=preset][value=product]").await.click().await.unwrap();
    css(&b, "#name").await.send_keys("browser_key").await.unwrap();
    css(&b, "#description").await.send_keys("made in a browser test").await.unwrap();
    css(&b, "input[name=scope][value='analytics:read']").await.click().await.unwrap();
    css(&b, "input[name=expiry][value='30d']").await.click().await.unwrap();
    // Without the confirmations the form comes back with the reason.
    css(&b, "button.primary[type=submit]").await.click().await.unwrap();
    assert!(css(&b, ".error").await.text().await.unwrap().contains("confirm"));
    for name in ["confirm_backend", "confirm_once", "confirm_entitlements"] {
        css(&b, &format!("input[name={name}]")).await.click().await.unwrap();
    }
    screenshot(&b, "console-create.png").await;
    css(&b, "button.primary[type=submit]").await.click().await.unwrap();

    let secret = css(&b, "#secret").await.prop("value").await.unwrap().unwrap();
    assert!(secret.starts_with("kw_sk_live_"), "{secret}");
    assert!(b.client.source().await.unwrap().contains("This secret is shown once"));
    assert_eq!(s.code(&secret, Some("analytics:read"), None).await, "VALID");
    if std::env::var_os("KEYWARD_SCREENSHOTS").is_some() {
        // The committed picture must not hold a working token.
        let masked = format!("kw_sk_live_{}", "•".repeat(secret.len() - "kw_sk_live_".len()));
        b.client
            .execute("document.getElementById('secret').value = arguments[0];", vec![json!(masked)])
            .await
            .unwrap();
        screenshot(&b, "console-reveal.png").await;
    }

    b.client.refresh().await.unwrap();
    let reloaded = b.client.source().await.unwrap();
    assert!(!reloaded.contains(&secret), "the secret came back on reload");
    assert!(reloaded.contains("Secret already shown"));
    b.client.back().await.unwrap();
    assert!(
        !b.client.source().await.unwrap().contains(&secret),
        "the secret came back on going back"
    );

    b.client
        .goto(&format!("{}/console/projects/{}/keys", s.base, s.project))
        .await
        .unwrap();
    screenshot(&b, "console-keys.png").await;
    let revoke_link = b
        .client
        .find(Locator::XPath("//tr[td//strong[text()='browser_key']]//a[text()='Revoke']"))
        .await
        .unwrap();
    revoke_link.click().await.unwrap();
    wait_title(&b, "Revoke key").await;
    assert!(css(&b, "h1").await.text().await.unwrap().starts_with("Revoke browser_key"));
    css(&b, "button.danger").await.click().await.unwrap();
    wait_title(&b, "API keys").await;
    let status = b
        .client
        .find(Locator::XPath(
            "//tr[td//strong[text()='browser_key']]//span[contains(@class,'pill') and text()='Revoked']",
        ))
        .await;
    assert!(status.is_ok(), "the row does not say Revoked");
    assert_eq!(s.code(&secret, None, None).await, "REVOKED");

    css(&b, "nav a[href$='/audit']").await.click().await.unwrap();
    wait_title(&b, "Audit log").await;
    let audit = b.client.source().await.unwrap();
    assert!(
        audit.contains("api_key.revoked") && audit.contains("api_key.created"),
        "audit page lacks the events"
    );
    assert!(!audit.contains(&secret));
    b.client.clone().close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_no_create_button_in_a_browser() {
    let Some(b) = browser().await else { return };
    let s = server_with_people().await;
    sign_in(&b, &s.base, "viewer@example.com").await;
    wait_title(&b, "API keys").await;
    assert!(
        b.client.find(Locator::Css("a.button.primary")).await.is_err(),
        "a viewer sees New key"
    );
    assert!(b.client.find(Locator::LinkText("Revoke")).await.is_err(), "a viewer sees Revoke");
    b.client.clone().close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_usage_chart_is_on_the_keys_page_and_the_keys_own_page() {
    let Some(b) = browser().await else { return };
    let s = server_with_people().await;
    let (id, secret) = s
        .create_key(
            json!({"name": "charted", "scopes": ["analytics:read"], "ratelimits": [{"name": "m", "limit": 20, "duration_ms": 60000}]}),
        )
        .await;
    for _ in 0..25 {
        s.code(&secret, Some("analytics:read"), None).await;
    }
    s.service.verifier().flush_usage().await.unwrap();
    // Earlier days, as a month of traffic would have left them.
    let hour_now = keyward::store::now_ms() / 3_600_000;
    for day in 1..30i64 {
        let valid = 40 + (day * 37) % 60;
        let refused = (day * 13) % 9;
        let hour = hour_now - day * 24;
        common::sql(
            &s.database_url,
            &format!(
                "INSERT INTO key_verifications (key_id, hour, code, count) VALUES ('{id}', {hour}, 'VALID', {valid}), ('{id}', {hour}, 'RATE_LIMITED', {refused})"
            ),
        )
        .await;
    }
    sign_in(&b, &s.base, OWNER).await;
    wait_title(&b, "API keys").await;
    let chart = css(&b, "figure.usage-chart").await;
    assert!(chart.text().await.unwrap().contains("valid and"), "the chart's summary");
    let bars = b.client.find_all(Locator::Css("figure.usage-chart svg rect.valid")).await.unwrap();
    assert_eq!(bars.len(), 30, "a bar a day for 30 days");
    let owner = css(&b, "tr td.owner").await.text().await.unwrap();
    assert!(!owner.is_empty(), "every row names its owner");
    screenshot(&b, "console-usage.png").await;
    css(&b, &format!("a[href='/console/keys/{id}']")).await.click().await.unwrap();
    wait_title(&b, "charted").await;
    let summary = css(&b, "figure.usage-chart figcaption").await.text().await.unwrap();
    assert!(summary.contains("Key charted"), "{summary}");
    assert!(summary.contains("20 valid") || summary.contains("valid"), "{summary}");
    b.client.clone().close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_asking_for_the_root_lands_on_sign_in_and_a_client_gets_an_index() {
    let s = common::Server::start(common::Backend::Sqlite).await.unwrap();
    let browser = reqwest::Client::new()
        .get(format!("{}/", s.base))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(browser.url().path(), "/console/login");
    assert_eq!(browser.status(), 200);
    assert!(browser.text().await.unwrap().contains("Sign in"));
    let (status, index) = s.call(None, "GET", "/", None).await;
    assert_eq!(status, 200);
    assert_eq!(index["console"], "/console");
    assert_eq!(index["openapi"], "/v1/openapi.json");
    assert_eq!(index["version"], env!("CARGO_PKG_VERSION"));
}

/// A console session over plain HTTP: its cookie and CSRF token.
struct Http {
    base: String,
    cookie: String,
    csrf: String,
    http: reqwest::Client,
}

fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

fn value_of(cookie: &str) -> String {
    cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_string()
}

fn hidden_csrf(page: &str) -> String {
    let start = page.find("name=\"_csrf\" value=\"").expect("a form with _csrf") + "name=\"_csrf\" value=\"".len();
    page[start..].split('"').next().unwrap().to_string()
}

async fn http_sign_in(s: &common::Server, email: &str) -> Http {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http.get(format!("{}/console/login", s.base)).send().await.unwrap();
    let login_cookie = value_of(&set_cookie(&page, "kw_login").unwrap());
    let csrf = hidden_csrf(&page.text().await.unwrap());
    let response = http
        .post(format!("{}/console/login", s.base))
        .header("cookie", format!("kw_login={login_cookie}"))
        .form(&[("_csrf", csrf.as_str()), ("email", email), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let session = set_cookie(&response, "kw_session").unwrap();
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Lax"), "{session}");
    let cookie = format!("kw_session={}", value_of(&session));
    let keys = http
        .get(format!("{}/console/projects/{}/keys", s.base, s.project))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let csrf = hidden_csrf(&keys.text().await.unwrap());
    Http {
        base: s.base.clone(),
        cookie,
        csrf,
        http,
    }
}

impl Http {
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .form(form)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

const CREATE: &[(&str, &str)] = &[
    ("name", "http_key"),
    ("preset", "analytics"),
    ("expiry", "7d"),
    ("confirm_backend", "on"),
    ("confirm_once", "on"),
    ("confirm_entitlements", "on"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_post_without_the_csrf_token_is_refused_and_changes_nothing() {
    let s = server_with_people().await;
    let owner = http_sign_in(&s, OWNER).await;
    let path = format!("/console/projects/{}/keys", s.project);
    let (status, page) = owner.post(&path, CREATE).await;
    assert_eq!(status, 403, "{page}");
    let mut wrong = CREATE.to_vec();
    wrong.push(("_csrf", "not-the-token-of-this-session-000000000"));
    assert_eq!(owner.post(&path, &wrong).await.0, 403);
    let (_, keys) = owner.get(&path).await;
    assert!(!keys.contains("http_key"), "a key was created without the token");

    let mut right = CREATE.to_vec();
    right.push(("_csrf", owner.csrf.as_str()));
    let (status, _) = owner.post(&path, &right).await;
    assert_eq!(status, 303);
    assert!(owner.get(&path).await.1.contains("http_key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_posting_anyway_gets_403() {
    let s = server_with_people().await;
    let viewer = http_sign_in(&s, "viewer@example.com").await;
    let mut form = CREATE.to_vec();
    form.push(("_csrf", viewer.csrf.as_str()));
    let (status, page) = viewer.post(&format!("/console/projects/{}/keys", s.project), &form).await;
    assert_eq!(status, 403, "{page}");
    let keys = s
        .service
        .list_keys(&keyward::service::Caller::system("test"), &s.project)
        .await
        .unwrap();
    assert!(keys.iter().all(|k| k.name != "http_key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_is_rate_limited_and_cookies_are_secure_behind_https() {
    let s = server_with_people().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http
        .get(format!("{}/console/login", s.base))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let login = set_cookie(&page, "kw_login").unwrap();
    assert!(login.contains("Secure") && login.contains("HttpOnly"), "{login}");
    let token = value_of(&login);
    let mut statuses = Vec::new();
    for _ in 0..11 {
        let response = http
            .post(format!("{}/console/login", s.base))
            .header("cookie", format!("kw_login={token}"))
            .form(&[("_csrf", token.as_str()), ("email", OWNER), ("password", "wrong password!")])
            .send()
            .await
            .unwrap();
        statuses.push((response.status().as_u16(), response.headers().get("retry-after").is_some()));
    }
    assert!(statuses[..10].iter().all(|(s, _)| *s == 401), "{statuses:?}");
    assert_eq!(statuses[10], (429, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_gating_secret_never_in_the_list_and_logout() {
    let s = server_with_people().await;
    let owner = http_sign_in(&s, OWNER).await;
    let path = format!("/console/projects/{}/keys", s.project);
    let (_, list) = owner.get(&path).await;
    assert!(
        list.contains("Default key: cannot be revoked"),
        "the default key's row explains itself"
    );
    assert!(!list.contains(&s.admin), "a token appears in the key list");

    let system = keyward::service::Caller::system("test");
    s.service
        .set_entitlement(
            &system,
            &s.project,
            "key_management",
            keyward::store::EntitlementState::RequiresUpgrade,
        )
        .await
        .unwrap();
    let (_, gated) = owner.get(&path).await;
    assert!(
        gated.contains("Upgrade to manage API keys") && !gated.contains("<table"),
        "no upgrade card"
    );

    let (status, _) = owner.post("/console/logout", &[("_csrf", owner.csrf.as_str())]).await;
    assert_eq!(status, 303);
    let (status, _) = owner.get(&path).await;
    assert_eq!(status, 303, "the session still works after logout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_invites_a_person_who_chooses_a_password_and_signs_in() {
    let s = server_with_people().await;
    let owner = http_sign_in(&s, OWNER).await;
    let path = format!("/console/projects/{}/members", s.project);
    let (status, page) = owner
        .post(
            &path,
            &[("_csrf", owner.csrf.as_str()), ("email", "new@example.com"), ("role", "member")],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(!page.contains("name=\"password\""), "an admin never types someone's password");
    let start = page.find("/console/invite/").expect("an invitation link");
    let link: String = page[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "/-_".contains(*c))
        .collect();
    let (status, form) = owner.get(&link).await;
    assert_eq!(status, 200, "{form}");
    assert!(form.contains("new@example.com"));
    let accept = [("password", PASSWORD), ("confirm", PASSWORD)];
    assert_eq!(owner.post(&link, &accept).await.0, 303);
    assert_eq!(owner.post(&link, &accept).await.0, 404, "a link works once");
    let newcomer = http_sign_in(&s, "new@example.com").await;
    assert_eq!(newcomer.get(&format!("/console/projects/{}/keys", s.project)).await.0, 200);

    let viewer = http_sign_in(&s, "viewer@example.com").await;
    let (status, _) = viewer
        .post(
            &path,
            &[("_csrf", viewer.csrf.as_str()), ("email", "x@example.com"), ("role", "admin")],
        )
        .await;
    assert_eq!(status, 403, "a viewer added a member");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_list_names_people_and_a_leaked_key_links_to_its_incident() {
    let Some(b) = browser().await else { return };
    let s = server_with_people().await;
    // The bootstrap admin key (the owner's) makes one key; a person makes another.
    let (leaky, secret) = s.create_key(json!({"name": "leaky", "scopes": ["analytics:read"]})).await;
    let place = keyward::store::Place {
        source_kind: "github-webhook".into(),
        repository: "octo/app".into(),
        path: "config/.env".into(),
        line: Some(3),
        ..Default::default()
    };
    s.responder.report(&secret, &place).await.unwrap();
    sign_in(&b, &s.base, OWNER).await;
    wait_title(&b, "API keys").await;
    let row = css(&b, &format!("tr[data-key-id='{leaky}']")).await;
    let created_by = row.find(Locator::Css("td.created-by span")).await.unwrap();
    assert_eq!(
        created_by.text().await.unwrap(),
        "key bootstrap_admin",
        "a key is named, not its id"
    );
    assert!(created_by.attr("title").await.unwrap().unwrap().starts_with("key:key_"));
    let leaked = row.find(Locator::Css("a.pill")).await.unwrap();
    assert_eq!(leaked.text().await.unwrap(), "Revoked: leaked");
    leaked.click().await.unwrap();
    wait_title(&b, "Incidents").await;
    let url = b.client.current_url().await.unwrap();
    let incident = url.fragment().expect("the link names the incident").to_string();
    let row = css(&b, &format!("tr[id='{incident}']")).await;
    assert!(row.text().await.unwrap().contains("config/.env"));
    // A key a person made in the console names that person by email.
    let http = http_sign_in(&s, OWNER).await;
    let mut form = CREATE.to_vec();
    form.push(("_csrf", http.csrf.as_str()));
    assert_eq!(http.post(&format!("/console/projects/{}/keys", s.project), &form).await.0, 303);
    b.client
        .goto(&format!("{}/console/projects/{}/keys", s.base, s.project))
        .await
        .unwrap();
    wait_title(&b, "API keys").await;
    assert!(css(&b, "details.help").await.text().await.unwrap().contains("Page help"));
    let by_hand = b
        .client
        .find(Locator::XPath("//tr[.//strong[text()='http_key']]//td[@class='created-by']"))
        .await
        .unwrap();
    assert_eq!(by_hand.text().await.unwrap(), OWNER, "the creator's email");
    screenshot(&b, "console-created-by.png").await;
    b.client.clone().close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_help_panel_answers_from_its_page_only() {
    let s = server_with_people().await;
    let http = http_sign_in(&s, OWNER).await;
    for page in ["keys", "keys/new", "incidents", "audit"] {
        let (_, html) = http.get(&format!("/console/projects/{}/{page}", s.project)).await;
        assert!(html.contains("<details class=\"card help\">"), "{page}");
        assert!(html.contains("I can help with this page only."), "{page}");
    }
    let (_, create) = http.get(&format!("/console/projects/{}/keys/new", s.project)).await;
    for question in [
        "What key type should I choose?",
        "What does expiration mean?",
        "What are safety confirmations?",
        "Why is the secret shown once?",
    ] {
        assert!(create.contains(question), "{question}");
    }
}

/// The Integrate page's curl and Python snippets, run as a user would
/// paste them, verify a real key against the live server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_integrate_pages_curl_and_python_snippets_print_valid() {
    let s = server_with_people().await;
    let (_, secret) = s.create_key(json!({"name": "integrated", "scopes": ["analytics:read"]})).await;
    let http = http_sign_in(&s, OWNER).await;
    let (status, page) = http.get(&format!("/console/projects/{}/integrate", s.project)).await;
    assert_eq!(status, 200);
    let snippet = |language: &str| -> String {
        let start = page
            .find(&format!("id=\"snippet-{language}\""))
            .unwrap_or_else(|| panic!("{language} snippet"));
        let code = &page[start..];
        let code = &code[code.find('>').unwrap() + 1..code.find("</code>").unwrap()];
        code.replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    let (curl, python) = (snippet("sh"), snippet("python"));
    assert!(
        curl.contains(&s.base) && python.contains(&s.base),
        "filled in with this server's URL"
    );
    for language in ["javascript", "go", "rust"] {
        assert!(page.contains(&format!("id=\"snippet-{language}\"")), "{language}");
    }
    let run = |program: &'static str, args: Vec<String>| {
        let secret = secret.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(program)
                .args(args)
                .env("KEYWARD_KEY", secret)
                .output()
                .unwrap()
        })
    };
    let curl_out = run("sh", vec!["-c".into(), curl]).await.unwrap();
    assert!(
        String::from_utf8_lossy(&curl_out.stdout).contains("\"code\":\"VALID\""),
        "{curl_out:?}"
    );
    let python_out = run("python3", vec!["-c".into(), python]).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&python_out.stdout).trim(), "VALID", "{python_out:?}");
}
