//! The command line. Every flag also reads an environment variable.

use crate::proofs::CheckpointArgs;
use crate::{audit, bench, demo, ops, proofs, replay, startup};
use adledger_commands::connections::SandboxLimits;
use adledger_connectors::config::{ConfigError, Given};
use adledger_connectors::google::{GoogleConfig, GoogleSettings};
use adledger_connectors::meta::{MetaConfig, MetaSettings};
use adledger_connectors::tiktok::{TiktokConfig, TiktokSettings};
use adledger_connectors::Platforms;
use adledger_infra::telemetry::LogFormat;
use adledger_infra::Secret;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "adledger",
    version,
    about = "Event-sourced advertising data: log, projections, REST API"
)]
pub struct Cli {
    /// PostgreSQL URL of the event log and read models.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<Secret<String>>,
    /// Log output: text for people, json for machines.
    #[arg(
        long,
        env = "ADLEDGER_LOG_FORMAT",
        global = true,
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormatArg,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(f: LogFormatArg) -> Self {
        match f {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// API, sequencer, projection workers and sync scheduler in one process.
    All,
    /// Only the HTTP API.
    Api,
    /// Only the sequencer, the projection workers and the sync scheduler.
    Worker,
}

/// Where projection workers read events from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Source {
    /// The Postgres log itself (one machine; the default).
    #[default]
    Postgres,
    /// The relay's Kafka topic (partitions shared by worker processes on many machines).
    Kafka,
}

/// The Kafka broker and topic of the relay and of Kafka-mode workers.
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (`host:port,...`). When set, `serve` also runs the relay.
    #[arg(long = "kafka-brokers", env = "ADLEDGER_KAFKA_BROKERS")]
    pub brokers: Option<String>,
    /// The topic that carries the log.
    #[arg(long = "kafka-topic", env = "ADLEDGER_KAFKA_TOPIC",
          default_value = adledger_infra::kafka::DEFAULT_TOPIC)]
    pub topic: String,
    /// Partitions of the topic when the relay creates it.
    #[arg(long = "kafka-partitions", env = "ADLEDGER_KAFKA_PARTITIONS",
          default_value_t = adledger_infra::kafka::DEFAULT_PARTITIONS,
          value_parser = clap::value_parser!(i32).range(1..=1024))]
    pub partitions: i32,
    /// Partition lease of a Kafka-mode worker (milliseconds): a dead worker's partitions move
    /// to the others within this time.
    #[arg(long = "kafka-lease-ms", env = "ADLEDGER_KAFKA_LEASE_MS",
          default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1_000..=300_000))]
    pub lease_ms: u64,
}

impl KafkaArgs {
    /// The configuration, when brokers are given.
    pub fn config(&self) -> Option<adledger_infra::kafka::KafkaConfig> {
        self.brokers
            .as_ref()
            .map(|brokers| adledger_infra::kafka::KafkaConfig {
                brokers: brokers.clone(),
                topic: self.topic.clone(),
                partitions: self.partitions,
            })
    }

    /// The configuration, or an error naming the missing setting.
    pub fn required(&self) -> anyhow::Result<adledger_infra::kafka::KafkaConfig> {
        self.config().ok_or_else(|| {
            anyhow::anyhow!(
                "no Kafka broker configured: set ADLEDGER_KAFKA_BROKERS or --kafka-brokers \
                 (scripts/kafka.sh env prints one for a local broker)"
            )
        })
    }
}

