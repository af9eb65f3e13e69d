//! A workspace's people and machine clients: members and their roles, invitations, erasure of
//! former members, and API keys. Owners manage members; owners and admins manage API keys.

use crate::caller::Caller;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::AppState;
use adledger_domain::{ApiKeyId, ApiKeyScope, Permission, Role, UserId, WorkspaceId};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_members))
        .routes(routes!(change_role, remove_member))
        .routes(routes!(erase_member))
        .routes(routes!(invite))
        .routes(routes!(accept_invitation))
        .routes(routes!(list_api_keys, create_api_key))
        .routes(routes!(revoke_api_key))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Member {
    pub user_id: Uuid,
    /// `owner`, `admin`, `analyst` or `auditor`.
    pub role: String,
    /// Absent once the person was erased.
    pub email: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Invite {
    pub email: String,
    /// `owner`, `admin`, `analyst` or `auditor`.
    pub role: String,
    /// Hours until the invitation expires (1 to 720, default 168).
    pub expires_in_hours: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Invitation {
    pub invitation_id: Uuid,
    /// Single use; give it to the invitee (it is not stored and not shown again).
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AcceptInvitation {
    pub token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Joined {
    pub workspace_id: Uuid,
    pub role: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangeRole {
    pub role: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateApiKey {
    pub name: String,
    /// `read_only` or `read_write`.
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
    pub scope: String,
    pub created_at: DateTime<Utc>,
    pub revoked: bool,
    pub last_used_at: Option<DateTime<Utc>>,
}

fn role(raw: &str) -> Result<Role, ApiError> {
    Role::parse(raw)
        .ok_or_else(|| ApiError::invalid("role", "must be one of owner, admin, analyst, auditor"))
}

/// The members of a workspace and their roles.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/members", tag = "members",
    params(("workspace_id" = Uuid, Path)),
    responses((status = 200, body = Vec<Member>), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(workspace_id): ApiPath<Uuid>,
) -> Result<Json<Vec<Member>>, ApiError> {
    caller
        .authorize(&state, workspace_id, Permission::ReadWorkspace)
        .await?;
    let members = state.identity.members(WorkspaceId(workspace_id)).await?;
    Ok(Json(
        members
            .into_iter()
            .map(|m| Member {
                user_id: m.user_id.as_uuid(),
                role: m.role.as_str().into(),
                email: m.email,
            })
            .collect(),
    ))
}

/// Change a member's role (owners only). The last owner cannot be demoted.
#[utoipa::path(patch, path = "/v1/workspaces/{workspace_id}/members/{user_id}", tag = "members",
    params(("workspace_id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body = ChangeRole,
    responses((status = 204), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn change_role(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((workspace_id, user_id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<ChangeRole>,
) -> Result<StatusCode, ApiError> {
    caller
        .authorize(&state, workspace_id, Permission::ManageMembers)
        .await?;
    let role = role(&body.role)?;
    let ctx = caller.context(&state).await?;
    state
        .identity
        .change_role(&ctx, WorkspaceId(workspace_id), UserId(user_id), role)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a member (owners only). The last owner cannot be removed.
#[utoipa::path(delete, path = "/v1/workspaces/{workspace_id}/members/{user_id}", tag = "members",
    params(("workspace_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((workspace_id, user_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    caller
        .authorize(&state, workspace_id, Permission::ManageMembers)
        .await?;
    let ctx = caller.context(&state).await?;
    state
        .identity
        .remove_member(&ctx, WorkspaceId(workspace_id), UserId(user_id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Erase a removed member's personal data (owners only), as they could themselves.
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/members/{user_id}/erasure", tag = "members",
    params(("workspace_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn erase_member(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((workspace_id, user_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    caller
        .authorize(&state, workspace_id, Permission::ManageMembers)
        .await?;
    let ctx = caller.context(&state).await?;
    state
        .identity
        .erase_former_member(&ctx, WorkspaceId(workspace_id), UserId(user_id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Invite someone by email with a role (owners only). The answer holds the single-use token.
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/invitations", tag = "members",
    params(("workspace_id" = Uuid, Path)), request_body = Invite,
    responses((status = 201, body = Invitation), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn invite(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(workspace_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<Invite>,
) -> Result<(StatusCode, Json<Invitation>), ApiError> {
    caller
        .authorize(&state, workspace_id, Permission::ManageMembers)
        .await?;
    let role = role(&body.role)?;
    let expires_in = match body.expires_in_hours {
        None => None,
        Some(h) if (1..=720).contains(&h) => Some(chrono::Duration::hours(h)),
        Some(_) => {
            return Err(ApiError::invalid(
                "expires_in_hours",
                "must be between 1 and 720",
            ))
        }
    };
    let ctx = caller.context(&state).await?;
    let invited = state
        .identity
        .invite(
            &ctx,
            WorkspaceId(workspace_id),
            &body.email,
            role,
            expires_in,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Invitation {
            invitation_id: invited.invitation_id.as_uuid(),
            token: invited.token,
            expires_at: invited.expires_at,
        }),
    ))
}

/// Accept an invitation as the signed-in person (whose email must be the invited one).
#[utoipa::path(post, path = "/v1/invitations/accept", tag = "members", request_body = AcceptInvitation,
    responses((status = 200, body = Joined), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "Expired or already used", body = Problem, content_type = "application/problem+json")))]
async fn accept_invitation(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<AcceptInvitation>,
) -> Result<Json<Joined>, ApiError> {
    let (user, _) = caller.user()?;
    let ctx = caller.context(&state).await?;
    let (workspace, role) = state
        .identity
        .accept_invitation(&ctx, user, &body.token)
        .await?;
    Ok(Json(Joined {
        workspace_id: workspace.as_uuid(),
        role: role.as_str().into(),
    }))
}

/// The workspace's API keys (never the keys themselves).
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/api-keys", tag = "members",
    params(("workspace_id" = Uuid, Path)),
    responses((status = 200, body = Vec<ApiKey>), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn list_api_keys(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(workspace_id): ApiPath<Uuid>,
) -> Result<Json<Vec<ApiKey>>, ApiError> {
    caller
        .authorize(&state, workspace_id, Permission::ManageApiKeys)
        .await?;
    let keys = state.identity.api_keys(WorkspaceId(workspace_id)).await?;
    Ok(Json(
        keys.into_iter()
            .map(|k| ApiKey {
                id: k.api_key_id.as_uuid(),
                name: k.name,
                scope: k.scope.as_str().into(),
                created_at: k.created_at,
                revoked: k.revoked,
                last_used_at: k.last_used_at,
            })
            .collect(),
    ))
}

/// Create an API key for machine clients (owners and admins). The key is shown once.
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/api-keys", tag = "members",
    params(("workspace_id" = Uuid, Path)), request_body = CreateApiKey,
    responses((status = 201, body = CreatedApiKey), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn create_api_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(workspace_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<CreateApiKey>,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    caller
        .authorize(&state, workspace_id, Permission::ManageApiKeys)
        .await?;
    let scope = ApiKeyScope::parse(&body.scope)
        .ok_or_else(|| ApiError::invalid("scope", "must be read_only or read_write"))?;
    let ctx = caller.context(&state).await?;
    let created = state
        .identity
        .create_api_key(&ctx, WorkspaceId(workspace_id), &body.name, scope)
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
    responses((status = 204), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn revoke_api_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((workspace_id, api_key_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    caller
        .authorize(&state, workspace_id, Permission::ManageApiKeys)
        .await?;
    let ctx = caller.context(&state).await?;
    state
        .identity
        .revoke_api_key(&ctx, WorkspaceId(workspace_id), ApiKeyId(api_key_id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
