//! The web console: server-rendered pages for people, signed in with a
//! password, over the same key service as the API.
//!
//! Every page works without JavaScript; a few lines of it only add copy
//! buttons. Sessions ride in an HttpOnly, SameSite=Lax cookie (Secure
//! behind https); every state-changing form carries the session's CSRF
//! token, and a post without it changes nothing. Roles are checked by the
//! service, whatever the page showed. A new secret is shown once: the
//! create post keeps it in memory for one redirect, the reveal page takes
//! it out, and a reload finds nothing.
//!
//! Sign-in failures are counted per client address (behind a trusted
//! proxy, the address it names) and per email: a guesser is stopped on one
//! account without locking out everyone behind the same address, and a
//! forged `X-Forwarded-For` buys nothing.

mod chart;
mod escape;
mod forms;
mod help;
mod pages;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use subtle::ConstantTimeEq;

use super::AppState;
use crate::keys::token::Token;
use crate::service::{Caller, ServiceError};
use crate::store::{ApiKey, RevokeReason, Role};
use forms::Fields;

pub use crate::service::KEY_MANAGEMENT;

const SESSION_COOKIE: &str = "kw_session";
/// Double-submit token of the sign-in form, before any session exists.
const LOGIN_COOKIE: &str = "kw_login";
/// Failed sign-ins allowed per email, and per client address, within the
/// window. An office behind one address has room for many people's typos.
const FAILURES_PER_EMAIL: u32 = 10;
const FAILURES_PER_ADDRESS: u32 = 50;
const LOGIN_WINDOW: Duration = Duration::from_secs(300);
/// How long a new secret waits for its one reveal.
const REVEAL_TTL: Duration = Duration::from_secs(300);

/// The console's memory: secrets awaiting their reveal, and failed
/// sign-ins per address and per email.
#[derive(Default)]
pub struct Console {
    reveals: Mutex<HashMap<String, Reveal>>,
    failures_by_address: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    failures_by_email: Mutex<HashMap<String, (u32, Instant)>>,
    secure_cookies: bool,
}

struct Reveal {
    user_id: String,
    key: ApiKey,
    secret: Token,
    created: Instant,
}

impl Console {
    /// `secure_cookies`: mark cookies Secure even without `X-Forwarded-Proto: https`.
    pub fn new(secure_cookies: bool) -> Console {
        Console {
            secure_cookies,
            ..Console::default()
        }
    }

    fn keep_for_reveal(&self, user_id: &str, key: ApiKey, secret: Token) -> String {
        let id = crate::keys::token::random_base62(32);
        let mut reveals = self.reveals.lock().unwrap_or_else(|e| e.into_inner());
        reveals.retain(|_, r| r.created.elapsed() < REVEAL_TTL);
        reveals.insert(
            id.clone(),
            Reveal {
                user_id: user_id.to_string(),
                key,
                secret,
                created: Instant::now(),
            },
        );
        id
    }

    /// The secret behind `id`, once, and only to the person who made it.
    fn take_reveal(&self, id: &str, user_id: &str) -> Option<Reveal> {
        let mut reveals = self.reveals.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = reveals
            .get(id)
            .is_some_and(|r| r.user_id == user_id && r.created.elapsed() < REVEAL_TTL);
        if fresh {
            reveals.remove(id)
        } else {
            None
        }
    }

