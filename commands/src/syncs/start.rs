//! Starting a sync: records `SyncStarted` on the connection (which refuses a second run while one
//! goes on) and nothing else; the database queues the run for the sync workers in the same
//! transaction. A retried request with the same idempotency key answers the first run's id.

use crate::connections::connection_target;
use crate::idempotency::{idempotency, stored};
use crate::{CommandContext, CommandError, Commands, Outcome};
use adledger_domain::connection;
use adledger_domain::{CampaignId, ConnectionId, DateRange, SyncId, WorkspaceId};
use serde_json::json;
use uuid::Uuid;

impl Commands {
    /// Starts a sync of `connection` over `range` (of `campaign_ids` only, when given); answers
    /// the new run's id.
    pub async fn start_sync(
        &self,
        ctx: &CommandContext,
        workspace: WorkspaceId,
        connection: ConnectionId,
        range: DateRange,
        campaign_ids: Vec<CampaignId>,
    ) -> Result<SyncId, CommandError> {
        let sync_id = SyncId(Uuid::now_v7());
        let idem = idempotency(
            ctx.idempotency_key.as_ref(),
            &json!({
                "command": "start_sync",
                "workspace": workspace,
                "connection": connection,
                "from": range.from(),
                "to": range.to(),
                "campaign_ids": &campaign_ids,
            }),
            sync_id,
        )?;
        if let Some(id) = self.earlier(idem.as_ref()).await? {
            return Ok(id);
        }
        let command = connection::Command::StartSync {
            sync_id,
            range,
            campaign_ids,
        };
        let target = connection_target(&ctx.metadata, workspace, connection).idempotent(idem);
        match self.decide(target, &command).await? {
            Outcome::Decided { .. } => Ok(sync_id),
            Outcome::Duplicate(outcome) => stored(outcome),
        }
    }
}
