//! Creating a workspace (a tenant). The person who creates it becomes its first owner; a retried
//! request with the same idempotency key answers the first one's id.

use crate::idempotency::{idempotency, stored};
use crate::{CommandContext, CommandError, Commands, Outcome, Target};
use adledger_domain::workspace::{self, Workspace, WorkspaceName};
use adledger_domain::{Actor, WorkspaceId};
use serde_json::json;
use uuid::Uuid;

impl Commands {
    pub async fn create_workspace(
        &self,
        ctx: &CommandContext,
        name: &str,
    ) -> Result<WorkspaceId, CommandError> {
        let name = WorkspaceName::parse(name)?;
        let workspace_id = WorkspaceId(Uuid::now_v7());
        let idem = idempotency(
            ctx.idempotency_key.as_ref(),
            &json!({"command": "create_workspace", "name": name.as_str()}),
            workspace_id,
        )?;
        if let Some(id) = self.earlier(idem.as_ref()).await? {
            return Ok(id);
        }
        let owner = match ctx.metadata.actor {
            Actor::User { user_id } => Some(user_id),
            _ => None,
        };
        let command = workspace::Command::Create {
            workspace_id,
            name,
            owner,
        };
        let target = Target::<Workspace>::new(&ctx.metadata, workspace_id, workspace_id.stream())
            .idempotent(idem);
        match self.decide(target, &command).await? {
            Outcome::Decided { .. } => Ok(workspace_id),
            Outcome::Duplicate(outcome) => stored(outcome),
        }
    }
}
