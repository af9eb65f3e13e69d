//! The database goes away and comes back: requests and probes answer 503 with `Retry-After`
//! within a couple of seconds while it is down, and recover without a restart; a transaction left
//! open anywhere in the cluster is named by readiness and takes it out of rotation after its
//! bound. Each test runs a Postgres cluster of its own, since it stops it or holds its horizon.

use crate::helpers::{assert_problem, eventually, spawn_on, TestApp};
use crate::support::PrivateCluster;
use adledger_infra::Secret;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Readiness with these bounds, answering within a second.
fn readiness(max_unsequenced_age: Duration) -> adledger_api::Readiness {
    adledger_api::Readiness {
        bounds: adledger_projections::ReadinessBounds {
            max_unsequenced_age,
            ..Default::default()
        },
        probe_timeout: Duration::from_secs(1),
        ..Default::default()
    }
}

async fn ready(app: &TestApp) -> Value {
    eventually("ready", || async {
        let r = app.get("/readyz").await;
        (r.status() == 200).then_some(())?;
        r.json::<Value>().await.ok()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_with_retry_after_fast_and_the_api_recovers() {
    let cluster = PrivateCluster::start();
    let app = spawn_on(
        &cluster.url,
        Duration::from_millis(500),
        readiness(Duration::from_secs(60)),
    )
    .await;
    let ws = app.workspace("Before the outage").await;
    ready(&app).await;

    tokio::task::block_in_place(|| cluster.stop());

    let requests = [
        (reqwest::Method::GET, "/v1/workspaces".to_owned(), None),
        (reqwest::Method::GET, format!("/v1/workspaces/{ws}"), None),
        (
            reqwest::Method::POST,
            "/v1/workspaces".to_owned(),
            Some(json!({ "name": "During the outage" })),
        ),
        (reqwest::Method::GET, "/readyz".to_owned(), None),
        (reqwest::Method::GET, "/metrics".to_owned(), None),
    ];
    for (method, path, body) in requests {
        let started = Instant::now();
        let r = app
            .request(method.clone(), Some(&app.token), &path, body.as_ref())
            .await;
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(3),
            "{method} {path} took {took:?}"
        );
        let retry_after: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry_after > 0);
        assert_problem(r, 503, "database-unavailable").await;
    }
    let started = Instant::now();
    let login = app
        .login(crate::helpers::OWNER, crate::helpers::PASSWORD, None)
        .await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_problem(login, 503, "database-unavailable").await;
    // Liveness does not depend on the database: the process must not be restarted for it.
    assert_eq!(app.get("/healthz").await.status(), 200);

    tokio::task::block_in_place(|| cluster.start_again());
    ready(&app).await;
    assert_eq!(app.get("/v1/workspaces").await.status(), 200);
    let r = app
        .post("/v1/workspaces", &json!({ "name": "After the outage" }))
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_left_open_in_the_cluster_is_named_and_fails_readiness_after_its_bound() {
    let cluster = PrivateCluster::start();
    let app = spawn_on(
        &cluster.url,
        Duration::from_secs(2),
        readiness(Duration::from_secs(2)),
    )
    .await;
    ready(&app).await;

    // Someone's session on another database of the cluster takes a transaction id and goes
    // idle: every event committed after it began must wait for it.
    let mut idle = adledger_infra::db::connect_owner(&Secret::new(cluster.url.clone()))
        .await
        .unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut idle)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut idle).await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut idle)
        .await
        .unwrap();
    let r = app
        .post("/v1/workspaces", &json!({ "name": "Held back" }))
        .await;
    assert_eq!(r.status(), 201);

    // Named at once, before the bound passes.
    let body = eventually("readiness to name the holder", || async {
        let body: Value = app.get("/readyz").await.json().await.ok()?;
        (body["horizon"]["holder"]["pid"] == pid).then_some(body)
    })
    .await;
    let holder = &body["horizon"]["holder"];
    assert_eq!(holder["database"], "adledger", "{body}");
    assert_eq!(holder["state"], "idle in transaction", "{body}");
    assert_eq!(holder["kind"], "transaction", "{body}");
    assert!(
        body["unsequenced"]["count"].as_i64().unwrap() >= 1,
        "{body}"
    );
    assert_eq!(body["unsequenced"]["held_by_horizon"], true, "{body}");

    // Past the bound: out of rotation, saying who to end.
    let problem = eventually("readiness to fail", || async {
        let r = app.get("/readyz").await;
        (r.status() == 503).then_some(r)
    })
    .await;
    assert!(problem.headers().contains_key("retry-after"));
    let problem = assert_problem(problem, 503, "not-ready").await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("the log is stalled")
            && detail.contains(&format!("transaction pid {pid} in database \"adledger\""))
            && detail.contains("idle in transaction"),
        "{problem}"
    );
    assert_eq!(problem["horizon"]["holder"]["pid"], pid, "{problem}");
    assert!(
        problem["unsequenced"]["oldest_age_seconds"]
            .as_f64()
            .unwrap()
            > 2.0
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let gauge = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert!(
        gauge("adledger_horizon_holder_age_seconds") > 2.0,
        "{metrics}"
    );
    assert!(gauge("adledger_log_unsequenced_oldest_age_seconds") > 2.0);
    assert!(gauge("adledger_log_unsequenced_events") >= 1.0);

    // Ending it lets the log move on.
    sqlx::query("ROLLBACK").execute(&mut idle).await.unwrap();
    let body = ready(&app).await;
    assert_eq!(body["unsequenced"]["count"], 0, "{body}");
}
