//! Access and opaque tokens: HS256 JWTs signed by a key ring with key ids (the first key signs,
//! all verify), and random opaque tokens (refresh, API key, invitation, OAuth state) stored only
//! as their SHA-256. It never stores or prints a token or a signing secret.

use super::keyring::{KeyListError, KeyRing, RingKey};
use super::{b64_encode, random_bytes, CryptoError};
use crate::secret::Secret;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// `kid:SECRET` entries separated by commas (secrets of at least 32 bytes); the first signs.
pub const JWT_KEYS_ENV: &str = "ADLEDGER_JWT_KEYS";
const MIN_SECRET_LEN: usize = 32;
/// Clock skew allowed on `exp`.
pub const LEEWAY_SECONDS: u64 = 5;

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: Uuid,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// This token's own id.
    pub jti: Uuid,
    /// The session (refresh token family) it belongs to: revoking the session revokes it.
    pub sid: Uuid,
}

impl Claims {
    /// Claims for `user` in `session`, valid for `ttl` from `now`, with a fresh `jti`.
    pub fn new(user: Uuid, session: Uuid, now: DateTime<Utc>, ttl: Duration) -> Self {
        Self {
            sub: user,
            exp: (now + ttl).timestamp(),
            iat: now.timestamp(),
            jti: Uuid::new_v4(),
            sid: session,
        }
    }
}

/// Why an access token was refused. Each is a 401 to the client; the variants are for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token names an unknown key id {0:?}")]
    UnknownKid(String),
    #[error("the token is malformed: {0}")]
    Malformed(String),
}

/// One HS256 signing secret.
#[derive(Clone)]
pub struct JwtKey {
    kid: String,
    secret: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl RingKey for JwtKey {
    const ENV: &'static str = JWT_KEYS_ENV;
    const RING: &'static str = "JwtKeys";

    fn kid(&self) -> &str {
        &self.kid
    }

    /// The secret's bytes, as written, are the HMAC key.
    fn read(kid: String, secret: &str) -> Result<Self, KeyListError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyListError::TooShort {
                kid,
                actual: secret.len(),
                min: MIN_SECRET_LEN,
            });
        }
        Ok(Self::new(kid, secret.into()))
    }

    /// 32 random bytes as base64url text (43 characters).
    fn random(kid: String) -> Result<Self, CryptoError> {
        Ok(Self::new(kid, b64_encode(&random_bytes::<32>()?)))
    }

    fn write(&self) -> String {
        self.secret.clone()
    }
}

impl JwtKey {
    fn new(kid: String, secret: String) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            kid,
            secret,
        }
    }
}

/// The JWT signing keys: the first signs, all verify.
pub type JwtKeys = KeyRing<JwtKey>;

impl JwtKeys {
    /// Signs `claims` with the first key; the header names it (`kid`).
    pub fn issue(&self, claims: &Claims) -> Result<String, CryptoError> {
        let key = self.active()?;
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .map_err(|e| CryptoError::Token(e.to_string()))
    }

    /// Checks the signature with the key the header names, then expiry (5 s leeway).
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        if header.alg != Algorithm::HS256 {
            return Err(TokenError::Malformed(format!(
                "algorithm {:?} is not HS256",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| TokenError::Malformed("no kid in the header".into()))?;
        let key = self.by_kid(&kid).ok_or(TokenError::UnknownKid(kid))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECONDS;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                _ => TokenError::Malformed(e.to_string()),
            })
    }
}

/// What an opaque token is for; its text starts with the kind's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Refresh,
    ApiKey,
    Invitation,
    OAuthState,
}

impl TokenKind {
    pub const ALL: [TokenKind; 4] = [
        TokenKind::Refresh,
        TokenKind::ApiKey,
        TokenKind::Invitation,
        TokenKind::OAuthState,
    ];

    pub fn prefix(self) -> &'static str {
        match self {
            TokenKind::Refresh => "adl_rt_",
            TokenKind::ApiKey => "adl_ak_",
            TokenKind::Invitation => "adl_inv_",
            TokenKind::OAuthState => "adl_st_",
        }
    }

    /// The kind a token's prefix names (e.g. to tell an API key from a JWT).
    pub fn of(token: &str) -> Option<TokenKind> {
        Self::ALL
            .into_iter()
            .find(|kind| token.starts_with(kind.prefix()))
    }
}

/// A random opaque token: `<prefix><base64url of 32 random bytes>`. Give the text to the client
/// once; store only [`OpaqueToken::hash`].
#[derive(Clone)]
pub struct OpaqueToken {
    kind: TokenKind,
    text: Secret<String>,
}

impl fmt::Debug for OpaqueToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OpaqueToken({}***)", self.kind.prefix())
    }
}

impl OpaqueToken {
    pub fn generate(kind: TokenKind) -> Result<Self, CryptoError> {
        let text = format!("{}{}", kind.prefix(), b64_encode(&random_bytes::<32>()?));
        Ok(Self {
            kind,
            text: Secret::new(text),
        })
    }

    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// The token's text, for the client.
    pub fn expose(&self) -> &str {
        self.text.expose()
    }

    /// What to store: [`hash_token`] of the text.
    pub fn hash(&self) -> String {
        hash_token(self.text.expose())
    }
}

