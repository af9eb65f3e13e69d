//! A workspace's connections: connect the sandbox platform, list and read connections with their
//! sync status, disconnect. Real platforms connect through their OAuth flow (`crate::oauth`).

use crate::access::{InWorkspace, ManageConnections, ReadWorkspace};
use crate::error::{ApiError, FieldError};
use crate::extract::{ApiJson, ApiQuery, InPath};
use crate::paging::{self, Page, PageSize, Paging, Scope};
use crate::responses::{Created, Forbidden, NotFound, RateLimited, Unauthenticated};
use crate::responses::{Invalid, Malformed};
use crate::schemas::IdempotencyKey;
use crate::AppState;
use adledger_commands::connections::SandboxLimits;
use adledger_domain::event::ConnectionSettings;
use adledger_domain::{ConnectionId, DomainError, Platform, WorkspaceId};
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
        .routes(routes!(connect_platform, list_connections))
        .routes(routes!(get_connection, disconnect))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ConnectPlatform {
    /// Only the sandbox connects here; the others through their OAuth flow.
    #[schema(schema_with = crate::schemas::direct_platform)]
    pub platform: String,
    /// Default `<platform> connection`.
    #[schema(schema_with = crate::schemas::name)]
    pub label: Option<String>,
    /// Only for the sandbox; absent or null means the defaults.
    pub sandbox: Option<SandboxSettings>,
}

/// Settings of the built-in sandbox platform: the same seed always yields the same data.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SandboxSettings {
    #[serde(default, deserialize_with = "crate::integer::deserialize")]
    #[schema(minimum = 0, maximum = 18446744073709551615_u64, default = 0)]
    pub seed: u64,
    /// 1 to 10.
    #[serde(
        default = "default_accounts",
        deserialize_with = "crate::integer::deserialize"
    )]
    #[schema(minimum = 1, maximum = 10, default = 2)]
    pub ad_accounts: u32,
    /// 1 to this server's limit (`ADLEDGER_SANDBOX_MAX_CAMPAIGNS`, 1,000 unless its operator
    /// set another), dealt over the ad accounts. A sync of the connection covers at most
    /// `ADLEDGER_SANDBOX_MAX_CAMPAIGN_DAYS_PER_SYNC` (default 100,000) campaigns × days.
    #[serde(
        default = "default_campaigns",
        deserialize_with = "crate::integer::deserialize"
    )]
    #[schema(minimum = 1, maximum = 1000, default = 20)]
    pub campaigns: u32,
}

fn default_accounts() -> u32 {
    2
}

