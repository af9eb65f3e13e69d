//! What the platform tests share: dates, a fast retry policy, rows keyed by campaign and day,
//! and the fake's expected numbers in the same shape.

#![allow(dead_code)]

use adledger_connectors::resilience::RetryPolicy;
use adledger_connectors::{CampaignDay, Connector};
use adledger_domain::connection::AdAccount;
use adledger_domain::{DailyMetrics, DateRange};
use chrono::NaiveDate;
use std::collections::BTreeMap;
use std::time::Duration;

pub fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

pub fn range(from: &str, to: &str) -> DateRange {
    DateRange::new(d(from), d(to)).unwrap()
}

/// Retries without the production waits.
pub fn fast() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(20),
        call_timeout: Duration::from_secs(30),
    }
}

pub type Days = BTreeMap<(String, NaiveDate), DailyMetrics>;

/// Rows by (campaign, day); a campaign-day that comes twice fails the test.
pub fn by_key(rows: Vec<CampaignDay>) -> Days {
    let n = rows.len();
    let map: Days = rows
        .into_iter()
        .map(|r| ((r.campaign_external_id, r.date), r.metrics))
        .collect();
    assert_eq!(map.len(), n, "no campaign-day twice");
    map
}

/// What a fake holds for `campaigns` over `r` (days without numbers left out).
pub fn expected_from(
    campaigns: Vec<String>,
    r: DateRange,
    metrics: impl Fn(&str, NaiveDate) -> Option<DailyMetrics>,
) -> Days {
    let mut out = BTreeMap::new();
    for c in campaigns {
        for day in r.days() {
            if let Some(m) = metrics(&c, day) {
                out.insert((c.clone(), day), m);
            }
        }
    }
    out
}

/// The discovered ad account with this id.
pub async fn account(c: &dyn Connector, id: &str) -> AdAccount {
    c.discover()
        .await
        .unwrap()
        .ad_accounts
        .into_iter()
        .find(|a| a.id.0 == id)
        .unwrap()
}
