//! Typed identifiers. A bare `Uuid` never crosses a function signature: a campaign id cannot be
//! passed where a workspace id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
    };
}

uuid_id!(
    /// A tenant: every event and read-model row belongs to exactly one workspace.
    WorkspaceId
);
uuid_id!(
    /// One connected ad-platform login (a set of ad accounts reached with one credential).
    ConnectionId
);
uuid_id!(
    /// A campaign, derived from its connection and the platform's own id (see [`CampaignId::derive`]).
    CampaignId
);
uuid_id!(
    /// One run of a sync over a date range.
    SyncId
);
uuid_id!(
    /// The identity of one stored event (UUID v7, so ids sort by creation time).
    EventId
);
uuid_id!(
    /// A person who signs in. Identity events live in the user's own stream.
    UserId
);
uuid_id!(
    /// A machine credential of one workspace.
    ApiKeyId
);
uuid_id!(
    /// An invitation to join a workspace, sent to an email address.
    InvitationId
);
uuid_id!(
    /// One login: its refresh tokens form a family that is revoked together.
    SessionId
);
uuid_id!(
    /// Whose data key seals a piece of personal data: a person (their user id), an API key, an
    /// email address (a random id per address, see `infra::crypto`), or an invitation of old.
    SubjectId
);

impl CampaignId {
    /// The same platform campaign seen through the same connection always gets the same id, so
    /// discovery is idempotent and needs no randomness.
    pub fn derive(connection: ConnectionId, external_id: &str) -> Self {
        Self(Uuid::new_v5(&connection.0, external_id.as_bytes()))
    }
}

/// Ids that are text a platform or a process chose: a newtype each, shown as the text itself.
macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_id!(
    /// The platform's own id of an ad account (Meta's `act_…`, a Google customer id, a TikTok
    /// advertiser id), unique within a connection.
    AdAccountId
);
text_id!(
    /// A worker process that runs sync runs (`host:pid:random`), unique per process start: a
    /// worker that restarts is a new worker, so the old one's claims can be told from its own.
    WorkerId
);

/// The name of one event stream, `<stream type>-<uuid>`: one stream per aggregate instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StreamId(String);

impl StreamId {
    pub fn new(stream_type: StreamType, id: Uuid) -> Self {
        Self(format!("{}-{}", stream_type.as_str(), id))
    }

    /// Accepts any name of 1 to 200 printable ASCII characters (the store does not interpret
    /// it): every stream is named by [`Self::new`], in ASCII, and the API can state this rule
    /// exactly (a bound in bytes on any Unicode text it could not).
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = (1..=200).contains(&raw.len()) && raw.bytes().all(|b| (b' '..=b'~').contains(&b));
        ok.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

crate::named_enum! {
    /// The kind of aggregate a stream holds.
    pub enum StreamType {
        Workspace => "workspace",
        Connection => "connection",
        Campaign => "campaign",
        User => "user",
    }
}

impl WorkspaceId {
    pub fn stream(&self) -> StreamId {
        StreamId::new(StreamType::Workspace, self.0)
    }
}

impl WorkspaceId {
    /// Identity events (users, logins) belong to no workspace; the log files them under this id.
    pub const IDENTITY: WorkspaceId = WorkspaceId(Uuid::nil());
}

impl UserId {
    pub fn stream(&self) -> StreamId {
        StreamId::new(StreamType::User, self.0)
    }
}

impl ConnectionId {
    pub fn stream(&self) -> StreamId {
        StreamId::new(StreamType::Connection, self.0)
    }
}

impl CampaignId {
    pub fn stream(&self) -> StreamId {
        StreamId::new(StreamType::Campaign, self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn campaign_ids_are_stable_per_connection_and_external_id() {
        let conn = ConnectionId(Uuid::from_u128(7));
        assert_eq!(
            CampaignId::derive(conn, "123"),
            CampaignId::derive(conn, "123")
        );
        assert_ne!(
            CampaignId::derive(conn, "123"),
            CampaignId::derive(conn, "124")
        );
        let other = ConnectionId(Uuid::from_u128(8));
        assert_ne!(
            CampaignId::derive(conn, "123"),
            CampaignId::derive(other, "123")
        );
    }

    #[test]
    fn stream_names_carry_their_type() {
        let ws = WorkspaceId(Uuid::from_u128(1));
        assert_eq!(
            ws.stream().as_str(),
            "workspace-00000000-0000-0000-0000-000000000001"
        );
        assert!(StreamId::parse("").is_none());
        assert!(StreamId::parse("a\nb").is_none());
        assert!(StreamId::parse("caf\u{e9}-1").is_none());
        assert!(StreamId::parse(&"a".repeat(200)).is_some());
        assert!(StreamId::parse(&"a".repeat(201)).is_none());
    }
}
