//! Carrying out a sync run a worker holds the lease of: claim it on the connection (who runs it
//! now, and why), discover, then per ad account the days the run still needs, oldest chunk of
//! [`SYNC_CHUNK_DAYS`] first, each chunk's rows appended per campaign and then recorded as the
//! run's progress (which also moves the account's cursor), then the run's end. A run taken over
//! carries on after its last recorded chunk. Writes that meet a database blip are retried; a
//! platform failure ends the run as failed with its kind, keeping the days stored so far. Events
//! carry the metadata of the request that started the run, caused by the run.

use super::interrupt::{Interrupt, StopReason};
use super::tokens::Prepared;
use super::SYNC_CHUNK_DAYS;
use super::{failure, retrying};
use crate::connections::connection_target;
use crate::{CommandError, Commands, Loaded, Outcome, Target};
use adledger_connectors::resilience::{Resilient, RetryPolicy};
use adledger_connectors::{CampaignDay, Connector, ConnectorError};
use adledger_domain::campaign::{CampaignInsights, RecordDailyInsights};
use adledger_domain::connection::{self, AdAccount, Connected, Connection, RunningSync};
use adledger_domain::event::{InsightsSource, SyncCounts};
use adledger_domain::{
    AdAccountId, CampaignId, ConnectionId, DailyMetrics, DateRange, DomainError, EventMetadata,
    SyncFailure, SyncId, WorkerId, WorkspaceId,
};
use adledger_infra::RecordedEvent;
use chrono::{Duration, NaiveDate};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Mutex;

/// How many campaigns of a chunk are appended at once. Each campaign is its own stream, so
/// their appends are independent; one at a time, a sync spent most of its time waiting on
/// single commits.
pub const CONCURRENT_APPENDS: usize = 8;

/// How a run ended, as far as its worker is concerned.
#[derive(Debug)]
pub enum RunEnd {
    Completed(SyncCounts),
    Failed(SyncFailure),
    /// It had ended before this worker got to it (or another worker ended it meanwhile).
    AlreadyEnded,
    /// The worker was told to stop: shutting down (the run was handed back), or its lease was
    /// lost (another worker carries it on).
    Interrupted(StopReason),
}

/// Why the run's loop stopped early.
enum Stop {
    Failed(SyncFailure),
    Interrupted(StopReason),
    Error(CommandError),
}

impl From<CommandError> for Stop {
    fn from(e: CommandError) -> Self {
        Stop::Error(e)
    }
}

