//! Building a version beside the live one and switching readers to it. A build applies the log
//! from position 0 into the version's schema in big pages (its secondary indexes come after the
//! bulk load), then catches up with the head; the switch applies the last events and moves the
//! views in one transaction that holds the live checkpoint's lock, so that no event falls between
//! the two versions. The previous version stays, retired, for a rollback. A build that crashed
//! resumes from its own checkpoint (its registry row) when started again.

use super::{create_schema, point_views, run_sql, use_schema, State};
use crate::runner::log::{read_page, PageReader};
use crate::runner::{self, Page, PageSource};
use crate::{Projection, ProjectionError, Target};
use adledger_infra::EventStore;
use async_trait::async_trait;
use sqlx::{PgConnection, PgPool};
use std::sync::Arc;

/// What a rebuild or a rollback did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rebuilt {
    /// The version readers see now.
    pub version: i32,
    /// The version they saw before, now retired.
    pub previous: i32,
    /// Events applied to the new version by this call.
    pub applied: u64,
}

/// Builds a new version of the projection's read model from the whole log (or resumes the build
/// a crash left, when made by the same code version), then makes it live. `on_page` hears the
/// build's position after each page.
pub async fn rebuild(
    store: &EventStore,
    pool: &PgPool,
    projection: &dyn Projection,
    batch: i64,
    on_page: &(dyn Fn(i64) + Send + Sync),
) -> Result<Rebuilt, ProjectionError> {
    super::ensure(pool, projection).await?;
    let version = start(pool, projection).await?;
    tracing::info!(
        projection = projection.name(),
        version,
        "building a new version"
    );
    finish(store, pool, projection, version, batch, on_page).await
}

/// Switches readers back to the version retired last: catches it up with the head, then
/// switches as a rebuild does. The version left is retired in turn (a second rollback undoes
/// the first).
pub async fn rollback(
    store: &EventStore,
    pool: &PgPool,
    projection: &dyn Projection,
    batch: i64,
    on_page: &(dyn Fn(i64) + Send + Sync),
) -> Result<Rebuilt, ProjectionError> {
    let version: Option<i32> = sqlx::query_scalar(
        "SELECT version FROM read_model_versions WHERE name = $1 AND state = 'retired'
         ORDER BY retired_at DESC NULLS LAST, version DESC LIMIT 1",
    )
    .bind(projection.name())
    .fetch_optional(pool)
    .await?;
    let version =
        version.ok_or_else(|| ProjectionError::NothingToRollBack(projection.name().to_owned()))?;
    finish(store, pool, projection, version, batch, on_page).await
}

/// Rebuilds, one after the other, every projection whose live version was built by older code
/// (or whose build a crash left): what `serve --rebuild-outdated` runs in the background.
/// Returns the rebuilds done.
pub async fn rebuild_outdated(
    store: &EventStore,
    pool: &PgPool,
    projections: &[Arc<dyn Projection>],
    batch: i64,
) -> Result<Vec<(&'static str, Rebuilt)>, ProjectionError> {
    let mut done = Vec::new();
    for projection in projections {
        super::ensure(pool, &**projection).await?;
        let (live, building): (Option<i32>, bool) = sqlx::query_as(
            "SELECT max(code_version) FILTER (WHERE state = 'live'),
                    bool_or(state = 'building')
             FROM read_model_versions WHERE name = $1",
        )
        .bind(projection.name())
        .fetch_one(pool)
        .await?;
        if live.is_some_and(|v| v >= projection.model().version) && !building {
            continue;
        }
        tracing::info!(projection = projection.name(), live_code_version = ?live,
            code_version = projection.model().version, "rebuilding an outdated read model");
        let rebuilt = rebuild(store, pool, &**projection, batch, &|_| {}).await?;
        done.push((projection.name(), rebuilt));
    }
    Ok(done)
}

/// The version a build goes to: the build left by a crash when the same code made it, otherwise
/// a new one (a stale build is dropped). Serialised per read model by locking its rows.
async fn start(pool: &PgPool, projection: &dyn Projection) -> Result<i32, ProjectionError> {
    let model = projection.model();
    let mut tx = pool.begin().await?;
    let rows: Vec<(i32, i32, State)> = sqlx::query_as(
        "SELECT version, code_version, state FROM read_model_versions WHERE name = $1
         ORDER BY version FOR UPDATE",
    )
    .bind(model.name)
    .fetch_all(&mut *tx)
    .await?;
    if let Some((version, code_version, _)) = rows.iter().find(|r| r.2 == State::Building) {
        if *code_version == model.version {
            tx.commit().await?;
            return Ok(*version);
        }
        // Built by other code: its rows are not what this code would write.
        sqlx::query("DELETE FROM read_model_versions WHERE name = $1 AND version = $2")
            .bind(model.name)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        let stale = super::schema(model.name, *version);
        run_sql(
            &mut tx,
            &format!("DROP SCHEMA IF EXISTS \"{stale}\" CASCADE"),
        )
        .await?;
    }
    let version = rows.iter().map(|r| r.0).max().unwrap_or(0) + 1;
    sqlx::query(
        "INSERT INTO read_model_versions (name, version, code_version, state)
         VALUES ($1, $2, $3, 'building')",
    )
    .bind(model.name)
    .bind(version)
    .bind(model.version)
    .execute(&mut *tx)
    .await?;
    create_schema(&mut tx, model, version).await?;
    tx.commit().await?;
    Ok(version)
}

