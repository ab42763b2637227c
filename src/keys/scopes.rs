//! Scopes are typed strings `resource:action`. A key holds exact scopes,
//! `resource:*` or `*`; a call names one exact scope. The resource is the
//! product that entitlements gate.

use std::collections::BTreeMap;

/// Scopes of keyward's own API, always in the catalog.
pub const ADMIN_SCOPES: &[&str] = &[
    "keys:read",
    "keys:write",
    "audit:read",
    "members:write",
    "projects:admin",
    "deployment:admin",
    "incidents:write",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("unknown scope {0:?}")]
    Unknown(String),
    #[error("malformed scope {0:?}: expected resource:action, resource:* or *")]
    Malformed(String),
}

/// The scopes a deployment knows, grouped by product (resource).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    products: BTreeMap<String, Vec<String>>,
}

impl Default for Catalog {
    /// keyward's own scopes plus a few common product scopes, so a fresh
    /// deployment can issue useful keys before it is configured.
    fn default() -> Catalog {
        let mut catalog = Catalog { products: BTreeMap::new() };
        for scope in ADMIN_SCOPES {
            catalog.insert(scope);
        }
        for product in ["analytics", "billing", "storage", "messages"] {
            catalog.insert(&format!("{product}:read"));
            catalog.insert(&format!("{product}:write"));
        }
        catalog
    }
}

impl Catalog {
    /// keyward's own scopes plus `products` (product -> actions).
    pub fn with_products(products: &BTreeMap<String, Vec<String>>) -> Result<Catalog, ScopeError> {
        let mut catalog = Catalog { products: BTreeMap::new() };
        for scope in ADMIN_SCOPES {
            catalog.insert(scope);
        }
        for (product, actions) in products {
            for action in actions {
                let scope = format!("{product}:{action}");
                if !is_identifier(product) || !is_identifier(action) {
                    return Err(ScopeError::Malformed(scope));
                }
                catalog.insert(&scope);
            }
        }
        Ok(catalog)
    }

    fn insert(&mut self, scope: &str) {
        let (product, action) = scope.split_once(':').expect("catalog scopes are resource:action");
        let actions = self.products.entry(product.to_string()).or_default();
        if !actions.iter().any(|a| a == action) {
            actions.push(action.to_string());
        }
    }

    /// Checks scopes a key is created with: exact scopes in the catalog,
    /// `resource:*` for a known resource, or `*`.
    pub fn validate(&self, scopes: &[String]) -> Result<(), ScopeError> {
        for scope in scopes {
            if scope == "*" {
                continue;
            }
            let (product, action) = scope.split_once(':').ok_or_else(|| ScopeError::Malformed(scope.clone()))?;
            let Some(actions) = self.products.get(product) else {
                return Err(ScopeError::Unknown(scope.clone()));
            };
            if action != "*" && !actions.iter().any(|a| a == action) {
                return Err(ScopeError::Unknown(scope.clone()));
            }
        }
        Ok(())
    }

    /// Checks a scope a call asks for: one exact, known scope.
    pub fn validate_exact(&self, scope: &str) -> Result<(), ScopeError> {
        if scope.contains('*') {
            return Err(ScopeError::Malformed(scope.to_string()));
        }
        self.validate(&[scope.to_string()])
    }

    pub fn products(&self) -> &BTreeMap<String, Vec<String>> {
        &self.products
    }
}

/// Whether `granted` (a key's scopes) lets a call needing `required` through.
pub fn allows(granted: &[String], required: &str) -> bool {
    granted.iter().any(|g| grant_covers(g, required))
}

fn grant_covers(grant: &str, required: &str) -> bool {
    if grant == "*" || grant == required {
        return true;
    }
    match (grant.strip_suffix(":*"), required.split_once(':')) {
        (Some(resource), Some((wanted, _))) => resource == wanted,
        _ => false,
    }
}

/// Whether `granted` can do everything `wanted` (an exact scope,
/// `resource:*` or `*`) can: the test for handing out a key no stronger
/// than the hand that makes it.
pub fn covers(granted: &[String], wanted: &str) -> bool {
    if wanted == "*" || wanted.ends_with(":*") {
        granted.iter().any(|g| g == "*" || g == wanted)
    } else {
        allows(granted, wanted)
    }
}

/// Whether `granted` reaches any of keyward's own management API.
pub fn grants_management(granted: &[String]) -> bool {
    ADMIN_SCOPES.iter().any(|s| allows(granted, s))
}

/// The product a scope belongs to: its resource.
pub fn product_of(scope: &str) -> &str {
    scope.split_once(':').map_or(scope, |(product, _)| product)
}

fn is_identifier(text: &str) -> bool {
    !text.is_empty() && text.len() <= 64 && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    macro_rules! t {
        ($name:ident, $granted:expr, $required:expr, $expected:expr) => {
            #[test]
            fn $name() {
                let granted: Vec<String> = $granted.iter().map(|s: &&str| s.to_string()).collect();
                assert_eq!(allows(&granted, $required), $expected);
            }
        };
    }

    t!(exact, ["keys:read"], "keys:read", true);
    t!(other_action, ["keys:read"], "keys:write", false);
    t!(resource_wildcard, ["keys:*"], "keys:write", true);
    t!(resource_wildcard_other_resource, ["keys:*"], "audit:read", false);
    t!(star, ["*"], "audit:read", true);
    t!(prefix_is_not_resource, ["key:*"], "keys:read", false);
    t!(no_scopes, [] as [&str; 0], "keys:read", false);

    #[test]
    fn catalog_rejects_unknown_and_malformed() {
        let c = Catalog::default();
        assert!(c.validate(&["keys:read".into(), "analytics:*".into(), "*".into()]).is_ok());
        assert_eq!(c.validate(&["bogus:read".into()]), Err(ScopeError::Unknown("bogus:read".into())));
        assert_eq!(c.validate(&["keys:fly".into()]), Err(ScopeError::Unknown("keys:fly".into())));
        assert!(matches!(c.validate(&["keys".into()]), Err(ScopeError::Malformed(_))));
        assert!(c.validate_exact("keys:*").is_err());
    }

    proptest! {
        #[test]
        fn star_covers_everything(resource in "[a-z]{1,8}", action in "[a-z]{1,8}") {
            let required = format!("{resource}:{action}");
            let resource_wide = format!("{resource}:*");
            prop_assert!(allows(&["*".to_string()], &required));
            prop_assert!(allows(&[resource_wide], &required));
            prop_assert!(allows(std::slice::from_ref(&required), &required));
        }

        #[test]
        fn a_grant_never_covers_another_resource(a in "[a-z]{1,8}", b in "[a-z]{1,8}", action in "[a-z]{1,8}") {
            prop_assume!(a != b);
            let grants = [format!("{a}:*"), format!("{a}:{action}")];
            let required = format!("{b}:{action}");
            prop_assert!(!allows(&grants, &required));
        }

        #[test]
        fn granting_more_never_allows_less(extra in "[a-z]{1,8}:[a-z]{1,8}", required in "[a-z]{1,8}:[a-z]{1,8}") {
            let base = vec![required.clone()];
            let mut more = base.clone();
            more.push(extra);
            prop_assert!(allows(&base, &required) <= allows(&more, &required));
        }
    }
}
