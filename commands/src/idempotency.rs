//! Idempotency keys: a retried request with the same key answers what the first one did and
//! appends nothing; the same key with a different request is refused. A key belongs to the
//! caller who sent it and the route it was sent to, never to everyone.

use crate::{CommandError, Commands};
use adledger_infra::{AppendOutcome, Idempotency, StoreError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A client's idempotency key with what it is scoped to: who sent it and where (as Stripe scopes
/// keys to an account), so one caller can neither answer another's retry nor burn their keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    scope: String,
    key: String,
}

impl IdempotencyKey {
    /// `scope` names the caller and the route, e.g. `user:<id> POST /v1/workspaces`.
    pub fn new(scope: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            scope: scope.into(),
            key: key.into(),
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }
}

/// The idempotency record for a command, when the caller sent a key. `request` names the command
/// and holds every input that makes it this request; `outcome` is what it answers.
pub fn idempotency(
    key: Option<&IdempotencyKey>,
    request: &Value,
    outcome: impl Serialize,
) -> Result<Option<Idempotency>, CommandError> {
    let Some(key) = key else { return Ok(None) };
    Ok(Some(Idempotency {
        scope: key.scope.clone(),
        key: key.key.clone(),
        fingerprint: fingerprint(request),
        outcome: serde_json::to_value(outcome)
            .map_err(|e| StoreError::Corrupt(format!("outcome is not serialisable: {e}")))?,
    }))
}

/// SHA-256 of the request's JSON text. Requests are built field by field in a fixed order, so
/// the same inputs always give the same text.
pub fn fingerprint(request: &Value) -> String {
    hex::encode(Sha256::digest(request.to_string().as_bytes()))
}

/// Reads an outcome stored by an earlier run of the same request.
pub fn stored<T: DeserializeOwned>(outcome: Value) -> Result<T, CommandError> {
    serde_json::from_value(outcome).map_err(|e| {
        StoreError::Corrupt(format!("stored idempotent outcome is unreadable: {e}")).into()
    })
}

impl Commands {
    /// The answer an earlier run of the same request gave, when its key was used before.
    pub(crate) async fn earlier<T: DeserializeOwned>(
        &self,
        idempotency: Option<&Idempotency>,
    ) -> Result<Option<T>, CommandError> {
        match self.first_answer(idempotency).await? {
            Some(outcome) => Ok(Some(stored(outcome)?)),
            None => Ok(None),
        }
    }

    /// The stored first answer under this key, as the store keeps it; the same key with another
    /// request is refused.
    pub(crate) async fn first_answer(
        &self,
        idempotency: Option<&Idempotency>,
    ) -> Result<Option<Value>, CommandError> {
        let Some(idempotency) = idempotency else {
            return Ok(None);
        };
        match self.store.idempotent_outcome(idempotency).await? {
            Some(AppendOutcome::Duplicate { outcome }) => Ok(Some(outcome)),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fingerprints_are_stable_and_tell_requests_apart() {
        assert_eq!(
            fingerprint(&json!({"name": "a"})),
            fingerprint(&json!({"name": "a"}))
        );
        assert_ne!(
            fingerprint(&json!({"name": "a"})),
            fingerprint(&json!({"name": "b"}))
        );
    }
}
