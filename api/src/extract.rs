//! Extractors whose rejections are problem+json with the offending field named, instead of
//! axum's plain-text defaults: JSON bodies, query strings, and path parameters read by name into
//! their id newtypes (one name per kind of id across every route). Text no Postgres column can
//! hold (NUL characters) is refused here, before any handler sees it.

use crate::error::ApiError;
use crate::text;
use adledger_domain::{ApiKeyId, ConnectionId, Platform, SyncId, UserId, WorkspaceId};
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde::de::DeserializeOwned;
use uuid::Uuid;

pub struct ApiJson<T>(pub T);
pub struct ApiQuery<T>(pub T);
/// One path parameter, found by the name its type answers to: `InPath(sync): InPath<SyncId>`
/// reads `{sync_id}` whatever else the path holds.
pub struct InPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::Malformed(
                "expected a body with Content-Type: application/json".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
                _ => ApiError::Malformed(e.body_text()),
            })?;
        if let Some(field) = text::nul_in_json(&bytes) {
            return Err(ApiError::invalid(&field, text::NUL_MESSAGE));
        }
        match Json::<T>::from_bytes(&bytes) {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::invalid("body", e.body_text())),
            Err(other) => Err(ApiError::Malformed(other.body_text())),
        }
    }
}

/// `application/json`, or any `+json` type, as axum's own `Json` accepts.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json") || subtype.to_ascii_lowercase().ends_with("+json"))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(field) = text::nul_in_query(parts.uri.query().unwrap_or_default()) {
            return Err(ApiError::invalid(&field, text::NUL_MESSAGE));
        }
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e: QueryRejection| ApiError::invalid("query", e.body_text()))
    }
}

/// A value a route takes from its path, under the same name in every route.
pub trait PathParam: Sized {
    /// The parameter's name in route templates, e.g. `connection_id` in `{connection_id}`.
    const NAME: &'static str;
    /// What it names, for the 404 of a value that names nothing.
    const WHAT: &'static str;
    fn parse(raw: &str) -> Option<Self>;
}

macro_rules! uuid_path_params {
    ($($id:ty => $name:literal, $what:literal;)*) => {$(
        impl PathParam for $id {
            const NAME: &'static str = $name;
            const WHAT: &'static str = $what;
            fn parse(raw: &str) -> Option<Self> {
                Uuid::parse_str(raw).ok().map(Self::from)
            }
        }
    )*};
}

uuid_path_params! {
    WorkspaceId => "workspace_id", "workspace";
    ConnectionId => "connection_id", "connection";
    SyncId => "sync_id", "sync";
    UserId => "user_id", "member";
    ApiKeyId => "api_key_id", "API key";
}

impl PathParam for Platform {
    const NAME: &'static str = "platform";
    const WHAT: &'static str = "platform";
    fn parse(raw: &str) -> Option<Self> {
        Platform::parse(raw)
    }
}

impl<S: Send + Sync, T: PathParam> FromRequestParts<S> for InPath<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::NotFound(e.body_text()))?;
        let Some((_, raw)) = params.iter().find(|(name, _)| *name == T::NAME) else {
            // A handler asking for a parameter its route template lacks: a bug, not the client's.
            return Err(ApiError::Internal(format!(
                "the route has no {{{}}} parameter",
                T::NAME
            )));
        };
        // A value that cannot name anything (not a UUID, an unknown platform) is answered like an
        // unknown one: 404.
        T::parse(raw)
            .map(InPath)
            .ok_or_else(|| ApiError::NotFound(format!("{} {raw}", T::WHAT)))
    }
}
