//! The connection aggregate: one connected platform login, the ad accounts and campaigns
//! discovered through it, and its sync runs.
//!
//! Rules: at most one sync runs per connection at a time. A run is carried out by one worker at a
//! time, the one that claimed it last; only that worker may record its progress or end it, so a
//! worker whose run was taken over cannot write over its successor. A run goes through each ad
//! account's range oldest chunk first and records each chunk as progress, so a successor carries
//! on after the last recorded chunk: nothing is read twice, nothing is skipped. A run whose
//! workers keep dying is given up after [`MAX_LEASE_LAPSES`] takeovers. Each ad account has a
//! sync cursor, the last day up to which every day is stored; it moves only forward and only over
//! a contiguous run of completed days, and only runs over every campaign move it.

use crate::aggregate::Aggregate;
use crate::event::{
    AccountSynced, AdAccountDiscovered, CampaignChanged, CampaignDiscovered, ClaimReason,
    ConnectionNeedsReauth, ConnectionReauthorized, ConnectionSettings, PlatformConnected,
    PlatformDisconnected, SyncClaimed, SyncCompleted, SyncCounts, SyncFailed, SyncHandedBack,
    SyncProgressed, SyncStarted,
};
use crate::failure::{FailureKind, SyncFailure};
use crate::{
    AdAccountId, CampaignId, ConnectionId, Currency, DateRange, DomainError, DomainEvent, Platform,
    StreamType, SyncId, WorkerId,
};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use std::collections::BTreeMap;

/// Takeovers after a lapsed lease that a run may go through before it is given up as abandoned:
/// a run that kills every worker that carries it must not kill them forever.
pub const MAX_LEASE_LAPSES: u32 = 5;

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
    /// Empty means every campaign of the connection.
    pub campaign_ids: Vec<CampaignId>,
    /// The worker carrying it out now; `None` before its first claim and after a hand-back.
    pub worker: Option<WorkerId>,
    /// The worker that carried it out last (kept after a hand-back).
    pub last_worker: Option<WorkerId>,
    /// How many times it was claimed.
    pub attempts: u32,
    /// How many of those claims took it over from a worker whose lease lapsed.
    pub lapses: u32,
    /// Per ad account, the last day of the range this run has stored (from its first day).
    pub progress: BTreeMap<AdAccountId, NaiveDate>,
    /// What the recorded chunks stored, summed.
    pub counts: SyncCounts,
}

impl RunningSync {
    /// A run just started, nobody has claimed it yet.
    pub fn new(
        sync_id: SyncId,
        started_at: DateTime<Utc>,
        range: DateRange,
        campaign_ids: Vec<CampaignId>,
    ) -> Self {
        Self {
            sync_id,
            started_at,
            range,
            campaign_ids,
            worker: None,
            last_worker: None,
            attempts: 0,
            lapses: 0,
            progress: BTreeMap::new(),
            counts: SyncCounts::default(),
        }
    }

    /// Whether this run reads whole ad accounts (and so may move their cursors).
    pub fn whole_accounts(&self) -> bool {
        self.campaign_ids.is_empty()
    }

    /// The first day of the range `account` still needs, `None` when it has every day.
    pub fn resume_from(&self, account: &AdAccountId) -> Option<NaiveDate> {
        match self.progress.get(account) {
            None => Some(self.range.from()),
            Some(through) if *through >= self.range.to() => None,
            Some(through) => Some(*through + Duration::days(1)),
        }
    }
}

