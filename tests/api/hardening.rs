use crate::helpers::{assert_problem, spawn_app, spawn_app_with};
use serde_json::json;

const ORIGIN: &str = "https://app.example.com";

#[tokio::test]
async fn every_response_carries_the_security_headers_and_hsts_only_over_tls() {
    let app = spawn_app().await;
    for response in [app.get("/healthz").await, app.get("/v1/nothing-here").await] {
        let h = response.headers();
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert!(h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'"));
        assert!(!h.contains_key("strict-transport-security"), "plain HTTP");
    }
    let behind_tls = app
        .client
        .get(app.url("/healthz"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert!(behind_tls.headers()["strict-transport-security"]
        .to_str()
        .unwrap()
        .starts_with("max-age="));
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413_problem() {
    let app = spawn_app_with(adledger_api::HttpPolicy {
        max_body_bytes: 1024,
        ..Default::default()
    })
    .await;
    let big = json!({ "name": "x".repeat(4096) });
    let body = assert_problem(
        app.post("/v1/workspaces", &big).await,
        413,
        "payload-too-large",
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("larger"));
    // A body within the limit still works.
    let ok = app
        .post("/v1/workspaces", &json!({ "name": "Small" }))
        .await;
    assert_eq!(ok.status(), 201);
}

#[tokio::test]
async fn cors_answers_only_the_allowed_origins() {
    let app = spawn_app_with(adledger_api::HttpPolicy {
        cors_origins: vec![ORIGIN.parse().unwrap()],
        ..Default::default()
    })
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/v1/workspaces"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,idempotency-key",
            )
            .send()
    };
    let allowed = preflight(ORIGIN).await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], ORIGIN);
    let methods = allowed.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(methods.contains("POST"), "{methods}");

    let other = preflight("https://evil.example.net").await.unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));

    let simple = app
        .client
        .get(app.url("/healthz"))
        .header("origin", ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(simple.headers()["access-control-allow-origin"], ORIGIN);
    // A browser client can read the position its write reached, to read it elsewhere.
    let exposed = simple.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("adledger-log-position"), "{exposed}");

    // Without a configured allow-list no origin is allowed.
    let closed = spawn_app().await;
    let response = closed
        .client
        .get(closed.url("/healthz"))
        .header("origin", ORIGIN)
        .send()
        .await
        .unwrap();
    assert!(!response
        .headers()
        .contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn past_the_rate_limit_a_client_gets_429_with_retry_after_but_probes_pass() {
    let app = spawn_app_with(adledger_api::HttpPolicy {
        rate_limit_per_minute: Some(5),
        ..Default::default()
    })
    .await;
    // Registering and logging in the app's first user took two of the five.
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let r = app.get("/openapi.json").await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["ratelimit-limit"], "5");
        remaining.push(
            r.headers()["ratelimit-remaining"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let refused = app.get("/openapi.json").await;
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=12).contains(&retry_after), "{retry_after}");
    assert!(refused.headers().contains_key("ratelimit-reset"));
    assert_problem(refused, 429, "rate-limited").await;
    // Probes are never limited.
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/metrics").await.status(), 200);
}

#[tokio::test]
async fn a_method_a_route_does_not_take_is_a_405_problem_naming_the_allowed_ones() {
    let app = spawn_app().await;
    for method in [
        reqwest::Method::PUT,
        reqwest::Method::PATCH,
        reqwest::Method::OPTIONS,
        reqwest::Method::DELETE,
    ] {
        let r = app
            .request(
                method.clone(),
                Some(&app.token),
                "/v1/workspaces",
                Some(&json!({ "name": "x" })),
            )
            .await;
        let allow = r.headers()["allow"].to_str().unwrap().to_owned();
        assert!(
            allow.contains("GET") && allow.contains("POST"),
            "{method}: {allow}"
        );
        let body = assert_problem(r, 405, "method-not-allowed").await;
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains(method.as_str()) && detail.contains("Allow"),
            "{body}"
        );
    }
    // Also without credentials, and on a route with a path parameter.
    let anonymous = app
        .request(reqwest::Method::PUT, None, "/healthz", None)
        .await;
    assert_eq!(anonymous.headers()["allow"], "GET,HEAD");
    assert_problem(anonymous, 405, "method-not-allowed").await;
}

#[tokio::test]
async fn a_raw_body_over_the_limit_is_a_413_problem_too() {
    let app = spawn_app_with(adledger_api::HttpPolicy {
        max_body_bytes: 1024,
        ..Default::default()
    })
    .await;
    let ws = app.workspace("Limits").await;
    // The authorize route reads its optional body as bytes, not through the JSON extractor.
    let r = app
        .client
        .post(app.url(&format!("/v1/workspaces/{ws}/connections/meta/authorize")))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .body(format!("{{\"connection_id\":\"{}\"}}", "x".repeat(4096)))
        .send()
        .await
        .unwrap();
    assert_problem(r, 413, "payload-too-large").await;
}

/// Every way a request can be wrong before a handler runs answers problem+json.
#[tokio::test]
async fn every_rejection_before_a_handler_is_a_problem() {
    let app = spawn_app().await;
    let ws = app.workspace("Rejections").await;
    let send = |method: reqwest::Method, path: String, body: Option<(&'static str, String)>| {
        let mut request = app
            .client
            .request(method, app.url(&path))
            .bearer_auth(&app.token);
        if let Some((content_type, body)) = body {
            request = request.header("content-type", content_type).body(body);
        }
        request.send()
    };
    let cases = [
        // An unknown path, and a path parameter that cannot name anything.
        (
            send(reqwest::Method::GET, "/v2/anything".into(), None),
            404,
            "not-found",
        ),
        (
            send(
                reqwest::Method::GET,
                "/v1/workspaces/not-a-uuid".into(),
                None,
            ),
            404,
            "not-found",
        ),
        // A query string of the wrong type.
        (
            send(
                reqwest::Method::GET,
                format!("/v1/workspaces/{ws}/events?limit=many"),
                None,
            ),
            422,
            "validation-failed",
        ),
        // A body that is not JSON, sent as JSON; and one not sent as JSON at all.
        (
            send(
                reqwest::Method::POST,
                "/v1/workspaces".into(),
                Some(("application/json", "{not json".into())),
            ),
            400,
            "malformed-request",
        ),
        (
            send(
                reqwest::Method::POST,
                "/v1/workspaces".into(),
                Some(("text/plain", "name=x".into())),
            ),
            400,
            "malformed-request",
        ),
    ];
    for (response, status, slug) in cases {
        assert_problem(response.await.unwrap(), status, slug).await;
    }
}
