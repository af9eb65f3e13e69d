//! Liveness and readiness, kept apart: `/healthz` says the process is up and touches nothing
//! else; `/readyz` says this deployment can serve (database reachable, migrations applied, log
//! not stalled, read side fresh within time bounds) and shows everything an operator needs to
//! tell why not, within its probe timeout whatever the database does.

use crate::error::{ApiError, Problem, RETRY_AFTER_SECS};
use crate::AppState;
use adledger_infra::event_store::horizon::HolderKind;
use adledger_projections::DeploymentStatus;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
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

/// `/readyz` when ready: `status` is `ready`, then the state it was judged on.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub status: String,
    #[serde(flatten)]
    pub state: ReadinessState,
}

/// `/readyz` when not ready: a problem (`type` `not-ready`, `detail` the reasons joined) with
/// the same state members as the ready answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotReadyState {
    #[serde(flatten)]
    pub problem: Problem,
    #[serde(flatten)]
    pub state: ReadinessState,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadinessState {
    /// Highest sequenced log position.
    pub head_position: i64,
    /// Committed events without a log position yet.
    pub unsequenced: UnsequencedEvents,
    /// What holds the settle horizon back: while the holder is open, no event committed after
    /// it began gets a position, so the log head freezes.
    pub horizon: Horizon,
    /// Each projection this deployment's workers feed (from the Postgres log, or the Kafka
    /// topic: then its lag counts messages on it).
    pub projections: Vec<ProjectionLag>,
    /// The Kafka relay's progress, when a topic is configured.
    pub relay: Option<RelayLag>,
    pub bounds: ReadinessBounds,
    /// Why not ready; empty when ready.
    pub reasons: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UnsequencedEvents {
    /// Counted up to a cap (10 000): see `at_least`.
    pub count: i64,
    /// The count stopped at its cap: there are at least `count`.
    pub at_least: bool,
    /// Seconds the next event to sequence has waited since it was recorded; null when none.
    pub oldest_age_seconds: Option<f64>,
    /// That event waits for a transaction still open (`horizon.holder`), not for a sequencer.
    pub held_by_horizon: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Horizon {
    /// The open (or prepared) transaction with the oldest transaction id in the cluster.
    pub holder: Option<HorizonHolder>,
    /// The open transaction with the oldest transaction id or snapshot (also holds vacuum).
    pub oldest_transaction: Option<HorizonHolder>,
    pub prepared_transactions: Vec<HorizonHolder>,
    /// Replication slots pinning an xmin (they hold vacuum back, not the log).
    pub replication_slots: Vec<HorizonHolder>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HorizonHolder {
    /// `transaction`, `prepared_transaction` or `replication_slot`.
    pub kind: String,
    pub pid: Option<i32>,
    pub database: Option<String>,
    pub user: Option<String>,
    pub application_name: Option<String>,
    /// `idle in transaction`, `active`, ...; null when Postgres hides it from the database
    /// owner (grant it `pg_read_all_stats`).
    pub state: Option<String>,
    /// Seconds since the transaction began (or was prepared); null when hidden.
    pub age_seconds: Option<f64>,
    /// Transactions begun since its transaction id (or snapshot).
    pub xid_age: Option<i32>,
    /// A prepared transaction's gid, or a replication slot's name.
    pub name: Option<String>,
    /// One line naming it, as the readiness reasons do.
    pub description: String,
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
    /// Age of the oldest event not applied yet; 0 when caught up.
    pub lag_seconds: f64,
}

/// The time bounds readiness is judged by (`ADLEDGER_READY_MAX_UNSEQUENCED_SECS`,
/// `ADLEDGER_READY_MAX_LAG_SECS`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadinessBounds {
    pub max_unsequenced_age_seconds: f64,
    pub max_lag_seconds: f64,
}

/// The process is up. Touches no database: a database outage must not get the process
/// restarted, only taken out of rotation (`/readyz`).
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Ready to serve: the database answers, every migration is applied, the oldest unsequenced
/// event is younger than its bound, and every projection this deployment serves (and the relay,
/// when projections read its topic) has no unapplied event older than its bound. Answers within
/// the probe timeout (`ADLEDGER_READY_TIMEOUT_MS`) even when the database hangs. A Kafka
/// partition whose end the broker does not tell counts as caught up: a broker outage must not
/// take the API out of rotation, since commands keep working without it.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses((status = 200, body = Readiness),
              (status = 503, description = "`not-ready` (with the state and its reasons), or \
               `database-unavailable` (no answer within the probe timeout); `Retry-After` is set",
               body = NotReadyState, content_type = "application/problem+json")))]
