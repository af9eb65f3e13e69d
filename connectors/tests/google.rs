//! The Google Ads connector against the fake Google server: OAuth, discovery, daily metrics,
//! throttling, expired and revoked tokens.

use adledger_connectors::auth::{Pkce, RefreshingTokens, StaticToken};
use adledger_connectors::fakes::google::{self, FakeGoogle, FakeGoogleOptions};
use adledger_connectors::google::{GoogleClient, GoogleOAuth};
use adledger_connectors::resilience::Resilient;
use adledger_connectors::{Connector, ConnectorError, OAuthFlow, Secret, TokenSet, TokenSource};
use adledger_domain::DateRange;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod support;
use support::*;

async fn fake() -> FakeGoogle {
    FakeGoogle::start(FakeGoogleOptions::default())
        .await
        .unwrap()
}

fn client(fake: &FakeGoogle) -> GoogleClient {
    GoogleClient::new(
        fake.config(),
        Arc::new(StaticToken(fake.issue_tokens().access_token)),
    )
}

fn expected(fake: &FakeGoogle, customer: &str, r: DateRange) -> Days {
    expected_from(fake.campaign_ids(customer), r, |c, day| {
        fake.expected_metrics(c, day)
    })
}

#[tokio::test]
async fn the_code_exchange_posts_a_form_with_the_pkce_verifier_and_refresh_and_revoke_work() {
    let fake = fake().await;
    let oauth = GoogleOAuth::new(fake.config());
    assert!(oauth.supports_pkce());
    let pkce = Pkce::generate();
    let url = oauth.authorize_url("state-1", Some(&pkce.challenge));
    assert!(url.contains("access_type=offline") && url.contains("prompt=consent"));
    assert!(url.contains(&format!("code_challenge={}", pkce.challenge)));

    let tokens = oauth
        .exchange_code(google::AUTH_CODE, Some(pkce.verifier.expose()))
        .await
        .unwrap();
    assert!(tokens.refresh_token.is_some());
    assert!(tokens.expires_at.is_some());
    assert_eq!(tokens.scopes, ["https://www.googleapis.com/auth/adwords"]);

    let sent = fake.requests().pop().unwrap();
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/token")
    );
    assert!(sent
        .header("content-type")
        .unwrap()
        .starts_with("application/x-www-form-urlencoded"));
    assert_eq!(
        sent.form_param("grant_type").as_deref(),
        Some("authorization_code")
    );
    assert_eq!(sent.form_param("code").as_deref(), Some(google::AUTH_CODE));
    assert_eq!(
        sent.form_param("code_verifier").as_deref(),
        Some(pkce.verifier.expose())
    );
    assert_eq!(
        sent.form_param("redirect_uri").as_deref(),
        Some(google::REDIRECT_URL)
    );
    assert_eq!(
        sent.form_param("client_id").as_deref(),
        Some(google::CLIENT_ID)
    );
    assert_eq!(
        sent.form_param("client_secret").as_deref(),
        Some(google::CLIENT_SECRET)
    );

    let bad = oauth.exchange_code("4/wrong", None).await.unwrap_err();
    assert!(
        matches!(&bad, ConnectorError::Invalid(m) if m.contains("invalid_grant")),
        "{bad:?}"
    );
    assert!(!bad.to_string().contains(google::CLIENT_SECRET));

    let refreshed = oauth.refresh(&tokens).await.unwrap();
    assert_ne!(refreshed.access_token, tokens.access_token);
    let sent = fake.requests().pop().unwrap();
    assert_eq!(
        sent.form_param("grant_type").as_deref(),
        Some("refresh_token")
    );
    assert_eq!(
        sent.form_param("refresh_token").as_deref(),
        tokens.refresh_token.as_ref().map(Secret::expose)
    );

    oauth.revoke(&tokens).await.unwrap();
    let sent = fake.requests().pop().unwrap();
    assert_eq!(sent.path, "/revoke");
    assert_eq!(
        sent.query_param("token").as_deref(),
        tokens.refresh_token.as_ref().map(Secret::expose)
    );
    assert_eq!(
        oauth.refresh(&tokens).await,
        Err(ConnectorError::AuthExpired),
        "invalid_grant"
    );
}

