//! Sync runs: start one (a sync worker carries it out), follow its progress.

use crate::access::{InWorkspace, ManageConnections, ReadWorkspace};
use crate::error::{ApiError, FieldError, Problem};
use crate::extract::{ApiJson, ApiQuery, InPath};
use crate::paging::{self, Page, PageSize, Paging, Scope};
use crate::responses::{Forbidden, Invalid, Malformed, NotFound, RateLimited, Unauthenticated};
use crate::schemas::IdempotencyKey;
use crate::AppState;
use adledger_domain::{CampaignId, ConnectionId, DateRange, Day, SyncId};
use adledger_projections::catalog;
use axum::extract::{OriginalUri, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_sync, list_syncs))
        .routes(routes!(get_sync))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct StartSync {
    /// First day, `YYYY-MM-DD`, 2000-01-01 to 2099-12-31.
    #[schema(format = Date, pattern = r"^20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]
    pub from: String,
    /// Last day, inclusive, `YYYY-MM-DD`, 2000-01-01 to 2099-12-31; at most 1,098 days after
    /// `from`.
    #[schema(format = Date, pattern = r"^20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]
    pub to: String,
    /// Campaigns to sync; empty or absent means every campaign of the connection.
    #[serde(default)]
    pub campaign_ids: Vec<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SyncAccepted {
    pub sync_id: Uuid,
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SyncRun {
    pub id: Uuid,
    pub connection_id: Uuid,
    /// `running`, `completed` or `failed`.
    pub status: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub campaign_ids: Vec<Uuid>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub days_recorded: i64,
    pub days_restated: i64,
    pub days_unchanged: i64,
    /// What failed, for people: `<kind>: <message>`.
    pub error: Option<String>,
    /// The kind of failure: `auth_expired`, `throttled`, `invalid`, `platform_down`,
    /// `internal` or `abandoned`.
    pub failure_kind: Option<String>,
    /// Progress while it runs: the furthest day through which one of its ad accounts has every
    /// day stored (accounts are read in 30-day chunks, oldest first). Absent before the first
    /// chunk.
    pub progress_through: Option<NaiveDate>,
    /// How many times a sync worker claimed the run: 0 while it waits for one, more than 1 when
    /// it was taken over (its worker died) or handed back (its worker stopped).
    pub attempts: i32,
    /// The sync worker carrying it out (or that did last), `host:pid:nonce`.
    pub worker: Option<String>,
}

impl From<catalog::SyncRunView> for SyncRun {
    fn from(v: catalog::SyncRunView) -> Self {
        Self {
            id: v.id.as_uuid(),
            connection_id: v.connection_id.as_uuid(),
            status: v.status,
            from: v.from,
            to: v.to,
            campaign_ids: v.campaign_ids.iter().map(|c| c.as_uuid()).collect(),
            started_at: v.started_at,
            finished_at: v.finished_at,
            days_recorded: v.days_recorded,
            days_restated: v.days_restated,
            days_unchanged: v.days_unchanged,
            error: v.error,
            failure_kind: v.error_kind,
            progress_through: v.progress_through,
            attempts: v.attempts,
            worker: v.worker,
        }
    }
}

/// The range of a sync request: each day read strictly (422 naming `from` or `to`).
fn range(body: &StartSync) -> Result<DateRange, ApiError> {
    let from = Day::parse(&body.from).map_err(|e| FieldError::new("from", e.to_string()));
    let to = Day::parse(&body.to).map_err(|e| FieldError::new("to", e.to_string()));
    match (from, to) {
        (Ok(from), Ok(to)) => Ok(DateRange::between(from, to)?),
        (from, to) => Err(ApiError::Validation(
            [from.err(), to.err()].into_iter().flatten().collect(),
        )),
    }
}

/// Start syncing a connection (or some of its campaigns) over a date range. Answers at once with
/// the run's id; a sync worker carries it out. Follow it at
/// `/v1/workspaces/{workspace_id}/syncs/{sync_id}`.
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/connections/{connection_id}/syncs", tag = "syncs",
    params(("workspace_id" = Uuid, Path), ("connection_id" = Uuid, Path), IdempotencyKey),
    request_body = StartSync,
    responses(
        (status = 202, description = "Started; follow it at `Location`", body = SyncAccepted,
         headers(("Location" = String, description = "The run's address")),
         links(("GetSync" = (operation_id = "get_sync",
                             parameters(("workspace_id" = "$request.path.workspace_id"),
                                        ("sync_id" = "$response.body#/sync_id")))))),
        (status = 409, description = "A sync is already running, or the connection needs reauthorization", body = Problem, content_type = "application/problem+json"),
        Malformed, Unauthenticated, Forbidden, NotFound, Invalid, RateLimited,
    ))]
async fn start_sync(
    State(state): State<AppState>,
    ws: InWorkspace<ManageConnections>,
    InPath(connection): InPath<ConnectionId>,
    ApiJson(body): ApiJson<StartSync>,
) -> Result<impl IntoResponse, ApiError> {
    let range = range(&body)?;
    let campaigns = body.campaign_ids.into_iter().map(CampaignId).collect();
    let sync = state
        .commands
        .start_sync(
            &ws.context(&state).await?,
            ws.id,
            connection,
            range,
            campaigns,
        )
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        [(
            header::LOCATION,
            format!("/v1/workspaces/{}/syncs/{sync}", ws.id),
        )],
        Json(SyncAccepted {
            sync_id: sync.as_uuid(),
            status: "running".into(),
        }),
    ))
}

/// The sync runs of a connection, newest first, a page at a time (a connection synced every hour
/// has thousands).
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/connections/{connection_id}/syncs", tag = "syncs",
    params(("workspace_id" = Uuid, Path), ("connection_id" = Uuid, Path), Paging),
    responses((status = 200, body = Vec<SyncRun>, headers(("link" = String, description = "`<…>; rel=\"next\"`: the next page, when there is one"))),
              Unauthenticated, NotFound, Invalid, RateLimited))]
async fn list_syncs(
    State(state): State<AppState>,
    ws: InWorkspace<ReadWorkspace>,
    InPath(connection): InPath<ConnectionId>,
    OriginalUri(uri): OriginalUri,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Page<SyncRun>, ApiError> {
    // An unknown connection is a 404, not an empty list.
    crate::connections::find(&state, ws.id, connection).await?;
    let size = PageSize::parse(paging.limit)?;
    let scope = Scope::new("syncs", &(ws.id, connection));
    let after = scope.decode::<(DateTime<Utc>, SyncId)>(paging.cursor.as_deref())?;
    let pool = state.reads.pool();
    let runs = catalog::list_sync_runs(pool, ws.id, connection, after, size.fetch()).await?;
    paging::page(&uri, &scope, size, runs, |r: &SyncRun| {
        (r.started_at, SyncId(r.id))
    })
}

/// One sync run: status, counts, error.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/syncs/{sync_id}", tag = "syncs",
    params(("workspace_id" = Uuid, Path), ("sync_id" = Uuid, Path)),
    responses((status = 200, body = SyncRun), Unauthenticated, NotFound, RateLimited))]
async fn get_sync(
    State(state): State<AppState>,
    ws: InWorkspace<ReadWorkspace>,
    InPath(sync): InPath<SyncId>,
) -> Result<Json<SyncRun>, ApiError> {
    catalog::get_sync_run(state.reads.pool(), ws.id, sync)
        .await?
        .map(|r| Json(r.into()))
        .ok_or_else(|| ApiError::NotFound(format!("sync {sync}")))
}
