//! The connection's rules, as given / when / then.

use super::*;
use crate::testing::{given, given_nothing, EPOCH};
use uuid::Uuid;

const CONN: ConnectionId = ConnectionId(Uuid::from_u128(9));

fn sync(n: u128) -> SyncId {
    SyncId(Uuid::from_u128(n))
}

fn worker(name: &str) -> WorkerId {
    WorkerId(name.into())
}

fn day(raw: &str) -> NaiveDate {
    raw.parse().unwrap()
}

fn january() -> DateRange {
    DateRange::new(day("2024-01-01"), day("2024-01-31")).unwrap()
}

fn account() -> AdAccountId {
    AdAccountId("acc-1".into())
}

fn eur() -> Currency {
    Currency::parse("EUR").unwrap()
}

fn counts(recorded: u64) -> SyncCounts {
    SyncCounts {
        days_recorded: recorded,
        ..SyncCounts::default()
    }
}

fn settings() -> ConnectionSettings {
    ConnectionSettings::Sandbox {
        seed: 1,
        ad_accounts: 1,
        campaigns: 2,
    }
}

fn connected() -> DomainEvent {
    DomainEvent::PlatformConnected(PlatformConnected {
        connection_id: CONN,
        label: "Sandbox".into(),
        settings: settings(),
        authorization_expires_at: None,
    })
}

fn account_discovered() -> DomainEvent {
    DomainEvent::AdAccountDiscovered(AdAccountDiscovered {
        connection_id: CONN,
        ad_account_id: account(),
        name: "Main".into(),
        currency: eur(),
        time_zone: "Europe/Berlin".into(),
    })
}

fn campaign_id() -> CampaignId {
    CampaignId::derive(CONN, "c1")
}

fn campaign_discovered(name: &str) -> DomainEvent {
    DomainEvent::CampaignDiscovered(CampaignDiscovered {
        connection_id: CONN,
        campaign_id: campaign_id(),
        ad_account_id: account(),
        external_id: "c1".into(),
        name: name.into(),
        status: "ACTIVE".into(),
    })
}

/// Connected, with one ad account and one campaign.
fn discovered() -> [DomainEvent; 3] {
    [
        connected(),
        account_discovered(),
        campaign_discovered("Spring"),
    ]
}

fn discovery(campaign_name: &str) -> Command {
    Command::RecordDiscovery {
        ad_accounts: vec![AdAccount {
            id: account(),
            name: "Main".into(),
            currency: eur(),
            time_zone: "Europe/Berlin".into(),
        }],
        campaigns: vec![DiscoveredCampaign {
            ad_account_id: account(),
            external_id: "c1".into(),
            name: campaign_name.into(),
            status: "ACTIVE".into(),
        }],
    }
}

fn start(n: u128) -> Command {
    Command::StartSync {
        sync_id: sync(n),
        range: january(),
        campaign_ids: vec![],
        max_sandbox_campaign_days: None,
    }
}

fn started(n: u128, campaign_ids: Vec<CampaignId>) -> DomainEvent {
    DomainEvent::SyncStarted(SyncStarted {
        sync_id: sync(n),
        connection_id: CONN,
        from: day("2024-01-01"),
        to: day("2024-01-31"),
        campaign_ids,
    })
}

fn claimed_by(
    n: u128,
    who: &str,
    attempt: u32,
    reason: ClaimReason,
    previous: Option<&str>,
) -> DomainEvent {
    DomainEvent::SyncClaimed(SyncClaimed {
        sync_id: sync(n),
        connection_id: CONN,
        worker: worker(who),
        attempt,
        reason,
        previous_worker: previous.map(worker),
    })
}

fn claim(n: u128, who: &str) -> Command {
    Command::ClaimSync {
        sync_id: sync(n),
        worker: worker(who),
    }
}

fn progress(n: u128, who: &str, from: &str, through: &str, recorded: u64) -> Command {
    Command::RecordSyncProgress {
        sync_id: sync(n),
        worker: worker(who),
        ad_account_id: account(),
        from: day(from),
        through: day(through),
        counts: counts(recorded),
    }
}

