//! The log's Merkle tree (migration 0015) against a real Postgres: built by the sequencer in the
//! positions' transaction, caught up on a database that predates it, append-only, and every
//! proof it serves checks against `infra::merkle` over the chain hashes in `event_log`.

use adledger_domain::{EventId, EventMetadata, StreamId, StreamType, WorkspaceId};
use adledger_infra::merkle::{self, Hash};
use adledger_infra::testing::TestDatabase;
use adledger_infra::{AppendRequest, EventStore, NewEvent};
use chrono::Utc;
use serde_json::json;
use sqlx::Executor;
use uuid::Uuid;

async fn append(store: &EventStore, events: u64) {
    let ws = WorkspaceId(Uuid::now_v7());
    let stream = StreamId::new(StreamType::Workspace, ws.0);
    for v in 0..events {
        store
            .append(AppendRequest {
                stream_id: stream.clone(),
                stream_type: "workspace",
                workspace_id: ws,
                expected_version: v as i64,
                metadata: serde_json::to_value(EventMetadata::system("test", Uuid::now_v7()))
                    .unwrap(),
                events: vec![NewEvent {
                    event_id: EventId(Uuid::now_v7()),
                    event_type: "WorkspaceCreated".into(),
                    schema_version: 1,
                    payload: json!({ "workspace_id": ws.0, "name": format!("event {v}") }),
                    occurred_at: Utc::now(),
                }],
                idempotency: None,
            })
            .await
            .unwrap();
    }
}

/// The leaves as the log defines them: `leaf_hash(chain hash)` in position order.
async fn leaves(store: &EventStore) -> Vec<Hash> {
    let rows: Vec<Vec<u8>> = sqlx::query_scalar("SELECT hash FROM event_log ORDER BY position")
        .fetch_all(store.pool())
        .await
        .unwrap();
    rows.iter()
        .map(|h| merkle::leaf_hash(&<Hash>::try_from(h.as_slice()).unwrap()))
        .collect()
}

async fn check_every_proof(store: &EventStore) {
    let leaves = leaves(store).await;
    let n = leaves.len() as u64;
    let head = store.tree_head().await.unwrap();
    assert_eq!(head.size, n);
    assert_eq!(head.root, merkle::root(&leaves));
    for size in 1..=n {
        let root = store.tree_head_at(size).await.unwrap().unwrap().root;
        assert_eq!(root, merkle::root(&leaves[..size as usize]), "size {size}");
        for position in 1..=size {
            let proof = store
                .inclusion_proof(position, size)
                .await
                .unwrap()
                .unwrap();
            let leaf = &leaves[position as usize - 1];
            merkle::verify_inclusion(leaf, position - 1, size, &proof, &root).unwrap();
        }
        let proof = store
            .consistency_proof(size / 2, size)
            .await
            .unwrap()
            .unwrap();
        let old = merkle::root(&leaves[..(size / 2) as usize]);
        merkle::verify_consistency(size / 2, size, &old, &root, &proof).unwrap();
    }
    assert_eq!(store.inclusion_proof(0, n).await.unwrap(), None);
    assert_eq!(store.inclusion_proof(n + 1, n + 1).await.unwrap(), None);
    assert_eq!(store.consistency_proof(1, n + 1).await.unwrap(), None);
    assert_eq!(store.tree_head_at(n + 1).await.unwrap(), None);
}

