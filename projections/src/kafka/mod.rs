//! Kafka-mode projection workers: the same projections, fed from the relay's topic instead of the
//! Postgres log, so that several processes can share the topic's partitions. This module owns the
//! consumer (assigned partitions only: no consumer group, no committed offsets, no auto-commit)
//! and the worker loops; [`partition`] turns a partition's messages into the runner's pages and
//! [`lease`] decides, in Postgres, which worker reads which partition.
//!
//! Effects are exactly once without Kafka transactions: a page of one partition is applied in one
//! Postgres transaction together with that partition's `projection_offsets` row, fenced on the
//! offset the page started from and on the worker's lease.

mod lease;
mod partition;

use crate::runner;
use crate::{Projection, ProjectionError};
use adledger_infra::kafka::{decode, KafkaConfig};
use adledger_infra::shutdown::Shutdown;
use lease::Leases;
use partition::{PartitionSource, Received};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use sqlx::PgPool;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Messages gathered into one round of batches (split by partition).
pub const KAFKA_BATCH: usize = 5_000;
/// How long a round waits for more messages once it has one.
const GATHER: Duration = Duration::from_millis(20);
/// How long a round waits for a first message before the worker looks at its leases again.
const IDLE_WAIT: Duration = Duration::from_millis(200);
const ERROR_BACKOFF: Duration = Duration::from_secs(1);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an operator's status waits for the broker to tell one partition's end.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// A rebuild gives up when the broker sends nothing for this long.
const REBUILD_STALL: Duration = Duration::from_secs(60);

/// Consumer settings of a Kafka-mode worker.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// How long a partition lease lasts: a dead worker's partitions move after at most this.
    pub lease: Duration,
    /// Holds the leases (host:pid by default).
    pub worker_id: String,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".into());
        Self {
            lease: Duration::from_secs(10),
            worker_id: format!("{host}:{}", std::process::id()),
        }
    }
}

/// A consumer that is only ever assigned partitions: no group membership, no committed offsets.
pub(crate) fn consumer(config: &KafkaConfig) -> Result<StreamConsumer, KafkaError> {
    config
        .client_config()
        // librdkafka wants a group id even for assign(); nothing is ever committed under it.
        .set("group.id", "adledger.unused")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .create()
}

/// The topic's partition count (0 while the topic does not exist yet).
fn partition_count(consumer: &StreamConsumer, topic: &str) -> Result<i32, KafkaError> {
    let metadata = consumer.fetch_metadata(Some(topic), CLIENT_TIMEOUT)?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len() as i32)
        .sum())
}

/// Reads `partitions` from the offsets stored in Postgres.
async fn assign(
    pool: &PgPool,
    consumer: &StreamConsumer,
    projection: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<(), ProjectionError> {
    #[derive(sqlx::FromRow)]
    struct Stored {
        partition: i32,
        next_offset: i64,
    }
    let stored: Vec<Stored> = sqlx::query_as(
        "SELECT partition, next_offset FROM projection_offsets
         WHERE projection = $1 AND topic = $2 AND partition = ANY($3)",
    )
    .bind(projection)
    .bind(topic)
    .bind(partitions)
    .fetch_all(pool)
    .await?;
    let stored: HashMap<i32, i64> = stored
        .into_iter()
        .map(|s| (s.partition, s.next_offset))
        .collect();
    let mut assignment = TopicPartitionList::new();
    for &partition in partitions {
        let offset = match stored.get(&partition) {
            Some(&next) if next > 0 => Offset::Offset(next),
            _ => Offset::Beginning,
        };
        assignment.add_partition_offset(topic, partition, offset)?;
    }
    consumer.assign(&assignment)?;
    Ok(())
}

fn receive(message: &rdkafka::message::BorrowedMessage<'_>) -> Received {
    let entry = match message.payload() {
        Some(value) => decode(value).map_err(|e| e.to_string()),
        None => Err("message has no value".to_owned()),
    };
    Received {
        partition: message.partition(),
        offset: message.offset(),
        entry,
    }
}

/// Waits up to `first_wait` for one message, then takes what else arrives within [`GATHER`].
async fn gather(consumer: &StreamConsumer, first_wait: Duration) -> Vec<Received> {
    let mut round = Vec::new();
    match tokio::time::timeout(first_wait, consumer.recv()).await {
        Ok(Ok(message)) => round.push(receive(&message)),
        Ok(Err(error)) => {
            tracing::warn!(%error, "kafka consumer error");
            return round;
        }
        Err(_) => return round,
    }
    let deadline = Instant::now() + GATHER;
    while round.len() < KAFKA_BATCH {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(message)) => round.push(receive(&message)),
            Ok(Err(error)) => tracing::warn!(%error, "kafka consumer error"),
            Err(_) => break,
        }
    }
    round
}

/// Runs every projection from the topic until shutdown, each sharing the partitions with the
/// other workers of that projection.
pub async fn run(
    pool: PgPool,
    config: KafkaConfig,
    projections: Vec<Arc<dyn Projection>>,
    options: WorkerOptions,
    shutdown: Shutdown,
) {
    runner::each(projections, |projection| {
        follow(
            pool.clone(),
            config.clone(),
            projection,
            options.clone(),
            shutdown.clone(),
        )
    })
    .await
}

