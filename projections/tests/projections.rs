//! Projections against a real Postgres: the read models must equal what the events say, whatever
//! the batch size, rebuilds or crashes between batches.

use adledger_domain::event::{
    AdAccountDiscovered, CampaignChanged, CampaignDiscovered, ConnectionNeedsReauth,
    ConnectionReauthorized, ConnectionSettings, DailyInsightsRecorded, DailyInsightsRestated,
    InsightsSource, PlatformConnected, PlatformDisconnected, SyncCompleted, SyncCounts, SyncFailed,
    SyncStarted, WorkspaceCreated,
};
use adledger_domain::{
    AdAccountId, AsOf, CampaignId, ConnectionId, Currency, DailyMetrics, DateRange, DomainEvent,
    EventId, EventMetadata, Platform, StreamId, SyncId, WorkspaceId,
};
use adledger_infra::testing::TestDatabase;
use adledger_infra::{AppendRequest, EventStore, NewEvent};
use adledger_projections::catalog::{self, CampaignFilter};
use adledger_projections::daily_insights::{
    self, Granularity, GroupBy, InsightsQuery, InsightsRow,
};
use adledger_projections::{
    by_name, catch_up, checksum, deployment_status, rebuild, Projection, ProjectionStatus,
};
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use sqlx::PgPool;
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// Appends events stream by stream, tracking versions and the log position each event will get
/// (appends are sequential, so log order is append order).
struct Log {
    store: EventStore,
    workspace: WorkspaceId,
    versions: HashMap<StreamId, i64>,
    appended: i64,
    clock: DateTime<Utc>,
}

impl Log {
    fn new(store: EventStore, workspace: WorkspaceId) -> Self {
        Self {
            store,
            workspace,
            versions: HashMap::new(),
            appended: 0,
            clock: Utc.with_ymd_and_hms(2024, 3, 1, 8, 0, 0).unwrap(),
        }
    }

