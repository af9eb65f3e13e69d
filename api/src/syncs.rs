//! Sync runs: start one (it runs in the background), follow its progress.

use crate::caller::Caller;
use crate::dto::{StartSync, SyncAccepted, SyncRun};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::AppState;
use adledger_domain::Permission;
use adledger_domain::{CampaignId, ConnectionId, DateRange, SyncId, WorkspaceId};
use adledger_projections::catalog;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_sync, list_syncs))
        .routes(routes!(get_sync))
}

/// Start syncing a connection (or some of its campaigns) over a date range. Answers at once with
/// the run's id; a sync worker carries it out. Follow it at
/// `/v1/workspaces/{workspace_id}/syncs/{sync_id}`.
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/connections/{connection_id}/syncs", tag = "syncs",
    params(("workspace_id" = Uuid, Path), ("connection_id" = Uuid, Path),
           ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key return the first run")),
    request_body = StartSync,
    responses(
        (status = 202, body = SyncAccepted),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A sync is already running", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
async fn start_sync(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((workspace_id, connection_id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<StartSync>,
) -> Result<impl IntoResponse, ApiError> {
    caller
        .authorize(&state, workspace_id, Permission::ManageConnections)
        .await?;
    let ctx = caller.context(&state).await?;
    let range = DateRange::new(body.from, body.to)?;
    let workspace = WorkspaceId(workspace_id);
    let connection = ConnectionId(connection_id);
    let campaigns = body.campaign_ids.into_iter().map(CampaignId).collect();
    let sync = state
        .commands
        .start_sync(&ctx, workspace, connection, range, campaigns)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        [(
            header::LOCATION,
            format!("/v1/workspaces/{workspace_id}/syncs/{sync}"),
        )],
        Json(SyncAccepted {
            sync_id: sync.as_uuid(),
            status: "running".into(),
        }),
    ))
}

/// The sync runs of a connection, newest first.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/connections/{connection_id}/syncs", tag = "syncs",
    params(("workspace_id" = Uuid, Path), ("connection_id" = Uuid, Path)),
    responses((status = 200, body = Vec<SyncRun>),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn list_syncs(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((workspace_id, connection_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<Vec<SyncRun>>, ApiError> {
    caller
        .authorize(&state, workspace_id, Permission::ReadWorkspace)
        .await?;
    let pool = state.store.pool();
    catalog::get_connection(pool, WorkspaceId(workspace_id), ConnectionId(connection_id))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("connection {connection_id}")))?;
    let runs =
        catalog::list_sync_runs(pool, WorkspaceId(workspace_id), ConnectionId(connection_id))
            .await?;
    Ok(Json(runs.into_iter().map(SyncRun::from).collect()))
}

/// One sync run: status, counts, error.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/syncs/{sync_id}", tag = "syncs",
    params(("workspace_id" = Uuid, Path), ("sync_id" = Uuid, Path)),
    responses((status = 200, body = SyncRun),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn get_sync(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((workspace_id, sync_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<SyncRun>, ApiError> {
    caller
        .authorize(&state, workspace_id, Permission::ReadWorkspace)
        .await?;
    catalog::get_sync_run(
        state.store.pool(),
        WorkspaceId(workspace_id),
        SyncId(sync_id),
    )
    .await?
    .map(|r| Json(r.into()))
    .ok_or_else(|| ApiError::NotFound(format!("sync {sync_id}")))
}
