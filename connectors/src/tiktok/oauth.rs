//! TikTok's OAuth: the advertiser authorization page, and a JSON code exchange at
//! `oauth2/access_token/` with TikTok's own field names (`app_id`, `secret`, `auth_code`). No
//! PKCE. Advertiser tokens are long-lived; refresh only works for token types that carry one.

use super::errors::data;
use super::TiktokConfig;
use crate::auth::{authorize_url, OAuthFlow, TokenSet};
use crate::wire::{redacted, Http};
use crate::{ConnectorError, Secret};
use adledger_domain::Platform;
use serde::Deserialize;
use serde_json::{json, Value};

pub struct TiktokOAuth {
    config: TiktokConfig,
    http: Http,
}

#[derive(Deserialize)]
struct Granted {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
    #[serde(default)]
    advertiser_ids: Vec<Value>,
    #[serde(default)]
    scope: Vec<Value>,
}

/// Ids and scopes come as numbers or strings depending on the endpoint: keep their text.
fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

impl TiktokOAuth {
    pub fn new(config: TiktokConfig) -> Self {
        Self {
            config,
            http: Http::new(),
        }
    }

    async fn post(
        &self,
        path: &str,
        body: Value,
        secrets: &[&str],
    ) -> Result<TokenSet, ConnectorError> {
        let mut all = secrets.to_vec();
        all.push(self.config.secret.expose());
        let granted: Granted = redacted(&all, async {
            let request = self
                .http
                .client()?
                .post(format!("{}/{path}", self.config.api_url))
                .json(&body);
            let reply = self.http.send(request).await?;
            data(&reply, "TikTok token answer")
        })
        .await?;
        Ok(TokenSet {
            refresh_token: granted.refresh_token.map(Secret::new),
            scopes: granted.scope.iter().map(text).collect(),
            advertiser_ids: granted.advertiser_ids.iter().map(text).collect(),
            ..TokenSet::granted(granted.access_token, granted.expires_in)
        })
    }
}

#[async_trait::async_trait]
impl OAuthFlow for TiktokOAuth {
    fn platform(&self) -> Platform {
        Platform::Tiktok
    }

    fn supports_pkce(&self) -> bool {
        false
    }

    fn authorize_url(&self, state: &str, _pkce_challenge: Option<&str>) -> String {
        authorize_url(
            &self.config.auth_url,
            &[
                ("app_id", &self.config.app_id),
                ("redirect_uri", &self.config.redirect_url),
                ("state", state),
            ],
        )
    }

    async fn exchange_code(
        &self,
        code: &str,
        _pkce_verifier: Option<&str>,
    ) -> Result<TokenSet, ConnectorError> {
        let body = json!({
            "app_id": self.config.app_id,
            "secret": self.config.secret.expose(),
            "auth_code": code,
        });
        self.post("oauth2/access_token/", body, &[code]).await
    }

    async fn refresh(&self, tokens: &TokenSet) -> Result<TokenSet, ConnectorError> {
        let Some(refresh_token) = &tokens.refresh_token else {
            return Err(ConnectorError::AuthExpired);
        };
        let body = json!({
            "app_id": self.config.app_id,
            "secret": self.config.secret.expose(),
            "refresh_token": refresh_token.expose(),
            "grant_type": "refresh_token",
        });
        match self
            .post("oauth2/refresh_token/", body, &[refresh_token.expose()])
            .await
        {
            // A refused refresh means the user has to authorize again.
            Err(ConnectorError::Invalid(_)) => Err(ConnectorError::AuthExpired),
            other => other,
        }
    }

    async fn revoke(&self, _tokens: &TokenSet) -> Result<(), ConnectorError> {
        // TikTok documents no revoke endpoint; the advertiser revokes in TikTok's own UI.
        Ok(())
    }
}
