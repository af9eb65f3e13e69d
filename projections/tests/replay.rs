//! The property DESIGN.md asks of every read model: replaying any log gives the same read model.
//! Arbitrary logs of catalog, membership, sync and insights events over several workspaces are
//! appended through the real event store, then projected three ways, whose checksums must agree:
//! while the log grows, in random small batches; rebuilt in one large batch; rebuilt again.

use adledger_domain::event::{
    AccountSynced, AdAccountDiscovered, CampaignChanged, CampaignDiscovered, ConnectionNeedsReauth,
    ConnectionReauthorized, ConnectionSettings, DailyInsightsRecorded, DailyInsightsRestated,
    InsightsSource, MemberAdded, MemberRemoved, MemberRoleChanged, PlatformConnected,
    PlatformDisconnected, SyncCompleted, SyncCounts, SyncFailed, SyncStarted, WorkspaceCreated,
};
use adledger_domain::{
    Actor, AdAccountId, CampaignId, ConnectionId, Currency, DailyMetrics, DomainEvent, EventId,
    EventMetadata, Platform, RequestSource, Role, StreamId, SyncId, UserId, WorkspaceId,
};
use adledger_infra::testing::TestDatabase;
use adledger_infra::{AppendRequest, EventStore, NewEvent};
use adledger_projections::{all, catch_up, checksum, rebuild, DEFAULT_BATCH};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;
use std::collections::HashMap;
use std::sync::OnceLock;
use uuid::Uuid;

const WORKSPACES: u8 = 3;
/// Connection `c` belongs to workspace `c % WORKSPACES`.
const CONNECTIONS: u8 = 4;
const CAMPAIGNS: u8 = 3;
const USERS: u8 = 4;
const SYNCS: u8 = 3;
const DAYS: u8 = 10;

/// One step of a log, in small numbers that [`Log::events`] turns into domain events.
#[derive(Debug, Clone)]
enum Action {
    Member {
        ws: u8,
        user: u8,
        /// 0 adds (or re-adds), 1 changes the role, 2 removes.
        change: u8,
        role: u8,
    },
    Connect {
        conn: u8,
        expires: Option<u8>,
    },
    Lifecycle {
        conn: u8,
        /// 0 needs reauthorization, 1 reauthorized, 2 disconnected.
        change: u8,
        expires: Option<u8>,
    },
    Discover {
        conn: u8,
        campaign: u8,
        name: u8,
    },
    Change {
        conn: u8,
        campaign: u8,
        name: u8,
        paused: bool,
    },
    StartSync {
        conn: u8,
        sync: u8,
        one_campaign: Option<u8>,
        day: u8,
    },
    FinishSync {
        conn: u8,
        sync: u8,
        failed: bool,
        days: u8,
    },
    AccountSynced {
        conn: u8,
        sync: u8,
        account: u8,
        day: u8,
    },
    /// A worker claims a run (or takes it over), or records a chunk of it.
    Claim {
        conn: u8,
        sync: u8,
        attempt: u8,
    },
    Progress {
        conn: u8,
        sync: u8,
        account: u8,
        day: u8,
    },
    Report {
        conn: u8,
        campaign: u8,
        day: u8,
        impressions: u32,
        cents: u32,
    },
}

