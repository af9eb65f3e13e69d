//! Calling a platform without letting it hold up others: a time limit per call, bounded retries
//! with exponential backoff and jitter that honour the platform's own hint, and a circuit breaker
//! per connection that fails fast while the platform keeps failing.

use crate::{CampaignDay, Connector, ConnectorError, Discovery};
use adledger_domain::connection::AdAccount;
use adledger_domain::DateRange;
use backon::{Backoff, BackoffBuilder, ExponentialBuilder, Retryable};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often and how patiently one call is tried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The bound of the first wait; each retry doubles it, up to `max_delay` (see [`Self::backoff`]).
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
    /// The waits between tries when the platform gives no hint, one fewer than `max_attempts`:
    /// "full jitter", a uniform draw below a bound that starts at `base_delay` and doubles up to
    /// `max_delay`, so that many clients throttled together do not come back together.
    pub fn backoff(&self) -> impl Backoff {
        self.bounds()
            .map(|bound| bound.mul_f64(rand::random::<f64>()))
    }

    /// The exponential bounds of [`Self::backoff`].
    fn bounds(&self) -> impl Backoff {
        ExponentialBuilder::new()
            .with_min_delay(self.base_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_max_times(self.max_attempts.saturating_sub(1) as usize)
            .build()
    }

    /// The wait before the next try: the platform's hint wins when it gave one, else the planned
    /// wait; never longer than `max_delay`.
    pub fn wait(&self, hint: Option<Duration>, planned: Duration) -> Duration {
        hint.unwrap_or(planned).min(self.max_delay)
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
        let mut retry = 0_u32;
        let attempt = || {
            let call = op();
            async move { self.try_once(call).await }
        };
        attempt
            .retry(self.policy.backoff())
            .when(Failure::may_retry)
            .adjust(|failure, planned| planned.map(|p| self.policy.wait(failure.hint(), p)))
            .notify(|failure, wait| {
                retry += 1;
                tracing::info!(retry, wait_ms = wait.as_millis() as u64, error = %failure.error(),
                    "platform call failed; retrying");
            })
            .await
            .map_err(Failure::into_error)
    }

    /// One try: refused at once while the breaker is open; otherwise the call within its time
    /// limit, its outcome told to the breaker.
    async fn try_once<T>(
        &self,
        call: impl Future<Output = Result<T, ConnectorError>>,
    ) -> Result<T, Failure> {
        self.breaker
            .admit(Instant::now())
            .map_err(Failure::Refused)?;
        let outcome = match tokio::time::timeout(self.policy.call_timeout, call).await {
            Ok(outcome) => outcome,
            Err(_) => Err(ConnectorError::Transient(format!(
                "no answer within {} s",
                self.policy.call_timeout.as_secs_f64()
            ))),
        };
        match outcome {
            Ok(value) => {
                self.breaker.success();
                Ok(value)
            }
            Err(error) if error.is_retryable() => {
                self.breaker.failure(Instant::now());
                Err(Failure::Failed(error))
            }
            // The platform answered, just not with data: it is up, and retrying cannot help.
            Err(error) => {
                self.breaker.success();
                Err(Failure::Failed(error))
            }
        }
    }
}

/// Why one try failed: the breaker refused it (never retried: the breaker says when calls
/// resume), or the call itself failed.
#[derive(Debug)]
enum Failure {
    Refused(ConnectorError),
    Failed(ConnectorError),
}

impl Failure {
    fn may_retry(&self) -> bool {
        matches!(self, Failure::Failed(error) if error.is_retryable())
    }

    /// How long the platform asked us to wait, if it did.
    fn hint(&self) -> Option<Duration> {
        match self {
            Failure::Failed(ConnectorError::Throttled { retry_after }) => *retry_after,
            _ => None,
        }
    }

    fn error(&self) -> &ConnectorError {
        match self {
            Failure::Refused(error) | Failure::Failed(error) => error,
        }
    }

    fn into_error(self) -> ConnectorError {
        match self {
            Failure::Refused(error) | Failure::Failed(error) => error,
        }
    }
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

    #[tokio::test]
    async fn a_throttle_hint_sets_the_wait() {
        let throttled = ConnectorError::Throttled {
            retry_after: Some(Duration::from_millis(300)),
        };
        let c = Resilient::new(
            Box::new(Scripted::new(vec![throttled])),
            RetryPolicy {
                max_delay: Duration::from_secs(5),
                ..fast()
            },
            Arc::default(),
        );
        let started = Instant::now();
        assert_eq!(c.discover().await, Ok(Discovery::default()));
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "waited {:?}, not the platform's 300 ms",
            started.elapsed()
        );
    }

    #[test]
    fn waits_honour_hints_and_grow_exponentially_within_bounds() {
        let policy = RetryPolicy {
            max_attempts: 9,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            ..RetryPolicy::default()
        };
        let ms = |d: Duration| (d.as_secs_f64() * 1000.0).round() as u64;
        let bounds: Vec<u64> = policy.bounds().map(ms).collect();
        assert_eq!(
            bounds,
            [100, 200, 400, 800, 1600, 3200, 5000, 5000],
            "doubling up to max_delay, one wait fewer than attempts"
        );
        for _ in 0..20 {
            let waits: Vec<Duration> = policy.backoff().collect();
            assert_eq!(waits.len(), bounds.len());
            for (wait, bound) in waits.iter().zip(&bounds) {
                assert!(ms(*wait) <= *bound, "{wait:?} over its bound {bound} ms");
            }
        }
        let hint = Some(Duration::from_secs(2));
        let planned = Duration::from_millis(40);
        assert_eq!(policy.wait(hint, planned), Duration::from_secs(2));
        assert_eq!(
            policy.wait(Some(Duration::from_secs(3600)), planned),
            Duration::from_secs(5),
            "a hint longer than max_delay is capped"
        );
        assert_eq!(policy.wait(None, planned), planned);
        let once = RetryPolicy {
            max_attempts: 1,
            ..policy
        };
        assert_eq!(once.backoff().count(), 0, "one attempt, no retry");
    }
}
