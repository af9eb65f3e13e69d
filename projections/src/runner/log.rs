//! The Postgres log as a page source, and the loops that feed projections from it: catch up from
//! the checkpoint, follow the head, rebuild from position 0. A page is the dense run of sequenced
//! events after the projection's checkpoint row, which stays locked for the page's transaction so
//! that runners of one projection, in any process, take turns. The next page is read ahead while
//! one is applied. A hole in the positions stops the runner; it never skips one.

use super::{decode_after, PageSource};
use crate::runner::{self, Events, Page};
use crate::{by_name, Projection, ProjectionError};
use adledger_infra::event_store::dense_run;
use adledger_infra::shutdown::Shutdown;
use adledger_infra::{EventStore, LogEntry};
use async_trait::async_trait;
use sqlx::{PgConnection, PgPool};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Events per transaction when none is given.
pub const DEFAULT_BATCH: i64 = 5_000;
const POLL_INTERVAL: Duration = Duration::from_millis(100);
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// The next page, read and decoded on another task while the current one is applied: reading
/// and writing then overlap instead of taking turns. The log is immutable, so a page read ahead
/// is as good as one read under the checkpoint lock, as long as it starts where the checkpoint is.
struct ReadAhead {
    after: i64,
    page: JoinHandle<Result<Events, ProjectionError>>,
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.page.abort();
    }
}

/// Reads one projection's pages of the log, each full page's successor read ahead. Used by the
/// live runner ([`LogSource`]) and by builds of a new version (`versions::build`).
pub(crate) struct PageReader {
    store: EventStore,
    name: &'static str,
    with_context: bool,
    batch: i64,
    ahead: Option<ReadAhead>,
}

impl PageReader {
    pub(crate) fn new(store: &EventStore, projection: &dyn Projection, batch: i64) -> Self {
        Self {
            store: store.clone(),
            name: projection.name(),
            with_context: projection.model().reads_context,
            batch: batch.max(1),
            ahead: None,
        }
    }

    fn read(
        &self,
        after: i64,
    ) -> impl std::future::Future<Output = Result<Events, ProjectionError>> {
        read_page(
            self.store.clone(),
            after,
            self.batch,
            self.name,
            self.with_context,
        )
    }

    /// The page after `position` (empty at the head): the one read ahead when it starts there,
    /// else read now; a full page starts the read of the next.
    pub(crate) async fn page_after(&mut self, position: i64) -> Result<Events, ProjectionError> {
        let events = match self.ahead.take() {
            Some(mut read) if read.after == position => match (&mut read.page).await {
                Ok(page) => page?,
                // The task was cancelled or panicked: read the page here instead.
                Err(_) => self.read(position).await?,
            },
            _ => self.read(position).await?,
        };
        if let Some(last) = events.last().map(|(entry, _)| entry.position) {
            if events.len() as i64 == self.batch {
                self.ahead = Some(ReadAhead {
                    after: last,
                    page: tokio::spawn(self.read(last)),
                });
            }
        }
        Ok(events)
    }
}

/// One projection's pages from the Postgres log; its progress is a `projection_checkpoints` row.
struct LogSource {
    name: &'static str,
    pages: PageReader,
}

impl LogSource {
    fn new(store: &EventStore, projection: &dyn Projection, batch: i64) -> Self {
        Self {
            name: projection.name(),
            pages: PageReader::new(store, projection, batch),
        }
    }
}

/// The dense run of events after `after`, decoded.
pub(crate) async fn read_page(
    store: EventStore,
    after: i64,
    limit: i64,
    name: &'static str,
    with_context: bool,
) -> Result<Events, ProjectionError> {
    let entries = store.read_log_entries(after, limit, with_context).await?;
    decode_after(after, dense_prefix(after, entries, name))
}

/// The events that follow `after` without a hole. The sequencer hands out dense positions, so a
/// hole means something is wrong: stop there rather than skip.
fn dense_prefix(after: i64, mut events: Vec<LogEntry>, name: &str) -> Vec<LogEntry> {
    let dense = dense_run(after, events.iter().map(|e| Some(e.position)));
    if dense < events.len() {
        tracing::warn!(
            projection = name,
            position = after + dense as i64 + 1,
            "hole in the log positions; stopping before it"
        );
        events.truncate(dense);
    }
    events
}

#[async_trait]
impl PageSource for LogSource {
    /// The checkpoint: the last position applied.
    type Progress = i64;

