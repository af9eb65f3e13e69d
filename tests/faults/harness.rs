//! What every fault scenario does the same way: `adledger serve` as a child process (killed,
//! restarted, stopped), clients that write over plain HTTP with an `Idempotency-Key` and resend
//! until acknowledged, and the checks made after each fault, read from the database as an
//! operator would (the log, `adledger verify`, checksums of live and rebuilt read models).

use crate::support::{eventually_within, Process};
use adledger_infra::testing::{test_jwt_keys, test_master_keys};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use uuid::Uuid;

pub const PASSWORD: &str = "correct horse battery staple";

/// `adledger serve` (role all: API, sequencer, projection workers, sync worker) on one database,
/// with the same keys across restarts, so that tokens and sealed data stay valid.
pub struct Server {
    db_url: String,
    master_keys: String,
    jwt_keys: String,
    process: Option<Process>,
    /// `http://host:port` of the running process; each start listens on a fresh port, and the
    /// clients follow it here.
    address: Arc<RwLock<String>>,
}

impl Server {
    pub async fn start(db_url: &str) -> Self {
        Self::start_with_keys(
            db_url,
            test_master_keys().to_env_string().expose(),
            test_jwt_keys().to_env_string().expose(),
        )
        .await
    }

    /// A server on another database that opens what this one sealed and signed (a restored
    /// backup of this one's).
    pub async fn with_same_keys(&self, db_url: &str) -> Self {
        Self::start_with_keys(db_url, &self.master_keys, &self.jwt_keys).await
    }

    async fn start_with_keys(db_url: &str, master_keys: &str, jwt_keys: &str) -> Self {
        let mut server = Server {
            db_url: db_url.to_owned(),
            master_keys: master_keys.to_owned(),
            jwt_keys: jwt_keys.to_owned(),
            process: None,
            address: Arc::new(RwLock::new(String::new())),
        };
        server.restart().await;
        server
    }

