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

async fn fake_with_managed_clients(managed_clients: usize) -> FakeGoogle {
    FakeGoogle::start(FakeGoogleOptions {
        managed_clients,
        ..FakeGoogleOptions::default()
    })
    .await
    .unwrap()
}

/// The searchStream requests for `customer` among `requests`.
fn stream_requests_for(
    requests: &[adledger_connectors::fakes::RecordedRequest],
    customer: &str,
) -> Vec<adledger_connectors::fakes::RecordedRequest> {
    let path = format!("/v23/customers/{customer}/googleAds:searchStream");
    requests
        .iter()
        .filter(|r| r.path == path)
        .cloned()
        .collect()
}

#[tokio::test]
async fn discovery_reaches_the_clients_of_a_manager_through_it_and_not_the_manager_itself() {
    let fake = fake_with_managed_clients(2).await;
    let c = client(&fake);
    let discovery = c.discover().await.unwrap();
    let ids: Vec<_> = discovery
        .ad_accounts
        .iter()
        .map(|a| a.id.0.clone())
        .collect();
    assert_eq!(fake.managed_customer_ids().len(), 2);
    assert_eq!(fake.customer_ids().len(), 4);
    assert_eq!(
        ids,
        fake.customer_ids(),
        "direct customers once each, then the managed ones; not the manager, not the cancelled client"
    );
    let managed = &discovery.ad_accounts[2];
    assert_eq!(managed.id.0, fake.managed_customer_ids()[0]);
    assert_eq!(managed.name, "Client 3");
    assert_eq!(managed.currency.as_str(), "BRL");
    assert_eq!(managed.time_zone, "America/Sao_Paulo");
    for customer in fake.customer_ids() {
        let campaigns: Vec<_> = discovery
            .campaigns
            .iter()
            .filter(|c| c.ad_account_id.0 == customer)
            .map(|c| c.external_id.clone())
            .collect();
        assert_eq!(campaigns, fake.campaign_ids(&customer), "{customer}");
    }

    let requests = fake.requests();
    let clients: Vec<_> = stream_requests_for(&requests, fake.manager_id())
        .into_iter()
        .filter(|r| {
            r.json().unwrap()["query"]
                .as_str()
                .unwrap()
                .contains("FROM customer_client")
        })
        .collect();
    assert_eq!(clients.len(), 1, "one client list per manager");
    assert_eq!(
        clients[0].json().unwrap()["query"],
        "SELECT customer_client.id, customer_client.manager, customer_client.level, \
         customer_client.time_zone, customer_client.status FROM customer_client"
    );
    assert_eq!(
        clients[0].header("login-customer-id"),
        Some(fake.manager_id())
    );
    for customer in fake.managed_customer_ids() {
        let sent = stream_requests_for(&requests, &customer);
        assert_eq!(sent.len(), 2, "details and campaigns of {customer}");
        for r in sent {
            assert_eq!(r.header("login-customer-id"), Some(fake.manager_id()));
        }
    }
    // The first customer is also a client of the manager: direct access is preferred.
    let direct = &fake.customer_ids()[0];
    let sent = stream_requests_for(&requests, direct);
    assert_eq!(sent.len(), 2, "read once");
    assert!(sent.iter().all(|r| r.header("login-customer-id").is_none()));
}

#[tokio::test]
async fn daily_metrics_of_a_managed_client_equal_the_fakes_numbers_and_every_request_names_the_manager(
) {
    let fake = fake_with_managed_clients(1).await;
    let mut config = fake.config();
    config.chunk_days = 10;
    let c = GoogleClient::new(
        config,
        Arc::new(StaticToken(fake.issue_tokens().access_token)),
    );
    let customer = fake.managed_customer_ids()[0].clone();
    let acc = account(&c, &customer).await;
    let r = range("2024-02-20", "2024-03-15");
    let before = fake.requests().len();
    let got = by_key(c.account_insights(&acc, r).await.unwrap());
    let want = expected(&fake, &customer, r);
    assert!(want.len() > 50, "{}", want.len());
    assert_eq!(got, want);
    let sent = fake.requests()[before..].to_vec();
    assert_eq!(
        sent.len(),
        3,
        "25 days in chunks of 10, nothing discovered again"
    );
    for r in &sent {
        assert_eq!(
            r.path,
            format!("/v23/customers/{customer}/googleAds:searchStream")
        );
        assert_eq!(r.header("login-customer-id"), Some(fake.manager_id()));
    }
    // Every request for that client, discovery included, went through the manager.
    let all = fake.requests();
    let for_client = stream_requests_for(&all, &customer);
    assert_eq!(for_client.len(), 2 + 3);
    assert!(for_client
        .iter()
        .all(|r| r.header("login-customer-id") == Some(fake.manager_id())));
}

