//! `GET /metrics`: the Prometheus text format (0.0.4). It exposes the log head, each
//! projection's position and lag, the Kafka relay's lag when a topic is configured, and every
//! Kafka-mode partition's progress. Read from Postgres on each scrape, so any process that
//! serves the API reports the whole deployment.

use crate::error::{ApiError, Problem};
use crate::AppState;
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
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", body = String,
         content_type = "text/plain; version=0.0.4"),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let pool = state.store.pool();
    let unavailable = |e: &dyn std::fmt::Display| ApiError::NotReady(format!("metrics: {e}"));
    let status = adledger_projections::status(&state.store, pool)
        .await
        .map_err(|e| unavailable(&e))?;
    let head = status.first().map_or(0, |s| s.head);
    let mut out = String::new();
    family(
        &mut out,
        "adledger_log_head_position",
        "gauge",
        "Highest sequenced position of the event log.",
        &[(String::new(), head as f64)],
    );
    let per_projection = |value: fn(&adledger_projections::ProjectionStatus) -> f64| {
        status
            .iter()
            .map(|s| (labels(&[("projection", &s.name)]), value(s)))
            .collect::<Vec<_>>()
    };
    family(
        &mut out,
        "adledger_projection_position",
        "gauge",
        "Last log position a projection applied (Postgres-log workers).",
        &per_projection(|s| s.position as f64),
    );
    family(
        &mut out,
        "adledger_projection_lag_events",
        "gauge",
        "Events a projection still has to apply (Postgres-log workers).",
        &per_projection(|s| s.lag_events as f64),
    );
    family(
        &mut out,
        "adledger_projection_lag_seconds",
        "gauge",
        "Recording time between a projection's position and the head.",
        &per_projection(|s| s.lag_seconds),
    );
    family(
        &mut out,
        "adledger_projection_events_applied_total",
        "counter",
        "Events a projection applied since its last rebuild.",
        &per_projection(|s| s.events_applied as f64),
    );

    if let Some(topic) = &state.readiness.relay_topic {
        let relay = adledger_infra::kafka::relay::status(pool, topic)
            .await
            .map_err(|e| unavailable(&e))?;
        let (position, lag, lag_seconds, published) = relay.map_or((0, head, 0.0, 0), |r| {
            (r.position, r.lag_events, r.lag_seconds, r.events_published)
        });
        let label = labels(&[("topic", topic)]);
        for (name, kind, help, value) in [
            (
                "adledger_relay_position",
                "gauge",
                "Every event up to this position is in the topic.",
                position as f64,
            ),
            (
                "adledger_relay_lag_events",
                "gauge",
                "Events not yet published to the topic.",
                lag as f64,
            ),
            (
                "adledger_relay_lag_seconds",
                "gauge",
                "Age of the oldest event not yet published.",
                lag_seconds,
            ),
            (
                "adledger_relay_events_published_total",
                "counter",
                "Events the relay published.",
                published as f64,
            ),
        ] {
            family(&mut out, name, kind, help, &[(label.clone(), value)]);
        }
    }

    let partitions: Vec<(String, String, i32, i64, i64)> = sqlx::query_as(
        "SELECT projection, topic, partition, next_offset, events_applied
         FROM projection_offsets ORDER BY projection, topic, partition",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| unavailable(&e))?;
    if !partitions.is_empty() {
        let label = |(projection, topic, partition, ..): &(String, String, i32, i64, i64)| {
            labels(&[
                ("projection", projection),
                ("topic", topic),
                ("partition", &partition.to_string()),
            ])
        };
        let offsets: Vec<_> = partitions.iter().map(|p| (label(p), p.3 as f64)).collect();
        let applied: Vec<_> = partitions.iter().map(|p| (label(p), p.4 as f64)).collect();
        family(
            &mut out,
            "adledger_kafka_projection_next_offset",
            "gauge",
            "Next offset a Kafka-mode projection reads in a partition.",
            &offsets,
        );
        family(
            &mut out,
            "adledger_kafka_projection_events_applied_total",
            "counter",
            "Events a Kafka-mode projection applied from a partition.",
            &applied,
        );
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out))
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
