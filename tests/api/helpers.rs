use adledger_infra::shutdown::{self, ShutdownTrigger};
use adledger_infra::testing::TestDatabase;
use serde_json::{json, Value};
use std::future::Future;
use std::time::Duration;

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub _db: TestDatabase,
    _stop: ShutdownTrigger,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(adledger_api::HttpPolicy::default()).await
}

/// An app whose HTTP limits and CORS origins are `http`.
pub async fn spawn_app_with(http: adledger_api::HttpPolicy) -> TestApp {
    let db = TestDatabase::new().await;
    let store = db.store();
    let (stop, stopped) = shutdown::channel();
    adledger::startup::spawn_workers(&store, adledger::startup::WorkerSource::Postgres, &stopped);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    adledger::startup::spawn_api(
        store,
        listener,
        adledger::startup::ApiOptions {
            ready_max_lag: 1_000,
            http,
            ..Default::default()
        },
        stopped,
    )
    .await;
    TestApp {
        address,
        client: reqwest::Client::new(),
        _db: db,
        _stop: stop,
    }
}

/// Polls `check` until it returns Some (reads are eventually consistent), for up to 10 s.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// GET that must answer 200 with JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }

    /// Creates a workspace and waits until it is readable.
    pub async fn workspace(&self, name: &str) -> String {
        let r = self.post("/v1/workspaces", &json!({ "name": name })).await;
        assert_eq!(r.status(), 201);
        let id = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let path = format!("/v1/workspaces/{id}");
        eventually("workspace", || async {
            (self.get(&path).await.status() == 200).then_some(())
        })
        .await;
        id
    }

    pub async fn sandbox(&self, ws: &str, seed: u64, campaigns: u32) -> String {
        let r = self
            .post(
                &format!("/v1/workspaces/{ws}/connections"),
                &json!({ "platform": "sandbox", "label": "Sandbox", "sandbox": { "seed": seed, "ad_accounts": 1, "campaigns": campaigns } }),
            )
            .await;
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Starts a sync and waits for it to finish; returns the finished run.
    pub async fn sync(&self, ws: &str, conn: &str, from: &str, to: &str) -> Value {
        let r = self
            .post(
                &format!("/v1/workspaces/{ws}/connections/{conn}/syncs"),
                &json!({ "from": from, "to": to }),
            )
            .await;
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
        let sync_id = r.json::<Value>().await.unwrap()["sync_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let path = format!("/v1/workspaces/{ws}/syncs/{sync_id}");
        let run = eventually("sync to finish", || async {
            let r = self.get(&path).await;
            if r.status() != 200 {
                return None;
            }
            let run: Value = r.json().await.unwrap();
            (run["status"] != "running").then_some(run)
        })
        .await;
        // And until every projection has applied what the sync wrote.
        eventually("projections to catch up", || async {
            let r = self.get("/readyz").await;
            let body: Value = r.json().await.ok()?;
            body["projections"]
                .as_array()?
                .iter()
                .all(|p| p["lag_events"] == 0)
                .then_some(())
        })
        .await;
        run
    }

    /// Every event of the workspace, via the NDJSON endpoint.
    pub async fn events(&self, ws: &str, query: &str) -> Vec<Value> {
        let r = self
            .get(&format!("/v1/workspaces/{ws}/events{query}"))
            .await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/x-ndjson");
        r.text()
            .await
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// Asserts a problem+json answer with this status and stable type; returns the body.
pub async fn assert_problem(r: reqwest::Response, status: u16, type_slug: &str) -> Value {
    assert_eq!(r.status(), status);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["type"],
        format!("urn:adledger:problem:{type_slug}"),
        "{body}"
    );
    assert_eq!(body["status"], status);
    body
}
