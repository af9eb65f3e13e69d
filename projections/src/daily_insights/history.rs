//! Writes `daily_insights_history`: every report of a campaign-day as one row per revision, with
//! when and by which sync it was recorded, and when the next revision replaced it. Rows are
//! inserted once (keyed by revision, so a replay inserts nothing) and a row's `superseded_*`
//! columns are set once, from NULL, by the next revision: the table never loses a value.

use super::{Columns, Report};
use crate::ProjectionError;
use sqlx::PgConnection;

const INSERT: &str = "
    INSERT INTO daily_insights_history (campaign_id, date, revision, workspace_id, connection_id,
        platform, ad_account_id, currency, impressions, clicks, spend, conversions,
        conversion_value, sync_id, recorded_at, position)
    SELECT * FROM UNNEST($1::uuid[], $2::date[], $3::int4[], $4::uuid[], $5::uuid[], $6::text[],
        $7::text[], $8::text[], $9::int8[], $10::int8[], $11::numeric[], $12::numeric[],
        $13::numeric[], $14::uuid[], $15::timestamptz[], $16::int8[])
    ON CONFLICT (campaign_id, date, revision) DO NOTHING";

/// Marks the revision before each new one as replaced. Run after the insert, so a predecessor
/// inserted in the same batch is found too; the NULL guard makes a replay change nothing.
const SUPERSEDE: &str = "
    UPDATE daily_insights_history h
    SET superseded_at = u.recorded_at, superseded_position = u.position
    FROM UNNEST($1::uuid[], $2::date[], $3::int4[], $4::timestamptz[], $5::int8[])
        AS u(campaign_id, date, revision, recorded_at, position)
    WHERE h.campaign_id = u.campaign_id AND h.date = u.date AND h.revision = u.revision - 1
      AND h.superseded_position IS NULL";

/// Appends every report of the batch (not only the last per day, as `daily_insights` keeps).
pub(super) async fn record(
    conn: &mut PgConnection,
    reports: &[Report<'_>],
) -> Result<(), ProjectionError> {
    if reports.is_empty() {
        return Ok(());
    }
    let mut c = Columns::with_capacity(reports.len());
    for report in reports {
        c.push(report)?;
    }
    sqlx::query(INSERT)
        .bind(&c.campaign)
        .bind(&c.date)
        .bind(&c.revision)
        .bind(&c.workspace)
        .bind(&c.connection)
        .bind(&c.platform)
        .bind(&c.ad_account)
        .bind(&c.currency)
        .bind(&c.impressions)
        .bind(&c.clicks)
        .bind(&c.spend)
        .bind(&c.conversions)
        .bind(&c.conversion_value)
        .bind(&c.sync)
        .bind(&c.recorded_at)
        .bind(&c.position)
        .execute(&mut *conn)
        .await?;
    sqlx::query(SUPERSEDE)
        .bind(&c.campaign)
        .bind(&c.date)
        .bind(&c.revision)
        .bind(&c.recorded_at)
        .bind(&c.position)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
