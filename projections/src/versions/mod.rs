//! Versions of a read model. Each built version lives in its own schema (`rm_<name>_<version>`);
//! the views in `public`, named as the tables, point at the live one, and the registry
//! (`read_model_versions`) says which is live, which is being built and which are retired (kept
//! for a rollback). Writers apply a page with the search path naming the version's schema, so
//! a projection's SQL never names a version. Building and switching are in [`build`].

mod build;
pub mod status;

pub use build::{rebuild, rebuild_outdated, rollback, Rebuilt};

use crate::{Projection, ProjectionError, ReadModel, Target};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

/// The schema holding `version` of the read model `name`. Names are constants of the code and
/// versions integers, never user input.
pub fn schema(name: &str, version: i32) -> String {
    format!("rm_{name}_{version}")
}

/// The state of a version, as the registry keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum State {
    Building,
    Live,
    Retired,
}

/// One version of a read model. Its `position` is the progress of a version readers do not see;
/// the live version's progress is its `projection_checkpoints` row.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Version {
    pub name: String,
    pub version: i32,
    pub code_version: i32,
    pub state: State,
    pub position: i64,
    pub events_applied: i64,
    pub events_per_sec: f64,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub switched_at: Option<DateTime<Utc>>,
    pub retired_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

const VERSION_COLUMNS: &str = "name, version, code_version, state, position, events_applied, \
     events_per_sec, last_error, created_at, switched_at, retired_at, updated_at";

/// Every version of every read model, by name and version.
pub async fn list(pool: &PgPool) -> Result<Vec<Version>, ProjectionError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {VERSION_COLUMNS} FROM read_model_versions ORDER BY name, version"
    ))
    .fetch_all(pool)
    .await?)
}

/// Makes the search path of the caller's transaction name `version`'s schema first: the
/// projection's unqualified table names then mean that version's tables (and the live views of
/// other read models, in `public`, stay visible).
pub(crate) async fn use_schema(
    conn: &mut PgConnection,
    name: &str,
    version: i32,
) -> Result<(), ProjectionError> {
    sqlx::query("SELECT set_config('search_path', $1, true)")
        .bind(format!("\"{}\", public", schema(name, version)))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The live version, locked (shared) until the caller's transaction ends and made the search
/// path: a switch, which locks the row for update, waits for the pages in flight, and pages that
/// start later wait for it, then write to the version it made live.
pub(crate) async fn live(
    conn: &mut PgConnection,
    model: &ReadModel,
) -> Result<Target, ProjectionError> {
    let version: Option<i32> = sqlx::query_scalar(
        "SELECT version FROM read_model_versions WHERE name = $1 AND state = 'live' FOR SHARE",
    )
    .bind(model.name)
    .fetch_optional(&mut *conn)
    .await?;
    let version = version.ok_or_else(|| ProjectionError::NoLiveVersion(model.name.to_owned()))?;
    use_schema(conn, model.name, version).await?;
    Ok(Target::Live { version })
}

/// Gives a read model that has no version yet (a new projection) its version 1, empty and live.
/// Today's read models got theirs from migration 0030. Safe to race: one creator wins.
pub async fn ensure(pool: &PgPool, projection: &dyn Projection) -> Result<(), ProjectionError> {
    let model = projection.model();
    let mut tx = pool.begin().await?;
    let created = sqlx::query(
        "INSERT INTO read_model_versions (name, version, code_version, state, indexed, switched_at)
         SELECT $1, 1, $2, 'live', true, now()
         WHERE NOT EXISTS (SELECT 1 FROM read_model_versions WHERE name = $1)
         ON CONFLICT DO NOTHING",
    )
    .bind(model.name)
    .bind(model.version)
    .execute(&mut *tx)
    .await?;
    if created.rows_affected() == 1 {
        create_schema(&mut tx, model, 1).await?;
        run_sql(&mut tx, model.indexes).await?;
        point_views(&mut tx, model, 1).await?;
        tracing::info!(projection = model.name, "read model created, version 1");
    }
    tx.commit().await?;
    Ok(())
}

/// Runs statements (DDL, several at once) in the simple query protocol. `raw_sql` would too,
/// but its future is not `Send` for every borrow, which tasks spawned per projection need.
pub(crate) async fn run_sql(conn: &mut PgConnection, sql: &str) -> Result<(), ProjectionError> {
    sqlx::Executor::execute(conn, sql).await?;
    Ok(())
}

/// Creates the version's schema and tables (not the secondary indexes) and leaves the search
/// path on it.
async fn create_schema(
    conn: &mut PgConnection,
    model: &ReadModel,
    version: i32,
) -> Result<(), ProjectionError> {
    // A schema left by an earlier attempt at this version (the application owns it) goes; the
    // new one is created by the migrations' function, the only way the application may.
    let schema = schema(model.name, version);
    run_sql(
        &mut *conn,
        &format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"),
    )
    .await?;
    sqlx::query("SELECT adledger_create_read_model_schema($1)")
        .bind(&schema)
        .execute(&mut *conn)
        .await?;
    use_schema(conn, model.name, version).await?;
    run_sql(&mut *conn, model.ddl).await?;
    Ok(())
}

/// Points each of the read model's views in `public` at `version`'s table. Dropped and created
/// rather than replaced, so that a version may change a table's columns; in one transaction,
/// readers see the old view or the new one, never none.
async fn point_views(
    conn: &mut PgConnection,
    model: &ReadModel,
    version: i32,
) -> Result<(), ProjectionError> {
    let schema = schema(model.name, version);
    for table in model.tables {
        run_sql(
            &mut *conn,
            &format!(
                "DROP VIEW IF EXISTS public.\"{0}\"; \
             CREATE VIEW public.\"{0}\" AS SELECT * FROM \"{schema}\".\"{0}\"",
                table.name
            ),
        )
        .await?;
    }
    Ok(())
}

/// Drops a version that readers do not see (a retired one, or a build, which stops it).
pub async fn drop_version(
    pool: &PgPool,
    projection: &dyn Projection,
    version: i32,
) -> Result<(), ProjectionError> {
    let name = projection.name();
    let mut tx = pool.begin().await?;
    let state: Option<State> = sqlx::query_scalar(
        "SELECT state FROM read_model_versions WHERE name = $1 AND version = $2 FOR UPDATE",
    )
    .bind(name)
    .bind(version)
    .fetch_optional(&mut *tx)
    .await?;
    match state {
        None => {
            return Err(ProjectionError::NoVersion {
                name: name.to_owned(),
                version,
            })
        }
        Some(State::Live) => {
            return Err(ProjectionError::VersionIsLive {
                name: name.to_owned(),
                version,
            })
        }
        Some(_) => {}
    }
    run_sql(
        &mut tx,
        &format!(
            "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
            schema(name, version)
        ),
    )
    .await?;
    sqlx::query("DELETE FROM read_model_versions WHERE name = $1 AND version = $2")
        .bind(name)
        .bind(version)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(projection = name, version, "read model version dropped");
    Ok(())
}
