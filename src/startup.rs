//! Start-up: connect, migrate, and run the chosen roles until Ctrl-C / SIGTERM.

use crate::cli::{DbArgs, Role, Source, SyncArgs, WorkerArgs};
use adledger_commands::connections::ConnectorSetup;
use adledger_commands::identity::{AuthPolicy, Identity, Keys};
use adledger_commands::syncs::scheduler::Scheduler;
use adledger_commands::syncs::SyncWorker;
use adledger_commands::Commands;
use adledger_connectors::Platforms;
use adledger_infra::credentials::CredentialStore;
use adledger_infra::kafka::KafkaConfig;
use adledger_infra::shutdown::{self, Shutdown};
use adledger_infra::{Database, EventStore, Secret};
use std::net::SocketAddr;
use tokio::task::JoinHandle;

pub struct ServeConfig {
    pub url: Secret<String>,
    pub bind: SocketAddr,
    pub role: Role,
    /// `/readyz`'s bounds and timeout; the relay topic and workers' source are filled in here.
    pub readiness: adledger_api::Readiness,
    pub demo: bool,
    pub workers: WorkerArgs,
    pub http: adledger_api::HttpPolicy,
    pub db: DbArgs,
    pub syncs: SyncArgs,
    /// The real ad platforms, from the command line (`cli::PlatformArgs`).
    pub platforms: Platforms,
    /// Signs the log's checkpoints (none: no checkpoints).
    pub checkpoints: Option<adledger_infra::checkpoint::Checkpointer>,
    /// How often a scheduled checkpoint is issued (none: on demand only).
    pub checkpoint_interval: Option<std::time::Duration>,
}

/// How the API answers, besides its routes.
#[derive(Debug, Clone, Default)]
pub struct ApiOptions {
    /// What `/readyz` checks, its time bounds and its own timeout.
    pub readiness: adledger_api::Readiness,
    pub http: adledger_api::HttpPolicy,
    pub auth: AuthPolicy,
    /// The real ad platforms this server connects (none: only the sandbox).
    pub platforms: Platforms,
    /// Signs the checkpoints `GET /v1/log/checkpoint` serves (none: that route answers 404).
    pub checkpoints: Option<adledger_infra::checkpoint::Checkpointer>,
}

/// The master and JWT keys from the environment, with what to do when they are missing.
pub fn keys_from_env() -> anyhow::Result<Keys> {
    let hint = "generate keys with `adledger keys generate` and export the two lines it prints \
                (scripts/run.sh does this for you in .local/keys.env)";
    let master =
        adledger_infra::MasterKeys::from_env().map_err(|e| anyhow::anyhow!("{e}; {hint}"))?;
    let jwt = adledger_infra::JwtKeys::from_env().map_err(|e| anyhow::anyhow!("{e}; {hint}"))?;
    Ok(Keys { master, jwt })
}

/// The identity service over `store` (also what the demo uses to create its user), with the
/// sandbox as the only platform.
pub fn identity(store: &EventStore, keys: Keys, policy: AuthPolicy) -> Identity {
    identity_with(store, keys, policy, Platforms::default())
}

/// The identity service and its command handlers, with the real platforms of `platforms`.
pub fn identity_with(
    store: &EventStore,
    keys: Keys,
    policy: AuthPolicy,
    platforms: Platforms,
) -> Identity {
    let commands = commands(store, &keys, platforms);
    Identity::new(commands, keys, policy)
}

/// The command handlers, able to sync the real platforms of `platforms` with the tokens sealed
/// under `keys`.
pub fn commands(store: &EventStore, keys: &Keys, platforms: Platforms) -> Commands {
    commands_with_master(store, &keys.master, platforms)
}

fn commands_with_master(
    store: &EventStore,
    master: &adledger_infra::MasterKeys,
    platforms: Platforms,
) -> Commands {
    Commands::new(store.clone()).with_connectors(ConnectorSetup {
        platforms,
        credentials: CredentialStore::new(store.pool().clone(), master.clone()),
    })
}

/// The command handlers of a process without an API: a worker needs the master keys only to
/// open real platforms' tokens (sandbox syncs need none).
fn worker_commands(store: &EventStore, platforms: Platforms) -> anyhow::Result<Commands> {
    match adledger_infra::MasterKeys::from_env() {
        Ok(master) => Ok(commands_with_master(store, &master, platforms)),
        Err(_) if !platforms.any_configured() => Ok(Commands::new(store.clone())),
        Err(e) => Err(anyhow::anyhow!(
            "{e}: a worker that syncs real ad platforms needs the master keys to open their \
             tokens (set ADLEDGER_MASTER_KEYS as for the API)"
        )),
    }
}

