//! Connecting without OAuth: the sandbox, a platform fully described by its settings (seed, ad
//! accounts, campaigns). A retried request with the same idempotency key answers the first id.
//! The sandbox generates whatever it is asked for, so what one connection and one sync may ask
//! of it is bounded by the operator ([`SandboxLimits`]).

use super::connection_target;
use crate::idempotency::{idempotency, stored};
use crate::{CommandContext, CommandError, Commands, Outcome};
use adledger_domain::connection;
use adledger_domain::event::ConnectionSettings;
use adledger_domain::workspace::Workspace;
use adledger_domain::{ConnectionId, DomainError, WorkspaceId};
use serde_json::json;
use uuid::Uuid;

/// What one sandbox connection, and one sync of it, may ask the sandbox to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxLimits {
    /// Campaigns of one sandbox connection (dealt over its 1 to 10 ad accounts).
    pub max_campaigns: u32,
    /// Campaign-days (campaigns × days of the range) of one sandbox sync: each is one event in
    /// the log and one row of daily insights.
    pub max_campaign_days_per_sync: u64,
}

impl SandboxLimits {
    pub const DEFAULT_MAX_CAMPAIGNS: u32 = 1_000;
    pub const DEFAULT_MAX_CAMPAIGN_DAYS_PER_SYNC: u64 = 100_000;

    /// Refuses settings over the limits, naming the field as the API calls it.
    pub fn check(&self, settings: &ConnectionSettings) -> Result<(), DomainError> {
        match settings {
            ConnectionSettings::Sandbox { campaigns, .. } if *campaigns > self.max_campaigns => {
                Err(DomainError::invalid(
                    "sandbox.campaigns",
                    format!(
                        "must be between 1 and {} (this server's limit)",
                        self.max_campaigns
                    ),
                ))
            }
            _ => Ok(()),
        }
    }
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            max_campaigns: Self::DEFAULT_MAX_CAMPAIGNS,
            max_campaign_days_per_sync: Self::DEFAULT_MAX_CAMPAIGN_DAYS_PER_SYNC,
        }
    }
}

impl Commands {
    pub async fn connect_platform(
        &self,
        ctx: &CommandContext,
        workspace: WorkspaceId,
        label: &str,
        settings: ConnectionSettings,
    ) -> Result<ConnectionId, CommandError> {
        let connection_id = ConnectionId(Uuid::now_v7());
        let idem = idempotency(
            ctx.idempotency_key.as_ref(),
            &json!({"command": "connect_platform", "workspace": workspace, "label": label, "settings": &settings}),
            connection_id,
        )?;
        if let Some(id) = self.earlier(idem.as_ref()).await? {
            return Ok(id);
        }
        self.sandbox_limits.check(&settings)?;
        let ws = self
            .load::<Workspace>(workspace, &workspace.stream())
            .await?;
        if ws.state.id != Some(workspace) {
            return Err(CommandError::NotFound("workspace"));
        }
        let command = connection::Command::Connect {
            connection_id,
            label: label.to_owned(),
            settings,
            authorization_expires_at: None,
        };
        let target = connection_target(&ctx.metadata, workspace, connection_id).idempotent(idem);
        match self.decide(target, &command).await? {
            Outcome::Decided { .. } => Ok(connection_id),
            Outcome::Duplicate(outcome) => stored(outcome),
        }
    }
}