    async fn next_page(
        &mut self,
        tx: &mut PgConnection,
    ) -> Result<Option<Page<i64>>, ProjectionError> {
        sqlx::query("INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(self.name)
            .execute(&mut *tx)
            .await?;
        // The row lock serialises runners of one projection, in this process or another.
        let position: i64 = sqlx::query_scalar(
            "SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE",
        )
        .bind(self.name)
        .fetch_one(&mut *tx)
        .await?;
        let events = self.pages.page_after(position).await?;
        let Some(last) = events.last().map(|(entry, _)| entry.position) else {
            return Ok(None);
        };
        Ok(Some(Page {
            from: position,
            to: last,
            events,
        }))
    }

    async fn save(
        &mut self,
        tx: &mut PgConnection,
        page: &Page<i64>,
        events_per_sec: f64,
    ) -> Result<bool, ProjectionError> {
        let saved = sqlx::query(
            "UPDATE projection_checkpoints
             SET position = $2, events_applied = events_applied + $3, last_error = NULL,
                 events_per_sec = $4, updated_at = now()
             WHERE name = $1 AND position = $5",
        )
        .bind(self.name)
        .bind(page.to)
        .bind(page.events.len() as i64)
        .bind(events_per_sec)
        .bind(page.from)
        .execute(&mut *tx)
        .await?;
        Ok(saved.rows_affected() == 1)
    }

    fn settled(&mut self, _page: &Page<i64>, _committed: bool) {}

    async fn record_error(&self, pool: &PgPool, error: &ProjectionError) {
        let recorded = sqlx::query(
            "INSERT INTO projection_checkpoints (name, last_error) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET last_error = excluded.last_error, updated_at = now()",
        )
        .bind(self.name)
        .bind(error.to_string())
        .execute(pool)
        .await;
        if let Err(e) = recorded {
            tracing::warn!(projection = self.name, error = %e, "could not record the projection error");
        }
    }
}

/// Applies every sequenced event after the checkpoint, `batch` per transaction. Returns how many
/// events were applied.
pub async fn catch_up(
    store: &EventStore,
    pool: &PgPool,
    projection: &dyn Projection,
    batch: i64,
) -> Result<u64, ProjectionError> {
    let mut source = LogSource::new(store, projection, batch);
    runner::drain(pool, projection, &mut source, None).await
}

/// Keeps every projection caught up until shutdown: one loop each, woken when the sequenced head
/// moves in this process, or by a short poll for other processes' events.
pub async fn run(
    store: EventStore,
    pool: PgPool,
    projections: Vec<Arc<dyn Projection>>,
    shutdown: Shutdown,
) {
    runner::each(projections, |projection| {
        follow(store.clone(), pool.clone(), projection, shutdown.clone())
    })
    .await
}

async fn follow(
    store: EventStore,
    pool: PgPool,
    projection: Arc<dyn Projection>,
    mut shutdown: Shutdown,
) {
    let name = projection.name();
    tracing::info!(projection = name, "projection started");
    let mut head = store.subscribe_head();
    let mut head_alive = true;
    let mut ensured = false;
    loop {
        // A new read model gets its first version before its first page.
        let outcome = match ensured {
            true => Ok(0),
            false => crate::versions::ensure(&pool, &*projection)
                .await
                .map(|_| 0),
        };
        ensured = outcome.is_ok();
        let outcome = match outcome {
            Ok(_) => {
                let mut source = LogSource::new(&store, &*projection, DEFAULT_BATCH);
                runner::drain(&pool, &*projection, &mut source, Some(&shutdown)).await
            }
            Err(error) => Err(error),
        };
        let wait = match outcome {
            Ok(_) => POLL_INTERVAL,
            Err(error) => {
                tracing::warn!(projection = name, %error, "projection failed; retrying");
                ERROR_BACKOFF
            }
        };
        if shutdown.is_triggered() {
            break;
        }
        tokio::select! {
            changed = head.changed(), if head_alive && wait == POLL_INTERVAL => {
                head_alive = changed.is_ok();
            }
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait() => break,
        }
    }
    tracing::info!(projection = name, "projection stopped");
}

/// Empties the live version's tables and replays the whole log into them, `batch` events per
/// transaction: readers see the tables fill up again. Kept to measure versioned rebuilds against
/// (`adledger bench`); `projections rebuild` builds a new version instead ([`crate::versions`]).
pub async fn rebuild_in_place(
    store: &EventStore,
    pool: &PgPool,
    name: &str,
    batch: i64,
) -> Result<u64, ProjectionError> {
    let projection =
        by_name(name).ok_or_else(|| ProjectionError::UnknownProjection(name.to_owned()))?;
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    crate::versions::live(&mut tx, projection.model()).await?;
    sqlx::query(&projection.model().truncate_sql())
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE projection_checkpoints
         SET position = 0, events_applied = 0, last_error = NULL, updated_at = now()
         WHERE name = $1",
    )
    .bind(name)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(projection = name, "projection reset; replaying the log");
    catch_up(store, pool, &*projection, batch).await
}
