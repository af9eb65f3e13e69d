//! Insights: daily numbers summed by period and by platform, ad account or campaign.

use crate::caller::Caller;
use crate::dto::InsightsRow;
use crate::error::{ApiError, FieldError, Problem};
use crate::extract::{ApiPath, ApiQuery};
use crate::AppState;
use adledger_domain::Permission;
use adledger_domain::{CampaignId, ConnectionId, DateRange, WorkspaceId};
use adledger_projections::daily_insights::{self, Granularity, GroupBy, InsightsQuery};
use axum::extract::State;
use axum::Json;
use chrono::NaiveDate;
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
    from: Option<String>,
    /// Last day, inclusive.
    to: Option<String>,
    /// `day` (default), `week` (ISO weeks from Monday), `month` or `total`.
    granularity: Option<String>,
    /// Comma-separated: `platform`, `ad_account`, `campaign`.
    group_by: Option<String>,
    connection_id: Option<Uuid>,
    /// Comma-separated campaign ids.
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

fn parse_date(field: &str, raw: Option<&str>, errors: &mut Vec<FieldError>) -> Option<NaiveDate> {
    let push = |errors: &mut Vec<FieldError>, message: String| {
        errors.push(FieldError {
            field: field.into(),
            message,
        })
    };
    match raw {
        None => {
            push(errors, "is required (YYYY-MM-DD)".into());
            None
        }
        Some(raw) => match NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                push(errors, format!("{raw:?} is not a date (YYYY-MM-DD)"));
                None
            }
        },
    }
}

fn parse(workspace_id: Uuid, p: &InsightsParams) -> Result<InsightsQuery, ApiError> {
    let mut errors = Vec::new();
    let from = parse_date("from", p.from.as_deref(), &mut errors);
    let to = parse_date("to", p.to.as_deref(), &mut errors);
    let granularity = match p.granularity.as_deref() {
        None => Some(Granularity::Day),
        Some(raw) => Granularity::parse(raw).or_else(|| {
            errors.push(FieldError {
                field: "granularity".into(),
                message: format!("{raw:?} is not one of day, week, month, total"),
            });
            None
        }),
    };
    let mut group_by = Vec::new();
    for raw in p
        .group_by
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match GroupBy::parse(raw) {
            Some(g) if !group_by.contains(&g) => group_by.push(g),
            Some(_) => {}
            None => errors.push(FieldError {
                field: "group_by".into(),
                message: format!("{raw:?} is not one of platform, ad_account, campaign"),
            }),
        }
    }
    let mut campaign_ids = Vec::new();
    for raw in p
        .campaign_ids
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match Uuid::parse_str(raw) {
            Ok(id) => campaign_ids.push(CampaignId(id)),
            Err(_) => errors.push(FieldError {
                field: "campaign_ids".into(),
                message: format!("{raw:?} is not a campaign id"),
            }),
        }
    }
    let range = match (from, to) {
        (Some(from), Some(to)) => match DateRange::new(from, to) {
            Ok(r) => Some(r),
            Err(e) => {
                errors.push(FieldError {
                    field: "to".into(),
                    message: e.to_string(),
                });
                None
            }
        },
        _ => None,
    };
    match (range, granularity) {
        (Some(range), Some(granularity)) if errors.is_empty() => Ok(InsightsQuery {
            workspace_id: WorkspaceId(workspace_id),
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
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn get_insights(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(workspace_id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<InsightsParams>,
) -> Result<Json<InsightsResponse>, ApiError> {
    let query = parse(workspace_id, &params)?;
    caller
        .authorize(&state, workspace_id, Permission::ReadInsights)
        .await?;
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
