//! The sync scheduler: a connection is synced again once an interval has passed since its last
//! sync started, over the days its ad accounts' cursors say are missing plus the platform's
//! re-read window, through yesterday. One instance schedules at a time (leader election in
//! Postgres). It only starts syncs, through the same command as the API; the sync workers carry
//! them out. It never stores insights or decides a business rule itself.

use crate::{CommandContext, CommandError, Commands};
use adledger_domain::connection::{Connected, Connection};
use adledger_domain::date_range::MAX_DAYS;
use adledger_domain::{
    ConnectionId, DateRange, DomainError, EventMetadata, Platform, StreamId, StreamType, SyncId,
};
use adledger_infra::leader::{LeaderError, LeaderLock, Leadership};
use adledger_infra::shutdown::Shutdown;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// The actor name of the syncs the scheduler starts (`System { name: "scheduler" }`).
pub const ACTOR: &str = "scheduler";
pub const DEFAULT_INTERVAL_SECS: u64 = 3_600;
pub const DEFAULT_BACKFILL_DAYS: u32 = 30;
/// The advisory lock class of the scheduler (the relay's is 0x6164_6c03).
const LOCK_CLASS: i32 = 0x6164_6c04;
const LOCK_NAME: &str = "sync-scheduler";
/// The longest wait between two rounds, whatever the interval.
const MAX_TICK: Duration = Duration::from_secs(60);
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// Days re-read behind each ad account's cursor, because the platform restates them
/// (attribution and conversion windows; see docs/connectors.md): the defaults, for a platform
/// whose configuration does not set its own (`Platforms::reread_window_days`: Google's conversion
/// window and TikTok's attribution window are settings).
pub fn reread_window(platform: Platform) -> u32 {
    match platform {
        Platform::Sandbox => 3,
        Platform::Meta => 28,
        Platform::Google => 30,
        Platform::Tiktok => 7,
    }
}

/// Whether the scheduler syncs this connection at all: every platform, as long as the
/// connection is active (one that needs reauthorization waits for a person; a disconnected one
/// is done).
fn syncable(conn: &Connected) -> bool {
    conn.status == adledger_domain::connection::Status::Active
}

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// A connection is due when its last sync started longer ago than this.
    pub interval: Duration,
    /// How far back a first sync of an ad account (no cursor yet) goes.
    pub backfill_days: u32,
    /// The wait between two rounds.
    pub tick: Duration,
    /// Re-read windows configured for a platform (Google's conversion window, TikTok's
    /// attribution window, Meta's freeze), over [`reread_window`]'s defaults.
    pub reread_days: HashMap<Platform, u32>,
}

impl SchedulerConfig {
    /// Rounds every `interval`, at most a minute apart.
    pub fn new(interval: Duration, backfill_days: u32) -> Self {
        Self {
            interval,
            backfill_days,
            tick: interval.min(MAX_TICK),
            reread_days: HashMap::new(),
        }
    }

    /// Days of `platform` every sync reads again.
    pub fn reread_window(&self, platform: Platform) -> u32 {
        self.reread_days
            .get(&platform)
            .copied()
            .unwrap_or_else(|| reread_window(platform))
    }

    fn interval(&self) -> TimeDelta {
        TimeDelta::from_std(self.interval).unwrap_or(TimeDelta::MAX)
    }
}

/// What to do about one connection now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Start a sync over this range.
    Due(DateRange),
    /// A sync runs (or waits for a worker): look again next round.
    Running,
    /// Nothing to do before this time.
    NotDue { until: DateTime<Utc> },
}

/// Whether `conn` is due at `now`, and over which range.
pub fn plan(conn: &Connected, now: DateTime<Utc>, config: &SchedulerConfig) -> Plan {
    let interval = config.interval();
    if !syncable(conn) {
        return Plan::NotDue {
            until: now.checked_add_signed(interval).unwrap_or(now),
        };
    }
    // However long it has been running: a run whose worker died is taken over and finished.
    if conn.running_sync.is_some() {
        return Plan::Running;
    }
    if let Some(last) = conn.last_sync_started_at {
        let next = last
            .checked_add_signed(interval)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if now < next {
            return Plan::NotDue { until: next };
        }
    }
    Plan::Due(range_to_sync(
        conn,
        now.date_naive(),
        config.backfill_days,
        config.reread_window(conn.platform()),
    ))
}

