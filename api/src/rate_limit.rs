//! Rate limits: a token bucket per client IP (the TCP peer; a proxy in front must do its own
//! limiting), a stricter one per IP for login, registration and token refresh, and one per
//! signed-in user or API key (applied by the `Caller` extractor). `RateLimit-Limit`,
//! `RateLimit-Remaining` and `RateLimit-Reset` go out on every IP-limited response; past a limit
//! the answer is 429 `rate-limited` with `Retry-After`. Health, readiness and metrics are not
//! limited, so probes never lock themselves out. The buckets are governor's keyed limiters; idle
//! clients' buckets are forgotten, so memory stays bounded.

use crate::error::ApiError;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::Quota;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Routes never limited: probes and scrapes must see the server as it is.
pub const EXEMPT: &[&str] = &["/healthz", "/readyz", "/metrics"];
/// Routes that guess at credentials when abused: they get the stricter per-IP limit too.
pub const CREDENTIAL_ROUTES: &[&str] = &["/v1/auth/login", "/v1/auth/register", "/v1/auth/refresh"];
/// Every this many checks, the buckets that are full again are forgotten, so memory follows the
/// clients of the last minute or so, not every client ever seen.
const SWEEP_EVERY: u64 = 1024;

/// One GCRA bucket per key (governor's "generic cell rate algorithm", a token bucket without a
/// timer), reporting what is left of the burst on every allowed request.
type Buckets<C> =
    governor::RateLimiter<String, HashMapStateStore<String>, C, StateInformationMiddleware>;

/// Requests a client may make per minute, with bursts up to the same number.
#[derive(Debug, Clone)]
pub struct RateLimiter<C: Clock = DefaultClock> {
    per_minute: u32,
    buckets: Arc<Buckets<C>>,
    checks: Arc<AtomicU64>,
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
        Self::with_clock(per_minute, DefaultClock::default())
    }
}

impl<C: Clock> RateLimiter<C> {
    fn with_clock(per_minute: u32, clock: C) -> Self {
        let burst = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let buckets: Buckets<C> = governor::RateLimiter::new(
            Quota::per_minute(burst),
            HashMapStateStore::default(),
            clock,
        );
        Self {
            per_minute: burst.get(),
            buckets: Arc::new(buckets),
            checks: Arc::default(),
        }
    }

    /// Takes one request from `key`'s bucket, or says how many seconds until it may.
    pub fn take(&self, key: String) -> Result<(), u64> {
        let decision = self.check(key);
        if decision.allowed {
            Ok(())
        } else {
            Err(decision.retry_after)
        }
    }

    fn check(&self, key: String) -> Decision {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.buckets.retain_recent();
            self.buckets.shrink_to_fit();
        }
        // One token comes back every interval; the bucket holds `per_minute` of them.
        let interval = Duration::from_secs(60) / self.per_minute;
        match self.buckets.check_key(&key) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    remaining,
                    // governor reports whole tokens, so this rounds up to whole intervals.
                    reset: seconds(interval * (self.per_minute - remaining)),
                    retry_after: 0,
                }
            }
            Err(refused) => {
                let wait = refused.wait_time_from(self.buckets.clock().now());
                Decision {
                    allowed: false,
                    remaining: 0,
                    reset: seconds(wait + interval * (self.per_minute - 1)),
                    retry_after: seconds(wait).max(1),
                }
            }
        }
    }
}

/// Whole seconds, rounded up.
fn seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
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
    let mut decision = limiter.check(client.to_string());
    if let Some(strict) = credentials.filter(|_| CREDENTIAL_ROUTES.contains(&req.uri().path())) {
        if decision.allowed {
            decision = strict.check(client.to_string());
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
    use governor::clock::FakeRelativeClock;

    #[test]
    fn a_client_gets_its_burst_then_waits_for_tokens_and_others_are_unaffected() {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::with_clock(3, clock.clone());
        let a = || "10.0.0.1".to_owned();
        let b = "10.0.0.2".to_owned();
        let first: Vec<Decision> = (0..3).map(|_| limiter.check(a())).collect();
        let remaining: Vec<u32> = first.iter().map(|d| d.remaining).collect();
        assert_eq!(remaining, [2, 1, 0]);
        assert_eq!(first[2].reset, 60, "empty: a minute until full again");
        let refused = limiter.check(a());
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, 20, "one token per 20 s at 3/min");
        assert_eq!(refused.reset, 60);
        assert!(
            limiter.check(b).allowed,
            "another client has its own bucket"
        );
        clock.advance(Duration::from_secs(21));
        let later = limiter.check(a());
        assert!(later.allowed, "a token came back after 20 s");
        assert_eq!(later.remaining, 0);
    }

    #[test]
    fn buckets_of_idle_clients_are_forgotten() {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::with_clock(60, clock.clone());
        for n in 0..3_000 {
            limiter.check(format!("10.0.{}.{}", n / 256, n % 256));
        }
        assert!(limiter.buckets.len() >= 2_000, "all busy within the minute");
        // Two minutes later, a hundred new clients: the next sweep (the 3072nd check) forgets
        // the first three thousand, whose buckets are full again.
        clock.advance(Duration::from_secs(120));
        for n in 0..100 {
            limiter.check(format!("10.1.0.{n}"));
        }
        assert_eq!(limiter.buckets.len(), 100);
    }
}
