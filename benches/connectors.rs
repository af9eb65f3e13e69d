//! `cargo bench --bench connectors`: one sync of 1 ad account × 200 campaigns × 400 days from
//! each platform fake (Meta, Google Ads, TikTok), connected through the OAuth commands, into a
//! scratch database on the `DATABASE_URL` server (dropped afterwards). Prints `name=value` lines:
//! the sync's wall time, the requests the fake received during it, and the insights events
//! appended per second. Without `--bench` (as `cargo test --all-targets` runs it) it does nothing.

use adledger_commands::connections::ConnectorSetup;
use adledger_commands::{CommandContext, Commands};
use adledger_connectors::auth::StaticToken;
use adledger_connectors::fakes::any::AnyFake;
use adledger_connectors::fakes::google::{FakeGoogle, FakeGoogleOptions};
use adledger_connectors::fakes::meta::{FakeMeta, FakeMetaOptions};
use adledger_connectors::fakes::tiktok::{FakeTiktok, FakeTiktokOptions};
use adledger_connectors::fakes::RecordedRequest;
use adledger_connectors::{Platforms, TokenSource};
use adledger_domain::connection::AdAccount;
use adledger_domain::{DateRange, EventMetadata, Platform, UserId};
use adledger_infra::credentials::CredentialStore;
use adledger_infra::db::drop_database;
use adledger_infra::testing::{test_master_keys, TestDatabase};
use adledger_infra::{EventStore, Secret};
use anyhow::Context;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

const CAMPAIGNS: usize = 200;
const DAYS: i64 = 400;
/// A fixed range, so every run asks for (and the fakes answer) the same numbers.
const FIRST_DAY: &str = "2024-01-01";

/// A platform's fake, and the insights page limit the Meta client asks for.
struct Fake {
    any: AnyFake,
    meta_page_limit: u32,
}

impl Fake {
    fn other(any: AnyFake) -> Self {
        Self {
            any,
            meta_page_limit: 0,
        }
    }

    async fn start(platform: Platform, meta_page_limit: Option<u32>) -> anyhow::Result<Self> {
        Ok(match platform {
            // Graph API lists take `limit` up to a few hundred; the client asks for 100 rows
            // unless told otherwise.
            Platform::Meta => {
                let fake = FakeMeta::start(FakeMetaOptions {
                    accounts: 1,
                    campaigns_per_account: CAMPAIGNS,
                    page_size: 500,
                    insights_page_size: 500,
                    max_sync_days: None,
                    polls_before_done: 2,
                    regain_access_minutes: 0,
                })
                .await?;
                let limit = meta_page_limit.unwrap_or(fake.config().page_limit);
                Fake {
                    any: AnyFake::Meta(fake),
                    meta_page_limit: limit,
                }
            }
            // searchStream answers in batches of 10,000 rows.
            Platform::Google => Fake::other(AnyFake::Google(
                FakeGoogle::start(FakeGoogleOptions {
                    customers: 1,
                    campaigns_per_customer: CAMPAIGNS,
                    batch_size: 10_000,
                    with_manager: false,
                    managed_clients: 0,
                    retry_delay: "1s".into(),
                })
                .await?,
            )),
            // page_size is at most 1,000 for campaigns and reports.
            Platform::Tiktok => Fake::other(AnyFake::Tiktok(
                FakeTiktok::start(FakeTiktokOptions {
                    advertisers: 1,
                    campaigns_per_advertiser: CAMPAIGNS,
                    campaign_page_size: 1_000,
                    report_page_size: 1_000,
                })
                .await?,
            )),
            Platform::Sandbox => anyhow::bail!("the sandbox has no fake"),
        })
    }

