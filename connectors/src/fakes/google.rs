//! A fake Google Ads API and Google OAuth server: form-encoded token endpoint with code,
//! PKCE verifier and refresh grants, revoke, listAccessibleCustomers, and searchStream answering
//! the customer, customer_client, campaign and daily-metrics GAQL queries in batches, with
//! Google's error shapes.
//!
//! With `with_manager`, a manager (MCC) customer is listed too. It manages every directly
//! accessible customer, `managed_clients` more that are reachable only through it (read with
//! `login-customer-id: <manager>`, else `403 USER_PERMISSION_DENIED`), and one cancelled client.

use super::{
    json_number, lock, metrics, numbers, parse_date, Answer, Fake, FakeApi, Knobs, RecordedRequest,
};
use crate::auth::TokenSet;
use crate::google::GoogleConfig;
use crate::Secret;
use adledger_domain::DailyMetrics;
use chrono::{Datelike, Duration, NaiveDate};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

pub const CLIENT_ID: &str = "fake-google-client.apps.googleusercontent.com";
pub const CLIENT_SECRET: &str = "fake-google-client-secret";
pub const REDIRECT_URL: &str = "http://localhost/oauth/google/callback";
pub const DEVELOPER_TOKEN: &str = "fake-developer-token";
/// The one authorization code the fake accepts.
pub const AUTH_CODE: &str = "4/fake-google-code";
const VERSION: &str = "v23";
const CURRENCIES: [(&str, &str); 3] = [
    ("USD", "America/New_York"),
    ("EUR", "Europe/Berlin"),
    ("BRL", "America/Sao_Paulo"),
];

#[derive(Debug, Clone)]
pub struct FakeGoogleOptions {
    pub customers: usize,
    pub campaigns_per_customer: usize,
    /// Rows per searchStream batch (small, so several batches are exercised).
    pub batch_size: usize,
    /// Also list a manager customer, which has no campaigns of its own.
    pub with_manager: bool,
    /// Client customers of the manager that are not directly accessible (only with
    /// `with_manager`): reachable only with `login-customer-id: <manager>`.
    pub managed_clients: usize,
    /// The `retryDelay` of throttle answers, e.g. `"2s"`.
    pub retry_delay: String,
}

impl Default for FakeGoogleOptions {
    fn default() -> Self {
        Self {
            customers: 2,
            campaigns_per_customer: 3,
            batch_size: 7,
            with_manager: true,
            managed_clients: 0,
            retry_delay: "1s".into(),
        }
    }
}

/// Google's side of [`FakeGoogle`]. Throttled calls answer a quota error; revoked tokens answer
/// 401, and refreshing them `invalid_grant`.
pub struct GoogleApi {
    options: FakeGoogleOptions,
    knobs: Knobs,
    issued: AtomicU64,
    access_tokens: Mutex<HashSet<String>>,
    expired_tokens: Mutex<HashSet<String>>,
    refresh_tokens: Mutex<HashSet<String>>,
}

/// A fake of Google Ads and Google OAuth.
pub type FakeGoogle = Fake<GoogleApi>;

impl FakeGoogle {
    /// A configuration pointing every URL at this fake.
    pub fn config(&self) -> GoogleConfig {
        let base = self.base_url();
        GoogleConfig {
            client_id: CLIENT_ID.into(),
            client_secret: Secret::new(CLIENT_SECRET),
            redirect_url: REDIRECT_URL.into(),
            developer_token: Secret::new(DEVELOPER_TOKEN),
            login_customer_id: None,
            auth_url: format!("{base}/o/oauth2/v2/auth"),
            oauth_url: base.clone(),
            api_url: base,
            api_version: VERSION.into(),
            conversion_window_days: 30,
            chunk_days: 90,
        }
    }

    /// A fresh, valid token set, as if the OAuth flow had run.
    pub fn issue_tokens(&self) -> TokenSet {
        let (access, refresh) = self.api.issue(true);
        TokenSet {
            access_token: Secret::new(access),
            refresh_token: refresh.map(Secret::new),
            expires_at: Some(chrono::Utc::now() + Duration::seconds(3599)),
            scopes: vec![GoogleConfig::SCOPE.into()],
            advertiser_ids: Vec::new(),
        }
    }

