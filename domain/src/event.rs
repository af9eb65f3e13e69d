//! Every fact adledger records, with its stored name and schema version. Stored events are never
//! rewritten: older schema versions are upcast on read (see [`crate::upcast`]).

use crate::failure::SyncFailure;
use crate::{
    AdAccountId, ApiKeyId, ApiKeyScope, CampaignId, ConnectionId, Currency, DailyMetrics,
    InvitationId, Platform, Role, Sealed, SessionId, SubjectId, SyncId, UserId, WorkerId,
    WorkspaceId,
};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceCreated {
    pub workspace_id: WorkspaceId,
    pub name: String,
}

/// Platform-specific settings chosen when connecting. The sandbox is fully described by them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "platform", rename_all = "snake_case")]
pub enum ConnectionSettings {
    Sandbox {
        seed: u64,
        ad_accounts: u32,
        campaigns: u32,
    },
    /// Connected through the platform's OAuth flow; the tokens live encrypted outside the log.
    Meta {},
    Google {},
    Tiktok {},
}

impl ConnectionSettings {
    pub fn platform(&self) -> Platform {
        match self {
            ConnectionSettings::Sandbox { .. } => Platform::Sandbox,
            ConnectionSettings::Meta {} => Platform::Meta,
            ConnectionSettings::Google {} => Platform::Google,
            ConnectionSettings::Tiktok {} => Platform::Tiktok,
        }
    }

    /// The settings of a connection made through `platform`'s OAuth flow (`None` for the
    /// sandbox, which has no such flow).
    pub fn oauth(platform: Platform) -> Option<Self> {
        match platform {
            Platform::Sandbox => None,
            Platform::Meta => Some(ConnectionSettings::Meta {}),
            Platform::Google => Some(ConnectionSettings::Google {}),
            Platform::Tiktok => Some(ConnectionSettings::Tiktok {}),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformConnected {
    pub connection_id: ConnectionId,
    pub label: String,
    pub settings: ConnectionSettings,
    /// When the authorization granted runs out and a person must reconnect (a token the
    /// platform will not refresh, such as Meta's 60-day one); absent when it does not expire or
    /// the platform does not say. Added after v1 events were stored: they decode without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_expires_at: Option<DateTime<Utc>>,
}

/// The platform refused the connection's credentials (revoked, expired without refresh): syncs
/// stop until a person reconnects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionNeedsReauth {
    pub connection_id: ConnectionId,
    pub reason: String,
}

/// A person went through the OAuth flow again for this connection: it syncs again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionReauthorized {
    pub connection_id: ConnectionId,
    /// When the new authorization runs out, as for [`PlatformConnected`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_expires_at: Option<DateTime<Utc>>,
}

/// The connection was disconnected; its tokens were revoked and forgotten.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformDisconnected {
    pub connection_id: ConnectionId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdAccountDiscovered {
    pub connection_id: ConnectionId,
    pub ad_account_id: AdAccountId,
    pub name: String,
    pub currency: Currency,
    pub time_zone: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignDiscovered {
    pub connection_id: ConnectionId,
    pub campaign_id: CampaignId,
    pub ad_account_id: AdAccountId,
    pub external_id: String,
    pub name: String,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignChanged {
    pub connection_id: ConnectionId,
    pub campaign_id: CampaignId,
    pub name: String,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStarted {
    pub sync_id: SyncId,
    pub connection_id: ConnectionId,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Empty means every campaign of the connection.
    pub campaign_ids: Vec<CampaignId>,
}

/// What a sync did to the stored insights, day by campaign-day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncCounts {
    pub days_recorded: u64,
    pub days_restated: u64,
    pub days_unchanged: u64,
}

impl SyncCounts {
    pub fn add(&mut self, other: SyncCounts) {
        self.days_recorded += other.days_recorded;
        self.days_restated += other.days_restated;
        self.days_unchanged += other.days_unchanged;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncCompleted {
    pub sync_id: SyncId,
    pub connection_id: ConnectionId,
    pub counts: SyncCounts,
}

/// Schema v2: the failure is typed (v1 carried a `reason` text starting with the kind; see
/// [`crate::upcast`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncFailed {
    pub sync_id: SyncId,
    pub connection_id: ConnectionId,
    pub failure: SyncFailure,
    /// What the run had stored before it failed: completed days are kept.
    pub counts: SyncCounts,
}

crate::named_enum! {
    /// Why a worker holds a sync run now.
    pub enum ClaimReason {
        /// Nobody ran it before.
        FirstRun => "first_run",
        /// The worker running it stopped renewing its lease (it died or lost the database).
        LeaseLapsed => "lease_lapsed",
        /// The worker running it handed it back (it was shutting down).
        HandedBack => "handed_back",
    }
}

/// A worker took a sync run to carry it out (or on, from where the previous one stopped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncClaimed {
    pub sync_id: SyncId,
    pub connection_id: ConnectionId,
    /// The worker process now running it.
    pub worker: WorkerId,
    /// 1 for the first claim, +1 for each takeover.
    pub attempt: u32,
    pub reason: ClaimReason,
    /// The worker that ran it before, on a takeover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_worker: Option<WorkerId>,
}

/// A worker stopped running a sync run before its end (a graceful shutdown) so that another one
/// carries it on at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncHandedBack {
    pub sync_id: SyncId,
    pub connection_id: ConnectionId,
    pub worker: WorkerId,
    pub reason: String,
}

/// A sync run stored every day of `from..=through` for one ad account (one chunk of its range),
/// with what that did. A run that is taken over goes on after the last of these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncProgressed {
    pub sync_id: SyncId,
    pub connection_id: ConnectionId,
    pub ad_account_id: AdAccountId,
    pub from: NaiveDate,
    pub through: NaiveDate,
    pub counts: SyncCounts,
}

/// Where a campaign's numbers come from, repeated on every insights event so that each event
/// stands on its own for projections and auditors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InsightsSource {
    pub campaign_id: CampaignId,
    pub connection_id: ConnectionId,
    pub platform: Platform,
    pub ad_account_id: AdAccountId,
    pub sync_id: SyncId,
}

