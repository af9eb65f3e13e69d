//! Reading: one stream by version (including events not yet sequenced), or the global log by
//! position (only sequenced events, so a reader never sees an order that could still change).

use super::canonical::to_array;
use super::{EventStore, RecordedEvent, StoreError};
use adledger_domain::{DecodeError, DomainEvent, EventId, StreamId, WorkspaceId};
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

/// The columns an [`EventRow`] reads, from `events e` and `event_log l`.
pub(super) const EVENT_COLUMNS: &str = "l.position, e.event_id, e.stream_id, e.stream_type, \
     e.stream_version, e.workspace_id, e.event_type, e.schema_version, e.payload, e.metadata, \
     e.occurred_at, e.recorded_at, l.hash";

/// A stored event as read, before its stream id and hash are checked.
#[derive(sqlx::FromRow)]
pub(super) struct EventRow {
    position: Option<i64>,
    event_id: Uuid,
    stream_id: String,
    stream_type: String,
    stream_version: i64,
    workspace_id: Uuid,
    event_type: String,
    schema_version: i32,
    payload: Value,
    metadata: Value,
    occurred_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
    hash: Option<Vec<u8>>,
}

impl TryFrom<EventRow> for RecordedEvent {
    type Error = StoreError;

    fn try_from(row: EventRow) -> Result<Self, StoreError> {
        let stream_id = StreamId::parse(&row.stream_id)
            .ok_or_else(|| StoreError::Corrupt(format!("bad stream id {:?}", row.stream_id)))?;
        Ok(RecordedEvent {
            position: row.position,
            event_id: EventId(row.event_id),
            stream_id,
            stream_type: row.stream_type,
            stream_version: row.stream_version,
            workspace_id: WorkspaceId(row.workspace_id),
            event_type: row.event_type,
            schema_version: row.schema_version,
            payload: row.payload,
            metadata: row.metadata,
            occurred_at: row.occurred_at,
            recorded_at: row.recorded_at,
            hash: row.hash.as_deref().and_then(to_array),
        })
    }
}

/// A sequenced event as projections read it; the context columns only in the statement that
/// selects them.
#[derive(sqlx::FromRow)]
struct EntryRow {
    position: i64,
    workspace_id: Uuid,
    event_type: String,
    schema_version: i32,
    payload: String,
    occurred_at: DateTime<Utc>,
    #[sqlx(default)]
    stream_id: Option<String>,
    #[sqlx(default)]
    metadata: Option<String>,
    #[sqlx(default)]
    recorded_at: Option<DateTime<Utc>>,
}

impl From<EntryRow> for LogEntry {
    fn from(row: EntryRow) -> Self {
        let context = match (row.stream_id, row.metadata, row.recorded_at) {
            (Some(stream_id), Some(metadata), Some(recorded_at)) => Some(EventContext {
                stream_id,
                metadata,
                recorded_at,
            }),
            _ => None,
        };
        LogEntry {
            position: row.position,
            workspace_id: WorkspaceId(row.workspace_id),
            event_type: row.event_type,
            schema_version: row.schema_version,
            payload: row.payload,
            occurred_at: row.occurred_at,
            context,
        }
    }
}

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

impl EventStore {
    /// Every event of one stream in version order, sequenced or not.
    pub async fn read_stream(&self, stream: &StreamId) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events e LEFT JOIN event_log l ON l.event_row_id = e.id
             WHERE e.stream_id = $1 ORDER BY e.stream_version"
        );
        let rows: Vec<EventRow> = sqlx::query_as(&sql)
            .bind(stream.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(RecordedEvent::try_from).collect()
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
        let mut query = sqlx::query_as(&sql)
            .bind(filter.after)
            .bind(filter.up_to.unwrap_or(i64::MAX))
            .bind(filter.limit.max(0));
        if let Some(workspace) = filter.workspace_id {
            query = query.bind(workspace.as_uuid());
        }
        if let Some(stream) = &filter.stream_id {
            query = query.bind(stream.as_str());
        }
        let rows: Vec<EventRow> = query.fetch_all(&self.pool).await?;
        rows.into_iter().map(RecordedEvent::try_from).collect()
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
            ", e.stream_id, e.metadata::text AS metadata, e.recorded_at"
        } else {
            ""
        };
        let sql = format!(
            "SELECT l.position, l.workspace_id, e.event_type, e.schema_version,
                    e.payload::text AS payload, e.occurred_at{columns}
             FROM (SELECT position, event_row_id, workspace_id FROM event_log
                   WHERE position > $1 ORDER BY position LIMIT $2) l
             JOIN events e ON e.id = l.event_row_id ORDER BY l.position"
        );
        let rows: Vec<EntryRow> = sqlx::query_as(&sql)
            .bind(after)
            .bind(limit.max(0))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(LogEntry::from).collect())
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
