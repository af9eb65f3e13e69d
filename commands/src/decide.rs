//! Load → decide → append at the expected version, loading and deciding again when another writer
//! got there first. The only place that turns domain decisions into stored events, for every
//! aggregate alike.

use crate::{CommandError, Commands};
use adledger_domain::{Aggregate, DomainEvent, EventId, EventMetadata, StreamId, WorkspaceId};
use adledger_infra::crypto::is_sealed;
use adledger_infra::{
    AppendOutcome, AppendRequest, Idempotency, NewEvent, RecordedEvent, StoreError,
};
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

/// How many times a decision is taken again after a concurrent write before giving up.
pub const MAX_RETRIES: usize = 5;

/// An aggregate's state and the stream version it was folded up to.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    pub state: A,
    pub version: i64,
}

/// What [`Commands::decide`] did.
#[derive(Debug)]
pub enum Outcome<A> {
    /// The decision was appended (`events` of them; none when there was nothing to record);
    /// the state after it.
    Decided { after: Loaded<A>, events: usize },
    /// The idempotency key was used before for the same request: its first answer.
    Duplicate(Value),
}

impl<A> Outcome<A> {
    /// The state after the decision (`None` for a duplicate, whose state was not read).
    pub fn after(self) -> Option<Loaded<A>> {
        match self {
            Outcome::Decided { after, .. } => Some(after),
            Outcome::Duplicate(_) => None,
        }
    }
}

/// Where a decision goes: an aggregate's stream in its workspace, who decides, under which
/// idempotency key, and optionally the state already folded (saves reading the stream again; a
/// stale one is caught by the expected version).
pub struct Target<'a, A> {
    stream: StreamId,
    workspace: WorkspaceId,
    metadata: &'a EventMetadata,
    idempotency: Option<Idempotency>,
    folded: Option<Loaded<A>>,
}

impl<'a, A: Aggregate> Target<'a, A> {
    pub fn new(metadata: &'a EventMetadata, workspace: WorkspaceId, stream: StreamId) -> Self {
        Self {
            stream,
            workspace,
            metadata,
            idempotency: None,
            folded: None,
        }
    }

    /// A retry with the same key answers the first outcome and appends nothing.
    pub fn idempotent(mut self, idempotency: Option<Idempotency>) -> Self {
        self.idempotency = idempotency;
        self
    }

    /// Decides on this state instead of reading the stream first.
    pub fn folded(mut self, loaded: Option<Loaded<A>>) -> Self {
        self.folded = loaded;
        self
    }
}

/// A request's source (IP, user agent) is personal data: it reaches the log sealed under the
/// key of whoever acts (`Identity::seal_source`), or not at all. A context that skipped the
/// sealing is refused here, before the log keeps the source in clear for good.
fn check_source_sealed(metadata: &EventMetadata) -> Result<(), CommandError> {
    let source = &metadata.source;
    let mut values = source.ip.iter().chain(source.user_agent.iter());
    if values.any(|value| !is_sealed(value)) {
        return Err(CommandError::Crypto(
            "a request's source was about to be recorded unsealed".into(),
        ));
    }
    Ok(())
}

fn metadata_json(metadata: &EventMetadata) -> Result<Value, CommandError> {
    check_source_sealed(metadata)?;
    serde_json::to_value(metadata)
        .map_err(|e| StoreError::Corrupt(format!("metadata is not serialisable: {e}")).into())
}

fn new_event(event: DomainEvent, occurred_at: DateTime<Utc>) -> NewEvent {
    NewEvent {
        event_id: EventId(Uuid::now_v7()),
        event_type: event.event_type().to_owned(),
        schema_version: event.schema_version(),
        payload: event.to_payload(),
        occurred_at,
    }
}

impl Commands {
    /// Folds a stream that must belong to `workspace` (a stream of another workspace is
    /// reported as not found, so tenants cannot probe each other's ids).
    pub async fn load<A: Aggregate>(
        &self,
        workspace: WorkspaceId,
        stream: &StreamId,
    ) -> Result<Loaded<A>, CommandError> {
        self.load_with_events(workspace, stream)
            .await
            .map(|(loaded, _)| loaded)
    }