/// Limits and browser access of the HTTP API.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpArgs {
    /// Request bodies larger than this are refused with 413.
    #[arg(long, env = "ADLEDGER_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Requests whose response has not started after this many seconds get 503.
    #[arg(long, env = "ADLEDGER_REQUEST_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout_secs: u64,
    /// Browser origins allowed to call the API (CORS), comma-separated; none by default.
    #[arg(long, env = "ADLEDGER_CORS_ORIGINS", value_delimiter = ',',
          value_parser = parse_origin)]
    pub cors_origins: Vec<axum::http::HeaderValue>,
    /// Requests per minute per client IP (bursts up to the same number); 0 turns limiting off.
    #[arg(long, env = "ADLEDGER_RATE_LIMIT_PER_MINUTE", default_value_t = 1_200)]
    pub rate_limit_per_minute: u32,
    /// Login, registration and token refresh per minute per client IP; 0 turns it off.
    #[arg(
        long,
        env = "ADLEDGER_CREDENTIAL_RATE_LIMIT_PER_MINUTE",
        default_value_t = 30
    )]
    pub credential_rate_limit_per_minute: u32,
    /// Requests per minute per signed-in user or API key; 0 turns it off.
    #[arg(
        long,
        env = "ADLEDGER_CALLER_RATE_LIMIT_PER_MINUTE",
        default_value_t = 600
    )]
    pub caller_rate_limit_per_minute: u32,
}

fn parse_origin(origin: &str) -> Result<axum::http::HeaderValue, String> {
    let origin = origin.trim();
    let valid =
        (origin.starts_with("https://") || origin.starts_with("http://")) && !origin.ends_with('/');
    if !valid {
        return Err(format!(
            "{origin:?} is not an origin like https://app.example.com (scheme and host, no path)"
        ));
    }
    axum::http::HeaderValue::from_str(origin).map_err(|e| e.to_string())
}

impl HttpArgs {
    pub fn policy(&self) -> adledger_api::HttpPolicy {
        adledger_api::HttpPolicy {
            max_body_bytes: self.max_body_bytes,
            request_timeout: std::time::Duration::from_secs(self.request_timeout_secs),
            cors_origins: self.cors_origins.clone(),
            rate_limit_per_minute: (self.rate_limit_per_minute > 0)
                .then_some(self.rate_limit_per_minute),
            credential_rate_limit_per_minute: (self.credential_rate_limit_per_minute > 0)
                .then_some(self.credential_rate_limit_per_minute),
            caller_rate_limit_per_minute: (self.caller_rate_limit_per_minute > 0)
                .then_some(self.caller_rate_limit_per_minute),
        }
    }
}

/// When `/readyz` says "not ready", and how long it may take to say anything.
#[derive(Debug, Clone, clap::Args)]
pub struct ReadinessArgs {
    /// Not ready when the oldest committed event without a log position has waited longer than
    /// this (seconds): the sequencer is stalled, or a transaction left open anywhere in the
    /// cluster holds the log head (readiness names it).
    #[arg(long, env = "ADLEDGER_READY_MAX_UNSEQUENCED_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub ready_max_unsequenced_secs: u64,
    /// Not ready when a projection this process serves from has an unapplied event older than
    /// this (seconds). A time, not a count: a large sync that projections keep pace with stays
    /// ready.
    #[arg(long, env = "ADLEDGER_READY_MAX_LAG_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub ready_max_lag_secs: u64,
    /// `/readyz` and `/metrics` answer within this (milliseconds), 503 past it: keep it below
    /// the probe's own timeout.
    #[arg(long, env = "ADLEDGER_READY_TIMEOUT_MS", default_value_t = 2_000,
          value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub ready_timeout_ms: u64,
}

impl ReadinessArgs {
    /// The bounds and timeout (`serve` adds the relay topic and the workers' source).
    pub fn readiness(&self) -> adledger_api::Readiness {
        adledger_api::Readiness {
            relay_topic: None,
            projections_from_kafka: None,
            bounds: adledger_projections::ReadinessBounds {
                max_unsequenced_age: Duration::from_secs(self.ready_max_unsequenced_secs),
                max_lag: Duration::from_secs(self.ready_max_lag_secs),
            },
            probe_timeout: Duration::from_millis(self.ready_timeout_ms),
        }
    }
}