fn progressed(n: u128, from: &str, through: &str, recorded: u64) -> DomainEvent {
    DomainEvent::SyncProgressed(SyncProgressed {
        sync_id: sync(n),
        connection_id: CONN,
        ad_account_id: account(),
        from: day(from),
        through: day(through),
        counts: counts(recorded),
    })
}

fn account_synced(n: u128, through: &str) -> DomainEvent {
    DomainEvent::AccountSynced(AccountSynced {
        connection_id: CONN,
        sync_id: sync(n),
        ad_account_id: account(),
        through: day(through),
    })
}

/// Discovered, with sync 1 over January running on worker `a`.
fn running_on_a() -> Given<Connection> {
    given::<Connection>(discovered()).and([
        started(1, vec![]),
        claimed_by(1, "a", 1, ClaimReason::FirstRun, None),
    ])
}

use crate::testing::Given;

#[test]
fn a_platform_is_connected_once_with_a_printable_label() {
    given_nothing::<Connection>()
        .when(Command::Connect {
            connection_id: CONN,
            label: "  Sandbox ".into(),
            settings: settings(),
            authorization_expires_at: None,
        })
        .then([connected()]);
    given::<Connection>([connected()])
        .when(Command::Connect {
            connection_id: CONN,
            label: "Sandbox".into(),
            settings: settings(),
            authorization_expires_at: None,
        })
        .then_error(DomainError::AlreadyExists("connection"));
    given_nothing::<Connection>()
        .when(Command::Connect {
            connection_id: CONN,
            label: "\u{7}".into(),
            settings: settings(),
            authorization_expires_at: None,
        })
        .then_invalid("label");
}

#[test]
fn discovery_records_only_what_is_new_or_changed() {
    given::<Connection>([connected()])
        .when(discovery("Spring"))
        .then(discovered().into_iter().skip(1));
    given::<Connection>(discovered())
        .when(discovery("Spring"))
        .then_nothing();
    given::<Connection>(discovered())
        .when(discovery("Summer"))
        .then([DomainEvent::CampaignChanged(CampaignChanged {
            connection_id: CONN,
            campaign_id: campaign_id(),
            name: "Summer".into(),
            status: "ACTIVE".into(),
        })]);
}

#[test]
fn a_campaign_of_an_unknown_ad_account_is_refused() {
    given::<Connection>([connected()])
        .when(Command::RecordDiscovery {
            ad_accounts: vec![],
            campaigns: vec![DiscoveredCampaign {
                ad_account_id: account(),
                external_id: "c1".into(),
                name: "Spring".into(),
                status: "ACTIVE".into(),
            }],
        })
        .then_invalid("campaigns");
}

#[test]
fn a_sync_starts_over_a_range_and_a_second_one_waits_for_its_end() {
    given::<Connection>(discovered())
        .when(start(1))
        .then([started(1, vec![])]);
    // However long the first has been running: if its worker died, it is taken over and
    // finished, never replaced.
    running_on_a()
        .at(EPOCH + Duration::days(3))
        .when(start(2))
        .then_error(DomainError::SyncAlreadyRunning(sync(1)));
    running_on_a()
        .when(start(1))
        .then_error(DomainError::AlreadyExists("sync"));
}

#[test]
fn syncing_an_unknown_campaign_is_refused() {
    let stranger = CampaignId(Uuid::from_u128(77));
    given::<Connection>(discovered())
        .when(Command::StartSync {
            sync_id: sync(3),
            range: january(),
            campaign_ids: vec![stranger],
            max_sandbox_campaign_days: None,
        })
        .then_error(DomainError::UnknownCampaign(stranger));
}

#[test]
fn a_sandbox_sync_covers_at_most_the_campaign_days_its_operator_allows() {
    let start = |campaign_ids: Vec<CampaignId>, max| Command::StartSync {
        sync_id: sync(1),
        range: january(),
        campaign_ids,
        max_sandbox_campaign_days: Some(max),
    };
    // Every campaign: two by the settings (discovery has listed one so far) × 31 days.
    given::<Connection>(discovered())
        .when(start(vec![], 62))
        .then([started(1, vec![])]);
    given::<Connection>(discovered())
        .when(start(vec![], 61))
        .then_invalid("to");
    // One campaign named: 31.
    given::<Connection>(discovered())
        .when(start(vec![campaign_id()], 31))
        .then([started(1, vec![campaign_id()])]);
    given::<Connection>(discovered())
        .when(start(vec![campaign_id()], 30))
        .then_invalid("to");
}

