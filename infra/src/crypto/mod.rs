//! Security primitives: master keys with key ids (AES-256-GCM), per-subject data keys for
//! crypto-shredding personal data, password hashing, TOTP, JWT access tokens and opaque tokens.
//! It owns key material and the formats of what it seals; it never logs or prints a key, a
//! plaintext or a token, and never decides policy (who may log in, how long a session lives).

mod email_subjects;
pub mod keyring;
pub mod master_keys;
pub mod password;
mod reveal;
pub mod subject_keys;
pub mod tokens;
pub mod totp;

pub use keyring::{KeyListError, KeyRing, RingKey};
pub use master_keys::{MasterKeys, MASTER_KEYS_ENV};
pub use password::{hash_password, needs_rehash, verify_dummy, verify_password};
pub use subject_keys::{is_sealed, sealed_subject, Opened, Sealer, ERASED_MARKER};
pub use tokens::{
    hash_token, verify_token_hash, Claims, JwtKeys, OpaqueToken, TokenError, TokenKind,
    JWT_KEYS_ENV,
};
pub use totp::{
    hash_recovery_code, recovery_codes, verify_recovery_code, RecoveryCode, TotpSecret, TOTP_ISSUER,
};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error(transparent)]
    KeyList(#[from] KeyListError),
    #[error("no key with id {0:?} (was it dropped from the key list before a re-wrap?)")]
    UnknownKid(String),
    #[error("malformed sealed value: {0}")]
    Malformed(&'static str),
    #[error("decryption failed: wrong key, wrong associated data or tampered ciphertext")]
    Decrypt,
    #[error("the operating system's random number generator failed")]
    Rng,
    #[error("subject {0} was erased: nothing can be sealed for it any more")]
    SubjectErased(uuid::Uuid),
    #[error(
        "no key for subject {0}: sealed data without its key row (restored without subject_keys?)"
    )]
    MissingSubjectKey(uuid::Uuid),
    #[error("password hashing failed: {0}")]
    Password(String),
    #[error("token encoding failed: {0}")]
    Token(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// `N` bytes from the operating system's random number generator.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|_| CryptoError::Rng)?;
    Ok(buf)
}

pub(crate) fn b64_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn b64_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}