fn default_campaigns() -> u32 {
    20
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Connection {
    pub id: Uuid,
    pub platform: String,
    pub label: String,
    pub status: String,
    pub connected_at: DateTime<Utc>,
    pub last_sync_id: Option<Uuid>,
    pub last_sync_status: Option<String>,
    pub last_synced_at: Option<DateTime<Utc>>,
    /// When the platform access token expires, where the platform says; reconnect before then
    /// when it cannot be refreshed (Meta).
    pub token_expires_at: Option<DateTime<Utc>>,
}

impl From<catalog::ConnectionView> for Connection {
    fn from(v: catalog::ConnectionView) -> Self {
        Self {
            id: v.id.as_uuid(),
            platform: v.platform,
            label: v.label,
            status: v.status,
            connected_at: v.connected_at,
            last_sync_id: v.last_sync_id.map(|s| s.as_uuid()),
            last_sync_status: v.last_sync_status,
            last_synced_at: v.last_synced_at,
            token_expires_at: v.authorization_expires_at,
        }
    }
}

fn settings(body: &ConnectPlatform, limits: SandboxLimits) -> Result<ConnectionSettings, ApiError> {
    match Platform::parse(&body.platform) {
        Some(Platform::Sandbox) => {
            let s = body.sandbox.as_ref();
            let (seed, ad_accounts, campaigns) =
                s.map_or((0, 2, 20), |s| (s.seed, s.ad_accounts, s.campaigns));
            let mut errors = Vec::new();
            if !(1..=10).contains(&ad_accounts) {
                errors.push(FieldError::new(
                    "sandbox.ad_accounts",
                    "must be between 1 and 10",
                ));
            }
            let settings = ConnectionSettings::Sandbox {
                seed,
                ad_accounts,
                campaigns,
            };
            if campaigns == 0 {
                errors.push(FieldError::new(
                    "sandbox.campaigns",
                    format!("must be between 1 and {}", limits.max_campaigns),
                ));
            } else if let Err(DomainError::Invalid { field, reason }) = limits.check(&settings) {
                errors.push(FieldError::new(field, reason));
            }
            if !errors.is_empty() {
                return Err(ApiError::Validation(errors));
            }
            Ok(settings)
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
    params(("workspace_id" = Uuid, Path), IdempotencyKey),
    request_body = ConnectPlatform,
    responses((status = 201, description = "Connected; its address is in `Location`", body = Created,
               headers(("Location" = String, description = "The new connection's address")),
               links(("GetConnection" = (operation_id = "get_connection",
                                         parameters(("workspace_id" = "$request.path.workspace_id"),
                                                    ("connection_id" = "$response.body#/id")))),
                     ("StartSync" = (operation_id = "start_sync",
                                     parameters(("workspace_id" = "$request.path.workspace_id"),
                                                ("connection_id" = "$response.body#/id")))),
                     ("ListSyncs" = (operation_id = "list_syncs",
                                     parameters(("workspace_id" = "$request.path.workspace_id"),
                                                ("connection_id" = "$response.body#/id")))),
                     ("Disconnect" = (operation_id = "disconnect",
                                      parameters(("workspace_id" = "$request.path.workspace_id"),
                                                 ("connection_id" = "$response.body#/id")))))),
              Malformed, Unauthenticated, Forbidden, NotFound, Invalid, RateLimited))]
async fn connect_platform(
    State(state): State<AppState>,
    ws: InWorkspace<ManageConnections>,
    ApiJson(body): ApiJson<ConnectPlatform>,
) -> Result<impl IntoResponse, ApiError> {
    let settings = settings(&body, state.commands.sandbox_limits())?;
    let label = body
        .label
        .unwrap_or_else(|| format!("{} connection", body.platform));
    let id = state
        .commands
        .connect_platform(&ws.context(&state).await?, ws.id, &label, settings)
        .await?;
    Ok((
        StatusCode::CREATED,
        [(
            header::LOCATION,
            format!("/v1/workspaces/{}/connections/{id}", ws.id),
        )],
        Json(Created { id: id.as_uuid() }),
    ))
}

/// List the workspace's connections with their sync status, in id order, a page at a time.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/connections", tag = "connections",
    params(("workspace_id" = Uuid, Path), Paging),
    responses((status = 200, body = Vec<Connection>, headers(("link" = String, description = "`<…>; rel=\"next\"`: the next page, when there is one"))),
              Unauthenticated, NotFound, Invalid, RateLimited))]
async fn list_connections(
    State(state): State<AppState>,
    ws: InWorkspace<ReadWorkspace>,
    OriginalUri(uri): OriginalUri,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Page<Connection>, ApiError> {
    let size = PageSize::parse(paging.limit)?;
    let scope = Scope::new("connections", &ws.id);
    let after = scope.decode::<ConnectionId>(paging.cursor.as_deref())?;
    let rows = catalog::list_connections(state.reads.pool(), ws.id, after, size.fetch()).await?;
    paging::page(&uri, &scope, size, rows, |c: &Connection| c.id)
}

/// Read one connection.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/connections/{connection_id}", tag = "connections",
    params(("workspace_id" = Uuid, Path), ("connection_id" = Uuid, Path)),
    responses((status = 200, body = Connection), Unauthenticated, NotFound, RateLimited))]
async fn get_connection(
    State(state): State<AppState>,
    ws: InWorkspace<ReadWorkspace>,
    InPath(connection): InPath<ConnectionId>,
) -> Result<Json<Connection>, ApiError> {
    let view = find(&state, ws.id, connection).await?;
    Ok(Json(view.into()))
}

/// The workspace's connection, or 404 (also while it is not projected yet).
pub async fn find(
    state: &AppState,
    workspace: WorkspaceId,
    connection: ConnectionId,
) -> Result<catalog::ConnectionView, ApiError> {
    catalog::get_connection(state.reads.pool(), workspace, connection)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("connection {connection}")))
}

/// Disconnect: the tokens are revoked at the platform (best effort) and forgotten; the
/// connection's history stays.
#[utoipa::path(delete, path = "/v1/workspaces/{workspace_id}/connections/{connection_id}", tag = "connections",
    params(("workspace_id" = Uuid, Path), ("connection_id" = Uuid, Path)),
    responses((status = 204), Unauthenticated, Forbidden, NotFound, RateLimited))]
async fn disconnect(
    State(state): State<AppState>,
    ws: InWorkspace<ManageConnections>,
    InPath(connection): InPath<ConnectionId>,
) -> Result<StatusCode, ApiError> {
    state
        .commands
        .disconnect(&ws.context(&state).await?, ws.id, connection)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
