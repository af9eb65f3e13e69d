//! A workspace's machine credentials: API keys are created with a scope, shown once, stored as a
//! hash, revoked at once, and authenticate requests (noting their last use).

use crate::identity::{random_secret, Identity, Principal};
use crate::members::workspace_target;
use crate::{CommandContext, CommandError};
use adledger_domain::workspace;
use adledger_domain::{ApiKeyId, ApiKeyScope, WorkspaceId};
use adledger_infra::crypto::{hash_token, verify_token_hash, TokenKind};
use adledger_infra::identity::ApiKeyRecord;
use chrono::{DateTime, Utc};
use uuid::Uuid;

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

/// `adl_ak_<uuid simple>_<secret>`: the id finds the record, the whole text is hashed.
fn compose(id: ApiKeyId) -> Result<String, CommandError> {
    let secret = random_secret(TokenKind::ApiKey)?;
    Ok(format!("{API_KEY_PREFIX}{}_{secret}", id.0.simple()))
}

fn id_of(key: &str) -> Option<ApiKeyId> {
    let rest = key.trim().strip_prefix(API_KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if secret.is_empty() {
        return None;
    }
    Uuid::try_parse(id).ok().map(ApiKeyId)
}

impl Identity {
    pub async fn create_api_key(
        &self,
        ctx: &CommandContext,
        workspace: WorkspaceId,
        name: &str,
        scope: ApiKeyScope,
    ) -> Result<CreatedApiKey, CommandError> {
        let api_key_id = ApiKeyId(Uuid::now_v7());
        let key = compose(api_key_id)?;
        let key_hash = hash_token(&key);
        let command = workspace::Command::CreateApiKey {
            api_key_id,
            name: name.to_owned(),
            scope,
            key_hash: key_hash.clone(),
        };
        self.commands
            .decide(workspace_target(ctx, workspace), &command)
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
        let command = workspace::Command::RevokeApiKey { api_key_id };
        self.commands
            .decide(workspace_target(ctx, workspace), &command)
            .await
            .map(|_| ())
    }

    /// The workspace's API keys in id order (oldest first: ids are UUID v7), from after
    /// `after`, at most `limit` of them.
    pub async fn api_keys(
        &self,
        workspace: WorkspaceId,
        after: Option<ApiKeyId>,
        limit: usize,
    ) -> Result<Vec<ApiKeyView>, CommandError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let state = self.workspace(workspace).await?;
        let start = after.map_or(Unbounded, Excluded);
        let page: Vec<_> = state
            .api_keys
            .range((start, Unbounded))
            .take(limit)
            .collect();
        let ids: Vec<ApiKeyId> = page.iter().map(|(id, _)| **id).collect();
        let used: std::collections::HashMap<ApiKeyId, ApiKeyRecord> = self
            .ids
            .api_keys_of(workspace, &ids)
            .await?
            .into_iter()
            .map(|r| (r.api_key_id, r))
            .collect();
        Ok(page
            .into_iter()
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
        let id = id_of(key).ok_or_else(invalid)?;
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
    fn keys_carry_their_ids() {
        let key = ApiKeyId(Uuid::now_v7());
        let text = compose(key).unwrap();
        assert_eq!(id_of(&text), Some(key));
        assert_eq!(id_of("adl_ak_nothex_x"), None);
        assert_eq!(id_of(&format!("adl_ak_{}_", key.0.simple())), None);
    }
}