/// Every day of an ad account up to `through` is stored (the account's sync cursor moved there).
/// Decided only over a contiguous run of completed days, so the cursor never jumps a hole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSynced {
    pub connection_id: ConnectionId,
    pub sync_id: SyncId,
    pub ad_account_id: AdAccountId,
    pub through: NaiveDate,
}

/// The first numbers reported for a campaign-day. Stored as one flat JSON object (source and
/// metrics fields side by side); see [`wire`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "wire::Recorded", into = "wire::Recorded")]
pub struct DailyInsightsRecorded {
    pub source: InsightsSource,
    pub date: NaiveDate,
    pub currency: Currency,
    pub metrics: DailyMetrics,
    /// 1 for the first report of this day, +1 for each restatement.
    pub revision: u32,
}

/// The platform reported different numbers for a day it had reported before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "wire::Restated", into = "wire::Restated")]
pub struct DailyInsightsRestated {
    pub source: InsightsSource,
    pub date: NaiveDate,
    pub currency: Currency,
    pub metrics: DailyMetrics,
    pub revision: u32,
    pub previous_currency: Currency,
    pub previous: DailyMetrics,
}

// ---- Identity: the user's own stream. Personal data is sealed under the user's key. ----

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRegistered {
    pub user_id: UserId,
    pub email: Sealed,
    pub name: Sealed,
    pub password_hash: Sealed,
}

