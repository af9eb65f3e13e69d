//! Master keys with key ids: AES-256-GCM sealing of small secrets (OAuth tokens, per-subject data
//! keys) whose output names the key that sealed it, so keys rotate without a flag day. The ring
//! itself (list format, rotation, never printing a key) is [`KeyRing`]'s.

use super::keyring::{KeyListError, KeyRing, RingKey};
use super::{b64_decode, b64_encode, random_bytes, CryptoError};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;

/// `kid:BASE64(32 bytes)` entries separated by commas; the first seals, all open.
pub const MASTER_KEYS_ENV: &str = "ADLEDGER_MASTER_KEYS";

const VERSION: &str = "v1";
pub(crate) const NONCE_LEN: usize = 12;
const KEY_LEN: usize = 32;

fn decode_key(kid: &str, text: &str) -> Result<[u8; KEY_LEN], KeyListError> {
    let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .ok_or_else(|| KeyListError::BadBase64 { kid: kid.into() })?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| KeyListError::WrongLength {
            kid: kid.into(),
            actual: bytes.len(),
            expected: KEY_LEN,
        })
}

/// One AES-256-GCM master key.
#[derive(Clone)]
pub struct MasterKey {
    kid: String,
    raw: [u8; KEY_LEN],
    cipher: Aes256Gcm,
}

impl RingKey for MasterKey {
    const ENV: &'static str = MASTER_KEYS_ENV;
    const RING: &'static str = "MasterKeys";

    fn kid(&self) -> &str {
        &self.kid
    }

    /// 32 bytes in standard or URL-safe base64, padded or not.
    fn read(kid: String, value: &str) -> Result<Self, KeyListError> {
        let raw = decode_key(&kid, value)?;
        Ok(Self::new(kid, raw))
    }

    fn random(kid: String) -> Result<Self, CryptoError> {
        Ok(Self::new(kid, random_bytes()?))
    }

    fn write(&self) -> String {
        STANDARD.encode(self.raw)
    }
}

impl MasterKey {
    fn new(kid: String, raw: [u8; KEY_LEN]) -> Self {
        let cipher = Aes256Gcm::new(&raw.into());
        Self { kid, raw, cipher }
    }
}

/// The master key ring: the first key seals; every key opens what it sealed, so a rotation
/// prepends a key and keeps the old ones until everything is re-wrapped.
pub type MasterKeys = KeyRing<MasterKey>;

impl MasterKeys {
    /// Encrypts under the active key: `v1.<kid>.<b64url nonce>.<b64url ciphertext+tag>`.
    /// `aad` binds the value to its place (e.g. the connection id): opening needs the same.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<String, CryptoError> {
        let key = self.active()?;
        let (nonce, ciphertext) = encrypt(&key.cipher, plaintext, aad)?;
        Ok(format!(
            "{VERSION}.{}.{}.{}",
            key.kid,
            b64_encode(&nonce),
            b64_encode(&ciphertext)
        ))
    }

    /// Decrypts a value from [`Self::seal`] with the key it names.
    pub fn open(&self, sealed: &str, aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let parts = Sealed::parse(sealed)?;
        let key = self
            .by_kid(parts.kid)
            .ok_or_else(|| CryptoError::UnknownKid(parts.kid.into()))?;
        let nonce = b64_decode(parts.nonce).ok_or(CryptoError::Malformed("nonce is not base64"))?;
        let ciphertext =
            b64_decode(parts.ciphertext).ok_or(CryptoError::Malformed("body is not base64"))?;
        decrypt(&key.cipher, &nonce, &ciphertext, aad)
    }

    /// [`Self::open`] for text that was sealed from a `&str`.
    pub fn open_str(&self, sealed: &str, aad: &[u8]) -> Result<String, CryptoError> {
        String::from_utf8(self.open(sealed, aad)?)
            .map_err(|_| CryptoError::Malformed("plaintext is not UTF-8"))
    }

    /// The key id a sealed value names, if it is one.
    pub fn kid_of(sealed: &str) -> Option<&str> {
        Sealed::parse(sealed).ok().map(|s| s.kid)
    }

    /// Whether `sealed` is under a key other than the active one (so a re-wrap would change it).
    pub fn needs_rewrap(&self, sealed: &str) -> bool {
        Self::kid_of(sealed) != Some(self.active_kid())
    }

    /// Opens and seals again under the active key (key rotation of stored values).
    pub fn rewrap(&self, sealed: &str, aad: &[u8]) -> Result<String, CryptoError> {
        let plaintext = self.open(sealed, aad)?;
        self.seal(&plaintext, aad)
    }
}

