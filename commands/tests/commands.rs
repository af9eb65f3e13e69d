//! The command handlers against a real Postgres: idempotency, tenancy, and full sandbox syncs.

use adledger_commands::{CommandContext, CommandError, Commands, IdempotencyKey};
use adledger_domain::event::{ConnectionSettings, SyncCounts};
use adledger_domain::{
    CampaignId, ConnectionId, DateRange, DomainError, DomainEvent, EventMetadata, WorkspaceId,
};
use adledger_infra::testing::TestDatabase;
use adledger_infra::EventStore;
use uuid::Uuid;

fn ctx() -> CommandContext {
    CommandContext {
        metadata: EventMetadata::system("tests", Uuid::now_v7()),
        idempotency_key: None,
    }
}

fn with_key(key: &str) -> CommandContext {
    CommandContext {
        idempotency_key: Some(IdempotencyKey::new("tests", key)),
        ..ctx()
    }
}

fn sandbox(campaigns: u32) -> ConnectionSettings {
    ConnectionSettings::Sandbox {
        seed: 42,
        ad_accounts: 2,
        campaigns,
    }
}

fn ten_days() -> DateRange {
    DateRange::new("2024-05-01".parse().unwrap(), "2024-05-10".parse().unwrap()).unwrap()
}

async fn setup(db: &TestDatabase, campaigns: u32) -> (Commands, WorkspaceId, ConnectionId) {
    let commands = Commands::new(db.store());
    let ws = commands.create_workspace(&ctx(), "Acme").await.unwrap();
    let conn = commands
        .connect_platform(&ctx(), ws, "Sandbox", sandbox(campaigns))
        .await
        .unwrap();
    (commands, ws, conn)
}

async fn sync(
    commands: &Commands,
    ws: WorkspaceId,
    conn: ConnectionId,
) -> Result<SyncCounts, CommandError> {
    let id = commands
        .start_sync(&ctx(), ws, conn, ten_days(), vec![])
        .await?;
    commands.run_sync(ws, conn, id).await
}

async fn campaign_streams(
    store: &EventStore,
    conn: ConnectionId,
    campaigns: u32,
) -> Vec<Vec<DomainEvent>> {
    let mut all = Vec::new();
    for n in 1..=campaigns {
        let id = CampaignId::derive(conn, &format!("cmp-{n}"));
        let events = store.read_stream(&id.stream()).await.unwrap();
        all.push(events.iter().map(|e| e.decode().unwrap()).collect());
    }
    all
}

#[tokio::test]
async fn creating_a_workspace_appends_one_event() {
    let db = TestDatabase::new().await;
    let commands = Commands::new(db.store());
    let ws = commands.create_workspace(&ctx(), "  Acme  ").await.unwrap();
    let events = db.store().read_stream(&ws.stream()).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].workspace_id, ws);
    assert!(matches!(
        events[0].decode().unwrap(),
        DomainEvent::WorkspaceCreated(e) if e.name == "Acme" && e.workspace_id == ws
    ));
    assert_eq!(events[0].event_id.as_uuid().get_version_num(), 7);
    assert_eq!(events[0].metadata["actor"]["name"], "tests");

    assert!(matches!(
        commands.create_workspace(&ctx(), "   ").await,
        Err(CommandError::Rejected(DomainError::Invalid { .. }))
    ));
}