/// How the process waits for Postgres: briefly, so that an outage answers 503 in seconds.
#[derive(Debug, Clone, clap::Args)]
pub struct DbArgs {
    /// A query that gets no pooled connection within this (milliseconds) fails, and its request
    /// answers 503 `database-unavailable` with `Retry-After`: the database is down, restarting,
    /// refusing connections, or every connection is busy.
    #[arg(long, env = "ADLEDGER_DB_ACQUIRE_TIMEOUT_MS", default_value_t = 2_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub db_acquire_timeout_ms: u64,
    /// Opening a connection outside the pool (migrations at start-up) gives up after this
    /// (milliseconds).
    #[arg(long, env = "ADLEDGER_DB_CONNECT_TIMEOUT_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub db_connect_timeout_ms: u64,
}

impl DbArgs {
    pub fn pool(&self, max_connections: u32) -> adledger_infra::db::PoolConfig {
        adledger_infra::db::PoolConfig {
            max_connections,
            acquire_timeout: Duration::from_millis(self.db_acquire_timeout_ms),
            connect_timeout: Duration::from_millis(self.db_connect_timeout_ms),
        }
    }
}

/// The sync scheduler and the sync runs of this process.
#[derive(Debug, Clone, clap::Args)]
pub struct SyncArgs {
    /// Seconds from the start of a connection's last sync until the scheduler syncs it again;
    /// 0 turns the scheduler off. Only one process schedules at a time (leader election).
    #[arg(long, env = "ADLEDGER_SYNC_INTERVAL_SECS",
          default_value_t = adledger_commands::syncs::scheduler::DEFAULT_INTERVAL_SECS)]
    pub sync_interval_secs: u64,
    /// Days a scheduled sync reads back for an ad account that has never been synced.
    #[arg(long, env = "ADLEDGER_SYNC_BACKFILL_DAYS",
          default_value_t = adledger_commands::syncs::scheduler::DEFAULT_BACKFILL_DAYS,
          value_parser = clap::value_parser!(u32).range(1..=1_098))]
    pub sync_backfill_days: u32,
    /// Sync runs (scheduled and requested over the API) this process's sync worker carries out
    /// at once; the others wait in the queue for a worker.
    #[arg(long, env = "ADLEDGER_MAX_CONCURRENT_SYNCS",
          default_value_t = adledger_commands::DEFAULT_MAX_CONCURRENT_SYNCS as u64,
          value_parser = clap::value_parser!(u64).range(1..=1_024))]
    pub max_concurrent_syncs: u64,
    /// How long a sync worker's lease on a run lasts (seconds; renewed every third of that): a
    /// run whose worker died is taken over by another worker within about this long.
    #[arg(long, env = "ADLEDGER_SYNC_LEASE_SECS",
          default_value_t = adledger_commands::syncs::worker::DEFAULT_LEASE.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub sync_lease_secs: u64,
    /// How long a stopping worker waits for its running syncs to hand themselves back (seconds).
    #[arg(long, env = "ADLEDGER_SYNC_GRACE_SECS", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub sync_grace_secs: u64,
    /// Campaigns one sandbox connection may have (the sandbox generates whatever it is asked
    /// for, so what one workspace may ask of it is bounded here).
    #[arg(long, env = "ADLEDGER_SANDBOX_MAX_CAMPAIGNS",
          default_value_t = SandboxLimits::DEFAULT_MAX_CAMPAIGNS,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub sandbox_max_campaigns: u32,
    /// Campaign-days (campaigns × days of the range) one sync of a sandbox connection may
    /// cover: each is an event in the log and a row of daily insights.
    #[arg(long, env = "ADLEDGER_SANDBOX_MAX_CAMPAIGN_DAYS_PER_SYNC",
          default_value_t = SandboxLimits::DEFAULT_MAX_CAMPAIGN_DAYS_PER_SYNC,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub sandbox_max_campaign_days_per_sync: u64,
}

