//! Workspaces: create one (its creator becomes owner), list mine, read one.

use crate::access::{InWorkspace, Person, ReadWorkspace};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::paging::{self, Page, PageSize, Paging, Scope};
use crate::responses::{Created, Forbidden};
use crate::schemas::IdempotencyKey;
use crate::AppState;
use adledger_domain::WorkspaceId;
use adledger_projections::catalog;
use axum::extract::{OriginalUri, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_workspace, list_workspaces))
        .routes(routes!(get_workspace))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateWorkspace {
    #[schema(schema_with = crate::schemas::name)]
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Workspace {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl From<catalog::WorkspaceView> for Workspace {
    fn from(v: catalog::WorkspaceView) -> Self {
        Self {
            id: v.id.as_uuid(),
            name: v.name,
            created_at: v.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Membership {
    pub workspace_id: Uuid,
    pub name: String,
    #[schema(schema_with = crate::schemas::role)]
    pub role: String,
    pub joined_at: DateTime<Utc>,
}

impl From<catalog::MembershipView> for Membership {
    fn from(m: catalog::MembershipView) -> Self {
        Self {
            workspace_id: m.workspace_id.as_uuid(),
            name: m.workspace_name,
            role: m.role,
            joined_at: m.joined_at,
        }
    }
}

/// Create a workspace (a tenant). Send `Idempotency-Key` to make retries safe.
#[utoipa::path(post, path = "/v1/workspaces", tag = "workspaces",
    request_body = CreateWorkspace,
    params(IdempotencyKey),
    responses((status = 201, description = "Created; its address is in `Location`", body = Created,
               headers(("Location" = String, description = "The new workspace's address")),
               links(("GetWorkspace" = (operation_id = "get_workspace",
                                        parameters(("workspace_id" = "$response.body#/id")))),
                     ("ListMembers" = (operation_id = "list_members",
                                       parameters(("workspace_id" = "$response.body#/id")))),
                     ("ConnectPlatform" = (operation_id = "connect_platform",
                                           parameters(("workspace_id" = "$response.body#/id")))),
                     ("CreateApiKey" = (operation_id = "create_api_key",
                                        parameters(("workspace_id" = "$response.body#/id")))))),
              Forbidden))]
async fn create_workspace(
    State(state): State<AppState>,
    person: Person,
    ApiJson(body): ApiJson<CreateWorkspace>,
) -> Result<impl IntoResponse, ApiError> {
    let id = state
        .commands
        .create_workspace(&person.context(&state).await?, &body.name)
        .await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/v1/workspaces/{id}"))],
        Json(Created { id: id.as_uuid() }),
    ))
}

/// The workspaces the signed-in person belongs to, with their role in each, oldest membership
/// first, a page at a time.
#[utoipa::path(get, path = "/v1/workspaces", tag = "workspaces", params(Paging),
    responses((status = 200, body = Vec<Membership>, headers(("link" = String, description = "`<…>; rel=\"next\"`: the next page, when there is one"))),
              Forbidden))]
async fn list_workspaces(
    State(state): State<AppState>,
    person: Person,
    OriginalUri(uri): OriginalUri,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Page<Membership>, ApiError> {
    let size = PageSize::parse(paging.limit)?;
    let scope = Scope::new("workspaces", &person.user);
    let after = scope.decode::<(DateTime<Utc>, WorkspaceId)>(paging.cursor.as_deref())?;
    let rows =
        catalog::memberships_of(state.reads.pool(), person.user, after, size.fetch()).await?;
    paging::page(&uri, &scope, size, rows, |m: &Membership| {
        (m.joined_at, m.workspace_id)
    })
}

/// Read a workspace.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}", tag = "workspaces",
    params(("workspace_id" = Uuid, Path)),
    responses((status = 200, body = Workspace)))]
async fn get_workspace(
    State(state): State<AppState>,
    ws: InWorkspace<ReadWorkspace>,
) -> Result<Json<Workspace>, ApiError> {
    // The stream says it exists; its read-model row may not be projected yet.
    catalog::get_workspace(state.reads.pool(), ws.id)
        .await?
        .map(|w| Json(w.into()))
        .ok_or_else(|| ApiError::NotFound(format!("workspace {}", ws.id)))
}
