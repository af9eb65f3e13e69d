//! Local fake HTTP servers of the real ad platforms (feature `fakes`), speaking the request and
//! response shapes of `connectors.md`: each checks what the real API requires and answers in the
//! real error shapes, records every request, and serves deterministic numbers it can tell tests.

pub mod any;
pub mod google;
pub mod meta;
pub mod tiktok;

use adledger_domain::DailyMetrics;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{Datelike, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string (without `?`).
    pub query: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RecordedRequest {
    pub fn query_param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A field of a form-encoded body.
    pub fn form_param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// The field names of a form-encoded body, in order.
    pub fn form_names(&self) -> Vec<String> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .map(|(k, _)| k.into_owned())
            .collect()
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// A query or form parameter (the Graph API takes either).
    pub fn param(&self, name: &str) -> Option<String> {
        self.query_param(name).or_else(|| self.form_param(name))
    }
}

/// What a fake answers.
#[derive(Debug, Clone)]
pub struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.to_string(),
        }
    }

    pub(crate) fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// One platform's side of a fake: built from its options, it answers each request, reading the
/// knobs every fake shares (which a test turns through [`Fake`]).
pub trait FakeApi: Send + Sync + 'static {
    type Options;
    fn new(options: Self::Options) -> Self;
    fn knobs(&self) -> &Knobs;
    fn answer(&self, request: &RecordedRequest) -> Answer;
}

/// A running fake of one platform: its server, which records every request, and the platform's
/// side that answers them. Stops when dropped.
pub struct Fake<A> {
    server: Server,
    api: Arc<A>,
}

impl<A: FakeApi> Fake<A> {
    pub async fn start(options: A::Options) -> std::io::Result<Self> {
        let api = Arc::new(A::new(options));
        let handler = api.clone();
        let server = Server::start(Box::new(move |r| handler.answer(r))).await?;
        Ok(Self { server, api })
    }

    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.server.requests()
    }

    /// The next `n` API calls answer with the platform's throttle error.
    pub fn throttle_next(&self, n: u32) {
        self.api.knobs().throttle_next(n);
    }

    /// Every token stops working (the platform's token error), refresh included.
    pub fn revoke_tokens(&self) {
        self.api.knobs().revoke();
    }

    /// The person grants access again (after a revocation): the platform answers normally.
    pub fn regrant(&self) {
        self.api.knobs().regrant();
    }

    /// From now on `date` reports one more conversion (late attribution).
    pub fn restate(&self, date: NaiveDate) {
        self.api.knobs().restate(date);
    }
}

pub(crate) type Handler = dyn Fn(&RecordedRequest) -> Answer + Send + Sync;

struct Shared {
    log: Mutex<Vec<RecordedRequest>>,
    handler: Box<Handler>,
}

/// A running fake: stops when dropped.
pub(crate) struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub async fn start(handler: Box<Handler>) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            log: Mutex::new(Vec::new()),
            handler,
        });
        let app = axum::Router::new()
            .fallback(dispatch)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "fake platform server stopped");
            }
        });
        Ok(Self { addr, shared, task })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.log).clone()
    }
}

async fn dispatch(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or("").to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let answer = (shared.handler)(&request);
    lock(&shared.log).push(request);
    let mut response = (
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        answer.body,
    )
        .into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in answer.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(name), value);
        }
    }
    response
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Knobs every fake shares.
#[derive(Debug, Default)]
pub struct Knobs {
    throttle_next: Mutex<u32>,
    revoked: Mutex<bool>,
    restated: Mutex<HashSet<NaiveDate>>,
}

impl Knobs {
    fn throttle_next(&self, n: u32) {
        *lock(&self.throttle_next) = n;
    }

    /// Also what a platform's own revoke endpoint does.
    pub(crate) fn revoke(&self) {
        *lock(&self.revoked) = true;
    }

    fn regrant(&self) {
        *lock(&self.revoked) = false;
    }

    fn restate(&self, date: NaiveDate) {
        lock(&self.restated).insert(date);
    }

    /// Whether this API call is to be throttled (and counts it down).
    pub(crate) fn take_throttle(&self) -> bool {
        let mut n = lock(&self.throttle_next);
        if *n > 0 {
            *n -= 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn revoked(&self) -> bool {
        *lock(&self.revoked)
    }

    pub(crate) fn is_restated(&self, date: NaiveDate) -> bool {
        lock(&self.restated).contains(&date)
    }
}

/// One campaign-day's raw numbers, before a platform dresses them up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Numbers {
    pub impressions: u64,
    pub clicks: u64,
    pub spend_cents: u64,
    pub conversions: u64,
    pub value_cents: u64,
}

/// The generator of one campaign-day: ChaCha8 keyed with a SHA-256 of the campaign id and the
/// day, so its numbers depend on nothing else (stable as the sandbox's are: see `draws` there).
fn draws(campaign: &str, date: NaiveDate) -> ChaCha8Rng {
    let key = Sha256::new()
        .chain_update(campaign.as_bytes())
        .chain_update([0])
        .chain_update(date.num_days_from_ce().to_le_bytes())
        .finalize();
    ChaCha8Rng::from_seed(key.into())
}

/// The numbers of (campaign, date), or `None` on the days the campaign did not run (about one
/// in twenty, so "no row" is exercised). A restated day gains one conversion and its value.
pub(crate) fn numbers(campaign: &str, date: NaiveDate, restated: bool) -> Option<Numbers> {
    let mut rng = draws(campaign, date);
    if rng.random_ratio(1, 20) {
        return None;
    }
    let impressions: u64 = rng.random_range(200..20_200);
    let clicks = impressions * rng.random_range(1..=40) / 1_000;
    let spend_cents = clicks * rng.random_range(15..215) + rng.random_range(0..100);
    let mut conversions = clicks / rng.random_range(10..60);
    let order_cents: u64 = rng.random_range(1_000..10_000);
    let mut value_cents = conversions * order_cents;
    if restated {
        conversions += 1;
        value_cents += order_cents;
    }
    Some(Numbers {
        impressions,
        clicks,
        spend_cents,
        conversions,
        value_cents,
    })
}

pub(crate) fn cents(c: u64) -> Decimal {
    Decimal::new(i64::try_from(c).unwrap_or(i64::MAX), 2)
}

/// Domain metrics from exact parts; the fakes only build valid ones.
pub(crate) fn metrics(
    n: &Numbers,
    conversions: Decimal,
    conversion_value: Decimal,
) -> Option<DailyMetrics> {
    DailyMetrics::new(
        n.impressions,
        n.clicks,
        cents(n.spend_cents),
        conversions,
        conversion_value,
    )
    .ok()
}

/// A JSON number with exactly the decimal's digits (serde_json would go through `f64`).
pub(crate) fn json_number(d: Decimal) -> serde_json::Value {
    serde_json::from_str(&d.to_string()).unwrap_or(serde_json::Value::Null)
}

/// Pages of `page_size` over `total` items: the slice for 1-based `page`.
pub(crate) fn page_bounds(total: usize, page_size: usize, page: usize) -> (usize, usize) {
    let size = page_size.max(1);
    let start = page.saturating_sub(1).saturating_mul(size).min(total);
    (start, (start + size).min(total))
}

pub(crate) fn parse_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok()
}
