//! Text no database column can hold never reaches one: NUL characters in a body or a query are
//! refused with 422 naming the field, whatever the route.

use crate::helpers::{assert_problem, spawn_app};
use serde_json::json;

#[tokio::test]
async fn nul_characters_in_a_body_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let r = app
        .post_anonymous(
            "/v1/auth/login",
            &json!({"email": "a\u{0}b", "password": "whatever it is"}),
        )
        .await;
    let problem = assert_problem(r, 422, "validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "email");

    let r = app
        .post("/v1/workspaces", &json!({"name": "Acme\u{0}"}))
        .await;
    let problem = assert_problem(r, 422, "validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "name");

    let ws = app.workspace("Acme").await;
    let r = app
        .post(
            &format!("/v1/workspaces/{ws}/connections"),
            &json!({"platform": "sandbox", "label": "S", "sandbox": {"seed": 1, "ad_accounts": 1, "campaigns": 2}, "extra\u{0}": 1}),
        )
        .await;
    let problem = assert_problem(r, 422, "validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "extra\\u0000");
}

#[tokio::test]
async fn nul_characters_in_a_query_are_refused_naming_the_parameter() {
    let app = spawn_app().await;
    let ws = app.workspace("Acme").await;
    for parameter in ["actor", "action"] {
        let r = app
            .get(&format!("/v1/workspaces/{ws}/audit?{parameter}=a%00b"))
            .await;
        let problem = assert_problem(r, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], parameter);
    }
    // The same queries without the NUL are fine: it is the character that is refused.
    let r = app
        .get(&format!("/v1/workspaces/{ws}/audit?actor=ab"))
        .await;
    assert_eq!(r.status(), 200);
}
