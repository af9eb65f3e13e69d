//! Reads of the read models for the REST API. Results are plain serialisable structs; SQL is
//! assembled only from fixed fragments, with every caller-supplied value bound as a parameter.

use adledger_domain::{CampaignId, ConnectionId, DateRange, MetricTotals, SyncId, WorkspaceId};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkspaceView {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionView {
    pub id: Uuid,
    pub platform: String,
    pub label: String,
    pub status: String,
    pub connected_at: DateTime<Utc>,
    pub last_sync_id: Option<Uuid>,
    pub last_sync_status: Option<String>,
    pub last_synced_at: Option<DateTime<Utc>>,
    /// When the stored access token expires, for platforms that say (Meta's 60-day token must
    /// be renewed by a person before then).
    pub token_expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdAccountView {
    pub connection_id: Uuid,
    /// The platform's own id of the account.
    pub id: String,
    pub name: String,
    pub currency: String,
    pub time_zone: String,
    /// The account's sync cursor: every day up to this one is stored.
    pub synced_through: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CampaignView {
    pub id: Uuid,
    pub connection_id: Uuid,
    pub ad_account_id: String,
    pub external_id: String,
    pub name: String,
    pub status: String,
    pub last_sync_id: Option<Uuid>,
    pub last_sync_status: Option<String>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub synced_through: Option<NaiveDate>,
}

/// Campaigns of a workspace in id order, a page at a time: `after` is the last id already seen.
#[derive(Debug, Clone, Default)]
pub struct CampaignFilter {
    pub connection_id: Option<ConnectionId>,
    pub after: Option<Uuid>,
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncRunView {
    pub id: Uuid,
    pub connection_id: Uuid,
    pub status: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Empty means every campaign of the connection.
    pub campaign_ids: Vec<Uuid>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub days_recorded: i64,
    pub days_restated: i64,
    pub days_unchanged: i64,
    pub error: Option<String>,
    pub progress_through: Option<NaiveDate>,
}

pub async fn get_workspace(
    pool: &PgPool,
    workspace: WorkspaceId,
) -> Result<Option<WorkspaceView>, QueryError> {
    let row: Option<(Uuid, String, DateTime<Utc>)> =
        sqlx::query_as("SELECT id, name, created_at FROM workspaces WHERE id = $1")
            .bind(workspace.as_uuid())
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(id, name, created_at)| WorkspaceView {
        id,
        name,
        created_at,
    }))
}

const CONNECTION_COLUMNS: &str = "id, platform, label, status, connected_at, last_sync_id, \
     last_sync_status, last_synced_at, \
     (SELECT expires_at FROM connection_credentials cc WHERE cc.connection_id = id)";

fn connection_view(row: &PgRow) -> Result<ConnectionView, sqlx::Error> {
    Ok(ConnectionView {
        id: row.try_get(0)?,
        platform: row.try_get(1)?,
        label: row.try_get(2)?,
        status: row.try_get(3)?,
        connected_at: row.try_get(4)?,
        last_sync_id: row.try_get(5)?,
        last_sync_status: row.try_get(6)?,
        last_synced_at: row.try_get(7)?,
        token_expires_at: row.try_get(8)?,
    })
}

pub async fn list_connections(
    pool: &PgPool,
    workspace: WorkspaceId,
) -> Result<Vec<ConnectionView>, QueryError> {
    let sql =
        format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE workspace_id = $1 ORDER BY id");
    let rows = sqlx::query(&sql)
        .bind(workspace.as_uuid())
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(connection_view).collect::<Result<_, _>>()?)
}

pub async fn get_connection(
    pool: &PgPool,
    workspace: WorkspaceId,
    connection: ConnectionId,
) -> Result<Option<ConnectionView>, QueryError> {
    let sql =
        format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE workspace_id = $1 AND id = $2");
    let row = sqlx::query(&sql)
        .bind(workspace.as_uuid())
        .bind(connection.as_uuid())
        .fetch_optional(pool)
        .await?;
    Ok(row.as_ref().map(connection_view).transpose()?)
}

pub async fn list_ad_accounts(
    pool: &PgPool,
    workspace: WorkspaceId,
    connection: Option<ConnectionId>,
) -> Result<Vec<AdAccountView>, QueryError> {
    #[allow(clippy::type_complexity)]
    let rows: Vec<(Uuid, String, String, String, String, Option<NaiveDate>)> = sqlx::query_as(
        "SELECT connection_id, external_id, name, currency, time_zone, synced_through
         FROM ad_accounts
         WHERE workspace_id = $1 AND ($2::uuid IS NULL OR connection_id = $2)
         ORDER BY connection_id, external_id",
    )
    .bind(workspace.as_uuid())
    .bind(connection.map(|c| c.as_uuid()))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(connection_id, id, name, currency, time_zone, synced_through)| AdAccountView {
                connection_id,
                id,
                name,
                currency,
                time_zone,
                synced_through,
            },
        )
        .collect())
}

