//! Running a started sync: discovery, then per ad account its range in chunks of
//! [`SYNC_CHUNK_DAYS`], oldest first, each chunk's rows appended per campaign and then recorded
//! as the account's progress (its sync cursor), then the sync's end. Platform failures end the
//! sync as failed with a classified reason; days already stored are kept (they are facts the
//! platform reported) and the cursor stays at the last contiguous completed chunk. Events are
//! stamped when they happen (discovery, each campaign, the end), not with the time the sync was
//! requested. Runs wait for one of the process's sync slots ([`Commands::with_max_concurrent_syncs`]).

use crate::execute::{Executed, Loaded, Target};
use crate::{CommandContext, CommandError, Commands};
use adledger_connectors::resilience::{Resilient, RetryPolicy};
use adledger_connectors::{CampaignDay, Connector, ConnectorError};
use adledger_domain::campaign::{self, CampaignInsights, RecordDailyInsights};
use adledger_domain::connection::{self, AdAccount, Connected, Connection, RunningSync};
use adledger_domain::event::{InsightsSource, SyncCounts};
use adledger_domain::{
    AdAccountId, CampaignId, ConnectionId, DailyMetrics, DateRange, DomainError, EventMetadata,
    SyncId, WorkspaceId,
};
use chrono::{Duration, NaiveDate};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tokio::sync::OwnedSemaphorePermit;

/// Days of one ad account fetched, stored and recorded as progress at a time. 30 is what every
/// supported platform accepts per daily-report request (TikTok's limit is the tightest).
pub const SYNC_CHUNK_DAYS: u32 = 30;

/// How many campaigns of a chunk are appended at once. Each campaign is its own stream, so
/// their appends are independent; one at a time, a sync spent most of its time waiting on
/// single commits.
pub const CONCURRENT_APPENDS: usize = 8;

/// Builds the connector that a run of this connection talks to.
pub type ConnectorFactory = Arc<dyn Fn(&Connected) -> Box<dyn Connector> + Send + Sync>;

/// Marks a sync as being run by this process for as long as it lives.
struct RunGuard {
    running: Arc<Mutex<std::collections::HashSet<SyncId>>>,
    sync: SyncId,
}

impl RunGuard {
    fn claim(commands: &Commands, sync: SyncId) -> Option<Self> {
        let mut running = commands
            .running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        running.insert(sync).then(|| RunGuard {
            running: commands.running.clone(),
            sync,
        })
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        let mut running = self
            .running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        running.remove(&self.sync);
    }
}

/// Why a run stopped early.
enum Stop {
    /// The platform failed: record the sync as failed with this reason.
    Platform(String),
    /// Anything else (store down, conflict): try to record the failure, then report this error.
    Command(CommandError),
}

impl From<CommandError> for Stop {
    fn from(e: CommandError) -> Self {
        Stop::Command(e)
    }
}

fn platform_failure(context: &str, e: &ConnectorError) -> Stop {
    Stop::Platform(format!("{}: {context}: {e}", e.kind()))
}

struct Run<'a> {
    commands: &'a Commands,
    metadata: EventMetadata,
    workspace: WorkspaceId,
    connection: ConnectionId,
    sync: SyncId,
    /// Each campaign's state after this run's last append to it: a run appends to the same
    /// campaigns chunk after chunk, and reading their growing streams each time made long
    /// ranges quadratic.
    campaigns: Mutex<HashMap<CampaignId, Loaded<CampaignInsights>>>,
}

