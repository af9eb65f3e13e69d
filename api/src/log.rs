//! Deployment-wide operations, for operators only: verifying the whole log's hash chain, the
//! status of every projection. Neither belongs to one tenant, so to anyone else (API keys
//! included) these routes do not exist.

use crate::access::Operator;
use crate::error::ApiError;
use crate::responses::{Internal, NotAnOperator, RateLimited, Unauthenticated};
use crate::AppState;
use adledger_projections::status::ProjectionSource;
use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(verify))
        .routes(routes!(projections))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Verification {
    pub ok: bool,
    pub head: i64,
    pub verified: i64,
    pub first_broken_position: Option<i64>,
    pub reason: Option<String>,
}

/// Recompute the hash chain over the whole log and report the first broken link. Operators only
/// (`adledger operators grant EMAIL`).
#[utoipa::path(get, path = "/v1/log/verify", tag = "operations",
    responses((status = 200, body = Verification), Unauthenticated, NotAnOperator, RateLimited, Internal))]
async fn verify(
    State(state): State<AppState>,
    _: Operator,
) -> Result<Json<Verification>, ApiError> {
    let report = state.store.verify().await?;
    Ok(Json(Verification {
        ok: report.ok(),
        head: report.head,
        verified: report.verified,
        first_broken_position: report.first_broken.as_ref().map(|b| b.position),
        reason: report.first_broken.map(|b| b.reason),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectionStatus {
    pub name: String,
    /// `postgres_log` or `kafka`.
    pub source: String,
    /// The Kafka topic, for a Kafka-mode projection.
    pub topic: Option<String>,
    /// From the Postgres log: the checkpoint. From Kafka: the furthest log position any
    /// partition has applied.
    pub position: i64,
    pub head: i64,
    /// From Kafka: messages not applied yet, over the partitions whose end the broker told.
    pub lag_events: i64,
    pub lag_seconds: f64,
    pub events_applied: i64,
    /// Throughput of the last batch applied.
    pub events_per_sec: f64,
    pub last_error: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
    /// Kafka-mode projections only: each partition's progress.
    pub partitions: Vec<PartitionStatus>,
    /// The read model's versions (a rebuild builds a new one beside the live one).
    pub versions: Option<ReadModelVersions>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadModelVersions {
    /// The version readers see.
    pub live: Option<i32>,
    /// The code version that built the live version.
    pub live_code_version: Option<i32>,
    /// The running code's version of the read model; newer than `live_code_version` means a
    /// rebuild is due.
    pub code_version: i32,
    /// Versions kept for a rollback, oldest first.
    pub retired: Vec<i32>,
    pub building: Option<BuildStatus>,
}

/// A version being built beside the live one.
#[derive(Debug, Serialize, ToSchema)]
pub struct BuildStatus {
    pub version: i32,
    pub code_version: i32,
    /// The last log position applied to it.
    pub position: i64,
    /// Events between it and the log's head.
    pub lag_events: i64,
    /// Throughput of its last page.
    pub events_per_sec: f64,
    /// Seconds until it reaches the head at that rate.
    pub eta_seconds: Option<f64>,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PartitionStatus {
    pub partition: i32,
    pub next_offset: i64,
    /// The partition's end, when the broker told it.
    pub end_offset: Option<i64>,
    pub lag_events: Option<i64>,
    pub last_position: i64,
    pub events_applied: i64,
    pub events_per_sec: f64,
    /// The worker holding the partition's lease.
    pub owner: Option<String>,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// Position, lag, throughput and last error of every projection: fed from the Postgres log,
/// and per topic from Kafka where Kafka-mode workers have run. Operators only.
#[utoipa::path(get, path = "/v1/projections", tag = "operations",
    responses((status = 200, body = Vec<ProjectionStatus>), Unauthenticated, NotAnOperator, RateLimited, Internal))]
async fn projections(
    State(state): State<AppState>,
    _: Operator,
) -> Result<Json<Vec<ProjectionStatus>>, ApiError> {
    let status =
        adledger_projections::deployment_status(&state.store, state.readiness.deployment()).await?;
    Ok(Json(
        status
            .projections
            .into_iter()
            .map(|s| {
                let (source, topic) = match s.source {
                    ProjectionSource::PostgresLog => ("postgres_log", None),
                    ProjectionSource::Kafka { topic } => ("kafka", Some(topic)),
                };
                ProjectionStatus {
                    name: s.name,
                    source: source.to_owned(),
                    topic,
                    position: s.position,
                    head: s.head,
                    lag_events: s.lag_events,
                    lag_seconds: s.lag_seconds,
                    events_applied: s.events_applied,
                    events_per_sec: s.events_per_sec,
                    last_error: s.last_error,
                    updated_at: s.updated_at,
                    partitions: s
                        .partitions
                        .into_iter()
                        .map(|p| PartitionStatus {
                            partition: p.partition,
                            next_offset: p.next_offset,
                            end_offset: p.end_offset,
                            lag_events: p.lag_events(),
                            last_position: p.last_position,
                            events_applied: p.events_applied,
                            events_per_sec: p.events_per_sec,
                            owner: p.owner,
                            last_error: p.last_error,
                            updated_at: p.updated_at,
                        })
                        .collect(),
                    versions: s.versions.map(|v| ReadModelVersions {
                        live: v.live,
                        live_code_version: v.live_code_version,
                        code_version: v.code_version,
                        retired: v.retired,
                        building: v.building.map(|b| BuildStatus {
                            version: b.version,
                            code_version: b.code_version,
                            position: b.position,
                            lag_events: b.lag_events,
                            events_per_sec: b.events_per_sec,
                            eta_seconds: b.eta_seconds,
                            last_error: b.last_error,
                            updated_at: b.updated_at,
                        }),
                    }),
                }
            })
            .collect(),
    ))
}
