//! Meta failures by body: throttles are codes 4, 17, 32, 613 and 80000–80014 in a 400 answer
//! (with the wait in `x-business-use-case-usage`), 190 is an expired or revoked token, and
//! "please reduce the amount of data" asks for a smaller request rather than a retry.

use crate::wire::{short, Reply};
use crate::ConnectorError;
use serde::Deserialize;
use std::time::Duration;

#[derive(Deserialize, Default)]
struct Body {
    #[serde(default)]
    error: Option<GraphError>,
}

#[derive(Deserialize, Default)]
struct GraphError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: i64,
    #[serde(default)]
    error_subcode: Option<i64>,
    #[serde(default)]
    is_transient: Option<bool>,
}

fn error_of(body: &str) -> GraphError {
    serde_json::from_str::<Body>(body)
        .ok()
        .and_then(|b| b.error)
        .unwrap_or_default()
}

/// Whether Meta asks for less data per request (halve the range and try again).
pub fn asks_for_less_data(body: &str) -> bool {
    let e = error_of(body);
    e.error_subcode == Some(1_504_018)
        || e.message
            .to_ascii_lowercase()
            .contains("reduce the amount of data")
}

/// [`classify`] for an answer as read, with the wait its usage header states.
pub(crate) fn classify_reply(reply: &Reply) -> ConnectorError {
    let usage = reply
        .headers
        .get("x-business-use-case-usage")
        .and_then(|v| v.to_str().ok());
    classify(reply.status, usage, &reply.body)
}

/// The classified failure of a non-2xx answer. `business_usage` is the
/// `x-business-use-case-usage` header, whose `estimated_time_to_regain_access` (minutes) is the
/// wait when throttled.
pub fn classify(http_status: u16, business_usage: Option<&str>, body: &str) -> ConnectorError {
    let e = error_of(body);
    match e.code {
        4 | 17 | 32 | 613 | 80_000..=80_014 => ConnectorError::Throttled {
            retry_after: business_usage.and_then(regain_access),
        },
        // 102: session expired; 190: token expired, revoked or password changed.
        102 | 190 => ConnectorError::AuthExpired,
        // 1: unknown, 2: service temporarily unavailable.
        1 | 2 => ConnectorError::Transient(format!("Meta {}: {}", e.code, short(&e.message))),
        _ if http_status >= 500 || e.is_transient == Some(true) => ConnectorError::Transient(
            format!("Meta HTTP {http_status} {}: {}", e.code, short(&e.message)),
        ),
        _ => ConnectorError::Invalid(format!(
            "Meta HTTP {http_status} code {}{}: {}",
            e.code,
            e.error_subcode.map(|s| format!("/{s}")).unwrap_or_default(),
            short(&e.message)
        )),
    }
}

/// The longest `estimated_time_to_regain_access` (minutes) of any business in the header.
fn regain_access(header: &str) -> Option<Duration> {
    let usage: serde_json::Value = serde_json::from_str(header).ok()?;
    let minutes = usage
        .as_object()?
        .values()
        .filter_map(serde_json::Value::as_array)
        .flatten()
        .filter_map(|u| u.get("estimated_time_to_regain_access")?.as_u64())
        .max()?;
    (minutes > 0).then(|| Duration::from_secs(minutes * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttles_come_in_400_bodies_with_the_wait_in_the_usage_header() {
        let body = r#"{"error":{"message":"(#80004) There have been too many calls to this ad-account. Wait a bit and try again.","type":"OAuthException","code":80004,"error_subcode":2446079,"fbtrace_id":"A1"}}"#;
        let usage = r#"{"1000001":[{"type":"ads_insights","call_count":98,"total_cputime":20,"total_time":30,"estimated_time_to_regain_access":3}]}"#;
        assert_eq!(
            classify(400, Some(usage), body),
            ConnectorError::Throttled {
                retry_after: Some(Duration::from_secs(180))
            }
        );
        for code in [4, 17, 613, 80000, 80014] {
            let body = format!(r#"{{"error":{{"message":"x","code":{code}}}}}"#);
            assert_eq!(
                classify(400, None, &body),
                ConnectorError::Throttled { retry_after: None },
                "{code}"
            );
        }
    }

    #[test]
    fn code_190_is_auth_expired() {
        let body = r#"{"error":{"message":"Error validating access token: The user has not authorized application 123.","type":"OAuthException","code":190,"error_subcode":458,"fbtrace_id":"B"}}"#;
        assert_eq!(classify(400, None, body), ConnectorError::AuthExpired);
    }

    #[test]
    fn reduce_the_amount_of_data_is_recognised_and_others_are_invalid_or_transient() {
        let less = r#"{"error":{"message":"Please reduce the amount of data you're asking for, then retry your request","type":"OAuthException","code":1,"error_subcode":1504018}}"#;
        assert!(asks_for_less_data(less));
        assert!(!asks_for_less_data(
            r#"{"error":{"code":1,"message":"An unknown error occurred"}}"#
        ));
        assert!(matches!(
            classify(500, None, less),
            ConnectorError::Transient(_)
        ));
        let bad = r#"{"error":{"message":"(#100) Invalid parameter","type":"OAuthException","code":100,"error_subcode":1487534}}"#;
        assert!(
            matches!(classify(400, None, bad), ConnectorError::Invalid(m) if m.contains("code 100/1487534"))
        );
        assert!(matches!(
            classify(502, None, "<html>"),
            ConnectorError::Transient(_)
        ));
    }
}
