//! The projection runner, one for both page sources (the Postgres log in [`log`], a Kafka
//! partition in [`crate::kafka`]): take the next page after the stored progress, apply it and
//! move the progress, fenced on where the page started, in one transaction; record the error of
//! a page that fails. A source decides where pages come from and how progress is kept; the
//! runner never skips, reorders or re-applies what a source hands it.

pub mod log;

use crate::{Projection, ProjectionError, Target};
use adledger_domain::DomainEvent;
use adledger_infra::shutdown::Shutdown;
use adledger_infra::LogEntry;
use async_trait::async_trait;
use sqlx::{PgConnection, PgPool};
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

/// Events in log order, decoded.
pub(crate) type Events = Vec<(LogEntry, DomainEvent)>;

/// Events to apply and the stored progress they move between.
pub(crate) struct Page<P> {
    /// The progress the page was read after: its write is fenced on it.
    pub from: P,
    /// The progress once the page is applied.
    pub to: P,
    /// May be empty when the source only moves past duplicates.
    pub events: Events,
}

/// Where pages come from and where the progress over them is kept.
#[async_trait]
pub(crate) trait PageSource: Send {
    type Progress: Copy + Debug + Send + Sync;

    /// The next page after the progress stored now, read inside the page's transaction (a source
    /// may lock its progress there); `None` when there is nothing to apply yet.
    async fn next_page(
        &mut self,
        tx: &mut PgConnection,
    ) -> Result<Option<Page<Self::Progress>>, ProjectionError>;

    /// Moves the stored progress from `page.from` to `page.to` in the page's transaction, with the
    /// batch's throughput. `false` when the stored progress is no longer `page.from` (another
    /// runner took over): the page's rows are then rolled back.
    async fn save(
        &mut self,
        tx: &mut PgConnection,
        page: &Page<Self::Progress>,
        events_per_sec: f64,
    ) -> Result<bool, ProjectionError>;

    /// The version the page writes to, made the search path of the page's transaction. The
    /// Postgres log and Kafka feed the live version, locked shared: a switch, which locks it for
    /// update, waits for the pages in flight, and later pages write to the version it made live.
    async fn target(
        &mut self,
        tx: &mut PgConnection,
        projection: &dyn Projection,
    ) -> Result<Target, ProjectionError> {
        crate::versions::live(tx, projection.model()).await
    }

    /// How the page ended: committed, or rolled back because the fence did not hold.
    fn settled(&mut self, page: &Page<Self::Progress>, committed: bool);

    /// Keeps the error beside the stored progress, for operators. Best effort: the error being
    /// reported matters more than a failure to record it.
    async fn record_error(&self, pool: &PgPool, error: &ProjectionError);
}

/// Applies the source's next page in one transaction with its progress. Returns the events
/// applied (0 for a page the fence turned away), `None` when the source had no page.
pub(crate) async fn apply_next<S: PageSource>(
    pool: &PgPool,
    projection: &dyn Projection,
    source: &mut S,
) -> Result<Option<u64>, ProjectionError> {
    let applied = apply(pool, projection, source).await;
    if let Err(error) = &applied {
        source.record_error(pool, error).await;
    }
    applied
}

async fn apply<S: PageSource>(
    pool: &PgPool,
    projection: &dyn Projection,
    source: &mut S,
) -> Result<Option<u64>, ProjectionError> {
    let started = Instant::now();
    let mut tx = pool.begin().await?;
    let Some(page) = source.next_page(&mut tx).await? else {
        return Ok(None);
    };
    let target = source.target(&mut tx, projection).await?;
    projection.apply(&mut tx, &page.events, target).await?;
    let applied = page.events.len() as u64;
    let rate = applied as f64 / started.elapsed().as_secs_f64().max(1e-6);
    if !source.save(&mut tx, &page, rate).await? {
        tx.rollback().await?;
        source.settled(&page, false);
        return Ok(Some(0));
    }
    tx.commit().await?;
    source.settled(&page, true);
    tracing::debug!(
        projection = projection.name(),
        progress = ?page.to,
        applied,
        "projected events"
    );
    Ok(Some(applied))
}

/// Applies pages until the source has none left (or shutdown). Returns the events applied.
pub(crate) async fn drain<S: PageSource>(
    pool: &PgPool,
    projection: &dyn Projection,
    source: &mut S,
    shutdown: Option<&Shutdown>,
) -> Result<u64, ProjectionError> {
    let mut applied = 0;
    while !shutdown.is_some_and(Shutdown::is_triggered) {
        match apply_next(pool, projection, source).await? {
            Some(n) => applied += n,
            None => break,
        }
    }
    Ok(applied)
}

/// Decodes `entries` in order, dropping every one at or below `after` or below one already kept:
/// a source that sends a run again (the relay after a crash) must not have it applied twice.
pub(crate) fn decode_after(
    after: i64,
    entries: impl IntoIterator<Item = LogEntry>,
) -> Result<Events, ProjectionError> {
    let mut last = after;
    let mut events = Vec::new();
    for entry in entries {
        if entry.position <= last {
            continue;
        }
        last = entry.position;
        let event = entry.decode().map_err(|source| ProjectionError::Decode {
            position: entry.position,
            source,
        })?;
        events.push((entry, event));
    }
    Ok(events)
}

/// Runs `follow` for every projection, each on its own task, until all of them end.
pub(crate) async fn each<F, Fut>(projections: Vec<Arc<dyn Projection>>, follow: F)
where
    F: Fn(Arc<dyn Projection>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let loops: Vec<_> = projections
        .into_iter()
        .map(|projection| tokio::spawn(follow(projection)))
        .collect();
    for handle in loops {
        if let Err(error) = handle.await {
            tracing::warn!(%error, "projection loop ended abnormally");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adledger_domain::event::WorkspaceCreated;
    use adledger_domain::WorkspaceId;
    use chrono::DateTime;
    use uuid::Uuid;

    fn entry(position: i64) -> LogEntry {
        let event = DomainEvent::WorkspaceCreated(WorkspaceCreated {
            workspace_id: WorkspaceId(Uuid::from_u128(1)),
            name: "Acme".into(),
        });
        LogEntry {
            position,
            workspace_id: WorkspaceId(Uuid::from_u128(1)),
            event_type: event.event_type().to_owned(),
            schema_version: event.schema_version(),
            payload: event.to_payload().to_string(),
            occurred_at: DateTime::UNIX_EPOCH,
            context: None,
        }
    }

    #[test]
    fn a_run_sent_again_is_dropped_by_log_position() {
        let entries = [3, 4, 2, 4, 5, 1].map(entry);
        let kept: Vec<i64> = decode_after(2, entries)
            .unwrap()
            .iter()
            .map(|(e, _)| e.position)
            .collect();
        assert_eq!(kept, [3, 4, 5]);
    }

    #[test]
    fn an_undecodable_event_names_its_position() {
        let mut bad = entry(7);
        bad.payload = "{}".into();
        let error = decode_after(0, [entry(6), bad]).unwrap_err();
        assert!(matches!(error, ProjectionError::Decode { position: 7, .. }));
    }
}
