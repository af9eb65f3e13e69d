//! Reading: one stream by version (including events not yet sequenced), or the global log by
//! position (only sequenced events, so a reader never sees an order that could still change).

use super::canonical::to_array;
use super::{EventStore, RecordedEvent, StoreError};
use adledger_domain::{DecodeError, DomainEvent, EventId, StreamId, WorkspaceId};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;

const EVENT_COLUMNS: &str = "l.position, e.event_id, e.stream_id, e.stream_type, \
     e.stream_version, e.workspace_id, e.event_type, e.schema_version, e.payload, e.metadata, \
     e.occurred_at, e.recorded_at, l.hash";

/// Which part of the log to read: positions in `(after, up_to]`, at most `limit` events.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub after: i64,
    pub up_to: Option<i64>,
    pub workspace_id: Option<WorkspaceId>,
    pub stream_id: Option<StreamId>,
    pub limit: i64,
}

/// How many of `positions` continue `after` without a hole (after+1, after+2, ...). Readers of
/// the log stop at a hole rather than skip it; the sequencer never leaves one.
pub fn dense_run(after: i64, positions: impl IntoIterator<Item = Option<i64>>) -> usize {
    positions
        .into_iter()
        .zip(after + 1..)
        .take_while(|(position, expected)| *position == Some(*expected))
        .count()
}

/// A sequenced event as projections read it: no metadata or hash, and the payload as text, to be
/// decoded straight into the typed event (no intermediate JSON tree).
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub position: i64,
    pub workspace_id: WorkspaceId,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: String,
    pub occurred_at: DateTime<Utc>,
    /// Present only when the reader asked for it: most projections never look.
    pub context: Option<EventContext>,
}

/// Who recorded an event, where, and when: what the audit needs besides the payload.
#[derive(Debug, Clone)]
pub struct EventContext {
    pub stream_id: String,
    /// The metadata as JSON text.
    pub metadata: String,
    pub recorded_at: DateTime<Utc>,
}

impl LogEntry {
    pub fn decode(&self) -> Result<DomainEvent, DecodeError> {
        DomainEvent::decode_str(&self.event_type, self.schema_version, &self.payload)
    }
}

fn recorded(row: &PgRow) -> Result<RecordedEvent, StoreError> {
    let stream: String = row.try_get(2)?;
    let hash: Option<Vec<u8>> = row.try_get(12)?;
    Ok(RecordedEvent {
        position: row.try_get(0)?,
        event_id: EventId(row.try_get(1)?),
        stream_id: StreamId::parse(&stream)
            .ok_or_else(|| StoreError::Corrupt(format!("bad stream id {stream:?}")))?,
        stream_type: row.try_get(3)?,
        stream_version: row.try_get(4)?,
        workspace_id: WorkspaceId(row.try_get(5)?),
        event_type: row.try_get(6)?,
        schema_version: row.try_get(7)?,
        payload: row.try_get(8)?,
        metadata: row.try_get(9)?,
        occurred_at: row.try_get(10)?,
        recorded_at: row.try_get(11)?,
        hash: hash.as_deref().and_then(to_array),
    })
}

