//! Reads of daily insights for the REST API: sums over a date range, bucketed by day, ISO week,
//! month or in total, split by the dimensions asked for and always by currency (two currencies
//! are never summed together). SQL is assembled from fixed fragments only; every caller-supplied
//! value is a bound parameter. Nothing here writes.

use crate::QueryError;
use adledger_domain::{
    AdAccountId, CampaignId, ConnectionId, DateRange, MetricTotals, WorkspaceId,
};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

adledger_domain::named_enum! {
    /// How insights rows are bucketed in time. Weeks are ISO weeks (starting Monday).
    pub enum Granularity {
        Day => "day",
        Week => "week",
        Month => "month",
        Total => "total",
    }
}

impl Granularity {
    fn period_sql(self) -> &'static str {
        match self {
            Granularity::Day => "d.date",
            Granularity::Week => "date_trunc('week', d.date)::date",
            Granularity::Month => "date_trunc('month', d.date)::date",
            Granularity::Total => "NULL::date",
        }
    }
}

adledger_domain::named_enum! {
    /// A dimension insights rows are split by (besides currency, which always splits them).
    pub enum GroupBy {
        Platform => "platform",
        AdAccount => "ad_account",
        Campaign => "campaign",
    }
}

#[derive(Debug, Clone)]
pub struct InsightsQuery {
    pub workspace_id: WorkspaceId,
    pub range: DateRange,
    pub granularity: Granularity,
    /// Duplicates are ignored; order does not matter.
    pub group_by: Vec<GroupBy>,
    pub connection_id: Option<ConnectionId>,
    /// Empty means every campaign.
    pub campaign_ids: Vec<CampaignId>,
}

/// Totals of one period and group, in one currency. Dimensions not grouped by are `None`. The
/// database sums; the ratios are derived from the sums in Rust, as everywhere else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct InsightsRow {
    /// The day, the Monday of the ISO week or the first of the month; `None` for the total.
    pub period: Option<NaiveDate>,
    pub platform: Option<String>,
    #[sqlx(try_from = "crate::columns::NullableUuid")]
    pub connection_id: Option<ConnectionId>,
    #[sqlx(try_from = "crate::columns::NullableText")]
    pub ad_account_id: Option<AdAccountId>,
    #[sqlx(try_from = "crate::columns::NullableUuid")]
    pub campaign_id: Option<CampaignId>,
    pub campaign_name: Option<String>,
    pub currency: String,
    pub impressions: i64,
    pub clicks: i64,
    pub spend: Decimal,
    pub conversions: Decimal,
    pub conversion_value: Decimal,
    #[sqlx(skip)]
    pub ctr: Option<Decimal>,
    #[sqlx(skip)]
    pub cpc: Option<Decimal>,
    #[sqlx(skip)]
    pub cpm: Option<Decimal>,
    #[sqlx(skip)]
    pub cpa: Option<Decimal>,
    #[sqlx(skip)]
    pub roas: Option<Decimal>,
}

impl InsightsRow {
    /// Fills in the ratios from the totals.
    fn derive_ratios(mut self) -> Self {
        let derived = MetricTotals {
            impressions: self.impressions,
            clicks: self.clicks,
            spend: self.spend,
            conversions: self.conversions,
            conversion_value: self.conversion_value,
        }
        .derived();
        self.ctr = derived.ctr;
        self.cpc = derived.cpc;
        self.cpm = derived.cpm;
        self.cpa = derived.cpa;
        self.roas = derived.roas;
        self
    }
}

/// The SELECT for one query shape. Only fixed fragments go in; values are parameters.
fn insights_sql(granularity: Granularity, group_by: &[GroupBy]) -> String {
    let platform = group_by.contains(&GroupBy::Platform);
    let account = group_by.contains(&GroupBy::AdAccount);
    let campaign = group_by.contains(&GroupBy::Campaign);
    let pick = |on: bool, expr: &'static str, none: &'static str| if on { expr } else { none };
    let period = granularity.period_sql();
    // Grouped and ordered by select-list position: the joined campaigns share column names
    // with daily_insights, and GROUP BY would read a bare name as theirs.
    let mut group = vec!["1", "7"];
    if platform {
        group.push("2");
    }
    if account {
        group.extend(["3", "4"]);
    }
    if campaign {
        group.extend(["5", "6"]);
    }
    format!(
        "SELECT {period} AS period, {platform_col} AS platform, {connection_col} AS connection_id,
                {account_col} AS ad_account_id, {campaign_col} AS campaign_id,
                {name_col} AS campaign_name, d.currency::text AS currency,
                sum(d.impressions)::int8 AS impressions, sum(d.clicks)::int8 AS clicks,
                sum(d.spend) AS spend, sum(d.conversions) AS conversions,
                sum(d.conversion_value) AS conversion_value
         FROM daily_insights d {join}
         WHERE d.workspace_id = $1 AND d.date BETWEEN $2 AND $3
           AND ($4::uuid IS NULL OR d.connection_id = $4)
           AND (cardinality($5::uuid[]) = 0 OR d.campaign_id = ANY ($5::uuid[]))
         GROUP BY {group}
         ORDER BY 1, 2, 3, 4, 5, 7",
        platform_col = pick(platform, "d.platform", "NULL::text"),
        connection_col = pick(account, "d.connection_id", "NULL::uuid"),
        account_col = pick(account, "d.ad_account_id", "NULL::text"),
        campaign_col = pick(campaign, "d.campaign_id", "NULL::uuid"),
        name_col = pick(campaign, "c.name", "NULL::text"),
        join = pick(
            campaign,
            "LEFT JOIN campaigns c ON c.id = d.campaign_id",
            ""
        ),
        group = group.join(", "),
    )
}

/// Sums of daily insights over a date range, bucketed and grouped as asked; never sums two
/// currencies together.
pub async fn insights(
    pool: &PgPool,
    query: &InsightsQuery,
) -> Result<Vec<InsightsRow>, QueryError> {
    let sql = insights_sql(query.granularity, &query.group_by);
    let campaigns: Vec<Uuid> = query.campaign_ids.iter().map(|c| c.as_uuid()).collect();
    let rows: Vec<InsightsRow> = sqlx::query_as(&sql)
        .bind(query.workspace_id.as_uuid())
        .bind(query.range.from())
        .bind(query.range.to())
        .bind(query.connection_id.map(|c| c.as_uuid()))
        .bind(&campaigns)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(InsightsRow::derive_ratios).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_parse_their_own_names_only() {
        for g in Granularity::ALL {
            assert_eq!(Granularity::parse(g.as_str()), Some(g));
            assert_eq!(
                serde_json::to_value(g).unwrap(),
                serde_json::json!(g.as_str())
            );
        }
        for g in GroupBy::ALL {
            assert_eq!(GroupBy::parse(g.as_str()), Some(g));
            assert_eq!(
                serde_json::to_value(g).unwrap(),
                serde_json::json!(g.as_str())
            );
        }
        assert_eq!(Granularity::parse("Week"), None);
        assert_eq!(GroupBy::parse("account"), None);
    }

    #[test]
    fn grouping_twice_by_one_dimension_changes_nothing() {
        assert_eq!(
            insights_sql(Granularity::Week, &[GroupBy::Campaign, GroupBy::Campaign]),
            insights_sql(Granularity::Week, &[GroupBy::Campaign])
        );
    }
}
