//! `adledger bench --proofs`: what the Merkle tree and its proofs cost, each figure beside its
//! baseline from the same run: sequencing with and without the tree, proof size and verification
//! time in a tree of 10M leaves (in memory) against the bare SHA-256 node hashes it consists of,
//! and audit-package export and offline verification against a plain read of the same events.

use adledger_domain::WorkspaceId;
use adledger_infra::audit_package;
use adledger_infra::checkpoint::{CheckpointKeys, Checkpointer};
use adledger_infra::event_store::PackageRange;
use adledger_infra::merkle::{self, Hash, NodeId};
use adledger_infra::{EventStore, LogFilter};
use futures_util::StreamExt;
use std::time::Instant;

/// Waits until every appended event is settled (no transaction in the cluster can still commit
/// below it), so that a timed sequencing measures sequencing, not someone else's open transaction.
async fn settled(store: &EventStore) -> anyhow::Result<()> {
    loop {
        let settled: Option<bool> = sqlx::query_scalar(
            "SELECT max(tx_id) < pg_snapshot_xmin(pg_current_snapshot()) FROM events",
        )
        .fetch_one(store.pool())
        .await?;
        if settled.unwrap_or(true) {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// One timed round: `events` appended with no sequencer running, left to settle, then sequenced
/// by `sequencer`. Returns how many it sequenced and (sequencing rate, append + sequencing rate).
async fn round(
    store: &EventStore,
    sequencer: &EventStore,
    events: u64,
) -> anyhow::Result<(i64, (f64, f64))> {
    let append = Instant::now();
    crate::bench::append_batched(store, events).await?;
    let append = append.elapsed().as_secs_f64();
    settled(store).await?;
    let before = store.head_position().await?;
    let started = Instant::now();
    let head = sequencer.sequence_all().await?;
    let secs = started.elapsed().as_secs_f64();
    let sequenced = (head - before) as f64;
    Ok((
        head - before,
        (sequenced / secs, sequenced / (append + secs)),
    ))
}

/// Sequencing rounds, alternating without and with the tree, `events` each.
pub async fn sequencing(store: &EventStore, events: u64, rounds: u32) -> anyhow::Result<()> {
    let baseline = store.without_merkle_tree();
    let (mut without, mut with, mut catch_up) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        // Without: a backlog appended with no sequencer running, then sequenced.
        let (sequenced, rates) = round(store, &baseline, events).await?;
        without.push(rates);
        // The tree then catches up on that backlog (what an upgraded database does once).
        let started = Instant::now();
        store.sequence_all().await?;
        catch_up.push(sequenced as f64 / started.elapsed().as_secs_f64());
        // With: the same again, the tree built in the sequencer's transaction.
        let (_, rates) = round(store, store, events).await?;
        with.push(rates);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let show = |v: &[(f64, f64)], pick: fn(&(f64, f64)) -> f64| {
        v.iter()
            .map(|x| format!("{:.0}", pick(x)))
            .collect::<Vec<_>>()
            .join("/")
    };
    println!("tree_rounds={rounds} tree_round_events={events}");
    println!(
        "sequence_without_tree_events_per_sec={}",
        show(&without, |x| x.0)
    );
    println!("sequence_with_tree_events_per_sec={}", show(&with, |x| x.0));
    let (w, wo) = (
        median(with.iter().map(|x| x.0).collect()),
        median(without.iter().map(|x| x.0).collect()),
    );
    println!("sequence_with_over_without_tree_median_ratio={:.2}", w / wo);
    println!(
        "append_and_sequence_without_tree_events_per_sec={}",
        show(&without, |x| x.1)
    );
    println!(
        "append_and_sequence_with_tree_events_per_sec={}",
        show(&with, |x| x.1)
    );
    let (w, wo) = (
        median(with.iter().map(|x| x.1).collect()),
        median(without.iter().map(|x| x.1).collect()),
    );
    println!(
        "append_and_sequence_with_over_without_tree_median_ratio={:.2}",
        w / wo
    );
    println!(
        "tree_catch_up_leaves_per_sec={}",
        catch_up
            .iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join("/")
    );
    let nodes: i64 = sqlx::query_scalar("SELECT count(*) FROM merkle_nodes")
        .fetch_one(store.pool())
        .await?;
    let head = store.head_position().await?;
    println!(
        "merkle_nodes_per_event={:.3}",
        nodes as f64 / head.max(1) as f64
    );
    let sizes: (i64, i64) = sqlx::query_as(
        "SELECT pg_total_relation_size('merkle_nodes'), pg_total_relation_size('event_log')",
    )
    .fetch_one(store.pool())
    .await?;
    println!(
        "merkle_nodes_bytes_per_event={:.0} event_log_bytes_per_event={:.0}",
        sizes.0 as f64 / head.max(1) as f64,
        sizes.1 as f64 / head.max(1) as f64
    );
    Ok(())
}

/// Proof sizes and verification times in an in-memory tree of `leaves` leaves.
pub fn in_memory(leaves: u64, samples: u64) {
    let started = Instant::now();
    // Level 0 is computed on demand; every level above is kept (≈ 32 bytes × leaves).
    let leaf = |i: u64| merkle::leaf_hash(&i.to_be_bytes());
    let mut levels: Vec<Vec<Hash>> = Vec::new();
    let mut below: Vec<Hash> = (0..leaves / 2)
        .map(|i| merkle::node_hash(&leaf(2 * i), &leaf(2 * i + 1)))
        .collect();
    while !below.is_empty() {
        let above: Vec<Hash> = below
            .chunks_exact(2)
            .map(|pair| merkle::node_hash(&pair[0], &pair[1]))
            .collect();
        levels.push(below);
        below = above;
    }
    let node = |id: NodeId| -> Option<Hash> {
        match id.level {
            0 => Some(leaf(id.index)),
            l => levels.get(l as usize - 1)?.get(id.index as usize).copied(),
        }
    };
    let root = merkle::assemble(&vec![merkle::head_plan(leaves)], node)
        .and_then(|r| r.first().copied())
        .unwrap_or_default();
    println!(
        "tree_leaves={leaves} tree_build_secs={:.1}",
        started.elapsed().as_secs_f64()
    );

    // Spread indices over the tree (a multiplicative walk), one proof each.
    let index = |k: u64| (k.wrapping_mul(0x9E37_79B9_7F4A_7C15)) % leaves;
    let proofs: Vec<(u64, Vec<Hash>)> = (0..samples)
        .filter_map(|k| {
            let i = index(k);
            let plan = merkle::inclusion_plan(i, leaves)?;
            Some((i, merkle::assemble(&plan, node)?))
        })
        .collect();
    let hashes: usize = proofs.iter().map(|(_, p)| p.len()).sum();
    let mean = hashes as f64 / proofs.len().max(1) as f64;
    println!(
        "inclusion_proof_hashes_mean={mean:.1} inclusion_proof_bytes_mean={:.0} inclusion_proof_base64_json_bytes_mean={:.0}",
        mean * 32.0,
        mean * 47.0
    );
    let started = Instant::now();
    let mut ok = 0;
    for (i, proof) in &proofs {
        ok += merkle::verify_inclusion(&leaf(*i), *i, leaves, proof, &root).is_ok() as u64;
    }
    let verify_us = started.elapsed().as_secs_f64() * 1e6 / proofs.len().max(1) as f64;
    assert_eq!(ok, proofs.len() as u64, "an honest proof failed");
    // The ceiling: the node hashes a verification consists of, and nothing else.
    let started = Instant::now();
    let mut acc = root;
    for _ in 0..hashes {
        acc = merkle::node_hash(&acc, &root);
    }
    std::hint::black_box(acc);
    let hashes_us = started.elapsed().as_secs_f64() * 1e6 / proofs.len().max(1) as f64;
    println!(
        "inclusion_verify_us={verify_us:.2} bare_node_hashes_us={hashes_us:.2} ratio={:.2}",
        verify_us / hashes_us
    );

    let old = leaves / 3 + 1;
    if let Some(proof) =
        merkle::consistency_plan(old, leaves).and_then(|p| merkle::assemble(&p, node))
    {
        let old_root = merkle::assemble(&vec![merkle::head_plan(old)], node)
            .and_then(|r| r.first().copied())
            .unwrap_or_default();
        let started = Instant::now();
        let runs = 10_000;
        for _ in 0..runs {
            std::hint::black_box(merkle::verify_consistency(
                old, leaves, &old_root, &root, &proof,
            ))
            .ok();
        }
        println!(
            "consistency_proof_hashes={} consistency_verify_us={:.2}",
            proof.len(),
            started.elapsed().as_secs_f64() * 1e6 / runs as f64
        );
    }
}

/// Export and offline verification of the largest workspace's package, beside a plain read of
/// the same events (the events API's NDJSON) and the log's chain verification.
pub async fn packages(store: &EventStore) -> anyhow::Result<()> {
    let (workspace, events): (uuid::Uuid, i64) = sqlx::query_as(
        "SELECT workspace_id, count(*) FROM event_log GROUP BY 1 ORDER BY 2 DESC LIMIT 1",
    )
    .fetch_one(store.pool())
    .await?;
    let (skey, vkey) = CheckpointKeys::generate("bench/log")?;
    let signer = Checkpointer::new(CheckpointKeys::parse(&skey)?, "bench/log")?;
    let checkpoint = store.checkpoint(&signer).await?;
    let range = PackageRange {
        workspace: WorkspaceId(workspace),
        from: None,
        to: None,
    };

    let started = Instant::now();
    let mut package = Vec::new();
    let mut lines = std::pin::pin!(store.package(range, checkpoint));
    while let Some(chunk) = lines.next().await {
        package.extend_from_slice(&chunk?);
    }
    let export = started.elapsed().as_secs_f64();

    // The peer: the same events read and written as NDJSON without proofs.
    let started = Instant::now();
    let mut plain = Vec::new();
    let mut filter = LogFilter {
        workspace_id: Some(WorkspaceId(workspace)),
        limit: 1_000,
        ..Default::default()
    };
    loop {
        let page = store.read_log(&filter).await?;
        let Some(last) = page.last().and_then(|e| e.position) else {
            break;
        };
        for event in &page {
            serde_json::to_writer(&mut plain, event)?;
            plain.push(b'\n');
        }
        filter.after = last;
    }
    let read = started.elapsed().as_secs_f64();
    println!(
        "package_events={events} package_bytes_per_event={:.0} plain_ndjson_bytes_per_event={:.0}",
        package.len() as f64 / events as f64,
        plain.len() as f64 / events as f64
    );
    println!(
        "audit_export_events_per_sec={:.0} plain_read_events_per_sec={:.0} ratio={:.2}",
        events as f64 / export,
        events as f64 / read,
        read / export
    );

    let started = Instant::now();
    let verified = audit_package::verify(package.as_slice(), &[vkey], || {})?;
    let offline = started.elapsed().as_secs_f64();
    anyhow::ensure!(verified.events == events as u64, "the package lost events");
    let started = Instant::now();
    let report = store.verify().await?;
    let chain = started.elapsed().as_secs_f64();
    println!(
        "audit_verify_offline_events_per_sec={:.0} chain_verify_in_database_events_per_sec={:.0}",
        events as f64 / offline,
        report.verified as f64 / chain
    );
    Ok(())
}
