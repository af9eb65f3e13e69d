//! Given / when / then for aggregates: given these past events, when this command, then these new
//! events (or this error). A test of a business rule then reads as the rule itself:
//!
//! ```
//! use adledger_domain::testing::given;
//! use adledger_domain::workspace::{Command, Workspace, WorkspaceName};
//! use adledger_domain::{DomainError, WorkspaceId};
//! # let created = adledger_domain::DomainEvent::WorkspaceCreated(adledger_domain::event::WorkspaceCreated {
//! #     workspace_id: WorkspaceId(uuid::Uuid::nil()), name: "Acme".into() });
//! given::<Workspace>([created])
//!     .when(Command::Create {
//!         workspace_id: WorkspaceId(uuid::Uuid::nil()),
//!         name: WorkspaceName::parse("Acme").unwrap(),
//!         owner: None,
//!     })
//!     .then_error(DomainError::AlreadyExists("workspace"));
//! ```

use crate::aggregate::Aggregate;
use crate::{DomainError, DomainEvent};
use chrono::{DateTime, Utc};

/// The time past events happened at and commands are decided at unless a test says otherwise.
pub const EPOCH: DateTime<Utc> = DateTime::UNIX_EPOCH;

/// An aggregate folded from past events, waiting for a command.
#[derive(Debug, Clone)]
pub struct Given<A> {
    state: A,
    now: DateTime<Utc>,
}

/// Past events, all of them at [`EPOCH`].
pub fn given<A: Aggregate>(events: impl IntoIterator<Item = DomainEvent>) -> Given<A> {
    Given {
        state: A::default(),
        now: EPOCH,
    }
    .and(events)
}

/// No past at all: the aggregate does not exist yet.
pub fn given_nothing<A: Aggregate>() -> Given<A> {
    given(std::iter::empty())
}

impl<A: Aggregate> Given<A> {
    /// More past events, at the current time of the scenario.
    pub fn and(mut self, events: impl IntoIterator<Item = DomainEvent>) -> Self {
        let now = self.now;
        self.state = events
            .into_iter()
            .fold(self.state, |state, event| state.evolve(&event, now));
        self
    }

    /// From here on, events happen and commands are decided at `now`.
    pub fn at(mut self, now: DateTime<Utc>) -> Self {
        self.now = now;
        self
    }

    /// The state folded so far, for assertions about `evolve`.
    pub fn state(&self) -> &A {
        &self.state
    }

    pub fn when(self, command: A::Command) -> Then<A> {
        let decided = self.state.decide(&command, self.now);
        Then {
            state: self.state,
            now: self.now,
            decided,
        }
    }
}

/// What a command decided, to be checked.
#[derive(Debug)]
pub struct Then<A> {
    state: A,
    now: DateTime<Utc>,
    decided: Result<Vec<DomainEvent>, DomainError>,
}

impl<A: Aggregate + std::fmt::Debug> Then<A> {
    /// Exactly these events, in this order; answers the state after them.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = DomainEvent>) -> A {
        let expected: Vec<DomainEvent> = expected.into_iter().collect();
        match self.decided {
            Ok(events) => {
                assert_eq!(events, expected, "the command decided other events");
                self.state.evolve_all(&events, self.now)
            }
            Err(error) => panic!("expected {expected:?}, the command was refused: {error}"),
        }
    }

    /// Accepted, and nothing to record (it was done already, or changes nothing).
    #[track_caller]
    pub fn then_nothing(self) {
        self.then([]);
    }

    /// Refused with exactly this error.
    #[track_caller]
    pub fn then_error(self, expected: DomainError) {
        match self.decided {
            Ok(events) => panic!("expected the error {expected:?}, the command decided {events:?}"),
            Err(error) => assert_eq!(error, expected),
        }
    }

    /// Refused as invalid, naming `field`.
    #[track_caller]
    pub fn then_invalid(self, field: &str) {
        match self.decided {
            Ok(events) => panic!("expected {field} to be refused, the command decided {events:?}"),
            Err(DomainError::Invalid { field: f, .. }) if f == field => {}
            Err(other) => panic!("expected {field} to be refused, got {other:?}"),
        }
    }

    /// The events decided, for tests that look at them piece by piece.
    #[track_caller]
    pub fn events(self) -> Vec<DomainEvent> {
        match self.decided {
            Ok(events) => events,
            Err(error) => panic!("the command was refused: {error}"),
        }
    }

    /// The state after the decided events (the command must have been accepted).
    #[track_caller]
    pub fn state_after(self) -> A {
        let now = self.now;
        match self.decided {
            Ok(events) => self.state.evolve_all(&events, now),
            Err(error) => panic!("the command was refused: {error}"),
        }
    }
}
