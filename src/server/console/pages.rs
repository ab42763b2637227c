//! The console's HTML. Every value from the store or a form is escaped on
//! its way into a page; tokens appear only as prefix and last four, except
//! on the one reveal page.

use std::fmt::Write as _;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

pub use super::escape::esc;
use super::forms::{Fields, CONFIRMATIONS, CONFIRM_SERVICE_ROLE, PRESETS};
use super::help;
use super::{products, requires_upgrade, Person, ProjectView, KEY_MANAGEMENT};
use crate::keys::scopes::Catalog;
use crate::store::{ApiKey, AuditEvent, Incident, Place, Role};

/// `2026-12-01 21:22`: the RFC 3339 text up to the minute.
fn date(ms: Option<i64>) -> String {
    ms.map_or_else(
        || "—".to_string(),
        |ms| {
            let text = crate::time::rfc3339(ms);
            let minute = text.rfind(':').map_or(text.as_str(), |at| &text[..at]);
            esc(&minute.replace('T', " "))
        },
    )
}

fn layout(title: &str, person: Option<&Person>, view: Option<&ProjectView>, body: &str) -> String {
    let mut nav = String::new();
    if let (Some(person), Some(view)) = (person, view) {
        let p = esc(&view.project.id);
        let _ = write!(
            nav,
            r#"<nav aria-label="Project"><strong>{}</strong>
<a href="/console/projects/{p}/keys">API keys</a><a href="/console/projects/{p}/members">Members</a><a href="/console/projects/{p}/incidents">Incidents</a><a href="/console/projects/{p}/audit">Audit log</a><a href="/console/projects/{p}/integrate">Integrate</a></nav>"#,
            esc(&view.project.name)
        );
        let _ = write!(
            nav,
            r#"<form class="signout" method="post" action="/console/logout"><input type="hidden" name="_csrf" value="{}"><span>{} · {}</span> <button type="submit">Sign out</button></form>"#,
            esc(&person.csrf),
            esc(&person.email),
            view.role.as_str()
        );
    }
    format!(
        r##"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{} · keyward</title><link rel="stylesheet" href="/console/assets/console.css"><script src="/console/assets/console.js" defer></script></head>
<body><a class="skip" href="#main">Skip to content</a><header><a class="brand" href="/console">keyward</a>{nav}</header>
<main id="main">{body}</main></body></html>"##,
        esc(title)
    )
}

fn html(status: StatusCode, page: String) -> Response {
    (status, Html(page)).into_response()
}

pub fn message(status: StatusCode, title: &str, text: &str) -> Response {
    let body = format!(
        r#"<h1>{}</h1><p role="alert">{}</p><p><a href="/console">Back to the console</a></p>"#,
        esc(title),
        esc(text)
    );
    html(status, layout(title, None, None, &body))
}

pub fn login(csrf: &str, problem: Option<&str>) -> Response {
    let alert = problem
        .map(|p| format!(r#"<p class="error" role="alert">{}</p>"#, esc(p)))
        .unwrap_or_default();
    let body = format!(
        r#"<h1>Sign in</h1>{alert}<form method="post" action="/console/login" class="card narrow">
<input type="hidden" name="_csrf" value="{}">
<label for="email">Email</label><input id="email" name="email" type="email" autocomplete="username" required autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit" class="primary">Sign in</button></form>"#,
        esc(csrf)
    );
    html(StatusCode::OK, layout("Sign in", None, None, &body))
}

fn can_create(role: Role) -> bool {
    role >= Role::Member
}

/// Which keys the key page lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    /// Keys owned by people: the caller's own (everyone's, for admins).
    Personal,
    /// Keys owned by the project's service accounts (admins).
    Team,
}

/// What the key list shows beside the keys.
pub struct KeyList<'a> {
    pub keys: &'a [ApiKey],
    pub tab: Tab,
    /// Owner ids (people and service accounts) to what a person reads.
    pub owners: &'a std::collections::HashMap<String, String>,
    /// Creators (people, service accounts, keys) to what a person reads.
    pub creators: &'a std::collections::HashMap<String, String>,
    /// The incident of each key revoked as leaked.
    pub incidents: &'a std::collections::HashMap<String, String>,
    pub chart: String,
}