crate::named_enum! {
    /// Whether a connection can sync.
    pub enum Status {
        Active => "active",
        /// The platform refused its credentials: a person must reconnect it.
        NeedsReauth => "needs_reauth",
        Disconnected => "disconnected",
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
    /// The sync that ended last, so that a retried end of it is answered as done.
    pub last_ended_sync: Option<SyncId>,
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
    /// A connection just connected: no accounts, campaigns or syncs yet.
    pub fn new(id: ConnectionId, label: String, settings: ConnectionSettings) -> Self {
        Self {
            id,
            label,
            settings,
            ad_accounts: BTreeMap::new(),
            campaigns: BTreeMap::new(),
            running_sync: None,
            last_ended_sync: None,
            last_sync_started_at: None,
            cursors: BTreeMap::new(),
            completed_syncs: 0,
            status: Status::Active,
        }
    }

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
        /// When the granted authorization ends unless a person renews it (a token the platform
        /// cannot refresh, such as Meta's 60-day token); `None` when it is refreshed by itself.
        authorization_expires_at: Option<DateTime<Utc>>,
    },
    RecordDiscovery {
        ad_accounts: Vec<AdAccount>,
        campaigns: Vec<DiscoveredCampaign>,
    },
    StartSync {
        sync_id: SyncId,
        range: DateRange,
        /// Empty means every campaign of the connection.
        campaign_ids: Vec<CampaignId>,
        /// The most campaign-days (campaigns × days of the range) a sync of the sandbox may
        /// cover: the sandbox generates whatever it is asked for, so its operator bounds it.
        /// `None`: no bound. Real platforms bound their own answers.
        max_sandbox_campaign_days: Option<u64>,
    },
    /// `worker` holds the run's lease and carries it out from now on.
    ClaimSync {
        sync_id: SyncId,
        worker: WorkerId,
    },
    /// `worker` stops before the end (it is shutting down); another worker carries on.
    HandBackSync {
        sync_id: SyncId,
        worker: WorkerId,
        reason: String,
    },
    /// The run stored every day of `from..=through` for this ad account, which did `counts`.
    RecordSyncProgress {
        sync_id: SyncId,
        worker: WorkerId,
        ad_account_id: AdAccountId,
        from: NaiveDate,
        through: NaiveDate,
        counts: SyncCounts,
    },
    CompleteSync {
        sync_id: SyncId,
        worker: WorkerId,
    },
    FailSync {
        sync_id: SyncId,
        worker: WorkerId,
        failure: SyncFailure,
    },
    /// The platform refused the credentials.
    MarkNeedsReauth {
        reason: String,
    },
    /// A person completed the OAuth flow again for this connection.
    Reauthorize {
        authorization_expires_at: Option<DateTime<Utc>>,
    },
    Disconnect,
}

fn connected(state: &Connection) -> Result<&Connected, DomainError> {
    state.0.as_ref().ok_or(DomainError::NotFound("connection"))
}

/// A connection label: trimmed, 1 to 200 printable characters.
fn label(raw: &str) -> Result<String, DomainError> {
    let label = raw.trim();
    if label.is_empty() || label.chars().count() > 200 || label.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "label",
            "must be 1 to 200 printable characters",
        ));
    }
    Ok(label.to_owned())
}

/// The run, if it is the one running.
fn running(conn: &Connected, sync_id: SyncId) -> Result<&RunningSync, DomainError> {
    conn.running_sync
        .as_ref()
        .filter(|r| r.sync_id == sync_id)
        .ok_or(DomainError::SyncNotRunning(sync_id))
}

/// The run, if it is the one running and `worker` carries it out.
fn claimed<'a>(
    conn: &'a Connected,
    sync_id: SyncId,
    worker: &WorkerId,
) -> Result<&'a RunningSync, DomainError> {
    let run = running(conn, sync_id)?;
    if run.worker.as_ref() != Some(worker) {
        return Err(DomainError::SyncClaimedElsewhere(sync_id));
    }
    Ok(run)
}

/// Whether `sync_id` already ended: a retried end (its first try was stored after all) is done.
fn ended(conn: &Connected, sync_id: SyncId) -> bool {
    conn.last_ended_sync == Some(sync_id)
}

impl Connected {
    fn discovery(
        &self,
        ad_accounts: &[AdAccount],
        campaigns: &[DiscoveredCampaign],
    ) -> Result<Vec<DomainEvent>, DomainError> {
        let mut events = Vec::new();
        let mut accounts = self.ad_accounts.clone();
        for account in ad_accounts {
            if accounts.get(&account.id) == Some(account) {
                continue;
            }
            accounts.insert(account.id.clone(), account.clone());
            events.push(DomainEvent::AdAccountDiscovered(AdAccountDiscovered {
                connection_id: self.id,
                ad_account_id: account.id.clone(),
                name: account.name.clone(),
                currency: account.currency,
                time_zone: account.time_zone.clone(),
            }));
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
            let campaign_id = CampaignId::derive(self.id, &campaign.external_id);
            match self.campaigns.get(&campaign_id) {
                None => events.push(DomainEvent::CampaignDiscovered(CampaignDiscovered {
                    connection_id: self.id,
                    campaign_id,
                    ad_account_id: campaign.ad_account_id.clone(),
                    external_id: campaign.external_id.clone(),
                    name: campaign.name.clone(),
                    status: campaign.status.clone(),
                })),
                Some(known) if known.name != campaign.name || known.status != campaign.status => {
                    events.push(DomainEvent::CampaignChanged(CampaignChanged {
                        connection_id: self.id,
                        campaign_id,
                        name: campaign.name.clone(),
                        status: campaign.status.clone(),
                    }))
                }
                Some(_) => {}
            }
        }
        Ok(events)
    }

