//! The sequencer gives settled events their dense, gapless log position and chain hash.
//!
//! An event is *settled* when its transaction id is below the xmin of the current snapshot: no
//! transaction that could still commit has a lower id, so nothing can ever appear before it. Events
//! are taken in `(tx_id, id)` order, which is therefore final. One sequencer works at a time
//! (transaction-level advisory lock); it never skips ahead over an unsettled event and never
//! waits on a timeout to declare a gap. In the same transaction it extends the Merkle tree
//! (`tree.rs`) by one leaf per positioned event, so the tree always has exactly the log's size
//! once committed; a log that predates the tree is caught up first, a batch at a time.

use super::canonical::{to_array, CanonicalEvent, COLUMNS, GENESIS};
use super::{tree, EventStore, StoreError};
use crate::shutdown::Shutdown;
use std::time::Duration;
use uuid::Uuid;

const SEQUENCER_LOCK: i64 = 0x6164_6c65_6467_0002;
/// How often to look for events appended by other processes when nothing local wakes us.
const POLL_INTERVAL: Duration = Duration::from_millis(25);
pub const BATCH: i64 = 5_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sequenced {
    pub count: usize,
    pub head: i64,
    /// The call only extended the tree over positions the log already had (a database that
    /// predates the tree), and sequenced nothing: call again at once.
    pub tree_catch_up: bool,
}

impl EventStore {
    /// Sequences up to `max` settled events. Returns at once with a count of 0 when another
    /// sequencer holds the lock.
    pub async fn sequence_pending(&self, max: i64) -> Result<Sequenced, StoreError> {
        let mut tx = self.pool.begin().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(SEQUENCER_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            tx.commit().await?;
            return Ok(Sequenced {
                count: 0,
                head: *self.head.borrow(),
                tree_catch_up: false,
            });
        }
        let last: Option<(i64, Vec<u8>, String, i64)> = sqlx::query_as(
            "SELECT l.position, l.hash, e.tx_id::text, e.id
             FROM event_log l JOIN events e ON e.id = l.event_row_id
             ORDER BY l.position DESC LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let (mut position, mut previous, cursor_tx, cursor_id) = match last {
            Some((p, h, t, i)) => (
                p,
                to_array(&h).ok_or_else(|| StoreError::Corrupt(format!("hash at {p}")))?,
                t,
                i,
            ),
            None => (0, GENESIS, "0".to_owned(), 0),
        };
        let tree_size = match self.merkle_tree {
            true => tree::size(&mut tx).await?,
            false => position as u64,
        };
        if tree_size != position as u64 {
            if tree_size > position as u64 {
                return Err(StoreError::Corrupt(format!(
                    "the merkle tree has {tree_size} leaves but the log only {position} positions"
                )));
            }
            let mut frontier = tree::frontier(&mut tx, tree_size).await?;
            let added = tree::catch_up(&mut tx, &mut frontier, max).await?;
            tx.commit().await?;
            tracing::info!(
                added,
                leaves = frontier.size(),
                head = position,
                "merkle tree catching up"
            );
            return Ok(Sequenced {
                count: 0,
                head: position,
                tree_catch_up: true,
            });
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM events e
             WHERE (e.tx_id, e.id) > ($1::text::xid8, $2)
               AND e.tx_id < pg_snapshot_xmin(pg_current_snapshot())
             ORDER BY e.tx_id, e.id LIMIT $3"
        );
        let rows: Vec<CanonicalEvent> = sqlx::query_as(&sql)
            .bind(&cursor_tx)
            .bind(cursor_id)
            .bind(max)
            .fetch_all(&mut *tx)
            .await?;
        if rows.is_empty() {
            // Ended here, not dropped: a dropped transaction is rolled back only when its pooled
            // connection is next used, and until then it keeps the lock, so the next call (on
            // another connection) would find it taken and report nothing to do.
            tx.commit().await?;
            return Ok(Sequenced {
                count: 0,
                head: position,
                tree_catch_up: false,
            });
        }
        let mut frontier = match self.merkle_tree {
            true => Some(tree::frontier(&mut tx, tree_size).await?),
            false => None,
        };
        let mut positions = Vec::with_capacity(rows.len());
        let mut row_ids = Vec::with_capacity(rows.len());
        let mut workspaces: Vec<Uuid> = Vec::with_capacity(rows.len());
        let mut hashes: Vec<Vec<u8>> = Vec::with_capacity(rows.len());
        let mut chain = Vec::with_capacity(rows.len());
        for event in &rows {
            position += 1;
            previous = event.chain_hash(&previous, position);
            positions.push(position);
            row_ids.push(event.row_id);
            workspaces.push(event.workspace_id);
            hashes.push(previous.to_vec());
            chain.push(previous);
        }
        sqlx::query(
            "INSERT INTO event_log (position, event_row_id, workspace_id, hash)
             SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::uuid[], $4::bytea[])",
        )
        .bind(&positions)
        .bind(&row_ids)
        .bind(&workspaces)
        .bind(&hashes)
        .execute(&mut *tx)
        .await?;
        if let Some(frontier) = &mut frontier {
            tree::append(&mut tx, frontier, &chain).await?;
        }
        tx.commit().await?;
        self.head.send_replace(position);
        Ok(Sequenced {
            count: rows.len(),
            head: position,
            tree_catch_up: false,
        })
    }

