//! Syncs: a person or the scheduler starts one (`start`: it only records the start), and sync
//! workers carry it out (`worker`: leased jobs, takeovers, graceful hand-backs) by running it
//! (`run`: discovery, then each ad account's range in chunks, recorded as progress) with the
//! connection's tokens (`tokens`). A failure is typed from the connector to the event
//! (`failure`). Discovery also runs on its own right after a connect (`discovery`). The
//! `scheduler` starts syncs of due connections.

mod discovery;
mod failure;
mod interrupt;
mod run;
pub mod scheduler;
mod start;
mod tokens;
pub mod worker;

pub use worker::{SyncWorker, WorkerConfig};

use crate::CommandError;
use adledger_connectors::Connector;
use adledger_domain::connection::Connected;
use backon::{ExponentialBuilder, Retryable};
use std::future::Future;
use std::sync::Arc;

/// Days of one ad account fetched, stored and recorded as progress at a time. 30 is what every
/// supported platform accepts per daily-report request (TikTok's limit is the tightest).
pub const SYNC_CHUNK_DAYS: u32 = 30;

/// Builds the connector that a run of this connection talks to.
pub type ConnectorFactory = Arc<dyn Fn(&Connected) -> Box<dyn Connector> + Send + Sync>;

/// Retries a write of a sync worker while the database is unreachable (a restart takes seconds):
/// a run's work must not be lost to a blip. About half a minute in all, then the error stands.
pub(crate) async fn retrying<T, F, Fut>(what: &str, op: F) -> Result<T, CommandError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CommandError>>,
{
    op.retry(
        ExponentialBuilder::default()
            .with_min_delay(std::time::Duration::from_millis(100))
            .with_max_delay(std::time::Duration::from_secs(5))
            .with_max_times(10)
            .with_jitter(),
    )
    .when(CommandError::is_transient)
    .notify(|error, wait| {
        tracing::warn!(%error, ?wait, "{what}: the database is unreachable; retrying");
    })
    .await
}
