//! What a route needs of its caller, stated once in its handler's signature: `Person` (a signed-in
//! person), `InWorkspace<P>` (a workspace the caller reaches, with permission `P`) or `Operator`
//! (someone who runs the deployment). Each extractor authenticates first, then checks; none
//! reveals to an outsider that a workspace (or an operator route) exists.

use crate::caller::Caller;
use crate::error::ApiError;
use crate::extract::InPath;
use crate::AppState;
use adledger_commands::access::Access;
use adledger_commands::identity::Principal;
use adledger_commands::{CommandContext, CommandError};
use adledger_domain::{SessionId, UserId, WorkspaceId};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use std::marker::PhantomData;

pub use adledger_domain::access::permits::*;

/// The `{workspace_id}` of the path, reached by the caller with permission `P`: 404 `not-found`
/// to callers who do not reach it (outsiders, other workspaces' API keys), 403 `forbidden` to
/// members whose role (or keys whose scope) lacks `P`. Gives the metadata of the commands the
/// request causes when it causes any ([`Self::context`]).
pub struct InWorkspace<P: Permit> {
    pub id: WorkspaceId,
    /// How the caller reaches it: a member's role or an API key's scope.
    pub access: Access,
    caller: Caller,
    permit: PhantomData<fn() -> P>,
}

impl<P: Permit> InWorkspace<P> {
    /// The request id as correlation id, the source sealed under the caller's key: built only
    /// by routes that write (sealing costs a key lookup; reads need none of it).
    pub async fn context(&self, state: &AppState) -> Result<CommandContext, ApiError> {
        self.caller.context(state).await
    }

    /// The member acting, for what binds a person rather than the workspace (an OAuth grant is
    /// a person's consent): API keys get 403.
    pub fn member(&self) -> Result<UserId, ApiError> {
        match (self.access, &self.caller.principal) {
            (Access::Member(_), Principal::User { user_id, .. }) => Ok(*user_id),
            _ => Err(ApiError::people_only()),
        }
    }
}

impl<P: Permit> FromRequestParts<AppState> for InWorkspace<P> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let InPath(id) = InPath::<WorkspaceId>::from_request_parts(parts, state).await?;
        let access = state
            .identity
            .authorize(&caller.principal, id, P::PERMISSION)
            .await
            .map_err(|e| match e {
                CommandError::NotFound(_) => ApiError::NotFound(format!("workspace {id}")),
                other => other.into(),
            })?;
        Ok(Self {
            id,
            access,
            caller,
            permit: PhantomData,
        })
    }
}

/// The signed-in person, for routes about themselves (their profile, sessions, workspaces):
/// API keys get 403 `forbidden`.
pub struct Person {
    pub user: UserId,
    pub session: SessionId,
    caller: Caller,
}

impl Person {
    /// The metadata of the commands the request causes, built only by routes that write.
    pub async fn context(&self, state: &AppState) -> Result<CommandContext, ApiError> {
        self.caller.context(state).await
    }
}

impl FromRequestParts<AppState> for Person {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let (user, session) = caller.user()?;
        Ok(Self {
            user,
            session,
            caller,
        })
    }
}

/// Someone who runs the deployment (`adledger operators grant EMAIL`), for deployment-wide
/// routes. Everyone else who is signed in, API keys included, gets the 404 of a route that does
/// not exist: the whole log is not any one tenant's business.
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if state.identity.is_operator(&caller.principal).await? {
            Ok(Operator)
        } else {
            Err(ApiError::no_route(parts.uri.path()))
        }
    }
}
