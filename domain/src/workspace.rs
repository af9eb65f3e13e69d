//! The workspace aggregate: a tenant, its members with their roles, pending invitations and API
//! keys. Rules: invitations are single use and expire; a workspace always keeps an owner.

use crate::aggregate::Aggregate;
use crate::event::{
    ApiKeyCreated, ApiKeyRevoked, InvitationAccepted, MemberAdded, MemberInvited, MemberRemoved,
    MemberRoleChanged, WorkspaceCreated,
};
use crate::{
    ApiKeyId, ApiKeyScope, DomainError, DomainEvent, InvitationId, Role, Sealed, StreamType,
    UserId, WorkspaceId,
};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};

/// A workspace name: trimmed, 1 to 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceName(String);

impl WorkspaceName {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(DomainError::invalid("name", "must not be empty"));
        }
        if name.chars().count() > 200 {
            return Err(DomainError::invalid(
                "name",
                "must be at most 200 characters",
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(DomainError::invalid(
                "name",
                "must not contain control characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An API key's name: trimmed, 1 to 100 printable characters.
fn key_name(raw: &str) -> Result<String, DomainError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "name",
            "must be 1 to 100 printable characters",
        ));
    }
    Ok(name.to_owned())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub email: Sealed,
    pub role: Role,
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
    pub accepted_by: Option<UserId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub name: String,
    pub scope: ApiKeyScope,
    pub key_hash: String,
    pub created_at: DateTime<Utc>,
    pub revoked: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workspace {
    pub id: Option<WorkspaceId>,
    pub name: String,
    pub members: BTreeMap<UserId, Role>,
    /// People who were members once; an owner may erase their personal data.
    pub former_members: BTreeSet<UserId>,
    pub invitations: BTreeMap<InvitationId, Invitation>,
    pub api_keys: BTreeMap<ApiKeyId, ApiKey>,
}

impl Workspace {
    pub fn role_of(&self, user: UserId) -> Option<Role> {
        self.members.get(&user).copied()
    }

    /// The key, unless it does not exist here or was revoked.
    pub fn live_key(&self, key: ApiKeyId) -> Option<&ApiKey> {
        self.api_keys.get(&key).filter(|k| !k.revoked)
    }

    fn owners(&self) -> usize {
        self.members.values().filter(|r| **r == Role::Owner).count()
    }
}

#[derive(Debug, Clone)]
pub enum Command {
    Create {
        workspace_id: WorkspaceId,
        name: WorkspaceName,
        /// The person creating it becomes its first owner.
        owner: Option<UserId>,
    },
    Invite {
        invitation_id: InvitationId,
        email: Sealed,
        role: Role,
        token_hash: String,
        expires_at: DateTime<Utc>,
    },
    /// The invitee's email was checked against the invitation's by the caller.
    AcceptInvitation {
        invitation_id: InvitationId,
        token_hash: String,
        user_id: UserId,
    },
    ChangeRole {
        user_id: UserId,
        role: Role,
    },
    RemoveMember {
        user_id: UserId,
    },
    CreateApiKey {
        api_key_id: ApiKeyId,
        name: String,
        scope: ApiKeyScope,
        key_hash: String,
    },
    RevokeApiKey {
        api_key_id: ApiKeyId,
    },
}

fn existing(state: &Workspace) -> Result<WorkspaceId, DomainError> {
    state.id.ok_or(DomainError::NotFound("workspace"))
}

fn last_owner() -> DomainError {
    DomainError::invalid(
        "role",
        "the last owner cannot be removed or demoted; make someone else owner first",
    )
}

impl Aggregate for Workspace {
    const STREAM_TYPE: StreamType = StreamType::Workspace;
    const NAME: &'static str = "workspace";
    type Command = Command;

    fn decide(
        &self,
        command: &Command,
        now: DateTime<Utc>,
    ) -> Result<Vec<DomainEvent>, DomainError> {
        match command {
            Command::Create {
                workspace_id,
                name,
                owner,
            } => {
                if self.id.is_some() {
                    return Err(DomainError::AlreadyExists("workspace"));
                }
                let created = DomainEvent::WorkspaceCreated(WorkspaceCreated {
                    workspace_id: *workspace_id,
                    name: name.as_str().to_owned(),
                });
                let owner = owner.map(|user_id| {
                    DomainEvent::MemberAdded(MemberAdded {
                        workspace_id: *workspace_id,
                        user_id,
                        role: Role::Owner,
                    })
                });
                Ok([created].into_iter().chain(owner).collect())
            }
            Command::Invite {
                invitation_id,
                email,
                role,
                token_hash,
                expires_at,
            } => {
                let workspace_id = existing(self)?;
                if self.invitations.contains_key(invitation_id) {
                    return Err(DomainError::AlreadyExists("invitation"));
                }
                if *expires_at <= now {
                    return Err(DomainError::invalid(
                        "expires_in_hours",
                        "must be in the future",
                    ));
                }
                Ok(vec![DomainEvent::MemberInvited(MemberInvited {
                    workspace_id,
                    invitation_id: *invitation_id,
                    email: email.clone(),
                    role: *role,
                    token_hash: token_hash.clone(),
                    expires_at: *expires_at,
                })])
            }
            Command::AcceptInvitation {
                invitation_id,
                token_hash,
                user_id,
            } => {
                let workspace_id = existing(self)?;
                let invitation = self
                    .invitations
                    .get(invitation_id)
                    .filter(|i| i.token_hash == *token_hash)
                    .ok_or(DomainError::NotFound("invitation"))?;
                if invitation.accepted_by.is_some() {
                    return Err(DomainError::invalid(
                        "token",
                        "this invitation was already used",
                    ));
                }
                if invitation.expires_at <= now {
                    return Err(DomainError::invalid("token", "this invitation has expired"));
                }
                if self.members.contains_key(user_id) {
                    return Err(DomainError::AlreadyExists("member"));
                }
                Ok(vec![DomainEvent::InvitationAccepted(InvitationAccepted {
                    workspace_id,
                    invitation_id: *invitation_id,
                    user_id: *user_id,
                    role: invitation.role,
                })])
            }
            Command::ChangeRole { user_id, role } => {
                let workspace_id = existing(self)?;
                let current = self
                    .role_of(*user_id)
                    .ok_or(DomainError::NotFound("member"))?;
                if current == *role {
                    return Ok(vec![]);
                }
                if current == Role::Owner && self.owners() == 1 {
                    return Err(last_owner());
                }
                Ok(vec![DomainEvent::MemberRoleChanged(MemberRoleChanged {
                    workspace_id,
                    user_id: *user_id,
                    role: *role,
                })])
            }
            Command::RemoveMember { user_id } => {
                let workspace_id = existing(self)?;
                let current = self
                    .role_of(*user_id)
                    .ok_or(DomainError::NotFound("member"))?;
                if current == Role::Owner && self.owners() == 1 {
                    return Err(last_owner());
                }
                Ok(vec![DomainEvent::MemberRemoved(MemberRemoved {
                    workspace_id,
                    user_id: *user_id,
                })])
            }
            Command::CreateApiKey {
                api_key_id,
                name,
                scope,
                key_hash,
            } => {
                let workspace_id = existing(self)?;
                if self.api_keys.contains_key(api_key_id) {
                    return Err(DomainError::AlreadyExists("API key"));
                }
                Ok(vec![DomainEvent::ApiKeyCreated(ApiKeyCreated {
                    workspace_id,
                    api_key_id: *api_key_id,
                    name: key_name(name)?,
                    scope: *scope,
                    key_hash: key_hash.clone(),
                })])
            }
            Command::RevokeApiKey { api_key_id } => {
                let workspace_id = existing(self)?;
                let key = self
                    .api_keys
                    .get(api_key_id)
                    .ok_or(DomainError::NotFound("API key"))?;
                if key.revoked {
                    return Ok(vec![]);
                }
                Ok(vec![DomainEvent::ApiKeyRevoked(ApiKeyRevoked {
                    workspace_id,
                    api_key_id: *api_key_id,
                })])
            }
        }
    }

    fn evolve(mut self, event: &DomainEvent, occurred_at: DateTime<Utc>) -> Self {
        match event {
            DomainEvent::WorkspaceCreated(e) => {
                self.id = Some(e.workspace_id);
                self.name = e.name.clone();
            }
            DomainEvent::MemberAdded(e) => {
                self.members.insert(e.user_id, e.role);
            }
            DomainEvent::MemberInvited(e) => {
                self.invitations.insert(
                    e.invitation_id,
                    Invitation {
                        email: e.email.clone(),
                        role: e.role,
                        token_hash: e.token_hash.clone(),
                        expires_at: e.expires_at,
                        accepted_by: None,
                    },
                );
            }
            DomainEvent::InvitationAccepted(e) => {
                if let Some(invitation) = self.invitations.get_mut(&e.invitation_id) {
                    invitation.accepted_by = Some(e.user_id);
                }
                self.members.insert(e.user_id, e.role);
                self.former_members.remove(&e.user_id);
            }
            DomainEvent::MemberRoleChanged(e) => {
                self.members.insert(e.user_id, e.role);
            }
            DomainEvent::MemberRemoved(e) => {
                self.members.remove(&e.user_id);
                self.former_members.insert(e.user_id);
            }
            DomainEvent::ApiKeyCreated(e) => {
                self.api_keys.insert(
                    e.api_key_id,
                    ApiKey {
                        name: e.name.clone(),
                        scope: e.scope,
                        key_hash: e.key_hash.clone(),
                        created_at: occurred_at,
                        revoked: false,
                    },
                );
            }
            DomainEvent::ApiKeyRevoked(e) => {
                if let Some(key) = self.api_keys.get_mut(&e.api_key_id) {
                    key.revoked = true;
                }
            }
            _ => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{given, given_nothing, EPOCH};
    use chrono::Duration;
    use uuid::Uuid;

    const ACME: WorkspaceId = WorkspaceId(Uuid::from_u128(1));

    fn user(n: u128) -> UserId {
        UserId(Uuid::from_u128(100 + n))
    }

    fn invitation(n: u128) -> InvitationId {
        InvitationId(Uuid::from_u128(n))
    }

    fn created() -> [DomainEvent; 2] {
        [
            DomainEvent::WorkspaceCreated(WorkspaceCreated {
                workspace_id: ACME,
                name: "Acme".into(),
            }),
            member_added(1, Role::Owner),
        ]
    }

    fn member_added(n: u128, role: Role) -> DomainEvent {
        DomainEvent::MemberAdded(MemberAdded {
            workspace_id: ACME,
            user_id: user(n),
            role,
        })
    }

    fn invited(n: u128, role: Role) -> DomainEvent {
        DomainEvent::MemberInvited(MemberInvited {
            workspace_id: ACME,
            invitation_id: invitation(n),
            email: Sealed(format!("sealed-{n}")),
            role,
            token_hash: format!("hash-{n}"),
            expires_at: EPOCH + Duration::days(7),
        })
    }

    fn accepted(n: u128, who: UserId, role: Role) -> DomainEvent {
        DomainEvent::InvitationAccepted(InvitationAccepted {
            workspace_id: ACME,
            invitation_id: invitation(n),
            user_id: who,
            role,
        })
    }

    fn accept(n: u128, who: UserId) -> Command {
        Command::AcceptInvitation {
            invitation_id: invitation(n),
            token_hash: format!("hash-{n}"),
            user_id: who,
        }
    }

    fn create(name: &str) -> Command {
        Command::Create {
            workspace_id: ACME,
            name: WorkspaceName::parse(name).unwrap(),
            owner: Some(user(1)),
        }
    }

    #[test]
    fn a_new_workspace_has_its_creator_as_owner() {
        given_nothing::<Workspace>()
            .when(create("  Acme  "))
            .then(created());
    }

    #[test]
    fn a_workspace_is_created_once() {
        given::<Workspace>(created())
            .when(create("Acme"))
            .then_error(DomainError::AlreadyExists("workspace"));
    }

    #[test]
    fn names_must_be_present_and_printable() {
        assert!(WorkspaceName::parse("   ").is_err());
        assert!(WorkspaceName::parse("a\u{7}b").is_err());
        assert!(WorkspaceName::parse(&"x".repeat(201)).is_err());
        assert!(WorkspaceName::parse(&"x".repeat(200)).is_ok());
    }

    #[test]
    fn an_invitation_must_expire_in_the_future() {
        given::<Workspace>(created())
            .at(EPOCH + Duration::days(8))
            .when(Command::Invite {
                invitation_id: invitation(1),
                email: Sealed("sealed".into()),
                role: Role::Analyst,
                token_hash: "hash".into(),
                expires_at: EPOCH + Duration::days(7),
            })
            .then_invalid("expires_in_hours");
    }

    #[test]
    fn an_invitation_makes_its_invitee_a_member_with_its_role() {
        let state = given::<Workspace>(created())
            .and([invited(1, Role::Analyst)])
            .at(EPOCH + Duration::hours(1))
            .when(accept(1, user(2)))
            .then([accepted(1, user(2), Role::Analyst)]);
        assert_eq!(state.role_of(user(2)), Some(Role::Analyst));
    }

    #[test]
    fn an_invitation_is_used_once() {
        given::<Workspace>(created())
            .and([
                invited(1, Role::Analyst),
                accepted(1, user(2), Role::Analyst),
            ])
            .when(accept(1, user(3)))
            .then_invalid("token");
    }

    #[test]
    fn an_invitation_expires() {
        given::<Workspace>(created())
            .and([invited(1, Role::Analyst)])
            .at(EPOCH + Duration::days(8))
            .when(accept(1, user(2)))
            .then_invalid("token");
    }

    #[test]
    fn an_invitation_needs_its_own_token() {
        given::<Workspace>(created())
            .and([invited(1, Role::Analyst)])
            .when(Command::AcceptInvitation {
                invitation_id: invitation(1),
                token_hash: "other".into(),
                user_id: user(2),
            })
            .then_error(DomainError::NotFound("invitation"));
    }

    #[test]
    fn the_last_owner_can_be_neither_demoted_nor_removed() {
        given::<Workspace>(created())
            .when(Command::ChangeRole {
                user_id: user(1),
                role: Role::Admin,
            })
            .then_invalid("role");
        given::<Workspace>(created())
            .when(Command::RemoveMember { user_id: user(1) })
            .then_invalid("role");
    }

    #[test]
    fn an_owner_may_step_down_once_someone_else_is_owner() {
        let two_owners = || {
            given::<Workspace>(created())
                .and([invited(1, Role::Owner), accepted(1, user(2), Role::Owner)])
        };
        two_owners()
            .when(Command::ChangeRole {
                user_id: user(1),
                role: Role::Admin,
            })
            .then([DomainEvent::MemberRoleChanged(MemberRoleChanged {
                workspace_id: ACME,
                user_id: user(1),
                role: Role::Admin,
            })]);
        let state = two_owners()
            .when(Command::RemoveMember { user_id: user(1) })
            .then([DomainEvent::MemberRemoved(MemberRemoved {
                workspace_id: ACME,
                user_id: user(1),
            })]);
        assert!(state.former_members.contains(&user(1)));
        given::<Workspace>(created())
            .and([invited(1, Role::Owner), accepted(1, user(2), Role::Owner)])
            .and([DomainEvent::MemberRemoved(MemberRemoved {
                workspace_id: ACME,
                user_id: user(1),
            })])
            .when(Command::RemoveMember { user_id: user(2) })
            .then_invalid("role");
    }

    #[test]
    fn changing_a_role_to_the_same_role_records_nothing() {
        given::<Workspace>(created())
            .and([member_added(2, Role::Analyst)])
            .when(Command::ChangeRole {
                user_id: user(2),
                role: Role::Analyst,
            })
            .then_nothing();
    }

    #[test]
    fn api_keys_are_named_and_revoked_once() {
        let key = ApiKeyId(Uuid::from_u128(9));
        let key_created = DomainEvent::ApiKeyCreated(ApiKeyCreated {
            workspace_id: ACME,
            api_key_id: key,
            name: "ci".into(),
            scope: ApiKeyScope::ReadOnly,
            key_hash: "h".into(),
        });
        let state = given::<Workspace>(created())
            .when(Command::CreateApiKey {
                api_key_id: key,
                name: " ci ".into(),
                scope: ApiKeyScope::ReadOnly,
                key_hash: "h".into(),
            })
            .then([key_created.clone()]);
        assert_eq!(state.live_key(key).map(|k| k.name.as_str()), Some("ci"));
        let revoked = DomainEvent::ApiKeyRevoked(ApiKeyRevoked {
            workspace_id: ACME,
            api_key_id: key,
        });
        let state = given::<Workspace>(created())
            .and([key_created.clone()])
            .when(Command::RevokeApiKey { api_key_id: key })
            .then([revoked.clone()]);
        assert!(state.live_key(key).is_none());
        given::<Workspace>(created())
            .and([key_created, revoked])
            .when(Command::RevokeApiKey { api_key_id: key })
            .then_nothing();
    }

    #[test]
    fn an_api_key_needs_a_printable_name() {
        given::<Workspace>(created())
            .when(Command::CreateApiKey {
                api_key_id: ApiKeyId(Uuid::from_u128(9)),
                name: "  ".into(),
                scope: ApiKeyScope::ReadWrite,
                key_hash: "h".into(),
            })
            .then_invalid("name");
    }

    #[test]
    fn nothing_happens_to_a_workspace_that_does_not_exist() {
        given_nothing::<Workspace>()
            .when(Command::RemoveMember { user_id: user(1) })
            .then_error(DomainError::NotFound("workspace"));
    }
}
