use crate::helpers::spawn_app;
use serde_json::Value;

/// Every route the API serves. A route added to the app must be added here, and this test fails
/// until the OpenAPI document describes it.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/openapi.json"),
    ("get", "/readyz"),
    ("post", "/v1/workspaces"),
    ("get", "/v1/workspaces/{workspace_id}"),
    ("post", "/v1/workspaces/{workspace_id}/connections"),
    ("get", "/v1/workspaces/{workspace_id}/connections"),
    (
        "get",
        "/v1/workspaces/{workspace_id}/connections/{connection_id}",
    ),
    (
        "post",
        "/v1/workspaces/{workspace_id}/connections/{connection_id}/syncs",
    ),
    (
        "get",
        "/v1/workspaces/{workspace_id}/connections/{connection_id}/syncs",
    ),
    ("get", "/v1/workspaces/{workspace_id}/syncs/{sync_id}"),
    ("get", "/v1/workspaces/{workspace_id}/ad-accounts"),
    ("get", "/v1/workspaces/{workspace_id}/campaigns"),
    ("get", "/v1/workspaces/{workspace_id}/insights"),
    ("get", "/v1/workspaces/{workspace_id}/insights/history"),
    ("get", "/v1/workspaces/{workspace_id}/events"),
    ("get", "/v1/workspaces/{workspace_id}/streams/{stream_id}"),
    ("get", "/v1/log/verify"),
    ("get", "/v1/projections"),
    ("get", "/metrics"),
    ("get", "/v1/workspaces/{workspace_id}/audit"),
    ("get", "/v1/workspaces"),
    ("post", "/v1/auth/register"),
    ("post", "/v1/auth/login"),
    ("post", "/v1/auth/refresh"),
    ("post", "/v1/auth/logout"),
    ("get", "/v1/me"),
    ("delete", "/v1/me"),
    ("post", "/v1/me/password"),
    ("post", "/v1/me/totp"),
    ("post", "/v1/me/totp/confirm"),
    ("post", "/v1/me/totp/disable"),
    ("get", "/v1/me/export"),
    ("get", "/v1/workspaces/{workspace_id}/members"),
    ("patch", "/v1/workspaces/{workspace_id}/members/{user_id}"),
    ("delete", "/v1/workspaces/{workspace_id}/members/{user_id}"),
    (
        "post",
        "/v1/workspaces/{workspace_id}/members/{user_id}/erasure",
    ),
    ("post", "/v1/workspaces/{workspace_id}/invitations"),
    ("post", "/v1/invitations/accept"),
    ("get", "/v1/workspaces/{workspace_id}/api-keys"),
    ("post", "/v1/workspaces/{workspace_id}/api-keys"),
    (
        "delete",
        "/v1/workspaces/{workspace_id}/api-keys/{api_key_id}",
    ),
    ("get", "/v1/platforms"),
    (
        "post",
        "/v1/workspaces/{workspace_id}/connections/{platform}/authorize",
    ),
    ("get", "/v1/oauth/{platform}/callback"),
    (
        "delete",
        "/v1/workspaces/{workspace_id}/connections/{connection_id}",
    ),
];

#[tokio::test]
async fn the_openapi_document_lists_every_route_with_parameters_and_errors() {
    let app = spawn_app().await;
    let doc = app.get_json("/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in ROUTES {
        let op = &paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} missing from the document"))[method];
        assert!(op.is_object(), "{method} {path} missing");
        let params: Vec<&str> = op["parameters"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|p| p["in"] == "path")
                    .map(|p| p["name"].as_str().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        for segment in path.split('/').filter(|s| s.starts_with('{')) {
            assert!(
                params.contains(&segment.trim_matches(|c| c == '{' || c == '}')),
                "{path}: {segment} undocumented"
            );
        }
        if path.starts_with("/v1/") {
            let codes: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
            assert!(
                codes
                    .iter()
                    .any(|c| c.starts_with('4') || c.starts_with('5')),
                "{method} {path} lists no error"
            );
        }
    }
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        documented,
        ROUTES.len(),
        "the document lists a route this test does not know"
    );
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let app = spawn_app().await;
    let doc: Value = app.get_json("/openapi.json").await;
    let id = uuid::Uuid::new_v4().to_string();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let concrete: String = path
            .split('/')
            .map(|s| if s.starts_with('{') { id.as_str() } else { s })
            .collect::<Vec<_>>()
            .join("/");
        for method in ops.as_object().unwrap().keys() {
            let method_ = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            // Without credentials, so nothing is changed: every route answers 401 or its own
            // answer, never 405 or the fallback's 404.
            let r = app
                .client
                .request(method_, app.url(&concrete))
                .json(&serde_json::json!({}))
                .send()
                .await
                .unwrap();
            assert_ne!(r.status(), 405, "{method} {path}");
            if r.status() == 404 {
                let body: Value = r.json().await.unwrap();
                assert!(
                    !body["detail"].as_str().unwrap_or("").starts_with("route "),
                    "{method} {path} is not routed"
                );
            }
        }
    }
}
