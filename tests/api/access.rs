//! The role matrix: every workspace route, tried by every role, by API keys of both scopes, by a
//! member of another workspace and without credentials. Outsiders always get 404 (existence does
//! not leak); members without the permission get 403.

use crate::helpers::{spawn_app, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    ReadWorkspace,
    ReadInsights,
    ReadHistory,
    ManageConnections,
    /// Connecting through OAuth binds a person: members who manage connections, not API keys.
    AuthorizePlatform,
    ManageApiKeys,
    ManageMembers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Allowed,
    Forbidden,
    NotFound,
    Unauthenticated,
}

/// Who may do what: the product's role table, written out independently of the code's.
fn expected(who: &str, need: Need) -> Outcome {
    use Need::*;
    use Outcome::*;
    if need == AuthorizePlatform && who.ends_with("key") && who != "other workspace's key" {
        return Forbidden;
    }
    let need = if need == AuthorizePlatform {
        ManageConnections
    } else {
        need
    };
    let allowed = match who {
        "owner" => true,
        "admin" => !matches!(need, ManageMembers | ReadHistory),
        "analyst" => matches!(need, ReadWorkspace | ReadInsights),
        "auditor" => matches!(need, ReadWorkspace | ReadHistory),
        "read_only key" => matches!(need, ReadWorkspace | ReadInsights),
        "read_write key" => matches!(need, ReadWorkspace | ReadInsights | ManageConnections),
        "outsider" | "other workspace's key" => return NotFound,
        "anonymous" => return Unauthenticated,
        other => panic!("unknown caller {other}"),
    };
    if allowed {
        Allowed
    } else {
        Forbidden
    }
}

struct Route {
    method: Method,
    path: String,
    need: Need,
    body: Option<Value>,
}

fn route(method: Method, path: String, need: Need, body: Option<Value>) -> Route {
    Route {
        method,
        path,
        need,
        body,
    }
}

async fn outcome(app: &TestApp, token: Option<&str>, route: &Route) -> (Outcome, u16, Value) {
    let r = app
        .request(
            route.method.clone(),
            token,
            &route.path,
            route.body.as_ref(),
        )
        .await;
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    let detail = body["detail"].as_str().unwrap_or_default();
    let outcome = match status {
        401 => Outcome::Unauthenticated,
        403 => Outcome::Forbidden,
        // Only the workspace's own 404 means "not yours"; a missing member or key is an answer.
        404 if detail.starts_with("workspace") => Outcome::NotFound,
        s if s >= 500 => panic!("{} {} answered {s}: {body}", route.method, route.path),
        _ => Outcome::Allowed,
    };
    (outcome, status, body)
}

