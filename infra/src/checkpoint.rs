//! Signed checkpoints of the log's Merkle tree in the C2SP `tlog-checkpoint` format (origin
//! line, tree size, base64 root) inside a C2SP signed note (`— <name> <base64(keyid‖sig)>`,
//! Ed25519), and the keys that sign them. Signing keys are `PRIVATE+KEY+<name>+<hexid>+<base64>`
//! strings from configuration, first one signing; verifier keys are `<name>+<hexid>+<base64>`.
//! Opening a note needs only the verifier keys: nothing here reads a database.

use crate::merkle::Hash;
use crate::secret::Secret;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use signed_note::{Note, StandardSigner, StandardVerifier, Verifier, VerifierList};

pub const CHECKPOINT_KEYS_ENV: &str = "ADLEDGER_CHECKPOINT_KEYS";

/// The algorithm byte of an Ed25519 key in a signed note's key encoding.
const ED25519: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint key {position} is not a PRIVATE+KEY+<name>+<hexid>+<base64> Ed25519 key")]
    BadSigningKey { position: usize },
    #[error("no checkpoint signing key is configured")]
    NoKeys,
    #[error("{0:?} is not a verifier key (<name>+<hexid>+<base64>, Ed25519)")]
    BadVerifierKey(String),
    #[error("{0:?} is not a valid key name (no spaces or '+')")]
    BadName(String),
    #[error("the origin {0:?} must be one line of printable text")]
    BadOrigin(String),
    #[error("no random bytes for a key: {0}")]
    Random(String),
    #[error("signing failed: {0}")]
    Signing(String),
    #[error("the checkpoint is not a signed note: {0}")]
    Malformed(String),
    #[error("the checkpoint's signature does not verify: {0}")]
    Signature(String),
}

/// A tree head as the checkpoint states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// The note's text: origin, size, base64 root, each on its own line.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        )
    }

    /// Reads a checkpoint body; extension lines after the root are allowed and ignored.
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let bad = |why: &str| CheckpointError::Malformed(why.to_owned());
        let mut lines = text.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| bad("no origin line"))?;
        let size = lines
            .next()
            .and_then(|s| (s == "0" || !s.starts_with('0')).then_some(s))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| bad("the second line is not a tree size"))?;
        let root = lines
            .next()
            .and_then(|r| STANDARD.decode(r).ok())
            .and_then(|r| Hash::try_from(r.as_slice()).ok())
            .ok_or_else(|| bad("the third line is not a base64 SHA-256 root"))?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

/// What issues this deployment's checkpoints: its keys and the origin line that names the log.
#[derive(Debug, Clone)]
pub struct Checkpointer {
    keys: CheckpointKeys,
    origin: String,
}

impl Checkpointer {
    pub fn new(keys: CheckpointKeys, origin: &str) -> Result<Self, CheckpointError> {
        if origin.is_empty() || origin.chars().any(|c| c.is_control()) {
            return Err(CheckpointError::BadOrigin(origin.to_owned()));
        }
        Ok(Self {
            keys,
            origin: origin.to_owned(),
        })
    }

    pub fn keys(&self) -> &CheckpointKeys {
        &self.keys
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The signed note of the tree head `(size, root)` of this log.
    pub fn sign(&self, size: u64, root: Hash) -> Result<String, CheckpointError> {
        self.keys.sign(&Checkpoint {
            origin: self.origin.clone(),
            size,
            root,
        })
    }
}

/// One signing key and what it publishes.
#[derive(Clone)]
struct SigningKey {
    signer: StandardSigner,
    verifier: String,
}

/// The configured signing keys: the first signs, every one's verifier key is published (so that
/// checkpoints signed before a rotation still verify).
#[derive(Clone)]
pub struct CheckpointKeys {
    keys: Vec<SigningKey>,
}

impl std::fmt::Debug for CheckpointKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointKeys")
            .field("verifiers", &self.verifier_keys())
            .finish()
    }
}

