//! Sync cursors, the sync scheduler and a worker's limit on concurrent sync runs, against a real
//! Postgres. Platforms are scripted connectors (or the sandbox) so every outcome is exact.

use adledger_commands::syncs::scheduler::{Scheduler, SchedulerConfig, SchedulerStatus};
use adledger_commands::syncs::{SyncWorker, WorkerConfig};
use adledger_commands::{CommandContext, CommandError, Commands, ConnectorFactory, ManualClock};
use adledger_connectors::{CampaignDay, Connector, ConnectorError, Discovery};
use adledger_domain::connection::{AdAccount, Connected, Connection, DiscoveredCampaign};
use adledger_domain::event::{ConnectionSettings, SyncCounts};
use adledger_domain::{
    AdAccountId, Aggregate, ConnectionId, Currency, DailyMetrics, DateRange, DomainEvent,
    EventMetadata, SyncId, WorkspaceId,
};
use adledger_infra::shutdown;
use adledger_infra::testing::TestDatabase;
use adledger_infra::EventStore;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

fn ctx() -> CommandContext {
    CommandContext {
        metadata: EventMetadata::system("tests", Uuid::now_v7()),
        idempotency_key: None,
    }
}

fn day(raw: &str) -> NaiveDate {
    raw.parse().unwrap()
}

fn range(from: &str, to: &str) -> DateRange {
    DateRange::new(day(from), day(to)).unwrap()
}

fn sandbox(ad_accounts: u32) -> ConnectionSettings {
    ConnectionSettings::Sandbox {
        seed: 5,
        ad_accounts,
        campaigns: 3,
    }
}

/// A platform with one ad account and two campaigns that reports every asked day, logs the
/// ranges asked, fails the calls whose number (1-based) is in `fail_calls`, and counts how many
/// insights calls are in flight at once.
#[derive(Default)]
struct Script {
    asked: Mutex<Vec<DateRange>>,
    fail_calls: Mutex<Vec<usize>>,
    /// How long each insights call takes (to make overlapping runs visible).
    pause: Duration,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

struct Scripted(Arc<Script>);

const ACCOUNT: &str = "acc-1";

#[async_trait::async_trait]
impl Connector for Scripted {
    async fn discover(&self) -> Result<Discovery, ConnectorError> {
        let campaign = |id: &str| DiscoveredCampaign {
            ad_account_id: AdAccountId(ACCOUNT.into()),
            external_id: id.into(),
            name: id.into(),
            status: "ACTIVE".into(),
        };
        Ok(Discovery {
            ad_accounts: vec![AdAccount {
                id: AdAccountId(ACCOUNT.into()),
                name: "Main".into(),
                currency: Currency::parse("EUR").unwrap(),
                time_zone: "UTC".into(),
            }],
            campaigns: vec![campaign("c1"), campaign("c2")],
        })
    }

    async fn account_insights(
        &self,
        _account: &AdAccount,
        range: DateRange,
    ) -> Result<Vec<CampaignDay>, ConnectorError> {
        let call = {
            let mut asked = self.0.asked.lock().unwrap();
            asked.push(range);
            asked.len()
        };
        let now = self.0.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.0.most_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.0.pause).await;
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        if self.0.fail_calls.lock().unwrap().contains(&call) {
            return Err(ConnectorError::Invalid("scripted failure".into()));
        }
        let metrics =
            DailyMetrics::new(100, 3, Decimal::new(1250, 2), Decimal::ONE, Decimal::TEN).unwrap();
        Ok(range
            .days()
            .flat_map(|date| {
                ["c1", "c2"].map(|c| CampaignDay {
                    campaign_external_id: c.into(),
                    date,
                    metrics: metrics.clone(),
                })
            })
            .collect())
    }
}

fn scripted(script: &Arc<Script>) -> ConnectorFactory {
    let script = script.clone();
    Arc::new(move |_: &Connected| Box::new(Scripted(script.clone())) as Box<dyn Connector>)
}

async fn workspace(commands: &Commands) -> WorkspaceId {
    commands.create_workspace(&ctx(), "Acme").await.unwrap()
}

async fn connect(commands: &Commands, ws: WorkspaceId, ad_accounts: u32) -> ConnectionId {
    commands
        .connect_platform(&ctx(), ws, "Sandbox", sandbox(ad_accounts))
        .await
        .unwrap()
}

async fn sync(
    commands: &Commands,
    ws: WorkspaceId,
    conn: ConnectionId,
    days: DateRange,
) -> Result<SyncCounts, CommandError> {
    let id = commands.start_sync(&ctx(), ws, conn, days, vec![]).await?;
    commands.run_sync(ws, conn, id).await
}

async fn events(store: &EventStore, conn: ConnectionId) -> Vec<DomainEvent> {
    let stored = store.read_stream(&conn.stream()).await.unwrap();
    stored.iter().map(|e| e.decode().unwrap()).collect()
}

