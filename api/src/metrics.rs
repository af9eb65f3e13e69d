//! `GET /metrics`: the Prometheus text format (0.0.4), rendering the read side's one status
//! ([`adledger_projections::deployment_status`]): the log head, the events waiting for a position
//! and the transaction holding them back, each projection's position and lag, the Kafka relay's
//! lag when a topic is configured, and every Kafka-mode partition's progress. Read from Postgres
//! on each scrape (bounded by the probe timeout), so any process that serves the API reports the
//! whole deployment.

use crate::error::ApiError;
use crate::AppState;
use adledger_infra::HorizonHolder;
use adledger_projections::status::{PartitionProgress, ProjectionSource};
use adledger_projections::versions::status::BuildStatus;
use adledger_projections::{DeploymentStatus, ProjectionStatus};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use std::fmt::Write;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// One metric family: its HELP and TYPE lines, then one sample per label set.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

/// `{key="value",...}` with the value escaped as the text format requires.
fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// Progress and lag of the log, the projections, the relay and Kafka-mode partitions.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", body = String,
         content_type = "text/plain; version=0.0.4")))]
async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let status = crate::health::within_probe_timeout(&state, async {
        adledger_projections::deployment_status(&state.store, state.readiness.deployment())
            .await
            .map_err(|e| match e.is_transient() {
                true => ApiError::DatabaseUnavailable(format!("metrics: {e}")),
                false => ApiError::NotReady(format!("metrics: {e}")),
            })
    })
    .await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render(&status),
    ))
}