fn action() -> impl Strategy<Value = Action> {
    let conn = 0..CONNECTIONS;
    prop_oneof![
        2 => (0..WORKSPACES, 0..USERS, 0..3u8, 0..4u8)
            .prop_map(|(ws, user, change, role)| Action::Member { ws, user, change, role }),
        1 => (conn.clone(), proptest::option::of(0..DAYS))
            .prop_map(|(conn, expires)| Action::Connect { conn, expires }),
        1 => (conn.clone(), 0..3u8, proptest::option::of(0..DAYS))
            .prop_map(|(conn, change, expires)| Action::Lifecycle { conn, change, expires }),
        2 => (conn.clone(), 0..CAMPAIGNS, 0..4u8)
            .prop_map(|(conn, campaign, name)| Action::Discover { conn, campaign, name }),
        1 => (conn.clone(), 0..CAMPAIGNS, 0..4u8, any::<bool>())
            .prop_map(|(conn, campaign, name, paused)| Action::Change { conn, campaign, name, paused }),
        2 => (conn.clone(), 0..SYNCS, proptest::option::of(0..CAMPAIGNS), 0..DAYS)
            .prop_map(|(conn, sync, one_campaign, day)| Action::StartSync { conn, sync, one_campaign, day }),
        2 => (conn.clone(), 0..SYNCS, any::<bool>(), 0..DAYS)
            .prop_map(|(conn, sync, failed, days)| Action::FinishSync { conn, sync, failed, days }),
        1 => (conn.clone(), 0..SYNCS, 0..2u8, 0..DAYS)
            .prop_map(|(conn, sync, account, day)| Action::AccountSynced { conn, sync, account, day }),
        1 => (conn.clone(), 0..SYNCS, 1..4u8)
            .prop_map(|(conn, sync, attempt)| Action::Claim { conn, sync, attempt }),
        1 => (conn.clone(), 0..SYNCS, 0..2u8, 0..DAYS)
            .prop_map(|(conn, sync, account, day)| Action::Progress { conn, sync, account, day }),
        6 => (conn, 0..CAMPAIGNS, 0..DAYS, 0..50_000u32, 0..900_000u32)
            .prop_map(|(conn, campaign, day, impressions, cents)| {
                Action::Report { conn, campaign, day, impressions, cents }
            }),
    ]
}

/// How the growing log is projected: take `chunk` more actions, sequence them, then catch every
/// projection up with its own batch size.
#[derive(Debug, Clone)]
struct Step {
    chunk: usize,
    batches: [i64; 3],
}

fn step() -> impl Strategy<Value = Step> {
    (1..60usize, proptest::array::uniform3(1..50i64))
        .prop_map(|(chunk, batches)| Step { chunk, batches })
}

fn workspace(ws: u8) -> WorkspaceId {
    WorkspaceId(Uuid::from_u128(0x1000 + u128::from(ws)))
}

fn connection(conn: u8) -> ConnectionId {
    ConnectionId(Uuid::from_u128(0x2000 + u128::from(conn)))
}

fn campaign(conn: u8, campaign: u8) -> CampaignId {
    CampaignId::derive(connection(conn), &format!("c{campaign}"))
}

/// A campaign's ad account: two per connection, one in each currency.
fn account(campaign: u8) -> (AdAccountId, Currency) {
    let (id, currency) = match campaign % 2 {
        0 => ("act_0", "EUR"),
        _ => ("act_1", "USD"),
    };
    (
        AdAccountId(id.into()),
        Currency::parse(currency).expect("ISO code"),
    )
}

fn sync(conn: u8, sync: u8) -> SyncId {
    SyncId(Uuid::from_u128(
        0x3000 + u128::from(conn) * 16 + u128::from(sync),
    ))
}

fn user(user: u8) -> UserId {
    UserId(Uuid::from_u128(0x4000 + u128::from(user)))
}

fn day(day: u8) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 1, 1).expect("a date") + Duration::days(i64::from(day))
}

fn expiry(days: Option<u8>) -> Option<DateTime<Utc>> {
    days.map(|d| Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap() + Duration::days(d.into()))
}

/// One append: events of one stream under one metadata.
struct Append {
    stream: StreamId,
    stream_type: &'static str,
    workspace: WorkspaceId,
    metadata: EventMetadata,
    events: Vec<DomainEvent>,
}

/// Turns actions into appends, keeping what later events need (insights revisions).
#[derive(Default)]
struct Log {
    revisions: HashMap<(u8, u8, u8), (u32, DailyMetrics, Currency)>,
}

impl Log {
    fn opening() -> Vec<Append> {
        (0..WORKSPACES)
            .map(|ws| Append {
                stream: workspace(ws).stream(),
                stream_type: "workspace",
                workspace: workspace(ws),
                metadata: EventMetadata::system("replay-test", Uuid::from_u128(u128::from(ws))),
                events: vec![DomainEvent::WorkspaceCreated(WorkspaceCreated {
                    workspace_id: workspace(ws),
                    name: format!("Workspace {ws}"),
                })],
            })
            .collect()
    }

