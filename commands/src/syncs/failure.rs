//! A sync run's failure, typed from what failed: a connector's error keeps its kind
//! (`ConnectorError::kind`), a refusal by the domain of what a platform answered is `invalid`,
//! and adledger's own trouble is `internal` (its details stay in the logs, never in events).

use crate::CommandError;
use adledger_connectors::ConnectorError;
use adledger_domain::{DomainError, FailureKind, SyncFailure};

/// The platform failed while the run did `context` (discovery, an ad account's chunk).
pub(crate) fn platform(context: &str, e: &ConnectorError) -> SyncFailure {
    SyncFailure::new(e.kind(), format!("{context}: {e}"))
}

/// The platform answered something the domain refuses (a campaign of an unknown ad account).
pub(crate) fn refused(context: &str, e: &DomainError) -> SyncFailure {
    SyncFailure::new(FailureKind::Invalid, format!("{context}: {e}"))
}

/// adledger could not do `what`; `error` is logged, not recorded.
pub(crate) fn internal(what: &str, error: &CommandError) -> SyncFailure {
    tracing::error!(%error, "{what}");
    SyncFailure::new(FailureKind::Internal, what)
}
