//! Password hashing: argon2id with OWASP's parameters (m = 19 MiB, t = 2, p = 1) in PHC strings,
//! run on the blocking pool so a login never stalls the async workers. It never logs or keeps a
//! password, and it answers an unknown account as slowly as a wrong password.

use super::{random_bytes, CryptoError};
use argon2::password_hash::{self, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};

const MEMORY_KIB: u32 = 19_456;
const ITERATIONS: u32 = 2;
const PARALLELISM: u32 = 1;

/// The hash of a random password nobody knows, with the current parameters: verifying against it
/// costs what a real verification costs.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$+j0YCYfz966+ms1AG9xblQ$RxW8eSDgkj1YAYkkK/PdKdJlIEVD3O17Fm9z214d42E";

fn hasher() -> Result<Argon2<'static>, CryptoError> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .map_err(|e| CryptoError::Password(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_blocking(password: &[u8]) -> Result<String, CryptoError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()?)
        .map_err(|e| CryptoError::Password(e.to_string()))?;
    hasher()?
        .hash_password(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| CryptoError::Password(e.to_string()))
}

fn verify_blocking(password: &[u8], phc: &str) -> Result<bool, CryptoError> {
    let parsed = PasswordHash::new(phc).map_err(|e| CryptoError::Password(e.to_string()))?;
    // The hash's own parameters apply, so hashes made with older parameters still verify.
    match Argon2::default().verify_password(password, &parsed) {
        Ok(()) => Ok(true),
        Err(password_hash::Error::Password) => Ok(false),
        Err(e) => Err(CryptoError::Password(e.to_string())),
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, CryptoError> + Send + 'static,
) -> Result<T, CryptoError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| CryptoError::Password(format!("hashing task failed: {e}")))?
}

/// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) for a new password.
pub async fn hash_password(password: &str) -> Result<String, CryptoError> {
    let password = password.as_bytes().to_vec();
    blocking(move || hash_blocking(&password)).await
}

/// Whether `password` matches the PHC string. A malformed PHC string is an error, not `false`.
pub async fn verify_password(password: &str, phc: &str) -> Result<bool, CryptoError> {
    let (password, phc) = (password.as_bytes().to_vec(), phc.to_owned());
    blocking(move || verify_blocking(&password, &phc)).await
}

/// Spends the time of one verification and returns `false`: call it when the account does not
/// exist, so the answer's timing does not tell whether an email is registered.
pub async fn verify_dummy(password: &str) -> bool {
    // Nobody knows the dummy's password; whatever this says, the account does not exist.
    let _ = verify_password(password, DUMMY_HASH).await;
    false
}

/// Whether a stored hash uses other parameters than today's (re-hash it after a good login).
pub fn needs_rehash(phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return true;
    };
    let current = parsed.algorithm == Algorithm::Argon2id.ident()
        && parsed.version == Some(Version::V0x13.into())
        && Params::try_from(&parsed).is_ok_and(|p| {
            p.m_cost() == MEMORY_KIB && p.t_cost() == ITERATIONS && p.p_cost() == PARALLELISM
        });
    !current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let phc = hash_password("correct horse battery staple").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password("correct horse battery staple", &phc)
            .await
            .unwrap());
        assert!(!verify_password("correct horse battery stapler", &phc)
            .await
            .unwrap());
        assert!(!needs_rehash(&phc));
    }

    #[tokio::test]
    async fn the_same_password_hashes_differently_each_time() {
        let a = hash_password("same password here").await.unwrap();
        let b = hash_password("same password here").await.unwrap();
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn a_malformed_hash_is_an_error_not_a_mismatch() {
        assert!(verify_password("whatever password", "not a phc string")
            .await
            .is_err());
        assert!(needs_rehash("not a phc string"));
    }

    #[tokio::test]
    async fn hashes_with_older_parameters_still_verify_and_ask_for_a_rehash() {
        let salt = SaltString::encode_b64(&[1u8; 16]).unwrap();
        let old = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8192, 1, 1, None).unwrap(),
        )
        .hash_password(b"an old password", &salt)
        .unwrap()
        .to_string();
        assert!(verify_password("an old password", &old).await.unwrap());
        assert!(needs_rehash(&old));
    }

    #[tokio::test]
    async fn the_dummy_hash_is_real_and_costs_a_verification() {
        let parsed = PasswordHash::new(DUMMY_HASH).unwrap();
        assert!(
            !needs_rehash(DUMMY_HASH),
            "update DUMMY_HASH with the parameters"
        );
        assert_eq!(parsed.algorithm, Algorithm::Argon2id.ident());
        assert!(!verify_dummy("any password at all").await);
    }

    #[tokio::test]
    #[ignore = "prints a new DUMMY_HASH after a parameter change"]
    async fn print_dummy_hash() {
        let random = super::super::b64_encode(&random_bytes::<32>().unwrap());
        println!("{}", hash_password(&random).await.unwrap());
    }
}