    /// Every access token issued so far expires (401); refresh still works.
    pub fn expire_access_token(&self) {
        let mut valid = lock(&self.api.access_tokens);
        lock(&self.api.expired_tokens).extend(valid.drain());
    }

    /// Ad account (customer) ids with campaigns, in the order discovery finds them: the
    /// directly accessible ones, then the manager's clients reachable only through it.
    pub fn customer_ids(&self) -> Vec<String> {
        (1..=self.api.all_customers()).map(customer_id).collect()
    }

    /// The customers reachable only through the manager (`managed_clients` of them).
    pub fn managed_customer_ids(&self) -> Vec<String> {
        (self.api.options.customers + 1..=self.api.all_customers())
            .map(customer_id)
            .collect()
    }

    /// The manager (MCC) customer listed with `with_manager`.
    pub fn manager_id(&self) -> &'static str {
        MANAGER_ID
    }

    pub fn campaign_ids(&self, customer: &str) -> Vec<String> {
        let Some(a) = self.api.customer_index(customer) else {
            return Vec::new();
        };
        (1..=self.api.options.campaigns_per_customer)
            .map(|c| campaign_id(a, c))
            .collect()
    }

    /// What the fake reports for (campaign, date) right now; `None` when it lists no row.
    pub fn expected_metrics(&self, campaign: &str, date: NaiveDate) -> Option<DailyMetrics> {
        self.api.metrics(campaign, date).map(|(m, _)| m)
    }
}

fn customer_id(a: usize) -> String {
    (1_000_000_000 + a).to_string()
}

const MANAGER_ID: &str = "9990000001";

fn campaign_id(a: usize, c: usize) -> String {
    format!("{a}{c:06}")
}

fn throttled(retry_delay: &str) -> Value {
    json!({"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).",
        "status": "RESOURCE_EXHAUSTED",
        "details": [{"@type": "type.googleapis.com/google.ads.googleads.v23.errors.GoogleAdsFailure",
            "errors": [{"errorCode": {"quotaError": "RESOURCE_TEMPORARILY_EXHAUSTED"},
                "message": "Too many requests. Retry in 1 seconds.",
                "details": {"quotaErrorDetails": {"rateScope": "DEVELOPER",
                    "rateName": "Number of operations for basic access", "retryDelay": retry_delay}}}],
            "requestId": "fake-throttle"}]}})
}

/// How the API refuses a call: Google's error shape, which searchStream wraps in an array.
struct Refusal {
    stream: bool,
}

impl Refusal {
    fn answer(&self, http_status: u16, error: Value) -> Answer {
        Answer::json(
            http_status,
            if self.stream { json!([error]) } else { error },
        )
    }

    /// A failure with this HTTP status (and the gRPC status Google names with it), whose one
    /// error is `kind: error`.
    fn failure(&self, code: u16, kind: &str, error: &str, message: &str) -> Answer {
        let status = match code {
            401 => "UNAUTHENTICATED",
            403 => "PERMISSION_DENIED",
            404 => "NOT_FOUND",
            _ => "INVALID_ARGUMENT",
        };
        let body = json!({"error": {"code": code, "message": message, "status": status,
            "details": [{"@type": "type.googleapis.com/google.ads.googleads.v23.errors.GoogleAdsFailure",
                "errors": [{"errorCode": {kind: error}, "message": message}], "requestId": "fake"}]}});
        self.answer(code, body)
    }

    /// Google's answer to a query this fake (like the API) does not accept.
    fn unexpected_query(&self) -> Answer {
        self.failure(
            400,
            "queryError",
            "PROHIBITED_FIELD_COMBINATION",
            "Unexpected query.",
        )
    }

    fn not_found(&self) -> Answer {
        self.failure(404, "requestError", "UNKNOWN", "Not found.")
    }
}

fn oauth_error(status: u16, error: &str, description: &str) -> Answer {
    Answer::json(
        status,
        json!({"error": error, "error_description": description}),
    )
}

impl FakeApi for GoogleApi {
    type Options = FakeGoogleOptions;