impl SyncArgs {
    /// The scheduler's configuration, or `None` when it is turned off.
    pub fn scheduler(&self) -> Option<adledger_commands::syncs::scheduler::SchedulerConfig> {
        (self.sync_interval_secs > 0).then(|| {
            adledger_commands::syncs::scheduler::SchedulerConfig::new(
                std::time::Duration::from_secs(self.sync_interval_secs),
                self.sync_backfill_days,
            )
        })
    }

    /// What sandbox connections and their syncs (started over the API or by the scheduler) may
    /// ask for.
    pub fn sandbox_limits(&self) -> SandboxLimits {
        SandboxLimits {
            max_campaigns: self.sandbox_max_campaigns,
            max_campaign_days_per_sync: self.sandbox_max_campaign_days_per_sync,
        }
    }

    /// The sync worker of this process.
    pub fn worker(&self) -> adledger_commands::syncs::WorkerConfig {
        adledger_commands::syncs::WorkerConfig {
            max_concurrent: usize::try_from(self.max_concurrent_syncs)
                .unwrap_or(adledger_commands::DEFAULT_MAX_CONCURRENT_SYNCS),
            lease: std::time::Duration::from_secs(self.sync_lease_secs),
            grace: std::time::Duration::from_secs(self.sync_grace_secs),
            ..Default::default()
        }
    }
}

/// Where this process's projection workers read from, and the broker when it is Kafka.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// Where the projection workers read events from.
    #[arg(
        long,
        env = "ADLEDGER_PROJECTION_SOURCE",
        value_enum,
        default_value = "postgres"
    )]
    pub source: Source,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Rebuild, in the background, every read model whose live version was built by an older
    /// code version (or whose build a crash left), as `projections rebuild` does: readers keep
    /// the live version until the new one is switched to. Off by default: a rebuild replays the
    /// whole log and holds a second copy of the read model until the old one is dropped.
    #[arg(long, env = "ADLEDGER_REBUILD_OUTDATED")]
    pub rebuild_outdated: bool,
}

/// The real ad platforms this process connects and syncs. Each is optional: a platform without
/// credentials is not configured (only the sandbox is then offered); one with only some of them
/// is refused at start-up, naming what is missing.
#[derive(Debug, Clone, Args)]
pub struct PlatformArgs {
    #[command(flatten)]
    pub meta: MetaArgs,
    #[command(flatten)]
    pub google: GoogleArgs,
    #[command(flatten)]
    pub tiktok: TiktokArgs,
}

/// Meta (Facebook / Instagram) Marketing API.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Meta")]
pub struct MetaArgs {
    /// Meta app id (the app id, secret and redirect URL come together or not at all).
    #[arg(long, env = "ADLEDGER_META_CLIENT_ID", hide_env_values = true)]
    pub meta_client_id: Option<String>,
    /// Meta app secret.
    #[arg(long, env = "ADLEDGER_META_CLIENT_SECRET", hide_env_values = true)]
    pub meta_client_secret: Option<adledger_connectors::Secret>,
    /// This server's `/v1/oauth/meta/callback`, as registered with the app.
    #[arg(long, env = "ADLEDGER_META_REDIRECT_URL")]
    pub meta_redirect_url: Option<String>,
    /// Graph API version.
    #[arg(long, env = "ADLEDGER_META_API_VERSION", default_value = MetaConfig::DEFAULT_API_VERSION)]
    pub meta_api_version: String,
    /// Base URL of the OAuth dialog.
    #[arg(long, env = "ADLEDGER_META_AUTH_URL", default_value = MetaConfig::DEFAULT_AUTH_URL)]
    pub meta_auth_url: String,
    /// Base URL of the Graph API.
    #[arg(long, env = "ADLEDGER_META_GRAPH_URL", default_value = MetaConfig::DEFAULT_GRAPH_URL)]
    pub meta_graph_url: String,
}