/// The second factor a login or a change presented; its use is recorded so it cannot be replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SecondFactor {
    /// A TOTP code of this 30-second time step.
    Totp { step: u64 },
    /// The recovery code at this index of the list issued when TOTP was enabled.
    RecoveryCode { index: usize },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserLoggedIn {
    pub user_id: UserId,
    pub session_id: SessionId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_factor: Option<SecondFactor>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserLoggedOut {
    pub user_id: UserId,
    pub session_id: SessionId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordChanged {
    pub user_id: UserId,
    pub password_hash: Sealed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpEnrolmentStarted {
    pub user_id: UserId,
    pub secret: Sealed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpEnabled {
    pub user_id: UserId,
    /// The step of the code that confirmed the enrolment (it cannot be used again).
    pub step: u64,
    /// SHA-256 hashes of the single-use recovery codes, in the order they were shown.
    pub recovery_code_hashes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpDisabled {
    pub user_id: UserId,
    pub second_factor: SecondFactor,
}

/// The user's key was destroyed: every sealed field of theirs now reads as erased. So were the
/// keys of the other subjects that held data about them (`also_erased`: their email address's
/// subject, invitations sealed under their own id before addresses had subjects, API keys they
/// created), which the log records here as their link to the person. Older events lack the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserErased {
    pub user_id: UserId,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_erased: Vec<SubjectId>,
}

/// The person may run the deployment: deployment-wide routes (the whole log's verification, every
/// projection's status) answer them. Granted and revoked with `adledger operators`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorGranted {
    pub user_id: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorRevoked {
    pub user_id: UserId,
}

// ---- Membership and API keys: the workspace's stream. ----

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAdded {
    pub workspace_id: WorkspaceId,
    pub user_id: UserId,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInvited {
    pub workspace_id: WorkspaceId,
    pub invitation_id: InvitationId,
    /// Sealed under the invitation's own key (the invitee may have no account yet).
    pub email: Sealed,
    pub role: Role,
    /// SHA-256 of the single-use token sent to the invitee.
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationAccepted {
    pub workspace_id: WorkspaceId,
    pub invitation_id: InvitationId,
    pub user_id: UserId,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRoleChanged {
    pub workspace_id: WorkspaceId,
    pub user_id: UserId,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRemoved {
    pub workspace_id: WorkspaceId,
    pub user_id: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyCreated {
    pub workspace_id: WorkspaceId,
    pub api_key_id: ApiKeyId,
    pub name: String,
    pub scope: ApiKeyScope,
    /// SHA-256 of the key; the key itself was shown once and is not kept.
    pub key_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRevoked {
    pub workspace_id: WorkspaceId,
    pub api_key_id: ApiKeyId,
}

/// The stored, flat shape of the insights events. `#[serde(flatten)]` gives the same JSON but
/// decodes through an intermediate map of every field, which made replay several times slower;
/// these plain structs decode straight from the text.
mod wire {
    use super::*;
    use rust_decimal::Decimal;

    /// One flat wire struct per insights event, from one field list, with conversions both ways.
    macro_rules! flat_insights {
        ($wire:ident <=> $event:ident { $($extra:ident: $ty:ty),* }) => {
            #[derive(Clone, Serialize, Deserialize)]
            pub(super) struct $wire {
                campaign_id: CampaignId,
                connection_id: ConnectionId,
                platform: Platform,
                ad_account_id: AdAccountId,
                sync_id: SyncId,
                date: NaiveDate,
                currency: Currency,
                impressions: u64,
                clicks: u64,
                spend: Decimal,
                conversions: Decimal,
                conversion_value: Decimal,
                revision: u32,
                $($extra: $ty,)*
            }

            impl From<$wire> for $event {
                fn from(w: $wire) -> Self {
                    $event {
                        source: InsightsSource {
                            campaign_id: w.campaign_id,
                            connection_id: w.connection_id,
                            platform: w.platform,
                            ad_account_id: w.ad_account_id,
                            sync_id: w.sync_id,
                        },
                        date: w.date,
                        currency: w.currency,
                        metrics: DailyMetrics {
                            impressions: w.impressions,
                            clicks: w.clicks,
                            spend: w.spend,
                            conversions: w.conversions,
                            conversion_value: w.conversion_value,
                        },
                        revision: w.revision,
                        $($extra: w.$extra,)*
                    }
                }
            }

            impl From<$event> for $wire {
                fn from(e: $event) -> Self {
                    $wire {
                        campaign_id: e.source.campaign_id,
                        connection_id: e.source.connection_id,
                        platform: e.source.platform,
                        ad_account_id: e.source.ad_account_id,
                        sync_id: e.source.sync_id,
                        date: e.date,
                        currency: e.currency,
                        impressions: e.metrics.impressions,
                        clicks: e.metrics.clicks,
                        spend: e.metrics.spend,
                        conversions: e.metrics.conversions,
                        conversion_value: e.metrics.conversion_value,
                        revision: e.revision,
                        $($extra: e.$extra,)*
                    }
                }
            }
        };
    }

    flat_insights!(Recorded <=> DailyInsightsRecorded {});
    flat_insights!(Restated <=> DailyInsightsRestated {
        previous_currency: Currency,
        previous: DailyMetrics
    });
}

macro_rules! domain_events {
    ($($variant:ident => $version:literal),+ $(,)?) => {
        /// Every event type, as the aggregates decide them and projections read them.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum DomainEvent {
            $($variant($variant),)+
        }

        impl DomainEvent {
            /// The stored type name (stable: renaming a variant must not change it).
            pub fn event_type(&self) -> &'static str {
                match self {
                    $(DomainEvent::$variant(_) => stringify!($variant),)+
                }
            }

            /// The schema version written for new events of this type.
            pub fn schema_version(&self) -> i32 {
                match self {
                    $(DomainEvent::$variant(_) => $version,)+
                }
            }

            /// Every known type name with its current schema version.
            pub const TYPES: &'static [(&'static str, i32)] = &[$((stringify!($variant), $version),)+];

            pub fn to_payload(&self) -> serde_json::Value {
                let value = match self {
                    $(DomainEvent::$variant(e) => serde_json::to_value(e),)+
                };
                // Serialising these plain structs cannot fail (no maps with non-string keys).
                value.unwrap_or(serde_json::Value::Null)
            }

            /// Decodes a stored event without copying it when it is at the current schema
            /// version (the common case on replay); older versions go through [`Self::decode`].
            pub fn decode_ref(
                event_type: &str,
                schema_version: i32,
                payload: &serde_json::Value,
            ) -> Result<Self, DecodeError> {
                use serde::Deserialize;
                let decoded = match event_type {
                    $(stringify!($variant) if schema_version == $version => {
                        $variant::deserialize(payload).map(DomainEvent::$variant)
                    })+
                    _ => return Self::decode(event_type, schema_version, payload.clone()),
                };
                decoded.map_err(|e| DecodeError::Payload {
                    event_type: event_type.to_owned(),
                    reason: e.to_string(),
                })
            }

            /// Decodes a stored event from its JSON text: straight into the typed event at the
            /// current schema version, through [`Self::decode`] for older versions.
            pub fn decode_str(
                event_type: &str,
                schema_version: i32,
                payload: &str,
            ) -> Result<Self, DecodeError> {
                let bad = |e: serde_json::Error| DecodeError::Payload {
                    event_type: event_type.to_owned(),
                    reason: e.to_string(),
                };
                match event_type {
                    $(stringify!($variant) if schema_version == $version => {
                        serde_json::from_str(payload).map(DomainEvent::$variant).map_err(bad)
                    })+
                    _ => {
                        let value = serde_json::from_str(payload).map_err(bad)?;
                        Self::decode(event_type, schema_version, value)
                    }
                }
            }

            /// Decodes a stored event, upcasting older schema versions first.
            pub fn decode(
                event_type: &str,
                schema_version: i32,
                payload: serde_json::Value,
            ) -> Result<Self, DecodeError> {
                let payload = crate::upcast::upcast(event_type, schema_version, payload)?;
                let decoded = match event_type {
                    $(stringify!($variant) => serde_json::from_value(payload).map(DomainEvent::$variant),)+
                    other => return Err(DecodeError::UnknownType(other.to_owned())),
                };
                decoded.map_err(|e| DecodeError::Payload {
                    event_type: event_type.to_owned(),
                    reason: e.to_string(),
                })
            }
        }
    };
}

domain_events! {
    WorkspaceCreated => 1,
    PlatformConnected => 1,
    AdAccountDiscovered => 1,
    CampaignDiscovered => 1,
    CampaignChanged => 1,
    SyncStarted => 1,
    SyncCompleted => 1,
    SyncFailed => 2,
    SyncClaimed => 1,
    SyncHandedBack => 1,
    SyncProgressed => 1,
    AccountSynced => 1,
    DailyInsightsRecorded => 2,
    DailyInsightsRestated => 2,
    UserRegistered => 1,
    UserLoggedIn => 1,
    UserLoggedOut => 1,
    PasswordChanged => 1,
    TotpEnrolmentStarted => 1,
    TotpEnabled => 1,
    TotpDisabled => 1,
    UserErased => 1,
    MemberAdded => 1,
    MemberInvited => 1,
    InvitationAccepted => 1,
    MemberRoleChanged => 1,
    MemberRemoved => 1,
    ApiKeyCreated => 1,
    ApiKeyRevoked => 1,
    ConnectionNeedsReauth => 1,
    ConnectionReauthorized => 1,
    PlatformDisconnected => 1,
    OperatorGranted => 1,
    OperatorRevoked => 1,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("event type {event_type} has no schema version {version}")]
    UnknownVersion { event_type: String, version: i32 },
    #[error("payload of {event_type} does not match its schema: {reason}")]
    Payload { event_type: String, reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn events_round_trip_through_their_stored_form() {
        let event = DomainEvent::SyncStarted(SyncStarted {
            sync_id: SyncId(Uuid::from_u128(1)),
            connection_id: ConnectionId(Uuid::from_u128(2)),
            from: "2024-01-01".parse().unwrap(),
            to: "2024-01-31".parse().unwrap(),
            campaign_ids: vec![],
        });
        let decoded = DomainEvent::decode(
            event.event_type(),
            event.schema_version(),
            event.to_payload(),
        )
        .unwrap();
        assert_eq!(decoded, event);
        let borrowed = DomainEvent::decode_ref(
            event.event_type(),
            event.schema_version(),
            &event.to_payload(),
        )
        .unwrap();
        assert_eq!(borrowed, event, "the borrowed path decodes the same event");
        assert!(matches!(
            DomainEvent::decode_ref("WorkspaceCreated", 1, &serde_json::json!({"name": 3})),
            Err(DecodeError::Payload { .. })
        ));
    }

    fn restated() -> DomainEvent {
        let metrics = |n: u64| DailyMetrics {
            impressions: 1_000 * n,
            clicks: 10 * n,
            spend: rust_decimal::Decimal::new(12_345 * n as i64, 2),
            conversions: rust_decimal::Decimal::from(n),
            conversion_value: rust_decimal::Decimal::new(99_999, 3),
        };
        DomainEvent::DailyInsightsRestated(DailyInsightsRestated {
            source: InsightsSource {
                campaign_id: CampaignId(Uuid::from_u128(3)),
                connection_id: ConnectionId(Uuid::from_u128(4)),
                platform: Platform::Sandbox,
                ad_account_id: AdAccountId("act-1".into()),
                sync_id: SyncId(Uuid::from_u128(5)),
            },
            date: "2024-02-29".parse().unwrap(),
            currency: Currency::parse("EUR").unwrap(),
            metrics: metrics(2),
            revision: 2,
            previous_currency: Currency::parse("EUR").unwrap(),
            previous: metrics(1),
        })
    }

    #[test]
    fn insights_events_are_stored_flat_and_decode_from_text() {
        let event = restated();
        let payload = event.to_payload();
        // The stored shape: source and metrics fields at the top level, `previous` nested.
        assert_eq!(
            payload["campaign_id"],
            "00000000-0000-0000-0000-000000000003"
        );
        assert_eq!(payload["ad_account_id"], "act-1");
        assert_eq!(payload["impressions"], 2_000);
        assert_eq!(payload["spend"], "246.90");
        assert_eq!(payload["previous"]["spend"], "123.45");
        assert!(payload.get("source").is_none() && payload.get("metrics").is_none());
        let text = payload.to_string();
        let decoded = DomainEvent::decode_str(event.event_type(), 2, &text).unwrap();
        assert_eq!(decoded, event);
        assert_eq!(
            DomainEvent::decode(event.event_type(), 2, payload).unwrap(),
            decoded
        );
        assert!(matches!(
            DomainEvent::decode_str(event.event_type(), 2, "{\"campaign_id\": 1}"),
            Err(DecodeError::Payload { .. })
        ));
        assert!(matches!(
            DomainEvent::decode_str(event.event_type(), 2, "not json"),
            Err(DecodeError::Payload { .. })
        ));
    }

    #[test]
    fn decode_str_upcasts_older_versions() {
        let v1 = serde_json::json!({
            "campaign_id": "00000000-0000-0000-0000-000000000003",
            "connection_id": "00000000-0000-0000-0000-000000000004",
            "platform": "sandbox", "ad_account_id": "act-1",
            "sync_id": "00000000-0000-0000-0000-000000000005",
            "date": "2024-02-29", "currency": "EUR", "impressions": 1, "clicks": 0,
            "spend_micros": 1_500_000, "conversions": "0", "conversion_value": "0",
            "revision": 1
        });
        let decoded = DomainEvent::decode_str("DailyInsightsRecorded", 1, &v1.to_string()).unwrap();
        let DomainEvent::DailyInsightsRecorded(e) = decoded else {
            panic!("decoded the wrong event type: {decoded:?}");
        };
        assert_eq!(e.metrics.spend.to_string(), "1.5");
        assert!(matches!(
            DomainEvent::decode_str("NoSuchEvent", 1, "{}"),
            Err(DecodeError::UnknownType(_))
        ));
    }

    #[test]
    fn connection_events_stored_before_authorization_expiry_decode_without_it() {
        let connection_id = "00000000-0000-0000-0000-000000000002";
        let stored = serde_json::json!({
            "connection_id": connection_id, "label": "Ads",
            "settings": {"platform": "meta"}
        });
        let Ok(DomainEvent::PlatformConnected(connected)) =
            DomainEvent::decode_str("PlatformConnected", 1, &stored.to_string())
        else {
            panic!("a stored PlatformConnected must decode");
        };
        assert_eq!(connected.authorization_expires_at, None);
        assert_eq!(
            DomainEvent::PlatformConnected(connected).to_payload(),
            stored,
            "an absent expiry is not written, so the stored bytes stay as they were"
        );
        let stored = serde_json::json!({ "connection_id": connection_id });
        assert!(matches!(
            DomainEvent::decode("ConnectionReauthorized", 1, stored.clone()),
            Ok(DomainEvent::ConnectionReauthorized(
                ConnectionReauthorized {
                    authorization_expires_at: None,
                    ..
                }
            ))
        ));

        let expires: DateTime<Utc> = "2024-05-01T10:00:00Z".parse().unwrap();
        let event = DomainEvent::ConnectionReauthorized(ConnectionReauthorized {
            connection_id: ConnectionId(Uuid::from_u128(2)),
            authorization_expires_at: Some(expires),
        });
        let payload = event.to_payload();
        assert_eq!(payload["authorization_expires_at"], "2024-05-01T10:00:00Z");
        assert_eq!(event.schema_version(), 1);
        assert_eq!(
            DomainEvent::decode_str(event.event_type(), 1, &payload.to_string()).unwrap(),
            event
        );
    }

    #[test]
    fn unknown_types_and_bad_payloads_are_errors_not_panics() {
        assert!(matches!(
            DomainEvent::decode("NoSuchEvent", 1, serde_json::json!({})),
            Err(DecodeError::UnknownType(_))
        ));
        assert!(matches!(
            DomainEvent::decode("WorkspaceCreated", 1, serde_json::json!({"name": 3})),
            Err(DecodeError::Payload { .. })
        ));
    }
}
