//! The workspace's events in log order, as NDJSON: one stored event per line, exactly as stored
//! (type, schema version and payload as written, with position and chain hash), for replay.
//! Personal fields stay sealed unless `reveal=true` asks to open them (erased ones read
//! `[erased]`); the stored form is what the hash chain covers.

use crate::access::{InWorkspace, ReadHistory};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::responses::{Forbidden, Invalid, NotFound, RateLimited, Unauthenticated};
use crate::AppState;
use adledger_domain::StreamId;
use adledger_infra::{EventStore, LogFilter, Sealer};
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

const PAGE: i64 = 1_000;

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
    /// At most this many events (default: all).
    #[param(minimum = 1)]
    limit: Option<i64>,
    /// Open sealed personal fields (emails, names, IPs), or show `[erased]` for erased people.
    /// Default false: the events exactly as stored, as the hash chain covers them.
    reveal: Option<bool>,
}

/// Stream the workspace's events in log order as NDJSON.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/events", tag = "events",
    params(("workspace_id" = Uuid, Path), EventParams),
    responses((status = 200, description = "One JSON event per line", content_type = "application/x-ndjson", body = String),
              Unauthenticated, Forbidden, NotFound, Invalid, RateLimited))]
async fn stream_events(
    State(state): State<AppState>,
    ws: InWorkspace<ReadHistory>,
    ApiQuery(params): ApiQuery<EventParams>,
) -> Result<Response, ApiError> {
    let from = params.from_position.unwrap_or(1);
    if from < 1 {
        return Err(ApiError::invalid("from_position", "must be at least 1"));
    }
    if let Some(to) = params.to_position {
        if to < from {
            return Err(ApiError::invalid(
                "to_position",
                "must not be below from_position",
            ));
        }
    }
    if params.limit.is_some_and(|l| l < 1) {
        return Err(ApiError::invalid("limit", "must be at least 1"));
    }
    let stream_id = match params.stream_id.as_deref() {
        None => None,
        Some(raw) => Some(
            StreamId::parse(raw)
                .ok_or_else(|| ApiError::invalid("stream_id", "is not a stream id"))?,
        ),
    };
    let filter = LogFilter {
        after: from - 1,
        up_to: params.to_position,
        workspace_id: Some(ws.id),
        stream_id,
        limit: PAGE,
    };
    let sealer = params
        .reveal
        .unwrap_or(false)
        .then(|| state.identity.sealer().clone());
    let body = Body::from_stream(ndjson(
        state.reads.clone(),
        filter,
        params.limit.unwrap_or(i64::MAX),
        sealer,
    ));
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// Pages through the log lazily, so a long history streams without being held in memory.
pub fn ndjson(
    store: EventStore,
    filter: LogFilter,
    limit: i64,
    reveal: Option<Sealer>,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    futures_util::stream::unfold((filter, limit), move |(mut filter, remaining)| {
        let store = store.clone();
        let reveal = reveal.clone();
        async move {
            if remaining <= 0 {
                return None;
            }
            filter.limit = PAGE.min(remaining);
            let page = match store.read_log(&filter).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::error!(error = %e, "event stream failed mid-way");
                    return Some((
                        Err(std::io::Error::other("reading the log failed")),
                        (filter, 0),
                    ));
                }
            };
            let last = page.last()?.position?;
            let mut out = Vec::with_capacity(page.len() * 512);
            let encoded = match &reveal {
                None => page.iter().try_for_each(|event| {
                    serde_json::to_writer(&mut out, event)?;
                    out.push(b'\n');
                    Ok::<_, serde_json::Error>(())
                }),
                Some(sealer) => match revealed(sealer, &page).await {
                    Ok(values) => values.iter().try_for_each(|value| {
                        serde_json::to_writer(&mut out, value)?;
                        out.push(b'\n');
                        Ok(())
                    }),
                    Err(e) => {
                        tracing::error!(error = %e, "opening personal fields failed mid-way");
                        return Some((Err(std::io::Error::other("revealing failed")), (filter, 0)));
                    }
                },
            };
            if encoded.is_err() {
                return Some((Err(std::io::Error::other("encoding failed")), (filter, 0)));
            }
            let remaining = remaining - page.len() as i64;
            filter.after = last;
            Some((Ok(bytes::Bytes::from(out)), (filter, remaining)))
        }
    })
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
