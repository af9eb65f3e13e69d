//! A workspace's API keys, the credentials of its machine clients: list, create (the key is shown
//! once), revoke. Owners and admins manage them.

use crate::access::{InWorkspace, ManageApiKeys};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, InPath};
use crate::paging::{self, Page, PageSize, Paging, Scope};
use crate::responses::{Forbidden, Invalid, Malformed, NotFound, RateLimited, Unauthenticated};
use crate::AppState;
use adledger_commands::api_keys::ApiKeyView;
use adledger_domain::{ApiKeyId, ApiKeyScope};
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_api_keys, create_api_key))
        .routes(routes!(revoke_api_key))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateApiKey {
    #[schema(schema_with = crate::schemas::key_name)]
    pub name: String,
    #[schema(schema_with = crate::schemas::scope)]
    pub scope: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    pub id: Uuid,
    /// Send as `Authorization: Bearer <key>` or `X-Api-Key: <key>`. Shown once.
    pub key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    #[schema(schema_with = crate::schemas::scope)]
    pub scope: String,
    pub created_at: DateTime<Utc>,
    pub revoked: bool,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<ApiKeyView> for ApiKey {
    fn from(k: ApiKeyView) -> Self {
        Self {
            id: k.api_key_id.as_uuid(),
            name: k.name,
            scope: k.scope.as_str().into(),
            created_at: k.created_at,
            revoked: k.revoked,
            last_used_at: k.last_used_at,
        }
    }
}

/// The workspace's API keys (never the keys themselves), revoked ones included, oldest first, a
/// page at a time.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/api-keys", tag = "members",
    params(("workspace_id" = Uuid, Path), Paging),
    responses((status = 200, body = Vec<ApiKey>, headers(("link" = String, description = "`<…>; rel=\"next\"`: the next page, when there is one"))),
              Unauthenticated, Forbidden, NotFound, Invalid, RateLimited))]
async fn list_api_keys(
    State(state): State<AppState>,
    ws: InWorkspace<ManageApiKeys>,
    OriginalUri(uri): OriginalUri,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Page<ApiKey>, ApiError> {
    let size = PageSize::parse(paging.limit)?;
    let scope = Scope::new("api-keys", &ws.id);
    let after = scope.decode::<ApiKeyId>(paging.cursor.as_deref())?;
    let keys = state
        .identity
        .api_keys(ws.id, after, size.fetch() as usize)
        .await?;
    paging::page(&uri, &scope, size, keys, |k: &ApiKey| ApiKeyId(k.id))
}

/// Create an API key for machine clients (owners and admins). The key is shown once.
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/api-keys", tag = "members",
    params(("workspace_id" = Uuid, Path)), request_body = CreateApiKey,
    responses((status = 201, body = CreatedApiKey,
               links(("RevokeApiKey" = (operation_id = "revoke_api_key",
                                        parameters(("workspace_id" = "$request.path.workspace_id"),
                                                   ("api_key_id" = "$response.body#/id")))))),
              Malformed, Unauthenticated, Forbidden, NotFound, Invalid, RateLimited))]
async fn create_api_key(
    State(state): State<AppState>,
    ws: InWorkspace<ManageApiKeys>,
    ApiJson(body): ApiJson<CreateApiKey>,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    let scope = ApiKeyScope::parse(&body.scope)
        .ok_or_else(|| ApiError::invalid("scope", "must be read_only or read_write"))?;
    let created = state
        .identity
        .create_api_key(&ws.context(&state).await?, ws.id, &body.name, scope)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey {
            id: created.api_key_id.as_uuid(),
            key: created.key,
        }),
    ))
}

/// Revoke an API key: it stops working at once.
#[utoipa::path(delete, path = "/v1/workspaces/{workspace_id}/api-keys/{api_key_id}", tag = "members",
    params(("workspace_id" = Uuid, Path), ("api_key_id" = Uuid, Path)),
    responses((status = 204), Unauthenticated, Forbidden, NotFound, RateLimited))]
async fn revoke_api_key(
    State(state): State<AppState>,
    ws: InWorkspace<ManageApiKeys>,
    InPath(api_key): InPath<ApiKeyId>,
) -> Result<StatusCode, ApiError> {
    state
        .identity
        .revoke_api_key(&ws.context(&state).await?, ws.id, api_key)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
