//! Connections: connecting the sandbox (`sandbox`), connecting real platforms through their OAuth
//! flow (`oauth`), where their tokens are kept (`credentials`), disconnecting, and the lifecycle
//! a sync run may move a connection through (needs reauthorization). Discovery of ad accounts
//! and campaigns runs on the sync workers right after a connect (see `syncs::worker`).

mod credentials;
mod oauth;
mod sandbox;

pub use oauth::{Authorization, AUTHORIZATION_TTL};
pub use sandbox::SandboxLimits;

use crate::{CommandContext, CommandError, Commands, Target};
use adledger_connectors::Platforms;
use adledger_domain::connection::{self, Connected, Connection};
use adledger_domain::{ConnectionId, DomainError, EventMetadata, Platform, WorkspaceId};
use adledger_infra::credentials::{CredentialError, CredentialStore};
use std::sync::Arc;

/// The platforms of this deployment and where their tokens are kept.
#[derive(Clone)]
pub struct ConnectorSetup {
    pub platforms: Platforms,
    pub credentials: CredentialStore,
}

pub(crate) fn credential_err(e: CredentialError) -> CommandError {
    match e {
        CredentialError::Store(s) => CommandError::Store(s),
        CredentialError::Crypto(c) => CommandError::Crypto(c.to_string()),
    }
}

pub(crate) fn not_configured(platform: Platform) -> CommandError {
    CommandError::Rejected(DomainError::invalid(
        "platform",
        format!(
            "{platform} is not configured on this server (set its ADLEDGER_{}_* variables)",
            platform.as_str().to_uppercase()
        ),
    ))
}

/// Decisions about a connection go to its own stream.
pub(crate) fn connection_target(
    metadata: &EventMetadata,
    workspace: WorkspaceId,
    connection: ConnectionId,
) -> Target<'_, Connection> {
    Target::new(metadata, workspace, connection.stream())
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

    pub(crate) fn setup(&self, platform: Platform) -> Result<&ConnectorSetup, CommandError> {
        self.connectors
            .as_deref()
            .ok_or_else(|| not_configured(platform))
    }

    /// The connection, or `NotFound` (also for another workspace's).
    pub async fn connected(
        &self,
        workspace: WorkspaceId,
        connection: ConnectionId,
    ) -> Result<Connected, CommandError> {
        self.load::<Connection>(workspace, &connection.stream())
            .await?
            .state
            .0
            .ok_or(CommandError::NotFound("connection"))
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
            if let Some(tokens) = credentials::load(setup, connection).await? {
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
        let target = connection_target(&ctx.metadata, workspace, connection);
        self.decide(target, &connection::Command::Disconnect)
            .await
            .map(|_| ())
    }
}

pub(crate) use credentials::{load as load_tokens, save as save_tokens};
