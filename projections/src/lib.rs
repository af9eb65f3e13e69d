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
pub mod reached;
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
pub use status::{
    checksum, deployment_status, Deployment, DeploymentStatus, ProjectionStatus, ReadinessBounds,
};

/// One read model: its tables and how a batch of events changes them.
#[async_trait]
pub trait Projection: Send + Sync {
    /// What the projection is called, owns and reads.
    fn model(&self) -> &'static ReadModel;
    /// The checkpoint name; stable, since it keys `projection_checkpoints`.
    fn name(&self) -> &'static str {
        self.model().name
    }
    /// Applies events (in log order) inside the caller's transaction. Applying an event twice
    /// must leave the rows as applying it once.
    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[(LogEntry, DomainEvent)],
    ) -> Result<(), ProjectionError>;
}

/// A read model: its checkpoint name, the tables it owns, and whether it reads the events'
/// context (stream, metadata, recorded-at: left out otherwise, less to read).
pub struct ReadModel {
    pub name: &'static str,
    pub tables: &'static [Table],
    pub reads_context: bool,
}

/// A table of a read model, and the key its rows are ordered by in its checksum.
pub struct Table {
    pub name: &'static str,
    pub key: &'static str,
}

impl ReadModel {
    /// Empties every table (a rebuild). Table names are constants, never user input.
    pub(crate) fn truncate_sql(&self) -> String {
        let names: Vec<&str> = self.tables.iter().map(|t| t.name).collect();
        format!("TRUNCATE {}", names.join(", "))
    }
}

impl Table {
    /// The md5 (text, or NULL when empty) of all the table's rows in key order.
    pub(crate) fn checksum_sql(&self) -> String {
        format!(
            "SELECT md5(string_agg(t::text, E'\\n' ORDER BY {})) FROM {} t",
            self.key, self.name
        )
    }
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

impl QueryError {
    /// The database is unreachable or out of connections for now (see
    /// [`adledger_infra::event_store::is_transient`]): "retry later", not a bug.
    pub fn is_transient(&self) -> bool {
        match self {
            QueryError::Database(e) => adledger_infra::event_store::is_transient(e),
        }
    }
}

impl ProjectionError {
    /// The database is unreachable or out of connections for now: "retry later", not a bug.
    pub fn is_transient(&self) -> bool {
        match self {
            ProjectionError::Database(e) => adledger_infra::event_store::is_transient(e),
            ProjectionError::Store(e) => e.is_transient(),
            _ => false,
        }
    }
}

/// Every projection, in the order a worker starts them.
pub fn all() -> Vec<Arc<dyn Projection>> {
    vec![Arc::new(Catalog), Arc::new(DailyInsights), Arc::new(Audit)]
}

pub fn by_name(name: &str) -> Option<Arc<dyn Projection>> {
    all().into_iter().find(|p| p.name() == name)
}