#[test]
fn the_first_claim_of_a_run_is_its_first_run() {
    let state = given::<Connection>(discovered())
        .and([started(1, vec![])])
        .when(claim(1, "a"))
        .then([claimed_by(1, "a", 1, ClaimReason::FirstRun, None)]);
    let run = state.0.unwrap().running_sync.unwrap();
    assert_eq!(run.worker, Some(worker("a")));
    // Claiming again what one holds (a retried write) records nothing.
    running_on_a().when(claim(1, "a")).then_nothing();
}

#[test]
fn a_run_whose_lease_lapsed_is_taken_over_naming_the_previous_worker() {
    let state = running_on_a().when(claim(1, "b")).then([claimed_by(
        1,
        "b",
        2,
        ClaimReason::LeaseLapsed,
        Some("a"),
    )]);
    let run = state.0.unwrap().running_sync.unwrap();
    assert_eq!((run.worker, run.lapses), (Some(worker("b")), 1));
}

#[test]
fn a_run_handed_back_is_claimed_again_at_once() {
    let handed_back = DomainEvent::SyncHandedBack(SyncHandedBack {
        sync_id: sync(1),
        connection_id: CONN,
        worker: worker("a"),
        reason: "shutting down".into(),
    });
    running_on_a()
        .when(Command::HandBackSync {
            sync_id: sync(1),
            worker: worker("a"),
            reason: "shutting down".into(),
        })
        .then([handed_back.clone()]);
    let state = running_on_a()
        .and([handed_back])
        .when(claim(1, "b"))
        .then([claimed_by(1, "b", 2, ClaimReason::HandedBack, Some("a"))]);
    assert_eq!(state.0.unwrap().running_sync.unwrap().lapses, 0);
}

#[test]
fn a_worker_whose_run_was_taken_over_can_no_longer_write_to_it() {
    let taken_over =
        || running_on_a().and([claimed_by(1, "b", 2, ClaimReason::LeaseLapsed, Some("a"))]);
    taken_over()
        .when(progress(1, "a", "2024-01-01", "2024-01-10", 3))
        .then_error(DomainError::SyncClaimedElsewhere(sync(1)));
    taken_over()
        .when(Command::CompleteSync {
            sync_id: sync(1),
            worker: worker("a"),
        })
        .then_error(DomainError::SyncClaimedElsewhere(sync(1)));
    taken_over()
        .when(Command::HandBackSync {
            sync_id: sync(1),
            worker: worker("a"),
            reason: "shutting down".into(),
        })
        .then_error(DomainError::SyncClaimedElsewhere(sync(1)));
}

#[test]
fn a_run_whose_workers_keep_dying_is_given_up_keeping_what_it_stored() {
    let mut scenario = running_on_a().and([progressed(1, "2024-01-01", "2024-01-10", 4)]);
    let mut previous = "a".to_owned();
    for attempt in 2..=MAX_LEASE_LAPSES {
        let next = format!("w{attempt}");
        scenario = scenario.and([claimed_by(
            1,
            &next,
            attempt,
            ClaimReason::LeaseLapsed,
            Some(&previous),
        )]);
        previous = next;
    }
    let state = scenario
        .when(claim(1, "last"))
        .then([DomainEvent::SyncFailed(SyncFailed {
            sync_id: sync(1),
            connection_id: CONN,
            failure: SyncFailure::new(
                FailureKind::Abandoned,
                format!(
                    "its worker stopped {MAX_LEASE_LAPSES} times before it could finish; the \
                     days it stored are kept"
                ),
            ),
            counts: counts(4),
        })]);
    assert!(state.0.unwrap().running_sync.is_none());
}

