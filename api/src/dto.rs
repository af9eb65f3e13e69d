//! The API's own view of resources: the contract clients see, converted from read-model views.

use adledger_projections::catalog as q;
use adledger_projections::daily_insights::InsightsRow as InsightsView;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Serialize, ToSchema)]
pub struct Workspace {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl From<q::WorkspaceView> for Workspace {
    fn from(v: q::WorkspaceView) -> Self {
        Self {
            id: v.id.as_uuid(),
            name: v.name,
            created_at: v.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    pub id: Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Connection {
    pub id: Uuid,
    pub platform: String,
    pub label: String,
    pub status: String,
    pub connected_at: DateTime<Utc>,
    pub last_sync_id: Option<Uuid>,
    pub last_sync_status: Option<String>,
    pub last_synced_at: Option<DateTime<Utc>>,
    /// When the platform access token expires, where the platform says; reconnect before then
    /// when it cannot be refreshed (Meta).
    pub token_expires_at: Option<DateTime<Utc>>,
}

impl From<q::ConnectionView> for Connection {
    fn from(v: q::ConnectionView) -> Self {
        Self {
            id: v.id.as_uuid(),
            platform: v.platform,
            label: v.label,
            status: v.status,
            connected_at: v.connected_at,
            last_sync_id: v.last_sync_id.map(|s| s.as_uuid()),
            last_sync_status: v.last_sync_status,
            last_synced_at: v.last_synced_at,
            token_expires_at: v.authorization_expires_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdAccount {
    pub connection_id: Uuid,
    /// The platform's own id of the ad account.
    pub id: String,
    pub name: String,
    pub currency: String,
    pub time_zone: String,
    /// The account's sync cursor: every day up to this one (the account's local date) is
    /// stored. Absent until a sync completed a first chunk of days.
    pub synced_through: Option<NaiveDate>,
}

impl From<q::AdAccountView> for AdAccount {
    fn from(v: q::AdAccountView) -> Self {
        Self {
            connection_id: v.connection_id.as_uuid(),
            id: v.id.0,
            name: v.name,
            currency: v.currency,
            time_zone: v.time_zone,
            synced_through: v.synced_through,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Campaign {
    pub id: Uuid,
    pub connection_id: Uuid,
    pub ad_account_id: String,
    pub external_id: String,
    pub name: String,
    pub status: String,
    pub last_sync_id: Option<Uuid>,
    pub last_sync_status: Option<String>,
    pub last_synced_at: Option<DateTime<Utc>>,
    /// The last day covered by a completed sync.
    pub synced_through: Option<NaiveDate>,
}

impl From<q::CampaignView> for Campaign {
    fn from(v: q::CampaignView) -> Self {
        Self {
            id: v.id.as_uuid(),
            connection_id: v.connection_id.as_uuid(),
            ad_account_id: v.ad_account_id.0,
            external_id: v.external_id,
            name: v.name,
            status: v.status,
            last_sync_id: v.last_sync_id.map(|s| s.as_uuid()),
            last_sync_status: v.last_sync_status,
            last_synced_at: v.last_synced_at,
            synced_through: v.synced_through,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignPage {
    pub items: Vec<Campaign>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next_after: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SyncRun {
    pub id: Uuid,
    pub connection_id: Uuid,
    /// `running`, `completed` or `failed`.
    pub status: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub campaign_ids: Vec<Uuid>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub days_recorded: i64,
    pub days_restated: i64,
    pub days_unchanged: i64,
    /// What failed, for people: `<kind>: <message>`.
    pub error: Option<String>,
    /// The kind of failure: `auth_expired`, `throttled`, `invalid`, `platform_down`,
    /// `internal` or `abandoned`.
    pub failure_kind: Option<String>,
    /// Progress while it runs: the furthest day through which one of its ad accounts has every
    /// day stored (accounts are read in 30-day chunks, oldest first). Absent before the first
    /// chunk.
    pub progress_through: Option<NaiveDate>,
    /// How many times a sync worker claimed the run: 0 while it waits for one, more than 1 when
    /// it was taken over (its worker died) or handed back (its worker stopped).
    pub attempts: i32,
    /// The sync worker carrying it out (or that did last), `host:pid:nonce`.
    pub worker: Option<String>,
}

impl From<q::SyncRunView> for SyncRun {
    fn from(v: q::SyncRunView) -> Self {
        Self {
            id: v.id.as_uuid(),
            connection_id: v.connection_id.as_uuid(),
            status: v.status,
            from: v.from,
            to: v.to,
            campaign_ids: v.campaign_ids.iter().map(|c| c.as_uuid()).collect(),
            started_at: v.started_at,
            finished_at: v.finished_at,
            days_recorded: v.days_recorded,
            days_restated: v.days_restated,
            days_unchanged: v.days_unchanged,
            error: v.error,
            failure_kind: v.error_kind,
            progress_through: v.progress_through,
            attempts: v.attempts,
            worker: v.worker,
        }
    }
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

impl From<InsightsView> for InsightsRow {
    fn from(v: InsightsView) -> Self {
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

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateWorkspace {
    pub name: String,
}

/// Settings of the built-in sandbox platform: the same seed always yields the same data.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SandboxSettings {
    #[serde(default)]
    pub seed: u64,
    /// 1 to 10.
    #[serde(default = "default_accounts")]
    pub ad_accounts: u32,
    /// 1 to 1000.
    #[serde(default = "default_campaigns")]
    pub campaigns: u32,
}

fn default_accounts() -> u32 {
    2
}

fn default_campaigns() -> u32 {
    20
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ConnectPlatform {
    /// Only `sandbox` for now.
    pub platform: String,
    pub label: Option<String>,
    pub sandbox: Option<SandboxSettings>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct StartSync {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Campaigns to sync; empty or absent means every campaign of the connection.
    #[serde(default)]
    pub campaign_ids: Vec<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SyncAccepted {
    pub sync_id: Uuid,
    pub status: String,
}