pub async fn list_campaigns(
    pool: &PgPool,
    workspace: WorkspaceId,
    filter: &CampaignFilter,
) -> Result<Vec<CampaignView>, QueryError> {
    let rows = sqlx::query(
        "SELECT id, connection_id, ad_account_id, external_id, name, status, last_sync_id,
                last_sync_status, last_synced_at, synced_through
         FROM campaigns
         WHERE workspace_id = $1 AND ($2::uuid IS NULL OR connection_id = $2)
           AND ($3::uuid IS NULL OR id > $3)
         ORDER BY id LIMIT $4",
    )
    .bind(workspace.as_uuid())
    .bind(filter.connection_id.map(|c| c.as_uuid()))
    .bind(filter.after)
    .bind(filter.limit.max(0))
    .fetch_all(pool)
    .await?;
    let view = |row: &PgRow| -> Result<CampaignView, sqlx::Error> {
        Ok(CampaignView {
            id: row.try_get(0)?,
            connection_id: row.try_get(1)?,
            ad_account_id: row.try_get(2)?,
            external_id: row.try_get(3)?,
            name: row.try_get(4)?,
            status: row.try_get(5)?,
            last_sync_id: row.try_get(6)?,
            last_sync_status: row.try_get(7)?,
            last_synced_at: row.try_get(8)?,
            synced_through: row.try_get(9)?,
        })
    };
    Ok(rows.iter().map(view).collect::<Result<_, _>>()?)
}

const SYNC_RUN_COLUMNS: &str = "id, connection_id, status, date_from, date_to, campaign_ids, \
     started_at, finished_at, days_recorded, days_restated, days_unchanged, error, \
     progress_through";

fn sync_run_view(row: &PgRow) -> Result<SyncRunView, sqlx::Error> {
    Ok(SyncRunView {
        id: row.try_get(0)?,
        connection_id: row.try_get(1)?,
        status: row.try_get(2)?,
        from: row.try_get(3)?,
        to: row.try_get(4)?,
        campaign_ids: row.try_get(5)?,
        started_at: row.try_get(6)?,
        finished_at: row.try_get(7)?,
        days_recorded: row.try_get(8)?,
        days_restated: row.try_get(9)?,
        days_unchanged: row.try_get(10)?,
        error: row.try_get(11)?,
        progress_through: row.try_get(12)?,
    })
}

pub async fn get_sync_run(
    pool: &PgPool,
    workspace: WorkspaceId,
    sync: SyncId,
) -> Result<Option<SyncRunView>, QueryError> {
    let sql =
        format!("SELECT {SYNC_RUN_COLUMNS} FROM sync_runs WHERE workspace_id = $1 AND id = $2");
    let row = sqlx::query(&sql)
        .bind(workspace.as_uuid())
        .bind(sync.as_uuid())
        .fetch_optional(pool)
        .await?;
    Ok(row.as_ref().map(sync_run_view).transpose()?)
}