    /// Starts the process (again), waiting until it answers HTTP.
    pub async fn restart(&mut self) {
        assert!(self.process.is_none(), "the server is running");
        let process = Process::start(
            &["serve"],
            &[
                ("DATABASE_URL", &self.db_url),
                ("ADLEDGER_BIND", "127.0.0.1:0"),
                ("ADLEDGER_MASTER_KEYS", &self.master_keys),
                ("ADLEDGER_JWT_KEYS", &self.jwt_keys),
                // Syncs are started by the tests; a run whose worker died is taken over quickly.
                ("ADLEDGER_SYNC_INTERVAL_SECS", "0"),
                ("ADLEDGER_SYNC_LEASE_SECS", "2"),
                // The writers are one client at a steady rate far above a person's.
                ("ADLEDGER_RATE_LIMIT_PER_MINUTE", "0"),
                ("ADLEDGER_CALLER_RATE_LIMIT_PER_MINUTE", "0"),
                ("ADLEDGER_CREDENTIAL_RATE_LIMIT_PER_MINUTE", "0"),
            ],
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let address = loop {
            let log = process.log_text();
            if let Some(address) = listening_address(&log) {
                break address;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the server did not listen within 60 s:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        *self.address.write().expect("address lock") = format!("http://{address}");
        self.process = Some(process);
        let client = reqwest::Client::new();
        // Any answer will do: the API serves (whether it is ready is the tests' business).
        let health = format!("http://{address}/healthz");
        eventually_within("the server to answer", Duration::from_secs(30), || {
            let request = client.get(&health).send();
            async move { request.await.ok().map(|_| ()) }
        })
        .await;
    }

    /// SIGKILL: no clean-up runs, as in a crash (or an OOM kill).
    pub fn kill(&mut self) {
        let mut process = self.process.take().expect("the server is running");
        process.kill();
    }

    /// SIGTERM, as a deploy stops it; SIGKILL if it has not exited within 30 s.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.terminate();
            if process.wait_exit(Duration::from_secs(30)).is_none() {
                process.kill();
            }
        }
    }

    /// An anonymous client of this server.
    pub fn client(&self) -> Api {
        Api {
            address: self.address.clone(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("HTTP client"),
            token: None,
        }
    }

    /// Registers a person and answers a client signed in as them.
    pub async fn person(&self, email: &str) -> Api {
        let mut api = self.client();
        let r = api
            .send(
                reqwest::Method::POST,
                "/v1/auth/register",
                Some(&json!({ "email": email, "name": format!("Name of {email}"), "password": PASSWORD })),
                None,
            )
            .await
            .expect("register");
        assert_eq!(r.status(), 201, "register: {}", r.text().await.unwrap());
        api.sign_in(email).await;
        api
    }

    /// A client signed in as a person registered before (on this database or the one it was
    /// restored from).
    pub async fn signed_in(&self, email: &str) -> Api {
        let mut api = self.client();
        api.sign_in(email).await;
        api
    }
}

/// The address in the server's "serving the API" log line, once it is there.
fn listening_address(log: &str) -> Option<String> {
    log.lines()
        .find(|line| line.contains("serving the API"))?
        .split_whitespace()
        .find_map(|field| field.strip_prefix("addr="))
        .map(str::to_owned)
}

pub fn cli(db_url: &str, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_adledger"))
        .args(args)
        .env("DATABASE_URL", db_url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run adledger")
}

pub fn cli_ok(db_url: &str, args: &[&str]) -> String {
    let out = cli(db_url, args);
    assert!(
        out.status.success(),
        "adledger {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// A client of the server, signed in or not, that follows the server across restarts.
#[derive(Clone)]
pub struct Api {
    address: Arc<RwLock<String>>,
    client: reqwest::Client,
    token: Option<String>,
}

/// How a write ended: its key, the id the 2xx answer gave, and how many sends it took.
#[derive(Debug, Clone)]
pub struct Ack {
    pub key: String,
    pub id: String,
    pub sends: u32,
}

impl Api {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> reqwest::Result<reqwest::Response> {
        let address = self.address.read().expect("address lock").clone();
        let mut request = self.client.request(method, format!("{address}{path}"));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await
    }

    async fn sign_in(&mut self, email: &str) {
        let r = self
            .send(
                reqwest::Method::POST,
                "/v1/auth/login",
                Some(&json!({ "email": email, "password": PASSWORD })),
                None,
            )
            .await
            .expect("login");
        assert_eq!(r.status(), 200, "login: {}", r.text().await.unwrap());
        let tokens: Value = r.json().await.expect("login answer");
        self.token = Some(tokens["access_token"].as_str().expect("token").to_owned());
    }

    /// GET that answers 200 with JSON, or `None` for any other answer (or none).
    pub async fn get(&self, path: &str) -> Option<Value> {
        let r = self
            .send(reqwest::Method::GET, path, None, None)
            .await
            .ok()?;
        if r.status() != 200 {
            return None;
        }
        r.json().await.ok()
    }

    /// POSTs `body` under `key`, sending the very same request again after any failure (no
    /// answer, a 5xx, 429) until a 2xx acknowledges it, as a careful client does. A 4xx other
    /// than 429 is a broken contract and fails the test. `id_field` names the id in the answer.
    pub async fn post_until_acknowledged(
        &self,
        path: &str,
        body: &Value,
        key: &str,
        id_field: &str,
    ) -> Ack {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        let mut sends = 0;
        loop {
            sends += 1;
            match self
                .send(reqwest::Method::POST, path, Some(body), Some(key))
                .await
            {
                Ok(r) if r.status().is_success() => {
                    let answer: Value = r.json().await.expect("JSON answer");
                    let id = answer[id_field]
                        .as_str()
                        .unwrap_or_else(|| panic!("no {id_field} in {answer}"))
                        .to_owned();
                    return Ack {
                        key: key.to_owned(),
                        id,
                        sends,
                    };
                }
                Ok(r) if r.status().is_client_error() && r.status() != 429 => {
                    let status = r.status();
                    panic!(
                        "POST {path} (key {key}, send {sends}): {status} {}",
                        r.text().await.unwrap_or_default()
                    );
                }
                _ => {}
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "POST {path} (key {key}) was not acknowledged within 120 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A workspace, acknowledged.
    pub async fn workspace(&self, name: &str) -> Ack {
        self.post_until_acknowledged(
            "/v1/workspaces",
            &json!({ "name": name }),
            &Uuid::new_v4().to_string(),
            "id",
        )
        .await
    }

    /// A sandbox connection of `ad_accounts` accounts and `campaigns` campaigns in all.
    pub async fn sandbox(&self, ws: &str, ad_accounts: u32, campaigns: u32) -> Ack {
        self.post_until_acknowledged(
            &format!("/v1/workspaces/{ws}/connections"),
            &json!({ "platform": "sandbox", "label": "Sandbox",
                     "sandbox": { "seed": 5, "ad_accounts": ad_accounts, "campaigns": campaigns } }),
            &Uuid::new_v4().to_string(),
            "id",
        )
        .await
    }

    /// A sync of every campaign of the connection over `days` days through yesterday.
    pub async fn start_sync(&self, ws: &str, conn: &str, days: i64) -> Ack {
        let (from, to) = days_through_yesterday(days);
        self.post_until_acknowledged(
            &format!("/v1/workspaces/{ws}/connections/{conn}/syncs"),
            &json!({ "from": from, "to": to }),
            &Uuid::new_v4().to_string(),
            "sync_id",
        )
        .await
    }
}

pub fn days_through_yesterday(days: i64) -> (chrono::NaiveDate, chrono::NaiveDate) {
    let to = chrono::Utc::now().date_naive() - chrono::Duration::days(1);
    (to - chrono::Duration::days(days - 1), to)
}

/// A steady stream of writes: each client creates workspaces one after another, every one under
/// a fresh `Idempotency-Key`, resent until acknowledged.
pub struct Writers {
    stop: Arc<AtomicBool>,
    acknowledged: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Ack>>>,
}

impl Writers {
    pub fn start(api: &Api, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(AtomicU64::new(0));
        let tasks = (0..clients)
            .map(|client| {
                let (api, stop) = (api.clone(), stop.clone());
                let acknowledged = acknowledged.clone();
                tokio::spawn(async move {
                    let mut acks = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let ack = api.workspace(&format!("w{client}-{}", acks.len())).await;
                        acknowledged.fetch_add(1, Ordering::Relaxed);
                        acks.push(ack);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    acks
                })
            })
            .collect();
        Self {
            stop,
            acknowledged,
            tasks,
        }
    }

    /// Writes acknowledged so far.
    pub fn acknowledged(&self) -> u64 {
        self.acknowledged.load(Ordering::Relaxed)
    }

    /// Stops after each client's write in flight is acknowledged: every write it began.
    pub async fn stop(self) -> Vec<Ack> {
        self.stop.store(true, Ordering::Relaxed);
        let mut acks = Vec::new();
        for task in self.tasks {
            acks.extend(task.await.expect("writer"));
        }
        acks
    }
}

/// Sends that got no acknowledgement (and were sent again).
pub fn resent(acks: &[Ack]) -> u32 {
    acks.iter().map(|a| a.sends - 1).sum()
}

/// Waits until every appended event has its position and every projection has applied the
/// whole log (the server's sequencer and workers do it); answers the head.
pub async fn caught_up(pool: &PgPool, within: Duration) -> i64 {
    let names: Vec<String> = adledger_projections::all()
        .iter()
        .map(|p| p.name().to_owned())
        .collect();
    eventually_within("the log sequenced and projected", within, || async {
        let (events, head): (i64, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM events), (SELECT max(position) FROM event_log)",
        )
        .fetch_one(pool)
        .await
        .ok()?;
        let head = head.unwrap_or(0);
        if head != events {
            return None;
        }
        let positions: HashMap<String, i64> =
            sqlx::query_as("SELECT name, position FROM projection_checkpoints")
                .fetch_all(pool)
                .await
                .ok()?
                .into_iter()
                .collect();
        names
            .iter()
            .all(|name| positions.get(name) == Some(&head))
            .then_some(head)
    })
    .await
}

/// Every acknowledged workspace is in the log (sequenced) exactly once, no two keys share one,
/// and the log holds no workspace nobody was answered for (a retry never created a second).
pub async fn each_acknowledged_once(pool: &PgPool, acks: &[Ack]) {
    let created: Vec<(String, i64)> = sqlx::query_as(
        "SELECT e.payload->>'workspace_id', count(*)
         FROM events e JOIN event_log l ON l.event_row_id = e.id
         WHERE e.event_type = 'WorkspaceCreated' GROUP BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("count workspaces in the log");
    let created: HashMap<String, i64> = created.into_iter().collect();
    let ids: HashSet<&str> = acks.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids.len(), acks.len(), "two keys were answered the same id");
    for ack in acks {
        assert_eq!(
            created.get(&ack.id),
            Some(&1),
            "acknowledged workspace {} (key {}, {} sends) in the log once",
            ack.id,
            ack.key,
            ack.sends
        );
    }
    let unanswered: Vec<&String> = created
        .keys()
        .filter(|id| !ids.contains(id.as_str()))
        .collect();
    assert!(
        unanswered.is_empty(),
        "workspaces in the log that no acknowledgement named: {unanswered:?}"
    );
}

/// `adledger verify` passes over exactly `head` events; its line, which names the head's hash.
pub fn verified(db_url: &str, head: i64) -> String {
    let out = cli_ok(db_url, &["verify"]);
    let prefix =
        format!("ok: {head} events verified, the hash chain is intact; position {head} has hash ");
    let hash = out.trim_end().strip_prefix(&prefix);
    assert!(
        hash.is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())),
        "verify over {head} events: {out}"
    );
    out
}

/// Every projection's checksum, by name (`adledger projections checksum`).
pub fn checksums(db_url: &str) -> BTreeMap<String, String> {
    let listing = cli_ok(db_url, &["projections", "checksum"]);
    let sums: BTreeMap<String, String> = listing
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(name, sum)| (name.to_owned(), sum.to_owned()))
        .collect();
    assert_eq!(
        sums.len(),
        adledger_projections::all().len(),
        "one checksum per projection: {listing}"
    );
    sums
}

/// Rebuilds every projection from position 0 (`adledger projections rebuild`), with no server
/// running, and answers the checksums then.
pub fn rebuilt_checksums(db_url: &str) -> BTreeMap<String, String> {
    for projection in adledger_projections::all() {
        cli_ok(db_url, &["projections", "rebuild", projection.name()]);
    }
    checksums(db_url)
}

/// Each read model as the live workers built it equals a rebuild from the log.
pub fn read_models_equal_rebuilds(db_url: &str) {
    let live = checksums(db_url);
    let rebuilt = rebuilt_checksums(db_url);
    assert_eq!(
        live, rebuilt,
        "live read models against a rebuild from the log"
    );
}

/// A sync run as the log tells it.
#[derive(Debug)]
pub struct Run {
    /// `SyncCompleted` or `SyncFailed`, once it ended.
    pub end: Option<(String, Value)>,
    /// Its `SyncClaimed` payloads, in order.
    pub claims: Vec<Value>,
    pub chunks: i64,
}

pub async fn run(pool: &PgPool, sync_id: &str) -> Run {
    let rows: Vec<(String, Value)> = sqlx::query_as(
        "SELECT event_type, payload FROM events
         WHERE stream_type = 'connection' AND payload->>'sync_id' = $1
           AND event_type IN ('SyncCompleted', 'SyncFailed', 'SyncClaimed', 'SyncProgressed')
         ORDER BY id",
    )
    .bind(sync_id)
    .fetch_all(pool)
    .await
    .expect("read the run");
    let mut run = Run {
        end: None,
        claims: Vec::new(),
        chunks: 0,
    };
    for (kind, payload) in rows {
        match kind.as_str() {
            "SyncClaimed" => run.claims.push(payload),
            "SyncProgressed" => run.chunks += 1,
            _ => run.end = Some((kind, payload)),
        }
    }
    run
}

/// Waits for the run to end and answers how: it must have completed (resumed), with every day of
/// every campaign recorded exactly once.
pub async fn completed_once(pool: &PgPool, sync_id: &str, expected_days: i64) -> Run {
    let ended = eventually_within("the sync to end", Duration::from_secs(240), || async {
        let run = run(pool, sync_id).await;
        run.end.is_some().then_some(run)
    })
    .await;
    let (kind, payload) = ended.end.as_ref().expect("ended");
    assert_eq!(
        kind, "SyncCompleted",
        "the run was resumed to its end: {payload}"
    );
    let (recorded, distinct, restated): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE event_type = 'DailyInsightsRecorded'),
                count(DISTINCT (stream_id, payload->>'date')) FILTER (WHERE event_type = 'DailyInsightsRecorded'),
                count(*) FILTER (WHERE event_type = 'DailyInsightsRestated')
         FROM events WHERE stream_type = 'campaign' AND payload->>'sync_id' = $1",
    )
    .bind(sync_id)
    .fetch_one(pool)
    .await
    .expect("count insights");
    assert_eq!(
        (recorded, distinct, restated),
        (expected_days, expected_days, 0),
        "each day of each campaign recorded once, none restated"
    );
    assert_eq!(
        payload["counts"]["days_recorded"], expected_days,
        "the run's counts are the whole run's: {payload}"
    );
    // The worker closes its job right after the run's last event.
    eventually_within("no sync job left open", Duration::from_secs(30), || async {
        let open: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_jobs WHERE done_at IS NULL")
            .fetch_one(pool)
            .await
            .ok()?;
        (open == 0).then_some(())
    })
    .await;
    ended
}
