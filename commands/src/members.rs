//! Workspaces' people and machines: who may do what (access checks for every route), invitations,
//! roles, removal and erasure of members, and API keys. A caller who is not a member of a
//! workspace is told it does not exist, so ids of other tenants cannot be probed.

use crate::execute::{Executed, Target};
use crate::identity::crypto_err;
use crate::identity::{Identity, Principal};
use crate::{CommandContext, CommandError};
use adledger_domain::workspace::{self, Workspace};
use adledger_domain::{
    ApiKeyId, ApiKeyScope, DomainError, InvitationId, Permission, Role, UserId, WorkspaceId,
};
use adledger_infra::crypto::{hash_token, verify_token_hash, OpaqueToken, TokenKind};
use adledger_infra::identity::ApiKeyRecord;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

/// How a caller reaches a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Member(Role),
    Key(ApiKeyScope),
}

impl Access {
    pub fn allows(self, permission: Permission) -> bool {
        match self {
            Access::Member(role) => role.allows(permission),
            Access::Key(scope) => scope.allows(permission),
        }
    }
}

/// An invitation as created: the token goes to the invitee and is not kept.
#[derive(Debug, Clone)]
pub struct Invited {
    pub invitation_id: InvitationId,
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub user_id: UserId,
    pub role: Role,
    /// `None` once the person was erased.
    pub email: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CreatedApiKey {
    pub api_key_id: ApiKeyId,
    /// The key itself, shown once: `adl_ak_<id>_<secret>`.
    pub key: String,
}

#[derive(Debug, Clone)]
pub struct ApiKeyView {
    pub api_key_id: ApiKeyId,
    pub name: String,
    pub scope: ApiKeyScope,
    pub created_at: DateTime<Utc>,
    pub revoked: bool,
    pub last_used_at: Option<DateTime<Utc>>,
}

const API_KEY_PREFIX: &str = "adl_ak_";
const INVITATION_PREFIX: &str = "adl_inv_";

/// 256 random bits as base64url text.
fn random_secret(kind: TokenKind) -> Result<String, CommandError> {
    let token = OpaqueToken::generate(kind).map_err(crypto_err)?;
    Ok(token.expose()[kind.prefix().len()..].to_owned())
}

/// `<prefix><uuid simple>_<secret>`: the id finds the record, the whole text is hashed.
fn compose(id: Uuid) -> Result<String, CommandError> {
    let secret = random_secret(TokenKind::ApiKey)?;
    Ok(format!("{API_KEY_PREFIX}{}_{secret}", id.simple()))
}

fn id_of(prefix: &str, token: &str) -> Option<Uuid> {
    let rest = token.trim().strip_prefix(prefix)?;
    let (id, secret) = rest.split_once('_')?;
    if secret.is_empty() {
        return None;
    }
    Uuid::try_parse(id).ok()
}

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

impl Identity {
    pub(crate) async fn workspace(
        &self,
        workspace: WorkspaceId,
    ) -> Result<Workspace, CommandError> {
        let loaded = self
            .commands
            .load::<Workspace>(&workspace.stream(), workspace)
            .await?;
        loaded
            .state
            .id
            .map(|_| loaded.state)
            .ok_or(CommandError::NotFound("workspace"))
    }

    /// How `principal` reaches `workspace`, or `NotFound` when it does not (whether or not the
    /// workspace exists).
    pub async fn access(
        &self,
        principal: &Principal,
        workspace: WorkspaceId,
    ) -> Result<Access, CommandError> {
        let state = self.workspace(workspace).await?;
        let access = match principal {
            Principal::User { user_id, .. } => state.role_of(*user_id).map(Access::Member),
            Principal::ApiKey {
                api_key_id,
                workspace_id,
                ..
            } if *workspace_id == workspace => {
                state.live_key(*api_key_id).map(|k| Access::Key(k.scope))
            }
            Principal::ApiKey { .. } => None,
        };
        access.ok_or(CommandError::NotFound("workspace"))
    }

