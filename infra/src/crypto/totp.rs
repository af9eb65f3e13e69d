//! Time-based one-time passwords (RFC 6238: HMAC-SHA-1, 6 digits, 30-second steps) and single-use
//! recovery codes. It checks codes; it never stores the last used step (the caller keeps it and
//! passes it back, see [`TotpSecret::verify_after`]) and never prints a secret.

use super::{random_bytes, CryptoError};
use chrono::{DateTime, Utc};
use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// The issuer authenticator apps show next to the account.
pub const TOTP_ISSUER: &str = "adledger";
pub const DIGITS: u32 = 6;
pub const STEP_SECONDS: u64 = 30;
const SECRET_LEN: usize = 20;
const MIN_SECRET_LEN: usize = 16;

/// A shared TOTP secret. Store it sealed (e.g. `MasterKeys::seal(secret.to_base32()…)`).
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(***)")
    }
}

impl TotpSecret {
    /// 20 random bytes (160 bits, RFC 4226's recommendation).
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self(random_bytes::<SECRET_LEN>()?.to_vec()))
    }

    /// RFC 4648 base32, upper-case, no padding: what authenticator apps take.
    pub fn to_base32(&self) -> String {
        BASE32_NOPAD.encode(&self.0)
    }

    /// Reads base32 in either case, with or without padding and spaces; at least 128 bits.
    pub fn from_base32(text: &str) -> Result<Self, CryptoError> {
        let normalized: String = text
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '=')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let bytes = BASE32_NOPAD
            .decode(normalized.as_bytes())
            .map_err(|_| CryptoError::Malformed("TOTP secret is not base32"))?;
        if bytes.len() < MIN_SECRET_LEN {
            return Err(CryptoError::Malformed(
                "TOTP secret is shorter than 128 bits",
            ));
        }
        Ok(Self(bytes))
    }

    /// `otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=ISSUER&algorithm=SHA1&digits=6&period=30`
    /// for the enrolment QR code (issuer: [`TOTP_ISSUER`]).
    pub fn otpauth_uri(&self, issuer: &str, account_label: &str) -> String {
        let issuer = percent_encode(issuer);
        format!(
            "otpauth://totp/{issuer}:{}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
            percent_encode(account_label),
            self.to_base32(),
        )
    }

    /// The time step `now` falls in; `None` before 1970.
    pub fn step_at(now: DateTime<Utc>) -> Option<u64> {
        u64::try_from(now.timestamp())
            .ok()
            .map(|t| t / STEP_SECONDS)
    }

    /// The code of one time step.
    pub fn code_for_step(&self, step: u64) -> String {
        format!(
            "{:0width$}",
            hotp(&self.0, step, DIGITS),
            width = DIGITS as usize
        )
    }

    /// The code shown at `now`.
    pub fn code_at(&self, now: DateTime<Utc>) -> Option<String> {
        Self::step_at(now).map(|step| self.code_for_step(step))
    }

    /// The time step whose code `code` is, looking one step back and ahead for clock drift.
    /// Spaces in the code are ignored. Check the step against the last used one
    /// ([`Self::verify_after`] does) so a code cannot be replayed.
    pub fn verify(&self, code: &str, now: DateTime<Utc>) -> Option<u64> {
        self.verify_after(code, now, None)
    }

    /// [`Self::verify`] that accepts only steps after `last_used_step` (replay protection): store
    /// the step it returns and pass it next time.
    pub fn verify_after(
        &self,
        code: &str,
        now: DateTime<Utc>,
        last_used_step: Option<u64>,
    ) -> Option<u64> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let now = Self::step_at(now)?;
        let mut matched = None;
        // Every candidate is compared, in constant time, whatever matched before.
        for step in [now.checked_sub(1), Some(now), now.checked_add(1)]
            .into_iter()
            .flatten()
        {
            let expected = self.code_for_step(step);
            let fresh = last_used_step.is_none_or(|last| step > last);
            if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && fresh {
                matched = Some(step);
            }
        }
        matched
    }
}

/// RFC 4226 HOTP with dynamic truncation.
fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else {
        return 0;
    };
    mac.update(&counter.to_be_bytes());
    let hash = mac.finalize().into_bytes();
    let offset = usize::from(hash[hash.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        hash[offset] & 0x7f,
        hash[offset + 1],
        hash[offset + 2],
        hash[offset + 3],
    ]);
    binary % 10u32.pow(digits)
}

/// RFC 3986 percent-encoding of everything but unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A single-use recovery code as shown once to the user, and the hash to store instead.
#[derive(Clone)]
pub struct RecoveryCode {
    /// `xxxx-xxxx-xxxx-xxxx`, lower-case base32 (80 bits).
    pub code: String,
    /// [`hash_recovery_code`] of `code`.
    pub hash: String,
}

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoveryCode")
            .field("code", &"***")
            .field("hash", &self.hash)
            .finish()
    }
}

/// `n` fresh recovery codes (10 is usual). 80 random bits each, so an unsalted fast hash is safe.
pub fn recovery_codes(n: usize) -> Result<Vec<RecoveryCode>, CryptoError> {
    (0..n)
        .map(|_| {
            let raw = BASE32_NOPAD
                .encode(&random_bytes::<10>()?)
                .to_ascii_lowercase();
            let code = raw
                .as_bytes()
                .chunks(4)
                .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
                .collect::<Vec<_>>()
                .join("-");
            let hash = hash_recovery_code(&code);
            Ok(RecoveryCode { code, hash })
        })
        .collect()
}

/// SHA-256 hex of a recovery code as typed, ignoring case, spaces and dashes.
pub fn hash_recovery_code(input: &str) -> String {
    let normalized: String = input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let mut hasher = Sha256::new();
    hasher.update(b"adledger recovery code ");
    hasher.update(normalized.as_bytes());
    hex::encode(hasher.finalize())
}

