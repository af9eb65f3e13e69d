//! The one error type of the API and its mapping to RFC 9457 problem+json. Every failure has a
//! stable `type`; internal errors are logged with their cause and answered without it.

use adledger_commands::CommandError;
use adledger_domain::DomainError;
use adledger_infra::StoreError;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

const TYPE_PREFIX: &str = "urn:adledger:problem:";

/// `Retry-After` of a 503 for a condition that should pass by itself (the database back, the
/// read side caught up): long enough not to hammer a recovering server.
pub const RETRY_AFTER_SECS: u64 = 5;

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Stable identifier of the kind of problem, e.g. `urn:adledger:problem:not-found`.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Present for validation problems: one entry per invalid field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("invalid request")]
    Validation(Vec<FieldError>),
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("a sync is already running for this connection: {0}")]
    SyncAlreadyRunning(String),
    #[error("{0}")]
    ConnectionUnavailable(String),
    #[error("idempotency key {0:?} was already used for a different request")]
    IdempotencyKeyReused(String),
    #[error("the ad platform failed: {0}")]
    Upstream(String),
    #[error("not ready: {0}")]
    NotReady(String),
    /// The database did not answer or gave no connection in time (down, restarting, or every
    /// connection busy). The cause is logged, not answered.
    #[error("the database is unavailable; retry later")]
    DatabaseUnavailable(String),
    /// The route exists but not for this method; the `Allow` header lists the ones it takes.
    #[error("{0} is not allowed on this route; the Allow header lists the methods it takes")]
    MethodNotAllowed(String),
    /// A read waited this long for the read model to reach the caller's write (or the position
    /// it named) and it did not.
    #[error(
        "the read model has not reached your last write (or min_position) within {} s; retry",
        .waited.as_secs_f64()
    )]
    NotCaughtUp {
        waited: std::time::Duration,
        retry_after_secs: u64,
    },
    #[error("the request body is larger than this server accepts")]
    PayloadTooLarge,
    #[error("too many requests from this client; retry after {0} s")]
    RateLimited(u64),
    #[error("the request took longer than {} s", .0.as_secs_f64())]
    Timeout(std::time::Duration),
    /// No credentials, or credentials that are wrong or expired.
    #[error("{0}")]
    Unauthenticated(String),
    #[error("a second factor (TOTP or recovery code) is required")]
    SecondFactorRequired,
    #[error("this refresh token was already used; the session has been revoked")]
    RefreshTokenReused,
    #[error("{0}")]
    Forbidden(String),
    #[error("too many failed attempts; try again in {0} s")]
    TooManyAttempts(u64),
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }

    /// The answer to an API key on a route that only people may use.
    pub fn people_only() -> Self {
        ApiError::Forbidden("this route is for signed-in people, not API keys".into())
    }

    /// The answer for a route that does not exist, also given to callers a route is hidden from.
    pub fn no_route(path: &str) -> Self {
        ApiError::NotFound(format!("route {path}"))
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            ApiError::Validation(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation-failed",
                "Invalid request",
            ),
            ApiError::Malformed(_) => (
                StatusCode::BAD_REQUEST,
                "malformed-request",
                "Malformed request",
            ),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            ApiError::SyncAlreadyRunning(_) => (
                StatusCode::CONFLICT,
                "sync-already-running",
                "A sync is already running",
            ),
            ApiError::ConnectionUnavailable(_) => (
                StatusCode::CONFLICT,
                "connection-unavailable",
                "Connection unavailable",
            ),
            ApiError::IdempotencyKeyReused(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency key reused",
            ),
            ApiError::Upstream(_) => (
                StatusCode::BAD_GATEWAY,
                "upstream-failed",
                "Ad platform error",
            ),
            ApiError::NotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, "not-ready", "Not ready"),
            ApiError::DatabaseUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "database-unavailable",
                "Database unavailable",
            ),
            ApiError::MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            ApiError::NotCaughtUp { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not-caught-up",
                "Not caught up",
            ),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            ApiError::RateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
            ),
            ApiError::Timeout(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "request-timeout",
                "Request timed out",
            ),
            ApiError::Unauthenticated(_) => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Unauthenticated",
            ),
            ApiError::SecondFactorRequired => (
                StatusCode::UNAUTHORIZED,
                "second-factor-required",
                "Second factor required",
            ),
            ApiError::RefreshTokenReused => (
                StatusCode::UNAUTHORIZED,
                "refresh-token-reused",
                "Refresh token reused",
            ),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            ApiError::TooManyAttempts(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-attempts",
                "Too many failed attempts",
            ),
            ApiError::EmailTaken => (StatusCode::CONFLICT, "email-taken", "Email taken"),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        }
    }

    pub fn problem(&self) -> Problem {
        let (status, slug, title) = self.parts();
        let detail = match self {
            // The cause stays in the log; the client learns only that it is not its fault.
            ApiError::Internal(_) => "an unexpected error occurred; it has been logged".to_owned(),
            other => other.to_string(),
        };
        Problem {
            type_: format!("{TYPE_PREFIX}{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            errors: match self {
                ApiError::Validation(errors) => errors.clone(),
                _ => Vec::new(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(cause) => tracing::error!(%cause, "request failed"),
            ApiError::DatabaseUnavailable(cause) => {
                tracing::warn!(%cause, "database unavailable")
            }
            _ => {}
        }
        let problem = self.problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::TooManyAttempts(secs)
            | ApiError::RateLimited(secs)
            | ApiError::NotCaughtUp {
                retry_after_secs: secs,
                ..
            } => {
                headers.insert(header::RETRY_AFTER, header::HeaderValue::from(*secs));
            }
            ApiError::NotReady(_) | ApiError::DatabaseUnavailable(_) | ApiError::Timeout(_) => {
                headers.insert(
                    header::RETRY_AFTER,
                    header::HeaderValue::from(RETRY_AFTER_SECS),
                );
            }
            ApiError::Unauthenticated(_)
            | ApiError::SecondFactorRequired
            | ApiError::RefreshTokenReused => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer realm=\"adledger\""),
                );
            }
            _ => {}
        }
        response
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::NotFound(what) => ApiError::NotFound(what.to_owned()),
            DomainError::Invalid { field, reason } => ApiError::invalid(field, reason),
            DomainError::UnknownCampaign(id) => ApiError::invalid(
                "campaign_ids",
                format!("campaign {id} is not part of this connection"),
            ),
            DomainError::SyncAlreadyRunning(id) => ApiError::SyncAlreadyRunning(id.to_string()),
            e @ DomainError::ConnectionUnavailable(_) => {
                ApiError::ConnectionUnavailable(e.to_string())
            }
            e @ (DomainError::AlreadyExists(_)
            | DomainError::SyncNotRunning(_)
            | DomainError::SyncClaimedElsewhere(_)) => ApiError::Conflict(e.to_string()),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::NotFound(what) => ApiError::NotFound(what.to_owned()),
            CommandError::Rejected(domain) => domain.into(),
            CommandError::Conflict(why) => ApiError::Conflict(why),
            CommandError::IdempotencyKeyReused(key) => ApiError::IdempotencyKeyReused(key),
            CommandError::Connector(why) => ApiError::Upstream(why),
            CommandError::SyncFailed(failure) => ApiError::Upstream(failure.to_string()),
            CommandError::Unauthenticated(why) => ApiError::Unauthenticated(why),
            CommandError::SecondFactorRequired => ApiError::SecondFactorRequired,
            CommandError::RefreshTokenReused => ApiError::RefreshTokenReused,
            CommandError::Forbidden(why) => ApiError::Forbidden(why),
            CommandError::TooManyAttempts { retry_after_secs } => {
                ApiError::TooManyAttempts(retry_after_secs)
            }
            CommandError::EmailTaken => ApiError::EmailTaken,
            CommandError::Crypto(why) => ApiError::Internal(why),
            CommandError::Store(store) => store.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::WrongExpectedVersion { .. } => ApiError::Conflict(e.to_string()),
            StoreError::IdempotencyKeyReused { key } => ApiError::IdempotencyKeyReused(key),
            e if e.is_transient() => ApiError::DatabaseUnavailable(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<adledger_projections::ProjectionError> for ApiError {
    fn from(e: adledger_projections::ProjectionError) -> Self {
        match e.is_transient() {
            true => ApiError::DatabaseUnavailable(e.to_string()),
            false => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<adledger_projections::QueryError> for ApiError {
    fn from(e: adledger_projections::QueryError) -> Self {
        match e.is_transient() {
            true => ApiError::DatabaseUnavailable(e.to_string()),
            false => ApiError::Internal(e.to_string()),
        }
    }
}

pub async fn not_found_fallback(uri: axum::http::Uri) -> ApiError {
    ApiError::no_route(uri.path())
}