    /// Checks that `principal` may do `permission` in `workspace`: `NotFound` for outsiders,
    /// `Forbidden` for members whose role does not allow it.
    pub async fn authorize(
        &self,
        principal: &Principal,
        workspace: WorkspaceId,
        permission: Permission,
    ) -> Result<Access, CommandError> {
        let access = self.access(principal, workspace).await?;
        if !access.allows(permission) {
            return Err(CommandError::Forbidden(match access {
                Access::Member(role) => format!("the {role} role may not do this"),
                Access::Key(scope) => format!("a {} API key may not do this", scope.as_str()),
            }));
        }
        Ok(access)
    }

    async fn workspace_decides(
        &self,
        ctx: &CommandContext,
        workspace: WorkspaceId,
        command: workspace::Command,
    ) -> Result<(), CommandError> {
        let target = Target {
            stream: workspace.stream(),
            workspace,
            metadata: &ctx.metadata,
            idempotency: None,
        };
        match self
            .commands
            .execute::<Workspace, _>(target, |state| {
                if state.id.is_none() {
                    return Err(CommandError::NotFound("workspace"));
                }
                Ok((workspace::decide(state, &command)?, ()))
            })
            .await?
        {
            Executed::Decided(()) | Executed::Duplicate(_) => Ok(()),
        }
    }

