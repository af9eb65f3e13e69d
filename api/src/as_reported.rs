//! Insights as reported: every value one campaign-day has had, when each was recorded (time and
//! log position), by which sync, and when the next one replaced it, a page at a time.

use crate::access::{InWorkspace, ReadInsights};
use crate::error::{ApiError, FieldError};
use crate::extract::ApiQuery;
use crate::paging::{self, Page, PageSize, Scope};
use crate::responses::{Forbidden, Invalid, NotFound, RateLimited, Unauthenticated};
use crate::AppState;
use adledger_domain::{CampaignId, Day};
use adledger_projections::daily_insights::{self, HistoryQuery};
use axum::extract::{OriginalUri, State};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(insights_history))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    #[param(required = true)]
    campaign_id: Option<Uuid>,
    /// The day, `YYYY-MM-DD` (the ad account's local date), 2000-01-01 to 2099-12-31.
    #[param(required = true, value_type = String, format = Date, pattern = r"^20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]
    date: Option<String>,
    /// Where the page starts: the `cursor` in the previous page's `Link: <…>; rel="next"`.
    /// Absent: the first page.
    #[param(max_length = 1024)]
    cursor: Option<String>,
    /// Page size, 1 to 500 (default 100).
    #[param(schema_with = crate::schemas::page_size)]
    limit: Option<i64>,
}

/// One value the day had, and the span of the log during which it was the current one.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportedValue {
    /// 1 for the first report, +1 for each restatement.
    pub revision: i32,
    pub connection_id: Uuid,
    pub platform: String,
    pub ad_account_id: String,
    /// ISO 4217.
    pub currency: String,
    pub impressions: i64,
    pub clicks: i64,
    pub spend: Decimal,
    pub conversions: Decimal,
    pub conversion_value: Decimal,
    /// The sync run that reported this value.
    pub sync_id: Uuid,
    /// When its event was recorded, and its log position.
    pub recorded_at: DateTime<Utc>,
    pub position: i64,
    /// When the next revision was recorded (and its position); `null` for the current value.
    pub superseded_at: Option<DateTime<Utc>>,
    pub superseded_position: Option<i64>,
}

impl From<daily_insights::ReportedValue> for ReportedValue {
    fn from(v: daily_insights::ReportedValue) -> Self {
        Self {
            revision: v.revision,
            connection_id: v.connection_id.as_uuid(),
            platform: v.platform,
            ad_account_id: v.ad_account_id,
            currency: v.currency,
            impressions: v.impressions,
            clicks: v.clicks,
            spend: v.spend,
            conversions: v.conversions,
            conversion_value: v.conversion_value,
            sync_id: v.sync_id.as_uuid(),
            recorded_at: v.recorded_at,
            position: v.position,
            superseded_at: v.superseded_at,
            superseded_position: v.superseded_position,
        }
    }
}

/// Every value a campaign-day has had, oldest first: the first report and each restatement,
/// when it was recorded, by which sync, and when the next one replaced it. An empty list for a
/// day never reported (or a campaign of another workspace).
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/insights/history", tag = "insights",
    params(("workspace_id" = Uuid, Path), HistoryParams),
    responses((status = 200, body = Vec<ReportedValue>, headers(("link" = String, description = "`<…>; rel=\"next\"`: the next page, when there is one"))),
              Unauthenticated, Forbidden, NotFound, Invalid, RateLimited))]
async fn insights_history(
    State(state): State<AppState>,
    ws: InWorkspace<ReadInsights>,
    OriginalUri(uri): OriginalUri,
    ApiQuery(params): ApiQuery<HistoryParams>,
) -> Result<Page<ReportedValue>, ApiError> {
    let mut errors = Vec::new();
    if params.campaign_id.is_none() {
        errors.push(FieldError::new("campaign_id", "is required"));
    }
    let date = match params.date.as_deref().map(Day::parse) {
        None => {
            errors.push(FieldError::new("date", "is required (YYYY-MM-DD)"));
            None
        }
        Some(Ok(day)) => Some(day),
        Some(Err(e)) => {
            errors.push(FieldError::new("date", e.to_string()));
            None
        }
    };
    let size = match PageSize::parse(params.limit) {
        Ok(size) => Some(size),
        Err(ApiError::Validation(invalid)) => {
            errors.extend(invalid);
            None
        }
        Err(other) => return Err(other),
    };
    let (Some(campaign), Some(date), Some(size), true) =
        (params.campaign_id, date, size, errors.is_empty())
    else {
        return Err(ApiError::Validation(errors));
    };
    let campaign_id = CampaignId(campaign);
    let date = date.date();
    let scope = Scope::new("insights-history", &(ws.id, campaign_id, date));
    let after_revision = scope.decode::<i32>(params.cursor.as_deref())?;
    let query = HistoryQuery {
        workspace_id: ws.id,
        campaign_id,
        date,
        after_revision,
        limit: size.fetch(),
    };
    let rows = daily_insights::history(state.reads.pool(), &query).await?;
    paging::page(&uri, &scope, size, rows, |v: &ReportedValue| v.revision)
}
