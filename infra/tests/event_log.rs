//! The event log's properties (DESIGN.md, "The event log"), against a real Postgres.

use adledger_domain::{EventId, EventMetadata, StreamId, StreamType, WorkspaceId};
use adledger_infra::event_store::sequencer;
use adledger_infra::shutdown;
use adledger_infra::testing::TestDatabase;
use adledger_infra::{
    AppendOutcome, AppendRequest, EventStore, Idempotency, LogFilter, NewEvent, StoreError,
};
use chrono::Utc;
use serde_json::json;
use sqlx::Executor;
use std::collections::HashSet;
use uuid::Uuid;

fn event(n: u64) -> NewEvent {
    NewEvent {
        event_id: EventId(Uuid::now_v7()),
        event_type: "WorkspaceCreated".into(),
        schema_version: 1,
        payload: json!({ "workspace_id": Uuid::nil(), "name": format!("event {n}") }),
        occurred_at: Utc::now(),
    }
}

fn request(
    stream: &StreamId,
    ws: WorkspaceId,
    expected: i64,
    events: Vec<NewEvent>,
) -> AppendRequest {
    AppendRequest {
        stream_id: stream.clone(),
        stream_type: "workspace",
        workspace_id: ws,
        expected_version: expected,
        metadata: serde_json::to_value(EventMetadata::system("test", Uuid::now_v7())).unwrap(),
        events,
        idempotency: None,
    }
}

fn new_stream() -> (StreamId, WorkspaceId) {
    let id = Uuid::new_v4();
    (StreamId::new(StreamType::Workspace, id), WorkspaceId(id))
}

async fn read_all(store: &EventStore) -> Vec<(i64, EventId)> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store
            .read_log(&LogFilter {
                after,
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        if page.is_empty() {
            return out;
        }
        for e in page {
            after = e.position.unwrap();
            out.push((after, e.event_id));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appenders_and_a_concurrent_reader_see_every_event_once_in_a_stable_order() {
    const TASKS: u64 = 8;
    const PER_TASK: u64 = 2_000;
    let db = TestDatabase::new().await;
    let store = db.store();
    let (stop, stopped) = shutdown::channel();
    let seq = tokio::spawn(sequencer::run(store.clone(), stopped.clone()));

    // The reader follows the log while writers append, as a projection would.
    let reader = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut after = 0;
            let target = (TASKS * PER_TASK) as usize;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            while seen.len() < target && std::time::Instant::now() < deadline {
                let page = store
                    .read_log(&LogFilter {
                        after,
                        limit: 500,
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                if page.is_empty() {
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
                for e in page {
                    let p = e.position.unwrap();
                    assert_eq!(p, after + 1, "the reader must never see a hole or a jump");
                    after = p;
                    seen.push((p, e.event_id));
                }
            }
            seen
        })
    };

    let mut writers = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            // Each writer spreads over four streams, in batches of 1 to 4 events.
            let streams: Vec<_> = (0..4).map(|_| (new_stream(), 0i64)).collect();
            let mut streams = streams;
            let mut ids = Vec::new();
            let mut n = 0;
            while n < PER_TASK {
                let slot = ((n + task) % 4) as usize;
                let batch = ((n % 4) + 1).min(PER_TASK - n);
                let events: Vec<_> = (0..batch).map(|i| event(n + i)).collect();
                ids.extend(events.iter().map(|e| e.event_id));
                let ((stream, ws), version) = &mut streams[slot];
                let done = store
                    .append(request(stream, *ws, *version, events))
                    .await
                    .unwrap();
                assert_eq!(
                    done,
                    AppendOutcome::Appended {
                        last_version: *version + batch as i64
                    }
                );
                *version += batch as i64;
                n += batch;
            }
            ids
        }));
    }
    let mut appended = HashSet::new();
    for w in writers {
        for id in w.await.unwrap() {
            assert!(appended.insert(id));
        }
    }
    let seen = reader.await.unwrap();
    db.settle(&store).await;
    stop.trigger();
    seq.await.unwrap();

    assert_eq!(seen.len(), appended.len(), "the reader saw every event");
    let distinct: HashSet<_> = seen.iter().map(|(_, id)| *id).collect();
    assert_eq!(
        distinct, appended,
        "exactly the appended events, none twice"
    );
    assert!(
        seen.iter()
            .enumerate()
            .all(|(i, (p, _))| *p == i as i64 + 1),
        "dense positions"
    );
    assert_eq!(
        read_all(&store).await,
        seen,
        "a second read gives the same order"
    );
    let report = store.verify().await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.verified, (TASKS * PER_TASK) as i64);
}