/// Google Ads API.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Google Ads")]
pub struct GoogleArgs {
    /// OAuth client id (the client id and secret, redirect URL and developer token come together
    /// or not at all).
    #[arg(long, env = "ADLEDGER_GOOGLE_CLIENT_ID", hide_env_values = true)]
    pub google_client_id: Option<String>,
    /// OAuth client secret.
    #[arg(long, env = "ADLEDGER_GOOGLE_CLIENT_SECRET", hide_env_values = true)]
    pub google_client_secret: Option<adledger_connectors::Secret>,
    /// This server's `/v1/oauth/google/callback`, as registered with the OAuth client.
    #[arg(long, env = "ADLEDGER_GOOGLE_REDIRECT_URL")]
    pub google_redirect_url: Option<String>,
    /// Google Ads developer token.
    #[arg(long, env = "ADLEDGER_GOOGLE_DEVELOPER_TOKEN", hide_env_values = true)]
    pub google_developer_token: Option<adledger_connectors::Secret>,
    /// Manager account to act through (123-456-7890 or digits), sent as `login-customer-id`.
    #[arg(long, env = "ADLEDGER_GOOGLE_LOGIN_CUSTOMER_ID")]
    pub google_login_customer_id: Option<String>,
    /// The OAuth consent page.
    #[arg(long, env = "ADLEDGER_GOOGLE_AUTH_URL", default_value = GoogleConfig::DEFAULT_AUTH_URL)]
    pub google_auth_url: String,
    /// Base URL of `/token` and `/revoke`.
    #[arg(long, env = "ADLEDGER_GOOGLE_OAUTH_URL", default_value = GoogleConfig::DEFAULT_OAUTH_URL)]
    pub google_oauth_url: String,
    /// Base URL of the Google Ads REST API (without the version).
    #[arg(long, env = "ADLEDGER_GOOGLE_API_URL", default_value = GoogleConfig::DEFAULT_API_URL)]
    pub google_api_url: String,
    /// Google Ads API version.
    #[arg(long, env = "ADLEDGER_GOOGLE_API_VERSION",
          default_value = GoogleConfig::DEFAULT_API_VERSION)]
    pub google_api_version: String,
    /// Days of restated conversions every sync reads again.
    #[arg(long, env = "ADLEDGER_GOOGLE_CONVERSION_WINDOW_DAYS",
          default_value_t = GoogleConfig::DEFAULT_CONVERSION_WINDOW_DAYS)]
    pub google_conversion_window_days: u32,
}

/// TikTok API for Business.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "TikTok")]
pub struct TiktokArgs {
    /// TikTok app id (the app id, secret and redirect URL come together or not at all).
    #[arg(long, env = "ADLEDGER_TIKTOK_APP_ID", hide_env_values = true)]
    pub tiktok_app_id: Option<String>,
    /// TikTok app secret.
    #[arg(long, env = "ADLEDGER_TIKTOK_SECRET", hide_env_values = true)]
    pub tiktok_secret: Option<adledger_connectors::Secret>,
    /// This server's `/v1/oauth/tiktok/callback`, as registered with the app.
    #[arg(long, env = "ADLEDGER_TIKTOK_REDIRECT_URL")]
    pub tiktok_redirect_url: Option<String>,
    /// The advertiser authorization page.
    #[arg(long, env = "ADLEDGER_TIKTOK_AUTH_URL", default_value = TiktokConfig::DEFAULT_AUTH_URL)]
    pub tiktok_auth_url: String,
    /// Base URL of every API path, version included.
    #[arg(long, env = "ADLEDGER_TIKTOK_API_URL", default_value = TiktokConfig::DEFAULT_API_URL)]
    pub tiktok_api_url: String,
    /// Days after a click that conversions are attributed: every sync reads them again.
    #[arg(long, env = "ADLEDGER_TIKTOK_ATTRIBUTION_WINDOW_DAYS",
          default_value_t = TiktokConfig::DEFAULT_ATTRIBUTION_WINDOW_DAYS)]
    pub tiktok_attribution_window_days: u32,
}

