//! Demo data through the real command path: a workspace, a sandbox connection with 20 campaigns,
//! and 90 days of insights. Idempotency keys make a second run append nothing new.

use adledger_commands::{CommandContext, CommandError, Commands};
use adledger_domain::event::ConnectionSettings;
use adledger_domain::{DateRange, DomainError, EventMetadata, WorkspaceId};
use adledger_infra::{Database, EventStore, Secret};
use chrono::{Duration, Utc};
use uuid::Uuid;

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

fn context(key: &str) -> CommandContext {
    CommandContext {
        metadata: EventMetadata::system("demo", Uuid::now_v7()),
        idempotency_key: Some(key.to_owned()),
        now: Utc::now(),
    }
}

pub async fn run(url: &Secret<String>, args: DemoArgs) -> anyhow::Result<()> {
    adledger_infra::migrate::run(url).await?;
    let db = Database::connect(url, 5).await?;
    let store = EventStore::new(db.app.clone());
    let workspace = seed(&store, &args).await?;
    store.sequence_all().await?;
    for p in adledger_projections::all() {
        adledger_projections::catch_up(&store, store.pool(), p.as_ref(), 2_000).await?;
    }
    print_examples(workspace, "http://127.0.0.1:8080");
    Ok(())
}

/// Seeds the demo workspace and returns its id.
pub async fn seed(store: &EventStore, args: &DemoArgs) -> anyhow::Result<WorkspaceId> {
    let commands = Commands::new(store.clone());
    let tag = format!("demo-{}-{}-{}", args.seed, args.campaigns, args.days);
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
    let today = Utc::now().date_naive();
    let range = DateRange::new(today - Duration::days(args.days), today - Duration::days(1))?;
    let ctx = context(&format!("{tag}-sync-{today}"));
    let sync = commands
        .start_sync(&ctx, workspace, connection, range, Vec::new())
        .await?;
    match commands.run_sync(&ctx, workspace, connection, sync).await {
        Ok(counts) => tracing::info!(
            recorded = counts.days_recorded,
            restated = counts.days_restated,
            unchanged = counts.days_unchanged,
            "demo sync completed"
        ),
        // Today's demo sync already ran (the idempotency key returned its id).
        Err(CommandError::Rejected(DomainError::SyncNotRunning(_))) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(workspace)
}

pub fn print_examples(workspace: WorkspaceId, base: &str) {
    let ws = format!("{base}/v1/workspaces/{workspace}");
    println!("Demo workspace: {workspace}");
    println!("Try:");
    println!("  curl -s {ws}/connections");
    println!("  curl -s '{ws}/campaigns?limit=5'");
    println!(
        "  curl -s '{ws}/insights?from={}&to={}&granularity=week&group_by=campaign'",
        Utc::now().date_naive() - Duration::days(30),
        Utc::now().date_naive() - Duration::days(1)
    );
    println!("  curl -s '{ws}/events?limit=3'");
    println!("  curl -s {base}/v1/log/verify");
    println!("  curl -s {base}/readyz");
}
