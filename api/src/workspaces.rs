//! Workspaces: create one, read one.

use crate::context::RequestContext;
use crate::dto::{CreateWorkspace, Workspace};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::AppState;
use adledger_domain::WorkspaceId;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_workspace))
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
    RequestContext(ctx): RequestContext,
    ApiJson(body): ApiJson<CreateWorkspace>,
) -> Result<impl IntoResponse, ApiError> {
    let id = state.commands.create_workspace(&ctx, &body.name).await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/v1/workspaces/{id}"))],
        Json(crate::dto::Created { id: id.as_uuid() }),
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
    ApiPath(workspace_id): ApiPath<Uuid>,
) -> Result<Json<Workspace>, ApiError> {
    workspace_exists(&state, workspace_id).await.map(Json)
}

/// The workspace, or 404: every workspace-scoped route checks this first.
pub async fn workspace_exists(state: &AppState, id: Uuid) -> Result<Workspace, ApiError> {
    adledger_projections::queries::get_workspace(state.store.pool(), WorkspaceId(id))
        .await?
        .map(Workspace::from)
        .ok_or_else(|| ApiError::NotFound(format!("workspace {id}")))
}
