//! Why a command was refused. Each variant is a business rule, worded for the person who sent it.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    #[error("{0} does not exist")]
    NotFound(&'static str),
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("a sync is already running for this connection ({0})")]
    SyncAlreadyRunning(crate::SyncId),
    #[error("sync {0} is not running")]
    SyncNotRunning(crate::SyncId),
    /// Another worker holds the run now (this one's lease lapsed and the run was taken over).
    #[error("sync {0} is run by another worker")]
    SyncClaimedElsewhere(crate::SyncId),
    #[error("campaign {0} does not belong to this connection")]
    UnknownCampaign(crate::CampaignId),
    /// The connection needs a person to reconnect it, or was disconnected.
    #[error("the connection is {0}")]
    ConnectionUnavailable(&'static str),
}

impl DomainError {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        DomainError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}
