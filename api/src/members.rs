//! A workspace's people: members and their roles, invitations, erasure of former members. Owners
//! manage members; every member sees who else is one.

use crate::access::{InWorkspace, ManageMembers, Person, ReadWorkspace};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiQuery, InPath};
use crate::paging::{self, Page, PageSize, Paging, Scope};
use crate::responses::{Forbidden, Invalid, Malformed, NotFound, RateLimited, Unauthenticated};
use crate::AppState;
use adledger_commands::members::Member as MemberView;
use adledger_domain::{Role, UserId};
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
        .routes(routes!(list_members))
        .routes(routes!(change_role, remove_member))
        .routes(routes!(erase_member))
        .routes(routes!(invite))
        .routes(routes!(accept_invitation))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Member {
    pub user_id: Uuid,
    #[schema(schema_with = crate::schemas::role)]
    pub role: String,
    /// Absent once the person was erased.
    pub email: Option<String>,
}

impl From<MemberView> for Member {
    fn from(m: MemberView) -> Self {
        Self {
            user_id: m.user_id.as_uuid(),
            role: m.role.as_str().into(),
            email: m.email,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangeRole {
    #[schema(schema_with = crate::schemas::role)]
    pub role: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Invite {
    #[schema(schema_with = crate::schemas::email)]
    pub email: String,
    #[schema(schema_with = crate::schemas::role)]
    pub role: String,
    /// Hours until the invitation expires (default 168: a week).
    #[serde(default, deserialize_with = "crate::integer::optional")]
    #[schema(minimum = 1, maximum = 720)]
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
    #[schema(schema_with = crate::schemas::role)]
    pub role: String,
}

fn role(raw: &str) -> Result<Role, ApiError> {
    Role::parse(raw)
        .ok_or_else(|| ApiError::invalid("role", "must be one of owner, admin, analyst, auditor"))
}

/// The members of a workspace and their roles, by user id, a page at a time.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/members", tag = "members",
    params(("workspace_id" = Uuid, Path), Paging),
    responses((status = 200, body = Vec<Member>, headers(("link" = String, description = "`<…>; rel=\"next\"`: the next page, when there is one"))),
              Unauthenticated, NotFound, Invalid, RateLimited))]
async fn list_members(
    State(state): State<AppState>,
    ws: InWorkspace<ReadWorkspace>,
    OriginalUri(uri): OriginalUri,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Page<Member>, ApiError> {
    let size = PageSize::parse(paging.limit)?;
    let scope = Scope::new("members", &ws.id);
    let after = scope.decode::<UserId>(paging.cursor.as_deref())?;
    let members = state
        .identity
        .members(ws.id, after, size.fetch() as usize)
        .await?;
    paging::page(&uri, &scope, size, members, |m: &Member| UserId(m.user_id))
}

/// Change a member's role (owners only). The last owner cannot be demoted.
#[utoipa::path(patch, path = "/v1/workspaces/{workspace_id}/members/{user_id}", tag = "members",
    params(("workspace_id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body = ChangeRole,
    responses((status = 204),
              Malformed, Unauthenticated, Forbidden, NotFound, Invalid, RateLimited))]
async fn change_role(
    State(state): State<AppState>,
    ws: InWorkspace<ManageMembers>,
    InPath(user): InPath<UserId>,
    ApiJson(body): ApiJson<ChangeRole>,
) -> Result<StatusCode, ApiError> {
    let role = role(&body.role)?;
    state
        .identity
        .change_role(&ws.context(&state).await?, ws.id, user, role)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a member (owners only). The last owner cannot be removed.
#[utoipa::path(delete, path = "/v1/workspaces/{workspace_id}/members/{user_id}", tag = "members",
    params(("workspace_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204), Unauthenticated, Forbidden, NotFound, Invalid, RateLimited))]
async fn remove_member(
    State(state): State<AppState>,
    ws: InWorkspace<ManageMembers>,
    InPath(user): InPath<UserId>,
) -> Result<StatusCode, ApiError> {
    state
        .identity
        .remove_member(&ws.context(&state).await?, ws.id, user)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Erase a removed member's personal data (owners only), as they could themselves.
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/members/{user_id}/erasure", tag = "members",
    params(("workspace_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204), Unauthenticated, Forbidden, NotFound, Invalid, RateLimited))]
async fn erase_member(
    State(state): State<AppState>,
    ws: InWorkspace<ManageMembers>,
    InPath(user): InPath<UserId>,
) -> Result<StatusCode, ApiError> {
    state
        .identity
        .erase_former_member(&ws.context(&state).await?, ws.id, user)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Invite someone by email with a role (owners only). The answer holds the single-use token.
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/invitations", tag = "members",
    params(("workspace_id" = Uuid, Path)), request_body = Invite,
    responses((status = 201, body = Invitation),
              Malformed, Unauthenticated, Forbidden, NotFound, Invalid, RateLimited))]
async fn invite(
    State(state): State<AppState>,
    ws: InWorkspace<ManageMembers>,
    ApiJson(body): ApiJson<Invite>,
) -> Result<(StatusCode, Json<Invitation>), ApiError> {
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
    let invited = state
        .identity
        .invite(
            &ws.context(&state).await?,
            ws.id,
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
    responses((status = 200, body = Joined),
              (status = 409, description = "`conflict`: already a member of the workspace", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "Expired or already used", body = Problem, content_type = "application/problem+json"),
              Malformed, Unauthenticated, Forbidden, NotFound, RateLimited))]
async fn accept_invitation(
    State(state): State<AppState>,
    person: Person,
    ApiJson(body): ApiJson<AcceptInvitation>,
) -> Result<Json<Joined>, ApiError> {
    let (workspace, role) = state
        .identity
        .accept_invitation(&person.context(&state).await?, person.user, &body.token)
        .await?;
    Ok(Json(Joined {
        workspace_id: workspace.as_uuid(),
        role: role.as_str().into(),
    }))
}
