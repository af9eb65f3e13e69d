//! The event store: appends with optimistic concurrency and idempotency keys, reads streams and
//! the global log. It owns `events`, `event_log` and `idempotency_keys`, and never updates or
//! deletes a row of them (the database refuses it too).

mod append;
pub(crate) mod canonical;
pub mod checkpoints;
mod filter;
pub mod horizon;
mod package;
mod read;
pub mod sequencer;
mod tree;
pub mod verify;
mod written;

use adledger_domain::{EventId, StreamId, WorkspaceId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use std::sync::Arc;
use tokio::sync::{watch, Notify};

pub use filter::{ActorFilter, EventFilter};
pub use horizon::{HorizonHolder, SettleHorizon, Unsequenced};
pub use package::PackageRange;
pub use read::{dense_run, EventContext, LogEntry, LogFilter};
pub use tree::TreeHead;
pub use verify::{BrokenLink, VerifyReport};
pub use written::{EventRow, Written};

/// One event to append, as a decision produced it.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: EventId,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: Value,
    pub occurred_at: DateTime<Utc>,
}

/// The first outcome stored under an idempotency key is returned again on a retry.
#[derive(Debug, Clone)]
pub struct Idempotency {
    /// Keys are unique per scope (a workspace id, or "global").
    pub scope: String,
    pub key: String,
    /// Identifies the request; the same key with another fingerprint is refused.
    pub fingerprint: String,
    /// What the command answered, to answer again on a retry.
    pub outcome: Value,
}

#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub stream_id: StreamId,
    pub stream_type: &'static str,
    pub workspace_id: WorkspaceId,
    /// The stream version the decision was made on; 0 for a stream that must not exist yet.
    pub expected_version: i64,
    pub metadata: Value,
    pub events: Vec<NewEvent>,
    pub idempotency: Option<Idempotency>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AppendOutcome {
    Appended {
        last_version: i64,
    },
    /// The idempotency key was used before with the same request: nothing was appended.
    Duplicate {
        outcome: Value,
    },
}

/// A stored event. `payload` and `schema_version` are as stored; decode through the domain,
/// which upcasts older versions.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedEvent {
    /// Position in the global log; `None` while the sequencer has not reached it yet.
    pub position: Option<i64>,
    pub event_id: EventId,
    pub stream_id: StreamId,
    pub stream_type: String,
    pub stream_version: i64,
    pub workspace_id: WorkspaceId,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: Value,
    pub metadata: Value,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    #[serde(serialize_with = "hex_hash")]
    pub hash: Option<[u8; 32]>,
}

fn hex_hash<S: serde::Serializer>(hash: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
    match hash {
        Some(h) => s.serialize_str(&hex::encode(h)),
        None => s.serialize_none(),
    }
}

impl RecordedEvent {
    pub fn decode(&self) -> Result<adledger_domain::DomainEvent, adledger_domain::DecodeError> {
        adledger_domain::DomainEvent::decode(
            &self.event_type,
            self.schema_version,
            self.payload.clone(),
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("stream {stream} is not at version {expected}: another writer appended first")]
    WrongExpectedVersion { stream: StreamId, expected: i64 },
    #[error("idempotency key {key:?} was already used for a different request")]
    IdempotencyKeyReused { key: String },
    #[error("stored event is not readable: {0}")]
    Corrupt(String),
    #[error(
        "this database's next transaction id ({next}) is not above the log's newest ({newest}): \
         it was restored into another cluster, and new events could never be sequenced. Stop \
         PostgreSQL and run `pg_resetwal -e {epoch}` on its data directory before anything \
         writes (docs/runbooks.md, \"Backup and restore\")"
    )]
    TransactionIdsBehind { newest: u64, next: u64, epoch: u64 },
    #[error(
        "{count} committed events are still held back from the log by {holder} after waiting \
         {waited_secs} s"
    )]
    HeldBack {
        count: i64,
        holder: String,
        waited_secs: u64,
    },
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    /// Whether the same call may succeed once the database is back (a restart, a dropped
    /// connection, a pool out of connections): worth retrying for work that must not be lost,
    /// and answered as "database unavailable, retry later" (503) to an API client.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(e) => is_transient(e),
            _ => false,
        }
    }
}

/// A database error that says "not now" rather than "no": the connection broke, the server is
/// shutting down or starting up, or no connection was free in time.
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exceptions; 57P01-03: admin shutdown, crash shutdown, cannot
            // connect now; 53300: too many connections.
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// Cheap to clone: one pool and the in-process wake-ups shared by all clones.
#[derive(Clone)]
pub struct EventStore {
    pool: PgPool,
    /// Woken after every local append so the sequencer need not wait for its poll interval.
    appended: Arc<Notify>,
    /// The head of the sequenced log as this process last saw it advance.
    head: Arc<watch::Sender<i64>>,
    /// Whether the sequencer extends the Merkle tree (always, but in a benchmark's baseline).
    merkle_tree: bool,
}

impl EventStore {
    pub fn new(pool: PgPool) -> Self {
        let (head, _) = watch::channel(0);
        Self {
            pool,
            appended: Arc::new(Notify::new()),
            head: Arc::new(head),
            merkle_tree: true,
        }
    }

    /// The same store whose sequencer does not extend the Merkle tree: only the baseline of a
    /// benchmark (`adledger bench --proofs`). A store with the tree catches up on what it left.
    pub fn without_merkle_tree(&self) -> Self {
        Self {
            merkle_tree: false,
            ..self.clone()
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The same store over a pool of its own whose statements the database cancels after
    /// `timeout` ([`crate::db::with_statement_timeout`]): what the API reads through.
    pub fn with_statement_timeout(&self, timeout: std::time::Duration) -> Self {
        Self {
            pool: crate::db::with_statement_timeout(&self.pool, timeout),
            appended: self.appended.clone(),
            head: self.head.clone(),
            merkle_tree: self.merkle_tree,
        }
    }

    /// Resolves after the next local append (or at once if one happened since the last wait).
    pub async fn appended(&self) {
        self.appended.notified().await
    }

    /// Follows the sequenced head as it advances in this process.
    pub fn subscribe_head(&self) -> watch::Receiver<i64> {
        self.head.subscribe()
    }
}