    /// `Err(retry_after)` while the address or the email has used up its
    /// failures; checked before the password is, so guesses stop.
    fn allow_attempt(&self, ip: Option<IpAddr>, email: &str) -> Result<(), Duration> {
        let by_address = ip.and_then(|ip| over_limit(&self.failures_by_address, &ip, FAILURES_PER_ADDRESS));
        let by_email = over_limit(&self.failures_by_email, &normal_email(email), FAILURES_PER_EMAIL);
        match by_address.max(by_email) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    fn count_failure(&self, ip: Option<IpAddr>, email: &str) {
        if let Some(ip) = ip {
            add_failure(&self.failures_by_address, ip);
        }
        add_failure(&self.failures_by_email, normal_email(email));
    }
}

fn normal_email(email: &str) -> String {
    email.trim().to_ascii_lowercase()
}

/// The wait left when `key` has `limit` failures in the window.
fn over_limit<K: std::hash::Hash + Eq>(table: &Mutex<HashMap<K, (u32, Instant)>>, key: &K, limit: u32) -> Option<Duration> {
    let mut table = table.lock().unwrap_or_else(|e| e.into_inner());
    table.retain(|_, (_, since)| since.elapsed() < LOGIN_WINDOW);
    table
        .get(key)
        .filter(|(count, _)| *count >= limit)
        .map(|(_, since)| LOGIN_WINDOW.saturating_sub(since.elapsed()))
}

fn add_failure<K: std::hash::Hash + Eq>(table: &Mutex<HashMap<K, (u32, Instant)>>, key: K) {
    let mut table = table.lock().unwrap_or_else(|e| e.into_inner());
    table.entry(key).or_insert((0, Instant::now())).0 += 1;
}

super::routes!(CONSOLE_ROUTES, routes, [
    get "/console" => home,
    get "/console/login" => login_page,
    post "/console/login" => login,
    post "/console/logout" => logout,
    get "/console/assets/console.css" => css,
    get "/console/assets/console.js" => js,
    get "/console/invite/{token}" => invitation_page,
    post "/console/invite/{token}" => accept_invitation,
    get "/console/projects/{project_id}/keys" => keys_page,
    post "/console/projects/{project_id}/keys" => create_key,
    get "/console/projects/{project_id}/keys/new" => new_key_page,
    get "/console/projects/{project_id}/members" => members_page,
    post "/console/projects/{project_id}/members" => add_member,
    get "/console/projects/{project_id}/incidents" => incidents_page,
    get "/console/projects/{project_id}/audit" => audit_page,
    get "/console/projects/{project_id}/audit/export" => audit_export,
    get "/console/projects/{project_id}/integrate" => integrate_page,
    get "/console/reveal/{reveal_id}" => reveal_page,
    get "/console/keys/{key_id}" => key_page,
    get "/console/keys/{key_id}/edit" => edit_page,
    post "/console/keys/{key_id}/edit" => edit_key,
    get "/console/keys/{key_id}/revoke" => revoke_page,
    post "/console/keys/{key_id}/revoke" => revoke_key,
    get "/console/keys/{key_id}/rotate" => rotate_page,
    post "/console/keys/{key_id}/rotate" => rotate_key,
]);

/// A signed-in person. Pages without one redirect to the sign-in page.
pub struct Person {
    pub caller: Caller,
    pub email: String,
    pub csrf: String,
    token: String,
}

impl FromRequestParts<AppState> for Person {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(to_login)?;
        match state.service.session(&token).await {
            Ok(Some(row)) => Ok(Person {
                caller: Caller::person(&row.user_id).with_ip(super::peer(&parts.extensions)),
                email: row.email,
                csrf: row.csrf,
                token,
            }),
            Ok(None) => Err(to_login()),
            Err(e) => Err(failure(e)),
        }
    }
}

impl Person {
    /// Refuses a form whose `_csrf` is not this session's token.
    fn check_csrf(&self, fields: &Fields) -> Result<(), Box<Response>> {
        let sent = fields.get("_csrf").unwrap_or_default();
        if bool::from(sent.as_bytes().ct_eq(self.csrf.as_bytes())) && !sent.is_empty() {
            Ok(())
        } else {
            Err(Box::new(pages::message(
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form was not sent by this console session (its CSRF token is missing or wrong). Nothing was changed. Reload the page and try again.",
            )))
        }
    }
}

fn to_login() -> Response {
    Redirect::to("/console/login").into_response()
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn is_https(headers: &HeaderMap, console: &Console) -> bool {
    console.secure_cookies || headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()) == Some("https")
}

fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> (header::HeaderName, HeaderValue) {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!("{name}={value}; Path=/console; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
    (
        header::SET_COOKIE,
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("")),
    )
}

/// Service errors as pages: what went wrong, never internals.
fn failure(e: ServiceError) -> Response {
    let api = super::AppError::from(e);
    pages::message(api.status, "That did not work", &api.message)
}

fn refusal(e: ServiceError) -> Box<Response> {
    Box::new(failure(e))
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/console.css"),
    )
        .into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/console.js"),
    )
        .into_response()
}