#[tokio::test]
async fn a_retry_with_the_same_key_returns_the_same_id_and_appends_once() {
    let db = TestDatabase::new().await;
    let commands = Commands::new(db.store());
    let first = commands
        .create_workspace(&with_key("k-1"), "Acme")
        .await
        .unwrap();
    let again = commands
        .create_workspace(&with_key("k-1"), "Acme")
        .await
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(
        db.store().read_stream(&first.stream()).await.unwrap().len(),
        1
    );
    let total = db.store().read_stream(&again.stream()).await.unwrap().len();
    assert_eq!(total, 1);

    let conn = commands
        .connect_platform(&with_key("c-1"), first, "Sandbox", sandbox(1))
        .await
        .unwrap();
    let conn_again = commands
        .connect_platform(&with_key("c-1"), first, "Sandbox", sandbox(1))
        .await
        .unwrap();
    assert_eq!(conn, conn_again);
    assert_eq!(
        db.store().read_stream(&conn.stream()).await.unwrap().len(),
        1
    );

    // Started once, even though the second call finds a sync already running.
    let s1 = commands
        .start_sync(&with_key("s-1"), first, conn, ten_days(), vec![])
        .await
        .unwrap();
    let s2 = commands
        .start_sync(&with_key("s-1"), first, conn, ten_days(), vec![])
        .await
        .unwrap();
    assert_eq!(s1, s2);
    assert_eq!(
        db.store().read_stream(&conn.stream()).await.unwrap().len(),
        2
    );
}

#[tokio::test]
async fn the_same_key_with_another_request_is_refused() {
    let db = TestDatabase::new().await;
    let commands = Commands::new(db.store());
    commands
        .create_workspace(&with_key("k-1"), "Acme")
        .await
        .unwrap();
    let err = commands
        .create_workspace(&with_key("k-1"), "Globex")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CommandError::IdempotencyKeyReused(k) if k == "k-1"),
        "{err:?}"
    );
}

#[tokio::test]
async fn connecting_to_an_unknown_workspace_is_not_found() {
    let db = TestDatabase::new().await;
    let commands = Commands::new(db.store());
    let err = commands
        .connect_platform(&ctx(), WorkspaceId(Uuid::now_v7()), "x", sandbox(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CommandError::NotFound("workspace")),
        "{err:?}"
    );
}

#[tokio::test]
async fn syncs_record_then_restate_then_change_nothing() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let (commands, ws, conn) = setup(&db, 3).await;

    let first = sync(&commands, ws, conn).await.unwrap();
    assert_eq!(
        first,
        SyncCounts {
            days_recorded: 30,
            days_restated: 0,
            days_unchanged: 0
        }
    );
    let streams = campaign_streams(&store, conn, 3).await;
    for events in &streams {
        assert_eq!(events.len(), 10);
        assert!(events
            .iter()
            .all(|e| matches!(e, DomainEvent::DailyInsightsRecorded(r) if r.revision == 1)));
    }
    // Every event of a campaign stream belongs to the workspace and was caused by the sync.
    let campaign = CampaignId::derive(conn, "cmp-1");
    let recorded = store.read_stream(&campaign.stream()).await.unwrap();
    assert!(recorded.iter().all(|e| e.workspace_id == ws));
    assert!(recorded[0].metadata["causation_id"].is_string());

    let second = sync(&commands, ws, conn).await.unwrap();
    assert!(second.days_restated > 0, "{second:?}");
    assert_eq!(second.days_recorded, 0);
    assert_eq!(second.days_restated + second.days_unchanged, 30);
    let restated: usize = campaign_streams(&store, conn, 3)
        .await
        .iter()
        .flatten()
        .filter(|e| matches!(e, DomainEvent::DailyInsightsRestated(r) if r.revision == 2))
        .count();
    assert_eq!(restated as u64, second.days_restated);

    let before: usize = campaign_streams(&store, conn, 3)
        .await
        .iter()
        .map(Vec::len)
        .sum();
    let third = sync(&commands, ws, conn).await.unwrap();
    assert_eq!(
        third,
        SyncCounts {
            days_recorded: 0,
            days_restated: 0,
            days_unchanged: 30
        }
    );
    let after: usize = campaign_streams(&store, conn, 3)
        .await
        .iter()
        .map(Vec::len)
        .sum();
    assert_eq!(before, after);

    let connection_events: Vec<_> = store
        .read_stream(&conn.stream())
        .await
        .unwrap()
        .iter()
        .map(|e| e.decode().unwrap())
        .collect();
    let completed = connection_events
        .iter()
        .filter(|e| matches!(e, DomainEvent::SyncCompleted(_)))
        .count();
    assert_eq!(completed, 3);
    let discovered = connection_events
        .iter()
        .filter(|e| matches!(e, DomainEvent::CampaignDiscovered(_)))
        .count();
    assert_eq!(discovered, 3, "discovery records campaigns once");
}