#[test]
fn progress_is_recorded_chunk_after_chunk_and_moves_the_cursor() {
    running_on_a()
        .when(progress(1, "a", "2024-01-01", "2024-01-10", 10))
        .then([
            progressed(1, "2024-01-01", "2024-01-10", 10),
            account_synced(1, "2024-01-10"),
        ]);
    let state = running_on_a()
        .and([
            progressed(1, "2024-01-01", "2024-01-10", 10),
            account_synced(1, "2024-01-10"),
        ])
        .when(progress(1, "a", "2024-01-11", "2024-01-20", 5))
        .then([
            progressed(1, "2024-01-11", "2024-01-20", 5),
            account_synced(1, "2024-01-20"),
        ]);
    let conn = state.0.unwrap();
    assert_eq!(conn.cursors.get(&account()), Some(&day("2024-01-20")));
    let run = conn.running_sync.unwrap();
    assert_eq!(run.counts, counts(15));
    assert_eq!(run.resume_from(&account()), Some(day("2024-01-21")));
}

#[test]
fn a_chunk_recorded_twice_is_recorded_once() {
    running_on_a()
        .and([
            progressed(1, "2024-01-01", "2024-01-10", 10),
            account_synced(1, "2024-01-10"),
        ])
        .when(progress(1, "a", "2024-01-01", "2024-01-10", 10))
        .then_nothing();
}

#[test]
fn a_chunk_that_would_leave_a_hole_in_the_run_is_refused() {
    running_on_a()
        .when(progress(1, "a", "2024-01-11", "2024-01-20", 5))
        .then_invalid("from");
    running_on_a()
        .when(progress(1, "a", "2023-12-25", "2024-01-05", 5))
        .then_invalid("through");
}

#[test]
fn a_run_over_some_campaigns_records_progress_without_moving_the_cursor() {
    given::<Connection>(discovered())
        .and([
            started(1, vec![campaign_id()]),
            claimed_by(1, "a", 1, ClaimReason::FirstRun, None),
        ])
        .when(progress(1, "a", "2024-01-01", "2024-01-10", 10))
        .then([progressed(1, "2024-01-01", "2024-01-10", 10)]);
}

#[test]
fn the_cursor_moves_only_over_contiguous_days_and_never_back() {
    // A cursor from an earlier sync, then runs that re-read a window, start after a hole, or
    // only re-read old days.
    let with_cursor = |through: &str| {
        given::<Connection>(discovered()).and([
            started(7, vec![]),
            claimed_by(7, "x", 1, ClaimReason::FirstRun, None),
            account_synced(7, through),
            DomainEvent::SyncCompleted(SyncCompleted {
                sync_id: sync(7),
                connection_id: CONN,
                counts: SyncCounts::default(),
            }),
            started(1, vec![]),
            claimed_by(1, "a", 1, ClaimReason::FirstRun, None),
        ])
    };
    // Re-reads a trailing window and goes past the cursor.
    with_cursor("2024-01-05")
        .when(progress(1, "a", "2024-01-01", "2024-01-15", 1))
        .then([
            progressed(1, "2024-01-01", "2024-01-15", 1),
            account_synced(1, "2024-01-15"),
        ]);
    // 2024-01-11 was never stored before this run reached it: no hole can be jumped, because a
    // run starts each account at its range's first day; a cursor ahead of the run stays.
    with_cursor("2024-01-20")
        .when(progress(1, "a", "2024-01-01", "2024-01-10", 1))
        .then([progressed(1, "2024-01-01", "2024-01-10", 1)]);
    // Even an event with an older date (never decided, but replayed) keeps the later cursor.
    let state = with_cursor("2024-01-20")
        .and([account_synced(1, "2024-01-05")])
        .state()
        .clone();
    assert_eq!(
        state.0.unwrap().cursors.get(&account()),
        Some(&day("2024-01-20"))
    );
}

#[test]
fn progress_is_refused_unless_its_sync_runs_and_knows_the_account() {
    given::<Connection>(discovered())
        .when(progress(1, "a", "2024-01-01", "2024-01-10", 1))
        .then_error(DomainError::SyncNotRunning(sync(1)));
    running_on_a()
        .when(progress(2, "a", "2024-01-01", "2024-01-10", 1))
        .then_error(DomainError::SyncNotRunning(sync(2)));
    running_on_a()
        .when(Command::RecordSyncProgress {
            sync_id: sync(1),
            worker: worker("a"),
            ad_account_id: AdAccountId("acc-2".into()),
            from: day("2024-01-01"),
            through: day("2024-01-10"),
            counts: SyncCounts::default(),
        })
        .then_invalid("ad_account_id");
    running_on_a()
        .when(progress(1, "a", "2024-01-10", "2024-01-01", 1))
        .then_invalid("through");
}

