//! Liveness and readiness.

use crate::error::ApiError;
use crate::responses::NotReady;
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
    /// Events each projection still has to apply, from where this deployment's workers read
    /// (the Postgres log, or the Kafka topic: then counted in messages).
    pub projections: Vec<ProjectionLag>,
    /// The Kafka relay's progress, when a topic is configured.
    pub relay: Option<RelayLag>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RelayLag {
    pub topic: String,
    /// Every event up to here is in the topic.
    pub position: i64,
    pub lag_events: i64,
    /// Age of the oldest event not yet published.
    pub lag_seconds: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectionLag {
    pub name: String,
    pub lag_events: i64,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// The database is reachable, every migration is applied, and every projection (and the relay)
/// is within the configured lag of the log. A Kafka partition whose end the broker does not tell
/// counts as caught up: a broker outage must not take the API out of rotation, since commands
/// keep working without it.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses((status = 200, body = Readiness), NotReady))]
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
    let status =
        adledger_projections::deployment_status(&state.store, state.readiness.deployment())
            .await
            .map_err(|e| ApiError::NotReady(format!("projection status unavailable: {e}")))?;
    let behind = status.behind(state.ready_max_lag);
    if !behind.is_empty() {
        return Err(ApiError::NotReady(behind.join("; ")));
    }
    Ok(Json(Readiness {
        status: "ready".into(),
        head_position: status.head,
        projections: status
            .served()
            .map(|p| ProjectionLag {
                name: p.name.clone(),
                lag_events: p.lag_events,
            })
            .collect(),
        relay: status.relay.map(|r| RelayLag {
            topic: r.topic,
            position: r.position,
            lag_events: r.lag_events,
            lag_seconds: r.lag_seconds,
        }),
    }))
}
