//! The Kafka paths against a real broker (tansu): the relay's order and completeness, a relay
//! killed mid-stream, a broker outage under load, and Kafka-mode workers sharing partitions.
//! scripts/test.sh starts the shared broker (ADLEDGER_KAFKA_BROKERS); the outage test runs a
//! private one it can stop.

use adledger::demo::{self, DemoArgs};
use adledger_commands::{CommandContext, Commands};
use adledger_domain::EventMetadata;
use adledger_infra::kafka::{header, relay, KafkaConfig};
use adledger_infra::shutdown::{self, ShutdownTrigger};
use adledger_infra::testing::{kafka_brokers, unique_topic, TansuBroker, TestDatabase};
use adledger_infra::EventStore;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use sqlx::PgPool;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{eventually_within, Process};
use uuid::Uuid;

mod support;

/// One message as the topic holds it.
#[derive(Debug, Clone)]
struct Published {
    partition: i32,
    offset: i64,
    key: String,
    header_position: i64,
    header_type: String,
    position: i64,
    workspace: String,
    event_type: String,
}

fn config(brokers: &str, topic: &str) -> KafkaConfig {
    KafkaConfig {
        brokers: brokers.to_owned(),
        topic: topic.to_owned(),
        partitions: 3,
    }
}

/// Every message of the topic, up to the end each partition had when called.
async fn drain(config: &KafkaConfig) -> Vec<Published> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("broker.address.family", "v4")
            .set("group.id", format!("test.drain.{}", Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let timeout = Duration::from_secs(10);
        let mut ends = BTreeMap::new();
        let mut assignment = TopicPartitionList::new();
        for partition in 0..config.partitions {
            let (_, high) = consumer
                .fetch_watermarks(&config.topic, partition, timeout)
                .expect("watermarks");
            if high > 0 {
                ends.insert(partition, high);
                assignment
                    .add_partition_offset(&config.topic, partition, Offset::Beginning)
                    .expect("assignment");
            }
        }
        consumer.assign(&assignment).expect("assign");
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        while ends
            .iter()
            .any(|(p, end)| next.get(p).copied().unwrap_or(0) < *end)
        {
            assert!(
                Instant::now() < deadline,
                "the topic did not drain: {next:?} of {ends:?}"
            );
            let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let m = message.expect("message");
            let value: serde_json::Value =
                serde_json::from_slice(m.payload().expect("value")).expect("JSON value");
            let headers = m.headers().expect("headers");
            let header = |name: &str| {
                headers
                    .iter()
                    .find(|h| h.key == name)
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default()
            };
            next.insert(m.partition(), m.offset() + 1);
            out.push(Published {
                partition: m.partition(),
                offset: m.offset(),
                key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                header_position: header(header::POSITION).parse().expect("position header"),
                header_type: header(header::EVENT_TYPE),
                position: value["position"].as_i64().expect("position"),
                workspace: value["workspace_id"]
                    .as_str()
                    .expect("workspace")
                    .to_owned(),
                event_type: value["event_type"].as_str().expect("type").to_owned(),
            });
        }
        out
    })
    .await
    .expect("drain task")
}

/// Messages in the topic now (0 while it does not exist).
async fn messages_in_topic(config: &KafkaConfig) -> i64 {
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("broker.address.family", "v4")
            .create()
            .expect("consumer");
        (0..config.partitions)
            .filter_map(|p| {
                consumer
                    .fetch_watermarks(&config.topic, p, Duration::from_secs(5))
                    .ok()
            })
            .map(|(_, high)| high)
            .sum()
    })
    .await
    .expect("watermarks")
}

async fn relay_position(pool: &PgPool, topic: &str) -> i64 {
    relay::status(pool, topic)
        .await
        .expect("relay status")
        .map_or(0, |s| s.position)
}

