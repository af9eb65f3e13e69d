//! Verification of the log: positions dense from 1, every event present, and every hash equal to
//! the one recomputed from the stored bytes. Reports the first broken link.

use super::canonical::{to_array, CanonicalEvent, COLUMNS, GENESIS};
use super::{EventStore, StoreError};
use serde::Serialize;
use sqlx::Row;

const CHUNK: i64 = 10_000;

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

impl EventStore {
    pub async fn verify(&self) -> Result<VerifyReport, StoreError> {
        let head = self.head_position().await?;
        let mut previous = GENESIS;
        let mut expected = 1;
        let broken = |position, reason: String| VerifyReport {
            verified: position - 1,
            head,
            first_broken: Some(BrokenLink { position, reason }),
        };
        let sql = format!(
            "SELECT l.position, l.hash, {COLUMNS}
             FROM (SELECT position, event_row_id, hash FROM event_log
                   WHERE position >= $1 AND position <= $2 ORDER BY position LIMIT $3) l
             LEFT JOIN events e ON e.id = l.event_row_id ORDER BY l.position"
        );
        while expected <= head {
            let rows = sqlx::query(&sql)
                .bind(expected)
                .bind(head)
                .bind(CHUNK)
                .fetch_all(&self.pool)
                .await?;
            if rows.is_empty() {
                return Ok(broken(expected, "position missing from the log".into()));
            }
            for row in rows {
                let position: i64 = row.try_get(0)?;
                if position != expected {
                    return Ok(broken(
                        expected,
                        format!("position missing (next is {position})"),
                    ));
                }
                let stored: Vec<u8> = row.try_get(1)?;
                let present: Option<i64> = row.try_get(2)?;
                if present.is_none() {
                    return Ok(broken(position, "the event row is missing".into()));
                }
                let event = CanonicalEvent::from_row(&row, 2)?;
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
            }
        }
        Ok(VerifyReport {
            verified: head,
            head,
            first_broken: None,
        })
    }
}
