//! The one error type handlers return. It maps every failure to a status
//! and a JSON body `{error: {code, message}}`, and never puts internals
//! (SQL, paths, causes) in the body: those go to the log.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::service::{Denied, ServiceError};

/// Every error: `{"error": {"code", "message"}}`, never internals.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// malformed, unauthenticated, forbidden, test_mode, not_entitled,
    /// not_found, method_not_allowed, conflict, too_large, invalid,
    /// rate_limited, internal, unavailable, not_configured, bad_signature
    pub code: String,
    pub message: String,
}

/// The errors any route may answer.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum Errors {
    /// Malformed JSON, invalid UTF-8, or a NUL in the URL.
    #[response(status = 400)]
    Malformed(ErrorBody),
    /// No key, an unknown or revoked one, or a bad webhook signature.
    #[response(status = 401)]
    Unauthenticated(ErrorBody),
    /// Scope, role, test mode, deployment owner or plan gate.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// Missing, or out of the caller's reach.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// A name taken, the default key, the last owner.
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// The body is over the route's limit.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// Well-formed, but not valid: types, enums, bounds, unknown fields.
    #[response(status = 422)]
    Invalid(ErrorBody),
    /// Over a rate limit; see `Retry-After`.
    #[response(status = 429, headers(("Retry-After" = u64, description = "seconds")))]
    RateLimited(ErrorBody),
    #[response(status = 500)]
    Internal(ErrorBody),
    /// The database does not answer, or an endpoint is not configured.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds, sent as `Retry-After` with a 429.
    pub retry_after: Option<u64>,
}

impl AppError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> AppError {
        AppError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn malformed(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::BAD_REQUEST, "malformed", message)
    }

    pub fn invalid(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    /// A failure the caller can do nothing about; what failed is logged
    /// where it happened, never sent.
    pub fn internal() -> AppError {
        AppError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
    }

    pub fn too_large() -> AppError {
        AppError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "the request body is too large")
    }

    pub fn too_many(wait: std::time::Duration) -> AppError {
        AppError {
            retry_after: Some(wait.as_secs().max(1)),
            ..AppError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests; retry after the time in Retry-After",
            )
        }
    }

    pub fn not_found(what: &str) -> AppError {
        AppError::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<Denied> for AppError {
    fn from(denied: Denied) -> AppError {
        let message = denied.to_string();
        AppError::refused(denied, message)
    }
}

impl AppError {
    /// A refusal: 401 without credentials, 404 for what the caller cannot
    /// reach (the same answer as for a missing object), else 403.
    fn refused(denied: Denied, message: String) -> AppError {
        match denied {
            Denied::Unauthenticated(_) => AppError::unauthenticated(message),
            Denied::Invisible(what) => AppError::not_found(what),
            Denied::TestMode => AppError::new(StatusCode::FORBIDDEN, "test_mode", message),
            Denied::NotEntitled(_) => AppError::new(StatusCode::FORBIDDEN, "not_entitled", message),
            Denied::Publishable | Denied::Scope(_) | Denied::OwnerGone | Denied::Role | Denied::NotDeploymentOwner => {
                AppError::new(StatusCode::FORBIDDEN, "forbidden", message)
            }
            Denied::Unavailable => AppError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message),
        }
    }
}

impl From<ServiceError> for AppError {
    fn from(e: ServiceError) -> AppError {
        match e {
            ServiceError::Invalid(m) => AppError::invalid(m),
            ServiceError::NotFound(what) => AppError::not_found(what),
            ServiceError::Conflict(m) => AppError::new(StatusCode::CONFLICT, "conflict", m),
            ServiceError::Denied(d) => d.into(),
            ServiceError::Refused(d, message) => AppError::refused(d, message),
            ServiceError::Store(e) => {
                tracing::error!(error = %e, "store failure");
                AppError::internal()
            }
        }
    }
}
