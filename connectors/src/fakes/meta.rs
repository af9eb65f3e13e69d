//! A fake Graph API: the two token GETs (code → short-lived, fb_exchange_token → long-lived),
//! revoke, cursor-paged ad accounts, campaigns and daily insights, async report jobs, and Meta's
//! error shapes (throttles and token errors in 400 bodies, "reduce the amount of data").

use super::{lock, metrics, numbers, Answer, Fake, FakeApi, Knobs, RecordedRequest};
use crate::auth::TokenSet;
use crate::meta::MetaConfig;
use crate::Secret;
use adledger_domain::DailyMetrics;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

pub const CLIENT_ID: &str = "1234567890123456";
pub const CLIENT_SECRET: &str = "fake-meta-app-secret";
pub const REDIRECT_URL: &str = "http://localhost/oauth/meta/callback";
/// The one authorization code the fake accepts.
pub const AUTH_CODE: &str = "fake-meta-code";
const VERSION: &str = "v23.0";

#[derive(Debug, Clone)]
pub struct FakeMetaOptions {
    pub accounts: usize,
    pub campaigns_per_account: usize,
    /// The most items per page of accounts and campaigns, whatever `limit` says.
    pub page_size: usize,
    /// The most insight rows per page.
    pub insights_page_size: usize,
    /// Synchronous insights over more days than this answer "reduce the amount of data".
    pub max_sync_days: Option<i64>,
    /// How many polls an async job reports "Job Running" before it completes.
    pub polls_before_done: u32,
    /// `estimated_time_to_regain_access` (minutes) in throttle answers.
    pub regain_access_minutes: u64,
}

impl Default for FakeMetaOptions {
    fn default() -> Self {
        Self {
            accounts: 3,
            campaigns_per_account: 5,
            page_size: 2,
            insights_page_size: 25,
            max_sync_days: None,
            polls_before_done: 2,
            regain_access_minutes: 1,
        }
    }
}

struct Job {
    account: usize,
    from: NaiveDate,
    to: NaiveDate,
    polls: u32,
}

/// Meta's side of [`FakeMeta`]. Throttled calls answer error 80004 with a usage header; revoked
/// tokens answer error 190.
pub struct MetaApi {
    options: FakeMetaOptions,
    knobs: Knobs,
    issued: AtomicU64,
    short_tokens: Mutex<HashSet<String>>,
    long_tokens: Mutex<HashSet<String>>,
    jobs: Mutex<HashMap<String, Job>>,
}

fn account_id(a: usize) -> String {
    format!("10000000{a}")
}

fn campaign_id(a: usize, c: usize) -> String {
    format!("2385{a:03}{c:06}")
}

/// A fake of the Graph API.
pub type FakeMeta = Fake<MetaApi>;

impl FakeMeta {
    /// A configuration pointing at this fake, polling async jobs every 10 ms.
    pub fn config(&self) -> MetaConfig {
        MetaConfig {
            client_id: CLIENT_ID.into(),
            client_secret: Secret::new(CLIENT_SECRET),
            redirect_url: REDIRECT_URL.into(),
            api_version: VERSION.into(),
            auth_url: self.base_url(),
            graph_url: self.base_url(),
            scopes: vec!["ads_read".into(), "business_management".into()],
            reread_window_days: 28,
            sync_max_days: 90,
            page_limit: 100,
            poll_interval: Duration::from_millis(10),
            max_polls: 100,
        }
    }

    /// A valid long-lived token, as if the OAuth flow had run.
    pub fn issue_tokens(&self) -> TokenSet {
        TokenSet::bearer(self.api.issue(&self.api.long_tokens, "EAAlong"))
    }

    pub fn account_ids(&self) -> Vec<String> {
        (1..=self.api.options.accounts).map(account_id).collect()
    }

    pub fn campaign_ids(&self, account: &str) -> Vec<String> {
        let Some(a) = self.api.account_index(account) else {
            return Vec::new();
        };
        (1..=self.api.options.campaigns_per_account)
            .map(|c| campaign_id(a, c))
            .collect()
    }

    /// What the fake reports for (campaign, date); `None` when it lists no row.
    pub fn expected_metrics(&self, campaign: &str, date: NaiveDate) -> Option<DailyMetrics> {
        self.api.row(campaign, date).map(|(m, _)| m)
    }
}

fn graph_error(code: i64, subcode: Option<i64>, kind: &str, message: &str) -> Answer {
    let mut error =
        json!({"message": message, "type": kind, "code": code, "fbtrace_id": "AfakeTrace"});
    if let Some(s) = subcode {
        error["error_subcode"] = json!(s);
    }
    Answer::json(400, json!({ "error": error }))
}

