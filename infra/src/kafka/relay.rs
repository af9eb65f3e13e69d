//! The relay publishes every sequenced event, in log order, to the topic.
//!
//! - One relay per topic is active at a time: it holds a session-level advisory lock on its own
//!   connection ([`crate::leader`]), so the lock goes when the process or its connection dies and
//!   a standby takes over.
//! - The producer is idempotent and never gives up on a message (`message.timeout.ms=0`): while
//!   the broker is away, deliveries wait and commands go on appending to Postgres.
//! - The checkpoint (`relay_checkpoints.position`) moves only over a contiguous run of delivered
//!   events. After a crash, the events after it are sent again; consumers drop the duplicates by
//!   log position.

use super::{encode, enqueue, KafkaConfig, KafkaSetupError};
use crate::event_store::{dense_run, EventStore, LogFilter, RecordedEvent, StoreError};
use crate::leader::{LeaderError, LeaderLock, Leadership};
use crate::shutdown::Shutdown;
use chrono::{DateTime, Utc};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::PgPool;
use std::time::Duration;

/// Events read from the log and handed to the producer per round.
pub const BATCH: i64 = 5_000;
/// The advisory lock class of relays; the topic name picks the lock within it.
const RELAY_LOCK_CLASS: i32 = 0x6164_6c03;
const IDLE_POLL: Duration = Duration::from_millis(100);
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("event store error: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Leader(#[from] LeaderError),
    #[error(transparent)]
    Setup(#[from] KafkaSetupError),
    #[error("kafka error: {0}")]
    Kafka(#[from] KafkaError),
    #[error("cannot encode the event at position {position}: {source}")]
    Encode {
        position: i64,
        #[source]
        source: serde_json::Error,
    },
}

/// How far the relay is behind the log.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RelayStatus {
    pub topic: String,
    /// Every event up to here is in the topic.
    pub position: i64,
    pub head: i64,
    pub lag_events: i64,
    /// Age of the oldest event not yet published (0 when caught up).
    pub lag_seconds: f64,
    pub events_published: i64,
    pub updated_at: Option<DateTime<Utc>>,
}

/// The relay's progress for `topic`; `None` when no relay has ever run for it.
pub async fn status(pool: &PgPool, topic: &str) -> Result<Option<RelayStatus>, sqlx::Error> {
    let row: Option<(i64, i64, DateTime<Utc>)> = sqlx::query_as(
        "SELECT position, events_published, updated_at FROM relay_checkpoints WHERE topic = $1",
    )
    .bind(topic)
    .fetch_optional(pool)
    .await?;
    let Some((position, events_published, updated_at)) = row else {
        return Ok(None);
    };
    let (head, oldest): (Option<i64>, Option<DateTime<Utc>>) = sqlx::query_as(
        "SELECT (SELECT max(position) FROM event_log),
                (SELECT e.recorded_at FROM event_log l JOIN events e ON e.id = l.event_row_id
                 WHERE l.position = $1 + 1)",
    )
    .bind(position)
    .fetch_one(pool)
    .await?;
    let head = head.unwrap_or(0);
    let lag_seconds = oldest.map_or(0.0, |t| {
        (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0
    });
    Ok(Some(RelayStatus {
        topic: topic.to_owned(),
        position,
        head,
        lag_events: (head - position).max(0),
        lag_seconds,
        events_published,
        updated_at: Some(updated_at),
    }))
}

/// Runs the relay until shutdown: stands by while another relay leads, publishes while leading,
/// and starts over after an error.
pub async fn run(store: EventStore, config: KafkaConfig, mut shutdown: Shutdown) {
    tracing::info!(topic = %config.topic, brokers = %config.brokers, "relay started");
    while !shutdown.is_triggered() {
        if let Err(error) = lead(&store, &config, &mut shutdown).await {
            tracing::warn!(topic = %config.topic, %error, "relay failed; starting over");
            tokio::select! {
                _ = tokio::time::sleep(ERROR_BACKOFF) => {}
                _ = shutdown.wait() => {}
            }
        }
    }
    tracing::info!(topic = %config.topic, "relay stopped");
}

/// Waits to become the leader, then publishes until shutdown or an error.
async fn lead(
    store: &EventStore,
    config: &KafkaConfig,
    shutdown: &mut Shutdown,
) -> Result<(), RelayError> {
    let lock = LeaderLock::new(RELAY_LOCK_CLASS, config.topic.clone());
    let Some(mut leadership) = lock.acquire(store.pool(), "relay", shutdown).await? else {
        return Ok(());
    };
    let outcome = publish_until_shutdown(store, config, &mut leadership, shutdown).await;
    // Closing the connection releases the lock at once for a standby.
    leadership.resign().await;
    outcome
}

async fn publish_until_shutdown(
    store: &EventStore,
    config: &KafkaConfig,
    leadership: &mut Leadership,
    shutdown: &mut Shutdown,
) -> Result<(), RelayError> {
    config.ensure_topic().await?;
    let producer = config.producer()?;
    sqlx::query("INSERT INTO relay_checkpoints (topic) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(&config.topic)
        .execute(store.pool())
        .await?;
    // Only the leader moves the checkpoint, so it is read once per leadership.
    let mut position: i64 =
        sqlx::query_scalar("SELECT position FROM relay_checkpoints WHERE topic = $1")
            .bind(&config.topic)
            .fetch_one(store.pool())
            .await?;
    let mut head = store.subscribe_head();
    while !shutdown.is_triggered() {
        // The lock is held by this connection; if it broke, so did the leadership.
        leadership.confirm().await?;
        let events = store
            .read_log(&LogFilter {
                after: position,
                limit: BATCH,
                ..LogFilter::default()
            })
            .await?;
        let events = contiguous(position, events);
        if events.is_empty() {
            tokio::select! {
                _ = head.changed() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
                _ = shutdown.wait() => {}
            }
            continue;
        }
        let (delivered, failure) = publish(&producer, &config.topic, &events, shutdown).await?;
        if delivered > position {
            sqlx::query(
                "UPDATE relay_checkpoints
                 SET position = $2, events_published = events_published + ($2 - position),
                     updated_at = now()
                 WHERE topic = $1 AND position < $2",
            )
            .bind(&config.topic)
            .bind(delivered)
            .execute(store.pool())
            .await?;
            position = delivered;
            tracing::debug!(topic = %config.topic, position, "published events");
        }
        if let Some(error) = failure {
            return Err(error.into());
        }
    }
    Ok(())
}

/// The events that follow `after` without a hole (the log has none; a reader stops rather than
/// skip if it ever did).
fn contiguous(after: i64, mut events: Vec<RecordedEvent>) -> Vec<RecordedEvent> {
    let dense = dense_run(after, events.iter().map(|e| e.position));
    if dense < events.len() {
        tracing::warn!(
            position = after + dense as i64 + 1,
            "hole in the log positions; the relay stops before it"
        );
        events.truncate(dense);
    }
    events
}

/// Hands every event to the producer, then waits for the deliveries in log order. Returns the
/// last position of the contiguous delivered run, and the error that ended it early, if any.
async fn publish(
    producer: &FutureProducer,
    topic: &str,
    events: &[RecordedEvent],
    shutdown: &mut Shutdown,
) -> Result<(i64, Option<KafkaError>), RelayError> {
    let first = events.first().and_then(|e| e.position).unwrap_or(1);
    let mut deliveries = Vec::with_capacity(events.len());
    for event in events {
        let position = event.position.unwrap_or(0);
        let (key, value, headers) =
            encode(event).map_err(|source| RelayError::Encode { position, source })?;
        let record = FutureRecord::to(topic)
            .key(&key)
            .payload(&value)
            .headers(headers);
        let delivery = match enqueue(producer, record).await {
            Ok(delivery) => delivery,
            Err(error) => return Ok((first - 1, Some(error))),
        };
        deliveries.push((position, delivery));
    }
    let mut delivered = first - 1;
    for (position, delivery) in deliveries {
        let outcome = tokio::select! {
            outcome = delivery => outcome,
            _ = shutdown.wait() => break,
        };
        match outcome {
            Ok(Ok(_)) => delivered = position,
            Ok(Err((error, _))) => return Ok((delivered, Some(error))),
            Err(_) => return Ok((delivered, Some(KafkaError::Canceled))),
        }
    }
    Ok((delivered, None))
}
