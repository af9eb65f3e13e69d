//! A workspace's people: who they are, invitations by email (single use, expiring, only for the
//! invited address), role changes and removals. The rules (a last owner who stays, invitations
//! used once) are the workspace aggregate's.

use crate::identity::{crypto_err, random_secret, Identity};
use crate::{CommandContext, CommandError, Target};
use adledger_domain::user::EmailAddress;
use adledger_domain::workspace::{self, Workspace};
use adledger_domain::{DomainError, InvitationId, Role, Sealed, UserId, WorkspaceId};
use adledger_infra::crypto::{hash_token, sealed_subject, verify_token_hash, TokenKind};
use chrono::{DateTime, Duration};
use uuid::Uuid;

/// An invitation as created: the token goes to the invitee and is not kept.
#[derive(Debug, Clone)]
pub struct Invited {
    pub invitation_id: InvitationId,
    pub token: String,
    pub expires_at: DateTime<chrono::Utc>,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub user_id: UserId,
    pub role: Role,
    /// `None` once the person was erased.
    pub email: Option<String>,
}

const INVITATION_PREFIX: &str = "adl_inv_";

/// `adl_inv_<workspace id><invitation id>_<secret>`: the ids find the invitation, the whole text
/// is hashed.
fn invitation_token(
    workspace: WorkspaceId,
    invitation: InvitationId,
) -> Result<String, CommandError> {
    let secret = random_secret(TokenKind::Invitation)?;
    Ok(format!(
        "{INVITATION_PREFIX}{}{}_{secret}",
        workspace.0.simple(),
        invitation.0.simple(),
    ))
}

fn invitation_ids(token: &str) -> Option<(WorkspaceId, InvitationId)> {
    let rest = token.trim().strip_prefix(INVITATION_PREFIX)?;
    let (ids, secret) = rest.split_once('_')?;
    if ids.len() != 64 || secret.is_empty() {
        return None;
    }
    let workspace = Uuid::try_parse(&ids[..32]).ok()?;
    let invitation = Uuid::try_parse(&ids[32..]).ok()?;
    Some((WorkspaceId(workspace), InvitationId(invitation)))
}

/// Decisions about a workspace go to its own stream.
pub(crate) fn workspace_target(
    ctx: &CommandContext,
    workspace: WorkspaceId,
) -> Target<'_, Workspace> {
    Target::new(&ctx.metadata, workspace, workspace.stream())
}

impl Identity {
    async fn decide_in(
        &self,
        ctx: &CommandContext,
        workspace: WorkspaceId,
        command: workspace::Command,
    ) -> Result<(), CommandError> {
        self.commands
            .decide(workspace_target(ctx, workspace), &command)
            .await
            .map(|_| ())
    }

    /// The workspace's members in user-id order, from after `after`, at most `limit` of them
    /// (emails are looked up for those only).
    pub async fn members(
        &self,
        workspace: WorkspaceId,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<Member>, CommandError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let state = self.workspace(workspace).await?;
        let start = after.map_or(Unbounded, Excluded);
        let page: Vec<(UserId, Role)> = state
            .members
            .range((start, Unbounded))
            .take(limit)
            .map(|(user, role)| (*user, *role))
            .collect();
        let users: Vec<UserId> = page.iter().map(|(user, _)| *user).collect();
        let emails: std::collections::HashMap<UserId, String> =
            self.ids.emails(&users).await?.into_iter().collect();
        Ok(page
            .into_iter()
            .map(|(user_id, role)| Member {
                user_id,
                role,
                email: emails.get(&user_id).cloned(),
            })
            .collect())
    }