async fn home(State(s): State<AppState>, person: Person) -> Response {
    match s.service.projects(&person.caller).await {
        Ok(projects) => match projects.first() {
            Some(p) => Redirect::to(&format!("/console/projects/{}/keys", p.id)).into_response(),
            None => pages::message(StatusCode::OK, "No projects", "You are not a member of any project yet."),
        },
        Err(e) => failure(e),
    }
}

async fn login_page(headers: HeaderMap, State(s): State<AppState>) -> Response {
    let token = crate::keys::token::random_base62(32);
    let secure = is_https(&headers, &s.console);
    ([set_cookie(LOGIN_COOKIE, &token, 600, secure)], pages::login(&token, None)).into_response()
}

async fn login(State(s): State<AppState>, parts: Parts, body: Bytes) -> Response {
    let fields = Fields::parse(&body);
    let sent = fields.get("_csrf").unwrap_or_default();
    let expected = cookie(&parts.headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !bool::from(sent.as_bytes().ct_eq(expected.as_bytes())) {
        return pages::message(StatusCode::FORBIDDEN, "Form expired", "Reload the sign-in page and try again.");
    }
    let email = fields.get("email").unwrap_or_default();
    let ip = super::client::ClientIp::of(&parts.extensions);
    if let Err(wait) = s.console.allow_attempt(ip, &email) {
        let mut page = pages::message(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            "Too many failed sign-ins for this account or from this address. Wait a few minutes and try again.",
        );
        page.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs().max(1)));
        return page;
    }
    match s.service.sign_in(&email, &fields.get("password").unwrap_or_default()).await {
        Ok(session) => {
            let secure = is_https(&parts.headers, &s.console);
            let max_age = crate::service::SESSION_MS / 1000;
            // Two Set-Cookie headers: they must be appended, not replaced.
            (
                AppendHeaders([
                    set_cookie(SESSION_COOKIE, &session.token, max_age, secure),
                    set_cookie(LOGIN_COOKIE, "", 0, secure),
                ]),
                Redirect::to("/console"),
            )
                .into_response()
        }
        Err(ServiceError::Denied(_)) => {
            s.console.count_failure(ip, &email);
            let page = pages::login(&expected, Some("That email and password do not match."));
            (StatusCode::UNAUTHORIZED, page).into_response()
        }
        Err(e) => failure(e),
    }
}

async fn logout(State(s): State<AppState>, headers: HeaderMap, person: Person, body: Bytes) -> Response {
    if let Err(refused) = person.check_csrf(&Fields::parse(&body)) {
        return *refused;
    }
    if let Err(e) = s.service.sign_out(&person.token).await {
        return failure(e);
    }
    let secure = is_https(&headers, &s.console);
    ([set_cookie(SESSION_COOKIE, "", 0, secure)], Redirect::to("/console/login")).into_response()
}

/// What a page needs about the project and the person's place in it.
struct ProjectView {
    project: crate::store::Project,
    role: Role,
    entitlements: Vec<crate::store::Entitlement>,
}

async fn project_view(s: &AppState, person: &Person, project_id: &str) -> Result<ProjectView, Box<Response>> {
    let project = s.service.project(&person.caller, project_id).await.map_err(refusal)?;
    let role = person
        .caller
        .role_in(s.service.store(), project_id)
        .await
        .map_err(|d| refusal(d.into()))?
        .unwrap_or(Role::Viewer);
    let entitlements = s.service.entitlements(&person.caller, project_id).await.map_err(refusal)?;
    Ok(ProjectView {
        project,
        role,
        entitlements,
    })
}

#[derive(serde::Deserialize)]
struct KeysQuery {
    tab: Option<String>,
}