async fn follow(
    pool: PgPool,
    config: KafkaConfig,
    projection: Arc<dyn Projection>,
    options: WorkerOptions,
    shutdown: Shutdown,
) {
    let name = projection.name();
    tracing::info!(projection = name, topic = %config.topic, worker = %options.worker_id,
        "kafka projection started");
    let leases = Leases {
        pool: &pool,
        projection: name,
        topic: &config.topic,
        worker: &options.worker_id,
        ttl: options.lease,
    };
    while !shutdown.is_triggered() {
        // A new read model gets its first version before its first page.
        let consumed = match crate::versions::ensure(&pool, &*projection).await {
            Ok(()) => consume(&pool, &config, &*projection, &leases, &shutdown).await,
            Err(error) => Err(error),
        };
        if let Err(error) = consumed {
            tracing::warn!(projection = name, %error, "kafka projection failed; restarting");
            let mut shutdown = shutdown.clone();
            tokio::select! {
                _ = tokio::time::sleep(ERROR_BACKOFF) => {}
                _ = shutdown.wait() => {}
            }
        }
    }
    if let Err(error) = leases.release_all().await {
        tracing::warn!(projection = name, %error, "could not release the partition leases");
    }
    tracing::info!(projection = name, "kafka projection stopped");
}

async fn consume(
    pool: &PgPool,
    config: &KafkaConfig,
    projection: &dyn Projection,
    leases: &Leases<'_>,
    shutdown: &Shutdown,
) -> Result<(), ProjectionError> {
    let consumer = consumer(config)?;
    let mut source =
        PartitionSource::new(projection.name(), &config.topic, &consumer, leases.worker);
    let balance_every = leases.ttl / 4;
    let mut partitions = 0;
    let mut assigned: Vec<i32> = Vec::new();
    let mut next_balance = Instant::now();
    while !shutdown.is_triggered() {
        if Instant::now() >= next_balance {
            if partitions == 0 {
                partitions = partition_count(&consumer, &config.topic)?;
            }
            let mine = leases.balance(partitions).await?;
            if mine != assigned {
                tracing::info!(projection = projection.name(), partitions = ?mine,
                    "kafka partitions assigned");
                assign(pool, &consumer, projection.name(), &config.topic, &mine).await?;
                source.forget();
                assigned = mine;
            }
            next_balance = Instant::now() + balance_every;
        }
        source.receive(gather(&consumer, IDLE_WAIT.min(balance_every)).await);
        runner::drain(pool, projection, &mut source, None).await?;
    }
    Ok(())
}

/// Empties the projection's tables and its offsets for this topic, then applies the whole topic
/// (up to the end it had when the rebuild began). Stop the projection's Kafka workers first.
pub async fn rebuild(
    pool: &PgPool,
    config: &KafkaConfig,
    name: &str,
) -> Result<u64, ProjectionError> {
    let projection =
        crate::by_name(name).ok_or_else(|| ProjectionError::UnknownProjection(name.to_owned()))?;
    let mut tx = pool.begin().await?;
    crate::versions::live(&mut tx, projection.model()).await?;
    sqlx::query(&projection.model().truncate_sql())
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM projection_offsets WHERE projection = $1 AND topic = $2")
        .bind(name)
        .bind(&config.topic)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;

    // Every partition from the start, held by this rebuild (workers must be stopped).
    let owner = format!("rebuild:{}", uuid::Uuid::now_v7());
    let consumer = consumer(config)?;
    let partitions = partition_count(&consumer, &config.topic)?;
    sqlx::query(
        "INSERT INTO projection_offsets (projection, topic, partition, owner)
         SELECT $1, $2, p, $3 FROM generate_series(0, $4 - 1) AS p",
    )
    .bind(name)
    .bind(&config.topic)
    .bind(&owner)
    .bind(partitions)
    .execute(pool)
    .await?;
    let mut ends = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        let (_, high) = consumer.fetch_watermarks(&config.topic, partition, CLIENT_TIMEOUT)?;
        if high > 0 {
            ends.insert(partition, high);
            assignment.add_partition_offset(&config.topic, partition, Offset::Beginning)?;
        }
    }
    tracing::info!(projection = name, topic = %config.topic, ?ends, "rebuilding from kafka");
    if !ends.is_empty() {
        consumer.assign(&assignment)?;
    }
    let mut source = PartitionSource::new(projection.name(), &config.topic, &consumer, &owner);
    let mut applied = 0;
    let mut last_progress = Instant::now();
    while !ends.is_empty() {
        let round = gather(&consumer, IDLE_WAIT).await;
        if round.is_empty() {
            if last_progress.elapsed() > REBUILD_STALL {
                return Err(ProjectionError::KafkaStalled(REBUILD_STALL));
            }
            continue;
        }
        last_progress = Instant::now();
        source.receive(round);
        applied += runner::drain(pool, &*projection, &mut source, None).await?;
        ends.retain(|&partition, end| source.next_offset(partition).is_none_or(|next| next < *end));
    }
    sqlx::query(
        "UPDATE projection_offsets SET owner = NULL, lease_until = NULL
         WHERE projection = $1 AND topic = $2 AND owner = $3",
    )
    .bind(name)
    .bind(&config.topic)
    .bind(&owner)
    .execute(pool)
    .await?;
    Ok(applied)
}

/// The end (high watermark) of each of `partitions` of `config.topic`, for operators' status: the
/// broker is asked off the async runtime (librdkafka's calls block), [`PROBE_TIMEOUT`] each, and
/// not asked again after it failed to answer once. Partitions it did not tell are left out.
pub(crate) async fn partition_ends(
    config: &KafkaConfig,
    partitions: BTreeSet<i32>,
) -> HashMap<i32, i64> {
    if partitions.is_empty() {
        return HashMap::new();
    }
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        let Ok(probe) = consumer(&config) else {
            return HashMap::new();
        };
        partitions
            .into_iter()
            .map_while(|partition| {
                probe
                    .fetch_watermarks(&config.topic, partition, PROBE_TIMEOUT)
                    .ok()
                    .map(|(_, high)| (partition, high))
            })
            .collect()
    })
    .await
    .unwrap_or_default()
}
