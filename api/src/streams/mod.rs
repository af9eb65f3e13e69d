//! The state of one of the workspace's aggregates (its workspace, a connection, a campaign's
//! insights) as of a time or a log position: the stream's sequenced events up to then, folded
//! through the domain's own `Aggregate::evolve`, answered as a documented view ([`view`]) with
//! no secrets and personal data left sealed. Reads the log itself, never a read model.

mod view;

use crate::access::{InWorkspace, ReadHistory};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::responses::{Forbidden, Invalid, NotFound, RateLimited, Unauthenticated};
use crate::AppState;
use adledger_domain::campaign::CampaignInsights;
use adledger_domain::connection::Connection;
use adledger_domain::workspace::Workspace;
use adledger_domain::{Aggregate, AsOf, StreamId, StreamType, WorkspaceId};
use adledger_infra::{EventStore, RecordedEvent, StoreError};
use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
pub use view::AggregateState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stream_state))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// The state at that point: an RFC 3339 time (events recorded by then) or a log position
    /// (events up to it). Absent: now (every sequenced event).
    #[param(schema_with = crate::schemas::as_of)]
    as_of: Option<String>,
}

/// An aggregate's state after the events of its stream up to `as_of`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamState {
    pub stream_id: String,
    /// `workspace`, `connection` or `campaign`.
    pub stream_type: String,
    /// The `as_of` asked for, as given (`null`: now).
    pub as_of: Option<String>,
    /// How many of the stream's events were folded (its version then); 0 when the stream had
    /// no event yet at that point.
    pub version: i64,
    /// The log position and recorded time of the last event folded.
    pub last_position: Option<i64>,
    pub last_recorded_at: Option<DateTime<Utc>>,
    /// The state; `null` when the stream had no event yet.
    pub state: Option<AggregateState>,
}

/// The state of one of the workspace's streams (`workspace-…`, `connection-…`, `campaign-…`) as
/// of a time or a log position, folded from the log. Only sequenced events count; an event is
/// part of the state as of a time when it was recorded at or before it. A stream that is not
/// the workspace's (or does not exist) is not found.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/streams/{stream_id}", tag = "events",
    params(("workspace_id" = Uuid, Path),
           ("stream_id" = String, Path, description = "e.g. `connection-<uuid>`", pattern = "^[ -~]{1,200}$"),
           StreamParams),
    responses((status = 200, body = StreamState),
              Unauthenticated, Forbidden, NotFound, Invalid, RateLimited))]
async fn stream_state(
    State(state): State<AppState>,
    ws: InWorkspace<ReadHistory>,
    Path((_, raw)): Path<(Uuid, String)>,
    ApiQuery(params): ApiQuery<StreamParams>,
) -> Result<Json<StreamState>, ApiError> {
    let as_of = params
        .as_of
        .as_deref()
        .map(AsOf::parse)
        .transpose()
        .map_err(|message| ApiError::invalid("as_of", message))?;
    let not_found = || ApiError::NotFound("stream".to_owned());
    let stream = StreamId::parse(&raw).ok_or_else(not_found)?;
    let kind = stream_type(&stream).ok_or_else(not_found)?;
    let events = events_as_of(&state.reads, ws.id, &stream, as_of).await?;
    let folded = match kind {
        StreamType::Workspace => fold::<Workspace>(&events)?.map(AggregateState::from),
        StreamType::Connection => fold::<Connection>(&events)?.and_then(AggregateState::connection),
        StreamType::Campaign => fold::<CampaignInsights>(&events)?.map(AggregateState::from),
        StreamType::User => return Err(not_found()),
    };
    let last = events.last();
    Ok(Json(StreamState {
        stream_id: stream.as_str().to_owned(),
        stream_type: kind.as_str().to_owned(),
        as_of: params.as_of,
        version: events.len() as i64,
        last_position: last.and_then(|e| e.position),
        last_recorded_at: last.map(|e| e.recorded_at),
        state: folded,
    }))
}

/// The kind of aggregate a stream name says it holds (`<type>-<uuid>`).
fn stream_type(stream: &StreamId) -> Option<StreamType> {
    let (kind, id) = stream.as_str().split_once('-')?;
    Uuid::parse_str(id).ok()?;
    StreamType::parse(kind)
}

/// The stream's sequenced events up to `as_of`, in version order. A stream with no event, or
/// with one of another workspace, is not found (tenants cannot probe each other's ids).
async fn events_as_of(
    store: &EventStore,
    workspace: WorkspaceId,
    stream: &StreamId,
    as_of: Option<AsOf>,
) -> Result<Vec<RecordedEvent>, ApiError> {
    let events = store.read_stream(stream).await?;
    if events.is_empty() || events.iter().any(|e| e.workspace_id != workspace) {
        return Err(ApiError::NotFound("stream".to_owned()));
    }
    // A stream's versions take positions in their order (each is appended after the one before
    // committed), so the events of a point in the log are a prefix of the stream.
    Ok(events
        .into_iter()
        .take_while(|e| match (e.position, as_of) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(position), Some(as_of)) => as_of.includes(position, e.recorded_at),
        })
        .collect())
}

/// The aggregate after `events`; `None` before its first event.
fn fold<A: Aggregate>(events: &[RecordedEvent]) -> Result<Option<A>, ApiError> {
    if events.is_empty() {
        return Ok(None);
    }
    let mut state = A::default();
    for recorded in events {
        let event = recorded
            .decode()
            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", recorded.event_id)))?;
        state = state.evolve(&event, recorded.occurred_at);
    }
    Ok(Some(state))
}