    fn new(options: FakeGoogleOptions) -> Self {
        Self {
            options,
            knobs: Knobs::default(),
            issued: AtomicU64::new(0),
            access_tokens: Mutex::default(),
            expired_tokens: Mutex::default(),
            refresh_tokens: Mutex::default(),
        }
    }

    fn knobs(&self) -> &Knobs {
        &self.knobs
    }

    fn answer(&self, r: &RecordedRequest) -> Answer {
        match (r.method.as_str(), r.path.as_str()) {
            ("POST", "/token") => self.token(r),
            ("POST", "/revoke") => {
                self.knobs.revoke();
                Answer::json(200, json!({}))
            }
            _ => self.api(r),
        }
    }
}

impl GoogleApi {
    fn issue(&self, with_refresh: bool) -> (String, Option<String>) {
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let access = format!("ya29.fake-access-{n}");
        lock(&self.access_tokens).insert(access.clone());
        let refresh = with_refresh.then(|| {
            let r = format!("1//fake-refresh-{n}");
            lock(&self.refresh_tokens).insert(r.clone());
            r
        });
        (access, refresh)
    }

    /// Directly accessible customers and, with a manager, its clients reachable only through it.
    fn all_customers(&self) -> usize {
        if self.options.with_manager {
            self.options.customers + self.options.managed_clients
        } else {
            self.options.customers
        }
    }

    fn customer_index(&self, customer: &str) -> Option<usize> {
        (1..=self.all_customers()).find(|a| customer_id(*a) == customer)
    }

    /// Whether a request for `customer` sent with this `login-customer-id` is allowed: the
    /// manager's clients need the manager as login customer; nothing accepts another one.
    fn permitted(&self, customer: &str, login: Option<&str>) -> bool {
        let via_manager = self.options.with_manager && login == Some(MANAGER_ID);
        let managed_only = self
            .customer_index(customer)
            .is_some_and(|a| a > self.options.customers);
        match login {
            None => !managed_only,
            Some(_) => via_manager,
        }
    }

    /// The `customer_client` rows of the manager: itself at level 0, then its clients.
    fn clients(&self) -> Vec<Value> {
        let row = |id: &str, manager: bool, level: u32, tz: &str, status: &str| {
            json!({"customerClient": {
                "resourceName": format!("customers/{MANAGER_ID}/customerClients/{id}"),
                "id": id, "manager": manager, "level": level.to_string(), "timeZone": tz,
                "status": status}})
        };
        let mut rows = vec![row(MANAGER_ID, true, 0, "America/New_York", "ENABLED")];
        for a in 1..=self.all_customers() {
            let (_, tz) = CURRENCIES[(a - 1) % CURRENCIES.len()];
            rows.push(row(&customer_id(a), false, 1, tz, "ENABLED"));
        }
        let cancelled = customer_id(self.all_customers() + 1);
        rows.push(row(&cancelled, false, 1, "UTC", "CANCELED"));
        rows
    }

    /// Domain metrics and the JSON `metrics` object Google would send (zero fields left out).
    fn metrics(&self, campaign: &str, date: NaiveDate) -> Option<(DailyMetrics, Value)> {
        let n = numbers(campaign, date, self.knobs.is_restated(date))?;
        // Google reports fractional conversions (data-driven attribution): some days get a half.
        let half = if n.conversions > 0 && matches!(date.day() % 3, 0) {
            5
        } else {
            0
        };
        let conversions = Decimal::new(i64::try_from(n.conversions).ok()? * 10 + half, 1);
        let value = super::cents(n.value_cents);
        let m = metrics(&n, conversions, value)?;
        let mut obj = serde_json::Map::new();
        let mut put = |k: &str, v: Value, nonzero: bool| {
            if nonzero {
                obj.insert(k.into(), v);
            }
        };
        put(
            "impressions",
            json!(n.impressions.to_string()),
            n.impressions > 0,
        );
        put("clicks", json!(n.clicks.to_string()), n.clicks > 0);
        put(
            "costMicros",
            json!((n.spend_cents * 10_000).to_string()),
            n.spend_cents > 0,
        );
        put(
            "conversions",
            json_number(conversions),
            !conversions.is_zero(),
        );
        put("conversionsValue", json_number(value), !value.is_zero());
        Some((m, Value::Object(obj)))
    }

