//! Operations on the log as a whole: verifying the hash chain, projection status.

use crate::caller::Caller;
use crate::error::{ApiError, Problem};
use crate::AppState;
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

/// Recompute the hash chain over the whole log and report the first broken link.
#[utoipa::path(get, path = "/v1/log/verify", tag = "operations",
    responses((status = 200, body = Verification),
              (status = 500, body = Problem, content_type = "application/problem+json")))]
async fn verify(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Verification>, ApiError> {
    let _ = &caller;
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
    pub position: i64,
    pub head: i64,
    pub lag_events: i64,
    pub lag_seconds: f64,
    pub events_applied: i64,
    /// Throughput of the last batch applied.
    pub events_per_sec: f64,
    pub last_error: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Position, lag and last error of every projection.
#[utoipa::path(get, path = "/v1/projections", tag = "operations",
    responses((status = 200, body = Vec<ProjectionStatus>),
              (status = 500, body = Problem, content_type = "application/problem+json")))]
async fn projections(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ProjectionStatus>>, ApiError> {
    let _ = &caller;
    let status = adledger_projections::status(&state.store, state.store.pool()).await?;
    Ok(Json(
        status
            .into_iter()
            .map(|s| ProjectionStatus {
                name: s.name.to_string(),
                position: s.position,
                head: s.head,
                lag_events: s.lag_events,
                lag_seconds: s.lag_seconds,
                events_applied: s.events_applied,
                events_per_sec: s.events_per_sec,
                last_error: s.last_error,
                updated_at: s.updated_at,
            })
            .collect(),
    ))
}
