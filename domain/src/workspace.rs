//! The workspace aggregate: a tenant. Created once; everything else hangs off its id.

use crate::event::{Decided, WorkspaceCreated};
use crate::{DomainError, DomainEvent, WorkspaceId};
use chrono::{DateTime, Utc};

/// A workspace name: trimmed, 1 to 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceName(String);

impl WorkspaceName {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(DomainError::invalid("name", "must not be empty"));
        }
        if name.chars().count() > 200 {
            return Err(DomainError::invalid(
                "name",
                "must be at most 200 characters",
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(DomainError::invalid(
                "name",
                "must not contain control characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workspace {
    pub id: Option<WorkspaceId>,
    pub name: String,
}

#[derive(Debug, Clone)]
pub enum Command {
    Create {
        workspace_id: WorkspaceId,
        name: WorkspaceName,
        at: DateTime<Utc>,
    },
}

pub fn decide(state: &Workspace, command: &Command) -> Result<Vec<Decided>, DomainError> {
    match command {
        Command::Create {
            workspace_id,
            name,
            at,
        } => {
            if state.id.is_some() {
                return Err(DomainError::AlreadyExists("workspace"));
            }
            Ok(vec![Decided {
                event: DomainEvent::WorkspaceCreated(WorkspaceCreated {
                    workspace_id: *workspace_id,
                    name: name.as_str().to_owned(),
                }),
                occurred_at: *at,
            }])
        }
    }
}

pub fn evolve(mut state: Workspace, event: &DomainEvent) -> Workspace {
    if let DomainEvent::WorkspaceCreated(e) = event {
        state.id = Some(e.workspace_id);
        state.name = e.name.clone();
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn create(name: &str) -> Command {
        Command::Create {
            workspace_id: WorkspaceId(Uuid::from_u128(1)),
            name: WorkspaceName::parse(name).unwrap(),
            at: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn given_nothing_when_create_then_workspace_created() {
        let events = decide(&Workspace::default(), &create("  Acme  ")).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(
            events[0].event,
            DomainEvent::WorkspaceCreated(WorkspaceCreated {
                workspace_id: WorkspaceId(Uuid::from_u128(1)),
                name: "Acme".into()
            })
        );
    }

    #[test]
    fn given_created_when_create_again_then_refused() {
        let first = decide(&Workspace::default(), &create("Acme")).unwrap();
        let state = evolve(Workspace::default(), &first[0].event);
        assert_eq!(
            decide(&state, &create("Acme")),
            Err(DomainError::AlreadyExists("workspace"))
        );
    }

    #[test]
    fn names_must_be_present_and_printable() {
        assert!(WorkspaceName::parse("   ").is_err());
        assert!(WorkspaceName::parse("a\u{7}b").is_err());
        assert!(WorkspaceName::parse(&"x".repeat(201)).is_err());
        assert!(WorkspaceName::parse(&"x".repeat(200)).is_ok());
    }
}
