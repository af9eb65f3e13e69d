//! The `daily_insights` read model: one row per (campaign, day) with the latest numbers reported,
//! and beside it every value each day has had (`daily_insights_history`, see [`history`]: insights
//! as reported). This module builds both: a batch is folded in memory (last event per key wins)
//! and written with one UNNEST upsert; the `last_position` guard makes replaying an older event a
//! no-op. [`queries`] sums them for the API; neither ever reads another read model's tables to
//! build them.

mod as_reported;
mod history;
mod queries;

pub use as_reported::*;
pub use queries::*;

use crate::{Projection, ProjectionError, ReadModel, Table, Target};
use adledger_domain::event::InsightsSource;
use adledger_domain::{Currency, DailyMetrics, DomainEvent};
use adledger_infra::LogEntry;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::PgConnection;
use std::collections::BTreeMap;
use uuid::Uuid;

pub struct DailyInsights;

const MODEL: ReadModel = ReadModel {
    name: "daily_insights",
    tables: &[
        Table {
            name: "daily_insights",
            key: "t.campaign_id, t.date",
        },
        Table {
            name: "daily_insights_history",
            key: "t.campaign_id, t.date, t.revision",
        },
    ],
    // The history keeps when each value was recorded (recorded_at is part of the context).
    reads_context: true,
    version: 1,
    ddl: include_str!("tables.sql"),
    indexes: include_str!("indexes.sql"),
};

const UPSERT: &str = "
    INSERT INTO daily_insights (campaign_id, date, workspace_id, connection_id, platform,
        ad_account_id, currency, impressions, clicks, spend, conversions, conversion_value,
        revision, last_position)
    SELECT * FROM UNNEST($1::uuid[], $2::date[], $3::uuid[], $4::uuid[], $5::text[], $6::text[],
        $7::text[], $8::int8[], $9::int8[], $10::numeric[], $11::numeric[], $12::numeric[],
        $13::int4[], $14::int8[])
    ON CONFLICT (campaign_id, date) DO UPDATE SET
        workspace_id = excluded.workspace_id, connection_id = excluded.connection_id,
        platform = excluded.platform, ad_account_id = excluded.ad_account_id,
        currency = excluded.currency, impressions = excluded.impressions,
        clicks = excluded.clicks, spend = excluded.spend, conversions = excluded.conversions,
        conversion_value = excluded.conversion_value, revision = excluded.revision,
        last_position = excluded.last_position
    WHERE daily_insights.last_position < excluded.last_position";

/// One report of one campaign-day, as an event of the batch carries it.
struct Report<'a> {
    workspace: Uuid,
    source: &'a InsightsSource,
    date: NaiveDate,
    currency: Currency,
    metrics: &'a DailyMetrics,
    revision: u32,
    position: i64,
    recorded_at: DateTime<Utc>,
}

impl Report<'_> {
    /// Impressions, clicks and revision as the columns' types hold them.
    fn numbers(&self) -> Result<(i64, i64, i32), ProjectionError> {
        let m = self.metrics;
        let impressions = i64::try_from(m.impressions)
            .map_err(|_| out_of_range(self.position, "impressions", m.impressions))?;
        let clicks =
            i64::try_from(m.clicks).map_err(|_| out_of_range(self.position, "clicks", m.clicks))?;
        let revision = i32::try_from(self.revision)
            .map_err(|_| out_of_range(self.position, "revision", u64::from(self.revision)))?;
        Ok((impressions, clicks, revision))
    }
}

/// A batch of reports as one array per column, for an `UNNEST` insert: the latest values
/// (`daily_insights`) and every value (`daily_insights_history`, which also binds the sync and
/// the recorded time) are written from the same columns.
struct Columns {
    campaign: Vec<Uuid>,
    date: Vec<NaiveDate>,
    workspace: Vec<Uuid>,
    connection: Vec<Uuid>,
    platform: Vec<&'static str>,
    ad_account: Vec<String>,
    currency: Vec<String>,
    impressions: Vec<i64>,
    clicks: Vec<i64>,
    spend: Vec<Decimal>,
    conversions: Vec<Decimal>,
    conversion_value: Vec<Decimal>,
    revision: Vec<i32>,
    position: Vec<i64>,
    sync: Vec<Uuid>,
    recorded_at: Vec<DateTime<Utc>>,
}

