//! What an operator sees of the projections: checkpoint, lag and last error, and a checksum of
//! each read model to prove two builds from the same log are identical.

use crate::{all, by_name, ProjectionError};
use adledger_infra::EventStore;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProjectionStatus {
    pub name: String,
    pub position: i64,
    pub head: i64,
    pub lag_events: i64,
    /// Time between recording the event at the checkpoint and the head event; 0 when caught up.
    pub lag_seconds: f64,
    pub events_applied: i64,
    /// Throughput of the last batch applied (events per second of that batch's transaction).
    pub events_per_sec: f64,
    pub last_error: Option<String>,
    /// `None` for a projection that has never run.
    pub updated_at: Option<DateTime<Utc>>,
}

type StatusRow = (
    String,
    i64,
    i64,
    Option<String>,
    Option<DateTime<Utc>>,
    f64,
    f64,
);

pub async fn status(
    store: &EventStore,
    pool: &PgPool,
) -> Result<Vec<ProjectionStatus>, ProjectionError> {
    let head = store.head_position().await?;
    let names: Vec<&str> = all().iter().map(|p| p.name()).collect();
    // Before the first event is applied, lag counts from the first event of the log.
    let rows: Vec<StatusRow> = sqlx::query_as(
        "SELECT n.name, COALESCE(c.position, 0), COALESCE(c.events_applied, 0), c.last_error,
                c.updated_at,
                CASE WHEN COALESCE(c.position, 0) >= $2 THEN 0::float8
                ELSE COALESCE(EXTRACT(EPOCH FROM (
                    (SELECT e.recorded_at FROM event_log l JOIN events e ON e.id = l.event_row_id
                     WHERE l.position = $2)
                  - (SELECT e.recorded_at FROM event_log l JOIN events e ON e.id = l.event_row_id
                     WHERE l.position = GREATEST(COALESCE(c.position, 0), 1))
                ))::float8, 0) END,
                COALESCE(c.events_per_sec, 0)
         FROM UNNEST($1::text[]) WITH ORDINALITY AS n(name, ord)
         LEFT JOIN projection_checkpoints c ON c.name = n.name
         ORDER BY n.ord",
    )
    .bind(&names)
    .bind(head)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(name, position, events_applied, last_error, updated_at, lag_seconds, rate)| {
                ProjectionStatus {
                    name,
                    position,
                    head,
                    lag_events: (head - position).max(0),
                    lag_seconds: lag_seconds.max(0.0),
                    events_applied,
                    events_per_sec: rate,
                    last_error,
                    updated_at,
                }
            },
        )
        .collect())
}

/// md5 over every row of the projection's tables in key order, combined over its tables.
pub async fn checksum(pool: &PgPool, name: &str) -> Result<String, ProjectionError> {
    let projection =
        by_name(name).ok_or_else(|| ProjectionError::UnknownProjection(name.to_owned()))?;
    let mut parts = Vec::new();
    for (table, sql) in projection.tables().iter().zip(projection.checksum_sql()) {
        let (sum,): (Option<String>,) = sqlx::query_as(sql).fetch_one(pool).await?;
        parts.push(format!("{table}:{}", sum.as_deref().unwrap_or("empty")));
    }
    let (combined,): (String,) = sqlx::query_as("SELECT md5($1)")
        .bind(parts.join("\n"))
        .fetch_one(pool)
        .await?;
    Ok(combined)
}
