//! The identity tables beside the log (see migration 0007): the email index, sessions and their
//! refresh-token families, API keys by id, and failed-login counters. The facts stay events; this
//! module holds only what a request must check at once or what must be forgettable. It never
//! sees a password or a token in clear: callers pass hashes.

use crate::StoreError;
use adledger_domain::{ApiKeyId, ApiKeyScope, SessionId, UserId, WorkspaceId};
use chrono::{DateTime, Duration, Utc};
use sqlx::{PgPool, Row};

/// After this many failed logins in a row an email is locked for a while, doubling each time.
pub const FREE_LOGIN_FAILURES: i32 = 5;
const MAX_LOCK: Duration = Duration::minutes(15);

#[derive(Clone)]
pub struct IdentityStore {
    pool: PgPool,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshUse {
    /// The token was valid and is now spent: issue the next one in the same session.
    Rotated {
        session_id: SessionId,
        user_id: UserId,
    },
    /// The token had been used before: the whole session was revoked.
    Reused,
    /// Unknown, expired, or its session ended.
    Invalid,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRecord {
    #[sqlx(try_from = "uuid::Uuid")]
    pub session_id: SessionId,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct ApiKeyRecord {
    pub api_key_id: ApiKeyId,
    pub workspace_id: WorkspaceId,
    pub key_hash: String,
    pub scope: ApiKeyScope,
    pub revoked: bool,
    pub last_used_at: Option<DateTime<Utc>>,
}

fn lower(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Failed logins are counted under a hash of the email, so that attempts with an erased
/// person's address leave no trace of it in clear.
fn failure_key(email: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(format!(
        "adledger login {}",
        lower(email)
    )))
}

impl IdentityStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Claims an email for a new user. `false` when another user has it.
    pub async fn reserve_email(&self, user: UserId, email: &str) -> Result<bool, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO users (user_id, email) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(user.0)
        .bind(lower(email))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    /// Gives an email back (a registration that did not complete, an erased user).
    pub async fn release_email(&self, user: UserId) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM users WHERE user_id = $1")
            .bind(user.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserId>, StoreError> {
        let user: Option<uuid::Uuid> =
            sqlx::query_scalar("SELECT user_id FROM users WHERE email = $1")
                .bind(lower(email))
                .fetch_optional(&self.pool)
                .await?;
        Ok(user.map(UserId))
    }

    /// The current emails of these users (erased users have none).
    pub async fn emails(&self, users: &[UserId]) -> Result<Vec<(UserId, String)>, StoreError> {
        let ids: Vec<uuid::Uuid> = users.iter().map(|u| u.0).collect();
        #[derive(sqlx::FromRow)]
        struct Email {
            user_id: uuid::Uuid,
            email: String,
        }
        let rows: Vec<Email> =
            sqlx::query_as("SELECT user_id, email FROM users WHERE user_id = ANY($1)")
                .bind(&ids)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|r| (UserId(r.user_id), r.email))
            .collect())
    }

    pub async fn create_session(
        &self,
        session: SessionId,
        user: UserId,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO sessions (session_id, user_id, expires_at) VALUES ($1, $2, $3)")
            .bind(session.0)
            .bind(user.0)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether the session exists, is not revoked, has not expired, and belongs to `user`.
    pub async fn session_is_live(
        &self,
        session: SessionId,
        user: UserId,
    ) -> Result<bool, StoreError> {
        let live: Option<bool> = sqlx::query_scalar(
            "SELECT revoked_at IS NULL AND expires_at > now() FROM sessions
             WHERE session_id = $1 AND user_id = $2",
        )
        .bind(session.0)
        .bind(user.0)
        .fetch_optional(&self.pool)
        .await?;
        Ok(live.unwrap_or(false))
    }

    pub async fn sessions_of(&self, user: UserId) -> Result<Vec<SessionRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT session_id, created_at, expires_at, revoked_at FROM sessions
             WHERE user_id = $1 ORDER BY created_at",
        )
        .bind(user.0)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn revoke_session(&self, session: SessionId, reason: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sessions SET revoked_at = now(), revoked_reason = $2
             WHERE session_id = $1 AND revoked_at IS NULL",
        )
        .bind(session.0)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends every session of a user except `keep` (password change: the caller stays in).
    pub async fn revoke_sessions_of(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        reason: &str,
    ) -> Result<u64, StoreError> {
        let revoked = sqlx::query(
            "UPDATE sessions SET revoked_at = now(), revoked_reason = $3
             WHERE user_id = $1 AND revoked_at IS NULL AND session_id IS DISTINCT FROM $2",
        )
        .bind(user.0)
        .bind(keep.map(|s| s.0))
        .bind(reason)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(revoked)
    }

    pub async fn issue_refresh_token(
        &self,
        token_hash: &str,
        session: SessionId,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(token_hash)
        .bind(session.0)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Spends a refresh token. Of two concurrent uses of one token exactly one rotates; the other
    /// counts as reuse and ends the session.
    pub async fn use_refresh_token(&self, token_hash: &str) -> Result<RefreshUse, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "SELECT t.session_id, s.user_id, t.used_at IS NOT NULL AS used,
                    t.expires_at > now() AND s.revoked_at IS NULL AND s.expires_at > now() AS live
             FROM refresh_tokens t JOIN sessions s USING (session_id)
             WHERE t.token_hash = $1 FOR UPDATE OF t, s",
        )
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(RefreshUse::Invalid);
        };
        let session = SessionId(row.get("session_id"));
        let outcome = if row.get::<bool, _>("used") {
            sqlx::query(
                "UPDATE sessions SET revoked_at = now(), revoked_reason = 'refresh token reused'
                 WHERE session_id = $1 AND revoked_at IS NULL",
            )
            .bind(session.0)
            .execute(&mut *tx)
            .await?;
            RefreshUse::Reused
        } else if !row.get::<bool, _>("live") {
            RefreshUse::Invalid
        } else {
            sqlx::query("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1")
                .bind(token_hash)
                .execute(&mut *tx)
                .await?;
            RefreshUse::Rotated {
                session_id: session,
                user_id: UserId(row.get("user_id")),
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    pub async fn insert_api_key(
        &self,
        key: ApiKeyId,
        workspace: WorkspaceId,
        key_hash: &str,
        scope: ApiKeyScope,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (api_key_id, workspace_id, key_hash, scope) VALUES ($1, $2, $3, $4)",
        )
        .bind(key.0)
        .bind(workspace.0)
        .bind(key_hash)
        .bind(scope.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn revoke_api_key(&self, key: ApiKeyId) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE api_keys SET revoked_at = now() WHERE api_key_id = $1 AND revoked_at IS NULL",
        )
        .bind(key.0)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn api_key(&self, key: ApiKeyId) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT api_key_id, workspace_id, key_hash, scope, revoked_at IS NOT NULL AS revoked,
                    last_used_at
             FROM api_keys WHERE api_key_id = $1",
        )
        .bind(key.0)
        .fetch_optional(&self.pool)
        .await?;
        row.map(api_key_record).transpose()
    }