#[tokio::test]
async fn an_append_at_a_stale_version_is_a_conflict() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let (stream, ws) = new_stream();
    store
        .append(request(&stream, ws, 0, vec![event(1)]))
        .await
        .unwrap();

    for expected in [0, 2, 5] {
        let err = store
            .append(request(&stream, ws, expected, vec![event(2)]))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::WrongExpectedVersion { expected: e, .. } if e == expected),
            "expected {expected}: {err:?}"
        );
    }
    store
        .append(request(&stream, ws, 1, vec![event(2), event(3)]))
        .await
        .unwrap();
    let versions: Vec<i64> = store
        .read_stream(&stream)
        .await
        .unwrap()
        .iter()
        .map(|e| e.stream_version)
        .collect();
    assert_eq!(versions, vec![1, 2, 3]);
}

#[tokio::test]
async fn racing_writers_on_one_stream_never_both_win() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let (stream, ws) = new_stream();
    let attempts: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            let req = request(&stream, ws, 0, vec![event(i)]);
            tokio::spawn(async move { store.append(req).await })
        })
        .collect();
    let mut wins = 0;
    for a in attempts {
        match a.await.unwrap() {
            Ok(_) => wins += 1,
            Err(StoreError::WrongExpectedVersion { .. }) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(store.read_stream(&stream).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_appends_nothing() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let (stream, ws) = new_stream();
    let idem = |fingerprint: &str, outcome| Idempotency {
        scope: ws.to_string(),
        key: "key-1".into(),
        fingerprint: fingerprint.into(),
        outcome,
    };
    let mut first = request(&stream, ws, 0, vec![event(1)]);
    first.idempotency = Some(idem("create:a", json!({"id": 1})));
    assert!(matches!(
        store.append(first).await.unwrap(),
        AppendOutcome::Appended { .. }
    ));

    // The retry decided again on fresh state (version 1) and carries a different outcome.
    let mut retry = request(&stream, ws, 1, vec![event(2)]);
    retry.idempotency = Some(idem("create:a", json!({"id": 2})));
    assert_eq!(
        store.append(retry).await.unwrap(),
        AppendOutcome::Duplicate {
            outcome: json!({"id": 1})
        }
    );
    assert_eq!(store.read_stream(&stream).await.unwrap().len(), 1);

    let mut other = request(&stream, ws, 1, vec![event(3)]);
    other.idempotency = Some(idem("create:b", json!({})));
    assert!(matches!(
        store.append(other).await,
        Err(StoreError::IdempotencyKeyReused { .. })
    ));
}

#[tokio::test]
async fn an_idempotency_key_is_stored_as_the_digest_migration_0026_computes() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let (stream, ws) = new_stream();
    let key = "ana.personal@example.com";
    let mut first = request(&stream, ws, 0, vec![event(1)]);
    first.idempotency = Some(Idempotency {
        scope: ws.to_string(),
        key: key.into(),
        fingerprint: "f".into(),
        outcome: json!({}),
    });
    store.append(first).await.unwrap();
    let (stored, expected): (String, String) = sqlx::query_as(
        "SELECT key, 'sha256:' || encode(sha256(convert_to(
                    'adledger idempotency key' || E'\\n' || $1, 'UTF8')), 'hex')
           FROM idempotency_keys",
    )
    .bind(key)
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(stored, expected);
    assert!(!stored.contains("ana"));
}

