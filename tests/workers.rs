//! Sync runs carried out by worker processes, tried as an operator would: the scheduler's leader
//! SIGKILLed in the middle of the run it carries out (another worker takes the run over and
//! finishes it, nothing stored twice, nothing skipped, the takeover recorded), a worker stopped
//! with SIGTERM (it hands its run back at once), and the database restarted under a running sync
//! (the run waits it out instead of failing).

use adledger_commands::syncs::{SyncWorker, WorkerConfig};
use adledger_commands::{CommandContext, Commands};
use adledger_domain::event::{ClaimReason, ConnectionSettings, SyncClaimed, SyncCounts};
use adledger_domain::{
    CampaignId, ConnectionId, DateRange, DomainEvent, SyncId, WorkerId, WorkspaceId,
};
use adledger_infra::shutdown;
use adledger_infra::testing::TestDatabase;
use adledger_infra::EventStore;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::BTreeMap;
use std::time::Duration;
use support::{eventually_within, PrivateCluster, Process};

mod support;

const CAMPAIGNS: u32 = 60;
/// Twelve chunks of 30 days: long enough to be caught in the middle.
const DAYS: i64 = 360;

fn sandbox() -> ConnectionSettings {
    ConnectionSettings::Sandbox {
        seed: 11,
        ad_accounts: 1,
        campaigns: CAMPAIGNS,
    }
}

/// A workspace with a sandbox connection.
async fn connection(commands: &Commands) -> (WorkspaceId, ConnectionId) {
    let ctx = CommandContext::system("tests");
    let ws = commands.create_workspace(&ctx, "Acme").await.unwrap();
    let conn = commands
        .connect_platform(&ctx, ws, "Sandbox", sandbox())
        .await
        .unwrap();
    (ws, conn)
}

/// `adledger worker` on the test's database, with a short lease so that takeovers are quick.
fn worker(db: &TestDatabase, schedule: bool) -> Process {
    let interval = if schedule { "3600" } else { "0" };
    Process::start(
        &["worker"],
        &[
            ("DATABASE_URL", db.url.expose()),
            ("ADLEDGER_SYNC_INTERVAL_SECS", interval),
            ("ADLEDGER_SYNC_BACKFILL_DAYS", &DAYS.to_string()),
            ("ADLEDGER_SYNC_LEASE_SECS", "2"),
        ],
    )
}

async fn connection_events(
    store: &EventStore,
    conn: ConnectionId,
) -> Vec<(DateTime<Utc>, DomainEvent)> {
    let stored = store.read_stream(&conn.stream()).await.unwrap();
    stored
        .iter()
        .map(|e| (e.occurred_at, e.decode().unwrap()))
        .collect()
}

/// The run's claims, in order.
async fn claims(store: &EventStore, conn: ConnectionId) -> Vec<(DateTime<Utc>, SyncClaimed)> {
    connection_events(store, conn)
        .await
        .into_iter()
        .filter_map(|(at, e)| match e {
            DomainEvent::SyncClaimed(c) => Some((at, c)),
            _ => None,
        })
        .collect()
}

async fn chunks_recorded(store: &EventStore, conn: ConnectionId) -> usize {
    connection_events(store, conn)
        .await
        .iter()
        .filter(|(_, e)| matches!(e, DomainEvent::SyncProgressed(_)))
        .count()
}

/// The run's end: its counts when it completed; a panic when it failed.
async fn completion(store: &EventStore, conn: ConnectionId) -> Option<(SyncId, SyncCounts)> {
    connection_events(store, conn)
        .await
        .into_iter()
        .find_map(|(_, e)| match e {
            DomainEvent::SyncCompleted(c) => Some((c.sync_id, c.counts)),
            DomainEvent::SyncFailed(f) => panic!("the sync failed: {}", f.failure),
            _ => None,
        })
}

/// Every day of `range` is stored exactly once per campaign (recorded once, never restated:
/// the sandbox reports the same numbers to every attempt), nothing else is stored.
async fn every_day_stored_once(store: &EventStore, conn: ConnectionId, range: DateRange) {
    for n in 1..=CAMPAIGNS {
        let campaign = CampaignId::derive(conn, &format!("cmp-{n}"));
        let mut days: BTreeMap<NaiveDate, usize> = BTreeMap::new();
        for event in store.read_stream(&campaign.stream()).await.unwrap() {
            match event.decode().unwrap() {
                DomainEvent::DailyInsightsRecorded(r) => *days.entry(r.date).or_default() += 1,
                other => panic!("campaign {n}: unexpected {other:?}"),
            }
        }
        let expected: BTreeMap<NaiveDate, usize> = range.days().map(|d| (d, 1)).collect();
        assert_eq!(
            days, expected,
            "campaign cmp-{n}: each day once, none missing"
        );
    }
}

