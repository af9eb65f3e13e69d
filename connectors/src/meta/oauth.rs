//! Meta's OAuth: the dialog URL, the code → short-lived token exchange and the short → long-lived
//! exchange (`grant_type=fb_exchange_token`), both GETs. There is no refresh token: a connection
//! near expiry needs the user again, so `refresh` answers AuthExpired.

use super::errors::classify;
use super::MetaConfig;
use crate::auth::{OAuthFlow, TokenSet};
use crate::wire::{redact, Http};
use crate::{ConnectorError, Secret};
use adledger_domain::Platform;
use chrono::{Duration, Utc};
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

    fn url(&self, path: &str) -> String {
        format!(
            "{}/{}/{path}",
            self.config.graph_url, self.config.api_version
        )
    }

    async fn token(
        &self,
        query: &[(&str, &str)],
        secrets: &[&str],
    ) -> Result<Granted, ConnectorError> {
        let request = self
            .http
            .client()?
            .get(self.url("oauth/access_token"))
            .query(query);
        let reply = self
            .http
            .send(request)
            .await
            .map_err(|e| redact(e, secrets))?;
        if !reply.is_success() {
            let usage = reply
                .headers
                .get("x-business-use-case-usage")
                .and_then(|v| v.to_str().ok());
            return Err(redact(classify(reply.status, usage, &reply.body), secrets));
        }
        reply
            .json("Meta token answer")
            .map_err(|e| redact(e, secrets))
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
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", &self.config.redirect_url)
            .append_pair("state", state)
            .append_pair("scope", &self.config.scopes.join(","))
            .append_pair("response_type", "code")
            .finish();
        format!(
            "{}/{}/dialog/oauth?{query}",
            self.config.auth_url, self.config.api_version
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
            access_token: Secret::new(long.access_token),
            refresh_token: None,
            expires_at: long.expires_in.map(|s| Utc::now() + Duration::seconds(s)),
            scopes: self.config.scopes.clone(),
            advertiser_ids: Vec::new(),
        })
    }

    async fn refresh(&self, _tokens: &TokenSet) -> Result<TokenSet, ConnectorError> {
        Err(ConnectorError::AuthExpired)
    }

    async fn revoke(&self, tokens: &TokenSet) -> Result<(), ConnectorError> {
        let token = tokens.access_token.expose();
        let request = self
            .http
            .client()?
            .delete(self.url("me/permissions"))
            .bearer_auth(token);
        let reply = self
            .http
            .send(request)
            .await
            .map_err(|e| redact(e, &[token]))?;
        match classify(reply.status, None, &reply.body) {
            _ if reply.is_success() => Ok(()),
            // Already expired or revoked: nothing left to revoke.
            ConnectorError::AuthExpired => Ok(()),
            other => Err(redact(other, &[token])),
        }
    }
}