impl CheckpointKeys {
    /// Keys separated by commas or white space, the signing one first.
    pub fn parse(text: &Secret<String>) -> Result<Self, CheckpointError> {
        let keys = text
            .expose()
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|k| !k.is_empty())
            .enumerate()
            .map(|(i, k)| signing_key(k).ok_or(CheckpointError::BadSigningKey { position: i + 1 }))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(CheckpointError::NoKeys);
        }
        Ok(Self { keys })
    }

    /// A fresh Ed25519 key named `name`: the secret signing key and its verifier key.
    pub fn generate(name: &str) -> Result<(Secret<String>, String), CheckpointError> {
        if !signed_note::is_key_name_valid(name) {
            return Err(CheckpointError::BadName(name.to_owned()));
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| CheckpointError::Random(e.to_string()))?;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let public = [&[ED25519][..], key.verifying_key().as_bytes()].concat();
        let private = [&[ED25519][..], &seed[..]].concat();
        let skey = format!(
            "PRIVATE+KEY+{name}+{:08x}+{}",
            signed_note::key_id(name, &public),
            STANDARD.encode(private)
        );
        let vkey = signed_note::new_ed25519_verifier_key(name, &key.verifying_key());
        Ok((Secret::new(skey), vkey))
    }

    /// Every configured key's verifier key, the signing one first.
    pub fn verifier_keys(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.verifier.clone()).collect()
    }

    /// The signed note of this checkpoint.
    pub fn sign(&self, checkpoint: &Checkpoint) -> Result<String, CheckpointError> {
        if checkpoint.origin.is_empty() || checkpoint.origin.chars().any(|c| c.is_control()) {
            return Err(CheckpointError::BadOrigin(checkpoint.origin.clone()));
        }
        let active = self.keys.first().ok_or(CheckpointError::NoKeys)?;
        let mut note = Note::new(checkpoint.body().as_bytes(), &[])
            .map_err(|e| CheckpointError::Signing(e.to_string()))?;
        note.add_sigs(&[&active.signer])
            .map_err(|e| CheckpointError::Signing(e.to_string()))?;
        String::from_utf8(note.to_bytes()).map_err(|e| CheckpointError::Signing(e.to_string()))
    }

    /// The name and hex key id of the signing key.
    pub fn active(&self) -> (String, String) {
        let signer = &self.keys[0].signer;
        (
            signed_note::Signer::name(signer).to_owned(),
            format!("{:08x}", signed_note::Signer::key_id(signer)),
        )
    }
}

/// Parses a signing key and derives its verifier key; `None` when it is not a valid Ed25519
/// signing key (including a key id that does not match its public key).
fn signing_key(text: &str) -> Option<SigningKey> {
    let signer = StandardSigner::new(text).ok()?;
    // PRIVATE, KEY, name, id, then the base64 key, which may itself hold '+'.
    let encoded = text.splitn(5, '+').nth(4)?;
    let raw = STANDARD.decode(encoded).ok()?;
    let seed: [u8; 32] = raw.get(1..)?.try_into().ok()?;
    let name = signed_note::Signer::name(&signer);
    let verifier = signed_note::new_ed25519_verifier_key(
        name,
        &ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key(),
    );
    Some(SigningKey { signer, verifier })
}

