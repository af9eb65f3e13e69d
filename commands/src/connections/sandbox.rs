//! Connecting without OAuth: the sandbox, a platform fully described by its settings (seed, ad
//! accounts, campaigns). A retried request with the same idempotency key answers the first id.

use super::connection_target;
use crate::idempotency::{idempotency, stored};
use crate::{CommandContext, CommandError, Commands, Outcome};
use adledger_domain::connection;
use adledger_domain::event::ConnectionSettings;
use adledger_domain::workspace::Workspace;
use adledger_domain::{ConnectionId, WorkspaceId};
use serde_json::json;
use uuid::Uuid;

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
