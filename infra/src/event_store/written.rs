//! What the current request appended. Every append made while a [`Written`] is in scope records
//! the last event row it stored, so the API can tell a caller which log position its write
//! reached and make its next reads wait for it, without each command handing positions back.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

tokio::task_local! {
    static WRITTEN: Written;
}

/// The last event row appended inside [`Written::scope`] (task-local: appends of the scoped
/// future and whatever it awaits, not of tasks it spawns).
#[derive(Debug, Clone, Default)]
pub struct Written(Arc<AtomicI64>);

/// An event's row in `events` (its insertion order, not yet its log position).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventRow(pub i64);

impl Written {
    /// Runs `work`, recording what it appends into `self`.
    pub async fn scope<F: Future>(&self, work: F) -> F::Output {
        WRITTEN.scope(self.clone(), work).await
    }

    /// The last row appended in scope, if any was.
    pub fn last(&self) -> Option<EventRow> {
        match self.0.load(Ordering::Acquire) {
            0 => None,
            row => Some(EventRow(row)),
        }
    }
}

/// Notes a committed append's last row, when a request is watching.
pub(super) fn record(row: i64) {
    let _ = WRITTEN.try_with(|w| w.0.fetch_max(row, Ordering::AcqRel));
}

impl super::EventStore {
    /// The log position the sequencer gave this row; `None` while it has not reached it.
    pub async fn position_of(&self, row: EventRow) -> Result<Option<i64>, super::StoreError> {
        Ok(
            sqlx::query_scalar("SELECT position FROM event_log WHERE event_row_id = $1")
                .bind(row.0)
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}
