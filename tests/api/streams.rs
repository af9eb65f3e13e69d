//! The state of an aggregate as of a time or a log position: each of the workspace's aggregates
//! folded from its stream, between two events the state after the first only, nothing secret
//! or opened in the view, and another workspace's streams not found.

use crate::helpers::{assert_problem, invalid_fields, spawn_app, TestApp};
use serde_json::{json, Value};

async fn state(app: &TestApp, ws: &str, stream: &str, as_of: Option<String>) -> Value {
    let query = as_of
        .map(|a| format!("?as_of={}", a.replace('+', "%2B")))
        .unwrap_or_default();
    app.get_json(&format!("/v1/workspaces/{ws}/streams/{stream}{query}"))
        .await
}

fn positions_of(events: &[Value], stream: &str) -> Vec<i64> {
    events
        .iter()
        .filter(|e| e["stream_id"] == stream)
        .map(|e| e["position"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_workspace_as_of_a_position_between_two_events_has_the_first_only() {
    let app = spawn_app().await;
    let ws = app.workspace("Acme").await;
    let r = app
        .post(
            &format!("/v1/workspaces/{ws}/api-keys"),
            &json!({ "name": "reporting", "scope": "read_only" }),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = app
        .post(
            &format!("/v1/workspaces/{ws}/invitations"),
            &json!({ "email": "invitee@example.com", "role": "analyst" }),
        )
        .await;
    assert_eq!(r.status(), 201);
    let stream = format!("workspace-{ws}");
    let events = app.events(&ws, &format!("?stream_id={stream}")).await;
    let positions = positions_of(&events, &stream);
    assert_eq!(positions.len(), 4, "created, owner added, key, invitation");

    // Right after the key was created, and just before: the key, then not yet.
    let with_key = state(&app, &ws, &stream, Some(positions[2].to_string())).await;
    assert_eq!(with_key["version"], 3);
    assert_eq!(with_key["last_position"], positions[2]);
    let s = &with_key["state"];
    assert_eq!(s["aggregate"], "workspace");
    assert_eq!(s["name"], "Acme");
    assert_eq!(s["members"].as_array().unwrap().len(), 1);
    assert_eq!(s["api_keys"][0]["name"], "reporting");
    assert_eq!(s["api_keys"][0]["scope"], "read_only");
    assert_eq!(s["invitations"], json!([]));
    let before = state(&app, &ws, &stream, Some((positions[2] - 1).to_string())).await;
    assert_eq!(before["version"], 2);
    assert_eq!(before["state"]["api_keys"], json!([]));

    // By time: as of the key's recorded time, the key is there.
    let key_at = events[2]["recorded_at"].as_str().unwrap().to_owned();
    let by_time = state(&app, &ws, &stream, Some(key_at)).await;
    assert_eq!(by_time["state"]["api_keys"], with_key["state"]["api_keys"]);

    // Now: the invitation, its email sealed as stored, and no hash of a key or token anywhere.
    let now = state(&app, &ws, &stream, None).await;
    assert_eq!(now["version"], 4);
    let invitation = &now["state"]["invitations"][0];
    assert!(
        invitation["email"].as_str().unwrap().starts_with("sealed:"),
        "{invitation}"
    );
    let text = now.to_string();
    for secret in ["invitee@example.com", "hash", "token"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    // Before the stream's first event: no state.
    let first = positions[0];
    if first > 1 {
        let none = state(&app, &ws, &stream, Some((first - 1).to_string())).await;
        assert_eq!(none["version"], 0);
        assert!(none["state"].is_null());
    }
}

#[tokio::test]
async fn a_connection_and_a_campaign_fold_up_to_the_point_asked() {
    let app = spawn_app().await;
    let ws = app.workspace("Acme").await;
    let conn = app.sandbox(&ws, 11, 2).await;
    app.sync(&ws, &conn, "2024-03-01", "2024-03-10").await;
    app.sync(&ws, &conn, "2024-03-01", "2024-03-10").await;
    let events = app.events(&ws, "").await;

    let stream = format!("connection-{conn}");
    let positions = positions_of(&events, &stream);
    let connected = state(&app, &ws, &stream, Some(positions[0].to_string())).await;
    let s = &connected["state"];
    assert_eq!(s["aggregate"], "connection");
    assert_eq!(s["id"], conn.as_str());
    assert_eq!(s["platform"], "sandbox");
    assert_eq!(s["status"], "active");
    assert_eq!(s["ad_accounts"], json!([]));
    assert_eq!(s["completed_syncs"], 0);
    let now = state(&app, &ws, &stream, None).await;
    let s = &now["state"];
    assert_eq!(now["version"], positions.len() as i64);
    assert_eq!(s["ad_accounts"].as_array().unwrap().len(), 1);
    assert_eq!(s["ad_accounts"][0]["synced_through"], "2024-03-10");
    assert_eq!(s["campaigns"].as_array().unwrap().len(), 2);
    assert_eq!(s["completed_syncs"], 2);
    assert!(s["running_sync"].is_null());

    // A campaign's insights: before its restatement the first value, from it the second.
    let restated = events
        .iter()
        .find(|e| e["event_type"] == "DailyInsightsRestated")
        .unwrap();
    let p = &restated["payload"];
    let stream = format!("campaign-{}", p["campaign_id"].as_str().unwrap());
    let day = |s: &Value| {
        s["state"]["days"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["date"] == p["date"])
            .cloned()
            .unwrap()
    };
    let position = restated["position"].as_i64().unwrap();
    let before = day(&state(&app, &ws, &stream, Some((position - 1).to_string())).await);
    assert_eq!(before["revision"], 1);
    assert_eq!(before["spend"], p["previous"]["spend"]);
    assert_eq!(before["impressions"], p["previous"]["impressions"]);
    let after = state(&app, &ws, &stream, Some(position.to_string())).await;
    assert_eq!(after["state"]["aggregate"], "campaign_insights");
    let after = day(&after);
    assert_eq!(after["revision"], 2);
    assert_eq!(after["spend"], p["spend"]);
    assert_eq!(after["sync_id"], p["sync_id"]);
}

#[tokio::test]
async fn streams_of_another_workspace_or_no_workspace_are_not_found() {
    let app = spawn_app().await;
    let ws = app.workspace("Acme").await;
    let other = app.workspace("Other").await;
    let conn = app.sandbox(&other, 1, 1).await;
    let me = app.get_json("/v1/me").await;
    let user = me["id"]
        .as_str()
        .or(me["user_id"].as_str())
        .unwrap()
        .to_owned();
    for stream in [
        format!("workspace-{other}"),
        format!("connection-{conn}"),
        format!("user-{user}"),
        format!("campaign-{}", uuid::Uuid::new_v4()),
        "not-a-stream".to_owned(),
        "workspace".to_owned(),
    ] {
        let r = app
            .get(&format!("/v1/workspaces/{ws}/streams/{stream}"))
            .await;
        assert_problem(r, 404, "not-found").await;
    }
    for bad in ["0", "soon", "2024-01-01"] {
        let r = app
            .get(&format!(
                "/v1/workspaces/{ws}/streams/workspace-{ws}?as_of={bad}"
            ))
            .await;
        let (_, fields) = invalid_fields(r).await;
        assert_eq!(fields, ["as_of"], "{bad}");
    }
}
