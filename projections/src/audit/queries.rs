//! Reads of the audit history: a workspace's entries newest first, filtered and paged, and every
//! entry where one person acted (for their data export). IPs and user agents come back sealed as
//! stored; opening them is the caller's business. Nothing here writes.

use crate::QueryError;
use adledger_domain::{StreamId, UserId, WorkspaceId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// Audit entries of a workspace, newest first, a page at a time: `before` is the last position
/// already seen.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// An actor's id or name, or an actor kind (`user`, `api_key`, `system`, `anonymous`).
    pub actor: Option<String>,
    pub action: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub before: Option<i64>,
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    pub position: i64,
    pub action: String,
    #[sqlx(try_from = "crate::columns::Text")]
    pub stream_id: StreamId,
    pub actor_kind: String,
    /// The user or API key id, or the system component's name.
    pub actor: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The correlation id of the request that caused it.
    pub request_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
}

pub async fn list_audit(
    pool: &PgPool,
    workspace: WorkspaceId,
    filter: &AuditFilter,
) -> Result<Vec<AuditEntry>, QueryError> {
    Ok(sqlx::query_as(
        "SELECT position, action, stream_id, actor_kind, actor, ip, user_agent, request_id,
                occurred_at, recorded_at
         FROM audit_log
         WHERE workspace_id = $1
           AND ($2::text IS NULL OR actor = $2 OR actor_kind = $2)
           AND ($3::text IS NULL OR action = $3)
           AND ($4::timestamptz IS NULL OR occurred_at >= $4)
           AND ($5::timestamptz IS NULL OR occurred_at < $5)
           AND ($6::int8 IS NULL OR position < $6)
         ORDER BY position DESC LIMIT $7",
    )
    .bind(workspace.as_uuid())
    .bind(&filter.actor)
    .bind(&filter.action)
    .bind(filter.from)
    .bind(filter.to)
    .bind(filter.before)
    .bind(filter.limit.max(0))
    .fetch_all(pool)
    .await?)
}

/// Every audit entry where this person acted, in every workspace, oldest first.
pub async fn audit_of_user(pool: &PgPool, user: UserId) -> Result<Vec<AuditEntry>, QueryError> {
    Ok(sqlx::query_as(
        "SELECT position, action, stream_id, actor_kind, actor, ip, user_agent, request_id,
                occurred_at, recorded_at
         FROM audit_log WHERE actor_kind = 'user' AND actor = $1 ORDER BY position",
    )
    .bind(user.to_string())
    .fetch_all(pool)
    .await?)
}
