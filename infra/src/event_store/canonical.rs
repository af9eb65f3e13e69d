//! The canonical bytes of a stored event and the hash chain over them:
//! `hash(n) = sha256(hash(n-1) ‖ canonical(event at position n))`, with 32 zero bytes before the
//! first event. Fixed-width fields are big-endian; text fields are length-prefixed (u32), so no
//! two different events share an encoding. JSON is hashed as Postgres renders the stored jsonb.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub const GENESIS: [u8; 32] = [0; 32];

/// The columns a [`CanonicalEvent`] is read from, out of `events e`.
pub const COLUMNS: &str = "e.id AS row_id, e.event_id, e.stream_id, e.stream_type, \
     e.stream_version, e.workspace_id, e.event_type, e.schema_version, e.payload::text AS payload, \
     e.metadata::text AS metadata, e.occurred_at, e.recorded_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CanonicalEvent {
    pub row_id: i64,
    pub event_id: Uuid,
    pub stream_id: String,
    pub stream_type: String,
    pub stream_version: i64,
    pub workspace_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: String,
    pub metadata: String,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
}

impl CanonicalEvent {
    pub fn chain_hash(&self, previous: &[u8; 32], position: i64) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(previous);
        h.update(position.to_be_bytes());
        h.update(self.event_id.as_bytes());
        h.update(self.workspace_id.as_bytes());
        h.update(self.stream_version.to_be_bytes());
        h.update(self.schema_version.to_be_bytes());
        h.update(self.occurred_at.timestamp_micros().to_be_bytes());
        h.update(self.recorded_at.timestamp_micros().to_be_bytes());
        for text in [
            &self.stream_id,
            &self.stream_type,
            &self.event_type,
            &self.payload,
            &self.metadata,
        ] {
            h.update((text.len() as u32).to_be_bytes());
            h.update(text.as_bytes());
        }
        h.finalize().into()
    }
}

pub fn to_array(bytes: &[u8]) -> Option<[u8; 32]> {
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> CanonicalEvent {
        CanonicalEvent {
            row_id: 1,
            event_id: Uuid::from_u128(1),
            stream_id: "workspace-1".into(),
            stream_type: "workspace".into(),
            stream_version: 1,
            workspace_id: Uuid::from_u128(2),
            event_type: "WorkspaceCreated".into(),
            schema_version: 1,
            payload: r#"{"name": "a"}"#.into(),
            metadata: "{}".into(),
            occurred_at: DateTime::UNIX_EPOCH,
            recorded_at: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn every_field_and_the_position_change_the_hash() {
        let base = event().chain_hash(&GENESIS, 1);
        assert_ne!(base, event().chain_hash(&GENESIS, 2));
        assert_ne!(base, event().chain_hash(&[1; 32], 1));
        let mut e = event();
        e.payload = r#"{"name": "b"}"#.into();
        assert_ne!(base, e.chain_hash(&GENESIS, 1));
        let mut e = event();
        e.recorded_at += chrono::Duration::microseconds(1);
        assert_ne!(base, e.chain_hash(&GENESIS, 1));
    }

    #[test]
    fn length_prefixes_keep_field_boundaries() {
        let mut a = event();
        a.stream_id = "ab".into();
        a.stream_type = "c".into();
        let mut b = event();
        b.stream_id = "a".into();
        b.stream_type = "bc".into();
        assert_ne!(a.chain_hash(&GENESIS, 1), b.chain_hash(&GENESIS, 1));
    }
}
