//! The connection aggregate: one connected platform login, the ad accounts and campaigns
//! discovered through it, and its sync runs. At most one sync runs per connection at a time.
//! Each ad account has a sync cursor: the last day up to which every day is stored. It moves
//! only forward and only over a contiguous run of completed days.

use crate::event::{
    AccountSynced, AdAccountDiscovered, CampaignChanged, CampaignDiscovered, ConnectionNeedsReauth,
    ConnectionReauthorized, ConnectionSettings, Decided, PlatformConnected, PlatformDisconnected,
    SyncCompleted, SyncCounts, SyncFailed, SyncStarted,
};
use crate::{
    AdAccountId, CampaignId, ConnectionId, Currency, DateRange, DomainError, DomainEvent, Platform,
    SyncId,
};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use std::collections::BTreeMap;

/// A running sync older than this is taken as abandoned (its process died) when a new one starts.
pub const SYNC_ABANDONED_AFTER: Duration = Duration::minutes(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdAccount {
    pub id: AdAccountId,
    pub name: String,
    pub currency: Currency,
    pub time_zone: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredCampaign {
    pub ad_account_id: AdAccountId,
    pub external_id: String,
    pub name: String,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownCampaign {
    pub ad_account_id: AdAccountId,
    pub external_id: String,
    pub name: String,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningSync {
    pub sync_id: SyncId,
    pub started_at: DateTime<Utc>,
    pub range: DateRange,
    pub campaign_ids: Vec<CampaignId>,
}

/// Whether a connection can sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    /// The platform refused its credentials: a person must reconnect it.
    NeedsReauth,
    Disconnected,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::NeedsReauth => "needs_reauth",
            Status::Disconnected => "disconnected",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    pub id: ConnectionId,
    pub label: String,
    pub settings: ConnectionSettings,
    pub ad_accounts: BTreeMap<AdAccountId, AdAccount>,
    pub campaigns: BTreeMap<CampaignId, KnownCampaign>,
    pub running_sync: Option<RunningSync>,
    /// When the latest sync (whatever became of it) started.
    pub last_sync_started_at: Option<DateTime<Utc>>,
    /// Per ad account, the last day up to which every day is stored ("synced through").
    pub cursors: BTreeMap<AdAccountId, NaiveDate>,
    /// How many syncs finished successfully; the sandbox uses it to restate numbers like a
    /// real platform does on later reads.
    pub completed_syncs: u32,
    pub status: Status,
}

impl Connected {
    pub fn platform(&self) -> Platform {
        self.settings.platform()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connection(pub Option<Connected>);

#[derive(Debug, Clone)]
pub enum Command {
    Connect {
        connection_id: ConnectionId,
        label: String,
        settings: ConnectionSettings,
        at: DateTime<Utc>,
    },
    RecordDiscovery {
        ad_accounts: Vec<AdAccount>,
        campaigns: Vec<DiscoveredCampaign>,
        at: DateTime<Utc>,
    },
    StartSync {
        sync_id: SyncId,
        range: DateRange,
        /// Empty means every campaign of the connection.
        campaign_ids: Vec<CampaignId>,
        at: DateTime<Utc>,
    },
    CompleteSync {
        sync_id: SyncId,
        counts: SyncCounts,
        at: DateTime<Utc>,
    },
    FailSync {
        sync_id: SyncId,
        reason: String,
        counts: SyncCounts,
        at: DateTime<Utc>,
    },
    /// The platform refused the credentials.
    MarkNeedsReauth {
        reason: String,
        at: DateTime<Utc>,
    },
    /// A person completed the OAuth flow again for this connection.
    Reauthorize {
        at: DateTime<Utc>,
    },
    Disconnect {
        at: DateTime<Utc>,
    },
    /// The running sync stored every day of `from..=through` for this ad account.
    RecordAccountProgress {
        sync_id: SyncId,
        ad_account_id: AdAccountId,
        from: NaiveDate,
        through: NaiveDate,
        at: DateTime<Utc>,
    },
}

fn connected(state: &Connection) -> Result<&Connected, DomainError> {
    state.0.as_ref().ok_or(DomainError::NotFound("connection"))
}

pub fn decide(state: &Connection, command: &Command) -> Result<Vec<Decided>, DomainError> {
    let at_ = |event, at: &DateTime<Utc>| Decided {
        event,
        occurred_at: *at,
    };
    match command {
        Command::MarkNeedsReauth { .. }
        | Command::Reauthorize { .. }
        | Command::Disconnect { .. } => lifecycle(connected(state)?, command),
        Command::Connect {
            connection_id,
            label,
            settings,
            at,
        } => {
            if state.0.is_some() {
                return Err(DomainError::AlreadyExists("connection"));
            }
            let label = label.trim();
            if label.is_empty()
                || label.chars().count() > 200
                || label.chars().any(char::is_control)
            {
                return Err(DomainError::invalid(
                    "label",
                    "must be 1 to 200 printable characters",
                ));
            }
            Ok(vec![at_(
                DomainEvent::PlatformConnected(PlatformConnected {
                    connection_id: *connection_id,
                    label: label.to_owned(),
                    settings: settings.clone(),
                    authorization_expires_at: None,
                }),
                at,
            )])
        }
        Command::RecordDiscovery {
            ad_accounts,
            campaigns,
            at,
        } => {
            let conn = connected(state)?;
            let mut events = Vec::new();
            let mut accounts = conn.ad_accounts.clone();
            for account in ad_accounts {
                if accounts.get(&account.id) == Some(account) {
                    continue;
                }
                accounts.insert(account.id.clone(), account.clone());
                events.push(at_(
                    DomainEvent::AdAccountDiscovered(AdAccountDiscovered {
                        connection_id: conn.id,
                        ad_account_id: account.id.clone(),
                        name: account.name.clone(),
                        currency: account.currency,
                        time_zone: account.time_zone.clone(),
                    }),
                    at,
                ));
            }
            for campaign in campaigns {
                if !accounts.contains_key(&campaign.ad_account_id) {
                    return Err(DomainError::invalid(
                        "campaigns",
                        format!(
                            "campaign {} names unknown ad account {}",
                            campaign.external_id, campaign.ad_account_id
                        ),
                    ));
                }
                let campaign_id = CampaignId::derive(conn.id, &campaign.external_id);
                match conn.campaigns.get(&campaign_id) {
                    None => events.push(at_(
                        DomainEvent::CampaignDiscovered(CampaignDiscovered {
                            connection_id: conn.id,
                            campaign_id,
                            ad_account_id: campaign.ad_account_id.clone(),
                            external_id: campaign.external_id.clone(),
                            name: campaign.name.clone(),
                            status: campaign.status.clone(),
                        }),
                        at,
                    )),
                    Some(known)
                        if known.name != campaign.name || known.status != campaign.status =>
                    {
                        events.push(at_(
                            DomainEvent::CampaignChanged(CampaignChanged {
                                connection_id: conn.id,
                                campaign_id,
                                name: campaign.name.clone(),
                                status: campaign.status.clone(),
                            }),
                            at,
                        ))
                    }
                    Some(_) => {}
                }
            }
            Ok(events)
        }
        Command::StartSync {
            sync_id,
            range,
            campaign_ids,
            at,
        } => {
            let conn = connected(state)?;
            match conn.status {
                Status::Active => {}
                Status::NeedsReauth => return Err(DomainError::ConnectionUnavailable(
                    "waiting to be reconnected: its platform authorization expired or was revoked",
                )),
                Status::Disconnected => {
                    return Err(DomainError::ConnectionUnavailable("disconnected"))
                }
            }
            if let Some(unknown) = campaign_ids
                .iter()
                .find(|c| !conn.campaigns.contains_key(c))
            {
                return Err(DomainError::UnknownCampaign(*unknown));
            }
            let mut events = Vec::new();
            if let Some(running) = &conn.running_sync {
                if running.sync_id == *sync_id {
                    return Err(DomainError::AlreadyExists("sync"));
                }
                if *at - running.started_at < SYNC_ABANDONED_AFTER {
                    return Err(DomainError::SyncAlreadyRunning(running.sync_id));
                }
                events.push(at_(
                    DomainEvent::SyncFailed(SyncFailed {
                        sync_id: running.sync_id,
                        connection_id: conn.id,
                        reason: "abandoned: no progress recorded before a new sync started"
                            .to_owned(),
                        counts: SyncCounts::default(),
                    }),
                    at,
                ));
            }
            events.push(at_(
                DomainEvent::SyncStarted(SyncStarted {
                    sync_id: *sync_id,
                    connection_id: conn.id,
                    from: range.from(),
                    to: range.to(),
                    campaign_ids: campaign_ids.clone(),
                }),
                at,
            ));
            Ok(events)
        }
        Command::CompleteSync {
            sync_id,
            counts,
            at,
        } => {
            let conn = connected(state)?;
            running(conn, *sync_id)?;
            Ok(vec![at_(
                DomainEvent::SyncCompleted(SyncCompleted {
                    sync_id: *sync_id,
                    connection_id: conn.id,
                    counts: *counts,
                }),
                at,
            )])
        }
        Command::FailSync {
            sync_id,
            reason,
            counts,
            at,
        } => {
            let conn = connected(state)?;
            running(conn, *sync_id)?;
            Ok(vec![at_(
                DomainEvent::SyncFailed(SyncFailed {
                    sync_id: *sync_id,
                    connection_id: conn.id,
                    reason: reason.clone(),
                    counts: *counts,
                }),
                at,
            )])
        }
        Command::RecordAccountProgress {
            sync_id,
            ad_account_id,
            from,
            through,
            at,
        } => {
            let conn = connected(state)?;
            running(conn, *sync_id)?;
            if !conn.ad_accounts.contains_key(ad_account_id) {
                return Err(DomainError::invalid(
                    "ad_account_id",
                    format!("{ad_account_id} is not an ad account of this connection"),
                ));
            }
            if from > through {
                return Err(DomainError::invalid(
                    "through",
                    format!("`from` ({from}) is after `through` ({through})"),
                ));
            }
            let advances = match conn.cursors.get(ad_account_id) {
                None => true,
                // Contiguous with the cursor (or overlapping it) and reaching past it.
                Some(cursor) => *from <= *cursor + Duration::days(1) && through > cursor,
            };
            if !advances {
                return Ok(vec![]);
            }
            Ok(vec![at_(
                DomainEvent::AccountSynced(AccountSynced {
                    connection_id: conn.id,
                    sync_id: *sync_id,
                    ad_account_id: ad_account_id.clone(),
                    through: *through,
                }),
                at,
            )])
        }
    }
}

/// The lifecycle commands: reauthorization needed, reconnected, disconnected.
fn lifecycle(conn: &Connected, command: &Command) -> Result<Vec<Decided>, DomainError> {
    let (event, at) = match command {
        Command::MarkNeedsReauth { reason, at } => {
            if conn.status != Status::Active {
                return Ok(vec![]);
            }
            let event = DomainEvent::ConnectionNeedsReauth(ConnectionNeedsReauth {
                connection_id: conn.id,
                reason: reason.clone(),
            });
            (event, at)
        }
        Command::Reauthorize { at } => {
            if conn.status == Status::Disconnected {
                return Err(DomainError::ConnectionUnavailable("disconnected"));
            }
            let event = DomainEvent::ConnectionReauthorized(ConnectionReauthorized {
                connection_id: conn.id,
                authorization_expires_at: None,
            });
            (event, at)
        }
        Command::Disconnect { at } => {
            if conn.status == Status::Disconnected {
                return Ok(vec![]);
            }
            let event = DomainEvent::PlatformDisconnected(PlatformDisconnected {
                connection_id: conn.id,
            });
            (event, at)
        }
        _ => return Ok(vec![]),
    };
    Ok(vec![Decided {
        event,
        occurred_at: *at,
    }])
}

fn running(conn: &Connected, sync_id: SyncId) -> Result<(), DomainError> {
    match &conn.running_sync {
        Some(r) if r.sync_id == sync_id => Ok(()),
        _ => Err(DomainError::SyncNotRunning(sync_id)),
    }
}

/// Applies one event. `occurred_at` is the event's time (a sync's start time lives there).
pub fn evolve(
    mut state: Connection,
    event: &DomainEvent,
    occurred_at: DateTime<Utc>,
) -> Connection {
    match (event, state.0.as_mut()) {
        (DomainEvent::PlatformConnected(e), None) => {
            state.0 = Some(Connected {
                id: e.connection_id,
                label: e.label.clone(),
                settings: e.settings.clone(),
                ad_accounts: BTreeMap::new(),
                campaigns: BTreeMap::new(),
                running_sync: None,
                last_sync_started_at: None,
                cursors: BTreeMap::new(),
                completed_syncs: 0,
                status: Status::Active,
            });
        }
        (DomainEvent::ConnectionNeedsReauth(_), Some(c)) => c.status = Status::NeedsReauth,
        (DomainEvent::ConnectionReauthorized(_), Some(c)) => c.status = Status::Active,
        (DomainEvent::PlatformDisconnected(_), Some(c)) => c.status = Status::Disconnected,
        (DomainEvent::AdAccountDiscovered(e), Some(c)) => {
            c.ad_accounts.insert(
                e.ad_account_id.clone(),
                AdAccount {
                    id: e.ad_account_id.clone(),
                    name: e.name.clone(),
                    currency: e.currency,
                    time_zone: e.time_zone.clone(),
                },
            );
        }
        (DomainEvent::CampaignDiscovered(e), Some(c)) => {
            c.campaigns.insert(
                e.campaign_id,
                KnownCampaign {
                    ad_account_id: e.ad_account_id.clone(),
                    external_id: e.external_id.clone(),
                    name: e.name.clone(),
                    status: e.status.clone(),
                },
            );
        }
        (DomainEvent::CampaignChanged(e), Some(c)) => {
            if let Some(known) = c.campaigns.get_mut(&e.campaign_id) {
                known.name = e.name.clone();
                known.status = e.status.clone();
            }
        }
        (DomainEvent::SyncStarted(e), Some(c)) => {
            c.last_sync_started_at = Some(occurred_at);
            if let Ok(range) = DateRange::new(e.from, e.to) {
                c.running_sync = Some(RunningSync {
                    sync_id: e.sync_id,
                    started_at: occurred_at,
                    range,
                    campaign_ids: e.campaign_ids.clone(),
                });
            }
        }
        (DomainEvent::SyncCompleted(e), Some(c)) => {
            if c.running_sync.as_ref().map(|r| r.sync_id) == Some(e.sync_id) {
                c.running_sync = None;
            }
            c.completed_syncs += 1;
        }
        (DomainEvent::SyncFailed(e), Some(c))
            if c.running_sync.as_ref().map(|r| r.sync_id) == Some(e.sync_id) =>
        {
            c.running_sync = None;
        }
        (DomainEvent::AccountSynced(e), Some(c)) => {
            let cursor = c
                .cursors
                .entry(e.ad_account_id.clone())
                .or_insert(e.through);
            *cursor = (*cursor).max(e.through);
        }
        _ => {}
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn t(minutes: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + Duration::minutes(minutes)
    }

    fn range() -> DateRange {
        DateRange::new("2024-01-01".parse().unwrap(), "2024-01-31".parse().unwrap()).unwrap()
    }

    fn given(commands: &[Command]) -> Connection {
        commands.iter().fold(Connection::default(), |state, cmd| {
            let events = decide(&state, cmd).expect("given commands must be accepted");
            events
                .iter()
                .fold(state, |s, d| evolve(s, &d.event, d.occurred_at))
        })
    }

    fn connect() -> Command {
        Command::Connect {
            connection_id: ConnectionId(Uuid::from_u128(9)),
            label: "Sandbox".into(),
            settings: ConnectionSettings::Sandbox {
                seed: 1,
                ad_accounts: 1,
                campaigns: 2,
            },
            at: t(0),
        }
    }

    fn discovery(campaign_name: &str) -> Command {
        Command::RecordDiscovery {
            ad_accounts: vec![AdAccount {
                id: AdAccountId("acc-1".into()),
                name: "Main".into(),
                currency: Currency::parse("EUR").unwrap(),
                time_zone: "Europe/Berlin".into(),
            }],
            campaigns: vec![DiscoveredCampaign {
                ad_account_id: AdAccountId("acc-1".into()),
                external_id: "c1".into(),
                name: campaign_name.into(),
                status: "ACTIVE".into(),
            }],
            at: t(1),
        }
    }

    fn start(sync: u128, at: i64) -> Command {
        Command::StartSync {
            sync_id: SyncId(Uuid::from_u128(sync)),
            range: range(),
            campaign_ids: vec![],
            at: t(at),
        }
    }

    #[test]
    fn discovery_records_only_what_is_new_or_changed() {
        let state = given(&[connect()]);
        let first = decide(&state, &discovery("Spring")).unwrap();
        assert_eq!(first.len(), 2, "one account and one campaign discovered");

        let state = given(&[connect(), discovery("Spring")]);
        assert!(decide(&state, &discovery("Spring")).unwrap().is_empty());

        let renamed = decide(&state, &discovery("Summer")).unwrap();
        assert!(matches!(
            &renamed[..],
            [Decided { event: DomainEvent::CampaignChanged(e), .. }] if e.name == "Summer"
        ));
    }

    #[test]
    fn a_second_sync_is_refused_while_one_runs() {
        let state = given(&[connect(), start(1, 5)]);
        assert_eq!(
            decide(&state, &start(2, 10)),
            Err(DomainError::SyncAlreadyRunning(SyncId(Uuid::from_u128(1))))
        );
    }

    #[test]
    fn an_abandoned_sync_is_failed_when_a_new_one_starts() {
        let state = given(&[connect(), start(1, 5)]);
        let events = decide(&state, &start(2, 5 + 31)).unwrap();
        assert!(matches!(
            &events[..],
            [
                Decided { event: DomainEvent::SyncFailed(f), .. },
                Decided { event: DomainEvent::SyncStarted(s), .. }
            ] if f.sync_id == SyncId(Uuid::from_u128(1)) && s.sync_id == SyncId(Uuid::from_u128(2))
        ));
    }

    #[test]
    fn completing_a_sync_that_is_not_running_is_refused() {
        let state = given(&[connect()]);
        let complete = Command::CompleteSync {
            sync_id: SyncId(Uuid::from_u128(1)),
            counts: SyncCounts::default(),
            at: t(2),
        };
        assert_eq!(
            decide(&state, &complete),
            Err(DomainError::SyncNotRunning(SyncId(Uuid::from_u128(1))))
        );
        let state = given(&[connect(), start(1, 1), complete]);
        assert_eq!(state.0.unwrap().completed_syncs, 1);
    }

    #[test]
    fn syncing_an_unknown_campaign_is_refused() {
        let state = given(&[connect(), discovery("Spring")]);
        let stranger = CampaignId(Uuid::from_u128(77));
        let cmd = Command::StartSync {
            sync_id: SyncId(Uuid::from_u128(3)),
            range: range(),
            campaign_ids: vec![stranger],
            at: t(3),
        };
        assert_eq!(
            decide(&state, &cmd),
            Err(DomainError::UnknownCampaign(stranger))
        );
    }

    fn day(raw: &str) -> NaiveDate {
        raw.parse().unwrap()
    }

    fn progress(sync: u128, from: &str, through: &str) -> Command {
        Command::RecordAccountProgress {
            sync_id: SyncId(Uuid::from_u128(sync)),
            ad_account_id: AdAccountId("acc-1".into()),
            from: day(from),
            through: day(through),
            at: t(6),
        }
    }

    /// The cursor moved to `through` by the decision, or None when nothing was decided.
    fn synced_through(state: &Connection, cmd: &Command) -> Option<NaiveDate> {
        match &decide(state, cmd).unwrap()[..] {
            [] => None,
            [Decided {
                event: DomainEvent::AccountSynced(e),
                ..
            }] => {
                assert_eq!(e.ad_account_id, AdAccountId("acc-1".into()));
                assert_eq!(e.sync_id, SyncId(Uuid::from_u128(1)));
                Some(e.through)
            }
            other => panic!("unexpected decision {other:?}"),
        }
    }

    fn cursor(state: Connection) -> Option<NaiveDate> {
        state
            .0
            .unwrap()
            .cursors
            .get(&AdAccountId("acc-1".into()))
            .copied()
    }

    #[test]
    fn the_first_completed_chunk_sets_the_cursor() {
        let state = given(&[connect(), discovery("Spring"), start(1, 5)]);
        assert_eq!(
            synced_through(&state, &progress(1, "2024-01-01", "2024-01-10")),
            Some(day("2024-01-10"))
        );
        let state = given(&[
            connect(),
            discovery("Spring"),
            start(1, 5),
            progress(1, "2024-01-01", "2024-01-10"),
        ]);
        assert_eq!(cursor(state), Some(day("2024-01-10")));
    }

    #[test]
    fn a_contiguous_or_overlapping_chunk_advances_the_cursor() {
        let state = given(&[
            connect(),
            discovery("Spring"),
            start(1, 5),
            progress(1, "2024-01-01", "2024-01-10"),
        ]);
        // Starts the day after the cursor.
        assert_eq!(
            synced_through(&state, &progress(1, "2024-01-11", "2024-01-20")),
            Some(day("2024-01-20"))
        );
        // Re-reads a trailing window and goes past the cursor.
        assert_eq!(
            synced_through(&state, &progress(1, "2024-01-05", "2024-01-15")),
            Some(day("2024-01-15"))
        );
    }

    #[test]
    fn a_chunk_after_a_hole_does_not_move_the_cursor() {
        let state = given(&[
            connect(),
            discovery("Spring"),
            start(1, 5),
            progress(1, "2024-01-01", "2024-01-10"),
        ]);
        // 2024-01-11 was never stored: the cursor cannot jump over it.
        assert_eq!(
            synced_through(&state, &progress(1, "2024-01-12", "2024-01-20")),
            None
        );
    }

    #[test]
    fn a_re_read_of_old_days_does_not_move_the_cursor_back() {
        let state = given(&[
            connect(),
            discovery("Spring"),
            start(1, 5),
            progress(1, "2024-01-01", "2024-01-20"),
        ]);
        assert_eq!(
            synced_through(&state, &progress(1, "2024-01-01", "2024-01-10")),
            None
        );
        assert_eq!(
            synced_through(&state, &progress(1, "2024-01-15", "2024-01-20")),
            None,
            "reaching the cursor exactly is no progress"
        );
        // Even an event with an older date (never decided, but replayed) keeps the later one.
        let state = given(&[
            connect(),
            discovery("Spring"),
            start(1, 5),
            progress(1, "2024-01-01", "2024-01-20"),
        ]);
        let older = DomainEvent::AccountSynced(AccountSynced {
            connection_id: ConnectionId(Uuid::from_u128(9)),
            sync_id: SyncId(Uuid::from_u128(1)),
            ad_account_id: AdAccountId("acc-1".into()),
            through: day("2024-01-05"),
        });
        assert_eq!(cursor(evolve(state, &older, t(7))), Some(day("2024-01-20")));
    }

    #[test]
    fn progress_is_refused_unless_its_sync_runs_and_knows_the_account() {
        let idle = given(&[connect(), discovery("Spring")]);
        assert_eq!(
            decide(&idle, &progress(1, "2024-01-01", "2024-01-10")),
            Err(DomainError::SyncNotRunning(SyncId(Uuid::from_u128(1))))
        );
        let running = given(&[connect(), discovery("Spring"), start(1, 5)]);
        assert_eq!(
            decide(&running, &progress(2, "2024-01-01", "2024-01-10")),
            Err(DomainError::SyncNotRunning(SyncId(Uuid::from_u128(2))))
        );
        let stranger = Command::RecordAccountProgress {
            sync_id: SyncId(Uuid::from_u128(1)),
            ad_account_id: AdAccountId("acc-2".into()),
            from: day("2024-01-01"),
            through: day("2024-01-10"),
            at: t(6),
        };
        assert!(matches!(
            decide(&running, &stranger),
            Err(DomainError::Invalid {
                field: "ad_account_id",
                ..
            })
        ));
        assert!(matches!(
            decide(&running, &progress(1, "2024-01-10", "2024-01-01")),
            Err(DomainError::Invalid {
                field: "through",
                ..
            })
        ));
    }

    #[test]
    fn a_sync_start_is_remembered_whatever_becomes_of_it() {
        let fail = Command::FailSync {
            sync_id: SyncId(Uuid::from_u128(1)),
            reason: "boom".into(),
            counts: SyncCounts::default(),
            at: t(8),
        };
        let state = given(&[connect(), start(1, 5), fail]);
        let conn = state.0.unwrap();
        assert_eq!(conn.last_sync_started_at, Some(t(5)));
        assert!(conn.running_sync.is_none());
    }

    #[test]
    fn commands_on_a_missing_connection_are_refused() {
        assert_eq!(
            decide(&Connection::default(), &start(1, 1)),
            Err(DomainError::NotFound("connection"))
        );
        assert_eq!(
            decide(&given(&[connect()]), &connect()),
            Err(DomainError::AlreadyExists("connection"))
        );
    }

    #[test]
    fn a_connection_whose_credentials_were_refused_syncs_again_only_after_reauthorization() {
        let start = |n: u128, minutes: i64| Command::StartSync {
            sync_id: SyncId(Uuid::from_u128(n)),
            range: range(),
            campaign_ids: vec![],
            at: t(minutes),
        };
        let state = given(&[
            connect(),
            Command::MarkNeedsReauth {
                reason: "auth_expired: token revoked".into(),
                at: t(1),
            },
        ]);
        assert_eq!(state.0.as_ref().unwrap().status, Status::NeedsReauth);
        assert!(matches!(
            decide(&state, &start(1, 2)),
            Err(DomainError::ConnectionUnavailable(_))
        ));
        let again = decide(
            &state,
            &Command::MarkNeedsReauth {
                reason: "again".into(),
                at: t(2),
            },
        );
        assert_eq!(again, Ok(vec![]), "marked once");
        let state = given_more(state, Command::Reauthorize { at: t(3) });
        assert!(decide(&state, &start(1, 4)).is_ok());
        let state = given_more(state, Command::Disconnect { at: t(5) });
        assert_eq!(state.0.as_ref().unwrap().status, Status::Disconnected);
        assert!(decide(&state, &start(2, 6)).is_err());
        assert!(decide(&state, &Command::Reauthorize { at: t(7) }).is_err());
    }

    fn given_more(state: Connection, command: Command) -> Connection {
        decide(&state, &command)
            .unwrap()
            .iter()
            .fold(state, |s, d| evolve(s, &d.event, d.occurred_at))
    }
}