    fn start(
        &self,
        sync_id: SyncId,
        range: &DateRange,
        campaign_ids: &[CampaignId],
    ) -> Result<Vec<DomainEvent>, DomainError> {
        match self.status {
            Status::Active => {}
            Status::NeedsReauth => {
                return Err(DomainError::ConnectionUnavailable(
                    "waiting to be reconnected: its platform authorization expired or was revoked",
                ))
            }
            Status::Disconnected => return Err(DomainError::ConnectionUnavailable("disconnected")),
        }
        if let Some(unknown) = campaign_ids
            .iter()
            .find(|c| !self.campaigns.contains_key(c))
        {
            return Err(DomainError::UnknownCampaign(*unknown));
        }
        if let Some(running) = &self.running_sync {
            if running.sync_id == sync_id {
                return Err(DomainError::AlreadyExists("sync"));
            }
            // Whether it still makes progress is its lease's business: a run whose worker died
            // is taken over and finished, never replaced.
            return Err(DomainError::SyncAlreadyRunning(running.sync_id));
        }
        Ok(vec![DomainEvent::SyncStarted(SyncStarted {
            sync_id,
            connection_id: self.id,
            from: range.from(),
            to: range.to(),
            campaign_ids: campaign_ids.to_vec(),
        })])
    }

    /// Refuses a sandbox sync over more than `max` campaign-days. Every campaign counts when
    /// none is named, by the settings too: discovery may not have listed them yet.
    fn within_sandbox_limit(
        &self,
        range: &DateRange,
        campaign_ids: &[CampaignId],
        max: Option<u64>,
    ) -> Result<(), DomainError> {
        let (ConnectionSettings::Sandbox { campaigns, .. }, Some(max)) = (&self.settings, max)
        else {
            return Ok(());
        };
        let count = match campaign_ids.len() {
            0 => self.campaigns.len().max(*campaigns as usize),
            named => named,
        } as u64;
        let days = range.len_days().unsigned_abs();
        let asked = count.saturating_mul(days);
        if asked > max {
            return Err(DomainError::invalid(
                "to",
                format!(
                    "a sandbox sync covers at most {max} campaign-days (campaigns × days); this \
                     one asks for {count} × {days} = {asked}: shorten the range or name fewer \
                     campaigns"
                ),
            ));
        }
        Ok(())
    }

    fn claim(&self, sync_id: SyncId, worker: &WorkerId) -> Result<Vec<DomainEvent>, DomainError> {
        let run = running(self, sync_id)?;
        if run.worker.as_ref() == Some(worker) {
            return Ok(vec![]);
        }
        let (reason, previous_worker) = match (&run.worker, run.attempts) {
            (_, 0) => (ClaimReason::FirstRun, None),
            (Some(previous), _) => (ClaimReason::LeaseLapsed, Some(previous.clone())),
            (None, _) => (ClaimReason::HandedBack, run.last_worker.clone()),
        };
        if reason == ClaimReason::LeaseLapsed && run.lapses + 1 >= MAX_LEASE_LAPSES {
            return Ok(vec![DomainEvent::SyncFailed(SyncFailed {
                sync_id,
                connection_id: self.id,
                failure: SyncFailure::new(
                    FailureKind::Abandoned,
                    format!(
                        "its worker stopped {MAX_LEASE_LAPSES} times before it could finish; \
                         the days it stored are kept"
                    ),
                ),
                counts: run.counts,
            })]);
        }
        Ok(vec![DomainEvent::SyncClaimed(SyncClaimed {
            sync_id,
            connection_id: self.id,
            worker: worker.clone(),
            attempt: run.attempts + 1,
            reason,
            previous_worker,
        })])
    }

