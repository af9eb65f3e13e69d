//! Insights: daily numbers summed by period and by platform, ad account or campaign, a page of
//! rows at a time (every answer is bounded, however long the range or fine the grouping).

use crate::access::{InWorkspace, ReadInsights};
use crate::error::{ApiError, FieldError};
use crate::extract::ApiQuery;
use crate::paging::{Bounds, NextLink, PageSize, Scope};
use crate::responses::{Forbidden, Invalid, NotFound, RateLimited, Unauthenticated};
use crate::AppState;
use adledger_domain::{AsOf, CampaignId, ConnectionId, DateRange, Day, WorkspaceId};
use adledger_infra::EventStore;
use adledger_projections::daily_insights::{
    self, Granularity, GroupBy, InsightsKey, InsightsQuery,
};
use axum::body::Body;
use axum::extract::{OriginalUri, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

/// Rows per page: 1 to 5,000, 1,000 unless the query says (a page of 1,000 rows is about 500 kB
/// of JSON).
pub const PAGES: Bounds = Bounds {
    default: 1_000,
    max: 5_000,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_insights))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InsightsParams {
    /// First day, `YYYY-MM-DD` (the ad account's local date), 2000-01-01 to 2099-12-31.
    #[param(required = true, value_type = String, format = Date, pattern = r"^20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]
    from: Option<String>,
    /// Last day, inclusive, `YYYY-MM-DD`, 2000-01-01 to 2099-12-31; at most 1,098 days after
    /// `from`.
    #[param(required = true, value_type = String, format = Date, pattern = r"^20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]
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
    /// Rows per page, 1 to 5,000 (default 1,000).
    #[param(minimum = 1, maximum = 5000)]
    limit: Option<i64>,
    /// Where the page starts: the previous page's `next_cursor`, with the same other parameters.
    /// Absent: the first page.
    #[param(max_length = 1024)]
    cursor: Option<String>,
    /// The numbers as reported at that point, before any later restatement: an RFC 3339 time
    /// (values recorded by then) or a log position (values up to it). Absent: the latest.
    #[param(schema_with = crate::schemas::as_of)]
    as_of: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InsightsResponse {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub granularity: String,
    pub group_by: Vec<String>,
    /// In order of period, then platform, connection and ad account, campaign, currency.
    pub rows: Vec<InsightsRow>,
    /// Pass as `cursor` (with the same other parameters) for the next page; `null` on the last
    /// page. Also in `Link: <…>; rel="next"`.
    pub next_cursor: Option<String>,
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

fn parse_day(field: &str, raw: Option<&str>, errors: &mut Vec<FieldError>) -> Option<Day> {
    let message = match raw.map(Day::parse) {
        None => "is required (YYYY-MM-DD)".to_owned(),
        Some(Ok(day)) => return Some(day),
        Some(Err(e)) => e.to_string(),
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

/// The query of one page, its page size and the scope of its cursors.
fn parse(
    workspace_id: WorkspaceId,
    p: &InsightsParams,
) -> Result<(InsightsQuery, PageSize, Scope), ApiError> {
    let mut errors = Vec::new();
    let from = parse_day("from", p.from.as_deref(), &mut errors);
    let to = parse_day("to", p.to.as_deref(), &mut errors);
    let size = match PageSize::within(p.limit, PAGES) {
        Ok(size) => Some(size),
        Err(ApiError::Validation(invalid)) => {
            errors.extend(invalid);
            None
        }
        Err(other) => return Err(other),
    };
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
    campaign_ids.sort();
    campaign_ids.dedup();
    let as_of = match p.as_of.as_deref().map(AsOf::parse) {
        None => None,
        Some(Ok(as_of)) => Some(as_of),
        Some(Err(message)) => {
            errors.push(FieldError::new("as_of", message));
            None
        }
    };
    let range = match (from, to) {
        (Some(from), Some(to)) => match DateRange::between(from, to) {
            Ok(r) => Some(r),
            Err(e) => {
                errors.push(FieldError::new("to", e.to_string()));
                None
            }
        },
        _ => None,
    };
    let (Some(range), Some(granularity), Some(size), true) =
        (range, granularity, size, errors.is_empty())
    else {
        return Err(ApiError::Validation(errors));
    };
    let connection_id = p.connection_id.map(ConnectionId);
    // Every parameter but the page's own shapes the rows, so a cursor holds for them only
    // (whatever the order they were listed in).
    let mut grouped = group_by.clone();
    grouped.sort();
    let scope = Scope::new(
        "insights",
        &(
            workspace_id,
            range,
            granularity,
            grouped,
            connection_id,
            &campaign_ids,
            as_of,
        ),
    );
    let after = scope.decode::<InsightsKey>(p.cursor.as_deref())?;
    let query = InsightsQuery {
        workspace_id,
        range,
        granularity,
        group_by,
        connection_id,
        campaign_ids,
        after,
        limit: size.fetch(),
        as_of,
    };
    Ok((query, size, scope))
}

/// Impressions, clicks, spend, conversions and conversion value with CTR, CPC, CPM, CPA and ROAS,
/// per period and group, per currency, a page of rows at a time: follow `next_cursor` until it is
/// `null`. With `as_of`, exactly what this query answered at that time or log position (the
/// values as reported then; campaign names are today's). With `Accept: application/x-ndjson`, every row (from `cursor`, when given) streams
/// instead, one JSON row per line, read a page at a time: the server's memory stays flat.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/insights", tag = "insights",
    params(("workspace_id" = Uuid, Path), InsightsParams),
    responses((status = 200,
               content((InsightsResponse = "application/json"),
                       (InsightsRow = "application/x-ndjson")),
               headers(("link" = String, description = "`<…>; rel=\"next\"`: the next page, when there is one (JSON only)"))),
              Unauthenticated, Forbidden, NotFound, Invalid, RateLimited))]
async fn get_insights(
    State(state): State<AppState>,
    ws: InWorkspace<ReadInsights>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<InsightsParams>,
) -> Result<Response, ApiError> {
    let (mut query, size, scope) = parse(ws.id, &params)?;
    if wants_ndjson(&headers) {
        query.limit = STREAM_PAGE;
        return stream(state.reads, query).await;
    }
    let rows = daily_insights::insights(state.reads.pool(), &query).await?;
    let (rows, next) = size.cut(rows, daily_insights::InsightsRow::key);
    let next_cursor = next.map(|key| scope.encode(&key)).transpose()?;
    Ok((
        NextLink::new(&uri, "cursor", next_cursor.as_deref()),
        Json(InsightsResponse {
            from: query.range.from(),
            to: query.range.to(),
            granularity: query.granularity.as_str().to_owned(),
            group_by: query
                .group_by
                .iter()
                .map(|g| g.as_str().to_owned())
                .collect(),
            rows: rows.into_iter().map(InsightsRow::from).collect(),
            next_cursor,
        }),
    )
        .into_response())
}

/// Rows read per query of a stream.
const STREAM_PAGE: i64 = 5_000;

/// Whether the client asks for NDJSON rather than JSON.
fn wants_ndjson(headers: &HeaderMap) -> bool {
    let accepts = |media: &str| {
        headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains(media))
    };
    accepts("application/x-ndjson") && !accepts("application/json")
}

/// Every row of `query` from its `after`, as NDJSON. Each page is its own query (under the
/// statement timeout of reads) from after the last row sent, so nothing is held but one page;
/// a client that goes away stops it at the next page. The first page is read before answering,
/// so that a failure then is still a problem answer, not a cut stream.
async fn stream(reads: EventStore, query: InsightsQuery) -> Result<Response, ApiError> {
    let first = daily_insights::insights(reads.pool(), &query).await?;
    let pages = futures_util::stream::unfold((Some(first), query), move |(page, mut query)| {
        let reads = reads.clone();
        async move {
            let rows = match page {
                Some(rows) => rows,
                None => match daily_insights::insights(reads.pool(), &query).await {
                    Ok(rows) => rows,
                    Err(e) => {
                        tracing::error!(error = %e, "insights stream failed mid-way");
                        let failed = Err(std::io::Error::other("reading insights failed"));
                        return Some((failed, (Some(Vec::new()), query)));
                    }
                },
            };
            let last = rows.last()?.key();
            let more = rows.len() as i64 >= query.limit;
            let mut out = Vec::with_capacity(rows.len() * 400);
            for row in rows {
                if let Err(e) = serde_json::to_writer(&mut out, &InsightsRow::from(row)) {
                    let failed = Err(std::io::Error::other(e));
                    return Some((failed, (Some(Vec::new()), query)));
                }
                out.push(b'\n');
            }
            query.after = Some(last);
            // An empty page ends the stream: after the last full one, or after a failure.
            let next = if more { None } else { Some(Vec::new()) };
            Some((Ok(bytes::Bytes::from(out)), (next, query)))
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(pages),
    )
        .into_response())
}