fn out_of_range(position: i64, what: &str, value: u64) -> ProjectionError {
    ProjectionError::Invalid {
        position,
        reason: format!("{what} {value} is out of range"),
    }
}

impl Columns {
    fn with_capacity(n: usize) -> Self {
        Self {
            campaign: Vec::with_capacity(n),
            date: Vec::with_capacity(n),
            workspace: Vec::with_capacity(n),
            connection: Vec::with_capacity(n),
            platform: Vec::with_capacity(n),
            ad_account: Vec::with_capacity(n),
            currency: Vec::with_capacity(n),
            impressions: Vec::with_capacity(n),
            clicks: Vec::with_capacity(n),
            spend: Vec::with_capacity(n),
            conversions: Vec::with_capacity(n),
            conversion_value: Vec::with_capacity(n),
            revision: Vec::with_capacity(n),
            position: Vec::with_capacity(n),
            sync: Vec::with_capacity(n),
            recorded_at: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, row: &Report<'_>) -> Result<(), ProjectionError> {
        let m = row.metrics;
        let (impressions, clicks, revision) = row.numbers()?;
        self.campaign.push(row.source.campaign_id.as_uuid());
        self.date.push(row.date);
        self.workspace.push(row.workspace);
        self.connection.push(row.source.connection_id.as_uuid());
        self.platform.push(row.source.platform.as_str());
        self.ad_account.push(row.source.ad_account_id.0.clone());
        self.currency.push(row.currency.as_str().to_owned());
        self.impressions.push(impressions);
        self.clicks.push(clicks);
        self.spend.push(m.spend);
        self.conversions.push(m.conversions);
        self.conversion_value.push(m.conversion_value);
        self.revision.push(revision);
        self.position.push(row.position);
        self.sync.push(row.source.sync_id.as_uuid());
        self.recorded_at.push(row.recorded_at);
        Ok(())
    }
}

#[async_trait]
impl Projection for DailyInsights {
    fn model(&self) -> &'static ReadModel {
        &MODEL
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[(LogEntry, DomainEvent)],
        _target: Target,
    ) -> Result<(), ProjectionError> {
        // Ordered by key: rows reach the B-tree in key order, which is several times cheaper
        // for Postgres than random order (measured: 1.39 s vs 0.62 s for 200k rows).
        let mut reports = Vec::new();
        for (recorded, event) in events {
            let (source, date, currency, metrics, revision) = match event {
                DomainEvent::DailyInsightsRecorded(e) => {
                    (&e.source, e.date, e.currency, &e.metrics, e.revision)
                }
                DomainEvent::DailyInsightsRestated(e) => {
                    (&e.source, e.date, e.currency, &e.metrics, e.revision)
                }
                _ => continue,
            };
            let recorded_at = recorded
                .context
                .as_ref()
                .map(|c| c.recorded_at)
                .ok_or_else(|| ProjectionError::Invalid {
                    position: recorded.position,
                    reason: "read without its recorded_at".to_owned(),
                })?;
            reports.push(Report {
                workspace: recorded.workspace_id.as_uuid(),
                source,
                date,
                currency,
                metrics,
                revision,
                position: recorded.position,
                recorded_at,
            });
        }
        if reports.is_empty() {
            return Ok(());
        }
        history::record(conn, &reports).await?;
        // Events arrive in log order, so a later one simply replaces an earlier one.
        let mut latest: BTreeMap<(Uuid, NaiveDate), &Report<'_>> = BTreeMap::new();
        for report in &reports {
            latest.insert((report.source.campaign_id.as_uuid(), report.date), report);
        }
        // The map iterates in key order, which also keeps row locks in one order whoever writes.
        let mut columns = Columns::with_capacity(latest.len());
        for row in latest.values() {
            columns.push(row)?;
        }
        let c = columns;
        sqlx::query(UPSERT)
            .bind(&c.campaign)
            .bind(&c.date)
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
            .bind(&c.revision)
            .bind(&c.position)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}
