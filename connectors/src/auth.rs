//! The OAuth side of every platform behind one interface: authorize URLs, code exchange, refresh
//! and revoke (`OAuthFlow`), and where a client gets its access token from (`TokenSource`).
//! Tokens only ever travel as `Secret`s; nothing here stores them (the caller persists them).

use crate::{ConnectorError, Secret};
use adledger_domain::Platform;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use sha2::Digest;
use std::sync::Arc;

/// What a platform grants for one login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSet {
    pub access_token: Secret,
    /// Google always (with `access_type=offline`); TikTok for some token types; Meta never.
    pub refresh_token: Option<Secret>,
    pub expires_at: Option<DateTime<Utc>>,
    pub scopes: Vec<String>,
    /// TikTok only: the advertisers the token may read.
    pub advertiser_ids: Vec<String>,
}

impl TokenSet {
    /// A bare access token (tests, or a token pasted by an operator).
    pub fn bearer(access_token: impl Into<Secret>) -> Self {
        Self {
            access_token: access_token.into(),
            refresh_token: None,
            expires_at: None,
            scopes: Vec::new(),
            advertiser_ids: Vec::new(),
        }
    }

    /// What a token answer grants: an access token, and its lifetime when the platform states
    /// one (`expires_in`, seconds from now).
    pub(crate) fn granted(access_token: String, expires_in: Option<i64>) -> Self {
        Self {
            expires_at: expires_in.map(|s| Utc::now() + Duration::seconds(s)),
            ..Self::bearer(access_token)
        }
    }

    /// Whether the access token expires within `margin` of `now`.
    pub fn expires_within(&self, now: DateTime<Utc>, margin: Duration) -> bool {
        self.expires_at.is_some_and(|at| at - margin <= now)
    }
}

/// One platform's OAuth 2.0 flow.
#[async_trait::async_trait]
pub trait OAuthFlow: Send + Sync {
    fn platform(&self) -> Platform;
    fn supports_pkce(&self) -> bool;
    /// Where to send the user; `pkce_challenge` is the S256 challenge (ignored without PKCE).
    fn authorize_url(&self, state: &str, pkce_challenge: Option<&str>) -> String;
    async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: Option<&str>,
    ) -> Result<TokenSet, ConnectorError>;
    /// Err(AuthExpired) when the platform cannot refresh (Meta) or refuses (invalid_grant,
    /// 40105, 190).
    async fn refresh(&self, tokens: &TokenSet) -> Result<TokenSet, ConnectorError>;
    /// Best effort revoke on disconnect.
    async fn revoke(&self, tokens: &TokenSet) -> Result<(), ConnectorError>;
}

/// Where a client gets its access token.
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync {
    async fn access_token(&self) -> Result<Secret, ConnectorError>;
    /// Called once when the platform says the token expired (Google 401 UNAUTHENTICATED /
    /// OAUTH_TOKEN_EXPIRED): refresh and persist, return the new token, or AuthExpired.
    async fn refreshed(&self, stale: &Secret) -> Result<Secret, ConnectorError>;
}

/// A fixed token that cannot be refreshed (Meta's long-lived tokens, tests).
#[derive(Debug, Clone)]
pub struct StaticToken(pub Secret);

#[async_trait::async_trait]
impl TokenSource for StaticToken {
    async fn access_token(&self) -> Result<Secret, ConnectorError> {
        Ok(self.0.clone())
    }

    async fn refreshed(&self, _stale: &Secret) -> Result<Secret, ConnectorError> {
        Err(ConnectorError::AuthExpired)
    }
}

/// Called with every newly refreshed token set, so the caller can persist it (encrypted).
pub type OnRefresh = Arc<dyn Fn(&TokenSet) + Send + Sync>;

/// A token set kept fresh through its platform's flow: refreshed shortly before it expires and
/// when the platform says it expired. Concurrent callers that saw the same stale token share one
/// refresh.
pub struct RefreshingTokens {
    flow: Arc<dyn OAuthFlow>,
    current: tokio::sync::Mutex<TokenSet>,
    on_refresh: Option<OnRefresh>,
}

/// Refresh this long before the platform's stated expiry, so a token never dies mid-request.
const EXPIRY_MARGIN_SECS: i64 = 120;

impl RefreshingTokens {
    pub fn new(flow: Arc<dyn OAuthFlow>, tokens: TokenSet, on_refresh: Option<OnRefresh>) -> Self {
        Self {
            flow,
            current: tokio::sync::Mutex::new(tokens),
            on_refresh,
        }
    }

    /// The token set as it stands (after any refresh).
    pub async fn tokens(&self) -> TokenSet {
        self.current.lock().await.clone()
    }

    async fn refresh_locked(&self, current: &mut TokenSet) -> Result<Secret, ConnectorError> {
        let mut fresh = self.flow.refresh(current).await?;
        // Refresh answers usually leave the refresh token out: the old one stays valid.
        if fresh.refresh_token.is_none() {
            fresh.refresh_token = current.refresh_token.clone();
        }
        if fresh.advertiser_ids.is_empty() {
            fresh.advertiser_ids = current.advertiser_ids.clone();
        }
        *current = fresh;
        if let Some(persist) = &self.on_refresh {
            persist(current);
        }
        Ok(current.access_token.clone())
    }
}

#[async_trait::async_trait]
impl TokenSource for RefreshingTokens {
    async fn access_token(&self) -> Result<Secret, ConnectorError> {
        let mut current = self.current.lock().await;
        if current.refresh_token.is_some()
            && current.expires_within(Utc::now(), Duration::seconds(EXPIRY_MARGIN_SECS))
        {
            return self.refresh_locked(&mut current).await;
        }
        Ok(current.access_token.clone())
    }

    async fn refreshed(&self, stale: &Secret) -> Result<Secret, ConnectorError> {
        let mut current = self.current.lock().await;
        if current.access_token != *stale {
            return Ok(current.access_token.clone());
        }
        if current.refresh_token.is_none() {
            return Err(ConnectorError::AuthExpired);
        }
        self.refresh_locked(&mut current).await
    }
}

/// A platform's authorization page with `pairs` as its form-encoded query, in their order.
pub(crate) fn authorize_url(page: &str, pairs: &[(&str, &str)]) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{page}?{query}")
}

/// A PKCE verifier (kept by the caller between redirect and callback) and its S256 challenge.
#[derive(Debug, Clone)]
pub struct Pkce {
    pub verifier: Secret,
    pub challenge: String,
}

impl Pkce {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut bytes);
        // 43 URL-safe characters: within RFC 7636's 43..=128.
        let verifier = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let challenge = Self::challenge_of(&verifier);
        Self {
            verifier: Secret::new(verifier),
            challenge,
        }
    }

    /// BASE64URL(SHA256(verifier)) without padding (RFC 7636 S256).
    pub fn challenge_of(verifier: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_the_rfc_example() {
        // RFC 7636 appendix B.
        assert_eq!(
            Pkce::challenge_of("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let p = Pkce::generate();
        assert_eq!(p.verifier.expose().len(), 43);
        assert_eq!(Pkce::challenge_of(p.verifier.expose()), p.challenge);
    }

    #[test]
    fn expiry_is_judged_with_a_margin() {
        let now = Utc::now();
        let mut t = TokenSet::bearer("x");
        assert!(!t.expires_within(now, Duration::seconds(60)));
        t.expires_at = Some(now + Duration::seconds(30));
        assert!(t.expires_within(now, Duration::seconds(60)));
        t.expires_at = Some(now + Duration::seconds(3600));
        assert!(!t.expires_within(now, Duration::seconds(60)));
    }
}
