//! Connecting real platforms through OAuth: start an authorization (a single-use, expiring
//! `state` bound to the workspace and the person, with PKCE where the platform supports it), then
//! complete it at the callback (code exchange, tokens sealed at rest, the connection recorded or
//! reauthorized).

use super::{connection_target, credential_err, not_configured, save_tokens};
use crate::{CommandContext, CommandError, Commands};
use adledger_connectors::auth::Pkce;
use adledger_connectors::ConnectorError;
use adledger_domain::connection;
use adledger_domain::event::ConnectionSettings;
use adledger_domain::{ConnectionId, DomainError, Platform, UserId, WorkspaceId};
use adledger_infra::credentials::OAuthState;
use adledger_infra::crypto::{hash_token, OpaqueToken, TokenKind};
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

/// How long a person has to finish the platform's consent screen.
pub const AUTHORIZATION_TTL: Duration = Duration::minutes(15);

/// Where to send the person to grant access.
#[derive(Debug, Clone)]
pub struct Authorization {
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

fn platform_name(platform: Platform) -> &'static str {
    match platform {
        Platform::Sandbox => "Sandbox",
        Platform::Meta => "Meta",
        Platform::Google => "Google Ads",
        Platform::Tiktok => "TikTok",
    }
}

impl Commands {
    /// Starts connecting `platform` (or reconnecting `reconnect`) for `user`.
    pub async fn begin_authorization(
        &self,
        workspace: WorkspaceId,
        user: UserId,
        platform: Platform,
        reconnect: Option<ConnectionId>,
    ) -> Result<Authorization, CommandError> {
        let setup = self.setup(platform)?;
        let flow = setup
            .platforms
            .oauth(platform)
            .ok_or_else(|| not_configured(platform))?;
        if let Some(connection) = reconnect {
            let conn = self.connected(workspace, connection).await?;
            if conn.platform() != platform {
                return Err(CommandError::Rejected(DomainError::invalid(
                    "connection_id",
                    format!("the connection is a {} connection", conn.platform()),
                )));
            }
        }
        let state = OpaqueToken::generate(TokenKind::OAuthState)
            .map_err(|e| CommandError::Crypto(e.to_string()))?;
        let pkce = flow.supports_pkce().then(Pkce::generate);
        let expires_at = self.now() + AUTHORIZATION_TTL;
        setup
            .credentials
            .save_state(
                &state.hash(),
                workspace,
                user,
                platform,
                pkce.as_ref().map(|p| p.verifier.expose()),
                reconnect,
                expires_at,
            )
            .await
            .map_err(credential_err)?;
        Ok(Authorization {
            url: flow.authorize_url(state.expose(), pkce.as_ref().map(|p| p.challenge.as_str())),
            expires_at,
        })
    }

    /// Spends the `state` a platform sent back: who started the authorization, for what.
    pub async fn take_authorization(&self, state: &str) -> Result<OAuthState, CommandError> {
        let unknown = || CommandError::NotFound("authorization (unknown, used or expired)");
        // Without platforms no authorization can have been started: the state is unknown.
        self.connectors
            .as_deref()
            .ok_or_else(unknown)?
            .credentials
            .take_state(&hash_token(state.trim()))
            .await
            .map_err(credential_err)?
            .ok_or_else(unknown)
    }

    /// Exchanges the code, stores the tokens sealed, and records the connection (or its
    /// reauthorization). `ctx` acts as the person who started the authorization.
    pub async fn complete_authorization(
        &self,
        ctx: &CommandContext,
        authorization: &OAuthState,
        code: &str,
    ) -> Result<ConnectionId, CommandError> {
        let platform = authorization.platform;
        let setup = self.setup(platform)?;
        let flow = setup
            .platforms
            .oauth(platform)
            .ok_or_else(|| not_configured(platform))?;
        let tokens = flow
            .exchange_code(code.trim(), authorization.pkce_verifier.as_deref())
            .await
            .map_err(|e| match e {
                ConnectorError::Invalid(why) | ConnectorError::Transient(why) => {
                    CommandError::Connector(format!("the code exchange failed: {why}"))
                }
                other => CommandError::Connector(format!("the code exchange failed: {other}")),
            })?;
        let workspace = authorization.workspace_id;
        let connection = authorization
            .connection_id
            .unwrap_or_else(|| ConnectionId(Uuid::now_v7()));
        save_tokens(setup, connection, workspace, platform, &tokens).await?;
        // Only a token that cannot be refreshed ends the authorization (Meta's 60-day token):
        // a person must renew it before then. Refreshable tokens' expiries mean nothing to them.
        let authorization_expires_at = tokens.expires_at.filter(|_| tokens.refresh_token.is_none());
        let command = match authorization.connection_id {
            Some(_) => connection::Command::Reauthorize {
                authorization_expires_at,
            },
            None => connection::Command::Connect {
                connection_id: connection,
                label: format!("{} connection", platform_name(platform)),
                settings: ConnectionSettings::oauth(platform)
                    .ok_or_else(|| not_configured(platform))?,
                authorization_expires_at,
            },
        };
        self.decide(
            connection_target(&ctx.metadata, workspace, connection),
            &command,
        )
        .await?;
        tracing::info!(workspace_id = %workspace, connection_id = %connection, %platform, "platform authorized");
        Ok(connection)
    }
}