/// Runs of one connection, newest first.
pub async fn list_sync_runs(
    pool: &PgPool,
    workspace: WorkspaceId,
    connection: ConnectionId,
) -> Result<Vec<SyncRunView>, QueryError> {
    let sql = format!(
        "SELECT {SYNC_RUN_COLUMNS} FROM sync_runs WHERE workspace_id = $1 AND connection_id = $2
         ORDER BY started_at DESC, id DESC"
    );
    let rows = sqlx::query(&sql)
        .bind(workspace.as_uuid())
        .bind(connection.as_uuid())
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(sync_run_view).collect::<Result<_, _>>()?)
}

/// How insights rows are bucketed in time. Weeks are ISO weeks (starting Monday).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    Day,
    Week,
    Month,
    Total,
}

impl Granularity {
    pub const ALL: [Granularity; 4] = [
        Granularity::Day,
        Granularity::Week,
        Granularity::Month,
        Granularity::Total,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Day => "day",
            Granularity::Week => "week",
            Granularity::Month => "month",
            Granularity::Total => "total",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == raw)
    }

    fn period_sql(self) -> &'static str {
        match self {
            Granularity::Day => "d.date",
            Granularity::Week => "date_trunc('week', d.date)::date",
            Granularity::Month => "date_trunc('month', d.date)::date",
            Granularity::Total => "NULL::date",
        }
    }
}

/// A dimension insights rows are split by (besides currency, which always splits them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Platform,
    AdAccount,
    Campaign,
}

impl GroupBy {
    pub const ALL: [GroupBy; 3] = [GroupBy::Platform, GroupBy::AdAccount, GroupBy::Campaign];

    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Platform => "platform",
            GroupBy::AdAccount => "ad_account",
            GroupBy::Campaign => "campaign",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == raw)
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

/// Totals of one period and group, in one currency. Dimensions not grouped by are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InsightsRow {
    /// The day, the Monday of the ISO week or the first of the month; `None` for the total.
    pub period: Option<NaiveDate>,
    pub platform: Option<String>,
    pub connection_id: Option<Uuid>,
    pub ad_account_id: Option<String>,
    pub campaign_id: Option<Uuid>,
    pub campaign_name: Option<String>,
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

/// The SELECT for one query shape. Only fixed fragments go in; values are parameters.
fn insights_sql(granularity: Granularity, group_by: &[GroupBy]) -> String {
    let platform = group_by.contains(&GroupBy::Platform);
    let account = group_by.contains(&GroupBy::AdAccount);
    let campaign = group_by.contains(&GroupBy::Campaign);
    let pick = |on: bool, expr: &'static str, none: &'static str| if on { expr } else { none };
    let period = granularity.period_sql();
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
        "SELECT {period} AS period, {platform_col}, {connection_col}, {account_col},
                {campaign_col}, {name_col}, d.currency::text,
                sum(d.impressions)::int8, sum(d.clicks)::int8, sum(d.spend),
                sum(d.conversions), sum(d.conversion_value)
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

fn insights_row(row: &PgRow) -> Result<InsightsRow, sqlx::Error> {
    let totals = MetricTotals {
        impressions: row.try_get(7)?,
        clicks: row.try_get(8)?,
        spend: row.try_get(9)?,
        conversions: row.try_get(10)?,
        conversion_value: row.try_get(11)?,
    };
    let derived = totals.derived();
    Ok(InsightsRow {
        period: row.try_get(0)?,
        platform: row.try_get(1)?,
        connection_id: row.try_get(2)?,
        ad_account_id: row.try_get(3)?,
        campaign_id: row.try_get(4)?,
        campaign_name: row.try_get(5)?,
        currency: row.try_get(6)?,
        impressions: totals.impressions,
        clicks: totals.clicks,
        spend: totals.spend,
        conversions: totals.conversions,
        conversion_value: totals.conversion_value,
        ctr: derived.ctr,
        cpc: derived.cpc,
        cpm: derived.cpm,
        cpa: derived.cpa,
        roas: derived.roas,
    })
}

/// Sums of daily insights over a date range, bucketed and grouped as asked; never sums two
/// currencies together.
pub async fn insights(
    pool: &PgPool,
    query: &InsightsQuery,
) -> Result<Vec<InsightsRow>, QueryError> {
    let sql = insights_sql(query.granularity, &query.group_by);
    let campaigns: Vec<Uuid> = query.campaign_ids.iter().map(|c| c.as_uuid()).collect();
    let rows = sqlx::query(&sql)
        .bind(query.workspace_id.as_uuid())
        .bind(query.range.from())
        .bind(query.range.to())
        .bind(query.connection_id.map(|c| c.as_uuid()))
        .bind(&campaigns)
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(insights_row).collect::<Result<_, _>>()?)
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

/// Audit entries of a workspace, newest first, a page at a time: `before` is the last position
/// already seen.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub before: Option<i64>,
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub position: i64,
    pub action: String,
    pub stream_id: String,
    pub actor_kind: String,
    pub actor: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
}

