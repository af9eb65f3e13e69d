//! The business rules of adledger as pure functions: ids, money, events and the aggregates'
//! `decide`/`evolve`. No I/O, no clock, no randomness here: time and ids arrive in commands.

pub mod access;
pub mod aggregate;
pub mod as_of;
pub mod campaign;
pub mod connection;
pub mod date_range;
pub mod error;
pub mod event;
pub mod failure;
pub mod ids;
pub mod insights;
pub mod metadata;
pub mod money;
pub mod names;
pub mod personal;
pub mod platform;
pub mod testing;
pub mod upcast;
pub mod user;
pub mod workspace;

pub use access::{ApiKeyScope, Permission, Role};
pub use aggregate::Aggregate;
pub use as_of::AsOf;
pub use date_range::{DateRange, Day, DayError};
pub use error::DomainError;
pub use event::{DecodeError, DomainEvent};
pub use failure::{FailureKind, SyncFailure};
pub use ids::*;
pub use insights::{DailyMetrics, DerivedMetrics, MetricTotals};
pub use metadata::{Actor, EventMetadata, RequestSource};
pub use money::Currency;
pub use personal::Sealed;
pub use platform::Platform;
