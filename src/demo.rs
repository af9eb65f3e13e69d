//! Demo data through the real command path: a demo user who owns a workspace with a sandbox
//! connection of 20 campaigns and 90 days of insights. Idempotency keys make a second run append
//! nothing new.

use adledger_commands::connections::SandboxLimits;
use adledger_commands::identity::{AuthPolicy, Identity};
use adledger_commands::{CommandContext, CommandError, IdempotencyKey};
use adledger_domain::event::ConnectionSettings;
use adledger_domain::{Actor, DateRange, DomainError, EventMetadata, UserId, WorkspaceId};
use adledger_infra::{Database, EventStore, Secret};
use chrono::{Duration, Utc};
use uuid::Uuid;

/// The demo user's credentials: local demo data only, printed on every start.
pub const DEMO_EMAIL: &str = "demo@adledger.local";
pub const DEMO_PASSWORD: &str = "adledger-demo-password";

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value_t = 20)]
    pub campaigns: u32,
    #[arg(long, default_value_t = 90)]
    pub days: i64,
}

impl Default for DemoArgs {
    fn default() -> Self {
        Self {
            seed: 42,
            campaigns: 20,
            days: 90,
        }
    }
}

impl DemoArgs {
    /// Limits that let this demo through, never below the defaults.
    fn sandbox_limits(&self) -> SandboxLimits {
        let defaults = SandboxLimits::default();
        let days = u64::try_from(self.days).unwrap_or(0);
        SandboxLimits {
            max_campaigns: defaults.max_campaigns.max(self.campaigns),
            max_campaign_days_per_sync: defaults
                .max_campaign_days_per_sync
                .max(u64::from(self.campaigns).saturating_mul(days)),
        }
    }
}

fn context(user: UserId, key: &str) -> CommandContext {
    let mut metadata = EventMetadata::system("demo", Uuid::now_v7());
    metadata.actor = Actor::User { user_id: user };
    CommandContext {
        metadata,
        idempotency_key: Some(IdempotencyKey::new(format!("demo user:{user}"), key)),
    }
}

/// The demo user, registered on first use.
async fn demo_user(identity: &Identity) -> anyhow::Result<UserId> {
    let ctx = CommandContext::system("demo");
    match identity
        .register(&ctx, DEMO_EMAIL, "Demo User", DEMO_PASSWORD)
        .await
    {
        Ok(user) => Ok(user),
        Err(CommandError::EmailTaken) => identity
            .store()
            .user_by_email(DEMO_EMAIL)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the demo user's email is taken but not found")),
        Err(e) => Err(e.into()),
    }
}

pub async fn run(url: &Secret<String>, args: DemoArgs) -> anyhow::Result<()> {
    adledger_infra::migrate::run(url).await?;
    let db = Database::connect(url, 5).await?;
    let store = EventStore::new(db.app.clone());
    let keys = crate::startup::keys_from_env()?;
    // The operator asked for this much on the server's own command line: the sandbox limits
    // of API callers do not bind it.
    let commands = crate::startup::commands(&store, &keys, Default::default())
        .with_sandbox_limits(args.sandbox_limits());
    let identity = Identity::new(commands, keys, AuthPolicy::default());
    let workspace = seed(&identity, &args).await?;
    // Every demo event placed before the read models catch up, even if another transaction on
    // the cluster holds some back for a moment.
    store
        .sequence_committed(std::time::Duration::from_secs(30))
        .await?;
    for p in adledger_projections::all() {
        adledger_projections::catch_up(&store, store.pool(), p.as_ref(), 2_000).await?;
    }
    print_examples(workspace, "http://127.0.0.1:8080");
    Ok(())
}

/// Seeds the demo workspace and returns its id.
pub async fn seed(identity: &Identity, args: &DemoArgs) -> anyhow::Result<WorkspaceId> {
    let commands = identity.commands();
    let user = demo_user(identity).await?;
    let context = |key: &str| context(user, key);
    let tag = format!("demo-{user}-{}-{}-{}", args.seed, args.campaigns, args.days);
    let workspace = commands
        .create_workspace(&context(&format!("{tag}-workspace")), "Demo workspace")
        .await?;
    let connection = commands
        .connect_platform(
            &context(&format!("{tag}-connection")),
            workspace,
            "Sandbox ads",
            ConnectionSettings::Sandbox {
                seed: args.seed,
                ad_accounts: 2,
                campaigns: args.campaigns,
            },
        )
        .await?;
    let today = commands.now().date_naive();
    let range = DateRange::new(today - Duration::days(args.days), today - Duration::days(1))?;
    let ctx = context(&format!("{tag}-sync-{today}"));
    let sync = commands
        .start_sync(&ctx, workspace, connection, range, Vec::new())
        .await?;
    match commands.run_sync(workspace, connection, sync).await {
        Ok(counts) => tracing::info!(
            recorded = counts.days_recorded,
            restated = counts.days_restated,
            unchanged = counts.days_unchanged,
            "demo sync completed"
        ),
        // Today's demo sync already ran (the idempotency key returned its id).
        Err(CommandError::Rejected(DomainError::SyncNotRunning(_))) => {}
        // A sync worker of a running server took it: its data is there once it ends.
        Err(CommandError::Rejected(DomainError::SyncAlreadyRunning(_))) => {
            wait_for_end(commands, workspace, connection, sync).await?
        }
        Err(e) => return Err(e.into()),
    }
    Ok(workspace)
}

/// Waits (up to ten minutes) until `sync` has ended.
async fn wait_for_end(
    commands: &adledger_commands::Commands,
    workspace: WorkspaceId,
    connection: adledger_domain::ConnectionId,
    sync: adledger_domain::SyncId,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(600);
    while tokio::time::Instant::now() < deadline {
        let conn = commands.connected(workspace, connection).await?;
        if conn.running_sync.is_none_or(|r| r.sync_id != sync) {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    anyhow::bail!("the demo sync {sync} did not end within ten minutes")
}

pub fn print_examples(workspace: WorkspaceId, base: &str) {
    let ws = format!("{base}/v1/workspaces/{workspace}");
    println!("Demo workspace: {workspace} (owner {DEMO_EMAIL}, password {DEMO_PASSWORD})");
    println!("Log in, then try:");
    println!(
        "  TOKEN=$(curl -s {base}/v1/auth/login -H 'content-type: application/json' \\
    \
         -d '{{\"email\":\"{DEMO_EMAIL}\",\"password\":\"{DEMO_PASSWORD}\"}}' \\
    \
         | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')"
    );
    let auth = "-H \"Authorization: Bearer $TOKEN\"";
    println!("  curl -s {auth} {ws}/connections");
    println!("  curl -s {auth} '{ws}/campaigns?limit=5'");
    println!(
        "  curl -s {auth} '{ws}/insights?from={}&to={}&granularity=week&group_by=campaign'",
        Utc::now().date_naive() - Duration::days(30),
        Utc::now().date_naive() - Duration::days(1)
    );
    println!("  curl -s {auth} '{ws}/events?limit=3'");
    println!("  curl -s {auth} '{ws}/audit?limit=5'");
    // Deployment-wide routes answer operators only.
    println!("  adledger operators grant {DEMO_EMAIL} && curl -s {auth} {base}/v1/log/verify");
    println!("  curl -s {base}/readyz");
}