    fn name(&self) -> &'static str {
        self.any.name()
    }

    fn platforms(&self) -> Platforms {
        let mut platforms = self.any.platforms();
        if let Some(meta) = platforms.meta.as_mut() {
            meta.page_limit = self.meta_page_limit;
        }
        platforms
    }

    /// What a request was for: token, discovery, insights (report pages), job (Meta's async
    /// report: start and polls).
    fn kind(&self, r: &RecordedRequest) -> &'static str {
        match self.any {
            AnyFake::Meta(_) => {
                let segments = r.path.trim_matches('/').split('/').count();
                if r.path.contains("oauth/access_token") {
                    "token"
                } else if r.path.ends_with("/adaccounts") || r.path.ends_with("/campaigns") {
                    "discovery"
                } else if r.method == "POST" || (segments == 2 && r.method == "GET") {
                    "job"
                } else {
                    "insights"
                }
            }
            AnyFake::Google(_) => {
                if r.path.ends_with("/token") || r.path.ends_with("/revoke") {
                    "token"
                } else if r.body.contains("segments.date") {
                    "insights"
                } else {
                    "discovery"
                }
            }
            AnyFake::Tiktok(_) => {
                if r.path.contains("oauth2/access_token") {
                    "token"
                } else if r.path.contains("report/integrated") {
                    "insights"
                } else {
                    "discovery"
                }
            }
        }
    }
}

fn context() -> CommandContext {
    CommandContext {
        metadata: EventMetadata::system("bench", Uuid::now_v7()),
        idempotency_key: None,
    }
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| v.to_owned())
    })
}

fn per_kind(fake: &Fake, requests: &[RecordedRequest]) -> BTreeMap<&'static str, usize> {
    let mut kinds = BTreeMap::new();
    for r in requests {
        *kinds.entry(fake.kind(r)).or_default() += 1;
    }
    kinds
}

async fn bench_platform(
    platform: Platform,
    range: DateRange,
    meta_page_limit: Option<u32>,
) -> anyhow::Result<()> {
    let fake = Fake::start(platform, meta_page_limit).await?;
    let name = fake.name();
    if fake.any.platform() == Platform::Meta {
        println!("meta_page_limit={}", fake.meta_page_limit);
    }
    let db = TestDatabase::new().await;
    let store = db.store();
    let result = sync_once(&fake, &store, range).await;
    db.db.app.close().await;
    if let Ok(server) = std::env::var("DATABASE_URL") {
        if let Err(e) = drop_database(&Secret::new(server), &db.name).await {
            eprintln!(
                "{name}: could not drop the scratch database {}: {e}",
                db.name
            );
        }
    }
    result.with_context(|| format!("{name} sync"))
}