/// Meta's answer about an object that does not exist (or is not this token's to see).
fn unsupported(method: &str) -> Answer {
    graph_error(
        100,
        Some(33),
        "GraphMethodException",
        &format!("Unsupported {method} request."),
    )
}

/// The page size asked for (`limit`, 25 by default), at most `most`.
fn limit(r: &RecordedRequest, most: usize) -> usize {
    let limit: usize = r
        .query_param("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(25);
    limit.min(most).max(1)
}

/// Where the `after` cursor (`<mark><position>`) points: 0 without one.
fn after(r: &RecordedRequest, mark: char) -> usize {
    r.query_param("after")
        .and_then(|c| c.strip_prefix(mark).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// Meta's envelope of one page: cursors at `start` and `end`, and while `more` follow, a `next`
/// URL as Meta writes it (its host, a token in the query: clients must not follow it).
fn paged(
    r: &RecordedRequest,
    data: Value,
    mark: char,
    start: usize,
    end: usize,
    more: bool,
) -> Answer {
    let mut paging =
        json!({"cursors": {"before": format!("{mark}{start}"), "after": format!("{mark}{end}")}});
    if more {
        paging["next"] = json!(format!(
            "https://graph.facebook.com{}?access_token=EAAsecret&after={mark}{end}",
            r.path
        ));
    }
    Answer::json(200, json!({"data": data, "paging": paging}))
}

fn money(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

impl FakeApi for MetaApi {
    type Options = FakeMetaOptions;

    fn new(options: FakeMetaOptions) -> Self {
        Self {
            options,
            knobs: Knobs::default(),
            issued: AtomicU64::new(0),
            short_tokens: Mutex::default(),
            long_tokens: Mutex::default(),
            jobs: Mutex::default(),
        }
    }

    fn knobs(&self) -> &Knobs {
        &self.knobs
    }

    fn answer(&self, r: &RecordedRequest) -> Answer {
        let Some(path) = r.path.strip_prefix(&format!("/{VERSION}/")) else {
            return graph_error(2500, None, "OAuthException", "Unknown path components");
        };
        if path == "oauth/access_token" {
            return self.token(r);
        }
        let token = r
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::to_owned)
            .or_else(|| r.query_param("access_token"))
            .unwrap_or_default();
        let known =
            lock(&self.long_tokens).contains(&token) || lock(&self.short_tokens).contains(&token);
        if self.knobs.revoked() || !known {
            return graph_error(190, Some(458), "OAuthException",
                "Error validating access token: The user has not authorized application 1234567890123456.");
        }
        if r.method == "DELETE" && path == "me/permissions" {
            self.knobs.revoke();
            return Answer::json(200, json!({"success": true}));
        }
        if self.knobs.take_throttle() {
            let usage = json!({ account_id(1): [{"type": "ads_insights", "call_count": 100,
                "total_cputime": 40, "total_time": 60,
                "estimated_time_to_regain_access": self.options.regain_access_minutes}]});
            return graph_error(80004, Some(2_446_079), "OAuthException",
                "(#80004) There have been too many calls to this ad-account. Wait a bit and try again.")
                .with_header("x-business-use-case-usage", usage.to_string());
        }
        let parts: Vec<&str> = path.split('/').collect();
        let answer = match (r.method.as_str(), parts.as_slice()) {
            ("GET", ["me", "adaccounts"]) => self.accounts(r),
            ("GET", [act, "campaigns"]) => self.campaigns(r, act),
            ("GET", [act, "insights"]) if act.starts_with("act_") => self.sync_insights(r, act),
            ("POST", [act, "insights"]) => self.start_job(r, act),
            ("GET", [run]) => self.job_status(run),
            ("GET", [run, "insights"]) => self.job_rows(r, run),
            _ => Err(graph_error(
                100,
                None,
                "GraphMethodException",
                "Unsupported request.",
            )),
        };
        // A refusal is an answer too.
        answer.unwrap_or_else(|refusal| refusal)
    }
}

impl MetaApi {
    fn issue(&self, set: &Mutex<HashSet<String>>, prefix: &str) -> String {
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let token = format!("{prefix}{n:04}ZD");
        lock(set).insert(token.clone());
        token
    }

    fn account_index(&self, account: &str) -> Option<usize> {
        (1..=self.options.accounts).find(|a| account_id(*a) == account)
    }

    fn row(&self, campaign: &str, date: NaiveDate) -> Option<(DailyMetrics, Value)> {
        let n = numbers(campaign, date, self.knobs.is_restated(date))?;
        let m = metrics(
            &n,
            Decimal::from(n.conversions),
            super::cents(n.value_cents),
        )?;
        let mut row = json!({"account_currency": "USD", "campaign_id": campaign,
            "campaign_name": format!("Campaign {campaign}"), "date_start": date.to_string(),
            "date_stop": date.to_string(), "impressions": n.impressions.to_string(),
            "clicks": n.clicks.to_string(), "spend": money(n.spend_cents)});
        if n.clicks > 0 {
            let mut actions =
                vec![json!({"action_type": "link_click", "value": n.clicks.to_string()})];
            let mut values = Vec::new();
            if n.conversions > 0 {
                // The same purchases under three types, as Meta lists them.
                for t in [
                    "offsite_conversion.fb_pixel_purchase",
                    "purchase",
                    "omni_purchase",
                ] {
                    actions.push(json!({"action_type": t, "value": n.conversions.to_string(),
                        "7d_click": n.conversions.to_string(), "1d_view": "0"}));
                    values.push(json!({"action_type": t, "value": money(n.value_cents)}));
                }
            }
            row["actions"] = json!(actions);
            if !values.is_empty() {
                row["action_values"] = json!(values);
            }
        }
        Some((m, row))
    }

    fn token(&self, r: &RecordedRequest) -> Answer {
        if r.method != "GET" {
            return graph_error(100, None, "OAuthException", "Unsupported method.");
        }
        if r.query_param("client_id").as_deref() != Some(CLIENT_ID)
            || r.query_param("client_secret").as_deref() != Some(CLIENT_SECRET)
        {
            return graph_error(1, None, "OAuthException", "Error validating client secret.");
        }
        if r.query_param("grant_type").as_deref() == Some("fb_exchange_token") {
            let short = r.query_param("fb_exchange_token").unwrap_or_default();
            if self.knobs.revoked() || !lock(&self.short_tokens).contains(&short) {
                return graph_error(190, None, "OAuthException", "Invalid OAuth access token.");
            }
            let long = self.issue(&self.long_tokens, "EAAlong");
            return Answer::json(
                200,
                json!({"access_token": long, "token_type": "bearer", "expires_in": 5_183_944}),
            );
        }
        if r.query_param("redirect_uri").as_deref() != Some(REDIRECT_URL) {
            return graph_error(100, Some(36008), "OAuthException",
                "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request");
        }
        if r.query_param("code").as_deref() != Some(AUTH_CODE) {
            return graph_error(
                100,
                Some(36009),
                "OAuthException",
                "Invalid verification code format.",
            );
        }
        let short = self.issue(&self.short_tokens, "EAAshort");
        Answer::json(
            200,
            json!({"access_token": short, "token_type": "bearer", "expires_in": 3600}),
        )
    }

    /// One page of `items` after the cursor `after` (`c<offset>`), in Meta's envelope.
    fn page(&self, r: &RecordedRequest, items: &[Value], most: usize) -> Result<Answer, Answer> {
        let size = limit(r, most);
        let start = after(r, 'c').min(items.len());
        let end = (start + size).min(items.len());
        Ok(paged(
            r,
            json!(items[start..end]),
            'c',
            start,
            end,
            end < items.len(),
        ))
    }

    fn accounts(&self, r: &RecordedRequest) -> Result<Answer, Answer> {
        if r.query_param("fields").as_deref() != Some("id,account_id,name,currency,timezone_name") {
            return Err(graph_error(
                100,
                None,
                "OAuthException",
                "(#100) Missing fields.",
            ));
        }
        let items: Vec<Value> = (1..=self.options.accounts)
            .map(|a| {
                let (currency, tz) =
                    [("USD", "America/Los_Angeles"), ("EUR", "Europe/Dublin")][(a - 1) % 2];
                json!({"id": format!("act_{}", account_id(a)), "account_id": account_id(a),
                    "name": format!("Account {a}"), "currency": currency, "timezone_name": tz})
            })
            .collect();
        self.page(r, &items, self.options.page_size)
    }

    /// The account `act_<id>` names, or Meta's refusal of a `method` request about it.
    fn account_of(&self, act: &str, method: &str) -> Result<usize, Answer> {
        act.strip_prefix("act_")
            .and_then(|id| self.account_index(id))
            .ok_or_else(|| unsupported(method))
    }

    fn campaigns(&self, r: &RecordedRequest, act: &str) -> Result<Answer, Answer> {
        let a = self.account_of(act, "get")?;
        let items: Vec<Value> = (1..=self.options.campaigns_per_account)
            .map(|c| json!({"id": campaign_id(a, c), "name": format!("Campaign {c}"),
                "status": if c % 3 == 0 { "PAUSED" } else { "ACTIVE" }, "objective": "OUTCOME_SALES",
                "updated_time": "2024-01-01T00:00:00+0000"}))
            .collect();
        self.page(r, &items, self.options.page_size)
    }

    /// The checked range of an insights request (query or form).
    fn range(&self, r: &RecordedRequest) -> Result<(NaiveDate, NaiveDate), Answer> {
        let bad = |m: &str| Err(graph_error(100, None, "OAuthException", m));
        if r.param("level").as_deref() != Some("campaign")
            || r.param("time_increment").as_deref() != Some("1")
        {
            return bad("(#100) level=campaign and time_increment=1 expected by the fake.");
        }
        let fields = r.param("fields").unwrap_or_default();
        if ![
            "campaign_id",
            "date_start",
            "impressions",
            "clicks",
            "spend",
            "actions",
            "action_values",
        ]
        .iter()
        .all(|f| fields.split(',').any(|x| x == *f))
        {
            return bad("(#100) fields is missing a metric.");
        }
        let range: Option<(NaiveDate, NaiveDate)> = r
            .param("time_range")
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| {
                Some((
                    v["since"].as_str()?.parse().ok()?,
                    v["until"].as_str()?.parse().ok()?,
                ))
            });
        match range {
            Some((from, to)) if from <= to => Ok((from, to)),
            _ => bad(
                "(#100) time_range must be {\"since\":\"YYYY-MM-DD\",\"until\":\"YYYY-MM-DD\"}.",
            ),
        }
    }

    /// One page of the insight rows of account `a` over `from..=to`, computed lazily: the
    /// cursor is a position in the (day, campaign) grid, so a page costs only its own rows even
    /// for hundreds of campaigns over hundreds of days.
    fn insight_page(
        &self,
        r: &RecordedRequest,
        a: usize,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Answer, Answer> {
        let campaigns = self.options.campaigns_per_account.max(1);
        let days = usize::try_from((to - from).num_days() + 1).unwrap_or(0);
        let grid = days * campaigns;
        let size = limit(r, self.options.insights_page_size);
        let start = after(r, 'g');
        let mut rows = Vec::with_capacity(size);
        let mut pos = start;
        while pos < grid && rows.len() < size {
            let date = from + chrono::Duration::days(i64::try_from(pos / campaigns).unwrap_or(0));
            if let Some((_, row)) = self.row(&campaign_id(a, pos % campaigns + 1), date) {
                rows.push(row);
            }
            pos += 1;
        }
        // Skip trailing empty cells, so "no next" really means the end.
        while pos < grid {
            let date = from + chrono::Duration::days(i64::try_from(pos / campaigns).unwrap_or(0));
            if numbers(&campaign_id(a, pos % campaigns + 1), date, false).is_some() {
                break;
            }
            pos += 1;
        }
        Ok(paged(r, json!(rows), 'g', start, pos, pos < grid))
    }

    fn sync_insights(&self, r: &RecordedRequest, act: &str) -> Result<Answer, Answer> {
        let a = self.account_of(act, "get")?;
        let (from, to) = self.range(r)?;
        if self
            .options
            .max_sync_days
            .is_some_and(|most| (to - from).num_days() + 1 > most)
        {
            return Err(graph_error(
                1,
                Some(1_504_018),
                "OAuthException",
                "Please reduce the amount of data you're asking for, then retry your request",
            ));
        }
        self.insight_page(r, a, from, to)
    }

    fn start_job(&self, r: &RecordedRequest, act: &str) -> Result<Answer, Answer> {
        let account = self.account_of(act, "post")?;
        let (from, to) = self.range(r)?;
        let id = format!("60{:08}", self.issued.fetch_add(1, Ordering::SeqCst) + 1);
        lock(&self.jobs).insert(
            id.clone(),
            Job {
                account,
                from,
                to,
                polls: 0,
            },
        );
        Ok(Answer::json(200, json!({ "report_run_id": id })))
    }

    fn job_status(&self, run: &str) -> Result<Answer, Answer> {
        let mut jobs = lock(&self.jobs);
        let job = jobs.get_mut(run).ok_or_else(|| unsupported("get"))?;
        job.polls += 1;
        let done = job.polls > self.options.polls_before_done;
        Ok(Answer::json(
            200,
            json!({"id": run, "account_id": account_id(job.account),
            "async_status": if done { "Job Completed" } else { "Job Running" },
            "async_percent_completion": if done { 100 } else { 50 }}),
        ))
    }

    fn job_rows(&self, r: &RecordedRequest, run: &str) -> Result<Answer, Answer> {
        let job = lock(&self.jobs)
            .get(run)
            .map(|j| (j.account, j.from, j.to, j.polls));
        let (a, from, to, polls) = job.ok_or_else(|| unsupported("get"))?;
        if polls <= self.options.polls_before_done {
            return Err(graph_error(
                100,
                None,
                "OAuthException",
                "The report is not ready yet.",
            ));
        }
        self.insight_page(r, a, from, to)
    }
}
