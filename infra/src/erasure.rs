//! What erasing a person must reach beyond their own key, looked up in the log: the API keys
//! they created (whose requests' sources are sealed under the key's id), and invitations sealed
//! under the invitation's own id before email addresses had subjects, whose key still lives.
//! It only reads; the caller records the erasure and then destroys the keys.

use crate::identity::IdentityStore;
use crate::StoreError;
use adledger_domain::{ApiKeyId, InvitationId, Sealed, UserId, WorkspaceId};

/// An API key someone created, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedKey {
    pub workspace_id: WorkspaceId,
    pub api_key_id: ApiKeyId,
}

/// An invitation whose email is sealed under its own id and still opens.
#[derive(Debug, Clone)]
pub struct LegacyInvitation {
    pub invitation_id: InvitationId,
    pub email: Sealed,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    workspace_id: uuid::Uuid,
    api_key_id: uuid::Uuid,
}

#[derive(sqlx::FromRow)]
struct InvitationRow {
    invitation_id: uuid::Uuid,
    email: String,
}

impl IdentityStore {
    /// The API keys `user` created, in every workspace (revoked ones too: their past requests'
    /// sources are still sealed under their ids).
    pub async fn api_keys_created_by(&self, user: UserId) -> Result<Vec<CreatedKey>, StoreError> {
        let rows: Vec<KeyRow> = sqlx::query_as(
            "SELECT workspace_id, (payload->>'api_key_id')::uuid AS api_key_id FROM events
              WHERE event_type = 'ApiKeyCreated'
                AND metadata->'actor'->>'kind' = 'user'
                AND metadata->'actor'->>'user_id' = $1::text
              ORDER BY id",
        )
        .bind(user.0)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| CreatedKey {
                workspace_id: WorkspaceId(r.workspace_id),
                api_key_id: ApiKeyId(r.api_key_id),
            })
            .collect())
    }

    /// Invitations sealed under their own id whose key was not erased (accepting one erases
    /// it): the invited address has to be opened to know whose they are. None are made any more,
    /// so this set only shrinks.
    pub async fn legacy_invitations(&self) -> Result<Vec<LegacyInvitation>, StoreError> {
        let rows: Vec<InvitationRow> = sqlx::query_as(
            "SELECT (e.payload->>'invitation_id')::uuid AS invitation_id,
                    e.payload->>'email' AS email
               FROM events e
               JOIN subject_keys k
                 ON k.subject_id = (e.payload->>'invitation_id')::uuid AND k.erased_at IS NULL
              WHERE e.event_type = 'MemberInvited'
                AND e.payload->>'email' LIKE 'sealed:v1:' || (e.payload->>'invitation_id') || ':%'
              ORDER BY e.id",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| LegacyInvitation {
                invitation_id: InvitationId(r.invitation_id),
                email: Sealed(r.email),
            })
            .collect())
    }
}
