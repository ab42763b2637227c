//! Form bodies (`application/x-www-form-urlencoded`, with repeated fields
//! for check boxes) and the create-key form's rules: kind presets, scopes,
//! expiry and the confirmations a person must tick.

use crate::keys::scopes::Catalog;
use crate::keys::token::{Kind, Mode};
use crate::service::NewKey;
use crate::store::{now_ms, Entitlement};

/// The fields of a posted form, in order, repeated names kept.
#[derive(Debug, Default, Clone)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    pub fn parse(body: &[u8]) -> Fields {
        Fields(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<String> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
}

/// The kinds of key the create page offers, from the seeds.
pub const PRESETS: &[(&str, &str, &str)] = &[
    (
        "project",
        "Project API key",
        "Default key for simple server-side setup across the project's products.",
    ),
    ("product", "Product-scoped key", "Limited to the product actions you pick below."),
    (
        "analytics",
        "Read-only analytics key",
        "Reads dashboards and reports; cannot write product data.",
    ),
    (
        "backend",
        "Backend secret",
        "For trusted servers, workers and jobs, with the scopes you pick.",
    ),
    (
        "service_role",
        "Service role key",
        "Dangerous: full access, including keyward's own management API.",
    ),
];

/// The confirmations every new key needs, and the service role's own.
pub const CONFIRMATIONS: &[(&str, &str)] = &[
    (
        "confirm_backend",
        "I understand secret keys must stay server-side, never in browsers, apps or public code.",
    ),
    ("confirm_once", "I understand the secret is shown once and cannot be shown again."),
    (
        "confirm_entitlements",
        "I understand entitlements may block actions even when a scope allows them.",
    ),
];
pub const CONFIRM_SERVICE_ROLE: (&str, &str) = (
    "confirm_service_role",
    "I understand a service role key can do anything, and I accept the danger.",
);

/// Builds the key the form asks for, or says what is missing.
pub fn new_key(fields: &Fields, catalog: &Catalog, entitlements: &[Entitlement]) -> Result<NewKey, String> {
    let preset = fields.get("preset").unwrap_or_else(|| "project".into());
    if !PRESETS.iter().any(|(id, _, _)| *id == preset) {
        return Err("pick a kind of key".into());
    }
    let picked = fields.all("scope");
    let blocked: Vec<&String> = picked
        .iter()
        .filter(|s| super::requires_upgrade(entitlements, crate::keys::scopes::product_of(s)))
        .collect();
    if let Some(scope) = blocked.first() {
        return Err(format!("{scope} requires an upgrade of this project's plan"));
    }
    let scopes = match preset.as_str() {
        "project" if picked.is_empty() => open_product_scopes(catalog, entitlements),
        "analytics" => vec!["analytics:read".to_string()],
        "service_role" => vec!["*".to_string()],
        _ => picked,
    };
    if scopes.is_empty() {
        return Err("pick at least one scope".into());
    }
    let mut required: Vec<(&str, &str)> = CONFIRMATIONS.to_vec();
    if preset == "service_role" {
        required.push(CONFIRM_SERVICE_ROLE);
    }
    if let Some((_, text)) = required.iter().find(|(name, _)| !fields.has(name)) {
        return Err(format!("confirm: {text}"));
    }
    Ok(NewKey {
        name: fields.get("name").unwrap_or_default().trim().to_string(),
        description: fields.get("description").unwrap_or_default(),
        kind: Kind::Secret,
        mode: if fields.get("mode").as_deref() == Some("test") {
            Mode::Test
        } else {
            Mode::Live
        },
        scopes,
        expires_at: expiry(fields)?,
        owner_user_id: None,
        owner_service_account_id: fields.get("owner").and_then(|o| o.strip_prefix("sa:").map(str::to_string)),
        limits: Default::default(),
    })
}

/// Every product scope of the catalog that the plan does not block.
fn open_product_scopes(catalog: &Catalog, entitlements: &[Entitlement]) -> Vec<String> {
    super::products(catalog)
        .into_iter()
        .filter(|(product, _)| !super::requires_upgrade(entitlements, product))
        .flat_map(|(product, actions)| actions.into_iter().map(move |a| format!("{product}:{a}")))
        .collect()
}

