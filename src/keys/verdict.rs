//! The answers a verify can give, in the order they are checked. Pure
//! data: the verify path decides them, and metrics, the API and the console
//! report them, all standing on this.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VerifyCode {
    Valid,
    Malformed,
    NotFound,
    Revoked,
    Expired,
    WrongMode,
    InsufficientScope,
    NotEntitled,
    Disabled,
    RateLimited,
    UsageExceeded,
}

impl VerifyCode {
    /// Every code, in declaration order (`code as usize` indexes it).
    pub const ALL: [VerifyCode; 11] = [
        VerifyCode::Valid,
        VerifyCode::Malformed,
        VerifyCode::NotFound,
        VerifyCode::Revoked,
        VerifyCode::Expired,
        VerifyCode::WrongMode,
        VerifyCode::InsufficientScope,
        VerifyCode::NotEntitled,
        VerifyCode::Disabled,
        VerifyCode::RateLimited,
        VerifyCode::UsageExceeded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VerifyCode::Valid => "VALID",
            VerifyCode::Malformed => "MALFORMED",
            VerifyCode::NotFound => "NOT_FOUND",
            VerifyCode::Revoked => "REVOKED",
            VerifyCode::Expired => "EXPIRED",
            VerifyCode::WrongMode => "WRONG_MODE",
            VerifyCode::InsufficientScope => "INSUFFICIENT_SCOPE",
            VerifyCode::NotEntitled => "NOT_ENTITLED",
            VerifyCode::Disabled => "DISABLED",
            VerifyCode::RateLimited => "RATE_LIMITED",
            VerifyCode::UsageExceeded => "USAGE_EXCEEDED",
        }
    }
}
