//! The log's Merkle tree in `merkle_nodes` (migration 0015): the sequencer extends it in the
//! transaction that positions the events, and proofs and tree heads read O(log n) stored nodes.
//! Leaf i is `leaf_hash(chain hash of position i+1)`. It never rewrites a node.

use super::{EventStore, StoreError};
use crate::merkle::{self, Frontier, Hash, NodeId, Plan};
use sqlx::PgConnection;
use std::collections::HashMap;

/// The tree's size as stored: the number of leaves.
pub(super) async fn size(conn: &mut PgConnection) -> Result<u64, StoreError> {
    let last: Option<i64> = sqlx::query_scalar(
        "SELECT idx FROM merkle_nodes WHERE level = 0 ORDER BY idx DESC LIMIT 1",
    )
    .fetch_optional(conn)
    .await?;
    Ok(last.map_or(0, |i| i as u64 + 1))
}

/// The stored nodes `ids` names; an error when one is missing (the tree is not as large as
/// the caller thought, or rows were removed under the triggers).
pub(super) async fn nodes(
    conn: &mut PgConnection,
    ids: &[NodeId],
) -> Result<HashMap<NodeId, Hash>, StoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let levels: Vec<i16> = ids.iter().map(|id| i16::from(id.level)).collect();
    let indices: Vec<i64> = ids.iter().map(|id| id.index as i64).collect();
    let rows: Vec<(i16, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT n.level, n.idx, n.hash FROM merkle_nodes n
         JOIN UNNEST($1::int2[], $2::int8[]) AS w(level, idx) USING (level, idx)",
    )
    .bind(&levels)
    .bind(&indices)
    .fetch_all(conn)
    .await?;
    let mut found = HashMap::with_capacity(rows.len());
    for (level, idx, hash) in rows {
        let id = NodeId {
            level: level as u8,
            index: idx as u64,
        };
        let hash = super::canonical::to_array(&hash)
            .ok_or_else(|| StoreError::Corrupt(format!("merkle node {id:?}")))?;
        found.insert(id, hash);
    }
    Ok(found)
}

/// The hashes of `plans` from stored nodes, in one query.
pub(super) async fn resolve(
    conn: &mut PgConnection,
    plans: &[&Plan],
) -> Result<Vec<Vec<Hash>>, StoreError> {
    let mut ids: Vec<NodeId> = plans
        .iter()
        .flat_map(|p| p.iter().flatten().copied())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let found = nodes(conn, &ids).await?;
    plans
        .iter()
        .map(|plan| {
            merkle::assemble(plan, |id| found.get(&id).copied())
                .ok_or_else(|| StoreError::Corrupt("a merkle node is missing".to_owned()))
        })
        .collect()
}

/// The frontier of the stored tree of `size` leaves.
pub(super) async fn frontier(conn: &mut PgConnection, size: u64) -> Result<Frontier, StoreError> {
    let plan = merkle::head_plan(size);
    let found = nodes(conn, &plan).await?;
    let peaks = plan
        .iter()
        .map(|id| found.get(id).copied())
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| StoreError::Corrupt(format!("merkle peaks of size {size}")))?;
    Frontier::from_parts(size, peaks)
        .ok_or_else(|| StoreError::Corrupt(format!("merkle peaks of size {size}")))
}

/// Appends the leaves of these chain hashes (positions `frontier.size()+1 …`) and stores every
/// node they complete.
pub(super) async fn append(
    conn: &mut PgConnection,
    frontier: &mut Frontier,
    chain_hashes: &[Hash],
) -> Result<(), StoreError> {
    if chain_hashes.is_empty() {
        return Ok(());
    }
    let mut completed = Vec::with_capacity(chain_hashes.len() * 2);
    for chain in chain_hashes {
        frontier.append(merkle::leaf_hash(chain), &mut completed);
    }
    let levels: Vec<i16> = completed
        .iter()
        .map(|(id, _)| i16::from(id.level))
        .collect();
    let indices: Vec<i64> = completed.iter().map(|(id, _)| id.index as i64).collect();
    let hashes: Vec<Vec<u8>> = completed.iter().map(|(_, h)| h.to_vec()).collect();
    sqlx::query(
        "INSERT INTO merkle_nodes (level, idx, hash)
         SELECT * FROM UNNEST($1::int2[], $2::int8[], $3::bytea[])",
    )
    .bind(&levels)
    .bind(&indices)
    .bind(&hashes)
    .execute(conn)
    .await?;
    Ok(())
}

