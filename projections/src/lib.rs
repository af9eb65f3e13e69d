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
pub mod versions;

use adledger_domain::{DecodeError, DomainEvent};
use adledger_infra::{LogEntry, StoreError};
use async_trait::async_trait;
use sqlx::PgConnection;
use std::sync::Arc;

pub use audit::Audit;
pub use catalog::Catalog;
pub use daily_insights::DailyInsights;
pub use runner::log::{catch_up, rebuild_in_place, run, DEFAULT_BATCH};
pub use status::{
    checksum, checksum_version, deployment_status, Deployment, DeploymentStatus, ProjectionStatus,
    ReadinessBounds,
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
    /// Applies events (in log order) inside the caller's transaction, whose search path names
    /// the version's schema first (so the projection's SQL names its tables unqualified). Applying
    /// an event twice must leave the rows as applying it once. A side effect (a webhook, an
    /// email) may be started only when `target.is_live()`: a build or a rollback's catch-up
    /// replays events that already had theirs.
    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[(LogEntry, DomainEvent)],
        target: Target,
    ) -> Result<(), ProjectionError>;
}

/// The version of a read model a batch is applied to, and whether readers see it: side effects
/// fire for the live version only, never while a version is built or caught up for a rollback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Live { version: i32 },
    Build { version: i32 },
}

impl Target {
    pub fn is_live(&self) -> bool {
        matches!(self, Target::Live { .. })
    }

    pub fn version(&self) -> i32 {
        match self {
            Target::Live { version } | Target::Build { version } => *version,
        }
    }
}

/// A read model: its checkpoint name, the tables it owns, and whether it reads the events'
/// context (stream, metadata, recorded-at: left out otherwise, less to read); its code version
/// and the DDL that creates a version of it (run with the version's schema first in the search
/// path: tables with their keys, then, after the bulk load, the secondary indexes). Bump
/// `version` when the rows it builds change (a fix, a new column or table): the next rebuild,
/// or `serve --rebuild-outdated`, builds a new version with it.
pub struct ReadModel {
    pub name: &'static str,
    pub tables: &'static [Table],
    pub reads_context: bool,
    pub version: i32,
    pub ddl: &'static str,
    /// `CREATE INDEX IF NOT EXISTS …`: run again after a crash, it must not fail.
    pub indexes: &'static str,
}

/// A table of a read model, and the key its rows are ordered by in its checksum.
pub struct Table {
    pub name: &'static str,
    pub key: &'static str,
}

impl ReadModel {
    /// Empties every table of the version the search path names first (an in-place rebuild).
    /// Table names are constants, never user input.
    pub(crate) fn truncate_sql(&self) -> String {
        let names: Vec<&str> = self.tables.iter().map(|t| t.name).collect();
        format!("TRUNCATE {}", names.join(", "))
    }
}

impl Table {
    /// The md5 (text, or NULL when empty) of all the table's rows in key order, read from
    /// `schema` (a version's) or, without one, through the live version's view.
    pub(crate) fn checksum_sql(&self, schema: Option<&str>) -> String {
        let table = match schema {
            Some(schema) => format!("{schema}.{}", self.name),
            None => self.name.to_owned(),
        };
        format!(
            "SELECT md5(string_agg(t::text, E'\\n' ORDER BY {})) FROM {table} t",
            self.key
        )
    }
}

/// A read of a read model failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// The database cancelled the query: it ran past the session's `statement_timeout`.
    #[error("the query ran past its statement timeout and was cancelled")]
    Cancelled,
}

impl From<sqlx::Error> for QueryError {
    fn from(e: sqlx::Error) -> Self {
        // 57014 query_canceled: a statement timeout (or a cancel request) stopped it.
        match &e {
            sqlx::Error::Database(db) if db.code().as_deref() == Some("57014") => {
                QueryError::Cancelled
            }
            _ => QueryError::Database(e),
        }
    }
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
    #[error("read model {0:?} has no live version")]
    NoLiveVersion(String),
    #[error("read model {name:?} has no version {version} that readers do not see")]
    NoVersion { name: String, version: i32 },
    #[error("version {version} of read model {name:?} is live; roll back or rebuild first")]
    VersionIsLive { name: String, version: i32 },
    #[error("read model {0:?} has no retired version to roll back to")]
    NothingToRollBack(String),
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
            QueryError::Cancelled => false,
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

/// Builds a new version of the named read model from the whole log and switches readers to it
/// (see [`versions::rebuild`]). Returns the events applied to the new version.
pub async fn rebuild(
    store: &adledger_infra::EventStore,
    pool: &sqlx::PgPool,
    name: &str,
    batch: i64,
) -> Result<u64, ProjectionError> {
    let projection =
        by_name(name).ok_or_else(|| ProjectionError::UnknownProjection(name.to_owned()))?;
    let rebuilt = versions::rebuild(store, pool, &*projection, batch, &|_| {}).await?;
    Ok(rebuilt.applied)
}

pub fn by_name(name: &str) -> Option<Arc<dyn Projection>> {
    all().into_iter().find(|p| p.name() == name)
}