impl Commands {
    /// Runs a started sync to its end: discovery (RecordDiscovery on the connection stream), then
    /// for each ad account owning a campaign in scope (all campaigns when scope empty) fetch the
    /// account's daily insights for the range once, and for each of its campaigns in scope that
    /// has rows append the campaign aggregate's decision to stream campaign-<id>, summing SyncCounts;
    /// finally CompleteSync with the counts, or FailSync with the classified reason and the
    /// counts so far if anything failed (completed campaigns' days are kept). Returns the counts.
    ///
    /// A second run of a sync this process is already running is refused with
    /// `SyncAlreadyRunning`. Across processes, the campaign streams' expected versions keep a
    /// duplicate run from storing any day twice, and only one of them can end the sync.
    pub async fn run_sync(
        &self,
        ctx: &CommandContext,
        workspace: WorkspaceId,
        connection: ConnectionId,
        sync: SyncId,
    ) -> Result<SyncCounts, CommandError> {
        // Claimed before the first await, so of two runs started together one always wins.
        let Some(guard) = RunGuard::claim(self, sync) else {
            return Err(CommandError::Rejected(DomainError::SyncAlreadyRunning(
                sync,
            )));
        };
        // Never closed, so acquiring cannot fail; a run waits here for its turn.
        let slot = self
            .sync_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| CommandError::Conflict("the sync slots were closed".into()))?;
        self.run_claimed(ctx, workspace, connection, sync, guard, slot)
            .await
    }

    /// Runs a sync in a slot the caller already holds (the scheduler takes a free slot before it
    /// starts a sync, so scheduled syncs never wait as `running`).
    pub(crate) async fn run_sync_in_slot(
        &self,
        ctx: &CommandContext,
        workspace: WorkspaceId,
        connection: ConnectionId,
        sync: SyncId,
        slot: OwnedSemaphorePermit,
    ) -> Result<SyncCounts, CommandError> {
        let Some(guard) = RunGuard::claim(self, sync) else {
            return Err(CommandError::Rejected(DomainError::SyncAlreadyRunning(
                sync,
            )));
        };
        self.run_claimed(ctx, workspace, connection, sync, guard, slot)
            .await
    }

    async fn run_claimed(
        &self,
        ctx: &CommandContext,
        workspace: WorkspaceId,
        connection: ConnectionId,
        sync: SyncId,
        _guard: RunGuard,
        _slot: OwnedSemaphorePermit,
    ) -> Result<SyncCounts, CommandError> {
        let conn = self.connected(workspace, connection).await?;
        let running = match &conn.running_sync {
            Some(r) if r.sync_id == sync => r.clone(),
            _ => return Err(CommandError::Rejected(DomainError::SyncNotRunning(sync))),
        };
        let run = Run {
            commands: self,
            metadata: ctx.metadata.clone().caused_by(sync.as_uuid()),
            workspace,
            connection,
            sync,
            campaigns: Mutex::default(),
        };
        let mut counts = SyncCounts::default();
        let (outcome, tokens) = match self.prepare_connector(&conn).await {
            Ok(prepared) => {
                let connector = Resilient::new(
                    prepared.connector,
                    RetryPolicy::default(),
                    self.breaker(connection),
                );
                let outcome = run.fetch_all(&connector, &running, &mut counts).await;
                (outcome, prepared.tokens)
            }
            Err(reason) => (Err(Stop::Platform(reason)), None),
        };
        let failure = match &outcome {
            Err(Stop::Platform(reason)) => Some(reason.as_str()),
            _ => None,
        };
        self.after_run(&run.metadata, workspace, &conn, tokens, failure)
            .await;
        match outcome {
            Ok(()) => {
                run.end(connection::Command::CompleteSync {
                    sync_id: sync,
                    counts,
                    at: chrono::Utc::now(),
                })
                .await?;
                tracing::info!(
                    workspace_id = %workspace, connection_id = %connection, sync_id = %sync,
                    days_recorded = counts.days_recorded, days_restated = counts.days_restated,
                    days_unchanged = counts.days_unchanged, "sync completed"
                );
                Ok(counts)
            }
            Err(stop) => {
                let (reason, error) = match stop {
                    Stop::Platform(reason) => (reason.clone(), CommandError::Connector(reason)),
                    // Store errors may carry database text: it stays in logs, not in events.
                    Stop::Command(e) => ("internal: could not store the sync's results".into(), e),
                };
                tracing::warn!(
                    workspace_id = %workspace, connection_id = %connection, sync_id = %sync,
                    %reason, "sync failed"
                );
                let failed = connection::Command::FailSync {
                    sync_id: sync,
                    reason,
                    counts,
                    at: chrono::Utc::now(),
                };
                if let Err(e) = run.end(failed).await {
                    tracing::error!(sync_id = %sync, error = %e, "could not record the sync failure");
                }
                Err(error)
            }
        }
    }
}

