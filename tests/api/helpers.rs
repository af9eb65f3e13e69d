use adledger_infra::shutdown::{self, ShutdownTrigger};
use adledger_infra::testing::TestDatabase;
use serde_json::{json, Value};
use std::future::Future;
use std::time::Duration;

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// The access token of the app's first user, who owns the workspaces the helpers create.
    pub token: String,
    /// The keys the app seals and signs with (for running the CLI on its database).
    pub keys: adledger_commands::identity::Keys,
    /// The app's command handlers (to run a sync worker of the test's own).
    pub commands: adledger_commands::Commands,
    /// The key the app signs checkpoints with (`PRIVATE+KEY+…`), for the CLI too.
    pub checkpoint_key: adledger_infra::Secret<String>,
    pub _db: TestDatabase,
    _stop: ShutdownTrigger,
}

/// A signed-in person of a test.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub token: String,
    pub refresh_token: String,
}

pub const PASSWORD: &str = "correct horse battery staple";

/// The email of the app's first user (`TestApp::token`).
pub const OWNER: &str = "owner@example.com";

pub fn test_keys() -> adledger_commands::identity::Keys {
    adledger_commands::identity::Keys {
        master: adledger_infra::testing::test_master_keys(),
        jwt: adledger_infra::testing::test_jwt_keys(),
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(adledger_api::HttpPolicy::default()).await
}

/// An app whose HTTP limits and CORS origins are `http`.
pub async fn spawn_app_with(http: adledger_api::HttpPolicy) -> TestApp {
    spawn_app_with_auth(http, Default::default()).await
}

/// An app with these HTTP limits and token lifetimes.
pub async fn spawn_app_with_auth(
    http: adledger_api::HttpPolicy,
    auth: adledger_commands::identity::AuthPolicy,
) -> TestApp {
    spawn_app_with_options(http, auth, Default::default()).await
}

/// An app that connects these ad platforms (fakes' configurations in tests).
pub async fn spawn_app_with_platforms(platforms: adledger_connectors::Platforms) -> TestApp {
    spawn_app_with_options(Default::default(), Default::default(), platforms).await
}

pub async fn spawn_app_with_options(
    http: adledger_api::HttpPolicy,
    auth: adledger_commands::identity::AuthPolicy,
    platforms: adledger_connectors::Platforms,
) -> TestApp {
    spawn(http, auth, platforms, true, Default::default()).await
}

/// An app whose operator bounds what the sandbox may be asked for to `limits`.
pub async fn spawn_app_with_sandbox_limits(
    limits: adledger_commands::connections::SandboxLimits,
) -> TestApp {
    spawn(
        Default::default(),
        Default::default(),
        Default::default(),
        true,
        limits,
    )
    .await
}

/// An app whose process runs no sync worker (an API replica): syncs it starts wait for one.
pub async fn spawn_api_only() -> TestApp {
    spawn(
        Default::default(),
        Default::default(),
        Default::default(),
        false,
        Default::default(),
    )
    .await
}

/// An app on a database of this PostgreSQL server (a private cluster of the test's own, for
/// tests that stop it or hold its snapshot horizon, which would disturb every other test).
pub async fn spawn_app_on(server: &str) -> TestApp {
    let db = TestDatabase::on(server).await;
    spawn_with(
        db,
        Default::default(),
        Default::default(),
        Default::default(),
        true,
        Default::default(),
    )
    .await
}

async fn spawn(
    http: adledger_api::HttpPolicy,
    auth: adledger_commands::identity::AuthPolicy,
    platforms: adledger_connectors::Platforms,
    sync_worker: bool,
    sandbox: adledger_commands::connections::SandboxLimits,
) -> TestApp {
    spawn_with(
        TestDatabase::new().await,
        http,
        auth,
        platforms,
        sync_worker,
        sandbox,
    )
    .await
}

async fn spawn_with(
    db: TestDatabase,
    http: adledger_api::HttpPolicy,
    auth: adledger_commands::identity::AuthPolicy,
    platforms: adledger_connectors::Platforms,
    sync_worker: bool,
    sandbox: adledger_commands::connections::SandboxLimits,
) -> TestApp {
    let store = db.store();
    let options = adledger::startup::ApiOptions {
        http,
        auth,
        platforms,
        ..Default::default()
    };
    start(db, store, options, sync_worker, sandbox).await
}

/// An app on a fresh database of the Postgres server at `server` (a test's private cluster, which
/// the test may stop and start), whose pool waits at most `acquire_timeout` for a connection and
/// whose readiness is `readiness`.
pub async fn spawn_on(
    server: &str,
    acquire_timeout: Duration,
    readiness: adledger_api::Readiness,
) -> TestApp {
    let db = TestDatabase::on(server).await;
    let pool = adledger_infra::db::PoolConfig {
        acquire_timeout,
        ..adledger_infra::db::PoolConfig::with_max(10)
    };
    let app = adledger_infra::Database::connect_with(&db.url, pool)
        .await
        .expect("connect to the private cluster");
    let store = adledger_infra::EventStore::new(app.app);
    let options = adledger::startup::ApiOptions {
        readiness,
        ..Default::default()
    };
    start(db, store, options, true, Default::default()).await
}

/// The origin of test apps' checkpoints.
pub const CHECKPOINT_ORIGIN: &str = "adledger.test/log";

async fn start(
    db: TestDatabase,
    store: adledger_infra::EventStore,
    mut options: adledger::startup::ApiOptions,
    sync_worker: bool,
    sandbox: adledger_commands::connections::SandboxLimits,
) -> TestApp {
    let (stop, stopped) = shutdown::channel();
    adledger::startup::spawn_workers(&store, adledger::startup::WorkerSource::Postgres, &stopped);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let keys = test_keys();
    let (checkpoint_key, _) =
        adledger_infra::checkpoint::CheckpointKeys::generate(CHECKPOINT_ORIGIN).unwrap();
    let signer = adledger_infra::checkpoint::CheckpointKeys::parse(&checkpoint_key).unwrap();
    options.checkpoints =
        Some(adledger_infra::checkpoint::Checkpointer::new(signer, CHECKPOINT_ORIGIN).unwrap());
    let commands = adledger::startup::commands(&store, &keys, options.platforms.clone())
        .with_sandbox_limits(sandbox);
    if sync_worker {
        let worker =
            adledger_commands::syncs::SyncWorker::new(commands.clone(), Default::default());
        tokio::spawn(worker.run(stopped.clone()));
    }
    adledger::startup::spawn_api_with_commands(
        commands.clone(),
        store,
        listener,
        keys.clone(),
        options,
        stopped,
    )
    .await;
    let mut app = TestApp {
        address,
        client: reqwest::Client::new(),
        token: String::new(),
        keys,
        commands,
        checkpoint_key,
        _db: db,
        _stop: stop,
    };
    app.token = app.user(OWNER).await.token;
    app
}

/// Polls `check` until it returns Some (reads are eventually consistent), for up to 10 s.
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    crate::support::eventually_within(what, Duration::from_secs(10), check).await
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Runs `adledger <args>` on the app's database with its keys, as an operator would on the
    /// server. The wait happens off the test's runtime thread: the app's tasks share that thread,
    /// and a command that waits on them (a rebuild's switch waits for the live runner's page)
    /// would otherwise wait forever.
    pub async fn run_adledger(&self, args: &[&str]) -> std::process::Output {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_adledger"));
        command
            .args(args)
            .env("DATABASE_URL", self._db.url.expose())
            .env(
                "ADLEDGER_MASTER_KEYS",
                self.keys.master.to_env_string().expose(),
            )
            .env("ADLEDGER_JWT_KEYS", self.keys.jwt.to_env_string().expose())
            .env("ADLEDGER_CHECKPOINT_KEYS", self.checkpoint_key.expose())
            .env("ADLEDGER_CHECKPOINT_ORIGIN", CHECKPOINT_ORIGIN)
            .env("RUST_LOG", "warn");
        tokio::task::spawn_blocking(move || command.output().expect("run adledger"))
            .await
            .expect("the adledger process's waiter")
    }

    /// `run_adledger` that must succeed: answers its standard output.
    pub async fn adledger(&self, args: &[&str]) -> String {
        let output = self.run_adledger(args).await;
        assert!(
            output.status.success(),
            "adledger {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("UTF-8 output")
    }

    /// GET as the app's first user.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.get_as(&self.token, path).await
    }

    /// POST as the app's first user.
    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.post_as(&self.token, path, body).await
    }

    pub async fn get_as(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_as(&self, token: &str, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Any method, with an optional bearer token and JSON body.
    pub async fn request(
        &self,
        method: reqwest::Method,
        token: Option<&str>,
        path: &str,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.unwrap()
    }

    /// POST without credentials (registration, login, refresh).
    pub async fn post_anonymous(&self, path: &str, body: &Value) -> reqwest::Response {
        self.request(reqwest::Method::POST, None, path, Some(body))
            .await
    }

    pub async fn login(
        &self,
        email: &str,
        password: &str,
        code: Option<&str>,
    ) -> reqwest::Response {
        self.post_anonymous(
            "/v1/auth/login",
            &json!({ "email": email, "password": password, "code": code }),
        )
        .await
    }

    /// Registers and logs in a new person.
    pub async fn user(&self, email: &str) -> TestUser {
        let r = self
            .post_anonymous(
                "/v1/auth/register",
                &json!({ "email": email, "name": format!("Name of {email}"), "password": PASSWORD }),
            )
            .await;
        assert_eq!(r.status(), 201, "register: {}", r.text().await.unwrap());
        let id = r.json::<Value>().await.unwrap()["user_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = self.login(email, PASSWORD, None).await;
        assert_eq!(r.status(), 200, "login: {}", r.text().await.unwrap());
        let tokens: Value = r.json().await.unwrap();
        TestUser {
            id,
            email: email.to_owned(),
            token: tokens["access_token"].as_str().unwrap().to_owned(),
            refresh_token: tokens["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    /// Invites `user` into `ws` with `role` (as the app's first user, an owner) and accepts.
    pub async fn join(&self, ws: &str, user: &TestUser, role: &str) {
        let r = self
            .post(
                &format!("/v1/workspaces/{ws}/invitations"),
                &json!({ "email": user.email, "role": role }),
            )
            .await;
        assert_eq!(r.status(), 201, "invite: {}", r.text().await.unwrap());
        let token = r.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = self
            .post_as(
                &user.token,
                "/v1/invitations/accept",
                &json!({ "token": token }),
            )
            .await;
        assert_eq!(r.status(), 200, "accept: {}", r.text().await.unwrap());
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
        self.finished(ws, &sync_id).await
    }

    /// Waits until a sync has finished and every projection has applied what it wrote.
    pub async fn finished(&self, ws: &str, sync_id: &str) -> Value {
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

/// Asserts a 422 `validation-failed` answer; returns it and the fields its `errors[]` name.
pub async fn invalid_fields(r: reqwest::Response) -> (Value, Vec<String>) {
    let body = assert_problem(r, 422, "validation-failed").await;
    let fields = body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    (body, fields)
}