pub(crate) struct Run<'a> {
    commands: &'a Commands,
    metadata: EventMetadata,
    workspace: WorkspaceId,
    connection: ConnectionId,
    sync: SyncId,
    worker: &'a WorkerId,
    interrupt: Interrupt,
    /// The connection as the run's last decision left it.
    state: Mutex<Option<Loaded<Connection>>>,
    /// Each campaign's state after this run's last append to it: a run appends to the same
    /// campaigns chunk after chunk, and reading their growing streams each time made long
    /// ranges quadratic.
    campaigns: Mutex<HashMap<CampaignId, Loaded<CampaignInsights>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned map is still a valid map.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The metadata of the request that started `sync` (so that its run's events name who asked for
/// it and correlate with that request), caused by the run.
fn started_by(events: &[RecordedEvent], sync: SyncId) -> EventMetadata {
    let started = events.iter().find(|e| {
        e.event_type == "SyncStarted"
            && e.payload.get("sync_id").and_then(|v| v.as_str()) == Some(&sync.to_string())
    });
    let metadata = match started {
        Some(e) => serde_json::from_value(e.metadata.clone())
            .unwrap_or_else(|_| EventMetadata::system("sync-worker", sync.as_uuid())),
        None => EventMetadata::system("sync-worker", sync.as_uuid()),
    };
    metadata.caused_by(sync.as_uuid())
}

impl Commands {
    /// Carries out `sync` as `worker`, which holds its lease, until it ends or `interrupt` says
    /// to stop. Errors are adledger's own (the database stayed unreachable): the run is then
    /// left to be taken over.
    pub(crate) async fn carry_out(
        &self,
        workspace: WorkspaceId,
        connection: ConnectionId,
        sync: SyncId,
        worker: &WorkerId,
        interrupt: Interrupt,
    ) -> Result<RunEnd, CommandError> {
        // One read serves both: who started the run, and the state the claim is decided on.
        let stream = connection.stream();
        let (loaded, events) = retrying("reading the sync's connection", || {
            self.load_with_events::<Connection>(workspace, &stream)
        })
        .await?;
        let metadata = started_by(&events, sync);
        let run = Run {
            commands: self,
            metadata,
            workspace,
            connection,
            sync,
            worker,
            interrupt,
            state: Mutex::new(Some(loaded)),
            campaigns: Mutex::default(),
        };
        let claim = connection::Command::ClaimSync {
            sync_id: sync,
            worker: worker.clone(),
        };
        let conn = match run.decide(&claim).await {
            Ok(conn) => conn,
            Err(CommandError::Rejected(DomainError::SyncNotRunning(_))) => {
                return Ok(RunEnd::AlreadyEnded)
            }
            Err(e) => return Err(e),
        };
        let Some(running) = conn.running_sync.clone().filter(|r| r.sync_id == sync) else {
            // The claim gave the run up (its workers kept dying).
            tracing::warn!(workspace_id = %workspace, connection_id = %connection, sync_id = %sync,
                           "sync abandoned after repeated takeovers");
            return Ok(RunEnd::AlreadyEnded);
        };
        tracing::info!(
            workspace_id = %workspace, connection_id = %connection, sync_id = %sync,
            worker = %worker, attempt = running.attempts, "sync claimed"
        );
        let (outcome, tokens) = match self.prepare_connector(workspace, &conn).await {
            Ok(Prepared { connector, tokens }) => {
                let connector =
                    Resilient::new(connector, RetryPolicy::default(), self.breaker(connection));
                (run.fetch_all(&connector, &running).await, tokens)
            }
            Err(failure) => (Err(Stop::Failed(failure)), None),
        };
        let failure = match &outcome {
            Err(Stop::Failed(failure)) => Some(failure),
            _ => None,
        };
        self.after_run(&run.metadata, workspace, &conn, tokens, failure)
            .await;
        run.end(outcome).await
    }
}

impl Run<'_> {
    /// Decides `command` on the connection (retrying through database blips) and keeps the
    /// state it leads to for the next decision.
    async fn decide(&self, command: &connection::Command) -> Result<Connected, CommandError> {
        let after = retrying("recording the sync's progress", || async {
            let folded = lock(&self.state).clone();
            let target =
                connection_target(&self.metadata, self.workspace, self.connection).folded(folded);
            match self.commands.decide(target, command).await {
                Ok(outcome) => Ok(outcome.after()),
                Err(e) => {
                    // The cached state may be why it failed: read afresh next time.
                    *lock(&self.state) = None;
                    Err(e)
                }
            }
        })
        .await?;
        *lock(&self.state) = after.clone();
        after
            .and_then(|loaded| loaded.state.0)
            .ok_or(CommandError::NotFound("connection"))
    }

    /// Waits for `call` unless the run is told to stop first.
    async fn platform<T>(
        &self,
        call: impl Future<Output = Result<T, ConnectorError>>,
        context: &str,
    ) -> Result<T, Stop> {
        let mut interrupt = self.interrupt.clone();
        tokio::select! {
            answer = call => answer.map_err(|e| Stop::Failed(failure::platform(context, &e))),
            reason = interrupt.stopped() => Err(Stop::Interrupted(reason)),
        }
    }

    fn check_interrupt(&self) -> Result<(), Stop> {
        match self.interrupt.reason() {
            Some(reason) => Err(Stop::Interrupted(reason)),
            None => Ok(()),
        }
    }

    async fn fetch_all(
        &self,
        connector: &dyn Connector,
        running: &RunningSync,
    ) -> Result<SyncCounts, Stop> {
        let discovery = self.platform(connector.discover(), "discovery").await?;
        let conn = self
            .decide(&connection::Command::RecordDiscovery {
                ad_accounts: discovery.ad_accounts,
                campaigns: discovery.campaigns,
            })
            .await
            .map_err(|e| match e {
                CommandError::Rejected(rule) => Stop::Failed(failure::refused("discovery", &rule)),
                other => Stop::Error(other),
            })?;
        let scope: Vec<CampaignId> = if running.whole_accounts() {
            conn.campaigns.keys().copied().collect()
        } else {
            running.campaign_ids.clone()
        };
        let by_account = by_account(&conn, scope)?;
        for (account_id, campaigns) in &by_account {
            let account = conn.ad_accounts.get(account_id).ok_or_else(|| {
                Stop::Failed(failure::refused(
                    "campaigns",
                    &DomainError::invalid(
                        "ad_account_id",
                        format!("unknown ad account {account_id}"),
                    ),
                ))
            })?;
            self.sync_account(connector, &conn, account, campaigns)
                .await?;
        }
        if running.whole_accounts() {
            // An account without campaigns has nothing to fetch: its days are complete as they
            // are (rows of campaigns not yet discovered would be dropped anyway).
            for account_id in conn.ad_accounts.keys() {
                if !by_account.iter().any(|(a, _)| a == account_id) {
                    let rest = self.remaining(account_id)?;
                    if let Some(rest) = rest {
                        self.record_progress(account_id, rest, SyncCounts::default())
                            .await?;
                    }
                }
            }
        }
        Ok(self.running()?.counts)
    }

    /// The run as the last decision left it.
    fn running(&self) -> Result<RunningSync, Stop> {
        lock(&self.state)
            .as_ref()
            .and_then(|l| l.state.0.as_ref())
            .and_then(|c| c.running_sync.clone())
            .filter(|r| r.sync_id == self.sync)
            .ok_or(Stop::Error(CommandError::Rejected(
                DomainError::SyncNotRunning(self.sync),
            )))
    }

    /// The days of the run's range `account` still needs (after its last recorded chunk).
    fn remaining(&self, account: &AdAccountId) -> Result<Option<DateRange>, Stop> {
        let running = self.running()?;
        Ok(running
            .resume_from(account)
            .and_then(|from| DateRange::new(from, running.range.to()).ok()))
    }

    async fn sync_account(
        &self,
        connector: &dyn Connector,
        conn: &Connected,
        account: &AdAccount,
        campaigns: &[(CampaignId, String)],
    ) -> Result<(), Stop> {
        let Some(rest) = self.remaining(&account.id)? else {
            return Ok(());
        };
        for chunk in chunks(rest, SYNC_CHUNK_DAYS) {
            self.check_interrupt()?;
            let rows = self
                .platform(
                    connector.account_insights(account, chunk),
                    &format!("ad account {}", account.id),
                )
                .await?;
            let mut days = by_campaign(rows, chunk);
            // Campaigns without rows have nothing new to say: nothing is appended.
            let appends: Vec<_> = campaigns
                .iter()
                .filter_map(|(campaign_id, external_id)| {
                    days.remove(external_id).map(|days| (*campaign_id, days))
                })
                .collect();
            let stored: Vec<SyncCounts> = stream::iter(appends)
                .map(|(campaign_id, days)| self.record_days(conn, account, campaign_id, days))
                .buffer_unordered(CONCURRENT_APPENDS)
                .try_collect()
                .await?;
            let mut counts = SyncCounts::default();
            for c in stored {
                counts.add(c);
            }
            self.record_progress(&account.id, chunk, counts).await?;
        }
        Ok(())
    }

    /// Every day of `days` is stored for the account: the run's progress (and the account's
    /// cursor) may move.
    async fn record_progress(
        &self,
        account: &AdAccountId,
        days: DateRange,
        counts: SyncCounts,
    ) -> Result<(), Stop> {
        self.decide(&connection::Command::RecordSyncProgress {
            sync_id: self.sync,
            worker: self.worker.clone(),
            ad_account_id: account.clone(),
            from: days.from(),
            through: days.to(),
            counts,
        })
        .await
        .map(|_| ())
        .map_err(|e| match e {
            // Another worker took the run over while this one was stalled.
            CommandError::Rejected(DomainError::SyncClaimedElsewhere(_)) => {
                Stop::Interrupted(StopReason::LeaseLost)
            }
            other => Stop::Error(other),
        })
    }

    async fn record_days(
        &self,
        conn: &Connected,
        account: &AdAccount,
        campaign_id: CampaignId,
        days: Vec<(NaiveDate, DailyMetrics)>,
    ) -> Result<SyncCounts, Stop> {
        let command = RecordDailyInsights {
            source: InsightsSource {
                campaign_id,
                connection_id: conn.id,
                platform: conn.platform(),
                ad_account_id: account.id.clone(),
                sync_id: self.sync,
            },
            currency: account.currency,
            days,
        };
        let after = retrying("storing a campaign's days", || async {
            let folded = lock(&self.campaigns).remove(&campaign_id);
            let target = Target::<CampaignInsights>::new(
                &self.metadata,
                self.workspace,
                campaign_id.stream(),
            )
            .folded(folded);
            self.commands
                .decide(target, &command)
                .await
                .map(Outcome::after)
        })
        .await?;
        // No idempotency key is passed, so the store cannot answer with a duplicate: the state
        // after the decision is known.
        let after = after.ok_or(Stop::Error(CommandError::Conflict(
            "a campaign's days were answered as a duplicate".into(),
        )))?;
        let counts = after.state.tally(&command);
        lock(&self.campaigns).insert(campaign_id, after);
        Ok(counts)
    }

    /// Records how the run ended, unless it was interrupted.
    async fn end(&self, outcome: Result<SyncCounts, Stop>) -> Result<RunEnd, CommandError> {
        let (sync, workspace, connection) = (self.sync, self.workspace, self.connection);
        let failure = match outcome {
            Ok(counts) => {
                let completed = connection::Command::CompleteSync {
                    sync_id: sync,
                    worker: self.worker.clone(),
                };
                return match self.decide(&completed).await {
                    Ok(_) => {
                        tracing::info!(
                            workspace_id = %workspace, connection_id = %connection, sync_id = %sync,
                            days_recorded = counts.days_recorded, days_restated = counts.days_restated,
                            days_unchanged = counts.days_unchanged, "sync completed"
                        );
                        Ok(RunEnd::Completed(counts))
                    }
                    Err(CommandError::Rejected(DomainError::SyncClaimedElsewhere(_))) => {
                        Ok(RunEnd::Interrupted(StopReason::LeaseLost))
                    }
                    Err(e) => Err(e),
                };
            }
            Err(Stop::Interrupted(StopReason::Shutdown)) => {
                let handed_back = connection::Command::HandBackSync {
                    sync_id: sync,
                    worker: self.worker.clone(),
                    reason: "its worker is shutting down".into(),
                };
                self.decide(&handed_back).await?;
                tracing::info!(workspace_id = %workspace, connection_id = %connection, sync_id = %sync,
                               "sync handed back");
                return Ok(RunEnd::Interrupted(StopReason::Shutdown));
            }
            Err(Stop::Interrupted(StopReason::LeaseLost)) => {
                tracing::warn!(workspace_id = %workspace, connection_id = %connection, sync_id = %sync,
                               "sync lease lost; another worker carries it on");
                return Ok(RunEnd::Interrupted(StopReason::LeaseLost));
            }
            Err(Stop::Failed(failure)) => failure,
            Err(Stop::Error(CommandError::Rejected(DomainError::SyncNotRunning(_)))) => {
                return Ok(RunEnd::AlreadyEnded)
            }
            // Still unreachable after the retries: leave the run to a takeover rather than
            // record a failure that may not be true.
            Err(Stop::Error(e)) if e.is_transient() => return Err(e),
            Err(Stop::Error(e)) => failure::internal("could not store the sync's results", &e),
        };
        tracing::warn!(
            workspace_id = %workspace, connection_id = %connection, sync_id = %sync,
            failure = %failure, "sync failed"
        );
        let failed = connection::Command::FailSync {
            sync_id: sync,
            worker: self.worker.clone(),
            failure: failure.clone(),
        };
        match self.decide(&failed).await {
            Ok(_) => Ok(RunEnd::Failed(failure)),
            Err(CommandError::Rejected(DomainError::SyncClaimedElsewhere(_))) => {
                Ok(RunEnd::Interrupted(StopReason::LeaseLost))
            }
            Err(e) => Err(e),
        }
    }
}