async fn keys_page(State(s): State<AppState>, person: Person, Path(project_id): Path<String>, Query(q): Query<KeysQuery>) -> Response {
    let view = match project_view(&s, &person, &project_id).await {
        Ok(v) => v,
        Err(page) => return *page,
    };
    let tab = match q.tab.as_deref() {
        Some("team") if view.role >= Role::Admin => pages::Tab::Team,
        _ => pages::Tab::Personal,
    };
    let everyone = view.role >= Role::Admin;
    let me = person.caller.user_id.as_deref();
    let keys = match s.service.list_keys(&person.caller, &project_id).await {
        Ok(keys) => keys,
        Err(e) => return failure(e),
    };
    let keys: Vec<ApiKey> = keys
        .into_iter()
        .filter(|k| match tab {
            pages::Tab::Team => k.owner_service_account_id.is_some(),
            pages::Tab::Personal => k.owner_user_id.is_some() && (everyone || k.owner_user_id.as_deref() == me),
        })
        .collect();
    let (owners, creators, incidents) = match people_and_incidents(&s, &person, &project_id).await {
        Ok(found) => found,
        Err(e) => return failure(e),
    };
    let chart = usage_chart(&s, &person, &project_id, None, "All keys of this project").await;
    let list = pages::KeyList {
        keys: &keys,
        tab,
        owners: &owners,
        creators: &creators,
        incidents: &incidents,
        chart,
    };
    pages::keys(&person, &view, &list)
}

type Names = HashMap<String, String>;

/// What a key row names: owners (people's emails, service accounts'
/// names), creators (those and the project's keys' names), and the
/// incident of each key that leaked.
async fn people_and_incidents(s: &AppState, person: &Person, project_id: &str) -> Result<(Names, Names, Names), ServiceError> {
    let owners = owner_names(s, person, project_id).await?;
    let mut creators = owners.clone();
    for key in s.service.list_keys(&person.caller, project_id).await? {
        creators.insert(key.id, key.name);
    }
    let incidents = s
        .service
        .incidents(&person.caller, project_id)
        .await?
        .into_iter()
        .filter_map(|(incident, _)| incident.key_id.map(|key| (key, incident.id)))
        .collect();
    Ok((owners, creators, incidents))
}

/// People's emails and service accounts' names, by id.
async fn owner_names(s: &AppState, person: &Person, project_id: &str) -> Result<HashMap<String, String>, ServiceError> {
    let mut owners: HashMap<String, String> = s
        .service
        .members(&person.caller, project_id)
        .await?
        .into_iter()
        .map(|m| (m.user_id, m.email))
        .collect();
    for account in s.service.service_accounts(&person.caller, project_id).await? {
        owners.insert(account.id, account.name);
    }
    Ok(owners)
}

/// The last 30 days of verifications, per day, as SVG (empty when the
/// series cannot be read: the page still works without it).
async fn usage_chart(s: &AppState, person: &Person, project_id: &str, key_id: Option<&str>, caption: &str) -> String {
    let now = crate::store::now_ms();
    let series = s
        .service
        .usage(&person.caller, project_id, key_id, 24, now - 29 * 86_400_000, now)
        .await;
    series.map_or_else(|_| String::new(), |series| chart::usage_svg(&series, caption, "day"))
}

async fn key_page(State(s): State<AppState>, person: Person, Path(key_id): Path<String>) -> Response {
    let (key, view) = match key_and_view(&s, &person, &key_id).await {
        Ok(found) => found,
        Err(page) => return *page,
    };
    let (owners, creators, incidents) = match people_and_incidents(&s, &person, &key.project_id).await {
        Ok(found) => found,
        Err(e) => return failure(e),
    };
    let facts = pages::KeyFacts {
        owner: pages::owner_label(&key, &owners),
        creators: &creators,
        incidents: &incidents,
        chart: usage_chart(&s, &person, &key.project_id, Some(&key.id), &format!("Key {}", key.name)).await,
    };
    pages::key_page(&person, &view, &key, &facts)
}

async fn new_key_page(State(s): State<AppState>, person: Person, Path(project_id): Path<String>) -> Response {
    match project_view(&s, &person, &project_id).await {
        Ok(view) => {
            let accounts = team_accounts(&s, &person, &view).await;
            pages::new_key(&person, &view, s.service.catalog(), &accounts, &Fields::default(), None)
        }
        Err(page) => *page,
    }
}

/// The service accounts an admin may make team keys for.
async fn team_accounts(s: &AppState, person: &Person, view: &ProjectView) -> Vec<crate::store::ServiceAccount> {
    if view.role < Role::Admin {
        return Vec::new();
    }
    s.service
        .service_accounts(&person.caller, &view.project.id)
        .await
        .unwrap_or_default()
}

