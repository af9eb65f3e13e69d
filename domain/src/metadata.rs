//! Who caused an event, and from where. Every stored event carries one of these.

use crate::{ApiKeyId, UserId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// adledger itself (scheduler, CLI, demo seeding, benchmarks), named by its component.
    System { name: String },
    /// A caller of the HTTP API that did not identify itself (registration, and events recorded
    /// before authentication existed).
    Anonymous,
    /// A signed-in person.
    User { user_id: UserId },
    /// A workspace's machine client.
    ApiKey { api_key_id: ApiKeyId },
}

impl Actor {
    pub fn system(name: &str) -> Self {
        Actor::System {
            name: name.to_owned(),
        }
    }

    /// Whose key seals the request's source (IP, user agent): the person or key acting.
    pub fn data_subject(&self) -> Option<Uuid> {
        match self {
            Actor::User { user_id } => Some(user_id.0),
            Actor::ApiKey { api_key_id } => Some(api_key_id.0),
            Actor::System { .. } | Actor::Anonymous => None,
        }
    }
}

/// Where a request came from. For people and API keys both fields are sealed under their key
/// (`Sealed` text); events recorded before sealing existed hold them in clear.
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