    /// Sequences everything appended so far. Transactions of other tests (other databases of
    /// the same server) can hold the snapshot horizon back for a moment, so loop until done.
    async fn sequence(&self) -> i64 {
        loop {
            let head = self.store.sequence_all().await.unwrap();
            if head >= self.appended {
                return head;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Appends to one stream; returns the positions the events will have.
    async fn append(&mut self, stream: StreamId, events: Vec<DomainEvent>) -> Vec<i64> {
        let expected = *self.versions.get(&stream).unwrap_or(&0);
        let stream_type = stream.as_str().split('-').next().unwrap().to_owned();
        let n = events.len() as i64;
        let new_events = events
            .into_iter()
            .map(|e| {
                self.clock += Duration::seconds(1);
                NewEvent {
                    event_id: EventId(Uuid::now_v7()),
                    event_type: e.event_type().to_owned(),
                    schema_version: e.schema_version(),
                    payload: e.to_payload(),
                    occurred_at: self.clock,
                }
            })
            .collect();
        self.store
            .append(AppendRequest {
                stream_id: stream.clone(),
                stream_type: match stream_type.as_str() {
                    "workspace" => "workspace",
                    "connection" => "connection",
                    _ => "campaign",
                },
                workspace_id: self.workspace,
                expected_version: expected,
                metadata: serde_json::to_value(EventMetadata::system("test", Uuid::now_v7()))
                    .unwrap(),
                events: new_events,
                idempotency: None,
            })
            .await
            .unwrap();
        self.versions.insert(stream, expected + n);
        let first = self.appended + 1;
        self.appended += n;
        (first..=self.appended).collect()
    }
}

/// A tiny deterministic generator (no external randomness in tests).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone, PartialEq)]
struct ExpectedRow {
    workspace: Uuid,
    connection: Uuid,
    platform: String,
    ad_account: String,
    currency: String,
    impressions: i64,
    clicks: i64,
    spend: Decimal,
    conversions: Decimal,
    conversion_value: Decimal,
    revision: i32,
    position: i64,
}

struct CampaignSpec {
    id: CampaignId,
    connection: ConnectionId,
    account: AdAccountId,
    currency: Currency,
}

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn dec(cents: u64) -> Decimal {
    Decimal::new(cents as i64, 2)
}

/// Appends insights for several campaigns in two currencies with many restatements; returns the
/// expected read model computed from the events in Rust.
async fn seed_insights(
    log: &mut Log,
    events_wanted: usize,
) -> (BTreeMap<(Uuid, NaiveDate), ExpectedRow>, Vec<CampaignSpec>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let connections = [
        ConnectionId(Uuid::from_u128(100)),
        ConnectionId(Uuid::from_u128(200)),
    ];
    let campaigns: Vec<CampaignSpec> = (0..6u32)
        .map(|i| {
            let connection = connections[(i % 2) as usize];
            CampaignSpec {
                id: CampaignId::derive(connection, &format!("c{i}")),
                connection,
                account: AdAccountId(format!("act_{}", i % 3)),
                currency: Currency::parse(if i % 3 == 0 { "EUR" } else { "USD" }).unwrap(),
            }
        })
        .collect();
    let start = day("2024-01-01");
    let mut expected = BTreeMap::new();
    let mut revisions: HashMap<(Uuid, NaiveDate), (u32, DailyMetrics)> = HashMap::new();
    let mut total = 0;
    while total < events_wanted {
        let c = &campaigns[rng.below(campaigns.len() as u64) as usize];
        let count = 1 + rng.below(40) as usize;
        let mut events = Vec::with_capacity(count);
        let mut keys = Vec::with_capacity(count);
        for _ in 0..count {
            let date = start + Duration::days(rng.below(75) as i64);
            let metrics = DailyMetrics::new(
                rng.below(100_000),
                rng.below(2_000),
                dec(rng.below(1_000_000)),
                Decimal::new(rng.below(500) as i64, 1),
                dec(rng.below(5_000_000)),
            )
            .unwrap();
            let source = InsightsSource {
                campaign_id: c.id,
                connection_id: c.connection,
                platform: Platform::Sandbox,
                ad_account_id: c.account.clone(),
                sync_id: SyncId(Uuid::from_u128(1)),
            };
            let key = (c.id.as_uuid(), date);
            let event = match revisions.get(&key) {
                None => DomainEvent::DailyInsightsRecorded(DailyInsightsRecorded {
                    source,
                    date,
                    currency: c.currency,
                    metrics: metrics.clone(),
                    revision: 1,
                }),
                Some((revision, previous)) => {
                    DomainEvent::DailyInsightsRestated(DailyInsightsRestated {
                        source,
                        date,
                        currency: c.currency,
                        metrics: metrics.clone(),
                        revision: revision + 1,
                        previous_currency: c.currency,
                        previous: previous.clone(),
                    })
                }
            };
            let revision = revisions.get(&key).map_or(1, |(r, _)| r + 1);
            revisions.insert(key, (revision, metrics));
            keys.push((key, revision));
            events.push(event);
        }
        let positions = log.append(c.id.stream(), events.clone()).await;
        for ((key, revision), (position, event)) in
            keys.into_iter().zip(positions.into_iter().zip(events))
        {
            let metrics = match event {
                DomainEvent::DailyInsightsRecorded(e) => e.metrics,
                DomainEvent::DailyInsightsRestated(e) => e.metrics,
                _ => unreachable!(),
            };
            expected.insert(
                key,
                ExpectedRow {
                    workspace: log.workspace.as_uuid(),
                    connection: c.connection.as_uuid(),
                    platform: "sandbox".into(),
                    ad_account: c.account.0.clone(),
                    currency: c.currency.as_str().into(),
                    impressions: metrics.impressions as i64,
                    clicks: metrics.clicks as i64,
                    spend: metrics.spend,
                    conversions: metrics.conversions,
                    conversion_value: metrics.conversion_value,
                    revision: revision as i32,
                    position,
                },
            );
        }
        total += count;
    }
    (expected, campaigns)
}

type DbRow = (
    Uuid,
    NaiveDate,
    Uuid,
    Uuid,
    String,
    String,
    String,
    i64,
    i64,
    Decimal,
    Decimal,
    Decimal,
    i32,
    i64,
);

async fn stored_insights(pool: &PgPool) -> BTreeMap<(Uuid, NaiveDate), ExpectedRow> {
    let rows: Vec<DbRow> = sqlx::query_as(
        "SELECT campaign_id, date, workspace_id, connection_id, platform, ad_account_id,
                currency::text, impressions, clicks, spend, conversions, conversion_value,
                revision, last_position
         FROM daily_insights",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|r| {
            (
                (r.0, r.1),
                ExpectedRow {
                    workspace: r.2,
                    connection: r.3,
                    platform: r.4,
                    ad_account: r.5,
                    currency: r.6,
                    impressions: r.7,
                    clicks: r.8,
                    spend: r.9,
                    conversions: r.10,
                    conversion_value: r.11,
                    revision: r.12,
                    position: r.13,
                },
            )
        })
        .collect()
}

async fn checkpoint(pool: &PgPool, name: &str) -> (i64, i64, Option<String>) {
    sqlx::query_as(
        "SELECT position, events_applied, last_error FROM projection_checkpoints WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await
    .unwrap()
    .unwrap_or((0, 0, None))
}

fn projection(name: &str) -> std::sync::Arc<dyn Projection> {
    by_name(name).unwrap()
}

/// Every projection's status as fed from the Postgres log, in worker start order.
async fn log_status(store: &EventStore) -> Vec<ProjectionStatus> {
    deployment_status(store, Default::default())
        .await
        .unwrap()
        .projections
}

#[derive(Debug, Default, Clone, PartialEq)]
struct Sums {
    impressions: i64,
    clicks: i64,
    spend: Decimal,
    conversions: Decimal,
    conversion_value: Decimal,
}

impl Sums {
    fn add(&mut self, r: &ExpectedRow) {
        self.impressions += r.impressions;
        self.clicks += r.clicks;
        self.spend += r.spend;
        self.conversions += r.conversions;
        self.conversion_value += r.conversion_value;
    }
    fn of(row: &InsightsRow) -> Self {
        Self {
            impressions: row.impressions,
            clicks: row.clicks,
            spend: row.spend,
            conversions: row.conversions,
            conversion_value: row.conversion_value,
        }
    }
}

fn whole_range() -> DateRange {
    DateRange::new(day("2023-12-01"), day("2024-06-30")).unwrap()
}

#[tokio::test]
async fn insights_read_model_equals_the_events_and_the_query_totals_match() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let pool = &db.db.app;
    let ws = WorkspaceId(Uuid::now_v7());
    let mut log = Log::new(store.clone(), ws);
    let (expected, campaigns) = seed_insights(&mut log, 4_000).await;
    let head = log.sequence().await;
    assert_eq!(head, log.appended);

    let started = std::time::Instant::now();
    let applied = catch_up(&store, pool, &*projection("daily_insights"), 2_000)
        .await
        .unwrap();
    eprintln!(
        "daily_insights: {applied} events in {:?} ({:.0} events/s)",
        started.elapsed(),
        applied as f64 / started.elapsed().as_secs_f64()
    );
    assert_eq!(applied as i64, head);
    assert_eq!(stored_insights(pool).await, expected);
    assert_eq!(checkpoint(pool, "daily_insights").await, (head, head, None));
    // Nothing new: a second catch-up applies nothing.
    assert_eq!(
        catch_up(&store, pool, &*projection("daily_insights"), 2_000)
            .await
            .unwrap(),
        0
    );

    let rows = daily_insights::insights(
        pool,
        &InsightsQuery {
            workspace_id: ws,
            range: whole_range(),
            granularity: Granularity::Total,
            group_by: vec![GroupBy::Campaign],
            connection_id: None,
            campaign_ids: vec![],
            after: None,
            limit: 100_000,
            as_of: None,
        },
    )
    .await
    .unwrap();
    let mut by_campaign: BTreeMap<Uuid, Sums> = BTreeMap::new();
    for ((campaign, _), row) in &expected {
        by_campaign.entry(*campaign).or_default().add(row);
    }
    assert_eq!(rows.len(), by_campaign.len());
    for row in &rows {
        assert_eq!(row.period, None);
        let campaign = row.campaign_id.unwrap().as_uuid();
        assert_eq!(Sums::of(row), by_campaign[&campaign]);
        let spec = campaigns
            .iter()
            .find(|c| c.id.as_uuid() == campaign)
            .unwrap();
        assert_eq!(row.currency, spec.currency.as_str());
    }
    let ids: Vec<CampaignId> = rows.iter().map(|r| r.campaign_id.unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "rows are ordered by campaign");

    // A filter on one connection and two campaigns keeps only theirs.
    let picked = [campaigns[0].id, campaigns[2].id];
    let filtered = daily_insights::insights(
        pool,
        &InsightsQuery {
            workspace_id: ws,
            range: whole_range(),
            granularity: Granularity::Total,
            group_by: vec![GroupBy::Campaign, GroupBy::Campaign],
            connection_id: Some(campaigns[0].connection),
            campaign_ids: picked.to_vec(),
            after: None,
            limit: 100_000,
            as_of: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(filtered.len(), 2);
    assert!(filtered
        .iter()
        .all(|r| picked.iter().any(|c| Some(*c) == r.campaign_id)));

    // Another workspace sees nothing.
    let other = daily_insights::insights(
        pool,
        &InsightsQuery {
            workspace_id: WorkspaceId(Uuid::now_v7()),
            range: whole_range(),
            granularity: Granularity::Total,
            group_by: vec![],
            connection_id: None,
            campaign_ids: vec![],
            after: None,
            limit: 100_000,
            as_of: None,
        },
    )
    .await
    .unwrap();
    assert!(other.is_empty());
}

#[tokio::test]
async fn weekly_and_monthly_buckets_sum_right_and_never_mix_currencies() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let pool = &db.db.app;
    let ws = WorkspaceId(Uuid::now_v7());
    let mut log = Log::new(store.clone(), ws);
    let (expected, _) = seed_insights(&mut log, 1_500).await;
    log.sequence().await;
    catch_up(&store, pool, &*projection("daily_insights"), 500)
        .await
        .unwrap();
    assert_eq!(stored_insights(pool).await, expected);
    let range = DateRange::new(day("2024-01-10"), day("2024-03-05")).unwrap();
    let in_range: Vec<_> = expected
        .iter()
        .filter(|((_, d), _)| range.contains(*d))
        .collect();

    let query = |granularity, group_by: Vec<GroupBy>| InsightsQuery {
        workspace_id: ws,
        range,
        granularity,
        group_by,
        connection_id: None,
        campaign_ids: vec![],
        after: None,
        limit: 100_000,
        as_of: None,
    };

    // Weekly, by campaign: buckets start on the ISO Monday.
    let mut weekly: BTreeMap<(NaiveDate, Uuid), Sums> = BTreeMap::new();
    for ((campaign, date), row) in &in_range {
        let monday = *date - Duration::days(date.weekday().num_days_from_monday() as i64);
        weekly.entry((monday, *campaign)).or_default().add(row);
    }
    let rows = daily_insights::insights(pool, &query(Granularity::Week, vec![GroupBy::Campaign]))
        .await
        .unwrap();
    let got: BTreeMap<(NaiveDate, Uuid), Sums> = rows
        .iter()
        .map(|r| {
            (
                (r.period.unwrap(), r.campaign_id.unwrap().as_uuid()),
                Sums::of(r),
            )
        })
        .collect();
    assert_eq!(got.len(), rows.len());
    assert_eq!(got, weekly);
    assert!(rows.windows(2).all(|w| w[0].period <= w[1].period));
    assert!(
        rows.iter().all(|r| r.campaign_name.is_none()),
        "no catalog yet"
    );

    // Monthly, by currency only.
    let mut monthly: BTreeMap<(NaiveDate, String), Sums> = BTreeMap::new();
    for ((_, date), row) in &in_range {
        let first = date.with_day(1).unwrap();
        monthly
            .entry((first, row.currency.clone()))
            .or_default()
            .add(row);
    }
    let rows = daily_insights::insights(pool, &query(Granularity::Month, vec![]))
        .await
        .unwrap();
    let got: BTreeMap<(NaiveDate, String), Sums> = rows
        .iter()
        .map(|r| ((r.period.unwrap(), r.currency.clone()), Sums::of(r)))
        .collect();
    assert_eq!(got.len(), rows.len());
    assert_eq!(got, monthly);
    assert_eq!(rows.len(), 3 * 2, "three months, two currencies");

    // Total by platform: still one row per currency, never one summed across them.
    let rows = daily_insights::insights(pool, &query(Granularity::Total, vec![GroupBy::Platform]))
        .await
        .unwrap();
    let currencies: Vec<&str> = rows.iter().map(|r| r.currency.as_str()).collect();
    assert_eq!(currencies, ["EUR", "USD"]);
    for row in &rows {
        assert_eq!(row.platform.as_deref(), Some("sandbox"));
        let mut sums = Sums::default();
        for (_, r) in in_range.iter().filter(|(_, r)| r.currency == row.currency) {
            sums.add(r);
        }
        assert_eq!(Sums::of(row), sums);
        let derived = adledger_domain::MetricTotals {
            impressions: sums.impressions,
            clicks: sums.clicks,
            spend: sums.spend,
            conversions: sums.conversions,
            conversion_value: sums.conversion_value,
        }
        .derived();
        assert_eq!(row.ctr, derived.ctr);
        assert_eq!(row.roas, derived.roas);
    }

    // Daily by ad account: connection and account are filled in, campaign is not.
    let rows = daily_insights::insights(pool, &query(Granularity::Day, vec![GroupBy::AdAccount]))
        .await
        .unwrap();
    assert!(rows.iter().all(|r| r.connection_id.is_some()
        && r.ad_account_id.is_some()
        && r.campaign_id.is_none()));
    let impressions: i64 = rows.iter().map(|r| r.impressions).sum();
    let want: i64 = in_range.iter().map(|(_, r)| r.impressions).sum();
    assert_eq!(impressions, want);
}

#[tokio::test]
async fn insights_pages_of_any_size_concatenate_to_the_whole_answer() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let pool = &db.db.app;
    let ws = WorkspaceId(Uuid::now_v7());
    let mut log = Log::new(store.clone(), ws);
    seed_insights(&mut log, 1_500).await;
    log.sequence().await;
    catch_up(&store, pool, &*projection("daily_insights"), 500)
        .await
        .unwrap();
    let dimensions = [GroupBy::Platform, GroupBy::AdAccount, GroupBy::Campaign];
    for granularity in Granularity::ALL {
        for mask in 0..8usize {
            let group_by: Vec<GroupBy> = (0..3)
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| dimensions[i])
                .collect();
            let query = InsightsQuery {
                workspace_id: ws,
                range: whole_range(),
                granularity,
                group_by: group_by.clone(),
                connection_id: None,
                campaign_ids: vec![],
                after: None,
                limit: 100_000,
                as_of: None,
            };
            let whole = daily_insights::insights(pool, &query).await.unwrap();
            assert!(!whole.is_empty());
            let keys: Vec<_> = whole.iter().map(InsightsRow::key).collect();
            let mut unique = keys.clone();
            unique.dedup();
            assert_eq!(
                unique, keys,
                "{granularity:?} {group_by:?}: one row per key"
            );
            let sizes: &[i64] = if whole.len() > 100 { &[7, 64] } else { &[1, 3] };
            for &limit in sizes {
                let mut pages = Vec::new();
                let mut after = None;
                loop {
                    let page = daily_insights::insights(
                        pool,
                        &InsightsQuery {
                            after: after.clone(),
                            limit,
                            as_of: None,
                            ..query.clone()
                        },
                    )
                    .await
                    .unwrap();
                    assert!(page.len() as i64 <= limit);
                    let Some(last) = page.last() else { break };
                    after = Some(last.key());
                    pages.extend(page);
                }
                assert_eq!(
                    pages, whole,
                    "{granularity:?} {group_by:?}, pages of {limit}"
                );
            }
        }
    }
}

#[tokio::test]
async fn rebuilding_gives_the_same_checksum_every_time() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let pool = &db.db.app;
    let ws = WorkspaceId(Uuid::now_v7());
    let mut log = Log::new(store.clone(), ws);
    seed_catalog(&mut log).await;
    seed_insights(&mut log, 2_000).await;
    let head = log.sequence().await;
    for p in adledger_projections::all() {
        catch_up(&store, pool, &*p, 300).await.unwrap();
    }
    let insights = checksum(pool, "daily_insights").await.unwrap();
    let mut first = Vec::new();
    for p in adledger_projections::all() {
        first.push(checksum(pool, p.name()).await.unwrap());
    }

