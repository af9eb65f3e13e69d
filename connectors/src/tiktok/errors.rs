//! TikTok failures: every answer is `{"code","message","request_id","data"}` and a non-zero
//! `code` is an error even with HTTP 200. 40100 is a throttle, 40105 a revoked or invalid token.

use crate::wire::{short, Reply};
use crate::ConnectorError;
use serde::de::DeserializeOwned;
use serde::Deserialize;

pub const THROTTLED: i64 = 40100;
pub const TOKEN_INVALID: i64 = 40105;
pub const AUTH_CODE_INVALID: i64 = 40110;

/// The classified failure of an answer with HTTP status `http_status` and TikTok `code`.
pub fn classify(http_status: u16, code: i64, message: &str) -> ConnectorError {
    match code {
        THROTTLED => ConnectorError::Throttled { retry_after: None },
        // 40104: the token is missing or empty; 40105: invalid or revoked.
        40104 | TOKEN_INVALID => ConnectorError::AuthExpired,
        AUTH_CODE_INVALID => ConnectorError::Invalid(format!(
            "TikTok refused the authorization code (40110): {}",
            short(message)
        )),
        // 50000 and up: TikTok's own server errors.
        50000.. => ConnectorError::Transient(format!("TikTok {code}: {}", short(message))),
        _ if http_status >= 500 => {
            ConnectorError::Transient(format!("TikTok HTTP {http_status}: {}", short(message)))
        }
        _ => ConnectorError::Invalid(format!("TikTok {code}: {}", short(message))),
    }
}

#[derive(Deserialize)]
struct Envelope {
    code: i64,
    #[serde(default)]
    message: String,
    #[serde(default)]
    data: Option<Box<serde_json::value::RawValue>>,
}

/// The `data` of a successful answer as `T`, or the classified failure.
pub(crate) fn data<T: DeserializeOwned>(reply: &Reply, what: &str) -> Result<T, ConnectorError> {
    let envelope: Envelope = match serde_json::from_str(&reply.body) {
        Ok(e) => e,
        Err(_) if reply.status >= 500 || reply.status == 429 => {
            return Err(ConnectorError::Transient(format!(
                "TikTok HTTP {} for {what}",
                reply.status
            )))
        }
        Err(e) => {
            return Err(ConnectorError::Invalid(format!(
                "unreadable {what} (HTTP {}): {}",
                reply.status,
                short(&e.to_string())
            )))
        }
    };
    if envelope.code != 0 || !reply.is_success() {
        return Err(classify(reply.status, envelope.code, &envelope.message));
    }
    let raw = envelope.data.as_deref().map_or("null", |d| d.get());
    serde_json::from_str(raw).map_err(|e| {
        ConnectorError::Invalid(format!("unreadable {what}: {}", short(&e.to_string())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_in_a_200_answer_are_classified() {
        assert_eq!(
            classify(200, 40100, "Too many requests"),
            ConnectorError::Throttled { retry_after: None }
        );
        assert_eq!(
            classify(200, 40105, "Access token is incorrect or has been revoked."),
            ConnectorError::AuthExpired
        );
        assert!(
            matches!(classify(200, 40110, "Auth code is invalid"), ConnectorError::Invalid(m) if m.contains("40110"))
        );
        assert!(matches!(
            classify(200, 51001, "internal"),
            ConnectorError::Transient(_)
        ));
        assert!(matches!(
            classify(200, 40002, "max 30 days"),
            ConnectorError::Invalid(_)
        ));
        assert!(matches!(
            classify(503, 0, "gateway"),
            ConnectorError::Transient(_)
        ));
    }
}
