//! Insights: daily numbers summed by period and by platform, ad account or campaign.

use crate::access::{InWorkspace, ReadInsights};
use crate::error::{ApiError, FieldError};
use crate::extract::ApiQuery;
use crate::responses::{Forbidden, Invalid, NotFound, RateLimited, Unauthenticated};
use crate::AppState;
use adledger_domain::{CampaignId, ConnectionId, DateRange, WorkspaceId};
use adledger_projections::daily_insights::{self, Granularity, GroupBy, InsightsQuery};
use axum::extract::State;
use axum::Json;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_insights))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InsightsParams {
    /// First day, `YYYY-MM-DD` (the ad account's local date).
    #[param(required = true, format = Date)]
    from: Option<String>,
    /// Last day, inclusive.
    #[param(required = true, format = Date)]
    to: Option<String>,
    /// `day` (default), `week` (ISO weeks from Monday), `month` or `total`.
    #[param(schema_with = crate::schemas::granularity)]
    granularity: Option<String>,
    /// Comma-separated: `platform`, `ad_account`, `campaign`.
    #[param(schema_with = crate::schemas::group_by)]
    group_by: Option<String>,
    connection_id: Option<Uuid>,
    /// Comma-separated campaign ids.
    #[param(schema_with = crate::schemas::comma_separated_uuids)]
    campaign_ids: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InsightsResponse {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub granularity: String,
    pub group_by: Vec<String>,
    pub rows: Vec<InsightsRow>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InsightsRow {
    /// First day of the period (the day, the ISO week's Monday, the month's first day); absent
    /// for `granularity=total`.
    pub period: Option<NaiveDate>,
    pub platform: Option<String>,
    pub connection_id: Option<Uuid>,
    pub ad_account_id: Option<String>,
    pub campaign_id: Option<Uuid>,
    pub campaign_name: Option<String>,
    /// ISO 4217; amounts in different currencies are never summed together.
    pub currency: String,
    pub impressions: i64,
    pub clicks: i64,
    pub spend: Decimal,
    pub conversions: Decimal,
    pub conversion_value: Decimal,
    pub ctr: Option<Decimal>,
    pub cpc: Option<Decimal>,
    pub cpm: Option<Decimal>,
    pub cpa: Option<Decimal>,
    pub roas: Option<Decimal>,
}

impl From<daily_insights::InsightsRow> for InsightsRow {
    fn from(v: daily_insights::InsightsRow) -> Self {
        Self {
            period: v.period,
            platform: v.platform,
            connection_id: v.connection_id.map(|c| c.as_uuid()),
            ad_account_id: v.ad_account_id.map(|a| a.0),
            campaign_id: v.campaign_id.map(|c| c.as_uuid()),
            campaign_name: v.campaign_name,
            currency: v.currency,
            impressions: v.impressions,
            clicks: v.clicks,
            spend: v.spend,
            conversions: v.conversions,
            conversion_value: v.conversion_value,
            ctr: v.ctr,
            cpc: v.cpc,
            cpm: v.cpm,
            cpa: v.cpa,
            roas: v.roas,
        }
    }
}

fn parse_date(field: &str, raw: Option<&str>, errors: &mut Vec<FieldError>) -> Option<NaiveDate> {
    let message = match raw {
        None => "is required (YYYY-MM-DD)".to_owned(),
        Some(raw) => match NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
            Ok(d) => return Some(d),
            Err(_) => format!("{raw:?} is not a date (YYYY-MM-DD)"),
        },
    };
    errors.push(FieldError::new(field, message));
    None
}

/// The items of a comma-separated query parameter, blanks dropped.
fn comma_separated(raw: Option<&str>) -> impl Iterator<Item = &str> {
    raw.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn parse(workspace_id: WorkspaceId, p: &InsightsParams) -> Result<InsightsQuery, ApiError> {
    let mut errors = Vec::new();
    let from = parse_date("from", p.from.as_deref(), &mut errors);
    let to = parse_date("to", p.to.as_deref(), &mut errors);
    let granularity = match p.granularity.as_deref() {
        None => Some(Granularity::Day),
        Some(raw) => Granularity::parse(raw).or_else(|| {
            errors.push(FieldError::new(
                "granularity",
                format!("{raw:?} is not one of day, week, month, total"),
            ));
            None
        }),
    };
    let mut group_by = Vec::new();
    for raw in comma_separated(p.group_by.as_deref()) {
        match GroupBy::parse(raw) {
            Some(g) if !group_by.contains(&g) => group_by.push(g),
            Some(_) => {}
            None => errors.push(FieldError::new(
                "group_by",
                format!("{raw:?} is not one of platform, ad_account, campaign"),
            )),
        }
    }
    let mut campaign_ids = Vec::new();
    for raw in comma_separated(p.campaign_ids.as_deref()) {
        match Uuid::parse_str(raw) {
            Ok(id) => campaign_ids.push(CampaignId(id)),
            Err(_) => errors.push(FieldError::new(
                "campaign_ids",
                format!("{raw:?} is not a campaign id"),
            )),
        }
    }
    let range = match (from, to) {
        (Some(from), Some(to)) => match DateRange::new(from, to) {
            Ok(r) => Some(r),
            Err(e) => {
                errors.push(FieldError::new("to", e.to_string()));
                None
            }
        },
        _ => None,
    };
    match (range, granularity) {
        (Some(range), Some(granularity)) if errors.is_empty() => Ok(InsightsQuery {
            workspace_id,
            range,
            granularity,
            group_by,
            connection_id: p.connection_id.map(ConnectionId),
            campaign_ids,
        }),
        _ => Err(ApiError::Validation(errors)),
    }
}

/// Impressions, clicks, spend, conversions and conversion value with CTR, CPC, CPM, CPA and ROAS,
/// per period and group, per currency.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/insights", tag = "insights",
    params(("workspace_id" = Uuid, Path), InsightsParams),
    responses((status = 200, body = InsightsResponse),
              Unauthenticated, Forbidden, NotFound, Invalid, RateLimited))]
async fn get_insights(
    State(state): State<AppState>,
    ws: InWorkspace<ReadInsights>,
    ApiQuery(params): ApiQuery<InsightsParams>,
) -> Result<Json<InsightsResponse>, ApiError> {
    let query = parse(ws.id, &params)?;
    let rows = daily_insights::insights(state.store.pool(), &query).await?;
    Ok(Json(InsightsResponse {
        from: query.range.from(),
        to: query.range.to(),
        granularity: query.granularity.as_str().to_owned(),
        group_by: query
            .group_by
            .iter()
            .map(|g| g.as_str().to_owned())
            .collect(),
        rows: rows.into_iter().map(InsightsRow::from).collect(),
    }))
}
