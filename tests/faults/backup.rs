//! Backup and restore as docs/runbooks.md tells it: a logical dump (`pg_dump -Fc`) of a database
//! with some history, restored into a fresh cluster (no roles, no databases, its transaction ids
//! behind the original's), finds the hash chain intact with the same head hash, every read
//! model rebuilt to the original's checksums, and the restored deployment taking writes again.
//! And a point-in-time recovery from a base backup and archived WAL, which leaves out what was
//! written after the target time.

use crate::harness::{
    caught_up, checksums, completed_once, each_acknowledged_once, rebuilt_checksums, verified,
    Server,
};
use crate::support::{pg_program, PrivateCluster};
use adledger_infra::testing::TestDatabase;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Runs a PostgreSQL client program, failing the test when it fails.
fn client(program: &str, args: &[&str]) {
    let out = Command::new(pg_program(program))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Restores `dump` into a new database of `cluster` the way the runbook says: the role first,
/// then the dump, then the cluster's transaction ids moved past the log's. Answers the restored
/// database's URL.
async fn restore(cluster: &PrivateCluster, dump: &Path) -> String {
    let server = cluster.url.rsplit_once('/').expect("a database URL").0;
    let mut admin = PgConnection::connect(&cluster.url).await.unwrap();
    // Roles are the cluster's, not the database's: a dump does not carry them.
    admin
        .execute("CREATE ROLE adledger_app NOLOGIN")
        .await
        .unwrap();
    admin
        .execute("GRANT adledger_app TO CURRENT_USER")
        .await
        .unwrap();
    admin
        .execute("CREATE DATABASE adledger_restored")
        .await
        .unwrap();
    admin.close().await.unwrap();
    let restored = format!("{server}/adledger_restored");
    client(
        "pg_restore",
        &["--exit-on-error", "-d", &restored, &dump.to_string_lossy()],
    );

    // Events carry the transaction id of their writer (`tx_id`, with its epoch), and the
    // sequencer takes them in that order after the last one sequenced. A fresh cluster counts
    // from a few hundred, so new events would sort before the restored ones and never be
    // sequenced. Before anything writes, start its next epoch past the log's: every new id is
    // then above every restored one, and the 32-bit ids the rows carry do not move. (Done
    // whatever the runbook's check would say, so that the step itself stays tested: it is
    // harmless when not needed.)
    let mut db = PgConnection::connect(&restored).await.unwrap();
    let max: String = sqlx::query_scalar("SELECT max(tx_id)::text FROM events")
        .fetch_one(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
    let max: u64 = max.parse().unwrap();
    let epoch = (max >> 32) + 1;
    // adledger refuses to serve such a database, naming the step.
    let pool = PgPool::connect(&restored).await.unwrap();
    let refused = adledger_infra::EventStore::new(pool.clone())
        .check_transaction_ids()
        .await;
    let next: String = sqlx::query_scalar("SELECT pg_snapshot_xmax(pg_current_snapshot())::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    match refused {
        Err(adledger_infra::StoreError::TransactionIdsBehind { epoch: named, .. }) => {
            assert_eq!(named, epoch)
        }
        // A fresh cluster is behind any that wrote this much; should it not be, nothing is wrong.
        Ok(()) => assert!(next.parse::<u64>().unwrap() > max, "{next} <= {max}"),
        Err(other) => panic!("checking the transaction ids: {other}"),
    }
    pool.close().await;
    cluster.stop();
    cluster.as_owner(
        "pg_resetwal",
        &["-e", &epoch.to_string(), &cluster.data().to_string_lossy()],
    );
    cluster.start_again();
    let pool = PgPool::connect(&restored).await.unwrap();
    adledger_infra::EventStore::new(pool.clone())
        .check_transaction_ids()
        .await
        .expect("past the log's transaction ids after the epoch step");
    pool.close().await;
    restored
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_restored_into_a_fresh_cluster_verifies_and_rebuilds_the_same_read_models() {
    // Some history: people, workspaces, a sandbox connection and a sync.
    let db = TestDatabase::new().await;
    let url = db.url.expose();
    let pool = db.store().pool().clone();
    let mut server = Server::start(url).await;
    let owner = server.person("owner@example.com").await;
    let mut acks = Vec::new();
    for name in ["Acme", "Globex", "Initech"] {
        acks.push(owner.workspace(name).await);
    }
    server.person("analyst@example.com").await;
    let conn = owner.sandbox(&acks[0].id, 2, 10).await;
    let sync = owner.start_sync(&acks[0].id, &conn.id, 90).await;
    completed_once(&pool, &sync.id, 10 * 90).await;
    let head = caught_up(&pool, Duration::from_secs(60)).await;
    server.stop();
    // What an operator keeps apart from the backup: the verified head and its hash.
    let original_head = verified(url, head);
    let original = checksums(url);

    let dir = std::env::temp_dir().join(format!("adledger-backup-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let dump = dir.join("adledger.dump");
    client(
        "pg_dump",
        &["-Fc", "-f", &dump.to_string_lossy(), "-d", url],
    );

    let cluster = PrivateCluster::start();
    let restored = restore(&cluster, &dump).await;
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        verified(&restored, head),
        original_head,
        "the restored chain ends at the same position with the same hash"
    );
    assert_eq!(
        rebuilt_checksums(&restored),
        original,
        "every read model rebuilt from the restored log equals the original's"
    );

    // The restored deployment serves the same people and takes new writes, which are sequenced
    // after the restored log.
    let mut again = server.with_same_keys(&restored).await;
    let owner = again.signed_in("owner@example.com").await;
    acks.push(owner.workspace("After the restore").await);
    let restored_pool = PgPool::connect(&restored).await.unwrap();
    let new_head = caught_up(&restored_pool, Duration::from_secs(60)).await;
    assert!(
        new_head > head,
        "new events sequenced after the restored ones"
    );
    each_acknowledged_once(&restored_pool, &acks).await;
    verified(&restored, new_head);
    again.stop();
    restored_pool.close().await;
}

/// Appends settings to a cluster's `postgresql.auto.conf` (later lines win).
fn configure(data: &Path, settings: &[(&str, String)]) {
    use std::io::Write;
    let mut conf = std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.auto.conf"))
        .unwrap();
    for (name, value) in settings {
        writeln!(conf, "{name} = '{}'", value.replace('\'', "''")).unwrap();
    }
}

async fn scalar(url: &str, sql: &str) -> String {
    let mut db = PgConnection::connect(url).await.unwrap();
    let value: String = sqlx::query_scalar(sql).fetch_one(&mut db).await.unwrap();
    db.close().await.unwrap();
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_in_time_recovery_brings_back_the_log_as_it_was_at_the_target_time() {
    // WAL archiving on, then a base backup, as the runbook sets a deployment up.
    let cluster = PrivateCluster::start();
    let archive = cluster.server_dir("archive");
    let mut admin = PgConnection::connect(&cluster.url).await.unwrap();
    admin
        .execute("ALTER SYSTEM SET archive_mode = 'on'")
        .await
        .unwrap();
    admin
        .execute(
            format!(
                "ALTER SYSTEM SET archive_command = 'test ! -f {0}/%f && cp %p {0}/%f'",
                archive.display()
            )
            .as_str(),
        )
        .await
        .unwrap();
    admin.close().await.unwrap();
    cluster.restart();
    let db = TestDatabase::on(&cluster.url).await;
    let url = db.url.expose();
    let database = url.rsplit_once('/').unwrap().1.to_owned();
    let pool = db.store().pool().clone();
    let base = cluster.base_backup();

    // History after the base backup, up to the target time...
    let mut server = Server::start(url).await;
    let owner = server.person("owner@example.com").await;
    let mut acks = vec![owner.workspace("Acme").await];
    let conn = owner.sandbox(&acks[0].id, 1, 10).await;
    let sync = owner.start_sync(&acks[0].id, &conn.id, 60).await;
    completed_once(&pool, &sync.id, 10 * 60).await;
    acks.push(owner.workspace("Globex").await);
    let head = caught_up(&pool, Duration::from_secs(60)).await;
    let at_target = verified(url, head);
    let read_models = checksums(url);
    let target = scalar(url, "SELECT clock_timestamp()::text").await;
    // ...and the mistake after it, which the recovery leaves out.
    tokio::time::sleep(Duration::from_secs(1)).await;
    owner.workspace("Created after the target").await;
    caught_up(&pool, Duration::from_secs(60)).await;
    server.stop();
    // The WAL holding all of it reaches the archive.
    let segment = scalar(url, "SELECT pg_walfile_name(pg_switch_wal())").await;
    crate::support::eventually_within("the WAL archived", Duration::from_secs(30), || {
        let archived = archive.join(&segment).exists();
        async move { archived.then_some(()) }
    })
    .await;

    // Recovery: the base backup, replayed from the archive up to the target time.
    let data = base.join("data");
    configure(
        &data,
        &[
            ("restore_command", format!("cp {}/%f %p", archive.display())),
            ("recovery_target_time", target),
            ("recovery_target_action", "promote".into()),
            // The recovered copy must not write into the original's archive.
            ("archive_mode", "off".into()),
        ],
    );
    std::fs::write(data.join("recovery.signal"), "").unwrap();
    crate::support::give_to_postgres(&base);
    let recovered = PrivateCluster::open(base);
    let recovered_url = format!("{}/{database}", recovered.url.rsplit_once('/').unwrap().0);
    crate::support::eventually_within("recovery to end", Duration::from_secs(60), || {
        let url = recovered_url.clone();
        async move {
            (scalar(&url, "SELECT pg_is_in_recovery()::text").await == "false").then_some(())
        }
    })
    .await;

    assert_eq!(
        verified(&recovered_url, head),
        at_target,
        "the recovered chain ends where it did at the target time, with the same hash"
    );
    let recovered_pool = PgPool::connect(&recovered_url).await.unwrap();
    each_acknowledged_once(&recovered_pool, &acks).await;
    recovered_pool.close().await;
    assert_eq!(
        checksums(&recovered_url),
        read_models,
        "the read models as at the target time"
    );
    assert_eq!(
        rebuilt_checksums(&recovered_url),
        read_models,
        "and as rebuilt from the recovered log"
    );
}
