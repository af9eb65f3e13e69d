//! Why a sync run failed, as a type from the connector that saw it to the `SyncFailed` event and
//! the read models: what kind of failure (what a person or the scheduler should do about it) and
//! a message for people. Never parsed back out of text.

use serde::{Deserialize, Serialize};
use std::fmt;

crate::named_enum! {
    pub enum FailureKind {
        /// The platform refused the connection's credentials: a person must reconnect it.
        AuthExpired => "auth_expired",
        /// The platform kept rate-limiting past every retry.
        Throttled => "throttled",
        /// A request or an answer made no sense (unknown account, malformed response, a platform
        /// that is not configured here).
        Invalid => "invalid",
        /// The platform kept failing (timeouts, 5xx, refused connections) past every retry, or
        /// its circuit breaker is open.
        PlatformDown => "platform_down",
        /// adledger itself failed (its database stayed unreachable, a stored value was
        /// unreadable).
        Internal => "internal",
        /// The run was taken over so many times without finishing that it was given up.
        Abandoned => "abandoned",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncFailure {
    pub kind: FailureKind,
    /// For people: what failed and where (which ad account, which step). No secrets, no SQL.
    pub message: String,
}

impl SyncFailure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for SyncFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}