async fn readyz(State(state): State<AppState>) -> Response {
    match within_probe_timeout(&state, check(&state)).await {
        Err(e) => e.into_response(),
        Ok(state) if state.reasons.is_empty() => Json(Readiness {
            status: "ready".into(),
            state,
        })
        .into_response(),
        Ok(state) => {
            let problem = ApiError::NotReady(state.reasons.join("; ")).problem();
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [
                    (header::CONTENT_TYPE, "application/problem+json".to_owned()),
                    (header::RETRY_AFTER, RETRY_AFTER_SECS.to_string()),
                ],
                Json(NotReadyState { problem, state }),
            )
                .into_response()
        }
    }
}

async fn check(state: &AppState) -> Result<ReadinessState, ApiError> {
    let pool = state.store.pool();
    let pending = adledger_infra::migrate::pending(pool).await.map_err(|e| {
        match adledger_infra::event_store::is_transient(&e) {
            true => ApiError::DatabaseUnavailable(format!("readiness: {e}")),
            false => ApiError::NotReady(format!("migrations unreadable: {e}")),
        }
    })?;
    if !pending.is_empty() {
        return Err(ApiError::NotReady(format!(
            "migrations not applied: {pending:?}"
        )));
    }
    let status =
        adledger_projections::deployment_status(&state.store, state.readiness.deployment())
            .await
            .map_err(|e| match e.is_transient() {
                true => ApiError::DatabaseUnavailable(format!("readiness: {e}")),
                false => ApiError::NotReady(format!("status unreadable: {e}")),
            })?;
    Ok(report(status, &state.readiness.bounds))
}

/// The state an operator reads, from the read side's one status, judged by `bounds`.
fn report(
    status: DeploymentStatus,
    bounds: &adledger_projections::ReadinessBounds,
) -> ReadinessState {
    let reasons = status.not_ready(bounds);
    let projections = status
        .served()
        .map(|p| ProjectionLag {
            name: p.name.clone(),
            lag_events: p.lag_events,
            lag_seconds: p.lag_seconds,
        })
        .collect();
    let holders = |rows: Vec<adledger_infra::HorizonHolder>| rows.into_iter().map(holder).collect();
    let horizon = status.horizon;
    ReadinessState {
        head_position: status.head,
        unsequenced: UnsequencedEvents {
            count: status.unsequenced.count,
            at_least: status.unsequenced.at_least,
            oldest_age_seconds: status.unsequenced.oldest_age_seconds,
            held_by_horizon: status.unsequenced.held_by_horizon,
        },
        horizon: Horizon {
            holder: horizon.holder.map(holder),
            oldest_transaction: horizon.oldest_transaction.map(holder),
            prepared_transactions: holders(horizon.prepared_transactions),
            replication_slots: holders(horizon.replication_slots),
        },
        projections,
        relay: status.relay.map(|r| RelayLag {
            topic: r.topic,
            position: r.position,
            lag_events: r.lag_events,
            lag_seconds: r.lag_seconds,
        }),
        bounds: ReadinessBounds {
            max_unsequenced_age_seconds: bounds.max_unsequenced_age.as_secs_f64(),
            max_lag_seconds: bounds.max_lag.as_secs_f64(),
        },
        reasons,
    }
}

fn holder(h: adledger_infra::HorizonHolder) -> HorizonHolder {
    HorizonHolder {
        kind: match h.kind {
            HolderKind::Transaction => "transaction",
            HolderKind::PreparedTransaction => "prepared_transaction",
            HolderKind::ReplicationSlot => "replication_slot",
        }
        .into(),
        description: h.describe(),
        pid: h.pid,
        database: h.database,
        user: h.user,
        application_name: h.application_name,
        state: h.state,
        age_seconds: h.age_seconds,
        xid_age: h.xid_age,
        name: h.name,
    }
}

/// `/metrics` and `/readyz` share the probe's bound on their own work.
pub(crate) async fn within_probe_timeout<T>(
    state: &AppState,
    work: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let timeout = state.readiness.probe_timeout;
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::DatabaseUnavailable(format!(
                "no answer from the database within {timeout:?}"
            )))
        })
}