#[tokio::test]
async fn a_sync_limited_to_some_campaigns_touches_only_those() {
    let db = TestDatabase::new().await;
    let (commands, ws, conn) = setup(&db, 3).await;
    sync(&commands, ws, conn).await.unwrap();
    let only = CampaignId::derive(conn, "cmp-2");
    let id = commands
        .start_sync(&ctx(), ws, conn, ten_days(), vec![only])
        .await
        .unwrap();
    let counts = commands.run_sync(ws, conn, id).await.unwrap();
    assert_eq!(counts.days_restated + counts.days_unchanged, 10);

    let stranger = CampaignId(Uuid::now_v7());
    let err = commands
        .start_sync(&ctx(), ws, conn, ten_days(), vec![stranger])
        .await
        .unwrap_err();
    assert!(
        matches!(err, CommandError::Rejected(DomainError::UnknownCampaign(c)) if c == stranger),
        "{err:?}"
    );
}

#[tokio::test]
async fn only_one_sync_runs_at_a_time() {
    let db = TestDatabase::new().await;
    let (commands, ws, conn) = setup(&db, 3).await;
    let id = commands
        .start_sync(&ctx(), ws, conn, ten_days(), vec![])
        .await
        .unwrap();

    let err = commands
        .start_sync(&ctx(), ws, conn, ten_days(), vec![])
        .await
        .unwrap_err();
    assert!(
        matches!(err, CommandError::Rejected(DomainError::SyncAlreadyRunning(s)) if s == id),
        "{err:?}"
    );

    let (a, b) = tokio::join!(
        commands.run_sync(ws, conn, id),
        commands.run_sync(ws, conn, id)
    );
    let (ok, refused) = match (a, b) {
        (Ok(c), Err(e)) | (Err(e), Ok(c)) => (c, e),
        other => panic!("expected one run to win, got {other:?}"),
    };
    assert_eq!(ok.days_recorded, 30);
    assert!(
        matches!(refused, CommandError::Rejected(DomainError::SyncAlreadyRunning(s)) if s == id),
        "{refused:?}"
    );

    // Once it has ended, it cannot be run again.
    let err = commands.run_sync(ws, conn, id).await.unwrap_err();
    assert!(
        matches!(err, CommandError::Rejected(DomainError::SyncNotRunning(s)) if s == id),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_connection_of_another_workspace_is_not_found() {
    let db = TestDatabase::new().await;
    let (commands, ws, conn) = setup(&db, 2).await;
    let other = commands.create_workspace(&ctx(), "Globex").await.unwrap();
    let id = commands
        .start_sync(&ctx(), ws, conn, ten_days(), vec![])
        .await
        .unwrap();

    let err = commands
        .start_sync(&ctx(), other, conn, ten_days(), vec![])
        .await
        .unwrap_err();
    assert!(
        matches!(err, CommandError::NotFound("connection")),
        "{err:?}"
    );
    let err = commands.run_sync(other, conn, id).await.unwrap_err();
    assert!(
        matches!(err, CommandError::NotFound("connection")),
        "{err:?}"
    );
    let err = commands
        .run_sync(ws, ConnectionId(Uuid::now_v7()), id)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CommandError::NotFound("connection")),
        "{err:?}"
    );

    // Nothing was appended on the other workspace's behalf.
    let events = db.store().read_stream(&conn.stream()).await.unwrap();
    assert!(events.iter().all(|e| e.workspace_id == ws));
}
