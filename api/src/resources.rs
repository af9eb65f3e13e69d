//! Connections, ad accounts and campaigns of a workspace.

use crate::caller::Caller;
use crate::dto::{AdAccount, Campaign, CampaignPage, ConnectPlatform, Connection, Created};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::AppState;
use adledger_domain::event::ConnectionSettings;
use adledger_domain::Permission;
use adledger_domain::{CampaignId, ConnectionId, Platform, WorkspaceId};
use adledger_projections::catalog;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(connect_platform, list_connections))
        .routes(routes!(get_connection))
        .routes(routes!(list_ad_accounts))
        .routes(routes!(list_campaigns))
}

fn settings(body: &ConnectPlatform) -> Result<ConnectionSettings, ApiError> {
    match Platform::parse(&body.platform) {
        Some(Platform::Sandbox) => {
            let s = body.sandbox.as_ref();
            let (seed, ad_accounts, campaigns) =
                s.map_or((0, 2, 20), |s| (s.seed, s.ad_accounts, s.campaigns));
            let mut errors = Vec::new();
            if !(1..=10).contains(&ad_accounts) {
                errors.push(("sandbox.ad_accounts", "must be between 1 and 10"));
            }
            if !(1..=1000).contains(&campaigns) {
                errors.push(("sandbox.campaigns", "must be between 1 and 1000"));
            }
            if !errors.is_empty() {
                return Err(ApiError::Validation(
                    errors
                        .into_iter()
                        .map(|(f, m)| crate::error::FieldError {
                            field: f.into(),
                            message: m.into(),
                        })
                        .collect(),
                ));
            }
            Ok(ConnectionSettings::Sandbox {
                seed,
                ad_accounts,
                campaigns,
            })
        }
        // Real platforms connect through their OAuth flow: the person must grant access.
        Some(other @ (Platform::Meta | Platform::Google | Platform::Tiktok)) => {
            Err(ApiError::invalid(
                "platform",
                format!(
                    "{other} connects through its OAuth flow: POST \
                     /v1/workspaces/{{workspace_id}}/connections/{other}/authorize"
                ),
            ))
        }
        None => Err(ApiError::invalid(
            "platform",
            format!("unknown platform {:?}; supported: sandbox", body.platform),
        )),
    }
}

/// Connect an ad-platform account to the workspace.
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/connections", tag = "connections",
    params(("workspace_id" = Uuid, Path),
           ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key return the first result")),
    request_body = ConnectPlatform,
    responses(
        (status = 201, body = Created),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
async fn connect_platform(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(workspace_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ConnectPlatform>,
) -> Result<impl IntoResponse, ApiError> {
    caller
        .authorize(&state, workspace_id, Permission::ManageConnections)
        .await?;
    let ctx = caller.context(&state).await?;
    let settings = settings(&body)?;
    let label = body
        .label
        .clone()
        .unwrap_or_else(|| format!("{} connection", body.platform));
    let id = state
        .commands
        .connect_platform(&ctx, WorkspaceId(workspace_id), &label, settings)
        .await?;
    Ok((
        StatusCode::CREATED,
        [(
            header::LOCATION,
            format!("/v1/workspaces/{workspace_id}/connections/{id}"),
        )],
        Json(Created { id: id.as_uuid() }),
    ))
}

/// List the workspace's connections with their sync status.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/connections", tag = "connections",
    params(("workspace_id" = Uuid, Path)),
    responses((status = 200, body = Vec<Connection>),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn list_connections(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(workspace_id): ApiPath<Uuid>,
) -> Result<Json<Vec<Connection>>, ApiError> {
    caller
        .authorize(&state, workspace_id, Permission::ReadWorkspace)
        .await?;
    let rows = catalog::list_connections(state.store.pool(), WorkspaceId(workspace_id)).await?;
    Ok(Json(rows.into_iter().map(Connection::from).collect()))
}

/// Read one connection.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/connections/{connection_id}", tag = "connections",
    params(("workspace_id" = Uuid, Path), ("connection_id" = Uuid, Path)),
    responses((status = 200, body = Connection),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn get_connection(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((workspace_id, connection_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<Connection>, ApiError> {
    caller
        .authorize(&state, workspace_id, Permission::ReadWorkspace)
        .await?;
    catalog::get_connection(
        state.store.pool(),
        WorkspaceId(workspace_id),
        ConnectionId(connection_id),
    )
    .await?
    .map(|c| Json(c.into()))
    .ok_or_else(|| ApiError::NotFound(format!("connection {connection_id}")))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AdAccountParams {
    /// Only the ad accounts of this connection.
    connection_id: Option<Uuid>,
}

/// List the ad accounts discovered through the workspace's connections.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/ad-accounts", tag = "connections",
    params(("workspace_id" = Uuid, Path), AdAccountParams),
    responses((status = 200, body = Vec<AdAccount>),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn list_ad_accounts(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(workspace_id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<AdAccountParams>,
) -> Result<Json<Vec<AdAccount>>, ApiError> {
    caller
        .authorize(&state, workspace_id, Permission::ReadWorkspace)
        .await?;
    let rows = catalog::list_ad_accounts(
        state.store.pool(),
        WorkspaceId(workspace_id),
        params.connection_id.map(ConnectionId),
    )
    .await?;
    Ok(Json(rows.into_iter().map(AdAccount::from).collect()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CampaignParams {
    connection_id: Option<Uuid>,
    /// Cursor: the `next_after` of the previous page.
    after: Option<Uuid>,
    /// Page size, 1 to 500 (default 100).
    limit: Option<i64>,
}

/// List campaigns with their sync status, in pages.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/campaigns", tag = "campaigns",
    params(("workspace_id" = Uuid, Path), CampaignParams),
    responses((status = 200, body = CampaignPage),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn list_campaigns(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(workspace_id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<CampaignParams>,
) -> Result<Json<CampaignPage>, ApiError> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 500"));
    }
    caller
        .authorize(&state, workspace_id, Permission::ReadWorkspace)
        .await?;
    let rows = catalog::list_campaigns(
        state.store.pool(),
        WorkspaceId(workspace_id),
        &catalog::CampaignFilter {
            connection_id: params.connection_id.map(ConnectionId),
            after: params.after.map(CampaignId),
            limit: limit + 1,
        },
    )
    .await?;
    let more = rows.len() as i64 > limit;
    let items: Vec<Campaign> = rows
        .into_iter()
        .take(limit as usize)
        .map(Campaign::from)
        .collect();
    let next_after = if more {
        items.last().map(|c| c.id)
    } else {
        None
    };
    Ok(Json(CampaignPage { items, next_after }))
}
