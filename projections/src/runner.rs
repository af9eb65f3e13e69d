//! Running projections: catch up from the checkpoint in batches (rows and checkpoint in one
//! transaction), follow the log head, and rebuild from position 0. A runner never skips an event:
//! it stops at a hole in the positions and fails on an event it cannot decode.

use crate::{all, by_name, Projection, ProjectionError};
use adledger_domain::DomainEvent;
use adledger_infra::event_store::dense_run;
use adledger_infra::shutdown::Shutdown;
use adledger_infra::{EventStore, LogEntry};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Events per transaction when none is given.
pub const DEFAULT_BATCH: i64 = 5_000;
const POLL_INTERVAL: Duration = Duration::from_millis(100);
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// Applies every sequenced event after the checkpoint, `batch` per transaction. Returns how many
/// events were applied.
pub async fn catch_up(
    store: &EventStore,
    pool: &PgPool,
    projection: &dyn Projection,
    batch: i64,
) -> Result<u64, ProjectionError> {
    catch_up_until(store, pool, projection, batch, None).await
}

async fn catch_up_until(
    store: &EventStore,
    pool: &PgPool,
    projection: &dyn Projection,
    batch: i64,
    shutdown: Option<&Shutdown>,
) -> Result<u64, ProjectionError> {
    let mut applied = 0;
    let mut ahead = None;
    loop {
        if shutdown.is_some_and(Shutdown::is_triggered) {
            return Ok(applied);
        }
        match apply_batch(store, pool, projection, batch.max(1), &mut ahead).await {
            Ok(0) => return Ok(applied),
            Ok(n) => applied += n,
            Err(error) => {
                record_error(pool, projection.name(), &error).await;
                return Err(error);
            }
        }
    }
}

type Page = Vec<(LogEntry, DomainEvent)>;

/// The next page, read and decoded on another task while the current one is applied: reading
/// and writing then overlap instead of taking turns. The log is immutable, so a page read ahead
/// is as good as one read under the checkpoint lock, as long as it starts where the checkpoint is.
struct ReadAhead {
    after: i64,
    page: JoinHandle<Result<Page, ProjectionError>>,
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.page.abort();
    }
}

/// The dense run of events after `after`, decoded.
async fn read_page(
    store: &EventStore,
    after: i64,
    limit: i64,
    name: &'static str,
    with_context: bool,
) -> Result<Page, ProjectionError> {
    let entries = store.read_log_entries(after, limit, with_context).await?;
    let entries = dense_prefix(after, entries, name);
    let mut page = Vec::with_capacity(entries.len());
    for entry in entries {
        let event = entry.decode().map_err(|source| ProjectionError::Decode {
            position: entry.position,
            source,
        })?;
        page.push((entry, event));
    }
    Ok(page)
}
/// Best effort: the error being reported matters more than a failure to record it.
async fn record_error(pool: &PgPool, name: &str, error: &ProjectionError) {
    let recorded = sqlx::query(
        "INSERT INTO projection_checkpoints (name, last_error) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET last_error = excluded.last_error, updated_at = now()",
    )
    .bind(name)
    .bind(error.to_string())
    .execute(pool)
    .await;
    if let Err(e) = recorded {
        tracing::warn!(projection = name, error = %e, "could not record the projection error");
    }
}

/// One transaction: lock the checkpoint, take the next page, apply it, move the checkpoint.
async fn apply_batch(
    store: &EventStore,
    pool: &PgPool,
    projection: &dyn Projection,
    batch: i64,
    ahead: &mut Option<ReadAhead>,
) -> Result<u64, ProjectionError> {
    let name = projection.name();
    let context = projection.reads_context();
    let started = std::time::Instant::now();
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    // The row lock serialises runners of one projection, in this process or another.
    let (position,): (i64,) =
        sqlx::query_as("SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
    let page = match ahead.take() {
        Some(mut read) if read.after == position => match (&mut read.page).await {
            Ok(page) => page?,
            // The task was cancelled or panicked: read the page here instead.
            Err(_) => read_page(store, position, batch, name, context).await?,
        },
        _ => read_page(store, position, batch, name, context).await?,
    };
    let Some(last) = page.last().map(|(entry, _)| entry.position) else {
        return Ok(0);
    };
    if page.len() as i64 == batch {
        let store = store.clone();
        *ahead = Some(ReadAhead {
            after: last,
            page: tokio::spawn(async move { read_page(&store, last, batch, name, context).await }),
        });
    }
    projection.apply(&mut tx, &page).await?;
    let n = page.len() as u64;
    sqlx::query(
        "UPDATE projection_checkpoints
         SET position = $2, events_applied = events_applied + $3, last_error = NULL,
             events_per_sec = $4, updated_at = now()
         WHERE name = $1",
    )
    .bind(name)
    .bind(last)
    .bind(n as i64)
    .bind(n as f64 / started.elapsed().as_secs_f64().max(1e-6))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::debug!(
        projection = name,
        position = last,
        applied = n,
        "projected events"
    );
    Ok(n)
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

/// Keeps every projection caught up until shutdown: one loop each, woken when the sequenced head
/// moves in this process, or by a short poll for other processes' events.
pub async fn run(
    store: EventStore,
    pool: PgPool,
    projections: Vec<Arc<dyn Projection>>,
    shutdown: Shutdown,
) {
    let loops: Vec<_> = projections
        .into_iter()
        .map(|projection| {
            tokio::spawn(follow(
                store.clone(),
                pool.clone(),
                projection,
                shutdown.clone(),
            ))
        })
        .collect();
    for handle in loops {
        if let Err(error) = handle.await {
            tracing::warn!(%error, "projection loop ended abnormally");
        }
    }
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
    loop {
        let outcome =
            catch_up_until(&store, &pool, &*projection, DEFAULT_BATCH, Some(&shutdown)).await;
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

/// Empties the projection's tables and replays the whole log into them, `batch` events per
/// transaction. Readers see the tables fill up again (zero-downtime rebuilds come later).
pub async fn rebuild(
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
    // Table names are constants of the projection, never user input.
    let truncate = format!("TRUNCATE {}", projection.tables().join(", "));
    sqlx::query(&truncate).execute(&mut *tx).await?;
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

/// Names of every projection (for status listings and the CLI).
pub(crate) fn names() -> Vec<&'static str> {
    all().iter().map(|p| p.name()).collect()
}
