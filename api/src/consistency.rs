//! Read-your-writes. Read models follow the log a moment behind it; a caller who just wrote must
//! still read its write. A request that appends answers the log position its last event reached
//! (`Adledger-Log-Position`), and the same caller's next reads on this server wait, bounded, until
//! the read model they read has applied it. Any read may also name a position itself
//! (`min_position`, e.g. one learned from another replica). Past the bound: 503 `not-caught-up`
//! with `Retry-After`. Nothing here ever blocks a caller who has not written.

use crate::error::ApiError;
use crate::AppState;
use adledger_infra::{EventRow, EventStore, Written};
use adledger_projections::{Audit, Catalog, DailyInsights, Projection};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The response header that carries the log position a write reached.
pub const LOG_POSITION: HeaderName = HeaderName::from_static("adledger-log-position");
/// The query parameter a read names a position with.
pub const MIN_POSITION: &str = "min_position";

/// How long a write's answer waits for the sequencer to place its events (it normally takes a
/// few milliseconds); past it the answer goes out without a position and the caller's reads wait
/// instead.
const WRITE_WAIT: Duration = Duration::from_secs(1);
/// How long a pending write is remembered for a caller who does not read again.
const REMEMBER: Duration = Duration::from_secs(60);
/// Callers remembered at most; the oldest are forgotten first past it (memory stays bounded).
const MAX_CALLERS: usize = 100_000;

/// How long a read waits for its read model before answering 503 `not-caught-up`.
const READ_WAIT: Duration = Duration::from_secs(2);

/// What each caller's next reads must see.
#[derive(Default)]
pub struct Consistency {
    pending: Mutex<HashMap<String, Pending>>,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    write: Write,
    at: Instant,
    /// Read models already seen to have applied it (by index in `MODELS`).
    seen: u8,
}

#[derive(Debug, Clone, Copy)]
enum Write {
    /// Its position is known.
    At(i64),
    /// Appended, but the sequencer had not placed it when the write answered.
    Row(EventRow),
}

/// The read models a route can read, in the order `Pending::seen` numbers them.
fn models() -> [&'static str; 3] {
    [Catalog.name(), DailyInsights.name(), Audit.name()]
}

/// Which read model a route reads; `None` for routes that read the log itself (events, streams,
/// log verification), which a sequenced position already satisfies.
fn model_of(path: &str) -> Option<usize> {
    if path.contains("/events") || path.contains("/streams/") || path.starts_with("/v1/log") {
        None
    } else if path.contains("/insights") {
        Some(1)
    } else if path.contains("/audit") {
        Some(2)
    } else {
        Some(0)
    }
}

/// Who wrote, filled in by the `Caller` extractor of a writing request once it is authenticated.
#[derive(Clone, Default)]
pub struct WritingCaller(Arc<OnceLock<String>>);

impl WritingCaller {
    pub fn set(&self, caller: String) {
        let _ = self.0.set(caller);
    }
}

impl Consistency {
    fn remember(&self, caller: String, write: Write) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        if pending.len() >= MAX_CALLERS {
            let now = Instant::now();
            pending.retain(|_, p| now.duration_since(p.at) < REMEMBER);
            if pending.len() >= MAX_CALLERS {
                // Still full of recent writers: forget one, as the bound matters more.
                if let Some(oldest) = pending
                    .iter()
                    .min_by_key(|(_, p)| p.at)
                    .map(|(k, _)| k.clone())
                {
                    pending.remove(&oldest);
                }
            }
        }
        pending.insert(
            caller,
            Pending {
                write,
                at: Instant::now(),
                seen: 0,
            },
        );
    }

    fn pending_of(&self, caller: &str) -> Option<Pending> {
        let mut pending = self.pending.lock().ok()?;
        match pending.get(caller) {
            Some(p) if p.at.elapsed() >= REMEMBER => {
                pending.remove(caller);
                None
            }
            other => other.copied(),
        }
    }

    /// Notes that read model `model` has applied the caller's pending write at `position`;
    /// forgets the write once every read model has.
    fn seen(&self, caller: &str, model: Option<usize>, position: i64) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        let Some(p) = pending.get_mut(caller) else {
            return;
        };
        p.write = Write::At(position);
        if let Some(model) = model {
            p.seen |= 1 << model;
        }
        if p.seen.count_ones() as usize == models().len() {
            pending.remove(caller);
        }
    }

    /// Waits until the read of `parts` by `caller` can see the caller's last write on this
    /// server and the position the read names, within the read bound.
    pub async fn before_read(
        &self,
        state: &AppState,
        caller: &str,
        parts: &Parts,
    ) -> Result<(), ApiError> {
        let named = min_position(parts)?;
        if let Some(named) = named {
            // A position is only ever handed out once sequenced, so one beyond the head names
            // nothing that was written: waiting for it would only delay the inevitable.
            let head = state.store.head_position().await?;
            if named > head {
                return Err(ApiError::invalid(
                    MIN_POSITION,
                    format!("is beyond the log's head ({head}): no write has reached it"),
                ));
            }
        }
        let pending = self.pending_of(caller);
        let model = model_of(parts.uri.path());
        let own = pending.filter(|p| model.is_none_or(|m| p.seen & (1 << m) == 0));
        if named.is_none() && own.is_none() {
            return Ok(());
        }
        let deadline = Instant::now() + READ_WAIT;
        let own_position = match own.map(|p| p.write) {
            None => None,
            Some(Write::At(position)) => Some(position),
            Some(Write::Row(row)) => Some(
                sequenced(&state.store, row, deadline)
                    .await?
                    .ok_or_else(|| self.not_caught_up())?,
            ),
        };
        let Some(position) = named.into_iter().chain(own_position).max() else {
            return Ok(());
        };
        if let Some(m) = model {
            let name = models()[m];
            let from_kafka = state.readiness.projections_from_kafka.as_ref();
            let mut pause = Duration::from_millis(5);
            loop {
                if adledger_projections::reached::reached(
                    state.store.pool(),
                    name,
                    from_kafka,
                    position,
                )
                .await?
                {
                    break;
                }
                if Instant::now() + pause > deadline {
                    return Err(self.not_caught_up());
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(50));
            }
        } else if state.store.head_position().await? < position {
            // A read of the log itself: the position must be sequenced.
            return Err(self.not_caught_up());
        }
        if let Some(own) = own_position {
            self.seen(caller, model, own);
        }
        Ok(())
    }

    fn not_caught_up(&self) -> ApiError {
        ApiError::NotCaughtUp {
            waited: READ_WAIT,
            retry_after_secs: 1,
        }
    }
}

