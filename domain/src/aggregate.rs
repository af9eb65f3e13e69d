//! The one shape every aggregate has: the streams it lives in, the commands it takes, and two
//! pure functions: `decide` (what a command means, given the past) and `evolve` (the past, folded
//! one event at a time). Nothing here does I/O or reads a clock: the time of a decision comes in
//! as `now`, and ids come in inside the commands.

use crate::{DomainError, DomainEvent, StreamType};
use chrono::{DateTime, Utc};

pub trait Aggregate: Default + Clone + Send + Sync + 'static {
    /// The kind of stream one instance of this aggregate is stored in.
    const STREAM_TYPE: StreamType;
    /// How "not found" answers name it.
    const NAME: &'static str;

    /// Every intent this aggregate can be asked to carry out.
    type Command: Send + Sync;

    /// The events `command` leads to, at `now`, given the state folded so far; an empty list
    /// when the command changes nothing (a retry of something already done), an error when a
    /// business rule refuses it. Every event of one decision happens at `now`.
    fn decide(
        &self,
        command: &Self::Command,
        now: DateTime<Utc>,
    ) -> Result<Vec<DomainEvent>, DomainError>;

    /// The state after `event`, which happened at `occurred_at`. Events that do not concern the
    /// aggregate leave it as it was.
    fn evolve(self, event: &DomainEvent, occurred_at: DateTime<Utc>) -> Self;

    /// The state after a run of events that all happened at `occurred_at`.
    fn evolve_all<'a>(
        self,
        events: impl IntoIterator<Item = &'a DomainEvent>,
        occurred_at: DateTime<Utc>,
    ) -> Self {
        events
            .into_iter()
            .fold(self, |state, event| state.evolve(event, occurred_at))
    }
}
