//! The audit package: a workspace's events, each with every canonical field exactly as hashed,
//! its position, the previous chain hash and its inclusion proof, plus the signed checkpoint
//! that covers them all, as NDJSON (a header line, then one line per event in log order).
//! [`verify`] checks one offline with nothing but the verifier keys: no database, no server.

use crate::checkpoint::{self, Checkpoint};
use crate::event_store::canonical::CanonicalEvent;
use crate::merkle::{self, Hash};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::BufRead;
use uuid::Uuid;

pub const FORMAT: &str = "adledger-audit-package/v1";

/// The first line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PackageHeader {
    pub format: String,
    pub workspace_id: Uuid,
    /// Events recorded at or after this time (none: from the start).
    pub from: Option<DateTime<Utc>>,
    /// Events recorded before this time (none: up to the checkpoint).
    pub to: Option<DateTime<Utc>>,
    /// The signed checkpoint (a C2SP signed note) every proof leads to.
    pub checkpoint: String,
}

/// One event line: what the chain hash covers, and how it reaches the checkpoint's root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageEvent {
    pub position: i64,
    /// The chain hash of the position before (base64; 32 zero bytes before the first).
    pub previous_hash: String,
    pub event_id: Uuid,
    pub stream_id: String,
    pub stream_type: String,
    pub stream_version: i64,
    pub workspace_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    /// The payload's JSON text exactly as hashed (as Postgres renders the stored jsonb).
    pub payload: String,
    pub metadata: String,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    /// The inclusion proof of leaf `position - 1` in the checkpoint's tree (base64).
    pub proof: Vec<String>,
}

impl PackageEvent {
    pub fn new(event: &CanonicalEvent, position: i64, previous: &Hash, proof: &[Hash]) -> Self {
        Self {
            position,
            previous_hash: STANDARD.encode(previous),
            event_id: event.event_id,
            stream_id: event.stream_id.clone(),
            stream_type: event.stream_type.clone(),
            stream_version: event.stream_version,
            workspace_id: event.workspace_id,
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            payload: event.payload.clone(),
            metadata: event.metadata.clone(),
            occurred_at: event.occurred_at,
            recorded_at: event.recorded_at,
            proof: proof.iter().map(|h| STANDARD.encode(h)).collect(),
        }
    }

    /// The chain hash recomputed from the fields.
    fn chain_hash(&self, previous: &Hash) -> Hash {
        CanonicalEvent {
            row_id: 0,
            event_id: self.event_id,
            stream_id: self.stream_id.clone(),
            stream_type: self.stream_type.clone(),
            stream_version: self.stream_version,
            workspace_id: self.workspace_id,
            event_type: self.event_type.clone(),
            schema_version: self.schema_version,
            payload: self.payload.clone(),
            metadata: self.metadata.clone(),
            occurred_at: self.occurred_at,
            recorded_at: self.recorded_at,
        }
        .chain_hash(previous, self.position)
    }
}

/// What a package that verified covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub workspace_id: Uuid,
    pub events: u64,
    pub checkpoint: Checkpoint,
    /// `name+hexid` of the keys that signed the checkpoint.
    pub signed_by: Vec<String>,
}

/// Why a package does not verify; an event failure names the first event that fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackageError {
    #[error("the package cannot be read: {0}")]
    Unreadable(String),
    #[error("the package's checkpoint does not verify: {0}")]
    Checkpoint(String),
    #[error("event at position {position} ({event_id}, line {line}) fails: {why}")]
    Event {
        line: u64,
        position: i64,
        event_id: Uuid,
        why: String,
    },
}

fn decode_hash(text: &str) -> Option<Hash> {
    STANDARD.decode(text).ok()?.try_into().ok()
}

