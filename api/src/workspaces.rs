//! Workspaces: create one (its creator becomes owner), list mine, read one.

use crate::caller::Caller;
use crate::dto::{CreateWorkspace, Workspace};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::AppState;
use adledger_domain::Permission;
use adledger_domain::WorkspaceId;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_workspace, list_workspaces))
        .routes(routes!(get_workspace))
}

/// Create a workspace (a tenant). Send `Idempotency-Key` to make retries safe.
#[utoipa::path(post, path = "/v1/workspaces", tag = "workspaces",
    request_body = CreateWorkspace,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key return the first result")),
    responses(
        (status = 201, description = "Created", body = crate::dto::Created),
        (status = 422, description = "Invalid name", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_workspace(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateWorkspace>,
) -> Result<impl IntoResponse, ApiError> {
    caller.user()?;
    let ctx = caller.context(&state).await?;
    let id = state.commands.create_workspace(&ctx, &body.name).await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/v1/workspaces/{id}"))],
        Json(crate::dto::Created { id: id.as_uuid() }),
    ))
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Membership {
    pub workspace_id: Uuid,
    pub name: String,
    pub role: String,
    pub joined_at: chrono::DateTime<chrono::Utc>,
}

/// The workspaces the signed-in person belongs to, with their role in each.
#[utoipa::path(get, path = "/v1/workspaces", tag = "workspaces",
    responses((status = 200, body = Vec<Membership>),
              (status = 401, body = Problem, content_type = "application/problem+json")))]
async fn list_workspaces(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Membership>>, ApiError> {
    let (user, _) = caller.user()?;
    let rows = adledger_projections::catalog::memberships_of(state.store.pool(), user).await?;
    Ok(Json(
        rows.into_iter()
            .map(|m| Membership {
                workspace_id: m.workspace_id.as_uuid(),
                name: m.workspace_name,
                role: m.role,
                joined_at: m.joined_at,
            })
            .collect(),
    ))
}

/// Read a workspace.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}", tag = "workspaces",
    params(("workspace_id" = Uuid, Path)),
    responses(
        (status = 200, body = Workspace),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_workspace(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(workspace_id): ApiPath<Uuid>,
) -> Result<Json<Workspace>, ApiError> {
    caller
        .authorize(&state, workspace_id, Permission::ReadWorkspace)
        .await?;
    workspace_exists(&state, workspace_id).await.map(Json)
}

/// The workspace's read-model row, or 404 while it is not projected yet.
pub async fn workspace_exists(state: &AppState, id: Uuid) -> Result<Workspace, ApiError> {
    adledger_projections::catalog::get_workspace(state.store.pool(), WorkspaceId(id))
        .await?
        .map(Workspace::from)
        .ok_or_else(|| ApiError::NotFound(format!("workspace {id}")))
}
