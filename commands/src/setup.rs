//! Commands that create things or start work: create a workspace, connect a platform, start a
//! sync. Each honours an idempotency key, so a retried request returns the first one's id.

use crate::execute::{Aggregate, Executed, Target};
use crate::idempotency::{idempotency, stored};
use crate::{CommandContext, CommandError, Commands};
use adledger_domain::connection::{self, Connection};
use adledger_domain::event::{ConnectionSettings, Decided};
use adledger_domain::workspace::{self, Workspace, WorkspaceName};
use adledger_domain::{CampaignId, ConnectionId, DateRange, DomainError, SyncId, WorkspaceId};
use adledger_infra::{AppendOutcome, Idempotency};
use serde_json::json;
use uuid::Uuid;

/// Scope of idempotency keys for commands that run before any workspace exists.
const GLOBAL_SCOPE: &str = "global";

impl Commands {
    /// Appends what `decide` decides under the target's idempotency key and answers `id`, or
    /// the id a concurrent identical request stored first.
    async fn create<A: Aggregate, I: serde::de::DeserializeOwned>(
        &self,
        target: Target<'_>,
        id: I,
        decide: impl Fn(&A) -> Result<Vec<Decided>, DomainError>,
    ) -> Result<I, CommandError> {
        match self
            .execute::<A, _>(target, |state| Ok((decide(state)?, ())))
            .await?
        {
            Executed::Decided(()) => Ok(id),
            Executed::Duplicate(outcome) => stored(outcome),
        }
    }

    /// An earlier answer to the same request, when the key was used before.
    async fn earlier<T: serde::de::DeserializeOwned>(
        &self,
        idem: Option<&Idempotency>,
    ) -> Result<Option<T>, CommandError> {
        let Some(idem) = idem else { return Ok(None) };
        match self.store.idempotent_outcome(idem).await? {
            Some(AppendOutcome::Duplicate { outcome }) => Ok(Some(stored(outcome)?)),
            _ => Ok(None),
        }
    }

    pub async fn create_workspace(
        &self,
        ctx: &CommandContext,
        name: &str,
    ) -> Result<WorkspaceId, CommandError> {
        let name = WorkspaceName::parse(name)?;
        let workspace_id = WorkspaceId(Uuid::now_v7());
        let idem = idempotency(
            ctx.idempotency_key.as_ref(),
            GLOBAL_SCOPE.to_owned(),
            &json!({"command": "create_workspace", "name": name.as_str()}),
            workspace_id,
        )?;
        if let Some(id) = self.earlier(idem.as_ref()).await? {
            return Ok(id);
        }
        let owner = match ctx.metadata.actor {
            adledger_domain::Actor::User { user_id } => Some(user_id),
            _ => None,
        };
        let command = workspace::Command::Create {
            workspace_id,
            name,
            owner,
            at: ctx.now,
        };
        let target = Target {
            stream: workspace_id.stream(),
            workspace: workspace_id,
            metadata: &ctx.metadata,
            idempotency: idem.as_ref(),
        };
        self.create::<Workspace, _>(target, workspace_id, |state| {
            workspace::decide(state, &command)
        })
        .await
    }

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
            workspace.to_string(),
            &json!({"command": "connect_platform", "label": label, "settings": &settings}),
            connection_id,
        )?;
        if let Some(id) = self.earlier(idem.as_ref()).await? {
            return Ok(id);
        }
        let ws = self
            .load::<Workspace>(&workspace.stream(), workspace)
            .await?;
        if ws.state.id != Some(workspace) {
            return Err(CommandError::NotFound("workspace"));
        }
        let command = connection::Command::Connect {
            connection_id,
            label: label.to_owned(),
            settings,
            at: ctx.now,
        };
        let target = Target {
            stream: connection_id.stream(),
            workspace,
            metadata: &ctx.metadata,
            idempotency: idem.as_ref(),
        };
        self.create::<Connection, _>(target, connection_id, |state| {
            connection::decide(state, &command)
        })
        .await
    }

    /// Appends SyncStarted (validates connection belongs to workspace, range, campaign ids);
    /// returns the new sync id.
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
            workspace.to_string(),
            &json!({
                "command": "start_sync",
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
            at: ctx.now,
        };
        let target = Target {
            stream: connection.stream(),
            workspace,
            metadata: &ctx.metadata,
            idempotency: idem.as_ref(),
        };
        self.create::<Connection, _>(target, sync_id, |state| connection::decide(state, &command))
            .await
    }
}