/// `7d`, `30d`, `90d`, `never`, or `custom` with a date (YYYY-MM-DD).
fn expiry(fields: &Fields) -> Result<Option<i64>, String> {
    let days = match fields.get("expiry").as_deref().unwrap_or("90d") {
        "7d" => 7,
        "30d" => 30,
        "90d" => 90,
        "never" => return Ok(None),
        "custom" => {
            let date = fields.get("expiry_date").unwrap_or_default();
            let at = humantime::parse_rfc3339_weak(&format!("{date}T23:59:59Z"))
                .map_err(|_| "the expiry date must be YYYY-MM-DD".to_string())?;
            let ms = at
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|_| "the expiry date is too early")?
                .as_millis() as i64;
            if ms <= now_ms() {
                return Err("the expiry date must be in the future".into());
            }
            return Ok(Some(ms));
        }
        _ => return Err("pick an expiry".into()),
    };
    Ok(Some(now_ms() + days * 86_400_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Fields {
        Fields::parse(text.as_bytes())
    }

    const CONFIRMED: &str = "confirm_backend=on&confirm_once=on&confirm_entitlements=on";

    macro_rules! t {
        ($name:ident, $form:expr, $expected:expr) => {
            #[test]
            fn $name() {
                let got = new_key(&fields(&$form), &Catalog::default(), &[]).map(|k| k.scopes);
                let expected: Result<Vec<&str>, &str> = $expected;
                match (got, expected) {
                    (Ok(scopes), Ok(want)) => assert_eq!(scopes, want),
                    (Err(problem), Err(want)) => assert!(problem.contains(want), "{problem}"),
                    (got, want) => panic!("{got:?} vs {want:?}"),
                }
            }
        };
    }

    t!(
        analytics_preset,
        format!("name=a&preset=analytics&{CONFIRMED}"),
        Ok(vec!["analytics:read"])
    );
    t!(
        picked_scopes,
        format!("name=a&preset=product&scope=billing%3Aread&scope=storage%3Awrite&{CONFIRMED}"),
        Ok(vec!["billing:read", "storage:write"])
    );
    t!(
        product_needs_a_scope,
        format!("name=a&preset=product&{CONFIRMED}"),
        Err("at least one scope")
    );
    t!(
        confirmations_required,
        format!("name=a&preset=analytics&confirm_backend={}", "on"),
        Err("shown once")
    );
    t!(
        service_role_needs_its_own,
        format!("name=a&preset=service_role&{CONFIRMED}"),
        Err("accept the danger")
    );
    t!(
        service_role_confirmed,
        format!("name=a&preset=service_role&{CONFIRMED}&confirm_service_role=on"),
        Ok(vec!["*"])
    );
    t!(unknown_preset, format!("name=a&preset=root&{CONFIRMED}"), Err("kind of key"));
    t!(
        past_custom_date,
        format!("name=a&preset=analytics&expiry=custom&expiry_date=2001-01-01&{CONFIRMED}"),
        Err("future")
    );
    t!(
        bad_custom_date,
        format!("name=a&preset=analytics&expiry=custom&expiry_date=soon&{CONFIRMED}"),
        Err("YYYY-MM-DD")
    );

    #[test]
    fn a_scope_of_a_product_that_needs_an_upgrade_is_refused() {
        let entitlements = [Entitlement {
            product: "billing".into(),
            state: crate::store::EntitlementState::RequiresUpgrade,
            updated_at: 0,
        }];
        let form = fields(&format!("name=a&preset=product&scope=billing%3Aread&{CONFIRMED}"));
        assert!(new_key(&form, &Catalog::default(), &entitlements)
            .unwrap_err()
            .contains("requires an upgrade"));
        let project = new_key(
            &fields(&format!("name=a&preset=project&{CONFIRMED}")),
            &Catalog::default(),
            &entitlements,
        )
        .unwrap();
        assert!(project.scopes.iter().all(|s| !s.starts_with("billing:")), "{:?}", project.scopes);
    }
}
