//! Calling a platform without letting it hold up others: a time limit per call, bounded retries
//! with exponential backoff and jitter that honour the platform's own hint, and a circuit breaker
//! per connection that fails fast while the platform keeps failing.

use crate::{CampaignDay, Connector, ConnectorError, Discovery};
use adledger_domain::connection::AdAccount;
use adledger_domain::DateRange;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often and how patiently one call is tried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The first backoff; each retry doubles it (with jitter), up to `max_delay`.
    pub base_delay: Duration,
    /// No wait is longer, not even one the platform asks for.
    pub max_delay: Duration,
    /// One call that takes longer counts as a transient failure. A call is a whole discovery or
    /// one ad account's chunk of days (30 days, every page, Meta's report jobs): hundreds of
    /// requests against a slow platform, each limited to a minute on its own.
    pub call_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            call_timeout: Duration::from_secs(15 * 60),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 for the first retry). The platform's hint wins
    /// when it gave one; otherwise "full jitter": a uniform draw below the exponential bound, so
    /// that many clients throttled together do not come back together. `unit` is in [0, 1).
    pub fn delay(&self, retry: u32, hint: Option<Duration>, unit: f64) -> Duration {
        if let Some(hint) = hint {
            return hint.min(self.max_delay);
        }
        let exponent = retry.saturating_sub(1).min(20);
        let bound = self
            .base_delay
            .saturating_mul(1 << exponent)
            .min(self.max_delay);
        bound.mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// Opens after `threshold` consecutive failures and refuses calls for `cool_down`; then lets one
/// trial call through, which closes it again on success.
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    cool_down: Duration,
    state: Mutex<BreakerState>,
}

#[derive(Debug, Clone, Copy)]
enum BreakerState {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// A trial call is under way: further calls wait for its outcome by being refused.
    Trial,
}

impl CircuitBreaker {
    pub fn new(threshold: u32, cool_down: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cool_down,
            state: Mutex::new(BreakerState::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        // A panic elsewhere while holding it leaves a valid state behind.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a call may go out now.
    pub fn admit(&self, now: Instant) -> Result<(), ConnectorError> {
        let mut state = self.lock();
        match *state {
            BreakerState::Closed { .. } => Ok(()),
            BreakerState::Open { until } if now >= until => {
                *state = BreakerState::Trial;
                Ok(())
            }
            BreakerState::Open { until } => Err(ConnectorError::Transient(format!(
                "the platform kept failing; calls resume in {} s",
                until.saturating_duration_since(now).as_secs().max(1)
            ))),
            BreakerState::Trial => Err(ConnectorError::Transient(
                "the platform kept failing; a trial call is under way".into(),
            )),
        }
    }

    pub fn success(&self) {
        *self.lock() = BreakerState::Closed { failures: 0 };
    }

    pub fn failure(&self, now: Instant) {
        let mut state = self.lock();
        *state = match *state {
            BreakerState::Closed { failures } if failures + 1 < self.threshold => {
                BreakerState::Closed {
                    failures: failures + 1,
                }
            }
            _ => BreakerState::Open {
                until: now + self.cool_down,
            },
        };
    }
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self::new(5, Duration::from_secs(60))
    }
}

/// A connector whose every call goes through the policy and the connection's breaker.
pub struct Resilient<C: ?Sized> {
    policy: RetryPolicy,
    breaker: Arc<CircuitBreaker>,
    inner: Box<C>,
}

impl<C: Connector + ?Sized> Resilient<C> {
    pub fn new(inner: Box<C>, policy: RetryPolicy, breaker: Arc<CircuitBreaker>) -> Self {
        Self {
            inner,
            policy,
            breaker,
        }
    }

    async fn call<T, F, Fut>(&self, mut op: F) -> Result<T, ConnectorError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ConnectorError>>,
    {
        let mut attempt = 1;
        loop {
            self.breaker.admit(Instant::now())?;
            let outcome = match tokio::time::timeout(self.policy.call_timeout, op()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(ConnectorError::Transient(format!(
                    "no answer within {} s",
                    self.policy.call_timeout.as_secs_f64()
                ))),
            };
            match outcome {
                Ok(value) => {
                    self.breaker.success();
                    return Ok(value);
                }
                Err(error) if error.is_retryable() => {
                    self.breaker.failure(Instant::now());
                    if attempt >= self.policy.max_attempts {
                        return Err(error);
                    }
                    let hint = match &error {
                        ConnectorError::Throttled { retry_after } => *retry_after,
                        _ => None,
                    };
                    let wait = self.policy.delay(attempt, hint, jitter());
                    tracing::info!(attempt, wait_ms = wait.as_millis() as u64, %error,
                        "platform call failed; retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                // The platform answered, just not with data: it is up, and retrying cannot help.
                Err(error) => {
                    self.breaker.success();
                    return Err(error);
                }
            }
        }
    }
}

/// A number in [0, 1) for jitter; it need not be unpredictable, only spread out.
fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut x = u64::from(nanos) ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[async_trait::async_trait]
impl<C: Connector + ?Sized> Connector for Resilient<C> {
    async fn discover(&self) -> Result<Discovery, ConnectorError> {
        self.call(|| self.inner.discover()).await
    }

    async fn account_insights(
        &self,
        account: &AdAccount,
        range: DateRange,
    ) -> Result<Vec<CampaignDay>, ConnectorError> {
        self.call(|| self.inner.account_insights(account, range))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Fails with the scripted errors, in order, then succeeds; counts calls.
    struct Scripted {
        errors: Mutex<Vec<ConnectorError>>,
        calls: AtomicU32,
    }

    impl Scripted {
        fn new(mut errors: Vec<ConnectorError>) -> Self {
            errors.reverse();
            Self {
                errors: Mutex::new(errors),
                calls: AtomicU32::new(0),
            }
        }
    }

    #[async_trait::async_trait]
    impl Connector for Scripted {
        async fn discover(&self) -> Result<Discovery, ConnectorError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            match self.errors.lock().unwrap().pop() {
                Some(error) => Err(error),
                None => Ok(Discovery::default()),
            }
        }

        async fn account_insights(
            &self,
            _: &AdAccount,
            _: DateRange,
        ) -> Result<Vec<CampaignDay>, ConnectorError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            match self.errors.lock().unwrap().pop() {
                Some(error) => Err(error),
                None => Ok(Vec::new()),
            }
        }
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(20),
            call_timeout: Duration::from_secs(5),
        }
    }