#[tokio::test]
async fn concurrent_retries_with_one_key_append_once() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let store = store.clone();
            // Each retry decided a brand-new stream, as a create command with a fresh id would.
            let (stream, ws) = new_stream();
            let mut req = request(&stream, ws, 0, vec![event(i)]);
            req.idempotency = Some(Idempotency {
                scope: "global".into(),
                key: "same".into(),
                fingerprint: "f".into(),
                outcome: json!({ "stream": stream.as_str() }),
            });
            tokio::spawn(async move { store.append(req).await.unwrap() })
        })
        .collect();
    let mut appended = 0;
    for h in handles {
        if matches!(h.await.unwrap(), AppendOutcome::Appended { .. }) {
            appended += 1;
        }
    }
    assert_eq!(appended, 1);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn the_database_refuses_to_update_or_delete_events() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let (stream, ws) = new_stream();
    store
        .append(request(&stream, ws, 0, vec![event(1)]))
        .await
        .unwrap();
    db.settle(&store).await;

    // As the application role: no privilege at all.
    for sql in [
        "UPDATE events SET payload = '{}'",
        "DELETE FROM events",
        "TRUNCATE events",
        "UPDATE event_log SET hash = hash",
        "DELETE FROM event_log",
        "DELETE FROM idempotency_keys",
    ] {
        let err = store.pool().execute(sql).await.unwrap_err().to_string();
        assert!(err.contains("permission denied"), "{sql}: {err}");
    }
    // As the owner: the trigger still refuses.
    let mut owner = db.owner().await;
    for sql in [
        "UPDATE events SET payload = '{}'",
        "DELETE FROM events",
        "TRUNCATE event_log",
    ] {
        let err = owner.execute(sql).await.unwrap_err().to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    assert!(store.verify().await.unwrap().ok());
}

#[tokio::test]
async fn verify_finds_an_event_altered_behind_the_applications_back() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let (stream, ws) = new_stream();
    for v in 0..10 {
        store
            .append(request(&stream, ws, v, vec![event(v as u64)]))
            .await
            .unwrap();
    }
    db.settle(&store).await;
    assert!(store.verify().await.unwrap().ok());

    let victim = store.read_stream(&stream).await.unwrap()[6].clone();
    let mut owner = db.owner().await;
    owner
        .execute("SET session_replication_role = replica")
        .await
        .unwrap();
    sqlx::query("UPDATE events SET payload = jsonb_set(payload, '{name}', '\"forged\"') WHERE event_id = $1")
        .bind(victim.event_id.as_uuid())
        .execute(&mut owner)
        .await
        .unwrap();

    let report = store.verify().await.unwrap();
    let broken = report.first_broken.expect("tampering must be found");
    assert_eq!(broken.position, victim.position.unwrap());
    assert!(broken.reason.contains("hash mismatch"), "{}", broken.reason);
    assert_eq!(report.verified, victim.position.unwrap() - 1);
}

#[tokio::test]
async fn verify_finds_a_deleted_event() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let (stream, ws) = new_stream();
    for v in 0..5 {
        store
            .append(request(&stream, ws, v, vec![event(v as u64)]))
            .await
            .unwrap();
    }
    db.settle(&store).await;
    let mut owner = db.owner().await;
    owner
        .execute("SET session_replication_role = replica")
        .await
        .unwrap();
    owner
        .execute("DELETE FROM events WHERE stream_version = 3")
        .await
        .unwrap();
    let broken = store.verify().await.unwrap().first_broken.unwrap();
    assert_eq!(broken.position, 3);
    assert!(broken.reason.contains("missing"), "{}", broken.reason);
}

