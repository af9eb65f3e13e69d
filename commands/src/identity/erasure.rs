//! Erasure (crypto-shredding): a person's key is destroyed, so every sealed field of theirs, in
//! every event, reads as erased while the log's bytes and hash chain stay as they were. A person
//! erases themself; an owner erases someone removed from their workspace.

use super::{crypto_err, Identity};
use crate::{CommandContext, CommandError};
use adledger_domain::user;
use adledger_domain::{DomainError, Role, UserId, WorkspaceId};

impl Identity {
    /// A person who is the last owner of a workspace that has other members must hand it over
    /// first: erased, nobody could manage it any more. (Alone in a workspace, they may go.)
    async fn refuse_if_last_owner(&self, user_id: UserId) -> Result<(), CommandError> {
        for workspace in self.ids.workspaces_of(user_id).await? {
            let state = match self.workspace(workspace).await {
                Ok(state) => state,
                Err(CommandError::NotFound(_)) => continue,
                Err(other) => return Err(other),
            };
            let owners = state
                .members
                .values()
                .filter(|r| **r == Role::Owner)
                .count();
            let last_owner = state.role_of(user_id) == Some(Role::Owner) && owners == 1;
            if last_owner && state.members.len() > 1 {
                return Err(CommandError::Rejected(DomainError::invalid(
                    "user",
                    format!(
                        "the last owner of workspace {workspace} cannot be erased while it has \
                         other members; make one of them owner first"
                    ),
                )));
            }
        }
        Ok(())
    }

    /// Erases a person: records it, destroys their key (every sealed field of theirs, in every
    /// event, now reads as erased), and forgets their email and sessions. The log stays intact.
    pub async fn erase_user(
        &self,
        ctx: &CommandContext,
        user_id: UserId,
    ) -> Result<(), CommandError> {
        self.refuse_if_last_owner(user_id).await?;
        self.decide(ctx, user_id, user::Command::Erase).await?;
        self.sealer
            .erase(user_id.as_uuid())
            .await
            .map_err(crypto_err)?;
        self.ids.forget_user(user_id).await?;
        tracing::info!(user_id = %user_id, "user erased");
        Ok(())
    }

    /// An owner erases a person who was removed from their workspace.
    pub async fn erase_former_member(
        &self,
        ctx: &CommandContext,
        workspace: WorkspaceId,
        user_id: UserId,
    ) -> Result<(), CommandError> {
        let state = self.workspace(workspace).await?;
        if state.members.contains_key(&user_id) {
            return Err(CommandError::Rejected(DomainError::invalid(
                "user_id",
                "remove the member from the workspace before erasing them",
            )));
        }
        if !state.former_members.contains(&user_id) {
            return Err(CommandError::NotFound("former member"));
        }
        self.erase_user(ctx, user_id).await
    }
}