impl Run<'_> {
    fn target(&self, stream: adledger_domain::StreamId) -> Target<'_> {
        Target {
            stream,
            workspace: self.workspace,
            metadata: &self.metadata,
            idempotency: None,
        }
    }

    async fn connection_decides(&self, command: connection::Command) -> Result<(), CommandError> {
        self.commands
            .execute::<Connection, _>(self.target(self.connection.stream()), |state| {
                Ok((connection::decide(state, &command)?, ()))
            })
            .await
            .map(|_| ())
    }

    async fn end(&self, command: connection::Command) -> Result<(), CommandError> {
        self.connection_decides(command).await
    }

    async fn fetch_all(
        &self,
        connector: &dyn Connector,
        running: &RunningSync,
        counts: &mut SyncCounts,
    ) -> Result<(), Stop> {
        let discovery = connector
            .discover()
            .await
            .map_err(|e| platform_failure("discovery", &e))?;
        self.connection_decides(connection::Command::RecordDiscovery {
            ad_accounts: discovery.ad_accounts,
            campaigns: discovery.campaigns,
            at: chrono::Utc::now(),
        })
        .await
        .map_err(|e| match e {
            CommandError::Rejected(rule) => Stop::Platform(format!("invalid: discovery: {rule}")),
            other => Stop::Command(other),
        })?;

        let conn = self
            .commands
            .connected(self.workspace, self.connection)
            .await?;
        let scope: Vec<CampaignId> = if running.campaign_ids.is_empty() {
            conn.campaigns.keys().copied().collect()
        } else {
            running.campaign_ids.clone()
        };
        // Scope order is kept within an account; accounts go in the order of their first campaign.
        let mut by_account: Vec<(AdAccountId, Vec<(CampaignId, &str)>)> = Vec::new();
        for campaign_id in scope {
            let campaign = conn
                .campaigns
                .get(&campaign_id)
                .ok_or(CommandError::Rejected(DomainError::UnknownCampaign(
                    campaign_id,
                )))?;
            match by_account
                .iter_mut()
                .find(|(account, _)| *account == campaign.ad_account_id)
            {
                Some((_, campaigns)) => campaigns.push((campaign_id, &campaign.external_id)),
                None => by_account.push((
                    campaign.ad_account_id.clone(),
                    vec![(campaign_id, &campaign.external_id)],
                )),
            }
        }
        // Only a run over every campaign stores whole days of an account, so only such a run
        // moves the accounts' cursors.
        let whole_accounts = running.campaign_ids.is_empty();
        for (account_id, campaigns) in &by_account {
            let account = conn.ad_accounts.get(account_id).ok_or_else(|| {
                Stop::Platform(format!(
                    "invalid: campaigns name unknown ad account {account_id}"
                ))
            })?;
            for chunk in chunks(running.range, SYNC_CHUNK_DAYS) {
                let rows = connector
                    .account_insights(account, chunk)
                    .await
                    .map_err(|e| platform_failure(&format!("ad account {account_id}"), &e))?;
                let mut days = by_campaign(rows, chunk);
                // Campaigns without rows have nothing new to say: nothing is appended.
                let appends: Vec<_> = campaigns
                    .iter()
                    .filter_map(|(campaign_id, external_id)| {
                        days.remove(*external_id).map(|days| (*campaign_id, days))
                    })
                    .collect();
                let stored: Vec<SyncCounts> = stream::iter(appends)
                    .map(|(campaign_id, days)| self.record_days(&conn, account, campaign_id, days))
                    .buffer_unordered(CONCURRENT_APPENDS)
                    .try_collect()
                    .await?;
                for c in stored {
                    counts.add(c);
                }
                if whole_accounts {
                    self.record_progress(account_id, chunk).await?;
                }
            }
        }
        if whole_accounts {
            // An account without campaigns has nothing to fetch: its days are complete as they
            // are (rows of campaigns not yet discovered would be dropped anyway).
            for account_id in conn.ad_accounts.keys() {
                if !by_account.iter().any(|(a, _)| a == account_id) {
                    self.record_progress(account_id, running.range).await?;
                }
            }
        }
        Ok(())
    }

    /// Every day of `days` is stored for the account: its cursor may move.
    async fn record_progress(
        &self,
        account: &AdAccountId,
        days: DateRange,
    ) -> Result<(), CommandError> {
        self.connection_decides(connection::Command::RecordAccountProgress {
            sync_id: self.sync,
            ad_account_id: account.clone(),
            from: days.from(),
            through: days.to(),
            at: chrono::Utc::now(),
        })
        .await
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
            at: chrono::Utc::now(),
        };
        let cached = self
            .campaigns
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&campaign_id);
        let (executed, after) = self
            .commands
            .execute_on::<CampaignInsights, _>(self.target(campaign_id.stream()), cached, |state| {
                Ok(campaign::decide(state, &command))
            })
            .await?;
        if let Some(after) = after {
            self.campaigns
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .insert(campaign_id, after);
        }
        match executed {
            Executed::Decided(counts) => Ok(counts),
            // No idempotency key is passed, so the store cannot answer with a duplicate.
            Executed::Duplicate(_) => Ok(SyncCounts::default()),
        }
    }
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
