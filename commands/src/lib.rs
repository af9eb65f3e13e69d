//! The write side: one method per user intent. Each loads the aggregate's stream, folds it with
//! the domain's `evolve`, asks the domain's `decide`, and appends the decision at the version it
//! was made on, retrying on a concurrent write. Business rules live in the domain, never here.

pub mod connect;
mod execute;
mod idempotency;
pub mod identity;
pub mod members;
pub mod scheduler;
mod setup;
mod sync;

pub use sync::{ConnectorFactory, SYNC_CHUNK_DAYS};

use adledger_connectors::resilience::CircuitBreaker;
use adledger_domain::{ConnectionId, DomainError, EventMetadata, SyncId};
use adledger_infra::{EventStore, StoreError};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// Sync runs one process carries out at the same time unless configured otherwise.
pub const DEFAULT_MAX_CONCURRENT_SYNCS: usize = 4;

/// Who asks, under which idempotency key, and when (commands never read the clock).
#[derive(Debug, Clone)]
pub struct CommandContext {
    pub metadata: EventMetadata,
    pub idempotency_key: Option<String>,
    pub now: DateTime<Utc>,
}

/// The command handlers. Cheap to clone: clones share the store and the set of running syncs.
#[derive(Clone)]
pub struct Commands {
    store: EventStore,
    /// Syncs being run by this process, so a second run of the same sync is refused at once.
    running: Arc<Mutex<HashSet<SyncId>>>,
    /// One circuit breaker per connection, shared by its syncs in this process: a failing
    /// platform account is left alone for a while instead of being hammered by every run.
    breakers: Arc<Mutex<HashMap<ConnectionId, Arc<CircuitBreaker>>>>,
    /// One permit per sync run this process may carry out at once, shared by manual and
    /// scheduled runs: a run waits here for its turn.
    sync_slots: Arc<Semaphore>,
    /// The real ad platforms, when this deployment has them (the sandbox needs nothing).
    connectors: Option<Arc<connect::ConnectorSetup>>,
    /// Builds the connector of a connection instead (tests, scripted platforms).
    connector_factory: Option<ConnectorFactory>,
}

impl Commands {
    pub fn new(store: EventStore) -> Self {
        Self {
            store,
            running: Arc::default(),
            breakers: Arc::default(),
            sync_slots: Arc::new(Semaphore::new(DEFAULT_MAX_CONCURRENT_SYNCS)),
            connectors: None,
            connector_factory: None,
        }
    }

    /// At most `limit` sync runs (at least one) at a time in this process; the others wait.
    pub fn with_max_concurrent_syncs(mut self, limit: usize) -> Self {
        self.sync_slots = Arc::new(Semaphore::new(limit.max(1)));
        self
    }

    /// Syncs talk to the connectors `factory` builds instead of the platforms' own (tests,
    /// scripted platforms).
    pub fn with_connector_factory(mut self, factory: ConnectorFactory) -> Self {
        self.connector_factory = Some(factory);
        self
    }

    fn breaker(&self, connection: ConnectionId) -> Arc<CircuitBreaker> {
        // A poisoned map is still a valid map.
        let mut breakers = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        breakers.entry(connection).or_default().clone()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The workspace, connection, ... does not exist (or belongs to another workspace).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A business rule refused the command.
    #[error(transparent)]
    Rejected(DomainError),
    /// Other writers kept changing the stream; still conflicting after retries.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("idempotency key {0:?} was already used for a different request")]
    IdempotencyKeyReused(String),
    /// The ad platform failed; the sync was recorded as failed with this reason.
    #[error("ad platform error: {0}")]
    Connector(String),
    /// The credentials were missing, wrong or expired (worded the same for every cause that
    /// must not be told apart, such as an unknown email and a wrong password).
    #[error("{0}")]
    Unauthenticated(String),
    /// The password was right; the account needs its TOTP or a recovery code too.
    #[error("a second factor (TOTP or recovery code) is required")]
    SecondFactorRequired,
    /// A refresh token was presented a second time: its whole session was revoked.
    #[error("this refresh token was already used; the session has been revoked")]
    RefreshTokenReused,
    /// The caller may see the workspace but not do this in it.
    #[error("{0}")]
    Forbidden(String),
    /// Too many failed attempts for this account; try again after this many seconds.
    #[error("too many failed attempts; try again in {retry_after_secs} s")]
    TooManyAttempts { retry_after_secs: u64 },
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("cryptography failed: {0}")]
    Crypto(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<DomainError> for CommandError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::NotFound(what) => CommandError::NotFound(what),
            other => CommandError::Rejected(other),
        }
    }
}

impl From<StoreError> for CommandError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::IdempotencyKeyReused { key } => CommandError::IdempotencyKeyReused(key),
            other => CommandError::Store(other),
        }
    }
}