    fn append(&mut self, index: usize, action: &Action) -> Append {
        let correlation_id = Uuid::from_u128(0x9000 + index as u128);
        let by = |who: u8| EventMetadata {
            actor: Actor::User { user_id: user(who) },
            correlation_id,
            causation_id: None,
            source: RequestSource {
                ip: Some(format!("203.0.113.{who}")),
                user_agent: Some("replay-test".into()),
            },
        };
        let system = EventMetadata::system("scheduler", correlation_id);
        let on_connection = |conn: u8, metadata: EventMetadata, events: Vec<DomainEvent>| Append {
            stream: connection(conn).stream(),
            stream_type: "connection",
            workspace: workspace(conn % WORKSPACES),
            metadata,
            events,
        };
        let on_campaign =
            |conn: u8, c: u8, metadata: EventMetadata, events: Vec<DomainEvent>| Append {
                stream: campaign(conn, c).stream(),
                stream_type: "campaign",
                workspace: workspace(conn % WORKSPACES),
                metadata,
                events,
            };
        match *action {
            Action::Member {
                ws,
                user: who,
                change,
                role,
            } => {
                let (workspace_id, user_id) = (workspace(ws), user(who));
                let role = Role::ALL[usize::from(role) % Role::ALL.len()];
                let event = match change {
                    0 => DomainEvent::MemberAdded(MemberAdded {
                        workspace_id,
                        user_id,
                        role,
                    }),
                    1 => DomainEvent::MemberRoleChanged(MemberRoleChanged {
                        workspace_id,
                        user_id,
                        role,
                    }),
                    _ => DomainEvent::MemberRemoved(MemberRemoved {
                        workspace_id,
                        user_id,
                    }),
                };
                Append {
                    stream: workspace_id.stream(),
                    stream_type: "workspace",
                    workspace: workspace_id,
                    metadata: by((who + 1) % USERS),
                    events: vec![event],
                }
            }
            Action::Connect { conn, expires } => {
                let mut events = vec![DomainEvent::PlatformConnected(PlatformConnected {
                    connection_id: connection(conn),
                    label: format!("Connection {conn}"),
                    settings: ConnectionSettings::Sandbox {
                        seed: u64::from(conn),
                        ad_accounts: 2,
                        campaigns: u32::from(CAMPAIGNS),
                    },
                    authorization_expires_at: expiry(expires),
                })];
                for c in 0..2 {
                    let (ad_account_id, currency) = account(c);
                    events.push(DomainEvent::AdAccountDiscovered(AdAccountDiscovered {
                        connection_id: connection(conn),
                        ad_account_id,
                        name: format!("Account {c}"),
                        currency,
                        time_zone: "Europe/Lisbon".into(),
                    }));
                }
                on_connection(conn, by(conn % USERS), events)
            }
            Action::Lifecycle {
                conn,
                change,
                expires,
            } => {
                let connection_id = connection(conn);
                let event = match change {
                    0 => DomainEvent::ConnectionNeedsReauth(ConnectionNeedsReauth {
                        connection_id,
                        reason: "token revoked".into(),
                    }),
                    1 => DomainEvent::ConnectionReauthorized(ConnectionReauthorized {
                        connection_id,
                        authorization_expires_at: expiry(expires),
                    }),
                    _ => DomainEvent::PlatformDisconnected(PlatformDisconnected { connection_id }),
                };
                on_connection(conn, system, vec![event])
            }
            Action::Discover {
                conn,
                campaign: c,
                name,
            } => {
                let event = DomainEvent::CampaignDiscovered(CampaignDiscovered {
                    connection_id: connection(conn),
                    campaign_id: campaign(conn, c),
                    ad_account_id: account(c).0,
                    external_id: format!("c{c}"),
                    name: format!("Campaign {c}.{name}"),
                    status: "active".into(),
                });
                on_campaign(conn, c, system, vec![event])
            }
            Action::Change {
                conn,
                campaign: c,
                name,
                paused,
            } => {
                let event = DomainEvent::CampaignChanged(CampaignChanged {
                    connection_id: connection(conn),
                    campaign_id: campaign(conn, c),
                    name: format!("Campaign {c}.{name}"),
                    status: if paused { "paused" } else { "active" }.into(),
                });
                on_campaign(conn, c, by(c % USERS), vec![event])
            }
            Action::StartSync {
                conn,
                sync: s,
                one_campaign,
                day: d,
            } => {
                let event = DomainEvent::SyncStarted(SyncStarted {
                    sync_id: sync(conn, s),
                    connection_id: connection(conn),
                    from: day(d / 2),
                    to: day(d),
                    campaign_ids: one_campaign
                        .map(|c| campaign(conn, c))
                        .into_iter()
                        .collect(),
                });
                on_connection(conn, by(s % USERS), vec![event])
            }
            Action::FinishSync {
                conn,
                sync: s,
                failed,
                days,
            } => {
                let counts = SyncCounts {
                    days_recorded: u64::from(days),
                    days_restated: u64::from(days / 3),
                    days_unchanged: 1,
                };
                let (sync_id, connection_id) = (sync(conn, s), connection(conn));
                let event = if failed {
                    DomainEvent::SyncFailed(SyncFailed {
                        sync_id,
                        connection_id,
                        failure: adledger_domain::SyncFailure::new(
                            adledger_domain::FailureKind::Throttled,
                            "rate limited",
                        ),
                        counts,
                    })
                } else {
                    DomainEvent::SyncCompleted(SyncCompleted {
                        sync_id,
                        connection_id,
                        counts,
                    })
                };
                on_connection(conn, system, vec![event])
            }
            Action::AccountSynced {
                conn,
                sync: s,
                account: a,
                day: d,
            } => {
                let event = DomainEvent::AccountSynced(AccountSynced {
                    connection_id: connection(conn),
                    sync_id: sync(conn, s),
                    ad_account_id: account(a).0,
                    through: day(d),
                });
                on_connection(conn, system, vec![event])
            }
            Action::Claim {
                conn,
                sync: s,
                attempt,
            } => {
                let event = DomainEvent::SyncClaimed(adledger_domain::event::SyncClaimed {
                    sync_id: sync(conn, s),
                    connection_id: connection(conn),
                    worker: adledger_domain::WorkerId(format!("host:{attempt}:w")),
                    attempt: u32::from(attempt),
                    reason: if attempt == 1 {
                        adledger_domain::event::ClaimReason::FirstRun
                    } else {
                        adledger_domain::event::ClaimReason::LeaseLapsed
                    },
                    previous_worker: None,
                });
                on_connection(conn, system, vec![event])
            }
            Action::Progress {
                conn,
                sync: s,
                account: a,
                day: d,
            } => {
                let event = DomainEvent::SyncProgressed(adledger_domain::event::SyncProgressed {
                    sync_id: sync(conn, s),
                    connection_id: connection(conn),
                    ad_account_id: account(a).0,
                    from: day(d / 2),
                    through: day(d),
                    counts: SyncCounts::default(),
                });
                on_connection(conn, system, vec![event])
            }
            Action::Report {
                conn,
                campaign: c,
                day: d,
                impressions,
                cents,
            } => {
                let (ad_account_id, currency) = account(c);
                let source = InsightsSource {
                    campaign_id: campaign(conn, c),
                    connection_id: connection(conn),
                    platform: Platform::Sandbox,
                    ad_account_id,
                    sync_id: sync(conn, 0),
                };
                let metrics = DailyMetrics::new(
                    u64::from(impressions),
                    u64::from(impressions / 50),
                    Decimal::new(i64::from(cents), 2),
                    Decimal::new(i64::from(impressions % 7), 0),
                    Decimal::new(i64::from(cents) * 3, 2),
                )
                .expect("valid metrics");
                let key = (conn, c, d);
                let event = match self.revisions.get(&key) {
                    None => DomainEvent::DailyInsightsRecorded(DailyInsightsRecorded {
                        source,
                        date: day(d),
                        currency,
                        metrics: metrics.clone(),
                        revision: 1,
                    }),
                    Some((revision, previous, previous_currency)) => {
                        DomainEvent::DailyInsightsRestated(DailyInsightsRestated {
                            source,
                            date: day(d),
                            currency,
                            metrics: metrics.clone(),
                            revision: revision + 1,
                            previous_currency: *previous_currency,
                            previous: previous.clone(),
                        })
                    }
                };
                let revision = self.revisions.get(&key).map_or(1, |(r, _, _)| r + 1);
                self.revisions.insert(key, (revision, metrics, currency));
                on_campaign(conn, c, system, vec![event])
            }
        }
    }
}

