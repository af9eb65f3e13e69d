//! Everything that touches the outside world below the domain: the Postgres event store and its
//! sequencer, migrations, crypto (keys, crypto-shredding, passwords, tokens), configuration
//! secrets and telemetry. Nothing above this crate names sqlx types in its public API, except the
//! read-model layer that owns its tables.

pub mod credentials;
pub mod crypto;
pub mod db;
pub mod erasure;
pub mod event_store;
pub mod identity;
pub mod kafka;
pub mod leader;
pub mod merkle;
pub mod migrate;
pub mod secret;
pub mod shutdown;
pub mod sync_jobs;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use crypto::{CryptoError, JwtKeys, MasterKeys, Opened, Sealer, TokenError};
pub use db::Database;
pub use event_store::{
    ActorFilter, AppendOutcome, AppendRequest, EventContext, EventFilter, EventRow, EventStore,
    HorizonHolder, Idempotency, LogEntry, LogFilter, NewEvent, RecordedEvent, StoreError, Written,
};
pub use secret::Secret;
