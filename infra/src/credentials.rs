//! Where connections' OAuth tokens and pending authorizations live (migration 0009): sealed under
//! the master keys with the connection (or state) as associated data, so a sealed value cannot
//! be moved to another row. This module never sees a platform's token format: callers hand it
//! text (their own JSON) and get text back.

use crate::crypto::{CryptoError, MasterKeys};
use crate::StoreError;
use adledger_domain::{ConnectionId, Platform, UserId, WorkspaceId};
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

impl From<sqlx::Error> for CredentialError {
    fn from(e: sqlx::Error) -> Self {
        CredentialError::Store(StoreError::Database(e))
    }
}

/// A pending authorization, as taken back at the callback.
#[derive(Debug, Clone)]
pub struct OAuthState {
    pub workspace_id: WorkspaceId,
    pub user_id: UserId,
    pub platform: Platform,
    pub pkce_verifier: Option<String>,
    /// The connection being reconnected, if any.
    pub connection_id: Option<ConnectionId>,
}

#[derive(Clone)]
pub struct CredentialStore {
    pool: PgPool,
    keys: MasterKeys,
}

impl CredentialStore {
    pub fn new(pool: PgPool, keys: MasterKeys) -> Self {
        Self { pool, keys }
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn save_state(
        &self,
        state_hash: &str,
        workspace: WorkspaceId,
        user: UserId,
        platform: Platform,
        pkce_verifier: Option<&str>,
        connection: Option<ConnectionId>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), CredentialError> {
        let sealed = pkce_verifier
            .map(|v| self.keys.seal(v.as_bytes(), state_hash.as_bytes()))
            .transpose()?;
        sqlx::query(
            "INSERT INTO oauth_states (state_hash, workspace_id, user_id, platform, pkce_verifier,
                                       connection_id, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(state_hash)
        .bind(workspace.as_uuid())
        .bind(user.as_uuid())
        .bind(platform.as_str())
        .bind(sealed)
        .bind(connection.map(|c| c.as_uuid()))
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Spends a state: `None` when it is unknown, used or expired.
    pub async fn take_state(
        &self,
        state_hash: &str,
    ) -> Result<Option<OAuthState>, CredentialError> {
        let row = sqlx::query(
            "UPDATE oauth_states SET used_at = now()
             WHERE state_hash = $1 AND used_at IS NULL AND expires_at > now()
             RETURNING workspace_id, user_id, platform, pkce_verifier, connection_id",
        )
        .bind(state_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let platform: String = row.get("platform");
        let platform = Platform::parse(&platform).ok_or_else(|| {
            StoreError::Corrupt(format!("oauth state names unknown platform {platform:?}"))
        })?;
        let verifier: Option<String> = row.get("pkce_verifier");
        let pkce_verifier = verifier
            .map(|v| self.keys.open_str(&v, state_hash.as_bytes()))
            .transpose()?;
        Ok(Some(OAuthState {
            workspace_id: WorkspaceId(row.get("workspace_id")),
            user_id: UserId(row.get("user_id")),
            platform,
            pkce_verifier,
            connection_id: row
                .get::<Option<uuid::Uuid>, _>("connection_id")
                .map(ConnectionId),
        }))
    }

    /// Stores (or replaces) a connection's tokens, sealed.
    pub async fn save(
        &self,
        connection: ConnectionId,
        workspace: WorkspaceId,
        platform: Platform,
        tokens: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(), CredentialError> {
        let sealed = self
            .keys
            .seal(tokens.as_bytes(), connection.as_uuid().as_bytes())?;
        sqlx::query(
            "INSERT INTO connection_credentials
                 (connection_id, workspace_id, platform, sealed_tokens, expires_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (connection_id) DO UPDATE SET sealed_tokens = excluded.sealed_tokens,
                 expires_at = excluded.expires_at, updated_at = now()",
        )
        .bind(connection.as_uuid())
        .bind(workspace.as_uuid())
        .bind(platform.as_str())
        .bind(sealed)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn load(&self, connection: ConnectionId) -> Result<Option<String>, CredentialError> {
        let sealed: Option<String> = sqlx::query_scalar(
            "SELECT sealed_tokens FROM connection_credentials WHERE connection_id = $1",
        )
        .bind(connection.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        Ok(sealed
            .map(|s| self.keys.open_str(&s, connection.as_uuid().as_bytes()))
            .transpose()?)
    }

    /// Forgets a connection's tokens (disconnect).
    pub async fn delete(&self, connection: ConnectionId) -> Result<(), CredentialError> {
        sqlx::query("DELETE FROM connection_credentials WHERE connection_id = $1")
            .bind(connection.as_uuid())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Re-seals every stored token set under the active master key (key rotation).
    pub async fn rewrap_all(&self) -> Result<u64, CredentialError> {
        #[derive(sqlx::FromRow)]
        struct Stored {
            connection_id: uuid::Uuid,
            sealed_tokens: String,
        }
        let rows: Vec<Stored> =
            sqlx::query_as("SELECT connection_id, sealed_tokens FROM connection_credentials")
                .fetch_all(&self.pool)
                .await?;
        let mut rewrapped = 0;
        for row in rows {
            let (id, sealed) = (row.connection_id, row.sealed_tokens);
            if !self.keys.needs_rewrap(&sealed) {
                continue;
            }
            let fresh = self.keys.rewrap(&sealed, id.as_bytes())?;
            sqlx::query(
                "UPDATE connection_credentials SET sealed_tokens = $2 WHERE connection_id = $1
                   AND sealed_tokens = $3",
            )
            .bind(id)
            .bind(fresh)
            .bind(sealed)
            .execute(&self.pool)
            .await?;
            rewrapped += 1;
        }
        Ok(rewrapped)
    }
}
