//! The TikTok connector against the fake TikTok server: the JSON code exchange, discovery over
//! pages, the report in 30-day chunks and pages, `"-"` values, throttles and revoked tokens.

use adledger_connectors::auth::{RefreshingTokens, StaticToken};
use adledger_connectors::fakes::tiktok::{self, FakeTiktok, FakeTiktokOptions};
use adledger_connectors::resilience::Resilient;
use adledger_connectors::tiktok::{TiktokClient, TiktokOAuth};
use adledger_connectors::{Connector, ConnectorError, OAuthFlow};
use adledger_domain::DateRange;
use rust_decimal::Decimal;
use std::sync::Arc;

mod support;
use support::*;

async fn fake() -> FakeTiktok {
    FakeTiktok::start(FakeTiktokOptions::default())
        .await
        .unwrap()
}

fn client(fake: &FakeTiktok) -> TiktokClient {
    TiktokClient::new(
        fake.config(),
        Arc::new(StaticToken(fake.issue_tokens().access_token)),
    )
}

fn expected(fake: &FakeTiktok, advertiser: &str, r: DateRange) -> Days {
    expected_from(fake.campaign_ids(advertiser), r, |c, day| {
        fake.expected_metrics(c, day)
    })
}

#[tokio::test]
async fn the_code_exchange_sends_tiktoks_json_names_and_a_bad_code_is_refused() {
    let fake = fake().await;
    let oauth = TiktokOAuth::new(fake.config());
    assert!(!oauth.supports_pkce());
    let url = oauth.authorize_url("xyz", None);
    assert!(url.starts_with(&format!(
        "{}/portal/auth?app_id={}",
        fake.base_url(),
        tiktok::APP_ID
    )));
    assert!(url.contains("state=xyz") && url.contains("redirect_uri="));

    let tokens = oauth.exchange_code(tiktok::AUTH_CODE, None).await.unwrap();
    assert_eq!(tokens.advertiser_ids, fake.advertiser_ids());
    assert_eq!(tokens.scopes, ["4", "5", "10"]);
    assert!(tokens.refresh_token.is_none());

    let sent = fake.requests().pop().unwrap();
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.path, "/open_api/v1.3/oauth2/access_token/");
    assert!(sent
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let body = sent.json().unwrap();
    let mut names: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    names.sort();
    assert_eq!(names, ["app_id", "auth_code", "secret"]);
    assert_eq!(body["auth_code"], tiktok::AUTH_CODE);

    let bad = oauth.exchange_code("expired-code", None).await.unwrap_err();
    assert!(
        matches!(&bad, ConnectorError::Invalid(m) if m.contains("40110")),
        "{bad:?}"
    );
    assert!(!bad.to_string().contains(tiktok::SECRET));
    assert_eq!(
        oauth.refresh(&tokens).await,
        Err(ConnectorError::AuthExpired),
        "no refresh token"
    );
    assert_eq!(oauth.revoke(&tokens).await, Ok(()));
}

#[tokio::test]
async fn discovery_follows_every_campaign_page() {
    let fake = fake().await;
    let c = client(&fake);
    let discovery = c.discover().await.unwrap();
    let ids: Vec<_> = discovery
        .ad_accounts
        .iter()
        .map(|a| a.id.0.clone())
        .collect();
    assert_eq!(ids, fake.advertiser_ids());
    assert_eq!(discovery.ad_accounts[1].currency.as_str(), "EUR");
    assert_eq!(discovery.ad_accounts[0].time_zone, "America/Los_Angeles");
    for advertiser in fake.advertiser_ids() {
        let campaigns: Vec<_> = discovery
            .campaigns
            .iter()
            .filter(|c| c.ad_account_id.0 == advertiser)
            .map(|c| c.external_id.clone())
            .collect();
        assert_eq!(campaigns, fake.campaign_ids(&advertiser));
    }
    let requests = fake.requests();
    let pages: Vec<_> = requests
        .iter()
        .filter(|r| r.path.ends_with("campaign/get/"))
        .map(|r| r.query_param("page").unwrap())
        .collect();
    assert_eq!(
        pages,
        ["1", "2", "3", "1", "2", "3"],
        "5 campaigns, 2 per page, per advertiser"
    );
    let info = requests
        .iter()
        .find(|r| r.path.ends_with("advertiser/info/"))
        .unwrap();
    let listed: Vec<String> =
        serde_json::from_str(&info.query_param("advertiser_ids").unwrap()).unwrap();
    assert_eq!(listed, fake.advertiser_ids());
    for r in &requests {
        assert!(r
            .header("access-token")
            .unwrap()
            .starts_with("act.fake-tiktok-"));
        assert_eq!(r.header("authorization"), None, "no Bearer");
    }
}

