//! Who is calling and under which request id: becomes the metadata of every event a request causes.

use adledger_commands::CommandContext;
use adledger_domain::{Actor, EventMetadata, RequestSource};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, Request};
use std::net::SocketAddr;
use uuid::Uuid;

const IDEMPOTENCY_KEY: &str = "idempotency-key";

pub struct RequestContext(pub CommandContext);

fn request_id(parts: &Parts) -> Uuid {
    let raw = parts
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // A caller's own request id that is not a UUID still maps to one stable correlation id.
    Uuid::parse_str(raw).unwrap_or_else(|_| Uuid::new_v5(&Uuid::NAMESPACE_OID, raw.as_bytes()))
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = crate::ApiError;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect());
        let idempotency_key = match parts.headers.get(IDEMPOTENCY_KEY) {
            None => None,
            Some(v) => {
                let key = v.to_str().unwrap_or_default();
                if key.is_empty() || key.len() > 255 {
                    return Err(crate::ApiError::invalid(
                        "Idempotency-Key",
                        "must be 1 to 255 visible ASCII characters",
                    ));
                }
                Some(key.to_owned())
            }
        };
        Ok(RequestContext(CommandContext {
            metadata: EventMetadata {
                actor: Actor::Anonymous,
                correlation_id: request_id(parts),
                causation_id: None,
                source: RequestSource { ip, user_agent },
            },
            idempotency_key,
            now: chrono::Utc::now(),
        }))
    }
}

pub fn request_span<B>(request: &Request<B>) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id)
}
