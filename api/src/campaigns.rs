//! A workspace's campaigns with their sync status, in cursor pages.

use crate::access::{InWorkspace, ReadWorkspace};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::paging::{NextLink, PageSize};
use crate::responses::{Invalid, NotFound, RateLimited, Unauthenticated};
use crate::AppState;
use adledger_domain::{CampaignId, ConnectionId};
use adledger_projections::catalog;
use axum::extract::{OriginalUri, State};
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_campaigns))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CampaignParams {
    connection_id: Option<Uuid>,
    /// Cursor: the `next_after` of the previous page.
    after: Option<Uuid>,
    /// Page size (default 100).
    #[param(schema_with = crate::schemas::page_size)]
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Campaign {
    pub id: Uuid,
    pub connection_id: Uuid,
    pub ad_account_id: String,
    pub external_id: String,
    pub name: String,
    pub status: String,
    pub last_sync_id: Option<Uuid>,
    pub last_sync_status: Option<String>,
    pub last_synced_at: Option<DateTime<Utc>>,
    /// The last day covered by a completed sync.
    pub synced_through: Option<NaiveDate>,
}

impl From<catalog::CampaignView> for Campaign {
    fn from(v: catalog::CampaignView) -> Self {
        Self {
            id: v.id.as_uuid(),
            connection_id: v.connection_id.as_uuid(),
            ad_account_id: v.ad_account_id.0,
            external_id: v.external_id,
            name: v.name,
            status: v.status,
            last_sync_id: v.last_sync_id.map(|s| s.as_uuid()),
            last_sync_status: v.last_sync_status,
            last_synced_at: v.last_synced_at,
            synced_through: v.synced_through,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignPage {
    pub items: Vec<Campaign>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next_after: Option<Uuid>,
}

/// List campaigns with their sync status, in pages.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/campaigns", tag = "campaigns",
    params(("workspace_id" = Uuid, Path), CampaignParams),
    responses((status = 200, body = CampaignPage, headers(("link" = String, description = "`<…>; rel=\"next\"`: the next page, when there is one"))),
              Unauthenticated, NotFound, Invalid, RateLimited))]
async fn list_campaigns(
    State(state): State<AppState>,
    ws: InWorkspace<ReadWorkspace>,
    OriginalUri(uri): OriginalUri,
    ApiQuery(params): ApiQuery<CampaignParams>,
) -> Result<(NextLink, Json<CampaignPage>), ApiError> {
    let size = PageSize::parse(params.limit)?;
    let filter = catalog::CampaignFilter {
        connection_id: params.connection_id.map(ConnectionId),
        after: params.after.map(CampaignId),
        limit: size.fetch(),
    };
    let rows = catalog::list_campaigns(state.reads.pool(), ws.id, &filter).await?;
    let (items, next_after) = size.cut(rows, |c: &Campaign| c.id);
    let next = next_after.map(|id| id.to_string());
    Ok((
        NextLink::new(&uri, "after", next.as_deref()),
        Json(CampaignPage { items, next_after }),
    ))
}