#[tokio::test]
async fn an_open_transaction_holds_back_later_events_instead_of_letting_them_skip_ahead() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let (slow_stream, ws) = new_stream();
    let (fast_stream, ws2) = new_stream();

    // A slow writer inserts inside a transaction and does not commit yet.
    let mut slow = db.db.app.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO events (event_id, stream_id, stream_type, stream_version, workspace_id,
           event_type, schema_version, payload, metadata, occurred_at)
         VALUES ($1, $2, 'workspace', 1, $3, 'WorkspaceCreated', 1, '{}', '{}', now())",
    )
    .bind(Uuid::now_v7())
    .bind(slow_stream.as_str())
    .bind(ws.as_uuid())
    .execute(&mut *slow)
    .await
    .unwrap();

    // A fast writer commits after it; its event must wait for the slow one.
    store
        .append(request(&fast_stream, ws2, 0, vec![event(1)]))
        .await
        .unwrap();
    assert_eq!(
        store.sequence_all().await.unwrap(),
        0,
        "nothing is settled yet"
    );

    slow.commit().await.unwrap();
    assert_eq!(db.settle(&store).await, 2);
    let order: Vec<String> = store
        .read_log(&LogFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.stream_id.to_string())
        .collect();
    assert_eq!(
        order,
        vec![slow_stream.to_string(), fast_stream.to_string()]
    );
}

#[tokio::test]
async fn a_stored_v1_event_is_upcast_on_read() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let (_, ws) = new_stream();
    let campaign = StreamId::new(StreamType::Campaign, Uuid::new_v4());
    let v1 = NewEvent {
        event_id: EventId(Uuid::now_v7()),
        event_type: "DailyInsightsRecorded".into(),
        schema_version: 1,
        payload: json!({
            "campaign_id": Uuid::new_v4(), "connection_id": Uuid::new_v4(),
            "platform": "sandbox", "ad_account_id": "sandbox-1", "sync_id": Uuid::new_v4(),
            "date": "2024-01-01", "currency": "USD", "impressions": 1000, "clicks": 42,
            "spend_micros": 12_340_000, "conversions": "3", "conversion_value": "150.5",
            "revision": 1
        }),
        occurred_at: Utc::now(),
    };
    let mut req = request(&campaign, ws, 0, vec![v1]);
    req.stream_type = "campaign";
    store.append(req).await.unwrap();

    let stored = &store.read_stream(&campaign).await.unwrap()[0];
    assert_eq!(
        stored.schema_version, 1,
        "the stored event is never rewritten"
    );
    assert!(stored.payload.get("spend_micros").is_some());
    let adledger_domain::DomainEvent::DailyInsightsRecorded(e) = stored.decode().unwrap() else {
        panic!("wrong type")
    };
    assert_eq!(e.metrics.spend.to_string(), "12.34");
}

#[tokio::test]
async fn reads_filter_by_workspace_stream_and_position_range() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let (a, wa) = new_stream();
    let (b, wb) = new_stream();
    for v in 0..3 {
        store
            .append(request(&a, wa, v, vec![event(1)]))
            .await
            .unwrap();
        store
            .append(request(&b, wb, v, vec![event(2)]))
            .await
            .unwrap();
    }
    db.settle(&store).await;
    let only_b = store
        .read_log(&LogFilter {
            workspace_id: Some(wb),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(only_b.len(), 3);
    assert!(only_b.iter().all(|e| e.workspace_id == wb));
    let window = store
        .read_log(&LogFilter {
            after: 2,
            up_to: Some(4),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        window
            .iter()
            .map(|e| e.position.unwrap())
            .collect::<Vec<_>>(),
        vec![3, 4]
    );
    let stream_a = store
        .read_log(&LogFilter {
            stream_id: Some(a.clone()),
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(stream_a.len(), 2);
    assert!(stream_a.iter().all(|e| e.stream_id == a));
}
