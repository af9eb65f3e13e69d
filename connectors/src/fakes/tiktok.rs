//! A fake TikTok Business API: the JSON code exchange, advertisers, advertiser info, paged
//! campaigns and the paged daily integrated report (≤30 days), with the `{"code","message",
//! "request_id","data"}` envelope and its error codes in HTTP 200 answers.

use super::{
    lock, metrics, numbers, page_bounds, parse_date, Answer, Fake, FakeApi, Knobs, RecordedRequest,
};
use crate::auth::TokenSet;
use crate::tiktok::TiktokConfig;
use crate::Secret;
use adledger_domain::DailyMetrics;
use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

pub const APP_ID: &str = "7100000000000000001";
pub const SECRET: &str = "fake-tiktok-secret";
pub const REDIRECT_URL: &str = "http://localhost/oauth/tiktok/callback";
/// The one auth code the fake accepts.
pub const AUTH_CODE: &str = "fake-tiktok-auth-code";
const PREFIX: &str = "/open_api/v1.3/";

#[derive(Debug, Clone)]
pub struct FakeTiktokOptions {
    pub advertisers: usize,
    pub campaigns_per_advertiser: usize,
    /// The most campaigns per page, whatever the client asks (small, so paging is exercised).
    pub campaign_page_size: usize,
    /// The most report rows per page.
    pub report_page_size: usize,
}

impl Default for FakeTiktokOptions {
    fn default() -> Self {
        Self {
            advertisers: 2,
            campaigns_per_advertiser: 5,
            campaign_page_size: 2,
            report_page_size: 40,
        }
    }
}

/// TikTok's side of [`FakeTiktok`]. Throttled calls answer code 40100; revoked tokens answer
/// 40105, refresh included.
pub struct TiktokApi {
    options: FakeTiktokOptions,
    knobs: Knobs,
    issued: AtomicU64,
    tokens: Mutex<HashSet<String>>,
    request_ids: AtomicU64,
}

fn advertiser_id(a: usize) -> String {
    format!("70000000000000000{a:02}")
}

fn campaign_id(a: usize, c: usize) -> String {
    format!("18{a:02}{c:08}")
}

/// A fake of the TikTok Business API.
pub type FakeTiktok = Fake<TiktokApi>;

impl FakeTiktok {
    pub fn config(&self) -> TiktokConfig {
        let base = self.base_url();
        TiktokConfig {
            app_id: APP_ID.into(),
            secret: Secret::new(SECRET),
            redirect_url: REDIRECT_URL.into(),
            auth_url: format!("{base}/portal/auth"),
            api_url: format!("{base}/open_api/v1.3"),
            attribution_window_days: 7,
            chunk_days: 30,
            page_size: 1000,
        }
    }

    pub fn issue_tokens(&self) -> TokenSet {
        TokenSet {
            advertiser_ids: self.advertiser_ids(),
            ..TokenSet::bearer(self.api.issue())
        }
    }

    pub fn advertiser_ids(&self) -> Vec<String> {
        (1..=self.api.options.advertisers)
            .map(advertiser_id)
            .collect()
    }

    pub fn campaign_ids(&self, advertiser: &str) -> Vec<String> {
        let Some(a) = self.api.advertiser_index(advertiser) else {
            return Vec::new();
        };
        (1..=self.api.options.campaigns_per_advertiser)
            .map(|c| campaign_id(a, c))
            .collect()
    }

    /// What the fake reports for (campaign, date); `None` when it lists no row.
    pub fn expected_metrics(&self, campaign: &str, date: NaiveDate) -> Option<DailyMetrics> {
        self.api.row(campaign, date).map(|(m, _)| m)
    }
}

/// An unknown path, answered outside the envelope.
fn not_found() -> Answer {
    Answer::json(404, json!({"code": 40400, "message": "Not found"}))
}

impl FakeApi for TiktokApi {
    type Options = FakeTiktokOptions;

    fn new(options: FakeTiktokOptions) -> Self {
        Self {
            options,
            knobs: Knobs::default(),
            issued: AtomicU64::new(0),
            tokens: Mutex::default(),
            request_ids: AtomicU64::new(0),
        }
    }

    fn knobs(&self) -> &Knobs {
        &self.knobs
    }