    /// Invites an email address with a role; the token is single use and expires.
    pub async fn invite(
        &self,
        ctx: &CommandContext,
        workspace: WorkspaceId,
        email: &str,
        role: Role,
        expires_in: Option<Duration>,
    ) -> Result<Invited, CommandError> {
        let email = EmailAddress::parse(email)?;
        let ttl = expires_in.unwrap_or(self.policy.invitation_ttl);
        if ttl <= Duration::zero() || ttl > Duration::days(30) {
            return Err(CommandError::Rejected(DomainError::invalid(
                "expires_in_hours",
                "must be between 1 hour and 30 days",
            )));
        }
        let invitation_id = InvitationId(Uuid::now_v7());
        let token = invitation_token(workspace, invitation_id)?;
        let expires_at = self.now() + ttl;
        // Sealed under the address's own subject, not the invitation's: whoever the invitee
        // turns out to be (registered now, later, or never), erasing them erases this copy.
        let sealed = self
            .sealer
            .seal_for_email(email.as_str(), &email.as_str().to_lowercase())
            .await
            .map(Sealed)
            .map_err(crypto_err)?;
        let command = workspace::Command::Invite {
            invitation_id,
            email: sealed,
            role,
            token_hash: hash_token(&token),
            expires_at,
        };
        self.decide_in(ctx, workspace, command).await?;
        Ok(Invited {
            invitation_id,
            token,
            expires_at,
        })
    }

    /// Accepts an invitation as the signed-in user, whose email must be the invited one.
    pub async fn accept_invitation(
        &self,
        ctx: &CommandContext,
        user_id: UserId,
        token: &str,
    ) -> Result<(WorkspaceId, Role), CommandError> {
        let not_found = || CommandError::NotFound("invitation");
        let (workspace, invitation_id) = invitation_ids(token).ok_or_else(not_found)?;
        let state = self.workspace(workspace).await.map_err(|_| not_found())?;
        let invitation = state
            .invitations
            .get(&invitation_id)
            .filter(|i| verify_token_hash(token.trim(), &i.token_hash))
            .ok_or_else(not_found)?;
        if invitation.accepted_by.is_some() {
            // Say what is wrong rather than "another email" (an invitation of old has its copy
            // of the email erased by now).
            return Err(CommandError::Rejected(DomainError::invalid(
                "token",
                "this invitation was already used",
            )));
        }
        let invited = self.reveal(&invitation.email).await?.unwrap_or_default();
        let user = self.load_user(user_id).await?;
        let own = self.reveal(&user.email).await?.unwrap_or_default();
        if invited.is_empty() || !invited.eq_ignore_ascii_case(own.trim()) {
            return Err(CommandError::Forbidden(
                "this invitation was sent to another email address".into(),
            ));
        }
        let role = invitation.role;
        let command = workspace::Command::AcceptInvitation {
            invitation_id,
            token_hash: hash_token(token.trim()),
            user_id,
        };
        self.decide_in(ctx, workspace, command).await?;
        // An invitation of old sealed its copy of the email under its own id: the invitee is a
        // member now, so that copy is not needed. (A newer one's copy is under the address's
        // subject, which goes when its owner is erased.)
        if sealed_subject(invitation.email.as_str()) == Some(invitation_id.as_uuid()) {
            self.sealer
                .erase(invitation_id.as_uuid())
                .await
                .map_err(crypto_err)?;
        }
        Ok((workspace, role))
    }

    pub async fn change_role(
        &self,
        ctx: &CommandContext,
        workspace: WorkspaceId,
        user_id: UserId,
        role: Role,
    ) -> Result<(), CommandError> {
        let command = workspace::Command::ChangeRole { user_id, role };
        self.decide_in(ctx, workspace, command).await
    }

    pub async fn remove_member(
        &self,
        ctx: &CommandContext,
        workspace: WorkspaceId,
        user_id: UserId,
    ) -> Result<(), CommandError> {
        let command = workspace::Command::RemoveMember { user_id };
        self.decide_in(ctx, workspace, command).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invitation_tokens_carry_their_ids() {
        let ws = WorkspaceId(Uuid::now_v7());
        let inv = InvitationId(Uuid::now_v7());
        let token = invitation_token(ws, inv).unwrap();
        assert_eq!(invitation_ids(&token), Some((ws, inv)));
        assert_eq!(invitation_ids("adl_inv_xyz_abc"), None);
    }
}