/// Brings `version` (building or retired) to the head, indexes it, and makes it live.
async fn finish(
    store: &EventStore,
    pool: &PgPool,
    projection: &dyn Projection,
    version: i32,
    batch: i64,
    on_page: &(dyn Fn(i64) + Send + Sync),
) -> Result<Rebuilt, ProjectionError> {
    let mut applied = catch_up(store, pool, projection, version, batch, on_page).await?;
    if index(pool, projection, version).await? {
        // Indexing a large version takes a while; the head moved meanwhile.
        applied += catch_up(store, pool, projection, version, batch, on_page).await?;
    }
    let switched = switch(store, pool, projection, version, batch).await;
    if let Err(error) = &switched {
        record_error(pool, projection.name(), version, error).await;
    }
    let (previous, last) = switched?;
    applied += last;
    tracing::info!(
        projection = projection.name(),
        version,
        previous,
        "readers switched"
    );
    Ok(Rebuilt {
        version,
        previous,
        applied,
    })
}

/// Applies the log after the version's own checkpoint, page by page, reading the next page while
/// one is written. Returns the events applied.
async fn catch_up(
    store: &EventStore,
    pool: &PgPool,
    projection: &dyn Projection,
    version: i32,
    batch: i64,
    on_page: &(dyn Fn(i64) + Send + Sync),
) -> Result<u64, ProjectionError> {
    let mut source = VersionSource {
        name: projection.name(),
        version,
        pages: PageReader::new(store, projection, batch),
        on_page,
    };
    runner::drain(pool, projection, &mut source, None).await
}

/// A version readers do not see (a build, or a retired one caught up for a rollback), fed from
/// the Postgres log a page per transaction: its progress is its registry row, locked for the
/// page so that two builders take turns.
struct VersionSource<'a> {
    name: &'static str,
    version: i32,
    pages: PageReader,
    /// Told the position each committed page reached (a progress bar).
    on_page: &'a (dyn Fn(i64) + Send + Sync),
}

#[async_trait]
impl PageSource for VersionSource<'_> {
    type Progress = i64;

    async fn next_page(
        &mut self,
        tx: &mut PgConnection,
    ) -> Result<Option<Page<i64>>, ProjectionError> {
        let position = lock_version(tx, self.name, self.version).await?;
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

    async fn target(
        &mut self,
        tx: &mut PgConnection,
        _projection: &dyn Projection,
    ) -> Result<Target, ProjectionError> {
        // A crash loses at most the last pages of a build, and their checkpoint with them: the
        // build redoes them. Not waiting for the WAL flush pays at a thousand events per
        // transaction.
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await?;
        use_schema(tx, self.name, self.version).await?;
        Ok(Target::Build {
            version: self.version,
        })
    }

    async fn save(
        &mut self,
        tx: &mut PgConnection,
        page: &Page<i64>,
        events_per_sec: f64,
    ) -> Result<bool, ProjectionError> {
        let saved = sqlx::query(
            "UPDATE read_model_versions SET position = $3, events_applied = events_applied + $4,
                 events_per_sec = $5, last_error = NULL, updated_at = now()
             WHERE name = $1 AND version = $2 AND position = $6",
        )
        .bind(self.name)
        .bind(self.version)
        .bind(page.to)
        .bind(page.events.len() as i64)
        .bind(events_per_sec)
        .bind(page.from)
        .execute(&mut *tx)
        .await?;
        Ok(saved.rows_affected() == 1)
    }

    fn settled(&mut self, page: &Page<i64>, committed: bool) {
        if committed {
            (self.on_page)(page.to);
        }
    }

    async fn record_error(&self, pool: &PgPool, error: &ProjectionError) {
        record_error(pool, self.name, self.version, error).await;
    }
}

