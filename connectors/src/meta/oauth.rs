//! Meta's OAuth: the dialog URL, the code → short-lived token exchange and the short → long-lived
//! exchange (`grant_type=fb_exchange_token`), both GETs. There is no refresh token: a connection
//! near expiry needs the user again, so `refresh` answers AuthExpired.

use super::errors::{classify, classify_reply};
use super::MetaConfig;
use crate::auth::{authorize_url, OAuthFlow, TokenSet};
use crate::wire::{redacted, Http};
use crate::ConnectorError;
use adledger_domain::Platform;
use serde::Deserialize;

pub struct MetaOAuth {
    config: MetaConfig,
    http: Http,
}

#[derive(Deserialize)]
struct Granted {
    access_token: String,
    #[serde(default)]
    expires_in: Option<i64>,
}

impl MetaOAuth {
    pub fn new(config: MetaConfig) -> Self {
        Self {
            config,
            http: Http::new(),
        }
    }

    async fn token(
        &self,
        query: &[(&str, &str)],
        secrets: &[&str],
    ) -> Result<Granted, ConnectorError> {
        redacted(secrets, async {
            let request = self
                .http
                .client()?
                .get(self.config.graph("oauth/access_token"))
                .query(query);
            let reply = self.http.send(request).await?;
            if !reply.is_success() {
                return Err(classify_reply(&reply));
            }
            reply.json("Meta token answer")
        })
        .await
    }
}

#[async_trait::async_trait]
impl OAuthFlow for MetaOAuth {
    fn platform(&self) -> Platform {
        Platform::Meta
    }

    fn supports_pkce(&self) -> bool {
        false
    }

    fn authorize_url(&self, state: &str, _pkce_challenge: Option<&str>) -> String {
        let page = format!(
            "{}/{}/dialog/oauth",
            self.config.auth_url, self.config.api_version
        );
        let scope = self.config.scopes.join(",");
        authorize_url(
            &page,
            &[
                ("client_id", &self.config.client_id),
                ("redirect_uri", &self.config.redirect_url),
                ("state", state),
                ("scope", &scope),
                ("response_type", "code"),
            ],
        )
    }

    async fn exchange_code(
        &self,
        code: &str,
        _pkce_verifier: Option<&str>,
    ) -> Result<TokenSet, ConnectorError> {
        let secret = self.config.client_secret.expose();
        let short = self
            .token(
                &[
                    ("client_id", self.config.client_id.as_str()),
                    ("redirect_uri", self.config.redirect_url.as_str()),
                    ("client_secret", secret),
                    ("code", code),
                ],
                &[secret, code],
            )
            .await?;
        // The short-lived token lasts about an hour; the long-lived one about 60 days.
        let long = self
            .token(
                &[
                    ("grant_type", "fb_exchange_token"),
                    ("client_id", self.config.client_id.as_str()),
                    ("client_secret", secret),
                    ("fb_exchange_token", short.access_token.as_str()),
                ],
                &[secret, short.access_token.as_str()],
            )
            .await?;
        Ok(TokenSet {
            scopes: self.config.scopes.clone(),
            ..TokenSet::granted(long.access_token, long.expires_in)
        })
    }

    async fn refresh(&self, _tokens: &TokenSet) -> Result<TokenSet, ConnectorError> {
        Err(ConnectorError::AuthExpired)
    }

    async fn revoke(&self, tokens: &TokenSet) -> Result<(), ConnectorError> {
        let token = tokens.access_token.expose();
        redacted(&[token], async {
            let request = self
                .http
                .client()?
                .delete(self.config.graph("me/permissions"))
                .bearer_auth(token);
            let reply = self.http.send(request).await?;
            match classify(reply.status, None, &reply.body) {
                _ if reply.is_success() => Ok(()),
                // Already expired or revoked: nothing left to revoke.
                ConnectorError::AuthExpired => Ok(()),
                other => Err(other),
            }
        })
        .await
    }
}