    fn progress(
        &self,
        sync_id: SyncId,
        worker: &WorkerId,
        account: &AdAccountId,
        (from, through): (NaiveDate, NaiveDate),
        counts: SyncCounts,
    ) -> Result<Vec<DomainEvent>, DomainError> {
        let run = claimed(self, sync_id, worker)?;
        if !self.ad_accounts.contains_key(account) {
            return Err(DomainError::invalid(
                "ad_account_id",
                format!("{account} is not an ad account of this connection"),
            ));
        }
        if from > through || from < run.range.from() || through > run.range.to() {
            return Err(DomainError::invalid(
                "through",
                format!(
                    "{from}..={through} is not a part of the run's range {}..={}",
                    run.range.from(),
                    run.range.to()
                ),
            ));
        }
        let Some(next) = run.resume_from(account) else {
            return Ok(vec![]);
        };
        if through < next {
            // Recorded before (a retried write that had been stored after all).
            return Ok(vec![]);
        }
        if from > next {
            return Err(DomainError::invalid(
                "from",
                format!("the run has not stored {next} yet: {from}..={through} would leave a hole"),
            ));
        }
        let mut events = vec![DomainEvent::SyncProgressed(SyncProgressed {
            sync_id,
            connection_id: self.id,
            ad_account_id: account.clone(),
            from,
            through,
            counts,
        })];
        let advances = match self.cursors.get(account) {
            None => true,
            // Contiguous with the cursor (or overlapping it) and reaching past it.
            Some(cursor) => from <= *cursor + Duration::days(1) && through > *cursor,
        };
        if run.whole_accounts() && advances {
            events.push(DomainEvent::AccountSynced(AccountSynced {
                connection_id: self.id,
                sync_id,
                ad_account_id: account.clone(),
                through,
            }));
        }
        Ok(events)
    }

    fn end(
        &self,
        sync_id: SyncId,
        worker: &WorkerId,
        failure: Option<&SyncFailure>,
    ) -> Result<Vec<DomainEvent>, DomainError> {
        if ended(self, sync_id) {
            return Ok(vec![]);
        }
        let run = claimed(self, sync_id, worker)?;
        let event = match failure {
            None => DomainEvent::SyncCompleted(SyncCompleted {
                sync_id,
                connection_id: self.id,
                counts: run.counts,
            }),
            Some(failure) => DomainEvent::SyncFailed(SyncFailed {
                sync_id,
                connection_id: self.id,
                failure: failure.clone(),
                counts: run.counts,
            }),
        };
        Ok(vec![event])
    }

    /// The lifecycle commands: reauthorization needed, reconnected, disconnected.
    fn lifecycle(&self, command: &Command) -> Result<Vec<DomainEvent>, DomainError> {
        let event = match command {
            Command::MarkNeedsReauth { reason } => {
                if self.status != Status::Active {
                    return Ok(vec![]);
                }
                DomainEvent::ConnectionNeedsReauth(ConnectionNeedsReauth {
                    connection_id: self.id,
                    reason: reason.clone(),
                })
            }
            Command::Reauthorize {
                authorization_expires_at,
            } => {
                if self.status == Status::Disconnected {
                    return Err(DomainError::ConnectionUnavailable("disconnected"));
                }
                DomainEvent::ConnectionReauthorized(ConnectionReauthorized {
                    connection_id: self.id,
                    authorization_expires_at: *authorization_expires_at,
                })
            }
            Command::Disconnect => {
                if self.status == Status::Disconnected {
                    return Ok(vec![]);
                }
                DomainEvent::PlatformDisconnected(PlatformDisconnected {
                    connection_id: self.id,
                })
            }
            _ => return Ok(vec![]),
        };
        Ok(vec![event])
    }
}

impl Aggregate for Connection {
    const STREAM_TYPE: StreamType = StreamType::Connection;
    const NAME: &'static str = "connection";
    type Command = Command;

    fn decide(&self, command: &Command, _: DateTime<Utc>) -> Result<Vec<DomainEvent>, DomainError> {
        if let Command::Connect {
            connection_id,
            label: raw,
            settings,
            authorization_expires_at,
        } = command
        {
            if self.0.is_some() {
                return Err(DomainError::AlreadyExists("connection"));
            }
            return Ok(vec![DomainEvent::PlatformConnected(PlatformConnected {
                connection_id: *connection_id,
                label: label(raw)?,
                settings: settings.clone(),
                authorization_expires_at: *authorization_expires_at,
            })]);
        }
        let conn = connected(self)?;
        match command {
            Command::Connect { .. } => Err(DomainError::AlreadyExists("connection")),
            Command::RecordDiscovery {
                ad_accounts,
                campaigns,
            } => conn.discovery(ad_accounts, campaigns),
            Command::StartSync {
                sync_id,
                range,
                campaign_ids,
                max_sandbox_campaign_days,
            } => {
                conn.within_sandbox_limit(range, campaign_ids, *max_sandbox_campaign_days)?;
                conn.start(*sync_id, range, campaign_ids)
            }
            Command::ClaimSync { sync_id, worker } => conn.claim(*sync_id, worker),
            Command::HandBackSync {
                sync_id,
                worker,
                reason,
            } => {
                claimed(conn, *sync_id, worker)?;
                Ok(vec![DomainEvent::SyncHandedBack(SyncHandedBack {
                    sync_id: *sync_id,
                    connection_id: conn.id,
                    worker: worker.clone(),
                    reason: reason.clone(),
                })])
            }
            Command::RecordSyncProgress {
                sync_id,
                worker,
                ad_account_id,
                from,
                through,
                counts,
            } => conn.progress(*sync_id, worker, ad_account_id, (*from, *through), *counts),
            Command::CompleteSync { sync_id, worker } => conn.end(*sync_id, worker, None),
            Command::FailSync {
                sync_id,
                worker,
                failure,
            } => conn.end(*sync_id, worker, Some(failure)),
            Command::MarkNeedsReauth { .. } | Command::Reauthorize { .. } | Command::Disconnect => {
                conn.lifecycle(command)
            }
        }
    }

