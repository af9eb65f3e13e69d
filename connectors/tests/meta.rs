//! The Meta connector against the fake Graph API: the two-step token exchange, cursor paging,
//! daily insights (direct, halved on "reduce the amount of data", and by async report job),
//! throttles and revoked tokens.

use adledger_connectors::auth::StaticToken;
use adledger_connectors::fakes::meta::{self, FakeMeta, FakeMetaOptions};
use adledger_connectors::meta::{MetaClient, MetaOAuth};
use adledger_connectors::resilience::Resilient;
use adledger_connectors::{Connector, ConnectorError, OAuthFlow};
use adledger_domain::DateRange;
use chrono::{NaiveDate, Utc};
use std::sync::Arc;
use std::time::Duration;

mod support;
use support::*;

async fn fake_with(options: FakeMetaOptions) -> FakeMeta {
    FakeMeta::start(options).await.unwrap()
}

async fn fake() -> FakeMeta {
    fake_with(FakeMetaOptions::default()).await
}

fn client(fake: &FakeMeta) -> MetaClient {
    MetaClient::new(
        fake.config(),
        Arc::new(StaticToken(fake.issue_tokens().access_token)),
    )
}

fn time_ranges(
    requests: &[adledger_connectors::fakes::RecordedRequest],
) -> Vec<(NaiveDate, NaiveDate)> {
    requests
        .iter()
        .filter_map(|r| r.param("time_range"))
        .map(|t| {
            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
            (
                d(v["since"].as_str().unwrap()),
                d(v["until"].as_str().unwrap()),
            )
        })
        .collect()
}

fn expected(fake: &FakeMeta, account: &str, r: DateRange) -> Days {
    expected_from(fake.campaign_ids(account), r, |c, day| {
        fake.expected_metrics(c, day)
    })
}

#[tokio::test]
async fn the_code_is_exchanged_by_two_gets_for_a_long_lived_token_without_refresh() {
    let fake = fake().await;
    let oauth = MetaOAuth::new(fake.config());
    let url = oauth.authorize_url("s1", None);
    assert!(url.starts_with(&format!(
        "{}/v23.0/dialog/oauth?client_id={}",
        fake.base_url(),
        meta::CLIENT_ID
    )));
    assert!(
        url.contains("scope=ads_read%2Cbusiness_management") && url.contains("response_type=code")
    );

    let tokens = oauth.exchange_code(meta::AUTH_CODE, None).await.unwrap();
    assert!(tokens.access_token.expose().starts_with("EAAlong"));
    assert!(tokens.refresh_token.is_none());
    let days_left = (tokens.expires_at.unwrap() - Utc::now()).num_days();
    assert!((59..=60).contains(&days_left), "{days_left}");

    let sent = fake.requests();
    assert_eq!(sent.len(), 2);
    for r in &sent {
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("GET", "/v23.0/oauth/access_token")
        );
        assert_eq!(r.query_param("client_id").as_deref(), Some(meta::CLIENT_ID));
        assert_eq!(
            r.query_param("client_secret").as_deref(),
            Some(meta::CLIENT_SECRET)
        );
    }
    assert_eq!(
        sent[0].query_param("code").as_deref(),
        Some(meta::AUTH_CODE)
    );
    assert_eq!(
        sent[0].query_param("redirect_uri").as_deref(),
        Some(meta::REDIRECT_URL)
    );
    assert_eq!(
        sent[1].query_param("grant_type").as_deref(),
        Some("fb_exchange_token")
    );
    assert!(sent[1]
        .query_param("fb_exchange_token")
        .unwrap()
        .starts_with("EAAshort"));

    let bad = oauth.exchange_code("wrong", None).await.unwrap_err();
    assert!(
        matches!(&bad, ConnectorError::Invalid(m) if m.contains("code 100")),
        "{bad:?}"
    );
    assert!(!bad.to_string().contains(meta::CLIENT_SECRET));
    assert_eq!(
        oauth.refresh(&tokens).await,
        Err(ConnectorError::AuthExpired)
    );

    oauth.revoke(&tokens).await.unwrap();
    let last = fake.requests().pop().unwrap();
    assert_eq!(
        (last.method.as_str(), last.path.as_str()),
        ("DELETE", "/v23.0/me/permissions")
    );
    let c = MetaClient::new(fake.config(), Arc::new(StaticToken(tokens.access_token)));
    assert_eq!(
        c.discover().await,
        Err(ConnectorError::AuthExpired),
        "revoked"
    );
}

#[tokio::test]
async fn discovery_follows_every_cursor_page_of_accounts_and_campaigns() {
    let fake = fake().await;
    let discovery = client(&fake).discover().await.unwrap();
    let ids: Vec<_> = discovery
        .ad_accounts
        .iter()
        .map(|a| a.id.0.clone())
        .collect();
    assert_eq!(ids, fake.account_ids());
    assert_eq!(discovery.ad_accounts[1].currency.as_str(), "EUR");
    assert_eq!(discovery.ad_accounts[1].time_zone, "Europe/Dublin");
    for account in fake.account_ids() {
        let campaigns: Vec<_> = discovery
            .campaigns
            .iter()
            .filter(|c| c.ad_account_id.0 == account)
            .map(|c| c.external_id.clone())
            .collect();
        assert_eq!(campaigns, fake.campaign_ids(&account));
    }
    let requests = fake.requests();
    let account_pages: Vec<_> = requests
        .iter()
        .filter(|r| r.path == "/v23.0/me/adaccounts")
        .map(|r| r.query_param("after"))
        .collect();
    assert_eq!(account_pages, [None, Some("c2".to_string())]);
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.path.ends_with("/campaigns"))
            .count(),
        9,
        "3 pages × 3 accounts"
    );
    for r in &requests {
        assert!(r
            .header("authorization")
            .unwrap()
            .starts_with("Bearer EAAlong"));
        assert_eq!(r.query_param("access_token"), None, "no token in URLs");
    }
}