#[test]
fn a_run_completes_with_the_counts_of_its_chunks_once() {
    let with_chunks = || {
        running_on_a().and([
            progressed(1, "2024-01-01", "2024-01-10", 10),
            progressed(1, "2024-01-11", "2024-01-31", 21),
        ])
    };
    let completed = DomainEvent::SyncCompleted(SyncCompleted {
        sync_id: sync(1),
        connection_id: CONN,
        counts: counts(31),
    });
    let complete = || Command::CompleteSync {
        sync_id: sync(1),
        worker: worker("a"),
    };
    let state = with_chunks().when(complete()).then([completed.clone()]);
    let conn = state.0.unwrap();
    assert_eq!(conn.completed_syncs, 1);
    assert!(conn.running_sync.is_none());
    // Completing again (the first write was stored after all): done already.
    with_chunks()
        .and([completed])
        .when(complete())
        .then_nothing();
    given::<Connection>(discovered())
        .when(complete())
        .then_error(DomainError::SyncNotRunning(sync(1)));
}

#[test]
fn a_failed_run_keeps_its_counts_and_is_remembered() {
    let failure = SyncFailure::new(FailureKind::AuthExpired, "ad account acc-1: revoked");
    let state = running_on_a()
        .and([progressed(1, "2024-01-01", "2024-01-10", 10)])
        .at(EPOCH + Duration::minutes(8))
        .when(Command::FailSync {
            sync_id: sync(1),
            worker: worker("a"),
            failure: failure.clone(),
        })
        .then([DomainEvent::SyncFailed(SyncFailed {
            sync_id: sync(1),
            connection_id: CONN,
            failure,
            counts: counts(10),
        })]);
    let conn = state.0.unwrap();
    assert_eq!(conn.last_sync_started_at, Some(EPOCH));
    assert!(conn.running_sync.is_none());
    assert_eq!(conn.completed_syncs, 0);
}

#[test]
fn commands_on_a_missing_connection_are_refused() {
    given_nothing::<Connection>()
        .when(start(1))
        .then_error(DomainError::NotFound("connection"));
}

#[test]
fn a_connection_whose_credentials_were_refused_syncs_again_only_after_reauthorization() {
    let needs_reauth = DomainEvent::ConnectionNeedsReauth(ConnectionNeedsReauth {
        connection_id: CONN,
        reason: "the platform authorization expired or was revoked".into(),
    });
    given::<Connection>(discovered())
        .when(Command::MarkNeedsReauth {
            reason: "the platform authorization expired or was revoked".into(),
        })
        .then([needs_reauth.clone()]);
    let waiting = || given::<Connection>(discovered()).and([needs_reauth.clone()]);
    assert_eq!(
        waiting().state().0.as_ref().unwrap().status,
        Status::NeedsReauth
    );
    waiting()
        .when(start(1))
        .then_error(DomainError::ConnectionUnavailable(
            "waiting to be reconnected: its platform authorization expired or was revoked",
        ));
    waiting()
        .when(Command::MarkNeedsReauth {
            reason: "again".into(),
        })
        .then_nothing();
    let expires = EPOCH + Duration::days(60);
    let reauthorized = DomainEvent::ConnectionReauthorized(ConnectionReauthorized {
        connection_id: CONN,
        authorization_expires_at: Some(expires),
    });
    let reauthorize = || Command::Reauthorize {
        authorization_expires_at: Some(expires),
    };
    waiting().when(reauthorize()).then([reauthorized.clone()]);
    waiting()
        .and([reauthorized.clone()])
        .when(start(1))
        .then([started(1, vec![])]);
    let disconnected = DomainEvent::PlatformDisconnected(PlatformDisconnected {
        connection_id: CONN,
    });
    waiting()
        .and([reauthorized])
        .when(Command::Disconnect)
        .then([disconnected.clone()]);
    let gone = || given::<Connection>(discovered()).and([disconnected.clone()]);
    gone()
        .when(start(2))
        .then_error(DomainError::ConnectionUnavailable("disconnected"));
    gone()
        .when(reauthorize())
        .then_error(DomainError::ConnectionUnavailable("disconnected"));
    gone().when(Command::Disconnect).then_nothing();
}