/// From the earliest of each ad account's `cursor + 1 day − re-read window` (an account without
/// a cursor, or a connection without accounts yet: `today − backfill_days`) through yesterday.
/// `today` is the UTC date: a day is taken as over when it is over in UTC.
pub fn range_to_sync(
    conn: &Connected,
    today: NaiveDate,
    backfill_days: u32,
    reread_days: u32,
) -> DateRange {
    let yesterday = today - TimeDelta::days(1);
    let backfill = today - TimeDelta::days(i64::from(backfill_days));
    let window = TimeDelta::days(i64::from(reread_days));
    let from = conn
        .ad_accounts
        .keys()
        .map(|account| match conn.cursors.get(account) {
            Some(cursor) => *cursor + TimeDelta::days(1) - window,
            None => backfill,
        })
        .min()
        .unwrap_or(backfill);
    // Never after yesterday, never more days than one range may hold.
    let earliest = yesterday - TimeDelta::days(MAX_DAYS - 1);
    let from = from.min(yesterday).max(earliest);
    // from <= yesterday and the length is bounded, so the range is valid.
    DateRange::new(from, yesterday).unwrap_or_else(|_| single_day(yesterday))
}

fn single_day(day: NaiveDate) -> DateRange {
    match DateRange::new(day, day) {
        Ok(range) => range,
        Err(_) => unreachable!("a one-day range is always valid"),
    }
}

fn connection_of(stream: &StreamId) -> Option<ConnectionId> {
    let id = stream
        .as_str()
        .strip_prefix(StreamType::Connection.as_str())?
        .strip_prefix('-')?;
    Uuid::parse_str(id).ok().map(ConnectionId)
}

/// What one scheduler instance is doing (for logs, tests and health).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedulerStatus {
    /// This instance holds the scheduler lock.
    pub leading: bool,
    /// Syncs this instance started since it was created.
    pub syncs_started: u64,
}

pub struct Scheduler {
    commands: Commands,
    config: SchedulerConfig,
    /// Connections known not to be due before a time, so each aggregate is loaded about once
    /// per interval rather than every round.
    not_before: HashMap<ConnectionId, DateTime<Utc>>,
    status: watch::Sender<SchedulerStatus>,
}

impl Scheduler {
    /// Platforms whose re-read window the deployment configures use it, unless `config` says.
    pub fn new(commands: Commands, mut config: SchedulerConfig) -> Self {
        for platform in Platform::ALL {
            if let Some(days) = commands.configured_reread_window(platform) {
                config.reread_days.entry(platform).or_insert(days);
            }
        }
        Self {
            commands,
            config,
            not_before: HashMap::new(),
            status: watch::Sender::new(SchedulerStatus::default()),
        }
    }

    pub fn status(&self) -> watch::Receiver<SchedulerStatus> {
        self.status.subscribe()
    }

    /// One round, at the commands' clock: starts a sync for every due connection (the sync
    /// workers carry them out). Returns the syncs it started. Does not check leadership:
    /// [`Self::run`] does.
    pub async fn tick(&mut self) -> Result<Vec<SyncId>, CommandError> {
        let now = self.commands.now();
        let streams = self
            .commands
            .store
            .list_streams(StreamType::Connection)
            .await?;
        let mut started = Vec::new();
        for (stream, workspace) in streams {
            let Some(connection) = connection_of(&stream) else {
                tracing::warn!(stream_id = %stream, "a connection stream with an unexpected name");
                continue;
            };
            if self.not_before.get(&connection).is_some_and(|t| now < *t) {
                continue;
            }
            let conn = match self.commands.load::<Connection>(workspace, &stream).await {
                Ok(loaded) => loaded.state.0,
                Err(error) => {
                    tracing::warn!(connection_id = %connection, %error, "cannot load a connection");
                    continue;
                }
            };
            let Some(conn) = conn else { continue };
            let range = match plan(&conn, now, &self.config) {
                Plan::Due(range) => range,
                Plan::Running => continue,
                Plan::NotDue { until } => {
                    self.not_before.insert(connection, until);
                    continue;
                }
            };
            let ctx = CommandContext {
                metadata: EventMetadata::system(ACTOR, Uuid::now_v7()),
                idempotency_key: None,
            };
            let sync = match self
                .commands
                .start_sync(&ctx, workspace, connection, range, vec![])
                .await
            {
                Ok(sync) => sync,
                // Someone started one since the connection was loaded.
                Err(CommandError::Rejected(DomainError::SyncAlreadyRunning(_))) => continue,
                Err(error) => {
                    tracing::warn!(connection_id = %connection, %error, "cannot start a scheduled sync");
                    continue;
                }
            };
            tracing::info!(
                workspace_id = %workspace, connection_id = %connection, sync_id = %sync,
                from = %range.from(), to = %range.to(), "scheduled sync started"
            );
            self.not_before
                .insert(connection, now + self.config.interval());
            self.status.send_modify(|s| s.syncs_started += 1);
            started.push(sync);
        }
        Ok(started)
    }

