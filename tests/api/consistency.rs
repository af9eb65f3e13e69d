//! Read-your-writes: a caller reads its own write at once; a write answers the log position it
//! reached, which any read can name as `min_position`; a read that cannot be caught up in time
//! answers 503 `not-caught-up` with `Retry-After`, never a stale 404.

use crate::helpers::{assert_problem, spawn_app, spawn_app_on};
use crate::support::PrivateCluster;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn position_of(r: &reqwest::Response) -> i64 {
    r.headers()
        .get("adledger-log-position")
        .expect("a write answers the position it reached")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_caller_reads_its_own_writes_at_once() {
    let app = spawn_app().await;
    for i in 0..10 {
        let r = app
            .post("/v1/workspaces", &json!({"name": format!("W{i}")}))
            .await;
        assert_eq!(r.status(), 201);
        assert!(position_of(&r) > 0);
        let id = r.json::<Value>().await.unwrap()["id"].clone();
        let listed = app.get_json("/v1/workspaces").await;
        assert!(
            listed
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["workspace_id"] == id),
            "round {i}: the new workspace is missing from {listed}"
        );
    }
    let ws = app.workspace("Syncs").await;
    let conn = app.sandbox(&ws, 3, 2).await;
    let r = app
        .post(
            &format!("/v1/workspaces/{ws}/connections/{conn}/syncs"),
            &json!({"from": "2026-01-01", "to": "2026-01-02"}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let sync = r.json::<Value>().await.unwrap()["sync_id"].clone();
    let sync = sync.as_str().unwrap();
    let r = app.get(&format!("/v1/workspaces/{ws}/syncs/{sync}")).await;
    assert_eq!(r.status(), 200, "a sync just started is readable");
}

#[tokio::test]
async fn another_caller_waits_for_a_named_position() {
    let app = spawn_app().await;
    let other = app.user("other@example.com").await;
    let ws = app.workspace("Shared").await;
    app.join(&ws, &other, "analyst").await;
    let r = app
        .post(
            &format!("/v1/workspaces/{ws}/connections"),
            &json!({"platform": "sandbox", "label": "S", "sandbox": {"seed": 1, "ad_accounts": 1, "campaigns": 2}}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let position = position_of(&r);
    let conn = r.json::<Value>().await.unwrap()["id"].clone();
    // Someone else, told the position (say by the writer), reads the write at once.
    let r = app
        .get_as(
            &other.token,
            &format!(
                "/v1/workspaces/{ws}/connections/{}?min_position={position}",
                conn.as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(r.status(), 200);

    // A position no write has reached names nothing: refused at once, not waited for.
    let started = Instant::now();
    let r = app
        .get_as(
            &other.token,
            &format!("/v1/workspaces/{ws}?min_position={}", position + 1_000_000),
        )
        .await;
    assert!(started.elapsed() < Duration::from_secs(1));
    let problem = assert_problem(r, 422, "validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "min_position");

    for bad in ["-1", "x", "1.5"] {
        let r = app
            .get_as(
                &other.token,
                &format!("/v1/workspaces/{ws}?min_position={bad}"),
            )
            .await;
        let problem = assert_problem(r, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "min_position");
    }
}

#[tokio::test]
async fn a_stalled_log_answers_503_to_the_writer_not_a_404() {
    let cluster = PrivateCluster::start();
    let app = spawn_app_on(&cluster.url).await;
    // An open transaction elsewhere holds the snapshot horizon: nothing written after it can be
    // sequenced until it ends.
    let mut blocker = app._db.owner().await;
    sqlx::query("BEGIN").execute(&mut blocker).await.unwrap();
    sqlx::query("SELECT txid_current()")
        .execute(&mut blocker)
        .await
        .unwrap();
    let r = app.post("/v1/workspaces", &json!({"name": "Late"})).await;
    assert_eq!(r.status(), 201, "the write itself is acknowledged");
    assert!(
        r.headers().get("adledger-log-position").is_none(),
        "no position can be known yet"
    );
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app.get(&format!("/v1/workspaces/{id}")).await;
    assert_eq!(r.headers()["retry-after"], "1");
    assert_problem(r, 503, "not-caught-up").await;

    sqlx::query("COMMIT").execute(&mut blocker).await.unwrap();
    let r = app.get(&format!("/v1/workspaces/{id}")).await;
    assert_eq!(
        r.status(),
        200,
        "once the log moves, the writer reads its write"
    );
}

#[tokio::test]
async fn the_document_declares_positions_on_writes_and_min_position_on_reads() {
    let doc = adledger_api::openapi();
    let create = &doc["paths"]["/v1/workspaces"]["post"]["responses"]["201"];
    assert_eq!(
        create["headers"]["adledger-log-position"]["schema"]["type"], "integer",
        "{create}"
    );
    let read = &doc["paths"]["/v1/workspaces/{workspace_id}"]["get"];
    let parameters = read["parameters"].as_array().unwrap();
    assert!(
        parameters.iter().any(|p| p["name"] == "min_position"
            && p["in"] == "query"
            && p["schema"]["minimum"] == 0),
        "{read}"
    );
    assert_eq!(
        read["responses"]["503"]["content"]["application/problem+json"]["schema"]["$ref"],
        "#/components/schemas/Problem"
    );
}