async fn state(store: &EventStore, conn: ConnectionId) -> Connected {
    let stored = store.read_stream(&conn.stream()).await.unwrap();
    let state = stored.iter().fold(Connection::default(), |s, e| {
        s.evolve(&e.decode().unwrap(), e.occurred_at)
    });
    state.0.unwrap()
}

/// The `through` of every AccountSynced of the connection, in order.
async fn cursor_moves(store: &EventStore, conn: ConnectionId) -> Vec<(String, NaiveDate)> {
    events(store, conn)
        .await
        .into_iter()
        .filter_map(|e| match e {
            DomainEvent::AccountSynced(a) => Some((a.ad_account_id.0, a.through)),
            _ => None,
        })
        .collect()
}

/// The (from, to) of every SyncStarted of the connection, in order.
async fn starts(store: &EventStore, conn: ConnectionId) -> Vec<(NaiveDate, NaiveDate)> {
    events(store, conn)
        .await
        .into_iter()
        .filter_map(|e| match e {
            DomainEvent::SyncStarted(s) => Some((s.from, s.to)),
            _ => None,
        })
        .collect()
}

async fn completed(store: &EventStore, conn: ConnectionId) -> usize {
    events(store, conn)
        .await
        .iter()
        .filter(|e| matches!(e, DomainEvent::SyncCompleted(_)))
        .count()
}

/// Polls `check` until it holds, for up to 20 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_long_range_is_synced_in_chunks_and_the_cursor_follows_each() {
    let db = TestDatabase::new().await;
    let script = Arc::new(Script::default());
    let commands = Commands::new(db.store()).with_connector_factory(scripted(&script));
    let ws = workspace(&commands).await;
    let conn = connect(&commands, ws, 1).await;

    let counts = sync(&commands, ws, conn, range("2024-01-01", "2024-03-10"))
        .await
        .unwrap();
    assert_eq!(counts.days_recorded, 70 * 2);
    assert_eq!(
        *script.asked.lock().unwrap(),
        vec![
            range("2024-01-01", "2024-01-30"),
            range("2024-01-31", "2024-02-29"),
            range("2024-03-01", "2024-03-10"),
        ],
        "oldest chunk first, none longer than 30 days"
    );
    let account = || ACCOUNT.to_owned();
    assert_eq!(
        cursor_moves(&db.store(), conn).await,
        vec![
            (account(), day("2024-01-30")),
            (account(), day("2024-02-29")),
            (account(), day("2024-03-10")),
        ]
    );
    // Each cursor move follows the appends of its chunk's days.
    let campaign = adledger_domain::CampaignId::derive(conn, "c1");
    let c1 = db.store().read_stream(&campaign.stream()).await.unwrap();
    let conn_events = db.store().read_stream(&conn.stream()).await.unwrap();
    for (moved, through) in conn_events
        .iter()
        .filter_map(|e| match e.decode().unwrap() {
            DomainEvent::AccountSynced(a) => Some((e.recorded_at, a.through)),
            _ => None,
        })
    {
        let stored_before = c1
            .iter()
            .filter(|e| e.recorded_at <= moved)
            .flat_map(|e| match e.decode().unwrap() {
                DomainEvent::DailyInsightsRecorded(r) => Some(r.date),
                _ => None,
            })
            .max();
        assert_eq!(stored_before, Some(through));
    }
}

#[tokio::test]
async fn a_failed_chunk_leaves_the_cursor_at_the_last_contiguous_chunk() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let script = Arc::new(Script {
        fail_calls: Mutex::new(vec![3]),
        ..Script::default()
    });
    let commands = Commands::new(store.clone()).with_connector_factory(scripted(&script));
    let ws = workspace(&commands).await;
    let conn = connect(&commands, ws, 1).await;
    let account = AdAccountId(ACCOUNT.into());

    let err = sync(&commands, ws, conn, range("2024-01-01", "2024-03-10"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CommandError::SyncFailed(f) if f.kind == adledger_domain::FailureKind::Invalid),
        "{err:?}"
    );
    let failed = events(&store, conn)
        .await
        .into_iter()
        .find_map(|e| match e {
            DomainEvent::SyncFailed(f) => Some(f),
            _ => None,
        });
    assert_eq!(
        failed
            .expect("the run is recorded as failed")
            .counts
            .days_recorded,
        60 * 2,
        "the completed chunks' days are kept"
    );
    assert_eq!(
        state(&store, conn).await.cursors.get(&account),
        Some(&day("2024-02-29"))
    );

    // A later run that starts after a hole (March 1-4 missing) does not move the cursor.
    sync(&commands, ws, conn, range("2024-03-05", "2024-03-10"))
        .await
        .unwrap();
    assert_eq!(
        state(&store, conn).await.cursors.get(&account),
        Some(&day("2024-02-29"))
    );
    // A re-read of old days does not move it back.
    sync(&commands, ws, conn, range("2024-01-01", "2024-01-10"))
        .await
        .unwrap();
    assert_eq!(
        state(&store, conn).await.cursors.get(&account),
        Some(&day("2024-02-29"))
    );
    // A run contiguous with it closes the hole and moves it on.
    sync(&commands, ws, conn, range("2024-02-20", "2024-03-10"))
        .await
        .unwrap();
    assert_eq!(
        state(&store, conn).await.cursors.get(&account),
        Some(&day("2024-03-10"))
    );
    assert_eq!(cursor_moves(&store, conn).await.len(), 3);
}