struct Sealed<'a> {
    kid: &'a str,
    nonce: &'a str,
    ciphertext: &'a str,
}

impl<'a> Sealed<'a> {
    fn parse(text: &'a str) -> Result<Self, CryptoError> {
        let mut parts = text.split('.');
        match (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) {
            (Some(VERSION), Some(kid), Some(nonce), Some(ciphertext), None) => Ok(Self {
                kid,
                nonce,
                ciphertext,
            }),
            (Some(VERSION), ..) => Err(CryptoError::Malformed("expected v1.<kid>.<nonce>.<body>")),
            _ => Err(CryptoError::Malformed("unknown format version")),
        }
    }
}

/// AES-256-GCM with a fresh random 96-bit nonce.
pub(crate) fn encrypt(
    cipher: &Aes256Gcm,
    plaintext: &[u8],
    aad: &[u8],
) -> Result<([u8; NONCE_LEN], Vec<u8>), CryptoError> {
    let nonce: [u8; NONCE_LEN] = random_bytes()?;
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| CryptoError::Decrypt)?;
    Ok((nonce, ciphertext))
}

pub(crate) fn decrypt(
    cipher: &Aes256Gcm,
    nonce: &[u8],
    ciphertext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    if nonce.len() != NONCE_LEN {
        return Err(CryptoError::Malformed("nonce must be 12 bytes"));
    }
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| CryptoError::Decrypt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(text: &str) -> MasterKeys {
        MasterKeys::parse(text).unwrap()
    }

    const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

    #[test]
    fn seal_and_open_round_trip_and_name_the_key() {
        let keys = ring(&format!("{K2},{K1}"));
        let sealed = keys.seal(b"ya29.secret-token", b"connection-1").unwrap();
        assert!(sealed.starts_with("v1.k2."), "{sealed}");
        assert_eq!(MasterKeys::kid_of(&sealed), Some("k2"));
        assert_eq!(
            keys.open(&sealed, b"connection-1").unwrap(),
            b"ya29.secret-token"
        );
        assert_eq!(
            keys.open_str(&sealed, b"connection-1").unwrap(),
            "ya29.secret-token"
        );
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let keys = ring(K1);
        assert_ne!(keys.seal(b"x", b"").unwrap(), keys.seal(b"x", b"").unwrap());
    }

    #[test]
    fn a_wrong_aad_or_any_tampering_fails() {
        let keys = ring(K1);
        let sealed = keys.seal(b"secret", b"a").unwrap();
        assert!(matches!(
            keys.open(&sealed, b"b"),
            Err(CryptoError::Decrypt)
        ));

        let parts: Vec<&str> = sealed.split('.').collect();
        let mut body = b64_decode(parts[3]).unwrap();
        body[0] ^= 1;
        let tampered = format!("v1.k1.{}.{}", parts[2], b64_encode(&body));
        assert!(matches!(
            keys.open(&tampered, b"a"),
            Err(CryptoError::Decrypt)
        ));
        let mut nonce = b64_decode(parts[2]).unwrap();
        nonce[0] ^= 1;
        let tampered = format!("v1.k1.{}.{}", b64_encode(&nonce), parts[3]);
        assert!(matches!(
            keys.open(&tampered, b"a"),
            Err(CryptoError::Decrypt)
        ));
        let truncated = &sealed[..sealed.len() - 4];
        assert!(keys.open(truncated, b"a").is_err());
    }

    #[test]
    fn malformed_values_and_unknown_kids_are_typed_errors() {
        let keys = ring(K1);
        assert!(matches!(
            keys.open("plain text", b""),
            Err(CryptoError::Malformed(_))
        ));
        assert!(matches!(
            keys.open("v1.k1.only-three", b""),
            Err(CryptoError::Malformed(_))
        ));
        assert!(matches!(
            keys.open("v1.k1.!!.!!", b""),
            Err(CryptoError::Malformed(_))
        ));
        let other = ring(K2).seal(b"x", b"").unwrap();
        assert!(matches!(keys.open(&other, b""), Err(CryptoError::UnknownKid(k)) if k == "k2"));
    }

    #[test]
    fn a_key_with_the_same_kid_but_other_bytes_fails_to_decrypt() {
        let sealed = ring(K1).seal(b"x", b"").unwrap();
        let impostor = ring(&format!("k1:{}", &K2[3..]));
        assert!(matches!(
            impostor.open(&sealed, b""),
            Err(CryptoError::Decrypt)
        ));
    }

    #[test]
    fn rotation_keeps_old_values_readable_and_rewrap_moves_them() {
        let old = ring(K1);
        let sealed = old.seal(b"token", b"aad").unwrap();

        let rotated = old.with_new_active("k2").unwrap();
        assert_eq!(rotated.kids(), vec!["k2", "k1"]);
        assert_eq!(rotated.open(&sealed, b"aad").unwrap(), b"token");
        assert!(rotated.needs_rewrap(&sealed));

        let rewrapped = rotated.rewrap(&sealed, b"aad").unwrap();
        assert_eq!(MasterKeys::kid_of(&rewrapped), Some("k2"));
        assert!(!rotated.needs_rewrap(&rewrapped));

        let retired = rotated.without("k1").unwrap();
        assert_eq!(retired.open(&rewrapped, b"aad").unwrap(), b"token");
        assert!(matches!(
            retired.open(&sealed, b"aad"),
            Err(CryptoError::UnknownKid(_))
        ));
        assert!(rotated.without("k2").is_err(), "the active key stays");
    }

    #[test]
    fn the_env_string_round_trips() {
        let keys = MasterKeys::generate("2025-01").unwrap();
        let again = MasterKeys::parse(keys.to_env_string().expose()).unwrap();
        let sealed = keys.seal(b"x", b"").unwrap();
        assert_eq!(again.open(&sealed, b"").unwrap(), b"x");
        assert_eq!(again.kids(), vec!["2025-01"]);
    }

    #[test]
    fn bad_key_lists_say_why() {
        assert_eq!(MasterKeys::parse("").unwrap_err(), KeyListError::Empty);
        assert_eq!(MasterKeys::parse(" , ").unwrap_err(), KeyListError::Empty);
        assert_eq!(
            MasterKeys::parse("nokid").unwrap_err(),
            KeyListError::NotKidColonKey { position: 1 }
        );
        assert!(matches!(
            MasterKeys::parse("k.1:AAAA").unwrap_err(),
            KeyListError::BadKid { .. }
        ));
        assert_eq!(
            MasterKeys::parse("k1:not base64!").unwrap_err(),
            KeyListError::BadBase64 { kid: "k1".into() }
        );
        assert_eq!(
            MasterKeys::parse("k1:AAAA").unwrap_err(),
            KeyListError::WrongLength {
                kid: "k1".into(),
                actual: 3,
                expected: 32
            }
        );
        assert_eq!(
            MasterKeys::parse(&format!("{K1},{K1}")).unwrap_err(),
            KeyListError::DuplicateKid { kid: "k1".into() }
        );
        assert!(MasterKeys::generate("bad kid").is_err());
    }

    #[test]
    fn keys_never_print() {
        let keys = ring(&format!("{K2},{K1}"));
        let shown = format!("{keys:?}");
        assert_eq!(shown, r#"MasterKeys { kids: ["k2", "k1"] }"#);
        assert_eq!(format!("{:?}", keys.to_env_string()), "Secret(***)");
        let err = MasterKeys::parse("k1:AAAA").unwrap_err().to_string();
        assert!(!err.contains("AAAA"), "{err}");
    }
}
