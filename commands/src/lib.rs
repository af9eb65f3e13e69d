//! The write side: one method per user intent, in a file named by that intent. Each builds the
//! domain command, and [`Commands::decide`] loads the aggregate's stream, asks its `decide`, and
//! appends the decision at the version it was made on, deciding again on a concurrent write.
//! Business rules live in the domain, never here; time comes from the injected [`Clock`].
//!
//! Where to look: `workspaces` (create), `connections` (sandbox, OAuth, disconnect), `syncs`
//! (start, run, tokens, failure, the workers that run them and the scheduler), `access` (who may
//! do what), `members` and `api_keys`, `identity` (registration, sessions, second factor,
//! erasure, operators).

pub mod access;
pub mod api_keys;
pub mod clock;
pub mod connections;
mod decide;
mod error;
mod idempotency;
pub mod identity;
pub mod members;
pub mod syncs;
mod workspaces;

pub use clock::{Clock, ManualClock, SystemClock};
pub use decide::{Loaded, Outcome, Target};
pub use error::CommandError;
pub use idempotency::IdempotencyKey;
pub use syncs::worker::DEFAULT_MAX_CONCURRENT_SYNCS;
pub use syncs::{ConnectorFactory, SYNC_CHUNK_DAYS};

use adledger_connectors::resilience::CircuitBreaker;
use adledger_domain::{ConnectionId, EventMetadata};
use adledger_infra::EventStore;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Who asks and under which idempotency key (the time is the clock's).
#[derive(Debug, Clone)]
pub struct CommandContext {
    pub metadata: EventMetadata,
    pub idempotency_key: Option<IdempotencyKey>,
}

impl CommandContext {
    /// A command of adledger itself (scheduler, CLI, demo), named by its component.
    pub fn system(name: &str) -> Self {
        Self {
            metadata: EventMetadata::system(name, uuid::Uuid::now_v7()),
            idempotency_key: None,
        }
    }
}

/// The command handlers. Cheap to clone: clones share the store, the clock and the platforms.
#[derive(Clone)]
pub struct Commands {
    store: EventStore,
    clock: Arc<dyn Clock>,
    /// One circuit breaker per connection, shared by its runs in this process: a failing
    /// platform account is left alone for a while instead of being hammered by every run.
    breakers: Arc<Mutex<HashMap<ConnectionId, Arc<CircuitBreaker>>>>,
    /// The real ad platforms, when this deployment has them (the sandbox needs nothing).
    connectors: Option<Arc<connections::ConnectorSetup>>,
    /// Builds the connector of a connection instead (tests, scripted platforms).
    connector_factory: Option<ConnectorFactory>,
}

impl Commands {
    pub fn new(store: EventStore) -> Self {
        Self {
            store,
            clock: Arc::new(SystemClock),
            breakers: Arc::default(),
            connectors: None,
            connector_factory: None,
        }
    }

    /// Decisions are taken at the times `clock` tells (tests drive a [`ManualClock`]).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Syncs talk to the connectors `factory` builds instead of the platforms' own (tests,
    /// scripted platforms).
    pub fn with_connector_factory(mut self, factory: ConnectorFactory) -> Self {
        self.connector_factory = Some(factory);
        self
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    fn breaker(&self, connection: ConnectionId) -> Arc<CircuitBreaker> {
        // A poisoned map is still a valid map.
        let mut breakers = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        breakers.entry(connection).or_default().clone()
    }
}