/// Whether a typed recovery code matches a stored hash (constant-time).
pub fn verify_recovery_code(input: &str, stored_hash: &str) -> bool {
    bool::from(
        hash_recovery_code(input)
            .as_bytes()
            .ct_eq(stored_hash.as_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(unix: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(unix, 0).unwrap()
    }

    /// The RFC 6238 appendix B secret for SHA-1.
    fn rfc_secret() -> TotpSecret {
        TotpSecret(b"12345678901234567890".to_vec())
    }

    #[test]
    fn rfc_6238_sha1_vectors() {
        // (T, the RFC's 8-digit TOTP): 8 digits through the same truncation.
        let vectors = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        let secret = rfc_secret();
        for (t, expected) in vectors {
            let step = TotpSecret::step_at(at(t)).unwrap();
            assert_eq!(
                format!("{:08}", hotp(&secret.0, step, 8)),
                expected,
                "T={t}"
            );
            // Six digits are the last six of the eight (both are the same number mod 10^n).
            assert_eq!(secret.code_at(at(t)).unwrap(), expected[2..], "T={t}");
        }
    }

    #[test]
    fn rfc_4226_hotp_vectors() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(rfc_secret().code_for_step(counter as u64), *code);
        }
    }

    #[test]
    fn accepts_one_step_either_side_and_no_more() {
        let secret = TotpSecret::generate().unwrap();
        let now = at(1_700_000_015);
        let step = TotpSecret::step_at(now).unwrap();
        for (offset, accepted) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let s = step.checked_add_signed(offset).unwrap();
            let code = secret.code_for_step(s);
            let result = secret.verify(&code, now);
            if accepted {
                assert_eq!(result, Some(s), "offset {offset}");
            } else if result.is_some() {
                // A 6-digit code may collide with a neighbour's by chance (1 in 10^6).
                assert_ne!(result, Some(s), "offset {offset}");
            }
        }
    }

    #[test]
    fn rejects_wrong_and_malformed_codes() {
        let secret = rfc_secret();
        let now = at(59);
        assert_eq!(secret.verify("287082", now), Some(1));
        assert_eq!(secret.verify("287 082", now), Some(1));
        assert_eq!(secret.verify("287083", now), None);
        assert_eq!(secret.verify("28708", now), None);
        assert_eq!(secret.verify("2870822", now), None);
        assert_eq!(secret.verify("28708a", now), None);
        assert_eq!(secret.verify("", now), None);
        assert_eq!(secret.verify("287082", at(-30)), None);
    }

    #[test]
    fn a_used_step_cannot_be_replayed() {
        let secret = rfc_secret();
        let now = at(1_111_111_111);
        let code = secret.code_at(now).unwrap();
        let step = secret.verify_after(&code, now, None).unwrap();
        assert_eq!(secret.verify_after(&code, now, Some(step)), None);
        // The previous step's code is refused once the current one was used...
        let earlier = secret.code_for_step(step - 1);
        assert_eq!(secret.verify_after(&earlier, now, Some(step)), None);
        // ...and the next step's is fine.
        let later = secret.code_for_step(step + 1);
        assert_eq!(secret.verify_after(&later, now, Some(step)), Some(step + 1));
    }

    #[test]
    fn base32_round_trips_and_is_lenient_on_input() {
        let secret = TotpSecret::generate().unwrap();
        let text = secret.to_base32();
        assert_eq!(text.len(), 32);
        assert!(!text.contains('='));
        assert_eq!(TotpSecret::from_base32(&text).unwrap(), secret);
        assert_eq!(
            TotpSecret::from_base32(&text.to_ascii_lowercase()).unwrap(),
            secret
        );
        assert_eq!(rfc_secret().to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            TotpSecret::from_base32("gezd gnbv gy3t qojq gezd gnbv gy3t qojq").unwrap(),
            rfc_secret()
        );
        assert!(TotpSecret::from_base32("not base32!").is_err());
        assert!(TotpSecret::from_base32("GEZDGNBV").is_err(), "too short");
    }

    #[test]
    fn the_otpauth_uri_is_encoded() {
        let uri = rfc_secret().otpauth_uri(TOTP_ISSUER, "ana+ads@example.com (Acme & Co)");
        assert_eq!(
            uri,
            "otpauth://totp/adledger:ana%2Bads%40example.com%20%28Acme%20%26%20Co%29\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=adledger\
             &algorithm=SHA1&digits=6&period=30"
        );
        assert!(rfc_secret()
            .otpauth_uri("Ad Ledger", "x")
            .contains("issuer=Ad%20Ledger"));
    }

    #[test]
    fn secrets_never_print() {
        assert_eq!(format!("{:?}", rfc_secret()), "TotpSecret(***)");
        let code = recovery_codes(1).unwrap().remove(0);
        assert!(!format!("{code:?}").contains(&code.code));
    }

    #[test]
    fn recovery_codes_are_distinct_readable_and_match_their_hash() {
        let codes = recovery_codes(10).unwrap();
        assert_eq!(codes.len(), 10);
        for c in &codes {
            assert_eq!(c.code.len(), 19, "{}", c.code);
            assert!(c
                .code
                .chars()
                .all(|ch| ch == '-' || ch.is_ascii_lowercase() || ('2'..='7').contains(&ch)));
            assert!(verify_recovery_code(&c.code, &c.hash));
            assert!(verify_recovery_code(
                &c.code.to_ascii_uppercase().replace('-', " "),
                &c.hash
            ));
        }
        let mut unique: Vec<&str> = codes.iter().map(|c| c.code.as_str()).collect();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 10);
        assert!(!verify_recovery_code(&codes[0].code, &codes[1].hash));
    }
}
