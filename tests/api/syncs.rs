use crate::helpers::{
    assert_problem, eventually, invalid_fields, spawn_api_only, spawn_app,
    spawn_app_with_sandbox_limits, TestApp,
};
use crate::insights::BAD_DATES;
use adledger_commands::connections::SandboxLimits;
use serde_json::{json, Value};

#[tokio::test]
async fn a_sync_discovers_accounts_and_campaigns_and_reports_its_counts() {
    let app = spawn_app().await;
    let ws = app.workspace("Acme").await;
    let conn = app.sandbox(&ws, 7, 5).await;
    let run = app.sync(&ws, &conn, "2024-01-01", "2024-01-10").await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["days_recorded"], 50);
    assert_eq!(run["days_restated"], 0);
    assert_eq!(run["progress_through"], "2024-01-10", "{run}");
    // One worker claimed it once and carried it out.
    assert_eq!(run["attempts"], 1, "{run}");
    assert!(
        run["worker"].as_str().is_some_and(|w| w.contains(':')),
        "{run}"
    );
    assert!(run["failure_kind"].is_null(), "{run}");
    let at =
        |field: &str| chrono::DateTime::parse_from_rfc3339(run[field].as_str().unwrap()).unwrap();
    assert!(at("finished_at") > at("started_at"), "{run}");

    let accounts = app
        .get_json(&format!("/v1/workspaces/{ws}/ad-accounts"))
        .await;
    assert_eq!(accounts.as_array().unwrap().len(), 1);
    assert_eq!(accounts[0]["currency"].as_str().unwrap().len(), 3);
    // The account's sync cursor: every day of the run is stored.
    assert_eq!(accounts[0]["synced_through"], "2024-01-10", "{accounts}");

    let connection = app
        .get_json(&format!("/v1/workspaces/{ws}/connections/{conn}"))
        .await;
    assert_eq!(connection["last_sync_status"], "completed");
    assert_eq!(
        app.get_json(&format!("/v1/workspaces/{ws}/connections"))
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Campaigns page through with a cursor and carry their sync status.
    let mut seen = Vec::new();
    let mut query = "limit=2".to_owned();
    loop {
        let page = app
            .get_json(&format!("/v1/workspaces/{ws}/campaigns?{query}"))
            .await;
        for c in page["items"].as_array().unwrap() {
            assert_eq!(c["synced_through"], "2024-01-10");
            assert_eq!(c["last_sync_status"], "completed");
            seen.push(c["id"].clone());
        }
        match page["next_after"].as_str() {
            Some(after) => query = format!("limit=2&after={after}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    let runs = app
        .get_json(&format!("/v1/workspaces/{ws}/connections/{conn}/syncs"))
        .await;
    assert_eq!(runs.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_later_sync_restates_changed_days_and_the_log_keeps_both_versions() {
    let app = spawn_app().await;
    let ws = app.workspace("Acme").await;
    let conn = app.sandbox(&ws, 11, 8).await;
    app.sync(&ws, &conn, "2024-03-01", "2024-03-31").await;
    let second = app.sync(&ws, &conn, "2024-03-01", "2024-03-31").await;
    let restated = second["days_restated"].as_i64().unwrap();
    assert!(restated > 0, "{second}");
    assert_eq!(second["days_recorded"], 0);
    assert_eq!(
        restated + second["days_unchanged"].as_i64().unwrap(),
        8 * 31
    );

    let restatements: Vec<Value> = app
        .events(&ws, "")
        .await
        .into_iter()
        .filter(|e| e["event_type"] == "DailyInsightsRestated")
        .collect();
    assert_eq!(restatements.len() as i64, restated);
    assert!(restatements
        .iter()
        .all(|e| e["payload"]["previous"].is_object()));

    let third = app.sync(&ws, &conn, "2024-03-01", "2024-03-31").await;
    assert_eq!(
        third["days_unchanged"],
        8 * 31,
        "nothing changed, nothing appended: {third}"
    );
}

#[tokio::test]
async fn bad_sync_requests_are_problems() {
    let app = spawn_app().await;
    let ws = app.workspace("Acme").await;
    let conn = app.sandbox(&ws, 1, 2).await;
    let path = format!("/v1/workspaces/{ws}/connections/{conn}/syncs");
    assert_problem(
        app.post(&path, &json!({"from": "2024-02-01", "to": "2024-01-01"}))
            .await,
        422,
        "validation-failed",
    )
    .await;
    assert_problem(
        app.post(&path, &json!({"from": "2024-13-01", "to": "2024-01-01"}))
            .await,
        422,
        "validation-failed",
    )
    .await;
    let body =
        json!({"from": "2024-01-01", "to": "2024-01-02", "campaign_ids": [uuid::Uuid::new_v4()]});
    assert_problem(app.post(&path, &body).await, 422, "validation-failed").await;
    let other_ws = app.workspace("Other").await;
    let r = app
        .post(
            &format!("/v1/workspaces/{other_ws}/connections/{conn}/syncs"),
            &json!({"from": "2024-01-01", "to": "2024-01-02"}),
        )
        .await;
    assert_problem(r, 404, "not-found").await;
    // A connection of another workspace is invisible there too.
    let r = app
        .get(&format!("/v1/workspaces/{other_ws}/connections/{conn}"))
        .await;
    assert_problem(r, 404, "not-found").await;
    no_syncs(&app, &ws, &conn).await;
}

#[tokio::test]
async fn an_api_process_only_records_the_start_and_a_worker_carries_the_sync_out() {
    let app = spawn_api_only().await;
    let ws = app.workspace("Acme").await;
    let conn = app.sandbox(&ws, 3, 2).await;
    let r = app
        .post(
            &format!("/v1/workspaces/{ws}/connections/{conn}/syncs"),
            &json!({ "from": "2024-01-01", "to": "2024-01-05" }),
        )
        .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let sync = r.json::<Value>().await.unwrap()["sync_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Nobody runs it in the API process: it waits, queued, for a worker.
    let path = format!("/v1/workspaces/{ws}/syncs/{sync}");
    let waiting = eventually("the run's start to be readable", || async {
        let r = app.get(&path).await;
        (r.status() == 200).then_some(())?;
        r.json::<Value>().await.ok()
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let waiting_later: Value = app.get_json(&path).await;
    assert_eq!(waiting["status"], "running");
    assert_eq!(waiting_later["status"], "running", "{waiting_later}");
    assert_eq!(waiting_later["days_recorded"], 0);
    let events = app.events(&ws, "").await;
    assert!(
        events.iter().all(|e| e["event_type"] != "SyncClaimed"),
        "no worker claimed it"
    );

    // A worker process comes up: it takes the run and carries it out.
    let (_stop, stopped) = adledger_infra::shutdown::channel();
    let worker =
        adledger_commands::syncs::SyncWorker::new(app.commands.clone(), Default::default());
    tokio::spawn(worker.run(stopped));
    let run = app.finished(&ws, &sync).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["days_recorded"], 10);
}

#[tokio::test]
async fn sync_dates_must_be_iso_days_within_bounds() {
    let app = spawn_app().await;
    let ws = app.workspace("Acme").await;
    let conn = app.sandbox(&ws, 1, 2).await;
    let path = format!("/v1/workspaces/{ws}/connections/{conn}/syncs");
    for bad in BAD_DATES {
        for (body, field) in [
            (json!({"from": bad, "to": "2024-01-02"}), "from"),
            (json!({"from": "2024-01-01", "to": bad}), "to"),
        ] {
            let (problem, fields) = invalid_fields(app.post(&path, &body).await).await;
            assert_eq!(fields, [field], "{bad:?}: {problem}");
        }
    }
    // Both wrong: both named.
    let both = json!({"from": "2024-1-1", "to": "0000-01-01"});
    let (problem, fields) = invalid_fields(app.post(&path, &both).await).await;
    assert_eq!(fields, ["from", "to"], "{problem}");
    // At most 1,098 days.
    let long = json!({"from": "2024-01-01", "to": "2027-01-03"});
    let (problem, fields) = invalid_fields(app.post(&path, &long).await).await;
    assert_eq!(fields, ["to"], "{problem}");
    no_syncs(&app, &ws, &conn).await;
}

/// Waits a moment for a sync run that must not exist, then checks there is none.
async fn no_syncs(app: &TestApp, ws: &str, conn: &str) {
    eventually("no stray syncs", || async {
        let runs = app
            .get_json(&format!("/v1/workspaces/{ws}/connections/{conn}/syncs"))
            .await;
        runs.as_array().unwrap().is_empty().then_some(())
    })
    .await;
}

/// The request (10 ad accounts, 1,000 campaigns, synced over 1,098 days: 1.1 million
/// events from one call) is refused with the defaults, naming the field and the limit; an
/// operator's own limits hold the same way.
#[tokio::test]
async fn what_the_sandbox_may_be_asked_for_is_bounded() {
    let app = spawn_app().await;
    let ws = app.workspace("Acme").await;
    let connections = format!("/v1/workspaces/{ws}/connections");
    let sandbox = |ad_accounts: u32, campaigns: u32| {
        json!({"platform": "sandbox",
               "sandbox": {"seed": 1, "ad_accounts": ad_accounts, "campaigns": campaigns}})
    };
    let (problem, fields) = invalid_fields(app.post(&connections, &sandbox(10, 1_001)).await).await;
    assert_eq!(fields, ["sandbox.campaigns"], "{problem}");
    let message = problem["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("1000"), "{message}");

    let r = app.post(&connections, &sandbox(10, 100)).await;
    assert_eq!(r.status(), 201);
    let conn = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let syncs = format!("/v1/workspaces/{ws}/connections/{conn}/syncs");
    // 100 campaigns × 1,001 days is over 100,000 campaign-days.
    let problem = assert_problem(
        app.post(&syncs, &json!({"from": "2024-01-01", "to": "2026-09-27"}))
            .await,
        422,
        "validation-failed",
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "to", "{problem}");
    let message = problem["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("100000") && message.contains("100 × 1001"),
        "{message}"
    );
    // Naming one campaign, the same range is 1,001 campaign-days.
    let campaign = eventually("the campaigns to be discovered", || async {
        let page = app
            .get_json(&format!("/v1/workspaces/{ws}/campaigns?limit=1"))
            .await;
        page["items"][0]["id"].as_str().map(str::to_owned)
    })
    .await;
    let r = app
        .post(
            &syncs,
            &json!({"from": "2024-01-01", "to": "2026-09-27", "campaign_ids": [campaign]}),
        )
        .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());

    // An operator's own limits.
    let strict = spawn_app_with_sandbox_limits(SandboxLimits {
        max_campaigns: 5,
        max_campaign_days_per_sync: 50,
    })
    .await;
    let ws = strict.workspace("Strict").await;
    let connections = format!("/v1/workspaces/{ws}/connections");
    let (problem, fields) = invalid_fields(strict.post(&connections, &sandbox(1, 6)).await).await;
    assert_eq!(fields, ["sandbox.campaigns"], "{problem}");
    let message = problem["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("between 1 and 5"), "{message}");
    let conn = strict.sandbox(&ws, 1, 5).await;
    let syncs = format!("/v1/workspaces/{ws}/connections/{conn}/syncs");
    let r = strict
        .post(&syncs, &json!({"from": "2024-01-01", "to": "2024-01-11"}))
        .await;
    assert_problem(r, 422, "validation-failed").await;
    let run = strict.sync(&ws, &conn, "2024-01-01", "2024-01-10").await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["days_recorded"], 50);
}