/// An ad account and the campaigns of a run's scope in it (with their platform ids).
type AccountScope = (AdAccountId, Vec<(CampaignId, String)>);

/// The scope's campaigns grouped by ad account: scope order is kept within an account, accounts
/// go in the order of their first campaign.
fn by_account(conn: &Connected, scope: Vec<CampaignId>) -> Result<Vec<AccountScope>, Stop> {
    let mut grouped: Vec<AccountScope> = Vec::new();
    for campaign_id in scope {
        let campaign = conn.campaigns.get(&campaign_id).ok_or_else(|| {
            Stop::Failed(failure::refused(
                "campaigns",
                &DomainError::UnknownCampaign(campaign_id),
            ))
        })?;
        let entry = (campaign_id, campaign.external_id.clone());
        match grouped
            .iter_mut()
            .find(|(account, _)| *account == campaign.ad_account_id)
        {
            Some((_, campaigns)) => campaigns.push(entry),
            None => grouped.push((campaign.ad_account_id.clone(), vec![entry])),
        }
    }
    Ok(grouped)
}

/// `range` cut into consecutive ranges of at most `days` days, oldest first.
fn chunks(range: DateRange, days: u32) -> Vec<DateRange> {
    let step = Duration::days(i64::from(days.max(1)));
    let mut out = Vec::new();
    let mut from = range.from();
    while from <= range.to() {
        let to = (from + step - Duration::days(1)).min(range.to());
        // from <= to by construction, and a part is never longer than the whole.
        if let Ok(chunk) = DateRange::new(from, to) {
            out.push(chunk);
        }
        from = to + Duration::days(1);
    }
    out
}

