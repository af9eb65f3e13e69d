//! Liveness and readiness.

use crate::error::{ApiError, Problem};
use crate::AppState;
use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub status: String,
    pub head_position: i64,
    /// Events each projection still has to apply.
    pub projections: Vec<ProjectionLag>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectionLag {
    pub name: String,
    pub lag_events: i64,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// The database is reachable, every migration is applied, and every projection is within the
/// configured lag of the log.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Readiness),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
async fn readyz(State(state): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    let pool = state.store.pool();
    let pending = adledger_infra::migrate::pending(pool)
        .await
        .map_err(|e| ApiError::NotReady(format!("database unreachable: {e}")))?;
    if !pending.is_empty() {
        return Err(ApiError::NotReady(format!(
            "migrations not applied: {pending:?}"
        )));
    }
    let status = adledger_projections::status(&state.store, pool)
        .await
        .map_err(|e| ApiError::NotReady(format!("projection status unavailable: {e}")))?;
    let head = status.first().map_or(0, |s| s.head);
    let behind: Vec<_> = status
        .iter()
        .filter(|s| s.lag_events > state.ready_max_lag)
        .map(|s| format!("{} is {} events behind", s.name, s.lag_events))
        .collect();
    if !behind.is_empty() {
        return Err(ApiError::NotReady(behind.join("; ")));
    }
    Ok(Json(Readiness {
        status: "ready".into(),
        head_position: head,
        projections: status
            .into_iter()
            .map(|s| ProjectionLag {
                name: s.name.to_string(),
                lag_events: s.lag_events,
            })
            .collect(),
    }))
}
