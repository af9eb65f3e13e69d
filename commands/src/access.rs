//! Who may do what: how a caller reaches a workspace (a member's role, an API key's scope), the
//! check every workspace route makes, and the deployment-wide operators. The permission table
//! itself is the domain's (`adledger_domain::access`); this module only asks it. A caller who
//! does not reach a workspace is told it does not exist, so ids of other tenants cannot be probed.

use crate::identity::{Identity, Principal};
use crate::CommandError;
use adledger_domain::workspace::Workspace;
use adledger_domain::{ApiKeyScope, Permission, Role, WorkspaceId};

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

impl Identity {
    /// The workspace as its stream says now (read-your-writes: a just-accepted invitation counts).
    pub(crate) async fn workspace(
        &self,
        workspace: WorkspaceId,
    ) -> Result<Workspace, CommandError> {
        let loaded = self
            .commands
            .load::<Workspace>(workspace, &workspace.stream())
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

    /// Whether `principal` runs the deployment (may use deployment-wide routes). API keys belong
    /// to one workspace and never do.
    pub async fn is_operator(&self, principal: &Principal) -> Result<bool, CommandError> {
        match principal {
            Principal::User { user_id, .. } => match self.load_user(*user_id).await {
                Ok(user) => Ok(user.operator),
                Err(CommandError::NotFound(_)) => Ok(false),
                Err(other) => Err(other),
            },
            Principal::ApiKey { .. } => Ok(false),
        }
    }
}