/// Appends through the real store, one stream version after another, with a steady clock.
struct Writer {
    store: EventStore,
    versions: HashMap<StreamId, i64>,
    clock: DateTime<Utc>,
    appended: i64,
}

impl Writer {
    async fn write(&mut self, append: Append) {
        let expected = self.versions.get(&append.stream).copied().unwrap_or(0);
        let count = append.events.len() as i64;
        let events = append
            .events
            .iter()
            .map(|event| {
                self.clock += Duration::seconds(1);
                NewEvent {
                    event_id: EventId(Uuid::now_v7()),
                    event_type: event.event_type().to_owned(),
                    schema_version: event.schema_version(),
                    payload: event.to_payload(),
                    occurred_at: self.clock,
                }
            })
            .collect();
        self.store
            .append(AppendRequest {
                stream_id: append.stream.clone(),
                stream_type: append.stream_type,
                workspace_id: append.workspace,
                expected_version: expected,
                metadata: serde_json::to_value(&append.metadata).unwrap(),
                events,
                idempotency: None,
            })
            .await
            .unwrap();
        self.versions.insert(append.stream, expected + count);
        self.appended += count;
    }

    /// Sequences everything appended so far (other databases' transactions on the cluster can
    /// hold the settle horizon back for a moment).
    async fn sequence(&self) {
        while self.store.sequence_all().await.unwrap() < self.appended {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

async fn checksums(store: &EventStore) -> Vec<String> {
    let mut sums = Vec::new();
    for projection in all() {
        sums.push(checksum(store.pool(), projection.name()).await.unwrap());
    }
    sums
}

async fn replay_gives_the_same_read_model(
    actions: Vec<Action>,
    steps: Vec<Step>,
) -> Result<(), TestCaseError> {
    let db = TestDatabase::new().await;
    let store = db.store();
    let pool = store.pool();
    let mut writer = Writer {
        store: store.clone(),
        versions: HashMap::new(),
        clock: Utc.with_ymd_and_hms(2024, 3, 1, 8, 0, 0).unwrap(),
        appended: 0,
    };
    for append in Log::opening() {
        writer.write(append).await;
    }

    // (a) While the log grows: a chunk of actions at a time, each projection catching up in
    // batches of its own small size.
    let mut log = Log::default();
    let mut actions = actions.iter().enumerate().peekable();
    for step in steps.iter().cycle() {
        if actions.peek().is_none() {
            break;
        }
        for (index, action) in actions.by_ref().take(step.chunk) {
            writer.write(log.append(index, action)).await;
        }
        writer.sequence().await;
        for (projection, batch) in all().iter().zip(step.batches) {
            catch_up(&store, pool, &**projection, batch).await.unwrap();
        }
    }
    let head = writer.appended;
    let growing = checksums(&store).await;

    // (b) Rebuilt from position 0 in one large batch; (c) rebuilt once more, as operators do.
    for projection in all() {
        let applied = rebuild(&store, pool, projection.name(), 1_000_000)
            .await
            .unwrap();
        prop_assert_eq!(applied as i64, head);
    }
    let one_pass = checksums(&store).await;
    for projection in all() {
        rebuild(&store, pool, projection.name(), DEFAULT_BATCH)
            .await
            .unwrap();
    }
    let rebuilt = checksums(&store).await;

    prop_assert_eq!(
        &growing,
        &one_pass,
        "small batches while the log grew vs one pass"
    );
    prop_assert_eq!(&one_pass, &rebuilt, "a second rebuild");
    Ok(())
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

proptest! {
    // Each case is a database of its own with a few hundred events: few cases, and a failure
    // shrinks only a little way before it is reported.
    #![proptest_config(ProptestConfig {
        cases: 12,
        max_shrink_iters: 24,
        ..ProptestConfig::default()
    })]

    #[test]
    fn replaying_any_log_gives_the_same_read_model(
        actions in proptest::collection::vec(action(), 120..280),
        steps in proptest::collection::vec(step(), 1..12),
    ) {
        runtime().block_on(replay_gives_the_same_read_model(actions, steps))?;
    }
}
