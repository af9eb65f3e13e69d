//! Connecting ad platforms through OAuth: start an authorization (a single-use, expiring `state`
//! bound to the workspace and the person, with PKCE where the platform supports it), complete it
//! at the callback (code exchange, tokens sealed at rest, the connection recorded or
//! reauthorized), disconnect (revoke and forget the tokens), and the tokens a sync runs with:
//! refreshed when the platform allows, the connection marked `needs_reauth` when it refuses.

use crate::execute::Target;
use crate::{CommandContext, CommandError, Commands};
use adledger_connectors::auth::{Pkce, RefreshingTokens};
use adledger_connectors::Platforms;
use adledger_connectors::{Connector, ConnectorError, Secret, TokenSet, TokenSource};
use adledger_domain::connection::{self, Connected, Connection};
use adledger_domain::event::ConnectionSettings;
use adledger_domain::{ConnectionId, DomainError, EventMetadata, Platform, UserId, WorkspaceId};
use adledger_infra::credentials::{CredentialError, CredentialStore, OAuthState};
use adledger_infra::crypto::{hash_token, OpaqueToken, TokenKind};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use uuid::Uuid;

/// How long a person has to finish the platform's consent screen.
pub const AUTHORIZATION_TTL: Duration = Duration::minutes(15);

/// The platforms of this deployment and where their tokens are kept.
#[derive(Clone)]
pub struct ConnectorSetup {
    pub platforms: Platforms,
    pub credentials: CredentialStore,
}

/// Where to send the person to grant access.
#[derive(Debug, Clone)]
pub struct Authorization {
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// The stored form of a token set (sealed as a whole by the credential store).
#[derive(Serialize, Deserialize)]
struct StoredTokens {
    access_token: String,
    refresh_token: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    scopes: Vec<String>,
    advertiser_ids: Vec<String>,
}

impl From<&TokenSet> for StoredTokens {
    fn from(t: &TokenSet) -> Self {
        Self {
            access_token: t.access_token.expose().to_owned(),
            refresh_token: t.refresh_token.as_ref().map(|r| r.expose().to_owned()),
            expires_at: t.expires_at,
            scopes: t.scopes.clone(),
            advertiser_ids: t.advertiser_ids.clone(),
        }
    }
}

impl From<StoredTokens> for TokenSet {
    fn from(t: StoredTokens) -> Self {
        TokenSet {
            access_token: Secret::new(t.access_token),
            refresh_token: t.refresh_token.map(Secret::new),
            expires_at: t.expires_at,
            scopes: t.scopes,
            advertiser_ids: t.advertiser_ids,
        }
    }
}

fn credential_err(e: CredentialError) -> CommandError {
    match e {
        CredentialError::Store(s) => CommandError::Store(s),
        CredentialError::Crypto(c) => CommandError::Crypto(c.to_string()),
    }
}

/// The platform connector a sync runs with, and the tokens to persist afterwards if refreshed.
pub(crate) struct Prepared {
    pub connector: Box<dyn Connector>,
    pub tokens: Option<(Arc<RefreshingTokens>, TokenSet)>,
}

impl Commands {
    /// Enables the real platforms: their configuration and the store of their tokens.
    pub fn with_connectors(mut self, setup: ConnectorSetup) -> Self {
        self.connectors = Some(Arc::new(setup));
        self
    }

    /// The platforms this deployment can connect, with whether each is configured.
    pub fn platforms(&self) -> Vec<(Platform, bool)> {
        Platform::ALL
            .into_iter()
            .map(|p| {
                let configured = self
                    .connectors
                    .as_ref()
                    .is_some_and(|c| c.platforms.is_configured(p));
                (p, p == Platform::Sandbox || configured)
            })
            .collect()
    }

    /// The re-read window this deployment configures for `platform`, if any.
    pub fn configured_reread_window(&self, platform: Platform) -> Option<u32> {
        self.connectors
            .as_ref()
            .and_then(|c| c.platforms.reread_window_days(platform))
    }

    fn setup(&self) -> Result<&ConnectorSetup, CommandError> {
        self.connectors
            .as_deref()
            .ok_or_else(|| not_configured(Platform::Meta))
    }

    /// Starts connecting `platform` (or reconnecting `reconnect`) for `user`.
    pub async fn begin_authorization(
        &self,
        workspace: WorkspaceId,
        user: UserId,
        platform: Platform,
        reconnect: Option<ConnectionId>,
        now: DateTime<Utc>,
    ) -> Result<Authorization, CommandError> {
        let setup = self.setup()?;
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
        let expires_at = now + AUTHORIZATION_TTL;
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
        self.setup()?
            .credentials
            .take_state(&hash_token(state.trim()))
            .await
            .map_err(credential_err)?
            .ok_or(CommandError::NotFound(
                "authorization (unknown, used or expired)",
            ))
    }

