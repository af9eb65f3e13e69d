use crate::helpers::{assert_problem, spawn_app, OWNER};

#[tokio::test]
async fn the_event_stream_is_in_log_order_with_full_metadata_and_filters() {
    let app = spawn_app().await;
    let ws = app.workspace("Acme").await;
    let other = app.workspace("Other").await;
    let conn = app.sandbox(&ws, 9, 2).await;
    app.sync(&ws, &conn, "2024-01-01", "2024-01-05").await;

    let events = app.events(&ws, "").await;
    // Workspace and its owner, connection, account, 2 campaigns, sync started, claimed by a
    // worker, 2 × 5 days, the chunk's progress and the account's cursor, sync completed.
    assert_eq!(events.len(), 21, "{events:?}");
    let positions: Vec<i64> = events
        .iter()
        .map(|e| e["position"].as_i64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "log order");
    for e in &events {
        assert_eq!(e["workspace_id"], ws);
        for field in [
            "event_id",
            "stream_id",
            "stream_type",
            "stream_version",
            "event_type",
            "schema_version",
            "occurred_at",
            "recorded_at",
            "hash",
        ] {
            assert!(!e[field].is_null(), "{field} missing in {e}");
        }
        assert!(e["metadata"]["correlation_id"].is_string());
        assert!(e["metadata"]["actor"]["kind"].is_string());
    }
    // Events caused by an HTTP request carry where it came from, sealed under the key of the
    // person who acted; `reveal=true` opens it.
    let sealed = events[0]["metadata"]["source"]["ip"].as_str().unwrap();
    assert!(sealed.starts_with("sealed:v1:"), "{sealed}");
    let revealed = app.events(&ws, "?reveal=true").await;
    assert_eq!(revealed[0]["metadata"]["source"]["ip"], "127.0.0.1");
    assert_eq!(revealed[0]["hash"], events[0]["hash"]);
    assert!(app
        .events(&other, "")
        .await
        .iter()
        .all(|e| e["workspace_id"] == other));

    let from = positions[3];
    let tail = app
        .events(&ws, &format!("?from_position={from}&limit=2"))
        .await;
    assert_eq!(
        tail.iter()
            .map(|e| e["position"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        positions[3..5].to_vec()
    );
    let stream = events[0]["stream_id"].as_str().unwrap();
    let only = app.events(&ws, &format!("?stream_id={stream}")).await;
    assert_eq!(
        only.len(),
        2,
        "the workspace stream: created, and its owner added"
    );
    assert!(only.iter().all(|e| e["stream_id"] == stream));

    assert_problem(
        app.get(&format!("/v1/workspaces/{ws}/events?from_position=0"))
            .await,
        422,
        "validation-failed",
    )
    .await;
    assert_problem(
        app.get(&format!("/v1/workspaces/{ws}/events?from_position=x"))
            .await,
        422,
        "validation-failed",
    )
    .await;
    assert_problem(
        app.get(&format!(
            "/v1/workspaces/{ws}/events?from_position=5&to_position=2"
        ))
        .await,
        422,
        "validation-failed",
    )
    .await;
}

#[tokio::test]
async fn the_chain_verifies_and_projection_status_is_reported() {
    let app = spawn_app().await;
    // Deployment-wide routes are operators' (see operators.rs). Granted first: the wait for the
    // sync below is also the wait for the projections to apply the grant.
    app.adledger(&["operators", "grant", OWNER]).await;
    let ws = app.workspace("Acme").await;
    let conn = app.sandbox(&ws, 2, 2).await;
    app.sync(&ws, &conn, "2024-01-01", "2024-01-03").await;
    let v = app.get_json("/v1/log/verify").await;
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["verified"].as_i64().unwrap() > 6);
    let status = app.get_json("/v1/projections").await;
    for p in status.as_array().unwrap() {
        assert_eq!(p["lag_events"], 0);
        assert_eq!(p["position"], p["head"]);
        assert!(p["events_per_sec"].as_f64().unwrap() > 0.0, "{p}");
    }
}
