use crate::helpers::{assert_problem, spawn_app};
use rust_decimal::Decimal;
use serde_json::Value;
use std::collections::BTreeMap;
use std::str::FromStr;

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(
        v.as_str()
            .unwrap_or_else(|| panic!("not a decimal string: {v}")),
    )
    .unwrap()
}

/// Per campaign: (impressions, clicks, spend, conversions, conversion value) from the raw events,
/// the last report of each day winning, as an auditor would compute it.
fn totals_from_events(events: &[Value]) -> BTreeMap<String, (i64, i64, Decimal, Decimal, Decimal)> {
    let mut days: BTreeMap<(String, String), &Value> = BTreeMap::new();
    for e in events {
        if e["event_type"] == "DailyInsightsRecorded" || e["event_type"] == "DailyInsightsRestated"
        {
            let p = &e["payload"];
            days.insert(
                (
                    p["campaign_id"].as_str().unwrap().into(),
                    p["date"].as_str().unwrap().into(),
                ),
                p,
            );
        }
    }
    let mut totals = BTreeMap::new();
    for ((campaign, _), p) in days {
        let t =
            totals
                .entry(campaign)
                .or_insert((0, 0, Decimal::ZERO, Decimal::ZERO, Decimal::ZERO));
        t.0 += p["impressions"].as_i64().unwrap();
        t.1 += p["clicks"].as_i64().unwrap();
        t.2 += dec(&p["spend"]);
        t.3 += dec(&p["conversions"]);
        t.4 += dec(&p["conversion_value"]);
    }
    totals
}

#[tokio::test]
async fn insights_equal_the_sum_of_the_events_and_follow_restatements() {
    let app = spawn_app().await;
    let ws = app.workspace("Acme").await;
    let conn = app.sandbox(&ws, 3, 4).await;
    for _ in 0..2 {
        app.sync(&ws, &conn, "2024-01-01", "2024-02-15").await;
        let expected = totals_from_events(&app.events(&ws, "").await);
        let body = app
            .get_json(&format!("/v1/workspaces/{ws}/insights?from=2024-01-01&to=2024-02-15&granularity=total&group_by=campaign"))
            .await;
        let rows = body["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 4);
        for row in rows {
            let t = &expected[row["campaign_id"].as_str().unwrap()];
            assert_eq!(row["impressions"].as_i64().unwrap(), t.0);
            assert_eq!(row["clicks"].as_i64().unwrap(), t.1);
            assert_eq!(dec(&row["spend"]), t.2);
            assert_eq!(dec(&row["conversions"]), t.3);
            assert_eq!(dec(&row["conversion_value"]), t.4);
            assert!(row["period"].is_null());
            assert!(row["campaign_name"].is_string());
            let ctr = dec(&row["ctr"]);
            let expected_ctr = (Decimal::from(t.1) / Decimal::from(t.0)).round_dp(6);
            assert_eq!(ctr, expected_ctr.normalize());
        }
    }
}

#[tokio::test]
async fn insights_group_by_day_week_and_month() {
    let app = spawn_app().await;
    let ws = app.workspace("Acme").await;
    let conn = app.sandbox(&ws, 5, 2).await;
    app.sync(&ws, &conn, "2024-01-01", "2024-02-29").await;
    let q = |g: &str| {
        format!("/v1/workspaces/{ws}/insights?from=2024-01-01&to=2024-02-29&granularity={g}")
    };
    let days = app.get_json(&q("day")).await["rows"]
        .as_array()
        .unwrap()
        .clone();
    let weeks = app.get_json(&q("week")).await["rows"]
        .as_array()
        .unwrap()
        .clone();
    let months = app.get_json(&q("month")).await["rows"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(days.len(), 60);
    assert_eq!(months.len(), 2);
    assert_eq!(months[0]["period"], "2024-01-01");
    assert_eq!(months[1]["period"], "2024-02-01");
    // 2024-01-01 is a Monday: nine ISO weeks cover Jan 1 to Feb 29.
    assert_eq!(weeks.len(), 9);
    assert_eq!(weeks[1]["period"], "2024-01-08");
    let sum = |rows: &[Value]| {
        rows.iter()
            .map(|r| r["impressions"].as_i64().unwrap())
            .sum::<i64>()
    };
    assert_eq!(sum(&days), sum(&weeks));
    assert_eq!(sum(&days), sum(&months));
    let by_platform = app
        .get_json(&format!("/v1/workspaces/{ws}/insights?from=2024-01-01&to=2024-02-29&granularity=total&group_by=platform,ad_account"))
        .await;
    assert_eq!(by_platform["rows"][0]["platform"], "sandbox");
    assert_eq!(
        by_platform["rows"][0]["impressions"].as_i64().unwrap(),
        sum(&days)
    );
}

#[tokio::test]
async fn bad_insights_queries_are_problems_naming_the_field() {
    let app = spawn_app().await;
    let ws = app.workspace("Acme").await;
    let base = format!("/v1/workspaces/{ws}/insights");
    for (query, field) in [
        ("?from=2024-01-01", "to"),
        ("?from=2024-1-1x&to=2024-01-02", "from"),
        ("?from=2024-02-01&to=2024-01-01", "to"),
        (
            "?from=2024-01-01&to=2024-01-02&group_by=country",
            "group_by",
        ),
        (
            "?from=2024-01-01&to=2024-01-02&granularity=hour",
            "granularity",
        ),
        (
            "?from=2024-01-01&to=2024-01-02&campaign_ids=nope",
            "campaign_ids",
        ),
        ("?from=2010-01-01&to=2024-01-02", "to"),
    ] {
        let body = assert_problem(
            app.get(&format!("{base}{query}")).await,
            422,
            "validation-failed",
        )
        .await;
        let fields: Vec<_> = body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].clone())
            .collect();
        assert!(fields.contains(&field.into()), "{query}: {body}");
    }
    let unknown = uuid::Uuid::new_v4();
    let r = app
        .get(&format!(
            "/v1/workspaces/{unknown}/insights?from=2024-01-01&to=2024-01-02"
        ))
        .await;
    assert_problem(r, 404, "not-found").await;
}