    for _ in 0..2 {
        for (p, expected) in adledger_projections::all().iter().zip(&first) {
            assert_eq!(
                rebuild(&store, pool, p.name(), 5_000).await.unwrap() as i64,
                head
            );
            assert_eq!(
                &checksum(pool, p.name()).await.unwrap(),
                expected,
                "{}",
                p.name()
            );
        }
    }
    assert_eq!(checkpoint(pool, "catalog").await, (head, head, None));

    // An emptied table changes the checksum; a rebuild restores it.
    sqlx::query(
        "DELETE FROM daily_insights WHERE (campaign_id, date) IN
             (SELECT campaign_id, date FROM daily_insights LIMIT 1)",
    )
    .execute(pool)
    .await
    .unwrap();
    assert_ne!(checksum(pool, "daily_insights").await.unwrap(), insights);
    rebuild(&store, pool, "daily_insights", 5_000)
        .await
        .unwrap();
    assert_eq!(checksum(pool, "daily_insights").await.unwrap(), insights);
    assert!(rebuild(&store, pool, "nope", 5_000).await.is_err());

    let statuses = log_status(&store).await;
    assert_eq!(statuses.len(), adledger_projections::all().len());
    for s in &statuses {
        assert_eq!((s.position, s.head, s.lag_events), (head, head, 0));
        assert_eq!(s.lag_seconds, 0.0);
        assert_eq!(s.events_applied, head);
    }
}

