//! The fourteen authorization holes found by trying the running service as
//! an attacker would, each reproduced as it was reported and now refused,
//! with nothing changed in the store (the audit chain, which every change
//! extends, is where it was).

mod common;

use std::time::Duration;

use keyward::service::Caller;
use keyward::store::{EntitlementState, Role};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery staple";

/// A person with a password and a role in the bootstrap project.
async fn person(s: &common::Server, email: &str, role: Role) -> String {
    let system = Caller::system("holes-test");
    let id = s.service.set_password(&system, email, PASSWORD).await.unwrap();
    s.service.add_member(&system, &s.project, email, role).await.unwrap();
    id
}

/// A `*` key of the person, in the bootstrap project.
async fn key_of(s: &common::Server, user_id: &str, mode: &str) -> String {
    let body = json!({"name": format!("k{}", ulid::Ulid::new().to_string().to_ascii_lowercase()), "mode": mode, "scopes": ["*"], "owner_user_id": user_id});
    s.create_key(body).await.1
}

async fn audit_length(s: &common::Server) -> i64 {
    s.service.store().audit_length().await.unwrap()
}

/// A console sign-in over HTTP, as a browser does it.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: String,
    csrf: String,
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn hidden_csrf(page: &str) -> String {
    let marker = "name=\"_csrf\" value=\"";
    let start = page.find(marker).expect("a form with _csrf") + marker.len();
    page[start..].split('"').next().unwrap().to_string()
}

/// Posts the sign-in form; returns the status and the session cookie.
async fn sign_in_status(base: &str, email: &str, password: &str, forwarded_for: Option<&str>) -> (u16, Option<String>) {
    let http = no_redirects();
    let page = http.get(format!("{base}/console/login")).send().await.unwrap();
    let login = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("kw_login="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf = hidden_csrf(&page.text().await.unwrap());
    let mut request = http.post(format!("{base}/console/login")).header("cookie", &login).form(&[
        ("_csrf", csrf.as_str()),
        ("email", email),
        ("password", password),
    ]);
    if let Some(xff) = forwarded_for {
        request = request.header("x-forwarded-for", xff);
    }
    let response = request.send().await.unwrap();
    let session = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("kw_session="))
        .map(|v| v.split(';').next().unwrap().to_string());
    (response.status().as_u16(), session)
}