#[tokio::test]
async fn the_report_over_30_day_chunks_and_pages_equals_the_fakes_numbers_with_dashes_as_zero() {
    let fake = fake().await;
    let c = client(&fake);
    let advertiser = fake.advertiser_ids()[0].clone();
    let acc = account(&c, &advertiser).await;
    let r = range("2024-01-01", "2024-03-10");
    let before = fake.requests().len();
    let got = by_key(c.account_insights(&acc, r).await.unwrap());
    assert_eq!(got, expected(&fake, &advertiser, r));
    assert!(
        got.values().any(|m| m.conversions == Decimal::ZERO),
        "\"-\" read as zero"
    );
    let reports: Vec<_> = fake.requests()[before..]
        .iter()
        .map(|q| {
            (
                q.query_param("start_date").unwrap(),
                q.query_param("end_date").unwrap(),
                q.query_param("page").unwrap(),
            )
        })
        .collect();
    let chunks: Vec<_> = reports
        .iter()
        .filter(|(_, _, p)| p == "1")
        .map(|(f, t, _)| (f.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        chunks,
        [
            ("2024-01-01", "2024-01-30"),
            ("2024-01-31", "2024-02-29"),
            ("2024-03-01", "2024-03-10")
        ]
    );
    assert!(reports.len() > 3, "several pages per chunk");
    let q = &fake.requests()[before];
    assert_eq!(
        q.query_param("dimensions").as_deref(),
        Some(r#"["campaign_id","stat_time_day"]"#)
    );
    assert_eq!(
        q.query_param("metrics").as_deref(),
        Some(r#"["spend","impressions","clicks","conversion","campaign_name"]"#)
    );
    assert_eq!(
        q.query_param("data_level").as_deref(),
        Some("AUCTION_CAMPAIGN")
    );
    assert_eq!(q.query_param("page_size").as_deref(), Some("1000"));

    let day = d("2024-02-10");
    fake.restate(day);
    let again = by_key(c.account_insights(&acc, r).await.unwrap());
    assert_eq!(again, expected(&fake, &advertiser, r));
    assert_ne!(again, got, "the restated day changed");
}

#[tokio::test]
async fn code_40100_is_a_throttle_and_resilient_retries_through_it() {
    let fake = fake().await;
    fake.throttle_next(1);
    assert_eq!(
        client(&fake).discover().await,
        Err(ConnectorError::Throttled { retry_after: None })
    );
    fake.throttle_next(3);
    let resilient = Resilient::new(Box::new(client(&fake)), fast(), Arc::default());
    assert_eq!(resilient.discover().await.unwrap().ad_accounts.len(), 2);
}

#[tokio::test]
async fn a_revoked_token_is_auth_expired_and_not_retried() {
    let fake = fake().await;
    let flow: Arc<dyn OAuthFlow> = Arc::new(TiktokOAuth::new(fake.config()));
    let tokens = Arc::new(RefreshingTokens::new(flow, fake.issue_tokens(), None));
    let c = TiktokClient::new(fake.config(), tokens);
    fake.revoke_tokens();
    let resilient = Resilient::new(Box::new(c), fast(), Arc::default());
    assert_eq!(resilient.discover().await, Err(ConnectorError::AuthExpired));
    assert_eq!(fake.requests().len(), 1, "not retried");
}

#[tokio::test]
async fn four_hundred_days_of_two_hundred_campaigns_come_back_complete() {
    let fake = FakeTiktok::start(FakeTiktokOptions {
        advertisers: 1,
        campaigns_per_advertiser: 200,
        campaign_page_size: 1000,
        report_page_size: 1000,
    })
    .await
    .unwrap();
    let c = client(&fake);
    let advertiser = fake.advertiser_ids()[0].clone();
    let acc = account(&c, &advertiser).await;
    let r = range("2023-01-01", "2024-02-04");
    assert_eq!(
        by_key(c.account_insights(&acc, r).await.unwrap()),
        expected(&fake, &advertiser, r)
    );
}