impl EventStore {
    /// Every event of one stream in version order, sequenced or not.
    pub async fn read_stream(&self, stream: &StreamId) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events e LEFT JOIN event_log l ON l.event_row_id = e.id
             WHERE e.stream_id = $1 ORDER BY e.stream_version"
        );
        sqlx::query(&sql)
            .bind(stream.as_str())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(recorded)
            .collect()
    }

    /// Sequenced events in log order.
    pub async fn read_log(&self, filter: &LogFilter) -> Result<Vec<RecordedEvent>, StoreError> {
        let columns = EVENT_COLUMNS;
        // One statement per filter shape, so each gets a plan that uses its index. Without a
        // stream filter the page is cut from event_log first and joined by primary key, so a
        // page costs its own size, never a join over the whole table.
        let sql = match (&filter.workspace_id, &filter.stream_id) {
            (None, None) => format!(
                "SELECT {columns} FROM (SELECT position, event_row_id, hash FROM event_log
                   WHERE position > $1 AND position <= $2 ORDER BY position LIMIT $3) l
                 JOIN events e ON e.id = l.event_row_id ORDER BY l.position"
            ),
            (Some(_), None) => format!(
                "SELECT {columns} FROM (SELECT position, event_row_id, hash FROM event_log
                   WHERE position > $1 AND position <= $2 AND workspace_id = $4
                   ORDER BY position LIMIT $3) l
                 JOIN events e ON e.id = l.event_row_id ORDER BY l.position"
            ),
            (workspace, Some(_)) => {
                let (ws_clause, stream_param) = match workspace {
                    Some(_) => (" AND l.workspace_id = $4", "$5"),
                    None => ("", "$4"),
                };
                format!(
                    "SELECT {columns} FROM event_log l JOIN events e ON e.id = l.event_row_id
                     WHERE l.position > $1 AND l.position <= $2{ws_clause}
                       AND e.stream_id = {stream_param}
                     ORDER BY l.position LIMIT $3"
                )
            }
        };
        let mut query = sqlx::query(&sql)
            .bind(filter.after)
            .bind(filter.up_to.unwrap_or(i64::MAX))
            .bind(filter.limit.max(0));
        if let Some(workspace) = filter.workspace_id {
            query = query.bind(workspace.as_uuid());
        }
        if let Some(stream) = &filter.stream_id {
            query = query.bind(stream.as_str());
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(recorded).collect()
    }

    /// Up to `limit` sequenced events after position `after`, in log order, as projections read
    /// them; with their [`EventContext`] only when `with_context`.
    pub async fn read_log_entries(
        &self,
        after: i64,
        limit: i64,
        with_context: bool,
    ) -> Result<Vec<LogEntry>, StoreError> {
        // Two statements rather than optional columns: the lean one is the replay hot path, and
        // every column it does not send saves time on each event.
        let columns = if with_context {
            ", e.stream_id, e.metadata::text, e.recorded_at"
        } else {
            ""
        };
        let sql = format!(
            "SELECT l.position, l.workspace_id, e.event_type, e.schema_version, e.payload::text,
                    e.occurred_at{columns}
             FROM (SELECT position, event_row_id, workspace_id FROM event_log
                   WHERE position > $1 ORDER BY position LIMIT $2) l
             JOIN events e ON e.id = l.event_row_id ORDER BY l.position"
        );
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(limit.max(0))
            .fetch_all(&self.pool)
            .await?;
        let entry = |row: &PgRow| -> Result<LogEntry, sqlx::Error> {
            let context = if with_context {
                Some(EventContext {
                    stream_id: row.try_get(6)?,
                    metadata: row.try_get(7)?,
                    recorded_at: row.try_get(8)?,
                })
            } else {
                None
            };
            Ok(LogEntry {
                position: row.try_get(0)?,
                workspace_id: WorkspaceId(row.try_get(1)?),
                event_type: row.try_get(2)?,
                schema_version: row.try_get(3)?,
                payload: row.try_get(4)?,
                occurred_at: row.try_get(5)?,
                context,
            })
        };
        Ok(rows.iter().map(entry).collect::<Result<_, _>>()?)
    }

    /// Every stream of one type with its workspace, in the order the streams began (sequenced
    /// or not). Reads only first events, through a partial index.
    pub async fn list_streams(
        &self,
        stream_type: adledger_domain::StreamType,
    ) -> Result<Vec<(StreamId, WorkspaceId)>, StoreError> {
        let rows: Vec<(String, uuid::Uuid)> = sqlx::query_as(
            "SELECT stream_id, workspace_id FROM events
             WHERE stream_type = $1 AND stream_version = 1 ORDER BY id",
        )
        .bind(stream_type.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(stream, workspace)| {
                let id = StreamId::parse(&stream)
                    .ok_or_else(|| StoreError::Corrupt(format!("bad stream id {stream:?}")))?;
                Ok((id, WorkspaceId(workspace)))
            })
            .collect()
    }

    /// The highest sequenced position (0 for an empty log).
    pub async fn head_position(&self) -> Result<i64, StoreError> {
        let head: Option<i64> = sqlx::query_scalar("SELECT max(position) FROM event_log")
            .fetch_one(&self.pool)
            .await?;
        Ok(head.unwrap_or(0))
    }
}
