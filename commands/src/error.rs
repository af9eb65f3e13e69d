//! Why a command did not happen, in words the API maps to problem+json once.

use adledger_domain::DomainError;
use adledger_infra::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The workspace, connection, ... does not exist (or belongs to another workspace).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A business rule refused the command.
    #[error(transparent)]
    Rejected(DomainError),
    /// Other writers kept changing the stream; still conflicting after retries.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("idempotency key {0:?} was already used for a different request")]
    IdempotencyKeyReused(String),
    /// The ad platform failed (an OAuth code exchange, a discovery).
    #[error("ad platform error: {0}")]
    Connector(String),
    /// A sync run ended as failed (recorded in its `SyncFailed` event).
    #[error("the sync failed: {0}")]
    SyncFailed(adledger_domain::SyncFailure),
    /// The credentials were missing, wrong or expired (worded the same for every cause that
    /// must not be told apart, such as an unknown email and a wrong password).
    #[error("{0}")]
    Unauthenticated(String),
    /// The password was right; the account needs its TOTP or a recovery code too.
    #[error("a second factor (TOTP or recovery code) is required")]
    SecondFactorRequired,
    /// A refresh token was presented a second time: its whole session was revoked.
    #[error("this refresh token was already used; the session has been revoked")]
    RefreshTokenReused,
    /// The caller may see the workspace but not do this in it.
    #[error("{0}")]
    Forbidden(String),
    /// Too many failed attempts for this account; try again after this many seconds.
    #[error("too many failed attempts; try again in {retry_after_secs} s")]
    TooManyAttempts { retry_after_secs: u64 },
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("cryptography failed: {0}")]
    Crypto(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<DomainError> for CommandError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::NotFound(what) => CommandError::NotFound(what),
            other => CommandError::Rejected(other),
        }
    }
}

impl CommandError {
    /// Whether the same command may succeed once the database is back: worth retrying for work
    /// that must not be lost (a sync run's writes).
    pub fn is_transient(&self) -> bool {
        matches!(self, CommandError::Store(e) if e.is_transient())
    }
}

impl From<StoreError> for CommandError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::IdempotencyKeyReused { key } => CommandError::IdempotencyKeyReused(key),
            other => CommandError::Store(other),
        }
    }
}
