//! The authorization spec, as a table: one row per route and target, one
//! expected status per actor, over real HTTP on SQLite and PostgreSQL.
//!
//! Every route the server has (`keyward::server::all_routes()`) needs at
//! least one row, so a new route cannot ship without saying who may call
//! it. Each request is sent with a fresh target (a new key, member or
//! invitation), so rows do not depend on one another; a refused request
//! must leave the audit chain, which every change extends, as it was.

mod common;

use std::collections::BTreeSet;

use keyward::keys::token::{Kind, Mode};
use keyward::service::{Caller, NewKey};
use keyward::store::Role;
use sha2::Digest;

/// API actors, in the order of every API row's expectations.
const API_ACTORS: [&str; 13] = [
    "owner key (live)",
    "owner key (test)",
    "admin key (live)",
    "admin key (test)",
    "member key (live)",
    "member key (test)",
    "viewer key (live)",
    "viewer key (test)",
    "another project's key, same owner",
    "another project's key, another owner",
    "deployment key (another project)",
    "publishable key",
    "no credentials",
];

/// Console actors, in the order of every console row's expectations.
const CONSOLE_ACTORS: [&str; 6] = [
    "owner session",
    "admin session",
    "member session",
    "viewer session",
    "session of a person outside the project",
    "no session",
];

/// What a row's path and body need made fresh for each request.
#[derive(Clone, Copy)]
enum Target {
    /// Nothing beyond the project.
    Project,
    /// A live key owned by the member, with a product scope only.
    MembersLiveKey,
    /// A test key owned by the member.
    MembersTestKey,
    /// A live key of the owner's that can manage keys.
    OwnersManagementKey,
    /// The project's default key.
    DefaultKey,
    /// A viewer just added to the project.
    FreshMember,
    /// An invitation for a new person.
    Invitation,
    /// A member service account just made.
    FreshServiceAccount,
}

