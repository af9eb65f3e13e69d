//! Answers that several routes share, declared once for the OpenAPI document: each problem status
//! (a `Problem` body as `application/problem+json`, whose `type` tells the cases apart) and
//! `Created`. A route lists the problems it really can answer in `#[utoipa::path(responses(..))]`;
//! the 503 that every route but `/healthz` can answer is declared once for all of them (see
//! `complete` in openapi.rs).

use crate::error::Problem;
use serde::Serialize;
use utoipa::{IntoResponses, ToSchema};
use uuid::Uuid;

/// The id of what a `POST` created; its address is in `Location`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    pub id: Uuid,
}

/// Declares problem answers: each a status and a doc comment naming its problem types. Only the
/// OpenAPI document reads them; `ApiError` builds the answers themselves.
macro_rules! problems {
    ($($(#[doc = $doc:literal])* $name:ident = $status:literal;)*) => {$(
        $(#[doc = $doc])*
        #[derive(IntoResponses)]
        #[response(status = $status, content_type = "application/problem+json")]
        pub struct $name(#[allow(dead_code)] Problem);
    )*};
}

problems! {
    /// `malformed-request`: the body is not JSON, or not sent as `application/json`.
    Malformed = 400;
    /// `unauthenticated`: no credential, or a wrong, expired or revoked one.
    Unauthenticated = 401;
    /// `forbidden`: the caller's role (or API key's scope) does not allow this.
    Forbidden = 403;
    /// `not-found`: nothing by this id here, or a workspace the caller does not reach.
    NotFound = 404;
    /// `not-found`, as for a route that does not exist: the caller is not an operator.
    NotAnOperator = 404;
    /// `validation-failed` (`errors[]` names each field) or `idempotency-key-reused`.
    Invalid = 422;
    /// `rate-limited` (or `too-many-attempts`); `Retry-After` says when to retry.
    RateLimited = 429;
    /// `internal`: logged with its cause; the answer never carries it.
    Internal = 500;
}
