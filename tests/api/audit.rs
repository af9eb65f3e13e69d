use crate::helpers::{assert_problem, eventually, spawn_app};
use serde_json::{json, Value};

#[tokio::test]
async fn the_audit_log_says_who_did_what_when_and_from_where() {
    let app = spawn_app().await;
    let ws = app.workspace("Audited").await;
    let request_id = "0190b6b6-7e0a-7000-8000-00000000abcd";
    let connected = app
        .client
        .post(app.url(&format!("/v1/workspaces/{ws}/connections")))
        .bearer_auth(&app.token)
        .header("x-request-id", request_id)
        .header("user-agent", "audit-test/1.0")
        .json(&json!({ "platform": "sandbox", "label": "Sandbox",
                       "sandbox": { "seed": 3, "ad_accounts": 1, "campaigns": 2 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(connected.status(), 201);
    let conn = connected.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.sync(&ws, &conn, "2024-01-01", "2024-01-03").await;

    let path = format!("/v1/workspaces/{ws}/audit");
    let page = eventually("the sync to be audited", || async {
        let page = app.get_json(&path).await;
        let actions: Vec<&str> = page["items"]
            .as_array()?
            .iter()
            .filter_map(|e| e["action"].as_str())
            .collect();
        actions.contains(&"SyncCompleted").then(|| page.clone())
    })
    .await;
    let items = page["items"].as_array().unwrap();
    let positions: Vec<i64> = items
        .iter()
        .map(|e| e["position"].as_i64().unwrap())
        .collect();
    let mut newest_first = positions.clone();
    newest_first.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(positions, newest_first, "newest first");
    assert!(
        items
            .iter()
            .all(|e| !e["action"].as_str().unwrap().starts_with("DailyInsights")),
        "reported days are not audit entries"
    );
    let connect = items
        .iter()
        .find(|e| e["action"] == "PlatformConnected")
        .expect("the connection is audited");
    assert_eq!(connect["request_id"], request_id);
    assert_eq!(connect["user_agent"], "audit-test/1.0");
    assert_eq!(connect["ip"], "127.0.0.1");
    assert_eq!(connect["actor_kind"], "user");
    let me = app.get_json("/v1/me").await;
    assert_eq!(connect["actor"], me["user_id"]);
    assert!(items.iter().any(|e| e["action"] == "WorkspaceCreated"));

    // Filters and pages.
    let only = app
        .get_json(&format!("{path}?action=PlatformConnected"))
        .await;
    assert_eq!(only["items"].as_array().unwrap().len(), 1);
    let first = app.get_json(&format!("{path}?limit=2")).await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let before = first["next_before"].as_i64().expect("a next page");
    let second = app
        .get_json(&format!("{path}?limit=2&before={before}"))
        .await;
    assert!(second["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["position"].as_i64().unwrap() < before));
    let future = app
        .get_json(&format!("{path}?from=2099-01-01T00:00:00Z"))
        .await;
    assert!(future["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn audit_queries_reject_bad_input() {
    let app = spawn_app().await;
    let ws = app.workspace("Audited").await;
    let path = format!("/v1/workspaces/{ws}/audit");
    assert_problem(
        app.get(&format!("{path}?limit=0")).await,
        422,
        "validation-failed",
    )
    .await;
    assert_problem(
        app.get(&format!("{path}?from=yesterday")).await,
        422,
        "validation-failed",
    )
    .await;
    assert_problem(
        app.get(&format!(
            "{path}?from=2024-02-01T00:00:00Z&to=2024-01-01T00:00:00Z"
        ))
        .await,
        422,
        "validation-failed",
    )
    .await;
    // Times within the years every date is held to (2000 to 2099).
    for (query, field) in [
        ("from=2999-01-01T00:00:00Z", "from"),
        ("from=0000-01-01T00:00:00Z", "from"),
        ("to=1999-12-31T23:59:59Z", "to"),
    ] {
        let body = assert_problem(
            app.get(&format!("{path}?{query}")).await,
            422,
            "validation-failed",
        )
        .await;
        assert_eq!(body["errors"][0]["field"], field, "{query}: {body}");
    }
    let unknown = "/v1/workspaces/00000000-0000-0000-0000-000000000000/audit";
    assert_problem(app.get(unknown).await, 404, "not-found").await;
}
