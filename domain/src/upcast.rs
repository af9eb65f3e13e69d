//! Upcasters: turn a stored payload of an older schema version into the current one, on read.
//! Stored events are never rewritten; each step here is a pure function of the old payload.
//!
//! History:
//! - `DailyInsightsRecorded` / `DailyInsightsRestated` v1 stored spend as integer micros
//!   (`spend_micros`, and `previous.spend_micros`); v2 stores an exact decimal string `spend`.
//! - `SyncFailed` v1 stored a `reason` text whose first word named the kind of failure
//!   (`auth_expired: …`, `transient: …`, `abandoned: …`); v2 stores a typed `failure`
//!   (`{"kind": …, "message": …}`). A v1 connector's `transient` is v2's `platform_down`.

use crate::event::DecodeError;
use crate::failure::FailureKind;
use rust_decimal::Decimal;
use serde_json::{json, Value};

/// Brings `payload` from `version` to the current schema version of `event_type`.
pub fn upcast(event_type: &str, version: i32, mut payload: Value) -> Result<Value, DecodeError> {
    let current = crate::DomainEvent::TYPES
        .iter()
        .find(|(name, _)| *name == event_type)
        .map(|(_, v)| *v)
        .ok_or_else(|| DecodeError::UnknownType(event_type.to_owned()))?;
    if version < 1 || version > current {
        return Err(DecodeError::UnknownVersion {
            event_type: event_type.to_owned(),
            version,
        });
    }
    let mut at = version;
    while at < current {
        payload = match (event_type, at) {
            ("DailyInsightsRecorded", 1) => micros_to_spend(payload, event_type)?,
            ("DailyInsightsRestated", 1) => {
                let mut p = micros_to_spend(payload, event_type)?;
                if let Some(previous) = p.get_mut("previous") {
                    *previous = micros_to_spend(previous.take(), event_type)?;
                }
                p
            }
            ("SyncFailed", 1) => typed_failure(payload, event_type)?,
            _ => {
                return Err(DecodeError::UnknownVersion {
                    event_type: event_type.to_owned(),
                    version: at,
                })
            }
        };
        at += 1;
    }
    Ok(payload)
}

fn micros_to_spend(mut payload: Value, event_type: &str) -> Result<Value, DecodeError> {
    let bad = |reason: &str| DecodeError::Payload {
        event_type: event_type.to_owned(),
        reason: reason.to_owned(),
    };
    let object = payload
        .as_object_mut()
        .ok_or_else(|| bad("v1 payload is not an object"))?;
    let micros = object
        .remove("spend_micros")
        .and_then(|v| v.as_i64())
        .ok_or_else(|| bad("v1 payload has no integer spend_micros"))?;
    let spend = Decimal::new(micros, 6).normalize();
    object.insert("spend".to_owned(), Value::String(spend.to_string()));
    Ok(payload)
}

/// `reason: "kind: message"` becomes `failure: {kind, message}`; a reason whose first word is
/// no known kind stays whole as the message of an `internal` failure.
fn typed_failure(mut payload: Value, event_type: &str) -> Result<Value, DecodeError> {
    let object = payload
        .as_object_mut()
        .ok_or_else(|| DecodeError::Payload {
            event_type: event_type.to_owned(),
            reason: "v1 payload is not an object".to_owned(),
        })?;
    let reason = match object.remove("reason") {
        Some(Value::String(reason)) => reason,
        _ => String::new(),
    };
    let (kind, message) = match reason.split_once(':') {
        Some(("transient", rest)) => (Some(FailureKind::PlatformDown), rest),
        Some((word, rest)) => (FailureKind::parse(word.trim()), rest),
        None => (None, reason.as_str()),
    };
    let (kind, message) = match kind {
        Some(kind) => (kind, message.trim()),
        None => (FailureKind::Internal, reason.as_str()),
    };
    object.insert(
        "failure".to_owned(),
        json!({"kind": kind.as_str(), "message": message}),
    );
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DomainEvent;
    use serde_json::json;

    fn v1_recorded() -> Value {
        json!({
            "campaign_id": "00000000-0000-0000-0000-000000000001",
            "connection_id": "00000000-0000-0000-0000-000000000002",
            "platform": "sandbox",
            "ad_account_id": "sandbox-1",
            "sync_id": "00000000-0000-0000-0000-000000000003",
            "date": "2024-01-01",
            "currency": "USD",
            "impressions": 1000,
            "clicks": 42,
            "spend_micros": 12_340_000,
            "conversions": "3",
            "conversion_value": "150.5",
            "revision": 1
        })
    }

    #[test]
    fn v1_spend_micros_become_an_exact_decimal() {
        let event = DomainEvent::decode("DailyInsightsRecorded", 1, v1_recorded()).unwrap();
        let DomainEvent::DailyInsightsRecorded(e) = event else {
            panic!("wrong variant")
        };
        assert_eq!(e.metrics.spend.to_string(), "12.34");
    }

    #[test]
    fn v1_restatement_upcasts_both_current_and_previous() {
        let mut payload = v1_recorded();
        payload["spend_micros"] = json!(20_000_000);
        payload["revision"] = json!(2);
        payload["previous_currency"] = json!("USD");
        payload["previous"] = json!({
            "impressions": 900, "clicks": 40, "spend_micros": 1, "conversions": "2",
            "conversion_value": "100"
        });
        let DomainEvent::DailyInsightsRestated(e) =
            DomainEvent::decode("DailyInsightsRestated", 1, payload).unwrap()
        else {
            panic!("wrong variant")
        };
        assert_eq!(e.metrics.spend.to_string(), "20");
        assert_eq!(e.previous.spend.to_string(), "0.000001");
    }

    #[test]
    fn v1_sync_failures_become_typed() {
        let v1 = |reason: &str| {
            json!({
                "sync_id": "00000000-0000-0000-0000-000000000003",
                "connection_id": "00000000-0000-0000-0000-000000000002",
                "reason": reason,
                "counts": {"days_recorded": 4, "days_restated": 0, "days_unchanged": 1}
            })
        };
        let failure = |reason: &str| {
            let DomainEvent::SyncFailed(e) =
                DomainEvent::decode("SyncFailed", 1, v1(reason)).unwrap()
            else {
                panic!("wrong variant")
            };
            assert_eq!(e.counts.days_recorded, 4, "the rest of the payload is kept");
            (e.failure.kind, e.failure.message)
        };
        assert_eq!(
            failure("auth_expired: ad account act_1: the platform authorization expired"),
            (
                FailureKind::AuthExpired,
                "ad account act_1: the platform authorization expired".to_owned()
            )
        );
        assert_eq!(
            failure("transient: discovery: timed out").0,
            FailureKind::PlatformDown
        );
        assert_eq!(
            failure("abandoned: no progress recorded before a new sync started").0,
            FailureKind::Abandoned
        );
        assert_eq!(failure("throttled: x").0, FailureKind::Throttled);
        assert_eq!(
            failure("boom"),
            (FailureKind::Internal, "boom".to_owned()),
            "an unknown shape is kept whole"
        );
        assert_eq!(
            failure("database: down").1,
            "database: down",
            "an unknown first word is not cut off"
        );
    }

    #[test]
    fn versions_from_the_future_are_refused() {
        assert!(matches!(
            upcast("DailyInsightsRecorded", 3, v1_recorded()),
            Err(DecodeError::UnknownVersion { version: 3, .. })
        ));
        assert!(upcast("WorkspaceCreated", 0, json!({})).is_err());
    }
}
