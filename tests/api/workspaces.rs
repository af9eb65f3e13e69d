use crate::helpers::{assert_problem, eventually, spawn_app};
use adledger_domain::event::ConnectionReauthorized;
use adledger_domain::{ConnectionId, DomainEvent, EventId, EventMetadata, WorkspaceId};
use adledger_infra::{AppendRequest, NewEvent, StoreError};
use serde_json::{json, Value};
use uuid::Uuid;

#[tokio::test]
async fn a_created_workspace_can_be_read() {
    let app = spawn_app().await;
    let id = app.workspace("  Acme Ads  ").await;
    let ws = app.get_json(&format!("/v1/workspaces/{id}")).await;
    assert_eq!(ws["name"], "Acme Ads");
    assert_eq!(ws["id"], id);
}

#[tokio::test]
async fn invalid_workspace_input_is_refused_with_a_problem() {
    let app = spawn_app().await;
    let body = assert_problem(
        app.post("/v1/workspaces", &json!({"name": "   "})).await,
        422,
        "validation-failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "name");
    assert_problem(
        app.post("/v1/workspaces", &json!({"nom": "x"})).await,
        422,
        "validation-failed",
    )
    .await;
    let r = app
        .client
        .post(app.url("/v1/workspaces"))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "malformed-request").await;
    let r = app
        .client
        .post(app.url("/v1/workspaces"))
        .bearer_auth(&app.token)
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "malformed-request").await;
}

#[tokio::test]
async fn unknown_and_malformed_workspace_ids_are_not_found() {
    let app = spawn_app().await;
    let id = uuid::Uuid::new_v4();
    for path in [
        format!("/v1/workspaces/{id}"),
        "/v1/workspaces/not-a-uuid".to_owned(),
        format!("/v1/workspaces/{id}/connections"),
        format!("/v1/workspaces/{id}/campaigns"),
        format!("/v1/workspaces/{id}/ad-accounts"),
        format!("/v1/workspaces/{id}/events"),
        format!("/v1/workspaces/{id}/connections/{id}"),
        format!("/v1/workspaces/{id}/syncs/{id}"),
    ] {
        assert_problem(app.get(&path).await, 404, "not-found").await;
    }
    let r = app
        .post(
            &format!("/v1/workspaces/{id}/connections"),
            &json!({"platform": "sandbox"}),
        )
        .await;
    assert_problem(r, 404, "not-found").await;
}

#[tokio::test]
async fn retries_with_an_idempotency_key_create_one_workspace() {
    let app = spawn_app().await;
    let create = |name: &'static str| {
        app.client
            .post(app.url("/v1/workspaces"))
            .bearer_auth(&app.token)
            .header("Idempotency-Key", "create-acme")
            .json(&json!({ "name": name }))
            .send()
    };
    let first: Value = create("Acme").await.unwrap().json().await.unwrap();
    let second = create("Acme").await.unwrap();
    assert_eq!(second.status(), 201);
    assert_eq!(second.json::<Value>().await.unwrap()["id"], first["id"]);
    let other = create("Other").await.unwrap();
    assert_problem(other, 422, "idempotency-key-reused").await;
    let ws = first["id"].as_str().unwrap();
    crate::helpers::eventually("workspace", || async {
        (app.get(&format!("/v1/workspaces/{ws}")).await.status() == 200).then_some(())
    })
    .await;
    let events = crate::helpers::eventually("event", || async {
        let e = app.events(ws, "").await;
        (!e.is_empty()).then_some(e)
    })
    .await;
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["WorkspaceCreated", "MemberAdded"],
        "the retry appended nothing"
    );
}

#[tokio::test]
async fn connecting_validates_the_platform_and_its_settings() {
    let app = spawn_app().await;
    let ws = app.workspace("Acme").await;
    let path = format!("/v1/workspaces/{ws}/connections");
    let body = assert_problem(
        app.post(&path, &json!({"platform": "myspace"})).await,
        422,
        "validation-failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "platform");
    let body = assert_problem(
        app.post(
            &path,
            &json!({"platform": "sandbox", "sandbox": {"ad_accounts": 0, "campaigns": 5000}}),
        )
        .await,
        422,
        "validation-failed",
    )
    .await;
    assert_eq!(body["errors"].as_array().unwrap().len(), 2);
}

/// The connection's read model comes from its events alone: the expiry a reauthorization records
/// is what the API shows as `token_expires_at`.
#[tokio::test]
async fn a_connections_token_expiry_is_the_one_its_events_record() {
    let app = spawn_app().await;
    let ws = app.workspace("Expiring").await;
    let conn = app.sandbox(&ws, 1, 2).await;
    let path = format!("/v1/workspaces/{ws}/connections/{conn}");
    let connection = eventually("the connection to be projected", || async {
        let r = app.get(&path).await;
        if r.status() != 200 {
            return None;
        }
        r.json::<Value>().await.ok()
    })
    .await;
    assert!(connection["token_expires_at"].is_null(), "{connection}");

    let store = app._db.store();
    let connection_id = ConnectionId(conn.parse().unwrap());
    let event = DomainEvent::ConnectionReauthorized(ConnectionReauthorized {
        connection_id,
        authorization_expires_at: Some("2024-05-01T10:00:00Z".parse().unwrap()),
    });
    // The app may append to the connection's stream meanwhile (discovery): retry on a conflict.
    loop {
        let version = store
            .read_stream(&connection_id.stream())
            .await
            .unwrap()
            .len();
        let appended = store
            .append(AppendRequest {
                stream_id: connection_id.stream(),
                stream_type: "connection",
                workspace_id: WorkspaceId(ws.parse().unwrap()),
                expected_version: version as i64,
                metadata: serde_json::to_value(EventMetadata::system("test", Uuid::now_v7()))
                    .unwrap(),
                events: vec![NewEvent {
                    event_id: EventId(Uuid::now_v7()),
                    event_type: event.event_type().to_owned(),
                    schema_version: event.schema_version(),
                    payload: event.to_payload(),
                    occurred_at: chrono::Utc::now(),
                }],
                idempotency: None,
            })
            .await;
        match appended {
            Ok(_) => break,
            Err(StoreError::WrongExpectedVersion { .. }) => continue,
            Err(e) => panic!("append: {e}"),
        }
    }
    eventually("the expiry to be projected", || async {
        (app.get_json(&path).await["token_expires_at"] == "2024-05-01T10:00:00Z").then_some(())
    })
    .await;
    let listed = app
        .get_json(&format!("/v1/workspaces/{ws}/connections"))
        .await;
    assert_eq!(listed[0]["token_expires_at"], "2024-05-01T10:00:00Z");
}
