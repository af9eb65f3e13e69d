//! `adledger serve` (API, sequencer, projection workers and sync worker in one process) killed
//! with SIGKILL, then started again: in the middle of a large sandbox sync, and in the middle of
//! projecting a backlog. Writers keep sending meanwhile and resend until acknowledged.

use crate::harness::{
    caught_up, completed_once, days_through_yesterday, each_acknowledged_once,
    read_models_equal_rebuilds, resent, run, verified, Server, Writers,
};
use crate::support::eventually_within;
use adledger_commands::syncs::{SyncWorker, WorkerConfig};
use adledger_commands::{CommandContext, Commands};
use adledger_domain::{ConnectionId, DateRange, WorkspaceId};
use adledger_infra::shutdown;
use adledger_infra::testing::TestDatabase;
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

/// 2 ad accounts × 100 campaigns × 360 days: 36,000 days of insights, read in 24 chunks of 30
/// days, so that the run (or projecting it) lasts long enough to be cut in the middle.
const ACCOUNTS: u32 = 2;
const CAMPAIGNS: u32 = 100;
const DAYS: i64 = 360;
const INSIGHTS: i64 = CAMPAIGNS as i64 * DAYS;
const CHUNKS: i64 = ACCOUNTS as i64 * DAYS / 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_killed_mid_sync_resumes_the_run_and_keeps_every_write_once() {
    let db = TestDatabase::new().await;
    let url = db.url.expose();
    let pool = db.store().pool().clone();
    let mut server = Server::start(url).await;
    let owner = server.person("owner@example.com").await;
    let ws = owner.workspace("Acme").await;
    let conn = owner.sandbox(&ws.id, ACCOUNTS, CAMPAIGNS).await;
    let sync = owner.start_sync(&ws.id, &conn.id, DAYS).await;
    let writers = Writers::start(&owner, 2);

    eventually_within("a few chunks stored", Duration::from_secs(120), || async {
        (run(&pool, &sync.id).await.chunks >= 3).then_some(())
    })
    .await;
    server.kill();
    let cut = run(&pool, &sync.id).await;
    assert!(
        cut.end.is_none() && cut.chunks < CHUNKS,
        "the run ended before the server could be killed: {cut:?}"
    );
    // Down for a second: the writers' sends go unanswered.
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.restart().await;

    let ended = completed_once(&pool, &sync.id, INSIGHTS).await;
    assert_eq!(ended.chunks, CHUNKS, "each chunk recorded once");
    let reasons: Vec<&str> = ended
        .claims
        .iter()
        .map(|c| c["reason"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        reasons,
        ["first_run", "lease_lapsed"],
        "the restarted process took the run over once its dead worker's lease lapsed"
    );
    let mut acks = writers.stop().await;
    let failed_sends = resent(&acks);
    assert!(failed_sends > 0, "no write was cut by the kill");
    eprintln!(
        "kill mid-sync: {} writes acknowledged, {failed_sends} sends resent",
        acks.len()
    );
    acks.push(ws.clone());

    let head = caught_up(&pool, Duration::from_secs(120)).await;
    each_acknowledged_once(&pool, &acks).await;
    verified(url, head);
    let view = owner
        .get(&format!("/v1/workspaces/{}/syncs/{}", ws.id, sync.id))
        .await
        .expect("the run");
    assert_eq!(view["status"], "completed", "{view}");
    server.stop();
    read_models_equal_rebuilds(url);
}

/// The run `sync` carried out by a sync worker of this test's own, with no sequencer or
/// projection worker running: a backlog of events that no read model has seen.
async fn backlog(pool: &PgPool, commands: &Commands, ws: &str, conn: &str) -> String {
    let ctx = CommandContext::system("tests");
    let (from, to) = days_through_yesterday(DAYS);
    let sync = commands
        .start_sync(
            &ctx,
            WorkspaceId(Uuid::parse_str(ws).unwrap()),
            ConnectionId(Uuid::parse_str(conn).unwrap()),
            DateRange::new(from, to).unwrap(),
            vec![],
        )
        .await
        .unwrap()
        .as_uuid()
        .to_string();
    let (stop, stopped) = shutdown::channel();
    tokio::spawn(SyncWorker::new(commands.clone(), WorkerConfig::default()).run(stopped));
    completed_once(pool, &sync, INSIGHTS).await;
    stop.trigger();
    sync
}

async fn sequenced(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM event_log")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn projected(pool: &PgPool, name: &str) -> i64 {
    sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = $1")
        .bind(name)
        .fetch_optional(pool)
        .await
        .unwrap()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_killed_mid_catch_up_projects_the_rest_once() {
    let db = TestDatabase::new().await;
    let url = db.url.expose();
    let store = db.store();
    let pool = store.pool().clone();
    let mut server = Server::start(url).await;
    let owner = server.person("owner@example.com").await;
    let ws = owner.workspace("Acme").await;
    let conn = owner.sandbox(&ws.id, ACCOUNTS, CAMPAIGNS).await;
    server.stop();
    let before = sequenced(&pool).await;

    let sync = backlog(&pool, &Commands::new(store.clone()), &ws.id, &conn.id).await;
    assert_eq!(
        sequenced(&pool).await,
        before,
        "the backlog is not sequenced yet"
    );

    server.restart().await;
    let writers = Writers::start(&owner, 2);
    // Cut while the insights read model is part of the way through the backlog.
    let at = eventually_within(
        "daily_insights part of the way",
        Duration::from_secs(120),
        || async {
            let at = projected(&pool, "daily_insights").await;
            (at > before + 2_000).then_some(at)
        },
    )
    .await;
    server.kill();
    let left_at = projected(&pool, "daily_insights").await;
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        left_at < events - INSIGHTS / 2,
        "the kill came after catch-up (at {at}, left at {left_at} of {events})"
    );
    eprintln!("kill mid catch-up: daily_insights at {left_at} of {events}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.restart().await;

    let mut acks = writers.stop().await;
    let failed_sends = resent(&acks);
    assert!(failed_sends > 0, "no write was cut by the kill");
    acks.push(ws.clone());
    let head = caught_up(&pool, Duration::from_secs(180)).await;
    each_acknowledged_once(&pool, &acks).await;
    verified(url, head);
    let view = owner
        .get(&format!("/v1/workspaces/{}/syncs/{sync}", ws.id))
        .await
        .expect("the run");
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(view["days_recorded"], INSIGHTS, "{view}");
    server.stop();
    read_models_equal_rebuilds(url);
}