#[tokio::test]
async fn a_runner_killed_between_and_inside_batches_applies_every_event_exactly_once() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let pool = db.db.app.clone();
    let ws = WorkspaceId(Uuid::now_v7());
    let mut log = Log::new(store.clone(), ws);
    let (expected, _) = seed_insights(&mut log, 3_000).await;
    let head = log.sequence().await;

    let lag = log_status(&store).await;
    assert_eq!(lag[1].lag_events, head);
    assert!(lag[1].lag_seconds >= 0.0);

    for (i, delay_ms) in [30u64, 70, 5, 120, 45, 15, 90, 60].into_iter().enumerate() {
        let (task_store, task_pool) = (store.clone(), pool.clone());
        let task = tokio::spawn(async move {
            catch_up(
                &task_store,
                &task_pool,
                &*projection("daily_insights"),
                40 + i as i64,
            )
            .await
            .unwrap()
        });
        tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
        task.abort();
        let _ = task.await;
        let (position, applied, _) = checkpoint(&pool, "daily_insights").await;
        assert_eq!(position, applied, "checkpoint and count move together");
    }
    let (before, _, _) = checkpoint(&pool, "daily_insights").await;
    eprintln!("after the aborted runs the checkpoint was at {before} of {head}");
    assert!(
        before > 0,
        "some batches should have committed before an abort"
    );
    catch_up(&store, &pool, &*projection("daily_insights"), 64)
        .await
        .unwrap();
    assert_eq!(
        checkpoint(&pool, "daily_insights").await,
        (head, head, None)
    );
    assert_eq!(stored_insights(&pool).await, expected);
}

