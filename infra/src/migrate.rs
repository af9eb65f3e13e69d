//! Schema migrations, embedded in the binary and applied in order under an advisory lock, each in
//! its own transaction. An applied migration whose text changed is an error, never re-run.

use crate::db::{connect_owner, DbError};
use crate::secret::Secret;
use sha2::{Digest, Sha256};
use sqlx::{Connection, Executor, Row};

pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "event_log",
        sql: include_str!("../../migrations/0001_event_log.sql"),
    },
    Migration {
        version: 2,
        name: "read_models",
        sql: include_str!("../../migrations/0002_read_models.sql"),
    },
    Migration {
        version: 3,
        name: "projection_rate",
        sql: include_str!("../../migrations/0003_projection_rate.sql"),
    },
    Migration {
        version: 4,
        name: "kafka",
        sql: include_str!("../../migrations/0004_kafka.sql"),
    },
    Migration {
        version: 5,
        name: "audit",
        sql: include_str!("../../migrations/0005_audit.sql"),
    },
    Migration {
        version: 6,
        name: "subject_keys",
        sql: include_str!("../../migrations/0006_subject_keys.sql"),
    },
    Migration {
        version: 7,
        name: "identity",
        sql: include_str!("../../migrations/0007_identity.sql"),
    },
    Migration {
        version: 8,
        name: "sync_schedule",
        sql: include_str!("../../migrations/0008_sync_schedule.sql"),
    },
    Migration {
        version: 9,
        name: "connection_credentials",
        sql: include_str!("../../migrations/0009_connection_credentials.sql"),
    },
    Migration {
        version: 10,
        name: "sync_progress",
        sql: include_str!("../../migrations/0010_sync_progress.sql"),
    },
    Migration {
        version: 11,
        name: "connections_from_events",
        sql: include_str!("../../migrations/0011_connections_from_events.sql"),
    },
];

const MIGRATE_LOCK: i64 = 0x6164_6c65_6467_0001; // "adledg" + 1

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Connect(#[from] DbError),
    #[error("migration {version} ({name}) failed: {source}")]
    Failed {
        version: i64,
        name: &'static str,
        source: sqlx::Error,
    },
    #[error("migration {version} was changed after it was applied (checksum differs); add a new migration instead")]
    Changed { version: i64 },
    #[error("database error while migrating: {0}")]
    Database(#[from] sqlx::Error),
}

fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// Applies every pending migration; returns the versions it applied.
pub async fn run(url: &Secret<String>) -> Result<Vec<i64>, MigrateError> {
    let mut conn = connect_owner(url).await?;
    conn.execute(format!("SELECT pg_advisory_lock({MIGRATE_LOCK})").as_str())
        .await?;
    let result = apply_pending(&mut conn).await;
    let _ = conn
        .execute(format!("SELECT pg_advisory_unlock({MIGRATE_LOCK})").as_str())
        .await;
    result
}

async fn apply_pending(conn: &mut sqlx::PgConnection) -> Result<Vec<i64>, MigrateError> {
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version bigint PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    let applied: Vec<(i64, String)> =
        sqlx::query("SELECT version, checksum FROM schema_migrations")
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
    let mut done = Vec::new();
    for m in MIGRATIONS {
        match applied.iter().find(|(v, _)| *v == m.version) {
            Some((_, sum)) if *sum == checksum(m.sql) => continue,
            Some(_) => return Err(MigrateError::Changed { version: m.version }),
            None => {}
        }
        let failed = |source| MigrateError::Failed {
            version: m.version,
            name: m.name,
            source,
        };
        let mut tx = conn.begin().await?;
        sqlx::raw_sql(m.sql)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        sqlx::query("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)")
            .bind(m.version)
            .bind(m.name)
            .bind(checksum(m.sql))
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        tx.commit().await?;
        tracing::info!(version = m.version, name = m.name, "migration applied");
        done.push(m.version);
    }
    conn.execute("GRANT SELECT ON schema_migrations TO adledger_app")
        .await?;
    Ok(done)
}

/// Versions embedded in this binary that the database has not applied yet.
pub async fn pending(pool: &sqlx::PgPool) -> Result<Vec<i64>, sqlx::Error> {
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
        .fetch_all(pool)
        .await?;
    Ok(MIGRATIONS
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect())
}
