//! The workspace aggregate: a tenant, its members with their roles, pending invitations and API
//! keys. Rules: invitations are single use and expire; a workspace always keeps an owner.

use crate::event::{
    ApiKeyCreated, ApiKeyRevoked, Decided, InvitationAccepted, MemberAdded, MemberInvited,
    MemberRemoved, MemberRoleChanged, WorkspaceCreated,
};
use crate::{
    ApiKeyId, ApiKeyScope, DomainError, DomainEvent, InvitationId, Role, Sealed, UserId,
    WorkspaceId,
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
        at: DateTime<Utc>,
    },
    Invite {
        invitation_id: InvitationId,
        email: Sealed,
        role: Role,
        token_hash: String,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// The invitee's email was checked against the invitation's by the caller.
    AcceptInvitation {
        invitation_id: InvitationId,
        token_hash: String,
        user_id: UserId,
        at: DateTime<Utc>,
    },
    ChangeRole {
        user_id: UserId,
        role: Role,
        at: DateTime<Utc>,
    },
    RemoveMember {
        user_id: UserId,
        at: DateTime<Utc>,
    },
    CreateApiKey {
        api_key_id: ApiKeyId,
        name: String,
        scope: ApiKeyScope,
        key_hash: String,
        at: DateTime<Utc>,
    },
    RevokeApiKey {
        api_key_id: ApiKeyId,
        at: DateTime<Utc>,
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

pub fn decide(state: &Workspace, command: &Command) -> Result<Vec<Decided>, DomainError> {
    let at_ = |event, at: &DateTime<Utc>| Decided {
        event,
        occurred_at: *at,
    };
    match command {
        Command::Create {
            workspace_id,
            name,
            owner,
            at,
        } => {
            if state.id.is_some() {
                return Err(DomainError::AlreadyExists("workspace"));
            }
            let mut events = vec![at_(
                DomainEvent::WorkspaceCreated(WorkspaceCreated {
                    workspace_id: *workspace_id,
                    name: name.as_str().to_owned(),
                }),
                at,
            )];
            if let Some(owner) = owner {
                events.push(at_(
                    DomainEvent::MemberAdded(MemberAdded {
                        workspace_id: *workspace_id,
                        user_id: *owner,
                        role: Role::Owner,
                    }),
                    at,
                ));
            }
            Ok(events)
        }
        Command::Invite {
            invitation_id,
            email,
            role,
            token_hash,
            expires_at,
            at,
        } => {
            let workspace_id = existing(state)?;
            if state.invitations.contains_key(invitation_id) {
                return Err(DomainError::AlreadyExists("invitation"));
            }
            if expires_at <= at {
                return Err(DomainError::invalid(
                    "expires_in_hours",
                    "must be in the future",
                ));
            }
            Ok(vec![at_(
                DomainEvent::MemberInvited(MemberInvited {
                    workspace_id,
                    invitation_id: *invitation_id,
                    email: email.clone(),
                    role: *role,
                    token_hash: token_hash.clone(),
                    expires_at: *expires_at,
                }),
                at,
            )])
        }
        Command::AcceptInvitation {
            invitation_id,
            token_hash,
            user_id,
            at,
        } => {
            let workspace_id = existing(state)?;
            let invitation = state
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
            if invitation.expires_at <= *at {
                return Err(DomainError::invalid("token", "this invitation has expired"));
            }
            if state.members.contains_key(user_id) {
                return Err(DomainError::AlreadyExists("member"));
            }
            Ok(vec![at_(
                DomainEvent::InvitationAccepted(InvitationAccepted {
                    workspace_id,
                    invitation_id: *invitation_id,
                    user_id: *user_id,
                    role: invitation.role,
                }),
                at,
            )])
        }
        Command::ChangeRole { user_id, role, at } => {
            let workspace_id = existing(state)?;
            let current = state
                .role_of(*user_id)
                .ok_or(DomainError::NotFound("member"))?;
            if current == *role {
                return Ok(vec![]);
            }
            if current == Role::Owner && state.owners() == 1 {
                return Err(last_owner());
            }
            Ok(vec![at_(
                DomainEvent::MemberRoleChanged(MemberRoleChanged {
                    workspace_id,
                    user_id: *user_id,
                    role: *role,
                }),
                at,
            )])
        }
        Command::RemoveMember { user_id, at } => {
            let workspace_id = existing(state)?;
            let current = state
                .role_of(*user_id)
                .ok_or(DomainError::NotFound("member"))?;
            if current == Role::Owner && state.owners() == 1 {
                return Err(last_owner());
            }
            Ok(vec![at_(
                DomainEvent::MemberRemoved(MemberRemoved {
                    workspace_id,
                    user_id: *user_id,
                }),
                at,
            )])
        }
        Command::CreateApiKey {
            api_key_id,
            name,
            scope,
            key_hash,
            at,
        } => {
            let workspace_id = existing(state)?;
            if state.api_keys.contains_key(api_key_id) {
                return Err(DomainError::AlreadyExists("API key"));
            }
            Ok(vec![at_(
                DomainEvent::ApiKeyCreated(ApiKeyCreated {
                    workspace_id,
                    api_key_id: *api_key_id,
                    name: key_name(name)?,
                    scope: *scope,
                    key_hash: key_hash.clone(),
                }),
                at,
            )])
        }
        Command::RevokeApiKey { api_key_id, at } => {
            let workspace_id = existing(state)?;
            let key = state
                .api_keys
                .get(api_key_id)
                .ok_or(DomainError::NotFound("API key"))?;
            if key.revoked {
                return Ok(vec![]);
            }
            Ok(vec![at_(
                DomainEvent::ApiKeyRevoked(ApiKeyRevoked {
                    workspace_id,
                    api_key_id: *api_key_id,
                }),
                at,
            )])
        }
    }
}

pub fn evolve(mut state: Workspace, event: &DomainEvent, occurred_at: DateTime<Utc>) -> Workspace {
    match event {
        DomainEvent::WorkspaceCreated(e) => {
            state.id = Some(e.workspace_id);
            state.name = e.name.clone();
        }
        DomainEvent::MemberAdded(e) => {
            state.members.insert(e.user_id, e.role);
        }
        DomainEvent::MemberInvited(e) => {
            state.invitations.insert(
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
            if let Some(invitation) = state.invitations.get_mut(&e.invitation_id) {
                invitation.accepted_by = Some(e.user_id);
            }
            state.members.insert(e.user_id, e.role);
            state.former_members.remove(&e.user_id);
        }
        DomainEvent::MemberRoleChanged(e) => {
            state.members.insert(e.user_id, e.role);
        }
        DomainEvent::MemberRemoved(e) => {
            state.members.remove(&e.user_id);
            state.former_members.insert(e.user_id);
        }
        DomainEvent::ApiKeyCreated(e) => {
            state.api_keys.insert(
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
            if let Some(key) = state.api_keys.get_mut(&e.api_key_id) {
                key.revoked = true;
            }
        }
        _ => {}
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    const AT: DateTime<Utc> = DateTime::UNIX_EPOCH;

    fn create(name: &str) -> Command {
        Command::Create {
            workspace_id: WorkspaceId(Uuid::from_u128(1)),
            name: WorkspaceName::parse(name).unwrap(),
            owner: Some(user(1)),
            at: AT,
        }
    }

    fn user(n: u128) -> UserId {
        UserId(Uuid::from_u128(100 + n))
    }

    fn given(commands: &[Command]) -> Workspace {
        commands
            .iter()
            .fold(Workspace::default(), |state, command| {
                decide(&state, command)
                    .unwrap()
                    .iter()
                    .fold(state, |s, d| evolve(s, &d.event, d.occurred_at))
            })
    }

    fn invite(n: u128, role: Role) -> Command {
        Command::Invite {
            invitation_id: InvitationId(Uuid::from_u128(n)),
            email: Sealed(format!("sealed-{n}")),
            role,
            token_hash: format!("hash-{n}"),
            expires_at: AT + chrono::Duration::days(7),
            at: AT,
        }
    }

    fn accept(n: u128, who: UserId, after: chrono::Duration) -> Command {
        Command::AcceptInvitation {
            invitation_id: InvitationId(Uuid::from_u128(n)),
            token_hash: format!("hash-{n}"),
            user_id: who,
            at: AT + after,
        }
    }

    #[test]
    fn given_nothing_when_create_then_workspace_created() {
        let events = decide(&Workspace::default(), &create("  Acme  ")).unwrap();
        assert_eq!(events.len(), 2, "created, and its creator added as owner");
        assert_eq!(
            events[0].event,
            DomainEvent::WorkspaceCreated(WorkspaceCreated {
                workspace_id: WorkspaceId(Uuid::from_u128(1)),
                name: "Acme".into()
            })
        );
    }

    #[test]
    fn given_created_when_create_again_then_refused() {
        let first = decide(&Workspace::default(), &create("Acme")).unwrap();
        let state = evolve(Workspace::default(), &first[0].event, AT);
        assert_eq!(
            decide(&state, &create("Acme")),
            Err(DomainError::AlreadyExists("workspace"))
        );
    }

    #[test]
    fn names_must_be_present_and_printable() {
        assert!(WorkspaceName::parse("   ").is_err());
        assert!(WorkspaceName::parse("a\u{7}b").is_err());
        assert!(WorkspaceName::parse(&"x".repeat(201)).is_err());
        assert!(WorkspaceName::parse(&"x".repeat(200)).is_ok());
    }

    #[test]
    fn an_invitation_is_single_use_and_expires() {
        let state = given(&[create("Acme"), invite(1, Role::Analyst)]);
        let hour = chrono::Duration::hours(1);
        let accepted = given_more(state.clone(), accept(1, user(2), hour));
        assert_eq!(accepted.role_of(user(2)), Some(Role::Analyst));
        assert!(
            decide(&accepted, &accept(1, user(3), hour)).is_err(),
            "used"
        );
        let late = accept(1, user(2), chrono::Duration::days(8));
        assert!(decide(&state, &late).is_err(), "expired");
        let forged = Command::AcceptInvitation {
            invitation_id: InvitationId(Uuid::from_u128(1)),
            token_hash: "other".into(),
            user_id: user(2),
            at: AT,
        };
        assert_eq!(
            decide(&state, &forged),
            Err(DomainError::NotFound("invitation"))
        );
    }

    #[test]
    fn the_last_owner_stays() {
        let state = given(&[create("Acme")]);
        let demote = Command::ChangeRole {
            user_id: user(1),
            role: Role::Admin,
            at: AT,
        };
        let remove = Command::RemoveMember {
            user_id: user(1),
            at: AT,
        };
        assert!(decide(&state, &demote).is_err());
        assert!(decide(&state, &remove).is_err());
        let state = given_more(state, invite(1, Role::Owner));
        let state = given_more(state, accept(1, user(2), chrono::Duration::zero()));
        let state = given_more(state, demote.clone());
        assert_eq!(state.role_of(user(1)), Some(Role::Admin));
        let remove_two = Command::RemoveMember {
            user_id: user(2),
            at: AT,
        };
        assert!(
            decide(&state, &remove_two).is_err(),
            "user 2 is the last owner now"
        );
        let state = given_more(state, remove);
        assert!(state.former_members.contains(&user(1)));
    }

    #[test]
    fn api_keys_are_created_and_revoked() {
        let key = ApiKeyId(Uuid::from_u128(9));
        let state = given(&[
            create("Acme"),
            Command::CreateApiKey {
                api_key_id: key,
                name: " ci ".into(),
                scope: ApiKeyScope::ReadOnly,
                key_hash: "h".into(),
                at: AT,
            },
        ]);
        assert_eq!(state.live_key(key).map(|k| k.name.as_str()), Some("ci"));
        let state = given_more(
            state,
            Command::RevokeApiKey {
                api_key_id: key,
                at: AT,
            },
        );
        assert!(state.live_key(key).is_none());
        assert_eq!(
            decide(
                &state,
                &Command::RevokeApiKey {
                    api_key_id: key,
                    at: AT
                }
            ),
            Ok(vec![])
        );
    }

    fn given_more(state: Workspace, command: Command) -> Workspace {
        decide(&state, &command)
            .unwrap()
            .iter()
            .fold(state, |s, d| evolve(s, &d.event, d.occurred_at))
    }
}