async fn create_key(State(s): State<AppState>, person: Person, Path(project_id): Path<String>, body: Bytes) -> Response {
    let fields = Fields::parse(&body);
    if let Err(refused) = person.check_csrf(&fields) {
        return *refused;
    }
    let view = match project_view(&s, &person, &project_id).await {
        Ok(v) => v,
        Err(page) => return *page,
    };
    let new = match forms::new_key(&fields, s.service.catalog(), &view.entitlements) {
        Ok(new) => new,
        Err(problem) => {
            let accounts = team_accounts(&s, &person, &view).await;
            let mut page = pages::new_key(&person, &view, s.service.catalog(), &accounts, &fields, Some(&problem));
            *page.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            return page;
        }
    };
    match s.service.create_key(&person.caller, &project_id, new).await {
        Ok(issued) => reveal_redirect(&s, &person, issued),
        Err(ServiceError::Invalid(problem)) | Err(ServiceError::Conflict(problem)) => {
            let accounts = team_accounts(&s, &person, &view).await;
            let mut page = pages::new_key(&person, &view, s.service.catalog(), &accounts, &fields, Some(&problem));
            *page.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            page
        }
        Err(e) => failure(e),
    }
}

fn reveal_redirect(s: &AppState, person: &Person, issued: crate::service::Issued) -> Response {
    let user_id = person.caller.user_id.clone().unwrap_or_default();
    let id = s.console.keep_for_reveal(&user_id, issued.key, issued.secret);
    Redirect::to(&format!("/console/reveal/{id}")).into_response()
}

async fn reveal_page(State(s): State<AppState>, person: Person, Path(reveal_id): Path<String>) -> Response {
    let user_id = person.caller.user_id.clone().unwrap_or_default();
    let mut page = match s.console.take_reveal(&reveal_id, &user_id) {
        Some(reveal) => pages::reveal(&person, &reveal.key, reveal.secret.expose()),
        None => pages::message(
            StatusCode::GONE,
            "Secret already shown",
            "A secret is shown once and is not stored anywhere. If it was not saved, rotate the key to get a new one.",
        ),
    };
    page.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    page
}

async fn key_and_view(s: &AppState, person: &Person, key_id: &str) -> Result<(ApiKey, ProjectView), Box<Response>> {
    let key = s.service.get_key(&person.caller, key_id).await.map_err(refusal)?;
    let view = project_view(s, person, &key.project_id).await?;
    Ok((key, view))
}

async fn edit_page(State(s): State<AppState>, person: Person, Path(key_id): Path<String>) -> Response {
    match key_and_view(&s, &person, &key_id).await {
        Ok((key, view)) => pages::edit(&person, &view, &key, None),
        Err(page) => *page,
    }
}

async fn edit_key(State(s): State<AppState>, person: Person, Path(key_id): Path<String>, body: Bytes) -> Response {
    let fields = Fields::parse(&body);
    if let Err(refused) = person.check_csrf(&fields) {
        return *refused;
    }
    let update = crate::store::KeyUpdate {
        name: fields.get("name"),
        description: fields.get("description"),
        ..Default::default()
    };
    match s.service.update_key(&person.caller, &key_id, update).await {
        Ok(key) => Redirect::to(&format!("/console/projects/{}/keys", key.project_id)).into_response(),
        Err(ServiceError::Invalid(problem)) | Err(ServiceError::Conflict(problem)) => match key_and_view(&s, &person, &key_id).await {
            Ok((key, view)) => {
                let mut page = pages::edit(&person, &view, &key, Some(&problem));
                *page.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
                page
            }
            Err(page) => *page,
        },
        Err(e) => failure(e),
    }
}

async fn revoke_page(State(s): State<AppState>, person: Person, Path(key_id): Path<String>) -> Response {
    match key_and_view(&s, &person, &key_id).await {
        Ok((key, view)) => pages::revoke(&person, &view, &key),
        Err(page) => *page,
    }
}

