//! The workspace's events in log order, as NDJSON: one stored event per line, exactly as stored
//! (type, schema version and payload as written, with position and chain hash), for replay.
//! Personal fields stay sealed unless `reveal=true` asks to open them (erased ones read
//! `[erased]`); the stored form is what the hash chain covers. Auditors filter by positions,
//! stream, recorded time, event types, actor and stream type (all combined), and resume with an
//! opaque cursor: an answer with `limit` is read whole (at most [`MAX_LIMIT`] events) and names
//! its next page in `Link`; without `limit` every event streams, a page at a time.

use crate::access::{InWorkspace, ReadHistory};
use crate::error::ApiError;
use crate::error::FieldError;
use crate::extract::ApiQuery;
use crate::paging::{NextLink, Scope};
use crate::responses::{Forbidden, Invalid, NotFound, RateLimited, Unauthenticated};
use crate::AppState;
use adledger_domain::{DomainEvent, StreamId, StreamType, WorkspaceId};
use adledger_infra::{ActorFilter, EventFilter, EventStore, LogFilter, RecordedEvent, Sealer};
use axum::body::Body;
use axum::extract::{OriginalUri, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

const PAGE: i64 = 1_000;

/// The most events one answer with `limit` holds (it is read whole, to name the next page).
pub const MAX_LIMIT: i64 = 10_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stream_events))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// First log position to return (inclusive, default 1).
    #[param(minimum = 1)]
    from_position: Option<i64>,
    /// Last log position to return (inclusive; not below `from_position`).
    #[param(minimum = 1)]
    to_position: Option<i64>,
    /// Only events of this stream, e.g. `campaign-<uuid>`.
    #[param(schema_with = crate::schemas::stream_id)]
    stream_id: Option<String>,
    /// Only events recorded at or after this time (RFC 3339).
    #[param(schema_with = crate::schemas::time)]
    from_time: Option<String>,
    /// Only events recorded at or before this time (RFC 3339; not before `from_time`).
    #[param(schema_with = crate::schemas::time)]
    to_time: Option<String>,
    /// Only events of these types (comma-separated, e.g. `MemberInvited,ApiKeyCreated`).
    #[param(schema_with = crate::schemas::event_types)]
    event_types: Option<String>,
    /// Only events caused by this actor: `user:<id>`, `api_key:<id>`, `system` (any of
    /// adledger's components), `system:<component>` or `anonymous`.
    #[param(schema_with = crate::schemas::actor)]
    actor: Option<String>,
    /// Only events of streams of this kind.
    #[param(schema_with = crate::schemas::stream_type)]
    stream_type: Option<String>,
    /// At most this many events, 1 to 10,000; the answer then names the next page in
    /// `Link: <…>; rel="next"`. Default: every event, streamed.
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<i64>,
    /// Where to resume: the `cursor` of a previous answer's `Link`, with the same other
    /// parameters. Absent: from `from_position`.
    #[param(max_length = 1024)]
    cursor: Option<String>,
    /// Open sealed personal fields (emails, names, IPs), or show `[erased]` for erased people.
    /// Default false: the events exactly as stored, as the hash chain covers them.
    reveal: Option<bool>,
}

/// The workspace's events in log order as NDJSON, filtered as asked (filters combine).
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/events", tag = "events",
    params(("workspace_id" = Uuid, Path), EventParams),
    responses((status = 200, description = "One JSON event per line", content_type = "application/x-ndjson", body = String,
               headers(("link" = String, description = "`<…>; rel=\"next\"`: the next page, when `limit` cut the answer"))),
              Unauthenticated, Forbidden, NotFound, Invalid, RateLimited))]
async fn stream_events(
    State(state): State<AppState>,
    ws: InWorkspace<ReadHistory>,
    OriginalUri(uri): OriginalUri,
    ApiQuery(params): ApiQuery<EventParams>,
) -> Result<Response, ApiError> {
    let (mut log, events, scope) = parse(ws.id, &params)?;
    if let Some(after) = scope.decode::<i64>(params.cursor.as_deref())? {
        log.after = log.after.max(after);
    }
    let sealer = params
        .reveal
        .unwrap_or(false)
        .then(|| state.identity.sealer().clone());
    let ndjson_type = [(header::CONTENT_TYPE, "application/x-ndjson")];
    let Some(limit) = params.limit else {
        let body = Body::from_stream(ndjson(state.reads.clone(), log, events, sealer));
        return Ok((ndjson_type, body).into_response());
    };
    // One bounded answer, read before answering so that its last position names the next page.
    let mut page = Vec::new();
    while (page.len() as i64) <= limit {
        log.limit = PAGE.min(limit + 1 - page.len() as i64);
        let read = state.reads.read_log_filtered(&log, &events).await?;
        let Some(last) = read.last().and_then(|e| e.position) else {
            break;
        };
        let full = read.len() as i64 == log.limit;
        page.extend(read);
        log.after = last;
        if !full {
            break;
        }
    }
    let more = page.len() as i64 > limit;
    page.truncate(limit as usize);
    let next = match page.last().and_then(|e| e.position) {
        Some(last) if more => Some(scope.encode(&last)?),
        _ => None,
    };
    let body = encode(&page, sealer.as_ref()).await?;
    Ok((
        NextLink::new(&uri, "cursor", next.as_deref()),
        ndjson_type,
        body,
    )
        .into_response())
}