    fn token(&self, r: &RecordedRequest) -> Answer {
        let form_encoded = r
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
        if !form_encoded {
            return oauth_error(400, "invalid_request", "Invalid Content-Type");
        }
        if r.form_param("client_id").as_deref() != Some(CLIENT_ID)
            || r.form_param("client_secret").as_deref() != Some(CLIENT_SECRET)
        {
            return oauth_error(401, "invalid_client", "The OAuth client was not found.");
        }
        match r.form_param("grant_type").as_deref() {
            Some("authorization_code") => {
                if r.form_param("redirect_uri").as_deref() != Some(REDIRECT_URL) {
                    return oauth_error(400, "redirect_uri_mismatch", "Bad Request");
                }
                if let Some(v) = r.form_param("code_verifier") {
                    if !(43..=128).contains(&v.len()) {
                        return oauth_error(400, "invalid_grant", "Invalid code verifier.");
                    }
                }
                if r.form_param("code").as_deref() != Some(AUTH_CODE) {
                    return oauth_error(400, "invalid_grant", "Malformed auth code.");
                }
                let (access, refresh) = self.issue(true);
                Answer::json(
                    200,
                    json!({"access_token": access, "expires_in": 3599, "refresh_token": refresh,
                        "scope": GoogleConfig::SCOPE, "token_type": "Bearer"}),
                )
            }
            Some("refresh_token") => {
                let known = r
                    .form_param("refresh_token")
                    .is_some_and(|t| lock(&self.refresh_tokens).contains(&t));
                if !known || self.knobs.revoked() {
                    return oauth_error(400, "invalid_grant", "Token has been expired or revoked.");
                }
                let (access, _) = self.issue(false);
                Answer::json(
                    200,
                    json!({"access_token": access, "expires_in": 3599,
                        "scope": GoogleConfig::SCOPE, "token_type": "Bearer"}),
                )
            }
            _ => oauth_error(400, "unsupported_grant_type", "Invalid grant_type"),
        }
    }

    fn api(&self, r: &RecordedRequest) -> Answer {
        let refuse = Refusal {
            stream: r.path.ends_with("/googleAds:searchStream"),
        };
        let token = r
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or("");
        if self.knobs.revoked() || !lock(&self.access_tokens).contains(token) {
            let reason = if lock(&self.expired_tokens).contains(token) && !self.knobs.revoked() {
                "OAUTH_TOKEN_EXPIRED"
            } else {
                "OAUTH_TOKEN_INVALID"
            };
            return refuse.failure(
                401,
                "authenticationError",
                reason,
                "Request is missing required authentication credential.",
            );
        }
        if r.header("developer-token") != Some(DEVELOPER_TOKEN) {
            return refuse.failure(
                400,
                "authenticationError",
                "DEVELOPER_TOKEN_PARAMETER_MISSING",
                "The developer token is missing or invalid.",
            );
        }
        if self.knobs.take_throttle() {
            return refuse.answer(429, throttled(&self.options.retry_delay));
        }
        let prefix = format!("/{VERSION}/customers");
        let Some(rest) = r.path.strip_prefix(&prefix) else {
            return refuse.not_found();
        };
        if rest == ":listAccessibleCustomers" && r.method == "GET" {
            let mut names: Vec<String> = (1..=self.options.customers)
                .map(|a| format!("customers/{}", customer_id(a)))
                .collect();
            if self.options.with_manager {
                names.insert(0, format!("customers/{MANAGER_ID}"));
            }
            return Answer::json(200, json!({ "resourceNames": names }));
        }
        let Some(customer) = rest
            .strip_prefix('/')
            .and_then(|p| p.strip_suffix("/googleAds:searchStream"))
        else {
            return refuse.not_found();
        };
        if r.method != "POST"
            || !r
                .header("content-type")
                .is_some_and(|c| c.starts_with("application/json"))
        {
            return refuse.failure(
                400,
                "requestError",
                "INVALID_INPUT",
                "searchStream takes a JSON body.",
            );
        }
        let Some(query) = r
            .json()
            .and_then(|b| b.get("query").and_then(Value::as_str).map(str::to_owned))
        else {
            return refuse.failure(400, "queryError", "BAD_QUERY", "No query.");
        };
        self.search(customer, &query, r.header("login-customer-id"), &refuse)
    }