async fn revoke_key(State(s): State<AppState>, person: Person, Path(key_id): Path<String>, body: Bytes) -> Response {
    if let Err(refused) = person.check_csrf(&Fields::parse(&body)) {
        return *refused;
    }
    match s.service.revoke_key(&person.caller, &key_id, RevokeReason::Manual).await {
        Ok(key) => Redirect::to(&format!("/console/projects/{}/keys", key.project_id)).into_response(),
        Err(e) => failure(e),
    }
}

async fn rotate_page(State(s): State<AppState>, person: Person, Path(key_id): Path<String>) -> Response {
    match key_and_view(&s, &person, &key_id).await {
        Ok((key, view)) => pages::rotate(&person, &view, &key),
        Err(page) => *page,
    }
}

async fn rotate_key(State(s): State<AppState>, person: Person, Path(key_id): Path<String>, body: Bytes) -> Response {
    let fields = Fields::parse(&body);
    if let Err(refused) = person.check_csrf(&fields) {
        return *refused;
    }
    let overlap = match fields.get("overlap").as_deref() {
        Some("1h") => 3_600,
        Some("24h") => 86_400,
        Some("7d") => 7 * 86_400,
        _ => 0,
    };
    match s.service.rotate_key(&person.caller, &key_id, overlap).await {
        Ok(issued) => reveal_redirect(&s, &person, issued),
        Err(e) => failure(e),
    }
}

async fn members_page(State(s): State<AppState>, person: Person, Path(project_id): Path<String>) -> Response {
    members_view(&s, &person, &project_id, None, None).await
}

/// The members page, with a problem to show or a fresh invitation link.
async fn members_view(
    s: &AppState,
    person: &Person,
    project_id: &str,
    problem: Option<&str>,
    invitation: Option<(&str, &str)>,
) -> Response {
    let view = match project_view(s, person, project_id).await {
        Ok(v) => v,
        Err(page) => return *page,
    };
    match s.service.members(&person.caller, project_id).await {
        Ok(members) => pages::members(person, &view, &members, problem, invitation),
        Err(e) => failure(e),
    }
}

/// An owner or admin adds a person. A new person gets a one-time
/// invitation link, shown here once, to choose their own password; an
/// existing user is added as they are.
async fn add_member(
    State(s): State<AppState>,
    headers: HeaderMap,
    person: Person,
    Path(project_id): Path<String>,
    body: Bytes,
) -> Response {
    let fields = Fields::parse(&body);
    if let Err(refused) = person.check_csrf(&fields) {
        return *refused;
    }
    let email = fields.get("email").unwrap_or_default();
    let Some(role) = fields.get("role").as_deref().and_then(Role::parse) else {
        return pages::message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Pick a role",
            "Choose viewer, member, admin or owner.",
        );
    };
    match s.service.add_member(&person.caller, &project_id, &email, role).await {
        Ok(added) => match added.invitation {
            Some(invitation) => {
                let link = format!("{}{}", origin(&headers, &s.console), invitation.path());
                no_store(members_view(&s, &person, &project_id, None, Some((&added.member.email, &link))).await)
            }
            None => Redirect::to(&format!("/console/projects/{project_id}/members")).into_response(),
        },
        Err(ServiceError::Invalid(problem)) | Err(ServiceError::Conflict(problem)) => {
            let mut page = members_view(&s, &person, &project_id, Some(&problem), None).await;
            *page.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            page
        }
        Err(e) => failure(e),
    }
}

/// `https://host` as the browser reached the console, for links to copy.
fn origin(headers: &HeaderMap, console: &Console) -> String {
    let scheme = if is_https(headers, console) { "https" } else { "http" };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)))
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

async fn invitation_page(State(s): State<AppState>, Path(token): Path<String>) -> Response {
    match s.service.invitation_email(&token).await {
        Ok(Some(email)) => no_store(pages::invitation(&token, &email, None)),
        Ok(None) => invitation_gone(),
        Err(e) => failure(e),
    }
}