impl PlatformArgs {
    /// Every platform's configuration; an error names the first partly configured platform and
    /// what it lacks.
    pub fn platforms(&self) -> Result<Platforms, ConfigError> {
        let (meta, google, tiktok) = (&self.meta, &self.google, &self.tiktok);
        Ok(Platforms {
            meta: MetaConfig::new(MetaSettings {
                client_id: given("meta_client_id", &meta.meta_client_id),
                client_secret: given("meta_client_secret", &meta.meta_client_secret),
                redirect_url: given("meta_redirect_url", &meta.meta_redirect_url),
                api_version: Some(meta.meta_api_version.clone()),
                auth_url: Some(meta.meta_auth_url.clone()),
                graph_url: Some(meta.meta_graph_url.clone()),
            })?,
            google: GoogleConfig::new(GoogleSettings {
                client_id: given("google_client_id", &google.google_client_id),
                client_secret: given("google_client_secret", &google.google_client_secret),
                redirect_url: given("google_redirect_url", &google.google_redirect_url),
                developer_token: given("google_developer_token", &google.google_developer_token),
                login_customer_id: given(
                    "google_login_customer_id",
                    &google.google_login_customer_id,
                ),
                auth_url: Some(google.google_auth_url.clone()),
                oauth_url: Some(google.google_oauth_url.clone()),
                api_url: Some(google.google_api_url.clone()),
                api_version: Some(google.google_api_version.clone()),
                conversion_window_days: Some(google.google_conversion_window_days),
            })?,
            tiktok: TiktokConfig::new(TiktokSettings {
                app_id: given("tiktok_app_id", &tiktok.tiktok_app_id),
                secret: given("tiktok_secret", &tiktok.tiktok_secret),
                redirect_url: given("tiktok_redirect_url", &tiktok.tiktok_redirect_url),
                auth_url: Some(tiktok.tiktok_auth_url.clone()),
                api_url: Some(tiktok.tiktok_api_url.clone()),
                attribution_window_days: Some(tiktok.tiktok_attribution_window_days),
            })?,
        })
    }
}

