//! Real platform connections end to end over the REST API, against local fakes that speak each
//! platform's request and response shapes: authorize → callback → discovery → sync → insights
//! equal to the fake's numbers, restatements, throttles, token refresh, revocation, and
//! concurrent sync requests.

use crate::helpers::{assert_problem, eventually, spawn_app_with_platforms, TestApp};
use adledger_connectors::fakes::any::AnyFake;
use adledger_connectors::fakes::google::{FakeGoogle, FakeGoogleOptions};
use adledger_connectors::fakes::meta::{FakeMeta, FakeMetaOptions};
use adledger_connectors::fakes::tiktok::{FakeTiktok, FakeTiktokOptions};
use adledger_connectors::Platforms;
use adledger_domain::DailyMetrics;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::str::FromStr;

async fn meta() -> AnyFake {
    let options = FakeMetaOptions {
        accounts: 1,
        campaigns_per_account: 3,
        page_size: 2,
        insights_page_size: 7,
        regain_access_minutes: 0,
        ..Default::default()
    };
    AnyFake::Meta(FakeMeta::start(options).await.unwrap())
}

async fn google() -> AnyFake {
    let options = FakeGoogleOptions {
        customers: 1,
        campaigns_per_customer: 3,
        batch_size: 4,
        with_manager: true,
        managed_clients: 0,
        retry_delay: "1s".into(),
    };
    AnyFake::Google(FakeGoogle::start(options).await.unwrap())
}

async fn tiktok() -> AnyFake {
    let options = FakeTiktokOptions {
        advertisers: 1,
        campaigns_per_advertiser: 3,
        campaign_page_size: 2,
        report_page_size: 4,
    };
    AnyFake::Tiktok(FakeTiktok::start(options).await.unwrap())
}

/// The callback's query as the platform sends it.
fn callback_query(fake: &AnyFake, state: &str) -> String {
    format!(
        "state={state}&{}={}",
        fake.code_param(),
        urlencode(fake.auth_code())
    )
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| v.to_owned())
    })
}

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(v.as_str().unwrap()).unwrap()
}