    fn search(&self, customer: &str, query: &str, login: Option<&str>, refuse: &Refusal) -> Answer {
        let denied = || {
            refuse.failure(
                403,
                "authorizationError",
                "USER_PERMISSION_DENIED",
                "User doesn't have permission to access customer. Note: If you're accessing \
                 a client customer, the manager's customer id must be set in the \
                 'login-customer-id' header.",
            )
        };
        if !self.permitted(customer, login) {
            return denied();
        }
        let rows: Vec<Value> = if query.ends_with("FROM customer_client") {
            if customer != MANAGER_ID || !self.options.with_manager {
                return denied();
            }
            let wanted = [
                "customer_client.id",
                "customer_client.manager",
                "customer_client.level",
                "customer_client.status",
            ];
            if !wanted.iter().all(|f| query.contains(f)) {
                return refuse.unexpected_query();
            }
            self.clients()
        } else if query.ends_with("FROM customer") {
            if customer == MANAGER_ID && self.options.with_manager {
                vec![
                    json!({"customer": {"resourceName": format!("customers/{MANAGER_ID}"),
                    "id": MANAGER_ID, "descriptiveName": "Agency MCC", "currencyCode": "USD",
                    "timeZone": "America/New_York", "manager": true}}),
                ]
            } else {
                let Some(a) = self.customer_index(customer) else {
                    return denied();
                };
                let (currency, tz) = CURRENCIES[(a - 1) % CURRENCIES.len()];
                vec![
                    json!({"customer": {"resourceName": format!("customers/{customer}"),
                    "id": customer, "descriptiveName": format!("Client {a}"), "currencyCode": currency,
                    "timeZone": tz, "manager": false}}),
                ]
            }
        } else if let Some(range) = query.split("segments.date BETWEEN ").nth(1) {
            let Some(a) = self.customer_index(customer) else {
                return denied();
            };
            let mut dates = range
                .split(" AND ")
                .map(|d| parse_date(d.trim().trim_matches('\'')));
            let (Some(Some(from)), Some(Some(to))) = (dates.next(), dates.next()) else {
                return refuse.failure(400, "queryError", "INVALID_DATE", "Bad date range.");
            };
            if !query.contains("metrics.cost_micros") || !query.contains("FROM campaign") {
                return refuse.unexpected_query();
            }
            let (currency, _) = CURRENCIES[(a - 1) % CURRENCIES.len()];
            let mut rows = Vec::new();
            for date in from.iter_days().take_while(|d| *d <= to) {
                for c in 1..=self.options.campaigns_per_customer {
                    let id = campaign_id(a, c);
                    let Some((_, m)) = self.metrics(&id, date) else {
                        continue;
                    };
                    rows.push(json!({
                        "customer": {"resourceName": format!("customers/{customer}"), "id": customer, "currencyCode": currency},
                        "campaign": {"resourceName": format!("customers/{customer}/campaigns/{id}"), "id": id, "name": format!("Campaign {c}")},
                        "metrics": m,
                        "segments": {"date": date.to_string()}}));
                }
            }
            rows
        } else if query.ends_with("FROM campaign") {
            let Some(a) = self.customer_index(customer) else {
                return denied();
            };
            (1..=self.options.campaigns_per_customer)
                .map(|c| {
                    let id = campaign_id(a, c);
                    json!({"campaign": {"resourceName": format!("customers/{customer}/campaigns/{id}"),
                        "id": id, "name": format!("Campaign {c}"),
                        "status": if c % 3 == 0 { "PAUSED" } else { "ENABLED" }}})
                })
                .collect()
        } else {
            return refuse.failure(
                400,
                "queryError",
                "UNRECOGNIZED_FIELD",
                "Unsupported query.",
            );
        };
        let batches: Vec<Value> = rows
            .chunks(self.options.batch_size.max(1))
            .map(
                |chunk| json!({"results": chunk, "fieldMask": "fake", "requestId": "fake-request"}),
            )
            .collect();
        Answer::json(200, Value::Array(batches))
    }
}
