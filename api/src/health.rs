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
    /// Events each projection still has to apply (Postgres-log workers only).
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
    // Kafka-fed projections do not move the Postgres-log checkpoints: their lag is the messages
    // between each partition's stored offset and its end.
    let (head, status) = if let Some(kafka) = &state.readiness.projections_from_kafka {
        let head = state
            .store
            .head_position()
            .await
            .map_err(|e| ApiError::NotReady(format!("log head unavailable: {e}")))?;
        (head, kafka_lag(pool, kafka).await?)
    } else {
        let status = adledger_projections::status(&state.store, pool)
            .await
            .map_err(|e| ApiError::NotReady(format!("projection status unavailable: {e}")))?;
        let lags = status
            .iter()
            .map(|s| ProjectionLag {
                name: s.name.to_string(),
                lag_events: s.lag_events,
            })
            .collect();
        (status.first().map_or(0, |s| s.head), lags)
    };
    let mut behind: Vec<_> = status
        .iter()
        .filter(|s| s.lag_events > state.ready_max_lag)
        .map(|s| format!("{} is {} events behind", s.name, s.lag_events))
        .collect();
    let relay = match &state.readiness.relay_topic {
        None => None,
        Some(topic) => {
            let relay = adledger_infra::kafka::relay::status(pool, topic)
                .await
                .map_err(|e| ApiError::NotReady(format!("relay status unavailable: {e}")))?;
            let lag = match relay {
                Some(r) => RelayLag {
                    topic: r.topic,
                    position: r.position,
                    lag_events: r.lag_events,
                    lag_seconds: r.lag_seconds,
                },
                // No relay has published yet: everything is still to send.
                None => RelayLag {
                    topic: topic.clone(),
                    position: 0,
                    lag_events: head,
                    lag_seconds: 0.0,
                },
            };
            if lag.lag_events > state.ready_max_lag {
                behind.push(format!(
                    "the relay to {} is {} events behind",
                    lag.topic, lag.lag_events
                ));
            }
            Some(lag)
        }
    };
    if !behind.is_empty() {
        return Err(ApiError::NotReady(behind.join("; ")));
    }
    Ok(Json(Readiness {
        status: "ready".into(),
        head_position: head,
        projections: status,
        relay,
    }))
}

/// Per Kafka-mode projection, the messages its partitions have not applied yet. A partition
/// whose end the broker does not tell is left out: a broker outage must not take the API out of
/// rotation, since commands keep working without it.
async fn kafka_lag(
    pool: &sqlx::PgPool,
    kafka: &adledger_infra::kafka::KafkaConfig,
) -> Result<Vec<ProjectionLag>, ApiError> {
    let partitions = adledger_projections::kafka::offsets(pool, kafka)
        .await
        .map_err(|e| {
            ApiError::NotReady(format!("Kafka-mode projection offsets unavailable: {e}"))
        })?;
    let mut lags: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
    for p in partitions {
        let lag = p.end_offset.map_or(0, |end| (end - p.next_offset).max(0));
        *lags.entry(p.projection).or_default() += lag;
    }
    Ok(lags
        .into_iter()
        .map(|(name, lag_events)| ProjectionLag { name, lag_events })
        .collect())
}