#[tokio::test]
async fn a_fresh_client_finds_the_manager_of_a_client_once_and_reads_its_insights() {
    let fake = fake_with_managed_clients(2).await;
    let customer = fake.managed_customer_ids()[1].clone();
    // The account as an earlier run discovered and stored it.
    let acc = account(&client(&fake), &customer).await;
    let direct = account(&client(&fake), &fake.customer_ids()[1]).await;

    let fresh = client(&fake);
    let r = range("2024-01-01", "2024-01-20");
    let before = fake.requests().len();
    let got = by_key(fresh.account_insights(&acc, r).await.unwrap());
    assert_eq!(got, expected(&fake, &customer, r));
    let sent = fake.requests()[before..].to_vec();
    let lists = sent
        .iter()
        .filter(|r| r.path.ends_with(":listAccessibleCustomers"))
        .count();
    assert_eq!(lists, 1, "the routes are discovered lazily");
    assert!(
        sent.iter()
            .all(|r| !r.body.contains("FROM campaign") || r.path.contains(&customer)),
        "no campaigns are listed for finding a manager"
    );
    let metrics: Vec<_> = stream_requests_for(&sent, &customer);
    assert_eq!(metrics.len(), 1, "its details are not needed");
    assert_eq!(
        metrics[0].header("login-customer-id"),
        Some(fake.manager_id())
    );

    // Cached: later reads, of any account, go straight to the metrics.
    let before = fake.requests().len();
    let again = by_key(fresh.account_insights(&acc, r).await.unwrap());
    assert_eq!(again, got);
    let other = by_key(fresh.account_insights(&direct, r).await.unwrap());
    assert_eq!(other, expected(&fake, &direct.id.0, r));
    let sent = fake.requests()[before..].to_vec();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].header("login-customer-id"), Some(fake.manager_id()));
    assert_eq!(sent[1].header("login-customer-id"), None, "read directly");
}

#[tokio::test]
async fn the_fake_refuses_a_managed_client_without_its_manager_as_login_customer() {
    let fake = fake_with_managed_clients(1).await;
    let customer = fake.managed_customer_ids()[0].clone();
    let token = fake.issue_tokens().access_token;
    let http = reqwest::Client::new();
    let ask = |login: Option<&str>| {
        let mut request = http
            .post(format!(
                "{}/v23/customers/{customer}/googleAds:searchStream",
                fake.base_url()
            ))
            .bearer_auth(token.expose())
            .header("developer-token", google::DEVELOPER_TOKEN)
            .json(&serde_json::json!({
                "query": "SELECT campaign.id, campaign.name, campaign.status FROM campaign"
            }));
        if let Some(login) = login {
            request = request.header("login-customer-id", login);
        }
        async move {
            let reply = request.send().await.unwrap();
            (reply.status().as_u16(), reply.text().await.unwrap())
        }
    };
    for login in [None, Some("1234567890")] {
        let (status, body) = ask(login).await;
        assert_eq!(status, 403, "{login:?}: {body}");
        assert!(body.contains("PERMISSION_DENIED"), "{body}");
        assert!(body.contains("USER_PERMISSION_DENIED"), "{body}");
        match adledger_connectors::google::classify(status, &body) {
            ConnectorError::Invalid(m) => {
                assert!(
                    m.contains("authorizationError: USER_PERMISSION_DENIED"),
                    "{m}"
                )
            }
            other => panic!("not retried, not a reauthorization: {other:?}"),
        }
    }
    let (status, body) = ask(Some(fake.manager_id())).await;
    assert_eq!(status, 200, "{body}");

    // A connector whose discovery did not reach the client (a configured login customer
    // that is not its manager) reads nothing and is told why, without retrying.
    let mut config = fake.config();
    config.login_customer_id = Some("1234567890".into());
    let c = GoogleClient::new(config, Arc::new(StaticToken(token)));
    let acc = adledger_domain::connection::AdAccount {
        id: adledger_domain::AdAccountId(customer.clone()),
        name: "Client 3".into(),
        currency: adledger_domain::Currency::parse("BRL").unwrap(),
        time_zone: "America/Sao_Paulo".into(),
    };
    let e = c
        .account_insights(&acc, range("2024-01-01", "2024-01-02"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ConnectorError::Invalid(m) if m.contains("USER_PERMISSION_DENIED")),
        "{e:?}"
    );
    assert!(!e.is_retryable());
}
