//! Crypto-shredding: personal data in events is sealed under a data key of its subject (a user,
//! an API key, an invitation: any id), and erasing that key makes every copy unreadable while the
//! log stays immutable (DESIGN.md, property 8). Data keys live in `subject_keys`, wrapped by the
//! master keys. It never deletes a key row (the row proves the erasure) and never serves a key
//! that this process has erased.
//!
//! Cache rules: unwrapped keys are cached in-process for a short TTL (default
//! [`DEFAULT_CACHE_TTL`]); an erasure is cached for good (it is permanent). `erase` drops the key
//! from this process's cache before it returns, and a load that raced with it is not cached (an
//! erase generation counter), so this process never uses an erased key after `erase` returned.
//! Other processes stop using it when their cached copy expires: at most one TTL later.

use super::master_keys::{decrypt, encrypt, MasterKeys, NONCE_LEN};
use super::{b64_decode, b64_encode, random_bytes, CryptoError};
use aes_gcm::aead::KeyInit;
use aes_gcm::Aes256Gcm;
use sqlx::PgPool;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use uuid::Uuid;

const PREFIX: &str = "sealed:v1:";
/// What [`Sealer::reveal_or_marker`] shows for erased data.
pub const ERASED_MARKER: &str = "[erased]";
/// How long another process may go on using a key after it was erased elsewhere.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(30);
const MAX_CACHED: usize = 10_000;
const REWRAP_BATCH: i64 = 500;

/// What a stored text turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// Not sealed (written before sealing, or not personal): returned as is.
    Plain(String),
    /// Sealed, and its subject's key still exists.
    Revealed(String),
    /// Sealed, and its subject's key was erased: the plaintext is gone for good.
    Erased,
}

impl Opened {
    /// The text, or [`ERASED_MARKER`].
    pub fn into_text_or_marker(self) -> String {
        match self {
            Opened::Plain(text) | Opened::Revealed(text) => text,
            Opened::Erased => ERASED_MARKER.to_owned(),
        }
    }
}

/// Whether `text` is a value sealed by a [`Sealer`] (`sealed:v1:<subject>:<data>`).
pub fn is_sealed(text: &str) -> bool {
    text.starts_with(PREFIX)
}

/// The subject a sealed value belongs to.
pub fn sealed_subject(text: &str) -> Option<Uuid> {
    parse(text).ok().flatten().map(|(subject, _)| subject)
}

/// `Ok(None)` for plain text; the subject and `nonce || ciphertext` for a sealed value.
fn parse(text: &str) -> Result<Option<(Uuid, Vec<u8>)>, CryptoError> {
    let Some(rest) = text.strip_prefix(PREFIX) else {
        return Ok(None);
    };
    let (subject, data) = rest.split_once(':').ok_or(CryptoError::Malformed(
        "expected sealed:v1:<subject>:<data>",
    ))?;
    let subject =
        Uuid::parse_str(subject).map_err(|_| CryptoError::Malformed("subject is not a uuid"))?;
    let data = b64_decode(data).ok_or(CryptoError::Malformed("data is not base64"))?;
    if data.len() < NONCE_LEN {
        return Err(CryptoError::Malformed("data is too short"));
    }
    Ok(Some((subject, data)))
}

/// Associated data of a wrapped data key: the key is bound to its subject's row.
pub(super) fn wrap_aad(subject: Uuid) -> Vec<u8> {
    let mut aad = b"adledger subject key ".to_vec();
    aad.extend_from_slice(subject.as_bytes());
    aad
}

#[derive(Clone)]
enum KeyState {
    Live(Arc<Aes256Gcm>),
    Erased,
}

enum Entry {
    Live {
        cipher: Arc<Aes256Gcm>,
        loaded: Instant,
    },
    Erased,
}

#[derive(Default)]
struct Cache {
    /// Bumped by every erase: a load that started before it must not be cached.
    generation: u64,
    entries: HashMap<Uuid, Entry>,
}

/// A `subject_keys` row: `W` is `String` where only live keys are selected, else optional.
#[derive(sqlx::FromRow)]
struct StoredKey<W> {
    subject_id: Uuid,
    wrapped_key: W,
}

struct Inner {
    pool: PgPool,
    keys: MasterKeys,
    ttl: Duration,
    cache: Mutex<Cache>,
    /// The key of email digests (`email_subjects.rs`), loaded once: it never changes.
    digest_key: tokio::sync::OnceCell<Arc<[u8; 32]>>,
}