/// A platform argument's value under the names a person sets it by, taken from clap's own
/// definition of the argument `id`: `--meta-client-id (ADLEDGER_META_CLIENT_ID)`.
fn given<T: Clone>(id: &str, value: &Option<T>) -> Given<T> {
    let command = PlatformArgs::augment_args(clap::Command::new("adledger"));
    let name = command
        .get_arguments()
        .find(|arg| arg.get_id() == id)
        .map_or_else(
            || id.to_owned(),
            |arg| {
                let long = arg.get_long().unwrap_or(id);
                match arg.get_env() {
                    Some(env) => format!("--{long} ({})", env.to_string_lossy()),
                    None => format!("--{long}"),
                }
            },
        );
    Given::new(name, value.clone())
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (and, by default, run the sequencer and projection workers). Applies pending
    /// migrations first.
    Serve {
        #[arg(long, env = "ADLEDGER_BIND", default_value = "127.0.0.1:8080")]
        bind: SocketAddr,
        #[arg(long, env = "ADLEDGER_ROLE", value_enum, default_value = "all")]
        role: Role,
        #[command(flatten)]
        readiness: ReadinessArgs,
        /// Seed the demo workspace before serving.
        #[arg(long)]
        demo: bool,
        #[command(flatten)]
        workers: WorkerArgs,
        #[command(flatten)]
        http: HttpArgs,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        syncs: SyncArgs,
        #[command(flatten)]
        platforms: PlatformArgs,
        #[command(flatten)]
        checkpoints: CheckpointArgs,
    },
    /// Run only the sequencer, the projection workers, the sync worker and the sync scheduler
    /// (same as `serve --role worker`).
    Worker {
        #[command(flatten)]
        workers: WorkerArgs,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        syncs: SyncArgs,
        #[command(flatten)]
        platforms: PlatformArgs,
        #[command(flatten)]
        checkpoints: CheckpointArgs,
    },
    /// Run only the relay: publish the log to the Kafka topic (one active relay per topic; others
    /// stand by and take over).
    Relay {
        #[command(flatten)]
        kafka: KafkaArgs,
    },
    /// Apply pending migrations and exit.
    Migrate,
    /// Seed a demo workspace through the real command path (idempotent).
    Demo(demo::DemoArgs),
    /// Projection operations.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Print events in log order as NDJSON, filtered by positions, workspace, stream, time,
    /// event types, actor and stream type (combined).
    Replay(replay::ReplayArgs),
    /// Recompute the hash chain; exit 1 at the first broken link.
    Verify,
    /// Audit packages: a workspace's events with inclusion proofs in a signed checkpoint.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Print the signed checkpoint (C2SP signed note) of the log's current tree head.
    Checkpoint {
        #[command(flatten)]
        checkpoints: CheckpointArgs,
    },
    /// Measure append and replay throughput in a scratch database on the same server.
    Bench(bench::BenchArgs),
    /// Encryption and signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Who runs the deployment: operators may use the deployment-wide routes (the whole log's
    /// verification, every projection's status).
    Operators {
        #[command(subcommand)]
        command: OperatorsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum OperatorsCommand {
    /// Make the person with this email an operator.
    Grant { email: String },
    /// Take the operator role back from the person with this email.
    Revoke { email: String },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print fresh `ADLEDGER_MASTER_KEYS` and `ADLEDGER_JWT_KEYS` lines. To rotate, put the new
    /// key first in each list, keep the old ones after it, and run `keys rewrap`.
    Generate {
        /// Key id of the new keys (1 to 32 of A-Z a-z 0-9 _ -).
        #[arg(long, default_value = "k1")]
        kid: String,
    },
    /// Re-encrypt every per-person key under the first (active) master key.
    Rewrap,
    /// Print a fresh checkpoint signing key (`ADLEDGER_CHECKPOINT_KEYS=PRIVATE+KEY+…`) and its
    /// verifier key. To rotate, put the new key first in the list and keep the old ones after it.
    Checkpoint {
        /// The key's name (conventionally the checkpoint origin; no spaces or '+').
        name: String,
    },
    /// Print the verifier key of every configured checkpoint key, the signing one first.
    Public {
        #[command(flatten)]
        checkpoints: CheckpointArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Position, lag and rate of every projection (and of the relay and Kafka-mode workers when
    /// a broker is configured).
    Status {
        #[command(flatten)]
        kafka: KafkaArgs,
    },
    /// Build a new version of a read model from position 0 beside the live one, then switch
    /// readers to it (the old version stays for `rollback`). With `--source kafka`, empty the
    /// live version and replay the topic into it instead (readers see it fill up).
    Rebuild {
        name: String,
        /// Events per transaction.
        #[arg(long, default_value_t = adledger_projections::DEFAULT_BATCH,
              value_parser = clap::value_parser!(i64).range(1..=1_000_000))]
        batch: i64,
        /// Replay from the Postgres log or from the Kafka topic (stop its Kafka workers first).
        #[arg(long, value_enum, default_value = "postgres")]
        source: Source,
        #[command(flatten)]
        kafka: KafkaArgs,
    },
    /// Switch readers back to the version retired last, caught up with the log first.
    Rollback {
        name: String,
        /// Events per transaction while catching up.
        #[arg(long, default_value_t = adledger_projections::DEFAULT_BATCH,
              value_parser = clap::value_parser!(i64).range(1..=1_000_000))]
        batch: i64,
    },
    /// Drop a version readers do not see (retired, or a build, which stops it).
    Drop { name: String, version: i32 },
    /// Every version of every read model: state, code version, position.
    Versions,
    /// Print a checksum of a projection's read model (equal checksums, equal tables); without a
    /// name, every projection's, one `NAME CHECKSUM` line each.
    Checksum {
        name: Option<String>,
        /// A version other than the live one (with a name).
        #[arg(long, requires = "name")]
        version: Option<i32>,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Commands that need no database.
    match &cli.command {
        Command::Keys {
            command: KeysCommand::Generate { kid },
        } => {
            ops::generate_keys(kid)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Keys {
            command: KeysCommand::Checkpoint { name },
        } => {
            proofs::generate_key(name)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Keys {
            command: KeysCommand::Public { checkpoints },
        } => {
            proofs::print_public(checkpoints)?;
            return Ok(ExitCode::SUCCESS);
        }
        // Offline: an auditor runs it with no database at all.
        Command::Audit {
            command: audit::AuditCommand::Verify { file, key },
        } => return audit::verify(file, key),
        _ => {}
    }
    let url = cli.database_url.ok_or_else(|| {
        anyhow::anyhow!(
            "DATABASE_URL is not set (scripts/pg.sh env prints one for a local Postgres)"
        )
    })?;
    match cli.command {
        Command::Serve {
            bind,
            role,
            readiness,
            demo,
            workers,
            http,
            db,
            syncs,
            platforms,
            checkpoints,
        } => {
            startup::serve(startup::ServeConfig {
                url,
                checkpoints: checkpoints.checkpointer()?,
                checkpoint_interval: checkpoints.interval(),
                bind,
                role,
                readiness: readiness.readiness(),
                demo,
                workers,
                http: http.policy(),
                db,
                syncs,
                platforms: platforms.platforms()?,
            })
            .await?
        }
        Command::Worker {
            workers,
            db,
            syncs,
            platforms,
            checkpoints,
        } => {
            startup::serve(startup::ServeConfig {
                url,
                checkpoints: checkpoints.checkpointer()?,
                checkpoint_interval: checkpoints.interval(),
                bind: SocketAddr::from(([127, 0, 0, 1], 0)),
                role: Role::Worker,
                readiness: Default::default(),
                demo: false,
                workers,
                http: Default::default(),
                db,
                syncs,
                platforms: platforms.platforms()?,
            })
            .await?
        }
        Command::Relay { kafka } => startup::relay(&url, kafka.required()?).await?,
        Command::Migrate => {
            let applied = adledger_infra::migrate::run(&url).await?;
            println!("applied {} migration(s): {applied:?}", applied.len());
        }
        Command::Demo(args) => demo::run(&url, args).await?,
        Command::Projections { command } => return ops::projections(&url, command).await,
        Command::Replay(args) => replay::replay(&url, args).await?,
        Command::Verify => return ops::verify(&url).await,
        Command::Audit { command } => match command {
            audit::AuditCommand::Export {
                workspace,
                from,
                to,
                out,
                checkpoints,
            } => {
                let store = ops::store(&url).await?;
                audit::export(
                    &store,
                    audit::range(workspace, from, to),
                    &out,
                    &checkpoints,
                )
                .await?
            }
            // Answered above, without a database.
            audit::AuditCommand::Verify { .. } => {}
        },
        Command::Checkpoint { checkpoints } => {
            proofs::print_checkpoint(&ops::store(&url).await?, &checkpoints).await?
        }
        Command::Bench(args) => bench::run(&url, args).await?,
        Command::Keys { command } => match command {
            KeysCommand::Generate { kid } => ops::generate_keys(&kid)?,
            KeysCommand::Rewrap => ops::rewrap_keys(&url).await?,
            // Answered above, without a database.
            KeysCommand::Checkpoint { .. } | KeysCommand::Public { .. } => {}
        },
        Command::Operators { command } => match command {
            OperatorsCommand::Grant { email } => ops::set_operator(&url, &email, true).await?,
            OperatorsCommand::Revoke { email } => ops::set_operator(&url, &email, false).await?,
        },
    }
    Ok(ExitCode::SUCCESS)
}