#[tokio::test]
async fn every_route_checks_the_callers_role_and_hides_other_workspaces() {
    let app = spawn_app().await;
    let ws = app.workspace("Matrix").await;
    let conn = app.sandbox(&ws, 5, 1).await;
    let doomed = app.sandbox(&ws, 6, 1).await;
    let run = app.sync(&ws, &conn, "2024-01-01", "2024-01-02").await;
    let sync = run["id"].as_str().unwrap().to_owned();

    let mut callers: Vec<(String, Option<String>)> =
        vec![("owner".into(), Some(app.token.clone()))];
    for role in ["admin", "analyst", "auditor"] {
        let user = app.user(&format!("{role}@example.com")).await;
        app.join(&ws, &user, role).await;
        callers.push((role.into(), Some(user.token)));
    }
    for scope in ["read_only", "read_write"] {
        let key: Value = app
            .post(
                &format!("/v1/workspaces/{ws}/api-keys"),
                &json!({ "name": scope, "scope": scope }),
            )
            .await
            .json()
            .await
            .unwrap();
        callers.push((
            format!("{scope} key"),
            key["key"].as_str().map(str::to_owned),
        ));
    }
    let outsider = app.user("outsider@example.com").await;
    let elsewhere = {
        let r = app
            .post_as(
                &outsider.token,
                "/v1/workspaces",
                &json!({ "name": "Elsewhere" }),
            )
            .await;
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let foreign_key: Value = app
        .post_as(
            &outsider.token,
            &format!("/v1/workspaces/{elsewhere}/api-keys"),
            &json!({ "name": "theirs", "scope": "read_write" }),
        )
        .await
        .json()
        .await
        .unwrap();
    callers.push(("outsider".into(), Some(outsider.token.clone())));
    callers.push((
        "other workspace's key".into(),
        foreign_key["key"].as_str().map(str::to_owned),
    ));
    callers.push(("anonymous".into(), None));

    let w = format!("/v1/workspaces/{ws}");
    let nobody = uuid::Uuid::new_v4();
    use Need::*;
    let routes = vec![
        route(Method::GET, w.clone(), ReadWorkspace, None),
        route(Method::GET, format!("{w}/connections"), ReadWorkspace, None),
        route(
            Method::POST,
            format!("{w}/connections"),
            ManageConnections,
            Some(
                json!({ "platform": "sandbox", "sandbox": { "seed": 1, "ad_accounts": 1, "campaigns": 1 } }),
            ),
        ),
        route(
            Method::GET,
            format!("{w}/connections/{conn}"),
            ReadWorkspace,
            None,
        ),
        route(
            Method::POST,
            format!("{w}/connections/{conn}/syncs"),
            ManageConnections,
            Some(json!({ "from": "2024-01-01", "to": "2024-01-01" })),
        ),
        route(
            Method::GET,
            format!("{w}/connections/{conn}/syncs"),
            ReadWorkspace,
            None,
        ),
        route(
            Method::GET,
            format!("{w}/syncs/{sync}"),
            ReadWorkspace,
            None,
        ),
        route(Method::GET, format!("{w}/ad-accounts"), ReadWorkspace, None),
        route(Method::GET, format!("{w}/campaigns"), ReadWorkspace, None),
        route(
            Method::GET,
            format!("{w}/insights?from=2024-01-01&to=2024-01-02"),
            ReadInsights,
            None,
        ),
        route(
            Method::GET,
            format!("{w}/insights/history?campaign_id={nobody}&date=2024-01-01"),
            ReadInsights,
            None,
        ),
        route(Method::GET, format!("{w}/events"), ReadHistory, None),
        route(
            Method::GET,
            format!("{w}/streams/workspace-{ws}"),
            ReadHistory,
            None,
        ),
        route(Method::GET, format!("{w}/audit"), ReadHistory, None),
        route(Method::GET, format!("{w}/members"), ReadWorkspace, None),
        route(
            Method::PATCH,
            format!("{w}/members/{nobody}"),
            ManageMembers,
            Some(json!({ "role": "analyst" })),
        ),
        route(
            Method::DELETE,
            format!("{w}/members/{nobody}"),
            ManageMembers,
            None,
        ),
        route(
            Method::POST,
            format!("{w}/members/{nobody}/erasure"),
            ManageMembers,
            None,
        ),
        route(
            Method::POST,
            format!("{w}/invitations"),
            ManageMembers,
            Some(json!({ "email": "new@example.com", "role": "analyst" })),
        ),
        route(Method::GET, format!("{w}/api-keys"), ManageApiKeys, None),
        route(
            Method::POST,
            format!("{w}/api-keys"),
            ManageApiKeys,
            Some(json!({ "name": "k", "scope": "read_only" })),
        ),
        route(
            Method::DELETE,
            format!("{w}/api-keys/{nobody}"),
            ManageApiKeys,
            None,
        ),
        route(
            Method::POST,
            format!("{w}/connections/google/authorize"),
            AuthorizePlatform,
            None,
        ),
        route(
            Method::DELETE,
            format!("{w}/connections/{doomed}"),
            ManageConnections,
            None,
        ),
    ];

    // Every workspace route of the OpenAPI document is in the table above.
    let doc = app.get_json("/openapi.json").await;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/v1/workspaces/{workspace_id}") {
            continue;
        }
        for method in ops.as_object().unwrap().keys() {
            let pattern: Vec<&str> = path.split('/').collect();
            let covered = routes.iter().any(|r| {
                let concrete: Vec<&str> = r.path.split('?').next().unwrap().split('/').collect();
                r.method.as_str().eq_ignore_ascii_case(method)
                    && concrete.len() == pattern.len()
                    && concrete
                        .iter()
                        .zip(&pattern)
                        .all(|(c, p)| p.starts_with('{') || c == p)
            });
            assert!(covered, "{method} {path} is not in the role matrix");
        }
    }

    let mut failures = Vec::new();
    for route in &routes {
        for (who, token) in &callers {
            let want = expected(who, route.need);
            let (got, status, body) = outcome(&app, token.as_deref(), route).await;
            if got != want {
                failures.push(format!(
                    "{who}: {} {} → {status} ({got:?}), expected {want:?}: {body}",
                    route.method, route.path
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Routes outside any workspace still want credentials.
    for (method, path) in [
        (Method::GET, "/v1/workspaces"),
        (Method::POST, "/v1/workspaces"),
        (Method::GET, "/v1/me"),
        (Method::GET, "/v1/me/export"),
        (Method::POST, "/v1/invitations/accept"),
        (Method::GET, "/v1/log/verify"),
        (Method::GET, "/v1/projections"),
        (Method::GET, "/v1/platforms"),
    ] {
        let r = app
            .request(method.clone(), None, path, Some(&json!({})))
            .await;
        assert_eq!(r.status(), 401, "{method} {path}");
    }
}
