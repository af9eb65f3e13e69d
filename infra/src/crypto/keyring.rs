//! Key rings with key ids, whatever the key material: the `kid:value,…` list they are read from
//! and written to, the active (first) key, lookup by kid, and rotation. It never prints a key:
//! `Debug` shows key ids only, and the list text comes back as a [`Secret`].

use super::CryptoError;
use crate::secret::Secret;
use std::fmt;
use std::sync::Arc;

const MAX_KID_LEN: usize = 32;

/// Why a key list (`ADLEDGER_MASTER_KEYS`, `ADLEDGER_JWT_KEYS`) was refused. Never holds a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyListError {
    #[error("{0} is not set")]
    MissingEnv(&'static str),
    #[error("the key list is empty")]
    Empty,
    #[error("key entry {position} is not `kid:key`")]
    NotKidColonKey { position: usize },
    #[error("key id {kid:?} is invalid: use 1 to 32 of A-Z a-z 0-9 _ -")]
    BadKid { kid: String },
    #[error("key id {kid:?} appears twice")]
    DuplicateKid { kid: String },
    #[error("key {kid:?} is not valid base64")]
    BadBase64 { kid: String },
    #[error("key {kid:?} has {actual} bytes; it must have exactly {expected}")]
    WrongLength {
        kid: String,
        actual: usize,
        expected: usize,
    },
    #[error("key {kid:?} is the active key and cannot be dropped")]
    ActiveKey { kid: String },
    #[error("key {kid:?} has {actual} bytes; it must have at least {min}")]
    TooShort {
        kid: String,
        actual: usize,
        min: usize,
    },
}

/// One key of a ring: what the ring needs to know of its material. Rotation copies keys into the
/// new ring, hence `Clone`.
pub trait RingKey: Clone {
    /// The environment variable [`KeyRing::from_env`] reads.
    const ENV: &'static str;
    /// The ring's name in `Debug`.
    const RING: &'static str;
    fn kid(&self) -> &str;
    /// The key an entry's value text stands for (the kid is already checked).
    fn read(kid: String, value: &str) -> Result<Self, KeyListError>;
    /// A fresh random key.
    fn random(kid: String) -> Result<Self, CryptoError>;
    /// The entry's value text, as [`RingKey::read`] takes it back.
    fn write(&self) -> String;
}

/// A ring of keys with distinct ids. Cheap to clone. The first key is active (seals or signs);
/// every key opens or verifies what it made, so a rotation puts a new key in front and keeps the
/// old ones until nothing needs them.
#[derive(Clone)]
pub struct KeyRing<K> {
    keys: Arc<Vec<K>>,
}

impl<K: RingKey> fmt::Debug for KeyRing<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(K::RING).field("kids", &self.kids()).finish()
    }
}

impl<K: RingKey> KeyRing<K> {
    fn of(keys: Vec<K>) -> Self {
        Self {
            keys: Arc::new(keys),
        }
    }

    /// Parses `kid2:VALUE,kid1:VALUE`, the first being the active key.
    pub fn parse(text: &str) -> Result<Self, KeyListError> {
        let keys = split_key_list(text)?
            .into_iter()
            .map(|(kid, value)| K::read(kid, &value))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::of(keys))
    }

    /// Reads the ring's environment variable ([`RingKey::ENV`]).
    pub fn from_env() -> Result<Self, KeyListError> {
        let text = std::env::var(K::ENV).map_err(|_| KeyListError::MissingEnv(K::ENV))?;
        Self::parse(&text)
    }

    /// A ring of one fresh random key (`adledger keys generate`).
    pub fn generate(kid: &str) -> Result<Self, CryptoError> {
        Ok(Self::of(vec![random_key(kid)?]))
    }

    /// This ring with a fresh random key `kid` in front, made active (`adledger keys rotate`).
    pub fn with_new_active(&self, kid: &str) -> Result<Self, CryptoError> {
        if self.by_kid(kid).is_some() {
            return Err(KeyListError::DuplicateKid { kid: kid.into() }.into());
        }
        let mut keys = vec![random_key(kid)?];
        keys.extend(self.keys.iter().cloned());
        Ok(Self::of(keys))
    }

    /// This ring without `kid` (after a re-wrap, to retire an old key). Refuses to drop the
    /// active key or the last one.
    pub fn without(&self, kid: &str) -> Result<Self, CryptoError> {
        if self.active_kid() == kid {
            return Err(KeyListError::ActiveKey { kid: kid.into() }.into());
        }
        if self.by_kid(kid).is_none() {
            return Err(CryptoError::UnknownKid(kid.into()));
        }
        let keys = self.keys.iter().filter(|k| k.kid() != kid).cloned();
        Ok(Self::of(keys.collect()))
    }

    /// The value for the ring's environment variable, in ring order.
    pub fn to_env_string(&self) -> Secret<String> {
        let text = self
            .keys
            .iter()
            .map(|k| format!("{}:{}", k.kid(), k.write()))
            .collect::<Vec<_>>()
            .join(",");
        Secret::new(text)
    }

    pub fn active_kid(&self) -> &str {
        // A ring always has a key: every constructor refuses an empty one.
        self.keys.first().map(|k| k.kid()).unwrap_or("")
    }

    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.kid()).collect()
    }

    pub(crate) fn active(&self) -> Result<&K, CryptoError> {
        self.keys.first().ok_or(KeyListError::Empty.into())
    }

    pub(crate) fn by_kid(&self, kid: &str) -> Option<&K> {
        self.keys.iter().find(|k| k.kid() == kid)
    }
}

fn random_key<K: RingKey>(kid: &str) -> Result<K, CryptoError> {
    if !valid_kid(kid) {
        return Err(KeyListError::BadKid { kid: kid.into() }.into());
    }
    K::random(kid.into())
}

fn valid_kid(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= MAX_KID_LEN
        && kid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Splits `kid:value,kid:value` into checked, distinct kids and their raw value texts.
fn split_key_list(text: &str) -> Result<Vec<(String, String)>, KeyListError> {
    let mut entries: Vec<(String, String)> = Vec::new();
    for (i, entry) in text
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .enumerate()
    {
        let (kid, value) = entry
            .split_once(':')
            .ok_or(KeyListError::NotKidColonKey { position: i + 1 })?;
        let (kid, value) = (kid.trim(), value.trim());
        if !valid_kid(kid) {
            return Err(KeyListError::BadKid { kid: kid.into() });
        }
        if entries.iter().any(|(k, _)| k == kid) {
            return Err(KeyListError::DuplicateKid { kid: kid.into() });
        }
        entries.push((kid.into(), value.into()));
    }
    if entries.is_empty() {
        return Err(KeyListError::Empty);
    }
    Ok(entries)
}