/// Checks a package against these verifier keys: the checkpoint's signature, then for each
/// event in order its place (workspace, order, range, no gap in its stream), its recomputed
/// chain hash, and that hash's leaf in the checkpoint's tree. `progress` is called per event.
pub fn verify(
    package: impl BufRead,
    verifier_keys: &[String],
    mut progress: impl FnMut(),
) -> Result<Verified, PackageError> {
    let mut lines = package.lines();
    let unreadable = |e: std::io::Error| PackageError::Unreadable(e.to_string());
    let header = lines
        .next()
        .ok_or_else(|| PackageError::Unreadable("it is empty".to_owned()))?
        .map_err(unreadable)?;
    let header: PackageHeader = serde_json::from_str(&header)
        .map_err(|e| PackageError::Unreadable(format!("the header line: {e}")))?;
    if header.format != FORMAT {
        return Err(PackageError::Unreadable(format!(
            "format {:?}, expected {FORMAT:?}",
            header.format
        )));
    }
    let (checkpoint, signed_by) = checkpoint::open(&header.checkpoint, verifier_keys)
        .map_err(|e| PackageError::Checkpoint(e.to_string()))?;
    let size = checkpoint.size;
    let mut last: Option<(i64, Hash)> = None;
    let mut streams: HashMap<String, i64> = HashMap::new();
    let mut events = 0;
    for (n, line) in lines.enumerate() {
        let line_no = n as u64 + 2;
        let line = line.map_err(unreadable)?;
        if line.is_empty() {
            continue;
        }
        let event: PackageEvent = serde_json::from_str(&line).map_err(|e| {
            PackageError::Unreadable(format!("line {line_no} is not an event: {e}"))
        })?;
        let fail = |why: String| PackageError::Event {
            line: line_no,
            position: event.position,
            event_id: event.event_id,
            why,
        };
        if event.workspace_id != header.workspace_id {
            return Err(fail(format!(
                "it belongs to workspace {}, not {}",
                event.workspace_id, header.workspace_id
            )));
        }
        if let Some((previous_position, _)) = last {
            if event.position <= previous_position {
                return Err(fail(format!(
                    "out of log order: it follows position {previous_position}"
                )));
            }
        }
        if event.position < 1 || event.position as u64 > size {
            return Err(fail(format!(
                "position outside the checkpoint's tree of {size} events"
            )));
        }
        let outside = header.from.is_some_and(|from| event.recorded_at < from)
            || header.to.is_some_and(|to| event.recorded_at >= to);
        if outside {
            return Err(fail("recorded outside the package's time range".to_owned()));
        }
        // Versions of a stream are dense from 1: within the package a stream may not skip
        // one, and a package of the whole history starts every stream at version 1.
        let expected = match streams.get(&event.stream_id) {
            Some(version) => Some(version + 1),
            None if header.from.is_none() => Some(1),
            None => None,
        };
        if let Some(expected) = expected.filter(|v| *v != event.stream_version) {
            return Err(fail(format!(
                "stream {} has version {} where version {expected} belongs: an event of it is \
                 missing or out of place",
                event.stream_id, event.stream_version
            )));
        }
        let previous = decode_hash(&event.previous_hash)
            .ok_or_else(|| fail("previous_hash is not a base64 SHA-256 hash".to_owned()))?;
        if let Some((p, chain)) = last {
            if p + 1 == event.position && chain != previous {
                return Err(fail(
                    "previous_hash is not the chain hash of the event before it".to_owned(),
                ));
            }
        }
        let proof = event
            .proof
            .iter()
            .map(|h| decode_hash(h))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| fail("the proof holds a hash that is not base64 SHA-256".to_owned()))?;
        let chain = event.chain_hash(&previous);
        let leaf = merkle::leaf_hash(&chain);
        merkle::verify_inclusion(
            &leaf,
            event.position as u64 - 1,
            size,
            &proof,
            &checkpoint.root,
        )
        .map_err(|e| {
            fail(format!(
                "its recomputed chain hash is not in the checkpoint's tree ({e}): the event, \
                 its previous hash or its proof was altered"
            ))
        })?;
        streams.insert(event.stream_id.clone(), event.stream_version);
        last = Some((event.position, chain));
        events += 1;
        progress();
    }
    Ok(Verified {
        workspace_id: header.workspace_id,
        events,
        checkpoint,
        signed_by,
    })
}
