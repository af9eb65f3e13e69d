//! Idempotency keys belong to the caller who sent them and the route they were sent to: nobody
//! gets another caller's answer or burns their keys, and racing retries all get the first answer.

use crate::helpers::{assert_problem, spawn_app, TestApp};
use serde_json::{json, Value};

async fn post_keyed(
    app: &TestApp,
    token: Option<&str>,
    path: &str,
    key: &str,
    body: &Value,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(path))
        .header("Idempotency-Key", key)
        .json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn created_id(r: reqwest::Response) -> String {
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn two_people_with_the_same_key_each_get_their_own_workspace() {
    let app = spawn_app().await;
    let other = app.user("other@example.com").await;
    let body = json!({"name": "Acme"});
    let mine =
        created_id(post_keyed(&app, Some(&app.token), "/v1/workspaces", "k-1", &body).await).await;
    let theirs =
        created_id(post_keyed(&app, Some(&other.token), "/v1/workspaces", "k-1", &body).await)
            .await;
    assert_ne!(
        mine, theirs,
        "the second person got the first one's workspace"
    );
    // Each reads their own, and only their own.
    let path = |id: &str| format!("/v1/workspaces/{id}");
    assert_eq!(app.get_as(&other.token, &path(&theirs)).await.status(), 200);
    assert_eq!(app.get_as(&other.token, &path(&mine)).await.status(), 404);
    assert_eq!(app.get(&path(&mine)).await.status(), 200);

    // Another body under the same key is someone else's business: not a reused key for them.
    let third = app.user("third@example.com").await;
    let r = post_keyed(
        &app,
        Some(&third.token),
        "/v1/workspaces",
        "k-1",
        &json!({"name": "Else"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    // Their own retry with another body still is.
    let r = post_keyed(
        &app,
        Some(&other.token),
        "/v1/workspaces",
        "k-1",
        &json!({"name": "Else"}),
    )
    .await;
    assert_problem(r, 422, "idempotency-key-reused").await;
}

#[tokio::test]
async fn a_key_is_scoped_to_its_route() {
    let app = spawn_app().await;
    let ws = created_id(
        post_keyed(
            &app,
            Some(&app.token),
            "/v1/workspaces",
            "same",
            &json!({"name": "A"}),
        )
        .await,
    )
    .await;
    // The same key on another route is another key: a connection is created, not refused.
    let r = post_keyed(
        &app,
        Some(&app.token),
        &format!("/v1/workspaces/{ws}/connections"),
        "same",
        &json!({"platform": "sandbox", "label": "S", "sandbox": {"seed": 1, "ad_accounts": 1, "campaigns": 2}}),
    )
    .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn a_malformed_key_is_checked_only_after_authentication() {
    let app = spawn_app().await;
    let long = "x".repeat(256);
    for bad in ["", long.as_str(), "tab\there"] {
        let r = post_keyed(&app, None, "/v1/workspaces", bad, &json!({"name": "A"})).await;
        assert_problem(r, 401, "unauthenticated").await;
        let r = post_keyed(
            &app,
            Some(&app.token),
            "/v1/workspaces",
            bad,
            &json!({"name": "A"}),
        )
        .await;
        let problem = assert_problem(r, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");
    }
}

#[tokio::test]
async fn racing_retries_of_one_sync_all_get_the_first_answer() {
    let app = spawn_app().await;
    let ws = app.workspace("Races").await;
    let conn = app.sandbox(&ws, 7, 3).await;
    let path = format!("/v1/workspaces/{ws}/connections/{conn}/syncs");
    for round in 0..5 {
        let key = format!("sync-round-{round}");
        let body = json!({"from": "2026-01-01", "to": "2026-01-03"});
        let answers = futures_util::future::join_all(
            (0..30).map(|_| post_keyed(&app, Some(&app.token), &path, &key, &body)),
        )
        .await;
        let mut ids = Vec::new();
        for r in answers {
            let status = r.status();
            let text = r.text().await.unwrap();
            assert_eq!(status, 202, "round {round}: a retry got {status}: {text}");
            let answer: Value = serde_json::from_str(&text).unwrap();
            ids.push(answer["sync_id"].as_str().unwrap().to_owned());
        }
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 1, "round {round}: retries started {ids:?}");
        app.finished(&ws, &ids[0]).await;
    }
    let runs = app
        .get_json(&format!("/v1/workspaces/{ws}/connections/{conn}/syncs"))
        .await;
    let runs = runs
        .as_array()
        .map(Vec::len)
        .or_else(|| runs["items"].as_array().map(Vec::len));
    assert_eq!(runs, Some(5), "one run per round");
}
