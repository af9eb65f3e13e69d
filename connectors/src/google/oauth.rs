//! Google's OAuth 2.0: consent URL with `access_type=offline&prompt=consent` (so a refresh token
//! comes back) and PKCE S256, form-encoded code exchange and refresh at `{oauth}/token`, revoke
//! at `{oauth}/revoke`. `invalid_grant` on refresh means the user must reconnect.

use super::GoogleConfig;
use crate::auth::{authorize_url, OAuthFlow, TokenSet};
use crate::wire::{redacted, short, Http, Reply};
use crate::{ConnectorError, Secret};
use adledger_domain::Platform;
use serde::Deserialize;

pub struct GoogleOAuth {
    config: GoogleConfig,
    http: Http,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl GoogleOAuth {
    pub fn new(config: GoogleConfig) -> Self {
        Self {
            config,
            http: Http::new(),
        }
    }

    /// One grant at `{oauth}/token`: the token set, or the refusal classified (`refreshing`: an
    /// `invalid_grant` means the user must reconnect). `secrets` never appear in an error.
    async fn grant(
        &self,
        form: &[(&str, &str)],
        secrets: &[&str],
        refreshing: bool,
    ) -> Result<TokenSet, ConnectorError> {
        redacted(secrets, async {
            let request = self
                .http
                .client()?
                .post(format!("{}/token", self.config.oauth_url))
                .form(form);
            let reply = self.http.send(request).await?;
            if !reply.is_success() {
                return Err(self.failure(&reply, refreshing));
            }
            let answer: TokenAnswer = reply.json("Google token answer")?;
            Ok(TokenSet {
                refresh_token: answer.refresh_token.map(Secret::new),
                scopes: answer
                    .scope
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
                ..TokenSet::granted(answer.access_token, answer.expires_in)
            })
        })
        .await
    }

    fn failure(&self, reply: &Reply, refreshing: bool) -> ConnectorError {
        if reply.status >= 500 {
            return ConnectorError::Transient(format!("Google OAuth: HTTP {}", reply.status));
        }
        if reply.status == 429 {
            return ConnectorError::Throttled { retry_after: None };
        }
        let (code, description) = match serde_json::from_str::<OAuthError>(&reply.body) {
            Ok(e) => (e.error, e.error_description.unwrap_or_default()),
            Err(_) => ("unreadable".into(), String::new()),
        };
        if refreshing && matches!(code.as_str(), "invalid_grant" | "unauthorized_client") {
            return ConnectorError::AuthExpired;
        }
        ConnectorError::Invalid(format!(
            "Google OAuth refused: {code}: {}",
            short(&description)
        ))
    }
}

#[async_trait::async_trait]
impl OAuthFlow for GoogleOAuth {
    fn platform(&self) -> Platform {
        Platform::Google
    }

    fn supports_pkce(&self) -> bool {
        true
    }

    fn authorize_url(&self, state: &str, pkce_challenge: Option<&str>) -> String {
        let mut pairs = vec![
            ("client_id", self.config.client_id.as_str()),
            ("redirect_uri", self.config.redirect_url.as_str()),
            ("response_type", "code"),
            ("scope", GoogleConfig::SCOPE),
            ("access_type", "offline"),
            ("prompt", "consent"),
            ("state", state),
        ];
        if let Some(challenge) = pkce_challenge {
            pairs.extend([
                ("code_challenge", challenge),
                ("code_challenge_method", "S256"),
            ]);
        }
        authorize_url(&self.config.auth_url, &pairs)
    }

    async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: Option<&str>,
    ) -> Result<TokenSet, ConnectorError> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", self.config.client_id.as_str()),
            ("client_secret", self.config.client_secret.expose()),
            ("redirect_uri", self.config.redirect_url.as_str()),
        ];
        if let Some(verifier) = pkce_verifier {
            form.push(("code_verifier", verifier));
        }
        let secrets = [code, self.config.client_secret.expose()];
        self.grant(&form, &secrets, false).await
    }

    async fn refresh(&self, tokens: &TokenSet) -> Result<TokenSet, ConnectorError> {
        let Some(refresh_token) = &tokens.refresh_token else {
            return Err(ConnectorError::AuthExpired);
        };
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
            ("client_id", self.config.client_id.as_str()),
            ("client_secret", self.config.client_secret.expose()),
        ];
        let secrets = [refresh_token.expose(), self.config.client_secret.expose()];
        self.grant(&form, &secrets, true).await
    }

    async fn revoke(&self, tokens: &TokenSet) -> Result<(), ConnectorError> {
        // Revoking the refresh token also ends every access token issued from it.
        let token = tokens
            .refresh_token
            .as_ref()
            .unwrap_or(&tokens.access_token);
        redacted(&[token.expose()], async {
            let request = self
                .http
                .client()?
                .post(format!("{}/revoke", self.config.oauth_url))
                .query(&[("token", token.expose())])
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                );
            let reply = self.http.send(request).await?;
            // `invalid_token`: already revoked or expired, which is what was wanted.
            if reply.is_success() || reply.body.contains("invalid_token") {
                Ok(())
            } else {
                Err(self.failure(&reply, false))
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> GoogleConfig {
        GoogleConfig {
            client_id: "cid.apps.googleusercontent.com".into(),
            client_secret: Secret::new("shh"),
            redirect_url: "https://app.example/cb".into(),
            developer_token: Secret::new("dev"),
            login_customer_id: None,
            auth_url: GoogleConfig::DEFAULT_AUTH_URL.into(),
            oauth_url: GoogleConfig::DEFAULT_OAUTH_URL.into(),
            api_url: GoogleConfig::DEFAULT_API_URL.into(),
            api_version: "v23".into(),
            conversion_window_days: 30,
            chunk_days: 90,
        }
    }

    #[test]
    fn the_consent_url_asks_for_offline_access_and_carries_the_pkce_challenge() {
        let url = GoogleOAuth::new(config()).authorize_url("st ate", Some("chal"));
        assert!(url.starts_with("https://accounts.google.com/o/oauth2/v2/auth?client_id=cid"));
        for part in [
            "redirect_uri=https%3A%2F%2Fapp.example%2Fcb",
            "response_type=code",
            "scope=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fadwords",
            "access_type=offline",
            "prompt=consent",
            "state=st+ate",
            "code_challenge=chal",
            "code_challenge_method=S256",
        ] {
            assert!(url.contains(part), "{part} missing in {url}");
        }
        assert!(!url.contains("shh"));
    }
}
