//! What a key may spend: named rate limits (fixed windows) and usage
//! credits with a refill. Pure values and their rules; the verify path
//! enforces them and the store keeps them.

use serde::{Deserialize, Serialize};

/// The largest `meta` object, as JSON text.
pub const MAX_META_BYTES: usize = 4096;
pub const MAX_EXTERNAL_ID: usize = 255;
/// Rate limits one key may carry.
pub const MAX_RATELIMITS: usize = 16;
/// The longest rate-limit window: 30 days.
pub const MAX_WINDOW_MS: i64 = 30 * 86_400_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("{0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> LimitError {
    LimitError::Invalid(message.into())
}

/// `limit` uses per `duration_ms`, counted in fixed windows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    #[schema(pattern = "^[A-Za-z0-9_.:-]{1,64}$")]
    pub name: String,
    #[schema(minimum = 1)]
    pub limit: i64,
    #[schema(minimum = 1)]
    pub duration_ms: i64,
}

impl RateLimit {
    /// The start of the window that holds `now`.
    pub fn window_start(&self, now: i64) -> i64 {
        now - now.rem_euclid(self.duration_ms)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RefillInterval {
    Daily,
    Monthly,
}

impl RefillInterval {
    pub fn as_str(self) -> &'static str {
        match self {
            RefillInterval::Daily => "daily",
            RefillInterval::Monthly => "monthly",
        }
    }

    pub fn parse(text: &str) -> Option<RefillInterval> {
        match text {
            "daily" => Some(RefillInterval::Daily),
            "monthly" => Some(RefillInterval::Monthly),
            _ => None,
        }
    }

    /// The most recent refill boundary at or before `now` (UTC midnight,
    /// or midnight of the first of the month).
    pub fn last_boundary(self, now: i64) -> i64 {
        const DAY: i64 = 86_400_000;
        let midnight = now - now.rem_euclid(DAY);
        match self {
            RefillInterval::Daily => midnight,
            RefillInterval::Monthly => {
                let day_of_month = crate::time::rfc3339(midnight)
                    .get(8..10)
                    .and_then(|d| d.parse::<i64>().ok())
                    .unwrap_or(1);
                midnight - (day_of_month - 1) * DAY
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Refill {
    pub interval: RefillInterval,
    #[schema(minimum = 0)]
    pub amount: i64,
}

/// Credits as set on a key: what is left, and how it refills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credits {
    #[schema(minimum = 0)]
    pub remaining: i64,
    #[serde(default)]
    pub refill: Option<Refill>,
}

pub fn validate_ratelimits(limits: &[RateLimit]) -> Result<(), LimitError> {
    if limits.len() > MAX_RATELIMITS {
        return Err(invalid(format!("a key carries at most {MAX_RATELIMITS} rate limits")));
    }
    for (i, l) in limits.iter().enumerate() {
        let named = (1..=64).contains(&l.name.len()) && l.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b));
        if !named {
            return Err(invalid("a rate limit's name must be 1 to 64 of [A-Za-z0-9_.:-]"));
        }
        if limits[..i].iter().any(|o| o.name == l.name) {
            return Err(invalid(format!("rate limit {:?} is given twice", l.name)));
        }
        if l.limit < 1 {
            return Err(invalid("a rate limit's limit must be at least 1"));
        }
        if !(1..=MAX_WINDOW_MS).contains(&l.duration_ms) {
            return Err(invalid("a rate limit's duration_ms must be 1 to 2592000000 (30 days)"));
        }
    }
    Ok(())
}

pub fn validate_credits(credits: &Credits) -> Result<(), LimitError> {
    if credits.remaining < 0 {
        return Err(invalid("credits.remaining must not be negative"));
    }
    if credits.refill.is_some_and(|r| r.amount < 0) {
        return Err(invalid("credits.refill.amount must not be negative"));
    }
    Ok(())
}

/// `meta` must be a JSON object of at most 4 KiB.
pub fn validate_meta(meta: &serde_json::Value) -> Result<String, LimitError> {
    if !meta.is_object() {
        return Err(invalid("meta must be a JSON object"));
    }
    let text = meta.to_string();
    if text.len() > MAX_META_BYTES {
        return Err(invalid(format!("meta must be at most {MAX_META_BYTES} bytes of JSON")));
    }
    Ok(text)
}

pub fn validate_external_id(id: &str) -> Result<(), LimitError> {
    if id.is_empty() || id.chars().count() > MAX_EXTERNAL_ID || id.chars().any(char::is_control) {
        return Err(invalid(format!("external_id must be 1 to {MAX_EXTERNAL_ID} printable characters")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    macro_rules! t {
        ($name:ident, $interval:expr, $now:expr, $expected:expr) => {
            #[test]
            fn $name() {
                assert_eq!(crate::time::rfc3339($interval.last_boundary($now)), $expected);
            }
        };
    }

    // 2026-12-01T21:22:55Z and 2026-02-28T23:59:59Z
    t!(daily_midnight, RefillInterval::Daily, 1_796_160_175_000, "2026-12-01T00:00:00.000Z");
    t!(
        monthly_first,
        RefillInterval::Monthly,
        1_796_160_175_000,
        "2026-12-01T00:00:00.000Z"
    );
    t!(
        monthly_late_in_month,
        RefillInterval::Monthly,
        1_772_323_199_000,
        "2026-02-01T00:00:00.000Z"
    );
    t!(
        daily_at_the_boundary,
        RefillInterval::Daily,
        20_000 * DAY,
        "2024-10-04T00:00:00.000Z"
    );

    #[test]
    fn windows_are_fixed_and_aligned() {
        let l = RateLimit {
            name: "burst".into(),
            limit: 10,
            duration_ms: 1000,
        };
        assert_eq!(l.window_start(12_345), 12_000);
        assert_eq!(l.window_start(12_000), 12_000);
    }

    macro_rules! bad {
        ($name:ident, $limits:expr, $problem:expr) => {
            #[test]
            fn $name() {
                let err = validate_ratelimits(&$limits).unwrap_err().to_string();
                assert!(err.contains($problem), "{err}");
            }
        };
    }

    fn rl(name: &str, limit: i64, duration_ms: i64) -> RateLimit {
        RateLimit {
            name: name.into(),
            limit,
            duration_ms,
        }
    }

    bad!(negative_limit, [rl("a", -1, 1000)], "at least 1");
    bad!(zero_window, [rl("a", 1, 0)], "duration_ms");
    bad!(negative_window, [rl("a", 1, -5)], "duration_ms");
    bad!(twice, [rl("a", 1, 10), rl("a", 2, 10)], "twice");
    bad!(odd_name, [rl("a b", 1, 10)], "name");

    #[test]
    fn meta_is_a_small_object() {
        assert!(validate_meta(&serde_json::json!({"plan": "pro"})).is_ok());
        assert!(validate_meta(&serde_json::json!([1])).is_err());
        assert!(validate_meta(&serde_json::json!({"x": "y".repeat(5000)})).is_err());
    }
}