#[tokio::test]
async fn a_sync_of_some_campaigns_does_not_move_the_cursor() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let script = Arc::new(Script::default());
    let commands = Commands::new(store.clone()).with_connector_factory(scripted(&script));
    let ws = workspace(&commands).await;
    let conn = connect(&commands, ws, 1).await;
    sync(&commands, ws, conn, range("2024-01-01", "2024-01-05"))
        .await
        .unwrap();
    let c1 = adledger_domain::CampaignId::derive(conn, "c1");
    let id = commands
        .start_sync(
            &ctx(),
            ws,
            conn,
            range("2024-01-06", "2024-01-10"),
            vec![c1],
        )
        .await
        .unwrap();
    commands.run_sync(ws, conn, id).await.unwrap();
    assert_eq!(
        state(&store, conn)
            .await
            .cursors
            .get(&AdAccountId(ACCOUNT.into())),
        Some(&day("2024-01-05")),
        "campaign c2's days of 6-10 January are not stored"
    );
}

fn hourly() -> SchedulerConfig {
    SchedulerConfig::new(Duration::from_secs(3_600), 30)
}

fn at(raw: &str) -> DateTime<Utc> {
    raw.parse().unwrap()
}

/// Carries out the syncs a scheduler started, as a worker would.
async fn carry_out(commands: &Commands, ws: WorkspaceId, conn: ConnectionId, syncs: &[SyncId]) {
    for sync in syncs {
        commands.run_sync(ws, conn, *sync).await.unwrap();
    }
}

/// A sync worker of its own over `commands`, until the returned trigger fires.
fn worker(commands: &Commands, max_concurrent: usize) -> shutdown::ShutdownTrigger {
    let (stop, stopped) = shutdown::channel();
    let worker = SyncWorker::new(
        commands.clone(),
        WorkerConfig {
            max_concurrent,
            ..WorkerConfig::default()
        },
    );
    tokio::spawn(worker.run(stopped));
    stop
}

#[tokio::test]
async fn the_scheduler_starts_syncs_of_due_connections_over_their_missing_days() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let clock = Arc::new(ManualClock::new(at("2024-06-15T12:00:00Z")));
    let commands = Commands::new(store.clone()).with_clock(clock.clone());
    let ws = workspace(&commands).await;
    let conn = connect(&commands, ws, 2).await;

    // Never synced: a backfill of 30 days through yesterday, recorded as the scheduler's.
    let mut scheduler = Scheduler::new(commands.clone(), hourly());
    let started = scheduler.tick().await.unwrap();
    assert_eq!(started.len(), 1);
    carry_out(&commands, ws, conn, &started).await;
    assert_eq!(
        starts(&store, conn).await,
        vec![(day("2024-05-16"), day("2024-06-14"))]
    );
    let first = store
        .read_stream(&conn.stream())
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.event_type == "SyncStarted")
        .unwrap();
    assert_eq!(
        first.metadata["actor"]["kind"], "system",
        "{}",
        first.metadata
    );
    assert_eq!(first.metadata["actor"]["name"], "scheduler");
    assert_eq!(completed(&store, conn).await, 1);
    let synced = state(&store, conn).await;
    assert_eq!(synced.ad_accounts.len(), 2);
    assert!(synced.cursors.values().all(|c| *c == day("2024-06-14")));

    // Synced half an hour ago: not due, whether this scheduler remembers it or a new one looks.
    clock.set(at("2024-06-15T12:30:00Z"));
    assert!(scheduler.tick().await.unwrap().is_empty());
    let mut fresh = Scheduler::new(commands.clone(), hourly());
    assert!(fresh.tick().await.unwrap().is_empty());

    // An interval later: due again, from the cursor minus the sandbox's 3-day re-read window.
    clock.set(at("2024-06-15T13:01:00Z"));
    let started = fresh.tick().await.unwrap();
    assert_eq!(started.len(), 1);
    carry_out(&commands, ws, conn, &started).await;
    assert_eq!(
        starts(&store, conn).await[1],
        (day("2024-06-12"), day("2024-06-14"))
    );

    // A connection whose sync is running (or waiting for a worker) is left alone, however long
    // it has been running: a run whose worker died is taken over, never replaced.
    clock.set(at("2024-06-15T14:05:00Z"));
    let busy = connect(&commands, ws, 1).await;
    commands
        .start_sync(&ctx(), ws, busy, range("2024-06-01", "2024-06-02"), vec![])
        .await
        .unwrap();
    clock.set(at("2024-06-17T14:10:00Z"));
    let mut later = Scheduler::new(commands.clone(), hourly());
    let started = later.tick().await.unwrap();
    assert_eq!(started.len(), 1, "only the idle connection is due");
    carry_out(&commands, ws, conn, &started).await;
    assert_eq!(starts(&store, busy).await.len(), 1);
    assert_eq!(starts(&store, conn).await.len(), 3);
}

