//! PostgreSQL restarted (`pg_ctl restart -m fast`: every session cut) twice under a steady
//! stream of idempotent writes and a running sync, on a cluster of this test's own.

use crate::harness::{
    caught_up, completed_once, each_acknowledged_once, read_models_equal_rebuilds, resent, run,
    verified, Server, Writers,
};
use crate::support::{eventually_within, PrivateCluster};
use adledger_infra::testing::TestDatabase;
use std::time::Duration;

const CAMPAIGNS: u32 = 20;
const DAYS: i64 = 360;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_idempotent_writes_keeps_every_write_once() {
    let cluster = PrivateCluster::start();
    let db = TestDatabase::on(&cluster.url).await;
    let url = db.url.expose();
    let pool = db.store().pool().clone();
    let mut server = Server::start(url).await;
    let owner = server.person("owner@example.com").await;
    let ws = owner.workspace("Acme").await;
    let conn = owner.sandbox(&ws.id, 1, CAMPAIGNS).await;
    let writers = Writers::start(&owner, 4);

    let mut cluster = Some(cluster);
    let mut sync = None;
    for round in 1..=2 {
        // A steady stream first: some writes acknowledged since the last restart.
        let acknowledged = writers.acknowledged();
        eventually_within("writes acknowledged", Duration::from_secs(60), || async {
            (writers.acknowledged() >= acknowledged + 20).then_some(())
        })
        .await;
        if round == 1 {
            // Started only now, so that it is still running when the database goes down
            // however fast the writes came in (started with them, it could end first).
            let started = owner.start_sync(&ws.id, &conn.id, DAYS).await;
            assert!(
                run(&pool, &started.id).await.end.is_none(),
                "the sync ended before the database could be restarted"
            );
            sync = Some(started);
        }
        let c = cluster.take().unwrap();
        cluster = Some(
            tokio::task::spawn_blocking(move || {
                c.restart();
                c
            })
            .await
            .unwrap(),
        );
    }
    let acknowledged = writers.acknowledged();
    eventually_within("writes acknowledged", Duration::from_secs(60), || async {
        (writers.acknowledged() >= acknowledged + 20).then_some(())
    })
    .await;
    let mut acks = writers.stop().await;
    // Not asserted: a request that reaches the server while the database is down waits for a
    // connection and may well succeed; only those cut mid-query are resent.
    let failed_sends = resent(&acks);
    eprintln!(
        "database restarts: {} writes acknowledged, {failed_sends} sends resent",
        acks.len()
    );
    acks.push(ws.clone());

    let sync = sync.expect("the sync started in the first round");
    completed_once(&pool, &sync.id, i64::from(CAMPAIGNS) * DAYS).await;
    let head = caught_up(&pool, Duration::from_secs(120)).await;
    each_acknowledged_once(&pool, &acks).await;
    verified(url, head);
    server.stop();
    read_models_equal_rebuilds(url);
}
