//! What every response gets whatever the route: security headers, a bound on request bodies, a
//! time limit, CORS for an explicit allow-list of browser origins only, and problem+json for
//! every error, also those that no handler built (axum's own 405 and rejections, a panic).

use crate::error::ApiError;
use crate::rate_limit::{self, RateLimiter};
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::time::Duration;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Limits and browser access of the HTTP API.
#[derive(Debug, Clone)]
pub struct HttpPolicy {
    /// Larger request bodies are refused with 413.
    pub max_body_bytes: usize,
    /// A request whose response has not started by then gets 503 `request-timeout`.
    pub request_timeout: Duration,
    /// Browser origins allowed to call the API (CORS); empty allows none.
    pub cors_origins: Vec<HeaderValue>,
    /// Requests per minute per client IP (with bursts up to the same number); `None` is off.
    pub rate_limit_per_minute: Option<u32>,
    /// Login, registration and token refresh per minute per client IP; `None` is off.
    pub credential_rate_limit_per_minute: Option<u32>,
    /// Requests per minute per signed-in user or API key; `None` is off.
    pub caller_rate_limit_per_minute: Option<u32>,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            cors_origins: Vec::new(),
            rate_limit_per_minute: Some(1_200),
            credential_rate_limit_per_minute: Some(30),
            caller_rate_limit_per_minute: Some(600),
        }
    }
}

/// Wraps `router` in the policy's layers (outermost last).
pub fn apply<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    policy: &HttpPolicy,
) -> Router<S> {
    let timeout = policy.request_timeout;
    let mut router = router
        .layer(CatchPanicLayer::custom(panicked))
        .layer(axum::middleware::from_fn(problem_answers))
        .layer(DefaultBodyLimit::max(policy.max_body_bytes))
        .layer(axum::middleware::from_fn(move |req, next| {
            time_limit(timeout, req, next)
        }))
        .layer(axum::middleware::from_fn(security_headers));
    if let Some(per_minute) = policy.rate_limit_per_minute {
        let limiter = RateLimiter::per_minute(per_minute);
        let credentials = policy
            .credential_rate_limit_per_minute
            .map(RateLimiter::per_minute);
        router = router.layer(axum::middleware::from_fn(move |req, next| {
            rate_limit::limit(limiter.clone(), credentials.clone(), req, next)
        }));
    }
    if !policy.cors_origins.is_empty() {
        router = router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(policy.cors_origins.clone()))
                .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
                .allow_headers([
                    header::CONTENT_TYPE,
                    header::AUTHORIZATION,
                    HeaderName::from_static("idempotency-key"),
                    HeaderName::from_static("x-request-id"),
                    HeaderName::from_static("x-api-key"),
                ])
                .expose_headers([
                    HeaderName::from_static("x-request-id"),
                    crate::consistency::LOG_POSITION,
                    header::RETRY_AFTER,
                ])
                .max_age(Duration::from_secs(600)),
        );
    }
    router
}

async fn time_limit(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout(limit).into_response(),
    }
}

/// A handler that panicked answers 500 `internal` like any other bug (the panic is logged), and
/// the connection and the server live on.
fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    ApiError::Internal(format!("handler panicked: {message}")).into_response()
}

/// The last guard of "every error is problem+json": an error answer built below the handlers
/// (axum's 405 with its `Allow` header, a raw-body extractor's 413 or 400) is replaced by the
/// problem of the same status, keeping its headers. Answers that are problems already pass.
async fn problem_answers(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = next.run(req).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if is_problem || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    // What the layer below said, as the detail of client errors; a few kilobytes at most.
    let said = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let mut problem = match status {
        // axum adds `Allow` to this answer further out, after this layer.
        StatusCode::METHOD_NOT_ALLOWED => {
            ApiError::MethodNotAllowed(method.to_string()).into_response()
        }
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge.into_response(),
        StatusCode::NOT_FOUND => ApiError::no_route(&path).into_response(),
        StatusCode::BAD_REQUEST => ApiError::Malformed(match said.is_empty() {
            true => "the request could not be read".to_owned(),
            false => said,
        })
        .into_response(),
        StatusCode::INTERNAL_SERVER_ERROR => {
            ApiError::Internal(format!("500 without a problem body: {said}")).into_response()
        }
        s if s.is_server_error() => {
            // What a server error said stays in the log, as for `internal`.
            tracing::error!(status = %s, cause = %said, "error answer without a problem body");
            other_problem(s, String::new())
        }
        other => other_problem(other, said),
    };
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            problem.headers_mut().insert(name.clone(), value.clone());
        }
    }
    problem
}

