//! Replay filters of the events API: recorded time, event types, actor, stream type, each alone
//! and combined (AND), checked against the same predicate applied to the unfiltered history;
//! and resuming with the opaque cursor of a bounded answer.

use crate::helpers::{invalid_fields, spawn_app, TestApp};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

fn actor(e: &Value) -> String {
    let a = &e["metadata"]["actor"];
    match a["kind"].as_str().unwrap() {
        "user" => format!("user:{}", a["user_id"].as_str().unwrap()),
        "api_key" => format!("api_key:{}", a["api_key_id"].as_str().unwrap()),
        "system" => format!("system:{}", a["name"].as_str().unwrap()),
        other => other.to_owned(),
    }
}

fn recorded(e: &Value) -> DateTime<Utc> {
    e["recorded_at"].as_str().unwrap().parse().unwrap()
}

fn positions(events: &[Value]) -> Vec<i64> {
    events
        .iter()
        .map(|e| e["position"].as_i64().unwrap())
        .collect()
}

/// A workspace with events by its owner, by an API key (the sync it started carries its actor)
/// and by adledger's sync worker (discovery).
async fn history(app: &TestApp) -> (String, String, String) {
    let ws = app.workspace("Acme").await;
    let key: Value = app
        .post(
            &format!("/v1/workspaces/{ws}/api-keys"),
            &json!({ "name": "robot", "scope": "read_write" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let (key_id, secret) = (key["id"].as_str().unwrap(), key["key"].as_str().unwrap());
    let r = app
        .post_as(
            secret,
            &format!("/v1/workspaces/{ws}/connections"),
            &json!({ "platform": "sandbox", "label": "Sandbox", "sandbox": { "seed": 3, "ad_accounts": 1, "campaigns": 2 } }),
        )
        .await;
    assert_eq!(r.status(), 201);
    let conn = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .post_as(
            secret,
            &format!("/v1/workspaces/{ws}/connections/{conn}/syncs"),
            &json!({ "from": "2024-01-01", "to": "2024-01-04" }),
        )
        .await;
    assert_eq!(r.status(), 202);
    let sync = r.json::<Value>().await.unwrap()["sync_id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.finished(&ws, &sync).await;
    let me = app.get_json("/v1/me").await;
    let owner = me["user_id"].as_str().unwrap().to_owned();
    (ws, format!("user:{owner}"), format!("api_key:{key_id}"))
}

#[tokio::test]
async fn each_filter_and_their_combination_keep_exactly_the_matching_events() {
    let app = spawn_app().await;
    let (ws, owner, key) = history(&app).await;
    let all = app.events(&ws, "").await;
    let check = |query: String, keep: &dyn Fn(&Value) -> bool| {
        let expected: Vec<i64> =
            positions(&all.iter().filter(|e| keep(e)).cloned().collect::<Vec<_>>());
        (query, expected)
    };
    let middle = recorded(&all[all.len() / 2]);
    let late = recorded(&all[all.len() * 3 / 4]);
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let cases = vec![
        check(format!("actor={owner}"), &|e| actor(e) == owner),
        check(format!("actor={key}"), &|e| actor(e) == key),
        check("actor=system".into(), &|e| actor(e).starts_with("system:")),
        check("event_types=DailyInsightsRecorded,SyncCompleted".into(), &|e| {
            e["event_type"] == "DailyInsightsRecorded" || e["event_type"] == "SyncCompleted"
        }),
        check("stream_type=campaign".into(), &|e| e["stream_type"] == "campaign"),
        check(format!("from_time={}", time(middle)), &|e| recorded(e) >= middle),
        check(format!("to_time={}", time(middle)), &|e| recorded(e) <= middle),
        check(
            format!("from_time={}&to_time={}", time(middle), time(late)),
            &|e| recorded(e) >= middle && recorded(e) <= late,
        ),
        check(
            format!(
                "stream_type=connection&actor={key}&event_types=SyncStarted,PlatformConnected,SyncClaimed"
            ),
            &|e| {
                e["stream_type"] == "connection"
                    && actor(e) == key
                    && ["SyncStarted", "PlatformConnected", "SyncClaimed"]
                        .contains(&e["event_type"].as_str().unwrap())
            },
        ),
        check(
            format!("stream_type=campaign&actor={key}&from_time={}", time(middle)),
            &|e| e["stream_type"] == "campaign" && actor(e) == key && recorded(e) >= middle,
        ),
    ];
    for (query, expected) in cases {
        let got = positions(
            &app.events(&ws, &format!("?{}", query.replace('+', "%2B")))
                .await,
        );
        assert!(
            !expected.is_empty(),
            "{query}: the case must select something"
        );
        assert!(
            expected.len() < all.len(),
            "{query}: the case must leave something out"
        );
        assert_eq!(got, expected, "{query}");
    }
    // Two filters that exclude each other: nothing.
    let none = app
        .events(&ws, &format!("?actor={owner}&stream_type=campaign"))
        .await;
    assert_eq!(none, Vec::<Value>::new());
}

#[tokio::test]
async fn a_filtered_replay_resumes_from_its_cursor_and_the_pages_make_the_whole() {
    let app = spawn_app().await;
    let (ws, _, key) = history(&app).await;
    let query = format!("stream_type=campaign&actor={key}");
    let whole = app.events(&ws, &format!("?{query}")).await;
    assert!(whole.len() > 6, "{}", whole.len());
    let mut pages = Vec::new();
    let mut path = format!("/v1/workspaces/{ws}/events?{query}&limit=3");
    loop {
        let r = app.get(&path).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/x-ndjson");
        let link = r
            .headers()
            .get("link")
            .map(|l| l.to_str().unwrap().to_owned());
        let page: Vec<Value> = r
            .text()
            .await
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(page.len() <= 3);
        pages.extend(page);
        match link {
            Some(link) => {
                path = link
                    .trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap()
                    .to_owned()
            }
            None => break,
        }
    }
    assert_eq!(positions(&pages), positions(&whole));

    // A cursor is bound to its filters: with others it is refused, not misread.
    let r = app
        .get(&format!("/v1/workspaces/{ws}/events?{query}&limit=3"))
        .await;
    let link = r.headers()["link"].to_str().unwrap().to_owned();
    let cursor = link
        .split("cursor=")
        .nth(1)
        .unwrap()
        .split('>')
        .next()
        .unwrap();
    let r = app
        .get(&format!(
            "/v1/workspaces/{ws}/events?stream_type=connection&limit=3&cursor={cursor}"
        ))
        .await;
    let (_, fields) = invalid_fields(r).await;
    assert_eq!(fields, ["cursor"]);
    // Without limit, the cursor resumes a streamed replay too.
    let rest = app.events(&ws, &format!("?{query}&cursor={cursor}")).await;
    assert_eq!(positions(&rest), positions(&whole[3..]));
}

#[tokio::test]
async fn bad_filters_are_problems_naming_the_field() {
    let app = spawn_app().await;
    let ws = app.workspace("Acme").await;
    for (query, field) in [
        ("from_time=yesterday", "from_time"),
        ("to_time=2024-01-01", "to_time"),
        (
            "from_time=2024-02-01T00:00:00Z&to_time=2024-01-01T00:00:00Z",
            "to_time",
        ),
        ("event_types=DailyInsightsRecorded,Nope", "event_types"),
        ("actor=root", "actor"),
        ("actor=user:42", "actor"),
        ("stream_type=galaxy", "stream_type"),
        ("limit=0", "limit"),
        ("limit=10001", "limit"),
        ("cursor=abc", "cursor"),
    ] {
        let r = app
            .get(&format!("/v1/workspaces/{ws}/events?{query}"))
            .await;
        let (body, fields) = invalid_fields(r).await;
        assert_eq!(fields, [field], "{query}: {body}");
    }
}
