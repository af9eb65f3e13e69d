//! Who is calling: the `Caller` extractor authenticates every request that needs it (a bearer
//! access token, or an API key as `Authorization: Bearer adl_ak_…` or `X-Api-Key`), applies the
//! per-caller rate limit, and builds the metadata the caller's commands carry, with the request's
//! source sealed under the caller's key. What a route needs beyond authentication (a person, a
//! permission in a workspace, an operator) is `crate::access`'s.

use crate::consistency::WritingCaller;
use crate::error::ApiError;
use crate::rate_limit::RateLimiter;
use crate::AppState;
use adledger_commands::identity::Principal;
use adledger_commands::{CommandContext, IdempotencyKey};
use adledger_domain::{Actor, EventMetadata, RequestSource, SessionId, UserId};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use std::net::SocketAddr;
use uuid::Uuid;

const IDEMPOTENCY_KEY: &str = "idempotency-key";
const API_KEY_HEADER: &str = "x-api-key";

/// What the request says about itself, before anyone is authenticated.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    pub request_id: Uuid,
    pub source: RequestSource,
    /// `METHOD /path`: an idempotency key belongs to its caller and to this.
    route: String,
    /// The `Idempotency-Key` header as sent; checked only once the caller is known, so an
    /// anonymous request learns nothing but that it needs credentials.
    idempotency_key: Option<axum::http::HeaderValue>,
}

impl RequestInfo {
    pub fn from_parts(parts: &Parts) -> Self {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect());
        Self {
            request_id: request_id(parts),
            source: RequestSource { ip, user_agent },
            route: format!("{} {}", parts.method, parts.uri.path()),
            idempotency_key: parts.headers.get(IDEMPOTENCY_KEY).cloned(),
        }
    }

    /// The caller's `Idempotency-Key`, scoped to them (`caller`, see [`caller_key`]) and the route.
    fn idempotency_key(&self, caller: &str) -> Result<Option<IdempotencyKey>, ApiError> {
        let Some(raw) = &self.idempotency_key else {
            return Ok(None);
        };
        let key = raw.to_str().unwrap_or_default();
        let visible = |c: char| c.is_ascii_graphic() || c == ' ';
        if key.is_empty() || key.len() > 255 || !key.chars().all(visible) {
            return Err(ApiError::invalid(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters",
            ));
        }
        Ok(Some(IdempotencyKey::new(
            format!("{caller} {}", self.route),
            key,
        )))
    }

    /// The metadata of the commands this request causes as `actor`, the request id as their
    /// correlation id. The source is still in clear: see [`Identity::seal_source`].
    ///
    /// [`Identity::seal_source`]: adledger_commands::identity::Identity::seal_source
    fn context(&self, actor: Actor, idempotency_key: Option<IdempotencyKey>) -> CommandContext {
        CommandContext {
            metadata: EventMetadata {
                actor,
                correlation_id: self.request_id,
                causation_id: None,
                source: self.source.clone(),
            },
            idempotency_key,
        }
    }

    /// An unauthenticated command context (registration, login, an OAuth callback): the command
    /// names the actor, and no idempotency key applies (nobody owns it).
    pub fn anonymous_context(&self) -> CommandContext {
        self.context(Actor::Anonymous, None)
    }

    /// The context of a command taken for `actor` on an anonymous route that identifies them by
    /// other means (an OAuth callback's signed state).
    pub fn context_of(&self, actor: Actor) -> CommandContext {
        self.context(actor, None)
    }
}

fn request_id(parts: &Parts) -> Uuid {
    let raw = parts
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // A caller's own request id that is not a UUID still maps to one stable correlation id.
    Uuid::parse_str(raw).unwrap_or_else(|_| Uuid::new_v5(&Uuid::NAMESPACE_OID, raw.as_bytes()))
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub request: RequestInfo,
    /// Its `Idempotency-Key`, scoped to it and the route.
    idempotency_key: Option<IdempotencyKey>,
}

/// The request's own info, for routes that need no authentication.
pub struct Request(pub RequestInfo);

impl FromRequestParts<AppState> for Request {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Request(RequestInfo::from_parts(parts)))
    }
}

fn credential(parts: &Parts) -> Option<String> {
    if let Some(key) = parts.headers.get(API_KEY_HEADER) {
        return key.to_str().ok().map(|s| s.trim().to_owned());
    }
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let request = RequestInfo::from_parts(parts);
        let Some(credential) = credential(parts) else {
            return Err(ApiError::Unauthenticated(
                "this route needs credentials: `Authorization: Bearer <access token or API key>`"
                    .into(),
            ));
        };
        let principal = if credential.starts_with("adl_ak_") {
            state.identity.authenticate_api_key(&credential).await?
        } else {
            state
                .identity
                .authenticate_access_token(&credential)
                .await?
        };
        limit(&state.caller_limiter, &principal)?;
        let key = caller_key(&principal);
        let idempotency_key = request.idempotency_key(&key)?;
        if parts.method.is_safe() {
            state.consistency.before_read(state, &key, parts).await?;
        } else if let Some(writing) = parts.extensions.get::<WritingCaller>() {
            writing.set(key);
        }
        Ok(Caller {
            principal,
            request,
            idempotency_key,
        })
    }
}

/// Names a caller among all callers: `user:<id>` or `key:<id>` (what rate limits and
/// idempotency keys are kept per).
pub fn caller_key(principal: &Principal) -> String {
    match principal {
        Principal::User { user_id, .. } => format!("user:{user_id}"),
        Principal::ApiKey { api_key_id, .. } => format!("key:{api_key_id}"),
    }
}

fn limit(limiter: &Option<RateLimiter>, principal: &Principal) -> Result<(), ApiError> {
    let Some(limiter) = limiter else {
        return Ok(());
    };
    match limiter.take(caller_key(principal)) {
        Ok(()) => Ok(()),
        Err(retry_after) => Err(ApiError::RateLimited(retry_after)),
    }
}

impl Caller {
    /// The signed-in person; API keys are refused for personal routes.
    pub fn user(&self) -> Result<(UserId, SessionId), ApiError> {
        match self.principal {
            Principal::User {
                user_id,
                session_id,
            } => Ok((user_id, session_id)),
            Principal::ApiKey { .. } => Err(ApiError::people_only()),
        }
    }

    /// The metadata of the commands this request causes, its source sealed under the caller's key.
    pub async fn context(&self, state: &AppState) -> Result<CommandContext, ApiError> {
        let ctx = self
            .request
            .context(self.principal.actor(), self.idempotency_key.clone());
        Ok(state.identity.seal_source(ctx).await?)
    }
}