async fn sync_once(fake: &Fake, store: &EventStore, range: DateRange) -> anyhow::Result<()> {
    let name = fake.name();
    let commands = Commands::new(store.clone()).with_connectors(ConnectorSetup {
        platforms: fake.platforms(),
        credentials: CredentialStore::new(store.pool().clone(), test_master_keys()),
    });
    // As in `serve`, the sequencer gives the appended events their positions meanwhile.
    let (stop, stopped) = adledger_infra::shutdown::channel();
    let sequencer = tokio::spawn(adledger_infra::event_store::sequencer::run(
        store.clone(),
        stopped,
    ));

    // Connect through the OAuth commands, as the API's authorize and callback routes do.
    let ctx = context();
    let workspace = commands.create_workspace(&ctx, "Bench").await?;
    let user = UserId(Uuid::now_v7());
    let started = commands
        .begin_authorization(workspace, user, fake.any.platform(), None)
        .await?;
    let state = query_param(&started.url, "state").context("no state in the authorization URL")?;
    let authorization = commands.take_authorization(&state).await?;
    let connection = commands
        .complete_authorization(&context(), &authorization, fake.any.auth_code())
        .await?;

    let before = fake.any.requests().len();
    let ctx = context();
    let clock = Instant::now();
    let sync_started: DateTime<Utc> = Utc::now();
    let sync = commands
        .start_sync(&ctx, workspace, connection, range, Vec::new())
        .await?;
    let counts = commands.run_sync(workspace, connection, sync).await?;
    let seconds = clock.elapsed().as_secs_f64();
    let requests = fake.any.requests();
    let during = &requests[before.min(requests.len())..];
    stop.trigger();
    sequencer.await?;

    // What the store holds: the insights events and when their transactions ran.
    let (events, first, last): (i64, Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
        sqlx::query_as(
            "SELECT count(*), min(recorded_at), max(recorded_at) FROM events \
             WHERE event_type = 'DailyInsightsRecorded'",
        )
        .fetch_one(store.pool())
        .await?;
    let (account, campaigns) = fake.any.first_account();
    let expected = campaigns
        .iter()
        .flat_map(|c| {
            range
                .from()
                .iter_days()
                .take(DAYS as usize)
                .map(move |d| (c, d))
        })
        .filter(|(c, d)| fake.any.expected_metrics(c, *d).is_some())
        .count();
    anyhow::ensure!(
        usize::try_from(events)? == expected && counts.days_recorded == expected as u64,
        "{name}: {events} DailyInsightsRecorded events ({} counted by the sync), expected {expected}",
        counts.days_recorded
    );

    // The platform side alone: the same fetch straight through the client, no store.
    let fetch = fetch_only(fake, &account, range).await?;

    let secs = |t: Option<DateTime<Utc>>| {
        t.map_or(0.0, |t| {
            (t - sync_started).num_microseconds().unwrap_or(0) as f64 / 1e6
        })
    };
    println!("{name}_connect_requests={before}");
    println!("{name}_sync_seconds={seconds:.3}");
    println!("{name}_requests={}", during.len());
    for (kind, n) in per_kind(fake, during) {
        println!("{name}_requests_{kind}={n}");
    }
    println!("{name}_insights_events={events}");
    println!(
        "{name}_insights_events_per_sec={:.0}",
        events as f64 / seconds
    );
    println!("{name}_first_insights_append_at_seconds={:.3}", secs(first));
    println!("{name}_last_insights_append_at_seconds={:.3}", secs(last));
    println!("{name}_fetch_only_seconds={fetch:.3}");
    Ok(())
}

/// Seconds to read the account's insights through the platform client alone.
async fn fetch_only(fake: &Fake, account: &str, range: DateRange) -> anyhow::Result<f64> {
    let tokens = fake.any.issue_tokens();
    let tokens: Arc<dyn TokenSource> = Arc::new(StaticToken(tokens.access_token));
    let client = fake
        .platforms()
        .connector(fake.any.platform(), tokens)
        .context("no client")?;
    let account = AdAccount {
        id: adledger_domain::AdAccountId(account.to_owned()),
        name: "bench".into(),
        currency: adledger_domain::Currency::parse("USD")?,
        time_zone: "UTC".into(),
    };
    let clock = Instant::now();
    let rows = client.account_insights(&account, range).await?;
    let seconds = clock.elapsed().as_secs_f64();
    anyhow::ensure!(!rows.is_empty(), "the fetch-only read returned no rows");
    Ok(seconds)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not: skip the minutes.
    if !std::env::args().any(|a| a == "--bench") {
        println!("connectors bench: skipped (run it with `cargo bench --bench connectors`)");
        return Ok(());
    }
    // `cargo bench --bench connectors -- [meta|google|tiktok]... [--meta-page-limit=N]`
    let args: Vec<String> = std::env::args().skip(1).collect();
    let meta_page_limit = args
        .iter()
        .find_map(|a| a.strip_prefix("--meta-page-limit="))
        .map(str::parse::<u32>)
        .transpose()
        .context("--meta-page-limit=N")?;
    let filter: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let from: NaiveDate = FIRST_DAY.parse()?;
    let range = DateRange::new(from, from + Duration::days(DAYS - 1))?;
    println!(
        "range={}..{} campaigns={CAMPAIGNS} days={DAYS}",
        range.from(),
        range.to()
    );
    for platform in [Platform::Meta, Platform::Google, Platform::Tiktok] {
        if !filter.is_empty() && !filter.iter().any(|f| *f == platform.as_str()) {
            continue;
        }
        bench_platform(platform, range, meta_page_limit).await?;
    }
    Ok(())
}