/// SHA-256 hex of a token's text. Tokens carry 256 random bits, so no salt or slow hash is needed;
/// look tokens up by this value.
pub fn hash_token(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Whether a presented token matches a stored hash (constant-time).
pub fn verify_token_hash(text: &str, stored_hash: &str) -> bool {
    bool::from(hash_token(text).as_bytes().ct_eq(stored_hash.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    const S1: &str = "k1:0123456789abcdef0123456789abcdef";
    const S2: &str = "k2:fedcba9876543210fedcba9876543210";

    fn claims(ttl_seconds: i64) -> Claims {
        Claims::new(
            Uuid::new_v4(),
            Uuid::new_v4(),
            Utc::now(),
            Duration::seconds(ttl_seconds),
        )
    }

    fn header_of(token: &str) -> serde_json::Value {
        let head = token.split('.').next().unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(head).unwrap()).unwrap()
    }

    #[test]
    fn issue_and_verify_round_trip_with_the_kid_in_the_header() {
        let keys = JwtKeys::parse(&format!("{S2},{S1}")).unwrap();
        let claims = claims(900);
        let token = keys.issue(&claims).unwrap();
        assert_eq!(header_of(&token)["kid"], "k2");
        assert_eq!(header_of(&token)["alg"], "HS256");
        assert_eq!(keys.verify(&token).unwrap(), claims);
    }

    #[test]
    fn expired_tokens_are_refused_within_a_small_leeway() {
        let keys = JwtKeys::parse(S1).unwrap();
        assert_eq!(
            keys.verify(&keys.issue(&claims(-60)).unwrap()),
            Err(TokenError::Expired)
        );
        // Two seconds late is within the leeway.
        assert!(keys.verify(&keys.issue(&claims(-2)).unwrap()).is_ok());
    }

    #[test]
    fn rotation_keeps_old_tokens_valid_until_the_old_key_is_dropped() {
        let old = JwtKeys::parse(S1).unwrap();
        let token = old.issue(&claims(900)).unwrap();
        let rotated = old.with_new_active("k2").unwrap();
        assert_eq!(rotated.kids(), vec!["k2", "k1"]);
        assert!(rotated.verify(&token).is_ok());
        assert_eq!(
            header_of(&rotated.issue(&claims(900)).unwrap())["kid"],
            "k2"
        );

        let only_new = JwtKeys::parse(&format!("k2:{}", &S2[3..])).unwrap();
        assert_eq!(
            only_new.verify(&token),
            Err(TokenError::UnknownKid("k1".into()))
        );
    }

    #[test]
    fn a_forged_or_tampered_token_is_refused() {
        let keys = JwtKeys::parse(S1).unwrap();
        let token = keys.issue(&claims(900)).unwrap();

        let impostor = JwtKeys::parse(&format!("k1:{}", &S2[3..])).unwrap();
        let forged = impostor.issue(&claims(900)).unwrap();
        assert_eq!(keys.verify(&forged), Err(TokenError::BadSignature));

        let parts: Vec<&str> = token.split('.').collect();
        let mut payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        payload["sub"] = serde_json::json!(Uuid::new_v4());
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap());
        let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
        assert_eq!(keys.verify(&tampered), Err(TokenError::BadSignature));
    }

    #[test]
    fn alg_none_missing_kid_and_garbage_are_malformed() {
        let keys = JwtKeys::parse(S1).unwrap();
        let token = keys.issue(&claims(900)).unwrap();
        let body = token.split('.').nth(1).unwrap();
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k1","typ":"JWT"}"#);
        assert!(matches!(
            keys.verify(&format!("{none}.{body}.")),
            Err(TokenError::Malformed(_))
        ));
        let no_kid = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        assert!(matches!(
            keys.verify(&format!("{no_kid}.{body}.x")),
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(
            keys.verify("not a token"),
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(keys.verify(""), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn key_lists_are_checked_and_never_printed() {
        assert_eq!(
            JwtKeys::parse("k1:short").unwrap_err(),
            KeyListError::TooShort {
                kid: "k1".into(),
                actual: 5,
                min: 32
            }
        );
        assert_eq!(JwtKeys::parse("").unwrap_err(), KeyListError::Empty);
        assert!(matches!(
            JwtKeys::parse(&format!("{S1},{S1}")).unwrap_err(),
            KeyListError::DuplicateKid { .. }
        ));
        let keys = JwtKeys::parse(&format!("{S2},{S1}")).unwrap();
        assert_eq!(format!("{keys:?}"), r#"JwtKeys { kids: ["k2", "k1"] }"#);
    }

    #[test]
    fn generated_keys_round_trip_through_the_env_string() {
        let keys = JwtKeys::generate("2025-01").unwrap();
        let env = keys.to_env_string();
        assert!(env.expose().starts_with("2025-01:"));
        let again = JwtKeys::parse(env.expose()).unwrap();
        let token = keys.issue(&claims(60)).unwrap();
        assert!(again.verify(&token).is_ok());
        assert!(JwtKeys::generate("bad kid").is_err());
    }

    #[test]
    fn opaque_tokens_have_their_prefix_and_verify_by_hash() {
        for kind in TokenKind::ALL {
            let token = OpaqueToken::generate(kind).unwrap();
            assert!(token.expose().starts_with(kind.prefix()));
            assert_eq!(token.expose().len(), kind.prefix().len() + 43);
            assert_eq!(TokenKind::of(token.expose()), Some(kind));
            assert_eq!(token.hash().len(), 64);
            assert!(verify_token_hash(token.expose(), &token.hash()));
            assert!(!verify_token_hash(
                &format!("{}x", token.expose()),
                &token.hash()
            ));
            assert!(!format!("{token:?}").contains(&token.expose()[8..]));
        }
        assert_ne!(
            OpaqueToken::generate(TokenKind::Refresh).unwrap().expose(),
            OpaqueToken::generate(TokenKind::Refresh).unwrap().expose()
        );
        assert_eq!(TokenKind::of("eyJhbGciOi..."), None);
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
