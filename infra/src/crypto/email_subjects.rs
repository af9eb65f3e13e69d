//! Subjects of email addresses: personal data about someone known only by an address (an
//! invitation, sent before or after they registered) is sealed under the address's subject, so
//! that erasing the person erases it too. An address maps to a random subject id through a keyed
//! hash (`email_subjects`, migration 0025); the address itself is never stored, and the subject
//! id in a sealed value says nothing about the address to anyone without the digest key.
//! It never reuses an erased subject: forgetting an erased address's subject deletes its row.

use super::master_keys::MasterKeys;
use super::subject_keys::{wrap_aad, Sealer};
use super::{random_bytes, CryptoError};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;
use uuid::Uuid;

/// The `subject_keys` row whose data key keys the digests. It is no one's subject (people, keys
/// and invitations get UUID v7 ids, email subjects v4), nothing is sealed under it and nothing
/// erases it; as a `subject_keys` row it is re-wrapped with the others after a rotation.
const DIGEST_KEY_SUBJECT: Uuid = Uuid::from_u128(0x6164_6c65_6467_0000_8000_656d_6169_6c00);

/// How many times sealing retries when an erasure deleted the address's subject meanwhile.
const ATTEMPTS: usize = 3;

/// The address as compared everywhere (the `users` table stores it the same way).
fn normalized(email: &str) -> String {
    email.trim().to_lowercase()
}

fn digest(key: &[u8; 32], email: &str) -> Result<String, CryptoError> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .map_err(|_| CryptoError::Malformed("digest key length"))?;
    mac.update(b"adledger email subject\0");
    mac.update(normalized(email).as_bytes());
    Ok(hex::encode(mac.finalize().into_bytes()))
}

#[derive(sqlx::FromRow)]
struct Wrapped {
    wrapped_key: Option<String>,
}

async fn load_digest_key(
    pool: &sqlx::PgPool,
    keys: &MasterKeys,
) -> Result<Arc<[u8; 32]>, CryptoError> {
    let aad = wrap_aad(DIGEST_KEY_SUBJECT);
    let raw: [u8; 32] = random_bytes()?;
    // First use anywhere makes it; concurrent first uses all read the one stored first.
    sqlx::query(
        "INSERT INTO subject_keys (subject_id, wrapped_key, master_kid) VALUES ($1, $2, $3)
         ON CONFLICT (subject_id) DO NOTHING",
    )
    .bind(DIGEST_KEY_SUBJECT)
    .bind(keys.seal(&raw, &aad)?)
    .bind(keys.active_kid())
    .execute(pool)
    .await?;
    let row: Wrapped = sqlx::query_as("SELECT wrapped_key FROM subject_keys WHERE subject_id = $1")
        .bind(DIGEST_KEY_SUBJECT)
        .fetch_one(pool)
        .await?;
    let wrapped = row
        .wrapped_key
        .ok_or(CryptoError::SubjectErased(DIGEST_KEY_SUBJECT))?;
    let key: [u8; 32] = keys
        .open(&wrapped, &aad)?
        .try_into()
        .map_err(|_| CryptoError::Malformed("digest key length"))?;
    Ok(Arc::new(key))
}

impl Sealer {
    async fn email_digest(&self, email: &str) -> Result<String, CryptoError> {
        let key = self
            .digest_key_cell()
            .get_or_try_init(|| load_digest_key(self.pool(), self.master_keys()))
            .await?;
        digest(key, email)
    }

    /// The subject of `email` (any case), made on first use.
    async fn email_subject(&self, email: &str) -> Result<Uuid, CryptoError> {
        let digest = self.email_digest(email).await?;
        sqlx::query(
            "INSERT INTO email_subjects (email_digest, subject_id) VALUES ($1, $2)
             ON CONFLICT (email_digest) DO NOTHING",
        )
        .bind(&digest)
        .bind(Uuid::new_v4())
        .execute(self.pool())
        .await?;
        Ok(
            sqlx::query_scalar("SELECT subject_id FROM email_subjects WHERE email_digest = $1")
                .bind(&digest)
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// Seals `plaintext` (personal data about whoever has `email`) under the address's subject.
    pub async fn seal_for_email(
        &self,
        email: &str,
        plaintext: &str,
    ) -> Result<String, CryptoError> {
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let subject = self.email_subject(email).await?;
            match self.seal(subject, plaintext).await {
                // Its owner was erased between the lookup and the seal: the row is gone (or
                // about to be); the next lookup makes a new subject.
                Err(CryptoError::SubjectErased(erased)) => last = Some(erased),
                other => return other,
            }
        }
        Err(CryptoError::SubjectErased(
            last.unwrap_or(DIGEST_KEY_SUBJECT),
        ))
    }

    /// The subject of `email`, if anything was ever sealed for the address (and it was not
    /// forgotten since).
    pub async fn find_email_subject(&self, email: &str) -> Result<Option<Uuid>, CryptoError> {
        let digest = self.email_digest(email).await?;
        Ok(
            sqlx::query_scalar("SELECT subject_id FROM email_subjects WHERE email_digest = $1")
                .bind(&digest)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// Unlinks the addresses of these subjects (the ones among them that are addresses'),
    /// once they were erased: nothing links an address to what was sealed for it any more, and
    /// it gets a new subject if it is used again.
    pub async fn forget_email_subjects(&self, subjects: &[Uuid]) -> Result<(), CryptoError> {
        sqlx::query("DELETE FROM email_subjects WHERE subject_id = ANY($1)")
            .bind(subjects)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_has_one_digest_whatever_its_case_and_the_key_matters() {
        let key = [3u8; 32];
        let ana = digest(&key, "Ana@Example.com").unwrap();
        assert_eq!(ana, digest(&key, " ana@example.COM ").unwrap());
        assert_ne!(ana, digest(&key, "bob@example.com").unwrap());
        assert_ne!(ana, digest(&[4u8; 32], "ana@example.com").unwrap());
        assert!(!ana.contains("ana"));
    }
}
