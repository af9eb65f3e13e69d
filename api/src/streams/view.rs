//! The JSON views of aggregate states that `GET …/streams/{stream_id}` answers: what an auditor
//! needs to see of each, and never a secret (token and key hashes are left out) nor an opened
//! personal value (invitees' emails stay sealed, exactly as the events API shows them).

use adledger_domain::campaign::CampaignInsights;
use adledger_domain::connection::Connection;
use adledger_domain::workspace::Workspace;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// One aggregate's state, tagged by `aggregate`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "aggregate", rename_all = "snake_case")]
pub enum AggregateState {
    Workspace(WorkspaceState),
    Connection(ConnectionState),
    CampaignInsights(CampaignInsightsState),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceState {
    /// `null` only if the stream holds no creation (never the case for a stream of the log).
    pub id: Option<Uuid>,
    pub name: String,
    pub members: Vec<MemberState>,
    /// People who were members once.
    pub former_members: Vec<Uuid>,
    pub invitations: Vec<InvitationState>,
    pub api_keys: Vec<ApiKeyState>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberState {
    pub user_id: Uuid,
    pub role: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationState {
    pub id: Uuid,
    /// Sealed (`sealed:v1:…`), as stored; the events API with `reveal=true` opens it.
    pub email: String,
    pub role: String,
    pub expires_at: DateTime<Utc>,
    pub accepted_by: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyState {
    pub id: Uuid,
    pub name: String,
    pub scope: String,
    pub created_at: DateTime<Utc>,
    pub revoked: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionState {
    pub id: Uuid,
    pub label: String,
    pub platform: String,
    /// `active`, `needs_reauth` or `disconnected`.
    pub status: String,
    pub ad_accounts: Vec<AdAccountState>,
    pub campaigns: Vec<CampaignState>,
    pub running_sync: Option<RunningSyncState>,
    pub last_sync_started_at: Option<DateTime<Utc>>,
    pub completed_syncs: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdAccountState {
    pub id: String,
    pub name: String,
    pub currency: String,
    pub time_zone: String,
    /// Every day up to this one is stored.
    pub synced_through: Option<NaiveDate>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignState {
    pub id: Uuid,
    pub ad_account_id: String,
    pub external_id: String,
    pub name: String,
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunningSyncState {
    pub sync_id: Uuid,
    pub started_at: DateTime<Utc>,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Empty: every campaign of the connection.
    pub campaign_ids: Vec<Uuid>,
    pub attempts: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignInsightsState {
    /// Every day reported, by date, with its current value.
    pub days: Vec<DayState>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DayState {
    pub date: NaiveDate,
    pub currency: String,
    pub impressions: u64,
    pub clicks: u64,
    pub spend: Decimal,
    pub conversions: Decimal,
    pub conversion_value: Decimal,
    /// 1 for the first report, +1 for each restatement.
    pub revision: u32,
    /// The sync run that reported this value.
    pub sync_id: Uuid,
}

impl From<Workspace> for AggregateState {
    fn from(w: Workspace) -> Self {
        AggregateState::Workspace(WorkspaceState {
            id: w.id.map(|id| id.as_uuid()),
            name: w.name,
            members: w
                .members
                .into_iter()
                .map(|(user, role)| MemberState {
                    user_id: user.as_uuid(),
                    role: role.as_str().to_owned(),
                })
                .collect(),
            former_members: w.former_members.into_iter().map(|u| u.as_uuid()).collect(),
            invitations: w
                .invitations
                .into_iter()
                .map(|(id, i)| InvitationState {
                    id: id.as_uuid(),
                    email: i.email.0,
                    role: i.role.as_str().to_owned(),
                    expires_at: i.expires_at,
                    accepted_by: i.accepted_by.map(|u| u.as_uuid()),
                })
                .collect(),
            api_keys: w
                .api_keys
                .into_iter()
                .map(|(id, k)| ApiKeyState {
                    id: id.as_uuid(),
                    name: k.name,
                    scope: k.scope.as_str().to_owned(),
                    created_at: k.created_at,
                    revoked: k.revoked,
                })
                .collect(),
        })
    }
}

impl AggregateState {
    /// `None` for a connection stream whose events never connected it.
    pub fn connection(c: Connection) -> Option<Self> {
        let c = c.0?;
        let cursors = c.cursors;
        Some(AggregateState::Connection(ConnectionState {
            id: c.id.as_uuid(),
            label: c.label,
            platform: c.settings.platform().as_str().to_owned(),
            status: c.status.as_str().to_owned(),
            ad_accounts: c
                .ad_accounts
                .into_values()
                .map(|a| AdAccountState {
                    synced_through: cursors.get(&a.id).copied(),
                    id: a.id.0,
                    name: a.name,
                    currency: a.currency.as_str().to_owned(),
                    time_zone: a.time_zone,
                })
                .collect(),
            campaigns: c
                .campaigns
                .into_iter()
                .map(|(id, k)| CampaignState {
                    id: id.as_uuid(),
                    ad_account_id: k.ad_account_id.0,
                    external_id: k.external_id,
                    name: k.name,
                    status: k.status,
                })
                .collect(),
            running_sync: c.running_sync.map(|r| RunningSyncState {
                sync_id: r.sync_id.as_uuid(),
                started_at: r.started_at,
                from: r.range.from(),
                to: r.range.to(),
                campaign_ids: r.campaign_ids.iter().map(|c| c.as_uuid()).collect(),
                attempts: r.attempts,
            }),
            last_sync_started_at: c.last_sync_started_at,
            completed_syncs: c.completed_syncs,
        }))
    }
}

impl From<CampaignInsights> for AggregateState {
    fn from(c: CampaignInsights) -> Self {
        AggregateState::CampaignInsights(CampaignInsightsState {
            days: c
                .days
                .into_iter()
                .map(|(date, d)| DayState {
                    date,
                    currency: d.currency.as_str().to_owned(),
                    impressions: d.metrics.impressions,
                    clicks: d.metrics.clicks,
                    spend: d.metrics.spend,
                    conversions: d.metrics.conversions,
                    conversion_value: d.metrics.conversion_value,
                    revision: d.revision,
                    sync_id: d.sync_id.as_uuid(),
                })
                .collect(),
        })
    }
}