/// The invited person's password; the link is the credential, and works once.
async fn accept_invitation(State(s): State<AppState>, parts: Parts, Path(token): Path<String>, body: Bytes) -> Response {
    let fields = Fields::parse(&body);
    let password = fields.get("password").unwrap_or_default();
    let email = match s.service.invitation_email(&token).await {
        Ok(Some(email)) => email,
        Ok(None) => return invitation_gone(),
        Err(e) => return failure(e),
    };
    if fields.get("confirm").unwrap_or_default() != password {
        return no_store(pages::invitation(&token, &email, Some("The two passwords differ.")));
    }
    match s
        .service
        .accept_invitation(&token, &password, &super::peer(&parts.extensions))
        .await
    {
        Ok(_) => Redirect::to("/console/login").into_response(),
        Err(ServiceError::Invalid(problem)) => no_store(pages::invitation(&token, &email, Some(&problem))),
        Err(ServiceError::NotFound(_)) => invitation_gone(),
        Err(e) => failure(e),
    }
}

fn invitation_gone() -> Response {
    pages::message(
        StatusCode::NOT_FOUND,
        "Invitation not valid",
        "This invitation link has been used, has expired, or never existed. Ask the person who invited you for a new one.",
    )
}

fn no_store(mut page: Response) -> Response {
    page.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    page
}

async fn integrate_page(State(s): State<AppState>, person: Person, headers: HeaderMap, Path(project_id): Path<String>) -> Response {
    match project_view(&s, &person, &project_id).await {
        Ok(view) => pages::integrate(&person, &view, &this_server(&headers)),
        Err(page) => *page,
    }
}

/// This server's URL as the browser reached it: the proxy's scheme when
/// one says so, and the Host header.
fn this_server(headers: &HeaderMap) -> String {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let scheme = match header("x-forwarded-proto") {
        Some("https") => "https",
        _ => "http",
    };
    let host = header("host")
        .filter(|h| h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)))
        .unwrap_or("127.0.0.1:8080");
    format!("{scheme}://{host}")
}

async fn incidents_page(State(s): State<AppState>, person: Person, Path(project_id): Path<String>) -> Response {
    let view = match project_view(&s, &person, &project_id).await {
        Ok(v) => v,
        Err(page) => return *page,
    };
    match s.service.incidents(&person.caller, &project_id).await {
        Ok(incidents) => pages::incidents(&person, &view, &incidents),
        Err(e) => failure(e),
    }
}

#[derive(serde::Deserialize)]
struct AuditFilter {
    action: Option<String>,
    actor: Option<String>,
}

async fn audit_page(
    State(s): State<AppState>,
    person: Person,
    Path(project_id): Path<String>,
    Query(filter): Query<AuditFilter>,
) -> Response {
    let view = match project_view(&s, &person, &project_id).await {
        Ok(v) => v,
        Err(page) => return *page,
    };
    let action = filter.action.filter(|a| !a.is_empty());
    let actor = filter.actor.filter(|a| !a.is_empty());
    match s.service.audit_events(&person.caller, &project_id, action.as_deref(), 500).await {
        Ok(mut events) => {
            if let Some(actor) = &actor {
                events.retain(|e| e.actor.contains(actor.as_str()));
            }
            pages::audit(&person, &view, &events, action.as_deref(), actor.as_deref())
        }
        Err(e) => failure(e),
    }
}

async fn audit_export(State(s): State<AppState>, person: Person, Path(project_id): Path<String>) -> Response {
    match s.service.audit_events(&person.caller, &project_id, None, i64::MAX).await {
        Ok(events) => super::api::audit_jsonl(&project_id, &events),
        Err(e) => failure(e),
    }
}

/// `<project>` scopes grouped for the picker: product → actions.
fn products(catalog: &crate::keys::scopes::Catalog) -> Vec<(String, Vec<String>)> {
    catalog
        .products()
        .iter()
        .filter(|(product, _)| {
            !crate::keys::scopes::ADMIN_SCOPES
                .iter()
                .any(|s| s.starts_with(&format!("{product}:")))
        })
        .map(|(p, a)| (p.clone(), a.clone()))
        .collect()
}

/// The entitlement state of `product` in the project; none means open.
fn requires_upgrade(entitlements: &[crate::store::Entitlement], product: &str) -> bool {
    entitlements
        .iter()
        .any(|e| e.product == product && e.state == crate::store::EntitlementState::RequiresUpgrade)
}
