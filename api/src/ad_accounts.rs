//! The ad accounts discovered through a workspace's connections, with each one's sync cursor.

use crate::access::{InWorkspace, ReadWorkspace};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::paging::{self, Page, PageSize, Scope};
use crate::responses::{Invalid, NotFound, RateLimited, Unauthenticated};
use crate::AppState;
use adledger_domain::{AdAccountId, ConnectionId};
use adledger_projections::catalog;
use axum::extract::{OriginalUri, State};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_ad_accounts))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AdAccountParams {
    /// Only the ad accounts of this connection.
    connection_id: Option<Uuid>,
    /// Where the page starts: the `cursor` in the previous page's `Link: <…>; rel="next"`.
    /// Absent: the first page.
    #[param(max_length = 1024)]
    cursor: Option<String>,
    /// Page size, 1 to 500 (default 100).
    #[param(schema_with = crate::schemas::page_size)]
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdAccount {
    pub connection_id: Uuid,
    /// The platform's own id of the ad account.
    pub id: String,
    pub name: String,
    pub currency: String,
    pub time_zone: String,
    /// The account's sync cursor: every day up to this one (the account's local date) is
    /// stored. Absent until a sync completed a first chunk of days.
    pub synced_through: Option<NaiveDate>,
}

impl From<catalog::AdAccountView> for AdAccount {
    fn from(v: catalog::AdAccountView) -> Self {
        Self {
            connection_id: v.connection_id.as_uuid(),
            id: v.id.0,
            name: v.name,
            currency: v.currency,
            time_zone: v.time_zone,
            synced_through: v.synced_through,
        }
    }
}

/// List the ad accounts discovered through the workspace's connections, by connection and the
/// platform's id, a page at a time.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/ad-accounts", tag = "connections",
    params(("workspace_id" = Uuid, Path), AdAccountParams),
    responses((status = 200, body = Vec<AdAccount>, headers(("link" = String, description = "`<…>; rel=\"next\"`: the next page, when there is one"))),
              Unauthenticated, NotFound, Invalid, RateLimited))]
async fn list_ad_accounts(
    State(state): State<AppState>,
    ws: InWorkspace<ReadWorkspace>,
    OriginalUri(uri): OriginalUri,
    ApiQuery(params): ApiQuery<AdAccountParams>,
) -> Result<Page<AdAccount>, ApiError> {
    let size = PageSize::parse(params.limit)?;
    let connection = params.connection_id.map(ConnectionId);
    let scope = Scope::new("ad-accounts", &(ws.id, connection));
    let after = scope.decode::<(ConnectionId, AdAccountId)>(params.cursor.as_deref())?;
    let pool = state.reads.pool();
    let rows = catalog::list_ad_accounts(pool, ws.id, connection, after, size.fetch()).await?;
    paging::page(&uri, &scope, size, rows, |a: &AdAccount| {
        (ConnectionId(a.connection_id), AdAccountId(a.id.clone()))
    })
}