pub async fn list_audit(
    pool: &PgPool,
    workspace: WorkspaceId,
    filter: &AuditFilter,
) -> Result<Vec<AuditEntry>, QueryError> {
    let rows = sqlx::query(
        "SELECT position, action, stream_id, actor_kind, actor, ip, user_agent, request_id,
                occurred_at, recorded_at
         FROM audit_log
         WHERE workspace_id = $1
           AND ($2::text IS NULL OR actor = $2 OR actor_kind = $2)
           AND ($3::text IS NULL OR action = $3)
           AND ($4::timestamptz IS NULL OR occurred_at >= $4)
           AND ($5::timestamptz IS NULL OR occurred_at < $5)
           AND ($6::int8 IS NULL OR position < $6)
         ORDER BY position DESC LIMIT $7",
    )
    .bind(workspace.as_uuid())
    .bind(&filter.actor)
    .bind(&filter.action)
    .bind(filter.from)
    .bind(filter.to)
    .bind(filter.before)
    .bind(filter.limit.max(0))
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(audit_entry).collect::<Result<_, _>>()?)
}

fn audit_entry(row: &PgRow) -> Result<AuditEntry, sqlx::Error> {
    Ok(AuditEntry {
        position: row.try_get(0)?,
        action: row.try_get(1)?,
        stream_id: row.try_get(2)?,
        actor_kind: row.try_get(3)?,
        actor: row.try_get(4)?,
        ip: row.try_get(5)?,
        user_agent: row.try_get(6)?,
        request_id: row.try_get(7)?,
        occurred_at: row.try_get(8)?,
        recorded_at: row.try_get(9)?,
    })
}

/// Every audit entry where this actor acted, in every workspace, oldest first.
pub async fn audit_of_actor(
    pool: &PgPool,
    actor_kind: &str,
    actor: &str,
) -> Result<Vec<AuditEntry>, QueryError> {
    let rows = sqlx::query(
        "SELECT position, action, stream_id, actor_kind, actor, ip, user_agent, request_id,
                occurred_at, recorded_at
         FROM audit_log WHERE actor_kind = $1 AND actor = $2 ORDER BY position",
    )
    .bind(actor_kind)
    .bind(actor)
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(audit_entry).collect::<Result<_, _>>()?)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MembershipView {
    pub workspace_id: Uuid,
    pub workspace_name: String,
    pub role: String,
    pub joined_at: DateTime<Utc>,
}

/// The workspaces a person belongs to, oldest membership first.
pub async fn memberships_of(
    pool: &PgPool,
    user: adledger_domain::UserId,
) -> Result<Vec<MembershipView>, QueryError> {
    let rows = sqlx::query(
        "SELECT m.workspace_id, w.name, m.role, m.joined_at
         FROM workspace_members m JOIN workspaces w ON w.id = m.workspace_id
         WHERE m.user_id = $1 ORDER BY m.joined_at, m.workspace_id",
    )
    .bind(user.as_uuid())
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| MembershipView {
            workspace_id: r.get(0),
            workspace_name: r.get(1),
            role: r.get(2),
            joined_at: r.get(3),
        })
        .collect())
}