#[tokio::test]
async fn discovery_lists_every_customer_and_campaign_and_skips_managers() {
    let fake = fake().await;
    let c = client(&fake);
    let discovery = c.discover().await.unwrap();
    let ids: Vec<_> = discovery
        .ad_accounts
        .iter()
        .map(|a| a.id.0.clone())
        .collect();
    assert_eq!(ids, fake.customer_ids(), "the manager is not an ad account");
    assert_eq!(discovery.ad_accounts[1].currency.as_str(), "EUR");
    assert_eq!(discovery.ad_accounts[1].time_zone, "Europe/Berlin");
    assert_eq!(discovery.ad_accounts[0].name, "Client 1");
    for customer in fake.customer_ids() {
        let campaigns: Vec<_> = discovery
            .campaigns
            .iter()
            .filter(|c| c.ad_account_id.0 == customer)
            .map(|c| c.external_id.clone())
            .collect();
        assert_eq!(campaigns, fake.campaign_ids(&customer));
    }
    assert!(discovery.campaigns.iter().any(|c| c.status == "PAUSED"));
    for r in fake.requests() {
        assert_eq!(r.header("developer-token"), Some(google::DEVELOPER_TOKEN));
        assert!(r
            .header("authorization")
            .unwrap()
            .starts_with("Bearer ya29."));
        // Only the manager's client list is read through the manager; its clients that are
        // directly accessible are read directly.
        let clients_query = r
            .json()
            .and_then(|b| {
                b["query"]
                    .as_str()
                    .map(|q| q.ends_with("FROM customer_client"))
            })
            .unwrap_or(false);
        let login = if clients_query {
            Some(fake.manager_id())
        } else {
            None
        };
        assert_eq!(r.header("login-customer-id"), login, "{}", r.path);
    }
}