/// Extends the tree with up to `max` leaves of positions already in `event_log` (a database that
/// had events before the tree existed); returns how many it added.
pub(super) async fn catch_up(
    conn: &mut PgConnection,
    frontier: &mut Frontier,
    max: i64,
) -> Result<usize, StoreError> {
    let rows: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT hash FROM event_log WHERE position > $1 ORDER BY position LIMIT $2",
    )
    .bind(frontier.size() as i64)
    .bind(max)
    .fetch_all(&mut *conn)
    .await?;
    let hashes = rows
        .iter()
        .map(|h| super::canonical::to_array(h))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| StoreError::Corrupt("event_log hash".to_owned()))?;
    append(conn, frontier, &hashes).await?;
    Ok(hashes.len())
}

/// A tree head as stored: its size and root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    pub size: u64,
    pub root: Hash,
}

impl EventStore {
    /// The head of the tree as far as it is built now.
    pub async fn tree_head(&self) -> Result<TreeHead, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let size = size(&mut conn).await?;
        self.tree_head_at_on(&mut conn, size).await
    }

    /// The head of the tree of the first `size` leaves; `None` past the tree's size.
    pub async fn tree_head_at(&self, size: u64) -> Result<Option<TreeHead>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        if size > self::size(&mut conn).await? {
            return Ok(None);
        }
        self.tree_head_at_on(&mut conn, size).await.map(Some)
    }

    async fn tree_head_at_on(
        &self,
        conn: &mut PgConnection,
        size: u64,
    ) -> Result<TreeHead, StoreError> {
        let plan = vec![merkle::head_plan(size)];
        let root = resolve(conn, &[&plan]).await?.remove(0);
        Ok(TreeHead {
            size,
            root: root.first().copied().unwrap_or_else(merkle::empty_root),
        })
    }

    /// The chain hash stored for `position` (the input of its leaf), if the log has it.
    pub async fn chain_hash_at(&self, position: u64) -> Result<Option<Hash>, StoreError> {
        let hash: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT hash FROM event_log WHERE position = $1")
                .bind(position as i64)
                .fetch_optional(&self.pool)
                .await?;
        hash.map(|h| {
            super::canonical::to_array(&h)
                .ok_or_else(|| StoreError::Corrupt(format!("hash at {position}")))
        })
        .transpose()
    }

    /// The inclusion proof of the event at `position` in the tree of `size` leaves; `None` when
    /// the position is not in it or the tree is not that large yet.
    pub async fn inclusion_proof(
        &self,
        position: u64,
        size: u64,
    ) -> Result<Option<Vec<Hash>>, StoreError> {
        let Some(plan) = position
            .checked_sub(1)
            .and_then(|index| merkle::inclusion_plan(index, size))
        else {
            return Ok(None);
        };
        let mut conn = self.pool.acquire().await?;
        if size > self::size(&mut conn).await? {
            return Ok(None);
        }
        Ok(resolve(&mut conn, &[&plan]).await?.pop())
    }

    /// Inclusion proofs of many positions in the tree of `size` leaves, in one query: what an
    /// audit package carries. The caller knows the tree is that large.
    pub async fn inclusion_proofs(
        &self,
        positions: &[u64],
        size: u64,
    ) -> Result<Vec<Vec<Hash>>, StoreError> {
        let plans = positions
            .iter()
            .map(|p| {
                p.checked_sub(1)
                    .and_then(|index| merkle::inclusion_plan(index, size))
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!("position {p} is not in a tree of {size}"))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut conn = self.pool.acquire().await?;
        resolve(&mut conn, &plans.iter().collect::<Vec<_>>()).await
    }

    /// The consistency proof from the tree of `old` leaves to the one of `new`; `None` when
    /// `old > new` or the tree is not `new` large yet.
    pub async fn consistency_proof(
        &self,
        old: u64,
        new: u64,
    ) -> Result<Option<Vec<Hash>>, StoreError> {
        let Some(plan) = merkle::consistency_plan(old, new) else {
            return Ok(None);
        };
        let mut conn = self.pool.acquire().await?;
        if new > self::size(&mut conn).await? {
            return Ok(None);
        }
        Ok(resolve(&mut conn, &[&plan]).await?.pop())
    }
}