    /// [`Self::load`], also answering the stored events (for what their metadata says).
    pub(crate) async fn load_with_events<A: Aggregate>(
        &self,
        workspace: WorkspaceId,
        stream: &StreamId,
    ) -> Result<(Loaded<A>, Vec<RecordedEvent>), CommandError> {
        let events = self.store.read_stream(stream).await?;
        let mut state = A::default();
        for recorded in &events {
            if recorded.workspace_id != workspace {
                return Err(CommandError::NotFound(A::NAME));
            }
            let event = recorded
                .decode()
                .map_err(|e| StoreError::Corrupt(format!("{}: {e}", recorded.event_id)))?;
            state = state.evolve(&event, recorded.occurred_at);
        }
        let loaded = Loaded {
            state,
            version: events.len() as i64,
        };
        Ok((loaded, events))
    }

    /// Decides `command` on the target's aggregate at the clock's time and appends the decision,
    /// taking it again (on a fresh read) when another writer appended first.
    pub async fn decide<A: Aggregate>(
        &self,
        target: Target<'_, A>,
        command: &A::Command,
    ) -> Result<Outcome<A>, CommandError> {
        let metadata = metadata_json(target.metadata)?;
        let mut folded = target.folded;
        let mut attempt = 0;
        loop {
            let loaded = match folded.take() {
                Some(loaded) => loaded,
                None => self.load::<A>(target.workspace, &target.stream).await?,
            };
            let now = self.clock.now();
            let events = match loaded.state.decide(command, now) {
                Ok(events) => events,
                Err(rejected) => {
                    // A retry racing the first request under its key may find the state that
                    // request left (a sync already running): it gets the first answer.
                    if let Some(first) = self.first_answer(target.idempotency.as_ref()).await? {
                        return Ok(Outcome::Duplicate(first));
                    }
                    return Err(rejected.into());
                }
            };
            if events.is_empty() {
                return Ok(Outcome::Decided {
                    after: loaded,
                    events: 0,
                });
            }
            let request = AppendRequest {
                stream_id: target.stream.clone(),
                stream_type: A::STREAM_TYPE.as_str(),
                workspace_id: target.workspace,
                expected_version: loaded.version,
                metadata: metadata.clone(),
                events: events.iter().cloned().map(|e| new_event(e, now)).collect(),
                idempotency: target.idempotency.clone(),
            };
            match self.store.append(request).await {
                Ok(AppendOutcome::Appended { .. }) => {
                    let count = events.len();
                    let after = Loaded {
                        version: loaded.version + count as i64,
                        state: loaded.state.evolve_all(&events, now),
                    };
                    return Ok(Outcome::Decided {
                        after,
                        events: count,
                    });
                }
                Ok(AppendOutcome::Duplicate { outcome }) => return Ok(Outcome::Duplicate(outcome)),
                Err(StoreError::WrongExpectedVersion { stream, expected }) => {
                    if let Some(first) = self.first_answer(target.idempotency.as_ref()).await? {
                        return Ok(Outcome::Duplicate(first));
                    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use adledger_domain::{Actor, RequestSource};

    fn with_source(ip: Option<&str>, user_agent: Option<&str>) -> EventMetadata {
        EventMetadata {
            actor: Actor::Anonymous,
            correlation_id: Uuid::nil(),
            causation_id: None,
            source: RequestSource {
                ip: ip.map(str::to_owned),
                user_agent: user_agent.map(str::to_owned),
            },
        }
    }

    #[test]
    fn a_source_reaches_the_log_sealed_or_not_at_all() {
        let sealed = format!("sealed:v1:{}:AAAA", Uuid::nil());
        assert!(check_source_sealed(&with_source(None, None)).is_ok());
        assert!(check_source_sealed(&with_source(Some(&sealed), Some(&sealed))).is_ok());
        assert!(check_source_sealed(&with_source(Some("203.0.113.9"), None)).is_err());
        assert!(check_source_sealed(&with_source(Some(&sealed), Some("curl/8"))).is_err());
    }
}
