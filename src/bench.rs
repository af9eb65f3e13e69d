//! `adledger bench`: throughput of the log and of replay, in a scratch database created on the
//! DATABASE_URL server (dropped afterwards unless --keep). Prints `name=value` lines.

use adledger_domain::event::{DailyInsightsRecorded, InsightsSource};
use adledger_domain::{
    AdAccountId, CampaignId, ConnectionId, Currency, DailyMetrics, DomainEvent, EventId,
    EventMetadata, Platform, StreamId, StreamType, SyncId, WorkspaceId,
};
use adledger_infra::db::{create_database, drop_database};
use adledger_infra::event_store::sequencer;
use adledger_infra::kafka::{relay, KafkaConfig};
use adledger_infra::shutdown;
use adledger_infra::{AppendRequest, Database, EventStore, NewEvent, Secret};
use chrono::{Duration, NaiveDate, Utc};
use rust_decimal::Decimal;
use std::time::Instant;
use uuid::Uuid;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Events appended in batches of 100 (per-transaction) by 4 writers.
    #[arg(long, default_value_t = 200_000)]
    pub batched_events: u64,
    /// Events appended one per transaction by 16 concurrent writers.
    #[arg(long, default_value_t = 40_000)]
    pub single_events: u64,
    /// Insights events replayed into the daily_insights read model.
    #[arg(long, default_value_t = 300_000)]
    pub replay_events: u64,
    /// Events per transaction when replaying.
    #[arg(long, default_value_t = adledger_projections::DEFAULT_BATCH)]
    pub replay_batch: i64,
    /// Keep the scratch database.
    #[arg(long)]
    pub keep: bool,
    /// With a broker: also measure the relay, Kafka-mode replay and the broker's raw rate.
    #[command(flatten)]
    pub kafka: crate::cli::KafkaArgs,
    /// Events the relay publishes (the newest of the log) and Kafka-mode replay reads back.
    #[arg(long, default_value_t = 50_000)]
    pub kafka_events: i64,
    /// Measure the Merkle tree and its proofs instead (docs/benchmarks.md, issue #12).
    #[arg(long)]
    pub proofs: bool,
    /// With --proofs: events per sequencing round (rounds alternate without and with the tree).
    #[arg(long, default_value_t = 100_000)]
    pub tree_round_events: u64,
    /// With --proofs: sequencing rounds of each kind.
    #[arg(long, default_value_t = 3)]
    pub tree_rounds: u32,
    /// With --proofs: leaves of the in-memory tree proofs are measured in.
    #[arg(long, default_value_t = 10_000_000)]
    pub tree_leaves: u64,
}

/// `total` insights events appended by 4 writers, 100 per append (no sequencer involved).
pub async fn append_batched(store: &EventStore, total: u64) -> anyhow::Result<f64> {
    append_load(store, total, 4, 100).await
}

fn insights_event(
    campaign: CampaignId,
    connection: ConnectionId,
    day: NaiveDate,
    n: u64,
) -> NewEvent {
    let event = DomainEvent::DailyInsightsRecorded(DailyInsightsRecorded {
        source: InsightsSource {
            campaign_id: campaign,
            connection_id: connection,
            platform: Platform::Sandbox,
            ad_account_id: AdAccountId("sandbox-1".into()),
            sync_id: SyncId(Uuid::nil()),
        },
        date: day,
        currency: Currency::parse("USD").unwrap_or_else(|_| unreachable!()),
        metrics: DailyMetrics {
            impressions: 1_000 + n % 977,
            clicks: 10 + n % 97,
            spend: Decimal::new(10_000 + (n % 5_000) as i64, 2),
            conversions: Decimal::from(n % 7),
            conversion_value: Decimal::new(2_500 + (n % 9_000) as i64, 2),
        },
        revision: 1,
    });
    NewEvent {
        event_id: EventId(Uuid::now_v7()),
        event_type: event.event_type().into(),
        schema_version: event.schema_version(),
        payload: event.to_payload(),
        occurred_at: Utc::now(),
    }
}

fn metadata() -> serde_json::Value {
    serde_json::to_value(EventMetadata::system("bench", Uuid::now_v7())).unwrap_or_default()
}

