//! Reading an audit package out of the log (the format and its offline check are
//! `crate::audit_package`): a workspace's events up to a checkpoint, a page at a time, each page's
//! inclusion proofs in one query, so memory stays bounded however long the history.

use super::canonical::{to_array, CanonicalEvent, COLUMNS, GENESIS};
use super::checkpoints::IssuedCheckpoint;
use super::{EventStore, StoreError};
use crate::audit_package::{PackageEvent, PackageHeader, FORMAT};
use adledger_domain::WorkspaceId;
use chrono::{DateTime, Utc};
use futures_util::Stream;

const PAGE: i64 = 1_000;

/// Which events a package holds.
#[derive(Debug, Clone, Copy)]
pub struct PackageRange {
    pub workspace: WorkspaceId,
    /// Recorded at or after.
    pub from: Option<DateTime<Utc>>,
    /// Recorded before.
    pub to: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct Row {
    position: i64,
    previous: Option<Vec<u8>>,
    #[sqlx(flatten)]
    event: CanonicalEvent,
}

impl EventStore {
    /// How many events a package of `range` up to `checkpoint` holds (for progress).
    pub async fn package_count(
        &self,
        range: &PackageRange,
        checkpoint: &IssuedCheckpoint,
    ) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM event_log l JOIN events e ON e.id = l.event_row_id
             WHERE l.workspace_id = $1 AND l.position <= $2
               AND ($3::timestamptz IS NULL OR e.recorded_at >= $3)
               AND ($4::timestamptz IS NULL OR e.recorded_at < $4)",
        )
        .bind(range.workspace.0)
        .bind(checkpoint.tree_size as i64)
        .bind(range.from)
        .bind(range.to)
        .fetch_one(&self.pool)
        .await?;
        Ok(count as u64)
    }

    /// The next page of a package's events after position `after`.
    async fn package_page(
        &self,
        range: &PackageRange,
        size: u64,
        after: i64,
    ) -> Result<Vec<PackageEvent>, StoreError> {
        let sql = format!(
            "SELECT l.position, p.hash AS previous, {COLUMNS}
             FROM event_log l JOIN events e ON e.id = l.event_row_id
             LEFT JOIN event_log p ON p.position = l.position - 1
             WHERE l.workspace_id = $1 AND l.position > $2 AND l.position <= $3
               AND ($4::timestamptz IS NULL OR e.recorded_at >= $4)
               AND ($5::timestamptz IS NULL OR e.recorded_at < $5)
             ORDER BY l.position LIMIT $6"
        );
        let rows: Vec<Row> = sqlx::query_as(&sql)
            .bind(range.workspace.0)
            .bind(after)
            .bind(size as i64)
            .bind(range.from)
            .bind(range.to)
            .bind(PAGE)
            .fetch_all(&self.pool)
            .await?;
        let positions: Vec<u64> = rows.iter().map(|r| r.position as u64).collect();
        let proofs = self.inclusion_proofs(&positions, size).await?;
        rows.iter()
            .zip(proofs)
            .map(|(row, proof)| {
                let previous = match &row.previous {
                    None if row.position == 1 => GENESIS,
                    None => {
                        return Err(StoreError::Corrupt(format!(
                            "position {} is missing",
                            row.position - 1
                        )))
                    }
                    Some(hash) => to_array(hash).ok_or_else(|| {
                        StoreError::Corrupt(format!("hash at {}", row.position - 1))
                    })?,
                };
                Ok(PackageEvent::new(
                    &row.event,
                    row.position,
                    &previous,
                    &proof,
                ))
            })
            .collect()
    }

    /// The package as NDJSON lines: the header, then the events a page at a time.
    pub fn package(
        &self,
        range: PackageRange,
        checkpoint: IssuedCheckpoint,
    ) -> impl Stream<Item = Result<Vec<u8>, StoreError>> + Send + 'static {
        let header = PackageHeader {
            format: FORMAT.to_owned(),
            workspace_id: range.workspace.0,
            from: range.from,
            to: range.to,
            checkpoint: checkpoint.note.clone(),
        };
        let store = self.clone();
        let size = checkpoint.tree_size;
        futures_util::stream::unfold(Some((0i64, Some(header))), move |state| {
            let store = store.clone();
            async move {
                let (after, header) = state?;
                if let Some(header) = header {
                    let mut line =
                        serde_json::to_vec(&header).map_err(|e| StoreError::Corrupt(e.to_string()));
                    if let Ok(line) = &mut line {
                        line.push(b'\n');
                    }
                    return Some((line, Some((after, None))));
                }
                match store.package_page(&range, size, after).await {
                    Err(e) => Some((Err(e), None)),
                    Ok(page) => {
                        let last = page.last()?.position;
                        let mut out = Vec::with_capacity(page.len() * 1024);
                        for event in &page {
                            if let Err(e) = serde_json::to_writer(&mut out, event) {
                                return Some((Err(StoreError::Corrupt(e.to_string())), None));
                            }
                            out.push(b'\n');
                        }
                        Some((Ok(out), Some((last, None))))
                    }
                }
            }
        })
    }
}