    /// Exchanges the code, stores the tokens sealed, and records the connection (or its
    /// reauthorization). `ctx` acts as the person who started the authorization.
    pub async fn complete_authorization(
        &self,
        ctx: &CommandContext,
        authorization: &OAuthState,
        code: &str,
    ) -> Result<ConnectionId, CommandError> {
        let setup = self.setup()?;
        let platform = authorization.platform;
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
        self.store_tokens(setup, connection, workspace, platform, &tokens)
            .await?;
        let target = Target {
            stream: connection.stream(),
            workspace,
            metadata: &ctx.metadata,
            idempotency: None,
        };
        let command = match authorization.connection_id {
            Some(_) => connection::Command::Reauthorize { at: ctx.now },
            None => connection::Command::Connect {
                connection_id: connection,
                label: format!("{} connection", platform_name(platform)),
                settings: ConnectionSettings::oauth(platform)
                    .ok_or_else(|| not_configured(platform))?,
                at: ctx.now,
            },
        };
        self.execute::<Connection, _>(target, |state| {
            Ok((connection::decide(state, &command)?, ()))
        })
        .await?;
        tracing::info!(workspace_id = %workspace, connection_id = %connection, %platform, "platform authorized");
        Ok(connection)
    }

    /// Revokes the tokens at the platform (best effort), forgets them, records the disconnect.
    pub async fn disconnect(
        &self,
        ctx: &CommandContext,
        workspace: WorkspaceId,
        connection: ConnectionId,
    ) -> Result<(), CommandError> {
        let conn = self.connected(workspace, connection).await?;
        if let Some(setup) = self.connectors.as_deref() {
            if let Some(tokens) = self.load_tokens(setup, connection).await? {
                if let Some(flow) = setup.platforms.oauth(conn.platform()) {
                    if let Err(e) = flow.revoke(&tokens).await {
                        tracing::warn!(connection_id = %connection, error = %e, "the platform did not confirm the revocation; the tokens are forgotten anyway");
                    }
                }
            }
            setup
                .credentials
                .delete(connection)
                .await
                .map_err(credential_err)?;
        }
        self.connection_lifecycle(
            &ctx.metadata,
            workspace,
            connection,
            connection::Command::Disconnect { at: ctx.now },
        )
        .await
    }

    /// The connection, or `NotFound` (also for another workspace's).
    pub(crate) async fn connected(
        &self,
        workspace: WorkspaceId,
        connection: ConnectionId,
    ) -> Result<Connected, CommandError> {
        self.load::<Connection>(&connection.stream(), workspace)
            .await?
            .state
            .0
            .ok_or(CommandError::NotFound("connection"))
    }

    async fn connection_lifecycle(
        &self,
        metadata: &EventMetadata,
        workspace: WorkspaceId,
        connection: ConnectionId,
        command: connection::Command,
    ) -> Result<(), CommandError> {
        let target = Target {
            stream: connection.stream(),
            workspace,
            metadata,
            idempotency: None,
        };
        self.execute::<Connection, _>(target, |state| {
            Ok((connection::decide(state, &command)?, ()))
        })
        .await
        .map(|_| ())
    }

    async fn store_tokens(
        &self,
        setup: &ConnectorSetup,
        connection: ConnectionId,
        workspace: WorkspaceId,
        platform: Platform,
        tokens: &TokenSet,
    ) -> Result<(), CommandError> {
        let text = serde_json::to_string(&StoredTokens::from(tokens))
            .map_err(|e| CommandError::Crypto(e.to_string()))?;
        setup
            .credentials
            .save(connection, workspace, platform, &text, tokens.expires_at)
            .await
            .map_err(credential_err)
    }

    async fn load_tokens(
        &self,
        setup: &ConnectorSetup,
        connection: ConnectionId,
    ) -> Result<Option<TokenSet>, CommandError> {
        let Some(text) = setup
            .credentials
            .load(connection)
            .await
            .map_err(credential_err)?
        else {
            return Ok(None);
        };
        let stored: StoredTokens = serde_json::from_str(&text)
            .map_err(|e| CommandError::Crypto(format!("stored tokens are unreadable: {e}")))?;
        Ok(Some(stored.into()))
    }

