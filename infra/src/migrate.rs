//! Schema migrations: every `NNNN_name.sql` of `/migrations`, embedded by `sqlx::migrate!` and
//! applied in order by sqlx's migrator under an advisory lock, each in its own transaction. An
//! applied migration whose text changed is an error, never re-run. Databases migrated before sqlx
//! kept their history in `schema_migrations`; the first run carries it over (see [`bridge`]).

use crate::db::{connect_owner_within, DbError, PoolConfig, APP_ROLE};
use crate::secret::Secret;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::migrate::{Migrate, Migrator};
use sqlx::{Connection, Executor, PgConnection};

const MIGRATE_LOCK: i64 = 0x6164_6c65_6467_0001; // "adledg" + 1

/// The embedded migrations. A new file needs no code change: `infra/build.rs` rebuilds this crate
/// whenever the folder changes.
fn migrator() -> Migrator {
    let mut migrator = sqlx::migrate!("../migrations");
    // A binary older than the database (a rolling deploy, a rollback) still starts: it checks
    // and applies the migrations it knows and leaves newer ones alone, as before sqlx.
    migrator.set_ignore_missing(true);
    migrator
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Connect(#[from] DbError),
    #[error("migration {version} ({name}) failed: {source}")]
    Failed {
        version: i64,
        name: String,
        source: sqlx::Error,
    },
    #[error("migration {version} was changed after it was applied (checksum differs); add a new migration instead")]
    Changed { version: i64 },
    #[error("migration {version} is recorded as applied but this binary does not have it; run a newer adledger")]
    Unknown { version: i64 },
    #[error("database error while migrating: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrating: {0}")]
    Migrator(sqlx::migrate::MigrateError),
}

impl From<sqlx::migrate::MigrateError> for MigrateError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        use sqlx::migrate::MigrateError as Sqlx;
        match e {
            Sqlx::ExecuteMigration(source, version) => MigrateError::Failed {
                version,
                name: migrator()
                    .iter()
                    .find(|m| m.version == version)
                    .map_or_else(String::new, |m| m.description.to_string()),
                source,
            },
            Sqlx::VersionMismatch(version) => MigrateError::Changed { version },
            Sqlx::Execute(source) => MigrateError::Database(source),
            other => MigrateError::Migrator(other),
        }
    }
}

/// Applies every pending migration as the database owner; returns the versions it applied.
pub async fn run(url: &Secret<String>) -> Result<Vec<i64>, MigrateError> {
    run_within(url, PoolConfig::DEFAULT_CONNECT_TIMEOUT).await
}

/// [`run`], giving up connecting after `connect_timeout`.
pub async fn run_within(
    url: &Secret<String>,
    connect_timeout: std::time::Duration,
) -> Result<Vec<i64>, MigrateError> {
    let mut conn = connect_owner_within(url, connect_timeout).await?;
    conn.execute(format!("SELECT pg_advisory_lock({MIGRATE_LOCK})").as_str())
        .await?;
    let result = apply_pending(&mut conn).await;
    let _ = conn
        .execute(format!("SELECT pg_advisory_unlock({MIGRATE_LOCK})").as_str())
        .await;
    result
}

async fn apply_pending(conn: &mut PgConnection) -> Result<Vec<i64>, MigrateError> {
    let migrator = migrator();
    bridge(conn, &migrator).await?;
    let applied = applied(&mut *conn).await?;
    let pending: Vec<_> = migrator
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .map(|m| (m.version, m.description.clone()))
        .collect();
    migrator.run(&mut *conn).await?;
    for (version, name) in &pending {
        tracing::info!(version, %name, "migration applied");
    }
    // Readiness checks pending migrations as the application role, which may read the history
    // but never write it (the default privileges of 0001 would grant more on a table created
    // after it, as the bridge's is).
    sqlx::raw_sql(&format!(
        "REVOKE ALL ON _sqlx_migrations FROM {APP_ROLE}; \
         GRANT SELECT ON _sqlx_migrations TO {APP_ROLE}"
    ))
    .execute(&mut *conn)
    .await?;
    Ok(pending.into_iter().map(|(version, _)| version).collect())
}

/// Carries the history of the hand-kept migration list over to sqlx, once: when
/// `schema_migrations` exists and `_sqlx_migrations` does not yet. Each recorded version must
/// still match its file (the old SHA-256 checksum), then is recorded as sqlx records an applied
/// migration (its SHA-384 checksum, `success`; the execution time is unknown, sqlx's -1), all in
/// one transaction, so that nothing runs twice. `schema_migrations` stays, unused.
async fn bridge(conn: &mut PgConnection, migrator: &Migrator) -> Result<(), MigrateError> {
    let (old, new): (bool, bool) = sqlx::query_as(
        "SELECT to_regclass('schema_migrations') IS NOT NULL, \
                to_regclass('_sqlx_migrations') IS NOT NULL",
    )
    .fetch_one(&mut *conn)
    .await?;
    if !old || new {
        return Ok(());
    }
    let mut tx = conn.begin().await?;
    tx.ensure_migrations_table().await?;
    let recorded: Vec<(i64, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT version, checksum, applied_at FROM schema_migrations ORDER BY version",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (version, checksum, applied_at) in recorded {
        // Without its file there is no sqlx checksum to record, and a later binary would run it
        // again: only a binary that knows every recorded version may carry the history over.
        let migration = migrator
            .iter()
            .find(|m| m.version == version)
            .ok_or(MigrateError::Unknown { version })?;
        if hex::encode(Sha256::digest(migration.sql.as_bytes())) != checksum {
            return Err(MigrateError::Changed { version });
        }
        sqlx::query(
            "INSERT INTO _sqlx_migrations
                 (version, description, installed_on, success, checksum, execution_time)
             VALUES ($1, $2, $3, TRUE, $4, -1)",
        )
        .bind(version)
        .bind(&*migration.description)
        .bind(applied_at)
        .bind(&*migration.checksum)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    tracing::info!("migration history carried over from schema_migrations");
    Ok(())
}

/// Versions embedded in this binary that the database has not applied yet (all of them when it
/// was never migrated by sqlx).
pub async fn pending(pool: &sqlx::PgPool) -> Result<Vec<i64>, sqlx::Error> {
    let applied = applied(pool).await?;
    Ok(migrator()
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect())
}

/// The versions sqlx recorded as applied; none before its table exists.
async fn applied<'c>(db: impl sqlx::PgExecutor<'c>) -> Result<Vec<i64>, sqlx::Error> {
    match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
        .fetch_all(db)
        .await
    {
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(UNDEFINED_TABLE) => {
            Ok(Vec::new())
        }
        outcome => outcome,
    }
}

/// Postgres' SQLSTATE for a missing relation.
const UNDEFINED_TABLE: &str = "42P01";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_the_folder_is_embedded_in_order_with_sqlx_checksums() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".sql"))
            .collect();
        files.sort();
        let migrator = migrator();
        let embedded: Vec<_> = migrator.iter().collect();
        assert_eq!(embedded.len(), files.len());
        for (file, m) in files.iter().zip(embedded) {
            let version: i64 = file[..4].parse().unwrap();
            assert_eq!(m.version, version);
            assert_eq!(m.description, file[5..file.len() - 4].replace('_', " "));
            let sql = std::fs::read_to_string(format!("{dir}/{file}")).unwrap();
            assert_eq!(m.sql, sql);
            assert_eq!(
                &*m.checksum,
                sha2::Sha384::digest(sql.as_bytes()).as_slice()
            );
        }
    }
}