/// An account's rows per campaign external id, only days of the fetched range, in date order
/// (platforms sometimes answer with more than was asked; only the range is this fetch's).
fn by_campaign(
    rows: Vec<CampaignDay>,
    range: DateRange,
) -> BTreeMap<String, Vec<(NaiveDate, DailyMetrics)>> {
    let mut grouped: BTreeMap<String, BTreeMap<NaiveDate, DailyMetrics>> = BTreeMap::new();
    for row in rows {
        if range.contains(row.date) {
            // A day listed twice keeps its last report, as a restatement would.
            grouped
                .entry(row.campaign_external_id)
                .or_default()
                .insert(row.date, row.metrics);
        }
    }
    grouped
        .into_iter()
        .map(|(campaign, days)| (campaign, days.into_iter().collect()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(from: &str, to: &str) -> DateRange {
        DateRange::new(from.parse().unwrap(), to.parse().unwrap()).unwrap()
    }

    #[test]
    fn a_range_is_cut_into_consecutive_chunks_oldest_first() {
        assert_eq!(
            chunks(range("2024-01-01", "2024-03-10"), 30),
            vec![
                range("2024-01-01", "2024-01-30"),
                range("2024-01-31", "2024-02-29"),
                range("2024-03-01", "2024-03-10"),
            ]
        );
        assert_eq!(
            chunks(range("2024-01-01", "2024-01-30"), 30),
            vec![range("2024-01-01", "2024-01-30")]
        );
        assert_eq!(
            chunks(range("2024-01-01", "2024-01-01"), 30),
            vec![range("2024-01-01", "2024-01-01")]
        );
    }
}
