use crate::helpers::{assert_problem, invalid_fields, spawn_app};
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
        let (body, fields) = invalid_fields(app.get(&format!("{base}{query}")).await).await;
        assert!(fields.iter().any(|f| f == field), "{query}: {body}");
    }
    let unknown = uuid::Uuid::new_v4();
    let r = app
        .get(&format!(
            "/v1/workspaces/{unknown}/insights?from=2024-01-01&to=2024-01-02"
        ))
        .await;
    assert_problem(r, 404, "not-found").await;
}

/// The path and query of a `Link: <…>; rel="next"` header.
fn next_link(r: &reqwest::Response) -> Option<String> {
    let link = r.headers().get("link")?.to_str().unwrap();
    assert!(link.ends_with("; rel=\"next\""), "{link}");
    Some(link[1..link.find('>').unwrap()].to_owned())
}

#[tokio::test]
async fn insights_pages_concatenate_to_the_whole_answer() {
    let app = spawn_app().await;
    let ws = app.workspace("Acme").await;
    let conn = app.sandbox(&ws, 9, 6).await;
    app.sync(&ws, &conn, "2024-01-01", "2024-02-29").await;
    for query in [
        "granularity=day&group_by=campaign",
        "granularity=week&group_by=ad_account,platform",
        "granularity=total&group_by=campaign,ad_account",
        "granularity=month",
    ] {
        let base = format!("/v1/workspaces/{ws}/insights?from=2024-01-01&to=2024-02-29&{query}");
        let whole = app.get_json(&format!("{base}&limit=5000")).await;
        assert!(
            whole["next_cursor"].is_null(),
            "{query}: one page holds it all"
        );
        let rows = whole["rows"].as_array().unwrap();
        assert!(!rows.is_empty());
        // Page by page, following each page's Link, which names the page's next_cursor.
        let mut paged: Vec<Value> = Vec::new();
        let mut next = Some(format!("{base}&limit=7"));
        while let Some(path) = next {
            let r = app.get(&path).await;
            assert_eq!(r.status(), 200, "{path}");
            next = next_link(&r);
            let page: Value = r.json().await.unwrap();
            assert_eq!(page["group_by"], whole["group_by"]);
            let got = page["rows"].as_array().unwrap();
            match (page["next_cursor"].as_str(), &next) {
                (Some(cursor), Some(link)) => {
                    assert_eq!(got.len(), 7, "{query}: a full page before the last");
                    assert!(link.contains(&format!("&cursor={cursor}")), "{link}");
                    assert!(link.contains("&limit=7"), "{link}");
                }
                (None, None) => assert!(got.len() <= 7),
                other => panic!("{query}: next_cursor and Link disagree: {other:?}"),
            }
            paged.extend(got.iter().cloned());
        }
        assert_eq!(
            &paged, rows,
            "{query}: the pages, end to end, are the whole answer"
        );
    }
}

#[tokio::test]
async fn page_sizes_and_cursors_are_checked() {
    let app = spawn_app().await;
    let ws = app.workspace("Acme").await;
    let conn = app.sandbox(&ws, 2, 3).await;
    app.sync(&ws, &conn, "2024-01-01", "2024-01-10").await;
    let base = format!("/v1/workspaces/{ws}/insights?from=2024-01-01&to=2024-01-10");
    let first = app
        .get_json(&format!("{base}&group_by=campaign&limit=2"))
        .await;
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let field_of = |body: &Value| body["errors"][0]["field"].clone();
    for (query, field) in [
        ("&limit=0".to_owned(), "limit"),
        ("&limit=5001".to_owned(), "limit"),
        ("&cursor=not-a-cursor".to_owned(), "cursor"),
        (format!("&cursor={}", "A".repeat(2_000)), "cursor"),
        // A cursor holds for the query it came from only.
        (format!("&group_by=platform&cursor={cursor}"), "cursor"),
        (
            format!("&group_by=campaign&granularity=week&cursor={cursor}"),
            "cursor",
        ),
    ] {
        let body = assert_problem(
            app.get(&format!("{base}{query}")).await,
            422,
            "validation-failed",
        )
        .await;
        assert_eq!(field_of(&body), field, "{query}: {body}");
    }
    // Another workspace with the same query does not take it either.
    let other = app.workspace("Other").await;
    let r = app
        .get(&format!(
            "/v1/workspaces/{other}/insights?from=2024-01-01&to=2024-01-10&group_by=campaign&limit=2&cursor={cursor}"
        ))
        .await;
    assert_problem(r, 422, "validation-failed").await;
    // With its own query, it gives the next page.
    let second = app
        .get_json(&format!("{base}&group_by=campaign&limit=2&cursor={cursor}"))
        .await;
    assert_eq!(second["rows"].as_array().unwrap().len(), 2);
}

/// Dates in every form but `YYYY-MM-DD` within 2000-01-01..=2099-12-31 are refused, naming the
/// parameter.
pub const BAD_DATES: [&str; 12] = [
    "2026-1-1",
    "2026-01-1",
    "0000-01-01",
    "-0001-01-01",
    "+2026-01-01",
    "9999-12-31",
    "1999-12-31",
    "2100-01-01",
    "2024-02-30",
    "2024-01-01T00:00:00Z",
    "20240101",
    " 2024-01-01",
];

#[tokio::test]
async fn insights_dates_must_be_iso_days_within_bounds() {
    let app = spawn_app().await;
    let ws = app.workspace("Acme").await;
    let base = format!("/v1/workspaces/{ws}/insights");
    for bad in BAD_DATES {
        // As a client's URL encoder would send it ('+' and ' ' encoded).
        let bad_query = bad.replace('+', "%2B").replace(' ', "%20");
        for (query, field) in [
            (format!("?from={bad_query}&to=2024-01-02"), "from"),
            (format!("?from=2024-01-01&to={bad_query}"), "to"),
        ] {
            let (body, fields) = invalid_fields(app.get(&format!("{base}{query}")).await).await;
            assert_eq!(fields, [field], "{bad:?}: {body}");
        }
    }
    // The bounds themselves are days like any other; a range is at most 1,098 days long.
    let r = app
        .get(&format!("{base}?from=2000-01-01&to=2000-01-02"))
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .get(&format!("{base}?from=2099-12-30&to=2099-12-31"))
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .get(&format!("{base}?from=2024-01-01&to=2027-01-02"))
        .await;
    assert_eq!(r.status(), 200);
    let body = assert_problem(
        app.get(&format!("{base}?from=2024-01-01&to=2027-01-03"))
            .await,
        422,
        "validation-failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "to", "{body}");
}
