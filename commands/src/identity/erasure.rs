//! Erasure (crypto-shredding): a person's key is destroyed, and with it the keys of every other
//! subject holding data about them (their address's, invitations of old sent to them, the API
//! keys they made), so every sealed field about them, in every event, reads as erased while the
//! log's bytes and hash chain stay as they were. A person erases themself; an owner erases
//! someone removed from their workspace. It never deletes or rewrites an event.

use super::{crypto_err, Identity};
use crate::{CommandContext, CommandError};
use adledger_domain::user::{self, User};
use adledger_domain::{
    DomainError, DomainEvent, EventMetadata, Role, SubjectId, UserId, WorkspaceId,
};
use adledger_infra::crypto::Opened;
use adledger_infra::erasure::CreatedKey;
use adledger_infra::StoreError;
use uuid::Uuid;

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

    /// The other subjects holding data about this person: their address's subject (invitations
    /// to it, sent before or after they registered), invitations of old sealed under their own
    /// id and sent to their address, and the API keys they created (their requests' sources).
    async fn linked_subjects(
        &self,
        email: &str,
        keys: &[CreatedKey],
    ) -> Result<Vec<SubjectId>, CommandError> {
        let mut linked: Vec<SubjectId> = keys
            .iter()
            .map(|k| SubjectId(k.api_key_id.as_uuid()))
            .collect();
        let address = self
            .sealer
            .find_email_subject(email)
            .await
            .map_err(crypto_err)?;
        linked.extend(address.map(SubjectId));
        let legacy = self.ids.legacy_invitations().await?;
        let sealed: Vec<&str> = legacy.iter().map(|i| i.email.as_str()).collect();
        let opened = self.sealer.open_many(&sealed).await.map_err(crypto_err)?;
        for (invitation, opened) in legacy.iter().zip(opened) {
            if let Opened::Revealed(invited) = opened {
                if invited.trim().to_lowercase() == email.trim().to_lowercase() {
                    linked.push(SubjectId(invitation.invitation_id.as_uuid()));
                }
            }
        }
        Ok(linked)
    }

    /// A departed person's API keys stop working before their keys are destroyed, so that no
    /// request is left with a source it cannot seal. Recorded by adledger itself: the person
    /// erasing or the owner erasing them may not belong to those workspaces.
    async fn revoke_keys_of_erased(
        &self,
        ctx: &CommandContext,
        keys: &[CreatedKey],
    ) -> Result<(), CommandError> {
        let system = CommandContext {
            metadata: EventMetadata::system("erasure", ctx.metadata.correlation_id),
            idempotency_key: None,
        };
        for key in keys {
            match self
                .revoke_api_key(&system, key.workspace_id, key.api_key_id)
                .await
            {
                Ok(()) | Err(CommandError::NotFound(_)) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }

    /// The subjects erased with the person, when their erasure is recorded already.
    async fn recorded_erasure(
        &self,
        user_id: UserId,
    ) -> Result<Option<Vec<SubjectId>>, CommandError> {
        let (_, events) = self
            .commands
            .load_with_events::<User>(WorkspaceId::IDENTITY, &user_id.stream())
            .await?;
        for recorded in events.iter().rev() {
            let event = recorded
                .decode()
                .map_err(|e| StoreError::Corrupt(format!("{}: {e}", recorded.event_id)))?;
            if let DomainEvent::UserErased(erased) = event {
                return Ok(Some(erased.also_erased));
            }
        }
        Ok(None)
    }

    /// Erases a person: records it with the other subjects that held data about them, then
    /// carries it out. An erasure that stopped halfway (the process died after recording it) is
    /// carried to its end by asking again: the recorded list says what is left to destroy.
    pub async fn erase_user(
        &self,
        ctx: &CommandContext,
        user_id: UserId,
    ) -> Result<(), CommandError> {
        let also_erased = match self.recorded_erasure(user_id).await? {
            Some(recorded) => recorded,
            None => {
                self.refuse_if_last_owner(user_id).await?;
                let user = self.load_user(user_id).await?;
                let email = self.reveal(&user.email).await?.unwrap_or_default();
                let keys = self.ids.api_keys_created_by(user_id).await?;
                let also_erased = self.linked_subjects(&email, &keys).await?;
                let command = user::Command::Erase {
                    also_erased: also_erased.clone(),
                };
                self.decide(ctx, user_id, command).await?;
                also_erased
            }
        };
        self.carry_out_erasure(ctx, user_id, &also_erased).await?;
        tracing::info!(user_id = %user_id, "user erased");
        Ok(())
    }

    /// Revokes the person's API keys, destroys their key and every linked one (every sealed
    /// field about them, in every event, now reads as erased), and forgets their address's
    /// subject, their email and their sessions. Every step may run again.
    async fn carry_out_erasure(
        &self,
        ctx: &CommandContext,
        user_id: UserId,
        also_erased: &[SubjectId],
    ) -> Result<(), CommandError> {
        let keys: Vec<CreatedKey> = self
            .ids
            .api_keys_created_by(user_id)
            .await?
            .into_iter()
            .filter(|k| also_erased.contains(&SubjectId(k.api_key_id.as_uuid())))
            .collect();
        self.revoke_keys_of_erased(ctx, &keys).await?;
        let subjects: Vec<Uuid> = also_erased.iter().map(|s| s.as_uuid()).collect();
        for subject in std::iter::once(user_id.as_uuid()).chain(subjects.iter().copied()) {
            self.sealer.erase(subject).await.map_err(crypto_err)?;
        }
        self.sealer
            .forget_email_subjects(&subjects)
            .await
            .map_err(crypto_err)?;
        self.ids.forget_user(user_id).await?;
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
