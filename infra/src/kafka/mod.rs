//! The Kafka side of the log: the relay publishes every sequenced event to a topic, and projection
//! workers may read the topic instead of Postgres. Postgres stays the log of record; the topic is a
//! copy that can always be filled again from it.
//!
//! One message per event: key = workspace id (so a workspace's events stay in one partition, in
//! log order), value = the event as JSON (the same shape as `adledger replay`), headers = event id,
//! log position, event type and schema version.

pub mod relay;

use crate::event_store::{EventContext, LogEntry, RecordedEvent};
use adledger_domain::WorkspaceId;
use chrono::{DateTime, Utc};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders, ToBytes};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::time::Duration;
use uuid::Uuid;

pub const DEFAULT_TOPIC: &str = "adledger.events";
pub const DEFAULT_PARTITIONS: i32 = 3;

/// Where the broker is and which topic carries the log.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `host:port[,host:port...]`
    pub brokers: String,
    pub topic: String,
    /// Partitions of the topic when the relay creates it. Changing it later moves workspaces
    /// between partitions, so it is fixed at creation.
    pub partitions: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum KafkaSetupError {
    #[error("kafka error: {0}")]
    Kafka(#[from] KafkaError),
    #[error("cannot create topic {topic}: {code}")]
    CreateTopic {
        topic: String,
        code: RDKafkaErrorCode,
    },
}

impl KafkaConfig {
    /// Settings every client shares.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            // Loopback brokers resolve to v4 and v6; tansu listens on v4 only.
            .set("broker.address.family", "v4")
            .set("client.id", "adledger");
        // librdkafka's own debug contexts (e.g. `cgrp,fetch`), for diagnosing a broker.
        if let Ok(debug) = std::env::var("ADLEDGER_KAFKA_DEBUG") {
            config.set("debug", debug);
        }
        config
    }

    /// The relay's producer: idempotent, acks=all, and it never drops a message (while the broker
    /// is down, deliveries wait for it).
    pub fn producer(&self) -> Result<FutureProducer, KafkaError> {
        self.client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "0")
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "200000")
            .create()
    }

    /// Creates the topic when it does not exist yet.
    pub async fn ensure_topic(&self) -> Result<(), KafkaSetupError> {
        let admin: AdminClient<DefaultClientContext> = self.client_config().create()?;
        let topic = NewTopic::new(&self.topic, self.partitions, TopicReplication::Fixed(1));
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for result in admin.create_topics([&topic], &options).await? {
            match result {
                Ok(_) => {
                    tracing::info!(topic = %self.topic, partitions = self.partitions, "created the topic")
                }
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => return Err(KafkaSetupError::CreateTopic { topic, code }),
            }
        }
        Ok(())
    }
}

/// Hands a record to the producer, waiting while its local queue is full.
pub async fn enqueue<K, P>(
    producer: &FutureProducer,
    mut record: FutureRecord<'_, K, P>,
) -> Result<DeliveryFuture, KafkaError>
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err((error, _)) => return Err(error),
        }
    }
}

/// Headers of an event message.
pub mod header {
    pub const EVENT_ID: &str = "event_id";
    pub const POSITION: &str = "position";
    pub const EVENT_TYPE: &str = "event_type";
    pub const SCHEMA_VERSION: &str = "schema_version";
}

/// The message for one sequenced event: (key, value, headers).
pub fn encode(event: &RecordedEvent) -> Result<(String, Vec<u8>, OwnedHeaders), serde_json::Error> {
    let value = serde_json::to_vec(event)?;
    let position = event.position.unwrap_or(0).to_string();
    let event_id = event.event_id.as_uuid().to_string();
    let version = event.schema_version.to_string();
    let headers = OwnedHeaders::new_with_capacity(4)
        .insert(Header {
            key: header::EVENT_ID,
            value: Some(&event_id),
        })
        .insert(Header {
            key: header::POSITION,
            value: Some(&position),
        })
        .insert(Header {
            key: header::EVENT_TYPE,
            value: Some(&event.event_type),
        })
        .insert(Header {
            key: header::SCHEMA_VERSION,
            value: Some(&version),
        });
    Ok((event.workspace_id.as_uuid().to_string(), value, headers))
}

/// The part of a message's value that projections read.
#[derive(Deserialize)]
struct Value<'a> {
    position: i64,
    workspace_id: Uuid,
    stream_id: String,
    event_type: String,
    schema_version: i32,
    #[serde(borrow)]
    payload: &'a RawValue,
    #[serde(borrow)]
    metadata: &'a RawValue,
    occurred_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
}

/// Reads an event message's value back into the entry projections apply.
pub fn decode(value: &[u8]) -> Result<LogEntry, serde_json::Error> {
    let v: Value<'_> = serde_json::from_slice(value)?;
    Ok(LogEntry {
        position: v.position,
        workspace_id: WorkspaceId(v.workspace_id),
        event_type: v.event_type,
        schema_version: v.schema_version,
        payload: v.payload.get().to_owned(),
        occurred_at: v.occurred_at,
        context: Some(EventContext {
            stream_id: v.stream_id,
            metadata: v.metadata.get().to_owned(),
            recorded_at: v.recorded_at,
        }),
    })
}
