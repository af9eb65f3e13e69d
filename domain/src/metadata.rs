//! Who caused an event, and from where. Every stored event carries one of these.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// adledger itself (scheduler, CLI, demo seeding, benchmarks), named by its component.
    System { name: String },
    /// A caller of the HTTP API that did not identify itself (no authentication exists yet).
    Anonymous,
}

impl Actor {
    pub fn system(name: &str) -> Self {
        Actor::System {
            name: name.to_owned(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestSource {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    pub actor: Actor,
    /// The request (or job) that led to the event; the HTTP request id for API calls.
    pub correlation_id: Uuid,
    /// The event or command that directly caused this one, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "is_empty_source")]
    pub source: RequestSource,
}

fn is_empty_source(s: &RequestSource) -> bool {
    s.ip.is_none() && s.user_agent.is_none()
}

impl EventMetadata {
    pub fn system(name: &str, correlation_id: Uuid) -> Self {
        Self {
            actor: Actor::system(name),
            correlation_id,
            causation_id: None,
            source: RequestSource::default(),
        }
    }

    pub fn caused_by(mut self, causation_id: Uuid) -> Self {
        self.causation_id = Some(causation_id);
        self
    }
}