async fn sign_in(s: &common::Server, email: &str) -> Browser {
    let (status, cookie) = sign_in_status(&s.base, email, PASSWORD, None).await;
    assert_eq!(status, 303, "{email} signs in");
    let cookie = cookie.unwrap();
    let http = no_redirects();
    // The console's home sends a person to their first project's page,
    // whose sign-out form carries the session's CSRF token.
    let home = http
        .get(format!("{}/console", s.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let first_page = home.headers()["location"].to_str().unwrap().to_string();
    let page = http
        .get(format!("{}{first_page}", s.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let csrf = hidden_csrf(&page.text().await.unwrap());
    Browser {
        http,
        base: s.base.clone(),
        cookie,
        csrf,
    }
}

impl Browser {
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let mut fields = vec![("_csrf", self.csrf.as_str())];
        fields.extend_from_slice(form);
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .form(&fields)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn get(&self, path: &str) -> u16 {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        response.status().as_u16()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole_01_an_admin_cannot_set_someone_elses_password() {
    let s = common::Server::start(common::Backend::Sqlite).await.unwrap();
    person(&s, "mallory@example.com", Role::Admin).await;
    // The victim is an admin of another project only, signed in right now.
    let system = Caller::system("holes-test");
    let victim = s.service.set_password(&system, "victim@example.com", PASSWORD).await.unwrap();
    s.service.create_project(&Caller::system_for_user(&victim), "theirs").await.unwrap();
    let victims_session = sign_in(&s, "victim@example.com").await;

    let mallory = sign_in(&s, "mallory@example.com").await;
    let path = format!("/console/projects/{}/members", s.project);
    let (status, page) = mallory
        .post(
            &path,
            &[
                ("email", "victim@example.com"),
                ("role", "viewer"),
                ("password", "mallory-chose-this"),
            ],
        )
        .await;
    assert_eq!(status, 303, "the victim is added as a member, nothing more: {page}");
    assert!(!page.contains("/console/invite/"), "no invitation for someone who acts elsewhere");
    assert_eq!(
        sign_in_status(&s.base, "victim@example.com", "mallory-chose-this", None).await.0,
        401
    );
    assert_eq!(sign_in_status(&s.base, "victim@example.com", PASSWORD, None).await.0, 303);
    assert_eq!(victims_session.get("/console").await, 303, "the victim's session lives on");
    let events = s.service.store().audit_events(&s.project, Some("member.added"), 100).await.unwrap();
    assert!(events.iter().any(|e| e.target == victim), "the addition is audited");
    assert!(
        s.service
            .store()
            .audit_events(&s.project, Some("user.password_changed"), 100)
            .await
            .unwrap()
            .is_empty(),
        "no password changed"
    );
}

both_backends!(hole_02_no_impersonation_through_owner_user_id, |s: common::Server| async move {
    let admin_id = person(&s, "admin@example.com", Role::Admin).await;
    let admin = key_of(&s, &admin_id, "live").await;
    let owner_id = s.service.store().user_id_by_email("owner@example.com").await.unwrap().unwrap();
    let outsider = s
        .service
        .set_password(&Caller::system("t"), "outsider@example.com", PASSWORD)
        .await
        .unwrap();
    let members = format!("/v1/projects/{}/members", s.project);
    let keys = format!("/v1/projects/{}/keys", s.project);
    let before = audit_length(&s).await;

    let (status, _) = s
        .call(
            Some(&admin),
            "POST",
            &members,
            Some(json!({"email": "admin@example.com", "role": "owner"})),
        )
        .await;
    assert_eq!(status, 403, "an admin cannot make itself owner");
    let as_owner = json!({"name": "borrowed", "scopes": ["*"], "owner_user_id": owner_id});
    let (status, body) = s.call(Some(&admin), "POST", &keys, Some(as_owner)).await;
    assert_eq!(status, 403, "a key owned by the Owner, made by an admin: {body}");
    let as_outsider = json!({"name": "borrowed2", "scopes": ["*"], "owner_user_id": outsider});
    let (status, body) = s.call(Some(&admin), "POST", &keys, Some(as_outsider)).await;
    assert_eq!(status, 422, "a key owned by someone outside the project: {body}");
    assert_eq!(audit_length(&s).await, before, "nothing changed");
    let (_, roles) = s.admin("GET", &members, None).await;
    assert!(roles.to_string().contains("\"role\":\"admin\""), "{roles}");
});

both_backends!(hole_03_a_key_reaches_only_its_own_project, |s: common::Server| async move {
    // The same person owns project A (the bootstrap one) and project B.
    let owner_id = s.service.store().user_id_by_email("owner@example.com").await.unwrap().unwrap();
    let b = s
        .service
        .create_project(&Caller::system_for_user(&owner_id), "b")
        .await
        .unwrap()
        .project;
    let new = keyward::service::NewKey {
        name: "b_admin".into(),
        description: String::new(),
        kind: keyward::keys::token::Kind::Secret,
        mode: keyward::keys::token::Mode::Live,
        scopes: vec!["*".into()],
        expires_at: None,
        owner_user_id: Some(owner_id.clone()),
        owner_service_account_id: None,
        limits: Default::default(),
    };
    let b_key = s
        .service
        .create_key(&Caller::system("t"), &b.id, new)
        .await
        .unwrap()
        .secret
        .expose()
        .to_string();
    let (a_key, a_secret) = s.create_key(json!({"name": "in_a", "scopes": ["analytics:read"]})).await;
    let a = &s.project;
    let before = audit_length(&s).await;
    for (method, path, body) in [
        ("GET", format!("/v1/keys/{a_key}"), None),
        ("GET", format!("/v1/projects/{a}/keys"), None),
        ("POST", format!("/v1/keys/{a_key}/revoke"), None),
        ("PATCH", format!("/v1/keys/{a_key}"), Some(json!({"description": "mine now"}))),
        ("POST", format!("/v1/keys/{a_key}/rotate"), None),
        ("GET", format!("/v1/projects/{a}/audit"), None),
        ("GET", format!("/v1/projects/{a}/audit/export"), None),
        ("GET", format!("/v1/projects/{a}/incidents"), None),
        ("GET", format!("/v1/projects/{a}/members"), None),
        (
            "POST",
            format!("/v1/projects/{a}/members"),
            Some(json!({"email": "friend@example.com", "role": "owner"})),
        ),
        (
            "PUT",
            format!("/v1/projects/{a}/entitlements/analytics"),
            Some(json!({"state": "requires_upgrade"})),
        ),
        ("GET", format!("/v1/projects/{a}/alert-settings"), None),
        (
            "PUT",
            format!("/v1/projects/{a}/alert-settings"),
            Some(json!({"leak_policy": "notify_only"})),
        ),
    ] {
        let (status, answer) = s.call(Some(&b_key), method, &path, body).await;
        assert_eq!(status, 404, "{method} {path} with project B's key: {answer}");
    }
    let (_, missing) = s.call(Some(&b_key), "GET", "/v1/keys/key_doesnotexist", None).await;
    let (_, hidden) = s.call(Some(&b_key), "GET", &format!("/v1/keys/{a_key}"), None).await;
    assert_eq!(missing, hidden, "another project's key reads exactly like a missing one");
    let (_, listed) = s.call(Some(&b_key), "GET", "/v1/projects", None).await;
    let ids: Vec<&str> = listed["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![b.id.as_str()], "a key lists only its own project");
    assert_eq!(audit_length(&s).await, before, "nothing changed");
    assert_eq!(s.code(&a_secret, Some("analytics:read"), None).await, "VALID");
});

both_backends!(hole_04_an_admin_cannot_demote_the_owner, |s: common::Server| async move {
    let admin_id = person(&s, "admin@example.com", Role::Admin).await;
    let admin = key_of(&s, &admin_id, "live").await;
    let members = format!("/v1/projects/{}/members", s.project);
    let before = audit_length(&s).await;
    let (status, body) = s
        .call(
            Some(&admin),
            "POST",
            &members,
            Some(json!({"email": "owner@example.com", "role": "viewer"})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let owner_id = s.service.store().user_id_by_email("owner@example.com").await.unwrap().unwrap();
    let (status, _) = s.call(Some(&admin), "DELETE", &format!("{members}/{owner_id}"), None).await;
    assert_eq!(status, 403, "nor remove them");
    let (status, body) = s
        .admin("POST", &members, Some(json!({"email": "owner@example.com", "role": "viewer"})))
        .await;
    assert_eq!(status, 409, "the owner cannot demote the last owner, themselves included: {body}");
    assert_eq!(audit_length(&s).await, before);
    assert_eq!(
        s.service.store().role_of_user(&s.project, &owner_id).await.unwrap(),
        Some(Role::Owner)
    );
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole_05_a_password_change_ends_every_session() {
    let s = common::Server::start(common::Backend::Sqlite).await.unwrap();
    let id = person(&s, "ana@example.com", Role::Member).await;
    let first = sign_in(&s, "ana@example.com").await;
    let second = sign_in(&s, "ana@example.com").await;
    let keys = format!("/console/projects/{}/keys", s.project);
    assert_eq!((first.get(&keys).await, second.get(&keys).await), (200, 200));
    s.service
        .set_password(&Caller::system("cli"), "ana@example.com", "a brand new passphrase")
        .await
        .unwrap();
    assert_eq!(first.get(&keys).await, 303, "the old session goes back to sign-in");
    assert_eq!(second.get(&keys).await, 303);
    let changed = common::sql_texts(
        &s.database_url,
        "SELECT target FROM audit_events WHERE action = 'user.password_changed'",
    )
    .await;
    assert!(changed.contains(&id), "user.password_changed is audited: {changed:?}");
}

both_backends!(hole_06_a_test_key_changes_nothing_live, |s: common::Server| async move {
    let owner_id = s.service.store().user_id_by_email("owner@example.com").await.unwrap().unwrap();
    let test_key = key_of(&s, &owner_id, "test").await;
    let (_, live_secret) = s.create_key(json!({"name": "live_one", "scopes": ["analytics:read"]})).await;
    let p = &s.project;
    let before = audit_length(&s).await;
    let (status, _) = s
        .call(
            Some(&test_key),
            "PUT",
            &format!("/v1/projects/{p}/entitlements/analytics"),
            Some(json!({"state": "requires_upgrade"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = s
        .call(
            Some(&test_key),
            "PUT",
            &format!("/v1/projects/{p}/alert-settings"),
            Some(json!({"leak_policy": "notify_only"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = s
        .call(Some(&test_key), "POST", "/v1/projects", Some(json!({"name": "sneaky"})))
        .await;
    assert_eq!(status, 403);
    assert!(!body.to_string().contains("kw_sk_live_"), "no live secret: {body}");
    assert_eq!(audit_length(&s).await, before, "nothing changed");
    assert_eq!(s.code(&live_secret, Some("analytics:read"), None).await, "VALID");
    let (_, project) = s.admin("GET", &format!("/v1/projects/{p}"), None).await;
    assert_eq!(project["leak_policy"], "revoke");
    let (status, _) = s
        .call(
            Some(&test_key),
            "POST",
            &format!("/v1/projects/{p}/keys"),
            Some(json!({"name": "t1", "mode": "test", "scopes": []})),
        )
        .await;
    assert_eq!(status, 201, "a test key may still make test keys");
});

both_backends!(hole_07_no_stored_value_breaks_a_page, |s: common::Server| async move {
    let member_id = person(&s, "member@example.com", Role::Member).await;
    let member = key_of(&s, &member_id, "live").await;
    let keys = format!("/v1/projects/{}/keys", s.project);
    let before = audit_length(&s).await;
    let (status, body) = s
        .call(
            Some(&member),
            "POST",
            &keys,
            Some(json!({"name": "far", "scopes": [], "expires_at": 253402300800i64})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(audit_length(&s).await, before, "nothing committed");
    // Whatever is already stored formats: times past 9999 and non-ASCII commits.
    let (id, _) = s.create_key(json!({"name": "stored_far", "scopes": []})).await;
    common::sql(
        &s.database_url,
        &format!("UPDATE api_keys SET expires_at = {} WHERE id = '{id}'", i64::MAX),
    )
    .await;
    let (status, list) = s.call(Some(&member), "GET", &keys, None).await;
    assert_eq!(status, 200, "{list}");
    assert!(list.to_string().contains("+292278994-"), "{list}");
    let (status, _) = s.call(Some(&member), "GET", &format!("/v1/keys/{id}"), None).await;
    assert_eq!(status, 200);
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole_07_the_incidents_page_takes_any_commit_text() {
    let s = common::Server::start(common::Backend::Sqlite).await.unwrap();
    person(&s, "viewer@example.com", Role::Viewer).await;
    let (_, secret) = s.create_key(json!({"name": "leaky", "scopes": []})).await;
    let place = keyward::store::Place {
        source_kind: "github_push".into(),
        repository: "octo/app".into(),
        commit_sha: "ééééééééééé€€€".into(),
        path: "config/.env".into(),
        line: Some(3),
        url: String::new(),
    };
    s.responder.report(&secret, &place).await.unwrap();
    let viewer = sign_in(&s, "viewer@example.com").await;
    assert_eq!(viewer.get(&format!("/console/projects/{}/incidents", s.project)).await, 200);
}

both_backends!(hole_08_a_viewer_never_reads_delivery_credentials, |s: common::Server| async move {
    let viewer_id = person(&s, "viewer@example.com", Role::Viewer).await;
    let viewer = key_of(&s, &viewer_id, "live").await;
    let path = format!("/v1/projects/{}/alert-settings", s.project);
    let settings = json!({
        "webhook_url": "https://bob:hunter2-secret@hooks.example.com/keyward",
        "webhook_secret": "a-long-random-signing-secret",
        "slack_webhook_url": "https://hooks.slack.com/services/T0001/B0001/XXXXsecretXXXX",
    });
    let (status, saved) = s.admin("PUT", &path, Some(settings)).await;
    assert_eq!(status, 200, "{saved}");
    let (status, seen) = s.call(Some(&viewer), "GET", &path, None).await;
    assert_eq!(status, 200);
    for secret in [
        "hunter2",
        "bob:",
        "XXXXsecretXXXX",
        "hooks.slack.com",
        "hooks.example.com",
        "a-long-random",
    ] {
        assert!(!seen.to_string().contains(secret), "a viewer sees {secret}: {seen}");
    }
    assert_eq!(
        (seen["webhook_url_set"].as_bool(), seen["slack_webhook_url_set"].as_bool()),
        (Some(true), Some(true))
    );
    let (_, admin_view) = s.admin("GET", &path, None).await;
    for secret in ["hunter2", "XXXXsecretXXXX", "a-long-random"] {
        assert!(!admin_view.to_string().contains(secret), "{admin_view}");
        assert!(!saved.to_string().contains(secret), "{saved}");
    }
    assert_eq!(admin_view["webhook_url"], "https://***@hooks.example.com/keyward");
});

both_backends!(hole_09_the_default_key_cannot_be_expired_away, |s: common::Server| async move {
    let (_, keys) = s.admin("GET", &format!("/v1/projects/{}/keys", s.project), None).await;
    let default = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["is_default"] == true)
        .unwrap()
        .clone();
    let id = default["id"].as_str().unwrap();
    let before = audit_length(&s).await;
    for past in [json!(1_000_000_000), json!("2001-01-01T00:00:00Z"), json!(0)] {
        let (status, body) = s.admin("PATCH", &format!("/v1/keys/{id}"), Some(json!({"expires_at": past}))).await;
        assert_eq!(status, 422, "{body}");
    }
    assert_eq!(audit_length(&s).await, before);
    let (_, after) = s.admin("GET", &format!("/v1/keys/{id}"), None).await;
    assert_eq!(after["status"], "active");
    assert_eq!(after["expires_at"], Value::Null);
    let (status, rotated) = s.admin("POST", &format!("/v1/keys/{id}/rotate"), None).await;
    assert_eq!(status, 201);
    assert_eq!(rotated["key"]["status"], "active", "the successor is born working");
    assert_eq!(s.code(rotated["secret"].as_str().unwrap(), None, None).await, "VALID");
});

both_backends!(hole_10_scope_without_role_is_nothing, |s: common::Server| async move {
    let viewer_id = person(&s, "viewer@example.com", Role::Viewer).await;
    let member_id = person(&s, "member@example.com", Role::Member).await;
    let viewer = s
        .create_key(json!({"name": "viewer_admin", "scopes": ["projects:admin"], "owner_user_id": viewer_id}))
        .await
        .1;
    let member = key_of(&s, &member_id, "live").await;
    let narrow = s
        .create_key(json!({"name": "narrow", "scopes": ["keys:write"], "owner_user_id": member_id}))
        .await
        .1;
    let before = audit_length(&s).await;
    let (status, _) = s.call(Some(&viewer), "POST", "/v1/projects", Some(json!({"name": "mine"}))).await;
    assert_eq!(status, 403, "a viewer's key creates no project");
    let (status, _) = s.call(Some(&viewer), "GET", "/v1/sources", None).await;
    assert_eq!(status, 403, "nor reads the sources");
    let keys = format!("/v1/projects/{}/keys", s.project);
    for scopes in [json!(["deployment:admin"]), json!(["deployment:*"])] {
        let (status, body) = s
            .call(Some(&member), "POST", &keys, Some(json!({"name": "escalate", "scopes": scopes})))
            .await;
        assert_eq!(status, 403, "a member mints no deployment key: {body}");
    }
    let (status, body) = s
        .call(Some(&narrow), "POST", &keys, Some(json!({"name": "wider", "scopes": ["*"]})))
        .await;
    assert_eq!(status, 403, "a key mints no key stronger than itself: {body}");
    assert_eq!(audit_length(&s).await, before);
    let (status, _) = s.admin("GET", "/v1/sources", None).await;
    assert_eq!(status, 200, "the deployment owner's key reads the sources");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole_11_the_plan_gate_holds_on_every_path() {
    let s = common::Server::start(common::Backend::Sqlite).await.unwrap();
    person(&s, "admin@example.com", Role::Admin).await;
    s.service
        .set_entitlement(
            &Caller::system("billing"),
            &s.project,
            "key_management",
            EntitlementState::RequiresUpgrade,
        )
        .await
        .unwrap();
    let before = audit_length(&s).await;
    let admin = sign_in(&s, "admin@example.com").await;
    let form = [
        ("name", "gated"),
        ("preset", "analytics"),
        ("expiry", "7d"),
        ("confirm_backend", "on"),
        ("confirm_once", "on"),
        ("confirm_entitlements", "on"),
    ];
    let (status, page) = admin.post(&format!("/console/projects/{}/keys", s.project), &form).await;
    assert_eq!(status, 403, "{page}");
    let (status, body) = s
        .admin(
            "POST",
            &format!("/v1/projects/{}/keys", s.project),
            Some(json!({"name": "gated2", "scopes": []})),
        )
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("not_entitled")), "{body}");
    assert_eq!(audit_length(&s).await, before, "no key created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole_12_one_persons_typos_lock_out_nobody_else() {
    let setup = common::Setup {
        trusted_proxies: vec!["127.0.0.1".into()],
        ..Default::default()
    };
    let s = common::Server::start_with(common::Backend::Sqlite, setup).await.unwrap();
    person(&s, "ana@example.com", Role::Member).await;
    person(&s, "ben@example.com", Role::Member).await;
    // Behind the proxy: Ana types her password wrong until she is stopped.
    let mut statuses = Vec::new();
    for _ in 0..11 {
        statuses.push(
            sign_in_status(&s.base, "ana@example.com", "wrong-wrong-wrong", Some("198.51.100.1"))
                .await
                .0,
        );
    }
    assert!(statuses[..10].iter().all(|s| *s == 401) && statuses[10] == 429, "{statuses:?}");
    // Ben, behind the same proxy, is not locked out.
    assert_eq!(
        sign_in_status(&s.base, "ben@example.com", PASSWORD, Some("198.51.100.2")).await.0,
        303
    );
    // Nor from the same office address: the limit is per account first.
    assert_eq!(
        sign_in_status(&s.base, "ben@example.com", PASSWORD, Some("198.51.100.1")).await.0,
        303
    );
    // A forged header buys a guesser nothing: Ana's account stays shut.
    assert_eq!(
        sign_in_status(&s.base, "ana@example.com", PASSWORD, Some("203.0.113.77")).await.0,
        429
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole_12_a_forged_forwarded_for_is_ignored_without_trusted_proxies() {
    let s = common::Server::start(common::Backend::Sqlite).await.unwrap();
    person(&s, "ana@example.com", Role::Member).await;
    for n in 0..50 {
        let email = format!("guess{n}@example.com");
        let forged = format!("198.51.100.{}", n + 1);
        assert_eq!(sign_in_status(&s.base, &email, "wrong-wrong-wrong", Some(&forged)).await.0, 401);
    }
    // Fifty failures from one address, whatever each claimed to be: stopped.
    assert_eq!(
        sign_in_status(&s.base, "ana@example.com", PASSWORD, Some("203.0.113.1")).await.0,
        429
    );
}

both_backends_with!(hole_13_a_replayed_push_is_read_once, env, |e: common::pushes::Env| async move {
    use common::pushes::{push_payload, BEFORE, C1};
    e.github
        .add_commit(C1, vec![common::hosts::FileChange::new("a.env", &e.leak_patch())]);
    e.github.add_range(BEFORE, C1, &[C1]);
    let body = push_payload(BEFORE, C1, &[C1], false, false);
    let (status, _) = e.push("first-delivery", body.clone()).await;
    assert_eq!(status, 202);
    for n in 0..5 {
        let (status, answer) = e.push(&format!("forged-delivery-{n}"), body.clone()).await;
        assert_eq!((status, answer["status"].as_str()), (200, Some("duplicate")), "{answer}");
    }
    assert_eq!(e.wait_for_jobs("push.github", 1).await.len(), 1, "one job for one push");

    // GitLab: the same hook body under new event UUIDs.
    let hook: Value = serde_json::from_str(include_str!("../fixtures/gitlab/push-hook.json")).unwrap();
    let hook = serde_json::to_vec(&hook).unwrap();
    let mut answers = Vec::new();
    for uuid in ["u-1", "u-2", "u-3"] {
        let response =
            e.s.http
                .post(format!("{}/webhooks/gitlab", e.s.base))
                .header("x-gitlab-event", "Push Hook")
                .header("x-gitlab-token", common::pushes::GITLAB_TOKEN)
                .header("x-gitlab-event-uuid", uuid)
                .body(hook.clone())
                .send()
                .await
                .unwrap();
        answers.push(response.status().as_u16());
    }
    assert_eq!(answers, vec![202, 200, 200]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(e.s.service.store().jobs_of_kind("push.gitlab").await.unwrap().len(), 1);
});

async fn env(backend: common::Backend) -> Option<common::pushes::Env> {
    common::pushes::env(backend).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole_14_alert_urls_cannot_reach_inside() {
    let setup = common::Setup {
        deny_private_targets: true,
        ..Default::default()
    };
    let s = common::Server::start_with(common::Backend::Sqlite, setup).await.unwrap();
    let path = format!("/v1/projects/{}/alert-settings", s.project);
    let before = audit_length(&s).await;
    let own = s.base.clone();
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:5432/",
        own.as_str(),
        "http://localhost:8080/hook",
        "http://[::1]/hook",
        "http://[::ffff:169.254.169.254]/",
        "http://10.0.0.7/internal",
        "http://0x7f000001/",
    ] {
        let settings = json!({"webhook_url": url, "webhook_secret": "a-long-random-signing-secret"});
        let (status, body) = s.admin("PUT", &path, Some(settings)).await;
        assert_eq!(status, 422, "{url}: {body}");
        let (status, _) = s.admin("PUT", &path, Some(json!({"slack_webhook_url": url}))).await;
        assert_eq!(status, 422, "{url} as a Slack URL");
    }
    assert_eq!(audit_length(&s).await, before, "nothing saved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole_14_delivery_checks_again_after_resolution() {
    let setup = common::Setup {
        deny_private_targets: true,
        ..Default::default()
    };
    let s = common::Server::start_with(common::Backend::Sqlite, setup).await.unwrap();
    let (receiver, url) = common::fakes::Receiver::start().await;
    // Saved before the rule existed (or through a name that resolved
    // outside then): delivery refuses it, by literal and by name.
    let by_name = url.replace("127.0.0.1", "localhost");
    for target in [url.as_str(), by_name.as_str()] {
        let statement = format!(
            "DELETE FROM alert_settings WHERE project_id = '{p}'; \
             INSERT INTO alert_settings (project_id, webhook_url, webhook_secret, email, updated_at) VALUES ('{p}', '{target}', 'a-long-random-signing-secret', 0, 1)",
            p = s.project
        );
        common::sql(&s.database_url, &statement).await;
        let (_, secret) = s
            .create_key(json!({"name": format!("k{}", ulid::Ulid::new().to_string().to_ascii_lowercase()), "scopes": []}))
            .await;
        let place = keyward::store::Place {
            source_kind: "test".into(),
            repository: "octo/app".into(),
            commit_sha: "abc".into(),
            path: ".env".into(),
            line: Some(1),
            url: String::new(),
        };
        s.responder.report(&secret, &place).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.count(), 0, "nothing reached the internal receiver");
    let errors = common::sql_texts(&s.database_url, "SELECT last_error FROM jobs WHERE kind LIKE 'alert.%'").await;
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors.iter().all(|e| e.contains("internal address")), "{errors:?}");
    assert!(errors.iter().all(|e| !e.contains("signing-secret")), "{errors:?}");
}
