//! Insights as reported: `as_of` answers what the insights query answered then (before later
//! restatements, nothing before the first recording), and the history of a day lists every value
//! it had with when and by which sync it was recorded.

use crate::helpers::{invalid_fields, spawn_app, TestApp};
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

/// The one row of `campaign` on `date`, as of `as_of` (none: the latest); `None` when no row.
async fn day_row(
    app: &TestApp,
    ws: &str,
    campaign: &str,
    date: &str,
    as_of: Option<&str>,
) -> Option<Value> {
    let as_of = as_of
        .map(|a| format!("&as_of={}", urlencoding(a)))
        .unwrap_or_default();
    let body = app
        .get_json(&format!(
            "/v1/workspaces/{ws}/insights?from={date}&to={date}&group_by=campaign&campaign_ids={campaign}{as_of}"
        ))
        .await;
    let rows = body["rows"].as_array().unwrap();
    assert!(rows.len() <= 1, "{body}");
    rows.first().cloned()
}

/// A day's numbers, as a row or an event's payload carries them.
fn numbers(v: &Value) -> [Value; 5] {
    [
        "impressions",
        "clicks",
        "spend",
        "conversions",
        "conversion_value",
    ]
    .map(|f| v[f].clone())
}

fn urlencoding(raw: &str) -> String {
    raw.replace('+', "%2B").replace(':', "%3A")
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[tokio::test]
async fn a_restated_day_answers_its_old_numbers_before_the_restatement_and_new_ones_after() {
    let app = spawn_app().await;
    let ws = app.workspace("Acme").await;
    let conn = app.sandbox(&ws, 11, 3).await;
    app.sync(&ws, &conn, "2024-03-01", "2024-03-31").await;
    let second = app.sync(&ws, &conn, "2024-03-01", "2024-03-31").await;
    assert!(second["days_restated"].as_i64().unwrap() > 0, "{second}");

    let events = app.events(&ws, "").await;
    let restated = events
        .iter()
        .find(|e| e["event_type"] == "DailyInsightsRestated")
        .unwrap();
    let p = &restated["payload"];
    let (campaign, date) = (
        p["campaign_id"].as_str().unwrap(),
        p["date"].as_str().unwrap(),
    );
    let recorded = events
        .iter()
        .find(|e| {
            e["event_type"] == "DailyInsightsRecorded"
                && e["payload"]["campaign_id"] == campaign
                && e["payload"]["date"] == date
        })
        .unwrap();
    let first_at = time(&recorded["recorded_at"]);
    let restated_at = time(&restated["recorded_at"]);
    let restated_position = restated["position"].as_i64().unwrap();
    let micro = Duration::microseconds(1);

    // Before the first recording: nothing.
    assert_eq!(
        day_row(&app, &ws, campaign, date, Some(&rfc3339(first_at - micro))).await,
        None
    );
    let first_position = recorded["position"].as_i64().unwrap();
    assert_eq!(
        day_row(
            &app,
            &ws,
            campaign,
            date,
            Some(&(first_position - 1).to_string())
        )
        .await,
        None
    );
    // Between the recording and the restatement: the old numbers, by time and by position.
    let previous = numbers(&p["previous"]);
    assert_ne!(previous, numbers(p), "a restatement changes a number");
    for as_of in [
        rfc3339(first_at),
        rfc3339(restated_at - micro),
        (restated_position - 1).to_string(),
    ] {
        let row = day_row(&app, &ws, campaign, date, Some(&as_of))
            .await
            .unwrap();
        assert_eq!(numbers(&row), previous, "as of {as_of}");
    }
    // From the restatement on: the new numbers, as the latest answer has them.
    let latest = day_row(&app, &ws, campaign, date, None).await.unwrap();
    assert_eq!(numbers(&latest), numbers(p));
    for as_of in [rfc3339(restated_at), restated_position.to_string()] {
        let row = day_row(&app, &ws, campaign, date, Some(&as_of))
            .await
            .unwrap();
        assert_eq!(row, latest, "as of {as_of}");
    }

    // As of now, the whole answer (every grouping and paging) equals the latest one.
    let now = rfc3339(Utc::now());
    for query in [
        "granularity=total&group_by=campaign",
        "granularity=week&group_by=platform,ad_account",
        "granularity=day&limit=7",
    ] {
        let path = format!("/v1/workspaces/{ws}/insights?from=2024-03-01&to=2024-03-31&{query}");
        let latest = app.get_json(&path).await;
        let as_of = app
            .get_json(&format!("{path}&as_of={}", urlencoding(&now)))
            .await;
        assert_eq!(latest["rows"], as_of["rows"], "{query}");
        assert!(!latest["rows"].as_array().unwrap().is_empty());
    }
    // Between the two syncs, the total is the sum of the first reports only.
    let between = rfc3339(restated_at - micro);
    let firsts: i64 = events
        .iter()
        .filter(|e| {
            e["event_type"] == "DailyInsightsRecorded" && time(&e["recorded_at"]) < restated_at
        })
        .map(|e| e["payload"]["impressions"].as_i64().unwrap())
        .sum();
    let total = app
        .get_json(&format!(
            "/v1/workspaces/{ws}/insights?from=2024-03-01&to=2024-03-31&granularity=total&as_of={}",
            urlencoding(&between)
        ))
        .await;
    assert_eq!(total["rows"][0]["impressions"].as_i64().unwrap(), firsts);

    // NDJSON as of the past streams the same rows as JSON does.
    let path = format!(
        "/v1/workspaces/{ws}/insights?from=2024-03-01&to=2024-03-31&group_by=campaign&as_of={}",
        restated_position - 1
    );
    let json = app.get_json(&path).await;
    let r = app
        .client
        .get(app.url(&path))
        .bearer_auth(&app.token)
        .header("accept", "application/x-ndjson")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let lines: Vec<Value> = r
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(Value::Array(lines), json["rows"]);
}

#[tokio::test]
async fn the_history_of_a_day_lists_every_value_with_when_and_which_sync() {
    let app = spawn_app().await;
    let ws = app.workspace("Acme").await;
    let conn = app.sandbox(&ws, 11, 2).await;
    let first = app.sync(&ws, &conn, "2024-03-01", "2024-03-31").await;
    let second = app.sync(&ws, &conn, "2024-03-01", "2024-03-31").await;
    let events = app.events(&ws, "").await;
    let restated = events
        .iter()
        .find(|e| e["event_type"] == "DailyInsightsRestated")
        .unwrap();
    let p = &restated["payload"];
    let (campaign, date) = (
        p["campaign_id"].as_str().unwrap(),
        p["date"].as_str().unwrap(),
    );
    let reports: Vec<&Value> = events
        .iter()
        .filter(|e| e["payload"]["campaign_id"] == campaign && e["payload"]["date"] == date)
        .collect();
    assert_eq!(reports.len(), 2);

    let path = format!("/v1/workspaces/{ws}/insights/history?campaign_id={campaign}&date={date}");
    let history = app.get_json(&path).await;
    let values = history.as_array().unwrap();
    assert_eq!(values.len(), 2, "{history}");
    for (i, (value, event)) in values.iter().zip(&reports).enumerate() {
        assert_eq!(value["revision"], i as i64 + 1);
        assert_eq!(value["position"], event["position"]);
        assert_eq!(time(&value["recorded_at"]), time(&event["recorded_at"]));
        assert_eq!(value["impressions"], event["payload"]["impressions"]);
        assert_eq!(value["spend"], event["payload"]["spend"]);
        assert_eq!(value["sync_id"], event["payload"]["sync_id"]);
    }
    assert_eq!(values[0]["sync_id"], first["id"]);
    assert_eq!(values[1]["sync_id"], second["id"]);
    assert_eq!(values[0]["superseded_position"], values[1]["position"]);
    assert_eq!(values[0]["superseded_at"], values[1]["recorded_at"]);
    assert!(values[1]["superseded_at"].is_null());

    // Paged one value at a time, the pages concatenate to the whole.
    let r = app.get(&format!("{path}&limit=1")).await;
    let link = r.headers()["link"].to_str().unwrap().to_owned();
    let page: Value = r.json().await.unwrap();
    assert_eq!(page[0], values[0]);
    let next = link.trim_start_matches('<').split('>').next().unwrap();
    let page: Value = app.get_json(next).await;
    assert_eq!(page[0], values[1]);

    // Another workspace sees nothing of this campaign; a day never reported has no values.
    let other = app.workspace("Other").await;
    let theirs =
        format!("/v1/workspaces/{other}/insights/history?campaign_id={campaign}&date={date}");
    assert_eq!(app.get_json(&theirs).await, serde_json::json!([]));
    let never =
        format!("/v1/workspaces/{ws}/insights/history?campaign_id={campaign}&date=2024-05-01");
    assert_eq!(app.get_json(&never).await, serde_json::json!([]));
}

#[tokio::test]
async fn bad_as_of_and_history_queries_are_problems() {
    let app = spawn_app().await;
    let ws = app.workspace("Acme").await;
    for bad in ["0", "yesterday", "2024-03-01", "99999999999999999999", "-3"] {
        let r = app
            .get(&format!(
                "/v1/workspaces/{ws}/insights?from=2024-03-01&to=2024-03-31&as_of={bad}"
            ))
            .await;
        let (_, fields) = invalid_fields(r).await;
        assert_eq!(fields, ["as_of"], "{bad}");
    }
    let r = app
        .get(&format!("/v1/workspaces/{ws}/insights/history"))
        .await;
    let (_, fields) = invalid_fields(r).await;
    assert_eq!(fields, ["campaign_id", "date"]);
    let r = app
        .get(&format!(
            "/v1/workspaces/{ws}/insights/history?campaign_id=00000000-0000-0000-0000-000000000001&date=2024-02-30&limit=0"
        ))
        .await;
    let (_, fields) = invalid_fields(r).await;
    assert_eq!(fields, ["date", "limit"]);
    // A cursor of the insights listing does not page a day's history.
    let r = app
        .get(&format!(
            "/v1/workspaces/{ws}/insights/history?campaign_id=00000000-0000-0000-0000-000000000001&date=2024-02-03&cursor=abc"
        ))
        .await;
    let (_, fields) = invalid_fields(r).await;
    assert_eq!(fields, ["cursor"]);
}