pub fn keys(person: &Person, view: &ProjectView, list: &KeyList<'_>) -> Response {
    let p = esc(&view.project.id);
    let mut body = String::from(r#"<div class="head"><h1>API keys</h1>"#);
    let gated = requires_upgrade(&view.entitlements, KEY_MANAGEMENT);
    if can_create(view.role) && !gated {
        let _ = write!(
            body,
            r#"<a class="button primary" href="/console/projects/{p}/keys/new">New key</a>"#
        );
    }
    body.push_str("</div>");
    if gated {
        body.push_str(
            r#"<section class="card upgrade" aria-labelledby="upgrade"><h2 id="upgrade">Upgrade to manage API keys</h2>
<p>This project's plan does not include key management. Keys that exist keep working; upgrade the plan to see, create, rotate and revoke them here.</p></section>"#,
        );
        return html(StatusCode::OK, layout("API keys", Some(person), Some(view), &body));
    }
    body.push_str(&list.chart);
    let current = |tab: Tab| {
        if list.tab == tab {
            r#" aria-current="page" class="tab current""#
        } else {
            r#" class="tab""#
        }
    };
    let _ = write!(
        body,
        r#"<nav class="tabs" aria-label="Key owners"><a href="/console/projects/{p}/keys?tab=personal"{}>Personal keys</a>"#,
        current(Tab::Personal)
    );
    if view.role >= Role::Admin {
        let _ = write!(
            body,
            r#"<a href="/console/projects/{p}/keys?tab=team"{}>Team keys</a>"#,
            current(Tab::Team)
        );
    }
    body.push_str("</nav>");
    body.push_str(
        r#"<table><caption>Keys of this project. Secrets are never shown again after creation: only their prefix and last four characters.</caption>
<thead><tr><th scope="col">Name</th><th scope="col">Mode</th><th scope="col">Scopes</th><th scope="col">Token</th><th scope="col">Owner</th><th scope="col">Created</th><th scope="col">Last used</th><th scope="col">Expires</th><th scope="col">Created by</th><th scope="col">Status</th><th scope="col">Actions</th></tr></thead><tbody>"#,
    );
    let now = crate::store::now_ms();
    for key in list.keys {
        key_row(&mut body, key, view, list, now);
    }
    if list.keys.is_empty() {
        body.push_str(r#"<tr><td colspan="11" class="muted">No keys here yet.</td></tr>"#);
    }
    body.push_str("</tbody></table>");
    body.push_str(&help::panel(help::KEYS));
    html(StatusCode::OK, layout("API keys", Some(person), Some(view), &body))
}

/// A team key belongs to a service account: admins may pick one.
fn owner_picker(body: &mut String, accounts: &[crate::store::ServiceAccount], fields: &Fields) {
    if accounts.is_empty() {
        return;
    }
    let chosen = fields.get("owner").unwrap_or_default();
    body.push_str(r#"<fieldset><legend>Owner</legend><label class="option"><input type="radio" name="owner" value="me" checked> Me (a personal key)</label>"#);
    for account in accounts {
        let value = format!("sa:{}", account.id);
        let checked = if chosen == value { " checked" } else { "" };
        let _ = write!(
            body,
            r#"<label class="option"><input type="radio" name="owner" value="{}"{checked}> Team: {} <span class="muted">({})</span></label>"#,
            esc(&value),
            esc(&account.name),
            account.role.as_str()
        );
    }
    body.push_str("</fieldset>");
}

/// Who owns a key, as a person reads it.
pub fn owner_label(key: &ApiKey, owners: &std::collections::HashMap<String, String>) -> String {
    match (&key.owner_user_id, &key.owner_service_account_id) {
        (Some(user), _) => owners.get(user).cloned().unwrap_or_else(|| "a former member".into()),
        (None, Some(account)) => owners
            .get(account)
            .map_or_else(|| "a deleted service account".into(), |name| format!("team: {name}")),
        (None, None) => "keyward".into(),
    }
}

/// Who made a key, as a person reads it: an email, "key NAME", or
/// keyward itself; the raw id goes in the tooltip.
pub fn created_by(key: &ApiKey, creators: &std::collections::HashMap<String, String>) -> String {
    let label = match key.created_by.split_once(':') {
        Some(("user", id)) => creators.get(id).cloned().unwrap_or_else(|| "a former member".into()),
        Some(("key", id)) => creators
            .get(id)
            .map_or_else(|| "a key of another project".into(), |name| format!("key {name}")),
        _ => "keyward".into(),
    };
    format!(r#"<span title="{}">{}</span>"#, esc(&key.created_by), esc(&label))
}

/// The status pill; a key revoked as leaked says so and links to its incident.
fn status_pill(key: &ApiKey, project_id: &str, incidents: &std::collections::HashMap<String, String>, now: i64) -> String {
    let (status, class) = key_status(key, now);
    let leaked = status == "Revoked" && key.revoke_reason == Some(crate::store::RevokeReason::Leaked);
    match (leaked, incidents.get(&key.id)) {
        (true, Some(incident)) => format!(
            r#"<a class="pill {class}" href="/console/projects/{}/incidents#{}">Revoked: leaked</a>"#,
            esc(project_id),
            esc(incident)
        ),
        (true, None) => format!(r#"<span class="pill {class}">Revoked: leaked</span>"#),
        _ => format!(r#"<span class="pill {class}">{status}</span>"#),
    }
}

fn key_row(body: &mut String, key: &ApiKey, view: &ProjectView, list: &KeyList<'_>, now: i64) {
    let role = view.role;
    let id = esc(&key.id);
    let scopes: String = key
        .scopes
        .iter()
        .map(|s| format!(r#"<span class="badge">{}</span>"#, esc(s)))
        .collect();
    let (status, _) = key_status(key, now);
    let pill = status_pill(key, &view.project.id, list.incidents, now);
    let mode = key.mode.as_str();
    let last_used = key
        .last_used_at
        .map_or_else(|| "never".to_string(), |t| format!("last used {}", super::chart::relative(t, now)));
    let expires = key.expires_at.map_or_else(
        || "never".to_string(),
        |t| {
            let verb = if t > now { "expires" } else { "expired" };
            format!("{verb} {}", super::chart::relative(t, now))
        },
    );
    let _ = write!(
        body,
        r#"<tr data-key-id="{id}"><td><a href="/console/keys/{id}"><strong>{}</strong></a><div class="muted">{}</div></td><td><span class="pill {mode}">{}</span></td><td>{scopes}</td>
<td><code class="token">{}…{}</code></td><td class="owner">{}</td><td>{}</td><td title="{}">{}</td><td>{}</td><td class="created-by">{}</td><td>{pill}</td><td class="actions">
<button type="button" class="copy" data-copy="{id}" aria-label="Copy the id of {}">Copy ID</button> <code class="id">{id}</code>"#,
        esc(&key.name),
        esc(&key.description),
        if mode == "live" { "Live" } else { "Test" },
        esc(&key.display_prefix),
        esc(&key.last4),
        esc(&owner_label(key, list.owners)),
        date(Some(key.created_at)),
        date(key.last_used_at),
        esc(&last_used),
        esc(&expires),
        created_by(key, list.creators),
        esc(&key.name),
    );
    if role >= Role::Member && status == "Active" {
        let _ = write!(
            body,
            r#" <a href="/console/keys/{id}/edit">Edit</a> <a href="/console/keys/{id}/rotate">Rotate</a>"#
        );
        if key.is_default {
            body.push_str(r#" <span class="muted" title="The default key cannot be revoked">Default key: cannot be revoked, rotate it instead.</span>"#);
        } else {
            let _ = write!(body, r#" <a class="danger" href="/console/keys/{id}/revoke">Revoke</a>"#);
        }
    }
    body.push_str("</td></tr>");
}

fn key_status(key: &ApiKey, now: i64) -> (&'static str, &'static str) {
    if key.is_revoked_at(now) {
        ("Revoked", "revoked")
    } else if key.is_expired_at(now) {
        ("Expired", "revoked")
    } else if !key.enabled {
        ("Disabled", "revoked")
    } else {
        ("Active", "active")
    }
}

/// One key: everything about it but its secret, and its usage.
/// What the key page shows besides the key: who owns and made it (as a
/// person reads it), its incident if it leaked, and its usage chart.
pub struct KeyFacts<'a> {
    pub owner: String,
    pub creators: &'a std::collections::HashMap<String, String>,
    pub incidents: &'a std::collections::HashMap<String, String>,
    pub chart: String,
}

pub fn key_page(person: &Person, view: &ProjectView, key: &ApiKey, facts: &KeyFacts<'_>) -> Response {
    let now = crate::store::now_ms();
    let pill = status_pill(key, &view.project.id, facts.incidents, now);
    let limits: String = if key.ratelimits.is_empty() {
        "none".into()
    } else {
        key.ratelimits
            .iter()
            .map(|l| format!("{} per {} ms ({})", l.limit, l.duration_ms, esc(&l.name)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let credits = key.credits.map_or_else(
        || "unlimited".to_string(),
        |c| match c.refill {
            Some(r) => format!("{} left, back to {} {}", c.remaining, r.amount, r.interval.as_str()),
            None => format!("{} left", c.remaining),
        },
    );
    let body = format!(
        r#"<h1>{name}</h1><p class="muted">{description}</p>
<dl class="card facts"><dt>ID</dt><dd><code class="id">{id}</code></dd><dt>Token</dt><dd><code class="token">{prefix}…{last4}</code></dd>
<dt>Status</dt><dd>{pill}</dd><dt>Mode</dt><dd>{mode}</dd><dt>Owner</dt><dd>{owner}</dd>
<dt>Scopes</dt><dd>{scopes}</dd><dt>Created</dt><dd>{created} by {created_by}</dd><dt>Last used</dt><dd>{last_used}</dd><dt>Expires</dt><dd>{expires}</dd>
<dt>Rate limits</dt><dd>{limits}</dd><dt>Credits</dt><dd>{credits}</dd><dt>External id</dt><dd>{external}</dd><dt>Meta</dt><dd><code>{meta}</code></dd></dl>
<h2>Verifications, last 30 days</h2>{chart}<p><a href="/console/projects/{project}/keys">Back to the keys</a></p>"#,
        name = esc(&key.name),
        description = esc(&key.description),
        id = esc(&key.id),
        prefix = esc(&key.display_prefix),
        last4 = esc(&key.last4),
        mode = key.mode.as_str(),
        owner = esc(&facts.owner),
        scopes = esc(&key.scopes.join(", ")),
        created = date(Some(key.created_at)),
        created_by = created_by(key, facts.creators),
        last_used = date(key.last_used_at),
        expires = date(key.expires_at),
        external = esc(key.external_id.as_deref().unwrap_or("—")),
        meta = esc(&key.meta.to_string()),
        project = esc(&view.project.id),
        chart = facts.chart,
    );
    html(StatusCode::OK, layout(&key.name, Some(person), Some(view), &body))
}

pub fn new_key(
    person: &Person,
    view: &ProjectView,
    catalog: &Catalog,
    accounts: &[crate::store::ServiceAccount],
    fields: &Fields,
    problem: Option<&str>,
) -> Response {
    let p = esc(&view.project.id);
    let chosen = fields.get("preset").unwrap_or_else(|| "project".into());
    let mut body = String::from("<h1>New API key</h1>");
    if let Some(problem) = problem {
        let _ = write!(body, r#"<p class="error" role="alert">{}</p>"#, esc(problem));
    }
    let _ = write!(
        body,
        r#"<form method="post" action="/console/projects/{p}/keys" class="card"><input type="hidden" name="_csrf" value="{}">
<fieldset><legend>1. Kind of key</legend>"#,
        esc(&person.csrf)
    );
    for (id, name, help) in PRESETS {
        let checked = if *id == chosen { " checked" } else { "" };
        let danger = if *id == "service_role" { " danger" } else { "" };
        let _ = write!(
            body,
            r#"<label class="option{danger}"><input type="radio" name="preset" value="{id}"{checked}> <strong>{name}</strong> <span class="muted">{help}</span></label>"#
        );
    }
    let _ = write!(
        body,
        r#"</fieldset><fieldset><legend>2. Name and mode</legend>
<label for="name">Name <span class="muted">(letters, digits and underscores)</span></label><input id="name" name="name" required pattern="[A-Za-z0-9_]{{1,64}}" value="{}">
<label for="description">Description</label><input id="description" name="description" value="{}">
<label class="option"><input type="radio" name="mode" value="live"{}> Live</label><label class="option"><input type="radio" name="mode" value="test"{}> Test</label></fieldset>"#,
        esc(&fields.get("name").unwrap_or_default()),
        esc(&fields.get("description").unwrap_or_default()),
        if fields.get("mode").as_deref() == Some("test") {
            ""
        } else {
            " checked"
        },
        if fields.get("mode").as_deref() == Some("test") {
            " checked"
        } else {
            ""
        },
    );
    owner_picker(&mut body, accounts, fields);
    scope_picker(&mut body, view, catalog, &fields.all("scope"));
    expiry_picker(&mut body, fields);
    body.push_str(r#"<fieldset><legend>5. Confirmations</legend>"#);
    for (name, text) in CONFIRMATIONS.iter().chain(std::iter::once(&CONFIRM_SERVICE_ROLE)) {
        let checked = if fields.has(name) { " checked" } else { "" };
        let note = if *name == CONFIRM_SERVICE_ROLE.0 {
            " <span class=\"muted\">(service role only)</span>"
        } else {
            ""
        };
        let _ = write!(
            body,
            r#"<label class="option"><input type="checkbox" name="{name}"{checked}> {}{note}</label>"#,
            esc(text)
        );
    }
    let _ = write!(
        body,
        r#"</fieldset><p class="warning">6. The secret is shown once, on the next page. Store it in a secret manager before leaving that page.</p>
<button type="submit" class="primary">Create key</button> <a href="/console/projects/{p}/keys">Cancel</a></form>"#
    );
    body.push_str(&help::panel(help::NEW_KEY));
    html(StatusCode::OK, layout("New API key", Some(person), Some(view), &body))
}

fn scope_picker(body: &mut String, view: &ProjectView, catalog: &Catalog, picked: &[String]) {
    body.push_str(r#"<fieldset><legend>3. Scopes <span class="muted">(for product-scoped keys and backend secrets; project keys get every open product)</span></legend><div class="products">"#);
    for (product, actions) in products(catalog) {
        let blocked = requires_upgrade(&view.entitlements, &product);
        let _ = write!(body, r#"<fieldset class="product"><legend>{}</legend>"#, esc(&product));
        if blocked {
            body.push_str(r#"<span class="pill revoked">requires upgrade</span>"#);
        }
        for action in actions {
            let scope = format!("{product}:{action}");
            let checked = if picked.contains(&scope) { " checked" } else { "" };
            let disabled = if blocked { " disabled" } else { "" };
            let _ = write!(
                body,
                r#"<label class="option"><input type="checkbox" name="scope" value="{0}"{checked}{disabled}> {0}</label>"#,
                esc(&scope)
            );
        }
        body.push_str("</fieldset>");
    }
    body.push_str("</div></fieldset>");
}

fn expiry_picker(body: &mut String, fields: &Fields) {
    let chosen = fields.get("expiry").unwrap_or_else(|| "90d".into());
    body.push_str(r#"<fieldset><legend>4. Expiry</legend>"#);
    for (value, label) in [
        ("7d", "7 days"),
        ("30d", "30 days"),
        ("90d", "90 days (recommended)"),
        ("never", "Never"),
        ("custom", "Custom date"),
    ] {
        let checked = if value == chosen { " checked" } else { "" };
        let _ = write!(
            body,
            r#"<label class="option"><input type="radio" name="expiry" value="{value}"{checked}> {label}</label>"#
        );
    }
    let _ = write!(
        body,
        r#"<label for="expiry_date">Custom date</label><input id="expiry_date" name="expiry_date" type="date" value="{}"></fieldset>"#,
        esc(&fields.get("expiry_date").unwrap_or_default())
    );
}

pub fn reveal(person: &Person, key: &ApiKey, secret: &str) -> Response {
    let body = format!(
        r#"<h1>Your new key</h1><section class="card reveal" aria-labelledby="once"><h2 id="once">This secret is shown once. Store it securely.</h2>
<p>keyward keeps only a fingerprint of it: nobody can show it again. Do not paste it into browser apps, mobile apps, public examples or client bundles.</p>
<label for="secret">Secret of <strong>{}</strong> ({})</label><input id="secret" readonly value="{}" spellcheck="false">
<button type="button" class="copy primary" data-copy-from="secret">Copy secret</button></section>
<p><a href="/console/projects/{}/keys">I have stored it: back to the keys</a></p>"#,
        esc(&key.name),
        esc(&key.id),
        esc(secret),
        esc(&key.project_id)
    );
    html(StatusCode::OK, layout("Your new key", Some(person), None, &body))
}

fn back(view: &ProjectView) -> String {
    format!(r#"<a href="/console/projects/{}/keys">Cancel</a>"#, esc(&view.project.id))
}

pub fn edit(person: &Person, view: &ProjectView, key: &ApiKey, problem: Option<&str>) -> Response {
    let alert = problem
        .map(|p| format!(r#"<p class="error" role="alert">{}</p>"#, esc(p)))
        .unwrap_or_default();
    let body = format!(
        r#"<h1>Edit {}</h1>{alert}<form method="post" action="/console/keys/{}/edit" class="card narrow"><input type="hidden" name="_csrf" value="{}">
<label for="name">Name</label><input id="name" name="name" required value="{}">
<label for="description">Description</label><input id="description" name="description" value="{}">
<button type="submit" class="primary">Save</button> {}</form>"#,
        esc(&key.name),
        esc(&key.id),
        esc(&person.csrf),
        esc(&key.name),
        esc(&key.description),
        back(view)
    );
    html(StatusCode::OK, layout("Edit key", Some(person), Some(view), &body))
}

pub fn revoke(person: &Person, view: &ProjectView, key: &ApiKey) -> Response {
    let body = format!(
        r#"<div role="alertdialog" aria-labelledby="confirm" class="card narrow danger-zone"><h1 id="confirm">Revoke {}?</h1>
<p>Every request that still uses <code>{}…{}</code> is rejected from the next verify on. This cannot be undone; roll out a replacement first.</p>
<form method="post" action="/console/keys/{}/revoke"><input type="hidden" name="_csrf" value="{}"><button type="submit" class="danger">Revoke key</button> {}</form></div>"#,
        esc(&key.name),
        esc(&key.display_prefix),
        esc(&key.last4),
        esc(&key.id),
        esc(&person.csrf),
        back(view)
    );
    html(StatusCode::OK, layout("Revoke key", Some(person), Some(view), &body))
}

pub fn rotate(person: &Person, view: &ProjectView, key: &ApiKey) -> Response {
    let body = format!(
        r#"<h1>Rotate {}</h1><form method="post" action="/console/keys/{}/rotate" class="card narrow"><input type="hidden" name="_csrf" value="{}">
<fieldset><legend>When should the old secret stop working?</legend>
<label class="option"><input type="radio" name="overlap" value="0" checked> Immediately</label>
<label class="option"><input type="radio" name="overlap" value="1h"> After a 1 hour overlap</label>
<label class="option"><input type="radio" name="overlap" value="24h"> After a 24 hour overlap</label>
<label class="option"><input type="radio" name="overlap" value="7d"> After a 7 day overlap</label></fieldset>
<p class="warning">The new secret is shown once, on the next page.</p><button type="submit" class="primary">Rotate</button> {}</form>"#,
        esc(&key.name),
        esc(&key.id),
        esc(&person.csrf),
        back(view)
    );
    html(StatusCode::OK, layout("Rotate key", Some(person), Some(view), &body))
}

pub fn members(
    person: &Person,
    view: &ProjectView,
    members: &[crate::store::Member],
    problem: Option<&str>,
    invitation: Option<(&str, &str)>,
) -> Response {
    let mut body =
        String::from(r#"<h1>Members</h1><table><thead><tr><th scope="col">Email</th><th scope="col">Role</th></tr></thead><tbody>"#);
    for m in members {
        let _ = write!(body, "<tr><td>{}</td><td>{}</td></tr>", esc(&m.email), m.role.as_str());
    }
    body.push_str("</tbody></table>");
    if let Some((email, link)) = invitation {
        let _ = write!(
            body,
            r#"<section class="card" role="status"><h2>Invitation for {}</h2><p>Send this link to them. It lets them choose their own password, works once, for 7 days, and is not shown again.</p><p><code class="secret">{link}</code> <button type="button" class="copy" data-copy="{link}">Copy link</button></p></section>"#,
            esc(email),
            link = esc(link)
        );
    }
    if view.role >= Role::Admin {
        if let Some(problem) = problem {
            let _ = write!(body, r#"<p class="error" role="alert">{}</p>"#, esc(problem));
        }
        let _ = write!(
            body,
            r#"<form method="post" action="/console/projects/{}/members" class="card narrow"><h2>Add a person</h2><input type="hidden" name="_csrf" value="{}">
<label for="email">Email</label><input id="email" name="email" type="email" required>
<label for="role">Role</label><select id="role" name="role"><option value="viewer">Viewer</option><option value="member">Member</option><option value="admin">Admin</option><option value="owner">Owner</option></select>
<p class="muted">Someone new gets an invitation link to choose their own password. An existing user is added as they are.</p>
<button type="submit" class="primary">Add</button></form>"#,
            esc(&view.project.id),
            esc(&person.csrf)
        );
    }
    html(StatusCode::OK, layout("Members", Some(person), Some(view), &body))
}

/// The invited person chooses their password.
pub fn invitation(token: &str, email: &str, problem: Option<&str>) -> Response {
    let alert = problem
        .map(|p| format!(r#"<p class="error" role="alert">{}</p>"#, esc(p)))
        .unwrap_or_default();
    let body = format!(
        r#"<h1>Choose your password</h1>{alert}<form method="post" action="/console/invite/{}" class="card narrow">
<p>You were invited as <strong>{}</strong>.</p>
<label for="password">Password <span class="muted">(12 characters or more)</span></label><input id="password" name="password" type="password" autocomplete="new-password" required autofocus>
<label for="confirm">The same again</label><input id="confirm" name="confirm" type="password" autocomplete="new-password" required>
<button type="submit" class="primary">Set password</button></form>"#,
        esc(token),
        esc(email)
    );
    let status = if problem.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    html(status, layout("Choose your password", None, None, &body))
}

fn place_link(place: &Place) -> String {
    let mut text = String::new();
    if !place.repository.is_empty() {
        text.push_str(&place.repository);
    }
    if !place.commit_sha.is_empty() {
        let short: String = place.commit_sha.chars().take(10).collect();
        let _ = write!(text, " @ {short}");
    }
    if !place.path.is_empty() {
        let _ = write!(text, " {}", place.path);
        if let Some(line) = place.line {
            let _ = write!(text, ":{line}");
        }
    }
    if text.is_empty() {
        text = place.source_kind.clone();
    }
    let safe_url = place.url.starts_with("https://") || place.url.starts_with("http://");
    if safe_url {
        format!(
            r#"<a href="{}" rel="noreferrer noopener">{}</a>"#,
            esc(&place.url),
            esc(text.trim())
        )
    } else {
        esc(text.trim())
    }
}

pub fn incidents(person: &Person, view: &ProjectView, incidents: &[(Incident, Vec<(Place, i64)>)]) -> Response {
    let mut body = String::from(
        r#"<h1>Incidents</h1><table><caption>Keys seen where they must never be, and what keyward did.</caption>
<thead><tr><th scope="col">Key</th><th scope="col">Found at</th><th scope="col">Source</th><th scope="col">First seen</th><th scope="col">Last seen</th><th scope="col">Seen</th><th scope="col">Action</th></tr></thead><tbody>"#,
    );
    if incidents.is_empty() {
        body.push_str(r#"<tr><td colspan="7">No leaks seen.</td></tr>"#);
    }
    for (incident, places) in incidents {
        let found: Vec<String> = places.iter().map(|(place, _)| place_link(place)).collect();
        let found = if found.is_empty() {
            place_link(&incident.first_place)
        } else {
            found.join("<br>")
        };
        let _ = write!(
            body,
            r#"<tr id="{}"><td><code class="token">{}…{}</code><div class="muted">{}</div></td><td>{found}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><span class="pill revoked">{}</span></td></tr>"#,
            esc(&incident.id),
            esc(&incident.display_prefix),
            esc(&incident.last4),
            esc(incident.key_id.as_deref().unwrap_or("not a stored key")),
            esc(&incident.first_place.source_kind),
            date(Some(incident.first_seen)),
            date(Some(incident.last_seen)),
            incident.seen_count,
            esc(&incident.action)
        );
    }
    body.push_str("</tbody></table>");
    body.push_str(&help::panel(help::INCIDENTS));
    html(StatusCode::OK, layout("Incidents", Some(person), Some(view), &body))
}

/// Copy-ready snippets that verify a key against this server.
pub fn integrate(person: &Person, view: &ProjectView, url: &str) -> Response {
    let p = esc(&view.project.id);
    let mut body = format!(
        r#"<h1>Integrate</h1><p>Your API servers verify each request's key with <code>POST /v1/keys/verify</code>. Set <code>KEYWARD_KEY</code> to a key of this project (make one on the <a href="/console/projects/{p}/keys">API keys</a> page) and run any of these: each prints the verify code, <code>VALID</code> for a good key.</p><div class="grid snippets">"#
    );
    for (name, language, code) in help::snippets(url) {
        let id = format!("snippet-{}", language);
        let _ = write!(
            body,
            r#"<section class="card snippet" aria-labelledby="{id}-title"><div class="head"><h2 id="{id}-title">{}</h2><button type="button" class="copy" data-copy-from="{id}">Copy</button></div><pre><code id="{id}" class="language-{language}">{}</code></pre></section>"#,
            esc(name),
            esc(&code)
        );
    }
    body.push_str(r#"</div><p class="muted">The answer also carries the key's id, project, mode and scopes; send <code>scope</code> and <code>mode</code> to require them, and <code>cost</code> to spend credits.</p>"#);
    html(StatusCode::OK, layout("Integrate", Some(person), Some(view), &body))
}

pub fn audit(person: &Person, view: &ProjectView, events: &[AuditEvent], action: Option<&str>, actor: Option<&str>) -> Response {
    let p = esc(&view.project.id);
    let mut body = format!(
        r#"<div class="head"><h1>Audit log</h1><a class="button" href="/console/projects/{p}/audit/export" download>Export JSONL</a></div>
<form method="get" class="filters"><label for="action">Action</label><input id="action" name="action" value="{}" placeholder="api_key.created">
<label for="actor">Actor</label><input id="actor" name="actor" value="{}" placeholder="user:…"><button type="submit">Filter</button></form>
<p class="muted">The export is JSON Lines; its SHA-256 comes in the <code>X-Content-SHA256</code> header. Every event is hash-chained to the one before.</p>
<table><thead><tr><th scope="col">#</th><th scope="col">When</th><th scope="col">Actor</th><th scope="col">Action</th><th scope="col">Target</th><th scope="col">Details</th></tr></thead><tbody>"#,
        esc(action.unwrap_or_default()),
        esc(actor.unwrap_or_default())
    );
    for e in events {
        let _ = write!(
            body,
            r#"<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td><code class="details">{}</code></td></tr>"#,
            e.seq,
            date(Some(e.created_at)),
            esc(&e.actor),
            esc(&e.action),
            esc(&e.target),
            esc(&e.data.to_string())
        );
    }
    body.push_str("</tbody></table>");
    body.push_str(&help::panel(help::AUDIT));
    html(StatusCode::OK, layout("Audit log", Some(person), Some(view), &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! t {
        ($name:ident, $input:expr, $expected:expr) => {
            #[test]
            fn $name() {
                assert_eq!(esc($input), $expected);
            }
        };
    }

    t!(plain, "abc_123", "abc_123");
    t!(markup, "<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;");
    t!(attribute_breakout, "\" onmouseover='x'", "&quot; onmouseover=&#39;x&#39;");
    t!(ampersand, "a&b", "a&amp;b");
}