async fn wait_for_relay(pool: &PgPool, topic: &str, head: i64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let position = relay_position(pool, topic).await;
        if position >= head {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the relay reached {position} of {head} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn spawn_relay(store: &EventStore, config: &KafkaConfig) -> ShutdownTrigger {
    let (stop, stopped) = shutdown::channel();
    tokio::spawn(relay::run(store.clone(), config.clone(), stopped));
    stop
}

/// Seeds `workspaces` demo workspaces (sandbox: discovery, one sync) through the command path.
async fn seed(store: &EventStore, seeds: std::ops::Range<u64>, campaigns: u32, days: i64) {
    let identity = adledger::startup::identity(
        store,
        adledger_commands::identity::Keys {
            master: adledger_infra::testing::test_master_keys(),
            jwt: adledger_infra::testing::test_jwt_keys(),
        },
        Default::default(),
    );
    for seed in seeds {
        demo::seed(
            &identity,
            &DemoArgs {
                seed,
                campaigns,
                days,
            },
        )
        .await
        .expect("seed a demo workspace");
    }
}

/// The `adledger` binary with the test database and broker in its environment.
fn adledger(db: &TestDatabase, config: &KafkaConfig, args: &[&str]) -> Process {
    Process::start(
        args,
        &[
            ("DATABASE_URL", db.url.expose()),
            ("ADLEDGER_KAFKA_BROKERS", &config.brokers),
            ("ADLEDGER_KAFKA_TOPIC", &config.topic),
            ("ADLEDGER_KAFKA_LEASE_MS", "3000"),
            // Workers also run the sync scheduler; its syncs would append events the tests count.
            ("ADLEDGER_SYNC_INTERVAL_SECS", "0"),
        ],
    )
}

/// Every projection, by name.
const PROJECTIONS: [&str; 3] = ["catalog", "daily_insights", "audit"];

/// Projection checksums built from the Postgres log (the reference).
async fn postgres_checksums(store: &EventStore) -> Vec<String> {
    let mut sums = Vec::new();
    for name in PROJECTIONS {
        adledger_projections::rebuild(store, store.pool(), name, 5_000)
            .await
            .expect("rebuild from postgres");
        sums.push(
            adledger_projections::checksum(store.pool(), name)
                .await
                .expect("checksum"),
        );
    }
    sums
}

async fn checksums(pool: &PgPool) -> Vec<String> {
    let mut sums = Vec::new();
    for name in PROJECTIONS {
        sums.push(
            adledger_projections::checksum(pool, name)
                .await
                .expect("checksum"),
        );
    }
    sums
}

/// Events applied per Kafka-mode projection (over all partitions).
async fn applied_per_projection(pool: &PgPool, topic: &str) -> BTreeMap<String, i64> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT projection, sum(events_applied)::int8 FROM projection_offsets
         WHERE topic = $1 GROUP BY projection",
    )
    .bind(topic)
    .fetch_all(pool)
    .await
    .expect("offsets");
    rows.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_publishes_every_event_once_and_each_workspace_in_log_order() {
    let db = TestDatabase::new().await;
    let store = db.store();
    seed(&store, 1..5, 3, 10).await;
    let head = db.settle(&store).await;
    let config = config(&kafka_brokers(), &unique_topic("test.order"));

    let _relay = spawn_relay(&store, &config);
    wait_for_relay(store.pool(), &config.topic, head, Duration::from_secs(60)).await;
    let messages = drain(&config).await;

    assert_eq!(messages.len() as i64, head, "every event exactly once");
    let positions: BTreeSet<i64> = messages.iter().map(|m| m.position).collect();
    assert_eq!(positions, (1..=head).collect::<BTreeSet<_>>());
    let mut by_workspace: BTreeMap<&str, Vec<&Published>> = BTreeMap::new();
    for m in &messages {
        assert_eq!(m.key, m.workspace, "key = workspace id");
        assert_eq!(m.header_position, m.position);
        assert_eq!(m.header_type, m.event_type);
        by_workspace.entry(&m.workspace).or_default().push(m);
    }
    // Four workspaces, and the demo user's identity events under the nil workspace id.
    assert_eq!(by_workspace.len(), 5);
    assert!(by_workspace.contains_key(uuid::Uuid::nil().to_string().as_str()));
    for (workspace, mut events) in by_workspace {
        let partitions: BTreeSet<i32> = events.iter().map(|m| m.partition).collect();
        assert_eq!(
            partitions.len(),
            1,
            "workspace {workspace} stays in one partition"
        );
        events.sort_by_key(|m| m.offset);
        let order: Vec<i64> = events.iter().map(|m| m.position).collect();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(order, sorted, "workspace {workspace} arrives in log order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_stream_resumes_and_consumers_apply_each_event_once() {
    let db = TestDatabase::new().await;
    let store = db.store();
    seed(&store, 1..5, 25, 200).await; // about 20,000 insights events
    let head = db.settle(&store).await;
    let config = config(&kafka_brokers(), &unique_topic("test.crash"));

    let mut first = adledger(&db, &config, &["relay"]);
    // Kill it while messages are in the topic that its checkpoint does not cover yet.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let position = relay_position(store.pool(), &config.topic).await;
        assert!(
            position < head,
            "the relay finished before it could be killed"
        );
        if messages_in_topic(&config).await > position {
            break;
        }
        assert!(Instant::now() < deadline, "the relay never published");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // A second relay stands by while the first leads, and takes over when it dies.
    let mut second = adledger(&db, &config, &["relay"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.kill();
    let killed_at = relay_position(store.pool(), &config.topic).await;
    assert!(
        killed_at < head,
        "the first relay finished before it was killed"
    );
    wait_for_relay(store.pool(), &config.topic, head, Duration::from_secs(120)).await;
    second.kill();
    let log = std::fs::read_to_string(&second.log).expect("second relay's log");
    let standby = log.find("standing by").expect("the second relay stood by");
    let leader = log
        .find("is the leader")
        .expect("the second relay took over");
    assert!(standby < leader, "stood by first, then led:\n{log}");

    let messages = drain(&config).await;
    let positions: BTreeSet<i64> = messages.iter().map(|m| m.position).collect();
    assert_eq!(
        positions,
        (1..=head).collect::<BTreeSet<_>>(),
        "every event is in the topic (killed at {killed_at} of {head})"
    );
    eprintln!(
        "relay killed at position {killed_at} of {head}; {} duplicate messages in the topic",
        messages.len() as i64 - head
    );

    let expected = postgres_checksums(&store).await;
    // Through the library, and one through the command line.
    for name in ["daily_insights", "audit"] {
        adledger_projections::kafka::rebuild(store.pool(), &config, name)
            .await
            .expect("rebuild from kafka");
    }
    let cli = Command::new(env!("CARGO_BIN_EXE_adledger"))
        .args(["projections", "rebuild", "catalog", "--source", "kafka"])
        .env("DATABASE_URL", db.url.expose())
        .env("ADLEDGER_KAFKA_BROKERS", &config.brokers)
        .env("ADLEDGER_KAFKA_TOPIC", &config.topic)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run adledger projections rebuild");
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(String::from_utf8_lossy(&cli.stdout).contains("rebuilt catalog"));
    assert_eq!(
        checksums(store.pool()).await,
        expected,
        "same read models as from Postgres"
    );
    for (projection, applied) in applied_per_projection(store.pool(), &config.topic).await {
        assert_eq!(
            applied, head,
            "{projection} applied each event exactly once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_under_steady_commands_loses_nothing() {
    let mut broker = TansuBroker::start();
    let db = TestDatabase::new().await;
    let store = db.store();
    let config = config(&broker.brokers, "test.outage");
    let _relay = spawn_relay(&store, &config);
    let sequencer_stop = {
        let (stop, stopped) = shutdown::channel();
        tokio::spawn(adledger_infra::event_store::sequencer::run(
            store.clone(),
            stopped,
        ));
        stop
    };

    let (stop_writing, writing_stopped) = shutdown::channel();
    let commands = Commands::new(store.clone());
    let writer = tokio::spawn(async move {
        let (mut ok, mut failed) = (0u32, 0u32);
        while !writing_stopped.is_triggered() {
            let ctx = CommandContext {
                metadata: EventMetadata::system("outage-test", Uuid::now_v7()),
                idempotency_key: None,
            };
            match commands
                .create_workspace(&ctx, &format!("workspace {ok}"))
                .await
            {
                Ok(_) => ok += 1,
                Err(_) => failed += 1,
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (ok, failed)
    });

    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        relay_position(store.pool(), &config.topic).await > 0,
        "the relay publishes"
    );
    broker.stop();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during = relay::status(store.pool(), &config.topic)
        .await
        .expect("status")
        .expect("relay row");
    assert!(
        during.lag_events > 0,
        "the outage shows as relay lag: {during:?}"
    );
    broker.restart();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_writing.trigger();
    let (ok, failed) = writer.await.expect("writer");
    assert_eq!(failed, 0, "no command failed while the broker was down");
    assert!(ok > 100, "commands kept flowing: {ok}");

    let head = db.settle(&store).await;
    assert_eq!(head, i64::from(ok));
    wait_for_relay(store.pool(), &config.topic, head, Duration::from_secs(90)).await;
    sequencer_stop.trigger();
    let positions: BTreeSet<i64> = drain(&config).await.iter().map(|m| m.position).collect();
    assert_eq!(
        positions,
        (1..=head).collect::<BTreeSet<_>>(),
        "nothing lost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_kafka_workers_share_partitions_and_the_survivor_takes_over() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let config = config(&kafka_brokers(), &unique_topic("test.workers"));
    let _relay = spawn_relay(&store, &config);
    seed(&store, 1..10, 3, 10).await;
    let head = db.settle(&store).await;
    wait_for_relay(store.pool(), &config.topic, head, Duration::from_secs(60)).await;

    let mut a = adledger(&db, &config, &["worker", "--source", "kafka"]);
    let mut b = adledger(&db, &config, &["worker", "--source", "kafka"]);
    let (a_id, b_id) = (format!(":{}", a.id()), format!(":{}", b.id()));
    let owners = |rows: Vec<(i32, Option<String>)>| -> BTreeSet<String> {
        rows.into_iter()
            .filter_map(|(_, w)| w)
            .map(|w| {
                if w.ends_with(&a_id) {
                    "a".into()
                } else if w.ends_with(&b_id) {
                    "b".into()
                } else {
                    w
                }
            })
            .collect()
    };
    let workers = |pool: PgPool, topic: String| async move {
        sqlx::query_as::<_, (i32, Option<String>)>(
            "SELECT partition, owner FROM projection_offsets WHERE topic = $1",
        )
        .bind(topic)
        .fetch_all(&pool)
        .await
        .expect("offsets")
    };

    // Both workers get partitions: keep adding workspaces until each has applied a batch.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut next_seed = 10;
    loop {
        let seen = owners(workers(store.pool().clone(), config.topic.clone()).await);
        if seen.contains("a") && seen.contains("b") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the workers never shared the partitions: {seen:?}"
        );
        seed(&store, next_seed..next_seed + 3, 2, 5).await;
        next_seed += 3;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    a.kill();
    // Events after the death land in every partition; only b is left to apply them.
    seed(&store, 100..112, 2, 5).await;
    let head = db.settle(&store).await;
    wait_for_relay(store.pool(), &config.topic, head, Duration::from_secs(60)).await;
    let ends = drain(&config)
        .await
        .iter()
        .fold(BTreeMap::new(), |mut ends, m| {
            let end = ends.entry(m.partition).or_insert(0);
            *end = (*end).max(m.offset + 1);
            ends
        });
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let rows: Vec<(String, i32, i64)> = sqlx::query_as(
            "SELECT projection, partition, next_offset FROM projection_offsets WHERE topic = $1",
        )
        .bind(&config.topic)
        .fetch_all(store.pool())
        .await
        .expect("offsets");
        let done = rows.len() == adledger_projections::all().len() * ends.len()
            && rows.iter().all(|(_, p, next)| ends.get(p) == Some(next));
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the survivor did not take over: {rows:?} of {ends:?} (logs: {:?}, {:?})",
            a.log,
            b.log
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.kill();
    let rows = workers(store.pool().clone(), config.topic.clone()).await;
    assert_eq!(
        owners(rows),
        BTreeSet::from(["b".to_owned()]),
        "b applied the last batches"
    );

    let from_kafka = checksums(store.pool()).await;
    for (projection, applied) in applied_per_projection(store.pool(), &config.topic).await {
        assert_eq!(
            applied, head,
            "{projection} applied each event exactly once"
        );
    }
    assert_eq!(
        from_kafka,
        postgres_checksums(&store).await,
        "same read models as from Postgres"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_reports_relay_lag_and_fails_while_the_relay_is_behind() {
    let db = TestDatabase::new().await;
    let store = db.store();
    seed(&store, 1..2, 2, 5).await;
    let head = db.settle(&store).await;
    let config = config(&kafka_brokers(), &unique_topic("test.ready"));
    let (_stop, stopped) = shutdown::channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/readyz", listener.local_addr().unwrap());
    adledger::startup::spawn_api(
        store.clone(),
        listener,
        adledger_commands::identity::Keys {
            master: adledger_infra::testing::test_master_keys(),
            jwt: adledger_infra::testing::test_jwt_keys(),
        },
        adledger::startup::ApiOptions {
            // Any unapplied event counts: the test needs no waiting for a bound to pass.
            readiness: adledger_api::Readiness {
                relay_topic: Some(config.topic.clone()),
                projections_from_kafka: Some(config.clone()),
                bounds: adledger_projections::ReadinessBounds {
                    max_lag: Duration::ZERO,
                    ..Default::default()
                },
                ..Default::default()
            },
            ..Default::default()
        },
        stopped,
    )
    .await;
    let client = reqwest::Client::new();

    let behind = client.get(&url).send().await.unwrap();
    assert_eq!(behind.status(), 503);
    let problem: serde_json::Value = behind.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("relay"),
        "{problem}"
    );

    let _relay = spawn_relay(&store, &config);
    wait_for_relay(store.pool(), &config.topic, head, Duration::from_secs(60)).await;
    let ready = client.get(&url).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["relay"]["position"], head);
    assert_eq!(body["relay"]["lag_events"], 0);

    let metrics = client
        .get(url.replace("/readyz", "/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let topic = format!("{{topic=\"{}\"}}", config.topic);
    assert!(
        metrics.contains(&format!("adledger_relay_lag_events{topic} 0\n")),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("adledger_relay_position{topic} {head}\n")),
        "{metrics}"
    );

    // A Kafka-mode projection that has applied nothing yet is the whole topic behind.
    for partition in 0..config.partitions {
        sqlx::query(
            "INSERT INTO projection_offsets (projection, topic, partition) VALUES ('catalog', $1, $2)",
        )
        .bind(&config.topic)
        .bind(partition)
        .execute(store.pool())
        .await
        .unwrap();
    }
    let behind = client.get(&url).send().await.unwrap();
    assert_eq!(behind.status(), 503);
    let problem: serde_json::Value = behind.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("catalog is {head} events behind")),
        "{problem}"
    );
    // Caught up with every partition's end: ready, with its lag reported.
    let deployment = adledger_projections::Deployment {
        relay_topic: Some(&config.topic),
        projections_from_kafka: Some(&config),
    };
    let status = adledger_projections::deployment_status(&store, deployment)
        .await
        .unwrap();
    let catalog = status.served().next().expect("catalog from kafka");
    for p in &catalog.partitions {
        sqlx::query(
            "UPDATE projection_offsets SET next_offset = $3 WHERE topic = $1 AND partition = $2",
        )
        .bind(&config.topic)
        .bind(p.partition)
        .bind(p.end_offset.expect("the broker answers"))
        .execute(store.pool())
        .await
        .unwrap();
    }
    let ready = client.get(&url).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["projections"][0]["name"], "catalog");
    assert_eq!(body["projections"][0]["lag_events"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_model_fed_from_kafka_reaches_a_position_once_every_partition_has_applied_it() {
    use adledger_projections::reached::reached;
    let db = TestDatabase::new().await;
    let store = db.store();
    seed(&store, 1..4, 2, 5).await;
    let head = db.settle(&store).await;
    let config = config(&kafka_brokers(), &unique_topic("test.reached"));
    let _relay = spawn_relay(&store, &config);
    wait_for_relay(store.pool(), &config.topic, head, Duration::from_secs(60)).await;
    // Published, but no projection worker has applied anything.
    assert!(!reached(store.pool(), "catalog", Some(&config), head)
        .await
        .unwrap());

    let (_stop, stopped) = shutdown::channel();
    adledger::startup::spawn_workers(
        &store,
        adledger::startup::WorkerSource::Kafka(config.clone(), Default::default()),
        &stopped,
    );
    eventually_within(
        "catalog from kafka to reach the head",
        Duration::from_secs(60),
        || async {
            reached(store.pool(), "catalog", Some(&config), head)
                .await
                .unwrap()
                .then_some(())
        },
    )
    .await;
    // Beyond what the relay published: not reached, whatever the partitions say.
    assert!(!reached(store.pool(), "catalog", Some(&config), head + 1)
        .await
        .unwrap());
}