#[tokio::test]
async fn daily_metrics_over_several_chunks_and_batches_equal_the_fakes_numbers_exactly() {
    let fake = fake().await;
    let mut config = fake.config();
    config.chunk_days = 10;
    config.login_customer_id = Some("9990000001".into());
    let c = GoogleClient::new(
        config,
        Arc::new(StaticToken(fake.issue_tokens().access_token)),
    );
    let customer = fake.customer_ids()[1].clone();
    let acc = account(&c, &customer).await;
    let r = range("2024-02-20", "2024-03-15");
    let before = fake.requests().len();
    let got = by_key(c.account_insights(&acc, r).await.unwrap());
    let want = expected(&fake, &customer, r);
    assert!(
        want.len() > 50 && want.len() < 3 * 25,
        "some days have no row: {}",
        want.len()
    );
    assert_eq!(got, want);
    assert!(
        got.values()
            .any(|m| m.conversions.fract() != rust_decimal::Decimal::ZERO),
        "fractional conversions"
    );
    let queries: Vec<_> = fake.requests()[before..]
        .iter()
        .map(|q| q.json().unwrap()["query"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(queries.len(), 3, "25 days in chunks of 10");
    assert!(
        queries[0].ends_with("BETWEEN '2024-02-20' AND '2024-02-29'"),
        "{}",
        queries[0]
    );
    assert!(queries[2].ends_with("BETWEEN '2024-03-11' AND '2024-03-15'"));
    assert_eq!(
        fake.requests().last().unwrap().header("login-customer-id"),
        Some("9990000001")
    );

    // Late attribution: the next read of that day reports more conversions.
    let day = d("2024-03-01");
    let key = got.keys().find(|(_, date)| *date == day).unwrap().clone();
    fake.restate(day);
    let again = by_key(c.account_insights(&acc, r).await.unwrap());
    assert!(again[&key].conversions > got[&key].conversions);
    assert_eq!(again, expected(&fake, &customer, r));
}

#[tokio::test]
async fn a_quota_error_is_a_throttle_with_its_retry_delay_and_resilient_retries_through_it() {
    let fake = fake().await;
    let c = client(&fake);
    fake.throttle_next(1);
    assert_eq!(
        c.discover().await,
        Err(ConnectorError::Throttled {
            retry_after: Some(Duration::from_secs(1))
        })
    );
    fake.throttle_next(2);
    let resilient = Resilient::new(Box::new(client(&fake)), fast(), Arc::default());
    let discovery = resilient.discover().await.unwrap();
    assert_eq!(discovery.ad_accounts.len(), 2);
    let throttled_stream = fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("searchStream"))
        .count();
    assert!(throttled_stream > 0);
}

#[tokio::test]
async fn revoked_tokens_end_in_auth_expired_after_one_refresh_attempt() {
    let fake = fake().await;
    let flow: Arc<dyn OAuthFlow> = Arc::new(GoogleOAuth::new(fake.config()));
    let tokens = Arc::new(RefreshingTokens::new(flow, fake.issue_tokens(), None));
    let c = GoogleClient::new(fake.config(), tokens);
    fake.revoke_tokens();
    assert_eq!(c.discover().await, Err(ConnectorError::AuthExpired));
    let refreshes = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/token")
        .count();
    assert_eq!(refreshes, 1);
    let resilient = Resilient::new(Box::new(c), fast(), Arc::default());
    assert_eq!(
        resilient.discover().await,
        Err(ConnectorError::AuthExpired),
        "not retried"
    );
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_through_the_token_source_and_the_call_continues() {
    let fake = fake().await;
    let flow: Arc<dyn OAuthFlow> = Arc::new(GoogleOAuth::new(fake.config()));
    let persisted = Arc::new(AtomicU32::new(0));
    let seen = persisted.clone();
    let initial = fake.issue_tokens();
    let tokens = Arc::new(RefreshingTokens::new(
        flow,
        initial.clone(),
        Some(Arc::new(move |_: &TokenSet| {
            seen.fetch_add(1, Ordering::SeqCst);
        })),
    ));
    let c = GoogleClient::new(fake.config(), tokens.clone());
    fake.expire_access_token();
    let discovery = c.discover().await.unwrap();
    assert_eq!(discovery.ad_accounts.len(), 2);
    assert_eq!(
        persisted.load(Ordering::SeqCst),
        1,
        "refreshed once and persisted"
    );
    let now = tokens.tokens().await;
    assert_ne!(now.access_token, initial.access_token);
    assert_eq!(
        now.refresh_token, initial.refresh_token,
        "the refresh token is kept"
    );
    assert_eq!(tokens.access_token().await.unwrap(), now.access_token);
    let api: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path != "/token")
        .collect();
    assert_eq!(
        api[0].header("authorization"),
        Some(format!("Bearer {}", initial.access_token.expose()).as_str())
    );
    assert!(api[1..].iter().all(|r| r.header("authorization")
        == Some(format!("Bearer {}", now.access_token.expose()).as_str())));
}

#[tokio::test]
async fn four_hundred_days_of_two_hundred_campaigns_come_back_complete() {
    let fake = FakeGoogle::start(FakeGoogleOptions {
        customers: 1,
        campaigns_per_customer: 200,
        batch_size: 10_000,
        with_manager: false,
        ..FakeGoogleOptions::default()
    })
    .await
    .unwrap();
    let c = client(&fake);
    let customer = fake.customer_ids()[0].clone();
    let acc = account(&c, &customer).await;
    let r = range("2023-01-01", "2024-02-04");
    let rows = c.account_insights(&acc, r).await.unwrap();
    assert_eq!(by_key(rows), expected(&fake, &customer, r));
}