/// `writers` tasks append `total` insights events to their own campaign streams, `batch` per append.
async fn append_load(
    store: &EventStore,
    total: u64,
    writers: u64,
    batch: u64,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let per_writer = total / writers;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let workspace = WorkspaceId(Uuid::new_v4());
            let connection = ConnectionId(Uuid::new_v4());
            let start = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap_or_default();
            let mut done = 0u64;
            let mut campaign_no = 0u64;
            while done < per_writer {
                // One campaign stream per 400 days, like a real multi-year history.
                let campaign = CampaignId(Uuid::new_v4());
                campaign_no += 1;
                let mut version = 0i64;
                let mut day = 0u64;
                while day < 400 && done < per_writer {
                    let n = batch.min(per_writer - done).min(400 - day);
                    let events = (0..n)
                        .map(|i| {
                            insights_event(
                                campaign,
                                connection,
                                start + Duration::days((day + i) as i64),
                                w * 1_000_003 + done + i + campaign_no,
                            )
                        })
                        .collect();
                    store
                        .append(AppendRequest {
                            stream_id: StreamId::new(StreamType::Campaign, campaign.as_uuid()),
                            stream_type: "campaign",
                            workspace_id: workspace,
                            expected_version: version,
                            metadata: metadata(),
                            events,
                            idempotency: None,
                        })
                        .await?;
                    version += n as i64;
                    day += n;
                    done += n;
                }
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((per_writer * writers) as f64 / started.elapsed().as_secs_f64())
}

pub async fn run(url: &Secret<String>, args: BenchArgs) -> anyhow::Result<()> {
    let name = format!("adledger_bench_{}", Utc::now().format("%Y%m%d%H%M%S"));
    let bench_url = create_database(url, &name).await?;
    let result = measure(&bench_url, &args).await;
    if args.keep {
        println!("kept_database={name}");
    } else {
        drop_database(url, &name).await?;
    }
    result
}

async fn measure(url: &Secret<String>, args: &BenchArgs) -> anyhow::Result<()> {
    adledger_infra::migrate::run(url).await?;
    let db = Database::connect(url, 24).await?;
    let store = EventStore::new(db.app.clone());

    let version: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(store.pool())
        .await?;
    println!("postgres_version={version}");
    for setting in [
        "fsync",
        "synchronous_commit",
        "wal_level",
        "shared_buffers",
        "max_wal_size",
        "commit_delay",
    ] {
        let value: String = sqlx::query_scalar("SELECT current_setting($1)")
            .bind(setting)
            .fetch_one(store.pool())
            .await?;
        println!("postgres_{setting}={value}");
    }
    println!(
        "cpus={}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if args.proofs {
        crate::bench_proofs::sequencing(&store, args.tree_round_events, args.tree_rounds).await?;
        crate::bench_proofs::packages(&store).await?;
        crate::bench_proofs::in_memory(args.tree_leaves, 100_000);
        return Ok(());
    }

    // The sequencer runs beside the writers, as it does in `serve`.
    let (stop, stopped) = shutdown::channel();
    let seq = tokio::spawn(sequencer::run(store.clone(), stopped));

    let rate = append_load(&store, args.batched_events, 4, 100).await?;
    println!("append_batched_events_per_sec={rate:.0}");
    println!("append_batched_events={}", args.batched_events);

    let rate = append_load(&store, args.single_events, 16, 1).await?;
    println!("append_single_concurrent_events_per_sec={rate:.0}");
    println!("append_single_concurrent_writers=16");

    let started = Instant::now();
    let head = store.sequence_all().await?;
    println!(
        "sequencer_drain_after_appends_secs={:.2}",
        started.elapsed().as_secs_f64()
    );
    stop.trigger();
    seq.await?;

    // Sequencer throughput on its own: a backlog appended with no sequencer running.
    append_load(&store, args.replay_events, 4, 100).await?;
    let started = Instant::now();
    let head_after = store.sequence_all().await?;
    let sequenced = head_after - head;
    println!(
        "sequence_events_per_sec={:.0}",
        sequenced as f64 / started.elapsed().as_secs_f64()
    );

    // A live log has been analysed by autovacuum long before anyone rebuilds from it; this one
    // was bulk loaded seconds ago, and stale statistics would measure the planner, not replay.
    let mut owner = adledger_infra::db::connect_owner(url).await?;
    sqlx::query("ANALYZE events, event_log")
        .execute(&mut owner)
        .await?;
    sqlx::Connection::close(owner).await?;

    let projection = adledger_projections::by_name("daily_insights")
        .ok_or_else(|| anyhow::anyhow!("no daily_insights projection"))?;
    let started = Instant::now();
    let applied = adledger_projections::rebuild_in_place(
        &store,
        store.pool(),
        projection.name(),
        args.replay_batch,
    )
    .await?;
    let in_place = applied as f64 / started.elapsed().as_secs_f64();
    println!("replay_insights_batch={}", args.replay_batch);
    println!("replay_insights_events={applied}");
    println!("replay_insights_events_per_sec={in_place:.0}");

    // The same log into a new version beside the live one (indexes after the load, commits
    // not waiting for the WAL flush), switched to at the end: what `projections rebuild` does.
    let started = Instant::now();
    let rebuilt = adledger_projections::versions::rebuild(
        &store,
        store.pool(),
        &*projection,
        args.replay_batch,
        &|_| {},
    )
    .await?;
    let versioned = rebuilt.applied as f64 / started.elapsed().as_secs_f64();
    println!("rebuild_versioned_insights_events={}", rebuilt.applied);
    println!("rebuild_versioned_insights_events_per_sec={versioned:.0}");
    // In place once more, now that the log is as warm as the versioned rebuild found it: the
    // ratio compares against the better of the two in-place runs.
    let started = Instant::now();
    let again = adledger_projections::rebuild_in_place(
        &store,
        store.pool(),
        projection.name(),
        args.replay_batch,
    )
    .await?;
    let in_place_again = again as f64 / started.elapsed().as_secs_f64();
    println!("replay_insights_again_events_per_sec={in_place_again:.0}");
    println!(
        "rebuild_versioned_vs_in_place_ratio={:.2}",
        versioned / in_place.max(in_place_again).max(1e-9)
    );

    let started = Instant::now();
    let report = store.verify().await?;
    println!(
        "verify_events_per_sec={:.0}",
        report.verified as f64 / started.elapsed().as_secs_f64()
    );
    println!("log_events={}", report.head);

    if let Some(kafka) = args.kafka.config() {
        measure_kafka(&store, kafka, report.head, args.kafka_events).await?;
    }
    Ok(())
}

/// The relay over the whole bench log, Kafka-mode replay of `daily_insights` from the topic, and
/// the broker's raw idempotent produce rate for messages of the same size (the ceiling).
async fn measure_kafka(
    store: &EventStore,
    kafka: KafkaConfig,
    head: i64,
    events: i64,
) -> anyhow::Result<()> {
    let events = events.clamp(1, head.max(1));
    let run = Utc::now().format("%Y%m%d%H%M%S").to_string();
    let kafka = KafkaConfig {
        topic: format!("{}.bench.{run}", kafka.topic),
        ..kafka
    };
    println!("kafka_brokers={}", kafka.brokers);
    println!("kafka_partitions={}", kafka.partitions);

    let sample = store
        .read_log(&adledger_infra::LogFilter {
            after: head - 1,
            limit: 1,
            ..Default::default()
        })
        .await?;
    let Some(sample) = sample.first() else {
        anyhow::bail!("the bench log is empty");
    };
    let (_, value, headers) = adledger_infra::kafka::encode(sample)?;
    let raw_topic = format!("{}.raw", kafka.topic);
    let raw = raw_produce(&kafka, &raw_topic, &value, &headers, events).await?;
    println!("kafka_raw_produce_msgs_per_sec={raw:.0}");
    println!("kafka_message_bytes={}", value.len());
    println!("kafka_events={events}");

    kafka.ensure_topic().await?;
    // The relay starts `events` before the head: only the newest part of the log is published.
    sqlx::query("INSERT INTO relay_checkpoints (topic, position) VALUES ($1, $2)")
        .bind(&kafka.topic)
        .bind(head - events)
        .execute(store.pool())
        .await?;
    let (stop, stopped) = shutdown::channel();
    let started = Instant::now();
    let relay = tokio::spawn(relay::run(store.clone(), kafka.clone(), stopped));
    loop {
        let position = relay::status(store.pool(), &kafka.topic)
            .await?
            .map_or(0, |s| s.position);
        if position >= head {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    println!(
        "relay_events_per_sec={:.0}",
        events as f64 / started.elapsed().as_secs_f64()
    );
    stop.trigger();
    relay.await?;

    let started = Instant::now();
    let applied =
        adledger_projections::kafka::rebuild(store.pool(), &kafka, "daily_insights").await?;
    println!(
        "kafka_projection_events_per_sec={:.0}",
        applied as f64 / started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Idempotent, acks=all produce of `count` copies of one relay message (same value and headers),
/// keyed like the relay's: the broker's ceiling for the relay.
async fn raw_produce(
    kafka: &KafkaConfig,
    topic: &str,
    value: &[u8],
    headers: &rdkafka::message::OwnedHeaders,
    count: i64,
) -> anyhow::Result<f64> {
    use rdkafka::producer::FutureRecord;
    let raw = KafkaConfig {
        topic: topic.to_owned(),
        ..kafka.clone()
    };
    raw.ensure_topic().await?;
    let producer = raw.producer()?;
    let keys: Vec<String> = (0..64).map(|_| Uuid::new_v4().to_string()).collect();
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(count as usize);
    for i in 0..count as usize {
        let record = FutureRecord::to(topic)
            .key(&keys[i % keys.len()])
            .payload(value)
            .headers(headers.clone());
        deliveries.push(adledger_infra::kafka::enqueue(&producer, record).await?);
    }
    for delivery in deliveries {
        delivery
            .await?
            .map_err(|(e, _)| anyhow::anyhow!("raw produce failed: {e}"))?;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}