async fn node_count(store: &EventStore) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM merkle_nodes")
        .fetch_one(store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn the_sequencer_grows_the_tree_with_the_log_and_every_proof_checks() {
    let db = TestDatabase::new().await;
    let store = db.store();
    // Batches of odd sizes, so that the stored frontier is reloaded mid-subtree.
    for batch in [1, 2, 5, 3, 8, 4] {
        append(&store, batch).await;
        while store.sequence_pending(3).await.unwrap().count > 0 {}
        // Whatever another test's open transaction held back.
        db.settle(&store).await;
    }
    check_every_proof(&store).await;
    // About two rows per event: 2n minus one per set bit of n.
    assert_eq!(node_count(&store).await, 2 * 23 - 4);
}

#[tokio::test]
async fn a_log_that_predates_the_tree_gets_its_tree_built() {
    let db = TestDatabase::new().await;
    let store = db.store();
    append(&store, 12).await;
    db.settle(&store).await;
    // As if the log had been written before migration 0015: no tree at all.
    let mut owner = db.owner().await;
    owner
        .execute("SET session_replication_role = replica")
        .await
        .unwrap();
    owner.execute("DELETE FROM merkle_nodes").await.unwrap();
    assert_eq!(node_count(&store).await, 0);
    // New events wait until the tree has caught up with the old ones, a batch at a time.
    append(&store, 3).await;
    let first = store.sequence_pending(5).await.unwrap();
    assert_eq!(
        (first.count, first.head, first.tree_catch_up),
        (0, 12, true)
    );
    // (`settle`: another test's open transaction on the shared cluster may hold new events back.)
    assert_eq!(db.settle(&store).await, 15);
    check_every_proof(&store).await;
}

#[tokio::test]
async fn the_database_refuses_to_change_the_tree() {
    let db = TestDatabase::new().await;
    let store = db.store();
    append(&store, 3).await;
    db.settle(&store).await;
    for sql in [
        "UPDATE merkle_nodes SET hash = hash",
        "DELETE FROM merkle_nodes",
        "TRUNCATE merkle_nodes",
    ] {
        let err = store.pool().execute(sql).await.unwrap_err().to_string();
        assert!(
            err.contains("permission denied") || err.contains("append-only"),
            "{sql}: {err}"
        );
        let mut owner = db.owner().await;
        let err = owner.execute(sql).await.unwrap_err().to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
}

#[tokio::test]
async fn verify_recomputes_the_tree_and_holds_it_to_every_checkpoint_and_the_stored_nodes() {
    let db = TestDatabase::new().await;
    let store = db.store();
    append(&store, 9).await;
    assert_eq!(db.settle(&store).await, 9);
    let all = leaves(&store).await;
    // A checkpoint whose root the log gives checks; a forged one (a row an attacker inserted
    // with another root for size 5) is named, at the event that completes that size.
    let good = merkle::root(&all[..3]);
    let forged = merkle::root(&all[..4]);
    for (size, root) in [(3i64, good), (5, forged)] {
        sqlx::query(
            "INSERT INTO checkpoints (tree_size, root, note, key_name, key_id)
             VALUES ($1, $2, 'note', 'test', '00000000')",
        )
        .bind(size)
        .bind(root.to_vec())
        .execute(store.pool())
        .await
        .unwrap();
    }
    let report = store.verify().await.unwrap();
    let broken = report.first_broken.expect("the forged checkpoint is found");
    assert_eq!(broken.position, 5, "{broken:?}");
    assert!(
        broken.reason.contains("signed checkpoint of tree size 5"),
        "{broken:?}"
    );

    // A stored node changed behind the triggers' back: the stored tree's head no longer
    // matches the chain (a clean log with only this fault, in a second database).
    let db = TestDatabase::new().await;
    let store = db.store();
    append(&store, 6).await;
    assert_eq!(db.settle(&store).await, 6);
    assert!(store.verify().await.unwrap().ok());
    let mut owner = db.owner().await;
    owner
        .execute("SET session_replication_role = replica")
        .await
        .unwrap();
    owner
        .execute("UPDATE merkle_nodes SET hash = sha256(hash) WHERE level = 2 AND idx = 0")
        .await
        .unwrap();
    let broken = store.verify().await.unwrap().first_broken.expect("found");
    assert_eq!(broken.position, 6, "{broken:?}");
    assert!(
        broken.reason.contains("stored Merkle tree of tree size 6"),
        "{broken:?}"
    );
}