/// Authorizes through the API and the fake's callback; returns the new connection's id.
async fn connect(app: &TestApp, fake: &AnyFake, ws: &str) -> String {
    let r = app
        .post(
            &format!("/v1/workspaces/{ws}/connections/{}/authorize", fake.name()),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let started: Value = r.json().await.unwrap();
    let url = started["authorization_url"].as_str().unwrap();
    let state = query_param(url, "state").expect("the URL carries the state");
    let callback = format!(
        "/v1/oauth/{}/callback?{}",
        fake.name(),
        callback_query(fake, &state)
    );
    let r = app
        .request(reqwest::Method::GET, None, &callback, None)
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let connected: Value = r.json().await.unwrap();
    assert_eq!(connected["workspace_id"], ws);
    // The state works once.
    let again = app
        .request(reqwest::Method::GET, None, &callback, None)
        .await;
    assert_problem(again, 404, "not-found").await;
    let connection = connected["connection_id"].as_str().unwrap().to_owned();
    // Discovery runs right after the connect: the person sees the accounts before any sync.
    eventually("the new connection's ad accounts", || async {
        let accounts: Value = app
            .get_json(&format!(
                "/v1/workspaces/{ws}/ad-accounts?connection_id={connection}"
            ))
            .await;
        (!accounts.as_array()?.is_empty()).then_some(())
    })
    .await;
    connection
}

/// Per (campaign external id, day): the numbers the insights API answers.
async fn insights(
    app: &TestApp,
    ws: &str,
    from: &str,
    to: &str,
) -> BTreeMap<(String, NaiveDate), DailyMetrics> {
    let campaigns: Value = app
        .get_json(&format!("/v1/workspaces/{ws}/campaigns?limit=500"))
        .await;
    let external: BTreeMap<String, String> = campaigns["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_owned(),
                c["external_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let body = app
        .get_json(&format!(
            "/v1/workspaces/{ws}/insights?from={from}&to={to}&granularity=day&group_by=campaign"
        ))
        .await;
    body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let campaign = external[row["campaign_id"].as_str().unwrap()].clone();
            let day = NaiveDate::from_str(row["period"].as_str().unwrap()).unwrap();
            let metrics = DailyMetrics::new(
                row["impressions"].as_u64().unwrap(),
                row["clicks"].as_u64().unwrap(),
                dec(&row["spend"]),
                dec(&row["conversions"]),
                dec(&row["conversion_value"]),
            )
            .unwrap();
            ((campaign, day), metrics)
        })
        .collect()
}

/// What the fake holds for the same campaigns and days (days without numbers left out).
fn expected(
    fake: &AnyFake,
    campaigns: &[String],
    from: NaiveDate,
    to: NaiveDate,
) -> BTreeMap<(String, NaiveDate), DailyMetrics> {
    let mut out = BTreeMap::new();
    for campaign in campaigns {
        for day in from.iter_days().take_while(|d| *d <= to) {
            if let Some(m) = fake.expected_metrics(campaign, day) {
                let all_zero = m.impressions == 0
                    && m.clicks == 0
                    && m.spend.is_zero()
                    && m.conversions.is_zero()
                    && m.conversion_value.is_zero();
                if !all_zero {
                    out.insert((campaign.clone(), day), m);
                }
            }
        }
    }
    out
}

fn without_zero_days(
    rows: BTreeMap<(String, NaiveDate), DailyMetrics>,
) -> BTreeMap<(String, NaiveDate), DailyMetrics> {
    rows.into_iter()
        .filter(|(_, m)| {
            !(m.impressions == 0
                && m.clicks == 0
                && m.spend.is_zero()
                && m.conversions.is_zero()
                && m.conversion_value.is_zero())
        })
        .collect()
}

async fn end_to_end(fake: AnyFake) {
    let app = spawn_app_with_platforms(fake.platforms()).await;
    let platforms = app.get_json("/v1/platforms").await;
    assert!(platforms
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["platform"] == fake.name() && p["configured"] == true));
    let ws = app.workspace("Real platforms").await;
    let conn = connect(&app, &fake, &ws).await;

    // A throttle answer in the platform's own shape is waited out.
    fake.throttle_next(1);
    let (from, to) = ("2024-01-01", "2024-02-20");
    let run = app.sync(&ws, &conn, from, to).await;
    assert_eq!(run["status"], "completed", "{run}");
    let campaigns: Vec<String> = app
        .get_json(&format!("/v1/workspaces/{ws}/campaigns?limit=500"))
        .await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["external_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(campaigns.len(), 3, "discovery followed every page");
    let c = app
        .get_json(&format!("/v1/workspaces/{ws}/connections/{conn}"))
        .await;
    assert_eq!(c["status"], "active");
    assert_eq!(c["platform"], fake.name());
    // The read model shows when a person must reconnect, as the connection's events record it:
    // only a token that cannot be refreshed (Meta's 60-day one) runs out.
    if matches!(fake, AnyFake::Meta(_)) {
        assert!(c["token_expires_at"].is_string(), "{c}");
    } else {
        assert!(c["token_expires_at"].is_null(), "{c}");
    }
    let (d0, d1) = (
        NaiveDate::from_str(from).unwrap(),
        NaiveDate::from_str(to).unwrap(),
    );
    let want = expected(&fake, &campaigns, d0, d1);
    assert!(!want.is_empty());
    assert_eq!(without_zero_days(insights(&app, &ws, from, to).await), want);

    // A restated day: the next sync updates it, and the log keeps both versions.
    let day = NaiveDate::from_ymd_opt(2024, 2, 10).unwrap();
    fake.restate(day);
    let run = app.sync(&ws, &conn, "2024-02-01", to).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert!(run["days_restated"].as_u64().unwrap() > 0, "{run}");
    let want = expected(&fake, &campaigns, d0, d1);
    assert_eq!(without_zero_days(insights(&app, &ws, from, to).await), want);
    let events = app.events(&ws, "").await;
    assert!(events.iter().any(
        |e| e["event_type"] == "DailyInsightsRestated" && e["payload"]["date"] == "2024-02-10"
    ));

    // No token in any event or answer.
    let all = app
        .get(&format!("/v1/workspaces/{ws}/events?reveal=true"))
        .await
        .text()
        .await
        .unwrap();
    for request in fake.requests() {
        for header in ["authorization", "access-token"] {
            if let Some(token) = request.header(header) {
                let token = token.trim_start_matches("Bearer ");
                assert!(!all.contains(token), "a token is in the event log");
            }
        }
    }

    // Two sync requests at once: one runs, the other is refused; nothing is counted twice.
    let path = format!("/v1/workspaces/{ws}/connections/{conn}/syncs");
    let body = json!({ "from": from, "to": to });
    let (a, b) = tokio::join!(app.post(&path, &body), app.post(&path, &body));
    let statuses = [a.status().as_u16(), b.status().as_u16()];
    assert!(statuses.contains(&202), "{statuses:?}");
    for r in [a, b] {
        if r.status() == 202 {
            let id = r.json::<Value>().await.unwrap()["sync_id"]
                .as_str()
                .unwrap()
                .to_owned();
            app.finished(&ws, &id).await;
        } else {
            assert_problem(r, 409, "sync-already-running").await;
        }
    }
    assert_eq!(without_zero_days(insights(&app, &ws, from, to).await), want);

    // Revoked at the platform: the sync fails, the connection waits for a person.
    fake.revoke_tokens();
    let run = app.sync(&ws, &conn, "2024-02-19", to).await;
    assert_eq!(run["status"], "failed");
    assert!(
        run["error"].as_str().unwrap().starts_with("auth_expired")
            && run["failure_kind"] == "auth_expired",
        "{run}"
    );
    let connection = eventually("the connection to need reauthorization", || async {
        let c = app
            .get_json(&format!("/v1/workspaces/{ws}/connections/{conn}"))
            .await;
        (c["status"] == "needs_reauth").then_some(c)
    })
    .await;
    assert_eq!(connection["platform"], fake.name());
    let r = app.post(&path, &body).await;
    assert_problem(r, 409, "connection-unavailable").await;
    // The person grants access again and reconnects the same connection: it syncs again.
    fake.regrant();
    let r = app
        .post(
            &format!("/v1/workspaces/{ws}/connections/{}/authorize", fake.name()),
            &json!({ "connection_id": conn }),
        )
        .await;
    let url = r.json::<Value>().await.unwrap()["authorization_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let state = query_param(&url, "state").unwrap();
    let callback = format!(
        "/v1/oauth/{}/callback?{}",
        fake.name(),
        callback_query(&fake, &state)
    );
    let r = app
        .request(reqwest::Method::GET, None, &callback, None)
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap()["connection_id"], conn);
    eventually("the connection to be active again", || async {
        let c = app
            .get_json(&format!("/v1/workspaces/{ws}/connections/{conn}"))
            .await;
        (c["status"] == "active").then_some(())
    })
    .await;
    let run = app.sync(&ws, &conn, "2024-02-19", to).await;
    assert_eq!(run["status"], "completed", "{run}");

    // Disconnecting forgets the tokens; syncs are refused.
    let r = app
        .request(
            reqwest::Method::DELETE,
            Some(&app.token),
            &format!("/v1/workspaces/{ws}/connections/{conn}"),
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    assert_problem(app.post(&path, &body).await, 409, "connection-unavailable").await;
}

#[tokio::test]
async fn meta_end_to_end() {
    end_to_end(meta().await).await;
}

#[tokio::test]
async fn google_ads_end_to_end() {
    let fake = google().await;
    end_to_end(fake).await;
}

#[tokio::test]
async fn tiktok_end_to_end() {
    end_to_end(tiktok().await).await;
}

#[tokio::test]
async fn an_expired_google_token_is_refreshed_and_the_sync_goes_on() {
    let fake = FakeGoogle::start(FakeGoogleOptions {
        customers: 1,
        campaigns_per_customer: 2,
        ..Default::default()
    })
    .await
    .unwrap();
    let google = AnyFake::Google(fake);
    let app = spawn_app_with_platforms(google.platforms()).await;
    let ws = app.workspace("Refresh").await;
    let conn = connect(&app, &google, &ws).await;
    let AnyFake::Google(fake) = &google else {
        unreachable!()
    };
    fake.expire_access_token();
    let run = app.sync(&ws, &conn, "2024-03-01", "2024-03-10").await;
    assert_eq!(run["status"], "completed", "{run}");
    let refreshes = |f: &FakeGoogle| {
        f.requests()
            .iter()
            .filter(|r| {
                r.path == "/token" && r.form_param("grant_type").as_deref() == Some("refresh_token")
            })
            .count()
    };
    assert_eq!(refreshes(fake), 1);
    // The refreshed token was kept: the next sync needs no refresh.
    let run = app.sync(&ws, &conn, "2024-03-11", "2024-03-12").await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(refreshes(fake), 1);
}

#[tokio::test]
async fn platforms_without_credentials_are_not_configured_and_states_are_checked() {
    let app = spawn_app_with_platforms(Platforms::default()).await;
    let ws = app.workspace("Unconfigured").await;
    let r = app
        .post(
            &format!("/v1/workspaces/{ws}/connections/google/authorize"),
            &json!({}),
        )
        .await;
    let body = assert_problem(r, 422, "validation-failed").await;
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("not configured"));
    let r = app
        .post(
            &format!("/v1/workspaces/{ws}/connections/myspace/authorize"),
            &json!({}),
        )
        .await;
    assert_problem(r, 404, "not-found").await;
    let r = app
        .request(
            reqwest::Method::GET,
            None,
            "/v1/oauth/google/callback?state=adl_st_forged&code=x",
            None,
        )
        .await;
    assert_problem(r, 404, "not-found").await;
    let listed = app.get_json("/v1/platforms").await;
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["platform"] == "google" && p["configured"] == false));
}