#[tokio::test]
async fn insights_over_several_pages_equal_the_fakes_numbers_counting_purchases_once() {
    let fake = fake().await;
    let c = client(&fake);
    let id = fake.account_ids()[0].clone();
    let acc = account(&c, &id).await;
    let r = range("2024-03-01", "2024-03-30");
    let before = fake.requests().len();
    let got = by_key(c.account_insights(&acc, r).await.unwrap());
    assert_eq!(got, expected(&fake, &id, r));
    assert!(got.values().any(|m| !m.conversions.is_zero()));
    let sent = &fake.requests()[before..];
    assert!(sent.len() >= 5, "several pages: {}", sent.len());
    assert_eq!(sent[0].path, format!("/v23.0/act_{id}/insights"));
    assert_eq!(sent[0].query_param("level").as_deref(), Some("campaign"));
    assert_eq!(sent[0].query_param("time_increment").as_deref(), Some("1"));
    assert_eq!(
        sent[0].query_param("action_attribution_windows").as_deref(),
        Some(r#"["7d_click","1d_view"]"#)
    );
    assert_eq!(
        time_ranges(&sent[..1]),
        [(d("2024-03-01"), d("2024-03-30"))]
    );

    fake.restate(d("2024-03-15"));
    let again = by_key(c.account_insights(&acc, r).await.unwrap());
    assert_eq!(again, expected(&fake, &id, r));
    assert_ne!(again, got);
}

#[tokio::test]
async fn reduce_the_amount_of_data_halves_the_range_until_meta_accepts_it() {
    let fake = fake_with(FakeMetaOptions {
        max_sync_days: Some(10),
        ..FakeMetaOptions::default()
    })
    .await;
    let c = client(&fake);
    let id = fake.account_ids()[2].clone();
    let acc = account(&c, &id).await;
    let r = range("2024-01-01", "2024-01-30");
    let before = fake.requests().len();
    assert_eq!(
        by_key(c.account_insights(&acc, r).await.unwrap()),
        expected(&fake, &id, r)
    );
    let asked = time_ranges(&fake.requests()[before..]);
    assert_eq!(
        asked[0],
        (d("2024-01-01"), d("2024-01-30")),
        "first the whole range"
    );
    let accepted: Vec<_> = asked
        .iter()
        .filter(|(f, t)| (*t - *f).num_days() < 10)
        .collect();
    assert!(accepted.len() >= 4, "{asked:?}");
}

#[tokio::test]
async fn a_long_range_goes_through_an_async_report_job() {
    let fake = fake().await;
    let c = client(&fake);
    let id = fake.account_ids()[0].clone();
    let acc = account(&c, &id).await;
    let r = range("2023-09-01", "2024-01-31");
    let before = fake.requests().len();
    assert_eq!(
        by_key(c.account_insights(&acc, r).await.unwrap()),
        expected(&fake, &id, r)
    );
    let sent = &fake.requests()[before..];
    assert_eq!(sent[0].method, "POST");
    assert_eq!(sent[0].path, format!("/v23.0/act_{id}/insights"));
    assert_eq!(sent[0].form_param("level").as_deref(), Some("campaign"));
    let run = sent[1].path.trim_start_matches("/v23.0/").to_owned();
    let polls = sent
        .iter()
        .filter(|q| q.path == format!("/v23.0/{run}"))
        .count();
    assert_eq!(polls, 3, "two running, then completed");
    let pages = sent
        .iter()
        .filter(|q| q.path == format!("/v23.0/{run}/insights"))
        .count();
    assert!(pages > 2, "the report is read page by page");
}

#[tokio::test]
async fn a_throttle_in_a_400_body_carries_the_usage_headers_wait_and_resilient_retries() {
    let fake = fake().await;
    fake.throttle_next(1);
    assert_eq!(
        client(&fake).discover().await,
        Err(ConnectorError::Throttled {
            retry_after: Some(Duration::from_secs(60))
        })
    );
    fake.throttle_next(2);
    let resilient = Resilient::new(Box::new(client(&fake)), fast(), Arc::default());
    assert_eq!(resilient.discover().await.unwrap().ad_accounts.len(), 3);
}

#[tokio::test]
async fn a_revoked_token_is_auth_expired_and_not_retried() {
    let fake = fake().await;
    fake.revoke_tokens();
    let resilient = Resilient::new(Box::new(client(&fake)), fast(), Arc::default());
    assert_eq!(resilient.discover().await, Err(ConnectorError::AuthExpired));
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn four_hundred_days_of_two_hundred_campaigns_come_back_complete() {
    let fake = fake_with(FakeMetaOptions {
        accounts: 1,
        campaigns_per_account: 200,
        page_size: 100,
        insights_page_size: 500,
        ..FakeMetaOptions::default()
    })
    .await;
    let mut config = fake.config();
    config.page_limit = 500;
    let c = MetaClient::new(
        config,
        Arc::new(StaticToken(fake.issue_tokens().access_token)),
    );
    let id = fake.account_ids()[0].clone();
    let acc = account(&c, &id).await;
    let r = range("2023-01-01", "2024-02-04");
    assert_eq!(
        by_key(c.account_insights(&acc, r).await.unwrap()),
        expected(&fake, &id, r)
    );
}