fn whole_run_counts() -> SyncCounts {
    SyncCounts {
        days_recorded: u64::from(CAMPAIGNS) * DAYS as u64,
        days_restated: 0,
        days_unchanged: 0,
    }
}

/// The range the scheduler's first sync reads: the backfill through yesterday.
fn backfill(today: NaiveDate) -> DateRange {
    let yesterday = today - chrono::Duration::days(1);
    DateRange::new(yesterday - chrono::Duration::days(DAYS - 1), yesterday).unwrap()
}

fn is(worker: &WorkerId, process: &Process) -> bool {
    worker.0.contains(&format!(":{}:", process.id()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_sync_is_taken_over_and_the_run_ends_once() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let commands = Commands::new(store.clone());
    let (_, conn) = connection(&commands).await;

    // Roles run apart: this worker leads the scheduler, which starts the connection's first
    // sync, and carries the run out.
    let mut a = worker(&db, true);
    let (_, first) = eventually_within(
        "a worker claims the scheduled sync",
        Duration::from_secs(60),
        || async { claims(&store, conn).await.into_iter().next() },
    )
    .await;
    assert!(is(&first.worker, &a), "{first:?}: {}", a.log_text());
    let mut b = worker(&db, true);
    eventually_within("a few chunks stored", Duration::from_secs(60), || async {
        (chunks_recorded(&store, conn).await >= 3).then_some(())
    })
    .await;
    assert!(
        completion(&store, conn).await.is_none(),
        "the run finished before its worker could be killed"
    );
    a.kill();
    let killed_at = Utc::now();

    let (sync, counts) = eventually_within("the run ends", Duration::from_secs(120), || {
        completion(&store, conn)
    })
    .await;
    let claims = claims(&store, conn).await;
    let [(_, first), (taken_at, second)] = &claims[..] else {
        panic!(
            "expected one claim and one takeover, got {claims:?}\n{}",
            b.log_text()
        );
    };
    assert_eq!((first.attempt, first.reason), (1, ClaimReason::FirstRun));
    assert_eq!(first.sync_id, sync);
    assert!(is(&second.worker, &b), "{second:?}");
    assert_eq!(
        (
            second.attempt,
            second.reason,
            second.previous_worker.as_ref()
        ),
        (2, ClaimReason::LeaseLapsed, Some(&first.worker)),
        "the takeover names the worker whose lease lapsed"
    );
    let took = *taken_at - killed_at;
    assert!(
        took < chrono::Duration::seconds(10),
        "taken over {took} after the kill, with a 2 s lease"
    );
    // Nothing synced twice, nothing skipped, and the counts are the whole run's.
    every_day_stored_once(&store, conn, backfill(killed_at.date_naive())).await;
    assert_eq!(counts, whole_run_counts());
    assert_eq!(
        chunks_recorded(&store, conn).await,
        (DAYS / 30) as usize,
        "each chunk recorded once"
    );
    b.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_by_sigterm_hands_its_run_back_at_once() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let commands = Commands::new(store.clone());
    let (ws, conn) = connection(&commands).await;
    let today = Utc::now().date_naive();
    let range = backfill(today);
    commands
        .start_sync(&CommandContext::system("tests"), ws, conn, range, vec![])
        .await
        .unwrap();

    let mut a = worker(&db, false);
    eventually_within("a few chunks stored", Duration::from_secs(60), || async {
        (chunks_recorded(&store, conn).await >= 2).then_some(())
    })
    .await;
    a.terminate();
    let status = a
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("the worker did not stop after SIGTERM\n{}", a.log_text()));
    assert!(status.success(), "{status:?}\n{}", a.log_text());
    assert!(
        completion(&store, conn).await.is_none(),
        "the run finished before its worker was stopped"
    );
    let handed_back = connection_events(&store, conn)
        .await
        .into_iter()
        .find_map(|(_, e)| match e {
            DomainEvent::SyncHandedBack(h) => Some(h),
            _ => None,
        })
        .unwrap_or_else(|| panic!("the run was not handed back\n{}", a.log_text()));

    let b = worker(&db, false);
    let (_, counts) = eventually_within("the run ends", Duration::from_secs(120), || {
        completion(&store, conn)
    })
    .await;
    let claims = claims(&store, conn).await;
    let [(_, first), (_, second)] = &claims[..] else {
        panic!("expected two claims, got {claims:?}");
    };
    assert_eq!(first.worker, handed_back.worker);
    assert!(is(&second.worker, &b));
    assert_eq!(
        (second.reason, second.previous_worker.as_ref()),
        (ClaimReason::HandedBack, Some(&first.worker))
    );
    every_day_stored_once(&store, conn, range).await;
    assert_eq!(counts, whole_run_counts());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_under_a_running_sync_only_delays_it() {
    let cluster = PrivateCluster::start();
    let db = TestDatabase::on(&cluster.url).await;
    let store = db.store();
    let commands = Commands::new(store.clone());
    let (ws, conn) = connection(&commands).await;
    let range = backfill(Utc::now().date_naive());
    commands
        .start_sync(&CommandContext::system("tests"), ws, conn, range, vec![])
        .await
        .unwrap();
    let (stop, stopped) = shutdown::channel();
    let config = WorkerConfig {
        lease: Duration::from_secs(30),
        ..WorkerConfig::default()
    };
    tokio::spawn(SyncWorker::new(commands.clone(), config).run(stopped));
    eventually_within("a few chunks stored", Duration::from_secs(60), || async {
        (chunks_recorded(&store, conn).await >= 2).then_some(())
    })
    .await;

    assert!(
        completion(&store, conn).await.is_none(),
        "the run finished before the database could be restarted"
    );
    // Down for three seconds, mid-run: every connection is cut, new ones are refused.
    let _cluster = tokio::task::spawn_blocking(move || {
        cluster.stop();
        std::thread::sleep(Duration::from_secs(3));
        cluster.start_again();
        cluster
    })
    .await
    .unwrap();

    let (_, counts) = eventually_within("the run ends", Duration::from_secs(120), || {
        completion(&store, conn)
    })
    .await;
    assert_eq!(claims(&store, conn).await.len(), 1, "one worker, one claim");
    let (sync, _) = completion(&store, conn).await.unwrap();
    let leases: i32 = sqlx::query_scalar("SELECT claims FROM sync_jobs WHERE id = $1")
        .bind(sync.as_uuid())
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(
        leases, 1,
        "the writes waited for the database: the run was never given up and taken up again"
    );
    every_day_stored_once(&store, conn, range).await;
    assert_eq!(counts, whole_run_counts());
    stop.trigger();
}

/// `--rebuild-outdated`: a worker started after a rebuild was cut short finishes it in the
/// background (a build a crash left counts as outdated) and switches readers to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_rebuild_outdated_finishes_a_build_a_crash_left() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let pool = db.db.app.clone();
    let commands = Commands::new(store.clone());
    let ctx = CommandContext::system("tests");
    for n in 0..20 {
        commands
            .create_workspace(&ctx, &format!("W{n}"))
            .await
            .unwrap();
    }
    db.settle(&store).await;
    let catalog = adledger_projections::by_name("catalog").unwrap();
    adledger_projections::catch_up(&store, &pool, &*catalog, 100)
        .await
        .unwrap();
    let before = adledger_projections::checksum(&pool, "catalog")
        .await
        .unwrap();

    // A rebuild cut short after its first page: version 2 is left building.
    let first_page = tokio::sync::Notify::new();
    let on_page = |_| first_page.notify_one();
    tokio::select! {
        _ = adledger_projections::versions::rebuild(&store, &pool, &*catalog, 3, &on_page) => {
            panic!("the rebuild finished")
        }
        _ = first_page.notified() => {}
    }
    let live = || async {
        sqlx::query_scalar::<_, i32>(
            "SELECT version FROM read_model_versions WHERE name = 'catalog' AND state = 'live'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    assert_eq!(live().await, 1);

    let mut worker = Process::start(
        &["worker", "--rebuild-outdated"],
        &[
            ("DATABASE_URL", db.url.expose()),
            ("ADLEDGER_SYNC_INTERVAL_SECS", "0"),
        ],
    );
    eventually_within("version 2 goes live", Duration::from_secs(60), || async {
        (live().await == 2).then_some(())
    })
    .await;
    assert_eq!(
        adledger_projections::checksum(&pool, "catalog")
            .await
            .unwrap(),
        before,
        "{}",
        worker.log_text()
    );
    assert!(worker.log_text().contains("outdated read model rebuilt"));
    worker.kill();
}