/// The `min_position` a read names, if any.
fn min_position(parts: &Parts) -> Result<Option<i64>, ApiError> {
    let query = parts.uri.query().unwrap_or_default();
    let Some((_, raw)) =
        url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == MIN_POSITION)
    else {
        return Ok(None);
    };
    match raw.parse::<i64>() {
        Ok(position) if position >= 0 => Ok(Some(position)),
        _ => Err(ApiError::invalid(
            MIN_POSITION,
            "must be a log position (an integer of 0 or more)",
        )),
    }
}

/// The position the sequencer gave `row`, polled until `deadline`.
async fn sequenced(
    store: &EventStore,
    row: EventRow,
    deadline: Instant,
) -> Result<Option<i64>, ApiError> {
    let mut head = store.subscribe_head();
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(position) = store.position_of(row).await? {
            return Ok(Some(position));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        // This process's sequencer wakes us as it moves the head; one elsewhere is polled for.
        let woken = tokio::time::timeout(pause.min(left), head.changed()).await;
        if let Ok(Err(_)) = woken {
            // No sequencer in this process to wake us: just wait.
            tokio::time::sleep(pause.min(left)).await;
        }
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Runs a request that may write, recording what it appends: its answer carries the position
/// reached, and its caller's next reads wait for it.
pub async fn track_writes(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if req.method().is_safe() {
        return next.run(req).await;
    }
    let caller = WritingCaller::default();
    req.extensions_mut().insert(caller.clone());
    let written = Written::default();
    let mut response = written.scope(next.run(req)).await;
    let Some(row) = written.last() else {
        return response;
    };
    let position = sequenced(&state.store, row, Instant::now() + WRITE_WAIT)
        .await
        .unwrap_or(None);
    if let Some(caller) = caller.0.get() {
        let write = position.map_or(Write::Row(row), Write::At);
        state.consistency.remember(caller.clone(), write);
    }
    if let Some(position) = position {
        response
            .headers_mut()
            .insert(LOG_POSITION, HeaderValue::from(position));
    }
    response
}

/// Every authenticated `GET` takes `min_position` and can answer 503 `not-caught-up`: declared
/// once here for the OpenAPI document rather than on every route.
pub struct ReadYourWrites;

impl utoipa::Modify for ReadYourWrites {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        use utoipa::openapi::Required;
        for (path, item) in openapi.paths.paths.iter_mut() {
            let writes = [
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in writes.into_iter().flatten() {
                for (status, response) in operation.responses.responses.iter_mut() {
                    if let (true, utoipa::openapi::RefOr::T(response)) =
                        (status.starts_with('2'), response)
                    {
                        response
                            .headers
                            .insert(LOG_POSITION.as_str().to_owned(), position_header());
                    }
                }
            }
            let Some(get) = item.get.as_mut() else {
                continue;
            };
            // Anonymous routes have no caller to remember a write of.
            if !path.starts_with("/v1/")
                || path.starts_with("/v1/auth/")
                || path.contains("/oauth/")
            {
                continue;
            }
            let parameter = ParameterBuilder::new()
                .name(MIN_POSITION)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(
                    "Wait (up to 2 s) until what this read reads has applied the log up to here \
                     (a position from `Adledger-Log-Position`); 503 `not-caught-up` otherwise; 422 beyond the log's head",
                ))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                            utoipa::openapi::KnownFormat::Int64,
                        )))
                        .minimum(Some(0)),
                ))
                .build();
            get.parameters.get_or_insert_with(Vec::new).push(parameter);
            get.responses
                .responses
                .entry("503".to_owned())
                .or_insert_with(|| {
                    utoipa::openapi::RefOr::T(crate::openapi::problem(
                        "`not-caught-up`: the read model has not reached the caller's write (or \
                         `min_position`) in time; `Retry-After` says when to retry",
                    ))
                });
        }
    }
}

fn position_header() -> utoipa::openapi::header::Header {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let mut header = utoipa::openapi::header::Header::new(
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Int64,
            )))
            .minimum(Some(1)),
    );
    header.description = Some(
        "The log position this write's last event reached, when the log placed it within 1 s: \
         pass it as `min_position` to read the write elsewhere"
            .to_owned(),
    );
    header
}
