//! Issued checkpoints (`checkpoints`, migration 0015): at most one per tree size, and on demand
//! at most one a second (a newer one is answered with the latest), so no caller can make the
//! server sign in a loop, even while the log grows; a scheduled leader issues one when the tree
//! has grown. Signing itself is `crate::checkpoint`.

use super::{EventStore, StoreError};
use crate::checkpoint::Checkpointer;
use crate::leader::LeaderLock;
use crate::merkle::Hash;
use crate::shutdown::Shutdown;
use chrono::{DateTime, Utc};
use std::time::Duration;

const LOCK_CLASS: i32 = 0x6164_6c05;

/// A checkpoint issued this recently is the answer to "the current checkpoint".
pub const COALESCE: Duration = Duration::from_secs(1);

/// A checkpoint as issued and kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCheckpoint {
    pub tree_size: u64,
    pub root: Hash,
    /// The signed note, as served.
    pub note: String,
    pub issued_at: DateTime<Utc>,
}

type Row = (i64, Vec<u8>, String, DateTime<Utc>);
/// A row and whether it was issued within [`COALESCE`] by the database's clock.
type RecentRow = (i64, Vec<u8>, String, DateTime<Utc>, bool);

fn issued(row: Row) -> Result<IssuedCheckpoint, StoreError> {
    let (size, root, note, issued_at) = row;
    Ok(IssuedCheckpoint {
        tree_size: size as u64,
        root: super::canonical::to_array(&root)
            .ok_or_else(|| StoreError::Corrupt(format!("checkpoint root at {size}")))?,
        note,
        issued_at,
    })
}

impl EventStore {
    /// The checkpoint of the tree as it is now: the one issued for its size, or a new one; or
    /// the newest one when it was issued less than [`COALESCE`] ago.
    pub async fn checkpoint(&self, signer: &Checkpointer) -> Result<IssuedCheckpoint, StoreError> {
        // The newest by size (one index row), judged by the database's clock.
        let newest: Option<RecentRow> = sqlx::query_as(
            "SELECT tree_size, root, note, issued_at,
                    issued_at > now() - make_interval(secs => $1)
             FROM checkpoints ORDER BY tree_size DESC LIMIT 1",
        )
        .bind(COALESCE.as_secs_f64())
        .fetch_optional(&self.pool)
        .await?;
        if let Some((size, root, note, issued_at, true)) = newest {
            return issued((size, root, note, issued_at));
        }
        let head = self.tree_head().await?;
        if let Some(found) = self.checkpoint_at(head.size).await? {
            return Ok(found);
        }
        let note = signer.sign(head.size, head.root)?;
        let (name, id) = signer.keys().active();
        // Another process may sign the same size at the same time: the first row stays.
        sqlx::query(
            "INSERT INTO checkpoints (tree_size, root, note, key_name, key_id)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tree_size) DO NOTHING",
        )
        .bind(head.size as i64)
        .bind(head.root.to_vec())
        .bind(&note)
        .bind(&name)
        .bind(&id)
        .execute(&self.pool)
        .await?;
        self.checkpoint_at(head.size)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("checkpoint {} vanished", head.size)))
    }

    /// The checkpoint issued for exactly this tree size, if any.
    pub async fn checkpoint_at(&self, size: u64) -> Result<Option<IssuedCheckpoint>, StoreError> {
        let row: Option<Row> = sqlx::query_as(
            "SELECT tree_size, root, note, issued_at FROM checkpoints WHERE tree_size = $1",
        )
        .bind(size as i64)
        .fetch_optional(&self.pool)
        .await?;
        row.map(issued).transpose()
    }

    /// The checkpoint a package is proven in: the current one when this process can sign, else
    /// the newest issued; `None` when there is neither.
    pub async fn package_checkpoint(
        &self,
        signer: Option<&Checkpointer>,
    ) -> Result<Option<IssuedCheckpoint>, StoreError> {
        match signer {
            Some(signer) => self.checkpoint(signer).await.map(Some),
            None => self.latest_checkpoint().await,
        }
    }

    /// The newest checkpoint issued, if any.
    pub async fn latest_checkpoint(&self) -> Result<Option<IssuedCheckpoint>, StoreError> {
        let row: Option<Row> = sqlx::query_as(
            "SELECT tree_size, root, note, issued_at FROM checkpoints
             ORDER BY tree_size DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(issued).transpose()
    }
}

/// Issues a checkpoint every `interval` while this process leads, when the tree has grown since
/// the last one (one process at a time: an advisory lock).
pub async fn run(
    store: EventStore,
    signer: Checkpointer,
    interval: Duration,
    mut shutdown: Shutdown,
) {
    let lock = LeaderLock::new(LOCK_CLASS, "checkpoints");
    while !shutdown.is_triggered() {
        match lock
            .acquire(store.pool(), "checkpoints", &mut shutdown)
            .await
        {
            Ok(Some(mut leadership)) => {
                while !shutdown.is_triggered() {
                    if let Err(error) = leadership.confirm().await {
                        tracing::warn!(%error, "checkpoint issuer lost its leadership");
                        break;
                    }
                    match store.checkpoint(&signer).await {
                        Ok(issued) => {
                            tracing::debug!(tree_size = issued.tree_size, "checkpoint current")
                        }
                        Err(error) => tracing::warn!(%error, "issuing a checkpoint failed"),
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(interval) => {}
                        _ = shutdown.wait() => {}
                    }
                }
                leadership.resign().await;
            }
            Ok(None) => break,
            Err(error) => {
                tracing::warn!(%error, "checkpoint issuer could not run for leadership");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.wait() => {}
                }
            }
        }
    }
}
