//! Load → decide → append at the expected version, reloading and deciding again when another
//! writer got there first. The only place that turns domain decisions into stored events.

use crate::{CommandError, Commands};
use adledger_domain::campaign::CampaignInsights;
use adledger_domain::connection::Connection;
use adledger_domain::event::Decided;
use adledger_domain::user::User;
use adledger_domain::workspace::Workspace;
use adledger_domain::{
    campaign, connection, user, workspace, DomainEvent, EventId, EventMetadata, StreamId,
    StreamType, WorkspaceId,
};
use adledger_infra::{AppendOutcome, AppendRequest, Idempotency, NewEvent, StoreError};
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

/// How many times a decision is retried after a concurrent write before giving up.
pub const MAX_RETRIES: usize = 5;

/// An aggregate as the handlers fold it from its stream.
pub trait Aggregate: Default + Send {
    const STREAM_TYPE: StreamType;
    /// The word used in `NotFound` when the stream belongs to another workspace.
    const NAME: &'static str;
    fn apply(self, event: &DomainEvent, occurred_at: DateTime<Utc>) -> Self;
}

impl Aggregate for Workspace {
    const STREAM_TYPE: StreamType = StreamType::Workspace;
    const NAME: &'static str = "workspace";
    fn apply(self, event: &DomainEvent, occurred_at: DateTime<Utc>) -> Self {
        workspace::evolve(self, event, occurred_at)
    }
}

impl Aggregate for User {
    const STREAM_TYPE: StreamType = StreamType::User;
    const NAME: &'static str = "user";
    fn apply(self, event: &DomainEvent, _: DateTime<Utc>) -> Self {
        user::evolve(self, event)
    }
}

impl Aggregate for Connection {
    const STREAM_TYPE: StreamType = StreamType::Connection;
    const NAME: &'static str = "connection";
    fn apply(self, event: &DomainEvent, occurred_at: DateTime<Utc>) -> Self {
        connection::evolve(self, event, occurred_at)
    }
}

impl Aggregate for CampaignInsights {
    const STREAM_TYPE: StreamType = StreamType::Campaign;
    const NAME: &'static str = "campaign";
    fn apply(self, event: &DomainEvent, _: DateTime<Utc>) -> Self {
        campaign::evolve(self, event)
    }
}

/// An aggregate's state and the version it was folded up to.
pub struct Loaded<A> {
    pub state: A,
    pub version: i64,
}

/// What `execute` did.
pub enum Executed<T> {
    /// The decision was appended (or was empty, so nothing needed appending).
    Decided(T),
    /// The idempotency key was used before for the same request: here is what it answered.
    Duplicate(Value),
}

/// Where a decision goes and what travels with it.
pub struct Target<'a> {
    pub stream: StreamId,
    pub workspace: WorkspaceId,
    pub metadata: &'a EventMetadata,
    pub idempotency: Option<&'a Idempotency>,
}

pub fn metadata_json(metadata: &EventMetadata) -> Result<Value, CommandError> {
    serde_json::to_value(metadata)
        .map_err(|e| StoreError::Corrupt(format!("metadata is not serialisable: {e}")).into())
}

impl Commands {
    /// Folds a stream that must belong to `workspace` (a stream of another workspace is
    /// reported as not found, so tenants cannot probe each other's ids).
    pub(crate) async fn load<A: Aggregate>(
        &self,
        stream: &StreamId,
        workspace: WorkspaceId,
    ) -> Result<Loaded<A>, CommandError> {
        let events = self.store.read_stream(stream).await?;
        let mut state = A::default();
        for recorded in &events {
            if recorded.workspace_id != workspace {
                return Err(CommandError::NotFound(A::NAME));
            }
            let event = recorded
                .decode()
                .map_err(|e| StoreError::Corrupt(format!("{}: {e}", recorded.event_id)))?;
            state = state.apply(&event, recorded.occurred_at);
        }
        Ok(Loaded {
            state,
            version: events.len() as i64,
        })
    }

    /// Loads, decides and appends, retrying the whole round on a concurrent write.
    /// `decide` also returns a value for the caller, taken from the attempt that was appended.
    pub(crate) async fn execute<A, T>(
        &self,
        target: Target<'_>,
        decide: impl FnMut(&A) -> Result<(Vec<Decided>, T), CommandError>,
    ) -> Result<Executed<T>, CommandError>
    where
        A: Aggregate,
    {
        self.execute_on(target, None, decide)
            .await
            .map(|(executed, _)| executed)
    }
}

impl Commands {
    /// [`Self::execute`] starting from a state folded before (`cached`), which saves reading the
    /// stream again; answers the state after the append for the next call (`None` when the
    /// store answered an earlier request's outcome instead). A stale state is caught by the
    /// expected version: the stream is then read afresh and the decision redone.
    pub(crate) async fn execute_on<A, T>(
        &self,
        target: Target<'_>,
        cached: Option<Loaded<A>>,
        mut decide: impl FnMut(&A) -> Result<(Vec<Decided>, T), CommandError>,
    ) -> Result<(Executed<T>, Option<Loaded<A>>), CommandError>
    where
        A: Aggregate,
    {
        let metadata = metadata_json(target.metadata)?;
        let mut cached = cached;
        let mut attempt = 0;
        loop {
            let loaded = match cached.take() {
                Some(loaded) => loaded,
                None => self.load::<A>(&target.stream, target.workspace).await?,
            };
            let (decided, answer) = decide(&loaded.state)?;
            if decided.is_empty() {
                return Ok((Executed::Decided(answer), Some(loaded)));
            }
            let request = AppendRequest {
                stream_id: target.stream.clone(),
                stream_type: A::STREAM_TYPE.as_str(),
                workspace_id: target.workspace,
                expected_version: loaded.version,
                metadata: metadata.clone(),
                events: decided.iter().cloned().map(new_event).collect(),
                idempotency: target.idempotency.cloned(),
            };
            match self.store.append(request).await {
                Ok(AppendOutcome::Appended { .. }) => {
                    let version = loaded.version + decided.len() as i64;
                    let state = decided.iter().fold(loaded.state, |state, d| {
                        state.apply(&d.event, d.occurred_at)
                    });
                    return Ok((Executed::Decided(answer), Some(Loaded { state, version })));
                }
                Ok(AppendOutcome::Duplicate { outcome }) => {
                    return Ok((Executed::Duplicate(outcome), None))
                }
                Err(StoreError::WrongExpectedVersion { stream, expected }) => {
                    if attempt >= MAX_RETRIES {
                        return Err(CommandError::Conflict(format!(
                            "stream {stream} changed under {} attempts (last expected version \
                             {expected})",
                            attempt + 1
                        )));
                    }
                    attempt += 1;
                    tracing::debug!(stream_id = %stream, attempt, "concurrent write; deciding again");
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

fn new_event(decided: Decided) -> NewEvent {
    NewEvent {
        event_id: EventId(Uuid::now_v7()),
        event_type: decided.event.event_type().to_owned(),
        schema_version: decided.event.schema_version(),
        payload: decided.event.to_payload(),
        occurred_at: decided.occurred_at,
    }
}
