//! Read models built from the event log. Each read model's module holds its projection (how
//! events become its rows) beside its queries (typed views of those rows): [`catalog`],
//! [`daily_insights`], [`audit`]. One runner feeds every projection pages from the Postgres log
//! or from a Kafka partition ([`kafka`]), checkpointed in the same transaction as the rows;
//! [`status`] reports how far each got. Projections never write events and never read the wall
//! clock into a row, so replaying the log gives byte-identical tables.

pub mod audit;
pub mod catalog;
mod columns;
pub mod daily_insights;
pub mod kafka;
mod runner;
pub mod status;

use adledger_domain::{DecodeError, DomainEvent};
use adledger_infra::{LogEntry, StoreError};
use async_trait::async_trait;
use sqlx::PgConnection;
use std::sync::Arc;

pub use audit::Audit;
pub use catalog::Catalog;
pub use daily_insights::DailyInsights;
pub use runner::log::{catch_up, rebuild, run, DEFAULT_BATCH};
pub use status::{checksum, deployment_status, Deployment, DeploymentStatus, ProjectionStatus};

/// One read model: its tables and how a batch of events changes them.
#[async_trait]
pub trait Projection: Send + Sync {
    /// The checkpoint name; stable, since it keys `projection_checkpoints`.
    fn name(&self) -> &'static str;
    /// Every table the projection owns (truncated by a rebuild).
    fn tables(&self) -> &'static [&'static str];
    /// One query per table returning the md5 (text, or NULL when empty) of all its rows in key
    /// order; together they fingerprint the read model.
    fn checksum_sql(&self) -> &'static [&'static str];
    /// Whether `apply` reads the events' context: stream, metadata, recorded-at (it is left out
    /// otherwise: less to read).
    fn reads_context(&self) -> bool {
        false
    }
    /// Applies events (in log order) inside the caller's transaction. Applying an event twice
    /// must leave the rows as applying it once.
    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[(LogEntry, DomainEvent)],
    ) -> Result<(), ProjectionError>;
}

/// A read of a read model failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("event store error: {0}")]
    Store(#[from] StoreError),
    #[error("event at position {position} cannot be decoded: {source}")]
    Decode {
        position: i64,
        #[source]
        source: DecodeError,
    },
    #[error("event at position {position} cannot be projected: {reason}")]
    Invalid { position: i64, reason: String },
    #[error("no projection is named {0:?}")]
    UnknownProjection(String),
    #[error("kafka error: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("message at partition {partition} offset {offset} is not an event: {reason}")]
    BadMessage {
        partition: i32,
        offset: i64,
        reason: String,
    },
    #[error(
        "partition {partition} no longer holds offset {needed} (earliest is {earliest}): \
         rebuild this projection from the Postgres log"
    )]
    TopicTruncated {
        partition: i32,
        needed: i64,
        earliest: i64,
    },
    #[error("no message arrived from kafka for {0:?} while partitions were still behind")]
    KafkaStalled(std::time::Duration),
}

/// Every projection, in the order a worker starts them.
pub fn all() -> Vec<Arc<dyn Projection>> {
    vec![Arc::new(Catalog), Arc::new(DailyInsights), Arc::new(Audit)]
}

pub fn by_name(name: &str) -> Option<Arc<dyn Projection>> {
    all().into_iter().find(|p| p.name() == name)
}