#[tokio::test]
async fn an_undecodable_event_stops_the_projection_and_is_recorded() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let pool = &db.db.app;
    let ws = WorkspaceId(Uuid::now_v7());
    let mut log = Log::new(store.clone(), ws);
    seed_catalog(&mut log).await;
    store
        .append(AppendRequest {
            stream_id: StreamId::parse("junk-1").unwrap(),
            stream_type: "campaign",
            workspace_id: ws,
            expected_version: 0,
            metadata: serde_json::json!({}),
            events: vec![NewEvent {
                event_id: EventId(Uuid::now_v7()),
                event_type: "NoSuchEvent".into(),
                schema_version: 1,
                payload: serde_json::json!({}),
                occurred_at: Utc::now(),
            }],
            idempotency: None,
        })
        .await
        .unwrap();
    log.appended += 1;
    let head = log.sequence().await;
    let error = catch_up(&store, pool, &*projection("catalog"), 1_000)
        .await
        .unwrap_err();
    assert!(error.to_string().contains(&format!("position {head}")));
    let (position, applied, last_error) = checkpoint(pool, "catalog").await;
    assert_eq!((position, applied), (0, 0), "the whole batch rolled back");
    assert!(last_error.unwrap().contains("NoSuchEvent"));
    // One event per batch: everything before the bad event is applied, nothing after it.
    assert!(catch_up(&store, pool, &*projection("catalog"), 1)
        .await
        .is_err());
    let (position, applied, _) = checkpoint(pool, "catalog").await;
    assert_eq!((position, applied), (head - 1, head - 1));
    let statuses = log_status(&store).await;
    assert!(statuses[0].last_error.is_some());
}

struct CatalogIds {
    ws: WorkspaceId,
    connection: ConnectionId,
    campaigns: Vec<CampaignId>,
    full_sync: SyncId,
    one_sync: SyncId,
}

async fn seed_catalog(log: &mut Log) -> CatalogIds {
    let ws = log.workspace;
    let connection = ConnectionId(Uuid::from_u128(100));
    log.append(
        ws.stream(),
        vec![DomainEvent::WorkspaceCreated(WorkspaceCreated {
            workspace_id: ws,
            name: "Acme".into(),
        })],
    )
    .await;
    let mut events = vec![DomainEvent::PlatformConnected(PlatformConnected {
        connection_id: connection,
        label: "Main sandbox".into(),
        settings: ConnectionSettings::Sandbox {
            seed: 1,
            ad_accounts: 2,
            campaigns: 5,
        },
        authorization_expires_at: None,
    })];
    for (account, currency) in [("act_0", "EUR"), ("act_1", "USD")] {
        events.push(DomainEvent::AdAccountDiscovered(AdAccountDiscovered {
            connection_id: connection,
            ad_account_id: AdAccountId(account.into()),
            name: format!("Account {account}"),
            currency: Currency::parse(currency).unwrap(),
            time_zone: "Europe/Lisbon".into(),
        }));
    }
    log.append(connection.stream(), events).await;
    let mut campaigns = Vec::new();
    for i in 0..5 {
        let id = CampaignId::derive(connection, &format!("c{i}"));
        campaigns.push(id);
        log.append(
            id.stream(),
            vec![DomainEvent::CampaignDiscovered(CampaignDiscovered {
                connection_id: connection,
                campaign_id: id,
                ad_account_id: AdAccountId(format!("act_{}", i % 2)),
                external_id: format!("c{i}"),
                name: format!("Campaign {i}"),
                status: "active".into(),
            })],
        )
        .await;
    }
    log.append(
        campaigns[3].stream(),
        vec![DomainEvent::CampaignChanged(CampaignChanged {
            connection_id: connection,
            campaign_id: campaigns[3],
            name: "Campaign three".into(),
            status: "paused".into(),
        })],
    )
    .await;
    let full_sync = SyncId(Uuid::from_u128(501));
    let one_sync = SyncId(Uuid::from_u128(502));
    log.append(
        connection.stream(),
        vec![
            DomainEvent::SyncStarted(SyncStarted {
                sync_id: full_sync,
                connection_id: connection,
                from: day("2024-01-01"),
                to: day("2024-01-31"),
                campaign_ids: vec![],
            }),
            DomainEvent::SyncCompleted(SyncCompleted {
                sync_id: full_sync,
                connection_id: connection,
                counts: SyncCounts {
                    days_recorded: 150,
                    days_restated: 4,
                    days_unchanged: 1,
                },
            }),
            DomainEvent::SyncStarted(SyncStarted {
                sync_id: one_sync,
                connection_id: connection,
                from: day("2024-02-01"),
                to: day("2024-02-10"),
                campaign_ids: vec![campaigns[1]],
            }),
            DomainEvent::SyncFailed(SyncFailed {
                sync_id: one_sync,
                connection_id: connection,
                failure: adledger_domain::SyncFailure::new(
                    adledger_domain::FailureKind::Throttled,
                    "rate limited",
                ),
                counts: SyncCounts {
                    days_recorded: 3,
                    days_restated: 0,
                    days_unchanged: 0,
                },
            }),
        ],
    )
    .await;
    CatalogIds {
        ws,
        connection,
        campaigns,
        full_sync,
        one_sync,
    }
}