    fn transient() -> ConnectorError {
        ConnectorError::Transient("503".into())
    }

    #[tokio::test]
    async fn throttles_and_transient_failures_are_retried_until_success() {
        let throttled = ConnectorError::Throttled {
            retry_after: Some(Duration::from_millis(2)),
        };
        let c = Resilient::new(
            Box::new(Scripted::new(vec![throttled, transient()])),
            fast(),
            Arc::default(),
        );
        assert_eq!(c.discover().await, Ok(Discovery::default()));
        assert_eq!(c.inner.calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn account_insights_are_retried_like_discovery() {
        let c = Resilient::new(
            Box::new(Scripted::new(vec![transient()])),
            fast(),
            Arc::default(),
        );
        let account = AdAccount {
            id: adledger_domain::AdAccountId("a".into()),
            name: "A".into(),
            currency: adledger_domain::Currency::parse("USD").unwrap(),
            time_zone: "UTC".into(),
        };
        let day = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        let range = DateRange::new(day, day).unwrap();
        assert_eq!(c.account_insights(&account, range).await, Ok(Vec::new()));
        assert_eq!(c.inner.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn auth_and_invalid_answers_are_not_retried() {
        let c = Resilient::new(
            Box::new(Scripted::new(vec![ConnectorError::AuthExpired])),
            fast(),
            Arc::default(),
        );
        assert_eq!(c.discover().await, Err(ConnectorError::AuthExpired));
        assert_eq!(c.inner.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn retries_are_bounded_and_the_breaker_then_fails_fast() {
        let breaker = Arc::new(CircuitBreaker::new(4, Duration::from_secs(60)));
        let c = Resilient::new(
            Box::new(Scripted::new(vec![transient(); 10])),
            fast(),
            breaker.clone(),
        );
        assert_eq!(c.discover().await, Err(transient()));
        assert_eq!(c.inner.calls.load(Ordering::SeqCst), 4, "max_attempts");
        let refused = c.discover().await;
        assert!(
            matches!(&refused, Err(ConnectorError::Transient(m)) if m.contains("kept failing")),
            "{refused:?}"
        );
        assert_eq!(
            c.inner.calls.load(Ordering::SeqCst),
            4,
            "the breaker held the call"
        );
    }

    #[test]
    fn the_breaker_lets_one_trial_through_after_cooling_down() {
        let breaker = CircuitBreaker::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        breaker.failure(t0);
        assert!(
            breaker.admit(t0).is_ok(),
            "one failure is below the threshold"
        );
        breaker.failure(t0);
        assert!(breaker.admit(t0 + Duration::from_secs(9)).is_err(), "open");
        assert!(breaker.admit(t0 + Duration::from_secs(10)).is_ok(), "trial");
        assert!(
            breaker.admit(t0 + Duration::from_secs(10)).is_err(),
            "one trial at a time"
        );
        breaker.success();
        assert!(
            breaker.admit(t0 + Duration::from_secs(11)).is_ok(),
            "closed again"
        );
    }

    #[test]
    fn delays_honour_hints_and_grow_exponentially_within_bounds() {
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            ..RetryPolicy::default()
        };
        let hint = Some(Duration::from_secs(2));
        assert_eq!(policy.delay(1, hint, 0.5), Duration::from_secs(2));
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(3600)), 0.5),
            Duration::from_secs(5),
            "a hint longer than max_delay is capped"
        );
        assert!(policy.delay(1, None, 0.999) < Duration::from_millis(100));
        assert!(
            policy.delay(4, None, 0.999) > Duration::from_millis(700),
            "8× base"
        );
        assert!(policy.delay(30, None, 0.999) <= Duration::from_secs(5));
        assert_eq!(policy.delay(3, None, 0.0), Duration::ZERO);
        let j = jitter();
        assert!((0.0..1.0).contains(&j));
    }
}