#[tokio::test]
async fn only_the_leader_schedules_and_a_standby_takes_over() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let setup = Commands::new(store.clone());
    let ws = workspace(&setup).await;
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(connect(&setup, ws, 1).await);
    }
    let config = SchedulerConfig {
        tick: Duration::from_millis(50),
        ..hourly()
    };
    // Two processes: their own commands, one database, a sync worker each.
    let (commands_a, commands_b) = (Commands::new(store.clone()), Commands::new(store.clone()));
    let _workers = (worker(&commands_a, 4), worker(&commands_b, 4));
    let a = Scheduler::new(commands_a, config.clone());
    let b = Scheduler::new(commands_b, config);
    let (a_status, b_status) = (a.status(), b.status());
    let (stop_a, stopped_a) = shutdown::channel();
    let (stop_b, stopped_b) = shutdown::channel();
    let a_task = tokio::spawn(a.run(stopped_a));
    eventually("a leads", || async { a_status.borrow().leading }).await;
    let b_task = tokio::spawn(b.run(stopped_b));

    for conn in &conns {
        eventually("the scheduled syncs complete", || async {
            completed(&store, *conn).await == 1
        })
        .await;
    }
    // Both keep running for many rounds: still one sync per connection, all of them a's.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for conn in &conns {
        assert_eq!(starts(&store, *conn).await.len(), 1);
    }
    assert_eq!(
        *a_status.borrow(),
        SchedulerStatus {
            leading: true,
            syncs_started: 3,
        }
    );
    assert!(!b_status.borrow().leading);
    assert_eq!(b_status.borrow().syncs_started, 0);

    // The leader stops: the standby takes over and schedules what becomes due.
    stop_a.trigger();
    a_task.await.unwrap();
    assert!(!a_status.borrow().leading);
    eventually("b leads", || async { b_status.borrow().leading }).await;
    let newcomer = connect(&setup, ws, 1).await;
    eventually("b syncs the new connection", || async {
        completed(&store, newcomer).await == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(b_status.borrow().syncs_started, 1);
    for conn in conns.iter().chain([&newcomer]) {
        assert_eq!(starts(&store, *conn).await.len(), 1);
    }
    stop_b.trigger();
    b_task.await.unwrap();
}

/// Starts one sync on each of two connections and lets one worker with `limit` slots carry them
/// out; returns the most insights calls that were in flight together.
async fn overlap_with(limit: usize) -> usize {
    let db = TestDatabase::new().await;
    let store = db.store();
    let script = Arc::new(Script {
        pause: Duration::from_millis(200),
        ..Script::default()
    });
    let commands = Commands::new(store.clone()).with_connector_factory(scripted(&script));
    let ws = workspace(&commands).await;
    let (first, second) = (
        connect(&commands, ws, 1).await,
        connect(&commands, ws, 1).await,
    );
    let days = range("2024-01-01", "2024-01-05");
    for conn in [first, second] {
        commands
            .start_sync(&ctx(), ws, conn, days, vec![])
            .await
            .unwrap();
    }
    let _worker = worker(&commands, limit);
    for conn in [first, second] {
        eventually("both syncs complete", || async {
            completed(&store, conn).await == 1
        })
        .await;
    }
    for conn in [first, second] {
        let counts = events(&store, conn)
            .await
            .into_iter()
            .find_map(|e| match e {
                DomainEvent::SyncCompleted(c) => Some(c.counts),
                _ => None,
            });
        assert_eq!(counts.map(|c| c.days_recorded), Some(10));
    }
    script.most_in_flight.load(Ordering::SeqCst)
}

#[tokio::test]
async fn a_worker_with_one_slot_carries_out_runs_in_turn() {
    assert_eq!(
        overlap_with(1).await,
        1,
        "the second run waited for the first"
    );
    // The same runs overlap when two slots allow it (so the check above can fail).
    assert_eq!(overlap_with(2).await, 2);
}
