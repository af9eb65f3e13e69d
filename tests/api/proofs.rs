//! Checkpoints and proofs as an outside auditor checks them: the served checkpoint opened with
//! the published keys, then every inclusion proof and a consistency proof verified with
//! `infra::merkle` against it, never against what the server says the root is.

use crate::helpers::{assert_problem, invalid_fields, spawn_app, TestApp, CHECKPOINT_ORIGIN};
use adledger_infra::checkpoint::{self, Checkpoint};
use adledger_infra::merkle::{self, Hash};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;

fn hash(value: &Value) -> Hash {
    STANDARD
        .decode(value.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

/// The published keys and the current checkpoint, opened with them (no credentials needed).
async fn checkpoint(app: &TestApp) -> (String, Checkpoint) {
    let keys = app
        .client
        .get(app.url("/.well-known/adledger/checkpoint-keys"))
        .send()
        .await
        .unwrap();
    assert_eq!(keys.status(), 200);
    let keys: Vec<String> = keys
        .text()
        .await
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(keys.len(), 1);
    let r = app
        .client
        .get(app.url("/v1/log/checkpoint"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let note = r.text().await.unwrap();
    let (opened, signers) = checkpoint::open(&note, &keys).unwrap();
    assert_eq!(opened.origin, CHECKPOINT_ORIGIN);
    assert_eq!(signers.len(), 1);
    (note, opened)
}

#[tokio::test]
async fn every_event_is_proven_in_the_signed_checkpoint_and_checkpoints_are_consistent() {
    let app = spawn_app().await;
    let ws = app.workspace("Proofs").await;
    let events = app.events(&ws, "").await;
    let (note, first) = checkpoint(&app).await;
    assert!(first.size >= events.len() as u64);
    // Asking again while the log has not grown signs nothing new.
    assert_eq!(checkpoint(&app).await.0, note);

    for position in 1..=first.size {
        let proof = app
            .get_json(&format!(
                "/v1/log/proofs/inclusion?position={position}&tree_size={}",
                first.size
            ))
            .await;
        let chain = hash(&proof["chain_hash"]);
        let leaf = merkle::leaf_hash(&chain);
        assert_eq!(hash(&proof["leaf_hash"]), leaf);
        let path: Vec<Hash> = proof["hashes"]
            .as_array()
            .unwrap()
            .iter()
            .map(hash)
            .collect();
        merkle::verify_inclusion(&leaf, position - 1, first.size, &path, &first.root).unwrap();
        // The leaf is the chain hash the events API shows for the workspace's own events.
        if let Some(event) = events.iter().find(|e| e["position"] == position) {
            assert_eq!(hex::encode(chain), event["hash"].as_str().unwrap());
        }
    }

    app.workspace("Later").await;
    // Checkpoints are signed at most once a second on demand.
    tokio::time::sleep(adledger_infra::event_store::checkpoints::COALESCE).await;
    let (_, second) = checkpoint(&app).await;
    assert!(second.size > first.size);
    let proof = app
        .get_json(&format!(
            "/v1/log/proofs/consistency?from={}&to={}",
            first.size, second.size
        ))
        .await;
    let hashes: Vec<Hash> = proof["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(hash)
        .collect();
    merkle::verify_consistency(first.size, second.size, &first.root, &second.root, &hashes)
        .unwrap();
    // A proof is checked against the checkpoints, not against what it says of itself.
    let forged = [second.root];
    assert!(merkle::verify_consistency(
        first.size,
        second.size,
        &first.root,
        &second.root,
        &forged
    )
    .is_err());
}

#[tokio::test]
async fn bad_or_out_of_range_numbers_are_refused_with_a_422_naming_them() {
    let app = spawn_app().await;
    app.workspace("Bounds").await;
    let (_, head) = checkpoint(&app).await;
    let n = head.size;
    for (query, field) in [
        ("inclusion?position=0&tree_size=1", "position"),
        ("inclusion?position=-3&tree_size=1", "position"),
        ("inclusion?position=2&tree_size=1", "tree_size"),
        (
            &*format!("inclusion?position=1&tree_size={}", n + 1),
            "tree_size",
        ),
        (
            "inclusion?position=1&tree_size=9223372036854775807",
            "tree_size",
        ),
        ("consistency?from=-1&to=1", "from"),
        ("consistency?from=2&to=1", "to"),
        (&*format!("consistency?from=1&to={}", n + 1), "to"),
    ] {
        let r = app.get(&format!("/v1/log/proofs/{query}")).await;
        let (_, fields) = invalid_fields(r).await;
        assert_eq!(fields, vec![field.to_owned()], "{query}");
    }
    for query in [
        "inclusion?position=abc&tree_size=1",
        "inclusion?tree_size=1",
        "inclusion?position=1&tree_size=99999999999999999999999",
        "consistency?from=1",
    ] {
        let r = app.get(&format!("/v1/log/proofs/{query}")).await;
        assert_problem(r, 422, "validation-failed").await;
    }
    // The whole tree and the empty one are valid ends.
    let whole = app
        .get_json(&format!("/v1/log/proofs/consistency?from=0&to={n}"))
        .await;
    assert_eq!(whole["hashes"], serde_json::json!([]));
    let r = app
        .client
        .get(app.url("/v1/log/proofs/inclusion?position=1&tree_size=1"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 401, "unauthenticated").await;
}