/// The filters of a request, and the scope of its cursors (every filter but the page's own).
fn parse(
    workspace: WorkspaceId,
    p: &EventParams,
) -> Result<(LogFilter, EventFilter, Scope), ApiError> {
    let mut errors = Vec::new();
    let from = p.from_position.unwrap_or(1);
    if from < 1 {
        errors.push(FieldError::new("from_position", "must be at least 1"));
    }
    if p.to_position.is_some_and(|to| to < from) {
        errors.push(FieldError::new(
            "to_position",
            "must not be below from_position",
        ));
    }
    if p.limit.is_some_and(|l| !(1..=MAX_LIMIT).contains(&l)) {
        errors.push(FieldError::new(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let stream_id = p.stream_id.as_deref().and_then(|raw| {
        let parsed = StreamId::parse(raw);
        if parsed.is_none() {
            errors.push(FieldError::new("stream_id", "is not a stream id"));
        }
        parsed
    });
    let mut time = |field: &str, raw: Option<&str>| {
        let parsed = DateTime::parse_from_rfc3339(raw?).map(|t| t.with_timezone(&Utc));
        if parsed.is_err() {
            errors.push(FieldError::new(
                field,
                "must be an RFC 3339 time (2026-01-31T12:00:00Z)",
            ));
        }
        parsed.ok()
    };
    let recorded_from = time("from_time", p.from_time.as_deref());
    let recorded_to = time("to_time", p.to_time.as_deref());
    if let (Some(from), Some(to)) = (recorded_from, recorded_to) {
        if to < from {
            errors.push(FieldError::new("to_time", "must not be before from_time"));
        }
    }
    let mut event_types: Vec<String> = Vec::new();
    for raw in p.event_types.as_deref().unwrap_or("").split(',') {
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        match DomainEvent::TYPES.iter().find(|(name, _)| *name == raw) {
            Some((name, _)) => event_types.push((*name).to_owned()),
            None => errors.push(FieldError::new(
                "event_types",
                format!("{raw:?} is not an event type"),
            )),
        }
    }
    event_types.sort();
    event_types.dedup();
    let actor = p.actor.as_deref().and_then(|raw| {
        ActorFilter::parse(raw)
            .map_err(|message| errors.push(FieldError::new("actor", message)))
            .ok()
    });
    let stream_type = p.stream_type.as_deref().and_then(|raw| {
        let parsed = StreamType::parse(raw);
        if parsed.is_none() {
            errors.push(FieldError::new(
                "stream_type",
                "must be workspace, connection, campaign or user",
            ));
        }
        parsed
    });
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let scope = Scope::new(
        "events",
        &(
            workspace,
            from,
            p.to_position,
            stream_id.as_ref().map(|s| s.as_str()),
            recorded_from,
            recorded_to,
            &event_types,
            actor.as_ref().map(ActorFilter::as_str),
            stream_type,
        ),
    );
    let log = LogFilter {
        after: from - 1,
        up_to: p.to_position,
        workspace_id: Some(workspace),
        stream_id,
        limit: PAGE,
    };
    let events = EventFilter {
        recorded_from,
        recorded_to,
        event_types,
        actor,
        stream_type,
    };
    Ok((log, events, scope))
}

/// Pages through the log lazily, so a long history streams without being held in memory.
pub fn ndjson(
    store: EventStore,
    filter: LogFilter,
    events: EventFilter,
    reveal: Option<Sealer>,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    futures_util::stream::unfold((filter, true), move |(mut filter, more)| {
        let store = store.clone();
        let reveal = reveal.clone();
        let events = events.clone();
        async move {
            if !more {
                return None;
            }
            filter.limit = PAGE;
            let page = match store.read_log_filtered(&filter, &events).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::error!(error = %e, "event stream failed mid-way");
                    return Some((
                        Err(std::io::Error::other("reading the log failed")),
                        (filter, false),
                    ));
                }
            };
            let last = page.last()?.position?;
            let out = match encode(&page, reveal.as_ref()).await {
                Ok(out) => out,
                Err(e) => {
                    tracing::error!(error = %e, "encoding events failed mid-way");
                    return Some((
                        Err(std::io::Error::other("encoding failed")),
                        (filter, false),
                    ));
                }
            };
            filter.after = last;
            Some((Ok(out), (filter, true)))
        }
    })
}

/// Events as NDJSON lines, their personal fields opened when `reveal` is given.
async fn encode(page: &[RecordedEvent], reveal: Option<&Sealer>) -> Result<bytes::Bytes, ApiError> {
    let mut out = Vec::with_capacity(page.len() * 512);
    let json = |e: serde_json::Error| ApiError::Internal(e.to_string());
    match reveal {
        None => {
            for event in page {
                serde_json::to_writer(&mut out, event).map_err(json)?;
                out.push(b'\n');
            }
        }
        Some(sealer) => {
            for value in revealed(sealer, page).await? {
                serde_json::to_writer(&mut out, &value).map_err(json)?;
                out.push(b'\n');
            }
        }
    }
    Ok(bytes::Bytes::from(out))
}

async fn revealed(
    sealer: &Sealer,
    page: &[adledger_infra::RecordedEvent],
) -> Result<Vec<serde_json::Value>, ApiError> {
    let mut values = page
        .iter()
        .map(|e| serde_json::to_value(e).map_err(|e| ApiError::Internal(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    crate::personal::reveal(sealer, &mut values).await?;
    Ok(values)
}