    /// Refuses a database whose next transaction id is not above every one the log recorded:
    /// the log restored into another cluster, which counts transactions from the start again.
    /// New events would sort before the sequenced ones and never be sequenced; the fix is to
    /// move the cluster's epoch past the log's (`pg_resetwal -e`, see docs/runbooks.md, "Backup
    /// and restore") before anything writes.
    pub async fn check_transaction_ids(&self) -> Result<(), StoreError> {
        let (newest, next): (Option<String>, String) = sqlx::query_as(
            "SELECT (SELECT max(tx_id) FROM events)::text,
                    pg_snapshot_xmax(pg_current_snapshot())::text",
        )
        .fetch_one(&self.pool)
        .await?;
        let parse = |raw: &str| {
            raw.parse::<u64>()
                .map_err(|_| StoreError::Corrupt(format!("transaction id {raw:?}")))
        };
        let Some(newest) = newest else {
            return Ok(());
        };
        let (newest, next) = (parse(&newest)?, parse(&next)?);
        if next > newest {
            return Ok(());
        }
        Err(StoreError::TransactionIdsBehind {
            newest,
            next,
            epoch: (newest >> 32) + 1,
        })
    }

    /// Sequences every event committed so far, waiting (up to `wait`) while another transaction
    /// of the cluster holds some back: a one-shot command (the demo, a rebuild) must not end with
    /// its own writes unplaced, as [`EventStore::sequence_all`] alone may. Past `wait`, says who
    /// holds them.
    pub async fn sequence_committed(&self, wait: Duration) -> Result<i64, StoreError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let head = self.sequence_all().await?;
            let left = self.unsequenced().await?;
            if left.count == 0 {
                return Ok(head);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::HeldBack {
                    count: left.count,
                    holder: self
                        .settle_horizon()
                        .await?
                        .holder
                        .map_or_else(|| "a transaction that ended since".into(), |h| h.describe()),
                    waited_secs: wait.as_secs(),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Sequences until nothing settled is left (used by one-shot commands and tests).
    pub async fn sequence_all(&self) -> Result<i64, StoreError> {
        loop {
            let done = self.sequence_pending(BATCH).await?;
            if (done.count as i64) < BATCH && !done.tree_catch_up {
                return Ok(done.head);
            }
        }
    }
}

/// Runs the sequencer until shutdown: immediately after local appends, otherwise on a short poll.
pub async fn run(store: EventStore, mut shutdown: Shutdown) {
    tracing::info!("sequencer started");
    loop {
        match store.sequence_pending(BATCH).await {
            Ok(done) if done.count as i64 == BATCH || done.tree_catch_up => continue,
            Ok(done) if done.count > 0 => {
                tracing::debug!(sequenced = done.count, head = done.head, "sequenced events")
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "sequencing failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.wait() => break,
                }
            }
        }
        tokio::select! {
            _ = store.appended() => {}
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
            _ = shutdown.wait() => break,
        }
    }
    tracing::info!("sequencer stopped");
}