    fn answer(&self, r: &RecordedRequest) -> Answer {
        let Some(path) = r.path.strip_prefix(PREFIX) else {
            return not_found();
        };
        match path {
            "oauth2/access_token/" => return self.exchange(r),
            "oauth2/refresh_token/" => {
                return self.error(40105, "The refresh token is invalid or has expired.")
            }
            _ => {}
        }
        let token = r.header("access-token").unwrap_or("");
        if self.knobs.revoked() || !lock(&self.tokens).contains(token) {
            return self.error(40105, "Access token is incorrect or has been revoked.");
        }
        if self.knobs.take_throttle() {
            return self.error(40100, "Too many requests. Please retry in some time.");
        }
        if r.method != "GET" {
            return self.error(40002, "Method not allowed");
        }
        match path {
            "oauth2/advertiser/get/" => self.advertisers(r),
            "advertiser/info/" => self.info(r),
            // A refusal is an answer too.
            "campaign/get/" => self.campaigns(r).unwrap_or_else(|refusal| refusal),
            "report/integrated/get/" => self.report(r).unwrap_or_else(|refusal| refusal),
            _ => not_found(),
        }
    }
}

impl TiktokApi {
    fn issue(&self) -> String {
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let token = format!("act.fake-tiktok-{n:04}");
        lock(&self.tokens).insert(token.clone());
        token
    }

    fn advertiser_index(&self, advertiser: &str) -> Option<usize> {
        (1..=self.options.advertisers).find(|a| advertiser_id(*a) == advertiser)
    }

    fn envelope(&self, code: i64, message: &str, data: Value) -> Answer {
        let n = self.request_ids.fetch_add(1, Ordering::SeqCst);
        Answer::json(
            200,
            json!({"code": code, "message": message, "request_id": format!("fake-{n}"), "data": data}),
        )
    }

    fn error(&self, code: i64, message: &str) -> Answer {
        self.envelope(code, message, json!({}))
    }

    /// Domain metrics and the JSON metrics TikTok would send: strings mostly, numbers on some
    /// days, `"-"` where there were no conversions.
    fn row(&self, campaign: &str, date: NaiveDate) -> Option<(DailyMetrics, Value)> {
        let n = numbers(campaign, date, self.knobs.is_restated(date))?;
        let m = metrics(&n, Decimal::from(n.conversions), Decimal::ZERO)?;
        let as_number = matches!(date.day() % 2, 0);
        let count = |v: u64| {
            if as_number {
                json!(v)
            } else {
                json!(v.to_string())
            }
        };
        let conversion = if n.conversions == 0 {
            json!("-")
        } else {
            count(n.conversions)
        };
        let spend = format!("{}.{:02}", n.spend_cents / 100, n.spend_cents % 100);
        Some((
            m,
            json!({"campaign_name": format!("Campaign {campaign}"), "spend": spend,
                "impressions": count(n.impressions), "clicks": count(n.clicks), "conversion": conversion}),
        ))
    }

    fn exchange(&self, r: &RecordedRequest) -> Answer {
        let json_body = r
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json"));
        let Some(body) = r.json().filter(|_| json_body && r.method == "POST") else {
            return self.error(40002, "The request body must be JSON.");
        };
        if body["app_id"] != APP_ID || body["secret"] != SECRET {
            return self.error(40001, "app_id or secret is invalid.");
        }
        if body["auth_code"] != AUTH_CODE {
            return self.error(40110, "Auth code is invalid or has expired.");
        }
        let token = self.issue();
        let ids: Vec<String> = (1..=self.options.advertisers).map(advertiser_id).collect();
        self.envelope(
            0,
            "OK",
            json!({"access_token": token, "advertiser_ids": ids, "scope": [4, 5, 10]}),
        )
    }

    fn advertisers(&self, r: &RecordedRequest) -> Answer {
        if r.query_param("app_id").as_deref() != Some(APP_ID)
            || r.query_param("secret").as_deref() != Some(SECRET)
        {
            return self.error(40001, "app_id or secret is invalid.");
        }
        let list: Vec<Value> = (1..=self.options.advertisers)
            .map(|a| json!({"advertiser_id": advertiser_id(a), "advertiser_name": format!("Advertiser {a}")}))
            .collect();
        self.envelope(0, "OK", json!({ "list": list }))
    }

    fn info(&self, r: &RecordedRequest) -> Answer {
        let ids: Option<Vec<String>> = r
            .query_param("advertiser_ids")
            .and_then(|raw| serde_json::from_str(&raw).ok());
        let Some(ids) = ids.filter(|ids| !ids.is_empty() && ids.len() <= 100) else {
            return self.error(
                40002,
                "advertiser_ids: a JSON array of 1 to 100 ids is required.",
            );
        };
        let list: Vec<Value> = ids
            .iter()
            .filter_map(|id| {
                let a = self.advertiser_index(id)?;
                let (currency, tz) = [("USD", "America/Los_Angeles"), ("EUR", "Europe/Paris")][(a - 1) % 2];
                Some(json!({"advertiser_id": id, "name": format!("Advertiser {a}"), "currency": currency, "timezone": tz}))
            })
            .collect();
        self.envelope(0, "OK", json!({ "list": list }))
    }

