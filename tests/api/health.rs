use crate::helpers::{assert_problem, spawn_app};
use serde_json::{json, Value};

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    assert_eq!(app.get_json("/healthz").await["status"], "ok");
    // Registering the app's user appended events: once sequenced, none waits.
    let ready = crate::helpers::eventually("every event sequenced", || async {
        let ready = app.get_json("/readyz").await;
        (ready["unsequenced"]["count"] == 0).then_some(ready)
    })
    .await;
    assert_eq!(ready["status"], "ready");
    let names: Vec<_> = ready["projections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    assert!(
        names.contains(&"daily_insights".into()) && names.contains(&"catalog".into()),
        "{ready}"
    );
    // What an operator reads: the waiting events, the horizon, the bounds it was judged by.
    assert_eq!(ready["unsequenced"]["count"], 0, "{ready}");
    assert_eq!(ready["unsequenced"]["oldest_age_seconds"], Value::Null);
    assert!(ready["horizon"].is_object(), "{ready}");
    assert_eq!(ready["bounds"]["max_lag_seconds"], 60.0);
    assert_eq!(ready["reasons"], json!([]));
    for projection in ready["projections"].as_array().unwrap() {
        assert!(projection["lag_seconds"].is_number(), "{ready}");
    }
}

#[tokio::test]
async fn unknown_routes_are_problems_not_plain_404s() {
    let app = spawn_app().await;
    let body = assert_problem(app.get("/v1/nothing-here").await, 404, "not-found").await;
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("/v1/nothing-here"));
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let r = app.get("/healthz").await;
    assert!(r.headers().contains_key("x-request-id"));
    let r = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
}

/// The value of the sample `name` (with its labels, if any) in a Prometheus text body.
fn sample(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_expose_the_log_head_and_projection_lag_in_prometheus_text() {
    let app = spawn_app().await;
    let ws = app.workspace("Metrics").await;
    let conn = app.sandbox(&ws, 5, 2).await;
    app.sync(&ws, &conn, "2024-01-01", "2024-01-03").await;
    let head = crate::helpers::eventually("the projections to catch up", || async {
        let ready = app.get_json("/readyz").await;
        let caught_up = ready["projections"]
            .as_array()?
            .iter()
            .all(|p| p["lag_events"] == 0)
            && ready["unsequenced"]["count"] == 0;
        caught_up.then(|| ready["head_position"].as_f64()).flatten()
    })
    .await;

    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let body = response.text().await.unwrap();
    assert!(head > 0.0);
    assert_eq!(
        sample(&body, "adledger_log_head_position"),
        Some(head),
        "{body}"
    );
    for projection in ["catalog", "daily_insights"] {
        let labels = format!("{{projection=\"{projection}\"}}");
        assert_eq!(
            sample(&body, &format!("adledger_projection_lag_events{labels}")),
            Some(0.0),
            "{body}"
        );
        assert_eq!(
            sample(&body, &format!("adledger_projection_position{labels}")),
            Some(head),
            "{body}"
        );
    }
    assert!(body.contains("# TYPE adledger_projection_events_applied_total counter"));
    for gauge in [
        "adledger_log_unsequenced_events",
        "adledger_log_unsequenced_oldest_age_seconds",
        "adledger_horizon_holder_age_seconds",
        "adledger_oldest_transaction_age_seconds",
    ] {
        assert!(sample(&body, gauge).is_some(), "{gauge}: {body}");
    }
    assert_eq!(sample(&body, "adledger_log_unsequenced_events"), Some(0.0));
    assert!(
        !body.contains("adledger_relay_"),
        "no relay without a topic"
    );
}

#[tokio::test]
async fn the_document_lists_the_503_on_every_operation_but_liveness() {
    let app = spawn_app().await;
    let doc = app.get_json("/openapi.json").await;
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let unavailable = &operation["responses"]["503"];
            if path == "/healthz" {
                assert!(unavailable.is_null(), "{method} {path}");
                continue;
            }
            operations += 1;
            assert!(
                unavailable["content"]["application/problem+json"].is_object(),
                "{method} {path}: {operation}"
            );
            if path != "/readyz" {
                assert!(
                    unavailable["headers"]["Retry-After"].is_object(),
                    "{method} {path}"
                );
            }
        }
    }
    assert!(operations > 40, "{operations}");
}