#[tokio::test]
async fn catalog_events_become_workspace_connection_campaign_and_sync_views() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let pool = &db.db.app;
    let mut log = Log::new(store.clone(), WorkspaceId(Uuid::now_v7()));
    let ids = seed_catalog(&mut log).await;
    let head = log.sequence().await;
    assert_eq!(
        catch_up(&store, pool, &*projection("catalog"), 3)
            .await
            .unwrap() as i64,
        head
    );
    let ws = ids.ws;

    let workspace = catalog::get_workspace(pool, ws).await.unwrap().unwrap();
    assert_eq!(workspace.name, "Acme");
    assert_eq!(
        workspace.created_at,
        Utc.with_ymd_and_hms(2024, 3, 1, 8, 0, 1).unwrap()
    );
    assert!(catalog::get_workspace(pool, WorkspaceId(Uuid::now_v7()))
        .await
        .unwrap()
        .is_none());

    let connection = catalog::get_connection(pool, ws, ids.connection)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(connection.platform, "sandbox");
    assert_eq!(connection.label, "Main sandbox");
    assert_eq!(connection.status, "active");
    assert_eq!(connection.last_sync_id, Some(ids.one_sync));
    assert_eq!(connection.last_sync_status.as_deref(), Some("failed"));
    assert!(connection.last_synced_at.is_some());
    assert_eq!(
        catalog::list_connections(pool, ws, None, 100)
            .await
            .unwrap(),
        vec![connection]
    );
    assert!(
        catalog::get_connection(pool, WorkspaceId(Uuid::now_v7()), ids.connection)
            .await
            .unwrap()
            .is_none()
    );

    let accounts = catalog::list_ad_accounts(pool, ws, Some(ids.connection), None, 100)
        .await
        .unwrap();
    assert_eq!(
        accounts
            .iter()
            .map(|a| (a.id.0.as_str(), a.currency.as_str()))
            .collect::<Vec<_>>(),
        [("act_0", "EUR"), ("act_1", "USD")]
    );
    assert_eq!(
        catalog::list_ad_accounts(pool, ws, None, None, 100)
            .await
            .unwrap(),
        accounts
    );
    // A page starts after the last item of the one before.
    let first = catalog::list_ad_accounts(pool, ws, None, None, 1)
        .await
        .unwrap();
    let after = Some((first[0].connection_id, first[0].id.clone()));
    let rest = catalog::list_ad_accounts(pool, ws, None, after, 100)
        .await
        .unwrap();
    assert_eq!([first, rest].concat(), accounts);

    // Keyset paging, two at a time, visits every campaign once in id order.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = catalog::list_campaigns(
            pool,
            ws,
            &CampaignFilter {
                connection_id: Some(ids.connection),
                after,
                limit: 2,
            },
        )
        .await
        .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        after = page.last().map(|c| c.id);
        seen.extend(page);
    }
    let mut want = ids.campaigns.clone();
    want.sort();
    assert_eq!(seen.iter().map(|c| c.id).collect::<Vec<_>>(), want);
    for c in &seen {
        let i = ids.campaigns.iter().position(|id| *id == c.id).unwrap();
        if i == 1 {
            // Last touched by the failed one-campaign sync: status failed, still synced through January.
            assert_eq!(c.last_sync_id, Some(ids.one_sync));
            assert_eq!(c.last_sync_status.as_deref(), Some("failed"));
        } else {
            assert_eq!(c.last_sync_id, Some(ids.full_sync));
            assert_eq!(c.last_sync_status.as_deref(), Some("completed"));
        }
        assert_eq!(c.synced_through, Some(day("2024-01-31")));
        if i == 3 {
            assert_eq!(
                (c.name.as_str(), c.status.as_str()),
                ("Campaign three", "paused")
            );
        }
    }

    let full = catalog::get_sync_run(pool, ws, ids.full_sync)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(full.status, "completed");
    assert_eq!(
        (full.days_recorded, full.days_restated, full.days_unchanged),
        (150, 4, 1)
    );
    assert_eq!((full.from, full.to), (day("2024-01-01"), day("2024-01-31")));
    assert!(full.campaign_ids.is_empty());
    assert!(full.finished_at.unwrap() > full.started_at);
    assert_eq!(full.error, None);
    let one = catalog::get_sync_run(pool, ws, ids.one_sync)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(one.status, "failed");
    assert_eq!(one.error.as_deref(), Some("throttled: rate limited"));
    assert_eq!(one.days_recorded, 3);
    assert_eq!(one.campaign_ids, vec![ids.campaigns[1]]);
    let runs = catalog::list_sync_runs(pool, ws, ids.connection, None, 100)
        .await
        .unwrap();
    let older =
        catalog::list_sync_runs(pool, ws, ids.connection, Some((one.started_at, one.id)), 1)
            .await
            .unwrap();
    assert_eq!(runs, vec![one, full.clone()], "newest first");
    assert_eq!(older, vec![full], "the page after the newest");

    // Insights grouped by campaign carry the catalog's name.
    let c = ids.campaigns[3];
    log.append(
        c.stream(),
        vec![DomainEvent::DailyInsightsRecorded(DailyInsightsRecorded {
            source: InsightsSource {
                campaign_id: c,
                connection_id: ids.connection,
                platform: Platform::Sandbox,
                ad_account_id: AdAccountId("act_1".into()),
                sync_id: ids.full_sync,
            },
            date: day("2024-01-05"),
            currency: Currency::parse("USD").unwrap(),
            metrics: DailyMetrics::new(1000, 10, dec(2000), Decimal::ONE, dec(5000)).unwrap(),
            revision: 1,
        })],
    )
    .await;
    log.sequence().await;
    catch_up(&store, pool, &*projection("daily_insights"), 100)
        .await
        .unwrap();
    let rows = daily_insights::insights(
        pool,
        &InsightsQuery {
            workspace_id: ws,
            range: whole_range(),
            granularity: Granularity::Day,
            group_by: vec![GroupBy::Campaign, GroupBy::Platform],
            connection_id: None,
            campaign_ids: vec![],
            after: None,
            limit: 100_000,
            as_of: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.campaign_name.as_deref(), Some("Campaign three"));
    assert_eq!(row.period, Some(day("2024-01-05")));
    assert_eq!(row.platform.as_deref(), Some("sandbox"));
    assert_eq!(row.cpc, Some(Decimal::from(2)));
    assert_eq!(row.cpm, Some(Decimal::from(20)));
    assert_eq!(row.roas, Some(Decimal::new(25, 1)));
}