fn render(status: &DeploymentStatus) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "adledger_log_head_position",
        "gauge",
        "Highest sequenced position of the event log.",
        &[(String::new(), status.head as f64)],
    );
    family(
        &mut out,
        "adledger_log_unsequenced_events",
        "gauge",
        "Committed events without a log position yet (counted up to 10000).",
        &[(String::new(), status.unsequenced.count as f64)],
    );
    family(
        &mut out,
        "adledger_log_unsequenced_oldest_age_seconds",
        "gauge",
        "How long the next event to sequence has waited; 0 when none waits.",
        &[(
            String::new(),
            status.unsequenced.oldest_age_seconds.unwrap_or(0.0),
        )],
    );
    let age = |holder: Option<&HorizonHolder>| holder.and_then(|h| h.age_seconds).unwrap_or(0.0);
    family(
        &mut out,
        "adledger_horizon_holder_age_seconds",
        "gauge",
        "Age of the open transaction with the oldest transaction id in the cluster, which every \
         event committed after it began waits for; 0 when none (or hidden from the owner).",
        &[(String::new(), age(status.horizon.holder.as_ref()))],
    );
    family(
        &mut out,
        "adledger_oldest_transaction_age_seconds",
        "gauge",
        "Age of the cluster's oldest open transaction with a transaction id or snapshot.",
        &[(
            String::new(),
            age(status.horizon.oldest_transaction.as_ref()),
        )],
    );
    let from_log: Vec<&ProjectionStatus> = status
        .projections
        .iter()
        .filter(|p| p.source == ProjectionSource::PostgresLog)
        .collect();
    let per_projection = |value: fn(&ProjectionStatus) -> f64| {
        from_log
            .iter()
            .map(|p| (labels(&[("projection", &p.name)]), value(p)))
            .collect::<Vec<_>>()
    };
    family(
        &mut out,
        "adledger_projection_position",
        "gauge",
        "Last log position a projection applied (Postgres-log workers).",
        &per_projection(|p| p.position as f64),
    );
    family(
        &mut out,
        "adledger_projection_lag_events",
        "gauge",
        "Events a projection still has to apply (Postgres-log workers).",
        &per_projection(|p| p.lag_events as f64),
    );
    family(
        &mut out,
        "adledger_projection_lag_seconds",
        "gauge",
        "Age of the oldest event a projection has not applied; 0 when caught up.",
        &per_projection(|p| p.lag_seconds),
    );
    family(
        &mut out,
        "adledger_projection_events_applied_total",
        "counter",
        "Events a projection applied since its last rebuild.",
        &per_projection(|p| p.events_applied as f64),
    );

    if let Some(relay) = &status.relay {
        let label = labels(&[("topic", &relay.topic)]);
        for (name, kind, help, value) in [
            (
                "adledger_relay_position",
                "gauge",
                "Every event up to this position is in the topic.",
                relay.position as f64,
            ),
            (
                "adledger_relay_lag_events",
                "gauge",
                "Events not yet published to the topic.",
                relay.lag_events as f64,
            ),
            (
                "adledger_relay_lag_seconds",
                "gauge",
                "Age of the oldest event not yet published.",
                relay.lag_seconds,
            ),
            (
                "adledger_relay_events_published_total",
                "counter",
                "Events the relay published.",
                relay.events_published as f64,
            ),
        ] {
            family(&mut out, name, kind, help, &[(label.clone(), value)]);
        }
    }

    // Read model versions: the live one per read model, and a build's progress while one runs.
    let live: Vec<(String, f64)> = from_log
        .iter()
        .filter_map(|p| {
            let live = p.versions.as_ref()?.live?;
            Some((labels(&[("projection", &p.name)]), f64::from(live)))
        })
        .collect();
    family(
        &mut out,
        "adledger_read_model_live_version",
        "gauge",
        "The version of a read model readers see.",
        &live,
    );
    let builds: Vec<(String, &BuildStatus)> = from_log
        .iter()
        .filter_map(|p| {
            let build = p.versions.as_ref()?.building.as_ref()?;
            let version = build.version.to_string();
            Some((
                labels(&[("projection", &p.name), ("version", &version)]),
                build,
            ))
        })
        .collect();
    if !builds.is_empty() {
        let sample = |value: fn(&BuildStatus) -> Option<f64>| {
            builds
                .iter()
                .filter_map(|(label, b)| Some((label.clone(), value(b)?)))
                .collect::<Vec<_>>()
        };
        family(
            &mut out,
            "adledger_read_model_build_position",
            "gauge",
            "Last log position applied to a read model version being built.",
            &sample(|b| Some(b.position as f64)),
        );
        family(
            &mut out,
            "adledger_read_model_build_lag_events",
            "gauge",
            "Events a version being built still has to apply to reach the log's head.",
            &sample(|b| Some(b.lag_events as f64)),
        );
        family(
            &mut out,
            "adledger_read_model_build_events_per_sec",
            "gauge",
            "Throughput of a build's last page.",
            &sample(|b| Some(b.events_per_sec)),
        );
        family(
            &mut out,
            "adledger_read_model_build_eta_seconds",
            "gauge",
            "Seconds until a build reaches the log's head at its last page's rate.",
            &sample(|b| b.eta_seconds),
        );
    }

    // One sample per (projection, topic, partition) of the Kafka-mode projections.
    let partitions: Vec<(String, &PartitionProgress)> = status
        .projections
        .iter()
        .filter_map(|p| match &p.source {
            ProjectionSource::Kafka { topic } => Some((p, topic)),
            ProjectionSource::PostgresLog => None,
        })
        .flat_map(|(p, topic)| {
            p.partitions.iter().map(move |partition| {
                let label = labels(&[
                    ("projection", &p.name),
                    ("topic", topic),
                    ("partition", &partition.partition.to_string()),
                ]);
                (label, partition)
            })
        })
        .collect();
    if !partitions.is_empty() {
        let sample = |value: fn(&PartitionProgress) -> Option<f64>| {
            partitions
                .iter()
                .filter_map(|(label, p)| Some((label.clone(), value(p)?)))
                .collect::<Vec<_>>()
        };
        family(
            &mut out,
            "adledger_kafka_projection_next_offset",
            "gauge",
            "Next offset a Kafka-mode projection reads in a partition.",
            &sample(|p| Some(p.next_offset as f64)),
        );
        family(
            &mut out,
            "adledger_kafka_projection_events_applied_total",
            "counter",
            "Events a Kafka-mode projection applied from a partition.",
            &sample(|p| Some(p.events_applied as f64)),
        );
        family(
            &mut out,
            "adledger_kafka_projection_lag_events",
            "gauge",
            "Messages of a partition a Kafka-mode projection has not applied yet (partitions of \
             the topic this deployment's workers read, whose end the broker told).",
            &sample(|p| p.lag_events().map(|lag| lag as f64)),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            labels(&[("topic", "a\"b\\c\nd"), ("p", "1")]),
            r#"{topic="a\"b\\c\nd",p="1"}"#
        );
    }

    #[test]
    fn a_family_has_help_type_and_samples() {
        let mut out = String::new();
        family(
            &mut out,
            "x_total",
            "counter",
            "Things.",
            &[(labels(&[("k", "v")]), 3.0), (String::new(), 1.5)],
        );
        assert_eq!(
            out,
            "# HELP x_total Things.\n# TYPE x_total counter\nx_total{k=\"v\"} 3\nx_total 1.5\n"
        );
    }
}