    /// The records of these keys of `workspace` (a page of its keys).
    pub async fn api_keys_of(
        &self,
        workspace: WorkspaceId,
        keys: &[ApiKeyId],
    ) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let ids: Vec<uuid::Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = sqlx::query(
            "SELECT api_key_id, workspace_id, key_hash, scope, revoked_at IS NOT NULL AS revoked,
                    last_used_at
             FROM api_keys WHERE workspace_id = $1 AND api_key_id = ANY($2)
             ORDER BY created_at, api_key_id",
        )
        .bind(workspace.0)
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(api_key_record).collect()
    }

    /// Notes a key's use; at most once a minute per key, so busy clients do not write per call.
    pub async fn touch_api_key(&self, key: ApiKeyId) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE api_keys SET last_used_at = now()
             WHERE api_key_id = $1
               AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        )
        .bind(key.0)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Until when logins for this email are refused, if they are.
    pub async fn login_locked_until(
        &self,
        email: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let until: Option<Option<DateTime<Utc>>> = sqlx::query_scalar(
            "SELECT locked_until FROM login_failures WHERE email = $1 AND locked_until > now()",
        )
        .bind(failure_key(email))
        .fetch_optional(&self.pool)
        .await?;
        Ok(until.flatten())
    }

    /// Counts a failed login; past [`FREE_LOGIN_FAILURES`] the email is locked for 1 s, 2 s,
    /// 4 s, … up to 15 minutes. Returns the lock's end when there is one.
    pub async fn record_login_failure(
        &self,
        email: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let failures: i32 = sqlx::query_scalar(
            "INSERT INTO login_failures (email, failures, last_failed_at) VALUES ($1, 1, now())
             ON CONFLICT (email) DO UPDATE
               SET failures = login_failures.failures + 1, last_failed_at = now()
             RETURNING failures",
        )
        .bind(failure_key(email))
        .fetch_one(&self.pool)
        .await?;
        if failures <= FREE_LOGIN_FAILURES {
            return Ok(None);
        }
        let exponent = (failures - FREE_LOGIN_FAILURES - 1).min(20) as u32;
        let lock = Duration::seconds(1_i64 << exponent).min(MAX_LOCK);
        let until: DateTime<Utc> = sqlx::query_scalar(
            "UPDATE login_failures SET locked_until = now() + $2 WHERE email = $1
             RETURNING locked_until",
        )
        .bind(failure_key(email))
        .bind(lock)
        .fetch_one(&self.pool)
        .await?;
        Ok(Some(until))
    }

    pub async fn clear_login_failures(&self, email: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM login_failures WHERE email = $1")
            .bind(failure_key(email))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The workspaces a person belongs to, as the membership read model knows them (it follows
    /// the log within moments; callers check each workspace's own stream for the truth).
    pub async fn workspaces_of(&self, user: UserId) -> Result<Vec<WorkspaceId>, StoreError> {
        let ids: Vec<uuid::Uuid> =
            sqlx::query_scalar("SELECT workspace_id FROM workspace_members WHERE user_id = $1")
                .bind(user.0)
                .fetch_all(&self.pool)
                .await?;
        Ok(ids.into_iter().map(WorkspaceId).collect())
    }

    /// Deletes what can no longer be used: sessions that expired or were revoked a day ago (with
    /// their refresh tokens), OAuth states past their expiry, and failed-login counters that are
    /// a day old and hold no lock. Answers how many rows went.
    pub async fn purge_expired(&self) -> Result<u64, StoreError> {
        let mut purged = 0;
        for sql in [
            "DELETE FROM sessions WHERE expires_at < now() - interval '1 day'
                OR revoked_at < now() - interval '1 day'",
            "DELETE FROM oauth_states WHERE expires_at < now() - interval '1 day'",
            "DELETE FROM login_failures WHERE last_failed_at < now() - interval '1 day'
                AND (locked_until IS NULL OR locked_until < now())",
        ] {
            purged += sqlx::query(sql).execute(&self.pool).await?.rows_affected();
        }
        Ok(purged)
    }

    /// Removes what the tables know about an erased user: their email, their sessions.
    pub async fn forget_user(&self, user: UserId) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let email: Option<String> =
            sqlx::query_scalar("DELETE FROM users WHERE user_id = $1 RETURNING email")
                .bind(user.0)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(email) = email {
            sqlx::query("DELETE FROM login_failures WHERE email = $1")
                .bind(failure_key(&email))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

fn api_key_record(row: sqlx::postgres::PgRow) -> Result<ApiKeyRecord, StoreError> {
    let scope: String = row.get("scope");
    Ok(ApiKeyRecord {
        api_key_id: ApiKeyId(row.get("api_key_id")),
        workspace_id: WorkspaceId(row.get("workspace_id")),
        key_hash: row.get("key_hash"),
        scope: ApiKeyScope::parse(&scope)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown API key scope {scope:?}")))?,
        revoked: row.get("revoked"),
        last_used_at: row.get("last_used_at"),
    })
}
