//! Versioned rebuilds against a real Postgres: readers keep whole answers from one version while
//! a new one is built and switched to, a rebuilt version equals the one it replaced, a build
//! knows it is not live (no side effects), a crashed build resumes, and outdated read models
//! are rebuilt when asked.

use adledger_domain::event::{DailyInsightsRecorded, InsightsSource};
use adledger_domain::{
    AdAccountId, CampaignId, ConnectionId, Currency, DailyMetrics, DateRange, DomainEvent, EventId,
    EventMetadata, Platform, StreamId, SyncId, WorkspaceId,
};
use adledger_infra::shutdown;
use adledger_infra::testing::TestDatabase;
use adledger_infra::{AppendRequest, EventStore, LogEntry, NewEvent};
use adledger_projections::daily_insights::{self, Granularity, InsightsQuery};
use adledger_projections::versions::{self, State};
use adledger_projections::{
    by_name, catch_up, checksum_version, Projection, ProjectionError, ReadModel, Table, Target,
};
use async_trait::async_trait;
use chrono::{Duration, NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

const IMPRESSIONS: u64 = 7;

/// `campaigns` campaigns of `days` days each in `workspace`, one append per campaign.
async fn seed(store: &EventStore, workspace: WorkspaceId, campaigns: u32, days: i64) {
    let connection = ConnectionId(Uuid::now_v7());
    let start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    for c in 0..campaigns {
        let campaign = CampaignId::derive(connection, &format!("c{c}"));
        let events = (0..days)
            .map(|d| {
                let event = DomainEvent::DailyInsightsRecorded(DailyInsightsRecorded {
                    source: InsightsSource {
                        campaign_id: campaign,
                        connection_id: connection,
                        platform: Platform::Sandbox,
                        ad_account_id: AdAccountId("act_1".into()),
                        sync_id: SyncId(Uuid::from_u128(1)),
                    },
                    date: start + Duration::days(d),
                    currency: Currency::parse("USD").unwrap(),
                    metrics: DailyMetrics::new(
                        IMPRESSIONS,
                        1,
                        Decimal::new(150, 2),
                        Decimal::ZERO,
                        Decimal::ZERO,
                    )
                    .unwrap(),
                    revision: 1,
                });
                NewEvent {
                    event_id: EventId(Uuid::now_v7()),
                    event_type: event.event_type().to_owned(),
                    schema_version: event.schema_version(),
                    payload: event.to_payload(),
                    occurred_at: Utc.with_ymd_and_hms(2024, 3, 1, 8, 0, 0).unwrap(),
                }
            })
            .collect();
        store
            .append(AppendRequest {
                stream_id: StreamId::parse(&format!("campaign-{}", campaign.as_uuid())).unwrap(),
                stream_type: "campaign",
                workspace_id: workspace,
                expected_version: 0,
                metadata: serde_json::to_value(EventMetadata::system("test", Uuid::now_v7()))
                    .unwrap(),
                events,
                idempotency: None,
            })
            .await
            .unwrap();
    }
}

/// The workspace's total impressions and days, through the API's insights query.
async fn totals(pool: &PgPool, workspace: WorkspaceId) -> (i64, Decimal) {
    let query = InsightsQuery {
        workspace_id: workspace,
        range: DateRange::new(
            NaiveDate::from_ymd_opt(2023, 1, 1).unwrap(),
            NaiveDate::from_ymd_opt(2024, 12, 31).unwrap(),
        )
        .unwrap(),
        granularity: Granularity::Total,
        group_by: vec![],
        connection_id: None,
        campaign_ids: vec![],
        after: None,
        limit: 100,
        as_of: None,
    };
    let rows = daily_insights::insights(pool, &query).await.unwrap();
    assert!(rows.len() <= 1, "one currency, one total row: {rows:?}");
    rows.first()
        .map_or((0, Decimal::ZERO), |r| (r.impressions, r.spend))
}

async fn live_version(pool: &PgPool, name: &str) -> i32 {
    sqlx::query_scalar("SELECT version FROM read_model_versions WHERE name = $1 AND state = 'live'")
        .bind(name)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn readers_see_one_whole_version_while_a_rebuild_switches_and_rolls_back() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let pool = db.db.app.clone();
    let watched = WorkspaceId(Uuid::now_v7());
    seed(&store, watched, 30, 100).await;
    db.settle(&store).await;
    let insights = by_name("daily_insights").unwrap();
    catch_up(&store, &pool, &*insights, 1_000).await.unwrap();
    let expected = (3_000 * IMPRESSIONS as i64, Decimal::new(150 * 3_000, 2));
    assert_eq!(totals(&pool, watched).await, expected);

    // Live workers keep following the log, and another workspace keeps writing, while one task
    // reads the watched workspace's totals as fast as it can.
    let (stop, stopped) = shutdown::channel();
    let workers = tokio::spawn(adledger_projections::run(
        store.clone(),
        pool.clone(),
        adledger_projections::all(),
        stopped,
    ));
    let reading = Arc::new(AtomicBool::new(true));
    let reader = tokio::spawn({
        let (pool, reading) = (pool.clone(), reading.clone());
        async move {
            let mut answers = 0;
            while reading.load(Ordering::Relaxed) {
                assert_eq!(totals(&pool, watched).await, expected, "answer {answers}");
                answers += 1;
            }
            answers
        }
    });
    let writer = tokio::spawn({
        let store = store.clone();
        async move {
            for _ in 0..5 {
                seed(&store, WorkspaceId(Uuid::now_v7()), 2, 20).await;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    });

    let rebuilt = versions::rebuild(&store, &pool, &*insights, 100, &|_| {})
        .await
        .unwrap();
    assert_eq!((rebuilt.version, rebuilt.previous), (2, 1));
    assert_eq!(live_version(&pool, "daily_insights").await, 2);
    writer.await.unwrap();
    let head = db.settle(&store).await;

    // Back to version 1, caught up with everything written meanwhile; readers still see whole
    // answers. Then both versions stand at the head, and are equal.
    let back = versions::rollback(&store, &pool, &*insights, 100, &|_| {})
        .await
        .unwrap();
    assert_eq!((back.version, back.previous), (1, 2));
    reading.store(false, Ordering::Relaxed);
    let answers = reader.await.unwrap();
    assert!(
        answers >= 10,
        "the reader ran during the rebuild: {answers} answers"
    );
    stop.trigger();
    workers.await.unwrap();

    let listed = versions::list(&pool).await.unwrap();
    let v = |n: i32| {
        listed
            .iter()
            .find(|v| v.name == "daily_insights" && v.version == n)
            .unwrap()
    };
    assert_eq!((v(1).state, v(2).state), (State::Live, State::Retired));
    assert_eq!(
        v(2).position,
        head,
        "retired at the head it was switched away from"
    );
    let one = checksum_version(&pool, "daily_insights", 1).await.unwrap();
    let two = checksum_version(&pool, "daily_insights", 2).await.unwrap();
    assert_eq!(one, two, "a rebuilt version equals the one it replaced");
    assert_eq!(
        adledger_projections::checksum(&pool, "daily_insights")
            .await
            .unwrap(),
        one
    );

    // The live version is never dropped; a retired one is, with its schema.
    assert!(matches!(
        versions::drop_version(&pool, &*insights, 1).await,
        Err(ProjectionError::VersionIsLive { .. })
    ));
    versions::drop_version(&pool, &*insights, 2).await.unwrap();
    assert!(checksum_version(&pool, "daily_insights", 2).await.is_err());
    assert!(matches!(
        versions::rollback(&store, &pool, &*insights, 100, &|_| {}).await,
        Err(ProjectionError::NothingToRollBack(_))
    ));
}

/// A projection that keeps, per batch, the target it was given: the flag a side-effecting
/// consumer checks.
struct Effects {
    model: &'static ReadModel,
    seen: Mutex<Vec<(Target, usize)>>,
}

const EFFECTS_TABLES: &[Table] = &[Table {
    name: "effects_seen",
    key: "t.position",
}];
const EFFECTS_DDL: &str = "CREATE TABLE effects_seen (position bigint PRIMARY KEY)";
static EFFECTS_V1: ReadModel = ReadModel {
    name: "effects",
    tables: EFFECTS_TABLES,
    reads_context: false,
    version: 1,
    ddl: EFFECTS_DDL,
    indexes: "",
};
static EFFECTS_V2: ReadModel = ReadModel {
    version: 2,
    ..EFFECTS_V1
};

impl Effects {
    fn new(model: &'static ReadModel) -> Self {
        Self {
            model,
            seen: Mutex::new(Vec::new()),
        }
    }

    fn seen(&self) -> Vec<(Target, usize)> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

#[async_trait]
impl Projection for Effects {
    fn model(&self) -> &'static ReadModel {
        self.model
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[(LogEntry, DomainEvent)],
        target: Target,
    ) -> Result<(), ProjectionError> {
        let positions: Vec<i64> = events.iter().map(|(e, _)| e.position).collect();
        sqlx::query(
            "INSERT INTO effects_seen SELECT * FROM UNNEST($1::int8[]) ON CONFLICT DO NOTHING",
        )
        .bind(&positions)
        .execute(&mut *conn)
        .await?;
        self.seen.lock().unwrap().push((target, events.len()));
        Ok(())
    }
}

/// Counts (events) per target.
fn by_target(seen: &[(Target, usize)]) -> Vec<(Target, usize)> {
    let mut out: Vec<(Target, usize)> = Vec::new();
    for (target, n) in seen {
        match out.iter_mut().find(|(t, _)| t == target) {
            Some((_, total)) => *total += n,
            None => out.push((*target, *n)),
        }
    }
    out
}

#[tokio::test]
async fn only_the_live_version_is_told_it_is_live() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let pool = db.db.app.clone();
    seed(&store, WorkspaceId(Uuid::now_v7()), 3, 10).await;
    db.settle(&store).await;
    let effects = Effects::new(&EFFECTS_V1);
    versions::ensure(&pool, &effects).await.unwrap();
    catch_up(&store, &pool, &effects, 7).await.unwrap();
    assert_eq!(
        by_target(&effects.seen()),
        [(Target::Live { version: 1 }, 30)]
    );

    versions::rebuild(&store, &pool, &effects, 7, &|_| {})
        .await
        .unwrap();
    assert_eq!(
        by_target(&effects.seen()),
        [(Target::Build { version: 2 }, 30)]
    );

    seed(&store, WorkspaceId(Uuid::now_v7()), 1, 4).await;
    db.settle(&store).await;
    catch_up(&store, &pool, &effects, 7).await.unwrap();
    assert_eq!(
        by_target(&effects.seen()),
        [(Target::Live { version: 2 }, 4)]
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM effects_seen")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 34, "readers read version 2 through the view");

    // A rollback's catch-up is a replay too.
    versions::rollback(&store, &pool, &effects, 7, &|_| {})
        .await
        .unwrap();
    assert_eq!(
        by_target(&effects.seen()),
        [(Target::Build { version: 1 }, 4)]
    );
}

#[tokio::test]
async fn a_build_stopped_midway_leaves_the_live_version_serving_and_resumes() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let pool = db.db.app.clone();
    seed(&store, WorkspaceId(Uuid::now_v7()), 5, 40).await;
    db.settle(&store).await;
    let effects = Effects::new(&EFFECTS_V1);
    versions::ensure(&pool, &effects).await.unwrap();
    catch_up(&store, &pool, &effects, 50).await.unwrap();
    effects.seen();

    // The build is dropped (as a crash would end it) after its third page.
    let pages = AtomicUsize::new(0);
    let third = tokio::sync::Notify::new();
    let on_page = |_| {
        if pages.fetch_add(1, Ordering::SeqCst) == 2 {
            third.notify_one();
        }
    };
    tokio::select! {
        _ = versions::rebuild(&store, &pool, &effects, 10, &on_page) => panic!("finished"),
        _ = third.notified() => {}
    }
    assert_eq!(live_version(&pool, "effects").await, 1);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM effects_seen")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 200, "readers still read the whole live version");
    let building = versions::list(&pool).await.unwrap();
    let build = building
        .iter()
        .find(|v| v.state == State::Building)
        .unwrap();
    assert_eq!(build.version, 2);
    assert!(
        build.position >= 30 && build.position < 200,
        "{}",
        build.position
    );

    // Started again, the build goes on from its checkpoint into the same version.
    effects.seen();
    let rebuilt = versions::rebuild(&store, &pool, &effects, 10, &|_| {})
        .await
        .unwrap();
    assert_eq!(rebuilt.version, 2);
    assert_eq!(rebuilt.applied as i64, 200 - build.position);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM effects_seen")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 200);
}

#[tokio::test]
async fn outdated_read_models_are_rebuilt_once() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let pool = db.db.app.clone();
    seed(&store, WorkspaceId(Uuid::now_v7()), 2, 10).await;
    db.settle(&store).await;
    let old: Arc<dyn Projection> = Arc::new(Effects::new(&EFFECTS_V1));
    let done = versions::rebuild_outdated(&store, &pool, std::slice::from_ref(&old), 100)
        .await
        .unwrap();
    assert!(
        done.is_empty(),
        "version 1 was created by this code: {done:?}"
    );
    catch_up(&store, &pool, &*old, 100).await.unwrap();
    // The old code also left a build (version 2) when it stopped.
    let first_page = tokio::sync::Notify::new();
    let on_page = |_| first_page.notify_one();
    tokio::select! {
        _ = versions::rebuild(&store, &pool, &*old, 5, &on_page) => panic!("finished"),
        _ = first_page.notified() => {}
    }

    // The new code drops that build (its rows are the old code's) and builds version 3.
    let new: Arc<dyn Projection> = Arc::new(Effects::new(&EFFECTS_V2));
    let done = versions::rebuild_outdated(&store, &pool, std::slice::from_ref(&new), 100)
        .await
        .unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!((done[0].1.version, done[0].1.applied), (3, 20));
    let stale: Option<String> = sqlx::query_scalar("SELECT to_regnamespace('rm_effects_2')::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stale, None, "the stale build's schema is gone");
    let listed = versions::list(&pool).await.unwrap();
    let live = listed
        .iter()
        .find(|v| v.name == "effects" && v.state == State::Live)
        .unwrap();
    assert_eq!((live.version, live.code_version), (3, 2));
    let again = versions::rebuild_outdated(&store, &pool, &[new], 100)
        .await
        .unwrap();
    assert!(again.is_empty());
}

#[tokio::test]
async fn status_shows_a_builds_position_rate_and_eta() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let pool = db.db.app.clone();
    seed(&store, WorkspaceId(Uuid::now_v7()), 4, 50).await;
    let head = db.settle(&store).await;
    let insights = by_name("daily_insights").unwrap();
    catch_up(&store, &pool, &*insights, 1_000).await.unwrap();

    let second = tokio::sync::Notify::new();
    let pages = AtomicUsize::new(0);
    let on_page = |_| {
        if pages.fetch_add(1, Ordering::SeqCst) == 1 {
            second.notify_one();
        }
    };
    tokio::select! {
        _ = versions::rebuild(&store, &pool, &*insights, 20, &on_page) => panic!("finished"),
        _ = second.notified() => {}
    }
    let status = adledger_projections::deployment_status(&store, Default::default())
        .await
        .unwrap();
    let insights = status
        .projections
        .iter()
        .find(|p| p.name == "daily_insights")
        .unwrap();
    assert_eq!(insights.position, head, "the live version stays caught up");
    let v = insights.versions.as_ref().unwrap();
    assert_eq!(
        (v.live, v.live_code_version, v.code_version),
        (Some(1), Some(1), 1)
    );
    assert!(!v.outdated());
    let build = v.building.as_ref().unwrap();
    assert_eq!(build.version, 2);
    assert!(build.position >= 40 && build.position < head, "{build:?}");
    assert_eq!(build.lag_events, head - build.position);
    assert!(build.events_per_sec > 0.0);
    let eta = build.eta_seconds.unwrap();
    assert!((eta - build.lag_events as f64 / build.events_per_sec).abs() < 1e-6);
}

#[tokio::test]
async fn the_application_creates_only_version_schemas() {
    let db = TestDatabase::new().await;
    let pool = db.db.app.clone();
    let create = |name: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query("SELECT adledger_create_read_model_schema($1)")
                .bind(name)
                .execute(&pool)
                .await
        }
    };
    assert!(create("rm_daily_insights_9").await.is_ok());
    for refused in ["public2", "rm_x", "rm_a_1; DROP TABLE events", "RM_A_1"] {
        assert!(create(refused).await.is_err(), "{refused}");
    }
    assert!(sqlx::query("CREATE SCHEMA mine")
        .execute(&pool)
        .await
        .is_err());
}