#[tokio::test]
async fn a_connections_authorization_expiry_comes_from_its_events_alone() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let pool = &db.db.app;
    let mut log = Log::new(store.clone(), WorkspaceId(Uuid::now_v7()));
    let ids = seed_catalog(&mut log).await;
    log.sequence().await;
    let catalog = projection("catalog");
    catch_up(&store, pool, &*catalog, 100).await.unwrap();
    let connection = || async {
        catalog::get_connection(pool, ids.ws, ids.connection)
            .await
            .unwrap()
            .unwrap()
    };
    assert_eq!(connection().await.authorization_expires_at, None);

    // The tokens' side table is not the read model's business: a row there changes nothing.
    sqlx::query(
        "INSERT INTO connection_credentials (connection_id, workspace_id, platform, sealed_tokens,
                                             expires_at)
         VALUES ($1, $2, 'meta', 'sealed', now())",
    )
    .bind(ids.connection.as_uuid())
    .bind(ids.ws.as_uuid())
    .execute(pool)
    .await
    .unwrap();
    let expires = Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap();
    log.append(
        ids.connection.stream(),
        vec![
            DomainEvent::ConnectionNeedsReauth(ConnectionNeedsReauth {
                connection_id: ids.connection,
                reason: "token expired".into(),
            }),
            DomainEvent::ConnectionReauthorized(ConnectionReauthorized {
                connection_id: ids.connection,
                authorization_expires_at: Some(expires),
            }),
        ],
    )
    .await;
    log.sequence().await;
    catch_up(&store, pool, &*catalog, 100).await.unwrap();
    let reauthorized = connection().await;
    assert_eq!(reauthorized.status, "active");
    assert_eq!(reauthorized.authorization_expires_at, Some(expires));
    let before = checksum(pool, "catalog").await.unwrap();
    rebuild(&store, pool, "catalog", 2).await.unwrap();
    assert_eq!(connection().await, reauthorized, "a rebuild gives it back");
    assert_eq!(checksum(pool, "catalog").await.unwrap(), before);

    log.append(
        ids.connection.stream(),
        vec![DomainEvent::PlatformDisconnected(PlatformDisconnected {
            connection_id: ids.connection,
        })],
    )
    .await;
    log.sequence().await;
    catch_up(&store, pool, &*catalog, 100).await.unwrap();
    let disconnected = connection().await;
    assert_eq!(disconnected.status, "disconnected");
    assert_eq!(disconnected.authorization_expires_at, None);
}

/// Replay speed of `daily_insights` (run with `--release -- --ignored --nocapture`).
#[tokio::test]
#[ignore]
async fn daily_insights_replay_speed() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let pool = &db.db.app;
    let mut log = Log::new(store.clone(), WorkspaceId(Uuid::now_v7()));
    seed_insights(&mut log, 100_000).await;
    let head = log.sequence().await;
    let started = std::time::Instant::now();
    let mut after = 0;
    let mut decode = std::time::Duration::ZERO;
    loop {
        let events = store
            .read_log(&adledger_infra::LogFilter {
                after,
                limit: 2_000,
                ..Default::default()
            })
            .await
            .unwrap();
        let Some(last) = events.last() else { break };
        after = last.position.unwrap();
        let t = std::time::Instant::now();
        for e in &events {
            e.decode().unwrap();
        }
        decode += t.elapsed();
    }
    eprintln!(
        "read_log alone: {:.2}s, of which decode {:.2}s",
        started.elapsed().as_secs_f64(),
        decode.as_secs_f64()
    );
    let started = std::time::Instant::now();
    let applied = catch_up(&store, pool, &*projection("daily_insights"), 2_000)
        .await
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "daily_insights replay: {applied} events in {seconds:.2}s ({:.0} events/s)",
        applied as f64 / seconds
    );
    assert_eq!(applied as i64, head);
}

