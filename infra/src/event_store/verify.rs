//! Verification of the log: positions dense from 1, every event present, every hash equal to
//! the one recomputed from the stored bytes, and the Merkle tree recomputed from those hashes
//! equal to the root of every signed checkpoint and of the stored tree. Reports the first broken
//! link.

use super::canonical::{to_array, CanonicalEvent, COLUMNS, GENESIS};
use super::{EventStore, StoreError};
use crate::merkle::{self, Frontier};
use serde::Serialize;

const CHUNK: i64 = 10_000;

/// What [`EventStore::verify_with_progress`] reports as it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The head it verifies up to.
    Head(u64),
    /// This many more events verified.
    Verified(u64),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenLink {
    pub position: i64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Events whose hash was recomputed and matched.
    pub verified: i64,
    pub head: i64,
    /// The first position where the chain does not hold, if any.
    pub first_broken: Option<BrokenLink>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.first_broken.is_none()
    }
}

/// A tree root the log is held to: what a checkpoint signed or the stored tree says for a size.
struct ClaimedRoot {
    size: u64,
    root: merkle::Hash,
    by: &'static str,
}

impl ClaimedRoot {
    fn mismatch(&self, recomputed: &merkle::Hash) -> String {
        format!(
            "{} of tree size {} has root {}, but the log's events give {}",
            self.by,
            self.size,
            hex::encode(self.root),
            hex::encode(recomputed)
        )
    }
}

/// One link of the chain: the position, its stored hash, and the event it covers.
#[derive(sqlx::FromRow)]
struct Link {
    position: i64,
    hash: Vec<u8>,
    #[sqlx(flatten)]
    event: CanonicalEvent,
}

impl EventStore {
    pub async fn verify(&self) -> Result<VerifyReport, StoreError> {
        self.verify_with_progress(|_| {}).await
    }

    /// [`Self::verify`], telling `progress` the log's head first, then how many more events
    /// each chunk verified (for a progress bar).
    pub async fn verify_with_progress(
        &self,
        mut progress: impl FnMut(Progress),
    ) -> Result<VerifyReport, StoreError> {
        let head = self.head_position().await?;
        progress(Progress::Head(head as u64));
        let mut previous = GENESIS;
        let mut expected = 1;
        let broken = |position, reason: String| VerifyReport {
            verified: position - 1,
            head,
            first_broken: Some(BrokenLink { position, reason }),
        };
        // The tree is recomputed from the chain as it is walked; each root someone may hold (a
        // signed checkpoint, the stored tree's head) is compared when the walk reaches its size.
        let mut tree = Frontier::default();
        let mut roots = self.roots_to_check(head).await?.into_iter().peekable();
        // An event row gone from under its position drops out of the join: the gap it leaves is
        // told apart from a missing position by `missing_at`.
        let sql = format!(
            "SELECT l.position, l.hash, {COLUMNS}
             FROM (SELECT position, event_row_id, hash FROM event_log
                   WHERE position >= $1 AND position <= $2 ORDER BY position LIMIT $3) l
             JOIN events e ON e.id = l.event_row_id ORDER BY l.position"
        );
        while expected <= head {
            let links: Vec<Link> = sqlx::query_as(&sql)
                .bind(expected)
                .bind(head)
                .bind(CHUNK)
                .fetch_all(&self.pool)
                .await?;
            if links.is_empty() {
                return Ok(broken(expected, self.missing_at(expected, None).await?));
            }
            let links_len = links.len() as u64;
            for Link {
                position,
                hash: stored,
                event,
            } in links
            {
                if position != expected {
                    return Ok(broken(
                        expected,
                        self.missing_at(expected, Some(position)).await?,
                    ));
                }
                let recomputed = event.chain_hash(&previous, position);
                if to_array(&stored) != Some(recomputed) {
                    return Ok(broken(
                        position,
                        format!(
                            "hash mismatch for event {} ({} v{} of {}): stored {}, recomputed {}",
                            event.event_id,
                            event.event_type,
                            event.stream_version,
                            event.stream_id,
                            hex::encode(&stored),
                            hex::encode(recomputed)
                        ),
                    ));
                }
                previous = recomputed;
                expected += 1;
                tree.push(merkle::leaf_hash(&recomputed));
                while let Some(claim) = roots.next_if(|c| c.size <= tree.size()) {
                    if claim.root != tree.root() {
                        return Ok(broken(position, claim.mismatch(&tree.root())));
                    }
                }
            }
            progress(Progress::Verified(links_len));
        }
        Ok(VerifyReport {
            verified: head,
            head,
            first_broken: None,
        })
    }

    /// The tree roots recorded for sizes 1..=`head`, smallest first: every signed checkpoint's
    /// and the stored tree's head (a log whose tree is still catching up has a smaller one).
    async fn roots_to_check(&self, head: i64) -> Result<Vec<ClaimedRoot>, StoreError> {
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT tree_size, root FROM checkpoints
             WHERE tree_size > 0 AND tree_size <= $1 ORDER BY tree_size",
        )
        .bind(head)
        .fetch_all(&self.pool)
        .await?;
        let mut roots = rows
            .into_iter()
            .map(|(size, root)| {
                let root = to_array(&root)
                    .ok_or_else(|| StoreError::Corrupt(format!("checkpoint root at {size}")))?;
                Ok(ClaimedRoot {
                    size: size as u64,
                    root,
                    by: "the signed checkpoint",
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let stored = self.tree_head().await?;
        if stored.size > 0 && stored.size <= head as u64 {
            roots.push(ClaimedRoot {
                size: stored.size,
                root: stored.root,
                by: "the stored Merkle tree",
            });
            roots.sort_by_key(|claim| claim.size);
        }
        Ok(roots)
    }

    /// Why the chain has no event at `position` (the next one read being `next`): the log has no
    /// such position, or the event row it points to is gone.
    async fn missing_at(&self, position: i64, next: Option<i64>) -> Result<String, StoreError> {
        let logged: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM event_log WHERE position = $1)")
                .bind(position)
                .fetch_one(&self.pool)
                .await?;
        Ok(match (logged, next) {
            (true, _) => "the event row is missing".to_owned(),
            (false, Some(next)) => format!("position missing (next is {next})"),
            (false, None) => "position missing from the log".to_owned(),
        })
    }
}
