//! Reads of insights as reported: every value one campaign-day has had, oldest first, with when
//! each was recorded, by which sync, and when the next one replaced it; a page at a time (a day
//! restated without end still answers in bounded pages). Nothing here writes.

use crate::QueryError;
use adledger_domain::{CampaignId, ConnectionId, SyncId, WorkspaceId};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgPool;

#[derive(Debug, Clone)]
pub struct HistoryQuery {
    pub workspace_id: WorkspaceId,
    pub campaign_id: CampaignId,
    pub date: NaiveDate,
    /// Only revisions after this one (the last of the previous page).
    pub after_revision: Option<i32>,
    /// At most this many values.
    pub limit: i64,
}

/// One value a campaign-day had: its numbers, and the span of the log it was the current one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ReportedValue {
    /// 1 for the first report, +1 for each restatement.
    pub revision: i32,
    #[sqlx(try_from = "uuid::Uuid")]
    pub connection_id: ConnectionId,
    pub platform: String,
    pub ad_account_id: String,
    pub currency: String,
    pub impressions: i64,
    pub clicks: i64,
    pub spend: Decimal,
    pub conversions: Decimal,
    pub conversion_value: Decimal,
    /// The sync run that reported it.
    #[sqlx(try_from = "uuid::Uuid")]
    pub sync_id: SyncId,
    pub recorded_at: DateTime<Utc>,
    pub position: i64,
    /// When the next revision replaced it; `None` while it is the current value.
    pub superseded_at: Option<DateTime<Utc>>,
    pub superseded_position: Option<i64>,
}

/// The values of one campaign-day of one workspace, by revision, after `after_revision`.
/// Another workspace's campaign has no values here (the workspace is part of the filter).
pub async fn history(
    pool: &PgPool,
    query: &HistoryQuery,
) -> Result<Vec<ReportedValue>, QueryError> {
    let rows = sqlx::query_as(
        "SELECT revision, connection_id, platform, ad_account_id, currency::text AS currency,
                impressions, clicks, spend, conversions, conversion_value, sync_id, recorded_at,
                position, superseded_at, superseded_position
         FROM daily_insights_history
         WHERE campaign_id = $1 AND date = $2 AND workspace_id = $3 AND revision > $4
         ORDER BY revision LIMIT $5",
    )
    .bind(query.campaign_id.as_uuid())
    .bind(query.date)
    .bind(query.workspace_id.as_uuid())
    .bind(query.after_revision.unwrap_or(0))
    .bind(query.limit.max(0))
    .fetch_all(pool)
    .await?;
    Ok(rows)
}