    /// `occurred_at` is the event's time (a sync's start time lives there).
    fn evolve(mut self, event: &DomainEvent, occurred_at: DateTime<Utc>) -> Self {
        if let (DomainEvent::PlatformConnected(e), None) = (event, &self.0) {
            self.0 = Some(Connected::new(
                e.connection_id,
                e.label.clone(),
                e.settings.clone(),
            ));
            return self;
        }
        let Some(c) = self.0.as_mut() else {
            return self;
        };
        match event {
            DomainEvent::ConnectionNeedsReauth(_) => c.status = Status::NeedsReauth,
            DomainEvent::ConnectionReauthorized(_) => c.status = Status::Active,
            DomainEvent::PlatformDisconnected(_) => c.status = Status::Disconnected,
            DomainEvent::AdAccountDiscovered(e) => {
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
            DomainEvent::CampaignDiscovered(e) => {
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
            DomainEvent::CampaignChanged(e) => {
                if let Some(known) = c.campaigns.get_mut(&e.campaign_id) {
                    known.name = e.name.clone();
                    known.status = e.status.clone();
                }
            }
            DomainEvent::SyncStarted(e) => {
                c.last_sync_started_at = Some(occurred_at);
                if let Ok(range) = DateRange::new(e.from, e.to) {
                    c.running_sync = Some(RunningSync::new(
                        e.sync_id,
                        occurred_at,
                        range,
                        e.campaign_ids.clone(),
                    ));
                }
            }
            DomainEvent::SyncClaimed(e) => {
                if let Some(r) = run(c, e.sync_id) {
                    r.worker = Some(e.worker.clone());
                    r.last_worker = Some(e.worker.clone());
                    r.attempts = e.attempt;
                    if e.reason == ClaimReason::LeaseLapsed {
                        r.lapses += 1;
                    }
                }
            }
            DomainEvent::SyncHandedBack(e) => {
                if let Some(r) = run(c, e.sync_id) {
                    r.worker = None;
                }
            }
            DomainEvent::SyncProgressed(e) => {
                if let Some(r) = run(c, e.sync_id) {
                    let through = r
                        .progress
                        .entry(e.ad_account_id.clone())
                        .or_insert(e.through);
                    *through = (*through).max(e.through);
                    r.counts.add(e.counts);
                }
            }
            DomainEvent::SyncCompleted(e) => {
                if run(c, e.sync_id).is_some() {
                    c.running_sync = None;
                }
                c.last_ended_sync = Some(e.sync_id);
                c.completed_syncs += 1;
            }
            DomainEvent::SyncFailed(e) => {
                if run(c, e.sync_id).is_some() {
                    c.running_sync = None;
                }
                c.last_ended_sync = Some(e.sync_id);
            }
            DomainEvent::AccountSynced(e) => {
                let cursor = c
                    .cursors
                    .entry(e.ad_account_id.clone())
                    .or_insert(e.through);
                *cursor = (*cursor).max(e.through);
                // Runs recorded before `SyncProgressed` existed marked their progress this way.
                if let Some(r) = run(c, e.sync_id) {
                    let through = r
                        .progress
                        .entry(e.ad_account_id.clone())
                        .or_insert(e.through);
                    *through = (*through).max(e.through);
                }
            }
            _ => {}
        }
        self
    }
}

/// The running sync of `c`, if it is `sync`.
fn run(c: &mut Connected, sync: SyncId) -> Option<&mut RunningSync> {
    c.running_sync.as_mut().filter(|r| r.sync_id == sync)
}

#[cfg(test)]
mod tests;
