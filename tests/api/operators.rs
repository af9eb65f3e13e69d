//! Deployment-wide routes (the whole log's verification, every projection's status) answer
//! operators only, granted and revoked with `adledger operators` on the server. To everyone else
//! who is signed in, API keys included, they look exactly like routes that do not exist.

use crate::helpers::{assert_problem, spawn_app, TestApp, OWNER};
use serde_json::{json, Value};

const DEPLOYMENT_WIDE: [&str; 2] = ["/v1/log/verify", "/v1/projections"];

/// Asserts that `token` gets for `path` the very 404 of a route that does not exist.
async fn hidden(app: &TestApp, token: &str, path: &str) {
    let body = assert_problem(app.get_as(token, path).await, 404, "not-found").await;
    let missing = "/v1/no-such-route";
    let unknown = assert_problem(app.get_as(token, missing).await, 404, "not-found").await;
    let as_if_missing: Value =
        serde_json::from_str(&unknown.to_string().replace(missing, path)).unwrap();
    assert_eq!(body, as_if_missing, "{path}");
}

#[tokio::test]
async fn deployment_wide_routes_answer_operators_only() {
    let app = spawn_app().await;
    let ws = app.workspace("Acme").await;
    let key: Value = app
        .post(
            &format!("/v1/workspaces/{ws}/api-keys"),
            &json!({ "name": "ops bot", "scope": "read_write" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let key = key["key"].as_str().unwrap().to_owned();
    let bob = app.user("bob@example.com").await;

    // A signed-in person who is no operator, even a workspace's owner, and any API key.
    for path in DEPLOYMENT_WIDE {
        for token in [&app.token, &bob.token, &key] {
            hidden(&app, token, path).await;
        }
    }

    let granted = app.adledger(&["operators", "grant", OWNER]).await;
    assert!(granted.contains("is an operator now"), "{granted}");
    let verification = app.get_json("/v1/log/verify").await;
    assert_eq!(verification["ok"], true, "{verification}");
    let status = app.get_json("/v1/projections").await;
    assert!(!status.as_array().unwrap().is_empty(), "{status}");
    let insights = status
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "daily_insights")
        .unwrap();
    assert_eq!(
        insights["versions"],
        json!({ "live": 1, "live_code_version": 1, "code_version": 1, "retired": [],
                "building": null }),
        "{status}"
    );
    // The role is the person's: others and the workspace's keys stay out.
    for path in DEPLOYMENT_WIDE {
        hidden(&app, &bob.token, path).await;
        hidden(&app, &key, path).await;
    }

    let revoked = app.adledger(&["operators", "revoke", OWNER]).await;
    assert!(revoked.contains("is no longer an operator"), "{revoked}");
    for path in DEPLOYMENT_WIDE {
        hidden(&app, &app.token, path).await;
    }
}

#[tokio::test]
async fn granting_an_unknown_email_fails_and_changes_nothing() {
    let app = spawn_app().await;
    let output = app
        .run_adledger(&["operators", "grant", "nobody@example.com"])
        .await;
    assert!(!output.status.success());
    for path in DEPLOYMENT_WIDE {
        hidden(&app, &app.token, path).await;
    }
}