/// Where the projection workers of this process read from.
pub enum WorkerSource {
    Postgres,
    Kafka(KafkaConfig, adledger_projections::kafka::WorkerOptions),
}

/// Spawns the sequencer and the projection workers.
pub fn spawn_workers(
    store: &EventStore,
    source: WorkerSource,
    shutdown: &Shutdown,
) -> Vec<JoinHandle<()>> {
    let sequencer = tokio::spawn(adledger_infra::event_store::sequencer::run(
        store.clone(),
        shutdown.clone(),
    ));
    let projections = match source {
        WorkerSource::Postgres => tokio::spawn(adledger_projections::run(
            store.clone(),
            store.pool().clone(),
            adledger_projections::all(),
            shutdown.clone(),
        )),
        WorkerSource::Kafka(config, options) => tokio::spawn(adledger_projections::kafka::run(
            store.pool().clone(),
            config,
            adledger_projections::all(),
            options,
            shutdown.clone(),
        )),
    };
    vec![sequencer, projections]
}

/// Rebuilds the outdated read models in the background (`--rebuild-outdated`), never blocking
/// the API or the live workers; stopped by shutdown, a build resumes at the next start.
pub async fn rebuild_outdated(store: EventStore, mut shutdown: Shutdown) {
    let projections = adledger_projections::all();
    let rebuilding = adledger_projections::versions::rebuild_outdated(
        &store,
        store.pool(),
        &projections,
        adledger_projections::DEFAULT_BATCH,
    );
    tokio::select! {
        done = rebuilding => match done {
            Ok(done) if done.is_empty() => tracing::info!("no read model is outdated"),
            Ok(done) => {
                for (name, rebuilt) in done {
                    tracing::info!(projection = name, version = rebuilt.version,
                        previous = rebuilt.previous, "outdated read model rebuilt");
                }
            }
            Err(error) => tracing::error!(%error, "rebuilding an outdated read model failed"),
        },
        _ = shutdown.wait() => tracing::info!("rebuild of outdated read models stopped; it resumes at the next start"),
    }
}

/// `adledger relay`: only the relay, until Ctrl-C / SIGTERM.
pub async fn relay(url: &Secret<String>, config: KafkaConfig) -> anyhow::Result<()> {
    let applied = adledger_infra::migrate::run(url).await?;
    if !applied.is_empty() {
        tracing::info!(?applied, "migrations applied");
    }
    let db = Database::connect(url, 4).await?;
    let store = EventStore::new(db.app.clone());
    let (trigger, stopped) = shutdown::channel();
    let relay = tokio::spawn(adledger_infra::kafka::relay::run(store, config, stopped));
    wait_for_signal().await;
    tracing::info!("shutting down");
    trigger.trigger();
    relay.await?;
    Ok(())
}

/// A running HTTP API on an already-bound listener (port 0 in tests).
pub async fn spawn_api(
    store: EventStore,
    listener: tokio::net::TcpListener,
    keys: Keys,
    options: ApiOptions,
    shutdown: Shutdown,
) -> JoinHandle<std::io::Result<()>> {
    let commands = commands(&store, &keys, options.platforms.clone());
    spawn_api_with_commands(commands, store, listener, keys, options, shutdown).await
}

/// A running HTTP API whose commands are `commands` (shared with this process's workers).
pub async fn spawn_api_with_commands(
    commands: Commands,
    store: EventStore,
    listener: tokio::net::TcpListener,
    keys: Keys,
    options: ApiOptions,
    mut shutdown: Shutdown,
) -> JoinHandle<std::io::Result<()>> {
    let identity = Identity::new(commands, keys, options.auth);
    let state = adledger_api::AppState {
        commands: identity.commands().clone(),
        identity,
        caller_limiter: options
            .http
            .caller_rate_limit_per_minute
            .map(adledger_api::RateLimiter::per_minute),
        reads: store.with_statement_timeout(options.http.statement_timeout()),
        store,
        readiness: options.readiness,
        consistency: Default::default(),
        http: options.http,
        checkpoints: options.checkpoints.map(std::sync::Arc::new),
    };
    let app = adledger_api::app(state).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.wait().await })
            .await
    })
}

pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let pool = config.db.pool(20);
    let applied = adledger_infra::migrate::run_within(&config.url, pool.connect_timeout).await?;
    if !applied.is_empty() {
        tracing::info!(?applied, "migrations applied");
    }
    // The API needs every key; a worker only the master keys, to open real platforms' tokens.
    let keys = match config.role {
        Role::Worker => None,
        _ => Some(keys_from_env()?),
    };
    let platforms = config.platforms.clone();
    for platform in adledger_domain::Platform::ALL {
        let configured = platforms.is_configured(platform);
        tracing::info!(%platform, configured, "ad platform");
    }
    let db = Database::connect_with(&config.url, pool).await?;
    let store = EventStore::new(db.app.clone());
    store.check_transaction_ids().await?;
    let (trigger, stopped) = shutdown::channel();
    let kafka = config.workers.kafka.config();
    let source = match config.workers.source {
        Source::Postgres => WorkerSource::Postgres,
        Source::Kafka => WorkerSource::Kafka(
            config.workers.kafka.required()?,
            adledger_projections::kafka::WorkerOptions {
                lease: std::time::Duration::from_millis(config.workers.kafka.lease_ms),
                ..Default::default()
            },
        ),
    };
    let commands = match &keys {
        Some(keys) => commands(&store, keys, platforms.clone()),
        None => worker_commands(&store, platforms.clone())?,
    }
    .with_sandbox_limits(config.syncs.sandbox_limits());
    let mut tasks = Vec::new();
    if config.role != Role::Api {
        tasks.extend(spawn_workers(&store, source, &stopped));
        if config.workers.rebuild_outdated {
            tasks.push(tokio::spawn(rebuild_outdated(
                store.clone(),
                stopped.clone(),
            )));
        }
        let worker = SyncWorker::new(commands.clone(), config.syncs.worker());
        tasks.push(tokio::spawn(worker.run(stopped.clone())));
        match config.syncs.scheduler() {
            Some(schedule) => {
                let scheduler = Scheduler::new(commands.clone(), schedule);
                tasks.push(tokio::spawn(scheduler.run(stopped.clone())));
            }
            None => tracing::info!("the sync scheduler is off (ADLEDGER_SYNC_INTERVAL_SECS=0)"),
        }
    }
    match (&config.checkpoints, config.checkpoint_interval) {
        (Some(signer), Some(interval)) if config.role != Role::Api => {
            tasks.push(tokio::spawn(adledger_infra::event_store::checkpoints::run(
                store.clone(),
                signer.clone(),
                interval,
                stopped.clone(),
            )));
        }
        (None, _) => tracing::warn!(
            "no checkpoint key (ADLEDGER_CHECKPOINT_KEYS): no signed checkpoints are issued"
        ),
        _ => {}
    }
    if config.role != Role::Worker {
        tasks.push(tokio::spawn(purge_identity(store.clone(), stopped.clone())));
    }
    if let (Role::All, Some(kafka)) = (config.role, &kafka) {
        tasks.push(tokio::spawn(adledger_infra::kafka::relay::run(
            store.clone(),
            kafka.clone(),
            stopped.clone(),
        )));
    }
    let mut demo = None;
    if let (true, Some(keys)) = (config.demo, &keys) {
        let identity = identity(&store, keys.clone(), AuthPolicy::default());
        demo = Some(crate::demo::seed(&identity, &crate::demo::DemoArgs::default()).await?);
    }
    let mut api = None;
    if let (true, Some(keys)) = (config.role != Role::Worker, keys) {
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.bind))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "serving the API");
        println!(
            "adledger is serving on http://{addr} (API description: http://{addr}/openapi.json)"
        );
        api = Some(
            spawn_api_with_commands(
                commands.clone(),
                store.clone(),
                listener,
                keys,
                ApiOptions {
                    readiness: adledger_api::Readiness {
                        relay_topic: kafka.as_ref().map(|k| k.topic.clone()),
                        projections_from_kafka: kafka
                            .clone()
                            .filter(|_| config.workers.source == Source::Kafka),
                        ..config.readiness.clone()
                    },
                    http: config.http.clone(),
                    auth: AuthPolicy::default(),
                    platforms,
                    checkpoints: config.checkpoints.clone(),
                },
                stopped.clone(),
            )
            .await,
        );
        if let Some(workspace) = demo {
            crate::demo::print_examples(workspace, &format!("http://{addr}"));
        }
    } else {
        tracing::info!("running the sequencer, projection workers, sync worker and scheduler");
    }
    wait_for_signal().await;
    tracing::info!("shutting down");
    trigger.trigger();
    if let Some(api) = api {
        api.await??;
    }
    for task in tasks {
        let _ = task.await;
    }
    Ok(())
}

/// Hourly, the identity tables drop what can no longer be used (expired sessions and their
/// refresh tokens, old OAuth states and failed-login counters). Deletes are idempotent, so
/// several API processes may all run it.
async fn purge_identity(store: EventStore, mut shutdown: Shutdown) {
    let ids = adledger_infra::identity::IdentityStore::new(store.pool().clone());
    while !shutdown.is_triggered() {
        match ids.purge_expired().await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "expired sessions and identity rows purged"),
            Err(error) => tracing::warn!(%error, "could not purge expired identity rows"),
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
            _ = shutdown.wait() => {}
        }
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