/// Locks a version readers do not see and returns its checkpoint.
async fn lock_version(
    conn: &mut PgConnection,
    name: &str,
    version: i32,
) -> Result<i64, ProjectionError> {
    let position: Option<i64> = sqlx::query_scalar(
        "SELECT position FROM read_model_versions
         WHERE name = $1 AND version = $2 AND state <> 'live' FOR UPDATE",
    )
    .bind(name)
    .bind(version)
    .fetch_optional(&mut *conn)
    .await?;
    position.ok_or_else(|| ProjectionError::NoVersion {
        name: name.to_owned(),
        version,
    })
}

/// Creates the version's secondary indexes once. `true` when it did.
async fn index(
    pool: &PgPool,
    projection: &dyn Projection,
    version: i32,
) -> Result<bool, ProjectionError> {
    let model = projection.model();
    let mut tx = pool.begin().await?;
    let indexed: bool = sqlx::query_scalar(
        "SELECT indexed FROM read_model_versions WHERE name = $1 AND version = $2 FOR UPDATE",
    )
    .bind(model.name)
    .bind(version)
    .fetch_one(&mut *tx)
    .await?;
    if indexed {
        return Ok(false);
    }
    use_schema(&mut tx, model.name, version).await?;
    run_sql(&mut tx, model.indexes).await?;
    sqlx::query("UPDATE read_model_versions SET indexed = true WHERE name = $1 AND version = $2")
        .bind(model.name)
        .bind(version)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// Makes `version` live in one transaction: with the live checkpoint and the live version's row
/// locked (live workers, from the log or Kafka, wait), applies the events left up to the head,
/// retires the live version at its checkpoint, moves the checkpoint to the new version's
/// position and points the views at it. Returns the version retired and the events applied.
async fn switch(
    store: &EventStore,
    pool: &PgPool,
    projection: &dyn Projection,
    version: i32,
    batch: i64,
) -> Result<(i32, u64), ProjectionError> {
    let model = projection.model();
    let name = model.name;
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    let (live_position, live_applied): (i64, i64) = sqlx::query_as(
        "SELECT position, events_applied FROM projection_checkpoints WHERE name = $1 FOR UPDATE",
    )
    .bind(name)
    .fetch_one(&mut *tx)
    .await?;
    let previous: i32 = sqlx::query_scalar(
        "SELECT version FROM read_model_versions WHERE name = $1 AND state = 'live' FOR UPDATE",
    )
    .bind(name)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ProjectionError::NoLiveVersion(name.to_owned()))?;
    let mut position = lock_version(&mut tx, name, version).await?;
    let mut applied = 0u64;
    use_schema(&mut tx, name, version).await?;
    loop {
        let events = read_page(store.clone(), position, batch, name, model.reads_context).await?;
        let Some(last) = events.last().map(|(entry, _)| entry.position) else {
            break;
        };
        projection
            .apply(&mut tx, &events, Target::Build { version })
            .await?;
        applied += events.len() as u64;
        position = last;
    }
    if position < live_position {
        // The log's head cannot be behind what the live version applied; a hole in the
        // positions stopped this catch-up. Switching would lose events: refuse.
        return Err(ProjectionError::Invalid {
            position: position + 1,
            reason: format!("version {version} stops before the live checkpoint {live_position}"),
        });
    }
    sqlx::query(
        "UPDATE read_model_versions SET state = 'retired', position = $3, events_applied = $4,
             retired_at = now(), updated_at = now()
         WHERE name = $1 AND version = $2",
    )
    .bind(name)
    .bind(previous)
    .bind(live_position)
    .bind(live_applied)
    .execute(&mut *tx)
    .await?;
    let total: i64 = sqlx::query_scalar(
        "UPDATE read_model_versions SET state = 'live', position = $3,
             events_applied = events_applied + $4, last_error = NULL, switched_at = now(),
             updated_at = now()
         WHERE name = $1 AND version = $2 RETURNING events_applied",
    )
    .bind(name)
    .bind(version)
    .bind(position)
    .bind(applied as i64)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE projection_checkpoints SET position = $2, events_applied = $3, last_error = NULL,
             updated_at = now()
         WHERE name = $1",
    )
    .bind(name)
    .bind(position)
    .bind(total)
    .execute(&mut *tx)
    .await?;
    point_views(&mut tx, model, version).await?;
    tx.commit().await?;
    Ok((previous, applied))
}

/// Keeps a build's error on its registry row, for `projections status`. Best effort.
async fn record_error(pool: &PgPool, name: &str, version: i32, error: &ProjectionError) {
    let recorded = sqlx::query(
        "UPDATE read_model_versions SET last_error = $3, updated_at = now()
         WHERE name = $1 AND version = $2",
    )
    .bind(name)
    .bind(version)
    .bind(error.to_string())
    .execute(pool)
    .await;
    if let Err(e) = recorded {
        tracing::warn!(projection = name, version, error = %e, "could not record the build error");
    }
}
