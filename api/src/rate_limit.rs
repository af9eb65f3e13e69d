//! Rate limits: a token bucket per client IP (the TCP peer; a proxy in front must do its own
//! limiting), a stricter one per IP for login, registration and token refresh, and one per
//! signed-in user or API key (applied by the `Caller` extractor). `RateLimit-Limit`,
//! `RateLimit-Remaining` and `RateLimit-Reset` go out on every IP-limited response; past a limit
//! the answer is 429 `rate-limited` with `Retry-After`. Health, readiness and metrics are not
//! limited, so probes never lock themselves out.

use crate::error::ApiError;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const EXEMPT: &[&str] = &["/healthz", "/readyz", "/metrics"];
/// Routes that guess at credentials when abused: they get the stricter per-IP limit too.
pub const CREDENTIAL_ROUTES: &[&str] = &["/v1/auth/login", "/v1/auth/register", "/v1/auth/refresh"];
/// Buckets idle this long are full again and can be forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Requests a client may make per minute, with bursts up to the same number.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    per_minute: u32,
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
}

/// What one request was allowed.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Decision {
    allowed: bool,
    remaining: u32,
    /// Seconds until the bucket is full again.
    reset: u64,
    /// Seconds until the next request is allowed (when refused).
    retry_after: u64,
}

impl RateLimiter {
    pub fn per_minute(per_minute: u32) -> Self {
        Self {
            per_minute: per_minute.max(1),
            buckets: Arc::default(),
        }
    }

    fn rate(&self) -> f64 {
        f64::from(self.per_minute) / 60.0
    }

    /// Takes one request from `key`'s bucket, or says how many seconds until it may.
    pub fn take(&self, key: String) -> Result<(), u64> {
        let decision = self.check(key, Instant::now());
        if decision.allowed {
            Ok(())
        } else {
            Err(decision.retry_after)
        }
    }

    fn check(&self, client: String, now: Instant) -> Decision {
        let capacity = f64::from(self.per_minute);
        let rate = self.rate();
        // A poisoned lock only means another request panicked mid-update; the map is still usable.
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 10_000 {
            buckets.retain(|_, b| now.duration_since(b.updated) < FORGET_AFTER);
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.updated = now;
        let allowed = bucket.tokens >= 1.0;
        if allowed {
            bucket.tokens -= 1.0;
        }
        Decision {
            allowed,
            remaining: bucket.tokens.floor() as u32,
            reset: ((capacity - bucket.tokens) / rate).ceil() as u64,
            retry_after: if allowed {
                0
            } else {
                ((1.0 - bucket.tokens) / rate).ceil().max(1.0) as u64
            },
        }
    }
}

fn set(headers: &mut HeaderMap, name: &'static str, value: u64) {
    headers.insert(name, HeaderValue::from(value));
}

pub async fn limit(
    limiter: RateLimiter,
    credentials: Option<RateLimiter>,
    req: Request,
    next: Next,
) -> Response {
    if EXEMPT.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let mut limiter = limiter;
    let mut decision = limiter.check(client.to_string(), Instant::now());
    if let Some(strict) = credentials.filter(|_| CREDENTIAL_ROUTES.contains(&req.uri().path())) {
        if decision.allowed {
            decision = strict.check(client.to_string(), Instant::now());
            limiter = strict;
        }
    }
    let mut response = if decision.allowed {
        next.run(req).await
    } else {
        tracing::info!(%client, "rate limited");
        let mut refused = ApiError::RateLimited(decision.retry_after).into_response();
        set(refused.headers_mut(), "retry-after", decision.retry_after);
        refused
    };
    let headers = response.headers_mut();
    set(headers, "ratelimit-limit", u64::from(limiter.per_minute));
    set(
        headers,
        "ratelimit-remaining",
        u64::from(decision.remaining),
    );
    set(headers, "ratelimit-reset", decision.reset);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_burst_then_waits_for_tokens_and_others_are_unaffected() {
        let limiter = RateLimiter::per_minute(3);
        let a = || "10.0.0.1".to_owned();
        let b = "10.0.0.2".to_owned();
        let t0 = Instant::now();
        let remaining: Vec<u32> = (0..3).map(|_| limiter.check(a(), t0).remaining).collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = limiter.check(a(), t0);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, 20, "one token per 20 s at 3/min");
        assert!(
            limiter.check(b, t0).allowed,
            "another client has its own bucket"
        );
        let later = limiter.check(a(), t0 + Duration::from_secs(21));
        assert!(later.allowed, "a token came back after 20 s");
        assert_eq!(later.remaining, 0);
    }
}