    pub async fn members(&self, workspace: WorkspaceId) -> Result<Vec<Member>, CommandError> {
        let state = self.workspace(workspace).await?;
        let users: Vec<UserId> = state.members.keys().copied().collect();
        let emails: std::collections::HashMap<UserId, String> =
            self.ids.emails(&users).await?.into_iter().collect();
        Ok(state
            .members
            .iter()
            .map(|(user_id, role)| Member {
                user_id: *user_id,
                role: *role,
                email: emails.get(user_id).cloned(),
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
        let email = crate::identity::parse_email(email)?;
        let ttl = expires_in.unwrap_or(self.policy.invitation_ttl);
        if ttl <= Duration::zero() || ttl > Duration::days(30) {
            return Err(CommandError::Rejected(DomainError::invalid(
                "expires_in_hours",
                "must be between 1 hour and 30 days",
            )));
        }
        let invitation_id = InvitationId(Uuid::now_v7());
        let token = invitation_token(workspace, invitation_id)?;
        let expires_at = ctx.now + ttl;
        let sealed = self
            .seal(invitation_id.as_uuid(), &email.to_lowercase())
            .await?;
        self.workspace_decides(
            ctx,
            workspace,
            workspace::Command::Invite {
                invitation_id,
                email: sealed,
                role,
                token_hash: hash_token(&token),
                expires_at,
                at: ctx.now,
            },
        )
        .await?;
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
            // Its email copy is erased by now; say what is wrong instead of "another email".
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
        self.workspace_decides(
            ctx,
            workspace,
            workspace::Command::AcceptInvitation {
                invitation_id,
                token_hash: hash_token(token.trim()),
                user_id,
                at: ctx.now,
            },
        )
        .await?;
        // The invitee is a member now: the invitation's copy of their email is not needed.
        self.sealer
            .erase(invitation_id.as_uuid())
            .await
            .map_err(crypto_err)?;
        Ok((workspace, role))
    }

    pub async fn change_role(
        &self,
        ctx: &CommandContext,
        workspace: WorkspaceId,
        user_id: UserId,
        role: Role,
    ) -> Result<(), CommandError> {
        self.workspace_decides(
            ctx,
            workspace,
            workspace::Command::ChangeRole {
                user_id,
                role,
                at: ctx.now,
            },
        )
        .await
    }

    pub async fn remove_member(
        &self,
        ctx: &CommandContext,
        workspace: WorkspaceId,
        user_id: UserId,
    ) -> Result<(), CommandError> {
        self.workspace_decides(
            ctx,
            workspace,
            workspace::Command::RemoveMember {
                user_id,
                at: ctx.now,
            },
        )
        .await
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

    pub async fn create_api_key(
        &self,
        ctx: &CommandContext,
        workspace: WorkspaceId,
        name: &str,
        scope: ApiKeyScope,
    ) -> Result<CreatedApiKey, CommandError> {
        let api_key_id = ApiKeyId(Uuid::now_v7());
        let key = compose(api_key_id.as_uuid())?;
        let key_hash = hash_token(&key);
        self.workspace_decides(
            ctx,
            workspace,
            workspace::Command::CreateApiKey {
                api_key_id,
                name: name.to_owned(),
                scope,
                key_hash: key_hash.clone(),
                at: ctx.now,
            },
        )
        .await?;
        self.ids
            .insert_api_key(api_key_id, workspace, &key_hash, scope)
            .await?;
        Ok(CreatedApiKey { api_key_id, key })
    }

    pub async fn revoke_api_key(
        &self,
        ctx: &CommandContext,
        workspace: WorkspaceId,
        api_key_id: ApiKeyId,
    ) -> Result<(), CommandError> {
        let state = self.workspace(workspace).await?;
        if !state.api_keys.contains_key(&api_key_id) {
            return Err(CommandError::NotFound("API key"));
        }
        // Refused from now on, even before the event lands.
        self.ids.revoke_api_key(api_key_id).await?;
        self.workspace_decides(
            ctx,
            workspace,
            workspace::Command::RevokeApiKey {
                api_key_id,
                at: ctx.now,
            },
        )
        .await
    }

    pub async fn api_keys(&self, workspace: WorkspaceId) -> Result<Vec<ApiKeyView>, CommandError> {
        let state = self.workspace(workspace).await?;
        let used: std::collections::HashMap<ApiKeyId, ApiKeyRecord> = self
            .ids
            .api_keys_of(workspace)
            .await?
            .into_iter()
            .map(|r| (r.api_key_id, r))
            .collect();
        Ok(state
            .api_keys
            .iter()
            .map(|(id, key)| ApiKeyView {
                api_key_id: *id,
                name: key.name.clone(),
                scope: key.scope,
                created_at: key.created_at,
                revoked: key.revoked,
                last_used_at: used.get(id).and_then(|r| r.last_used_at),
            })
            .collect())
    }

    /// The principal behind an API key, if it is valid and not revoked.
    pub async fn authenticate_api_key(&self, key: &str) -> Result<Principal, CommandError> {
        let invalid = || CommandError::Unauthenticated("invalid API key".into());
        let id = ApiKeyId(id_of(API_KEY_PREFIX, key).ok_or_else(invalid)?);
        let record = self.ids.api_key(id).await?.ok_or_else(invalid)?;
        if record.revoked || !verify_token_hash(key.trim(), &record.key_hash) {
            return Err(invalid());
        }
        if let Err(e) = self.ids.touch_api_key(id).await {
            tracing::warn!(api_key_id = %id, error = %e, "could not note an API key's last use");
        }
        Ok(Principal::ApiKey {
            api_key_id: id,
            workspace_id: record.workspace_id,
            scope: record.scope,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_their_ids() {
        let ws = WorkspaceId(Uuid::now_v7());
        let inv = InvitationId(Uuid::now_v7());
        let token = invitation_token(ws, inv).unwrap();
        assert_eq!(invitation_ids(&token), Some((ws, inv)));
        assert_eq!(invitation_ids("adl_inv_xyz_abc"), None);
        let key = ApiKeyId(Uuid::now_v7());
        let text = compose(key.0).unwrap();
        assert_eq!(id_of(API_KEY_PREFIX, &text), Some(key.0));
        assert_eq!(id_of(API_KEY_PREFIX, "adl_ak_nothex_x"), None);
        assert_eq!(
            id_of(API_KEY_PREFIX, &format!("adl_ak_{}_", key.0.simple())),
            None
        );
    }
}