/// Seals and opens personal data per subject. Cheap to clone (one shared cache per `new`).
#[derive(Clone)]
pub struct Sealer {
    inner: Arc<Inner>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("keys", &self.inner.keys)
            .field("cache_ttl", &self.inner.ttl)
            .finish()
    }
}

impl Sealer {
    pub fn new(pool: PgPool, keys: MasterKeys) -> Self {
        Self::with_cache_ttl(pool, keys, DEFAULT_CACHE_TTL)
    }

    /// A zero TTL reads the key from the database on every call (strict cross-process erasure).
    pub fn with_cache_ttl(pool: PgPool, keys: MasterKeys, ttl: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                keys,
                ttl,
                cache: Mutex::new(Cache::default()),
                digest_key: tokio::sync::OnceCell::new(),
            }),
        }
    }

    pub fn master_keys(&self) -> &MasterKeys {
        &self.inner.keys
    }

    pub(super) fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    pub(super) fn digest_key_cell(&self) -> &tokio::sync::OnceCell<Arc<[u8; 32]>> {
        &self.inner.digest_key
    }

    /// Seals `plaintext` under `subject`'s key, creating the key on first use:
    /// `sealed:v1:<subject>:<b64url(nonce || ciphertext)>`, for immutable event payloads.
    /// Fails with [`CryptoError::SubjectErased`] once the subject was erased.
    pub async fn seal(&self, subject: Uuid, plaintext: &str) -> Result<String, CryptoError> {
        let cipher = match self.key(subject).await? {
            Some(KeyState::Live(cipher)) => cipher,
            Some(KeyState::Erased) => return Err(CryptoError::SubjectErased(subject)),
            None => self.create_key(subject).await?,
        };
        let (nonce, ciphertext) = encrypt(&cipher, plaintext.as_bytes(), subject.as_bytes())?;
        let mut data = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        data.extend_from_slice(&nonce);
        data.extend_from_slice(&ciphertext);
        Ok(format!(
            "{PREFIX}{}:{}",
            subject.hyphenated(),
            b64_encode(&data)
        ))
    }

    /// Opens a stored text: plain text comes back as is, sealed text is revealed or erased.
    pub async fn open(&self, text: &str) -> Result<Opened, CryptoError> {
        let Some((subject, data)) = parse(text)? else {
            return Ok(Opened::Plain(text.to_owned()));
        };
        let state = self
            .key(subject)
            .await?
            .ok_or(CryptoError::MissingSubjectKey(subject))?;
        reveal(subject, &data, &state)
    }

    /// [`Self::open`] for many texts, loading the keys it lacks in one query (projections).
    pub async fn open_many<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Opened>, CryptoError> {
        let parsed = texts
            .iter()
            .map(|t| parse(t.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut states: HashMap<Uuid, KeyState> = HashMap::new();
        let mut missing = Vec::new();
        for (subject, _) in parsed.iter().flatten() {
            if states.contains_key(subject) || missing.contains(subject) {
                continue;
            }
            match self.cached(*subject) {
                Some(state) => {
                    states.insert(*subject, state);
                }
                None => missing.push(*subject),
            }
        }
        if !missing.is_empty() {
            states.extend(self.load(&missing).await?);
        }
        texts
            .iter()
            .zip(parsed)
            .map(|(text, parsed)| match parsed {
                None => Ok(Opened::Plain(text.as_ref().to_owned())),
                Some((subject, data)) => {
                    let state = states
                        .get(&subject)
                        .ok_or(CryptoError::MissingSubjectKey(subject))?;
                    reveal(subject, &data, state)
                }
            })
            .collect()
    }

    /// The plaintext of a stored text, or [`ERASED_MARKER`].
    pub async fn reveal_or_marker(&self, text: &str) -> Result<String, CryptoError> {
        Ok(self.open(text).await?.into_text_or_marker())
    }

    /// Destroys `subject`'s key: everything sealed for it opens as [`Opened::Erased`] from now on
    /// in this process (at most one cache TTL later in others), and nothing new can be sealed
    /// for it. Idempotent: `true` if this call erased it, `false` if it already was. A subject
    /// that never had a key is recorded as erased too.
    pub async fn erase(&self, subject: Uuid) -> Result<bool, CryptoError> {
        let result = sqlx::query(
            "INSERT INTO subject_keys (subject_id, wrapped_key, master_kid, erased_at)
             VALUES ($1, NULL, NULL, now())
             ON CONFLICT (subject_id) DO UPDATE
                SET wrapped_key = NULL, master_kid = NULL, erased_at = now()
              WHERE subject_keys.erased_at IS NULL",
        )
        .bind(subject)
        .execute(&self.inner.pool)
        .await?;
        let mut cache = self.lock();
        cache.generation += 1;
        cache.entries.insert(subject, Entry::Erased);
        Ok(result.rows_affected() > 0)
    }

    /// Re-wraps every live subject key that is not under the active master key (after a
    /// rotation: build the `Sealer` with the new key list, old keys still in it). Returns how
    /// many keys it re-wrapped. Safe to run while the service runs, and to run again.
    pub async fn rewrap_all(&self) -> Result<u64, CryptoError> {
        let keys = &self.inner.keys;
        let active = keys.active_kid();
        let mut count = 0;
        loop {
            let rows: Vec<StoredKey<String>> = sqlx::query_as(
                "SELECT subject_id, wrapped_key FROM subject_keys
                  WHERE erased_at IS NULL AND master_kid <> $1
                  ORDER BY subject_id LIMIT $2",
            )
            .bind(active)
            .bind(REWRAP_BATCH)
            .fetch_all(&self.inner.pool)
            .await?;
            if rows.is_empty() {
                return Ok(count);
            }
            for row in rows {
                let (subject, wrapped) = (row.subject_id, row.wrapped_key);
                let rewrapped = keys.rewrap(&wrapped, &wrap_aad(subject))?;
                // Compare-and-set: an erase in between wins and is left alone.
                let updated = sqlx::query(
                    "UPDATE subject_keys SET wrapped_key = $2, master_kid = $3
                      WHERE subject_id = $1 AND wrapped_key = $4",
                )
                .bind(subject)
                .bind(&rewrapped)
                .bind(active)
                .bind(&wrapped)
                .execute(&self.inner.pool)
                .await?;
                count += updated.rows_affected();
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Cache> {
        // The cache holds no invariant a panic could break halfway.
        self.inner
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn cached(&self, subject: Uuid) -> Option<KeyState> {
        let mut cache = self.lock();
        match cache.entries.get(&subject) {
            Some(Entry::Erased) => Some(KeyState::Erased),
            Some(Entry::Live { cipher, loaded }) if loaded.elapsed() < self.inner.ttl => {
                Some(KeyState::Live(cipher.clone()))
            }
            Some(Entry::Live { .. }) => {
                cache.entries.remove(&subject);
                None
            }
            None => None,
        }
    }

    /// The subject's key: cached, else from the database; `None` if it has none yet.
    async fn key(&self, subject: Uuid) -> Result<Option<KeyState>, CryptoError> {
        if let Some(state) = self.cached(subject) {
            return Ok(Some(state));
        }
        Ok(self.load(&[subject]).await?.remove(&subject))
    }

    /// Loads and caches the keys of `subjects` (absent ones are absent from the map).
    async fn load(&self, subjects: &[Uuid]) -> Result<HashMap<Uuid, KeyState>, CryptoError> {
        let generation = self.lock().generation;
        // An erased key has no wrapped key left.
        let rows: Vec<StoredKey<Option<String>>> = sqlx::query_as(
            "SELECT subject_id, wrapped_key FROM subject_keys WHERE subject_id = ANY($1)",
        )
        .bind(subjects)
        .fetch_all(&self.inner.pool)
        .await?;
        let mut states = HashMap::with_capacity(rows.len());
        for row in rows {
            let subject = row.subject_id;
            let state = match row.wrapped_key {
                None => KeyState::Erased,
                Some(wrapped) => KeyState::Live(Arc::new(self.unwrap_key(subject, &wrapped)?)),
            };
            states.insert(subject, state);
        }
        self.remember(generation, &states);
        Ok(states)
    }

    fn remember(&self, generation: u64, states: &HashMap<Uuid, KeyState>) {
        let ttl = self.inner.ttl;
        let mut cache = self.lock();
        if cache.entries.len() + states.len() > MAX_CACHED {
            cache.entries.retain(|_, entry| match entry {
                Entry::Erased => true,
                Entry::Live { loaded, .. } => loaded.elapsed() < ttl,
            });
            if cache.entries.len() + states.len() > MAX_CACHED {
                // Forgetting is always safe: the database is the truth.
                cache.entries.clear();
            }
        }
        let fresh = cache.generation == generation;
        for (subject, state) in states {
            match state {
                // Erasure is permanent: always true, whenever it was read.
                KeyState::Erased => {
                    cache.entries.insert(*subject, Entry::Erased);
                }
                // A key read before an erase finished may be stale: do not keep it.
                KeyState::Live(cipher) if fresh && !ttl.is_zero() => {
                    if !matches!(cache.entries.get(subject), Some(Entry::Erased)) {
                        cache.entries.insert(
                            *subject,
                            Entry::Live {
                                cipher: cipher.clone(),
                                loaded: Instant::now(),
                            },
                        );
                    }
                }
                KeyState::Live(_) => {}
            }
        }
    }

    fn unwrap_key(&self, subject: Uuid, wrapped: &str) -> Result<Aes256Gcm, CryptoError> {
        let raw = self.inner.keys.open(wrapped, &wrap_aad(subject))?;
        Aes256Gcm::new_from_slice(&raw).map_err(|_| CryptoError::Malformed("data key length"))
    }

    /// Makes the subject's key if it has none; concurrent callers all end up with the one
    /// that was stored first.
    async fn create_key(&self, subject: Uuid) -> Result<Arc<Aes256Gcm>, CryptoError> {
        let raw: [u8; 32] = random_bytes()?;
        let keys = &self.inner.keys;
        let wrapped = keys.seal(&raw, &wrap_aad(subject))?;
        sqlx::query(
            "INSERT INTO subject_keys (subject_id, wrapped_key, master_kid) VALUES ($1, $2, $3)
             ON CONFLICT (subject_id) DO NOTHING",
        )
        .bind(subject)
        .bind(&wrapped)
        .bind(keys.active_kid())
        .execute(&self.inner.pool)
        .await?;
        match self.load(&[subject]).await?.remove(&subject) {
            Some(KeyState::Live(cipher)) => Ok(cipher),
            Some(KeyState::Erased) => Err(CryptoError::SubjectErased(subject)),
            None => Err(CryptoError::MissingSubjectKey(subject)),
        }
    }
}

fn reveal(subject: Uuid, data: &[u8], state: &KeyState) -> Result<Opened, CryptoError> {
    match state {
        KeyState::Erased => Ok(Opened::Erased),
        KeyState::Live(cipher) => {
            let (nonce, ciphertext) = data.split_at(NONCE_LEN);
            let plaintext = decrypt(cipher, nonce, ciphertext, subject.as_bytes())?;
            String::from_utf8(plaintext)
                .map(Opened::Revealed)
                .map_err(|_| CryptoError::Malformed("plaintext is not UTF-8"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_sealed_texts_are_told_apart() {
        let subject = Uuid::new_v4();
        let text = format!("{PREFIX}{subject}:{}", b64_encode(&[0u8; 40]));
        assert!(is_sealed(&text));
        assert_eq!(sealed_subject(&text), Some(subject));
        assert!(!is_sealed("ana@example.com"));
        assert_eq!(parse("ana@example.com").unwrap(), None);
        assert!(matches!(
            parse("sealed:v1:not-a-uuid:AAAA"),
            Err(CryptoError::Malformed(_))
        ));
        assert!(matches!(
            parse(&format!("{PREFIX}{subject}:AAAA")),
            Err(CryptoError::Malformed(_))
        ));
        assert!(matches!(
            parse(&format!("{PREFIX}{subject}")),
            Err(CryptoError::Malformed(_))
        ));
    }

    #[test]
    fn the_erased_marker_replaces_only_erased_text() {
        assert_eq!(Opened::Erased.into_text_or_marker(), "[erased]");
        assert_eq!(Opened::Plain("a".into()).into_text_or_marker(), "a");
        assert_eq!(Opened::Revealed("b".into()).into_text_or_marker(), "b");
    }

    #[test]
    fn data_sealed_for_one_subject_does_not_open_as_another() {
        let cipher = Aes256Gcm::new_from_slice(&[7u8; 32]).unwrap();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let (nonce, ct) = encrypt(&cipher, b"ana", a.as_bytes()).unwrap();
        let data = [nonce.as_slice(), &ct].concat();
        let live = KeyState::Live(Arc::new(cipher));
        assert_eq!(
            reveal(a, &data, &live).unwrap(),
            Opened::Revealed("ana".into())
        );
        assert!(matches!(reveal(b, &data, &live), Err(CryptoError::Decrypt)));
        assert_eq!(reveal(a, &data, &KeyState::Erased).unwrap(), Opened::Erased);
    }
}