#[derive(Clone, Copy)]
enum Body {
    None,
    Json(&'static str),
    Form(&'static str),
}

struct Row<const N: usize> {
    method: &'static str,
    path: &'static str,
    what: &'static str,
    target: Target,
    body: Body,
    expect: [u16; N],
}

macro_rules! row {
    ($method:literal, $path:literal, $what:literal, $target:ident, $body:expr, $expect:expr) => {
        Row {
            method: $method,
            path: $path,
            what: $what,
            target: Target::$target,
            body: $body,
            expect: $expect,
        }
    };
}

// Shorthands for common columns: (owner live, owner test, admin live,
// admin test, member live, member test, viewer live, viewer test, same
// owner elsewhere, other owner elsewhere, deployment key, publishable, none).
const READ: [u16; 13] = [200, 200, 200, 200, 200, 200, 200, 200, 404, 404, 404, 403, 401];
const PUBLIC: [u16; 13] = [200; 13];
const fn admins_live(ok: u16) -> [u16; 13] {
    [ok, 403, ok, 403, 403, 403, 403, 403, 404, 404, 404, 403, 401]
}
const fn own_live_key(ok: u16) -> [u16; 13] {
    [ok, 403, ok, 403, ok, 403, 403, 403, 404, 404, 404, 403, 401]
}
const fn own_test_key(ok: u16) -> [u16; 13] {
    [ok, ok, ok, ok, ok, ok, 403, 403, 404, 404, 404, 403, 401]
}
const NOBODY_BUT_DEPLOYMENT: [u16; 13] = [403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 201, 403, 401];
const ONLY_THE_OWNER_LIVE: [u16; 13] = [201, 403, 403, 403, 403, 403, 403, 403, 404, 404, 404, 403, 401];
const NOT_CONFIGURED: [u16; 13] = [503; 13];

const NEW_LIVE_KEY: &str = r#"{"name": "{unique}", "scopes": ["analytics:read"]}"#;

fn api_rows() -> Vec<Row<13>> {
    vec![
        row!(
            "POST",
            "/v1/projects",
            "create a project",
            Project,
            Body::Json(r#"{"name": "made"}"#),
            NOBODY_BUT_DEPLOYMENT
        ),
        row!(
            "GET",
            "/v1/projects",
            "list projects",
            Project,
            Body::None,
            [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 403, 401]
        ),
        row!("GET", "/v1/projects/{project_id}", "read the project", Project, Body::None, READ),
        row!(
            "POST",
            "/v1/projects/{project_id}/keys",
            "create a live key",
            Project,
            Body::Json(NEW_LIVE_KEY),
            own_live_key(201)
        ),
        row!(
            "POST",
            "/v1/projects/{project_id}/keys",
            "create a test key",
            Project,
            Body::Json(r#"{"name": "{unique}", "mode": "test", "scopes": ["analytics:read"]}"#),
            own_test_key(201)
        ),
        row!(
            "POST",
            "/v1/projects/{project_id}/keys",
            "create a key owned by the project's owner",
            Project,
            Body::Json(r#"{"name": "{unique}", "scopes": ["keys:write"], "owner_user_id": "{owner_id}"}"#),
            ONLY_THE_OWNER_LIVE
        ),
        row!(
            "POST",
            "/v1/projects/{project_id}/keys",
            "create a key owned by someone outside the project",
            Project,
            Body::Json(r#"{"name": "{unique}", "scopes": [], "owner_user_id": "{stranger_id}"}"#),
            [422, 403, 422, 403, 403, 403, 403, 403, 404, 404, 404, 403, 401]
        ),
        row!(
            "POST",
            "/v1/projects/{project_id}/keys",
            "create a key with deployment:admin",
            Project,
            Body::Json(r#"{"name": "{unique}", "scopes": ["deployment:admin"]}"#),
            [403, 403, 403, 403, 403, 403, 403, 403, 404, 404, 404, 403, 401]
        ),
        row!(
            "POST",
            "/v1/projects/{project_id}/keys",
            "create a key expiring in the year 10000",
            Project,
            Body::Json(r#"{"name": "{unique}", "scopes": [], "expires_at": 253402300800}"#),
            [422, 403, 422, 403, 422, 403, 403, 403, 404, 404, 404, 403, 401]
        ),
        row!("GET", "/v1/projects/{project_id}/keys", "list keys", Project, Body::None, READ),
        row!(
            "POST",
            "/v1/projects/{project_id}/keys/import",
            "import a live key by its SHA-256",
            Project,
            Body::Json(
                r#"{"keys": [{"sha256": "{sha}", "prefix": "old_", "last4": "abcd", "name": "{unique}", "scopes": ["analytics:read"]}]}"#
            ),
            own_live_key(201)
        ),
        row!("GET", "/v1/projects/{project_id}/usage", "read usage", Project, Body::None, READ),
        row!(
            "GET",
            "/v1/projects/{project_id}/usage?key_id={key_id}&granularity=hour",
            "read one key's usage",
            MembersLiveKey,
            Body::None,
            READ
        ),
        row!(
            "POST",
            "/v1/projects/{project_id}/service-accounts",
            "create a service account",
            Project,
            Body::Json(r#"{"name": "{unique}", "role": "member"}"#),
            admins_live(201)
        ),
        row!(
            "POST",
            "/v1/projects/{project_id}/service-accounts",
            "create an admin service account",
            Project,
            Body::Json(r#"{"name": "{unique}", "role": "admin"}"#),
            admins_live(201)
        ),
        row!(
            "GET",
            "/v1/projects/{project_id}/service-accounts",
            "list service accounts",
            Project,
            Body::None,
            READ
        ),
        row!(
            "DELETE",
            "/v1/projects/{project_id}/service-accounts/{account_id}",
            "delete a service account",
            FreshServiceAccount,
            Body::None,
            admins_live(204)
        ),
        row!(
            "GET",
            "/v1/projects/{project_id}/entitlements",
            "list entitlements",
            Project,
            Body::None,
            READ
        ),
        row!(
            "PUT",
            "/v1/projects/{project_id}/entitlements/{product}",
            "set an entitlement",
            Project,
            Body::Json(r#"{"state": "trial"}"#),
            admins_live(200)
        ),
        row!(
            "POST",
            "/v1/projects/{project_id}/members",
            "demote the last owner (before any other owner is added)",
            Project,
            Body::Json(r#"{"email": "owner@p.example", "role": "viewer"}"#),
            [409, 403, 403, 403, 403, 403, 403, 403, 404, 404, 404, 403, 401]
        ),
        row!(
            "POST",
            "/v1/projects/{project_id}/members",
            "add a viewer",
            Project,
            Body::Json(r#"{"email": "{unique}@example.com", "role": "viewer"}"#),
            admins_live(201)
        ),
        row!(
            "POST",
            "/v1/projects/{project_id}/members",
            "add an owner",
            Project,
            Body::Json(r#"{"email": "{unique}@example.com", "role": "owner"}"#),
            ONLY_THE_OWNER_LIVE
        ),
        row!(
            "GET",
            "/v1/projects/{project_id}/members",
            "list members",
            Project,
            Body::None,
            READ
        ),
        row!(
            "DELETE",
            "/v1/projects/{project_id}/members/{user_id}",
            "remove a viewer",
            FreshMember,
            Body::None,
            admins_live(204)
        ),
        row!(
            "GET",
            "/v1/projects/{project_id}/audit",
            "read the audit log",
            Project,
            Body::None,
            READ
        ),
        row!(
            "GET",
            "/v1/projects/{project_id}/audit/export",
            "export the audit log",
            Project,
            Body::None,
            READ
        ),
        row!(
            "GET",
            "/v1/projects/{project_id}/incidents",
            "list incidents",
            Project,
            Body::None,
            READ
        ),
        row!(
            "PUT",
            "/v1/projects/{project_id}/alert-settings",
            "change alert settings",
            Project,
            Body::Json(r#"{"email": false, "leak_policy": "notify_only"}"#),
            admins_live(200)
        ),
        row!(
            "GET",
            "/v1/projects/{project_id}/alert-settings",
            "read alert settings",
            Project,
            Body::None,
            READ
        ),
        row!(
            "POST",
            "/v1/keys/verify",
            "verify a key",
            Project,
            Body::Json(r#"{"key": "kw_sk_live_nope"}"#),
            PUBLIC
        ),
        row!("GET", "/v1/keys/{key_id}", "read a key", MembersLiveKey, Body::None, READ),
        row!(
            "PATCH",
            "/v1/keys/{key_id}",
            "change the member's live key",
            MembersLiveKey,
            Body::Json(r#"{"description": "changed"}"#),
            own_live_key(200)
        ),
        row!(
            "PATCH",
            "/v1/keys/{key_id}",
            "change the member's test key",
            MembersTestKey,
            Body::Json(r#"{"description": "changed"}"#),
            own_test_key(200)
        ),
        row!(
            "PATCH",
            "/v1/keys/{key_id}",
            "widen the member's key to every scope",
            MembersLiveKey,
            Body::Json(r#"{"scopes": ["*"]}"#),
            own_live_key(200)
        ),
        row!(
            "PATCH",
            "/v1/keys/{key_id}",
            "expire the default key in the past",
            DefaultKey,
            Body::Json(r#"{"expires_at": 1000000000}"#),
            [422, 403, 422, 403, 403, 403, 403, 403, 404, 404, 404, 403, 401]
        ),
        row!(
            "POST",
            "/v1/keys/{key_id}/revoke",
            "revoke the member's live key",
            MembersLiveKey,
            Body::None,
            own_live_key(200)
        ),
        row!(
            "POST",
            "/v1/keys/{key_id}/revoke",
            "revoke the member's test key",
            MembersTestKey,
            Body::None,
            own_test_key(200)
        ),
        row!(
            "POST",
            "/v1/keys/{key_id}/revoke",
            "revoke the default key",
            DefaultKey,
            Body::None,
            [409, 403, 409, 403, 403, 403, 403, 403, 404, 404, 404, 403, 401]
        ),
        row!(
            "POST",
            "/v1/keys/{key_id}/rotate",
            "rotate the member's live key",
            MembersLiveKey,
            Body::None,
            own_live_key(201)
        ),
        row!(
            "POST",
            "/v1/keys/{key_id}/rotate",
            "rotate the owner's management key",
            OwnersManagementKey,
            Body::None,
            ONLY_THE_OWNER_LIVE
        ),
        row!("GET", "/v1/openapi.json", "read the API document", Project, Body::None, PUBLIC),
        row!(
            "GET",
            "/v1/sources",
            "read the leak sources",
            Project,
            Body::None,
            [403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 200, 403, 401]
        ),
        row!(
            "POST",
            "/v1/sightings",
            "report a token seen somewhere (of no known family: 422 once allowed)",
            Project,
            Body::Json(r#"{"token": "not-a-token-at-all", "place": {}}"#),
            [422, 403, 422, 403, 422, 403, 422, 403, 422, 422, 422, 403, 401]
        ),
        row!(
            "GET",
            "/v1/incidents",
            "list the deployment's incidents",
            Project,
            Body::None,
            [403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 200, 403, 401]
        ),
        row!(
            "GET",
            "/v1/alert-settings",
            "read the deployment's alert channels",
            Project,
            Body::None,
            [403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 200, 403, 401]
        ),
        row!(
            "PUT",
            "/v1/alert-settings",
            "set the deployment's alert channels",
            Project,
            Body::Json(r#"{"email": false}"#),
            [403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 200, 403, 401]
        ),
        row!("GET", "/", "the index", Project, Body::None, PUBLIC),
        row!("GET", "/metrics", "scrape metrics", Project, Body::None, PUBLIC),
        row!("GET", "/healthz", "health", Project, Body::None, PUBLIC),
        row!("GET", "/readyz", "readiness", Project, Body::None, PUBLIC),
        row!(
            "POST",
            "/partners/github/secret-scanning",
            "a GitHub partner report",
            Project,
            Body::Json("[]"),
            NOT_CONFIGURED
        ),
        row!(
            "POST",
            "/partners/gitlab/secret-detection",
            "a GitLab partner report",
            Project,
            Body::Json("[]"),
            NOT_CONFIGURED
        ),
        row!(
            "POST",
            "/webhooks/github",
            "a GitHub push",
            Project,
            Body::Json("{}"),
            NOT_CONFIGURED
        ),
        row!(
            "POST",
            "/webhooks/gitlab",
            "a GitLab push",
            Project,
            Body::Json("{}"),
            NOT_CONFIGURED
        ),
    ]
}

// Console columns: owner, admin, member, viewer, outsider, no session.
const PAGE: [u16; 6] = [200, 200, 200, 200, 404, 303];
const OWN_KEY_FORM: [u16; 6] = [303, 303, 303, 403, 404, 303];
const ANYONE: [u16; 6] = [200; 6];
const KEY_FORM_FIELDS: &str =
    "_csrf={csrf}&name={unique}&preset=analytics&expiry=7d&confirm_backend=on&confirm_once=on&confirm_entitlements=on";

fn console_rows() -> Vec<Row<6>> {
    vec![
        row!("GET", "/console", "home", Project, Body::None, [303; 6]),
        row!("GET", "/console/login", "sign-in page", Project, Body::None, ANYONE),
        row!(
            "POST",
            "/console/login",
            "sign in without the form's token",
            Project,
            Body::Form("_csrf=forged&email=owner@p.example&password=whatever-it-is"),
            [403; 6]
        ),
        row!("POST", "/console/logout", "sign out", Project, Body::Form("_csrf={csrf}"), [303; 6]),
        row!("GET", "/console/assets/console.css", "stylesheet", Project, Body::None, ANYONE),
        row!("GET", "/console/assets/console.js", "script", Project, Body::None, ANYONE),
        row!("GET", "/console/invite/{token}", "invitation page", Invitation, Body::None, ANYONE),
        row!(
            "POST",
            "/console/invite/{token}",
            "accept an invitation",
            Invitation,
            Body::Form("password=a-long-passphrase-1&confirm=a-long-passphrase-1"),
            [303; 6]
        ),
        row!("GET", "/console/projects/{project_id}/keys", "key list", Project, Body::None, PAGE),
        row!(
            "GET",
            "/console/projects/{project_id}/integrate",
            "integration snippets",
            Project,
            Body::None,
            PAGE
        ),
        row!(
            "POST",
            "/console/projects/{project_id}/keys",
            "create a key",
            Project,
            Body::Form(KEY_FORM_FIELDS),
            OWN_KEY_FORM
        ),
        row!(
            "POST",
            "/console/projects/{project_id}/keys",
            "create a key without the session's CSRF token",
            Project,
            Body::Form("_csrf=forged&name={unique}&preset=analytics&expiry=7d&confirm_backend=on&confirm_once=on&confirm_entitlements=on"),
            [403, 403, 403, 403, 403, 303]
        ),
        row!(
            "GET",
            "/console/projects/{project_id}/keys/new",
            "create page",
            Project,
            Body::None,
            PAGE
        ),
        row!(
            "GET",
            "/console/projects/{project_id}/members",
            "members page",
            Project,
            Body::None,
            PAGE
        ),
        row!(
            "POST",
            "/console/projects/{project_id}/members",
            "add a new person",
            Project,
            Body::Form("_csrf={csrf}&email={unique}@example.com&role=viewer"),
            [200, 200, 403, 403, 404, 303]
        ),
        row!(
            "POST",
            "/console/projects/{project_id}/members",
            "add someone as owner",
            Project,
            Body::Form("_csrf={csrf}&email={unique}@example.com&role=owner"),
            [200, 403, 403, 403, 404, 303]
        ),
        row!(
            "GET",
            "/console/projects/{project_id}/incidents",
            "incidents page",
            Project,
            Body::None,
            PAGE
        ),
        row!(
            "GET",
            "/console/projects/{project_id}/audit",
            "audit page",
            Project,
            Body::None,
            PAGE
        ),
        row!(
            "GET",
            "/console/projects/{project_id}/audit/export",
            "audit export",
            Project,
            Body::None,
            PAGE
        ),
        row!(
            "GET",
            "/console/reveal/{reveal_id}",
            "a reveal already taken",
            Project,
            Body::None,
            [410, 410, 410, 410, 410, 303]
        ),
        row!("GET", "/console/keys/{key_id}", "a key's page", MembersLiveKey, Body::None, PAGE),
        row!("GET", "/console/keys/{key_id}/edit", "edit page", MembersLiveKey, Body::None, PAGE),
        row!(
            "POST",
            "/console/keys/{key_id}/edit",
            "edit the member's key",
            MembersLiveKey,
            Body::Form("_csrf={csrf}&description=changed"),
            OWN_KEY_FORM
        ),
        row!(
            "GET",
            "/console/keys/{key_id}/revoke",
            "revoke page",
            MembersLiveKey,
            Body::None,
            PAGE
        ),
        row!(
            "POST",
            "/console/keys/{key_id}/revoke",
            "revoke the member's key",
            MembersLiveKey,
            Body::Form("_csrf={csrf}"),
            OWN_KEY_FORM
        ),
        row!(
            "GET",
            "/console/keys/{key_id}/rotate",
            "rotate page",
            MembersLiveKey,
            Body::None,
            PAGE
        ),
        row!(
            "POST",
            "/console/keys/{key_id}/rotate",
            "rotate the member's key",
            MembersLiveKey,
            Body::Form("_csrf={csrf}&overlap=0"),
            OWN_KEY_FORM
        ),
    ]
}

/// The people, projects and credentials every row runs against.
struct World {
    s: common::Server,
    http: reqwest::Client,
    project: String,
    default_key: String,
    user: std::collections::HashMap<&'static str, String>,
    api_tokens: Vec<Option<String>>,
}

const PASSWORDLESS: &str = "x";

async fn world(s: common::Server) -> World {
    let service = s.service.clone();
    let system = Caller::system("authz-test");
    let mut user = std::collections::HashMap::new();
    for (name, email) in [
        ("owner", "owner@p.example"),
        ("admin", "admin@p.example"),
        ("member", "member@p.example"),
        ("viewer", "viewer@p.example"),
        ("stranger", "stranger@elsewhere.example"),
    ] {
        let id = service.set_password(&system, email, "a-long-passphrase-0").await.unwrap();
        user.insert(name, id);
    }
    let as_user = |name: &str| Caller::system_for_user(&user[name]);
    let created = service.create_project(&as_user("owner"), "p").await.unwrap();
    let (project, default) = (created.project, created.default_key);
    for (email, role) in [
        ("admin@p.example", Role::Admin),
        ("member@p.example", Role::Member),
        ("viewer@p.example", Role::Viewer),
    ] {
        service.add_member(&system, &project.id, email, role).await.unwrap();
    }
    let same_owner = service.create_project(&as_user("owner"), "q").await.unwrap().project;
    let other_owner = service.create_project(&as_user("stranger"), "s").await.unwrap().project;
    let key = |project: String, owner: &str, kind: Kind, mode: Mode| {
        let service = service.clone();
        let system = system.clone();
        let owner = user[owner].clone();
        async move {
            let new = NewKey {
                name: format!("k{}", ulid::Ulid::new().to_string().to_ascii_lowercase()),
                description: String::new(),
                kind,
                mode,
                scopes: vec!["*".into()],
                expires_at: None,
                owner_user_id: Some(owner),
                owner_service_account_id: None,
                limits: Default::default(),
            };
            Some(
                service
                    .create_key(&system, &project, new)
                    .await
                    .unwrap()
                    .secret
                    .expose()
                    .to_string(),
            )
        }
    };
    let mut api_tokens = Vec::new();
    for role in ["owner", "admin", "member", "viewer"] {
        for mode in [Mode::Live, Mode::Test] {
            api_tokens.push(key(project.id.clone(), role, Kind::Secret, mode).await);
        }
    }
    api_tokens.push(key(same_owner.id, "owner", Kind::Secret, Mode::Live).await);
    api_tokens.push(key(other_owner.id, "stranger", Kind::Secret, Mode::Live).await);
    api_tokens.push(Some(s.admin.clone()));
    api_tokens.push(key(project.id.clone(), "owner", Kind::Publishable, Mode::Live).await);
    api_tokens.push(None);
    assert_eq!(api_tokens.len(), API_ACTORS.len());
    World {
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        project: project.id,
        default_key: default.key.id,
        user,
        api_tokens,
        s,
    }
}

impl World {
    /// The path and body for one request, with fresh targets made.
    async fn prepare<const N: usize>(&self, row: &Row<N>, csrf: &str) -> (String, Option<(String, &'static str)>) {
        let unique = format!("u{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
        let mut path = row
            .path
            .replace("{project_id}", &self.project)
            .replace("{product}", "analytics")
            .replace("{reveal_id}", &unique);
        match row.target {
            Target::Project => {}
            Target::MembersLiveKey => path = path.replace("{key_id}", &self.fresh_key("member", Mode::Live, "analytics:read").await),
            Target::MembersTestKey => path = path.replace("{key_id}", &self.fresh_key("member", Mode::Test, "analytics:read").await),
            Target::OwnersManagementKey => path = path.replace("{key_id}", &self.fresh_key("owner", Mode::Live, "keys:write").await),
            Target::DefaultKey => path = path.replace("{key_id}", &self.default_key),
            Target::FreshMember => {
                let system = Caller::system("authz-test");
                let email = format!("{unique}@example.com");
                let added = self
                    .s
                    .service
                    .add_member(&system, &self.project, &email, Role::Viewer)
                    .await
                    .unwrap();
                path = path.replace("{user_id}", &added.member.user_id);
            }
            Target::FreshServiceAccount => {
                let system = Caller::system("authz-test");
                let account = self
                    .s
                    .service
                    .create_service_account(&system, &self.project, &unique, Role::Member)
                    .await
                    .unwrap();
                path = path.replace("{account_id}", &account.id);
            }
            Target::Invitation => {
                let system = Caller::system("authz-test");
                let email = format!("{unique}@example.com");
                let added = self
                    .s
                    .service
                    .add_member(&system, &self.project, &email, Role::Viewer)
                    .await
                    .unwrap();
                path = path.replace("{token}", &added.invitation.expect("a new person is invited").token);
            }
        }
        let fill = |text: &str| {
            text.replace("{unique}", &unique)
                .replace("{sha}", &hex::encode(sha2::Sha256::digest(unique.as_bytes())))
                .replace("{csrf}", csrf)
                .replace("{owner_id}", &self.user["owner"])
                .replace("{stranger_id}", &self.user["stranger"])
        };
        let body = match row.body {
            Body::None => None,
            Body::Json(text) => Some((fill(text), "application/json")),
            Body::Form(text) => Some((fill(text), "application/x-www-form-urlencoded")),
        };
        (path, body)
    }

    async fn fresh_key(&self, owner: &str, mode: Mode, scope: &str) -> String {
        let new = NewKey {
            name: format!("t{}", ulid::Ulid::new().to_string().to_ascii_lowercase()),
            description: String::new(),
            kind: Kind::Secret,
            mode,
            scopes: vec![scope.to_string()],
            expires_at: None,
            owner_user_id: Some(self.user[owner].clone()),
            owner_service_account_id: None,
            limits: Default::default(),
        };
        self.s
            .service
            .create_key(&Caller::system("authz-test"), &self.project, new)
            .await
            .unwrap()
            .key
            .id
    }

    /// A new console session for a person, straight into the store (no
    /// argon2 per row): (cookie, csrf).
    async fn session(&self, person: &str) -> (String, String) {
        let token = format!("session{}", ulid::Ulid::new());
        let csrf = format!("csrf{}{}", ulid::Ulid::new(), ulid::Ulid::new());
        let hash = hex::encode(sha2::Sha256::digest(token.as_bytes()));
        let now = keyward::store::now_ms();
        self.s
            .service
            .store()
            .insert_session(&hash, &self.user[person], &csrf, now, now + 3_600_000)
            .await
            .unwrap();
        (format!("kw_session={token}"), csrf)
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<(String, &str)>,
        bearer: Option<&str>,
        cookie: Option<&str>,
    ) -> (u16, String) {
        let mut req = self.http.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", self.s.base),
        );
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        if let Some(cookie) = cookie {
            req = req.header("cookie", cookie);
        }
        if let Some((text, content_type)) = body {
            req = req.header("content-type", content_type).body(text);
        }
        let response = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: the connection failed: {e}"));
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    async fn audit_length(&self) -> i64 {
        self.s.service.store().audit_length().await.unwrap()
    }
}

fn is_success(status: u16) -> bool {
    (200..400).contains(&status)
}

/// Every route of the server has a row, and every row names a route.
fn assert_complete(rows: &[(&str, &str)]) {
    let routes: BTreeSet<(String, String)> = keyward::server::all_routes()
        .into_iter()
        .map(|(m, p)| (m.to_ascii_uppercase(), p.to_string()))
        .collect();
    // A row may add a query string to its route's path.
    let covered: BTreeSet<(String, String)> = rows
        .iter()
        .map(|(m, p)| (m.to_string(), p.split('?').next().unwrap_or(p).to_string()))
        .collect();
    let missing: Vec<_> = routes.difference(&covered).collect();
    let stale: Vec<_> = covered.difference(&routes).collect();
    assert!(missing.is_empty(), "routes without rows in the authorization table: {missing:?}");
    assert!(stale.is_empty(), "rows for routes the server does not have: {stale:?}");
}

#[test]
fn every_route_has_rows() {
    let mut rows: Vec<(&str, &str)> = api_rows().iter().map(|r| (r.method, r.path)).collect();
    rows.extend(console_rows().iter().map(|r| (r.method, r.path)));
    assert_complete(&rows);
}

#[test]
fn a_route_without_rows_is_caught() {
    let mut rows: Vec<(&str, &str)> = api_rows().iter().map(|r| (r.method, r.path)).collect();
    rows.extend(console_rows().iter().map(|r| (r.method, r.path)));
    rows.retain(|(m, p)| !(*m == "DELETE" && p.contains("/members/")));
    let outcome = std::panic::catch_unwind(|| assert_complete(&rows));
    assert!(outcome.is_err(), "removing the only row of a route went unnoticed");
}

both_backends!(the_api_follows_the_table, |s: common::Server| async move {
    let w = world(s).await;
    let mut wrong = Vec::new();
    for row in api_rows() {
        for (column, (actor, expected)) in API_ACTORS.iter().zip(row.expect).enumerate() {
            let (path, body) = w.prepare(&row, "").await;
            let before = w.audit_length().await;
            let (status, text) = w.send(row.method, &path, body, w.api_tokens[column].as_deref(), None).await;
            if status != expected {
                wrong.push(format!(
                    "{} {} ({}) as {actor}: expected {expected}, got {status}: {text}",
                    row.method, row.path, row.what
                ));
            } else if !is_success(status) && w.audit_length().await != before {
                wrong.push(format!(
                    "{} {} ({}) as {actor}: refused with {status} but the store changed",
                    row.method, row.path, row.what
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{} rows disagree:\n{}", wrong.len(), wrong.join("\n"));
});

both_backends!(the_console_follows_the_table, |s: common::Server| async move {
    let w = world(s).await;
    let people = ["owner", "admin", "member", "viewer", "stranger"];
    let mut wrong = Vec::new();
    for row in console_rows() {
        for (column, (actor, expected)) in CONSOLE_ACTORS.iter().zip(row.expect).enumerate() {
            let (cookie, csrf) = match people.get(column) {
                Some(person) => {
                    let (cookie, csrf) = w.session(person).await;
                    (Some(cookie), csrf)
                }
                None => (None, PASSWORDLESS.to_string()),
            };
            let (path, body) = w.prepare(&row, &csrf).await;
            let before = w.audit_length().await;
            let (status, _) = w.send(row.method, &path, body, None, cookie.as_deref()).await;
            if status != expected {
                wrong.push(format!(
                    "{} {} ({}) as {actor}: expected {expected}, got {status}",
                    row.method, row.path, row.what
                ));
            } else if !is_success(status) && w.audit_length().await != before {
                wrong.push(format!(
                    "{} {} ({}) as {actor}: refused with {status} but the store changed",
                    row.method, row.path, row.what
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{} rows disagree:\n{}", wrong.len(), wrong.join("\n"));
});