/// Opens a signed checkpoint with these verifier keys: at least one of them must have signed
/// it, and every signature by one of them must hold. Returns the checkpoint and the name and
/// hex id of the keys that signed it.
pub fn open(
    note: &str,
    verifier_keys: &[String],
) -> Result<(Checkpoint, Vec<String>), CheckpointError> {
    let verifiers = verifier_keys
        .iter()
        .map(|k| {
            StandardVerifier::new(k.trim())
                .map(|v| Box::new(v) as Box<dyn Verifier>)
                .map_err(|_| CheckpointError::BadVerifierKey(k.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let note_text = note;
    let note =
        Note::from_bytes(note.as_bytes()).map_err(|e| CheckpointError::Malformed(e.to_string()))?;
    let (verified, _) = note.verify(&VerifierList::new(verifiers)).map_err(|e| {
        CheckpointError::Signature(format!(
            "{e} (signed by {}; trusted: {})",
            signers_of(note_text),
            verifier_keys
                .iter()
                .map(|k| k.splitn(3, '+').take(2).collect::<Vec<_>>().join("+"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let text = std::str::from_utf8(note.text())
        .map_err(|_| CheckpointError::Malformed("the text is not UTF-8".to_owned()))?;
    let checkpoint = Checkpoint::parse(text)?;
    let signers = verified
        .iter()
        .map(|s| format!("{}+{:08x}", s.name(), s.id()))
        .collect();
    Ok((checkpoint, signers))
}

/// `name+hexid` of each signature line of a note (for an error message: who did sign it).
fn signers_of(note: &str) -> String {
    let signers: Vec<String> = note
        .rsplit_once("\n\n")
        .map(|(_, sigs)| sigs)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (name, sig) = line.strip_prefix("— ")?.split_once(' ')?;
            let raw = STANDARD.decode(sig).ok()?;
            Some(format!("{name}+{}", hex::encode(raw.get(..4)?)))
        })
        .collect();
    match signers.is_empty() {
        true => "no one".to_owned(),
        false => signers.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example key and note published with the signed-note format (Go's
    /// golang.org/x/mod/sumdb/note, reproduced by the signed_note crate).
    const PETER_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const PETER_NOTE: &str = "If you think cryptography is the answer to your problem,\n\
        then you don't know what your problem is.\n\
        \n\
        — PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn the_published_example_key_derives_its_published_verifier_key() {
        let keys = CheckpointKeys::parse(&Secret::new(PETER_SKEY.to_owned())).unwrap();
        assert_eq!(keys.verifier_keys(), vec![PETER_VKEY.to_owned()]);
        assert_eq!(
            keys.active(),
            ("PeterNeumann".to_owned(), "c74f20a3".to_owned())
        );
        // Ed25519 is deterministic: the published note is what this key signs.
        let note = Note::new(
            b"If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n",
            &[],
        )
        .unwrap();
        let mut note = note;
        note.add_sigs(&[&keys.keys[0].signer]).unwrap();
        assert_eq!(String::from_utf8(note.to_bytes()).unwrap(), PETER_NOTE);
    }

    fn head() -> Checkpoint {
        Checkpoint {
            origin: "example.com/log".to_owned(),
            size: 42,
            root: [7; 32],
        }
    }

    #[test]
    fn a_signed_checkpoint_opens_with_its_key_and_with_no_other() {
        let (skey, vkey) = CheckpointKeys::generate("example.com/log").unwrap();
        assert!(vkey.starts_with("example.com/log+"));
        let keys = CheckpointKeys::parse(&skey).unwrap();
        assert_eq!(keys.verifier_keys(), vec![vkey.clone()]);
        let note = keys.sign(&head()).unwrap();
        assert!(note.starts_with("example.com/log\n42\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n\n— example.com/log "));
        let (opened, signers) = open(&note, std::slice::from_ref(&vkey)).unwrap();
        assert_eq!(opened, head());
        assert_eq!(signers.len(), 1);

        let (_, other) = CheckpointKeys::generate("example.com/log").unwrap();
        assert!(matches!(
            open(&note, &[other]),
            Err(CheckpointError::Signature(_))
        ));
        let forged = note.replacen("\n42\n", "\n43\n", 1);
        assert!(matches!(
            open(&forged, std::slice::from_ref(&vkey)),
            Err(CheckpointError::Signature(_))
        ));
        assert!(matches!(
            open("garbage", &[vkey]),
            Err(CheckpointError::Malformed(_))
        ));
    }

    #[test]
    fn after_a_rotation_the_new_key_signs_and_the_old_one_still_verifies() {
        let (old, old_v) = CheckpointKeys::generate("log").unwrap();
        let (new, new_v) = CheckpointKeys::generate("log").unwrap();
        let before = CheckpointKeys::parse(&old).unwrap().sign(&head()).unwrap();
        let both = Secret::new(format!("{},{}", new.expose(), old.expose()));
        let keys = CheckpointKeys::parse(&both).unwrap();
        assert_eq!(keys.verifier_keys(), vec![new_v.clone(), old_v.clone()]);
        let after = keys.sign(&head()).unwrap();
        let published = keys.verifier_keys();
        open(&before, &published).unwrap();
        open(&after, &published).unwrap();
        assert!(open(&after, &[old_v]).is_err());
    }

    #[test]
    fn bad_keys_are_refused_without_printing_them() {
        for bad in ["", "PRIVATE+KEY+x+00000000+AAAA", "nonsense"] {
            let err = CheckpointKeys::parse(&Secret::new(bad.to_owned())).unwrap_err();
            assert!(!err.to_string().contains("AAAA"));
        }
        // A key id that does not match the key.
        let tampered = PETER_SKEY.replace("c74f20a3", "c74f20a4");
        assert!(CheckpointKeys::parse(&Secret::new(tampered)).is_err());
        assert!(CheckpointKeys::generate("has space").is_err());
    }
}
