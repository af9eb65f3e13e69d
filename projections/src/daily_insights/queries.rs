//! Reads of daily insights for the REST API: sums over a date range, bucketed by day, ISO week,
//! month or in total, split by the dimensions asked for and always by currency (two currencies
//! are never summed together), a page at a time: rows come in one total order (period, then the
//! grouped dimensions, then currency) and a page starts after the [`InsightsKey`] of the previous
//! page's last row, so concatenated pages are exactly the whole answer. With `as_of`, the same
//! sums are taken over the values as reported then (`daily_insights_history`: the revision of
//! each day recorded by then and not yet replaced by then). SQL is assembled from
//! fixed fragments only; every caller-supplied value is a bound parameter. Nothing here writes.

use crate::QueryError;
use adledger_domain::{
    AdAccountId, AsOf, CampaignId, ConnectionId, DateRange, MetricTotals, WorkspaceId,
};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
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
    /// Only rows after this one (the last row of the previous page).
    pub after: Option<InsightsKey>,
    /// At most this many rows.
    pub limit: i64,
    /// The numbers as reported at this time or log position; `None`: the latest.
    pub as_of: Option<AsOf>,
}

/// Where a row sits in the order of the answer: its period and grouped dimensions (`None` when
/// not grouped by) and its currency. No two rows of one answer share a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InsightsKey {
    pub period: Option<NaiveDate>,
    pub platform: Option<String>,
    pub connection_id: Option<uuid::Uuid>,
    pub ad_account_id: Option<String>,
    pub campaign_id: Option<uuid::Uuid>,
    pub currency: String,
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
    /// The row's place in the order of the answer, to start the next page after it.
    pub fn key(&self) -> InsightsKey {
        InsightsKey {
            period: self.period,
            platform: self.platform.clone(),
            connection_id: self.connection_id.map(|c| c.as_uuid()),
            ad_account_id: self.ad_account_id.as_ref().map(|a| a.0.clone()),
            campaign_id: self.campaign_id.map(|c| c.as_uuid()),
            currency: self.currency.clone(),
        }
    }

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

/// The SELECT for one query shape. Only fixed fragments go in; values are parameters: `$1` to `$5`
/// the filters, `$6` to `$11` the key to start after (`after`: only the grouped parts are
/// compared, since the others are NULL in every row), `$12` the limit, `$13`/`$14` the time or
/// position of `as_of`.
fn insights_sql(
    granularity: Granularity,
    group_by: &[GroupBy],
    after: bool,
    as_of: Option<AsOf>,
) -> String {
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
    // The key of a row is computed from each of its days alone, so comparing it before grouping
    // keeps or drops whole groups: the sums of the rows kept are those of the whole answer.
    let mut key: Vec<(&str, &str)> = Vec::new();
    if granularity != Granularity::Total {
        key.push((period, "$6"));
    }
    if platform {
        key.push(("d.platform", "$7"));
    }
    if account {
        key.extend([("d.connection_id", "$8"), ("d.ad_account_id", "$9")]);
    }
    if campaign {
        key.push(("d.campaign_id", "$10"));
    }
    key.push(("d.currency::text", "$11"));
    let after = if after {
        let (columns, values): (Vec<&str>, Vec<&str>) = key.into_iter().unzip();
        // Every period of the page starts on or after the cursor's, so no earlier day counts:
        // a bound the (workspace_id, date) index can use.
        let since = if granularity == Granularity::Total {
            ""
        } else {
            "AND d.date >= $6 "
        };
        format!(
            "{since}AND ({}) > ({})",
            columns.join(", "),
            values.join(", ")
        )
    } else {
        // The parameters are bound whatever the shape; naming them keeps their types known.
        "AND $6::date IS NULL AND $7::text IS NULL AND $8::uuid IS NULL AND $9::text IS NULL \
         AND $10::uuid IS NULL AND $11::text IS NULL"
            .to_owned()
    };
    // A revision counts as of a point when it was recorded by then and not yet replaced then.
    let (table, as_of) = match as_of {
        None => (
            "daily_insights",
            "AND $13::timestamptz IS NULL AND $14::int8 IS NULL",
        ),
        Some(AsOf::Time(_)) => (
            "daily_insights_history",
            "AND $14::int8 IS NULL AND d.recorded_at <= $13::timestamptz \
             AND (d.superseded_at IS NULL OR d.superseded_at > $13::timestamptz)",
        ),
        Some(AsOf::Position(_)) => (
            "daily_insights_history",
            "AND $13::timestamptz IS NULL AND d.position <= $14::int8 \
             AND (d.superseded_position IS NULL OR d.superseded_position > $14::int8)",
        ),
    };
    format!(
        "SELECT {period} AS period, {platform_col} AS platform, {connection_col} AS connection_id,
                {account_col} AS ad_account_id, {campaign_col} AS campaign_id,
                {name_col} AS campaign_name, d.currency::text AS currency,
                sum(d.impressions)::int8 AS impressions, sum(d.clicks)::int8 AS clicks,
                sum(d.spend) AS spend, sum(d.conversions) AS conversions,
                sum(d.conversion_value) AS conversion_value
         FROM {table} d {join}
         WHERE d.workspace_id = $1 AND d.date BETWEEN $2 AND $3 {as_of}
           AND ($4::uuid IS NULL OR d.connection_id = $4)
           AND (cardinality($5::uuid[]) = 0 OR d.campaign_id = ANY ($5::uuid[]))
           {after}
         GROUP BY {group}
         ORDER BY 1, 2, 3, 4, 5, 7
         LIMIT $12",
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

/// Sums of daily insights over a date range, bucketed and grouped as asked, in the answer's
/// order from after `query.after`, at most `query.limit` rows; never sums two currencies
/// together.
pub async fn insights(
    pool: &PgPool,
    query: &InsightsQuery,
) -> Result<Vec<InsightsRow>, QueryError> {
    let after = query.after.as_ref();
    let sql = insights_sql(
        query.granularity,
        &query.group_by,
        after.is_some(),
        query.as_of,
    );
    let campaigns: Vec<Uuid> = query.campaign_ids.iter().map(|c| c.as_uuid()).collect();
    let rows: Vec<InsightsRow> = sqlx::query_as(&sql)
        .bind(query.workspace_id.as_uuid())
        .bind(query.range.from())
        .bind(query.range.to())
        .bind(query.connection_id.map(|c| c.as_uuid()))
        .bind(&campaigns)
        .bind(after.and_then(|k| k.period))
        .bind(after.and_then(|k| k.platform.as_deref()))
        .bind(after.and_then(|k| k.connection_id))
        .bind(after.and_then(|k| k.ad_account_id.as_deref()))
        .bind(after.and_then(|k| k.campaign_id))
        .bind(after.map(|k| k.currency.as_str()))
        .bind(query.limit.max(0))
        .bind(query.as_of.and_then(|a| a.time()))
        .bind(query.as_of.and_then(|a| a.position()))
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
        for after in [false, true] {
            assert_eq!(
                insights_sql(
                    Granularity::Week,
                    &[GroupBy::Campaign, GroupBy::Campaign],
                    after,
                    None
                ),
                insights_sql(Granularity::Week, &[GroupBy::Campaign], after, None)
            );
        }
    }
}