    /// Schedules while this instance leads, stands by while another does, until shutdown.
    pub async fn run(mut self, mut shutdown: Shutdown) {
        tracing::info!(
            interval_secs = self.config.interval.as_secs(),
            backfill_days = self.config.backfill_days,
            "sync scheduler started"
        );
        let lock = LeaderLock::new(LOCK_CLASS, LOCK_NAME);
        let pool = self.commands.store.pool().clone();
        while !shutdown.is_triggered() {
            match lock.acquire(&pool, "sync scheduler", &mut shutdown).await {
                Ok(Some(mut leadership)) => {
                    // Another leader may have synced meanwhile: forget what was known.
                    self.not_before.clear();
                    self.status.send_modify(|s| s.leading = true);
                    let outcome = self.lead(&mut leadership, &mut shutdown).await;
                    self.status.send_modify(|s| s.leading = false);
                    leadership.resign().await;
                    if let Err(error) = outcome {
                        tracing::warn!(%error, "sync scheduler lost its leadership; standing by");
                        backoff(&mut shutdown).await;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(%error, "sync scheduler cannot take part in the election");
                    backoff(&mut shutdown).await;
                }
            }
        }
        tracing::info!("sync scheduler stopped");
    }

    async fn lead(
        &mut self,
        leadership: &mut Leadership,
        shutdown: &mut Shutdown,
    ) -> Result<(), LeaderError> {
        while !shutdown.is_triggered() {
            // The lock lives on that connection; if it broke, so did the leadership.
            leadership.confirm().await?;
            if let Err(error) = self.tick().await {
                tracing::warn!(%error, "sync scheduler round failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.tick) => {}
                _ = shutdown.wait() => {}
            }
        }
        Ok(())
    }
}

async fn backoff(shutdown: &mut Shutdown) {
    tokio::select! {
        _ = tokio::time::sleep(ERROR_BACKOFF) => {}
        _ = shutdown.wait() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adledger_domain::connection::{AdAccount, RunningSync};
    use adledger_domain::event::ConnectionSettings;
    use adledger_domain::{AdAccountId, Currency};

    fn day(raw: &str) -> NaiveDate {
        raw.parse().unwrap()
    }

    fn at(raw: &str) -> DateTime<Utc> {
        raw.parse().unwrap()
    }

    fn account(id: &str) -> (AdAccountId, AdAccount) {
        let id = AdAccountId(id.into());
        let account = AdAccount {
            id: id.clone(),
            name: "A".into(),
            currency: Currency::parse("EUR").unwrap(),
            time_zone: "UTC".into(),
        };
        (id, account)
    }

    fn connection(cursors: &[(&str, Option<&str>)]) -> Connected {
        let mut conn = Connected::new(
            ConnectionId(Uuid::from_u128(1)),
            "Sandbox".into(),
            ConnectionSettings::Sandbox {
                seed: 1,
                ad_accounts: 1,
                campaigns: 1,
            },
        );
        for (id, cursor) in cursors {
            let (id, account) = account(id);
            conn.ad_accounts.insert(id.clone(), account);
            if let Some(cursor) = cursor {
                conn.cursors.insert(id, day(cursor));
            }
        }
        conn
    }

    fn config() -> SchedulerConfig {
        SchedulerConfig::new(Duration::from_secs(3_600), 30)
    }

    fn range(from: &str, to: &str) -> DateRange {
        DateRange::new(day(from), day(to)).unwrap()
    }

    #[test]
    fn a_connection_that_never_synced_backfills_through_yesterday() {
        let now = at("2024-06-15T08:00:00Z");
        assert_eq!(
            plan(&connection(&[]), now, &config()),
            Plan::Due(range("2024-05-16", "2024-06-14"))
        );
        assert_eq!(
            plan(&connection(&[("a", None)]), now, &config()),
            Plan::Due(range("2024-05-16", "2024-06-14"))
        );
    }

    #[test]
    fn the_range_starts_at_the_earliest_cursor_minus_the_reread_window() {
        let today = day("2024-06-15");
        let conn = connection(&[("a", Some("2024-06-14")), ("b", Some("2024-06-01"))]);
        // b: 06-01 + 1 day − 3 days (sandbox).
        assert_eq!(
            range_to_sync(&conn, today, 30, reread_window(conn.platform())),
            range("2024-05-30", "2024-06-14")
        );
        let conn = connection(&[("a", Some("2024-06-14")), ("b", None)]);
        assert_eq!(
            range_to_sync(&conn, today, 30, reread_window(conn.platform())),
            range("2024-05-16", "2024-06-14"),
            "an account without a cursor backfills"
        );
        let conn = connection(&[("a", Some("2024-06-20"))]);
        assert_eq!(
            range_to_sync(&conn, today, 30, reread_window(conn.platform())),
            range("2024-06-14", "2024-06-14"),
            "never past yesterday"
        );
    }

    #[test]
    fn a_configured_reread_window_replaces_the_default() {
        let mut config = config();
        assert_eq!(config.reread_window(Platform::Google), 30);
        config.reread_days.insert(Platform::Google, 14);
        assert_eq!(config.reread_window(Platform::Google), 14);
        assert_eq!(
            config.reread_window(Platform::Meta),
            28,
            "others keep theirs"
        );
    }

    #[test]
    fn reread_windows_follow_the_platforms() {
        assert_eq!(reread_window(Platform::Sandbox), 3);
        assert_eq!(reread_window(Platform::Meta), 28);
        assert_eq!(reread_window(Platform::Google), 30);
        assert_eq!(reread_window(Platform::Tiktok), 7);
    }

    #[test]
    fn a_connection_is_due_an_interval_after_its_last_sync_started() {
        let mut conn = connection(&[("a", Some("2024-06-14"))]);
        conn.last_sync_started_at = Some(at("2024-06-15T08:00:00Z"));
        assert_eq!(
            plan(&conn, at("2024-06-15T08:59:59Z"), &config()),
            Plan::NotDue {
                until: at("2024-06-15T09:00:00Z")
            }
        );
        assert_eq!(
            plan(&conn, at("2024-06-15T09:00:00Z"), &config()),
            Plan::Due(range("2024-06-12", "2024-06-14"))
        );
    }

    #[test]
    fn a_running_sync_is_left_alone_however_long_it_runs() {
        let mut conn = connection(&[]);
        let started = at("2024-06-15T08:00:00Z");
        conn.last_sync_started_at = Some(started);
        conn.running_sync = Some(RunningSync::new(
            SyncId(Uuid::from_u128(5)),
            started,
            range("2024-06-01", "2024-06-14"),
            vec![],
        ));
        let config = SchedulerConfig::new(Duration::from_secs(60), 30);
        assert_eq!(
            plan(&conn, at("2024-06-15T08:10:00Z"), &config),
            Plan::Running
        );
        assert_eq!(
            plan(&conn, at("2024-06-18T08:31:00Z"), &config),
            Plan::Running,
            "whether it still makes progress is its lease's business"
        );
    }

    #[test]
    fn a_connection_waiting_for_a_person_or_disconnected_is_not_synced() {
        let now = Utc::now();
        for status in [
            adledger_domain::connection::Status::NeedsReauth,
            adledger_domain::connection::Status::Disconnected,
        ] {
            let mut conn = connection(&[("acc", None)]);
            conn.status = status;
            assert!(
                matches!(plan(&conn, now, &config()), Plan::NotDue { .. }),
                "{status:?}"
            );
        }
        let active = connection(&[("acc", None)]);
        assert!(matches!(plan(&active, now, &config()), Plan::Due(_)));
    }

    #[test]
    fn connection_ids_come_from_their_stream_names() {
        let id = ConnectionId(Uuid::from_u128(7));
        assert_eq!(connection_of(&id.stream()), Some(id));
        assert_eq!(
            connection_of(&adledger_domain::WorkspaceId(Uuid::from_u128(7)).stream()),
            None
        );
    }
}