    /// The connector a sync of `conn` runs with. `Err` carries a sync failure reason.
    pub(crate) async fn prepare_connector(&self, conn: &Connected) -> Result<Prepared, String> {
        if let Some(factory) = &self.connector_factory {
            return Ok(Prepared {
                connector: factory(conn),
                tokens: None,
            });
        }
        if let Some(connector) =
            adledger_connectors::sandbox_for(&conn.settings, conn.completed_syncs)
        {
            return Ok(Prepared {
                connector,
                tokens: None,
            });
        }
        let platform = conn.platform();
        let setup = self
            .connectors
            .as_deref()
            .filter(|s| s.platforms.is_configured(platform))
            .ok_or_else(|| format!("invalid: {platform} is not configured on this server"))?;
        let tokens = self
            .load_tokens(setup, conn.id)
            .await
            .map_err(|e| {
                tracing::error!(connection_id = %conn.id, error = %e, "could not load the connection's tokens");
                "internal: could not load the connection's tokens".to_owned()
            })?
            .ok_or_else(|| "auth_expired: no tokens are stored for this connection".to_owned())?;
        if expired_for_good(&tokens, Utc::now()) {
            return Err(
                "auth_expired: the access token expired and the platform cannot refresh it"
                    .to_owned(),
            );
        }
        let flow: Arc<dyn adledger_connectors::OAuthFlow> = setup
            .platforms
            .oauth(platform)
            .ok_or_else(|| format!("invalid: {platform} has no OAuth flow"))?
            .into();
        let refreshing = Arc::new(RefreshingTokens::new(flow, tokens.clone(), None));
        let connector = setup
            .platforms
            .connector(platform, refreshing.clone() as Arc<dyn TokenSource>)
            .ok_or_else(|| format!("invalid: {platform} is not configured on this server"))?;
        Ok(Prepared {
            connector,
            tokens: Some((refreshing, tokens)),
        })
    }

    /// After a run: keep refreshed tokens; when the platform refused the credentials, mark the
    /// connection so that syncs stop until a person reconnects it.
    pub(crate) async fn after_run(
        &self,
        metadata: &EventMetadata,
        workspace: WorkspaceId,
        conn: &Connected,
        tokens: Option<(Arc<RefreshingTokens>, TokenSet)>,
        failure: Option<&str>,
    ) {
        if let (Some((refreshing, before)), Some(setup)) = (tokens, self.connectors.as_deref()) {
            let now = refreshing.tokens().await;
            if now != before {
                if let Err(e) = self
                    .store_tokens(setup, conn.id, workspace, conn.platform(), &now)
                    .await
                {
                    tracing::error!(connection_id = %conn.id, error = %e, "could not store refreshed tokens");
                }
            }
        }
        if let Some(reason) = failure.filter(|r| r.starts_with("auth_expired")) {
            let command = connection::Command::MarkNeedsReauth {
                reason: reason.to_owned(),
                at: Utc::now(),
            };
            match self
                .connection_lifecycle(metadata, workspace, conn.id, command)
                .await
            {
                Ok(()) => {
                    tracing::warn!(connection_id = %conn.id, "the platform refused the connection's credentials; it needs to be reconnected")
                }
                Err(e) => {
                    tracing::error!(connection_id = %conn.id, error = %e, "could not mark the connection as needing reauthorization")
                }
            }
        }
    }
}

/// A token past its expiry with no way to refresh it (Meta's long-lived token after 60 days):
/// only a person can renew it, so the sync fails without calling the platform.
fn expired_for_good(tokens: &TokenSet, now: DateTime<Utc>) -> bool {
    tokens.refresh_token.is_none() && tokens.expires_at.is_some_and(|at| at <= now)
}

fn platform_name(platform: Platform) -> &'static str {
    match platform {
        Platform::Sandbox => "Sandbox",
        Platform::Meta => "Meta",
        Platform::Google => "Google Ads",
        Platform::Tiktok => "TikTok",
    }
}

fn not_configured(platform: Platform) -> CommandError {
    CommandError::Rejected(DomainError::invalid(
        "platform",
        format!(
            "{platform} is not configured on this server (set its ADLEDGER_{}_* variables)",
            platform.as_str().to_uppercase()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_expired_token_without_a_refresh_token_is_expired_for_good() {
        let now = Utc::now();
        let mut tokens = TokenSet::bearer("t");
        assert!(!expired_for_good(&tokens, now), "no expiry known");
        tokens.expires_at = Some(now - Duration::minutes(1));
        assert!(expired_for_good(&tokens, now));
        tokens.refresh_token = Some(Secret::new("r"));
        assert!(!expired_for_good(&tokens, now), "it can be refreshed");
        tokens.refresh_token = None;
        tokens.expires_at = Some(now + Duration::days(59));
        assert!(!expired_for_good(&tokens, now));
    }

    #[test]
    fn stored_tokens_round_trip() {
        let mut tokens = TokenSet::bearer("access");
        tokens.refresh_token = Some(Secret::new("refresh"));
        tokens.advertiser_ids = vec!["7001".into()];
        let text = serde_json::to_string(&StoredTokens::from(&tokens)).unwrap();
        let back: TokenSet = serde_json::from_str::<StoredTokens>(&text).unwrap().into();
        assert_eq!(back, tokens);
    }
}