/// As-of versus latest insights query time on the same data in the same run (run with
/// `-- --ignored --nocapture`; figures in docs/benchmarks.md). 200 campaigns × 365 days recorded
/// once, then the last 30 days of each restated twice (platforms re-read recent days), so the
/// history holds 85,000 values for 73,000 campaign-days.
#[tokio::test]
#[ignore]
async fn as_of_query_speed() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let pool = &db.db.app;
    let workspace = WorkspaceId(Uuid::now_v7());
    let mut log = Log::new(store.clone(), workspace);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let connection = ConnectionId(Uuid::from_u128(300));
    let start = day("2024-01-01");
    let campaigns: Vec<CampaignId> = (0..200)
        .map(|i| CampaignId::derive(connection, &format!("c{i}")))
        .collect();
    let report = |rng: &mut Rng, c: CampaignId, date: NaiveDate, revision: u32| {
        let source = InsightsSource {
            campaign_id: c,
            connection_id: connection,
            platform: Platform::Sandbox,
            ad_account_id: AdAccountId("act_1".into()),
            sync_id: SyncId(Uuid::from_u128(u128::from(revision))),
        };
        let metrics = DailyMetrics::new(
            rng.below(100_000),
            rng.below(2_000),
            dec(rng.below(1_000_000)),
            Decimal::new(rng.below(500) as i64, 1),
            dec(rng.below(5_000_000)),
        )
        .unwrap();
        let currency = Currency::parse("EUR").unwrap();
        if revision == 1 {
            DomainEvent::DailyInsightsRecorded(DailyInsightsRecorded {
                source,
                date,
                currency,
                metrics,
                revision,
            })
        } else {
            DomainEvent::DailyInsightsRestated(DailyInsightsRestated {
                source,
                date,
                currency,
                previous_currency: currency,
                previous: metrics.clone(),
                metrics,
                revision,
            })
        }
    };
    for c in &campaigns {
        let events = (0..365)
            .map(|d| report(&mut rng, *c, start + Duration::days(d), 1))
            .collect();
        log.append(c.stream(), events).await;
    }
    log.sequence().await;
    let first_head = log.appended;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let between = Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    for revision in [2, 3] {
        for c in &campaigns {
            let events = (335..365)
                .map(|d| report(&mut rng, *c, start + Duration::days(d), revision))
                .collect();
            log.append(c.stream(), events).await;
        }
    }
    let head = log.sequence().await;
    catch_up(&store, pool, &*projection("daily_insights"), 5_000)
        .await
        .unwrap();
    for table in ["daily_insights", "daily_insights_history"] {
        sqlx::query(&format!("ANALYZE {table}"))
            .execute(pool)
            .await
            .unwrap();
    }

    let shapes: [(&str, NaiveDate, Granularity, Vec<GroupBy>); 3] = [
        ("year, total", start, Granularity::Total, vec![]),
        (
            "year, month × campaign",
            start,
            Granularity::Month,
            vec![GroupBy::Campaign],
        ),
        (
            "last 30 days, day × campaign (first 1,000 rows)",
            start + Duration::days(335),
            Granularity::Day,
            vec![GroupBy::Campaign],
        ),
    ];
    let runs = 15;
    eprintln!(
        "{} events, head {head}; first recordings up to {first_head}",
        log.appended
    );
    eprintln!("| query | latest (ms) | as_of time between (ms) | ratio | as_of position = head (ms) | ratio |");
    eprintln!("| --- | --- | --- | --- | --- | --- |");
    for (name, from, granularity, group_by) in shapes {
        let query = |as_of| InsightsQuery {
            workspace_id: workspace,
            range: DateRange::new(from, start + Duration::days(364)).unwrap(),
            granularity,
            group_by: group_by.clone(),
            connection_id: None,
            campaign_ids: vec![],
            after: None,
            limit: 1_001,
            as_of,
        };
        let mut medians = Vec::new();
        for as_of in [None, Some(AsOf::Time(between)), Some(AsOf::Position(head))] {
            let q = query(as_of);
            daily_insights::insights(pool, &q).await.unwrap();
            let mut times: Vec<f64> = Vec::with_capacity(runs);
            for _ in 0..runs {
                let t = std::time::Instant::now();
                let rows = daily_insights::insights(pool, &q).await.unwrap();
                times.push(t.elapsed().as_secs_f64() * 1e3);
                assert!(!rows.is_empty());
            }
            times.sort_by(f64::total_cmp);
            medians.push(times[runs / 2]);
        }
        // The latest answer and the answer as of the head are the same rows.
        assert_eq!(
            daily_insights::insights(pool, &query(None)).await.unwrap(),
            daily_insights::insights(pool, &query(Some(AsOf::Position(head))))
                .await
                .unwrap()
        );
        eprintln!(
            "| {name} | {:.1} | {:.1} | {:.2}× | {:.1} | {:.2}× |",
            medians[0],
            medians[1],
            medians[1] / medians[0],
            medians[2],
            medians[2] / medians[0]
        );
    }
}