/// A client error with no variant of its own keeps its status; its type is the status' reason
/// phrase (`unsupported-media-type` for 415, ...).
fn other_problem(status: StatusCode, detail: String) -> Response {
    let reason = status.canonical_reason().unwrap_or("Client error");
    let problem = crate::error::Problem {
        type_: format!(
            "urn:adledger:problem:{}",
            reason.to_ascii_lowercase().replace([' ', '\''], "-")
        ),
        title: reason.to_owned(),
        status: status.as_u16(),
        detail: match detail.is_empty() {
            true => reason.to_owned(),
            false => detail,
        },
        errors: Vec::new(),
    };
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body,
    )
        .into_response()
}

/// The API answers JSON to programs: nothing in it may be framed, sniffed as another type, or
/// leak the referring URL. HSTS only when the request came over TLS (a terminating proxy says so
/// in `X-Forwarded-Proto`), since a plain-HTTP answer cannot set it meaningfully.
async fn security_headers(req: Request, next: Next) -> Response {
    let over_tls = req
        .headers()
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    if over_tls {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_slow_handler_gets_a_timeout_problem_not_a_hung_connection() {
        let policy = HttpPolicy {
            request_timeout: Duration::from_millis(50),
            ..HttpPolicy::default()
        };
        let app = apply(
            Router::new().route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            ),
            &policy,
        );
        let started = std::time::Instant::now();
        let response = app
            .oneshot(Request::get("/slow").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(response.status(), 503);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert_eq!(response.headers()[header::X_FRAME_OPTIONS], "DENY");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["type"], "urn:adledger:problem:request-timeout");
    }

    async fn problem_of(response: Response) -> serde_json::Value {
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_a_500_problem_and_the_server_lives_on() {
        let app = apply(
            Router::new()
                .route(
                    "/boom",
                    get(|| async {
                        if true {
                            panic!("a bug with a secret in its message");
                        }
                        "unreachable"
                    }),
                )
                .route("/fine", get(|| async { "fine" })),
            &HttpPolicy::default(),
        );
        let response = app
            .clone()
            .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), 500);
        assert_eq!(response.headers()[header::X_FRAME_OPTIONS], "DENY");
        let problem = problem_of(response).await;
        assert_eq!(problem["type"], "urn:adledger:problem:internal");
        assert!(!problem.to_string().contains("secret"), "{problem}");
        let fine = app
            .oneshot(Request::get("/fine").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(fine.status(), 200);
    }

    #[tokio::test]
    async fn an_error_without_a_problem_body_becomes_the_problem_of_its_status() {
        let app = apply(
            Router::new()
                .route(
                    "/teapot",
                    get(|| async { (StatusCode::UNSUPPORTED_MEDIA_TYPE, "plain words") }),
                )
                .route(
                    "/broken",
                    get(|| async { (StatusCode::BAD_GATEWAY, "upstream said: secret") }),
                ),
            &HttpPolicy::default(),
        );
        let response = app
            .clone()
            .oneshot(Request::get("/teapot").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), 415);
        let problem = problem_of(response).await;
        assert_eq!(
            problem["type"],
            "urn:adledger:problem:unsupported-media-type"
        );
        assert_eq!(problem["detail"], "plain words");
        let response = app
            .oneshot(Request::get("/broken").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), 502);
        let problem = problem_of(response).await;
        assert_eq!(problem["type"], "urn:adledger:problem:bad-gateway");
        assert!(!problem.to_string().contains("secret"), "{problem}");
    }
}
