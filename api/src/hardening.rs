//! What every response gets whatever the route: security headers, a bound on request bodies, a
//! time limit, and CORS for an explicit allow-list of browser origins only.

use crate::error::ApiError;
use crate::rate_limit::{self, RateLimiter};
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::time::Duration;
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

impl HttpPolicy {
    /// How long one statement of a request's reads may run before the database cancels it: a
    /// little below the request's own limit (a tenth of it, at most 2 s), so that the query
    /// stops and the answer is the same 503 `request-timeout`.
    pub fn statement_timeout(&self) -> Duration {
        let margin = (self.request_timeout / 10).min(Duration::from_secs(2));
        self.request_timeout - margin
    }
}

/// Wraps `router` in the policy's layers (outermost last).
pub fn apply<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    policy: &HttpPolicy,
) -> Router<S> {
    let timeout = policy.request_timeout;
    let mut router = router
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
                .expose_headers([HeaderName::from_static("x-request-id"), header::LINK])
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

    #[test]
    fn reads_are_cancelled_a_little_before_the_request_times_out() {
        let at = |secs: f64| {
            HttpPolicy {
                request_timeout: Duration::from_secs_f64(secs),
                ..HttpPolicy::default()
            }
            .statement_timeout()
        };
        assert_eq!(at(30.0), Duration::from_secs(28));
        assert_eq!(at(2.0), Duration::from_millis(1_800));
        assert_eq!(at(3_600.0), Duration::from_secs(3_598));
    }

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
}