    fn paging(&self, r: &RecordedRequest, most: usize) -> Result<(usize, usize), Answer> {
        let page: usize = r
            .query_param("page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(1);
        let size: usize = r
            .query_param("page_size")
            .and_then(|p| p.parse().ok())
            .unwrap_or(10);
        if page == 0 || !(1..=1000).contains(&size) {
            return Err(self.error(40002, "page must be >= 1 and page_size between 1 and 1000."));
        }
        Ok((page, size.min(most.max(1))))
    }

    /// Page `page` of `cells`, `size` a page, in TikTok's envelope: only that page's cells are
    /// rendered (a cell that renders as nothing still counts, as TikTok's totals do).
    fn page_of<T>(
        &self,
        cells: &[T],
        page: usize,
        size: usize,
        render: impl Fn(&T) -> Option<Value>,
    ) -> Answer {
        let total = cells.len();
        let (start, end) = page_bounds(total, size, page);
        let list: Vec<Value> = cells[start..end].iter().filter_map(render).collect();
        let total_page = total.div_ceil(size).max(1);
        self.envelope(0, "OK", json!({"list": list,
            "page_info": {"page": page, "page_size": size, "total_number": total, "total_page": total_page}}))
    }

    /// The advertiser a request names, or TikTok's refusal.
    fn advertiser(&self, r: &RecordedRequest) -> Result<usize, Answer> {
        r.query_param("advertiser_id")
            .and_then(|id| self.advertiser_index(&id))
            .ok_or_else(|| self.error(40002, "advertiser_id is invalid."))
    }

    fn campaigns(&self, r: &RecordedRequest) -> Result<Answer, Answer> {
        let a = self.advertiser(r)?;
        let (page, size) = self.paging(r, self.options.campaign_page_size)?;
        let campaigns: Vec<usize> = (1..=self.options.campaigns_per_advertiser).collect();
        Ok(self.page_of(&campaigns, page, size, |&c| {
            Some(
                json!({"campaign_id": campaign_id(a, c), "campaign_name": format!("Campaign {c}"),
                "advertiser_id": advertiser_id(a),
                "operation_status": if c % 3 == 0 { "DISABLE" } else { "ENABLE" }}),
            )
        }))
    }

    fn report(&self, r: &RecordedRequest) -> Result<Answer, Answer> {
        let a = self.advertiser(r)?;
        let expected = [
            ("service_type", "AUCTION"),
            ("report_type", "BASIC"),
            ("data_level", "AUCTION_CAMPAIGN"),
            ("dimensions", r#"["campaign_id","stat_time_day"]"#),
        ];
        for (name, value) in expected {
            if r.query_param(name).as_deref() != Some(value) {
                return Err(self.error(40002, &format!("{name}: invalid value.")));
            }
        }
        let metrics: Vec<String> = r
            .query_param("metrics")
            .and_then(|m| serde_json::from_str(&m).ok())
            .unwrap_or_default();
        if !["spend", "impressions", "clicks", "conversion"]
            .iter()
            .all(|m| metrics.iter().any(|x| x == m))
        {
            return Err(self.error(40002, "metrics: invalid value."));
        }
        let (Some(from), Some(to)) = (
            r.query_param("start_date").as_deref().and_then(parse_date),
            r.query_param("end_date").as_deref().and_then(parse_date),
        ) else {
            return Err(self.error(40002, "start_date and end_date are required."));
        };
        if from > to || (to - from).num_days() + 1 > 30 {
            return Err(self.error(40002, "The time span of the report cannot exceed 30 days."));
        }
        let (page, size) = self.paging(r, self.options.report_page_size)?;
        // Which cells have a row is cheap to know; only the page's rows are rendered.
        let cells: Vec<(NaiveDate, String)> = from
            .iter_days()
            .take_while(|d| *d <= to)
            .flat_map(|date| {
                (1..=self.options.campaigns_per_advertiser).map(move |c| (date, campaign_id(a, c)))
            })
            .filter(|(date, id)| numbers(id, *date, false).is_some())
            .collect();
        Ok(self.page_of(&cells, page, size, |(date, id)| {
            let (_, m) = self.row(id, *date)?;
            Some(json!({"dimensions": {"campaign_id": id, "stat_time_day": format!("{date} 00:00:00")},
                "metrics": m}))
        }))
    }
}
