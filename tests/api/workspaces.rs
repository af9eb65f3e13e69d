use crate::helpers::{assert_problem, spawn_app};
use serde_json::{json, Value};

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
