//! A request past its time limit stops its work in the database too: its reads run under a
//! statement timeout a little below the request's, so Postgres cancels the query itself instead
//! of running it on for nobody.

use crate::helpers::{assert_problem, spawn_app_with};
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_request_past_its_time_limit_stops_its_query_in_the_database() {
    let limit = Duration::from_secs(2);
    let app = spawn_app_with(adledger_api::HttpPolicy {
        request_timeout: limit,
        ..Default::default()
    })
    .await;
    let ws = app.workspace("Acme").await;
    let path = format!("/v1/workspaces/{ws}/insights?from=2024-01-01&to=2024-01-31");
    assert_eq!(app.get(&path).await.status(), 200);

    // Someone holds the read model (as a schema change would): the query waits on it for real.
    let mut holder = app._db.owner().await;
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("LOCK TABLE daily_insights IN ACCESS EXCLUSIVE MODE")
        .execute(&mut holder)
        .await
        .unwrap();
    let started = Instant::now();
    let r = app.get(&path).await;
    let took = started.elapsed();
    let problem = assert_problem(r, 503, "request-timeout").await;
    assert!(took < limit + Duration::from_secs(1), "{took:?}");
    assert!(
        problem["detail"].as_str().unwrap().contains("cancelled"),
        "the database stopped it, before the request's own limit: {problem}"
    );

    // Nothing of the request still runs, or waits for the lock, in the database.
    let mut observer = app._db.owner().await;
    let (running, waiting): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND pid <> pg_backend_pid()
                    AND state <> 'idle' AND query LIKE '%FROM daily_insights d%'),
                (SELECT count(*) FROM pg_locks WHERE NOT granted)",
    )
    .fetch_one(&mut observer)
    .await
    .unwrap();
    assert_eq!((running, waiting), (0, 0));

    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    assert_eq!(app.get(&path).await.status(), 200, "the reads pool is fine");
}
