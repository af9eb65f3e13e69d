//! Google Ads failures by body, not only by status: quota errors arrive as 429 or 400 with
//! `RESOURCE_EXHAUSTED` / `RESOURCE_TEMPORARILY_EXHAUSTED` (and a `retryDelay`), an expired
//! token as 401 `UNAUTHENTICATED`; searchStream wraps its error object in an array.

use crate::wire::short;
use crate::ConnectorError;
use serde_json::Value;
use std::time::Duration;

/// The classified failure of a non-2xx answer, or of an `error` element in a stream.
pub fn classify(http_status: u16, body: &str) -> ConnectorError {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let error = parsed.as_ref().and_then(error_object);
    classify_error(http_status, error)
}

/// The `error` object of `{"error":…}` or of the first array element that has one.
pub(crate) fn error_object(v: &Value) -> Option<&Value> {
    match v {
        Value::Array(items) => items.iter().find_map(|i| i.get("error")),
        other => other.get("error"),
    }
}

pub(crate) fn classify_error(http_status: u16, error: Option<&Value>) -> ConnectorError {
    let status = error
        .and_then(|e| e.get("status"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let failures: Vec<&Value> = error
        .and_then(|e| e.get("details"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| d.get("errors").and_then(Value::as_array))
        .flatten()
        .collect();
    let codes: Vec<String> = failures
        .iter()
        .filter_map(|f| f.get("errorCode").and_then(Value::as_object))
        .flat_map(|o| o.iter())
        .map(|(kind, code)| format!("{kind}: {}", code.as_str().unwrap_or("?")))
        .collect();
    let quota = codes.iter().any(|c| {
        c.ends_with(": RESOURCE_TEMPORARILY_EXHAUSTED") || c.ends_with(": RESOURCE_EXHAUSTED")
    });
    if status == "RESOURCE_EXHAUSTED" || quota || http_status == 429 {
        let retry_after = failures
            .iter()
            .filter_map(|f| f.pointer("/details/quotaErrorDetails/retryDelay"))
            .find_map(Value::as_str)
            .and_then(parse_delay);
        return ConnectorError::Throttled { retry_after };
    }
    if http_status == 401 || status == "UNAUTHENTICATED" {
        return ConnectorError::AuthExpired;
    }
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let detail = failures
        .iter()
        .find_map(|f| f.get("message").and_then(Value::as_str))
        .unwrap_or(message);
    let text = format!(
        "Google Ads: HTTP {http_status} {status} {}: {}",
        codes.join(", "),
        short(detail)
    );
    if http_status >= 500 || matches!(status, "UNAVAILABLE" | "INTERNAL" | "DEADLINE_EXCEEDED") {
        ConnectorError::Transient(text)
    } else {
        ConnectorError::Invalid(text)
    }
}

/// A protobuf Duration as JSON: `"2s"`, `"0.5s"`.
fn parse_delay(text: &str) -> Option<Duration> {
    let secs: f64 = text.strip_suffix('s')?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUOTA: &str = r#"[{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.ads.googleads.v23.errors.GoogleAdsFailure","errors":[{"errorCode":{"quotaError":"RESOURCE_TEMPORARILY_EXHAUSTED"},"message":"Too many requests. Retry in 2 seconds.","details":{"quotaErrorDetails":{"rateScope":"DEVELOPER","rateName":"Number of operations for basic access","retryDelay":"2s"}}}],"requestId":"r1"}]}}]"#;

    #[test]
    fn quota_errors_are_throttles_with_the_retry_delay_whatever_the_status() {
        assert_eq!(
            classify(429, QUOTA),
            ConnectorError::Throttled {
                retry_after: Some(Duration::from_secs(2))
            }
        );
        let as_400 = r#"{"error":{"code":400,"status":"INVALID_ARGUMENT","message":"x","details":[{"errors":[{"errorCode":{"quotaError":"RESOURCE_TEMPORARILY_EXHAUSTED"},"details":{"quotaErrorDetails":{"retryDelay":"0.5s"}}}]}]}}"#;
        assert_eq!(
            classify(400, as_400),
            ConnectorError::Throttled {
                retry_after: Some(Duration::from_millis(500))
            }
        );
        let daily = r#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","message":"quota"}}"#;
        assert_eq!(
            classify(429, daily),
            ConnectorError::Throttled { retry_after: None }
        );
    }

    #[test]
    fn unauthenticated_is_auth_expired() {
        let body = r#"{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED","details":[{"@type":"type.googleapis.com/google.ads.googleads.v23.errors.GoogleAdsFailure","errors":[{"errorCode":{"authenticationError":"OAUTH_TOKEN_EXPIRED"},"message":"Oauth token is expired."}]}]}}"#;
        assert_eq!(classify(401, body), ConnectorError::AuthExpired);
    }

    #[test]
    fn a_client_read_without_its_manager_is_refused_for_good_not_retried_nor_reauthorized() {
        let body = r#"[{"error":{"code":403,"message":"The caller does not have permission","status":"PERMISSION_DENIED","details":[{"@type":"type.googleapis.com/google.ads.googleads.v23.errors.GoogleAdsFailure","errors":[{"errorCode":{"authorizationError":"USER_PERMISSION_DENIED"},"message":"User doesn't have permission to access customer. Note: If you're accessing a client customer, the manager's customer id must be set in the 'login-customer-id' header."}],"requestId":"r"}]}}]"#;
        match classify(403, body) {
            ConnectorError::Invalid(m) => {
                assert!(
                    m.contains("authorizationError: USER_PERMISSION_DENIED"),
                    "{m}"
                );
                assert!(m.contains("login-customer-id"), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn server_errors_are_transient_and_the_rest_invalid_with_the_code() {
        assert!(matches!(
            classify(
                503,
                r#"{"error":{"code":503,"status":"UNAVAILABLE","message":"down"}}"#
            ),
            ConnectorError::Transient(_)
        ));
        assert!(matches!(
            classify(502, "<html>bad gateway</html>"),
            ConnectorError::Transient(_)
        ));
        let bad = r#"[{"error":{"code":400,"status":"INVALID_ARGUMENT","message":"Request contains an invalid argument.","details":[{"errors":[{"errorCode":{"queryError":"UNRECOGNIZED_FIELD"},"message":"Unrecognized field in the query: 'x'."}]}]}}]"#;
        match classify(400, bad) {
            ConnectorError::Invalid(m) => {
                assert!(m.contains("queryError: UNRECOGNIZED_FIELD"), "{m}");
                assert!(m.contains("Unrecognized field"), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }
}
